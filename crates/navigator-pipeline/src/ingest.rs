//! Accepting a document: the one path shared by the HTTP upload and `navigator ingest`.
//!
//! The caller has already streamed the body into a local temporary file (enforcing the size limit
//! while streaming) and hashed it. Here the media type is sniffed from the bytes and checked
//! against what the client declared, the original is stored, and the document and its job are
//! created (or the owner's existing duplicate is returned).

use crate::vault::{BlobKind, DocumentBlobs, VaultError};
use navigator_domain::{DocumentId, ErrorCode, JobId, MediaType, OwnerId, Sha256Hex};
use navigator_store::{Created, NewDocument, Store, StoreError};
use std::path::Path;
use time::OffsetDateTime;

/// Longest filename kept (in bytes); longer names are cut at a character boundary.
pub const MAX_FILENAME_BYTES: usize = 255;

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("the document's bytes are not a supported type")]
    UnsupportedMediaType,
    #[error("declared type {declared} does not match the document's bytes ({sniffed})")]
    MediaTypeMismatch {
        declared: MediaType,
        sniffed: String,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Blob(#[from] VaultError),
    #[error("could not read the upload: {0}")]
    Io(String),
}

impl IngestError {
    pub fn code(&self) -> ErrorCode {
        match self {
            IngestError::UnsupportedMediaType => ErrorCode::UnsupportedMediaType,
            IngestError::MediaTypeMismatch { .. } => ErrorCode::MediaTypeMismatch,
            IngestError::Store(e) if e.is_transient() => ErrorCode::ServiceUnavailable,
            IngestError::Store(_) => ErrorCode::Internal,
            IngestError::Blob(_) | IngestError::Io(_) => ErrorCode::ServiceUnavailable,
        }
    }
}

/// An upload staged in a local file.
pub struct Upload<'a> {
    pub owner: OwnerId,
    pub filename: String,
    /// From `content-type` (raw uploads, multipart part type) when it names a specific type.
    pub declared_type: Option<MediaType>,
    pub file: &'a Path,
    pub bytes: u64,
    pub sha256: Sha256Hex,
    pub metadata: serde_json::Value,
    pub idempotency_key: Option<String>,
}

/// Sanitises a client filename for storage and display: path components dropped, control
/// characters removed, length bounded. Empty → "document".
pub fn clean_filename(raw: &str) -> String {
    let base = raw.rsplit(['/', '\\']).next().unwrap_or(raw);
    let mut name: String = base.chars().filter(|c| !c.is_control()).collect();
    name = name.trim().to_owned();
    if name.len() > MAX_FILENAME_BYTES {
        let mut cut = MAX_FILENAME_BYTES;
        while !name.is_char_boundary(cut) {
            cut -= 1;
        }
        name.truncate(cut);
    }
    if name.is_empty() || name == "." || name == ".." {
        "document".to_owned()
    } else {
        name
    }
}

/// Decides the stored media type: sniffed from the bytes; the declared type (content-type, else
/// the filename's extension) must agree. An empty file gets its declared type (or text) so that its
/// job can fail with `empty_document`, the code that tells the client what is wrong.
pub fn decide_media_type(
    bytes: &[u8],
    declared_type: Option<MediaType>,
    filename: &str,
) -> Result<MediaType, IngestError> {
    let declared = declared_type.or_else(|| MediaType::from_extension(filename));
    if bytes.is_empty() {
        return Ok(declared.unwrap_or(MediaType::Text));
    }
    match (navigator_parse::sniff(bytes), declared) {
        (Some(sniffed), Some(declared)) if !sniffed.compatible_with_declared(declared) => {
            Err(IngestError::MediaTypeMismatch {
                declared,
                sniffed: sniffed.as_str().to_owned(),
            })
        }
        (Some(sniffed), _) => Ok(sniffed),
        (None, Some(declared)) => Err(IngestError::MediaTypeMismatch {
            declared,
            sniffed: "unknown".to_owned(),
        }),
        (None, None) => Err(IngestError::UnsupportedMediaType),
    }
}

/// Stores the original (sealed under the document's own data key) and creates the document and
/// its job (or returns the duplicate).
pub async fn accept(
    store: &dyn Store,
    blobs: &DocumentBlobs,
    upload: Upload<'_>,
    now: OffsetDateTime,
) -> Result<Created, IngestError> {
    let path = upload.file.to_owned();
    let content = tokio::fs::read(&path)
        .await
        .map_err(|e| IngestError::Io(e.kind().to_string()))?;
    let filename = clean_filename(&upload.filename);
    let media_type = decide_media_type(&content, upload.declared_type, &filename)?;

    let id = DocumentId::new_v7();
    blobs.put(id, BlobKind::Original, &content).await?;
    drop(content);
    let new = NewDocument {
        id,
        job_id: JobId::new_v7(),
        owner: upload.owner,
        filename,
        media_type,
        bytes: upload.bytes,
        sha256: upload.sha256,
        metadata: upload.metadata,
        idempotency_key: upload.idempotency_key,
    };
    let created = match store.create_document(new, now).await {
        Ok(created) => created,
        Err(e) => {
            let _ = blobs.delete_all(id).await;
            return Err(e.into());
        }
    };
    if created.duplicate {
        // The existing document keeps its own original; this copy is not needed. (Its data key
        // row stays behind: a random key wrapping nothing, holding no content.)
        blobs.delete_all(id).await?;
    }
    Ok(created)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filenames_lose_paths_and_control_characters_and_stay_bounded() {
        assert_eq!(clean_filename("../../etc/passwd"), "passwd");
        assert_eq!(clean_filename("C:\\x\\eoc.pdf"), "eoc.pdf");
        assert_eq!(clean_filename("a\u{0}b\nc.pdf"), "abc.pdf");
        assert_eq!(clean_filename(""), "document");
        assert_eq!(clean_filename(".."), "document");
        assert!(clean_filename(&"é".repeat(300)).len() <= MAX_FILENAME_BYTES);
    }

    #[test]
    fn declared_types_must_agree_with_the_bytes() {
        let pdf = b"%PDF-1.4\n%...";
        assert_eq!(
            decide_media_type(pdf, None, "x.pdf").unwrap(),
            MediaType::Pdf
        );
        assert!(matches!(
            decide_media_type(b"plain words", Some(MediaType::Pdf), "x"),
            Err(IngestError::MediaTypeMismatch { .. })
        ));
        assert!(matches!(
            decide_media_type(b"plain words", None, "policy.pdf"),
            Err(IngestError::MediaTypeMismatch { .. })
        ));
        assert_eq!(
            decide_media_type(b"plain words", Some(MediaType::Markdown), "notes").unwrap(),
            MediaType::Text
        );
        assert!(matches!(
            decide_media_type(&[0x89, b'P', b'N', b'G', 0, 0, 1, 2], None, "scan"),
            Err(IngestError::UnsupportedMediaType)
        ));
        assert_eq!(
            decide_media_type(b"", Some(MediaType::Pdf), "empty.pdf").unwrap(),
            MediaType::Pdf
        );
    }
}
