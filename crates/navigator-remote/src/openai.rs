//! An [`navigator_embed::Embedder`] over any OpenAI-compatible embeddings API (OpenAI, Azure
//! OpenAI, Ollama, vLLM, text-embeddings-inference).
//!
//! Wire contract (what [`wire`] describes, and what `navigator mock openai` serves):
//! `POST {base_url}/embeddings` with `Authorization: Bearer {api_key}` and
//! `{"model", "input": [..], "encoding_format": "float", "dimensions"?}`; the answer is
//! `{"object": "list", "data": [{"object": "embedding", "index", "embedding": [..]}], "model",
//! "usage": {"prompt_tokens", "total_tokens"}}`. Errors are `{"error": {"message", "type",
//! "code"}}` with a 4xx/5xx status; 429s carry `retry-after` (seconds) or `retry-after-ms`, and
//! any answer may carry `x-ratelimit-{limit,remaining,reset}-{requests,tokens}` (reset as
//! `1s`, `6m0s`, `20ms`).

use crate::resilience::{
    self, BreakerState, CallStats, DEFAULT_MAX_BODY_BYTES, Idempotency, RemoteError, Resilience,
    ResilienceSettings, SettingsError,
};
use navigator_embed::{BatchLimits, EmbedError, EmbedUsage, Embedded, Embedder, TokenCounter};
use std::sync::Arc;

/// The `service` metrics label.
pub const SERVICE: &str = "openai";
/// The most inputs OpenAI accepts per request (2048) is far above what is useful; Navigator
/// never sends more than this.
pub const MAX_BATCH_INPUTS: usize = 256;
pub const DEFAULT_MAX_BATCH_TOKENS: usize = 8000;
pub const DEFAULT_MAX_INPUT_TOKENS: usize = 8191;

/// Configuration of an [`OpenAiEmbedder`].
#[derive(Clone, PartialEq)]
pub struct OpenAiSettings {
    /// e.g. `https://api.openai.com/v1`; requests go to `{base_url}/embeddings`.
    pub base_url: String,
    pub model: String,
    /// Sent as `Authorization: Bearer {api_key}` when set.
    pub api_key: Option<String>,
    /// Length every returned vector must have.
    pub dimensions: usize,
    /// Whether to ask for `dimensions` (models with shortenable embeddings only).
    pub send_dimensions: bool,
    /// Inputs per request, clamped to 1..=[`MAX_BATCH_INPUTS`].
    pub max_batch_inputs: usize,
    /// Sum of counted tokens per request.
    pub max_batch_tokens: usize,
    /// Longest input in counted tokens; longer ones are refused before any request.
    pub max_input_tokens: usize,
    pub resilience: ResilienceSettings,
}

impl Default for OpenAiSettings {
    fn default() -> Self {
        Self {
            base_url: "https://api.openai.com/v1".into(),
            model: "text-embedding-3-small".into(),
            api_key: None,
            dimensions: 1536,
            send_dimensions: false,
            max_batch_inputs: MAX_BATCH_INPUTS,
            max_batch_tokens: DEFAULT_MAX_BATCH_TOKENS,
            max_input_tokens: DEFAULT_MAX_INPUT_TOKENS,
            resilience: ResilienceSettings::default(),
        }
    }
}

impl std::fmt::Debug for OpenAiSettings {
    // Never prints the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAiSettings")
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("dimensions", &self.dimensions)
            .field("send_dimensions", &self.send_dimensions)
            .field("max_batch_inputs", &self.max_batch_inputs)
            .field("max_batch_tokens", &self.max_batch_tokens)
            .field("max_input_tokens", &self.max_input_tokens)
            .field("resilience", &self.resilience)
            .finish()
    }
}

/// A conservative token estimate for when the provider's tokenizer is not available:
/// `ceil(chars / 3) + 2`. Real BPE tokenizers average about four characters per token on
/// English text, so this over-counts, and over-counting only makes chunks and batches smaller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EstimatingTokenCounter {
    pub max_input_tokens: usize,
}

impl TokenCounter for EstimatingTokenCounter {
    fn count_tokens(&self, text: &str) -> usize {
        text.chars().count().div_ceil(3) + 2
    }

    fn max_input_tokens(&self) -> usize {
        self.max_input_tokens
    }
}

/// An [`Embedder`] over an OpenAI-compatible embeddings API.
pub struct OpenAiEmbedder {
    http: reqwest::Client,
    url: String,
    model: String,
    api_key: Option<String>,
    model_id: String,
    dimensions: usize,
    send_dimensions: bool,
    limits: BatchLimits,
    max_input_tokens: usize,
    counter: Arc<dyn TokenCounter>,
    resilience: Resilience,
}

impl std::fmt::Debug for OpenAiEmbedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAiEmbedder")
            .field("model_id", &self.model_id)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl OpenAiEmbedder {
    pub fn new(
        settings: OpenAiSettings,
        counter: Arc<dyn TokenCounter>,
    ) -> Result<Self, SettingsError> {
        let base = validate_base_url(&settings.base_url)?;
        if settings.model.trim().is_empty() {
            return Err(SettingsError("model is empty".into()));
        }
        if settings.dimensions == 0 || settings.dimensions > 65_536 {
            return Err(SettingsError("dimensions must be in 1..=65536".into()));
        }
        if settings.send_dimensions && u32::try_from(settings.dimensions).is_err() {
            return Err(SettingsError("dimensions too large".into()));
        }
        if settings.max_batch_tokens == 0 || settings.max_input_tokens == 0 {
            return Err(SettingsError("token limits must be positive".into()));
        }
        if let Some(key) = &settings.api_key
            && reqwest::header::HeaderValue::from_str(&format!("Bearer {key}")).is_err()
        {
            return Err(SettingsError("api_key is not a valid header value".into()));
        }
        let http = http_client()?;
        Ok(Self {
            http,
            url: format!("{base}/embeddings"),
            model_id: format!("openai/{}/{}", settings.model, settings.dimensions),
            model: settings.model,
            api_key: settings.api_key,
            dimensions: settings.dimensions,
            send_dimensions: settings.send_dimensions,
            limits: BatchLimits {
                max_inputs: settings.max_batch_inputs.clamp(1, MAX_BATCH_INPUTS),
                max_tokens: settings.max_batch_tokens,
            },
            max_input_tokens: settings.max_input_tokens.min(counter.max_input_tokens()),
            counter,
            resilience: Resilience::new(SERVICE, &settings.resilience),
        })
    }

    /// The shared resilience state (breaker, limiter), for health reporting.
    pub fn resilience(&self) -> &Resilience {
        &self.resilience
    }

    /// One request: `texts` within the batch limits.
    async fn embed_batch(
        &self,
        texts: &[String],
        counted: u64,
    ) -> Result<(Vec<Vec<f32>>, u64, CallStats), RemoteError> {
        let request = wire::EmbeddingRequest {
            model: self.model.clone(),
            input: texts.to_vec(),
            encoding_format: "float".into(),
            dimensions: self
                .send_dimensions
                .then(|| u32::try_from(self.dimensions).unwrap_or(u32::MAX)),
        };
        let body = bytes::Bytes::from(
            serde_json::to_vec(&request)
                .map_err(|_| RemoteError::Unavailable("request encoding failed".into()))?,
        );
        let build = || {
            let request = self
                .http
                .post(&self.url)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.clone());
            match &self.api_key {
                Some(key) => request.bearer_auth(key),
                None => request,
            }
        };
        let n = texts.len();
        let dims = self.dimensions;
        let ((vectors, usage), stats) = self
            .resilience
            .call(
                "embeddings",
                // Embedding the same texts twice costs twice but creates nothing.
                Idempotency::Idempotent,
                counted,
                DEFAULT_MAX_BODY_BYTES,
                build,
                |body| decode_embeddings(body, n, dims),
            )
            .await?;
        let tokens = usage.unwrap_or(counted);
        resilience::metrics::tokens(SERVICE, tokens);
        Ok((vectors, tokens, stats))
    }
}

/// Decodes and validates an embeddings answer for `n` inputs of `dims` dimensions, returning
/// L2-normalised vectors in input order and the provider's token count. Anything off is an
/// error whose message names counts and positions, never content.
pub fn decode_embeddings(
    body: &[u8],
    n: usize,
    dims: usize,
) -> Result<(Vec<Vec<f32>>, Option<u64>), String> {
    let response: wire::EmbeddingResponse = serde_json::from_slice(body).map_err(|e| {
        format!(
            "embeddings answer is not valid JSON of the expected shape (line {}, column {})",
            e.line(),
            e.column()
        )
    })?;
    if response.data.len() != n {
        return Err(format!(
            "expected {n} embeddings, got {}",
            response.data.len()
        ));
    }
    let mut vectors = Vec::with_capacity(n);
    for (position, data) in response.data.into_iter().enumerate() {
        if data.index != position {
            return Err(format!(
                "embedding at position {position} has index {} (indexes must be 0..{n} in order)",
                data.index
            ));
        }
        if data.embedding.len() != dims {
            return Err(format!(
                "embedding {position} has {} dimensions, expected {dims}",
                data.embedding.len()
            ));
        }
        if data.embedding.iter().any(|v| !v.is_finite()) {
            return Err(format!("embedding {position} has a non-finite value"));
        }
        let mut vector = data.embedding;
        let norm = vector
            .iter()
            .map(|v| f64::from(*v) * f64::from(*v))
            .sum::<f64>()
            .sqrt();
        if !norm.is_finite() || norm == 0.0 {
            return Err(format!("embedding {position} cannot be normalised"));
        }
        for v in &mut vector {
            *v = (f64::from(*v) / norm) as f32;
        }
        vectors.push(vector);
    }
    Ok((vectors, response.usage.map(|u| u.prompt_tokens)))
}

impl TokenCounter for OpenAiEmbedder {
    fn count_tokens(&self, text: &str) -> usize {
        self.counter.count_tokens(text)
    }

    fn max_input_tokens(&self) -> usize {
        self.max_input_tokens
    }
}

#[async_trait::async_trait]
impl Embedder for OpenAiEmbedder {
    fn model_id(&self) -> &str {
        &self.model_id
    }

    fn dimensions(&self) -> usize {
        self.dimensions
    }

    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        Ok(self.embed_metered(texts).await?.vectors)
    }

    async fn embed_metered(&self, texts: &[String]) -> Result<Embedded, EmbedError> {
        let counts: Vec<usize> = texts.iter().map(|t| self.counter.count_tokens(t)).collect();
        if let Some((index, &tokens)) = counts
            .iter()
            .enumerate()
            .find(|(_, c)| **c > self.max_input_tokens)
        {
            return Err(EmbedError::InputTooLong {
                index,
                tokens,
                limit: self.max_input_tokens,
            });
        }
        let upstream = |e: RemoteError| EmbedError::Upstream {
            code: e.code(),
            message: e.to_string(),
        };
        let mut ranges = self.limits.split(&counts).into_iter();
        let batch = |range: std::ops::Range<usize>| {
            let counted = counts[range.clone()].iter().map(|c| *c as u64).sum();
            self.embed_batch(&texts[range], counted)
        };
        let mut results = Vec::new();
        // While the breaker is not closed only one probe gets through: send one batch alone
        // first, or its siblings' fast failures would cancel the probe every time.
        if self.resilience.breaker().state() != BreakerState::Closed
            && let Some(first) = ranges.next()
        {
            results.push(batch(first).await.map_err(upstream)?);
        }
        // The rest run at once; the AIMD limiter bounds how many are really in flight.
        results.extend(
            futures::future::try_join_all(ranges.map(batch))
                .await
                .map_err(upstream)?,
        );
        let mut vectors = Vec::with_capacity(texts.len());
        let mut usage = EmbedUsage::default();
        for (batch, tokens, stats) in results {
            vectors.extend(batch);
            usage.tokens += tokens;
            usage.requests += stats.requests;
            usage.retries += stats.retries;
        }
        Ok(Embedded { vectors, usage })
    }

    fn batch_limits(&self) -> BatchLimits {
        self.limits
    }
}

/// Checks a base URL is absolute http(s) without query or fragment, and strips a trailing `/`.
pub(crate) fn validate_base_url(url: &str) -> Result<String, SettingsError> {
    let parsed =
        reqwest::Url::parse(url).map_err(|_| SettingsError("base_url is not a URL".into()))?;
    if !matches!(parsed.scheme(), "http" | "https")
        || parsed.host_str().is_none()
        || parsed.query().is_some()
        || parsed.fragment().is_some()
        || !parsed.username().is_empty()
        || parsed.password().is_some()
    {
        return Err(SettingsError(
            "base_url must be an http(s) URL without credentials, query or fragment".into(),
        ));
    }
    Ok(url.trim_end_matches('/').to_string())
}

/// The HTTP client both services use: no redirects (a redirect could carry the key elsewhere),
/// no proxy surprises beyond the system's.
pub(crate) fn http_client() -> Result<reqwest::Client, SettingsError> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("navigator/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|_| SettingsError("HTTP client could not be built".into()))
}

pub mod wire {
    use serde::{Deserialize, Serialize};

    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub struct EmbeddingRequest {
        pub model: String,
        pub input: Vec<String>,
        pub encoding_format: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub dimensions: Option<u32>,
    }

    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub struct EmbeddingResponse {
        #[serde(default)]
        pub object: String,
        pub data: Vec<EmbeddingData>,
        #[serde(default)]
        pub model: String,
        #[serde(default)]
        pub usage: Option<Usage>,
    }

    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub struct EmbeddingData {
        #[serde(default)]
        pub object: String,
        pub index: usize,
        pub embedding: Vec<f32>,
    }

    #[derive(Debug, Clone, Copy, Serialize, Deserialize)]
    pub struct Usage {
        pub prompt_tokens: u64,
        pub total_tokens: u64,
    }

    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub struct ErrorBody {
        pub error: ErrorDetail,
    }

    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub struct ErrorDetail {
        pub message: String,
        #[serde(rename = "type", default)]
        pub kind: String,
        #[serde(default)]
        pub code: Option<String>,
    }
}
