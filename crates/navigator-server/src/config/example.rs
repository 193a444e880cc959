//! The annotated example configuration (`navigator config example`). A test loads it back and
//! requires exactly the defaults, and another requires that it lists every key, so it cannot
//! drift from the structs.

/// A complete, commented `navigator.yaml`: every key, set to its default, with a one-line
/// explanation. Loading it gives the same configuration as an empty file.
pub fn example_yaml() -> String {
    EXAMPLE.to_owned()
}

const EXAMPLE: &str = r#"# navigator.yaml — every key with its default value.
#
# Found via `--config PATH`, else ./navigator.yaml, else built-in defaults (an empty file is valid).
# Substitution before parsing: ${VAR} (must be set), ${VAR:-default} (used when unset or empty),
# ${VAR:?message} (start-up fails with message when unset or empty), $$ for a literal dollar sign.
# A bare $VAR is left as is, and nothing is substituted inside comments.
# Quote substitutions that may contain YAML syntax: api_key: "${OPENAI_API_KEY:?set the key}".
# Then environment overrides win: NAVIGATOR__SECTION__KEY=value, e.g. NAVIGATOR__WORKERS__CONCURRENCY=8.
# Keys marked (secret) are never printed; prefer ${VAR} or an override over writing them here.

# Root directory of everything kept on local disk (database, blobs, models fallback).
data_dir: ./navigator-data

server:
  # Address and port the HTTP API binds (`navigator serve --listen` overrides it).
  listen: 127.0.0.1:8080
  # Public base URL callers and callbacks use to reach this server, e.g. https://nav.example.com.
  public_url:
  # Largest accepted upload in bytes (100 MiB); larger uploads get 413 before being buffered.
  max_upload_bytes: 104857600
  # Seconds before an HTTP request is abandoned.
  request_timeout_secs: 30
  # Seconds a SIGTERM drain may take (requests finish, workers return their leases).
  shutdown_grace_secs: 30
  # Requests per minute one principal may make, per API process (0: unlimited); over it: 429.
  rate_limits:
    uploads_per_minute: 120
    searches_per_minute: 600
  # HTTPS: set both files (PEM; the certificate file may hold the chain, leaf first) or neither
  # (plain HTTP). TLS 1.2 and 1.3 only.
  tls:
    # Certificate file, e.g. /etc/navigator/tls/cert.pem.
    cert_path:
    # Private key file (PKCS#8, PKCS#1 or SEC1), e.g. /etc/navigator/tls/key.pem.
    key_path:
    # Seconds between checks of both files; a changed pair is loaded for new connections
    # (a pair that fails to load is logged and the old one kept).
    reload_interval_secs: 10
  # Strict-Transport-Security max-age in seconds, sent on every response when TLS is on.
  hsts_max_age_secs: 31536000

database:
  # sqlite://PATH or postgres://USER:PASSWORD@HOST/DB (password masked in output);
  # empty means sqlite://{data_dir}/navigator.db.
  url:
  # PostgreSQL connection pool (SQLite ignores it).
  pool:
    # Most connections this process opens.
    max_connections: 10
    # Seconds a request waits for a free connection before failing with 503.
    acquire_timeout_secs: 5
    # Seconds any one statement may run on the server.
    statement_timeout_secs: 30
    # Seconds a transaction may sit idle before the server ends it.
    idle_in_transaction_timeout_secs: 60
  # TLS to PostgreSQL (SQLite ignores it).
  tls:
    # disable, prefer (TLS when offered), require (TLS, certificate unchecked unless ca_path is
    # set), verify-ca (certificate chained to ca_path) or verify-full (also the host name).
    mode: prefer
    # PEM file of the CA(s) the server certificate must chain to (required for verify-ca and
    # verify-full).
    ca_path:

blobs:
  # file://DIR or s3://BUCKET/PREFIX; empty means file://{data_dir}/blobs.
  url:
  s3:
    # S3-compatible endpoint (MinIO, R2, …); empty means AWS.
    endpoint:
    # Bucket region, e.g. eu-west-1.
    region:
    # Access key id; empty means the standard AWS credential chain.
    access_key_id:
    # (secret) Secret access key, required with access_key_id.
    secret_access_key:
    # Accept a plain-http endpoint (local MinIO only).
    allow_http: false

parser:
  # builtin (PDF, DOCX, HTML, Markdown, text; nothing leaves the machine) or llamaparse (remote).
  kind: builtin
  # Seconds allowed to parse one document.
  timeout_secs: 60
  # Memory limit of the sandboxed parser process, in MiB.
  memory_mb: 1024
  # Run built-in parsers in a resource-limited child process.
  sandbox: true
  # Reuse the parse of another owner's identical file (single-tenant deployments only: the
  # savings would tell one tenant that another uploaded the same file).
  share_cache_across_owners: false
  # (secret) Master secret for signing parser webhooks, at least 32 bytes; a remote parser
  # calls back only when this and server.public_url are set, else its results are polled.
  webhook_secret:
  llamaparse:
    # Base URL of the LlamaParse-compatible service, e.g. https://api.cloud.llamaindex.ai
    # (required when kind is llamaparse).
    base_url:
    # (secret) API key of that service (required when kind is llamaparse).
    api_key:
    # Seconds between polls while no webhook has delivered the result.
    poll_interval_secs: 15
    # Seconds after submission before an unfinished parse fails with parser_timeout.
    timeout_secs: 900
    # Requests per minute this process sends the service (0: no client-side limit).
    requests_per_minute: 60
    # Seconds before one HTTP request to the service is abandoned.
    request_timeout_secs: 30
    # Tries of one request on 429, 5xx and timeouts before the stage is retried later.
    max_attempts: 4
    breaker:
      # Consecutive failed requests that open the circuit breaker.
      failure_threshold: 5
      # Seconds the breaker stays open before one probe request is let through.
      open_secs: 30

embedder:
  # local (all-MiniLM-L6-v2, 384 dims, on this machine), openai (any OpenAI-compatible API),
  # or hash (deterministic test embedder: fast, no model, meaningless similarity; tests only).
  kind: local
  # Chunks sent per embedding call.
  batch_size: 32
  local:
    # Model files; empty means $XDG_CACHE_HOME/navigator/models/all-MiniLM-L6-v2,
    # else ~/.cache/navigator/models/all-MiniLM-L6-v2, else {data_dir}/models/all-MiniLM-L6-v2.
    model_dir:
  openai:
    # API base URL, e.g. https://api.openai.com/v1 (required when kind is openai).
    base_url:
    # Model name, e.g. text-embedding-3-small (required when kind is openai).
    model:
    # (secret) API key.
    api_key:
    # Length of the model's vectors, e.g. 1536 (required when kind is openai).
    dimensions:
    # Send `dimensions` with each request, for models that can shorten their vectors.
    request_dimensions: false
    # Most tokens in one request (inputs per request: embedder.batch_size, at most 256).
    max_batch_tokens: 8000
    # Client-side limits of this process (0: none); the provider's x-ratelimit-* headers also count.
    requests_per_minute: 0
    tokens_per_minute: 0
    # Most requests in flight; the adaptive limit moves between 1 and this.
    max_concurrency: 8
    # Seconds before one request is abandoned.
    request_timeout_secs: 30
    # Tries of one request on 429, 5xx, timeouts and bad answers before the stage is retried later.
    max_attempts: 4
    breaker:
      # Consecutive failed requests that open the circuit breaker.
      failure_threshold: 5
      # Seconds the breaker stays open before one probe request is let through.
      open_secs: 30

chunker:
  # Hard upper bound of a chunk in embedder tokens (32 or more; at most 256 with the local model).
  max_tokens: 256
  # Chunk size the chunker aims for (at most max_tokens).
  target_tokens: 200
  # Fraction of a chunk repeated at the start of the next one (0 to 0.5).
  overlap_ratio: 0.15

workers:
  # Jobs one worker process runs at once (1 to 64).
  concurrency: 2
  # Seconds a claimed job stays leased without renewal before the rescuer may requeue it.
  lease_secs: 30
  # Milliseconds between claim attempts when the queue is empty.
  poll_interval_ms: 500
  # Seconds between rescuer runs that requeue jobs whose lease expired.
  rescue_interval_secs: 10
  retry:
    # First retry delay ceiling in seconds; doubles per attempt (full jitter).
    base_secs: 3
    # Largest retry delay in seconds.
    cap_secs: 300
    # Attempts of one stage before the job fails with retries_exhausted.
    max_attempts: 5

auth:
  # none (every caller is one local owner; laptops and tests) or jwt (bearer tokens).
  mode: none
  jwt:
    # (secret) HS256 shared secret, at least 32 bytes; this or jwks_url is required for jwt.
    hs256_secret:
    # JWKS URL for RS256/ES256/EdDSA keys (https; http only for localhost).
    jwks_url:
    # A JWKS file instead of a URL (re-read when a token names an unknown kid).
    jwks_file:
    # Required `iss` claim (required for jwt).
    issuer:
    # Required `aud` claim (required for jwt).
    audience:
    # Allowed alg values (HS256, RS256, ES256, EdDSA; never none); empty means HS256 with
    # hs256_secret, RS256/ES256/EdDSA with a JWKS.
    algorithms: []
    # Longest accepted token lifetime (exp - iat), in seconds.
    max_lifetime_secs: 3600
    # Clock skew tolerated on exp, nbf and iat, in seconds (at most 60).
    leeway_secs: 30
    # Seconds fetched JWKS keys are trusted before a refresh.
    jwks_cache_secs: 300
    # Least seconds between two JWKS fetches caused by unknown kids (lower values multiply
    # the fetches a burst of forged kids can cause).
    jwks_min_refresh_secs: 60
    # Longer bearer tokens are refused before parsing, in bytes.
    max_token_bytes: 8192
  # Role -> permissions, replacing the built-in defaults of the roles listed; e.g.
  # {member: [documents:read, documents:write, documents:delete, search, jobs:read, jobs:retry, usage:read]}.
  # owners:all acts across owners (built into operator, auditor, admin); only admin may hold it
  # together with documents:* or search.
  roles: {}

search:
  # Hits returned when a request gives no limit.
  default_limit: 10
  # Largest limit a request may ask for.
  max_limit: 100
  # Reciprocal-rank-fusion constant; larger values flatten the weight of top ranks.
  rrf_k: 60

usage:
  # Prices by provider: an embedder model id (openai/text-embedding-3-small/1536) or a parser
  # (llamaparse, builtin), each with usd_per_million_tokens and/or usd_per_page. Unlisted: free.
  # e.g. {"openai/text-embedding-3-small/1536": {usd_per_million_tokens: 0.02}, llamaparse: {usd_per_page: 0.003}}
  prices: {}
  budgets:
    # Monthly spend per owner in USD past which an event and a metric are emitted (empty: none).
    soft_usd:
    # Monthly spend per owner in USD past which new work waits (budget_exceeded) until raised
    # (empty: none); PUT /v1/budgets/{owner} sets one owner's budget.
    hard_usd:
    # Seconds between re-checks of work waiting on a hard budget.
    recheck_secs: 60

encryption:
  # Keyring file with the key-encryption keys and the audit key, created (mode 0600) on first
  # start; empty means {data_dir}/keyring.json. Ignored when keys is set.
  keyring_file:
  # (secret) Key-encryption keys by id, base64 of 32 bytes each, instead of the file, e.g.
  # {"k2026": "${NAVIGATOR_KEK_2026}"}.
  keys: {}
  # The key that wraps new data keys; empty means the file's active key, or the only key.
  active_key:
  # Seconds an unwrapped per-document data key stays cached in memory.
  key_cache_secs: 300

audit:
  # (secret) HMAC key of the audit chain, at least 32 bytes; empty means the keyring's audit key.
  hmac_key:
  # File outside the database anchoring the chain's head (detects a truncated tail); empty means
  # {data_dir}/audit-anchor.json.
  anchor_file:

log:
  # text (for humans) or json (one object per line, for collectors).
  format: text
  # tracing filter, e.g. info or info,navigator_pipeline=debug.
  level: info
"#;
