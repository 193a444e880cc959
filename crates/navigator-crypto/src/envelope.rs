//! Envelope encryption of blobs under data keys.
//!
//! Sealed format (version 1):
//!
//! ```text
//! b"NAV1" | alg id (u8, 1 = AES-256-GCM) | nonce (12 random bytes) | ciphertext ‖ tag (16 bytes)
//! ```
//!
//! The AEAD associated data is the 5-byte header (`b"NAV1"` ‖ alg id)
//! followed by the caller's `aad`, so the header is authenticated too.
//! Nonces are 96 random bits from the system CSPRNG; with a fresh data key per
//! object the number of messages per key stays far below the 2^32 bound for
//! random GCM nonces.

use std::fmt;

use aws_lc_rs::aead::{AES_256_GCM, Aad, NONCE_LEN, Nonce, RandomizedNonceKey};
use zeroize::Zeroizing;

use crate::CryptoError;

/// Magic prefix of every sealed blob.
pub const MAGIC: [u8; 4] = *b"NAV1";
/// Algorithm id of AES-256-GCM in the sealed format.
pub const ALG_AES_256_GCM: u8 = 1;
/// Length of the header (magic + algorithm id).
pub const HEADER_LEN: usize = MAGIC.len() + 1;
/// GCM tag length.
pub const TAG_LEN: usize = 16;
/// Bytes a sealed blob adds to its plaintext.
pub const OVERHEAD: usize = HEADER_LEN + NONCE_LEN + TAG_LEN;

/// A 256-bit data-encryption key. Zeroized on drop; `Debug` is redacted.
#[derive(Clone)]
pub struct DataKey(Zeroizing<[u8; 32]>);

impl DataKey {
    /// A fresh key from the system CSPRNG.
    ///
    /// # Panics
    /// If the system random number generator fails.
    #[must_use]
    pub fn generate() -> Self {
        let mut bytes = Zeroizing::new([0u8; 32]);
        crate::random_fill(&mut bytes[..]);
        Self(bytes)
    }

    /// Wraps existing key bytes.
    #[must_use]
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// Copies key bytes from a slice that must be exactly 32 bytes long.
    ///
    /// # Errors
    /// [`CryptoError::InvalidKey`] for any other length.
    pub fn try_from_slice(bytes: &[u8]) -> Result<Self, CryptoError> {
        let mut key = Zeroizing::new([0u8; 32]);
        if bytes.len() != key.len() {
            return Err(CryptoError::InvalidKey(format!(
                "expected 32 key bytes, got {}",
                bytes.len()
            )));
        }
        key.copy_from_slice(bytes);
        Ok(Self(key))
    }

    /// The raw key bytes. Handle with care: do not log or persist unwrapped.
    #[must_use]
    pub fn expose_secret(&self) -> &[u8; 32] {
        &self.0
    }

    fn aead_key(&self) -> RandomizedNonceKey {
        // Only fails for a wrong key length, which the type rules out.
        RandomizedNonceKey::new(&AES_256_GCM, &self.0[..]).expect("32-byte AES-256-GCM key")
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey([redacted])")
    }
}

fn full_aad(alg: u8, aad: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(HEADER_LEN + aad.len());
    v.extend_from_slice(&MAGIC);
    v.push(alg);
    v.extend_from_slice(aad);
    v
}

/// Encrypts `plaintext` under `dek` with AES-256-GCM and a random nonce,
/// authenticating `aad` (use [`blob_aad`] for stored objects).
///
/// # Panics
/// If the system random number generator fails.
#[must_use]
pub fn seal(dek: &DataKey, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    let key = dek.aead_key();
    let mut body = Vec::with_capacity(plaintext.len() + TAG_LEN);
    body.extend_from_slice(plaintext);
    let nonce = key
        .seal_in_place_append_tag(Aad::from(full_aad(ALG_AES_256_GCM, aad)), &mut body)
        .expect("AES-256-GCM seal (random nonce generation) failed");
    let mut out = Vec::with_capacity(OVERHEAD + plaintext.len());
    out.extend_from_slice(&MAGIC);
    out.push(ALG_AES_256_GCM);
    out.extend_from_slice(nonce.as_ref());
    out.extend_from_slice(&body);
    out
}

/// Decrypts a blob produced by [`seal`] with the same key and `aad`.
///
/// # Errors
/// [`CryptoError::Malformed`] for a wrong magic, unknown algorithm id or a
/// blob shorter than the header, nonce and tag; [`CryptoError::Integrity`] when
/// authentication fails (any modified bit, other `aad`, or another key).
pub fn open(dek: &DataKey, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
    if sealed.len() < OVERHEAD {
        return Err(CryptoError::Malformed("too short"));
    }
    if sealed[..MAGIC.len()] != MAGIC {
        return Err(CryptoError::Malformed("wrong magic"));
    }
    let alg = sealed[MAGIC.len()];
    if alg != ALG_AES_256_GCM {
        return Err(CryptoError::Malformed("unknown algorithm id"));
    }
    let nonce = Nonce::try_assume_unique_for_key(&sealed[HEADER_LEN..HEADER_LEN + NONCE_LEN])
        .map_err(|_| CryptoError::Malformed("nonce"))?;
    let mut body = sealed[HEADER_LEN + NONCE_LEN..].to_vec();
    let key = dek.aead_key();
    match key.open_in_place(nonce, Aad::from(full_aad(alg, aad)), &mut body) {
        Ok(plain) => {
            let len = plain.len();
            body.truncate(len);
            Ok(body)
        }
        Err(_) => {
            // Do not leave unauthenticated partial plaintext in freed memory.
            zeroize::Zeroize::zeroize(&mut body);
            Err(CryptoError::Integrity)
        }
    }
}

/// Whether `bytes` starts with the sealed-blob magic (for migrations and scans;
/// it says nothing about integrity).
#[must_use]
pub fn is_sealed(bytes: &[u8]) -> bool {
    bytes.starts_with(&MAGIC)
}

/// The associated data binding a blob ciphertext to its document and object
/// kind: `"navigator/blob/v1\0{document_id}\0{kind}"`. A ciphertext moved to
/// another document or kind fails to open. Neither part may contain NUL.
#[must_use]
pub fn blob_aad(document_id: &str, kind: &str) -> Vec<u8> {
    debug_assert!(!document_id.contains('\0') && !kind.contains('\0'));
    format!("navigator/blob/v1\0{document_id}\0{kind}").into_bytes()
}
