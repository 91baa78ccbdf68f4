//! `GET /docs` in a real browser: headless Chromium loads the page from the service, runs its script, and
//! renders the operations of the instance's document. Every host but the instance's is unresolvable for the
//! browser, so the page is shown to work with no internet access.

mod support;

use std::io::Write as _;
use std::path::PathBuf;
use std::process::Command;

use support::start_app;

/// The ledger's operations, as Swagger UI renders them: the block's id (tag and operation id), the method
/// and the path.
const OPERATIONS: [(&str, &str, &str); 3] = [
    ("operations-ledger-add", "POST", "/users/{uid}/add"),
    ("operations-ledger-balance", "GET", "/users/{uid}/balance"),
    ("operations-ledger-history", "GET", "/users/{uid}/history"),
];

/// What the test does without Chromium: fail in CI, say so and skip elsewhere.
fn chromium_unavailable(why: &str) {
    assert!(std::env::var("CI").as_deref() != Ok("true"), "CI=true and no Chromium for the docs page test: {why}");
    // Past the test harness's capture, so that a skip shows in `cargo test` output.
    let _ =
        writeln!(std::io::stderr(), "SKIPPED: no Chromium for the docs page test ({why}); apt-get install chromium");
}

/// A profile directory of its own for one browser run, removed when dropped.
struct Profile(PathBuf);

impl Profile {
    fn new(name: &str) -> Self {
        let path = std::env::temp_dir().join(format!("bitburst-chromium-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("a temporary profile directory");
        Self(path)
    }
}

impl Drop for Profile {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The DOM of `url` once the page's script has run, as headless Chromium dumps it.
fn rendered_dom(url: &str, profile: &Profile) -> String {
    let output = Command::new("timeout")
        .args(["120", "chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run"])
        .args(["--disable-background-networking", "--disable-component-update", "--disable-sync"])
        // Any host but the instance's fails to resolve: an asset fetched from elsewhere would not load.
        .arg("--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1")
        .arg(format!("--user-data-dir={}", profile.0.display()))
        .args(["--virtual-time-budget=10000", "--dump-dom", url])
        .output()
        .expect("timeout and chromium can be run");
    let dom = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "chromium failed on {url}: {}", String::from_utf8_lossy(&output.stderr));
    dom
}

#[test]
fn the_docs_page_renders_the_ledger_operations_in_a_browser() {
    match Command::new("chromium").arg("--version").output() {
        Ok(output) if output.status.success() => {}
        Ok(output) => return chromium_unavailable(&String::from_utf8_lossy(&output.stderr)),
        Err(error) => return chromium_unavailable(&error.to_string()),
    }
    // With API keys the page and its document stay open, and the page offers to authorize.
    for (name, args, authorize) in [("open", vec![], false), ("keys", vec!["--api-keys", "docs-key"], true)] {
        let app = start_app(&args);
        let profile = Profile::new(name);
        let dom = rendered_dom(&app.url("/docs"), &profile);
        assert!(dom.contains(r#"<div id="swagger-ui">"#), "{name}: not the docs page:\n{dom}");
        for (id, method, path) in OPERATIONS {
            let block = dom
                .split(&format!(r#"id="{id}""#))
                .nth(1)
                .unwrap_or_else(|| panic!("{name}: {method} {path} is not rendered (no element {id}):\n{dom}"));
            let summary = block.split("</button>").next().unwrap_or_default();
            assert!(summary.contains(&format!(r#"<span class="opblock-summary-method">{method}</span>"#)), "{summary}");
            assert!(summary.contains(&format!(r#"data-path="{path}""#)), "{name}: {summary}");
        }
        assert_eq!(dom.contains(r#"class="btn authorize"#), authorize, "{name}: the Authorize button");
    }
}
