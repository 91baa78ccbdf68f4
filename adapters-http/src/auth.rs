//! API keys: with keys configured, every `/users/...` request needs `Authorization: Bearer <key>`.

use std::fmt;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::Response;
use subtle::ConstantTimeEq;

use crate::rate_limit::{self, ApiKeyIndex};
use crate::{ApiError, AppState};

/// The accepted keys. Never printed: `Debug` shows only how many there are.
#[derive(Clone)]
pub struct ApiKeys(Arc<[Box<[u8]>]>);

impl fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKeys({} keys)", self.0.len())
    }
}

impl ApiKeys {
    /// The keys, blank lines and surrounding whitespace dropped; `None` when no key remains.
    pub fn new<I: IntoIterator<Item = S>, S: AsRef<str>>(keys: I) -> Option<Self> {
        let keys: Vec<Box<[u8]>> = keys
            .into_iter()
            .map(|key| key.as_ref().trim().to_owned())
            .filter(|key| !key.is_empty())
            .map(|key| key.into_bytes().into_boxed_slice())
            .collect();
        (!keys.is_empty()).then(|| Self(keys.into()))
    }

    /// The index of the key equal to `presented`. Every key is compared in full whatever matches, so the
    /// time taken does not tell how much of a guess was right.
    fn find(&self, presented: &[u8]) -> Option<ApiKeyIndex> {
        let mut found = None;
        for (index, key) in self.0.iter().enumerate() {
            if bool::from(key.ct_eq(presented)) {
                found = Some(ApiKeyIndex(index));
            }
        }
        found
    }
}

/// The middleware: 401 without a valid key (429 once the client address has been refused too often), else
/// the request goes on knowing its key.
pub async fn require_api_key(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let Some(keys) = &state.settings.api_keys else { return next.run(request).await };
    let presented = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim().as_bytes().to_vec());
    let Some(presented) = presented else { return rate_limit::refuse_key(&state, &request, ApiError::MissingApiKey) };
    match keys.find(&presented) {
        Some(index) => {
            request.extensions_mut().insert(index);
            next.run(request).await
        }
        None => rate_limit::refuse_key(&state, &request, ApiError::InvalidApiKey),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_exact_key_matches() {
        let keys = ApiKeys::new(["alpha-key", " beta-key \n", ""]).expect("two keys");
        assert_eq!(keys.find(b"alpha-key"), Some(ApiKeyIndex(0)));
        assert_eq!(keys.find(b"beta-key"), Some(ApiKeyIndex(1)));
        for wrong in [&b"alpha-ke"[..], b"alpha-keyy", b"", b"ALPHA-KEY", b"beta-key "] {
            assert_eq!(keys.find(wrong), None, "{wrong:?}");
        }
    }

    #[test]
    fn no_keys_means_no_key_set() {
        assert!(ApiKeys::new(["", "  "]).is_none());
        assert!(ApiKeys::new(Vec::<String>::new()).is_none());
    }

    #[test]
    fn debug_never_shows_a_key() {
        let keys = ApiKeys::new(["super-secret"]).expect("one key");
        assert_eq!(format!("{keys:?}"), "ApiKeys(1 keys)");
    }
}
