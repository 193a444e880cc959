-- Documents, their jobs and the job event log.
-- Timestamps are BIGINT unix milliseconds (as in the SQLite schema); ids are TEXT uuids
-- (hyphenated, lowercase) with the "C" collation, so text order is byte order and therefore time
-- order for the UUIDv7 document and job ids, whatever the database's default collation.

CREATE TABLE jobs (
    id               TEXT COLLATE "C" PRIMARY KEY,
    -- No foreign key: a job outlives its (deleted) document as a cancelled record.
    document_id      TEXT COLLATE "C" NOT NULL,
    owner_id         TEXT    NOT NULL,
    status           TEXT    NOT NULL CHECK (status IN
                         ('queued', 'running', 'waiting', 'retrying', 'complete', 'failed', 'cancelled')),
    stage            TEXT    NOT NULL CHECK (stage IN ('parse', 'chunk', 'embed', 'index')),
    attempts         BIGINT  NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    run_at           BIGINT  NOT NULL,
    wake_at          BIGINT,
    lease_owner      TEXT,
    lease_expires_at BIGINT,
    error_code       TEXT,
    error_message    TEXT,
    pages            BIGINT,
    chunks_total     BIGINT,
    chunks_embedded  BIGINT  NOT NULL DEFAULT 0,
    created_at       BIGINT  NOT NULL,
    updated_at       BIGINT  NOT NULL,
    finished_at      BIGINT
);

-- Claims: earliest eligible run_at among queued/retrying.
CREATE INDEX jobs_eligible_run_at ON jobs (run_at, id) WHERE status IN ('queued', 'retrying');
CREATE INDEX jobs_status_run_at ON jobs (status, run_at);
-- Rescue: running jobs by lease expiry.
CREATE INDEX jobs_status_lease_expires_at ON jobs (status, lease_expires_at);
CREATE INDEX jobs_document_id ON jobs (document_id);
CREATE INDEX jobs_owner_id ON jobs (owner_id, id);

CREATE TABLE documents (
    id              TEXT COLLATE "C" PRIMARY KEY,
    owner_id        TEXT    NOT NULL,
    filename        TEXT    NOT NULL,
    media_type      TEXT    NOT NULL,
    bytes           BIGINT  NOT NULL CHECK (bytes >= 0),
    sha256          TEXT    NOT NULL,
    pages           BIGINT,
    metadata        JSONB   NOT NULL DEFAULT '{}',
    idempotency_key TEXT,
    current_job_id  TEXT COLLATE "C" NOT NULL REFERENCES jobs (id),
    created_at      BIGINT  NOT NULL,
    updated_at      BIGINT  NOT NULL
);

-- Dedupe: one live document per owner and content, and per owner and idempotency key.
CREATE UNIQUE INDEX documents_owner_sha256 ON documents (owner_id, sha256);
CREATE UNIQUE INDEX documents_owner_idempotency_key ON documents (owner_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX documents_owner_id ON documents (owner_id, id);

CREATE TABLE job_events (
    seq         BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id      TEXT COLLATE "C" NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    from_status TEXT,
    to_status   TEXT    NOT NULL,
    stage       TEXT    NOT NULL,
    worker      TEXT,
    duration_ms BIGINT,
    detail      TEXT,
    error_code  TEXT,
    at          BIGINT  NOT NULL
);

CREATE INDEX job_events_job_id_seq ON job_events (job_id, seq);
