//! all-MiniLM-L6-v2 on the CPU with candle.
//!
//! The forward pass is sentence-transformers' recipe: BERT (`token_type_ids` all zero), mean
//! pooling over the real tokens only (the attention mask, never the padding), then L2
//! normalisation. candle's `BertModel` with this recipe matched an independent numpy
//! implementation to 1.5e-7; the default [`BertForward::Fused`] pass (`local/fused.rs`) is the
//! same maths with fewer memory passes and is tested against `BertModel`.
//!
//! Speed comes from batching: inputs are sorted by token length and cut into batches of similar
//! length, so a batch pads little and each matmul is one large GEMM instead of many small ones.
//!
//! Threads: candle's CPU matmul hands `gemm` `Parallelism::Rayon(candle_core::utils::get_num_threads())`,
//! where `get_num_threads` is `RAYON_NUM_THREADS` if set, else the number of *physical* cores
//! (`num_cpus::get_physical`, or the `CANDLE_CPU_MASK` list on Linux); gemm runs on rayon's
//! global pool (one thread per logical CPU by default). candle's element-wise ops use its own
//! barrier pool sized by `CANDLE_NUM_THREADS`, falling back to the same count. On the 2-core build
//! machine all of these are 2, so every large op uses both cores with no configuration; set
//! `RAYON_NUM_THREADS` to cap it on a shared host. We cannot set it from here: changing the
//! environment is `unsafe` in Rust 2024 and this crate forbids unsafe. The thread count in use is
//! logged when the model loads.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use tokio::sync::Semaphore;

use crate::wordpiece::{MINILM_MAX_INPUT_TOKENS, WordPieceCounter};

mod fused;
use crate::{EmbedError, Embedder, TokenCounter};
use fused::FusedBert;

pub const MINILM_MODEL_ID: &str = "local/all-MiniLM-L6-v2";
pub const MINILM_DIMENSIONS: usize = 384;
/// Overrides where the model files are looked for (same variable as `scripts/fetch-model.sh`).
pub const MODEL_DIR_ENV: &str = "NAVIGATOR_MODEL_DIR";

/// Padded tokens per forward pass: 8 full-length inputs. Measured with
/// `examples/embed_throughput.rs` on 2 cores at ~245 tokens per input, 4–8 inputs per pass is the
/// sweet spot: fewer leaves the matmuls small, and from 16 up the (batch × 12 × length²)
/// attention tensors outgrow the caches and each op's fresh allocation costs page faults.
pub const DEFAULT_MAX_BATCH_TOKENS: usize = 8 * MINILM_MAX_INPUT_TOKENS;
/// Inputs per forward pass; binds only for short inputs, which the token budget packs densely.
pub const DEFAULT_MAX_BATCH_SIZE: usize = 64;

/// Pad token id of the BERT uncased vocabulary (`[PAD]`); its value does not matter for the
/// result (padded positions are masked out of attention and pooling) but 0 is what HF uses.
const PAD_ID: u32 = 0;

/// Which implementation of the BERT forward pass runs the model. Both read the same weights and
/// give the same vectors (within 1e-5; the tests check it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BertForward {
    /// This crate's forward pass (`local/fused.rs`): fused QKV projection, fused softmax,
    /// vectorised GELU; 1.6× the throughput of [`BertForward::Candle`] on 2 cores (18.6 vs
    /// 11.4 chunks/s of ~245 tokens, batches of 8).
    #[default]
    Fused,
    /// `candle_transformers::models::bert::BertModel`, the upstream implementation that was
    /// checked against an independent numpy reference; kept as the yardstick for `Fused`.
    Candle,
}

/// How [`LocalMiniLm`] runs the model and groups inputs into forward passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalOptions {
    pub forward: BertForward,
    /// Most inputs in one forward pass.
    pub max_batch_size: usize,
    /// Most padded tokens (batch size × longest input in the batch) in one forward pass; bounds
    /// memory, which grows with it (attention is batch × 12 heads × length² floats per layer).
    /// Must be at least [`MINILM_MAX_INPUT_TOKENS`] so any accepted input fits.
    pub max_batch_tokens: usize,
}

impl Default for LocalOptions {
    fn default() -> Self {
        Self {
            forward: BertForward::default(),
            max_batch_size: DEFAULT_MAX_BATCH_SIZE,
            max_batch_tokens: DEFAULT_MAX_BATCH_TOKENS,
        }
    }
}

impl LocalOptions {
    /// `max_batch_size` inputs per pass, with token room for that many inputs of full length.
    pub fn with_batch_size(max_batch_size: usize) -> Self {
        Self {
            max_batch_size,
            max_batch_tokens: max_batch_size.saturating_mul(MINILM_MAX_INPUT_TOKENS),
            ..Self::default()
        }
    }

    fn validate(&self) -> Result<(), EmbedError> {
        if self.max_batch_size == 0 {
            return Err(EmbedError::Backend(
                "max_batch_size must be at least 1".into(),
            ));
        }
        if self.max_batch_tokens < MINILM_MAX_INPUT_TOKENS {
            return Err(EmbedError::Backend(format!(
                "max_batch_tokens must be at least {MINILM_MAX_INPUT_TOKENS}"
            )));
        }
        Ok(())
    }
}

/// Where `scripts/fetch-model.sh` installs the model: `$NAVIGATOR_MODEL_DIR`, else
/// `${XDG_CACHE_HOME:-$HOME/.cache}/navigator/models/all-MiniLM-L6-v2`. Empty variables count as
/// unset, as in the script. `None` when neither a cache home nor a home directory is known.
pub fn default_model_dir() -> Option<PathBuf> {
    let var = |name: &str| std::env::var_os(name).filter(|value| !value.is_empty());
    if let Some(dir) = var(MODEL_DIR_ENV) {
        return Some(PathBuf::from(dir));
    }
    let cache = var("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| var("HOME").map(|home| PathBuf::from(home).join(".cache")))?;
    Some(cache.join("navigator/models/all-MiniLM-L6-v2"))
}

/// all-MiniLM-L6-v2 (384 dimensions, 256 tokens), run locally with candle on the CPU.
///
/// Calls to [`Embedder::embed`] run one at a time (a semaphore), each on tokio's blocking pool:
/// the model already uses every core for one batch, so running two at once would only double
/// the memory.
pub struct LocalMiniLm {
    inner: Arc<Inner>,
    gate: Arc<Semaphore>,
}

enum Model {
    Fused(FusedBert),
    Candle(BertModel),
}

struct Inner {
    model: Model,
    tokenizer: WordPieceCounter,
    options: LocalOptions,
    device: Device,
}

impl std::fmt::Debug for LocalMiniLm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalMiniLm")
            .field("model_id", &MINILM_MODEL_ID)
            .field("options", &self.inner.options)
            .finish_non_exhaustive()
    }
}

fn backend(context: &str) -> impl Fn(candle_core::Error) -> EmbedError + '_ {
    move |err| EmbedError::Backend(format!("{context}: {err}"))
}

impl LocalMiniLm {
    /// Loads `config.json`, `tokenizer.json` and `model.safetensors` from `dir` (installed by
    /// `scripts/fetch-model.sh`). Blocking: reads ~90 MB; call it at startup or in
    /// `spawn_blocking`.
    ///
    /// Errors with [`EmbedError::Backend`] when a file is missing or malformed, the model is not
    /// a 384-dimension BERT, or `options` are invalid.
    pub fn load(dir: &Path, options: LocalOptions) -> Result<Self, EmbedError> {
        options.validate()?;
        let tokenizer = WordPieceCounter::from_model_dir(dir)?;

        let config_path = dir.join("config.json");
        let config_text = std::fs::read_to_string(&config_path).map_err(|err| {
            EmbedError::Backend(format!(
                "cannot read {} (run scripts/fetch-model.sh): {err}",
                config_path.display()
            ))
        })?;
        let config: Config = serde_json::from_str(&config_text)
            .map_err(|err| EmbedError::Backend(format!("invalid model config.json: {err}")))?;
        if config.hidden_size != MINILM_DIMENSIONS {
            return Err(EmbedError::Backend(format!(
                "model has {} dimensions, expected {MINILM_DIMENSIONS}",
                config.hidden_size
            )));
        }

        // Read into memory rather than mmap: candle's mmap constructor is `unsafe` (the file
        // could change underneath) and this crate forbids unsafe. The buffer is dropped once the
        // tensors are copied out, so the cost is a transient 90 MB at startup.
        let weights_path = dir.join("model.safetensors");
        let weights = std::fs::read(&weights_path).map_err(|err| {
            EmbedError::Backend(format!(
                "cannot read {} (run scripts/fetch-model.sh): {err}",
                weights_path.display()
            ))
        })?;
        let device = Device::Cpu;
        let vb = VarBuilder::from_buffered_safetensors(weights, DType::F32, &device)
            .map_err(backend("invalid model.safetensors"))?;
        let model = match options.forward {
            BertForward::Fused => FusedBert::load(vb, &config).map(Model::Fused),
            BertForward::Candle => BertModel::load(vb, &config).map(Model::Candle),
        }
        .map_err(backend("cannot build BERT model"))?;

        tracing::info!(
            model_id = MINILM_MODEL_ID,
            forward = ?options.forward,
            threads = candle_core::utils::get_num_threads(),
            max_batch_size = options.max_batch_size,
            max_batch_tokens = options.max_batch_tokens,
            "loaded local embedding model"
        );
        Ok(Self {
            inner: Arc::new(Inner {
                model,
                tokenizer,
                options,
                device,
            }),
            gate: Arc::new(Semaphore::new(1)),
        })
    }

    pub fn options(&self) -> LocalOptions {
        self.inner.options
    }
}

impl TokenCounter for LocalMiniLm {
    fn count_tokens(&self, text: &str) -> usize {
        self.inner.tokenizer.count_tokens(text)
    }

    fn max_input_tokens(&self) -> usize {
        MINILM_MAX_INPUT_TOKENS
    }
}

#[async_trait::async_trait]
impl Embedder for LocalMiniLm {
    fn model_id(&self) -> &str {
        MINILM_MODEL_ID
    }

    fn dimensions(&self) -> usize {
        MINILM_DIMENSIONS
    }

    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        // Cancel-safe: waiting for the permit holds nothing; once the blocking task starts it
        // owns the permit and finishes (its result discarded) even if this future is dropped.
        let permit = Arc::clone(&self.gate)
            .acquire_owned()
            .await
            .map_err(|_| EmbedError::Backend("embedder is shut down".into()))?;
        let inner = Arc::clone(&self.inner);
        let texts = texts.to_vec();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            inner.embed_blocking(&texts)
        })
        .await
        .map_err(|err| EmbedError::Backend(format!("embedding task failed: {err}")))?
    }
}

impl Inner {
    fn embed_blocking(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let mut ids = Vec::with_capacity(texts.len());
        for (index, text) in texts.iter().enumerate() {
            let text_ids = self.tokenizer.token_ids(text)?;
            if text_ids.len() > MINILM_MAX_INPUT_TOKENS {
                return Err(EmbedError::InputTooLong {
                    index,
                    tokens: text_ids.len(),
                    limit: MINILM_MAX_INPUT_TOKENS,
                });
            }
            ids.push(text_ids);
        }

        let mut vectors = vec![Vec::new(); texts.len()];
        let batches = plan_batches(&ids, self.options);
        for batch in &batches {
            let batch_ids: Vec<&[u32]> = batch.iter().map(|&i| ids[i].as_slice()).collect();
            let pooled = self.forward_batch(&batch_ids)?;
            for (&index, vector) in batch.iter().zip(pooled) {
                vectors[index] = vector;
            }
        }
        tracing::debug!(
            texts = texts.len(),
            batches = batches.len(),
            "embedded texts locally"
        );
        Ok(vectors)
    }

    /// One BERT forward pass over inputs of similar length; returns their pooled, normalised
    /// vectors in the order given.
    fn forward_batch(&self, batch: &[&[u32]]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let rows = batch.len();
        let width = batch.iter().map(|ids| ids.len()).max().unwrap_or(0);
        let mut input_ids = Vec::with_capacity(rows * width);
        let mut mask = Vec::with_capacity(rows * width);
        for ids in batch {
            input_ids.extend_from_slice(ids);
            input_ids.resize(input_ids.len() + width - ids.len(), PAD_ID);
            mask.extend(std::iter::repeat_n(1.0_f32, ids.len()));
            mask.resize(mask.len() + width - ids.len(), 0.0);
        }

        let padded = batch.iter().any(|ids| ids.len() < width);

        let input_ids = Tensor::from_vec(input_ids, (rows, width), &self.device)
            .map_err(backend("cannot build input ids"))?;
        let mask = Tensor::from_vec(mask, (rows, width), &self.device)
            .map_err(backend("cannot build attention mask"))?;

        let hidden = match &self.model {
            Model::Fused(model) => model.forward(&input_ids, &mask, padded),
            Model::Candle(model) => input_ids
                .zeros_like()
                .and_then(|token_type_ids| model.forward(&input_ids, &token_type_ids, Some(&mask))),
        }
        .map_err(backend("bert forward failed"))?;

        // Mean over real tokens only: padded positions carry (masked-attention) garbage that
        // must not reach the vector, or the same text would embed differently per batch.
        let pooled = mean_pool(&hidden, &mask).map_err(backend("mean pooling failed"))?;
        let mut vectors = pooled
            .to_vec2::<f32>()
            .map_err(backend("cannot read embeddings"))?;
        for vector in &mut vectors {
            l2_normalise(vector);
        }
        Ok(vectors)
    }
}

/// `hidden` is (rows, width, dims), `mask` (rows, width) of 0/1; returns (rows, dims).
fn mean_pool(hidden: &Tensor, mask: &Tensor) -> candle_core::Result<Tensor> {
    let mask = mask.unsqueeze(2)?;
    let summed = hidden.broadcast_mul(&mask)?.sum(1)?;
    let counts = mask.sum(1)?;
    summed.broadcast_div(&counts)
}

fn l2_normalise(vector: &mut [f32]) {
    let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        vector.iter_mut().for_each(|x| *x /= norm);
    }
}

/// Groups input indices into forward passes: sorted by token length, cut greedily so each batch
/// holds at most `max_batch_size` inputs and `max_batch_tokens` padded tokens. Sorting keeps the
/// lengths within a batch close, so little compute goes to padding.
fn plan_batches(ids: &[Vec<u32>], options: LocalOptions) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..ids.len()).collect();
    order.sort_by_key(|&i| ids[i].len());
    let mut batches = Vec::new();
    let mut current: Vec<usize> = Vec::new();
    for index in order {
        // Ascending order: this input is the longest of the batch if it joins.
        let width = ids[index].len();
        let rows = current.len() + 1;
        if !current.is_empty()
            && (rows > options.max_batch_size || rows * width > options.max_batch_tokens)
        {
            batches.push(std::mem::take(&mut current));
        }
        current.push(index);
    }
    if !current.is_empty() {
        batches.push(current);
    }
    batches
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lengths(lens: &[usize]) -> Vec<Vec<u32>> {
        lens.iter().map(|&n| vec![1; n]).collect()
    }

    #[test]
    fn batches_group_inputs_of_similar_length() {
        let ids = lengths(&[200, 5, 190, 6, 7, 210]);
        let options = LocalOptions {
            max_batch_size: 3,
            max_batch_tokens: 10_000,
            ..LocalOptions::default()
        };
        assert_eq!(
            plan_batches(&ids, options),
            vec![vec![1, 3, 4], vec![2, 0, 5]]
        );
    }

    #[test]
    fn batches_respect_the_padded_token_budget() {
        let ids = lengths(&[10, 10, 10, 100, 100, 100, 256]);
        let options = LocalOptions {
            max_batch_size: 64,
            max_batch_tokens: 256,
            ..LocalOptions::default()
        };
        // Three 100-token inputs would pad to 300 tokens; two fit.
        assert_eq!(
            plan_batches(&ids, options),
            vec![vec![0, 1, 2], vec![3, 4], vec![5], vec![6]]
        );
    }

    #[test]
    fn every_input_lands_in_exactly_one_batch() {
        let ids = lengths(&[3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5]);
        let mut seen: Vec<usize> = plan_batches(&ids, LocalOptions::with_batch_size(4))
            .into_iter()
            .flatten()
            .collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..ids.len()).collect::<Vec<_>>());
    }

    #[test]
    fn options_that_cannot_fit_a_full_length_input_are_rejected() {
        let options = LocalOptions {
            max_batch_size: 8,
            max_batch_tokens: 255,
            ..LocalOptions::default()
        };
        assert!(options.validate().is_err());
        assert!(LocalOptions::with_batch_size(0).validate().is_err());
        assert!(LocalOptions::default().validate().is_ok());
    }
}
