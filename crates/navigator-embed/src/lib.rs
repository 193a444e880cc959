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
}

impl EmbedError {
    pub fn code(&self) -> ErrorCode {
        match self {
            EmbedError::InputTooLong { .. } => ErrorCode::InputTooLong,
            EmbedError::Backend(_) => ErrorCode::EmbedderError,
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
}
