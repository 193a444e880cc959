//! Configuration: one YAML file, `${VAR}` substitution, `NAVIGATOR__SECTION__KEY` overrides,
//! validated once at start-up (SPEC §6).
//!
//! Main items: [`Config`] and its section structs, [`load`] / [`load_from_str`], [`ConfigErrors`]
//! (every problem, each with its key path and its line or environment variable),
//! [`example_yaml`] and [`redacted_yaml`].
//!
//! Key design choice: the file and the overrides are merged as one tree before a single
//! deserialisation into [`Config`], and the environment is passed in rather than read globally,
//! so tests are hermetic and a value means the same thing wherever it came from. The structs are
//! plain data with `deny_unknown_fields` and a default for every field (an empty file is valid);
//! durations are `_secs`/`_ms` integers here and `Duration` through the accessor methods.
//!
//! Loading pipeline: read file → [`expand`] `${…}` → parse YAML into a located tree → apply
//! environment overrides → deserialise (a type error is pinned to its key by re-trying one leaf
//! at a time against the defaults) → fill environment-derived defaults → [`validate`].

mod error;
mod example;
mod expand;
mod load;
mod secret;
mod validate;

pub use error::{ConfigError, ConfigErrors, Origin};
pub use example::example_yaml;
pub use load::{DEFAULT_CONFIG_PATH, ENV_PREFIX, load, load_from_str, redacted_yaml};
pub use secret::{ConnectionUrl, REDACTED, Secret};

use navigator_domain::RetryPolicy;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::time::Duration;

// ---------------------------------------------------------------------------------------------
// Root

pub const DEFAULT_DATA_DIR: &str = "./navigator-data";

/// The whole configuration. `Config::default()` is what an empty file gives before the
/// environment-derived defaults are filled in; [`Config::defaults`] is what [`load`] returns for
/// an empty file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Root of everything the embedded deployment keeps on disk.
    pub data_dir: PathBuf,
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    pub blobs: BlobsConfig,
    pub parser: ParserConfig,
    pub embedder: EmbedderConfig,
    pub chunker: ChunkerConfig,
    pub workers: WorkersConfig,
    pub auth: AuthConfig,
    pub search: SearchConfig,
    pub usage: UsageConfig,
    pub encryption: EncryptionConfig,
    pub audit: AuditConfig,
    pub log: LogConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            server: ServerConfig::default(),
            database: DatabaseConfig::default(),
            blobs: BlobsConfig::default(),
            parser: ParserConfig::default(),
            embedder: EmbedderConfig::default(),
            chunker: ChunkerConfig::default(),
            workers: WorkersConfig::default(),
            auth: AuthConfig::default(),
            search: SearchConfig::default(),
            usage: UsageConfig::default(),
            encryption: EncryptionConfig::default(),
            audit: AuditConfig::default(),
            log: LogConfig::default(),
        }
    }
}

impl Config {
    /// What [`load`] returns for an empty file and no overrides: the defaults with
    /// `database.url`, `blobs.url` and `embedder.local.model_dir` filled in from `data_dir` and
    /// `env`.
    pub fn defaults(env: &HashMap<String, String>) -> Self {
        Self::default().with_derived_defaults(env)
    }

    /// Fills every `None` that has a derived default, so the effective configuration (and
    /// [`redacted_yaml`]) shows the real values.
    pub(crate) fn with_derived_defaults(mut self, env: &HashMap<String, String>) -> Self {
        if self.database.url.is_none() {
            self.database.url = Some(self.database_url());
        }
        if self.blobs.url.is_none() {
            self.blobs.url = Some(self.blobs_url());
        }
        if self.embedder.local.model_dir.is_none() {
            self.embedder.local.model_dir = Some(default_model_dir(env, &self.data_dir));
        }
        self
    }

    /// The database URL, by default `sqlite://{data_dir}/navigator.db`. Its `Display` masks any
    /// password; call `expose()` only to open the connection.
    pub fn database_url(&self) -> ConnectionUrl {
        self.database.url.clone().unwrap_or_else(|| {
            ConnectionUrl::new(format!(
                "sqlite://{}",
                self.data_dir.join("navigator.db").display()
            ))
        })
    }

    /// Which store backend `database_url()` selects (validation guarantees one of them).
    pub fn database_kind(&self) -> DatabaseKind {
        match self.database_url().scheme() {
            Some("postgres" | "postgresql") => DatabaseKind::Postgres,
            _ => DatabaseKind::Sqlite,
        }
    }

    /// The blob store URL, by default `file://{data_dir}/blobs`.
    pub fn blobs_url(&self) -> String {
        self.blobs
            .url
            .clone()
            .unwrap_or_else(|| format!("file://{}", self.data_dir.join("blobs").display()))
    }

    /// `blobs_url()` parsed: a local directory or an S3 bucket and key prefix (validation
    /// guarantees one of them; anything else is read as a local directory).
    pub fn blob_location(&self) -> BlobLocation {
        let url = self.blobs_url();
        match url.strip_prefix("s3://") {
            Some(rest) => {
                let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
                BlobLocation::S3 {
                    bucket: bucket.to_owned(),
                    prefix: prefix.trim_matches('/').to_owned(),
                }
            }
            None => BlobLocation::File(PathBuf::from(url.strip_prefix("file://").unwrap_or(&url))),
        }
    }

    /// Where the local embedding model lives (see [`default_model_dir`]).
    pub fn model_dir(&self) -> PathBuf {
        self.embedder
            .local
            .model_dir
            .clone()
            .unwrap_or_else(|| default_model_dir(&HashMap::new(), &self.data_dir))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatabaseKind {
    Sqlite,
    Postgres,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlobLocation {
    File(PathBuf),
    S3 { bucket: String, prefix: String },
}

/// The name of the built-in local embedding model's directory.
pub const LOCAL_MODEL_NAME: &str = "all-MiniLM-L6-v2";

/// `$XDG_CACHE_HOME/navigator/models/all-MiniLM-L6-v2`, else `$HOME/.cache/navigator/models/…`,
/// else `{data_dir}/models/…` when neither variable is usable. Reads only `env`.
pub fn default_model_dir(env: &HashMap<String, String>, data_dir: &Path) -> PathBuf {
    let non_empty = |name: &str| env.get(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    // The XDG spec says a relative XDG_CACHE_HOME is invalid and must be ignored.
    let cache = non_empty("XDG_CACHE_HOME")
        .filter(|dir| dir.is_absolute())
        .or_else(|| non_empty("HOME").map(|home| home.join(".cache")));
    match cache {
        Some(cache) => cache
            .join("navigator")
            .join("models")
            .join(LOCAL_MODEL_NAME),
        None => data_dir.join("models").join(LOCAL_MODEL_NAME),
    }
}

// ---------------------------------------------------------------------------------------------
// server

pub const DEFAULT_LISTEN: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 8080));
pub const DEFAULT_MAX_UPLOAD_BYTES: u64 = 100 * 1024 * 1024;
pub const DEFAULT_REQUEST_TIMEOUT_SECS: u64 = 30;
pub const DEFAULT_SHUTDOWN_GRACE_SECS: u64 = 30;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address the HTTP API binds (`serve --listen` overrides it).
    pub listen: SocketAddr,
    /// How callers and callbacks reach this server from outside (`https://nav.example.com`).
    pub public_url: Option<String>,
    /// Uploads above this get 413 before they are buffered.
    pub max_upload_bytes: u64,
    pub request_timeout_secs: u64,
    /// How long a SIGTERM drain may take before in-flight work is abandoned.
    pub shutdown_grace_secs: u64,
    pub rate_limits: RateLimitsConfig,
    /// HTTPS: serve TLS when a certificate and key are set.
    pub tls: ServerTlsConfig,
    /// `Strict-Transport-Security: max-age` sent on every response when TLS is on.
    pub hsts_max_age_secs: u64,
}

pub const DEFAULT_TLS_RELOAD_INTERVAL_SECS: u64 = 10;
pub const DEFAULT_HSTS_MAX_AGE_SECS: u64 = 31_536_000;

/// The API's TLS certificate: both paths or neither (plain HTTP). The files are PEM; the
/// certificate file may hold the whole chain, leaf first. Both are re-read when either changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerTlsConfig {
    pub cert_path: Option<PathBuf>,
    pub key_path: Option<PathBuf>,
    /// Seconds between checks of the two files' modification times.
    pub reload_interval_secs: u64,
}

impl Default for ServerTlsConfig {
    fn default() -> Self {
        Self {
            cert_path: None,
            key_path: None,
            reload_interval_secs: DEFAULT_TLS_RELOAD_INTERVAL_SECS,
        }
    }
}

impl ServerTlsConfig {
    /// The certificate and key paths when TLS is on (validation guarantees both or neither).
    pub fn files(&self) -> Option<(&Path, &Path)> {
        match (&self.cert_path, &self.key_path) {
            (Some(cert), Some(key)) => Some((cert.as_path(), key.as_path())),
            _ => None,
        }
    }

    pub fn reload_interval(&self) -> Duration {
        Duration::from_secs(self.reload_interval_secs.max(1))
    }
}

pub const DEFAULT_UPLOADS_PER_MINUTE: u32 = 120;
pub const DEFAULT_SEARCHES_PER_MINUTE: u32 = 600;

/// Requests per minute one principal may make (0: unlimited), per API process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitsConfig {
    pub uploads_per_minute: u32,
    pub searches_per_minute: u32,
}

impl Default for RateLimitsConfig {
    fn default() -> Self {
        Self {
            uploads_per_minute: DEFAULT_UPLOADS_PER_MINUTE,
            searches_per_minute: DEFAULT_SEARCHES_PER_MINUTE,
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: DEFAULT_LISTEN,
            public_url: None,
            max_upload_bytes: DEFAULT_MAX_UPLOAD_BYTES,
            request_timeout_secs: DEFAULT_REQUEST_TIMEOUT_SECS,
            shutdown_grace_secs: DEFAULT_SHUTDOWN_GRACE_SECS,
            rate_limits: RateLimitsConfig::default(),
            tls: ServerTlsConfig::default(),
            hsts_max_age_secs: DEFAULT_HSTS_MAX_AGE_SECS,
        }
    }
}

impl ServerConfig {
    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_secs)
    }

    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_secs)
    }
}

// ---------------------------------------------------------------------------------------------
// database

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `sqlite://PATH` or `postgres://…`; `None` means `sqlite://{data_dir}/navigator.db`.
    /// Use [`Config::database_url`] rather than reading this field.
    pub url: Option<ConnectionUrl>,
    /// Connection pool (PostgreSQL).
    pub pool: PoolConfig,
    /// TLS to PostgreSQL.
    pub tls: DatabaseTlsConfig,
}

/// libpq's `sslmode` values.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DatabaseTlsMode {
    /// Never TLS.
    Disable,
    /// TLS when the server offers it, else plain (no certificate check).
    #[default]
    Prefer,
    /// TLS or fail (no certificate check unless `ca_path` is set, then as verify-ca).
    Require,
    /// TLS, the server's certificate chained to `ca_path`.
    VerifyCa,
    /// As verify-ca, and the certificate names the host of `database.url`.
    VerifyFull,
}

impl DatabaseTlsMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Disable => "disable",
            Self::Prefer => "prefer",
            Self::Require => "require",
            Self::VerifyCa => "verify-ca",
            Self::VerifyFull => "verify-full",
        }
    }
}

/// TLS to PostgreSQL (SQLite ignores it).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseTlsConfig {
    pub mode: DatabaseTlsMode,
    /// PEM file of the CA(s) the server's certificate must chain to (required for verify-ca
    /// and verify-full).
    pub ca_path: Option<PathBuf>,
}

pub const DEFAULT_POOL_MAX_CONNECTIONS: u32 = 10;
pub const DEFAULT_POOL_ACQUIRE_TIMEOUT_SECS: u64 = 5;
pub const DEFAULT_STATEMENT_TIMEOUT_SECS: u64 = 30;
pub const DEFAULT_IDLE_IN_TRANSACTION_TIMEOUT_SECS: u64 = 60;

/// PostgreSQL connection pool limits (SPEC §7, PD-003). SQLite uses a fixed single writer plus a
/// small reader pool and ignores these.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PoolConfig {
    pub max_connections: u32,
    /// How long a request waits for a free connection before failing with 503.
    pub acquire_timeout_secs: u64,
    /// Server-side cap on any one statement.
    pub statement_timeout_secs: u64,
    /// Server-side cap on a transaction left idle (a stuck client cannot hold locks forever).
    pub idle_in_transaction_timeout_secs: u64,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            max_connections: DEFAULT_POOL_MAX_CONNECTIONS,
            acquire_timeout_secs: DEFAULT_POOL_ACQUIRE_TIMEOUT_SECS,
            statement_timeout_secs: DEFAULT_STATEMENT_TIMEOUT_SECS,
            idle_in_transaction_timeout_secs: DEFAULT_IDLE_IN_TRANSACTION_TIMEOUT_SECS,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// blobs

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BlobsConfig {
    /// `file://DIR` or `s3://BUCKET/PREFIX`; `None` means `file://{data_dir}/blobs`.
    /// Use [`Config::blobs_url`] / [`Config::blob_location`] rather than reading this field.
    pub url: Option<String>,
    pub s3: S3Config,
}

/// Settings for an `s3://` blob store; ignored for `file://`. Unset credentials mean the usual
/// AWS credential chain (environment, instance profile).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct S3Config {
    /// S3-compatible endpoint (MinIO, R2…); `None` means AWS.
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<Secret>,
    /// Allow a plain-http endpoint (local MinIO only).
    pub allow_http: bool,
}

// ---------------------------------------------------------------------------------------------
// parser

pub const DEFAULT_PARSER_TIMEOUT_SECS: u64 = 60;
pub const DEFAULT_PARSER_MEMORY_MB: u64 = 1024;
pub const DEFAULT_PARSER_SANDBOX: bool = true;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ParserKind {
    /// In-process parsers for PDF, DOCX, HTML, Markdown and text.
    #[default]
    Builtin,
    /// A remote LlamaParse-compatible service (document content leaves the machine).
    Llamaparse,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ParserConfig {
    pub kind: ParserKind,
    /// Wall-clock limit for parsing one document.
    pub timeout_secs: u64,
    /// Memory limit of the sandboxed parser process.
    pub memory_mb: u64,
    /// Run the built-in parsers in a resource-limited child process.
    pub sandbox: bool,
    /// Let a document reuse the parse of another owner's identical file. Off by default: the
    /// savings (and the speed) would tell one tenant that another uploaded the same file.
    pub share_cache_across_owners: bool,
    /// Master secret the per-job webhook secrets are derived from (at least 32 bytes). Needed
    /// by a remote parser when `server.public_url` is set; without it results are polled.
    pub webhook_secret: Option<Secret>,
    pub llamaparse: LlamaParseConfig,
}

impl Default for ParserConfig {
    fn default() -> Self {
        Self {
            kind: ParserKind::default(),
            timeout_secs: DEFAULT_PARSER_TIMEOUT_SECS,
            memory_mb: DEFAULT_PARSER_MEMORY_MB,
            sandbox: DEFAULT_PARSER_SANDBOX,
            share_cache_across_owners: false,
            webhook_secret: None,
            llamaparse: LlamaParseConfig::default(),
        }
    }
}

impl ParserConfig {
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs)
    }

    pub fn memory_limit_bytes(&self) -> u64 {
        self.memory_mb.saturating_mul(1024 * 1024)
    }
}

pub const DEFAULT_REMOTE_POLL_INTERVAL_SECS: u64 = 15;
pub const DEFAULT_REMOTE_PARSE_TIMEOUT_SECS: u64 = 900;
pub const DEFAULT_REMOTE_TIMEOUT_SECS: u64 = 30;
pub const DEFAULT_REMOTE_MAX_ATTEMPTS: u32 = 4;
pub const DEFAULT_BREAKER_FAILURE_THRESHOLD: u32 = 5;
pub const DEFAULT_BREAKER_OPEN_SECS: u64 = 30;
pub const DEFAULT_LLAMAPARSE_REQUESTS_PER_MINUTE: u32 = 60;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LlamaParseConfig {
    /// e.g. `https://api.cloud.llamaindex.ai`.
    pub base_url: Option<String>,
    pub api_key: Option<Secret>,
    /// Seconds between polls while no webhook has delivered the result.
    pub poll_interval_secs: u64,
    /// Seconds after submission before an unfinished parse fails with `parser_timeout`.
    pub timeout_secs: u64,
    /// Requests per minute this process sends the service (0: no client-side limit).
    pub requests_per_minute: u32,
    /// Seconds before one HTTP request to the service is abandoned.
    pub request_timeout_secs: u64,
    /// Tries of one request on 429, 5xx and timeouts before the stage fails for a later retry.
    pub max_attempts: u32,
    pub breaker: BreakerConfig,
}

impl Default for LlamaParseConfig {
    fn default() -> Self {
        Self {
            base_url: None,
            api_key: None,
            poll_interval_secs: DEFAULT_REMOTE_POLL_INTERVAL_SECS,
            timeout_secs: DEFAULT_REMOTE_PARSE_TIMEOUT_SECS,
            requests_per_minute: DEFAULT_LLAMAPARSE_REQUESTS_PER_MINUTE,
            request_timeout_secs: DEFAULT_REMOTE_TIMEOUT_SECS,
            max_attempts: DEFAULT_REMOTE_MAX_ATTEMPTS,
            breaker: BreakerConfig::default(),
        }
    }
}

/// A circuit breaker in front of an external service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BreakerConfig {
    /// Consecutive failed requests (429, 5xx, timeouts, bad answers) that open the breaker.
    pub failure_threshold: u32,
    /// Seconds the breaker stays open before one probe request is let through.
    pub open_secs: u64,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            failure_threshold: DEFAULT_BREAKER_FAILURE_THRESHOLD,
            open_secs: DEFAULT_BREAKER_OPEN_SECS,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// embedder

pub const DEFAULT_EMBED_BATCH_SIZE: usize = 32;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EmbedderKind {
    /// The built-in all-MiniLM-L6-v2 model (384 dimensions); nothing leaves the machine.
    #[default]
    Local,
    /// Any OpenAI-compatible embeddings API.
    Openai,
    /// A deterministic hash embedder for tests only: fast, no model, meaningless similarity.
    Hash,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmbedderConfig {
    pub kind: EmbedderKind,
    /// Most inputs in one forward pass of the local model (its padded-token budget bounds a
    /// pass further, so long inputs go 8 at a time); for a remote embedder, inputs per request.
    pub batch_size: usize,
    pub local: LocalEmbedderConfig,
    pub openai: OpenAiEmbedderConfig,
}

impl Default for EmbedderConfig {
    fn default() -> Self {
        Self {
            kind: EmbedderKind::default(),
            batch_size: DEFAULT_EMBED_BATCH_SIZE,
            local: LocalEmbedderConfig::default(),
            openai: OpenAiEmbedderConfig::default(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LocalEmbedderConfig {
    /// `None` means [`default_model_dir`]; [`load`] always fills it in.
    pub model_dir: Option<PathBuf>,
}

pub const DEFAULT_OPENAI_MAX_BATCH_TOKENS: u32 = 8_000;
pub const DEFAULT_OPENAI_MAX_CONCURRENCY: u32 = 8;
/// The most inputs one OpenAI-compatible embeddings request may carry.
pub const OPENAI_MAX_BATCH_INPUTS: usize = 256;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OpenAiEmbedderConfig {
    /// e.g. `https://api.openai.com/v1`.
    pub base_url: Option<String>,
    pub model: Option<String>,
    pub api_key: Option<Secret>,
    /// Length of the model's vectors (required: e.g. 1536 for text-embedding-3-small).
    pub dimensions: Option<u32>,
    /// Send `dimensions` in each request, for models that can shorten their vectors.
    pub request_dimensions: bool,
    /// Most tokens in one request (inputs per request are `embedder.batch_size`, at most 256).
    pub max_batch_tokens: u32,
    /// Client-side limits per process (0: none); the provider's own limits are read from its
    /// `x-ratelimit-*` headers as well.
    pub requests_per_minute: u32,
    pub tokens_per_minute: u32,
    /// Most requests in flight at once; the adaptive limit moves between 1 and this.
    pub max_concurrency: u32,
    /// Seconds before one request is abandoned.
    pub request_timeout_secs: u64,
    /// Tries of one request on 429, 5xx, timeouts and bad answers before the stage fails for a
    /// later retry.
    pub max_attempts: u32,
    pub breaker: BreakerConfig,
}

impl Default for OpenAiEmbedderConfig {
    fn default() -> Self {
        Self {
            base_url: None,
            model: None,
            api_key: None,
            dimensions: None,
            request_dimensions: false,
            max_batch_tokens: DEFAULT_OPENAI_MAX_BATCH_TOKENS,
            requests_per_minute: 0,
            tokens_per_minute: 0,
            max_concurrency: DEFAULT_OPENAI_MAX_CONCURRENCY,
            request_timeout_secs: DEFAULT_REMOTE_TIMEOUT_SECS,
            max_attempts: DEFAULT_REMOTE_MAX_ATTEMPTS,
            breaker: BreakerConfig::default(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// chunker

/// The local model's input limit; chunks above it would be silently truncated when embedded.
pub const LOCAL_MODEL_MAX_TOKENS: u32 = 256;
pub const DEFAULT_CHUNK_MAX_TOKENS: u32 = 256;
pub const DEFAULT_CHUNK_TARGET_TOKENS: u32 = 200;
pub const DEFAULT_CHUNK_OVERLAP_RATIO: f64 = 0.15;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChunkerConfig {
    /// Hard upper bound of a chunk, in embedder tokens.
    pub max_tokens: u32,
    /// Size the chunker aims for.
    pub target_tokens: u32,
    /// Fraction of a chunk repeated at the start of the next one.
    pub overlap_ratio: f64,
}

impl Default for ChunkerConfig {
    fn default() -> Self {
        Self {
            max_tokens: DEFAULT_CHUNK_MAX_TOKENS,
            target_tokens: DEFAULT_CHUNK_TARGET_TOKENS,
            overlap_ratio: DEFAULT_CHUNK_OVERLAP_RATIO,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// workers

pub const DEFAULT_WORKER_CONCURRENCY: u32 = 2;
pub const DEFAULT_LEASE_SECS: u64 = 30;
pub const DEFAULT_POLL_INTERVAL_MS: u64 = 500;
pub const DEFAULT_RESCUE_INTERVAL_SECS: u64 = 10;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkersConfig {
    /// Jobs one worker process runs at once.
    pub concurrency: u32,
    /// How long a claimed job stays leased without a renewal.
    pub lease_secs: u64,
    /// Pause between claims when the queue is empty.
    pub poll_interval_ms: u64,
    /// How often the rescuer returns expired leases to the queue.
    pub rescue_interval_secs: u64,
    pub retry: RetryConfig,
}

impl Default for WorkersConfig {
    fn default() -> Self {
        Self {
            concurrency: DEFAULT_WORKER_CONCURRENCY,
            lease_secs: DEFAULT_LEASE_SECS,
            poll_interval_ms: DEFAULT_POLL_INTERVAL_MS,
            rescue_interval_secs: DEFAULT_RESCUE_INTERVAL_SECS,
            retry: RetryConfig::default(),
        }
    }
}

impl WorkersConfig {
    pub fn lease(&self) -> Duration {
        Duration::from_secs(self.lease_secs)
    }

    pub fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.poll_interval_ms)
    }

    pub fn rescue_interval(&self) -> Duration {
        Duration::from_secs(self.rescue_interval_secs)
    }
}

pub const DEFAULT_RETRY_BASE_SECS: u64 = navigator_domain::retry::DEFAULT_RETRY_BASE.as_secs();
pub const DEFAULT_RETRY_CAP_SECS: u64 = navigator_domain::retry::DEFAULT_RETRY_CAP.as_secs();
pub const DEFAULT_RETRY_MAX_ATTEMPTS: u32 = navigator_domain::retry::DEFAULT_MAX_ATTEMPTS;

/// Exponential backoff with full jitter between attempts of a failed stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryConfig {
    pub base_secs: u64,
    pub cap_secs: u64,
    /// Attempts of one stage before the job fails with `retries_exhausted`.
    pub max_attempts: u32,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            base_secs: DEFAULT_RETRY_BASE_SECS,
            cap_secs: DEFAULT_RETRY_CAP_SECS,
            max_attempts: DEFAULT_RETRY_MAX_ATTEMPTS,
        }
    }
}

impl RetryConfig {
    pub fn base(&self) -> Duration {
        Duration::from_secs(self.base_secs)
    }

    pub fn cap(&self) -> Duration {
        Duration::from_secs(self.cap_secs)
    }

    pub fn policy(&self) -> RetryPolicy {
        RetryPolicy {
            base: self.base(),
            cap: self.cap(),
            max_attempts: self.max_attempts,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// auth

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    /// No authentication: every caller is one local owner. Laptops and tests only.
    #[default]
    None,
    /// Bearer JWTs: HS256 with a shared secret, or RS256/ES256/EdDSA via a JWKS URL.
    Jwt,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    pub mode: AuthMode,
    pub jwt: JwtConfig,
    /// Role → permissions, replacing the built-in defaults for the roles listed (member,
    /// operator, auditor, admin, service, or new ones).
    pub roles: std::collections::BTreeMap<String, Vec<String>>,
}

pub const DEFAULT_JWT_MAX_LIFETIME_SECS: u64 = 3600;
pub const DEFAULT_JWT_LEEWAY_SECS: u64 = 30;
pub const MAX_JWT_LEEWAY_SECS: u64 = 60;
pub const DEFAULT_JWKS_CACHE_SECS: u64 = 300;
pub const DEFAULT_JWKS_MIN_REFRESH_SECS: u64 = 60;
pub const DEFAULT_JWT_MAX_TOKEN_BYTES: u64 = 8192;
/// Signature algorithms a token may use; `none` and anything else are never accepted.
pub const JWT_ALGORITHMS: &[&str] = &["HS256", "RS256", "ES256", "EdDSA"];

/// Checked only when `auth.mode` is `jwt`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JwtConfig {
    /// At least 32 bytes.
    pub hs256_secret: Option<Secret>,
    /// JWKS for RS256/ES256/EdDSA keys (https; http only for loopback).
    pub jwks_url: Option<String>,
    /// A JWKS file instead of a URL (re-read when a token names an unknown `kid`).
    pub jwks_file: Option<PathBuf>,
    pub issuer: Option<String>,
    pub audience: Option<String>,
    /// Allowed `alg` values; empty means HS256 when `hs256_secret` is set, and RS256, ES256 and
    /// EdDSA when a JWKS is configured.
    pub algorithms: Vec<String>,
    /// Longest accepted token lifetime (`exp − iat`).
    pub max_lifetime_secs: u64,
    /// Clock skew tolerated on `exp`, `nbf` and `iat` (at most 60).
    pub leeway_secs: u64,
    /// How long fetched JWKS keys are trusted before a refresh.
    pub jwks_cache_secs: u64,
    /// Least time between two JWKS fetches caused by unknown `kid`s.
    pub jwks_min_refresh_secs: u64,
    /// Longer bearer tokens are refused before parsing.
    pub max_token_bytes: u64,
}

impl Default for JwtConfig {
    fn default() -> Self {
        Self {
            hs256_secret: None,
            jwks_url: None,
            jwks_file: None,
            issuer: None,
            audience: None,
            algorithms: Vec::new(),
            max_lifetime_secs: DEFAULT_JWT_MAX_LIFETIME_SECS,
            leeway_secs: DEFAULT_JWT_LEEWAY_SECS,
            jwks_cache_secs: DEFAULT_JWKS_CACHE_SECS,
            jwks_min_refresh_secs: DEFAULT_JWKS_MIN_REFRESH_SECS,
            max_token_bytes: DEFAULT_JWT_MAX_TOKEN_BYTES,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// search

pub const DEFAULT_SEARCH_LIMIT: u32 = 10;
pub const DEFAULT_SEARCH_MAX_LIMIT: u32 = 100;
pub const DEFAULT_RRF_K: u32 = 60;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SearchConfig {
    /// Hits returned when a request does not say.
    pub default_limit: u32,
    /// Largest `limit` a request may ask for.
    pub max_limit: u32,
    /// Reciprocal-rank-fusion constant: higher flattens the weight of top ranks.
    pub rrf_k: u32,
}

impl Default for SearchConfig {
    fn default() -> Self {
        Self {
            default_limit: DEFAULT_SEARCH_LIMIT,
            max_limit: DEFAULT_SEARCH_MAX_LIMIT,
            rrf_k: DEFAULT_RRF_K,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// usage

pub const DEFAULT_BUDGET_RECHECK_SECS: u64 = 60;

/// The usage ledger's prices and the per-owner budgets (calendar month, UTC).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UsageConfig {
    /// Prices by provider: an embedder model id (`openai/text-embedding-3-small/1536`) or a
    /// parser (`llamaparse`, `builtin`). Unlisted: free.
    pub prices: std::collections::BTreeMap<String, Price>,
    pub budgets: BudgetsConfig,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Price {
    pub usd_per_million_tokens: f64,
    pub usd_per_page: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BudgetsConfig {
    /// Monthly spend per owner in USD past which an event and a metric are emitted (empty: none).
    pub soft_usd: Option<f64>,
    /// Monthly spend per owner in USD past which new work waits (`budget_exceeded`) until the
    /// budget is raised (empty: none). `PUT /v1/budgets/{owner}` sets an owner's own budget.
    pub hard_usd: Option<f64>,
    /// Seconds between re-checks of work waiting on a hard budget.
    pub recheck_secs: u64,
}

impl Default for BudgetsConfig {
    fn default() -> Self {
        Self {
            soft_usd: None,
            hard_usd: None,
            recheck_secs: DEFAULT_BUDGET_RECHECK_SECS,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// encryption

pub const DEFAULT_KEY_CACHE_SECS: u64 = 300;

/// Envelope encryption of every blob: a data key per document, wrapped by a key-encryption key
/// (KEK) named by its id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EncryptionConfig {
    /// Keyring file holding the KEKs and the audit key, created with mode 0600 on first start;
    /// empty means `{data_dir}/keyring.json`. Ignored when `keys` is set.
    pub keyring_file: Option<PathBuf>,
    /// KEKs by id (base64 of 32 bytes), e.g. from `${VAR}`s, instead of the file.
    pub keys: std::collections::BTreeMap<String, Secret>,
    /// The KEK that wraps new data keys (default: the file's active key, or the only one).
    pub active_key: Option<String>,
    /// Seconds an unwrapped data key stays cached in memory.
    pub key_cache_secs: u64,
}

impl Default for EncryptionConfig {
    fn default() -> Self {
        Self {
            keyring_file: None,
            keys: std::collections::BTreeMap::new(),
            active_key: None,
            key_cache_secs: DEFAULT_KEY_CACHE_SECS,
        }
    }
}

impl Config {
    /// Where the keyring file lives (see [`EncryptionConfig::keyring_file`]).
    pub fn keyring_file(&self) -> PathBuf {
        self.encryption
            .keyring_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("keyring.json"))
    }

    /// Where the audit chain's head is anchored (see [`AuditConfig::anchor_file`]).
    pub fn audit_anchor_file(&self) -> PathBuf {
        self.audit
            .anchor_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("audit-anchor.json"))
    }
}

// ---------------------------------------------------------------------------------------------
// audit

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditConfig {
    /// HMAC key of the audit chain (at least 32 bytes); empty means the keyring file's audit key.
    pub hmac_key: Option<Secret>,
    /// File outside the database where the chain's latest head is anchored, so truncating the
    /// log's tail is detected; empty means `{data_dir}/audit-anchor.json`.
    pub anchor_file: Option<PathBuf>,
}

// ---------------------------------------------------------------------------------------------
// log

pub const DEFAULT_LOG_LEVEL: &str = "info";

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Json,
    #[default]
    Text,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A `tracing` filter: `info`, or `info,navigator_pipeline=debug`.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::default(),
            level: DEFAULT_LOG_LEVEL.to_owned(),
        }
    }
}
