//! Hybrid search: vector KNN and keyword search fused by reciprocal-rank fusion (RRF).
//!
//! RRF scores a chunk `Σ 1 / (k + rank)` over the lists it appears in. It needs no score
//! calibration between bm25 and cosine, which is why it is the fusion both backends share.

use navigator_domain::ErrorCode;
use navigator_embed::{EmbedError, Embedder};
use navigator_store::{ChunkHit, SearchQuery, Store, StoreError};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

pub const DEFAULT_RRF_K: u32 = 60;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SearchMode {
    #[default]
    Hybrid,
    Vector,
    Keyword,
}

#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Embed(#[from] EmbedError),
}

impl SearchError {
    pub fn code(&self) -> ErrorCode {
        match self {
            SearchError::Store(e) if e.is_transient() => ErrorCode::ServiceUnavailable,
            SearchError::Store(_) => ErrorCode::Internal,
            SearchError::Embed(EmbedError::InputTooLong { .. }) => ErrorCode::InvalidRequest,
            SearchError::Embed(_) => ErrorCode::ServiceUnavailable,
        }
    }
}

/// Runs a search in `mode`. Each list fetches `limit * 3` candidates (at least 30) so fusion has
/// room to re-rank; the fused list is cut to `limit`.
pub async fn search(
    store: &dyn Store,
    embedder: &dyn Embedder,
    query: &SearchQuery<'_>,
    mode: SearchMode,
    rrf_k: u32,
) -> Result<Vec<ChunkHit>, SearchError> {
    let wide = SearchQuery {
        limit: (query.limit.saturating_mul(3)).max(30),
        ..query.clone()
    };
    let keyword = || store.keyword_search(&wide);
    let vector = || async {
        let text = truncate_query(embedder, query.text);
        let vectors = embedder.embed(&[text]).await?;
        let vector = vectors.into_iter().next().unwrap_or_default();
        Ok::<_, SearchError>(
            store
                .vector_search(&wide, embedder.model_id(), &vector)
                .await?,
        )
    };
    let mut hits = match mode {
        SearchMode::Keyword => keyword().await?,
        SearchMode::Vector => vector().await?,
        SearchMode::Hybrid => {
            let (k, v) = tokio::join!(keyword(), vector());
            reciprocal_rank_fusion(&[k?, v?], rrf_k)
        }
    };
    hits.truncate(query.limit as usize);
    Ok(hits)
}

/// Keeps a long query within the model's input limit (a query is not stored, so cutting it is
/// harmless, unlike a chunk): drops trailing words until it fits.
fn truncate_query(embedder: &dyn Embedder, text: &str) -> String {
    let limit = embedder.max_input_tokens();
    if embedder.count_tokens(text) <= limit {
        return text.to_owned();
    }
    let words: Vec<&str> = text.split_whitespace().collect();
    let (mut lo, mut hi) = (0usize, words.len());
    while lo < hi {
        let mid = (lo + hi).div_ceil(2);
        if embedder.count_tokens(&words[..mid].join(" ")) <= limit {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    let mut out = words[..lo].join(" ");
    // A single enormous "word" can still be over the limit: cut by characters.
    while embedder.count_tokens(&out) > limit && !out.is_empty() {
        let keep = out.chars().count() * 3 / 4;
        out = out.chars().take(keep).collect();
    }
    out
}

/// Fuses ranked lists; ties break on chunk id so results are deterministic.
pub fn reciprocal_rank_fusion(lists: &[Vec<ChunkHit>], k: u32) -> Vec<ChunkHit> {
    let mut fused: HashMap<navigator_domain::ChunkId, (f64, ChunkHit)> = HashMap::new();
    for list in lists {
        for (rank, hit) in list.iter().enumerate() {
            let contribution = 1.0 / (f64::from(k) + rank as f64 + 1.0);
            fused
                .entry(hit.chunk_id)
                .and_modify(|(score, _)| *score += contribution)
                .or_insert_with(|| (contribution, hit.clone()));
        }
    }
    let mut out: Vec<ChunkHit> = fused
        .into_values()
        .map(|(score, mut hit)| {
            hit.score = score;
            hit
        })
        .collect();
    out.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then_with(|| a.chunk_id.cmp(&b.chunk_id))
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use navigator_domain::{ChunkId, DocumentId};

    fn hit(n: u8) -> ChunkHit {
        ChunkHit {
            chunk_id: ChunkId(uuid::Uuid::from_bytes([n; 16])),
            document_id: DocumentId(uuid::Uuid::nil()),
            filename: String::new(),
            page_start: 1,
            page_end: 1,
            section: String::new(),
            text: String::new(),
            score: 0.0,
        }
    }

    #[test]
    fn a_chunk_ranked_well_in_both_lists_beats_one_ranked_first_in_only_one() {
        let keyword = vec![hit(1), hit(2), hit(3)];
        let vector = vec![hit(4), hit(2), hit(1)];
        let fused = reciprocal_rank_fusion(&[keyword, vector], 60);
        let order: Vec<u8> = fused.iter().map(|h| h.chunk_id.0.as_bytes()[0]).collect();
        assert_eq!(order[..2], [1, 2]);
        assert_eq!(fused.len(), 4);
        assert!(fused.windows(2).all(|w| w[0].score >= w[1].score));
    }

    #[test]
    fn fusion_of_one_list_keeps_its_order() {
        let fused = reciprocal_rank_fusion(&[vec![hit(9), hit(3), hit(5)]], 60);
        let order: Vec<u8> = fused.iter().map(|h| h.chunk_id.0.as_bytes()[0]).collect();
        assert_eq!(order, [9, 3, 5]);
    }
}
