//! Configuration loading, substitution, overrides, validation, the example file and redaction.
//! Every test passes its own environment map, so none depends on the machine it runs on.

use navigator_server::config::{
    self, AuthMode, BlobLocation, Config, ConfigErrors, DatabaseKind, EmbedderKind, LogFormat,
    Origin, ParserKind, REDACTED,
};
use std::collections::{BTreeSet, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn home_env() -> HashMap<String, String> {
    env(&[("HOME", "/home/nav")])
}

fn load(yaml: &str, env: &HashMap<String, String>) -> Result<Config, ConfigErrors> {
    config::load_from_str(yaml, env)
}

fn load_ok(yaml: &str, env: &HashMap<String, String>) -> Config {
    load(yaml, env).unwrap_or_else(|errors| panic!("expected a valid config, got:\n{errors}"))
}

fn load_err(yaml: &str, env: &HashMap<String, String>) -> ConfigErrors {
    match load(yaml, env) {
        Ok(config) => panic!("expected errors, got {config:#?}"),
        Err(errors) => errors,
    }
}

fn write_temp(yaml: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().expect("temp file");
    file.write_all(yaml.as_bytes()).expect("write temp file");
    file
}

// --- defaults and files ---------------------------------------------------------------------

#[test]
fn an_empty_file_gives_the_documented_defaults() {
    let file = write_temp("");
    let env = home_env();
    let config = config::load(Some(file.path()), &env).expect("empty file is valid");

    assert_eq!(config, Config::defaults(&env));
    assert_eq!(config.data_dir, PathBuf::from("./navigator-data"));
    assert_eq!(config.server.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(config.server.public_url, None);
    assert_eq!(config.server.max_upload_bytes, 100 * 1024 * 1024);
    assert_eq!(config.server.request_timeout(), Duration::from_secs(30));
    assert_eq!(config.server.shutdown_grace(), Duration::from_secs(30));
    assert_eq!(
        config.database_url().expose(),
        "sqlite://./navigator-data/navigator.db"
    );
    assert_eq!(config.database_kind(), DatabaseKind::Sqlite);
    assert_eq!(config.blobs_url(), "file://./navigator-data/blobs");
    assert_eq!(
        config.blob_location(),
        BlobLocation::File(PathBuf::from("./navigator-data/blobs"))
    );
    assert_eq!(config.parser.kind, ParserKind::Builtin);
    assert_eq!(config.parser.timeout(), Duration::from_secs(60));
    assert_eq!(config.parser.memory_mb, 1024);
    assert!(config.parser.sandbox);
    assert_eq!(config.embedder.kind, EmbedderKind::Local);
    assert_eq!(config.embedder.batch_size, 32);
    assert_eq!(
        config.model_dir(),
        Path::new("/home/nav/.cache/navigator/models/all-MiniLM-L6-v2")
    );
    assert_eq!(config.chunker.max_tokens, 256);
    assert_eq!(config.chunker.target_tokens, 200);
    assert_eq!(config.chunker.overlap_ratio, 0.15);
    assert_eq!(config.workers.concurrency, 2);
    assert_eq!(config.workers.lease(), Duration::from_secs(30));
    assert_eq!(config.workers.poll_interval(), Duration::from_millis(500));
    assert_eq!(config.workers.rescue_interval(), Duration::from_secs(10));
    assert_eq!(
        config.workers.retry.policy(),
        navigator_domain::RetryPolicy::default()
    );
    assert_eq!(config.auth.mode, AuthMode::None);
    assert_eq!(config.search.default_limit, 10);
    assert_eq!(config.search.max_limit, 100);
    assert_eq!(config.search.rrf_k, 60);
    assert_eq!(config.log.format, LogFormat::Text);
    assert_eq!(config.log.level, "info");
}

#[test]
fn a_comment_only_file_is_the_same_as_an_empty_one() {
    let env = home_env();
    assert_eq!(load_ok("# nothing here\n", &env), Config::defaults(&env));
}

#[test]
fn the_model_dir_follows_xdg_cache_home_then_home_then_the_data_dir() {
    let xdg = env(&[("XDG_CACHE_HOME", "/xdg"), ("HOME", "/home/nav")]);
    assert_eq!(
        load_ok("", &xdg).model_dir(),
        Path::new("/xdg/navigator/models/all-MiniLM-L6-v2")
    );
    let bare = env(&[]);
    assert_eq!(
        load_ok("data_dir: /srv/nav\n", &bare).model_dir(),
        Path::new("/srv/nav/models/all-MiniLM-L6-v2")
    );
}

#[test]
fn derived_urls_follow_the_configured_data_dir() {
    let config = load_ok("data_dir: /var/lib/navigator\n", &home_env());
    assert_eq!(
        config.database_url().expose(),
        "sqlite:///var/lib/navigator/navigator.db"
    );
    assert_eq!(config.blobs_url(), "file:///var/lib/navigator/blobs");
}

#[test]
fn a_config_path_that_does_not_exist_is_an_error_naming_it() {
    let errors = config::load(Some(Path::new("/nonexistent/navigator.yaml")), &home_env())
        .expect_err("missing file must fail");
    assert!(
        errors.to_string().contains("/nonexistent/navigator.yaml"),
        "{errors}"
    );
}

#[test]
fn postgres_and_s3_urls_are_accepted_and_parsed() {
    let yaml = "database:\n  url: postgres://nav:pw@db:5432/nav\nblobs:\n  url: s3://nav-docs/prod/\n  s3:\n    region: eu-west-1\n";
    let config = load_ok(yaml, &home_env());
    assert_eq!(config.database_kind(), DatabaseKind::Postgres);
    assert_eq!(
        config.database_url().expose(),
        "postgres://nav:pw@db:5432/nav"
    );
    assert_eq!(
        config.blob_location(),
        BlobLocation::S3 {
            bucket: "nav-docs".into(),
            prefix: "prod".into()
        }
    );
}

// --- substitution -------------------------------------------------------------------------

#[test]
fn a_braced_variable_is_replaced_by_its_value_from_the_passed_environment() {
    let config = load_ok(
        "log:\n  level: ${LEVEL}\nserver:\n  public_url: \"https://${HOST}/nav\"\n",
        &env(&[("LEVEL", "debug"), ("HOST", "nav.example.com")]),
    );
    assert_eq!(config.log.level, "debug");
    assert_eq!(
        config.server.public_url.as_deref(),
        Some("https://nav.example.com/nav")
    );
}

#[test]
fn a_default_is_used_when_the_variable_is_unset_or_empty_and_ignored_when_set() {
    let yaml = "log:\n  level: ${LEVEL:-warn}\n";
    assert_eq!(load_ok(yaml, &env(&[])).log.level, "warn");
    assert_eq!(load_ok(yaml, &env(&[("LEVEL", "")])).log.level, "warn");
    assert_eq!(
        load_ok(yaml, &env(&[("LEVEL", "error")])).log.level,
        "error"
    );
}

#[test]
fn a_required_variable_fails_with_its_message_when_unset_or_empty() {
    let yaml =
        "auth:\n  mode: jwt\n  jwt:\n    hs256_secret: ${JWT_SECRET:?set the HS256 secret}\n";
    for environment in [env(&[]), env(&[("JWT_SECRET", "")])] {
        let errors = load_err(yaml, &environment);
        assert_eq!(errors.len(), 1, "{errors}");
        let error = &errors.errors()[0];
        assert_eq!(error.origin, Some(Origin::Line(4)));
        assert!(error.message.contains("JWT_SECRET"), "{error}");
        assert!(error.message.contains("set the HS256 secret"), "{error}");
    }
}

#[test]
fn a_required_variable_that_is_set_is_substituted() {
    let yaml = "auth:\n  mode: jwt\n  jwt:\n    hs256_secret: ${JWT_SECRET:?set the HS256 secret}\n    issuer: https://id.example.com\n    audience: navigator\n";
    let secret = "0123456789abcdef0123456789abcdef";
    let config = load_ok(yaml, &env(&[("JWT_SECRET", secret)]));
    assert_eq!(
        config.auth.jwt.hs256_secret.as_ref().map(|s| s.expose()),
        Some(secret)
    );
}

#[test]
fn an_unset_braced_variable_is_an_error_naming_the_variable_and_line() {
    let errors = load_err("\n\ndatabase:\n  url: ${DATABASE_URL}\n", &env(&[]));
    let error = &errors.errors()[0];
    assert!(error.message.contains("DATABASE_URL"), "{error}");
    assert_eq!(error.origin, Some(Origin::Line(4)));
    assert!(errors.to_string().starts_with("line 4: "), "{errors}");
}

#[test]
fn a_bare_dollar_variable_stays_literal_and_a_double_dollar_is_one_dollar() {
    let yaml = "embedder:\n  kind: openai\n  openai:\n    base_url: https://api.example.com/v1\n    model: $MODEL\n    api_key: pa$$word$HOME\n    dimensions: 1536\n";
    let config = load_ok(yaml, &home_env());
    assert_eq!(config.embedder.openai.model.as_deref(), Some("$MODEL"));
    assert_eq!(
        config.embedder.openai.api_key.as_ref().map(|s| s.expose()),
        Some("pa$word$HOME")
    );
}

// --- environment overrides ----------------------------------------------------------------

#[test]
fn an_env_override_sets_a_nested_number_and_a_bool_and_wins_over_the_file() {
    let yaml = "workers:\n  retry:\n    max_attempts: 3\nparser:\n  sandbox: true\n";
    let config = load_ok(
        yaml,
        &env(&[
            ("NAVIGATOR__WORKERS__RETRY__MAX_ATTEMPTS", "9"),
            ("NAVIGATOR__parser__Sandbox", "false"),
            ("NAVIGATOR__CHUNKER__OVERLAP_RATIO", "0.25"),
        ]),
    );
    assert_eq!(config.workers.retry.max_attempts, 9);
    assert!(!config.parser.sandbox);
    assert_eq!(config.chunker.overlap_ratio, 0.25);
}

#[test]
fn an_env_override_of_a_string_field_keeps_the_value_verbatim() {
    let config = load_ok(
        "",
        &env(&[
            ("NAVIGATOR__BLOBS__S3__REGION", "1.10"),
            ("NAVIGATOR__BLOBS__S3__ACCESS_KEY_ID", "0042"),
            ("NAVIGATOR__BLOBS__S3__SECRET_ACCESS_KEY", "a#b 'c' true"),
            ("NAVIGATOR__SERVER__LISTEN", "0.0.0.0:9000"),
            ("NAVIGATOR__EMBEDDER__OPENAI__DIMENSIONS", "256"),
        ]),
    );
    assert_eq!(config.blobs.s3.region.as_deref(), Some("1.10"));
    assert_eq!(config.blobs.s3.access_key_id.as_deref(), Some("0042"));
    assert_eq!(
        config
            .blobs
            .s3
            .secret_access_key
            .as_ref()
            .map(|s| s.expose()),
        Some("a#b 'c' true")
    );
    assert_eq!(config.server.listen.to_string(), "0.0.0.0:9000");
    assert_eq!(config.embedder.openai.dimensions, Some(256));
}

#[test]
fn a_number_in_a_string_field_of_the_file_keeps_its_spelling() {
    let config = load_ok("blobs:\n  s3:\n    region: 1.10\n", &home_env());
    assert_eq!(config.blobs.s3.region.as_deref(), Some("1.10"));
}

#[test]
fn an_unknown_env_override_is_an_error_naming_the_variable() {
    let errors = load_err(
        "",
        &env(&[
            ("NAVIGATOR__WORKERS__CONCURENCY", "4"),
            ("NAVIGATOR__SERVER", "x"),
        ]),
    );
    let text = errors.to_string();
    assert_eq!(errors.len(), 2, "{text}");
    assert!(
        text.contains("NAVIGATOR__WORKERS__CONCURENCY: unknown key workers.concurency"),
        "{text}"
    );
    assert!(
        text.contains("NAVIGATOR__SERVER: server is a section"),
        "{text}"
    );
}

#[test]
fn an_invalid_env_override_value_is_reported_with_its_key_and_variable() {
    let errors = load_err("", &env(&[("NAVIGATOR__WORKERS__CONCURRENCY", "0")]));
    let error = errors.for_key("workers.concurrency").expect("reported");
    assert_eq!(
        error.origin,
        Some(Origin::EnvVar("NAVIGATOR__WORKERS__CONCURRENCY".into()))
    );
    assert_eq!(
        error.to_string(),
        "workers.concurrency: must be between 1 and 64, got 0 (from NAVIGATOR__WORKERS__CONCURRENCY)"
    );
}

// --- errors -------------------------------------------------------------------------------

#[test]
fn an_unknown_file_key_is_an_error_naming_its_path_and_line() {
    let errors = load_err(
        "server:\n  listen: 127.0.0.1:9000\n  listne: x\nsurver: {}\n",
        &home_env(),
    );
    let nested = errors
        .for_key("server.listne")
        .expect("nested key reported");
    assert_eq!(nested.origin, Some(Origin::Line(3)));
    assert!(nested.message.contains("unknown key"), "{nested}");
    assert!(
        nested.message.contains("listen"),
        "suggests the real keys: {nested}"
    );
    assert!(errors.for_key("surver").is_some(), "{errors}");
}

#[test]
fn a_value_of_the_wrong_type_is_an_error_naming_its_path_and_line() {
    let errors = load_err(
        "workers:\n  concurrency: many\nparser:\n  kind: magic\nserver: 5\n",
        &home_env(),
    );
    let text = errors.to_string();
    assert!(
        text.contains("workers.concurrency: invalid type: string \"many\", expected u32 (line 2)"),
        "{text}"
    );
    assert!(
        text.contains("parser.kind: unknown variant `magic`"),
        "{text}"
    );
    assert!(errors.for_key("server").is_some(), "{text}");
}

#[test]
fn multiple_invalid_values_are_all_reported_in_one_error_one_per_line() {
    let yaml = "\
server:
  listen: not-an-address
  max_upload_bytes: 0
workers:
  concurrency: 0
  retry:
    base_secs: 10
    cap_secs: 5
chunker:
  max_tokens: 512
  overlap_ratio: 0.9
database:
  url: mysql://nav:hunter2@db/nav
search:
  default_limit: 500
";
    let errors = load_err(yaml, &home_env());
    let keys: BTreeSet<&str> = errors.iter().filter_map(|e| e.key.as_deref()).collect();
    let expected: BTreeSet<&str> = [
        "server.listen",
        "server.max_upload_bytes",
        "workers.concurrency",
        "workers.retry.cap_secs",
        "chunker.max_tokens",
        "chunker.overlap_ratio",
        "database.url",
        "search.default_limit",
    ]
    .into();
    assert_eq!(keys, expected, "{errors}");
    assert_eq!(errors.to_string().lines().count(), errors.len());
    assert!(
        errors
            .to_string()
            .contains("workers.concurrency: must be between 1 and 64, got 0 (line 5)"),
        "{errors}"
    );
    assert!(!errors.to_string().contains("hunter2"), "{errors}");
}

#[test]
fn jwt_mode_without_a_secret_or_jwks_url_is_an_error_at_the_secret_path() {
    let errors = load_err("auth:\n  mode: jwt\n", &home_env());
    let keys: Vec<&str> = errors.iter().filter_map(|e| e.key.as_deref()).collect();
    assert_eq!(
        keys,
        [
            "auth.jwt.hs256_secret",
            "auth.jwt.issuer",
            "auth.jwt.audience"
        ],
        "{errors}"
    );
    assert!(
        errors
            .to_string()
            .contains("auth.jwt.hs256_secret: required when auth.mode is jwt"),
        "{errors}"
    );
}

#[test]
fn jwt_mode_with_a_jwks_url_issuer_and_audience_is_valid() {
    let yaml = "auth:\n  mode: jwt\n  jwt:\n    jwks_url: https://id.example.com/.well-known/jwks.json\n    issuer: https://id.example.com\n    audience: navigator\n";
    assert_eq!(load_ok(yaml, &home_env()).auth.mode, AuthMode::Jwt);
}

#[test]
fn remote_parser_and_embedder_require_their_endpoints_and_keys() {
    let errors = load_err(
        "parser:\n  kind: llamaparse\nembedder:\n  kind: openai\n",
        &home_env(),
    );
    for key in [
        "parser.llamaparse.base_url",
        "parser.llamaparse.api_key",
        "embedder.openai.base_url",
        "embedder.openai.model",
    ] {
        assert!(
            errors.for_key(key).is_some(),
            "{key} missing from:\n{errors}"
        );
    }
}

#[test]
fn the_hash_embedder_lifts_the_local_model_token_limit() {
    let config = load_ok(
        "embedder:\n  kind: hash\nchunker:\n  max_tokens: 512\n",
        &home_env(),
    );
    assert_eq!(config.chunker.max_tokens, 512);
}

#[test]
fn a_duplicate_key_is_an_error_naming_its_path_and_line() {
    let errors = load_err("log:\n  level: info\n  level: debug\n", &home_env());
    let error = errors.for_key("log.level").expect("reported");
    assert_eq!(error.origin, Some(Origin::Line(3)));
    assert!(error.message.contains("duplicate"), "{error}");
}

#[test]
fn invalid_yaml_is_an_error_with_its_line() {
    let errors = load_err("server:\n  listen: [1\n", &home_env());
    let error = &errors.errors()[0];
    assert!(error.message.starts_with("invalid YAML"), "{error}");
    assert!(matches!(error.origin, Some(Origin::Line(_))), "{error}");
}

// --- example and redaction ----------------------------------------------------------------

#[test]
fn the_example_file_loads_back_to_exactly_the_defaults() {
    let env = home_env();
    assert_eq!(
        load_ok(&config::example_yaml(), &env),
        Config::defaults(&env)
    );
}

#[test]
fn the_example_file_lists_every_key() {
    fn paths(value: &serde_json::Value, prefix: &str, out: &mut BTreeSet<String>) {
        if let serde_json::Value::Object(map) = value {
            for (key, child) in map {
                let path = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                paths(child, &path, out);
                out.insert(path);
            }
        }
    }
    let example: serde_json::Value =
        serde_saphyr::from_str(&config::example_yaml()).expect("example is YAML");
    let schema = serde_json::to_value(Config::default()).expect("serialisable");
    let (mut in_example, mut in_schema) = (BTreeSet::new(), BTreeSet::new());
    paths(&example, "", &mut in_example);
    paths(&schema, "", &mut in_schema);
    assert_eq!(in_example, in_schema);
}

#[test]
fn secrets_never_appear_in_the_redacted_yaml_or_debug_output() {
    let secrets = [
        "hs256-secret-that-is-at-least-32-bytes-long",
        "sk-openai-key",
        "llama-key",
        "s3-secret-key",
        "hunter2",
        "webhook-master-secret-of-at-least-32-bytes",
    ];
    let yaml = "
database:
  url: postgres://nav:${DB_PASSWORD}@db/nav
blobs:
  url: s3://nav-docs/prod
  s3:
    access_key_id: AKIAEXAMPLE
    secret_access_key: ${S3_SECRET}
parser:
  kind: llamaparse
  webhook_secret: webhook-master-secret-of-at-least-32-bytes
  llamaparse:
    base_url: https://llama.example.com
    api_key: llama-key
embedder:
  kind: openai
  openai:
    base_url: https://api.openai.com/v1
    model: text-embedding-3-small
    api_key: sk-openai-key
    dimensions: 1536
auth:
  mode: jwt
  jwt:
    issuer: https://id.example.com
    audience: navigator
";
    let config = load_ok(
        yaml,
        &env(&[
            ("HOME", "/home/nav"),
            ("DB_PASSWORD", "hunter2"),
            ("S3_SECRET", "s3-secret-key"),
            (
                "NAVIGATOR__AUTH__JWT__HS256_SECRET",
                "hs256-secret-that-is-at-least-32-bytes-long",
            ),
        ]),
    );
    assert_eq!(
        config.embedder.openai.api_key.as_ref().map(|s| s.expose()),
        Some("sk-openai-key")
    );

    let redacted = config::redacted_yaml(&config);
    let debug = format!("{config:?}");
    let pretty_debug = format!("{config:#?}");
    for secret in secrets {
        assert!(
            !redacted.contains(secret),
            "{secret} leaked into:\n{redacted}"
        );
        assert!(!debug.contains(secret), "{secret} leaked into Debug");
        assert!(
            !pretty_debug.contains(secret),
            "{secret} leaked into pretty Debug"
        );
    }
    assert!(redacted.contains(REDACTED));
    assert!(
        redacted.contains("postgres://nav:[redacted]@db/nav"),
        "{redacted}"
    );
    assert!(
        redacted.contains("text-embedding-3-small"),
        "non-secrets stay visible"
    );
}

#[test]
fn the_redacted_yaml_of_the_defaults_loads_back_to_the_same_config() {
    let env = home_env();
    let defaults = Config::defaults(&env);
    assert_eq!(load_ok(&config::redacted_yaml(&defaults), &env), defaults);
}

#[test]
fn remote_provider_prices_and_budgets_are_validated_with_their_key_paths() {
    let yaml = "parser:\n  webhook_secret: short\nembedder:\n  kind: openai\n  batch_size: 300\n  openai:\n    base_url: http://127.0.0.1:8002/v1\n    model: m\n    breaker:\n      failure_threshold: 0\nusage:\n  prices:\n    llamaparse: {usd_per_page: -1}\n    other: {usd_per_pages: 1}\n  budgets:\n    hard_usd: -3\n";
    let errors = load_err(yaml, &home_env());
    let keys: BTreeSet<&str> = errors.iter().filter_map(|e| e.key.as_deref()).collect();
    for key in [
        "parser.webhook_secret",
        "embedder.openai.dimensions",
        "embedder.batch_size",
        "embedder.openai.breaker.failure_threshold",
        "usage.prices.llamaparse.usd_per_page",
        "usage.prices.other",
        "usage.budgets.hard_usd",
    ] {
        assert!(keys.contains(key), "no error for {key}: {errors}");
    }
    assert!(
        !errors.to_string().contains("short"),
        "secrets are never quoted: {errors}"
    );

    // Provider names are free-form keys of the price table.
    let config = load_ok(
        "usage:\n  prices:\n    \"openai/text-embedding-3-small/1536\": {usd_per_million_tokens: 0.02}\n    llamaparse: {usd_per_page: 0.003}\n",
        &home_env(),
    );
    assert_eq!(config.usage.prices.len(), 2);
    assert_eq!(config.usage.prices["llamaparse"].usd_per_page, 0.003);
}

#[test]
fn keys_can_come_from_the_environment_and_are_never_shown() {
    let key = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="; // base64 of 32 bytes
    let config = load_ok(
        "",
        &env(&[
            ("HOME", "/home/nav"),
            ("NAVIGATOR__ENCRYPTION__KEYS__K2026", key),
            ("NAVIGATOR__ENCRYPTION__ACTIVE_KEY", "k2026"),
            (
                "NAVIGATOR__AUDIT__HMAC_KEY",
                "0123456789abcdef0123456789abcdef-audit",
            ),
        ]),
    );
    assert_eq!(config.encryption.keys["k2026"].expose(), key);
    assert_eq!(config.encryption.active_key.as_deref(), Some("k2026"));
    let shown = config::redacted_yaml(&config);
    assert!(
        !shown.contains(key) && !shown.contains("0123456789abcdef-audit"),
        "{shown}"
    );

    let errors = load_err(
        "",
        &env(&[
            ("HOME", "/home/nav"),
            ("NAVIGATOR__ENCRYPTION__KEYS__K1", "short"),
        ]),
    );
    let keys: BTreeSet<&str> = errors.iter().filter_map(|e| e.key.as_deref()).collect();
    assert!(keys.contains("encryption.keys.k1"), "{errors}");
    assert!(!errors.to_string().contains("short"), "{errors}");
}

#[test]
fn a_plain_http_jwks_url_must_really_be_loopback() {
    let problems = |url: &str| {
        let yaml = format!(
            "auth:\n  mode: jwt\n  jwt:\n    jwks_url: \"{url}\"\n    issuer: https://id.example\n    audience: navigator\n"
        );
        match load(&yaml, &home_env()) {
            Ok(_) => Vec::new(),
            Err(errors) => errors
                .iter()
                .filter_map(|e| e.key.clone())
                .collect::<Vec<_>>(),
        }
    };
    assert!(problems("http://127.0.0.1:9000/jwks").is_empty());
    assert!(problems("http://localhost/jwks").is_empty());
    assert!(problems("https://id.example/jwks").is_empty());
    for sneaky in [
        "http://id.example/jwks",
        "http://id.example\\\\@localhost/jwks",
        "http://localhost.id.example/jwks",
    ] {
        assert_eq!(
            problems(sneaky),
            vec!["auth.jwt.jwks_url".to_owned()],
            "{sneaky}"
        );
    }
}
