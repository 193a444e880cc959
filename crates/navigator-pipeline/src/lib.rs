//! The ingest pipeline.
//!
//! Main types: [`worker::Worker`] (claims a job and runs its stages parse → chunk → embed → index
//! under a renewed lease), [`worker::Pipeline`] (the shared parts a worker uses), [`chunk`] (the
//! token-bounded, heading-aware chunker), [`vault::DocumentBlobs`] (originals and parsed
//! artifacts, sealed per document over [`blob::Blobs`]),
//! [`ingest::accept`] (the one path that turns an upload into a document and a job),
//! [`search::search`] (hybrid search with reciprocal-rank fusion), [`remote`] (remote parsing
//! with webhook or polling delivery), [`usage`] (the usage ledger and budgets) and [`maintenance`]
//! (rescuer, waking waiting jobs).
//!
//! Key design choice: the worker holds no state between stages other than what the store holds,
//! so any worker can pick up any job at any stage after a crash.

#![forbid(unsafe_code)]

pub mod blob;
pub mod chunk;
pub mod ingest;
pub mod maintenance;
pub mod remote;
pub mod search;
pub mod usage;
pub mod vault;
pub mod worker;
