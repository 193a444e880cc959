//! SQLite rows: the column reader behind the shared decoders in [`crate::rows`] and the
//! document query, and the vector BLOB format (little-endian f32).

use crate::StoreResult;
pub(super) use crate::rows::*;

/// A document joined with its current job's status and its live chunk count.
macro_rules! document_select {
    () => {
        "SELECT d.id, d.owner_id, d.filename, d.media_type, d.bytes, d.sha256, d.pages, \
         d.metadata, d.current_job_id, d.created_at, d.updated_at, j.status AS job_status, \
         (SELECT COUNT(*) FROM chunks c WHERE c.document_id = d.id) AS live_chunks \
         FROM documents d JOIN jobs j ON j.id = d.current_job_id"
    };
}
pub(super) use document_select;

crate::rows::columns_for_row!(sqlx::sqlite::SqliteRow);

pub(super) fn encode_vector(vector: &[f32]) -> Vec<u8> {
    vector.iter().flat_map(|v| v.to_le_bytes()).collect()
}

pub(super) fn decode_vector(blob: &[u8], dims: i64) -> StoreResult<Vec<f32>> {
    let expected = usize::try_from(dims).map_err(|_| corrupt("negative dims"))?;
    if blob.len() != expected * 4 {
        return Err(corrupt(format!(
            "vector of {} bytes does not hold {expected} f32 values",
            blob.len()
        )));
    }
    Ok(blob
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect())
}
