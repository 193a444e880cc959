//! API errors as RFC 9457 problem+json with a stable `code`. Details are content-free: they may
//! name a field or a limit, never echo document text, filenames or tokens.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use navigator_domain::ErrorCode;
use serde::Serialize;

#[derive(Debug)]
pub struct ApiError {
    pub code: ErrorCode,
    pub detail: String,
    /// Extra response headers (`Retry-After`, `WWW-Authenticate`).
    pub headers: Vec<(axum::http::HeaderName, HeaderValue)>,
}

impl ApiError {
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> Self {
        Self {
            code,
            detail: detail.into(),
            headers: Vec::new(),
        }
    }

    /// Adds a response header.
    pub fn with_header(mut self, name: axum::http::HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    /// Adds `Retry-After: secs`.
    pub fn retry_after(self, secs: u64) -> Self {
        self.with_header(header::RETRY_AFTER, HeaderValue::from(secs))
    }

    pub fn invalid(detail: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidRequest, detail)
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(ErrorCode::NotFound, format!("{what} not found"))
    }
}

#[derive(Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: String,
    title: &'a str,
    status: u16,
    code: &'a str,
    detail: &'a str,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.code.http_status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        metrics::counter!("navigator_api_errors_total", "code" => self.code.as_str()).increment(1);
        let body = Problem {
            kind: format!("https://navigator.dev/problems/{}", self.code.as_str()),
            title: status.canonical_reason().unwrap_or("error"),
            status: status.as_u16(),
            code: self.code.as_str(),
            detail: &self.detail,
        };
        let mut response = (status, axum::Json(body)).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        for (name, value) in self.headers {
            response.headers_mut().insert(name, value);
        }
        response
    }
}

impl From<navigator_store::StoreError> for ApiError {
    fn from(e: navigator_store::StoreError) -> Self {
        use navigator_store::StoreError as E;
        match e {
            E::NotFound => ApiError::not_found("resource"),
            E::StaleState { .. } | E::Illegal { .. } | E::Conflict(_) => ApiError::new(
                ErrorCode::Conflict,
                "the resource is not in a state that allows this",
            ),
            E::Database(_) => {
                tracing::warn!(error = %e, "database error while serving a request");
                ApiError::new(
                    ErrorCode::ServiceUnavailable,
                    "the database is unavailable; retry later",
                )
            }
            E::CorruptRow(_) => {
                tracing::error!(error = %e, "corrupt row");
                ApiError::new(ErrorCode::Internal, "internal error")
            }
        }
    }
}

/// JSON body extractor whose rejections are problem+json `invalid_request`.
pub struct ApiJson<T>(pub T);

impl<S, T> axum::extract::FromRequest<S> for ApiJson<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(ApiJson(v)),
            Err(rejection) => Err(ApiError::invalid(format!(
                "invalid JSON body: {}",
                rejection.body_text().chars().take(200).collect::<String>()
            ))),
        }
    }
}

/// Path parameter extractor whose rejections are problem+json.
pub struct ApiPath<T>(pub T);

impl<S, T> axum::extract::FromRequestParts<S> for ApiPath<T>
where
    T: serde::de::DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(ApiPath(v)),
            Err(_) => Err(ApiError::not_found("resource")),
        }
    }
}

/// A timestamp query parameter (`?from=`, `?to=`): RFC 3339, or `invalid_request` naming `key`.
pub fn timestamp_param(
    key: &str,
    raw: Option<&str>,
) -> Result<Option<time::OffsetDateTime>, ApiError> {
    raw.map(|raw| {
        time::OffsetDateTime::parse(raw, &time::format_description::well_known::Rfc3339)
            .map_err(|_| ApiError::invalid(format!("{key} must be an RFC 3339 timestamp")))
    })
    .transpose()
}

/// Query-string extractor whose rejections are problem+json.
pub struct ApiQuery<T>(pub T);

impl<S, T> axum::extract::FromRequestParts<S> for ApiQuery<T>
where
    T: serde::de::DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(ApiQuery(v)),
            Err(rejection) => Err(ApiError::invalid(rejection.body_text())),
        }
    }
}
