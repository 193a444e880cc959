//! The `navigator` command line (SPEC §5). Raw arguments are parsed by clap into validated
//! commands; each command builds what it needs from the config and returns an exit code.
//!
//! Exit codes: 0 success; 1 a runtime failure (database, storage, model); 2 bad usage or an
//! invalid configuration; 3 the command ran but some documents failed (`ingest`) or the job was
//! not in a state that allows it (`jobs retry`); 4 not found.

use crate::app::{App, BuildOptions, PARSE_SANDBOX_SUBCOMMAND};
use crate::audit::AuditSink;
use crate::config::{self, Config};
use crate::telemetry::{self, LogFormat};
use anyhow::Context;
use clap::{Parser, Subcommand};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use navigator_domain::{JobId, JobStatus, OwnerId, Sha256Hex, Stage};
use navigator_pipeline::ingest::{self, Upload};
use navigator_pipeline::search::SearchMode;
use navigator_store::{ChunkHit, OwnerScope, SearchQuery};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};
use tokio::task::JoinSet;

#[derive(Parser, Debug)]
#[command(
    name = "navigator",
    version,
    about = "Document pipeline for health and insurance documents"
)]
pub struct Cli {
    /// Configuration file (default: ./navigator.yaml if present, else built-in defaults).
    #[arg(long, global = true, env = "NAVIGATOR_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Serve the HTTP API with workers and maintenance.
    Serve {
        /// Address to listen on (overrides server.listen).
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Serve the API only; run `navigator worker` processes separately.
        #[arg(long)]
        no_workers: bool,
    },
    /// Run workers (and maintenance) without the API.
    Worker,
    /// Ingest files and show their progress until each is searchable.
    Ingest {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Upload to a running server instead of the configured store.
        #[arg(long)]
        server: Option<String>,
    },
    /// Search ingested documents.
    Search {
        query: String,
        #[arg(long, default_value_t = 5)]
        limit: u32,
        #[arg(long, value_enum, default_value = "hybrid")]
        mode: CliSearchMode,
        /// Search through a running server instead of the configured store.
        #[arg(long)]
        server: Option<String>,
    },
    /// Inspect and retry jobs.
    Jobs {
        #[command(subcommand)]
        command: JobsCommand,
    },
    /// Database migrations.
    Migrate {
        #[command(subcommand)]
        command: MigrateCommand,
    },
    /// Check, show or print an example configuration.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Key-encryption keys: rotate, re-wrap data keys, status.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// The tamper-evident audit log: verify the chain, export it.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// API keys for services: create (shown once), list, revoke.
    Apikey {
        #[command(subcommand)]
        command: ApikeyCommand,
    },
    /// Run a mock external service (for tests and local development; needs no configuration).
    Mock {
        #[command(subcommand)]
        service: MockCommand,
    },
    /// Internal: run one parse in a sandboxed child process (stdin → stdout).
    #[command(name = PARSE_SANDBOX_SUBCOMMAND, hide = true)]
    ParseSandbox,
}

#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// Add a new key-encryption key to the keyring file and make it the one new data keys use
    /// (restart running processes to pick it up, then run `keys rewrap`).
    Rotate,
    /// Re-wrap every data key not wrapped by the active key-encryption key (safe while serving).
    Rewrap {
        #[arg(long, default_value_t = 500)]
        batch: u32,
    },
    /// How many data keys each key-encryption key wraps.
    Status,
    /// Seal blobs written before encryption at rest (after upgrading a deployment in place).
    SealExisting,
}

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Check the whole chain and the anchored head: exit 0 when intact, 2 naming the first
    /// broken link, 3 when the log has entries but no anchor to check its tail against.
    Verify {
        /// The anchor file (default: audit.anchor_file).
        #[arg(long)]
        anchor: Option<PathBuf>,
        /// Check the chain only (on a host that holds no anchor).
        #[arg(long, conflicts_with = "anchor")]
        no_anchor: bool,
    },
    /// Print the log as JSON lines.
    Export {
        /// Entries after this sequence number.
        #[arg(long, default_value_t = 0)]
        after: i64,
    },
}

#[derive(Subcommand, Debug)]
pub enum ApikeyCommand {
    /// Create a key; the secret is printed once and stored only as a hash.
    Create {
        /// The owner the key acts for.
        #[arg(long)]
        owner: String,
        /// Roles, comma-separated (e.g. service,member).
        #[arg(long, value_delimiter = ',', required = true)]
        roles: Vec<String>,
        /// Days until it expires (0: never).
        #[arg(long, default_value_t = 90)]
        expires_in_days: u32,
        #[arg(long, default_value = "")]
        label: String,
    },
    /// List keys (ids, owners, roles, state; never secrets).
    List,
    /// Revoke a key at once.
    Revoke { id: String },
}

#[derive(Subcommand, Debug)]
pub enum MockCommand {
    /// An OpenAI-compatible embeddings API (`POST /v1/embeddings`) with fault injection;
    /// counters at `GET /_mock/stats`, knobs changed at runtime with `POST /_mock/config`.
    Openai {
        /// Address to listen on (loopback by default; port 0 picks a free port).
        #[arg(long, default_value = "127.0.0.1:8002")]
        listen: SocketAddr,
        #[command(flatten)]
        args: navigator_mock::openai::Args,
    },
    /// A LlamaParse-compatible parsing API that really parses uploads and calls back with signed
    /// webhooks (which can be lost or duplicated on demand).
    Llamaparse {
        #[arg(long, default_value = "127.0.0.1:8001")]
        listen: SocketAddr,
        #[command(flatten)]
        args: navigator_mock::llamaparse::Args,
    },
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum CliSearchMode {
    Hybrid,
    Vector,
    Keyword,
}

impl From<CliSearchMode> for SearchMode {
    fn from(m: CliSearchMode) -> Self {
        match m {
            CliSearchMode::Hybrid => SearchMode::Hybrid,
            CliSearchMode::Vector => SearchMode::Vector,
            CliSearchMode::Keyword => SearchMode::Keyword,
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum JobsCommand {
    /// List jobs, newest last.
    List {
        #[arg(long)]
        status: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Show one job and its events.
    Show { id: String },
    /// Re-queue a failed job at the stage it failed in.
    Retry { id: String },
}

#[derive(Subcommand, Debug)]
pub enum MigrateCommand {
    /// Apply pending migrations.
    Up,
    /// List migrations and whether each is applied.
    Status,
}

#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// Validate the configuration and report every problem.
    Check,
    /// Print the effective configuration with secrets redacted.
    Show,
    /// Print a fully commented example configuration.
    Example,
}

const EXIT_RUNTIME: u8 = 1;
const EXIT_CONFIG: u8 = 2;
const EXIT_PARTIAL: u8 = 3;
const EXIT_NOT_FOUND: u8 = 4;

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    if matches!(cli.command, Command::ParseSandbox) {
        return ExitCode::from(navigator_parse::sandbox::sandbox_child_main() as u8);
    }
    if let Command::Config {
        command: ConfigCommand::Example,
    } = cli.command
    {
        print!("{}", config::example_yaml());
        return ExitCode::SUCCESS;
    }
    if let Command::Mock { service } = cli.command {
        return run_mock(service);
    }
    // Variables that are not valid UTF-8 cannot be referenced from the config; skip them rather
    // than panic.
    let env: HashMap<String, String> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect();
    let config = match config::load(cli.config.as_deref(), &env) {
        Ok(c) => c,
        Err(errors) => {
            eprintln!("navigator: invalid configuration:\n{errors}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let format = match config.log.format {
        config::LogFormat::Json => LogFormat::Json,
        config::LogFormat::Text => LogFormat::Text,
    };
    // Services log at the configured level; interactive commands (progress bars, result lists)
    // show only warnings and errors unless RUST_LOG asks for more.
    let level = match cli.command {
        Command::Serve { .. } | Command::Worker => config.log.level.as_str(),
        _ => "warn",
    };
    telemetry::init_logging(format, level);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("navigator: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_RUNTIME);
        }
    };
    match runtime.block_on(run(cli.command, config)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("navigator: {e:#}");
            ExitCode::from(EXIT_RUNTIME)
        }
    }
}

/// `navigator mock …`: serves until SIGTERM/SIGINT, printing the address it listens on first
/// (so a script that asked for port 0 can read it).
fn run_mock(service: MockCommand) -> ExitCode {
    telemetry::init_logging(LogFormat::Text, "info");
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("navigator: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_RUNTIME);
        }
    };
    let served = runtime.block_on(async move {
        match service {
            MockCommand::Openai { listen, args } => {
                let listener = tokio::net::TcpListener::bind(listen)
                    .await
                    .with_context(|| format!("could not listen on {listen}"))?;
                let mock = navigator_mock::openai::serve(listener, args.into()).await?;
                println!("mock openai listening on {}", mock.base_url());
                crate::app::wait_for_signal().await;
                mock.stop().await
            }
            MockCommand::Llamaparse { listen, args } => {
                let listener = tokio::net::TcpListener::bind(listen)
                    .await
                    .with_context(|| format!("could not listen on {listen}"))?;
                let mock = navigator_mock::llamaparse::serve(listener, args.into()).await?;
                println!("mock llamaparse listening on {}", mock.url());
                crate::app::wait_for_signal().await;
                mock.stop().await
            }
        }
    });
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("navigator: {e:#}");
            ExitCode::from(EXIT_RUNTIME)
        }
    }
}

async fn run(command: Command, config: Config) -> anyhow::Result<ExitCode> {
    match command {
        Command::Serve { listen, no_workers } => {
            let listen = match listen {
                Some(addr) => addr,
                None => config.server.listen,
            };
            let app = App::build(config, BuildOptions::default()).await?;
            record_config_load(&app, "serve").await?;
            let running = app.start(listen, !no_workers).await?;
            println!("navigator listening on http://{}", running.addr);
            running.run_until_signal().await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Worker => {
            let app = App::build(config, BuildOptions::default()).await?;
            record_config_load(&app, "worker").await?;
            let mut tasks = JoinSet::new();
            app.spawn_workers(&mut tasks);
            crate::app::wait_for_signal().await;
            tracing::info!("shutdown requested; draining workers");
            app.state.shutdown.cancel();
            let grace = app.config.server.shutdown_grace() + Duration::from_secs(5);
            let _ =
                tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} })
                    .await;
            Ok(ExitCode::SUCCESS)
        }
        Command::Ingest { files, server } => match server {
            Some(url) => ingest_remote(&url, &files).await,
            None => ingest_local(config, &files).await,
        },
        Command::Search {
            query,
            limit,
            mode,
            server,
        } => {
            let hits = match server {
                Some(url) => search_remote(&url, &query, limit, mode.into()).await?,
                None => {
                    let app = App::build(config, BuildOptions::default()).await?;
                    let scope = OwnerScope::Owner(OwnerId::local());
                    let q = SearchQuery {
                        scope: &scope,
                        text: &query,
                        document_ids: None,
                        limit,
                    };
                    let hits = navigator_pipeline::search::search(
                        app.state.store.as_ref(),
                        app.state.embedder.as_ref(),
                        &q,
                        mode.into(),
                        app.config.search.rrf_k,
                    )
                    .await?;
                    // Like the API: recorded before anything is shown; never the query.
                    let mut documents: Vec<String> =
                        hits.iter().map(|h| h.document_id.to_string()).collect();
                    documents.sort();
                    documents.dedup();
                    app.state
                        .audit
                        .record(console_event(
                            crate::audit::Action::Search,
                            "search",
                            None,
                            serde_json::json!({"results": hits.len(), "documents": documents}),
                        ))
                        .await
                        .context("could not write to the audit log")?;
                    hits
                }
            };
            print_hits(&hits);
            Ok(ExitCode::SUCCESS)
        }
        Command::Jobs { command } => jobs(config, command).await,
        Command::Migrate { command } => {
            let store = crate::app::open_store(&config).await?;
            if matches!(command, MigrateCommand::Up) {
                store.migrate().await?;
                println!("migrations applied");
            }
            for m in store.migration_status().await? {
                println!(
                    "{:>4}  {:<8}  {}",
                    m.version,
                    if m.applied { "applied" } else { "pending" },
                    m.description
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Config { command } => {
            match command {
                ConfigCommand::Check => println!("configuration is valid"),
                ConfigCommand::Show => print!("{}", config::redacted_yaml(&config)),
                ConfigCommand::Example => print!("{}", config::example_yaml()),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Keys { command } => keys(config, command).await,
        Command::Audit { command } => audit(config, command).await,
        Command::Apikey { command } => apikey(config, command).await,
        Command::ParseSandbox | Command::Mock { .. } => {
            unreachable!("handled before the configuration is loaded")
        }
    }
}

/// Records which configuration a service started with: the SHA-256 of its redacted form (the
/// values themselves stay out of the log; secrets are never in it).
async fn record_config_load(app: &App, process: &str) -> anyhow::Result<()> {
    let redacted = config::redacted_yaml(&app.config);
    app.state
        .audit
        .record(console_event(
            crate::audit::Action::ConfigLoad,
            "config",
            None,
            serde_json::json!({
                "process": process,
                "sha256": hex::encode(Sha256::digest(redacted.as_bytes())),
                "version": env!("CARGO_PKG_VERSION"),
            }),
        ))
        .await
        .context("could not write to the audit log")?;
    Ok(())
}

/// An audit trail for commands run by an operator at the console.
fn console_auditor(
    store: std::sync::Arc<dyn navigator_store::Store>,
    key: navigator_crypto::audit::AuditKey,
) -> crate::audit::Auditor {
    crate::audit::Auditor::new(
        store,
        key,
        std::sync::Arc::new(navigator_domain::SystemClock),
    )
}

fn console_event(
    action: crate::audit::Action,
    resource_type: &'static str,
    resource_id: Option<String>,
    details: serde_json::Value,
) -> crate::audit::AuditEvent {
    crate::audit::AuditEvent {
        actor: "console".to_owned(),
        action,
        resource_type,
        resource_id,
        outcome: "success".to_owned(),
        request_id: None,
        source_ip: None,
        details,
    }
}

async fn keys(config: Config, command: KeysCommand) -> anyhow::Result<ExitCode> {
    if let KeysCommand::Rotate = command {
        if !config.encryption.keys.is_empty() {
            eprintln!(
                "navigator: keys come from encryption.keys; add a key there and set encryption.active_key"
            );
            return Ok(ExitCode::from(EXIT_CONFIG));
        }
        let path = config.keyring_file();
        let id = navigator_crypto::keyring::LocalKeyring::rotate_file(&path)
            .with_context(|| format!("could not rotate {}", path.display()))?;
        let store = crate::app::open_migrated_store(&config).await?;
        let (_, audit_key) = crate::app::open_keyring(&config, store.as_ref()).await?;
        console_auditor(store, audit_key)
            .record(console_event(
                crate::audit::Action::KeysRotate,
                "kek",
                Some(id.clone()),
                serde_json::json!({}),
            ))
            .await?;
        println!("new key-encryption key {id} is active for new data keys");
        println!("restart running processes, then run `navigator keys rewrap`");
        return Ok(ExitCode::SUCCESS);
    }
    let store = crate::app::open_migrated_store(&config).await?;
    let (keyring, audit_key) = crate::app::open_keyring(&config, store.as_ref()).await?;
    match command {
        KeysCommand::Rotate => unreachable!("handled above"),
        KeysCommand::SealExisting => {
            let keys = std::sync::Arc::new(navigator_pipeline::vault::DocumentKeys::new(
                store.clone(),
                keyring,
                std::sync::Arc::new(navigator_domain::SystemClock),
                Duration::from_secs(60),
            ));
            let blobs = navigator_pipeline::vault::DocumentBlobs::new(
                crate::app::open_blobs(&config)?,
                keys,
            );
            let (mut documents, mut sealed, mut after) = (0u64, 0u64, None);
            loop {
                let page = store.list_documents(&OwnerScope::All, after, 500).await?;
                let Some(last) = page.last() else { break };
                after = Some(last.id);
                for document in &page {
                    documents += 1;
                    sealed += u64::from(blobs.seal_plaintext(document.id).await?);
                }
            }
            console_auditor(store, audit_key)
                .record(console_event(
                    crate::audit::Action::KeysRewrap,
                    "blobs",
                    None,
                    serde_json::json!({"sealed": sealed, "documents": documents}),
                ))
                .await?;
            println!("sealed {sealed} plaintext blobs of {documents} documents");
            Ok(ExitCode::SUCCESS)
        }
        KeysCommand::Status => {
            println!("active key-encryption key: {}", {
                use navigator_crypto::keyring::KeyProvider;
                keyring.active_key_id()
            });
            for (kek, count) in store.count_data_keys_by_kek().await? {
                println!("{kek:<40} {count:>10} data keys");
            }
            Ok(ExitCode::SUCCESS)
        }
        KeysCommand::Rewrap { batch } => {
            let keys = navigator_pipeline::vault::DocumentKeys::new(
                store.clone(),
                keyring,
                std::sync::Arc::new(navigator_domain::SystemClock),
                Duration::from_secs(1),
            );
            let report = keys.rewrap(batch).await?;
            console_auditor(store, audit_key)
                .record(console_event(
                    crate::audit::Action::KeysRewrap,
                    "data_keys",
                    None,
                    serde_json::json!({"rewrapped": report.rewrapped, "skipped": report.skipped}),
                ))
                .await?;
            println!(
                "re-wrapped {} data keys ({} changed meanwhile; run again to finish them)",
                report.rewrapped, report.skipped
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn audit(config: Config, command: AuditCommand) -> anyhow::Result<ExitCode> {
    // Read-only: no migrations (a verification must not change the database it checks).
    let store = crate::app::open_store(&config).await?;
    match command {
        AuditCommand::Export { after } => {
            let mut after = after;
            loop {
                let page = store.audit_chain(after, 1000).await?;
                let Some(last) = page.last() else { break };
                after = last.seq;
                for record in &page {
                    let entry: serde_json::Value =
                        serde_json::from_slice(&record.entry).unwrap_or(serde_json::Value::Null);
                    println!(
                        "{}",
                        serde_json::json!({"seq": record.seq, "entry": entry, "prev_hash": hex::encode(record.prev_hash), "hash": hex::encode(record.hash)})
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Verify { anchor, no_anchor } => {
            let (_, audit_key) = crate::app::open_keyring(&config, store.as_ref()).await?;
            let anchor_path = anchor.unwrap_or_else(|| config.audit_anchor_file());
            let anchor = (!no_anchor).then_some(anchor_path.as_path());
            match crate::audit::verify_chain(store.as_ref(), audit_key, anchor).await? {
                Ok(summary) => {
                    println!(
                        "audit log intact: {} entries{}",
                        summary.entries,
                        summary
                            .head
                            .map(|(seq, hash)| format!(", head {seq} {}", hex::encode(hash)))
                            .unwrap_or_default()
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Err(crate::audit::ChainBroken::AnchorMissing) => {
                    eprintln!(
                        "navigator: {}; pass --anchor FILE, or --no-anchor to check the chain only",
                        crate::audit::ChainBroken::AnchorMissing
                    );
                    Ok(ExitCode::from(EXIT_PARTIAL))
                }
                Err(broken) => {
                    eprintln!("navigator: audit log broken: {broken}");
                    Ok(ExitCode::from(EXIT_CONFIG))
                }
            }
        }
    }
}

async fn apikey(config: Config, command: ApikeyCommand) -> anyhow::Result<ExitCode> {
    use crate::http::auth::api_keys;
    let store = crate::app::open_migrated_store(&config).await?;
    let (_, audit_key) = crate::app::open_keyring(&config, store.as_ref()).await?;
    let auditor = console_auditor(store.clone(), audit_key);
    let now = time::OffsetDateTime::now_utc();
    match command {
        ApikeyCommand::Create {
            owner,
            roles,
            expires_in_days,
            label,
        } => {
            let Ok(owner) = OwnerId::parse(&owner) else {
                eprintln!("navigator: --owner must be a non-empty id without spaces");
                return Ok(ExitCode::from(EXIT_CONFIG));
            };
            let expires_at = (expires_in_days > 0)
                .then(|| now + time::Duration::days(i64::from(expires_in_days)));
            let (secret, record) =
                api_keys::create_api_key(store.as_ref(), owner, roles, label, expires_at, now)
                    .await?;
            auditor
                .record(console_event(
                    crate::audit::Action::ApiKeyCreate,
                    "api_key",
                    Some(record.id.clone()),
                    serde_json::json!({"owner": record.owner, "roles": record.roles}),
                ))
                .await?;
            println!("{secret}");
            eprintln!(
                "API key {} created; the line above is shown once and cannot be recovered",
                record.id
            );
            Ok(ExitCode::SUCCESS)
        }
        ApikeyCommand::List => {
            println!(
                "{:<16}  {:<20}  {:<24}  {:<8}  expires",
                "id", "owner", "roles", "state"
            );
            for key in api_keys::list_api_keys(store.as_ref()).await? {
                let state = if key.revoked_at.is_some() {
                    "revoked"
                } else if key.expires_at.is_some_and(|e| e <= now) {
                    "expired"
                } else {
                    "active"
                };
                println!(
                    "{:<16}  {:<20}  {:<24}  {:<8}  {}",
                    key.id,
                    key.owner,
                    key.roles.join(","),
                    state,
                    key.expires_at
                        .and_then(|e| e
                            .format(&time::format_description::well_known::Rfc3339)
                            .ok())
                        .unwrap_or_else(|| "never".to_owned())
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        ApikeyCommand::Revoke { id } => {
            match api_keys::revoke_api_key(store.as_ref(), &id, now).await {
                Ok(_) => {
                    auditor
                        .record(console_event(
                            crate::audit::Action::ApiKeyRevoke,
                            "api_key",
                            Some(id.clone()),
                            serde_json::json!({}),
                        ))
                        .await?;
                    println!("API key {id} revoked");
                    Ok(ExitCode::SUCCESS)
                }
                Err(e)
                    if e.downcast_ref::<navigator_store::StoreError>()
                        .is_some_and(|e| matches!(e, navigator_store::StoreError::NotFound)) =>
                {
                    eprintln!("navigator: no API key {id}");
                    Ok(ExitCode::from(EXIT_NOT_FOUND))
                }
                Err(e) => Err(e),
            }
        }
    }
}

async fn jobs(config: Config, command: JobsCommand) -> anyhow::Result<ExitCode> {
    let store = crate::app::open_migrated_store(&config).await?;
    let scope = OwnerScope::All;
    match command {
        JobsCommand::List { status, limit } => {
            let status = match status {
                None => None,
                Some(s) => match JobStatus::parse(&s) {
                    Some(s) => Some(s),
                    None => {
                        eprintln!(
                            "navigator: --status must be one of queued, running, waiting, retrying, complete, failed, cancelled"
                        );
                        return Ok(ExitCode::from(EXIT_CONFIG));
                    }
                },
            };
            let jobs = store
                .list_jobs(&scope, status, None, limit.clamp(1, 500))
                .await?;
            println!(
                "{:<36}  {:<9}  {:<6}  {:>3}  error",
                "job", "status", "stage", "try"
            );
            for j in jobs {
                println!(
                    "{:<36}  {:<9}  {:<6}  {:>3}  {}",
                    j.id,
                    j.status,
                    j.stage,
                    j.attempts,
                    j.error.map(|e| e.code.to_string()).unwrap_or_default()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        JobsCommand::Show { id } => {
            let Ok(id) = JobId::parse(&id) else {
                eprintln!("navigator: not a job id");
                return Ok(ExitCode::from(EXIT_CONFIG));
            };
            let job = match store.get_job(&scope, id).await {
                Ok(j) => j,
                Err(navigator_store::StoreError::NotFound) => {
                    eprintln!("navigator: job not found");
                    return Ok(ExitCode::from(EXIT_NOT_FOUND));
                }
                Err(e) => return Err(e.into()),
            };
            println!("{}", serde_json::to_string_pretty(&job)?);
            for e in store.job_events(id, 0).await? {
                println!(
                    "{}  {:>9} -> {:<9}  {:<6}  {}{}",
                    crate::http::documents::rfc3339(e.at),
                    e.from.map(|s| s.as_str()).unwrap_or("-"),
                    e.to,
                    e.stage,
                    e.detail.unwrap_or_default(),
                    e.error_code.map(|c| format!(" [{c}]")).unwrap_or_default()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        JobsCommand::Retry { id } => {
            let Ok(id) = JobId::parse(&id) else {
                eprintln!("navigator: not a job id");
                return Ok(ExitCode::from(EXIT_CONFIG));
            };
            match store
                .retry_job(&scope, id, time::OffsetDateTime::now_utc())
                .await
            {
                Ok(job) => {
                    let (_, audit_key) = crate::app::open_keyring(&config, store.as_ref()).await?;
                    console_auditor(store.clone(), audit_key)
                        .record(console_event(
                            crate::audit::Action::JobRetry,
                            "job",
                            Some(job.id.to_string()),
                            serde_json::json!({"document_id": job.document_id, "stage": job.stage}),
                        ))
                        .await
                        .context("could not write to the audit log")?;
                    println!("job {} re-queued at stage {}", job.id, job.stage);
                    Ok(ExitCode::SUCCESS)
                }
                Err(navigator_store::StoreError::NotFound) => {
                    eprintln!("navigator: job not found");
                    Ok(ExitCode::from(EXIT_NOT_FOUND))
                }
                Err(navigator_store::StoreError::StaleState { .. }) => {
                    eprintln!("navigator: only a failed job can be retried");
                    Ok(ExitCode::from(EXIT_PARTIAL))
                }
                Err(e) => Err(e.into()),
            }
        }
    }
}

fn hash_file(path: &Path) -> anyhow::Result<(u64, Sha256Hex)> {
    let mut file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        total += n as u64;
        hasher.update(&buf[..n]);
    }
    Ok((total, Sha256Hex::from_digest(&hasher.finalize())))
}

/// What the progress display needs from a job, wherever it was read (store or HTTP).
struct JobSnapshot {
    status: JobStatus,
    stage: Stage,
    pages: Option<u32>,
    chunks_total: Option<u32>,
    chunks_embedded: u32,
    error_code: Option<String>,
}

impl JobSnapshot {
    fn from_record(job: &navigator_store::JobRecord) -> Self {
        Self {
            status: job.status,
            stage: job.stage,
            pages: job.progress.pages,
            chunks_total: job.progress.chunks_total,
            chunks_embedded: job.progress.chunks_embedded,
            error_code: job.error.as_ref().map(|e| e.code.to_string()),
        }
    }

    fn from_json(job: &serde_json::Value) -> Self {
        let progress = &job["progress"];
        Self {
            status: job["status"]
                .as_str()
                .and_then(JobStatus::parse)
                .unwrap_or(JobStatus::Queued),
            stage: job["stage"]
                .as_str()
                .and_then(Stage::parse)
                .unwrap_or(Stage::Parse),
            pages: progress["pages"].as_u64().map(|p| p as u32),
            chunks_total: progress["chunks_total"].as_u64().map(|c| c as u32),
            chunks_embedded: progress["chunks_embedded"].as_u64().unwrap_or(0) as u32,
            error_code: job["error"]["code"].as_str().map(str::to_owned),
        }
    }
}

struct Tracked {
    label: String,
    job_id: JobId,
    bar: ProgressBar,
    started: Instant,
    last: Option<JobSnapshot>,
    outcome: Option<String>,
}

/// One progress bar per document (parse, chunk, then embed progress in chunks), then a summary.
struct IngestDisplay {
    multi: MultiProgress,
    /// Before the chunk count is known (queued, parsing): no bar, which would look full at 0/0.
    waiting: ProgressStyle,
    bar: ProgressStyle,
    tracked: Vec<Tracked>,
}

impl IngestDisplay {
    fn new() -> Self {
        let multi = MultiProgress::new();
        if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            multi.set_draw_target(ProgressDrawTarget::hidden());
        }
        let waiting = ProgressStyle::with_template("{prefix:<28} {msg:<28} {elapsed:>37}")
            .expect("static template");
        let bar = ProgressStyle::with_template(
            "{prefix:<28} {msg:<28} [{bar:30}] {pos}/{len} chunks  {elapsed}",
        )
        .expect("static template")
        .progress_chars("=> ");
        Self {
            multi,
            waiting,
            bar,
            tracked: Vec::new(),
        }
    }

    fn track(&mut self, label: String, job_id: JobId, duplicate: bool) {
        let bar = self.multi.add(ProgressBar::new(0));
        bar.set_style(self.waiting.clone());
        bar.set_prefix(short(&label, 28));
        bar.set_message(if duplicate { "duplicate" } else { "queued" });
        self.tracked.push(Tracked {
            label,
            job_id,
            bar,
            started: Instant::now(),
            last: None,
            outcome: None,
        });
    }

    /// Polls every tracked job through `fetch` until all are terminal.
    async fn follow<F, Fut>(&mut self, mut fetch: F, every: Duration) -> anyhow::Result<()>
    where
        F: FnMut(JobId) -> Fut,
        Fut: std::future::Future<Output = anyhow::Result<JobSnapshot>>,
    {
        loop {
            let mut pending = 0;
            for t in self.tracked.iter_mut().filter(|t| t.outcome.is_none()) {
                let job = fetch(t.job_id).await?;
                if let Some(total) = job.chunks_total.filter(|t| *t > 0) {
                    if t.bar.length() != Some(u64::from(total)) {
                        t.bar.set_style(self.bar.clone());
                        t.bar.set_length(u64::from(total));
                    }
                    t.bar.set_position(u64::from(job.chunks_embedded));
                }
                t.bar.set_message(match job.status {
                    JobStatus::Running => format!("{}…", job.stage),
                    other => other.to_string(),
                });
                if job.status.is_terminal() {
                    let outcome = match &job.error_code {
                        Some(code) => format!("{} ({code})", job.status),
                        None => job.status.to_string(),
                    };
                    t.bar.finish_with_message(outcome.clone());
                    t.outcome = Some(outcome);
                } else {
                    pending += 1;
                }
                t.last = Some(job);
            }
            if pending == 0 {
                return Ok(());
            }
            tokio::time::sleep(every).await;
        }
    }

    /// Prints the summary; success only if every one of `attempted` files became searchable.
    fn summary(&self, attempted: usize) -> ExitCode {
        println!();
        println!(
            "{:<32} {:<28} {:>6} {:>7} {:>8}",
            "document", "result", "pages", "chunks", "seconds"
        );
        let mut searchable = 0;
        for t in &self.tracked {
            let outcome = t.outcome.clone().unwrap_or_default();
            if outcome == JobStatus::Complete.as_str() {
                searchable += 1;
            }
            let last = t.last.as_ref();
            println!(
                "{:<32} {:<28} {:>6} {:>7} {:>8.1}",
                short(&t.label, 32),
                outcome,
                last.and_then(|j| j.pages)
                    .map(|p| p.to_string())
                    .unwrap_or_else(|| "-".into()),
                last.and_then(|j| j.chunks_total)
                    .map(|c| c.to_string())
                    .unwrap_or_else(|| "-".into()),
                t.started.elapsed().as_secs_f64()
            );
        }
        println!(
            "{searchable} of {} documents searchable",
            self.tracked.len()
        );
        if searchable == attempted {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(EXIT_PARTIAL)
        }
    }
}

fn file_label(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "document".into())
}

/// Ingests into the configured store with in-process workers, drawing a bar per document.
async fn ingest_local(config: Config, files: &[PathBuf]) -> anyhow::Result<ExitCode> {
    let app = App::build(config, BuildOptions::default()).await?;
    let mut display = IngestDisplay::new();
    for path in files {
        let (bytes, sha256) = hash_file(path)?;
        let label = file_label(path);
        if bytes > app.config.server.max_upload_bytes {
            eprintln!("navigator: {label}: larger than server.max_upload_bytes; skipped");
            continue;
        }
        let upload = Upload {
            owner: OwnerId::local(),
            filename: label.clone(),
            declared_type: None,
            file: path,
            bytes,
            sha256,
            metadata: serde_json::json!({}),
            idempotency_key: None,
        };
        match ingest::accept(
            app.state.store.as_ref(),
            &app.state.blobs,
            upload,
            app.state.clock.now(),
        )
        .await
        {
            Ok(created) => {
                app.state
                    .audit
                    .record(console_event(
                        crate::audit::Action::DocumentUpload,
                        "document",
                        Some(created.document.id.to_string()),
                        serde_json::json!({"job_id": created.job.id, "bytes": bytes, "duplicate": created.duplicate}),
                    ))
                    .await
                    .context("could not write to the audit log")?;
                display.track(label, created.job.id, created.duplicate)
            }
            Err(e) => eprintln!("navigator: {label}: {e} ({})", e.code()),
        }
    }
    let mut tasks = JoinSet::new();
    app.spawn_workers(&mut tasks);
    app.state.wake.notify_waiters();
    let store = app.state.store.clone();
    let followed = display
        .follow(
            |id| {
                let store = store.clone();
                async move {
                    let job = store.get_job(&OwnerScope::All, id).await?;
                    Ok(JobSnapshot::from_record(&job))
                }
            },
            Duration::from_millis(150),
        )
        .await;
    app.state.shutdown.cancel();
    while tasks.join_next().await.is_some() {}
    followed?;
    Ok(display.summary(files.len()))
}

fn short(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let mut out: String = s.chars().take(max - 1).collect();
        out.push('…');
        out
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(300))
        .build()
        .expect("a plain HTTP client builds")
}

/// Uploads to a running server and follows each job there.
async fn ingest_remote(server: &str, files: &[PathBuf]) -> anyhow::Result<ExitCode> {
    let base = server.trim_end_matches('/');
    let http = client();
    let mut display = IngestDisplay::new();
    for path in files {
        let label = file_label(path);
        let body = tokio::fs::read(path)
            .await
            .with_context(|| format!("cannot read {}", path.display()))?;
        let part = reqwest::multipart::Part::bytes(body).file_name(label.clone());
        let form = reqwest::multipart::Form::new().part("file", part);
        let response = http
            .post(format!("{base}/v1/documents"))
            .multipart(form)
            .send()
            .await
            .with_context(|| format!("cannot reach {base}"))?;
        let status = response.status();
        let json: serde_json::Value = response.json().await.unwrap_or_default();
        if !status.is_success() {
            eprintln!(
                "navigator: {label}: {} ({})",
                json["detail"].as_str().unwrap_or("upload refused"),
                json["code"].as_str().unwrap_or("error")
            );
            continue;
        }
        let job_id = JobId::parse(json["job_id"].as_str().unwrap_or_default())
            .context("server answered without a job id")?;
        display.track(label, job_id, json["duplicate"].as_bool().unwrap_or(false));
    }
    display
        .follow(
            |id| {
                let request = http.get(format!("{base}/v1/jobs/{id}"));
                async move {
                    let job: serde_json::Value =
                        request.send().await?.error_for_status()?.json().await?;
                    Ok(JobSnapshot::from_json(&job))
                }
            },
            Duration::from_millis(300),
        )
        .await?;
    Ok(display.summary(files.len()))
}

async fn search_remote(
    server: &str,
    query: &str,
    limit: u32,
    mode: SearchMode,
) -> anyhow::Result<Vec<ChunkHit>> {
    let base = server.trim_end_matches('/');
    let response = client()
        .post(format!("{base}/v1/search"))
        .json(&serde_json::json!({"query": query, "limit": limit, "mode": mode}))
        .send()
        .await
        .with_context(|| format!("cannot reach {base}"))?;
    let status = response.status();
    let json: serde_json::Value = response.json().await.unwrap_or_default();
    if !status.is_success() {
        anyhow::bail!(
            "search refused: {} ({})",
            json["detail"].as_str().unwrap_or(""),
            json["code"].as_str().unwrap_or("error")
        );
    }
    let mut hits = Vec::new();
    for r in json["results"].as_array().cloned().unwrap_or_default() {
        hits.push(ChunkHit {
            chunk_id: serde_json::from_value(r["chunk_id"].clone())?,
            document_id: serde_json::from_value(r["document_id"].clone())?,
            filename: r["filename"].as_str().unwrap_or_default().to_owned(),
            page_start: r["page_start"].as_u64().unwrap_or(0) as u32,
            page_end: r["page_end"].as_u64().unwrap_or(0) as u32,
            section: r["section"].as_str().unwrap_or_default().to_owned(),
            text: r["text"].as_str().unwrap_or_default().to_owned(),
            score: r["score"].as_f64().unwrap_or(0.0),
        });
    }
    Ok(hits)
}

fn print_hits(hits: &[ChunkHit]) {
    if hits.is_empty() {
        println!("no passages found");
        return;
    }
    for (i, h) in hits.iter().enumerate() {
        let pages = if h.page_start == h.page_end {
            format!("p. {}", h.page_start)
        } else {
            format!("pp. {}–{}", h.page_start, h.page_end)
        };
        let section = if h.section.is_empty() {
            String::new()
        } else {
            format!(" § {}", h.section)
        };
        println!(
            "{}. {} — {}{}  (score {:.4})",
            i + 1,
            h.filename,
            pages,
            section,
            h.score
        );
        let text: String = h.text.split_whitespace().collect::<Vec<_>>().join(" ");
        println!("   {}\n", short(&text, 400));
    }
}
