//! Key-encryption keys (KEKs) that wrap per-object data keys.
//!
//! [`KeyProvider`] is the seam a KMS or Vault transit backend implements;
//! [`LocalKeyring`] is the built-in provider: named 32-byte KEKs held in
//! memory, loaded from configuration or from a 0600 JSON file:
//!
//! ```json
//! { "active": "k-20250101-1a2b3c4d", "keys": { "k-20250101-1a2b3c4d": "<base64>" }, "audit_key": "<base64>" }
//! ```
//!
//! Wrapping a data key is `seal(kek, dek_aad(kek_id), dek bytes)` (see
//! [`crate::envelope`]), so a wrapped key only opens under the KEK whose id it
//! names. Rotation adds a key and makes it active; old keys stay to unwrap
//! existing data keys.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, Zeroizing};

use crate::CryptoError;
use crate::audit::AuditKey;
use crate::envelope::{self, DataKey};

/// A data key encrypted under the key-encryption key named `kek_id`.
/// Not secret: safe to store next to the data it protects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WrappedKey {
    pub kek_id: String,
    pub bytes: Vec<u8>,
}

impl WrappedKey {
    /// A single-column encoding: `len(kek_id) as u8 | kek_id | bytes`.
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1 + self.kek_id.len() + self.bytes.len());
        // Key ids are at most 64 bytes (validated on every path that creates one).
        out.push(u8::try_from(self.kek_id.len()).unwrap_or(u8::MAX));
        out.extend_from_slice(self.kek_id.as_bytes());
        out.extend_from_slice(&self.bytes);
        out
    }

    /// Inverse of [`WrappedKey::encode`].
    ///
    /// # Errors
    /// [`CryptoError::Malformed`] or [`CryptoError::InvalidKeyId`].
    pub fn decode(encoded: &[u8]) -> Result<Self, CryptoError> {
        let (&len, rest) = encoded
            .split_first()
            .ok_or(CryptoError::Malformed("empty wrapped key"))?;
        let len = usize::from(len);
        if rest.len() < len {
            return Err(CryptoError::Malformed(
                "wrapped key shorter than its key id",
            ));
        }
        let kek_id = std::str::from_utf8(&rest[..len])
            .map_err(|_| CryptoError::Malformed("wrapped key id is not UTF-8"))?
            .to_owned();
        validate_key_id(&kek_id)?;
        Ok(Self {
            kek_id,
            bytes: rest[len..].to_vec(),
        })
    }
}

/// Provider of key-encryption keys: the seam for a KMS or Vault transit.
#[async_trait]
pub trait KeyProvider: Send + Sync {
    /// The id of the KEK that new wraps use.
    fn active_key_id(&self) -> String;
    /// Wraps `dek` with the active KEK.
    async fn wrap(&self, dek: &DataKey) -> Result<WrappedKey, CryptoError>;
    /// Unwraps with the KEK named by `wrapped.kek_id`
    /// ([`CryptoError::UnknownKey`] if the provider does not hold it,
    /// [`CryptoError::Integrity`] if the wrapped bytes do not authenticate).
    async fn unwrap(&self, wrapped: &WrappedKey) -> Result<DataKey, CryptoError>;
}

/// Associated data for wrapping a data key under KEK `kek_id`:
/// `"navigator/dek/v1\0{kek_id}"`.
#[must_use]
pub fn dek_aad(kek_id: &str) -> Vec<u8> {
    format!("navigator/dek/v1\0{kek_id}").into_bytes()
}

/// Checks a key id against `[A-Za-z0-9._-]{1,64}`.
///
/// # Errors
/// [`CryptoError::InvalidKeyId`].
pub fn validate_key_id(id: &str) -> Result<(), CryptoError> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        // Truncate so that a secret pasted into the wrong field is not echoed whole.
        let shown: String = id.chars().take(16).collect();
        Err(CryptoError::InvalidKeyId(if id.chars().count() > 16 {
            format!("{shown}…")
        } else {
            shown
        }))
    }
}

/// Named 32-byte key-encryption keys plus the active id, and optionally the
/// audit-chain key kept in the same file. Zeroized on drop; `Debug` shows ids only.
#[derive(Clone)]
pub struct LocalKeyring {
    keys: BTreeMap<String, DataKey>,
    active: String,
    audit_key: Option<AuditKey>,
}

impl fmt::Debug for LocalKeyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalKeyring")
            .field("active", &self.active)
            .field("key_ids", &self.keys.keys().collect::<Vec<_>>())
            .field("audit_key", &self.audit_key.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

impl LocalKeyring {
    /// A keyring from raw keys. `active` must be one of them.
    ///
    /// # Errors
    /// [`CryptoError::InvalidKeyId`] for a bad id, [`CryptoError::InvalidKey`]
    /// for no keys or a duplicate id, [`CryptoError::UnknownKey`] when `active`
    /// is not among the keys.
    pub fn new(keys: Vec<(String, [u8; 32])>, active: &str) -> Result<Self, CryptoError> {
        let mut map = BTreeMap::new();
        for (id, mut bytes) in keys {
            validate_key_id(&id)?;
            let key = DataKey::from_bytes(bytes);
            bytes.zeroize();
            if map.insert(id.clone(), key).is_some() {
                return Err(CryptoError::InvalidKey(format!("duplicate key id {id:?}")));
            }
        }
        Self::from_map(map, active.to_owned())
    }

    fn from_map(keys: BTreeMap<String, DataKey>, active: String) -> Result<Self, CryptoError> {
        if keys.is_empty() {
            return Err(CryptoError::InvalidKey(
                "a keyring needs at least one key".into(),
            ));
        }
        validate_key_id(&active)?;
        if !keys.contains_key(&active) {
            return Err(CryptoError::UnknownKey(active));
        }
        Ok(Self {
            keys,
            active,
            audit_key: None,
        })
    }

    /// A keyring from configuration or environment: key id → standard base64
    /// of 32 bytes. `active` may be omitted only when there is exactly one key.
    /// The base64 strings are zeroized after decoding.
    ///
    /// # Errors
    /// As [`LocalKeyring::new`], plus [`CryptoError::InvalidKey`] for bad
    /// base64 or length, or several keys without an active id.
    pub fn from_config(
        keys: BTreeMap<String, String>,
        active: Option<String>,
    ) -> Result<Self, CryptoError> {
        let mut map = BTreeMap::new();
        let mut first_err = None;
        for (id, mut b64) in keys {
            if first_err.is_none() {
                match validate_key_id(&id).and_then(|()| decode_key(&id, &b64)) {
                    Ok(key) => {
                        map.insert(id, key);
                    }
                    Err(e) => first_err = Some(e),
                }
            }
            b64.zeroize();
        }
        if let Some(e) = first_err {
            return Err(e);
        }
        let active = match active {
            Some(a) => a,
            None if map.len() == 1 => map.keys().next().cloned().unwrap_or_default(),
            None => {
                return Err(CryptoError::InvalidKey(
                    "several keys given but no active key id".into(),
                ));
            }
        };
        Self::from_map(map, active)
    }

    /// Attaches the audit-chain key (the file form carries one).
    #[must_use]
    pub fn with_audit_key(mut self, key: AuditKey) -> Self {
        self.audit_key = Some(key);
        self
    }

    /// The audit-chain key, if the keyring carries one.
    #[must_use]
    pub fn audit_key(&self) -> Option<&AuditKey> {
        self.audit_key.as_ref()
    }

    /// All key ids, sorted.
    #[must_use]
    pub fn key_ids(&self) -> Vec<String> {
        self.keys.keys().cloned().collect()
    }

    /// Whether the keyring holds a key with this id.
    #[must_use]
    pub fn contains(&self, kek_id: &str) -> bool {
        self.keys.contains_key(kek_id)
    }

    /// Synchronous [`KeyProvider::wrap`].
    ///
    /// # Errors
    /// None in practice (the active key always exists); kept fallible for parity.
    pub fn wrap_key(&self, dek: &DataKey) -> Result<WrappedKey, CryptoError> {
        let kek = self
            .keys
            .get(&self.active)
            .ok_or_else(|| CryptoError::UnknownKey(self.active.clone()))?;
        Ok(WrappedKey {
            kek_id: self.active.clone(),
            bytes: envelope::seal(kek, &dek_aad(&self.active), dek.expose_secret()),
        })
    }

    /// Synchronous [`KeyProvider::unwrap`].
    ///
    /// # Errors
    /// [`CryptoError::UnknownKey`], [`CryptoError::Integrity`],
    /// [`CryptoError::Malformed`].
    pub fn unwrap_key(&self, wrapped: &WrappedKey) -> Result<DataKey, CryptoError> {
        let kek = self
            .keys
            .get(&wrapped.kek_id)
            .ok_or_else(|| CryptoError::UnknownKey(wrapped.kek_id.clone()))?;
        let plain = Zeroizing::new(envelope::open(
            kek,
            &dek_aad(&wrapped.kek_id),
            &wrapped.bytes,
        )?);
        DataKey::try_from_slice(&plain)
    }

    /// A new key id `k-<yyyymmdd>-<8 random hex digits>` (UTC date).
    #[must_use]
    pub fn generate_key_id() -> String {
        let date = time::OffsetDateTime::now_utc().date();
        let mut rnd = [0u8; 4];
        crate::random_fill(&mut rnd);
        format!(
            "k-{:04}{:02}{:02}-{}",
            date.year(),
            u8::from(date.month()),
            date.day(),
            hex::encode(rnd)
        )
    }

    /// Loads an existing keyring file, refusing one readable or writable by
    /// group or others.
    ///
    /// # Errors
    /// [`CryptoError::Io`], [`CryptoError::Keyring`] (permissions, format), or
    /// the key validation errors of [`LocalKeyring::new`].
    pub fn load(path: impl AsRef<Path>) -> Result<Self, CryptoError> {
        let path = path.as_ref();
        let file = read_file(path)?;
        file.to_keyring(path)
    }

    /// Loads the keyring file at `path`, or creates it (mode 0600, parent
    /// directories 0700) with one random KEK `k-<yyyymmdd>-<random>` and a
    /// random audit key when it does not exist.
    ///
    /// # Errors
    /// As [`LocalKeyring::load`].
    pub fn load_or_create(path: impl AsRef<Path>) -> Result<Self, CryptoError> {
        let path = path.as_ref();
        match fs::symlink_metadata(path) {
            Ok(_) => return Self::load(path),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(path, e)),
        }
        let id = Self::generate_key_id();
        let kek = DataKey::generate();
        let audit = AuditKey::generate();
        let mut keys = BTreeMap::new();
        keys.insert(id.clone(), STANDARD.encode(kek.expose_secret()));
        let file = KeyringFile {
            active: id,
            keys,
            audit_key: Some(STANDARD.encode(audit.expose_secret())),
        };
        let dir = parent_dir(path);
        if !dir.as_os_str().is_empty() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)
                .map_err(|e| io_err(&dir, e))?;
        }
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
        {
            Ok(mut f) => {
                write_and_sync(&mut f, &file, path)?;
                sync_dir(&dir)?;
                file.to_keyring(path)
            }
            // Someone else created it between our check and our create.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Self::load(path),
            Err(e) => Err(io_err(path, e)),
        }
    }

    /// Adds a new random KEK to the keyring file, makes it active and keeps
    /// the old keys (they still unwrap existing data keys). The file is
    /// replaced atomically (0600 temp file, fsync, rename, directory fsync);
    /// concurrent rotations are serialised by a `<path>.lock` file. Running
    /// processes keep their in-memory keyring until they reload it.
    ///
    /// # Errors
    /// As [`LocalKeyring::load`].
    pub fn rotate_file(path: impl AsRef<Path>) -> Result<String, CryptoError> {
        let path = path.as_ref();
        let lock_path = PathBuf::from(format!("{}.lock", path.display()));
        let lock = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&lock_path)
            .map_err(|e| io_err(&lock_path, e))?;
        lock.lock().map_err(|e| io_err(&lock_path, e))?;

        let mut file = read_file(path)?;
        // Validate what is there before building on it.
        let ring = file.to_keyring(path)?;
        let mut id = Self::generate_key_id();
        while ring.contains(&id) {
            id = Self::generate_key_id();
        }
        let kek = DataKey::generate();
        file.keys
            .insert(id.clone(), STANDARD.encode(kek.expose_secret()));
        file.active.clone_from(&id);

        let dir = parent_dir(path);
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "keyring".into());
        let mut rnd = [0u8; 6];
        crate::random_fill(&mut rnd);
        let tmp = dir.join(format!(".{name}.tmp-{}", hex::encode(rnd)));
        let result = (|| {
            let mut f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)
                .map_err(|e| io_err(&tmp, e))?;
            write_and_sync(&mut f, &file, &tmp)?;
            drop(f);
            fs::rename(&tmp, path).map_err(|e| io_err(path, e))?;
            sync_dir(&dir)
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result?;
        drop(lock);
        Ok(id)
    }
}

#[async_trait]
impl KeyProvider for LocalKeyring {
    fn active_key_id(&self) -> String {
        self.active.clone()
    }

    async fn wrap(&self, dek: &DataKey) -> Result<WrappedKey, CryptoError> {
        self.wrap_key(dek)
    }

    async fn unwrap(&self, wrapped: &WrappedKey) -> Result<DataKey, CryptoError> {
        self.unwrap_key(wrapped)
    }
}

/// The on-disk form. Base64 strings are zeroized on drop.
#[derive(Serialize, Deserialize)]
struct KeyringFile {
    active: String,
    keys: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    audit_key: Option<String>,
}

impl Drop for KeyringFile {
    fn drop(&mut self) {
        for v in self.keys.values_mut() {
            v.zeroize();
        }
        self.audit_key.zeroize();
    }
}

impl KeyringFile {
    fn to_keyring(&self, path: &Path) -> Result<LocalKeyring, CryptoError> {
        let in_file = |e: CryptoError| CryptoError::Keyring {
            path: path.to_owned(),
            message: e.to_string(),
        };
        let mut map = BTreeMap::new();
        for (id, b64) in &self.keys {
            validate_key_id(id).map_err(in_file)?;
            map.insert(id.clone(), decode_key(id, b64).map_err(in_file)?);
        }
        let ring = LocalKeyring::from_map(map, self.active.clone()).map_err(in_file)?;
        match &self.audit_key {
            None => Ok(ring),
            Some(b64) => {
                let bytes = Zeroizing::new(STANDARD.decode(b64.as_bytes()).map_err(|_| {
                    CryptoError::Keyring {
                        path: path.to_owned(),
                        message: "audit_key is not standard base64".into(),
                    }
                })?);
                let key = AuditKey::new(bytes.to_vec()).map_err(|e| CryptoError::Keyring {
                    path: path.to_owned(),
                    message: format!("audit_key: {e}"),
                })?;
                Ok(ring.with_audit_key(key))
            }
        }
    }
}

fn decode_key(id: &str, b64: &str) -> Result<DataKey, CryptoError> {
    let bytes = Zeroizing::new(
        STANDARD
            .decode(b64.trim().as_bytes())
            .map_err(|_| CryptoError::InvalidKey(format!("key {id:?} is not standard base64")))?,
    );
    DataKey::try_from_slice(&bytes)
        .map_err(|_| CryptoError::InvalidKey(format!("key {id:?} is not exactly 32 bytes")))
}

fn io_err(path: &Path, source: io::Error) -> CryptoError {
    CryptoError::Io {
        path: path.to_owned(),
        source,
    }
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    }
}

fn sync_dir(dir: &Path) -> Result<(), CryptoError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_err(dir, e))
}

fn write_and_sync(f: &mut File, file: &KeyringFile, path: &Path) -> Result<(), CryptoError> {
    let mut json =
        Zeroizing::new(
            serde_json::to_vec_pretty(file).map_err(|_| CryptoError::Keyring {
                path: path.to_owned(),
                message: "could not serialise keyring".into(),
            })?,
        );
    json.push(b'\n');
    f.write_all(&json)
        .and_then(|()| f.sync_all())
        .map_err(|e| io_err(path, e))
}

/// Opens, checks permissions of, reads and parses a keyring file.
fn read_file(path: &Path) -> Result<KeyringFile, CryptoError> {
    let mut f = File::open(path).map_err(|e| io_err(path, e))?;
    let meta = f.metadata().map_err(|e| io_err(path, e))?;
    if !meta.is_file() {
        return Err(CryptoError::Keyring {
            path: path.to_owned(),
            message: "not a regular file".into(),
        });
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(CryptoError::Keyring {
            path: path.to_owned(),
            message: format!(
                "permissions {mode:04o} let group or others access the keys; \
                 restrict it with `chmod 600 {}`",
                path.display()
            ),
        });
    }
    let mut buf = Zeroizing::new(Vec::new());
    f.read_to_end(&mut buf).map_err(|e| io_err(path, e))?;
    // serde_json messages can quote input values (key material): report the position only.
    serde_json::from_slice::<KeyringFile>(&buf).map_err(|e| CryptoError::Keyring {
        path: path.to_owned(),
        message: format!(
            "not a valid keyring JSON document (line {}, column {}); expected \
             {{\"active\": id, \"keys\": {{id: base64}}, \"audit_key\": base64}}",
            e.line(),
            e.column()
        ),
    })
}
