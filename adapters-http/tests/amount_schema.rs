//! The amounts that the OpenAPI document allows in `POST /users/{uid}/add` are exactly the ones the router
//! records: a tool that generates requests from the document finds no amount it allows that the service
//! refuses, nor one it forbids that the service takes.

use std::sync::Arc;

use adapters_http::{AppState, HttpSettings, Readiness, openapi_document, router};
use adapters_memory::InMemoryLedger;
use application::Ledger;
use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use regex::Regex;
use serde_json::Value;
use tower::ServiceExt;

fn app() -> Router {
    router(AppState::new(Ledger::new(Arc::new(InMemoryLedger::new())), Readiness::default(), HttpSettings::default()))
}

/// The amount's schema in the document: its `number` and `string` alternatives.
struct AmountSchema {
    number: Value,
    pattern: Regex,
}

impl AmountSchema {
    fn of_document() -> Self {
        let document = serde_json::to_value(openapi_document(&HttpSettings::default())).expect("JSON");
        let alternatives = document["components"]["schemas"]["AmountInput"]["oneOf"].as_array().cloned();
        let alternatives = alternatives.expect("the amount is a oneOf");
        assert_eq!(alternatives.len(), 2, "{alternatives:?}");
        let of_type = |kind: &str| {
            alternatives.iter().find(|schema| schema["type"] == kind).cloned().unwrap_or_else(|| panic!("no {kind}"))
        };
        let pattern = of_type("string")["pattern"].as_str().map(Regex::new).expect("a pattern").expect("a regex");
        Self { number: of_type("number"), pattern }
    }

    /// Whether the schema allows `amount`, the JSON text of the `amount` field.
    fn allows(&self, amount: &str) -> bool {
        match serde_json::from_str::<Value>(amount).expect("JSON") {
            Value::String(text) => self.pattern.is_match(&text),
            Value::Number(value) => {
                let value = value.as_f64().expect("finite");
                let bound = |name: &str| self.number[name].as_f64().unwrap_or_else(|| panic!("{name}"));
                let steps = value / bound("multipleOf");
                // The amounts below have few digits, so a float tells a multiple of 0.01 from the rest.
                value > bound("exclusiveMinimum") && value <= bound("maximum") && (steps - steps.round()).abs() < 1e-6
            }
            other => panic!("{other} is neither a number nor a string"),
        }
    }
}

/// Whether the router records an add of `amount`; anything else must be a 422 `invalid-amount`.
async fn router_accepts(app: &Router, amount: &str) -> bool {
    let request = Request::post("/users/gopal/add")
        .header("content-type", "application/json")
        .body(Body::from(format!(r#"{{"amount": {amount}}}"#)))
        .expect("a request");
    let response = app.clone().oneshot(request).await.expect("the router answers");
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX).await.expect("a body");
    if status == StatusCode::OK {
        return true;
    }
    let problem: Value = serde_json::from_slice(&body).expect("a problem document");
    assert_eq!(
        (status, &problem["type"]),
        (StatusCode::UNPROCESSABLE_ENTITY, &Value::from("/problems/invalid-amount"))
    );
    false
}

#[tokio::test]
async fn the_amounts_the_document_allows_are_the_ones_recorded() {
    let rows: &[(&str, bool)] = &[
        ("500", true),
        ("12.5", true),
        ("0.01", true),
        ("0.57", true),
        ("1.500", true),
        ("1e2", true),
        ("1.5E2", true),
        ("125e-2", true),
        ("999999999.99", true),
        ("1000000000", true),
        ("1000000000.00", true),
        ("0", false),
        ("0.0", false),
        ("-0", false),
        ("-5", false),
        ("0.001", false),
        ("12.345", false),
        ("1e-3", false),
        ("1000000000.01", false),
        ("1e10", false),
        ("1e9", true),
        ("1.00000001e9", false),
        (r#""12.50""#, true),
        (r#""5""#, true),
        (r#""0.01""#, true),
        (r#""0.10""#, true),
        (r#""00.05""#, true),
        (r#""007.10""#, true),
        (r#""1.500""#, true),
        (r#""999999999.99""#, true),
        (r#""1000000000""#, true),
        (r#""01000000000.0""#, true),
        (r#""0""#, false),
        (r#""0.00""#, false),
        (r#""-5.00""#, false),
        (r#""+5""#, false),
        (r#""0.001""#, false),
        (r#""12.345""#, false),
        (r#""1000000000.01""#, false),
        (r#""1000000001""#, false),
        (r#""10000000000""#, false),
        (r#""1e3""#, false),
        (r#""1E2""#, false),
        (r#""""#, false),
        (r#""ten""#, false),
        (r#"" 5""#, false),
        (r#""5.""#, false),
        (r#"".5""#, false),
        (r#""1,5""#, false),
    ];
    let (app, schema) = (app(), AmountSchema::of_document());
    for &(amount, allowed) in rows {
        assert_eq!(schema.allows(amount), allowed, "the document on {amount}");
        assert_eq!(router_accepts(&app, amount).await, allowed, "the router on {amount}");
    }
}

/// Every string over a few digits and the point up to 5 characters, and the strings around one billion:
/// the pattern and the router agree on each.
#[tokio::test]
async fn the_amount_pattern_matches_exactly_the_strings_recorded() {
    let alphabet = ['0', '1', '5', '9', '.'];
    let mut strings = vec![String::new()];
    let mut shorter = vec![String::new()];
    for _ in 0..5 {
        shorter = shorter.iter().flat_map(|prefix| alphabet.iter().map(move |c| format!("{prefix}{c}"))).collect();
        strings.extend(shorter.iter().cloned());
    }
    for integer in ["999999999", "0999999999", "1000000000", "01000000000", "1000000001", "9999999999"] {
        for fraction in ["", ".", ".0", ".00", ".000", ".01", ".1", ".10", ".99", ".990", ".999"] {
            strings.push(format!("{integer}{fraction}"));
        }
    }
    let (app, schema) = (app(), AmountSchema::of_document());
    let mut accepted = 0;
    for text in &strings {
        let amount = Value::from(text.as_str()).to_string();
        let allowed = schema.allows(&amount);
        assert_eq!(router_accepts(&app, &amount).await, allowed, "{amount}: the document allows it: {allowed}");
        accepted += usize::from(allowed);
    }
    assert!(accepted > 500, "{accepted} of {} strings are amounts", strings.len());
}
