//! Keyword (FTS5, bm25) and vector (brute-force cosine) search over live chunks.

use super::db_err;
use super::rows;
use crate::{ChunkHit, SearchQuery, StoreError, StoreResult};
use sqlx::{Row, SqliteConnection};
use std::collections::HashMap;

/// Turns free text into a safe FTS5 query: the shared [`crate::keyword::query_terms`], each quoted
/// as a string, joined with `OR`. `None` when the text holds no word.
pub(crate) fn fts_query(text: &str) -> Option<String> {
    let terms = crate::keyword::query_terms(text);
    if terms.is_empty() {
        return None;
    }
    Some(
        terms
            .iter()
            .map(|t| format!("\"{t}\""))
            .collect::<Vec<_>>()
            .join(" OR "),
    )
}

/// `document_ids` as a JSON array for `json_each`, so the SQL text never depends on the input.
fn document_filter(query: &SearchQuery<'_>) -> Option<String> {
    query.document_ids.map(|ids| {
        let ids: Vec<String> = ids.iter().map(ToString::to_string).collect();
        serde_json::Value::from(ids).to_string()
    })
}

pub(super) async fn keyword(
    conn: &mut SqliteConnection,
    query: &SearchQuery<'_>,
) -> StoreResult<Vec<ChunkHit>> {
    let Some(fts) = fts_query(query.text) else {
        return Ok(Vec::new());
    };
    if query.limit == 0 {
        return Ok(Vec::new());
    }
    let rows = sqlx::query(
        "SELECT c.id, c.document_id, d.filename, c.page_start, c.page_end, c.section, c.text, \
         bm25(chunks_fts) AS rank \
         FROM chunks_fts f \
         JOIN chunks c ON c.pk = f.rowid \
         JOIN documents d ON d.id = c.document_id \
         WHERE chunks_fts MATCH ?1 \
           AND (?2 IS NULL OR c.owner_id = ?2) \
           AND (?3 IS NULL OR c.document_id IN (SELECT value FROM json_each(?3))) \
         ORDER BY rank, c.id \
         LIMIT ?4",
    )
    .bind(fts)
    .bind(query.scope.owner_param())
    .bind(document_filter(query))
    .bind(i64::from(query.limit))
    .fetch_all(conn)
    .await
    .map_err(db_err)?;
    rows.iter()
        .map(|row| {
            let rank: f64 = row.try_get("rank").map_err(db_err)?;
            // bm25 is lower-is-better; the trait wants higher-is-better.
            rows::hit(row, -rank)
        })
        .collect()
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let (mut dot, mut na, mut nb) = (0.0f64, 0.0f64, 0.0f64);
    for (x, y) in a.iter().zip(b) {
        let (x, y) = (f64::from(*x), f64::from(*y));
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    if na == 0.0 || nb == 0.0 {
        return 0.0;
    }
    dot / (na.sqrt() * nb.sqrt())
}

/// Brute force: every live chunk in scope with a vector for `model` is scored. That is O(n) in
/// the chunks visible to the caller — fine for the embedded default (tens of thousands of chunks
/// score in milliseconds), and the reason large deployments use the PostgreSQL backend's index.
///
/// Two phases inside one read transaction (one snapshot): score `(pk, vector)` pairs, then load
/// the text of the winners only.
pub(super) async fn vector(
    conn: &mut SqliteConnection,
    query: &SearchQuery<'_>,
    model: &str,
    vector: &[f32],
) -> StoreResult<Vec<ChunkHit>> {
    if vector.is_empty() {
        return Err(StoreError::Conflict("empty query vector".to_owned()));
    }
    if query.limit == 0 {
        return Ok(Vec::new());
    }
    let candidates = sqlx::query(
        "SELECT c.pk, e.dims, e.vector \
         FROM chunks c \
         JOIN embeddings e ON e.model = ?1 AND e.text_sha256 = c.text_sha256 \
         WHERE (?2 IS NULL OR c.owner_id = ?2) \
           AND (?3 IS NULL OR c.document_id IN (SELECT value FROM json_each(?3)))",
    )
    .bind(model)
    .bind(query.scope.owner_param())
    .bind(document_filter(query))
    .fetch_all(&mut *conn)
    .await
    .map_err(db_err)?;

    let mut scored: Vec<(f64, i64)> = Vec::with_capacity(candidates.len());
    for row in &candidates {
        let pk: i64 = row.try_get("pk").map_err(db_err)?;
        let dims: i64 = row.try_get("dims").map_err(db_err)?;
        let blob: &[u8] = row.try_get("vector").map_err(db_err)?;
        let stored = rows::decode_vector(blob, dims)?;
        if stored.len() != vector.len() {
            return Err(StoreError::Conflict(format!(
                "query vector has {} dimensions, model {model} has {}",
                vector.len(),
                stored.len()
            )));
        }
        scored.push((cosine(vector, &stored), pk));
    }
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    scored.truncate(usize::try_from(query.limit).unwrap_or(usize::MAX));
    if scored.is_empty() {
        return Ok(Vec::new());
    }

    let pks: Vec<i64> = scored.iter().map(|(_, pk)| *pk).collect();
    let rows = sqlx::query(
        "SELECT c.pk, c.id, c.document_id, d.filename, c.page_start, c.page_end, c.section, c.text \
         FROM chunks c JOIN documents d ON d.id = c.document_id \
         WHERE c.pk IN (SELECT value FROM json_each(?1))",
    )
    .bind(serde_json::Value::from(pks).to_string())
    .fetch_all(&mut *conn)
    .await
    .map_err(db_err)?;
    let mut by_pk = HashMap::with_capacity(rows.len());
    for row in &rows {
        let pk: i64 = row.try_get("pk").map_err(db_err)?;
        by_pk.insert(pk, row);
    }
    scored
        .iter()
        .filter_map(|(score, pk)| by_pk.get(pk).map(|row| rows::hit(*row, *score)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_text_becomes_quoted_words_or_nothing() {
        assert_eq!(fts_query("\""), None);
        assert_eq!(fts_query("*"), None);
        assert_eq!(fts_query("NEAR("), Some("\"near\"".to_owned()));
        assert_eq!(fts_query("' OR 1=1 --"), Some("\"1\"".to_owned()));
        assert_eq!(
            fts_query("Lease, lease EXPIRY!"),
            Some("\"lease\" OR \"expiry\"".to_owned())
        );
        let long = "word ".repeat(2_000);
        assert_eq!(fts_query(&long), Some("\"word\"".to_owned()));
    }

    #[test]
    fn cosine_is_scale_invariant_and_zero_for_zero_vectors() {
        assert!((cosine(&[1.0, 0.0], &[2.0, 0.0]) - 1.0).abs() < 1e-9);
        assert!(cosine(&[1.0, 0.0], &[0.0, 3.0]).abs() < 1e-9);
        assert_eq!(cosine(&[0.0, 0.0], &[1.0, 0.0]), 0.0);
    }
}
