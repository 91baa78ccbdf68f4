use std::fmt;

/// The most characters an idempotency key may have.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;

/// The caller's name for one money transfer, so that retries of it count once: 1 to 255 printable
/// ASCII characters (space to `~`). Keys are scoped to a user by the ledger, not by this type.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

/// Why a text is not an [`IdempotencyKey`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdempotencyKeyError {
    #[error("the Idempotency-Key is empty; it needs 1 to {MAX_IDEMPOTENCY_KEY_LEN} printable ASCII characters")]
    Empty,
    #[error("the Idempotency-Key has {0} characters; at most {MAX_IDEMPOTENCY_KEY_LEN} are allowed")]
    TooLong(usize),
    #[error("the Idempotency-Key may contain only printable ASCII characters (space to ~)")]
    NotPrintableAscii,
}

impl IdempotencyKey {
    /// Parses a key from the raw bytes of its header value.
    pub fn parse(bytes: &[u8]) -> Result<Self, IdempotencyKeyError> {
        if bytes.is_empty() {
            return Err(IdempotencyKeyError::Empty);
        }
        if !bytes.iter().all(|b| (b' '..=b'~').contains(b)) {
            return Err(IdempotencyKeyError::NotPrintableAscii);
        }
        if bytes.len() > MAX_IDEMPOTENCY_KEY_LEN {
            return Err(IdempotencyKeyError::TooLong(bytes.len()));
        }
        let text = String::from_utf8(bytes.to_vec()).map_err(|_| IdempotencyKeyError::NotPrintableAscii)?;
        Ok(Self(text))
    }

    /// The key as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_one_to_255_printable_characters() {
        assert!(IdempotencyKey::parse(b"k").is_ok());
        assert!(IdempotencyKey::parse(b"order 42 / retry ~!").is_ok());
        assert!(IdempotencyKey::parse("x".repeat(MAX_IDEMPOTENCY_KEY_LEN).as_bytes()).is_ok());
    }

    #[test]
    fn refuses_empty_too_long_and_unprintable_keys() {
        assert_eq!(IdempotencyKey::parse(b""), Err(IdempotencyKeyError::Empty));
        assert_eq!(
            IdempotencyKey::parse("x".repeat(MAX_IDEMPOTENCY_KEY_LEN + 1).as_bytes()),
            Err(IdempotencyKeyError::TooLong(MAX_IDEMPOTENCY_KEY_LEN + 1))
        );
        for bad in [&b"tab\there"[..], b"nul\0", b"del\x7f", "café".as_bytes()] {
            assert_eq!(IdempotencyKey::parse(bad), Err(IdempotencyKeyError::NotPrintableAscii), "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn every_printable_key_round_trips(text in "[ -~]{1,255}") {
            prop_assert_eq!(IdempotencyKey::parse(text.as_bytes()).map(|k| k.as_str().to_owned()), Ok(text));
        }
    }
}
