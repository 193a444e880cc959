-- Keyword search over live chunks: a generated tsvector (English stemming, so "claims",
-- "claimed" and "claim" are one term) and a GIN index over it. Being a generated column, it is
-- always in step with the chunk text: no triggers, nothing for the store to maintain.
ALTER TABLE chunks
    ADD COLUMN tsv tsvector GENERATED ALWAYS AS (to_tsvector('english', text)) STORED;

CREATE INDEX chunks_tsv ON chunks USING gin (tsv);
