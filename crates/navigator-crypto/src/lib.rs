//! Cryptography for Navigator: protected health information at rest and the
//! tamper-evident audit log.
//!
//! * [`envelope`]: AES-256-GCM sealing of blobs under per-object data keys
//!   ([`DataKey`]), with associated data binding each ciphertext to its
//!   document and object kind ([`blob_aad`]).
//! * [`keyring`]: key-encryption keys that wrap data keys. [`KeyProvider`] is
//!   the seam for a KMS or Vault transit backend; [`LocalKeyring`] keeps named
//!   keys in a 0600 JSON file or in configuration.
//! * [`audit`]: the keyed (HMAC-SHA256) hash chain of audit entries, its
//!   streaming verifier and the signed external anchor that detects truncation.
//!
//! Secret types ([`DataKey`], [`AuditKey`], [`LocalKeyring`]) are zeroized on
//! drop and print as `[redacted]`; no error message carries key bytes.
//! All primitives come from `aws-lc-rs`.

pub mod audit;
pub mod envelope;
mod error;
pub mod keyring;

pub use audit::{
    AuditKey, AuditRow, Break, BreakKind, ChainVerifier, GENESIS, Summary, canonical_json,
    entry_hash, sign_anchor, verify_anchor,
};
pub use envelope::{DataKey, blob_aad, is_sealed, open, seal};
pub use error::CryptoError;
pub use keyring::{KeyProvider, LocalKeyring, WrappedKey, dek_aad, validate_key_id};

/// Whether `a` and `b` are equal, in time that does not depend on where they differ (for
/// comparing secrets and MACs).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    aws_lc_rs::constant_time::verify_slices_are_equal(a, b).is_ok()
}

/// Fills `buf` from the system CSPRNG (aws-lc). A failing system RNG leaves no
/// safe way to continue, so it panics rather than returning predictable bytes.
pub(crate) fn random_fill(buf: &mut [u8]) {
    aws_lc_rs::rand::fill(buf).expect("system random number generator failed");
}
