//! What both mocks share: a listener whose connections a handler can drop without answering, the
//! server lifecycle (spawn, graceful stop), the `/health` and `/_mock/*` control routes, partial
//! knob updates, fault-rate validation and the seeded RNG.

use axum::extract::State;
use axum::extract::connect_info::Connected;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::{IncomingStream, Listener};
use axum::{Json, Router};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The seed both mocks use unless told otherwise (`--seed`): runs are reproducible by default.
pub const DEFAULT_SEED: u64 = 0x6e61_7669_6761_746f;

/// How long [`Running::stop`] waits for open connections to finish before aborting the server.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// Locks a mutex, ignoring poisoning (a panicking handler must not wedge the mock).
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The seeded RNG every fault draw comes from, behind a mutex so runs are reproducible (for a
/// given order of requests).
pub(crate) struct Dice(Mutex<StdRng>);

impl Dice {
    pub(crate) fn new(seed: u64) -> Self {
        Self(Mutex::new(StdRng::seed_from_u64(seed)))
    }

    pub(crate) fn reseed(&self, seed: u64) {
        *lock(&self.0) = StdRng::seed_from_u64(seed);
    }

    /// Uniform in `[0, 1)`: `draw() < rate` is true always at rate 1.0 and never at 0.0.
    pub(crate) fn draw(&self) -> f64 {
        lock(&self.0).random::<f64>()
    }

    /// Uniform in `0..=max`.
    pub(crate) fn up_to(&self, max: u64) -> u64 {
        if max == 0 {
            0
        } else {
            lock(&self.0).random_range(0..=max)
        }
    }
}

/// Checks a fault rate: finite and within `[0, 1]`.
pub(crate) fn check_rate(name: &str, rate: f64) -> Result<(), String> {
    if rate.is_finite() && (0.0..=1.0).contains(&rate) {
        Ok(())
    } else {
        Err(format!(
            "{name} must be a probability in [0, 1], got {rate}"
        ))
    }
}

/// clap value parser for a probability.
pub(crate) fn parse_rate(text: &str) -> Result<f64, String> {
    let rate: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a number"))?;
    check_rate("a rate", rate)?;
    Ok(rate)
}

/// `current` with the top-level fields of `patch` replaced (a field set to `null` takes its
/// `null`/default meaning). Unknown fields are refused, as knob structs deny them.
pub(crate) fn merge_knobs<K: Serialize + DeserializeOwned>(
    current: &K,
    patch: &Value,
) -> Result<K, String> {
    let Value::Object(patch) = patch else {
        return Err("the config update must be a JSON object of knobs".to_owned());
    };
    let mut merged = serde_json::to_value(current).map_err(|e| e.to_string())?;
    let Some(fields) = merged.as_object_mut() else {
        return Err("knobs do not serialise to an object".to_owned());
    };
    for (name, value) in patch {
        fields.insert(name.clone(), value.clone());
    }
    serde_json::from_value(merged).map_err(|e| e.to_string())
}

/// What the `/_mock/*` routes need from a mock's state.
pub(crate) trait Control: Send + Sync + 'static {
    fn stats_json(&self) -> Value;
    fn knobs_json(&self) -> Value;
    /// Applies a partial knob update at once; returns the new knobs or why it was refused.
    fn configure(&self, patch: &Value) -> Result<Value, String>;
    /// Zeroes the counters.
    fn reset(&self);
}

/// `GET /health`, `GET /_mock/stats`, `GET|POST /_mock/config`, `POST /_mock/reset`.
pub(crate) fn control_routes<S: Control>() -> Router<Arc<S>> {
    Router::new()
        .route("/health", get(health))
        .route("/_mock/stats", get(stats::<S>))
        .route("/_mock/config", get(config::<S>).post(configure::<S>))
        .route("/_mock/reset", post(reset::<S>))
}

async fn health() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

async fn stats<S: Control>(State(state): State<Arc<S>>) -> Json<Value> {
    Json(state.stats_json())
}

async fn config<S: Control>(State(state): State<Arc<S>>) -> Json<Value> {
    Json(state.knobs_json())
}

async fn configure<S: Control>(State(state): State<Arc<S>>, body: axum::body::Bytes) -> Response {
    let patch: Value = match serde_json::from_slice(&body) {
        Ok(patch) => patch,
        Err(e) => return control_error(format!("invalid JSON: {e}")),
    };
    match state.configure(&patch) {
        Ok(knobs) => Json(knobs).into_response(),
        Err(message) => control_error(message),
    }
}

async fn reset<S: Control>(State(state): State<Arc<S>>) -> Json<Value> {
    state.reset();
    Json(state.stats_json())
}

fn control_error(message: String) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({"error": message}))).into_response()
}

/// A handle on one accepted connection, given to handlers as `ConnectInfo<Conn>`:
/// [`Conn::drop_connection`] makes the connection fail its next read or write, so the server
/// closes it without sending the response the handler returns.
#[derive(Clone, Debug)]
pub(crate) struct Conn {
    kill: Arc<AtomicBool>,
}

impl Conn {
    pub(crate) fn drop_connection(&self) {
        self.kill.store(true, Ordering::SeqCst);
    }
}

impl Connected<IncomingStream<'_, DroppableListener>> for Conn {
    fn connect_info(stream: IncomingStream<'_, DroppableListener>) -> Self {
        stream.io().conn.clone()
    }
}

pub(crate) struct DroppableListener(TcpListener);

impl Listener for DroppableListener {
    type Io = DroppableStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        // axum's own accept loop (it retries and backs off on accept errors).
        let (stream, remote) = Listener::accept(&mut self.0).await;
        let _ = stream.set_nodelay(true);
        let conn = Conn {
            kill: Arc::new(AtomicBool::new(false)),
        };
        (
            DroppableStream {
                inner: stream,
                conn,
            },
            remote,
        )
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.0.local_addr()
    }
}

pub(crate) struct DroppableStream {
    inner: TcpStream,
    conn: Conn,
}

impl DroppableStream {
    fn killed(&self) -> Option<io::Error> {
        self.conn.kill.load(Ordering::SeqCst).then(|| {
            io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "connection dropped by the mock",
            )
        })
    }
}

impl AsyncRead for DroppableStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(e) = this.killed() {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for DroppableStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Some(e) = this.killed() {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Some(e) = this.killed() {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut this.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(e) = this.killed() {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// A running mock server. Dropping it stops the server (without waiting).
pub(crate) struct Running {
    addr: SocketAddr,
    cancel: CancellationToken,
    task: Option<JoinHandle<io::Result<()>>>,
}

impl Running {
    /// Serves `router` on `listener` until `cancel` fires (or [`Running::stop`]). Handlers get
    /// `ConnectInfo<Conn>`; long waits in them should also watch `cancel`.
    pub(crate) fn spawn(
        listener: TcpListener,
        router: Router,
        cancel: CancellationToken,
    ) -> io::Result<Self> {
        let addr = listener.local_addr()?;
        let app = router.into_make_service_with_connect_info::<Conn>();
        let signal = cancel.clone();
        let task = tokio::spawn(async move {
            axum::serve(DroppableListener(listener), app)
                .with_graceful_shutdown(async move { signal.cancelled().await })
                .await
        });
        Ok(Self {
            addr,
            cancel,
            task: Some(task),
        })
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, lets open requests finish (hanging ones are cut short) and waits up to
    /// a few seconds for the server to wind down.
    pub(crate) async fn stop(mut self) -> anyhow::Result<()> {
        self.cancel.cancel();
        let Some(mut task) = self.task.take() else {
            return Ok(());
        };
        match tokio::time::timeout(STOP_GRACE, &mut task).await {
            Ok(joined) => Ok(joined??),
            Err(_) => {
                task.abort();
                Ok(())
            }
        }
    }

    /// Runs until `shutdown` completes (then stops gracefully) or the server fails.
    pub(crate) async fn run_until(
        mut self,
        shutdown: impl Future<Output = ()> + Send,
    ) -> anyhow::Result<()> {
        let Some(task) = self.task.as_mut() else {
            return Ok(());
        };
        tokio::select! {
            () = shutdown => self.stop().await,
            joined = task => {
                self.task = None;
                joined??;
                anyhow::bail!("the mock server stopped unexpectedly")
            }
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// Sleeps `duration` unless `cancel` fires first; returns whether it slept the whole time.
pub(crate) async fn sleep_unless_cancelled(duration: Duration, cancel: &CancellationToken) -> bool {
    if duration.is_zero() {
        return !cancel.is_cancelled();
    }
    tokio::select! {
        () = tokio::time::sleep(duration) => true,
        () = cancel.cancelled() => false,
    }
}

/// `Authorization: Bearer {key}` matches `expected` (constant-time in the key's bytes).
pub(crate) fn bearer_matches(headers: &axum::http::HeaderMap, expected: &str) -> bool {
    let Some(given) = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
    else {
        return false;
    };
    let (given, expected) = (given.trim().as_bytes(), expected.as_bytes());
    given.len() == expected.len()
        && given
            .iter()
            .zip(expected)
            .fold(0_u8, |diff, (a, b)| diff | (a ^ b))
            == 0
}

/// Seconds since the Unix epoch.
pub(crate) fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
