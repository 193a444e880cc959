//! Startup and shutdown: builds every component from a validated [`Config`], serves the API,
//! runs workers and maintenance, and drains gracefully on SIGTERM/SIGINT.
//!
//! [`App::build`] is what `main` and the tests both call (tests bind port 0 and read the real
//! address back from [`Running::addr`]).

use crate::config::{BlobLocation, Config, DatabaseKind, EmbedderKind, ParserKind};
use crate::http::{self, ApiLimits, AppState};
use anyhow::Context;
use navigator_crypto::audit::AuditKey;
use navigator_crypto::keyring::LocalKeyring;
use navigator_domain::{Clock, SystemClock};
use navigator_embed::Embedder;
use navigator_parse::sandbox::SandboxLimits;
use navigator_pipeline::blob::Blobs;
use navigator_pipeline::chunk::ChunkerConfig;
use navigator_pipeline::remote::{Callbacks, RemoteParsing};
use navigator_pipeline::usage::{Price, PriceTable, UsagePolicy, usd_to_micro};
use navigator_pipeline::vault::{DocumentBlobs, DocumentKeys};
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
    /// Seals and verifies the audit chain (also anchors its head).
    pub audit_key: AuditKey,
}

impl App {
    pub async fn build(config: Config, options: BuildOptions) -> anyhow::Result<App> {
        // First, so that components built below can register their metrics (the breaker gauges).
        let metrics = crate::telemetry::prometheus();
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let store = open_store(&config).await?;
        store
            .migrate()
            .await
            .context("could not apply database migrations")?;
        let blobs = open_blobs(&config)?;
        let (keyring, audit_key) = open_keyring(&config, store.as_ref()).await?;
        let document_keys = Arc::new(DocumentKeys::new(
            store.clone(),
            keyring,
            clock.clone(),
            Duration::from_secs(config.encryption.key_cache_secs),
        ));
        let blobs = DocumentBlobs::new(blobs, document_keys);
        let audit: Arc<dyn crate::audit::AuditSink> = Arc::new(crate::audit::Auditor::new(
            store.clone(),
            audit_key.clone(),
            clock.clone(),
        ));
        let embedder = build_embedder(&config).await?;
        let upload_dir = config.data_dir.join("tmp");
        std::fs::create_dir_all(&upload_dir)
            .with_context(|| format!("could not create {}", upload_dir.display()))?;
        remove_stale_uploads(&upload_dir);
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
            audit,
            auth: Arc::new(http::auth::Authenticator::from_config(&config.auth)?),
            rate_limits: Arc::new(crate::http::rate_limit::RateLimiter::new(
                crate::http::rate_limit::RateLimits {
                    uploads_per_minute: config.server.rate_limits.uploads_per_minute,
                    searches_per_minute: config.server.rate_limits.searches_per_minute,
                },
            )),
        };
        Ok(App {
            config,
            state,
            pipeline,
            audit_key,
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
        tasks.spawn(anchor_audit_log(
            self.state.store.clone(),
            self.audit_key.clone(),
            self.config.audit_anchor_file(),
            self.state.shutdown.clone(),
        ));
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
        // TLS first: a bad certificate or key fails the start before anything listens.
        let tls = match self.config.server.tls.files() {
            Some((cert_path, key_path)) => {
                crate::tls::install_crypto_provider();
                let rustls = crate::tls::load_server_config(cert_path, key_path)
                    .context("server.tls: could not load the certificate and key")?;
                Some((
                    rustls,
                    crate::tls::TlsFiles {
                        cert_path: cert_path.to_owned(),
                        key_path: key_path.to_owned(),
                        reload_interval: self.config.server.tls.reload_interval(),
                    },
                ))
            }
            None => None,
        };
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
        let https = tls.is_some();
        let server = match tls {
            Some((rustls, files)) => {
                let router = crate::tls::with_hsts(router, self.config.server.hsts_max_age_secs);
                tokio::spawn(crate::tls::serve(
                    listener,
                    router,
                    rustls,
                    files,
                    server_shutdown,
                ))
            }
            None => tokio::spawn(async move {
                axum::serve(
                    listener,
                    router.into_make_service_with_connect_info::<SocketAddr>(),
                )
                .with_graceful_shutdown(async move { server_shutdown.cancelled().await })
                .await
            }),
        };
        tracing::info!(%addr, workers = with_workers, tls = https, "navigator listening");
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
                tls_mode: pg_tls_mode(config.database.tls.mode),
                tls_ca_path: config.database.tls.ca_path.clone(),
            };
            // sqlx builds its rustls client configuration from the process default.
            crate::tls::install_crypto_provider();
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

fn pg_tls_mode(mode: crate::config::DatabaseTlsMode) -> navigator_store::postgres::PgTlsMode {
    use crate::config::DatabaseTlsMode as Config;
    use navigator_store::postgres::PgTlsMode as Store;
    match mode {
        Config::Disable => Store::Disable,
        Config::Prefer => Store::Prefer,
        Config::Require => Store::Require,
        Config::VerifyCa => Store::VerifyCa,
        Config::VerifyFull => Store::VerifyFull,
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

/// Opens the store and migrates it only when a migration is pending, so a command run beside a
/// live server takes no write lock it does not need.
pub async fn open_migrated_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    let store = open_store(config).await?;
    let current = store
        .migration_status()
        .await
        .is_ok_and(|all| all.iter().all(|m| m.applied));
    if !current {
        store
            .migrate()
            .await
            .context("could not apply database migrations")?;
    }
    Ok(store)
}

/// The raw blob store from `blobs.*` (ciphertext only; [`DocumentBlobs`] seals and opens).
pub fn open_blobs(config: &Config) -> anyhow::Result<Blobs> {
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
    Blobs::from_location(&location, &settings).context("could not open the blob store")
}

/// How often the audit chain's head is anchored outside the database.
pub const AUDIT_ANCHOR_INTERVAL: Duration = Duration::from_secs(2);

/// Keeps the anchor file at the audit chain's head (see [`crate::audit::write_anchor`]), so a
/// log whose tail is cut off fails `navigator audit verify`. At most
/// [`AUDIT_ANCHOR_INTERVAL`] of entries are unanchored at any time.
async fn anchor_audit_log(
    store: Arc<dyn Store>,
    key: AuditKey,
    path: PathBuf,
    shutdown: CancellationToken,
) {
    loop {
        if let Err(e) = crate::audit::write_anchor(store.as_ref(), &key, &path).await {
            tracing::error!(error = %e, "could not anchor the audit log");
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(AUDIT_ANCHOR_INTERVAL) => {}
        }
    }
}

/// The key-encryption keys (from `encryption.keys`, else the keyring file, created on first
/// start) and the audit chain's key (`audit.hmac_key`, else the keyring file's).
pub async fn open_keyring(
    config: &Config,
    store: &dyn Store,
) -> anyhow::Result<(Arc<LocalKeyring>, AuditKey)> {
    let encryption = &config.encryption;
    let from_file = encryption.keys.is_empty();
    let keyring = if from_file {
        let path = config.keyring_file();
        if !path.exists() {
            // A new keyring is only right for a new deployment: with data already sealed or
            // audited, fresh keys would make it unreadable (a lost volume, a second host).
            let sealed = !store.count_data_keys_by_kek().await?.is_empty();
            let audited = !store.audit_chain(0, 1).await?.is_empty();
            if sealed || audited {
                anyhow::bail!(
                    "the keyring {} is missing but the database already holds sealed documents or audit entries; restore the keyring file (or set encryption.keys and audit.hmac_key) instead of creating new keys",
                    path.display()
                );
            }
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("could not create {}", dir.display()))?;
        }
        LocalKeyring::load_or_create(&path)
            .with_context(|| format!("could not open the keyring {}", path.display()))?
    } else {
        let keys = encryption
            .keys
            .iter()
            .map(|(id, key)| (id.clone(), key.expose().to_owned()))
            .collect();
        LocalKeyring::from_config(keys, encryption.active_key.clone()).context("encryption.keys")?
    };
    let audit_key = match &config.audit.hmac_key {
        Some(key) if !key.is_empty() => {
            AuditKey::new(key.expose().as_bytes().to_vec()).context("audit.hmac_key")?
        }
        _ => keyring.audit_key().cloned().with_context(|| {
            if from_file {
                "the keyring file has no audit key; set audit.hmac_key".to_owned()
            } else {
                "audit.hmac_key is required when encryption.keys is set".to_owned()
            }
        })?,
    };
    Ok((Arc::new(keyring), audit_key))
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

/// How old a spooled upload must be before start-up removes it. Uploads in flight in another
/// process sharing the directory are younger; older files were left by a crash mid-upload and
/// hold a document in plaintext.
pub const STALE_UPLOAD_AGE: Duration = Duration::from_secs(3600);

fn remove_stale_uploads(dir: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut removed = 0u64;
    for entry in entries.flatten() {
        let stale = entry
            .metadata()
            .ok()
            .filter(|m| m.is_file())
            .and_then(|m| m.modified().ok())
            .and_then(|at| at.elapsed().ok())
            .is_some_and(|age| age > STALE_UPLOAD_AGE);
        if stale && std::fs::remove_file(entry.path()).is_ok() {
            removed += 1;
        }
    }
    if removed > 0 {
        tracing::info!(
            files = removed,
            "removed uploads left behind by an earlier crash"
        );
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
