//! The service on a real PostgreSQL: persistence across restarts, several instances on one database, and
//! an outage of the database while the process runs. The tests that read the logs run the binary.

mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::clients::{balance_at, history_ids_at};
use support::{TestApp, spawn_app, start_app};
use testkit::postgres::{Lifetime, LocalServer, create_database, fresh_database, unavailable};

fn on_database(url: &str) -> TestApp {
    spawn_app(&[], &[("DATABASE_URL", url)])
}

async fn add<R>(app: &TestApp<R>, user: &str, amount: Value, key: &str) -> reqwest::Response {
    app.client
        .post(app.url(&format!("/users/{user}/add")))
        .header("idempotency-key", key)
        .json(&json!({"amount": amount}))
        .send()
        .await
        .expect("the instance answers")
}

async fn balance<R>(app: &TestApp<R>, user: &str) -> String {
    balance_at(&app.client, &app.url(""), user).await
}

async fn history_length<R>(app: &TestApp<R>, user: &str) -> usize {
    history_ids_at(&app.client, &app.url(""), user).await.len()
}

#[tokio::test]
async fn balances_survive_a_restart_of_the_service() {
    let Some(database) = fresh_database().await else { return };
    let first = on_database(&database.url);
    assert_eq!(add(&first, "gopal", json!("12.34"), "k1").await.status(), 200);
    assert!(first.logs().iter().any(|line| line.contains("PostgreSQL reachable and migrated")));
    drop(first);

    let second = on_database(&database.url);
    assert_eq!(balance(&second, "gopal").await, "12.34");
    let replay = add(&second, "gopal", json!("12.34"), "k1").await;
    assert_eq!(replay.headers()["idempotent-replayed"], "true", "keys outlive the process that recorded them");
    assert_eq!(balance(&second, "gopal").await, "12.34");
}

#[tokio::test]
async fn two_instances_on_one_database_never_count_a_key_twice() {
    let Some(database) = fresh_database().await else { return };
    // Two instances in one process share no state but the database: pools, group commit and runtimes are
    // their own, and exactly-once rests on the database's constraint alone.
    let instances = [0, 1].map(|_| start_app(&["--database-url", &database.url]));
    let requests: Vec<_> = (0..60)
        .map(|n| {
            let instance = &instances[n % 2];
            // Every key is sent three times, to both instances, all at once.
            let request = instance
                .client
                .post(instance.url("/users/shared/add"))
                .header("idempotency-key", format!("transfer-{}", n % 20))
                .json(&json!({"amount": "1.25"}));
            tokio::spawn(request.send())
        })
        .collect();
    for request in requests {
        let response = request.await.expect("the task ran").expect("the instance answers");
        assert_eq!(response.status(), 200);
    }
    assert_eq!(balance(&instances[0], "shared").await, "25.00", "20 distinct keys of 1.25");
    assert_eq!(balance(&instances[1], "shared").await, "25.00");
    assert_eq!(history_length(&instances[1], "shared").await, 20, "one transaction per key");
}

#[tokio::test]
async fn an_outage_of_postgres_is_503_within_seconds_and_heals_without_a_restart() {
    let mut server = match LocalServer::start(Lifetime::UntilDropped) {
        Ok(server) => server,
        Err(why) => return unavailable::<()>(&why).unwrap_or(()),
    };
    let database = create_database(&server.admin_url()).await;
    // trust authentication ignores the password; it is here to show that it never reaches a log line.
    let url = database.url.replace("postgres@", "postgres:never-log-this-password@");
    let app = spawn_app(
        &["--pg-acquire-timeout-ms", "1000", "--store-timeout-ms", "3000"],
        &[("DATABASE_URL", url.as_str())],
    );
    assert_eq!(add(&app, "gopal", json!(10), "before-outage").await.status(), 200);

    server.stop();
    let started = Instant::now();
    let refused = add(&app, "gopal", json!(5), "during-outage").await;
    assert_eq!(refused.status(), 503);
    assert!(refused.headers().contains_key("retry-after"));
    let problem: Value = refused.json().await.expect("a problem document");
    assert_eq!(problem["type"], "/problems/storage-unavailable");
    assert!(started.elapsed() < Duration::from_secs(5), "503 took {:?}", started.elapsed());
    let readiness = app.client.get(app.url("/readyz")).send().await.expect("readyz answers");
    assert_eq!(readiness.status(), 503);

    server.restart().expect("postgres starts again");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let retried = add(&app, "gopal", json!(5), "during-outage").await;
        if retried.status() == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "the pool did not recover within 30 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(balance(&app, "gopal").await, "15.00", "the retried add counted once");
    assert_eq!(app.client.get(app.url("/readyz")).send().await.expect("answers").status(), 200);
    let leaked: Vec<String> = app.logs().into_iter().filter(|line| line.contains("never-log-this-password")).collect();
    assert!(leaked.is_empty(), "the password reached the log: {leaked:?}");
}

#[tokio::test]
async fn at_start_up_the_service_waits_for_postgres_and_says_so() {
    let mut server = match LocalServer::start(Lifetime::UntilDropped) {
        Ok(server) => server,
        Err(why) => return unavailable::<()>(&why).unwrap_or(()),
    };
    let database = create_database(&server.admin_url()).await;
    server.stop();
    let starter = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(2));
        server.restart().expect("postgres starts");
        server
    });
    let app = on_database(&database.url);
    let _server = starter.join().expect("the starter thread ran");
    assert!(
        app.logs().iter().any(|line| line.contains("PostgreSQL not reachable yet")),
        "the wait is logged: {:?}",
        app.logs()
    );
    assert_eq!(add(&app, "gopal", json!(1), "k").await.status(), 200);
}
