//! The embedder seam.
//!
//! Main types: [`Embedder`] (turns texts into L2-normalised vectors, in batches), [`TokenCounter`]
//! (counts text in the embedder's own tokens, so the chunker can bound chunks by what the model
//! really reads), and the implementations.

#![forbid(unsafe_code)]

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
