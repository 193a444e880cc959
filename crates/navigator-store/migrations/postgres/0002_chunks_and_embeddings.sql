-- Staged and live chunks, and the content-addressed embedding cache.

CREATE EXTENSION IF NOT EXISTS vector;

CREATE TABLE staged_chunks (
    id              TEXT COLLATE "C" PRIMARY KEY,
    document_id     TEXT COLLATE "C" NOT NULL REFERENCES documents (id),
    owner_id        TEXT    NOT NULL,
    ord             BIGINT  NOT NULL,
    text            TEXT    NOT NULL,
    text_sha256     TEXT    NOT NULL,
    page_start      BIGINT  NOT NULL,
    page_end        BIGINT  NOT NULL,
    section         TEXT    NOT NULL,
    token_count     BIGINT  NOT NULL,
    chunker         TEXT    NOT NULL,
    chunker_version TEXT    NOT NULL
);

CREATE INDEX staged_chunks_document_id_ord ON staged_chunks (document_id, ord);
CREATE INDEX staged_chunks_text_sha256 ON staged_chunks (text_sha256);

CREATE TABLE chunks (
    -- Publication order, used to break score ties the way the SQLite backend does.
    pk              BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id              TEXT COLLATE "C" NOT NULL UNIQUE,
    document_id     TEXT COLLATE "C" NOT NULL REFERENCES documents (id),
    owner_id        TEXT    NOT NULL,
    ord             BIGINT  NOT NULL,
    text            TEXT    NOT NULL,
    text_sha256     TEXT    NOT NULL,
    page_start      BIGINT  NOT NULL,
    page_end        BIGINT  NOT NULL,
    section         TEXT    NOT NULL,
    token_count     BIGINT  NOT NULL,
    chunker         TEXT    NOT NULL,
    chunker_version TEXT    NOT NULL,
    published_at    BIGINT  NOT NULL
);

CREATE INDEX chunks_document_id_ord ON chunks (document_id, ord);
CREATE INDEX chunks_text_sha256 ON chunks (text_sha256);
CREATE INDEX chunks_owner_id ON chunks (owner_id);

CREATE TABLE embeddings (
    model       TEXT    NOT NULL,
    text_sha256 TEXT    NOT NULL,
    dims        INTEGER NOT NULL CHECK (dims > 0),
    -- No fixed dimension: models differ. `dims` always equals vector_dims(vector).
    vector      vector  NOT NULL CHECK (vector_dims(vector) = dims),
    PRIMARY KEY (model, text_sha256)
);

-- Garbage collection of embeddings by text hash, across models.
CREATE INDEX embeddings_text_sha256 ON embeddings (text_sha256);
-- Approximate nearest neighbours for the common 384-dimension models (an index needs a fixed
-- dimension, hence the cast and the partial predicate). Other sizes are searched exactly.
CREATE INDEX embeddings_vector_384_hnsw ON embeddings
    USING hnsw ((vector::vector(384)) vector_cosine_ops) WHERE dims = 384;
