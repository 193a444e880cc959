//! Blob storage for originals and parsed artifacts, through `object_store` so the local
//! directory (embedded default) and S3-compatible stores share one code path.

use bytes::Bytes;
use navigator_domain::{DocumentId, ErrorCode};
use object_store::{
    ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart, path::Path as ObjectPath,
};
use std::path::Path;
use std::sync::Arc;
use tokio::io::AsyncReadExt;

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("blob not found")]
    NotFound,
    #[error("unsupported blob url scheme (expected file://)")]
    UnsupportedUrl,
    #[error("blob store error: {0}")]
    Backend(String),
}

impl BlobError {
    pub fn code(&self) -> ErrorCode {
        match self {
            BlobError::NotFound => ErrorCode::NotFound,
            BlobError::UnsupportedUrl => ErrorCode::InvalidRequest,
            BlobError::Backend(_) => ErrorCode::IoError,
        }
    }
}

impl From<object_store::Error> for BlobError {
    fn from(e: object_store::Error) -> Self {
        match e {
            object_store::Error::NotFound { .. } => BlobError::NotFound,
            // The error's Display may carry a path; paths hold ids only, never filenames.
            other => BlobError::Backend(other.to_string()),
        }
    }
}

/// Where each blob of a document lives. Keys hold ids only, never client filenames.
pub struct BlobKeys;

impl BlobKeys {
    pub fn original(id: DocumentId) -> ObjectPath {
        ObjectPath::from(format!("originals/{id}"))
    }

    pub fn parsed(id: DocumentId) -> ObjectPath {
        ObjectPath::from(format!("parsed/{id}.json"))
    }
}

/// A handle on the configured blob store; cheap to clone.
#[derive(Clone, Debug)]
pub struct Blobs {
    store: Arc<dyn ObjectStore>,
}

/// Streaming uploads are written in parts of this size, so memory stays bounded.
const PART_SIZE: usize = 8 * 1024 * 1024;

impl Blobs {
    /// Opens `file://DIR` (created if missing).
    pub fn from_url(url: &str) -> Result<Self, BlobError> {
        let dir = url
            .strip_prefix("file://")
            .ok_or(BlobError::UnsupportedUrl)?;
        std::fs::create_dir_all(dir).map_err(|e| BlobError::Backend(e.to_string()))?;
        let store = object_store::local::LocalFileSystem::new_with_prefix(dir)?
            .with_automatic_cleanup(true);
        Ok(Self {
            store: Arc::new(store),
        })
    }

    pub fn from_store(store: Arc<dyn ObjectStore>) -> Self {
        Self { store }
    }

    pub async fn put(&self, key: &ObjectPath, bytes: Bytes) -> Result<(), BlobError> {
        self.store.put(key, PutPayload::from(bytes)).await?;
        Ok(())
    }

    /// Copies a local file into the store in bounded parts.
    pub async fn put_file(&self, key: &ObjectPath, file: &Path) -> Result<(), BlobError> {
        let mut source = tokio::fs::File::open(file)
            .await
            .map_err(|e| BlobError::Backend(e.to_string()))?;
        let upload = self.store.put_multipart(key).await?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
        let mut buffer = vec![0u8; 1024 * 1024];
        loop {
            let n = source
                .read(&mut buffer)
                .await
                .map_err(|e| BlobError::Backend(e.to_string()))?;
            if n == 0 {
                break;
            }
            writer.write(&buffer[..n]);
        }
        writer.finish().await?;
        Ok(())
    }

    pub async fn get(&self, key: &ObjectPath) -> Result<Bytes, BlobError> {
        Ok(self.store.get(key).await?.bytes().await?)
    }

    /// Deletes a blob; a missing one is not an error (deletes are retried and must be idempotent).
    pub async fn delete(&self, key: &ObjectPath) -> Result<(), BlobError> {
        match self.store.delete(key).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Round-trips a tiny probe object, for `/readyz`.
    pub async fn check(&self) -> Result<(), BlobError> {
        let key = ObjectPath::from("health/probe");
        self.put(&key, Bytes::from_static(b"ok")).await?;
        self.get(&key).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn local_blobs_round_trip_stream_and_delete_idempotently() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = Blobs::from_url(&format!("file://{}", dir.path().display())).unwrap();
        let id = DocumentId::new_v7();
        blobs
            .put(&BlobKeys::parsed(id), Bytes::from_static(b"{}"))
            .await
            .unwrap();
        assert_eq!(
            blobs.get(&BlobKeys::parsed(id)).await.unwrap(),
            Bytes::from_static(b"{}")
        );

        let src = dir.path().join("upload.bin");
        let payload: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&src, &payload).unwrap();
        blobs.put_file(&BlobKeys::original(id), &src).await.unwrap();
        assert_eq!(blobs.get(&BlobKeys::original(id)).await.unwrap(), payload);

        blobs.delete(&BlobKeys::original(id)).await.unwrap();
        blobs.delete(&BlobKeys::original(id)).await.unwrap();
        assert!(matches!(
            blobs.get(&BlobKeys::original(id)).await,
            Err(BlobError::NotFound)
        ));
        blobs.check().await.unwrap();
    }
}
