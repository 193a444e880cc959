//! A deterministic embedder for tests that need vectors but not the model.

use crate::{EmbedError, Embedder, TokenCounter};

pub const HASH_MODEL_ID: &str = "test/hash-384";
pub const HASH_DIMENSIONS: usize = 384;
/// Same limit as the real model, so tests exercise the same chunk bounds.
pub const HASH_MAX_INPUT_TOKENS: usize = 256;

/// Bigrams count half as much as single words: they sharpen similarity between texts that share
/// phrases without drowning out shared vocabulary.
const BIGRAM_WEIGHT: f32 = 0.5;

/// Feature hashing of lowercased alphanumeric words and word bigrams into 384 signed buckets,
/// L2-normalised.
///
/// Only for tests: texts that share words get similar vectors, and the same text always gets the
/// bit-identical vector, whatever batch it is in, on any machine (the hash is a fixed FNV-1a,
/// not std's randomly seeded hasher). It knows nothing about meaning ("cat" and "kitten" are
/// unrelated to it).
///
/// Its [`TokenCounter`] counts words plus 2, a rough stand-in for WordPiece tokens with `[CLS]`
/// and `[SEP]`; it under-counts real word pieces, so never use it to size chunks for the real
/// model.
#[derive(Debug, Clone, Copy, Default)]
pub struct HashEmbedder;

impl HashEmbedder {
    pub fn new() -> Self {
        Self
    }

    /// The embedding of one text; what [`Embedder::embed`] returns for it in any batch.
    pub fn embed_one(&self, text: &str) -> Vec<f32> {
        hash_embedding(text, HASH_DIMENSIONS)
    }

    /// The same feature hashing into `dimensions` buckets instead of 384 (what
    /// `navigator mock openai` serves, so a mock-embedded corpus matches the test embedder's
    /// vectors at 384). Returns an empty vector for 0 dimensions.
    pub fn embedding_with_dimensions(text: &str, dimensions: usize) -> Vec<f32> {
        hash_embedding(text, dimensions)
    }
}

/// Feature hashing of lowercased alphanumeric words and word bigrams into `dimensions` signed
/// buckets, L2-normalised; deterministic from `text` alone. [`HashEmbedder::embed_one`] is this
/// at [`HASH_DIMENSIONS`]. Returns an empty vector for 0 dimensions.
pub fn hash_embedding(text: &str, dimensions: usize) -> Vec<f32> {
    if dimensions == 0 {
        return Vec::new();
    }
    let words: Vec<String> = words(text).map(str::to_lowercase).collect();
    let mut vector = vec![0.0_f32; dimensions];
    if words.is_empty() {
        // Still a unit vector, as the Embedder contract promises.
        add_feature(&mut vector, b"empty:", b"", 1.0);
    }
    for word in &words {
        add_feature(&mut vector, b"w:", word.as_bytes(), 1.0);
    }
    for pair in words.windows(2) {
        let bigram = format!("{} {}", pair[0], pair[1]);
        add_feature(&mut vector, b"b:", bigram.as_bytes(), BIGRAM_WEIGHT);
    }
    let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        vector.iter_mut().for_each(|x| *x /= norm);
    } else {
        // Every feature cancelled out (signed buckets can); fall back to a fixed unit vector.
        vector[0] = 1.0;
    }
    vector
}

fn words(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|word| !word.is_empty())
}

fn add_feature(vector: &mut [f32], kind: &[u8], feature: &[u8], weight: f32) {
    let hash = fnv1a64(kind, feature);
    let bucket = (hash % vector.len() as u64) as usize;
    // The top bit picks the sign, so unrelated features cancel on average instead of all adding
    // up to a shared positive bias.
    let sign = if hash >> 63 == 0 { 1.0 } else { -1.0 };
    vector[bucket] += sign * weight;
}

/// FNV-1a, 64-bit: tiny, fixed and the same on every platform and run.
fn fnv1a64(prefix: &[u8], bytes: &[u8]) -> u64 {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    prefix
        .iter()
        .chain(bytes)
        .fold(OFFSET_BASIS, |hash, &byte| {
            (hash ^ u64::from(byte)).wrapping_mul(PRIME)
        })
}

impl TokenCounter for HashEmbedder {
    fn count_tokens(&self, text: &str) -> usize {
        words(text).count() + 2
    }

    fn max_input_tokens(&self) -> usize {
        HASH_MAX_INPUT_TOKENS
    }
}

#[async_trait::async_trait]
impl Embedder for HashEmbedder {
    fn model_id(&self) -> &str {
        HASH_MODEL_ID
    }

    fn dimensions(&self) -> usize {
        HASH_DIMENSIONS
    }

    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        for (index, text) in texts.iter().enumerate() {
            let tokens = self.count_tokens(text);
            if tokens > HASH_MAX_INPUT_TOKENS {
                return Err(EmbedError::InputTooLong {
                    index,
                    tokens,
                    limit: HASH_MAX_INPUT_TOKENS,
                });
            }
        }
        Ok(texts.iter().map(|text| self.embed_one(text)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_matches_the_published_test_vectors() {
        // From the FNV reference test suite: fnv1a64("") and fnv1a64("a").
        assert_eq!(fnv1a64(b"", b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"", b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn a_known_text_keeps_its_vector_across_releases() {
        // Pinned so a change to the hashing (which would silently change every test fixture's
        // vectors) is a deliberate, visible decision.
        let vector = HashEmbedder.embed_one("The cat sits on the mat.");
        let nonzero: Vec<usize> = (0..HASH_DIMENSIONS).filter(|&i| vector[i] != 0.0).collect();
        assert_eq!(nonzero, PINNED_NONZERO_BUCKETS);
    }

    #[test]
    fn other_dimensions_use_the_same_hashing_and_stay_normalised() {
        let text = "The cat sits on the mat.";
        assert_eq!(
            HashEmbedder::embedding_with_dimensions(text, HASH_DIMENSIONS),
            HashEmbedder.embed_one(text)
        );
        for dimensions in [1, 7, 1536, 3072] {
            let vector = HashEmbedder::embedding_with_dimensions(text, dimensions);
            assert_eq!(vector.len(), dimensions);
            let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
            assert!((norm - 1.0).abs() < 1e-5, "{dimensions}: {norm}");
        }
        assert!(HashEmbedder::embedding_with_dimensions(text, 0).is_empty());
    }

    const PINNED_NONZERO_BUCKETS: &[usize] = &[6, 72, 73, 93, 96, 141, 156, 163, 343, 382];
}
