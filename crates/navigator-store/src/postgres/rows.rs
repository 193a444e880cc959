//! PostgreSQL rows: the column reader behind the shared decoders in [`crate::rows`] and the
//! document query (metadata is JSONB, read back as text).

use crate::StoreResult;
pub(super) use crate::rows::*;
use sqlx::postgres::PgRow;

/// A document joined with its current job's status and its live chunk count.
macro_rules! document_select {
    () => {
        "SELECT d.id, d.owner_id, d.filename, d.media_type, d.bytes, d.sha256, d.pages, \
         d.metadata::text AS metadata, d.current_job_id, d.created_at, d.updated_at, \
         j.status AS job_status, \
         (SELECT COUNT(*) FROM chunks c WHERE c.document_id = d.id) AS live_chunks \
         FROM documents d JOIN jobs j ON j.id = d.current_job_id"
    };
}
pub(super) use document_select;

crate::rows::columns_for_row!(PgRow);

/// A search hit whose score is the query's `score` column.
pub(super) fn hit(row: &PgRow) -> StoreResult<crate::ChunkHit> {
    crate::rows::hit(row, get(row, "score")?)
}
