//! Mock external services, shipped in the binary as `navigator mock openai --listen ADDR` and
//! `navigator mock llamaparse --listen ADDR`: CI tests use them to inject failures, developers to
//! run Navigator's remote embedder and parser locally without accounts or network.
//!
//! Main items:
//! - [`openai`]: an OpenAI-compatible embeddings API ([`openai::serve`] → [`openai::MockOpenAi`])
//!   with deterministic feature-hashing vectors, a real sliding-minute rate limiter, and injected
//!   statuses, 429s, hangs and contract-breaking 200s.
//! - [`llamaparse`]: a LlamaParse-compatible parsing API ([`llamaparse::serve`] →
//!   [`llamaparse::MockLlamaParse`]) that really parses uploads with the built-in parsers and
//!   calls back with signed webhooks that can be lost or duplicated on demand.
//!
//! Both also serve `GET /health`, `GET /_mock/stats` (JSON counters), `GET /_mock/config` (the
//! knobs, API key masked), `POST /_mock/config` (a JSON object of knobs to change, applied at
//! once; unknown fields and invalid rates are refused with 400) and `POST /_mock/reset` (zeroes
//! the counters and re-seeds the RNG).
//!
//! Key design choice: every random decision comes from one seeded RNG behind a mutex (`--seed`,
//! fixed by default), so a run with the same requests in the same order injects the same faults.
//! Each request draws once, and faults are chosen with cumulative probabilities, so a rate of 1.0
//! always produces its fault and 0.0 never does.

#![forbid(unsafe_code)]

mod common;
pub mod llamaparse;
pub mod openai;

pub use common::DEFAULT_SEED;
