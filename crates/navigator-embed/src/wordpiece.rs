//! The all-MiniLM-L6-v2 tokenizer on its own, so the chunker can count tokens without loading
//! the weights.

use std::fmt;
use std::path::Path;

use tokenizers::Tokenizer;

use crate::{EmbedError, TokenCounter};

/// The most tokens (special tokens included) all-MiniLM-L6-v2 is given.
///
/// 256, not the 512 of `max_position_embeddings` in `config.json`: the model was fine-tuned by
/// sentence-transformers with `max_seq_length: 256` (its `sentence_bert_config.json`), so the
/// position embeddings past 256 were never trained for sentence similarity, and
/// sentence-transformers itself cuts every input at 256. Staying at 256 keeps our vectors equal to
/// the reference implementation's and means a chunk is never longer than what the model was taught
/// to summarise.
pub const MINILM_MAX_INPUT_TOKENS: usize = 256;

/// The model's WordPiece tokenizer (`tokenizer.json`), with padding and truncation switched off.
///
/// The shipped `tokenizer.json` pads to a fixed 128 and truncates at 128. Both are removed on
/// load: padding would inflate every count to 128 (and, when embedding, pool over `[PAD]`), and
/// truncation would silently drop the end of a text, which is exactly what the token limit exists
/// to prevent.
#[derive(Clone)]
pub struct WordPieceCounter {
    tokenizer: Tokenizer,
}

impl fmt::Debug for WordPieceCounter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WordPieceCounter")
            .field("vocab_size", &self.tokenizer.get_vocab_size(true))
            .finish()
    }
}

impl WordPieceCounter {
    /// Loads `tokenizer.json` from a model directory installed by `scripts/fetch-model.sh`.
    ///
    /// Errors with [`EmbedError::Backend`] when the file is missing or is not a tokenizer.
    pub fn from_model_dir(dir: &Path) -> Result<Self, EmbedError> {
        let path = dir.join("tokenizer.json");
        let mut tokenizer = Tokenizer::from_file(&path).map_err(|err| {
            EmbedError::Backend(format!(
                "cannot load tokenizer {} (run scripts/fetch-model.sh): {err}",
                path.display()
            ))
        })?;
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(None)
            .map_err(|err| EmbedError::Backend(format!("cannot disable truncation: {err}")))?;
        Ok(Self { tokenizer })
    }

    /// Token ids of `text` with `[CLS]` and `[SEP]`, never padded or truncated. Errors with
    /// [`EmbedError::Backend`] if the tokenizer fails.
    pub fn token_ids(&self, text: &str) -> Result<Vec<u32>, EmbedError> {
        self.tokenizer
            .encode_fast(text, true)
            .map(|encoding| encoding.get_ids().to_vec())
            .map_err(|err| EmbedError::Backend(format!("tokenizer failed: {err}")))
    }
}

impl TokenCounter for WordPieceCounter {
    fn count_tokens(&self, text: &str) -> usize {
        match self.tokenizer.encode_fast(text, true) {
            Ok(encoding) => encoding.len(),
            Err(err) => {
                // BERT's WordPiece has no failing inputs in practice; if it ever does, over-count
                // (a WordPiece token covers at least one char) so the chunker errs towards
                // smaller chunks rather than ones the model would refuse.
                tracing::warn!(error = %err, "tokenizer failed while counting, over-estimating");
                text.chars().count() + 2
            }
        }
    }

    fn max_input_tokens(&self) -> usize {
        MINILM_MAX_INPUT_TOKENS
    }
}
