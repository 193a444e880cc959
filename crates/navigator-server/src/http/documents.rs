//! `/v1/documents`: upload (multipart or raw, streamed to a temporary file with the size limit
//! enforced while streaming), list, get, delete.

use super::AppState;
use super::error::{ApiError, ApiPath, ApiQuery};
use super::principal::Principal;
use super::rate_limit::Limited;
use crate::audit::{Action, RequestMeta};
use axum::Json;
use axum::extract::{FromRequest, Multipart, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use futures::{Stream, StreamExt};
use navigator_domain::{DocumentId, ErrorCode, JobId, MediaType, Sha256Hex};
use navigator_pipeline::ingest::{self, IngestError, Upload};
use navigator_store::{DocumentRecord, JobRecord};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

/// Longest accepted `idempotency-key`.
const MAX_IDEMPOTENCY_KEY: usize = 255;
/// Largest accepted `metadata` JSON part.
const MAX_METADATA_BYTES: usize = 64 * 1024;
pub const DEFAULT_PAGE_SIZE: u32 = 50;
pub const MAX_PAGE_SIZE: u32 = 500;

#[derive(Serialize)]
pub struct UploadResponse {
    pub document_id: DocumentId,
    pub job_id: JobId,
    pub status: navigator_domain::JobStatus,
    pub duplicate: bool,
}

impl From<IngestError> for ApiError {
    fn from(e: IngestError) -> Self {
        let code = e.code();
        let detail = match &e {
            IngestError::Store(_) | IngestError::Blob(_) | IngestError::Io(_) => {
                tracing::warn!(error = %e, "upload could not be stored");
                "the upload could not be stored; retry later".to_owned()
            }
            other => other.to_string(),
        };
        ApiError::new(code, detail)
    }
}

/// A body streamed to a temporary file.
struct Spooled {
    file: tempfile::TempPath,
    bytes: u64,
    sha256: Sha256Hex,
}

async fn spool<S, E>(state: &AppState, mut stream: S) -> Result<Spooled, ApiError>
where
    S: Stream<Item = Result<bytes::Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let limit = state.limits.max_upload_bytes;
    let temp = tempfile::NamedTempFile::new_in(&state.upload_dir)
        .map_err(|_| ApiError::new(ErrorCode::ServiceUnavailable, "no space for uploads"))?
        .into_temp_path();
    let mut file = tokio::fs::File::create(&temp)
        .await
        .map_err(|_| ApiError::new(ErrorCode::ServiceUnavailable, "no space for uploads"))?;
    let mut hasher = Sha256::new();
    let mut bytes: u64 = 0;
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.map_err(|e| ApiError::invalid(format!("could not read the body: {e}")))?;
        bytes += chunk.len() as u64;
        if bytes > limit {
            return Err(too_large(limit));
        }
        hasher.update(&chunk);
        file.write_all(&chunk)
            .await
            .map_err(|_| ApiError::new(ErrorCode::ServiceUnavailable, "no space for uploads"))?;
    }
    file.flush()
        .await
        .map_err(|_| ApiError::new(ErrorCode::ServiceUnavailable, "no space for uploads"))?;
    Ok(Spooled {
        file: temp,
        bytes,
        sha256: Sha256Hex::from_digest(&hasher.finalize()),
    })
}

/// Reads a small multipart part, refusing it as soon as it passes `limit` (never buffering more).
async fn read_small_field(
    mut field: axum::extract::multipart::Field<'_>,
    limit: usize,
) -> Result<Vec<u8>, ApiError> {
    let mut out = Vec::new();
    while let Some(chunk) = field
        .chunk()
        .await
        .map_err(|e| ApiError::invalid(format!("invalid multipart body: {}", e.body_text())))?
    {
        if out.len() + chunk.len() > limit {
            return Err(ApiError::new(
                ErrorCode::PayloadTooLarge,
                format!("the metadata part is larger than {limit} bytes"),
            ));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

fn too_large(limit: u64) -> ApiError {
    ApiError::new(
        ErrorCode::PayloadTooLarge,
        format!("the upload is larger than the limit of {limit} bytes"),
    )
}

/// The declared type from a content-type: `None` for generic types, an error for types we do
/// not accept at all.
fn declared_type(content_type: Option<&str>) -> Result<Option<MediaType>, ApiError> {
    let Some(ct) = content_type.map(str::trim).filter(|c| !c.is_empty()) else {
        return Ok(None);
    };
    let essence = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if essence == "application/octet-stream" {
        return Ok(None);
    }
    MediaType::from_mime(&essence).map(Some).ok_or_else(|| {
        ApiError::new(
            ErrorCode::UnsupportedMediaType,
            "content-type must be multipart/form-data, application/octet-stream, or a supported document type (pdf, docx, html, markdown, text)",
        )
    })
}

pub async fn upload(
    State(state): State<AppState>,
    principal: Principal,
    meta: RequestMeta,
    headers: HeaderMap,
    request: Request,
) -> Result<impl IntoResponse, ApiError> {
    state
        .rate_limits
        .enforce(&principal.actor(), Limited::Upload)?;
    let limit = state.limits.max_upload_bytes;
    if let Some(length) = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        && length > limit.saturating_add(64 * 1024)
    {
        // Refuse before reading a byte. (Multipart framing adds a little, hence the slack; the
        // streaming check below is exact.)
        return Err(too_large(limit));
    }
    let idempotency_key = match headers.get("idempotency-key") {
        None => None,
        Some(v) => {
            let key = v
                .to_str()
                .ok()
                .filter(|k| !k.is_empty() && k.len() <= MAX_IDEMPOTENCY_KEY)
                .ok_or_else(|| {
                    ApiError::invalid(format!(
                        "idempotency-key must be 1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters"
                    ))
                })?;
            Some(key.to_owned())
        }
    };
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let is_multipart = content_type.as_deref().is_some_and(|c| {
        c.trim_start()
            .to_ascii_lowercase()
            .starts_with("multipart/form-data")
    });

    let (spooled, filename, declared, metadata) = if is_multipart {
        let mut multipart = Multipart::from_request(request, &state)
            .await
            .map_err(|e| ApiError::invalid(format!("invalid multipart body: {}", e.body_text())))?;
        let mut file = None;
        let mut metadata = serde_json::Value::Object(Default::default());
        let mut seen_metadata = false;
        while let Some(field) = multipart
            .next_field()
            .await
            .map_err(|e| ApiError::invalid(format!("invalid multipart body: {}", e.body_text())))?
        {
            match field.name() {
                Some("file") if file.is_none() => {
                    let filename = field.file_name().unwrap_or("document").to_owned();
                    let declared = declared_type(field.content_type())?;
                    let spooled =
                        spool(&state, field.map(|r| r.map_err(|e| e.body_text()))).await?;
                    file = Some((spooled, filename, declared));
                }
                Some("metadata") if !seen_metadata => {
                    seen_metadata = true;
                    let text = read_small_field(field, MAX_METADATA_BYTES).await?;
                    metadata = serde_json::from_slice(&text)
                        .ok()
                        .filter(serde_json::Value::is_object)
                        .ok_or_else(|| ApiError::invalid("metadata must be a JSON object"))?;
                }
                Some("metadata") => {
                    return Err(ApiError::invalid("send at most one metadata part"));
                }
                Some("file") => return Err(ApiError::invalid("send exactly one file part")),
                _ => {
                    return Err(ApiError::invalid(
                        "unexpected multipart part; expected file and optional metadata",
                    ));
                }
            }
        }
        let (spooled, filename, declared) =
            file.ok_or_else(|| ApiError::invalid("multipart body has no file part"))?;
        (spooled, filename, declared, metadata)
    } else {
        let declared = declared_type(content_type.as_deref())?;
        let filename = headers
            .get("x-filename")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("document")
            .to_owned();
        let stream = request.into_body().into_data_stream();
        let spooled = spool(&state, stream).await?;
        if spooled.bytes == 0 {
            return Err(ApiError::new(
                ErrorCode::EmptyBody,
                "the request body is empty",
            ));
        }
        (
            spooled,
            filename,
            declared,
            serde_json::Value::Object(Default::default()),
        )
    };

    let created = ingest::accept(
        state.store.as_ref(),
        &state.blobs,
        Upload {
            owner: principal.owner.clone(),
            filename,
            declared_type: declared,
            file: &spooled.file,
            bytes: spooled.bytes,
            sha256: spooled.sha256.clone(),
            metadata,
            idempotency_key,
        },
        state.clock.now(),
    )
    .await?;
    state
        .audit
        .record(meta.event(
            principal.actor(),
            Action::DocumentUpload,
            "document",
            Some(created.document.id.to_string()),
            "success",
            json!({"job_id": created.job.id, "bytes": spooled.bytes, "duplicate": created.duplicate}),
        ))
        .await?;
    if !created.duplicate {
        metrics::counter!("navigator_documents_uploaded_total").increment(1);
        state.wake.notify_one();
    }
    tracing::info!(document_id = %created.document.id, job_id = %created.job.id, bytes = spooled.bytes, duplicate = created.duplicate, "document accepted");
    Ok((
        StatusCode::ACCEPTED,
        Json(UploadResponse {
            document_id: created.document.id,
            job_id: created.job.id,
            status: created.job.status,
            duplicate: created.duplicate,
        }),
    ))
}

#[derive(Deserialize)]
pub struct ListParams {
    pub after: Option<String>,
    pub limit: Option<u32>,
}

#[derive(Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `after` to get the next page; absent on the last page.
    pub next: Option<String>,
}

pub fn page_limit(limit: Option<u32>) -> Result<u32, ApiError> {
    match limit {
        None => Ok(DEFAULT_PAGE_SIZE),
        Some(n) if (1..=MAX_PAGE_SIZE).contains(&n) => Ok(n),
        Some(_) => Err(ApiError::invalid(format!(
            "limit must be between 1 and {MAX_PAGE_SIZE}"
        ))),
    }
}

pub async fn list(
    State(state): State<AppState>,
    principal: Principal,
    meta: RequestMeta,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<Json<Page<DocumentView>>, ApiError> {
    let limit = page_limit(params.limit)?;
    let after = params
        .after
        .as_deref()
        .map(DocumentId::parse)
        .transpose()
        .map_err(|_| ApiError::invalid("after must be a document id"))?;
    let docs = state
        .store
        .list_documents(&principal.content_scope(), after, limit)
        .await?;
    let next = (docs.len() as u32 == limit)
        .then(|| docs.last().map(|d| d.id.to_string()))
        .flatten();
    // The list shows filenames: a read of protected data.
    state
        .audit
        .record(meta.event(
            principal.actor(),
            Action::DocumentList,
            "document",
            None,
            "success",
            json!({"documents": docs.len()}),
        ))
        .await?;
    Ok(Json(Page {
        items: docs.into_iter().map(DocumentView::from).collect(),
        next,
    }))
}

/// A document as the API shows it (the owner is implied by who asks).
#[derive(Serialize)]
pub struct DocumentView {
    pub document_id: DocumentId,
    pub filename: String,
    pub media_type: MediaType,
    pub bytes: u64,
    pub sha256: Sha256Hex,
    pub pages: Option<u32>,
    pub chunks: u32,
    pub status: navigator_store::DocumentStatus,
    pub current_job_id: JobId,
    pub metadata: serde_json::Value,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: time::OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: time::OffsetDateTime,
}

impl From<DocumentRecord> for DocumentView {
    fn from(d: DocumentRecord) -> Self {
        Self {
            document_id: d.id,
            filename: d.filename,
            media_type: d.media_type,
            bytes: d.bytes,
            sha256: d.sha256,
            pages: d.pages,
            chunks: d.chunks,
            status: d.status,
            current_job_id: d.current_job_id,
            metadata: d.metadata,
            created_at: d.created_at,
            updated_at: d.updated_at,
        }
    }
}

fn parse_document_id(raw: &str) -> Result<DocumentId, ApiError> {
    DocumentId::parse(raw).map_err(|_| ApiError::not_found("document"))
}

pub async fn get(
    State(state): State<AppState>,
    principal: Principal,
    meta: RequestMeta,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<DocumentView>, ApiError> {
    let id = parse_document_id(&id)?;
    let doc = state
        .store
        .get_document(&principal.content_scope(), id)
        .await
        .map_err(|e| match e {
            navigator_store::StoreError::NotFound => ApiError::not_found("document"),
            other => other.into(),
        })?;
    state
        .audit
        .record(meta.event(
            principal.actor(),
            Action::DocumentRead,
            "document",
            Some(id.to_string()),
            "success",
            json!({}),
        ))
        .await?;
    Ok(Json(doc.into()))
}

pub async fn delete(
    State(state): State<AppState>,
    principal: Principal,
    meta: RequestMeta,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let id = parse_document_id(&id)?;
    let scope = principal.content_scope();
    // Visible to this principal? (Otherwise 404, and nothing is recorded as deleted.)
    state
        .store
        .get_document(&scope, id)
        .await
        .map_err(|e| match e {
            navigator_store::StoreError::NotFound => ApiError::not_found("document"),
            other => other.into(),
        })?;
    // Recorded before the delete, which destroys the data key for good: an irreversible action
    // is never left without its audit entry.
    state
        .audit
        .record(meta.event(
            principal.actor(),
            Action::DocumentDelete,
            "document",
            Some(id.to_string()),
            "success",
            json!({}),
        ))
        .await?;
    state
        .store
        .delete_document(&scope, id, state.clock.now())
        .await
        .map_err(|e| match e {
            navigator_store::StoreError::NotFound => ApiError::not_found("document"),
            other => other.into(),
        })?;
    // The rows are gone, and with them the document's data key: its blobs are unreadable from
    // now on. Delete them too; a failure leaves ciphertext nobody can open, not a visible
    // document.
    if let Err(e) = state.blobs.delete_all(id).await {
        tracing::warn!(document_id = %id, error = %e, "failed to delete a blob of a deleted document");
    }
    tracing::info!(document_id = %id, "document deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// Shared by jobs views.
pub fn job_view(job: &JobRecord) -> serde_json::Value {
    serde_json::json!({
        "job_id": job.id,
        "document_id": job.document_id,
        "status": job.status,
        "stage": job.stage,
        "attempts": job.attempts,
        "progress": job.progress,
        "error": job.error,
        "run_at": rfc3339(job.run_at),
        "created_at": rfc3339(job.created_at),
        "updated_at": rfc3339(job.updated_at),
        "finished_at": job.finished_at.map(rfc3339),
    })
}

pub fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
