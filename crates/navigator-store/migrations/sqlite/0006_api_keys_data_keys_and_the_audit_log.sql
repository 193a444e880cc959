-- Security state: service API keys, per-document data keys (envelope encryption) and the
-- append-only, hash-chained audit log. Ids are TEXT, timestamps INTEGER unix milliseconds,
-- hashes 32-byte BLOBs.

-- Service API keys. Only the SHA-256 of the secret is stored.
CREATE TABLE api_keys (
    id            TEXT    PRIMARY KEY NOT NULL,
    owner_id      TEXT    NOT NULL,
    -- A JSON array of role names.
    roles         TEXT    NOT NULL CHECK (json_valid(roles) AND json_type(roles) = 'array'),
    secret_sha256 BLOB    NOT NULL CHECK (length(secret_sha256) = 32),
    label         TEXT    NOT NULL,
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER,
    revoked_at    INTEGER,
    last_used_at  INTEGER
) STRICT;

-- list_api_keys: by creation time.
CREATE INDEX api_keys_created_at ON api_keys (created_at, id);

-- One data key per document, wrapped by a key-encryption key. Deleted with the document
-- (crypto-shredding). No foreign key: a document's blob is encrypted before its row exists.
CREATE TABLE data_keys (
    document_id TEXT    PRIMARY KEY NOT NULL,
    kek_id      TEXT    NOT NULL,
    wrapped     BLOB    NOT NULL,
    created_at  INTEGER NOT NULL
) STRICT;

-- Rewrapping and the per-kek counts.
CREATE INDEX data_keys_kek_id ON data_keys (kek_id);

-- The audit log: seq 1, 2, 3, …; each row's prev_hash is its predecessor's hash. A unique
-- prev_hash means two rows can never claim the same predecessor (no fork).
CREATE TABLE audit_log (
    seq           INTEGER PRIMARY KEY NOT NULL CHECK (seq >= 1),
    at            INTEGER NOT NULL,
    actor         TEXT    NOT NULL,
    action        TEXT    NOT NULL,
    resource_type TEXT    NOT NULL,
    resource_id   TEXT,
    outcome       TEXT    NOT NULL,
    request_id    TEXT,
    source_ip     TEXT,
    -- Canonical JSON of the whole entry, as the caller produced it (what the hash covers).
    entry         BLOB    NOT NULL,
    prev_hash     BLOB    NOT NULL UNIQUE CHECK (length(prev_hash) = 32),
    hash          BLOB    NOT NULL CHECK (length(hash) = 32)
) STRICT;

-- audit_entries filters.
CREATE INDEX audit_log_actor ON audit_log (actor, seq);
CREATE INDEX audit_log_resource_id ON audit_log (resource_id, seq);
CREATE INDEX audit_log_at ON audit_log (at);

-- Append-only, enforced by the database itself.
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit log is append-only');
END;

CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit log is append-only');
END;
