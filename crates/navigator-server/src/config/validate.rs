//! Semantic checks on a deserialised [`Config`], every problem collected with its key path.
//! Messages may quote numbers and schemes but never a secret or a whole URL (which could carry
//! credentials).

use super::error::ConfigError;
use super::{AuthMode, Config, DatabaseTlsMode, EmbedderKind, LOCAL_MODEL_MAX_TOKENS, ParserKind};
use std::fmt::Display;
use std::ops::RangeInclusive;

/// Smallest chunk worth embedding.
const MIN_CHUNK_TOKENS: u32 = 32;
/// Largest chunk any supported remote embedder accepts.
const MAX_CHUNK_TOKENS: u32 = 8192;
/// RFC 7518 §3.2: an HS256 key must be at least as long as the hash output.
const MIN_HS256_SECRET_BYTES: usize = 32;
/// The master webhook secret keys HMAC-SHA256 too.
const MIN_WEBHOOK_SECRET_BYTES: usize = 32;

pub(crate) fn validate(config: &Config) -> Vec<ConfigError> {
    let mut v = Validator::default();

    if config.data_dir.as_os_str().is_empty() {
        v.problem("data_dir", "must not be empty");
    }

    // server
    let server = &config.server;
    if let Some(url) = &server.public_url {
        v.http_url("server.public_url", url);
    }
    v.at_least("server.max_upload_bytes", server.max_upload_bytes, 1);
    v.at_least(
        "server.request_timeout_secs",
        server.request_timeout_secs,
        1,
    );
    let tls = &server.tls;
    match (&tls.cert_path, &tls.key_path) {
        (Some(_), None) => v.problem(
            "server.tls.key_path",
            "required when server.tls.cert_path is set (set both or neither)",
        ),
        (None, Some(_)) => v.problem(
            "server.tls.cert_path",
            "required when server.tls.key_path is set (set both or neither)",
        ),
        _ => {}
    }
    v.at_least(
        "server.tls.reload_interval_secs",
        tls.reload_interval_secs,
        1,
    );

    // database
    let database_url = config.database_url();
    match database_url.scheme() {
        Some("sqlite") => {
            if database_url.expose()["sqlite://".len()..].is_empty() {
                v.problem("database.url", "sqlite:// needs a file path");
            }
        }
        Some("postgres" | "postgresql") => {}
        other => v.problem(
            "database.url",
            format!(
                "must be sqlite://PATH or postgres://…, got {}",
                describe_scheme(other)
            ),
        ),
    }

    let database_tls = &config.database.tls;
    let is_postgres = matches!(database_url.scheme(), Some("postgres" | "postgresql"));
    if matches!(
        database_tls.mode,
        DatabaseTlsMode::VerifyCa | DatabaseTlsMode::VerifyFull
    ) && database_tls.ca_path.is_none()
    {
        v.problem(
            "database.tls.ca_path",
            format!(
                "required when database.tls.mode is {}",
                database_tls.mode.as_str()
            ),
        );
    }
    if !is_postgres {
        if !matches!(
            database_tls.mode,
            DatabaseTlsMode::Disable | DatabaseTlsMode::Prefer
        ) {
            v.problem(
                "database.tls.mode",
                format!(
                    "{} applies to PostgreSQL only; database.url is not postgres://",
                    database_tls.mode.as_str()
                ),
            );
        }
        if database_tls.ca_path.is_some() {
            v.problem(
                "database.tls.ca_path",
                "applies to PostgreSQL only; database.url is not postgres://",
            );
        }
    }

    let pool = &config.database.pool;
    v.between(
        "database.pool.max_connections",
        pool.max_connections,
        1..=1000,
    );
    v.at_least(
        "database.pool.acquire_timeout_secs",
        pool.acquire_timeout_secs,
        1,
    );
    v.at_least(
        "database.pool.statement_timeout_secs",
        pool.statement_timeout_secs,
        1,
    );
    v.at_least(
        "database.pool.idle_in_transaction_timeout_secs",
        pool.idle_in_transaction_timeout_secs,
        1,
    );

    // blobs
    let blobs_url = config.blobs_url();
    let s3 = &config.blobs.s3;
    match blobs_url.split_once("://") {
        Some(("file", dir)) => {
            if dir.is_empty() {
                v.problem("blobs.url", "file:// needs a directory");
            }
        }
        Some(("s3", rest)) => {
            let bucket = rest.split('/').next().unwrap_or_default();
            if !is_bucket_name(bucket) {
                v.problem(
                    "blobs.url",
                    "s3://BUCKET/PREFIX needs a bucket name of 3 to 63 lowercase letters, digits, dots or hyphens",
                );
            }
        }
        other => v.problem(
            "blobs.url",
            format!(
                "must be file://DIR or s3://BUCKET/PREFIX, got {}",
                describe_scheme(other.map(|(scheme, _)| scheme))
            ),
        ),
    }
    if let Some(endpoint) = &s3.endpoint {
        v.http_url("blobs.s3.endpoint", endpoint);
        if endpoint.starts_with("http://") && !s3.allow_http {
            v.problem(
                "blobs.s3.endpoint",
                "is plain http; use https or set blobs.s3.allow_http: true (local MinIO only)",
            );
        }
    }
    match (&s3.access_key_id, &s3.secret_access_key) {
        (Some(_), None) => v.problem(
            "blobs.s3.secret_access_key",
            "required when blobs.s3.access_key_id is set",
        ),
        (None, Some(_)) => v.problem(
            "blobs.s3.access_key_id",
            "required when blobs.s3.secret_access_key is set",
        ),
        _ => {}
    }

    // parser
    let parser = &config.parser;
    v.at_least("parser.timeout_secs", parser.timeout_secs, 1);
    v.between("parser.memory_mb", parser.memory_mb, 64..=1024 * 1024);
    let llamaparse = &parser.llamaparse;
    if let Some(url) = &llamaparse.base_url {
        v.http_url("parser.llamaparse.base_url", url);
    }
    v.at_least(
        "parser.llamaparse.poll_interval_secs",
        llamaparse.poll_interval_secs,
        1,
    );
    v.at_least("parser.llamaparse.timeout_secs", llamaparse.timeout_secs, 1);
    v.at_least(
        "parser.llamaparse.request_timeout_secs",
        llamaparse.request_timeout_secs,
        1,
    );
    v.between(
        "parser.llamaparse.max_attempts",
        llamaparse.max_attempts,
        1..=20,
    );
    v.breaker("parser.llamaparse.breaker", &llamaparse.breaker);
    v.secret_length(
        "parser.webhook_secret",
        &parser.webhook_secret,
        MIN_WEBHOOK_SECRET_BYTES,
    );
    if parser.kind == ParserKind::Llamaparse {
        v.required(
            "parser.llamaparse.base_url",
            &llamaparse.base_url,
            "parser.kind is llamaparse",
        );
        v.required_secret(
            "parser.llamaparse.api_key",
            &llamaparse.api_key,
            "parser.kind is llamaparse",
        );
    }

    // embedder
    let embedder = &config.embedder;
    v.between("embedder.batch_size", embedder.batch_size, 1..=2048);
    let openai = &embedder.openai;
    if let Some(url) = &openai.base_url {
        v.http_url("embedder.openai.base_url", url);
    }
    if let Some(dimensions) = openai.dimensions {
        v.between("embedder.openai.dimensions", dimensions, 1..=65_536);
    }
    v.at_least(
        "embedder.openai.max_batch_tokens",
        openai.max_batch_tokens,
        1,
    );
    v.between(
        "embedder.openai.max_concurrency",
        openai.max_concurrency,
        1..=256,
    );
    v.at_least(
        "embedder.openai.request_timeout_secs",
        openai.request_timeout_secs,
        1,
    );
    v.between("embedder.openai.max_attempts", openai.max_attempts, 1..=20);
    v.breaker("embedder.openai.breaker", &openai.breaker);
    if embedder.kind == EmbedderKind::Openai {
        if openai.dimensions.is_none() {
            v.problem(
                "embedder.openai.dimensions",
                "required when embedder.kind is openai (the length of the model's vectors)",
            );
        }
        v.between(
            "embedder.batch_size",
            embedder.batch_size,
            1..=super::OPENAI_MAX_BATCH_INPUTS,
        );
        if openai.max_batch_tokens < config.chunker.max_tokens {
            v.problem(
                "embedder.openai.max_batch_tokens",
                format!(
                    "must be at least chunker.max_tokens ({}), got {}",
                    config.chunker.max_tokens, openai.max_batch_tokens
                ),
            );
        }
        v.required(
            "embedder.openai.base_url",
            &openai.base_url,
            "embedder.kind is openai",
        );
        v.required(
            "embedder.openai.model",
            &openai.model,
            "embedder.kind is openai",
        );
    }

    // chunker
    let chunker = &config.chunker;
    if embedder.kind == EmbedderKind::Local {
        if chunker.max_tokens > LOCAL_MODEL_MAX_TOKENS {
            v.problem(
                "chunker.max_tokens",
                format!(
                    "must be at most {LOCAL_MODEL_MAX_TOKENS} (the local model's input limit), got {}",
                    chunker.max_tokens
                ),
            );
        } else {
            v.at_least("chunker.max_tokens", chunker.max_tokens, MIN_CHUNK_TOKENS);
        }
    } else {
        v.between(
            "chunker.max_tokens",
            chunker.max_tokens,
            MIN_CHUNK_TOKENS..=MAX_CHUNK_TOKENS,
        );
    }
    if chunker.target_tokens == 0 || chunker.target_tokens > chunker.max_tokens {
        v.problem(
            "chunker.target_tokens",
            format!(
                "must be between 1 and chunker.max_tokens ({}), got {}",
                chunker.max_tokens, chunker.target_tokens
            ),
        );
    }
    if !(0.0..=0.5).contains(&chunker.overlap_ratio) {
        v.problem(
            "chunker.overlap_ratio",
            format!("must be between 0 and 0.5, got {}", chunker.overlap_ratio),
        );
    }

    // workers
    let workers = &config.workers;
    v.between("workers.concurrency", workers.concurrency, 1..=64);
    v.at_least("workers.lease_secs", workers.lease_secs, 1);
    v.at_least("workers.poll_interval_ms", workers.poll_interval_ms, 1);
    v.at_least(
        "workers.rescue_interval_secs",
        workers.rescue_interval_secs,
        1,
    );
    let retry = &workers.retry;
    v.at_least("workers.retry.base_secs", retry.base_secs, 1);
    if retry.cap_secs < retry.base_secs {
        v.problem(
            "workers.retry.cap_secs",
            format!(
                "must be at least workers.retry.base_secs ({}), got {}",
                retry.base_secs, retry.cap_secs
            ),
        );
    }
    v.between("workers.retry.max_attempts", retry.max_attempts, 1..=100);

    // auth
    let jwt = &config.auth.jwt;
    if let Some(url) = &jwt.jwks_url {
        v.jwks_url("auth.jwt.jwks_url", url);
    }
    v.secret_length(
        "auth.jwt.hs256_secret",
        &jwt.hs256_secret,
        MIN_HS256_SECRET_BYTES,
    );
    // encryption and audit
    let encryption = &config.encryption;
    for (id, key) in &encryption.keys {
        let valid_id = !id.is_empty()
            && id.len() <= 64
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if !valid_id {
            v.problem(
                "encryption.keys",
                "key ids are 1 to 64 of A-Z a-z 0-9 . _ -",
            );
        }
        if decode_key32(key.expose()).is_none() {
            v.problem(
                &format!("encryption.keys.{id}"),
                "must be the base64 of exactly 32 bytes",
            );
        }
    }
    if let Some(active) = &encryption.active_key
        && !encryption.keys.is_empty()
        && !encryption.keys.contains_key(active)
    {
        v.problem("encryption.active_key", "names no key in encryption.keys");
    }
    if encryption.keys.len() > 1 && encryption.active_key.is_none() {
        v.problem(
            "encryption.active_key",
            "required when encryption.keys has more than one key",
        );
    }
    v.at_least("encryption.key_cache_secs", encryption.key_cache_secs, 1);
    v.secret_length(
        "audit.hmac_key",
        &config.audit.hmac_key,
        MIN_WEBHOOK_SECRET_BYTES,
    );

    // usage
    let usage = &config.usage;
    for (provider, price) in &usage.prices {
        if provider.is_empty() {
            v.problem("usage.prices", "a provider name must not be empty");
        }
        v.usd(
            &format!("usage.prices.{provider}.usd_per_million_tokens"),
            price.usd_per_million_tokens,
        );
        v.usd(
            &format!("usage.prices.{provider}.usd_per_page"),
            price.usd_per_page,
        );
    }
    if let Some(soft) = usage.budgets.soft_usd {
        v.usd("usage.budgets.soft_usd", soft);
    }
    if let Some(hard) = usage.budgets.hard_usd {
        v.usd("usage.budgets.hard_usd", hard);
    }
    v.at_least("usage.budgets.recheck_secs", usage.budgets.recheck_secs, 1);

    if let Some(bad) = jwt
        .algorithms
        .iter()
        .find(|a| !super::JWT_ALGORITHMS.contains(&a.as_str()))
    {
        v.problem(
            "auth.jwt.algorithms",
            format!(
                "{bad:?} is not allowed; use {}",
                super::JWT_ALGORITHMS.join(", ")
            ),
        );
    }
    v.between(
        "auth.jwt.max_lifetime_secs",
        jwt.max_lifetime_secs,
        60..=7 * 24 * 3600,
    );
    v.between(
        "auth.jwt.leeway_secs",
        jwt.leeway_secs,
        0..=super::MAX_JWT_LEEWAY_SECS,
    );
    v.at_least("auth.jwt.jwks_cache_secs", jwt.jwks_cache_secs, 1);
    v.at_least(
        "auth.jwt.jwks_min_refresh_secs",
        jwt.jwks_min_refresh_secs,
        1,
    );
    v.between(
        "auth.jwt.max_token_bytes",
        jwt.max_token_bytes,
        256..=65_536,
    );
    for (role, permissions) in &config.auth.roles {
        if role.is_empty() || permissions.iter().any(String::is_empty) {
            v.problem(
                &format!("auth.roles.{role}"),
                "role and permission names must not be empty",
            );
        }
    }
    if config.auth.mode == AuthMode::Jwt {
        let has_secret = jwt.hs256_secret.as_ref().is_some_and(|s| !s.is_empty());
        let has_jwks =
            jwt.jwks_url.as_deref().is_some_and(|u| !u.is_empty()) || jwt.jwks_file.is_some();
        if !has_secret && !has_jwks {
            v.problem(
                "auth.jwt.hs256_secret",
                "required when auth.mode is jwt (or set auth.jwt.jwks_url or auth.jwt.jwks_file)",
            );
        }
        v.required("auth.jwt.issuer", &jwt.issuer, "auth.mode is jwt");
        v.required("auth.jwt.audience", &jwt.audience, "auth.mode is jwt");
    }

    // search
    let search = &config.search;
    v.between("search.max_limit", search.max_limit, 1..=1000);
    if search.default_limit == 0 || search.default_limit > search.max_limit {
        v.problem(
            "search.default_limit",
            format!(
                "must be between 1 and search.max_limit ({}), got {}",
                search.max_limit, search.default_limit
            ),
        );
    }
    v.at_least("search.rrf_k", search.rrf_k, 1);

    // log
    if let Err(error) = tracing_subscriber::EnvFilter::try_new(&config.log.level) {
        v.problem(
            "log.level",
            format!(
                "is not a valid filter such as `info` or `info,navigator_pipeline=debug`: {error}"
            ),
        );
    } else if config.log.level.trim().is_empty() {
        v.problem("log.level", "must not be empty");
    }

    v.errors
}

#[derive(Default)]
struct Validator {
    errors: Vec<ConfigError>,
}

impl Validator {
    /// A secret, when set, of at least `min` bytes.
    fn secret_length(&mut self, key: &str, secret: &Option<super::Secret>, min: usize) {
        if let Some(secret) = secret
            && !secret.is_empty()
            && secret.expose().len() < min
        {
            self.problem(key, format!("must be at least {min} bytes"));
        }
    }

    fn breaker(&mut self, key: &str, breaker: &super::BreakerConfig) {
        self.at_least(
            &format!("{key}.failure_threshold"),
            breaker.failure_threshold,
            1,
        );
        self.at_least(&format!("{key}.open_secs"), breaker.open_secs, 1);
    }

    /// A finite, non-negative amount of money.
    fn usd(&mut self, key: &str, value: f64) {
        if !value.is_finite() || value < 0.0 {
            self.problem(key, format!("must be a non-negative amount, got {value}"));
        }
    }

    fn problem(&mut self, key: &str, message: impl Into<String>) {
        self.errors.push(ConfigError::at(key, message));
    }

    fn between<T: PartialOrd + Display>(&mut self, key: &str, value: T, range: RangeInclusive<T>) {
        if !range.contains(&value) {
            self.problem(
                key,
                format!(
                    "must be between {} and {}, got {value}",
                    range.start(),
                    range.end()
                ),
            );
        }
    }

    fn at_least<T: PartialOrd + Display>(&mut self, key: &str, value: T, min: T) {
        if value < min {
            self.problem(key, format!("must be at least {min}, got {value}"));
        }
    }

    fn required(&mut self, key: &str, value: &Option<String>, when: &str) {
        if value.as_deref().is_none_or(|v| v.trim().is_empty()) {
            self.problem(key, format!("required when {when}"));
        }
    }

    fn required_secret(&mut self, key: &str, value: &Option<super::Secret>, when: &str) {
        if value.as_ref().is_none_or(|v| v.is_empty()) {
            self.problem(key, format!("required when {when}"));
        }
    }

    fn http_url(&mut self, key: &str, url: &str) {
        match url.split_once("://") {
            Some(("http" | "https", rest))
                if !host_of(rest).is_empty() && !url.contains(char::is_whitespace) => {}
            Some(("http" | "https", _)) => self.problem(key, "is not a valid http(s) URL"),
            other => self.problem(
                key,
                format!(
                    "must be an http:// or https:// URL, got {}",
                    describe_scheme(other.map(|(scheme, _)| scheme))
                ),
            ),
        }
    }

    /// Keys fetched over plain http could be swapped in transit, so http is only accepted for a
    /// loopback identity provider (tests, local development).
    fn jwks_url(&mut self, key: &str, url: &str) {
        let errors_before = self.errors.len();
        self.http_url(key, url);
        // The host as the HTTP client will see it (the WHATWG parser reqwest uses), so a URL
        // such as `http://idp.example\@localhost/` cannot pass for a loopback one.
        let loopback = reqwest::Url::parse(url)
            .ok()
            .and_then(|u| {
                u.host_str()
                    .map(|h| h.trim_start_matches('[').trim_end_matches(']').to_owned())
            })
            .is_some_and(|host| is_loopback(&host));
        if self.errors.len() == errors_before && url.starts_with("http://") && !loopback {
            self.problem(
                key,
                "must use https (plain http is accepted only for localhost)",
            );
        }
    }
}

/// The host of `host[:port][/path]`, without user-info.
fn host_of(rest: &str) -> &str {
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_port = authority.rsplit('@').next().unwrap_or_default();
    if let Some(bracketed) = host_port.strip_prefix('[') {
        return bracketed.split(']').next().unwrap_or_default();
    }
    host_port.split(':').next().unwrap_or_default()
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Names a scheme without echoing anything that could be a credential.
fn describe_scheme(scheme: Option<&str>) -> String {
    match scheme {
        Some(scheme)
            if !scheme.is_empty()
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')) =>
        {
            format!("scheme `{scheme}`")
        }
        Some(_) => "an invalid scheme".to_owned(),
        None => "no scheme".to_owned(),
    }
}

fn is_bucket_name(bucket: &str) -> bool {
    (3..=63).contains(&bucket.len())
        && bucket
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-')
}

/// The 32 bytes a base64 key-encryption key encodes, if it is one.
fn decode_key32(text: &str) -> Option<[u8; 32]> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .ok()?;
    bytes.try_into().ok()
}
