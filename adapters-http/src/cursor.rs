//! History cursors on the wire: opaque, and valid only for the user and the time range they were issued
//! for. A cursor is the page it opens and the sequence it continues below, signed with HMAC-SHA-256 over
//! those, the user and the range; a cursor whose signature does not match was not issued by a service
//! holding the same key, or was issued for another user or range, and is refused. It tells its holder
//! nothing but a position in that user's own history.

use std::fmt::Write as _;

use chrono::{DateTime, SecondsFormat, Utc};
use domain::{HistoryCursor, PageNumber, Sequence, TimeRange, UserId};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// The secret that signs cursors. Instances behind one load balancer must share it, or a cursor issued
/// by one is refused by another.
#[derive(Clone)]
pub struct CursorKey([u8; 32]);

impl std::fmt::Debug for CursorKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CursorKey(<redacted>)")
    }
}

/// A cursor text that this service did not issue for this user and range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the cursor {0:?} was not issued by this service for this user and time range; use the next_cursor of a \
     history page, with the same from and to"
)]
pub struct InvalidCursor(pub String);

/// The bytes a cursor carries before its signature: the page (4) and the sequence (8), big-endian.
const PAYLOAD_BYTES: usize = 12;
/// The signature's bytes kept in the cursor: 128 bits of HMAC-SHA-256.
const SIGNATURE_BYTES: usize = 16;
/// The length of a cursor's text: both, in lowercase hex.
const CURSOR_HEX_DIGITS: usize = 2 * (PAYLOAD_BYTES + SIGNATURE_BYTES);

impl CursorKey {
    /// The key derived from a configured secret (any length; at least 32 random characters is wise).
    pub fn from_secret(secret: &str) -> Self {
        Self(Sha256::digest(secret.as_bytes()).into())
    }

    /// A key of this process alone: its cursors are refused by every other instance and after a restart.
    pub fn random() -> Self {
        // Two v4 UUIDs are 244 random bits from the operating system's generator.
        let mut key = [0_u8; 32];
        key[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        key[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        Self(key)
    }

    /// The text of `cursor`, bound to `user_id` and `range`.
    pub fn issue(&self, cursor: HistoryCursor, user_id: &UserId, range: &TimeRange) -> String {
        let mut payload = [0_u8; PAYLOAD_BYTES];
        payload[..4].copy_from_slice(&cursor.page.get().to_be_bytes());
        payload[4..].copy_from_slice(&cursor.before.get().to_be_bytes());
        let signature = self.signature(&payload, user_id, range);
        let mut text = String::with_capacity(CURSOR_HEX_DIGITS);
        for byte in payload.iter().chain(&signature[..SIGNATURE_BYTES]) {
            let _ = write!(text, "{byte:02x}");
        }
        text
    }

    /// The cursor a text stands for, if this key issued it for `user_id` and `range`.
    pub fn open(&self, text: &str, user_id: &UserId, range: &TimeRange) -> Result<HistoryCursor, InvalidCursor> {
        let invalid = || InvalidCursor(text.to_owned());
        let bytes = decode_lower_hex(text).filter(|bytes| bytes.len() == PAYLOAD_BYTES + SIGNATURE_BYTES);
        let bytes = bytes.ok_or_else(invalid)?;
        let (payload, signature) = bytes.split_at(PAYLOAD_BYTES);
        self.mac(payload, user_id, range).verify_truncated_left(signature).map_err(|_| invalid())?;
        let page = u32::from_be_bytes(payload[..4].try_into().map_err(|_| invalid())?);
        let before = u64::from_be_bytes(payload[4..].try_into().map_err(|_| invalid())?);
        // Only a bug in issuing could sign these; refuse rather than trust.
        let page = PageNumber::new(page).ok_or_else(invalid)?;
        let before = Sequence::new(before).map_err(|_| invalid())?;
        Ok(HistoryCursor { page, before })
    }

    fn signature(&self, payload: &[u8], user_id: &UserId, range: &TimeRange) -> [u8; 32] {
        self.mac(payload, user_id, range).finalize().into_bytes().into()
    }

    fn mac(&self, payload: &[u8], user_id: &UserId, range: &TimeRange) -> Hmac<Sha256> {
        // `new_from_slice` takes a key of any length; 32 bytes cannot fail.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0).unwrap_or_else(|_| unreachable!());
        let bound = |time: Option<DateTime<Utc>>| {
            time.map(|time| time.to_rfc3339_opts(SecondsFormat::Nanos, true)).unwrap_or_default()
        };
        // Every part is delimited: a user id, and a time written this way, never holds a line feed.
        mac.update(b"bitburst history cursor v1\n");
        mac.update(format!("{user_id}\n{}\n{}\n", bound(range.from()), bound(range.to())).as_bytes());
        mac.update(payload);
        mac
    }
}

fn decode_lower_hex(text: &str) -> Option<Vec<u8>> {
    let digit = |byte: u8| match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        _ => None,
    };
    if !text.len().is_multiple_of(2) {
        return None;
    }
    text.as_bytes().chunks_exact(2).map(|pair| Some(digit(pair[0])? << 4 | digit(pair[1])?)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(id: &str) -> UserId {
        UserId::parse(id).expect("valid")
    }

    fn cursor(page: u32, before: u64) -> HistoryCursor {
        HistoryCursor { page: PageNumber::new(page).expect("from 1"), before: Sequence::new(before).expect("from 1") }
    }

    fn range(from: &str, to: &str) -> TimeRange {
        let time = |text: &str| DateTime::parse_from_rfc3339(text).expect("RFC 3339").to_utc();
        TimeRange::new(Some(time(from)), Some(time(to))).expect("a range")
    }

    #[test]
    fn an_issued_cursor_opens_for_its_user_and_range() {
        let key = CursorKey::from_secret("a shared secret");
        let december = range("2026-12-01T00:00:00Z", "2027-01-01T00:00:00Z");
        for (issued, within) in [(cursor(2, 11), TimeRange::ALL), (cursor(u32::MAX, u64::MAX), december)] {
            let text = key.issue(issued, &user("gopal"), &within);
            assert_eq!(text.len(), CURSOR_HEX_DIGITS);
            assert_eq!(key.open(&text, &user("gopal"), &within), Ok(issued));
            assert_eq!(CursorKey::from_secret("a shared secret").open(&text, &user("gopal"), &within), Ok(issued));
        }
        let same_instants = range("2026-12-01T01:00:00+01:00", "2027-01-01T00:00:00.000Z");
        let text = key.issue(cursor(2, 11), &user("gopal"), &december);
        assert_eq!(
            key.open(&text, &user("gopal"), &same_instants),
            Ok(cursor(2, 11)),
            "the same range, written otherwise"
        );
    }

    #[test]
    fn a_cursor_is_refused_for_another_user_range_or_key() {
        let key = CursorKey::from_secret("a shared secret");
        let text = key.issue(cursor(2, 11), &user("gopal"), &TimeRange::ALL);
        let refused = |outcome: Result<HistoryCursor, InvalidCursor>| outcome == Err(InvalidCursor(text.clone()));
        assert!(refused(key.open(&text, &user("gopala"), &TimeRange::ALL)));
        assert!(refused(key.open(&text, &user("gopal"), &range("2026-12-01T00:00:00Z", "2027-01-01T00:00:00Z"))));
        assert!(refused(CursorKey::from_secret("another secret").open(&text, &user("gopal"), &TimeRange::ALL)));
        assert!(refused(CursorKey::random().open(&text, &user("gopal"), &TimeRange::ALL)));
    }

    #[test]
    fn forged_and_malformed_cursors_are_refused() {
        let key = CursorKey::from_secret("a shared secret");
        let text = key.issue(cursor(2, 11), &user("gopal"), &TimeRange::ALL);
        // Another page or position under the old signature.
        let mut forged = text.clone().into_bytes();
        forged[7] = if forged[7] == b'3' { b'4' } else { b'3' };
        let forged = String::from_utf8(forged).expect("hex");
        let upper = text.to_uppercase();
        let short = &text[..text.len() - 2];
        for bad in [forged.as_str(), upper.as_str(), short, "", "c1-2-7fffffffffffffff", "zz"] {
            assert_eq!(key.open(bad, &user("gopal"), &TimeRange::ALL), Err(InvalidCursor(bad.to_owned())), "{bad:?}");
        }
    }
}
