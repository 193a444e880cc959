//! Running the real `navigator` executable from tests: a child process whose address is read
//! from its first line of output, whose log lines are kept for assertions, and which is killed
//! on drop so a failing test leaves nothing behind.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_navigator");

/// A running `navigator serve`; killed on drop so a failing test leaves nothing behind.
pub struct Server {
    child: Child,
    pub base: String,
    log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Server {
    /// Runs `navigator serve --config CONFIG` and waits for its address.
    pub fn start(config: &Path, envs: &[(&str, &str)]) -> Server {
        Self::start_with_args(config, &["serve"], envs)
    }

    /// Runs `navigator ARGS… --config CONFIG`; for `serve` variants, waits for the address.
    pub fn start_with_args(config: &Path, args: &[&str], envs: &[(&str, &str)]) -> Server {
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .arg("--config")
            .arg(config)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env_remove("RUST_LOG");
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("navigator starts");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let base = if args.first() == Some(&"serve") {
            loop {
                let line = lines
                    .next()
                    .expect("navigator printed its address before exiting")
                    .unwrap();
                if let Some(rest) = line.strip_prefix("navigator listening on ") {
                    break rest.trim().to_owned();
                }
            }
        } else {
            String::new()
        };
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = log.clone();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        Server { child, base, log }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .args([sig, &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    pub fn wait_exit(&mut self, within: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "navigator did not exit in {within:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Everything the process printed after its address (stderr and stdout), in arrival order
    /// per stream.
    pub fn logs(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
