//! One blob-store suite, run against the local directory store and against S3 (moto from
//! `scripts/services.sh start`, read from `NAVIGATOR_TEST_S3_ENDPOINT` / `NAVIGATOR_TEST_S3_BUCKET`).
//! Without those variables the S3 half is skipped with a note, unless `CI=true`, where it fails.

use bytes::Bytes;
use navigator_domain::DocumentId;
use navigator_pipeline::blob::{BlobError, BlobKeys, BlobLocation, Blobs, S3Settings};
use object_store::path::Path as ObjectPath;

/// A backend under test; keeps its temp directory alive for the test's duration.
trait Backend {
    /// A store whose keys live under `prefix` (a fresh one per call for S3).
    fn open(&self, prefix: &str) -> Blobs;
}

struct Local(tempfile::TempDir);

impl Local {
    fn new() -> Option<Self> {
        Some(Self(tempfile::tempdir().unwrap()))
    }
}

impl Backend for Local {
    fn open(&self, prefix: &str) -> Blobs {
        let dir = self.0.path().join(prefix);
        Blobs::from_location(&BlobLocation::File(dir), &S3Settings::default()).unwrap()
    }
}

struct S3 {
    bucket: String,
    settings: S3Settings,
    /// Unique per test run so reruns and parallel tests never share keys.
    run: String,
}

impl S3 {
    fn new() -> Option<Self> {
        let endpoint = std::env::var("NAVIGATOR_TEST_S3_ENDPOINT").ok();
        let bucket = std::env::var("NAVIGATOR_TEST_S3_BUCKET").ok();
        let (Some(endpoint), Some(bucket)) = (endpoint, bucket) else {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!(
                    "NAVIGATOR_TEST_S3_ENDPOINT / NAVIGATOR_TEST_S3_BUCKET unset under CI=true: run scripts/services.sh start"
                );
            }
            eprintln!(
                "skipping S3 blob test: NAVIGATOR_TEST_S3_ENDPOINT / NAVIGATOR_TEST_S3_BUCKET unset (eval \"$(scripts/services.sh start)\")"
            );
            return None;
        };
        Some(Self {
            bucket,
            settings: S3Settings {
                endpoint: Some(endpoint),
                region: Some("us-east-1".into()),
                access_key_id: Some("test".into()),
                secret_access_key: Some("test".into()),
                allow_http: true,
            },
            run: DocumentId::new_v7().to_string(),
        })
    }
}

impl Backend for S3 {
    fn open(&self, prefix: &str) -> Blobs {
        Blobs::s3(
            &self.bucket,
            &format!("blobs-test/{}/{prefix}", self.run),
            &self.settings,
        )
        .unwrap()
    }
}

// ---------------------------------------------------------------------------------------------
// the suite: one async fn per case, each taking a backend

async fn round_trip(b: &dyn Backend) {
    let blobs = b.open("round-trip");
    let id = DocumentId::new_v7();
    blobs
        .put(&BlobKeys::parsed(id), Bytes::from_static(b"{\"a\":1}"))
        .await
        .unwrap();
    assert_eq!(
        blobs.get(&BlobKeys::parsed(id)).await.unwrap(),
        Bytes::from_static(b"{\"a\":1}")
    );
    // Overwrite replaces.
    blobs
        .put(&BlobKeys::parsed(id), Bytes::from_static(b"{}"))
        .await
        .unwrap();
    assert_eq!(
        blobs.get(&BlobKeys::parsed(id)).await.unwrap(),
        Bytes::from_static(b"{}")
    );
}

async fn put_file_multipart(b: &dyn Backend) {
    let blobs = b.open("put-file");
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("upload.bin");
    let payload: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&src, &payload).unwrap();
    let id = DocumentId::new_v7();
    blobs.put_file(&BlobKeys::original(id), &src).await.unwrap();
    let back = blobs.get(&BlobKeys::original(id)).await.unwrap();
    assert_eq!(back.len(), payload.len());
    assert!(back == payload, "3 MB payload differs after put_file");

    // An empty file is a valid blob too.
    let empty = dir.path().join("empty.bin");
    std::fs::write(&empty, b"").unwrap();
    let id = DocumentId::new_v7();
    blobs
        .put_file(&BlobKeys::original(id), &empty)
        .await
        .unwrap();
    assert!(blobs.get(&BlobKeys::original(id)).await.unwrap().is_empty());
}

async fn missing_is_not_found(b: &dyn Backend) {
    let blobs = b.open("missing");
    let err = blobs
        .get(&BlobKeys::original(DocumentId::new_v7()))
        .await
        .unwrap_err();
    assert!(matches!(err, BlobError::NotFound), "got {err:?}");
}

async fn delete_is_idempotent(b: &dyn Backend) {
    let blobs = b.open("delete");
    let key = BlobKeys::original(DocumentId::new_v7());
    blobs.put(&key, Bytes::from_static(b"x")).await.unwrap();
    blobs.delete(&key).await.unwrap();
    blobs.delete(&key).await.unwrap();
    assert!(matches!(blobs.get(&key).await, Err(BlobError::NotFound)));
    // Deleting a key that never existed is fine as well.
    blobs
        .delete(&BlobKeys::parsed(DocumentId::new_v7()))
        .await
        .unwrap();
}

async fn check_passes(b: &dyn Backend) {
    let blobs = b.open("check");
    blobs.check().await.unwrap();
    blobs.check().await.unwrap();
}

async fn prefixes_are_isolated(b: &dyn Backend) {
    let a = b.open("tenant-a");
    let c = b.open("tenant-b");
    let key = ObjectPath::from("originals/shared-name");
    a.put(&key, Bytes::from_static(b"from a")).await.unwrap();
    assert!(matches!(c.get(&key).await, Err(BlobError::NotFound)));
    c.put(&key, Bytes::from_static(b"from b")).await.unwrap();
    assert_eq!(a.get(&key).await.unwrap(), Bytes::from_static(b"from a"));
    assert_eq!(c.get(&key).await.unwrap(), Bytes::from_static(b"from b"));
    c.delete(&key).await.unwrap();
    assert_eq!(a.get(&key).await.unwrap(), Bytes::from_static(b"from a"));
}

/// Stamps every case for every backend: `local::round_trip`, `s3::round_trip`, ….
macro_rules! suite {
    ($($case:ident),* $(,)?) => {
        mod local {
            $(
                #[tokio::test]
                async fn $case() {
                    let Some(backend) = super::Local::new() else { return };
                    super::$case(&backend).await;
                }
            )*
        }
        mod s3 {
            $(
                #[tokio::test]
                async fn $case() {
                    let Some(backend) = super::S3::new() else { return };
                    super::$case(&backend).await;
                }
            )*
        }
    };
}

suite!(
    round_trip,
    put_file_multipart,
    missing_is_not_found,
    delete_is_idempotent,
    check_passes,
    prefixes_are_isolated,
);
