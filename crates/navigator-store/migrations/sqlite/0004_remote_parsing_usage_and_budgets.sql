-- Remote parsing (the parse cache, submitted remote parses, webhook replay protection), the
-- usage ledger and per-owner budgets. Ids are TEXT uuids, timestamps INTEGER unix milliseconds,
-- money INTEGER millionths of a US dollar.

-- Which parser produced the document's stored parse artifact (set with its page count).
ALTER TABLE documents ADD COLUMN parser TEXT;
-- The parse cache lookup: same bytes, same parser, any owner.
CREATE INDEX documents_sha256_parser ON documents (sha256, parser) WHERE pages IS NOT NULL;

-- wake_due: waiting jobs by wake time.
CREATE INDEX jobs_status_wake_at ON jobs (status, wake_at);

-- One row per job whose parse was submitted to a remote provider.
CREATE TABLE remote_parses (
    job_id          TEXT    PRIMARY KEY NOT NULL,
    document_id     TEXT    NOT NULL,
    parser          TEXT    NOT NULL,
    provider_job_id TEXT    NOT NULL,
    submitted_at    INTEGER NOT NULL,
    delivered_at    INTEGER,
    polls           INTEGER NOT NULL DEFAULT 0 CHECK (polls >= 0)
) STRICT;

CREATE INDEX remote_parses_document_id ON remote_parses (document_id);

-- Webhook delivery ids already accepted. History: kept when the document is deleted.
CREATE TABLE webhook_deliveries (
    delivery_id TEXT    PRIMARY KEY NOT NULL,
    job_id      TEXT    NOT NULL,
    received_at INTEGER NOT NULL
) STRICT;

-- Append-only. History: kept when the document is deleted (it holds ids only).
CREATE TABLE usage_ledger (
    seq                  INTEGER PRIMARY KEY AUTOINCREMENT,
    owner_id             TEXT    NOT NULL,
    document_id          TEXT,
    job_id               TEXT,
    kind                 TEXT    NOT NULL CHECK (kind IN ('parse', 'embed')),
    provider             TEXT    NOT NULL,
    model                TEXT    NOT NULL,
    pages                INTEGER NOT NULL CHECK (pages >= 0),
    tokens               INTEGER NOT NULL CHECK (tokens >= 0),
    requests             INTEGER NOT NULL CHECK (requests >= 0),
    retries              INTEGER NOT NULL CHECK (retries >= 0),
    cost_micro_usd       INTEGER NOT NULL,
    saved_pages          INTEGER NOT NULL CHECK (saved_pages >= 0),
    saved_tokens         INTEGER NOT NULL CHECK (saved_tokens >= 0),
    saved_cost_micro_usd INTEGER NOT NULL,
    at                   INTEGER NOT NULL
) STRICT;

CREATE INDEX usage_ledger_owner_id_at ON usage_ledger (owner_id, at);
CREATE INDEX usage_ledger_at ON usage_ledger (at);

CREATE TABLE budgets (
    owner_id       TEXT    PRIMARY KEY NOT NULL,
    soft_micro_usd INTEGER,
    hard_micro_usd INTEGER,
    updated_at     INTEGER NOT NULL
) STRICT;
