//! External services.
//!
//! Main items:
//! - [`openai::OpenAiEmbedder`]: an [`navigator_embed::Embedder`] over any OpenAI-compatible
//!   embeddings API, with batching by inputs and tokens and strict response validation.
//! - [`parser::RemoteParser`] and its first implementation [`llamaparse::LlamaParseClient`]:
//!   upload a document, get a provider job id, collect Markdown pages by webhook or by polling.
//!   docling-serve or Unstructured's API would be further implementations of the same trait.
//! - [`resilience`]: what every outbound call goes through — client-side token buckets for
//!   requests and tokens per minute, `Retry-After` / `x-ratelimit-*` handling, exponential backoff
//!   with full jitter, a circuit breaker, adaptive (AIMD) concurrency and per-call metrics.
//! - [`webhook`]: the signed callback protocol (HMAC-SHA256, per-job secret, timestamp, delivery
//!   id) shared by the server that verifies callbacks and the mock that sends them.
//!
//! Key design choice: a remote answer is never trusted. Anything that breaks the contract is an
//! error ([`navigator_domain::ErrorCode::UpstreamBadResponse`]) and is never stored; errors carry
//! status codes and counts, never response bodies (which can echo document text) or keys.

#![forbid(unsafe_code)]

pub mod llamaparse;
pub mod openai;
pub mod parser;
pub mod resilience;
pub mod webhook;
