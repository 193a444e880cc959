//! HTTPS (`server.tls`) and TLS to PostgreSQL (`database.tls`).
//!
//! Each test makes its own CA and server certificates for 127.0.0.1/localhost with rcgen, starts
//! the app with TLS, and talks to it with reqwest trusting only that CA, or with a raw
//! tokio-rustls connection to read the certificate and protocol version the server presents.
//!
//! TLS 1.0/1.1: rustls (and so reqwest and tokio-rustls) cannot speak them at all, so those
//! tests send a hand-made TLS 1.0 / 1.1 ClientHello over TCP and require the server's fatal
//! `protocol_version` alert instead of a ServerHello.

mod support;

use navigator_server::app::App;
use navigator_server::config;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SerialNumber,
};
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::TestApp;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

// ---------------------------------------------------------------------------------------------
// Certificates

struct Ca {
    pem: String,
    der: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
}

fn new_ca(name: &str) -> Ca {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let key = KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    Ca {
        pem: cert.pem(),
        der: cert.der().clone(),
        issuer: Issuer::new(params, key),
    }
}

struct Leaf {
    cert_pem: String,
    key_pem: String,
    der: CertificateDer<'static>,
}

/// A server certificate for 127.0.0.1 and localhost, signed by `ca`, with its own CN and serial.
fn new_leaf(ca: &Ca, common_name: &str, serial: u64) -> Leaf {
    let mut params =
        CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.serial_number = Some(SerialNumber::from(serial));
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &ca.issuer).unwrap();
    Leaf {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        der: cert.der().clone(),
    }
}

/// Writes `contents` to `path` the way a deploy tool does: a sibling temporary file renamed over
/// the old one.
fn replace_file(path: &Path, contents: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, contents).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

// ---------------------------------------------------------------------------------------------
// Apps and clients

struct TlsApp {
    app: TestApp,
    addr: SocketAddr,
    ca: Ca,
    first: Leaf,
    cert_path: PathBuf,
    key_path: PathBuf,
    _certs: tempfile::TempDir,
}

impl TlsApp {
    fn https(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.addr.port())
    }
}

const HSTS_MAX_AGE: u64 = 600;

async fn spawn_tls_app() -> TlsApp {
    let ca = new_ca("navigator test CA");
    let first = new_leaf(&ca, "navigator-first", 1001);
    let certs = tempfile::tempdir().unwrap();
    let cert_path = certs.path().join("cert.pem");
    let key_path = certs.path().join("key.pem");
    std::fs::write(&cert_path, &first.cert_pem).unwrap();
    std::fs::write(&key_path, &first.key_pem).unwrap();
    let tls_yaml = format!(
        "server:\n  tls:\n    cert_path: {}\n    key_path: {}\n    reload_interval_secs: 1\n  hsts_max_age_secs: {HSTS_MAX_AGE}\n",
        cert_path.display(),
        key_path.display()
    );
    let app = support::spawn_app_on(
        0,
        move |yaml| {
            assert!(yaml.contains("server:\n"));
            yaml.replacen("server:\n", &tls_yaml, 1)
        },
        support::sandbox_options(),
    )
    .await;
    let addr = app.running.as_ref().unwrap().addr;
    TlsApp {
        app,
        addr,
        ca,
        first,
        cert_path,
        key_path,
        _certs: certs,
    }
}

/// A reqwest client that trusts only `ca`.
fn client_trusting(ca: &Ca) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(ca.pem.as_bytes()).unwrap()])
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

fn client_config(
    ca: &CertificateDer<'static>,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone()).unwrap();
    rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_protocol_versions(versions)
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth()
}

/// A fresh TLS connection (verifying the chain to `ca` and the name `localhost`): the leaf
/// certificate the server presented and the negotiated protocol version.
async fn handshake(
    addr: SocketAddr,
    ca: &CertificateDer<'static>,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> std::io::Result<(CertificateDer<'static>, rustls::ProtocolVersion)> {
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client_config(ca, versions)));
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from("localhost").unwrap().to_owned();
    let stream = tokio::time::timeout(Duration::from_secs(10), connector.connect(name, tcp))
        .await
        .map_err(|_| std::io::Error::other("TLS handshake timed out"))??;
    let (_, connection) = stream.get_ref();
    let leaf = connection
        .peer_certificates()
        .and_then(|chain| chain.first())
        .expect("the server presents a certificate")
        .clone()
        .into_owned();
    let version = connection
        .protocol_version()
        .expect("a finished handshake has a version");
    Ok((leaf, version))
}

async fn presented_leaf(addr: SocketAddr, ca: &CertificateDer<'static>) -> CertificateDer<'static> {
    handshake(addr, ca, rustls::DEFAULT_VERSIONS)
        .await
        .expect("TLS handshake")
        .0
}

/// Polls fresh connections until the server presents `want`, for at most `within`.
async fn wait_for_leaf(
    addr: SocketAddr,
    ca: &CertificateDer<'static>,
    want: &CertificateDer<'static>,
    within: Duration,
) {
    let deadline = Instant::now() + within;
    loop {
        if presented_leaf(addr, ca).await == *want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the server did not present the replaced certificate within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Sends a TLS ClientHello offering only `version` (0x0301 = TLS 1.0, 0x0302 = TLS 1.1, no
/// supported_versions extension), with a signature_algorithms extension when `sig_algs`, and
/// returns the bytes the server answers with.
async fn raw_legacy_client_hello(addr: SocketAddr, version: [u8; 2], sig_algs: bool) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&version); // client_version
    body.extend_from_slice(&[0x42; 32]); // random
    body.push(0); // session id
    // TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA, TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA,
    // TLS_RSA_WITH_AES_128_CBC_SHA
    let suites: [u8; 6] = [0xc0, 0x13, 0xc0, 0x09, 0x00, 0x2f];
    body.extend_from_slice(&(suites.len() as u16).to_be_bytes());
    body.extend_from_slice(&suites);
    body.extend_from_slice(&[1, 0]); // compression: null
    if sig_algs {
        // rsa_pkcs1_sha256, ecdsa_secp256r1_sha256
        let schemes: [u8; 4] = [0x04, 0x01, 0x04, 0x03];
        let mut extension = vec![0x00, 0x0d];
        extension.extend_from_slice(&((schemes.len() + 2) as u16).to_be_bytes());
        extension.extend_from_slice(&(schemes.len() as u16).to_be_bytes());
        extension.extend_from_slice(&schemes);
        body.extend_from_slice(&(extension.len() as u16).to_be_bytes());
        body.extend_from_slice(&extension);
    }
    let mut handshake = vec![1u8]; // client_hello
    handshake.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    handshake.extend_from_slice(&body);
    let mut record = vec![0x16, 0x03, 0x01]; // handshake record, record-layer version 1.0
    record.extend_from_slice(&(handshake.len() as u16).to_be_bytes());
    record.extend_from_slice(&handshake);

    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(&record).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut answer)).await;
    answer
}

// ---------------------------------------------------------------------------------------------
// HTTPS

#[tokio::test]
async fn healthz_over_https_answers_with_hsts_and_records_the_peer_ip() {
    let tls = spawn_tls_app().await;
    let http = client_trusting(&tls.ca);

    let response = http.get(tls.https("/healthz")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response
            .headers()
            .get("strict-transport-security")
            .and_then(|v| v.to_str().ok()),
        Some(format!("max-age={HSTS_MAX_AGE}; includeSubDomains").as_str()),
        "every TLS response carries HSTS"
    );
    // The security headers set by the HTTP layer are still there.
    assert!(
        response.headers().contains_key("x-content-type-options"),
        "{:?}",
        response.headers()
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "ok", "{body}");

    // Error responses carry it too.
    let missing = http.get(tls.https("/no/such/route")).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    assert!(missing.headers().contains_key("strict-transport-security"));

    // The peer address still reaches the handlers over TLS: the audit log records it.
    let search = http
        .post(tls.https("/v1/search"))
        .json(&json!({"query": "anything"}))
        .send()
        .await
        .unwrap();
    assert_eq!(search.status(), 200);
    let page: Value = http
        .get(tls.https("/v1/audit?action=search"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let items = page["items"].as_array().expect("audit items");
    assert!(!items.is_empty(), "{page}");
    assert_eq!(items[0]["entry"]["source_ip"], "127.0.0.1", "{page}");

    tls.app.stop().await;
}

#[tokio::test]
async fn plain_http_gets_no_hsts_and_plain_http_to_the_tls_port_fails() {
    let plain = support::spawn_app().await;
    let response = plain.http.get(plain.url("/healthz")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        !response.headers().contains_key("strict-transport-security"),
        "no HSTS without TLS"
    );
    plain.stop().await;

    let tls = spawn_tls_app().await;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let result = http
        .get(format!("http://127.0.0.1:{}/healthz", tls.addr.port()))
        .send()
        .await;
    assert!(
        result.is_err(),
        "plain HTTP to the TLS port must not get an answer: {result:?}"
    );
    // A client that does not trust the CA is refused too.
    let untrusting = reqwest::Client::builder()
        .tls_certs_only([
            reqwest::Certificate::from_pem(new_ca("other CA").pem.as_bytes()).unwrap(),
        ])
        .build()
        .unwrap();
    assert!(untrusting.get(tls.https("/healthz")).send().await.is_err());
    tls.app.stop().await;
}

#[tokio::test]
async fn only_tls_1_2_and_1_3_are_spoken() {
    let tls = spawn_tls_app().await;
    let (_, default_version) = handshake(tls.addr, &tls.ca.der, rustls::DEFAULT_VERSIONS)
        .await
        .unwrap();
    assert_eq!(default_version, rustls::ProtocolVersion::TLSv1_3);
    let (_, v12) = handshake(tls.addr, &tls.ca.der, &[&rustls::version::TLS12])
        .await
        .unwrap();
    assert_eq!(v12, rustls::ProtocolVersion::TLSv1_2);

    // rustls cannot offer TLS 1.0/1.1, so send those ClientHellos by hand: the server must
    // answer with a fatal alert (content type 21, level 2), never a ServerHello (content type
    // 22). A classic 1.0/1.1 hello has no signature_algorithms extension (a TLS 1.2 addition)
    // and gets handshake_failure (40); with one, it reaches the version check and gets
    // protocol_version (70).
    for (name, version) in [("TLS 1.0", [3u8, 1u8]), ("TLS 1.1", [3, 2])] {
        for (sig_algs, alert) in [(false, 40u8), (true, 70)] {
            let answer = raw_legacy_client_hello(tls.addr, version, sig_algs).await;
            assert!(
                answer.len() >= 7,
                "{name}: expected an alert, got {answer:02x?}"
            );
            assert_eq!(answer[0], 21, "{name}: not an alert record: {answer:02x?}");
            assert_eq!(answer[5], 2, "{name}: alert not fatal: {answer:02x?}");
            assert_eq!(
                answer[6], alert,
                "{name} (signature_algorithms: {sig_algs}): unexpected alert: {answer:02x?}"
            );
            assert_eq!(answer.len(), 7, "{name}: nothing follows the alert");
        }
    }
    tls.app.stop().await;
}

#[tokio::test]
async fn a_replaced_certificate_is_served_to_new_connections() {
    let tls = spawn_tls_app().await;
    assert_eq!(presented_leaf(tls.addr, &tls.ca.der).await, tls.first.der);

    let second = new_leaf(&tls.ca, "navigator-second", 2002);
    assert_ne!(second.der, tls.first.der);
    replace_file(&tls.key_path, &second.key_pem);
    replace_file(&tls.cert_path, &second.cert_pem);
    wait_for_leaf(tls.addr, &tls.ca.der, &second.der, Duration::from_secs(15)).await;

    // And HTTPS requests keep working on the new certificate.
    let http = client_trusting(&tls.ca);
    let response = http.get(tls.https("/healthz")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    tls.app.stop().await;
}

#[tokio::test]
async fn a_corrupt_replacement_keeps_the_old_certificate_serving() {
    let tls = spawn_tls_app().await;
    assert_eq!(presented_leaf(tls.addr, &tls.ca.der).await, tls.first.der);

    // Garbage instead of a certificate: the reload fails and the old pair stays.
    replace_file(
        &tls.cert_path,
        "-----BEGIN CERTIFICATE-----\nnot base64 at all!\n",
    );
    // The watcher polls every second; give it several rounds.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert_eq!(presented_leaf(tls.addr, &tls.ca.der).await, tls.first.der);
    // A certificate whose key is not the key file's is refused as well.
    let other = new_leaf(&tls.ca, "navigator-mismatch", 3003);
    replace_file(&tls.cert_path, &other.cert_pem);
    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert_eq!(presented_leaf(tls.addr, &tls.ca.der).await, tls.first.der);
    let http = client_trusting(&tls.ca);
    assert_eq!(
        http.get(tls.https("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    // The watcher is still alive: a good pair afterwards is picked up.
    let good = new_leaf(&tls.ca, "navigator-good", 4004);
    replace_file(&tls.key_path, &good.key_pem);
    replace_file(&tls.cert_path, &good.cert_pem);
    wait_for_leaf(tls.addr, &tls.ca.der, &good.der, Duration::from_secs(15)).await;
    tls.app.stop().await;
}

#[tokio::test]
async fn a_bad_certificate_at_start_is_a_clear_error() {
    let data = tempfile::tempdir().unwrap();
    let cert_path = data.path().join("cert.pem");
    let key_path = data.path().join("key.pem");
    std::fs::write(&cert_path, "not a certificate").unwrap();
    std::fs::write(
        &key_path,
        "-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWtleS1tYXRlcmlhbA==\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let yaml = support::base_yaml(&data.path().join("data"), "hash").replacen(
        "server:\n",
        &format!(
            "server:\n  tls:\n    cert_path: {}\n    key_path: {}\n",
            cert_path.display(),
            key_path.display()
        ),
        1,
    );
    let config = config::load_from_str(&yaml, &support::env_for_tests()).unwrap();
    let app = App::build(config, support::sandbox_options())
        .await
        .unwrap();
    let error = match app
        .start(SocketAddr::from(([127, 0, 0, 1], 0)), false)
        .await
    {
        Ok(_) => panic!("a server with an unusable certificate must not start"),
        Err(e) => format!("{e:#}"),
    };
    assert!(error.contains("server.tls"), "{error}");
    assert!(error.contains(&cert_path.display().to_string()), "{error}");
    // Never key material.
    assert!(!error.contains("c2VjcmV0"), "{error}");
}

// ---------------------------------------------------------------------------------------------
// Configuration

fn problems(yaml: &str) -> Vec<(String, String)> {
    match config::load_from_str(yaml, &HashMap::new()) {
        Ok(_) => Vec::new(),
        Err(errors) => errors
            .iter()
            .map(|e| (e.key.clone().unwrap_or_default(), e.to_string()))
            .collect(),
    }
}

#[test]
fn tls_config_defaults() {
    let config = config::load_from_str("", &HashMap::new()).unwrap();
    assert_eq!(config.server.tls.cert_path, None);
    assert_eq!(config.server.tls.key_path, None);
    assert_eq!(config.server.tls.reload_interval_secs, 10);
    assert_eq!(config.server.hsts_max_age_secs, 31_536_000);
    assert_eq!(config.database.tls.mode, config::DatabaseTlsMode::Prefer);
    assert_eq!(config.database.tls.ca_path, None);
}

#[test]
fn verify_full_without_ca_path_is_a_config_error() {
    let pg = "database:\n  url: postgres://nav@db.example/nav\n  tls:\n";
    for mode in ["verify-full", "verify-ca"] {
        let found = problems(&format!("{pg}    mode: {mode}\n"));
        assert!(
            found
                .iter()
                .any(|(key, message)| key == "database.tls.ca_path" && message.contains(mode)),
            "{mode}: {found:?}"
        );
    }
    assert_eq!(
        problems(&format!(
            "{pg}    mode: verify-full\n    ca_path: /etc/ssl/pg-ca.pem\n"
        )),
        Vec::new()
    );
    for mode in ["disable", "prefer", "require"] {
        assert_eq!(
            problems(&format!("{pg}    mode: {mode}\n")),
            Vec::new(),
            "{mode}"
        );
    }
    let bad = problems(&format!("{pg}    mode: sometimes\n"));
    assert!(
        bad.iter().any(|(key, _)| key == "database.tls.mode"),
        "{bad:?}"
    );
}

#[test]
fn database_tls_is_postgres_only() {
    let found = problems("database:\n  tls:\n    mode: require\n    ca_path: /ca.pem\n");
    let keys: Vec<&str> = found.iter().map(|(k, _)| k.as_str()).collect();
    assert!(keys.contains(&"database.tls.mode"), "{found:?}");
    assert!(keys.contains(&"database.tls.ca_path"), "{found:?}");
    // The defaults (prefer) and disable are fine with SQLite.
    assert_eq!(
        problems("database:\n  tls:\n    mode: disable\n"),
        Vec::new()
    );
}

#[test]
fn server_tls_needs_both_files_or_neither() {
    let found = problems("server:\n  tls:\n    cert_path: /c.pem\n");
    assert!(
        found.iter().any(|(key, _)| key == "server.tls.key_path"),
        "{found:?}"
    );
    let found = problems("server:\n  tls:\n    key_path: /k.pem\n");
    assert!(
        found.iter().any(|(key, _)| key == "server.tls.cert_path"),
        "{found:?}"
    );
    let found = problems("server:\n  tls:\n    reload_interval_secs: 0\n");
    assert!(
        found
            .iter()
            .any(|(key, _)| key == "server.tls.reload_interval_secs"),
        "{found:?}"
    );
    assert_eq!(
        problems("server:\n  tls:\n    cert_path: /c.pem\n    key_path: /k.pem\n"),
        Vec::new()
    );
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL (the test cluster from scripts/services.sh runs without SSL)

async fn build_with_postgres(url: &str, tls: &str) -> anyhow::Result<App> {
    let data = tempfile::tempdir().unwrap();
    let yaml = format!(
        "{}database:\n  url: {url}\n  pool:\n    acquire_timeout_secs: 3\n  tls:\n{tls}",
        support::base_yaml(&data.path().join("data"), "hash")
    );
    let config = config::load_from_str(&yaml, &support::env_for_tests()).unwrap();
    let app = App::build(config, support::sandbox_options()).await;
    // The data directory only has to outlive the build.
    drop(data);
    app
}

/// The test cluster (scripts/services.sh) serves TLS with a certificate from its own CA:
/// `verify-full` against that CA connects, against another CA it is refused with a clear error,
/// and `require` and `disable` behave as named.
#[tokio::test]
async fn postgres_verify_full_trusts_only_the_configured_ca() {
    let Some(admin) = navigator_store::conformance::postgres_admin_url() else {
        eprintln!("skipping: NAVIGATOR_TEST_DATABASE_URL is not set (scripts/services.sh start)");
        return;
    };
    let Ok(ca_path) = std::env::var("NAVIGATOR_TEST_PG_CA") else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "NAVIGATOR_TEST_PG_CA is not set: run scripts/services.sh start"
        );
        eprintln!("skipping: NAVIGATOR_TEST_PG_CA is not set");
        return;
    };
    let url = navigator_store::conformance::fresh_postgres_database(&admin).await;

    let app = build_with_postgres(
        &url,
        &format!("    mode: verify-full\n    ca_path: {ca_path}\n"),
    )
    .await
    .expect("verify-full with the cluster's CA connects");
    app.state
        .store
        .ping()
        .await
        .expect("the store answers over TLS");

    let other = tempfile::tempdir().unwrap();
    let wrong_ca = other.path().join("other-ca.pem");
    std::fs::write(&wrong_ca, new_ca("not the database's CA").pem).unwrap();
    let error = match build_with_postgres(
        &url,
        &format!(
            "    mode: verify-full\n    ca_path: {}\n",
            wrong_ca.display()
        ),
    )
    .await
    {
        Ok(_) => panic!("a server certificate from another CA must be refused"),
        Err(e) => format!("{e:#}"),
    };
    assert!(error.contains("PostgreSQL"), "{error}");
    // The URL's password (if any) is not in the message.
    if let Some(password) = url
        .split_once("://")
        .and_then(|(_, rest)| rest.split_once('@'))
        .and_then(|(userinfo, _)| userinfo.split_once(':'))
        .map(|(_, password)| password)
    {
        assert!(!error.contains(password), "{error}");
    }

    for mode in ["require", "disable", "prefer"] {
        let app = build_with_postgres(&url, &format!("    mode: {mode}\n"))
            .await
            .unwrap_or_else(|e| panic!("mode {mode}: {e:#}"));
        app.state.store.ping().await.expect("the store answers");
    }
}
