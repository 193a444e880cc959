//! Keyword (tsvector, `ts_rank_cd`) and vector (pgvector cosine) search over live chunks.

use super::db_err;
use super::rows;
use crate::{ChunkHit, SearchQuery, StoreError, StoreResult};
use pgvector::Vector;
use sqlx::PgConnection;

/// The dimension the partial HNSW index (migration 0002) covers.
pub(super) const INDEXED_DIMS: usize = 384;

/// Turns free text into a safe `to_tsquery` input: the shared [`crate::keyword::query_terms`],
/// each quoted as a lexeme (they are alphanumeric only, so they hold no quote), joined with `|`.
/// `None` when the text holds no word.
pub(crate) fn ts_query(text: &str) -> Option<String> {
    let terms = crate::keyword::query_terms(text);
    if terms.is_empty() {
        return None;
    }
    Some(
        terms
            .iter()
            .map(|t| format!("'{t}'"))
            .collect::<Vec<_>>()
            .join(" | "),
    )
}

/// `document_ids` as a text array for `= ANY($n)`, so the SQL text never depends on the input.
fn document_filter(query: &SearchQuery<'_>) -> Option<Vec<String>> {
    query
        .document_ids
        .map(|ids| ids.iter().map(ToString::to_string).collect())
}

pub(super) async fn keyword(
    conn: &mut PgConnection,
    query: &SearchQuery<'_>,
) -> StoreResult<Vec<ChunkHit>> {
    let Some(tsq) = ts_query(query.text) else {
        return Ok(Vec::new());
    };
    if query.limit == 0 {
        return Ok(Vec::new());
    }
    let rows = sqlx::query(
        "SELECT c.id, c.document_id, d.filename, c.page_start, c.page_end, c.section, c.text, \
         ts_rank_cd(c.tsv, q.q)::float8 AS score \
         FROM to_tsquery('english', $1) AS q(q) \
         JOIN chunks c ON c.tsv @@ q.q \
         JOIN documents d ON d.id = c.document_id \
         WHERE ($2::text IS NULL OR c.owner_id = $2) \
           AND ($3::text[] IS NULL OR c.document_id = ANY($3)) \
         ORDER BY score DESC, c.id \
         LIMIT $4",
    )
    .bind(tsq)
    .bind(query.scope.owner_param())
    .bind(document_filter(query))
    .bind(i64::from(query.limit))
    .fetch_all(conn)
    .await
    .map_err(db_err)?;
    rows.iter().map(rows::hit).collect()
}

/// Whether the installed pgvector understands `hnsw.iterative_scan` (0.8 and later).
async fn has_iterative_scan(conn: &mut PgConnection) -> StoreResult<bool> {
    let version: Option<String> =
        sqlx::query_scalar("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
            .fetch_optional(conn)
            .await
            .map_err(db_err)?;
    let Some(version) = version else {
        return Ok(false);
    };
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let major = parts.next().unwrap_or(0);
    let minor = parts.next().unwrap_or(0);
    Ok(major > 0 || minor >= 8)
}

/// Cosine similarity `1 - distance`; a zero vector (distance NaN) scores 0, like SQLite.
macro_rules! score {
    () => {
        "COALESCE(NULLIF(1 - (e.vector <=> $1), 'NaN'::float8), 0)"
    };
}

/// The joined rows a vector search considers: live chunks in scope with an embedding of the
/// query's model and size.
macro_rules! candidates {
    () => {
        " FROM embeddings e \
         JOIN chunks c ON c.text_sha256 = e.text_sha256 \
         JOIN documents d ON d.id = c.document_id \
         WHERE e.model = $2 AND e.dims = $3 \
           AND ($4::text IS NULL OR c.owner_id = $4) \
           AND ($5::text[] IS NULL OR c.document_id = ANY($5))"
    };
}

/// Through the HNSW index: the inner query is shaped for it (ORDER BY the indexed expression);
/// the outer one restores exact order, which relaxed iterative scans may not keep.
const INDEXED_SEARCH: &str = concat!(
    "SELECT * FROM (SELECT c.id, c.document_id, d.filename, c.page_start, c.page_end, \
     c.section, c.text, c.pk, ",
    score!(),
    " AS score",
    candidates!(),
    " ORDER BY e.vector::vector(384) <=> $1::vector(384) LIMIT $6) AS nearest \
     ORDER BY score DESC, pk"
);

/// Exact: every candidate is scored.
const EXACT_SEARCH: &str = concat!(
    "SELECT c.id, c.document_id, d.filename, c.page_start, c.page_end, c.section, c.text, ",
    score!(),
    " AS score",
    candidates!(),
    " ORDER BY score DESC, c.pk LIMIT $6"
);

/// Nearest live chunks in scope. For [`INDEXED_DIMS`]-dimension models the HNSW index answers
/// (approximate, like any ANN index: filters are applied to the candidates it yields, with
/// `ef_search` raised to the limit and, on pgvector 0.8+, iterative scans so filtered queries
/// still fill the limit); other sizes are an exact scan. Must run inside a transaction (the
/// `SET LOCAL`s).
pub(super) async fn vector(
    conn: &mut PgConnection,
    query: &SearchQuery<'_>,
    model: &str,
    vector: &[f32],
) -> StoreResult<Vec<ChunkHit>> {
    if vector.is_empty() {
        return Err(StoreError::Conflict("empty query vector".to_owned()));
    }
    if vector.iter().any(|v| !v.is_finite()) {
        return Err(StoreError::Conflict(
            "query vector is not finite".to_owned(),
        ));
    }
    if query.limit == 0 {
        return Ok(Vec::new());
    }
    let dims = i32::try_from(vector.len())
        .map_err(|_| StoreError::Conflict("query vector too long".to_owned()))?;
    let owner = query.scope.owner_param();
    let documents = document_filter(query);
    let limit = i64::from(query.limit);
    let probe = Vector::from(vector.to_vec());

    let sql = if vector.len() == INDEXED_DIMS {
        let ef_search = query.limit.clamp(40, 1000).to_string();
        sqlx::query("SELECT set_config('hnsw.ef_search', $1, true)")
            .bind(ef_search)
            .execute(&mut *conn)
            .await
            .map_err(db_err)?;
        if has_iterative_scan(&mut *conn).await? {
            sqlx::query("SELECT set_config('hnsw.iterative_scan', 'relaxed_order', true)")
                .execute(&mut *conn)
                .await
                .map_err(db_err)?;
        }
        INDEXED_SEARCH
    } else {
        EXACT_SEARCH
    };
    let rows = sqlx::query(sql)
        .bind(&probe)
        .bind(model)
        .bind(dims)
        .bind(owner)
        .bind(documents.as_deref())
        .bind(limit)
        .fetch_all(&mut *conn)
        .await
        .map_err(db_err)?;
    if rows.is_empty() {
        // Nothing of this size: is there something in scope of another size? SQLite refuses
        // the mismatch the same way.
        let other: Option<i32> = sqlx::query_scalar(
            "SELECT e.dims FROM embeddings e \
             JOIN chunks c ON c.text_sha256 = e.text_sha256 \
             WHERE e.model = $1 AND e.dims <> $2 \
               AND ($3::text IS NULL OR c.owner_id = $3) \
               AND ($4::text[] IS NULL OR c.document_id = ANY($4)) \
             LIMIT 1",
        )
        .bind(model)
        .bind(dims)
        .bind(owner)
        .bind(documents.as_deref())
        .fetch_optional(&mut *conn)
        .await
        .map_err(db_err)?;
        if let Some(stored) = other {
            return Err(StoreError::Conflict(format!(
                "query vector has {} dimensions, model {model} has {stored}",
                vector.len()
            )));
        }
    }
    rows.iter().map(rows::hit).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_text_becomes_quoted_lexemes_or_nothing() {
        assert_eq!(ts_query("\""), None);
        assert_eq!(ts_query("*"), None);
        assert_eq!(ts_query("NEAR("), Some("'near'".to_owned()));
        assert_eq!(ts_query("' OR 1=1 --"), Some("'1'".to_owned()));
        assert_eq!(
            ts_query("Lease, lease EXPIRY!"),
            Some("'lease' | 'expiry'".to_owned())
        );
        assert_eq!(ts_query("a:* & !b"), Some("'b'".to_owned()));
    }
}
