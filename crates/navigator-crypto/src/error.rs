use std::path::PathBuf;

/// Errors of this crate. None of the messages contains key material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CryptoError {
    /// Authentication failed: the ciphertext, its associated data, or the key
    /// does not match (tampering, a blob moved to another document or kind, or
    /// the wrong key). Also a wrong MAC on an audit anchor.
    #[error("integrity check failed: data was modified, moved, or opened with the wrong key")]
    Integrity,
    /// The bytes are not a well-formed sealed blob (wrong magic, unknown
    /// algorithm id, or too short).
    #[error("malformed sealed data: {0}")]
    Malformed(&'static str),
    /// A key id that this provider does not hold.
    #[error("unknown key id {0:?}")]
    UnknownKey(String),
    /// A key id outside `[A-Za-z0-9._-]{1,64}`.
    #[error("invalid key id {0:?}: key ids must match [A-Za-z0-9._-]{{1,64}}")]
    InvalidKeyId(String),
    /// Key material of the wrong length or encoding, or an inconsistent key set.
    #[error("invalid key material: {0}")]
    InvalidKey(String),
    /// A keyring file that cannot be used as it is (permissions, format).
    #[error("keyring file {path}: {message}")]
    Keyring { path: PathBuf, message: String },
    /// An I/O error on a keyring file.
    #[error("keyring file {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A malformed audit anchor.
    #[error("malformed audit anchor: {0}")]
    Anchor(String),
    /// A key provider backend (KMS, Vault) failed.
    #[error("key provider error: {0}")]
    Provider(String),
}
