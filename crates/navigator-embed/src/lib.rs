//! The embedder seam.
//!
//! Main types: [`Embedder`] (turns texts into L2-normalised vectors, in batches), [`TokenCounter`]
//! (counts text in the embedder's own tokens, so the chunker can bound chunks by what the model
//! really reads), and the implementations:
//!
//! - [`LocalMiniLm`]: all-MiniLM-L6-v2 run on the CPU with candle, offline. The model files are
//!   installed by `scripts/fetch-model.sh` into [`default_model_dir`].
//! - [`WordPieceCounter`]: that model's tokenizer alone, for the chunker (no weights loaded).
//! - [`HashEmbedder`]: a deterministic feature-hashing embedder for tests that need vectors but
//!   not the model.
//!
//! Key design choice: nothing is ever truncated. The model reads at most
//! [`MINILM_MAX_INPUT_TOKENS`] tokens; longer inputs are refused with
//! [`EmbedError::InputTooLong`], so a vector always describes the whole chunk it is stored with.

#![forbid(unsafe_code)]

mod hash;
mod local;
mod wordpiece;

pub use hash::{HASH_DIMENSIONS, HASH_MAX_INPUT_TOKENS, HASH_MODEL_ID, HashEmbedder};
pub use local::{
    BertForward, DEFAULT_MAX_BATCH_SIZE, DEFAULT_MAX_BATCH_TOKENS, LocalMiniLm, LocalOptions,
    MINILM_DIMENSIONS, MINILM_MODEL_ID, MODEL_DIR_ENV, default_model_dir,
};
pub use wordpiece::{MINILM_MAX_INPUT_TOKENS, WordPieceCounter};

use navigator_domain::ErrorCode;

/// Counts text in an embedder's own tokens.
pub trait TokenCounter: Send + Sync {
    /// Tokens the model would read for `text`, special tokens ([CLS]/[SEP]) included.
    fn count_tokens(&self, text: &str) -> usize;
    /// The most tokens the model reads; anything past it would be silently dropped by the model,
    /// so Navigator never sends more (the chunker bounds chunks by it, the embedder refuses more).
    fn max_input_tokens(&self) -> usize;
}

#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    #[error("input {index} has {tokens} tokens, over the model limit of {limit}")]
    InputTooLong {
        index: usize,
        tokens: usize,
        limit: usize,
    },
    #[error("embedder failed: {0}")]
    Backend(String),
    /// A remote embedder failed; `code` says how (`upstream_*`, `circuit_open`) and so whether
    /// the job retries. The message is content-free (status, counts, error kinds).
    #[error("{code}: {message}")]
    Upstream { code: ErrorCode, message: String },
}

impl EmbedError {
    pub fn code(&self) -> ErrorCode {
        match self {
            EmbedError::InputTooLong { .. } => ErrorCode::InputTooLong,
            EmbedError::Backend(_) => ErrorCode::EmbedderError,
            EmbedError::Upstream { code, .. } => *code,
        }
    }
}

/// Turns texts into vectors.
#[async_trait::async_trait]
pub trait Embedder: TokenCounter {
    /// Stable id of the model, part of the embedding-cache key (e.g. `local/all-MiniLM-L6-v2`).
    fn model_id(&self) -> &str;
    fn dimensions(&self) -> usize;
    /// Embeds `texts`, returning one L2-normalised vector per text, in input order.
    /// Errors with [`EmbedError::InputTooLong`] rather than truncating. Cancel-safe: dropping the
    /// future loses only this batch's work.
    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError>;

    /// [`Embedder::embed`] plus what the call cost, for the usage ledger. The default counts
    /// tokens locally and reports no requests (a local model calls nobody); remote embedders
    /// report the provider's own token count, requests sent and retries.
    async fn embed_metered(&self, texts: &[String]) -> Result<Embedded, EmbedError> {
        let vectors = self.embed(texts).await?;
        let tokens = texts.iter().map(|t| self.count_tokens(t) as u64).sum();
        Ok(Embedded {
            vectors,
            usage: EmbedUsage {
                tokens,
                requests: 0,
                retries: 0,
            },
        })
    }

    /// The most one call should carry. The embed stage splits its rounds into calls within
    /// these limits and stores each call's vectors as soon as it returns, so a failure never
    /// throws away (and pays again for) vectors already received. Unbounded by default.
    fn batch_limits(&self) -> BatchLimits {
        BatchLimits::UNBOUNDED
    }
}

/// Vectors and what they cost.
#[derive(Debug, Clone, PartialEq)]
pub struct Embedded {
    pub vectors: Vec<Vec<f32>>,
    pub usage: EmbedUsage,
}

/// What one embed call cost.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EmbedUsage {
    /// Tokens billed (the provider's count when it reports one).
    pub tokens: u64,
    /// HTTP requests sent, retries included.
    pub requests: u32,
    /// Requests that were retries of a failed one.
    pub retries: u32,
}

/// Limits on one [`Embedder::embed`] call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLimits {
    pub max_inputs: usize,
    /// Sum of [`TokenCounter::count_tokens`] over the inputs.
    pub max_tokens: usize,
}

impl BatchLimits {
    pub const UNBOUNDED: BatchLimits = BatchLimits {
        max_inputs: usize::MAX,
        max_tokens: usize::MAX,
    };

    /// Splits `token_counts` (one per input, in order) into consecutive index ranges that each
    /// respect both limits. An input over `max_tokens` on its own gets a range of its own.
    pub fn split(&self, token_counts: &[usize]) -> Vec<std::ops::Range<usize>> {
        let mut ranges = Vec::new();
        let mut start = 0;
        let mut tokens = 0usize;
        for (i, &count) in token_counts.iter().enumerate() {
            let full = i - start >= self.max_inputs.max(1)
                || (i > start && tokens.saturating_add(count) > self.max_tokens);
            if full {
                ranges.push(start..i);
                start = i;
                tokens = 0;
            }
            tokens = tokens.saturating_add(count);
        }
        if start < token_counts.len() {
            ranges.push(start..token_counts.len());
        }
        ranges
    }
}

#[cfg(test)]
mod tests {
    use super::BatchLimits;

    #[test]
    fn batches_respect_both_limits_and_cover_every_input_once() {
        let limits = BatchLimits {
            max_inputs: 3,
            max_tokens: 10,
        };
        let counts = [4, 4, 4, 1, 1, 1, 1, 20, 2];
        let ranges = limits.split(&counts);
        assert_eq!(ranges, vec![0..2, 2..5, 5..7, 7..8, 8..9]);
        let covered: Vec<usize> = ranges.iter().flat_map(|r| r.clone()).collect();
        assert_eq!(covered, (0..counts.len()).collect::<Vec<_>>());
        assert!(BatchLimits::UNBOUNDED.split(&[]).is_empty());
        assert_eq!(BatchLimits::UNBOUNDED.split(&[5, 5]), vec![0..2]);
    }
}
