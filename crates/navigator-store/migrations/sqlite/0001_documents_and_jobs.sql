-- Documents, their jobs and the job event log.
-- Timestamps are INTEGER unix milliseconds; ids are TEXT uuids (hyphenated, lowercase, so text
-- order is time order for the UUIDv7 document and job ids).

CREATE TABLE jobs (
    id               TEXT    PRIMARY KEY NOT NULL,
    -- No foreign key: a job outlives its (deleted) document as a cancelled record.
    document_id      TEXT    NOT NULL,
    owner_id         TEXT    NOT NULL,
    status           TEXT    NOT NULL CHECK (status IN
                         ('queued', 'running', 'waiting', 'retrying', 'complete', 'failed', 'cancelled')),
    stage            TEXT    NOT NULL CHECK (stage IN ('parse', 'chunk', 'embed', 'index')),
    attempts         INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    run_at           INTEGER NOT NULL,
    wake_at          INTEGER,
    lease_owner      TEXT,
    lease_expires_at INTEGER,
    error_code       TEXT,
    error_message    TEXT,
    pages            INTEGER,
    chunks_total     INTEGER,
    chunks_embedded  INTEGER NOT NULL DEFAULT 0,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    finished_at      INTEGER
) STRICT;

-- Claims: earliest eligible run_at among queued/retrying.
CREATE INDEX jobs_status_run_at ON jobs (status, run_at);
-- Rescue: running jobs by lease expiry.
CREATE INDEX jobs_status_lease_expires_at ON jobs (status, lease_expires_at);
CREATE INDEX jobs_document_id ON jobs (document_id);
CREATE INDEX jobs_owner_id ON jobs (owner_id, id);

CREATE TABLE documents (
    id              TEXT    PRIMARY KEY NOT NULL,
    owner_id        TEXT    NOT NULL,
    filename        TEXT    NOT NULL,
    media_type      TEXT    NOT NULL,
    bytes           INTEGER NOT NULL CHECK (bytes >= 0),
    sha256          TEXT    NOT NULL,
    pages           INTEGER,
    metadata        TEXT    NOT NULL DEFAULT '{}',
    idempotency_key TEXT,
    current_job_id  TEXT    NOT NULL REFERENCES jobs (id),
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
) STRICT;

-- Dedupe: one live document per owner and content, and per owner and idempotency key.
CREATE UNIQUE INDEX documents_owner_sha256 ON documents (owner_id, sha256);
CREATE UNIQUE INDEX documents_owner_idempotency_key ON documents (owner_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX documents_owner_id ON documents (owner_id, id);

CREATE TABLE job_events (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id      TEXT    NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    from_status TEXT,
    to_status   TEXT    NOT NULL,
    stage       TEXT    NOT NULL,
    worker      TEXT,
    duration_ms INTEGER,
    detail      TEXT,
    error_code  TEXT,
    at          INTEGER NOT NULL
);

CREATE INDEX job_events_job_id_seq ON job_events (job_id, seq);
