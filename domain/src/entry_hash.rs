//! The hash chain that makes each user's history tamper-evident: every entry's hash covers the hash of the
//! entry before it, so changing, removing or reordering one entry changes every later hash.

use std::fmt;

use sha2::{Digest, Sha256};

use crate::{Transaction, format_recording_time};

/// The SHA-256 link of one entry in its user's chain.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct EntryHash([u8; 32]);

/// Bytes or text that are not a SHA-256 hash.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a SHA-256 hash: {0}")]
pub struct InvalidEntryHash(String);

impl EntryHash {
    /// What the first entry of every user follows: 32 zero bytes (64 zeros in hex).
    pub const GENESIS: Self = Self([0; 32]);

    /// The hash of `transaction` following `previous`: SHA-256 over the canonical encoding, which is
    /// these seven lines of ASCII, each ended by one line feed (0x0A) and nothing else:
    ///
    /// 1. `previous` in lowercase hex (64 characters);
    /// 2. the user id;
    /// 3. the sequence in decimal, without leading zeros;
    /// 4. the id, a lowercase UUID with hyphens;
    /// 5. the amount, and 6. the balance after, with exactly two decimals (`500.00`);
    /// 7. the recording time as the API writes it (`2026-11-29T10:00:00.123456Z`).
    ///
    /// Every line is exactly the text the API answers with, so a client can recompute the chain from
    /// history pages alone. None of them can hold a line feed.
    pub fn chain(previous: &Self, transaction: &Transaction) -> Self {
        Self(Sha256::digest(canonical_encoding(previous, transaction)).into())
    }

    /// A hash as a store keeps it: 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, InvalidEntryHash> {
        <[u8; 32]>::try_from(bytes).map(Self).map_err(|_| InvalidEntryHash(format!("{} bytes, not 32", bytes.len())))
    }

    /// Parses 64 lowercase hex digits, as [`Display`](fmt::Display) writes them.
    pub fn parse_hex(text: &str) -> Result<Self, InvalidEntryHash> {
        let invalid = || InvalidEntryHash(format!("{text:?} is not 64 lowercase hex digits"));
        if text.len() != 64 {
            return Err(invalid());
        }
        let mut bytes = [0_u8; 32];
        for (byte, pair) in bytes.iter_mut().zip(text.as_bytes().chunks_exact(2)) {
            let high = lower_hex_value(pair[0]).ok_or_else(invalid)?;
            let low = lower_hex_value(pair[1]).ok_or_else(invalid)?;
            *byte = high << 4 | low;
        }
        Ok(Self(bytes))
    }

    /// The 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

/// The bytes [`EntryHash::chain`] hashes.
pub fn canonical_encoding(previous: &EntryHash, transaction: &Transaction) -> Vec<u8> {
    format!(
        "{previous}\n{}\n{}\n{}\n{}\n{}\n{}\n",
        transaction.user_id,
        transaction.sequence,
        transaction.id,
        transaction.amount,
        transaction.balance_after,
        format_recording_time(&transaction.created_at),
    )
    .into_bytes()
}

fn lower_hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        _ => None,
    }
}

impl fmt::Display for EntryHash {
    /// Lowercase hex. Written out here rather than byte by byte through `{:02x}`: every transaction the
    /// service answers with carries one, and the formatter's machinery per byte showed in its profile.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut hex = [0_u8; 64];
        for (pair, byte) in hex.chunks_exact_mut(2).zip(self.0) {
            pair[0] = DIGITS[usize::from(byte >> 4)];
            pair[1] = DIGITS[usize::from(byte & 0x0f)];
        }
        f.write_str(std::str::from_utf8(&hex).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for EntryHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EntryHash({self})")
    }
}

#[cfg(test)]
mod tests {
    use chrono::DateTime;
    use uuid::Uuid;

    use super::*;
    use crate::{Amount, Balance, Sequence, TransactionId, UserId};

    /// The worked example of the API documentation (`docs/api.md`): keep the two in step.
    fn first_transaction_of_gopal() -> Transaction {
        Transaction {
            id: TransactionId::from_uuid(Uuid::parse_str("0190f0c8-7d3a-7c12-9a4e-5b8f2e1d6c3a").expect("a UUID")),
            user_id: UserId::parse("gopal").expect("valid"),
            sequence: Sequence::FIRST,
            amount: Amount::parse("500").expect("valid"),
            balance_after: Balance::from_decimal("500".parse().expect("a decimal")).expect("valid"),
            created_at: DateTime::parse_from_rfc3339("2026-11-29T10:00:00.123456Z").expect("valid").to_utc(),
            hash: EntryHash::GENESIS,
        }
    }

    #[test]
    fn the_documented_example_encodes_and_hashes_as_documented() {
        let first = first_transaction_of_gopal();
        let encoding = String::from_utf8(canonical_encoding(&EntryHash::GENESIS, &first)).expect("ASCII");
        assert_eq!(
            encoding,
            "0000000000000000000000000000000000000000000000000000000000000000\ngopal\n1\n\
             0190f0c8-7d3a-7c12-9a4e-5b8f2e1d6c3a\n500.00\n500.00\n2026-11-29T10:00:00.123456Z\n"
        );
        assert_eq!(
            first.chained_hash(&EntryHash::GENESIS).to_string(),
            "0a2483e750cdf009ebbf32562432b4e95e7102c1ad480e00370858c02f41de82",
            "update docs/api.md's worked example with the new value if the encoding ever changes (it must not)"
        );
    }

    #[test]
    fn any_change_to_a_field_or_to_the_previous_hash_changes_the_hash() {
        let first = first_transaction_of_gopal();
        let hash = first.chained_hash(&EntryHash::GENESIS);
        let mut changed = first.clone();
        changed.amount = Amount::parse("500.01").expect("valid");
        assert_ne!(changed.chained_hash(&EntryHash::GENESIS), hash);
        let mut later = first.clone();
        later.created_at += chrono::Duration::microseconds(1);
        assert_ne!(later.chained_hash(&EntryHash::GENESIS), hash);
        assert_ne!(first.chained_hash(&hash), hash);
    }

    #[test]
    fn hashes_read_back_as_written() {
        let hash = first_transaction_of_gopal().chained_hash(&EntryHash::GENESIS);
        assert_eq!(EntryHash::parse_hex(&hash.to_string()), Ok(hash));
        assert_eq!(EntryHash::from_slice(hash.as_bytes()), Ok(hash));
        assert_eq!(EntryHash::GENESIS.to_string(), "0".repeat(64));
        for bad in ["", "00", &"0".repeat(63), &"A".repeat(64), &"g".repeat(64)] {
            assert!(EntryHash::parse_hex(bad).is_err(), "{bad:?}");
        }
        assert!(EntryHash::from_slice(&[0; 31]).is_err());
    }
}
