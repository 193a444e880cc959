//! HTTPS for the API (`server.tls`): rustls with the aws-lc-rs provider, TLS 1.2 and 1.3 only,
//! the certificate and key re-read when either file changes, and `Strict-Transport-Security` on
//! every response.
//!
//! Main items: [`serve`] (what [`crate::app::App::start`] calls when a certificate is
//! configured), [`load_server_config`], [`with_hsts`] and [`install_crypto_provider`].
//!
//! Key design choices:
//! - axum-server's rustls acceptor serves the same axum make-service as plain HTTP, so
//!   `ConnectInfo<SocketAddr>` (the audit log's source IP) works unchanged, and its `Handle`
//!   drains gracefully on the same cancellation token.
//! - Rotation polls the two files' modification time, length and inode every
//!   `reload_interval_secs` rather than using inotify: it works on every file system (bind
//!   mounts, Kubernetes secret volumes that swap a symlink) and needs no extra dependency. A pair
//!   that fails to load (unreadable, not PEM, key not matching the certificate — as when the
//!   poll falls between writing the certificate and the key) is logged with its paths and the
//!   old pair keeps serving; the next change is tried again.
//! - Error messages name files and never quote the key file's contents.

use anyhow::{Context, anyhow};
use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use axum_server::tls_rustls::RustlsConfig;
use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// The only protocol versions served (rustls implements nothing older than 1.2 anyway).
pub static PROTOCOL_VERSIONS: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

/// Makes aws-lc-rs the process-wide rustls provider, for the libraries (sqlx, reqwest) that
/// build their TLS configurations from the default. Idempotent; a provider installed earlier
/// stays.
pub fn install_crypto_provider() {
    if CryptoProvider::get_default().is_none() {
        // Losing a race with another thread installing one is fine.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    }
}

/// Reads the PEM certificate chain (leaf first) and private key and builds the server's rustls
/// configuration: aws-lc-rs, TLS 1.3 and 1.2, ALPN h2 and http/1.1. Fails when either file
/// cannot be read or parsed or when the key does not belong to the certificate.
pub fn load_server_config(cert_path: &Path, key_path: &Path) -> anyhow::Result<ServerConfig> {
    let cert_pem = std::fs::read(cert_path)
        .with_context(|| format!("could not read the TLS certificate {}", cert_path.display()))?;
    let certs = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            anyhow!(
                "could not parse the TLS certificate {} as PEM: {e}",
                cert_path.display()
            )
        })?;
    if certs.is_empty() {
        return Err(anyhow!(
            "the TLS certificate file {} holds no PEM certificate",
            cert_path.display()
        ));
    }
    let key_pem = std::fs::read(key_path)
        .with_context(|| format!("could not read the TLS key {}", key_path.display()))?;
    // The parser's own error is not quoted: it may echo part of the file.
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|_| {
        anyhow!(
            "could not parse the TLS key {} (a PEM PKCS#8, PKCS#1 or SEC1 private key is expected)",
            key_path.display()
        )
    })?;
    drop(key_pem);
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(PROTOCOL_VERSIONS)
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            anyhow!(
                "the TLS key {} does not fit the certificate {}: {e}",
                key_path.display(),
                cert_path.display()
            )
        })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// Adds `Strict-Transport-Security: max-age=N; includeSubDomains` to every response of
/// `router` (only ever applied when serving TLS: browsers ignore it over plain HTTP).
pub fn with_hsts(router: Router, max_age_secs: u64) -> Router {
    let value = HeaderValue::from_str(&format!("max-age={max_age_secs}; includeSubDomains"))
        .expect("digits and ASCII make a valid header value");
    router.layer(axum::middleware::from_fn(
        move |request: Request, next: Next| {
            let value = value.clone();
            async move {
                let mut response: Response = next.run(request).await;
                response
                    .headers_mut()
                    .insert(header::STRICT_TRANSPORT_SECURITY, value);
                response
            }
        },
    ))
}

/// Serves `router` over TLS on `listener` until `shutdown` is cancelled, then drains like
/// `axum::serve(...).with_graceful_shutdown` (stops accepting, lets open requests finish).
/// `rustls` must come from [`load_server_config`] on `cert_path`/`key_path`; the pair is
/// re-read every `reload_interval` when either file changed.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    rustls: ServerConfig,
    files: TlsFiles,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let config = RustlsConfig::from_config(Arc::new(rustls));
    let handle = axum_server::Handle::<SocketAddr>::new();
    let reloader = tokio::spawn(watch_and_reload(config.clone(), files, shutdown.clone()));
    let drain = {
        let handle = handle.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            shutdown.cancelled().await;
            handle.graceful_shutdown(None);
        })
    };
    let served = async {
        axum_server::tls_rustls::from_tcp_rustls(listener.into_std()?, config)?
            .handle(handle)
            .serve(router.into_make_service_with_connect_info::<SocketAddr>())
            .await
    }
    .await;
    reloader.abort();
    drain.abort();
    served
}

/// The files [`serve`] watches.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert_path: PathBuf,
    pub key_path: PathBuf,
    pub reload_interval: Duration,
}

/// What identifies one version of a file: modification time, length and inode (a replacement
/// by rename changes the inode even within the file system's timestamp granularity).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Fingerprint {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

fn fingerprint(path: &Path) -> Option<Fingerprint> {
    // `metadata` follows symlinks, so a swapped symlink target counts as a change.
    let meta = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(&meta);
    #[cfg(not(unix))]
    let inode = 0;
    Some(Fingerprint {
        modified: meta.modified().ok(),
        len: meta.len(),
        inode,
    })
}

async fn watch_and_reload(config: RustlsConfig, files: TlsFiles, shutdown: CancellationToken) {
    let fingerprints =
        |files: &TlsFiles| (fingerprint(&files.cert_path), fingerprint(&files.key_path));
    let mut seen = fingerprints(&files);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(files.reload_interval) => {}
        }
        let now = fingerprints(&files);
        if now == seen {
            continue;
        }
        seen = now;
        let (cert_path, key_path) = (files.cert_path.clone(), files.key_path.clone());
        let loaded =
            tokio::task::spawn_blocking(move || load_server_config(&cert_path, &key_path)).await;
        match loaded {
            Ok(Ok(rustls)) => {
                config.reload_from_config(Arc::new(rustls));
                metrics::counter!("navigator_tls_reloads_total", "outcome" => "ok").increment(1);
                tracing::info!(
                    cert = %files.cert_path.display(),
                    "reloaded the TLS certificate"
                );
            }
            Ok(Err(error)) => {
                metrics::counter!("navigator_tls_reloads_total", "outcome" => "failed")
                    .increment(1);
                tracing::warn!(
                    cert = %files.cert_path.display(),
                    key = %files.key_path.display(),
                    error = %format!("{error:#}"),
                    "could not reload the TLS certificate; still serving the previous one"
                );
            }
            Err(join) => {
                tracing::warn!(error = %join, "the TLS reload task failed");
            }
        }
    }
}
