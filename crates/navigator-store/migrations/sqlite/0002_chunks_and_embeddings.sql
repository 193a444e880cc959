-- Staged and live chunks, and the content-addressed embedding cache.

CREATE TABLE staged_chunks (
    id              TEXT    PRIMARY KEY NOT NULL,
    document_id     TEXT    NOT NULL REFERENCES documents (id),
    owner_id        TEXT    NOT NULL,
    ord             INTEGER NOT NULL,
    text            TEXT    NOT NULL,
    text_sha256     TEXT    NOT NULL,
    page_start      INTEGER NOT NULL,
    page_end        INTEGER NOT NULL,
    section         TEXT    NOT NULL,
    token_count     INTEGER NOT NULL,
    chunker         TEXT    NOT NULL,
    chunker_version TEXT    NOT NULL
) STRICT;

CREATE INDEX staged_chunks_document_id_ord ON staged_chunks (document_id, ord);
CREATE INDEX staged_chunks_text_sha256 ON staged_chunks (text_sha256);

CREATE TABLE chunks (
    -- An explicit INTEGER PRIMARY KEY keeps rowids stable across VACUUM: the keyword index
    -- (0003) uses it as its rowid.
    pk              INTEGER PRIMARY KEY,
    id              TEXT    NOT NULL UNIQUE,
    document_id     TEXT    NOT NULL REFERENCES documents (id),
    owner_id        TEXT    NOT NULL,
    ord             INTEGER NOT NULL,
    text            TEXT    NOT NULL,
    text_sha256     TEXT    NOT NULL,
    page_start      INTEGER NOT NULL,
    page_end        INTEGER NOT NULL,
    section         TEXT    NOT NULL,
    token_count     INTEGER NOT NULL,
    chunker         TEXT    NOT NULL,
    chunker_version TEXT    NOT NULL,
    published_at    INTEGER NOT NULL
) STRICT;

CREATE INDEX chunks_document_id_ord ON chunks (document_id, ord);
CREATE INDEX chunks_text_sha256 ON chunks (text_sha256);
CREATE INDEX chunks_owner_id ON chunks (owner_id);

CREATE TABLE embeddings (
    model       TEXT    NOT NULL,
    text_sha256 TEXT    NOT NULL,
    dims        INTEGER NOT NULL CHECK (dims > 0),
    -- dims little-endian f32 values.
    vector      BLOB    NOT NULL,
    PRIMARY KEY (model, text_sha256)
) STRICT, WITHOUT ROWID;

-- Garbage collection of embeddings by text hash, across models.
CREATE INDEX embeddings_text_sha256 ON embeddings (text_sha256);
