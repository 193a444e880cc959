-- Security state: service API keys, per-document data keys (envelope encryption) and the
-- append-only, hash-chained audit log. Ids are TEXT (COLLATE "C"), timestamps BIGINT unix
-- milliseconds, hashes 32-byte BYTEA — as in the SQLite schema.

-- Service API keys. Only the SHA-256 of the secret is stored.
CREATE TABLE api_keys (
    id            TEXT COLLATE "C" PRIMARY KEY,
    owner_id      TEXT COLLATE "C" NOT NULL,
    -- A JSON array of role names (text, read back verbatim as on SQLite).
    roles         TEXT    NOT NULL CHECK (jsonb_typeof(roles::jsonb) = 'array'),
    secret_sha256 BYTEA   NOT NULL CHECK (octet_length(secret_sha256) = 32),
    label         TEXT    NOT NULL,
    created_at    BIGINT  NOT NULL,
    expires_at    BIGINT,
    revoked_at    BIGINT,
    last_used_at  BIGINT
);

-- list_api_keys: by creation time.
CREATE INDEX api_keys_created_at ON api_keys (created_at, id);

-- One data key per document, wrapped by a key-encryption key. Deleted with the document
-- (crypto-shredding). No foreign key: a document's blob is encrypted before its row exists.
CREATE TABLE data_keys (
    document_id TEXT COLLATE "C" PRIMARY KEY,
    kek_id      TEXT COLLATE "C" NOT NULL,
    wrapped     BYTEA   NOT NULL,
    created_at  BIGINT  NOT NULL
);

-- Rewrapping and the per-kek counts.
CREATE INDEX data_keys_kek_id ON data_keys (kek_id);

-- The audit log: seq 1, 2, 3, …; each row's prev_hash is its predecessor's hash. A unique
-- prev_hash means two rows can never claim the same predecessor (no fork).
CREATE TABLE audit_log (
    seq           BIGINT  PRIMARY KEY CHECK (seq >= 1),
    at            BIGINT  NOT NULL,
    actor         TEXT COLLATE "C" NOT NULL,
    action        TEXT COLLATE "C" NOT NULL,
    resource_type TEXT    NOT NULL,
    resource_id   TEXT COLLATE "C",
    outcome       TEXT    NOT NULL,
    request_id    TEXT,
    source_ip     TEXT,
    -- Canonical JSON of the whole entry, as the caller produced it (what the hash covers).
    entry         BYTEA   NOT NULL,
    prev_hash     BYTEA   NOT NULL UNIQUE CHECK (octet_length(prev_hash) = 32),
    hash          BYTEA   NOT NULL CHECK (octet_length(hash) = 32)
);

-- audit_entries filters.
CREATE INDEX audit_log_actor ON audit_log (actor, seq);
CREATE INDEX audit_log_resource_id ON audit_log (resource_id, seq);
CREATE INDEX audit_log_at ON audit_log (at);

-- Append-only, enforced by the database itself. restrict_violation (SQLSTATE 23001) is an
-- integrity violation, which the store reports as a conflict.
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit log is append-only' USING ERRCODE = 'restrict_violation';
END
$$;

CREATE TRIGGER audit_log_no_update_or_delete BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();

CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
