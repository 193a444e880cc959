//! Pure domain types shared by every Navigator crate; no I/O lives here.
//!
//! Main types: [`ids`] (document, job, owner and chunk ids, with the UUIDv5 chunk-id derivation),
//! [`MediaType`], [`Sha256Hex`], [`job::JobStatus`] and [`job::Stage`] with the one table of legal
//! transitions ([`job::transition_allowed`]), the retry schedule ([`retry::RetryPolicy`]), the
//! stable error codes ([`ErrorCode`]) and the injected [`clock::Clock`].
//!
//! Key design choice: raw input stops at the boundary. Every id, hash and media type is a newtype
//! with a `parse` constructor, so code past the HTTP extractor or the row mapper never re-validates.

#![forbid(unsafe_code)]

pub mod clock;
pub mod error_code;
pub mod ids;
pub mod job;
pub mod media_type;
pub mod retry;

pub use clock::{Clock, ManualClock, SystemClock};
pub use error_code::ErrorCode;
pub use ids::{ChunkId, DocumentId, JobId, OwnerId, Sha256Hex};
pub use job::{JobStatus, Stage};
pub use media_type::MediaType;
pub use retry::RetryPolicy;
