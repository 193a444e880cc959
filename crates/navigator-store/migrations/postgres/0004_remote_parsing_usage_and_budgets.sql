-- Remote parsing (the parse cache, submitted remote parses, webhook replay protection), the
-- usage ledger and per-owner budgets. Ids are TEXT uuids (COLLATE "C"), timestamps BIGINT unix
-- milliseconds, money BIGINT millionths of a US dollar — as in the SQLite schema.

-- Which parser produced the document's stored parse artifact (set with its page count).
ALTER TABLE documents ADD COLUMN parser TEXT;
-- The parse cache lookup: same bytes, same parser, any owner.
CREATE INDEX documents_sha256_parser ON documents (sha256, parser) WHERE pages IS NOT NULL;

-- wake_due: waiting jobs by wake time.
CREATE INDEX jobs_waiting_wake_at ON jobs (wake_at, id) WHERE status = 'waiting';

-- One row per job whose parse was submitted to a remote provider.
CREATE TABLE remote_parses (
    job_id          TEXT COLLATE "C" PRIMARY KEY,
    document_id     TEXT COLLATE "C" NOT NULL,
    parser          TEXT    NOT NULL,
    provider_job_id TEXT    NOT NULL,
    submitted_at    BIGINT  NOT NULL,
    delivered_at    BIGINT,
    polls           BIGINT  NOT NULL DEFAULT 0 CHECK (polls >= 0)
);

CREATE INDEX remote_parses_document_id ON remote_parses (document_id);

-- Webhook delivery ids already accepted. History: kept when the document is deleted.
CREATE TABLE webhook_deliveries (
    delivery_id TEXT    PRIMARY KEY,
    job_id      TEXT COLLATE "C" NOT NULL,
    received_at BIGINT  NOT NULL
);

-- Append-only. History: kept when the document is deleted (it holds ids only).
CREATE TABLE usage_ledger (
    seq                  BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    owner_id             TEXT COLLATE "C" NOT NULL,
    document_id          TEXT COLLATE "C",
    job_id               TEXT COLLATE "C",
    kind                 TEXT    NOT NULL CHECK (kind IN ('parse', 'embed')),
    provider             TEXT    NOT NULL,
    model                TEXT    NOT NULL,
    pages                BIGINT  NOT NULL CHECK (pages >= 0),
    tokens               BIGINT  NOT NULL CHECK (tokens >= 0),
    requests             BIGINT  NOT NULL CHECK (requests >= 0),
    retries              BIGINT  NOT NULL CHECK (retries >= 0),
    cost_micro_usd       BIGINT  NOT NULL,
    saved_pages          BIGINT  NOT NULL CHECK (saved_pages >= 0),
    saved_tokens         BIGINT  NOT NULL CHECK (saved_tokens >= 0),
    saved_cost_micro_usd BIGINT  NOT NULL,
    at                   BIGINT  NOT NULL
);

CREATE INDEX usage_ledger_owner_id_at ON usage_ledger (owner_id, at);
CREATE INDEX usage_ledger_at ON usage_ledger (at);

CREATE TABLE budgets (
    owner_id       TEXT COLLATE "C" PRIMARY KEY,
    soft_micro_usd BIGINT,
    hard_micro_usd BIGINT,
    updated_at     BIGINT  NOT NULL
);
