//! The `navigator` binary's library: CLI ([`cli`]), configuration ([`config`]), the HTTP API
//! ([`http`]), logs and metrics ([`telemetry`]), and startup/shutdown ([`app`]).
//!
//! Key design choice (from zero2prod): `main` is one line; [`app::App::build`] does the wiring and
//! is what the tests call too, binding port 0 and reading the real address back.

#![forbid(unsafe_code)]

pub mod app;
pub mod audit;
pub mod cli;
pub mod config;
pub mod http;
pub mod telemetry;
pub mod tls;
