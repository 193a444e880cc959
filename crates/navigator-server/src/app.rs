//! Startup and shutdown: builds every component from a validated [`Config`], serves the API,
//! runs workers and maintenance, and drains gracefully on SIGTERM/SIGINT.
//!
//! [`App::build`] is what `main` and the tests both call (tests bind port 0 and read the real
//! address back from [`Running::addr`]).

use crate::config::{AuthMode, BlobLocation, Config, DatabaseKind, EmbedderKind, ParserKind};
use crate::http::{self, ApiLimits, AppState};
use anyhow::{Context, bail};
use navigator_domain::{Clock, SystemClock};
use navigator_embed::Embedder;
use navigator_parse::sandbox::SandboxLimits;
use navigator_pipeline::blob::Blobs;
use navigator_pipeline::chunk::ChunkerConfig;
use navigator_pipeline::remote::{Callbacks, RemoteParsing};
use navigator_pipeline::usage::{Price, PriceTable, UsagePolicy, usd_to_micro};
use navigator_pipeline::worker::{ParserRunner, Pipeline, Worker, WorkerSettings};
use navigator_store::Store;
use navigator_store::sqlite::SqliteStore;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// The hidden subcommand that runs a parser in a sandboxed child process.
pub const PARSE_SANDBOX_SUBCOMMAND: &str = "__parse-sandbox";

/// Options that are not configuration: how this process was started.
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// The command that runs one parse in the sandbox (program and arguments). Defaults to this
    /// executable's hidden `__parse-sandbox` subcommand; tests that embed the app point it at the
    /// `navigator` binary cargo built.
    pub sandbox_command: Option<(PathBuf, Vec<String>)>,
}

impl BuildOptions {
    /// Runs the sandbox as `program __parse-sandbox`.
    pub fn with_sandbox_binary(program: PathBuf) -> Self {
        Self {
            sandbox_command: Some((program, vec![PARSE_SANDBOX_SUBCOMMAND.to_owned()])),
        }
    }
}

/// Everything built from the config; shared by `serve`, `worker`, `ingest` and `search`.
pub struct App {
    pub config: Config,
    pub state: AppState,
    pub pipeline: Arc<Pipeline>,
}

impl App {
    pub async fn build(config: Config, options: BuildOptions) -> anyhow::Result<App> {
        check_supported(&config)?;
        // First, so that components built below can register their metrics (the breaker gauges).
        let metrics = crate::telemetry::prometheus();
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let store = open_store(&config).await?;
        store
            .migrate()
            .await
            .context("could not apply database migrations")?;
        let blobs = {
            use navigator_pipeline::blob::{BlobLocation as StoreLocation, S3Settings};
            let location = match config.blob_location() {
                BlobLocation::File(dir) => StoreLocation::File(dir),
                BlobLocation::S3 { bucket, prefix } => StoreLocation::S3 { bucket, prefix },
            };
            let s3 = &config.blobs.s3;
            let settings = S3Settings {
                endpoint: s3.endpoint.clone(),
                region: s3.region.clone(),
                access_key_id: s3.access_key_id.clone(),
                secret_access_key: s3.secret_access_key.as_ref().map(|s| s.expose().to_owned()),
                allow_http: s3.allow_http,
            };
            Blobs::from_location(&location, &settings).context("could not open the blob store")?
        };
        let embedder = build_embedder(&config).await?;
        let upload_dir = config.data_dir.join("tmp");
        std::fs::create_dir_all(&upload_dir)
            .with_context(|| format!("could not create {}", upload_dir.display()))?;
        let wake = Arc::new(Notify::new());
        // On PostgreSQL, work enqueued by any process wakes this process's idle workers at once.
        if store
            .listen_for_work(wake.clone())
            .await
            .context("could not listen for work notifications")?
        {
            tracing::info!("listening for work notifications");
        }
        let shutdown = CancellationToken::new();

        let parser = if config.parser.kind == ParserKind::Llamaparse {
            ParserRunner::Remote(Arc::new(build_remote_parser(&config)?))
        } else if config.parser.sandbox {
            let (program, args) = match options.sandbox_command {
                Some(command) => command,
                None => (
                    std::env::current_exe().context("cannot find the navigator executable")?,
                    vec![PARSE_SANDBOX_SUBCOMMAND.to_owned()],
                ),
            };
            ParserRunner::Sandbox {
                program,
                args,
                limits: SandboxLimits {
                    timeout: config.parser.timeout(),
                    memory_bytes: config.parser.memory_limit_bytes(),
                },
            }
        } else {
            ParserRunner::InProcess {
                timeout: config.parser.timeout(),
            }
        };
        let workers = &config.workers;
        let pipeline = Arc::new(Pipeline {
            store: store.clone(),
            blobs: blobs.clone(),
            embedder: embedder.clone(),
            parser,
            chunker: ChunkerConfig {
                max_tokens: config.chunker.max_tokens as usize,
                target_tokens: config.chunker.target_tokens as usize,
                overlap_ratio: config.chunker.overlap_ratio as f32,
            },
            clock: clock.clone(),
            settings: WorkerSettings {
                lease: workers.lease(),
                poll_interval: workers.poll_interval(),
                retry: workers.retry.policy(),
                embed_round: navigator_pipeline::worker::DEFAULT_EMBED_ROUND,
                shutdown_grace: config.server.shutdown_grace(),
                shared_parse_cache: config.parser.share_cache_across_owners,
            },
            usage: usage_policy(&config),
            wake: wake.clone(),
        });
        let state = AppState {
            store,
            blobs,
            embedder,
            clock,
            limits: ApiLimits {
                max_upload_bytes: config.server.max_upload_bytes,
                search_default_limit: config.search.default_limit,
                search_max_limit: config.search.max_limit,
                rrf_k: config.search.rrf_k,
                request_timeout: config.server.request_timeout(),
            },
            metrics,
            upload_dir,
            wake,
            shutdown,
            pipeline: pipeline.clone(),
        };
        Ok(App {
            config,
            state,
            pipeline,
        })
    }

    /// Spawns `concurrency` workers and the rescuer onto `tasks`.
    pub fn spawn_workers(&self, tasks: &mut JoinSet<()>) {
        // Host and pid name the process for operators; the random part keeps two processes
        // apart even when both are pid 1 in containers with the same hostname, since lease
        // ownership is checked by this id.
        let process = format!(
            "{}-{}-{}",
            hostname(),
            std::process::id(),
            &uuid::Uuid::now_v7().simple().to_string()[24..]
        );
        for n in 0..self.config.workers.concurrency {
            let worker = Worker::new(format!("{process}-{n}"), self.pipeline.clone());
            tasks.spawn(worker.run(self.state.shutdown.clone()));
        }
        tasks.spawn(navigator_pipeline::maintenance::run_rescuer(
            self.state.store.clone(),
            self.state.clock.clone(),
            self.config.workers.rescue_interval(),
            self.state.wake.clone(),
            self.state.shutdown.clone(),
        ));
    }

    /// Binds the API (and workers unless `with_workers` is false) and returns a handle.
    pub async fn start(self, listen: SocketAddr, with_workers: bool) -> anyhow::Result<Running> {
        let listener = TcpListener::bind(listen)
            .await
            .with_context(|| format!("could not listen on {listen}"))?;
        let addr = listener.local_addr()?;
        let mut tasks = JoinSet::new();
        if with_workers {
            self.spawn_workers(&mut tasks);
        }
        let shutdown = self.state.shutdown.clone();
        let router = http::router(self.state.clone());
        let server_shutdown = shutdown.clone();
        let server = tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async move { server_shutdown.cancelled().await })
                .await
        });
        tracing::info!(%addr, workers = with_workers, "navigator listening");
        Ok(Running {
            addr,
            shutdown,
            server,
            tasks,
            grace: self.config.server.shutdown_grace(),
        })
    }
}

/// A started server.
pub struct Running {
    pub addr: SocketAddr,
    pub shutdown: CancellationToken,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    tasks: JoinSet<()>,
    grace: Duration,
}

impl Running {
    /// Stops claiming, lets in-flight stages finish or hands their jobs back, finishes in-flight
    /// requests, and returns when everything has stopped (or the grace period ran out).
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        let deadline = self.grace + Duration::from_secs(5);
        let drained = tokio::time::timeout(deadline, async {
            while self.tasks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                "workers did not stop within the grace period; their leases will expire"
            );
            self.tasks.abort_all();
        }
        match tokio::time::timeout(deadline, self.server).await {
            Ok(Ok(Ok(()))) => Ok(()),
            Ok(Ok(Err(e))) => Err(e.into()),
            Ok(Err(e)) => Err(e.into()),
            Err(_) => {
                tracing::warn!("open connections did not close within the grace period");
                Ok(())
            }
        }
    }

    /// Waits for SIGTERM or SIGINT, then [`Running::stop`]s.
    pub async fn run_until_signal(self) -> anyhow::Result<()> {
        wait_for_signal().await;
        tracing::info!("shutdown requested; draining");
        self.stop().await
    }
}

pub async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("can install a SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

pub async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    match config.database_kind() {
        DatabaseKind::Sqlite => {
            let store = SqliteStore::connect(config.database_url().expose())
                .await
                .context("could not open the SQLite database (database.url)")?;
            Ok(Arc::new(store))
        }
        DatabaseKind::Postgres => {
            let pool = &config.database.pool;
            let settings = navigator_store::postgres::PgPoolSettings {
                max_connections: pool.max_connections,
                acquire_timeout: Duration::from_secs(pool.acquire_timeout_secs),
                statement_timeout: Duration::from_secs(pool.statement_timeout_secs),
                idle_in_transaction_timeout: Duration::from_secs(
                    pool.idle_in_transaction_timeout_secs,
                ),
            };
            let store = navigator_store::postgres::PgStore::connect_with(
                config.database_url().expose(),
                &settings,
            )
            .await
            .context("could not connect to PostgreSQL (database.url)")?;
            Ok(Arc::new(store))
        }
    }
}

pub async fn build_embedder(config: &Config) -> anyhow::Result<Arc<dyn Embedder>> {
    match config.embedder.kind {
        EmbedderKind::Local => {
            let dir = config.model_dir();
            let batch = config.embedder.batch_size;
            let model = tokio::task::spawn_blocking(move || {
                navigator_embed::LocalMiniLm::load(
                    &dir,
                    navigator_embed::LocalOptions {
                        max_batch_size: batch,
                        ..Default::default()
                    },
                )
                .with_context(|| {
                    format!(
                        "could not load the local embedding model from {} (embedder.local.model_dir); run scripts/fetch-model.sh",
                        dir.display()
                    )
                })
            })
            .await??;
            Ok(Arc::new(model))
        }
        EmbedderKind::Hash => Ok(Arc::new(navigator_embed::HashEmbedder::new())),
        EmbedderKind::Openai => {
            use navigator_remote::openai::{
                DEFAULT_MAX_INPUT_TOKENS, EstimatingTokenCounter, OpenAiEmbedder, OpenAiSettings,
            };
            let openai = &config.embedder.openai;
            // The provider's tokenizer is not available offline: count conservatively (more
            // tokens than the provider will), so batches and chunks stay within its limits.
            let counter = Arc::new(EstimatingTokenCounter {
                max_input_tokens: DEFAULT_MAX_INPUT_TOKENS,
            });
            let embedder = OpenAiEmbedder::new(
                OpenAiSettings {
                    base_url: openai.base_url.clone().unwrap_or_default(),
                    model: openai.model.clone().unwrap_or_default(),
                    api_key: openai.api_key.as_ref().map(|k| k.expose().to_owned()),
                    dimensions: openai.dimensions.unwrap_or_default() as usize,
                    send_dimensions: openai.request_dimensions,
                    max_batch_inputs: config.embedder.batch_size,
                    max_batch_tokens: openai.max_batch_tokens as usize,
                    resilience: resilience_settings(
                        openai.request_timeout_secs,
                        openai.max_attempts,
                        &openai.breaker,
                        Some(openai.max_concurrency),
                        openai.requests_per_minute,
                        openai.tokens_per_minute,
                    ),
                    ..OpenAiSettings::default()
                },
                counter,
            )
            .map_err(|e| anyhow::anyhow!("embedder.openai: {}", e.0))?;
            Ok(Arc::new(embedder))
        }
    }
}

/// The remote parser from `parser.llamaparse.*`, with callbacks when `server.public_url` and
/// `parser.webhook_secret` are both set.
pub fn build_remote_parser(config: &Config) -> anyhow::Result<RemoteParsing> {
    use navigator_remote::llamaparse::{LlamaParseClient, LlamaParseSettings};
    let llamaparse = &config.parser.llamaparse;
    let client = LlamaParseClient::new(LlamaParseSettings {
        base_url: llamaparse.base_url.clone().unwrap_or_default(),
        api_key: llamaparse.api_key.as_ref().map(|k| k.expose().to_owned()),
        resilience: resilience_settings(
            llamaparse.request_timeout_secs,
            llamaparse.max_attempts,
            &llamaparse.breaker,
            None,
            llamaparse.requests_per_minute,
            0,
        ),
    })
    .map_err(|e| anyhow::anyhow!("parser.llamaparse: {}", e.0))?;
    let callbacks = match (&config.server.public_url, &config.parser.webhook_secret) {
        (Some(public_url), Some(secret)) if !secret.is_empty() => Some(Callbacks {
            public_url: public_url.clone(),
            master_secret: secret.expose().to_owned(),
        }),
        _ => None,
    };
    if callbacks.is_none() {
        tracing::info!(
            "remote parser results will be polled (set server.public_url and parser.webhook_secret for callbacks)"
        );
    }
    Ok(RemoteParsing {
        parser: Arc::new(client),
        callbacks,
        poll_interval: Duration::from_secs(llamaparse.poll_interval_secs),
        timeout: Duration::from_secs(llamaparse.timeout_secs),
    })
}

/// The resilience layer's settings from one service's config keys (0 means no client-side rate
/// limit).
fn resilience_settings(
    request_timeout_secs: u64,
    max_attempts: u32,
    breaker: &crate::config::BreakerConfig,
    max_concurrency: Option<u32>,
    requests_per_minute: u32,
    tokens_per_minute: u32,
) -> navigator_remote::resilience::ResilienceSettings {
    use navigator_remote::resilience::{ConcurrencySettings, ResilienceSettings};
    let defaults = ResilienceSettings::default();
    let concurrency = match max_concurrency {
        Some(max) => {
            let max = max.max(1) as usize;
            ConcurrencySettings {
                max,
                initial: defaults.concurrency.initial.min(max),
                ..defaults.concurrency
            }
        }
        None => defaults.concurrency,
    };
    ResilienceSettings {
        request_timeout: Duration::from_secs(request_timeout_secs),
        max_attempts,
        breaker_threshold: breaker.failure_threshold,
        breaker_open_for: Duration::from_secs(breaker.open_secs),
        concurrency,
        requests_per_minute: (requests_per_minute > 0).then_some(requests_per_minute),
        tokens_per_minute: (tokens_per_minute > 0).then_some(tokens_per_minute),
        ..defaults
    }
}

/// Prices and budgets from `usage.*`.
pub fn usage_policy(config: &Config) -> UsagePolicy {
    let usage = &config.usage;
    UsagePolicy {
        prices: PriceTable(
            usage
                .prices
                .iter()
                .map(|(provider, price)| {
                    (
                        provider.clone(),
                        Price {
                            usd_per_million_tokens: price.usd_per_million_tokens,
                            usd_per_page: price.usd_per_page,
                        },
                    )
                })
                .collect(),
        ),
        default_soft_micro_usd: usage.budgets.soft_usd.map(usd_to_micro),
        default_hard_micro_usd: usage.budgets.hard_usd.map(usd_to_micro),
        recheck: Duration::from_secs(usage.budgets.recheck_secs),
    }
}

/// Refuses configurations this build cannot honour, so nobody runs with a setting silently
/// ignored (above all `auth.mode: jwt`, which would otherwise serve without authentication).
pub fn check_supported(config: &Config) -> anyhow::Result<()> {
    let mut problems = Vec::new();
    if config.auth.mode != AuthMode::None {
        problems.push("auth.mode: jwt is not supported by this build yet; refusing to start rather than serve without authentication");
    }
    if problems.is_empty() {
        Ok(())
    } else {
        bail!("{}", problems.join("\n"))
    }
}

fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "navigator".to_owned())
}
