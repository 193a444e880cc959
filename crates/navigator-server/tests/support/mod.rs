//! Test support: an in-process app on port 0 with a fresh data directory (SQLite database and blob
//! directory) per test, the deterministic test embedder, and the real parser sandbox (the
//! `navigator` binary built by cargo for this test run).

#![allow(dead_code)]

pub mod jwt;
pub mod process;

use navigator_server::app::{App, BuildOptions, Running};
use navigator_server::config;
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub struct TestApp {
    pub base: String,
    pub http: reqwest::Client,
    pub running: Option<Running>,
    pub data_dir: tempfile::TempDir,
    /// The app's own handles (store, blobs, pipeline), for checks behind the API.
    pub state: navigator_server::http::AppState,
}

/// A loopback port that was free a moment ago, for servers whose address must be known before
/// they start (a `server.public_url` that callbacks use).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/fixtures")
        .join(name)
}

/// The YAML every test app starts from; `extra` is appended (later keys win per YAML section is
/// not a thing, so pass whole sections only when the base omits them).
pub fn base_yaml(data_dir: &Path, embedder: &str) -> String {
    format!(
        "data_dir: {dir}\n\
         server:\n  listen: 127.0.0.1:0\n  max_upload_bytes: 2000000\n  shutdown_grace_secs: 5\n\
         embedder:\n  kind: {embedder}\n  batch_size: 16\n\
         workers:\n  concurrency: 2\n  lease_secs: 5\n  poll_interval_ms: 50\n  rescue_interval_secs: 1\n  retry:\n    base_secs: 1\n    cap_secs: 2\n    max_attempts: 3\n\
         log:\n  level: warn\n",
        dir = data_dir.display()
    )
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|yaml| yaml).await
}

pub async fn spawn_app_with(edit: impl FnOnce(String) -> String) -> TestApp {
    spawn_app_with_options(edit, sandbox_options()).await
}

/// The real parser sandbox: the `navigator` binary cargo built for this test run.
pub fn sandbox_options() -> BuildOptions {
    BuildOptions::with_sandbox_binary(PathBuf::from(env!("CARGO_BIN_EXE_navigator")))
}

/// Like [`spawn_app_with`], but the parser sandbox honours the parse crate's test hooks (documents
/// whose whole text is `__navigator_test_loop__` and friends misbehave on purpose). The child
/// runs with an empty environment, so the switch is set through `env(1)`, as in production
/// nothing ever sets it.
pub async fn spawn_app_with_poison_hooks(edit: impl FnOnce(String) -> String) -> TestApp {
    let options = BuildOptions {
        sandbox_command: Some((
            PathBuf::from("/usr/bin/env"),
            vec![
                "NAVIGATOR_PARSE_TEST_HOOKS=1".to_owned(),
                env!("CARGO_BIN_EXE_navigator").to_owned(),
                navigator_server::app::PARSE_SANDBOX_SUBCOMMAND.to_owned(),
            ],
        )),
    };
    spawn_app_with_options(edit, options).await
}

async fn spawn_app_with_options(
    edit: impl FnOnce(String) -> String,
    options: BuildOptions,
) -> TestApp {
    spawn_app_on(0, edit, options).await
}

/// Like [`spawn_app_with`], listening on `port` (0: any).
pub async fn spawn_app_on(
    port: u16,
    edit: impl FnOnce(String) -> String,
    options: BuildOptions,
) -> TestApp {
    let data_dir = tempfile::tempdir().expect("tempdir");
    let yaml = edit(base_yaml(data_dir.path(), "hash"));
    let path = data_dir.path().join("navigator.yaml");
    std::fs::write(&path, yaml).unwrap();
    let config = config::load(Some(&path), &env_for_tests()).expect("valid test config");
    let app = App::build(config, options).await.expect("app builds");
    let state = app.state.clone();
    let running = app
        .start(std::net::SocketAddr::from(([127, 0, 0, 1], port)), true)
        .await
        .expect("app starts");
    TestApp {
        base: format!("http://{}", running.addr),
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap(),
        running: Some(running),
        data_dir,
        state,
    }
}

/// Only what config loading needs from the environment (hermetic: no NAVIGATOR__ overrides leak in).
pub fn env_for_tests() -> HashMap<String, String> {
    std::env::vars()
        .filter(|(k, _)| k == "HOME" || k == "XDG_CACHE_HOME" || k == "NAVIGATOR_MODEL_DIR")
        .collect()
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn upload(&self, filename: &str, bytes: Vec<u8>) -> reqwest::Response {
        let part = reqwest::multipart::Part::bytes(bytes).file_name(filename.to_owned());
        let form = reqwest::multipart::Form::new().part("file", part);
        self.http
            .post(self.url("/v1/documents"))
            .multipart(form)
            .send()
            .await
            .unwrap()
    }

    /// Uploads and asserts 202; returns the JSON answer.
    pub async fn upload_ok(&self, filename: &str, bytes: Vec<u8>) -> Value {
        let response = self.upload(filename, bytes).await;
        assert_eq!(
            response.status(),
            202,
            "upload of a test document must be accepted"
        );
        response.json().await.unwrap()
    }

    pub async fn get_json(&self, path: &str) -> (u16, Value) {
        let r = self.http.get(self.url(path)).send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn search(&self, body: Value) -> (u16, Value) {
        let r = self
            .http
            .post(self.url("/v1/search"))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Polls the job until it is terminal (bounded), returning it.
    pub async fn wait_for_job(&self, job_id: &str) -> Value {
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        loop {
            let (status, job) = self.get_json(&format!("/v1/jobs/{job_id}")).await;
            assert_eq!(status, 200);
            let s = job["status"].as_str().unwrap_or("").to_owned();
            if matches!(s.as_str(), "complete" | "failed" | "cancelled") {
                return job;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "job {job_id} did not finish: {job}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn stop(mut self) {
        if let Some(r) = self.running.take() {
            r.stop().await.expect("clean shutdown");
        }
    }
}
