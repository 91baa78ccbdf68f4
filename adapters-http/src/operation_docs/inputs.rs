//! What the operations take, as the document describes it: the add's body, the amount, and the parameters.
//! Documentation only: the extractors of `crate::extract` read the real requests.

use std::borrow::Cow;

use utoipa::openapi::{ObjectBuilder, OneOfBuilder, RefOr, Schema, Type};
use utoipa::{IntoParams, PartialSchema, ToSchema};

// Documentation only: `extract::AddAmount` reads the real body from raw JSON, so that the amount's exact
// text is kept.
/// The body of `POST /users/{uid}/add`: a JSON object with `amount` and nothing else (another field is 400
/// `/problems/malformed-body`).
#[derive(ToSchema)]
#[schema(as = AddRequest, example = json!({"amount": "12.34"}))]
#[serde(deny_unknown_fields)]
#[allow(dead_code, reason = "documentation only")]
pub(crate) struct AddRequestSchema {
    /// The amount to add, in US dollars.
    amount: AmountInput,
}

/// An amount on input: a JSON number or a decimal string, read exactly.
pub(crate) struct AmountInput;

/// The decimal strings that are an amount: digits with an optional fraction (no sign, no exponent), above 0,
/// at most 2 decimals once trailing zeros are dropped, at most 1000000000.00. Leading zeros are allowed.
/// The three branches: 1 to 999999999 with any fraction of at most 2 significant decimals; one billion with
/// a zero fraction; 0.01 to 0.99.
const AMOUNT_STRING_PATTERN: &str =
    r"^(?:0*[1-9][0-9]{0,8}(?:\.[0-9]{1,2}0*)?|0*1000000000(?:\.0+)?|0+\.(?:[1-9][0-9]?|0[1-9])0*)$";

impl PartialSchema for AmountInput {
    fn schema() -> RefOr<Schema> {
        // `multipleOf: 0.01` is exact in JSON Schema, which compares the number's value, not a float.
        let number = ObjectBuilder::new()
            .schema_type(Type::Number)
            .description(Some(
                "A JSON number such as `500` or `12.5`, read from its text (never through a float); an exponent is \
                 allowed (`1.5e2`).",
            ))
            .exclusive_minimum(Some(0))
            .maximum(Some(1_000_000_000))
            .multiple_of(Some(0.01))
            .examples([serde_json::json!(500), serde_json::json!(12.5)]);
        let string = ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(
                "A decimal string such as `\"12.50\"`: digits with an optional fraction; no sign, no exponent.",
            ))
            .pattern(Some(AMOUNT_STRING_PATTERN))
            .examples([serde_json::json!("12.50")]);
        OneOfBuilder::new()
            .item(number)
            .item(string)
            .description(Some(
                "Greater than 0, at most 2 decimal places, at most 1000000000.00 (one billion); otherwise 422 \
                 `/problems/invalid-amount` and nothing is recorded.",
            ))
            .into()
    }
}

impl ToSchema for AmountInput {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("AmountInput")
    }
}

/// The `{uid}` of the `/users/{uid}/...` paths.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code, reason = "documentation only: extract::UserPath reads the path")]
pub(crate) struct UserIdParam {
    /// The user: 1 to 128 ASCII letters, ASCII digits and `. _ ~ @ + -`, after percent-decoding. Anything
    /// else is 400 `/problems/invalid-user-id`.
    #[param(pattern = r"^[A-Za-z0-9._~@+-]{1,128}$", min_length = 1, max_length = 128, example = "gopal")]
    uid: String,
}

/// The optional `Idempotency-Key` header of an add.
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code, reason = "documentation only: extract::IdempotencyKeyHeader reads the header")]
pub(crate) struct IdempotencyKeyParam {
    /// Makes the add happen once: a repeat with the same user, key and amount answers the same transaction
    /// with `Idempotent-Replayed: true`; the same key with another amount is 422
    /// `/problems/idempotency-key-reused`. 1 to 255 printable ASCII characters (space to `~`), sent at most
    /// once; spaces and tabs around them are not part of the key (HTTP drops them). Anything else is 400
    /// `/problems/invalid-idempotency-key`. Without it every call is a new transaction.
    // The length is in the pattern, not in `maxLength`, because it counts the key without the spaces and
    // tabs around it, which a sender may add.
    #[param(
        rename = "Idempotency-Key",
        pattern = r"^[ \t]*[!-~](?:[ -~]{0,253}[!-~])?[ \t]*$",
        example = "order-1001",
        nullable = false
    )]
    idempotency_key: Option<String>,
}

/// Which page of history `GET /users/{uid}/history` answers: `page` or `cursor`, not both (400
/// `/problems/conflicting-pagination`); page 1 without either. With `from` and/or `to`, only the
/// transactions recorded in that range.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code, reason = "documentation only: extract::HistoryArgs reads the query")]
pub(crate) struct HistoryParams {
    /// Numbered pages of 10, from 1 (the default) to 4294967295; not with `cursor`. Anything else: 400
    /// `/problems/invalid-page`. A page past the end is an empty list. Page 10,000 costs what page 1 costs.
    // i64, not the u32 it is read as: a u32 is documented as `int32`, which would leave out pages past 2^31.
    #[param(minimum = 1, maximum = 4_294_967_295_i64, example = 2, nullable = false)]
    page: Option<i64>,
    /// Keyset pages: the `next_cursor` of the previous page, with the same `from` and `to`; not with
    /// `page`. Opaque. A cursor this service did not issue, or issued for another user or range: 400
    /// `/problems/invalid-cursor`.
    #[param(pattern = r"^[0-9a-f]{56}$", nullable = false)]
    cursor: Option<String>,
    /// Only transactions recorded at this time or later: an RFC 3339 date-time (any offset; escape `+`
    /// as `%2B`). Not RFC 3339: 400 `/problems/invalid-time`; not before `to`: 400
    /// `/problems/invalid-time-range`.
    #[param(format = DateTime, example = "2026-11-01T00:00:00Z", nullable = false)]
    from: Option<String>,
    /// Only transactions recorded before this time: an RFC 3339 date-time. Not RFC 3339: 400
    /// `/problems/invalid-time`.
    #[param(format = DateTime, example = "2026-12-01T00:00:00Z", nullable = false)]
    to: Option<String>,
}

/// The time `GET /users/{uid}/balance` answers for.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code, reason = "documentation only: extract::BalanceAt reads the query")]
pub(crate) struct BalanceParams {
    /// The balance as it stood at this time: the `balance_after` of the user's last transaction recorded
    /// at or before it (`0.00` before the first); the answer then carries `as_of`. An RFC 3339 date-time
    /// (any offset; escape `+` as `%2B`); anything else: 400 `/problems/invalid-time`.
    #[param(format = DateTime, example = "2026-11-30T00:00:00Z", nullable = false)]
    at: Option<String>,
}
