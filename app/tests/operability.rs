//! What operators rely on: API keys, rate limits, metrics, structured logs, and the documented
//! configuration. What shows in the logs or counts in the process-wide metrics is asserted against the
//! real binary, one process per test; the rest runs in the test process.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{Value, json};
use support::{spawn_app, start_app};

const KEY: &str = "test-key-4f8a1c";

async fn add_with(app: &support::TestApp, authorization: Option<&str>) -> reqwest::Response {
    let mut request = app.client.post(app.url("/users/gopal/add")).json(&json!({"amount": 1}));
    if let Some(authorization) = authorization {
        request = request.header("authorization", authorization);
    }
    request.send().await.expect("the service answers")
}

#[tokio::test]
async fn with_api_keys_a_request_needs_a_valid_bearer_key() {
    let keys_file = std::env::temp_dir().join(format!("bitburst-keys-{}", std::process::id()));
    std::fs::write(&keys_file, format!("\n{KEY}\nanother-key\n")).expect("the keys file is written");
    let app = spawn_app(&[], &[("BITBURST_API_KEYS_FILE", keys_file.to_str().expect("UTF-8 path"))]);

    let missing = add_with(&app, None).await;
    assert_eq!(missing.status(), 401);
    assert_eq!(missing.headers()["www-authenticate"], r#"Bearer realm="bitburst""#);
    assert_eq!(missing.headers()["content-type"], "application/problem+json");
    let problem: Value = missing.json().await.expect("a problem document");
    assert_eq!(problem["type"], "/problems/unauthorized");

    let wrong = add_with(&app, Some("Bearer not-the-key")).await;
    assert_eq!(wrong.status(), 401);
    assert!(wrong.headers()["www-authenticate"].to_str().expect("ASCII").contains("invalid_token"));

    let accepted = add_with(&app, Some(&format!("Bearer {KEY}"))).await;
    assert_eq!(accepted.status(), 200);
    let balance = app
        .client
        .get(app.url("/users/gopal/balance"))
        .header("authorization", "bearer another-key")
        .send()
        .await
        .expect("answers");
    assert_eq!(balance.status(), 200, "the scheme is case-insensitive and every key of the file works");

    for open in ["/healthz", "/readyz", "/metrics"] {
        let response = app.client.get(app.url(open)).send().await.expect("answers");
        assert_eq!(response.status(), 200, "{open} stays open");
    }
    let logs = app.logs().join("\n");
    assert!(!logs.contains(KEY) && !logs.contains("another-key"), "a key reached the log");
    assert!(!logs.contains("anyone who can reach"), "no warning when keys are configured");
    let _ = std::fs::remove_file(keys_file);
}

#[tokio::test]
async fn without_api_keys_the_service_warns_that_anyone_can_add_money() {
    let app = spawn_app(&[], &[]);
    assert_eq!(add_with(&app, None).await.status(), 200);
    assert!(app.logs().iter().any(|line| line.contains("anyone who can reach this service can add money")));
}

#[tokio::test]
async fn metrics_can_require_a_key_of_their_own_setting() {
    let app = start_app(&["--metrics-require-key", "--api-keys", KEY]);
    assert_eq!(app.client.get(app.url("/metrics")).send().await.expect("answers").status(), 401);
    let with_key = app.client.get(app.url("/metrics")).bearer_auth(KEY).send().await.expect("answers");
    assert_eq!(with_key.status(), 200);
    assert_eq!(app.client.get(app.url("/healthz")).send().await.expect("answers").status(), 200);
}

#[tokio::test]
async fn past_the_rate_limit_a_client_gets_429_with_retry_after() {
    let app = start_app(&["--rate-limit-per-second", "1", "--rate-limit-burst", "3"]);
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let response = app.client.get(app.url("/users/gopal/balance")).send().await.expect("answers");
        statuses.push(response.status().as_u16());
        if response.status() == 429 {
            assert_eq!(response.headers()["retry-after"], "1");
            let problem: Value = response.json().await.expect("a problem document");
            assert_eq!(problem["type"], "/problems/rate-limited");
        }
    }
    assert_eq!(statuses, [200, 200, 200, 429, 429]);
    assert_eq!(
        app.client.get(app.url("/healthz")).send().await.expect("answers").status(),
        200,
        "probes are not limited"
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let later = app.client.get(app.url("/users/gopal/balance")).send().await.expect("answers");
    assert_eq!(later.status(), 200, "a token comes back after a second");
}

/// The sum of a counter's series that carry every one of `labels`.
fn metric_value(scrape: &str, name: &str, labels: &[&str]) -> u64 {
    scrape
        .lines()
        .filter(|line| line.starts_with(name) && labels.iter().all(|label| line.contains(label)))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

// The binary: in the test process, the requests of the other tests would count in the same recorder.
#[tokio::test]
async fn a_prometheus_scrape_shows_the_figures_change_as_requests_are_made() {
    let app = spawn_app(&[], &[]);
    let scrape =
        || async { app.client.get(app.url("/metrics")).send().await.expect("answers").text().await.expect("text") };
    let before = scrape().await;
    let key = [("idempotency-key", "metrics-1")];
    for _ in 0..2 {
        let mut request = app.client.post(app.url("/users/gopal/add")).json(&json!({"amount": 2}));
        for (name, value) in key {
            request = request.header(name, value);
        }
        assert_eq!(request.send().await.expect("answers").status(), 200);
    }
    let conflict = app
        .client
        .post(app.url("/users/gopal/add"))
        .header("idempotency-key", "metrics-1")
        .json(&json!({"amount": 3}))
        .send()
        .await
        .expect("answers");
    assert_eq!(conflict.status(), 422);
    let after = scrape().await;

    let add_route = r#"route="/users/{uid}/add""#;
    let requests_200 = |text: &str| metric_value(text, "bitburst_http_requests_total", &[add_route, r#"status="200""#]);
    assert_eq!(requests_200(&after) - requests_200(&before), 2, "{after}");
    let applied = |text: &str| metric_value(text, "bitburst_adds_total", &[r#"outcome="applied""#]);
    let replayed = |text: &str| metric_value(text, "bitburst_adds_total", &[r#"outcome="replayed""#]);
    assert_eq!(applied(&after) - applied(&before), 1);
    assert_eq!(replayed(&after) - replayed(&before), 1);
    let conflicts =
        |text: &str| metric_value(text, "bitburst_add_refusals_total", &[r#"reason="idempotency_key_reused""#]);
    assert_eq!(conflicts(&after) - conflicts(&before), 1);
    assert!(after.contains("bitburst_http_request_duration_seconds_bucket"), "latency is a histogram");
    assert!(!after.contains("gopal"), "user ids never become labels");
}

#[tokio::test]
async fn json_logs_carry_the_request_id_and_user_id_on_every_line_of_a_request() {
    let app = spawn_app(
        &["--log-format", "json"],
        &[("RUST_LOG", "info,bitburst=debug,application=debug,adapters_http=debug,tower_http=debug")],
    );
    let response = app
        .client
        .post(app.url("/users/trace-me/add"))
        .header("x-request-id", "req-7f3e")
        .json(&json!({"amount": 1}))
        .send()
        .await
        .expect("answers");
    assert_eq!(response.status(), 200);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let lines: Vec<Value> =
        app.logs().iter().map(|line| serde_json::from_str(line).expect("every line is JSON")).collect();
    let of_request: Vec<&Value> = lines.iter().filter(|line| line.to_string().contains("req-7f3e")).collect();
    assert!(!of_request.is_empty(), "the request logged lines: {lines:?}");
    for line in of_request {
        // `spans` lists every span the line was logged in, outermost first: the request span is there.
        let spans = line["spans"].as_array().expect("the spans of the line");
        let field = |name: &str| spans.iter().find_map(|span| span[name].as_str()).unwrap_or_default().to_owned();
        assert_eq!(field("request_id"), "req-7f3e", "{line}");
        assert_eq!(field("user_id"), "trace-me", "{line}");
    }
}

/// Every `--flag` of `bitburst --help`, and every flag in the README's configuration table.
#[test]
fn the_readme_configuration_table_lists_exactly_the_flags_of_help() {
    let help = std::process::Command::new(env!("CARGO_BIN_EXE_bitburst")).arg("--help").output().expect("help runs");
    let help = String::from_utf8(help.stdout).expect("UTF-8 help");
    let flags_in = |text: &str, line_filter: &dyn Fn(&str) -> bool| -> BTreeSet<String> {
        text.lines()
            .filter(|line| line_filter(line))
            .flat_map(|line| line.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-')))
            .filter(|word| word.starts_with("--") && word.len() > 2)
            .map(str::to_owned)
            .collect()
    };
    let mut from_help = flags_in(&help, &|line| line.trim_start().starts_with('-'));
    from_help.remove("--help");
    from_help.remove("--version");
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).expect("README");
    let table = readme.split("## Configuration").nth(1).and_then(|rest| rest.split("\n## ").next()).expect("a section");
    let from_readme = flags_in(table, &|line| line.starts_with("| `--"));
    assert_eq!(from_readme, from_help, "README configuration table vs bitburst --help");
    for env in help.lines().filter_map(|line| line.split("[env: ").nth(1)?.split(['=', ']']).next()) {
        assert!(table.contains(&format!("`{env}`")), "{env} is documented in the README");
    }
}

#[tokio::test]
async fn a_scrape_shows_the_process_memory_and_descriptors_as_prometheus_users_expect() {
    let app = spawn_app(&[], &[]);
    let scrape = app.client.get(app.url("/metrics")).send().await.expect("answers").text().await.expect("text");
    let gauge = |name: &str| -> f64 {
        scrape
            .lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("{name} is on /metrics:\n{scrape}"))
    };
    // A running service holds at least a megabyte and its listener, its log pipes and a connection.
    assert!(gauge("process_resident_memory_bytes") > 1_048_576.0, "{scrape}");
    assert!(gauge("process_virtual_memory_bytes") >= gauge("process_resident_memory_bytes"), "{scrape}");
    assert!(gauge("process_open_fds") >= 4.0, "{scrape}");
    assert!(gauge("process_max_fds") >= gauge("process_open_fds"), "{scrape}");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("after 1970").as_secs_f64();
    let started = gauge("process_start_time_seconds");
    assert!(started <= now && started > now - 120.0, "started {started}, now {now}");
    assert!(scrape.contains("process_cpu_seconds_total "), "{scrape}");
}
