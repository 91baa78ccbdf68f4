use std::fmt;

/// The most characters a user id may have.
pub const MAX_USER_ID_LEN: usize = 128;

/// Who owns a balance: 1 to 128 ASCII letters, digits or `. _ ~ @ + -`.
///
/// The alphabet is the URL-safe one, so an id travels in a path unescaped and reads the same in logs.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserId(String);

/// Why a text is not a [`UserId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserIdError {
    #[error("the user id is empty; it needs 1 to {MAX_USER_ID_LEN} characters")]
    Empty,
    #[error("the user id has {0} characters; at most {MAX_USER_ID_LEN} are allowed")]
    TooLong(usize),
    #[error("the user id contains {0:?}; only ASCII letters, digits and . _ ~ @ + - are allowed")]
    ForbiddenCharacter(char),
}

impl UserId {
    /// Parses a user id, as it reads after percent-decoding.
    pub fn parse(text: &str) -> Result<Self, UserIdError> {
        if text.is_empty() {
            return Err(UserIdError::Empty);
        }
        if let Some(bad) = text.chars().find(|c| !is_user_id_char(*c)) {
            return Err(UserIdError::ForbiddenCharacter(bad));
        }
        // All characters are ASCII here, so bytes are characters.
        if text.len() > MAX_USER_ID_LEN {
            return Err(UserIdError::TooLong(text.len()));
        }
        Ok(Self(text.to_owned()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn is_user_id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '~' | '@' | '+' | '-')
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for UserId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_every_allowed_character() {
        let id = UserId::parse("Gopal.k_9~x@example+test-1").expect("all characters are allowed");
        assert_eq!(id.as_str(), "Gopal.k_9~x@example+test-1");
    }

    #[test]
    fn accepts_exactly_the_longest_id() {
        assert!(UserId::parse(&"a".repeat(MAX_USER_ID_LEN)).is_ok());
        assert_eq!(UserId::parse(&"a".repeat(MAX_USER_ID_LEN + 1)), Err(UserIdError::TooLong(MAX_USER_ID_LEN + 1)));
    }

    #[test]
    fn rejects_empty_and_forbidden_characters() {
        assert_eq!(UserId::parse(""), Err(UserIdError::Empty));
        for bad in ["a b", "a/b", "a%b", "é", "a\0", "a:b", "a#b", "a?b"] {
            assert!(matches!(UserId::parse(bad), Err(UserIdError::ForbiddenCharacter(_))), "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn any_id_of_the_alphabet_round_trips(text in "[A-Za-z0-9._~@+-]{1,128}") {
            prop_assert_eq!(UserId::parse(&text).map(|id| id.as_str().to_owned()), Ok(text));
        }

        #[test]
        fn an_id_with_any_other_character_is_refused(prefix in "[a-z]{0,5}", bad in "[^A-Za-z0-9._~@+-]", suffix in "[a-z]{0,5}") {
            let text = format!("{prefix}{bad}{suffix}");
            prop_assert!(UserId::parse(&text).is_err());
        }
    }
}
