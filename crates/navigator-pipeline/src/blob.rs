//! Blob storage for originals and parsed artifacts, through `object_store` so the local
//! directory (embedded default) and S3-compatible stores share one code path.

use bytes::Bytes;
use navigator_domain::{DocumentId, ErrorCode};
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::prefix::PrefixStore;
use object_store::{
    ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart, path::Path as ObjectPath,
};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::io::AsyncReadExt;

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("blob not found")]
    NotFound,
    /// The store could not be configured. The message never carries credentials.
    #[error("invalid blob store configuration: {0}")]
    Config(String),
    #[error("blob store error: {0}")]
    Backend(String),
}

impl BlobError {
    pub fn code(&self) -> ErrorCode {
        match self {
            BlobError::NotFound => ErrorCode::NotFound,
            BlobError::Config(_) => ErrorCode::InvalidRequest,
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

/// Where the blob store lives: a local directory or an S3-compatible bucket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BlobLocation {
    /// A local directory (created if missing).
    File(PathBuf),
    /// An S3 bucket; every key is stored under `prefix/` (empty: the bucket root).
    S3 { bucket: String, prefix: String },
}

/// Connection settings for an S3-compatible store. Unset credentials fall back to the usual
/// `AWS_*` environment variables.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct S3Settings {
    /// S3-compatible endpoint (MinIO, R2, moto…); `None` means AWS.
    pub endpoint: Option<String>,
    /// `None` means `AWS_REGION`/`AWS_DEFAULT_REGION` if set, else `us-east-1`.
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    /// Allow a plain-http endpoint (local test servers only).
    pub allow_http: bool,
}

impl std::fmt::Debug for S3Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redacted = |v: &Option<String>| v.as_ref().map(|_| "<redacted>");
        f.debug_struct("S3Settings")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &redacted(&self.access_key_id))
            .field("secret_access_key", &redacted(&self.secret_access_key))
            .field("allow_http", &self.allow_http)
            .finish()
    }
}

/// Replaces every configured credential in `message` with `<redacted>`.
fn redact(mut message: String, settings: &S3Settings) -> String {
    for secret in [&settings.access_key_id, &settings.secret_access_key]
        .into_iter()
        .flatten()
        .filter(|s| !s.is_empty())
    {
        message = message.replace(secret.as_str(), "<redacted>");
    }
    message
}

/// A handle on the configured blob store; cheap to clone.
#[derive(Clone)]
pub struct Blobs {
    store: Arc<dyn ObjectStore>,
}

impl std::fmt::Debug for Blobs {
    // The store's Display names the backend and bucket only; never print its Debug, which
    // reaches the credential provider.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Blobs({})", self.store)
    }
}

/// Streaming uploads are written in parts of this size, so memory stays bounded.
const PART_SIZE: usize = 8 * 1024 * 1024;

impl Blobs {
    /// Opens a local directory (created if missing).
    pub fn local(dir: &Path) -> Result<Self, BlobError> {
        std::fs::create_dir_all(dir).map_err(|e| BlobError::Backend(e.to_string()))?;
        let store = object_store::local::LocalFileSystem::new_with_prefix(dir)?
            .with_automatic_cleanup(true);
        Ok(Self {
            store: Arc::new(store),
        })
    }

    /// Opens the store at `location`; `s3` is used for [`BlobLocation::S3`] only.
    pub fn from_location(location: &BlobLocation, s3: &S3Settings) -> Result<Self, BlobError> {
        match location {
            BlobLocation::File(dir) => Self::local(dir),
            BlobLocation::S3 { bucket, prefix } => Self::s3(bucket, prefix, s3),
        }
    }

    /// Opens an S3-compatible bucket, keeping every key under `prefix/`. Settings left unset
    /// are read from the `AWS_*` environment variables. No request is made here; see
    /// [`Blobs::check`].
    pub fn s3(bucket: &str, prefix: &str, settings: &S3Settings) -> Result<Self, BlobError> {
        if bucket.is_empty() {
            return Err(BlobError::Config("the S3 bucket name is empty".into()));
        }
        let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
        match &settings.region {
            Some(region) => builder = builder.with_region(region),
            None if builder
                .get_config_value(&AmazonS3ConfigKey::Region)
                .is_none() =>
            {
                builder = builder.with_region("us-east-1");
            }
            None => {}
        }
        if let Some(endpoint) = &settings.endpoint {
            builder = builder.with_endpoint(endpoint);
        }
        if settings.allow_http {
            builder = builder.with_allow_http(true);
        }
        if let Some(key_id) = &settings.access_key_id {
            builder = builder.with_access_key_id(key_id);
        }
        if let Some(secret) = &settings.secret_access_key {
            builder = builder.with_secret_access_key(secret);
        }
        // Builder errors name the offending setting, never a credential value; redact them
        // anyway so a future message cannot leak one.
        let store = builder
            .build()
            .map_err(|e| BlobError::Config(redact(e.to_string(), settings)))?;
        let prefix = prefix.trim_matches('/');
        let store: Arc<dyn ObjectStore> = if prefix.is_empty() {
            Arc::new(store)
        } else {
            Arc::new(PrefixStore::new(store, ObjectPath::from(prefix)))
        };
        Ok(Self { store })
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
        let blobs = Blobs::local(dir.path()).unwrap();
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

    #[test]
    fn s3_settings_and_errors_never_show_credentials() {
        let settings = S3Settings {
            access_key_id: Some("AKIDEXAMPLE".into()),
            secret_access_key: Some("s3cr3t-value".into()),
            ..S3Settings::default()
        };
        let debug = format!("{settings:?}");
        assert!(!debug.contains("AKIDEXAMPLE") && !debug.contains("s3cr3t-value"));
        assert_eq!(
            redact("bad key AKIDEXAMPLE / s3cr3t-value".into(), &settings),
            "bad key <redacted> / <redacted>"
        );
        let blobs = Blobs::s3("bucket", "p", &settings).unwrap();
        let debug = format!("{blobs:?}");
        assert!(!debug.contains("s3cr3t-value"), "{debug}");
    }
}
