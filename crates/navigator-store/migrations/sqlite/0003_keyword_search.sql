-- Keyword search over live chunks. A plain FTS5 table whose rowid is chunks.pk; the store
-- maintains it in the same transactions that publish and delete chunks (no triggers). The porter
-- stemmer makes "claims", "claimed" and "claim" one term.
CREATE VIRTUAL TABLE chunks_fts USING fts5 (
    text,
    chunk_id UNINDEXED,
    tokenize = 'porter unicode61 remove_diacritics 2'
);
