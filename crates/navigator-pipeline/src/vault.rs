//! Encryption at rest: every blob of a document (its original and its parsed text) is sealed
//! with AES-256-GCM under a data key of its own, and that data key is stored only wrapped by a
//! key-encryption key (KEK) named by its id ([`navigator_crypto::keyring::KeyProvider`]: the
//! local keyring today, a KMS or Vault transit later).
//!
//! Key design choices:
//! - The associated data binds each ciphertext to its document and kind, so a blob copied or
//!   swapped onto another document (or from original to parsed) fails to open.
//! - Deleting a document deletes its wrapped data key in the same transaction as its rows
//!   (crypto-shredding): any copy of its blobs is unreadable once no copy of the wrapped key is
//!   left (database backups keep one until they expire).
//! - Rotation: new data keys are wrapped by the active KEK; [`DocumentKeys::rewrap`] re-wraps
//!   old ones (compare-and-set per row, safe while serving) without touching any blob.
//! - Unwrapped data keys are cached in memory for a bounded time and dropped (zeroized) after.

use crate::blob::{BlobError, BlobKeys, Blobs};
use bytes::Bytes;
use navigator_crypto::envelope::{self, DataKey};
use navigator_crypto::keyring::{KeyProvider, WrappedKey};
use navigator_domain::{Clock, DocumentId, ErrorCode};
use navigator_store::{DataKeyRecord, Store, StoreError};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Which blob of a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobKind {
    Original,
    Parsed,
}

impl BlobKind {
    pub const ALL: [BlobKind; 2] = [BlobKind::Original, BlobKind::Parsed];

    fn as_str(self) -> &'static str {
        match self {
            BlobKind::Original => "original",
            BlobKind::Parsed => "parsed",
        }
    }

    fn key(self, id: DocumentId) -> object_store::path::Path {
        match self {
            BlobKind::Original => BlobKeys::original(id),
            BlobKind::Parsed => BlobKeys::parsed(id),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error(transparent)]
    Blob(#[from] BlobError),
    /// The document's data key is gone: the document was deleted (its data crypto-shredded).
    #[error("the document's data key no longer exists")]
    KeyDestroyed,
    /// A blob failed authentication: tampered with, truncated, or moved from another document.
    #[error("blob failed authentication")]
    Integrity,
    /// The key provider could not wrap or unwrap (unknown KEK id, provider unavailable).
    #[error("key provider error: {0}")]
    KeyProvider(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl VaultError {
    pub fn code(&self) -> ErrorCode {
        match self {
            VaultError::Blob(e) => e.code(),
            VaultError::KeyDestroyed => ErrorCode::NotFound,
            VaultError::Integrity => ErrorCode::IntegrityError,
            VaultError::KeyProvider(_) => ErrorCode::ServiceUnavailable,
            VaultError::Store(e) if e.is_transient() => ErrorCode::DatabaseError,
            VaultError::Store(StoreError::NotFound) => ErrorCode::NotFound,
            VaultError::Store(_) => ErrorCode::IntegrityError,
        }
    }
}

/// Most data keys kept unwrapped in memory at once.
const CACHE_CAPACITY: usize = 4096;

/// The per-document data keys: created on first write, unwrapped on read, cached briefly.
pub struct DocumentKeys {
    store: Arc<dyn Store>,
    provider: Arc<dyn KeyProvider>,
    clock: Arc<dyn Clock>,
    ttl: Duration,
    cache: Mutex<HashMap<DocumentId, (Arc<DataKey>, Instant)>>,
}

/// What [`DocumentKeys::rewrap`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RewrapReport {
    pub rewrapped: u64,
    /// Rows that changed under us (another rewrap, a delete): left for the next pass.
    pub skipped: u64,
}

impl DocumentKeys {
    pub fn new(
        store: Arc<dyn Store>,
        provider: Arc<dyn KeyProvider>,
        clock: Arc<dyn Clock>,
        ttl: Duration,
    ) -> Self {
        Self {
            store,
            provider,
            clock,
            ttl,
            cache: Mutex::new(HashMap::new()),
        }
    }

    fn cached(&self, id: DocumentId) -> Option<Arc<DataKey>> {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        match cache.get(&id) {
            Some((key, at)) if at.elapsed() < self.ttl => Some(key.clone()),
            Some(_) => {
                cache.remove(&id);
                None
            }
            None => None,
        }
    }

    fn remember(&self, id: DocumentId, key: Arc<DataKey>) {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= CACHE_CAPACITY {
            let ttl = self.ttl;
            cache.retain(|_, (_, at)| at.elapsed() < ttl);
            if cache.len() >= CACHE_CAPACITY {
                cache.clear();
            }
        }
        cache.insert(id, (key, Instant::now()));
    }

    /// Drops the cached key (the document is being deleted).
    pub fn forget(&self, id: DocumentId) {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache.remove(&id);
    }

    async fn unwrap(&self, record: &DataKeyRecord) -> Result<DataKey, VaultError> {
        self.provider
            .unwrap(&WrappedKey {
                kek_id: record.kek_id.clone(),
                bytes: record.wrapped.clone(),
            })
            .await
            .map_err(|e| VaultError::KeyProvider(e.to_string()))
    }

    /// The document's data key, created (and stored wrapped) if it has none yet.
    pub async fn for_write(&self, id: DocumentId) -> Result<Arc<DataKey>, VaultError> {
        if let Some(key) = self.cached(id) {
            return Ok(key);
        }
        if let Some(record) = self.store.get_data_key(id).await? {
            let key = Arc::new(self.unwrap(&record).await?);
            self.remember(id, key.clone());
            return Ok(key);
        }
        let key = DataKey::generate();
        let wrapped = self
            .provider
            .wrap(&key)
            .await
            .map_err(|e| VaultError::KeyProvider(e.to_string()))?;
        let record = DataKeyRecord {
            document_id: id,
            kek_id: wrapped.kek_id,
            wrapped: wrapped.bytes,
            created_at: self.clock.now(),
        };
        let key = if self.store.put_data_key(&record).await? {
            Arc::new(key)
        } else {
            // Another writer created it first: use theirs.
            let theirs = self
                .store
                .get_data_key(id)
                .await?
                .ok_or(VaultError::KeyDestroyed)?;
            Arc::new(self.unwrap(&theirs).await?)
        };
        self.remember(id, key.clone());
        Ok(key)
    }

    /// The document's data key for reading; [`VaultError::KeyDestroyed`] once it was deleted.
    pub async fn for_read(&self, id: DocumentId) -> Result<Arc<DataKey>, VaultError> {
        if let Some(key) = self.cached(id) {
            return Ok(key);
        }
        let record = self
            .store
            .get_data_key(id)
            .await?
            .ok_or(VaultError::KeyDestroyed)?;
        let key = Arc::new(self.unwrap(&record).await?);
        self.remember(id, key.clone());
        Ok(key)
    }

    /// Re-wraps every data key not wrapped by the active KEK, `batch` at a time. Blobs are not
    /// touched (their data keys do not change). Safe while serving: each row is a
    /// compare-and-set, and readers accept every KEK still in the keyring.
    pub async fn rewrap(&self, batch: u32) -> Result<RewrapReport, VaultError> {
        let active = self.provider.active_key_id();
        let mut report = RewrapReport::default();
        loop {
            let rows = self
                .store
                .data_keys_wrapped_by_other_than(&active, batch.max(1))
                .await?;
            if rows.is_empty() {
                return Ok(report);
            }
            let mut progressed = false;
            for row in rows {
                let key = self.unwrap(&row).await?;
                let wrapped = self
                    .provider
                    .wrap(&key)
                    .await
                    .map_err(|e| VaultError::KeyProvider(e.to_string()))?;
                let new = DataKeyRecord {
                    document_id: row.document_id,
                    kek_id: wrapped.kek_id,
                    wrapped: wrapped.bytes,
                    created_at: row.created_at,
                };
                if self
                    .store
                    .rewrap_data_key(row.document_id, &row.kek_id, &row.wrapped, &new)
                    .await?
                {
                    report.rewrapped += 1;
                    progressed = true;
                } else {
                    report.skipped += 1;
                }
            }
            if !progressed {
                // Every row in the batch changed under us; stop rather than spin.
                return Ok(report);
            }
        }
    }
}

/// A document's blobs, sealed on the way in and opened on the way out.
#[derive(Clone)]
pub struct DocumentBlobs {
    blobs: Blobs,
    keys: Arc<DocumentKeys>,
}

impl std::fmt::Debug for DocumentBlobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DocumentBlobs({:?}, sealed)", self.blobs)
    }
}

impl DocumentBlobs {
    pub fn new(blobs: Blobs, keys: Arc<DocumentKeys>) -> Self {
        Self { blobs, keys }
    }

    /// The underlying store, holding ciphertext only (for scans and health checks).
    pub fn raw(&self) -> &Blobs {
        &self.blobs
    }

    pub fn keys(&self) -> &Arc<DocumentKeys> {
        &self.keys
    }

    pub async fn put(
        &self,
        id: DocumentId,
        kind: BlobKind,
        plaintext: &[u8],
    ) -> Result<(), VaultError> {
        let key = self.keys.for_write(id).await?;
        let sealed = envelope::seal(
            &key,
            &envelope::blob_aad(&id.to_string(), kind.as_str()),
            plaintext,
        );
        self.blobs.put(&kind.key(id), Bytes::from(sealed)).await?;
        Ok(())
    }

    pub async fn get(&self, id: DocumentId, kind: BlobKind) -> Result<Bytes, VaultError> {
        let sealed = self.blobs.get(&kind.key(id)).await?;
        let key = self.keys.for_read(id).await?;
        envelope::open(
            &key,
            &envelope::blob_aad(&id.to_string(), kind.as_str()),
            &sealed,
        )
        .map(Bytes::from)
        .map_err(|_| VaultError::Integrity)
    }

    /// Seals the document's blobs that are still plaintext (written before blobs were sealed:
    /// a deployment upgraded in place). Returns how many it sealed; sealed ones are left alone,
    /// so running it again is harmless.
    pub async fn seal_plaintext(&self, id: DocumentId) -> Result<u32, VaultError> {
        let mut sealed = 0;
        for kind in BlobKind::ALL {
            let stored = match self.blobs.get(&kind.key(id)).await {
                Ok(stored) => stored,
                Err(BlobError::NotFound) => continue,
                Err(e) => return Err(e.into()),
            };
            if !envelope::is_sealed(&stored) {
                self.put(id, kind, &stored).await?;
                sealed += 1;
            }
        }
        Ok(sealed)
    }

    pub async fn delete(&self, id: DocumentId, kind: BlobKind) -> Result<(), VaultError> {
        self.blobs.delete(&kind.key(id)).await?;
        Ok(())
    }

    /// Deletes both blobs and forgets the cached key (the store deletes the wrapped key with
    /// the document's rows).
    pub async fn delete_all(&self, id: DocumentId) -> Result<(), VaultError> {
        self.keys.forget(id);
        for kind in BlobKind::ALL {
            match self.blobs.delete(&kind.key(id)).await {
                Ok(()) | Err(BlobError::NotFound) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}
