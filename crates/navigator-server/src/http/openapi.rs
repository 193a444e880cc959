//! The OpenAPI 3.1 document, built from [`ROUTES`] — the same table the route test walks, so a
//! documented route that is not served fails a test.

use serde_json::{Map, Value, json};

/// One documented route.
pub struct Route {
    pub method: &'static str,
    pub path: &'static str,
    pub summary: &'static str,
    /// `(status, description)`.
    pub responses: &'static [(&'static str, &'static str)],
}

const fn route(
    method: &'static str,
    path: &'static str,
    summary: &'static str,
    responses: &'static [(&'static str, &'static str)],
) -> Route {
    Route {
        method,
        path,
        summary,
        responses,
    }
}

/// Every public route.
pub const ROUTES: &[Route] = &[
    route(
        "post",
        "/v1/documents",
        "Upload a document: multipart/form-data (file, optional metadata JSON object) or a raw body with content-type and x-filename; optional idempotency-key. The type is sniffed from the bytes.",
        &[
            ("202", "accepted: {document_id, job_id, status, duplicate}"),
            ("400", "invalid_request / empty_body"),
            ("413", "payload_too_large"),
            ("415", "unsupported_media_type / media_type_mismatch"),
        ],
    ),
    route(
        "get",
        "/v1/documents",
        "List your documents (cursor-paginated with ?after=&limit=).",
        &[("200", "{items, next}")],
    ),
    route(
        "get",
        "/v1/documents/{id}",
        "One document: filename, media type, bytes, sha256, pages, chunks, status, current job.",
        &[("200", "the document"), ("404", "not_found")],
    ),
    route(
        "delete",
        "/v1/documents/{id}",
        "Delete a document and everything derived from it; cancels its job.",
        &[("204", "deleted"), ("404", "not_found")],
    ),
    route(
        "get",
        "/v1/jobs",
        "List jobs (?status=&after=&limit=).",
        &[("200", "{items, next}"), ("400", "invalid_request")],
    ),
    route(
        "get",
        "/v1/jobs/{id}",
        "One job: status, stage, attempts, progress, error, timestamps.",
        &[("200", "the job"), ("404", "not_found")],
    ),
    route(
        "post",
        "/v1/webhooks/parser/{job_id}",
        "Remote parser callback: the result as the raw body, signed with HMAC-SHA256 over \"{timestamp}.{body}\" with the job's secret (headers x-navigator-webhook-id, -timestamp, -signature: v1=hex). Timestamps must be within 300 s; a delivery id is accepted once.",
        &[
            ("200", "{status: accepted | already_processed, job_id}"),
            ("400", "invalid_request: the body breaks the contract"),
            ("401", "webhook_signature_invalid / webhook_stale"),
            ("404", "not_found: no remote parse awaits this job"),
            ("409", "webhook_replayed"),
        ],
    ),
    route(
        "get",
        "/v1/usage",
        "Usage ledger per owner and per document (?from=&to= RFC 3339, default this month; ?owner= for operators): pages, tokens, requests, retries, cost_usd, what caches saved, and the owner's budget standing.",
        &[
            ("200", "{from, to, owners, documents}"),
            ("400", "invalid_request"),
        ],
    ),
    route(
        "get",
        "/v1/budgets/{owner}",
        "An owner's monthly budget (its own, or the configured default).",
        &[
            ("200", "{owner, soft_usd, hard_usd, source}"),
            ("404", "not_found"),
        ],
    ),
    route(
        "put",
        "/v1/budgets/{owner}",
        "Set an owner's monthly budget {soft_usd?, hard_usd?}; work waiting on the hard budget resumes when it no longer binds.",
        &[
            ("200", "the budget"),
            ("400", "invalid_request"),
            ("403", "forbidden"),
        ],
    ),
    route(
        "post",
        "/v1/jobs/{id}/retry",
        "Re-queue a failed job at the stage it failed in.",
        &[
            ("202", "the re-queued job"),
            ("404", "not_found"),
            ("409", "conflict: the job is not failed"),
        ],
    ),
    route(
        "get",
        "/v1/jobs/{id}/events",
        "Server-sent events: each transition as it happens, then the terminal one. Supports Last-Event-ID.",
        &[("200", "text/event-stream"), ("404", "not_found")],
    ),
    route(
        "post",
        "/v1/search",
        "Search your documents: {query, limit?=10, document_ids?, mode?=hybrid|vector|keyword} -> {results: [{chunk_id, document_id, filename, page_start, page_end, section, text, score}]}",
        &[("200", "results, best first"), ("400", "invalid_request")],
    ),
    route("get", "/healthz", "Liveness.", &[("200", "ok")]),
    route(
        "get",
        "/readyz",
        "Readiness: database, storage, embedder.",
        &[("200", "ready"), ("503", "not ready")],
    ),
    route(
        "get",
        "/metrics",
        "Prometheus metrics (series prefixed navigator_).",
        &[("200", "text exposition format")],
    ),
    route(
        "get",
        "/version",
        "Build info.",
        &[("200", "name, version, embedder, chunker")],
    ),
    route(
        "get",
        "/openapi.json",
        "This document.",
        &[("200", "OpenAPI 3.1")],
    ),
    route(
        "get",
        "/docs",
        "A human-readable page of this document.",
        &[("200", "HTML")],
    ),
];

pub fn document() -> Value {
    let mut paths = Map::new();
    for Route {
        method,
        path,
        summary,
        responses,
    } in ROUTES
    {
        let mut resp = Map::new();
        for (code, description) in *responses {
            resp.insert((*code).to_owned(), json!({"description": description}));
        }
        let entry = paths
            .entry((*path).to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
        let mut op = json!({"summary": summary, "responses": resp});
        if path.contains("{id}") {
            op["parameters"] = json!([{"name": "id", "in": "path", "required": true, "schema": {"type": "string", "format": "uuid"}}]);
        }
        entry[*method] = op;
    }
    json!({
        "openapi": "3.1.0",
        "info": {"title": "Navigator", "version": env!("CARGO_PKG_VERSION"),
                 "description": "Document pipeline for health and insurance documents: upload, follow the job, search cited passages."},
        "paths": paths,
        "components": {"schemas": {"Problem": {"type": "object", "required": ["type", "title", "status", "code"],
            "properties": {"type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"},
                           "code": {"type": "string"}, "detail": {"type": "string"}}}}},
    })
}
