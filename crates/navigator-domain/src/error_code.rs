//! Stable, machine-readable error codes. These strings are part of the API contract: they appear
//! in problem+json bodies, in a failed job's `error.code`, and as the `code` label of the
//! `navigator_errors_total` metric. Never rename one; add new ones.

use serde::{Deserialize, Serialize};

/// Whether a failure is worth retrying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retryability {
    /// The same input will fail the same way: fail the job at once.
    Permanent,
    /// I/O, database, timeouts, upstream 429/5xx: retry with backoff.
    Transient,
}

macro_rules! error_codes {
    ($( $variant:ident => $text:literal, $retry:ident, $status:literal; )*) => {
        /// Every stable error code Navigator emits.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum ErrorCode { $( $variant, )* }

        impl ErrorCode {
            pub const ALL: &'static [ErrorCode] = &[ $( ErrorCode::$variant, )* ];

            pub fn as_str(self) -> &'static str {
                match self { $( ErrorCode::$variant => $text, )* }
            }

            pub fn retryability(self) -> Retryability {
                match self { $( ErrorCode::$variant => Retryability::$retry, )* }
            }

            /// The HTTP status used when this code is returned by the API.
            pub fn http_status(self) -> u16 {
                match self { $( ErrorCode::$variant => $status, )* }
            }

            pub fn parse(text: &str) -> Option<Self> {
                match text { $( $text => Some(ErrorCode::$variant), )* _ => None }
            }
        }
    };
}

error_codes! {
    // Request errors (API only).
    InvalidRequest => "invalid_request", Permanent, 400;
    EmptyBody => "empty_body", Permanent, 400;
    NotFound => "not_found", Permanent, 404;
    Unauthorized => "unauthorized", Permanent, 401;
    Forbidden => "forbidden", Permanent, 403;
    Conflict => "conflict", Permanent, 409;
    PayloadTooLarge => "payload_too_large", Permanent, 413;
    UnsupportedMediaType => "unsupported_media_type", Permanent, 415;
    MediaTypeMismatch => "media_type_mismatch", Permanent, 415;
    // Too many requests from one principal; the response says when to retry.
    RateLimited => "rate_limited", Transient, 429;
    ServiceUnavailable => "service_unavailable", Transient, 503;
    // Document errors (a job fails with these at once).
    CorruptDocument => "corrupt_document", Permanent, 422;
    EncryptedDocument => "encrypted_document", Permanent, 422;
    EmptyDocument => "empty_document", Permanent, 422;
    NoTextLayer => "no_text_layer", Permanent, 422;
    ParserTimeout => "parser_timeout", Permanent, 422;
    ParserResourceLimit => "parser_resource_limit", Permanent, 422;
    ParserCrashed => "parser_crashed", Permanent, 422;
    InputTooLong => "input_too_long", Permanent, 422;
    // Transient failures (retried with backoff).
    IoError => "io_error", Transient, 503;
    DatabaseError => "database_error", Transient, 503;
    EmbedderError => "embedder_error", Transient, 503;
    LeaseLost => "lease_lost", Transient, 503;
    Timeout => "timeout", Transient, 504;
    // External services (remote embedder, remote parser).
    // 429 from the provider, after the in-call retries.
    UpstreamRateLimited => "upstream_rate_limited", Transient, 503;
    // 5xx, timeouts, refused connections.
    UpstreamUnavailable => "upstream_unavailable", Transient, 502;
    // A 2xx answer that breaks the contract (malformed JSON, wrong vector count or size,
    // non-finite values, indexes out of order): never stored, retried.
    UpstreamBadResponse => "upstream_bad_response", Transient, 502;
    // A 4xx other than 429 (bad key, unknown model, input refused): retrying cannot help.
    UpstreamRejected => "upstream_rejected", Permanent, 502;
    // The circuit breaker is open after sustained failures; no call was made.
    CircuitOpen => "circuit_open", Transient, 503;
    // The remote parser reported that it could not parse the document.
    RemoteParseFailed => "remote_parse_failed", Permanent, 422;
    // The owner's hard budget is spent: new work waits until it is raised.
    BudgetExceeded => "budget_exceeded", Transient, 402;
    // Parser webhooks (API only).
    WebhookSignatureInvalid => "webhook_signature_invalid", Permanent, 401;
    WebhookStale => "webhook_stale", Permanent, 401;
    WebhookReplayed => "webhook_replayed", Permanent, 409;
    // Stored state contradicts itself (an artifact that cannot be read back, vectors of the
    // wrong size, a chunker panic): retrying would fail the same way.
    IntegrityError => "integrity_error", Permanent, 500;
    // Terminal summaries.
    RetriesExhausted => "retries_exhausted", Permanent, 500;
    Internal => "internal", Transient, 500;
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_round_trips_through_its_text_and_matches_its_serde_name() {
        for code in ErrorCode::ALL {
            assert_eq!(ErrorCode::parse(code.as_str()), Some(*code));
            let json = format!("\"{}\"", code.as_str());
            assert_eq!(
                snake_case_of_variant(code),
                json,
                "as_str must equal the snake_case variant name serde uses for {code:?}"
            );
        }
    }

    fn snake_case_of_variant(code: &ErrorCode) -> String {
        let name = format!("{code:?}");
        let mut out = String::from("\"");
        for (i, ch) in name.chars().enumerate() {
            if ch.is_uppercase() {
                if i > 0 {
                    out.push('_');
                }
                out.extend(ch.to_lowercase());
            } else {
                out.push(ch);
            }
        }
        out.push('"');
        out
    }

    #[test]
    fn document_errors_are_permanent_and_infrastructure_errors_transient() {
        assert_eq!(
            ErrorCode::CorruptDocument.retryability(),
            Retryability::Permanent
        );
        assert_eq!(
            ErrorCode::DatabaseError.retryability(),
            Retryability::Transient
        );
        assert_eq!(ErrorCode::PayloadTooLarge.http_status(), 413);
    }
}
