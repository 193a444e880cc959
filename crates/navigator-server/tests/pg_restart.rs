//! PostgreSQL goes away in the middle of a run and comes back: `/readyz` reports it, the API and
//! the workers recover by themselves, and nothing accepted is lost.
//!
//! This stops and starts the shared test cluster (`scripts/services.sh pg-stop|pg-start`), so it
//! lives in its own test binary: cargo runs test binaries one after another, never alongside.

mod support;

use navigator_testkit::docs;
use serde_json::Value;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use support::process::Server;

fn services(action: &str) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/services.sh");
    let status = Command::new("bash")
        .arg(script)
        .arg(action)
        .status()
        .unwrap();
    assert!(status.success(), "services.sh {action}");
}

async fn get(http: &reqwest::Client, url: &str) -> Option<(u16, Value)> {
    let r = http.get(url).send().await.ok()?;
    let status = r.status().as_u16();
    Some((status, r.json().await.unwrap_or(Value::Null)))
}

/// Polls `url` until `want(status)` holds, for at most `within`.
async fn wait_for_status(http: &reqwest::Client, url: &str, want: u16, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        if let Some((status, _)) = get(http, url).await
            && status == want
        {
            return;
        }
        assert!(Instant::now() < deadline, "{url} never answered {want}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_postgres_restart_mid_run_is_survived_and_readyz_reports_it() {
    let Some(admin) = navigator_store::conformance::postgres_admin_url() else {
        eprintln!("skipping: PostgreSQL not configured (scripts/services.sh start)");
        return;
    };
    let url = navigator_store::conformance::fresh_postgres_database(&admin).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("navigator.yaml");
    std::fs::write(
        &config,
        format!(
            "data_dir: {data}\n\
             server:\n  listen: 127.0.0.1:0\n  shutdown_grace_secs: 5\n\
             database:\n  url: {url}\n  pool:\n    acquire_timeout_secs: 2\n\
             embedder:\n  kind: hash\n\
             workers:\n  concurrency: 2\n  lease_secs: 3\n  poll_interval_ms: 100\n  rescue_interval_secs: 1\n  retry:\n    base_secs: 1\n    cap_secs: 2\n    max_attempts: 20\n\
             log:\n  level: warn\n",
            data = dir.path().join("data").display()
        ),
    )
    .unwrap();
    let server = Server::start(&config, &[]);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();

    let mut jobs = Vec::new();
    for seed in 0..12u64 {
        let form = reqwest::multipart::Form::new().part(
            "file",
            reqwest::multipart::Part::bytes(docs::pdf(&docs::insurance_policy_pages(20, seed)))
                .file_name(format!("p{seed}.pdf")),
        );
        let r = http
            .post(server.url("/v1/documents"))
            .multipart(form)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
        let body: Value = r.json().await.unwrap();
        jobs.push(body["job_id"].as_str().unwrap().to_owned());
    }

    // The database goes away while the jobs are being processed.
    services("pg-stop");
    wait_for_status(&http, &server.url("/readyz"), 503, Duration::from_secs(30)).await;
    let (_, ready) = get(&http, &server.url("/readyz")).await.unwrap();
    assert_eq!(ready["checks"]["database"], false, "{ready}");
    // The process keeps serving what does not need the database.
    let (health, _) = get(&http, &server.url("/healthz")).await.unwrap();
    assert_eq!(health, 200);
    let (status, problem) = get(&http, &server.url("/v1/documents")).await.unwrap();
    assert_eq!(status, 503, "{problem}");
    assert_eq!(problem["code"], "service_unavailable");

    // It comes back; nobody restarts navigator.
    services("pg-start");
    wait_for_status(&http, &server.url("/readyz"), 200, Duration::from_secs(60)).await;
    let deadline = Instant::now() + Duration::from_secs(180);
    for id in &jobs {
        loop {
            let job = get(&http, &server.url(&format!("/v1/jobs/{id}")))
                .await
                .map(|(_, j)| j)
                .unwrap_or(Value::Null);
            match job["status"].as_str() {
                Some("complete") => break,
                Some("failed" | "cancelled") => panic!("job {id} did not survive: {job}"),
                _ => {}
            }
            assert!(Instant::now() < deadline, "job {id} did not finish: {job}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let (_, list) = get(&http, &server.url("/v1/documents?limit=100"))
        .await
        .unwrap();
    assert_eq!(
        list["items"].as_array().unwrap().len(),
        12,
        "nothing accepted was lost"
    );
    assert!(
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["status"] == "ready" && d["chunks"].as_u64().unwrap() > 0),
        "{list}"
    );
}
