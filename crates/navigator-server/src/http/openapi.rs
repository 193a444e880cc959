//! The OpenAPI 3.1 document, built from [`ROUTES`] — the same table the router is built from
//! (a served route must have an entry, or the router panics at startup), the authorisation
//! middleware enforces (each entry's `permission`), and the route tests walk.

use super::auth::Permission;
use serde_json::{Map, Value, json};

/// One documented route.
pub struct Route {
    pub method: &'static str,
    pub path: &'static str,
    /// What a caller needs; `None` for public routes (probes, build info, this document, and
    /// the HMAC-authenticated parser webhook).
    pub permission: Option<Permission>,
    pub summary: &'static str,
    /// `(status, description)`.
    pub responses: &'static [(&'static str, &'static str)],
}

const fn route(
    method: &'static str,
    path: &'static str,
    permission: Option<Permission>,
    summary: &'static str,
    responses: &'static [(&'static str, &'static str)],
) -> Route {
    Route {
        method,
        path,
        permission,
        summary,
        responses,
    }
}

/// The entry for `method` (lower case) on the route template `path`.
pub fn find(method: &str, path: &str) -> Option<&'static Route> {
    ROUTES.iter().find(|r| r.method == method && r.path == path)
}

/// Every route the server serves, with the permission it requires.
pub const ROUTES: &[Route] = &[
    route(
        "post",
        "/v1/documents",
        Some(Permission::DocumentsWrite),
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
        Some(Permission::DocumentsRead),
        "List your documents (cursor-paginated with ?after=&limit=).",
        &[("200", "{items, next}")],
    ),
    route(
        "get",
        "/v1/documents/{id}",
        Some(Permission::DocumentsRead),
        "One document: filename, media type, bytes, sha256, pages, chunks, status, current job.",
        &[("200", "the document"), ("404", "not_found")],
    ),
    route(
        "delete",
        "/v1/documents/{id}",
        Some(Permission::DocumentsDelete),
        "Delete a document and everything derived from it; cancels its job.",
        &[("204", "deleted"), ("404", "not_found")],
    ),
    route(
        "get",
        "/v1/jobs",
        Some(Permission::JobsRead),
        "List jobs (?status=&after=&limit=).",
        &[("200", "{items, next}"), ("400", "invalid_request")],
    ),
    route(
        "get",
        "/v1/jobs/{id}",
        Some(Permission::JobsRead),
        "One job: status, stage, attempts, progress, error, timestamps.",
        &[("200", "the job"), ("404", "not_found")],
    ),
    route(
        "post",
        "/v1/webhooks/parser/{job_id}",
        None,
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
        Some(Permission::UsageRead),
        "Usage ledger per owner and per document (?from=&to= RFC 3339, default this month; ?owner= for operators): pages, tokens, requests, retries, cost_usd, what caches saved, and the owner's budget standing.",
        &[
            ("200", "{from, to, owners, documents}"),
            ("400", "invalid_request"),
        ],
    ),
    route(
        "get",
        "/v1/budgets/{owner}",
        Some(Permission::UsageRead),
        "An owner's monthly budget (its own, or the configured default).",
        &[
            ("200", "{owner, soft_usd, hard_usd, source}"),
            ("404", "not_found"),
        ],
    ),
    route(
        "put",
        "/v1/budgets/{owner}",
        Some(Permission::BudgetsWrite),
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
        Some(Permission::JobsRetry),
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
        Some(Permission::JobsRead),
        "Server-sent events: each transition as it happens, then the terminal one. Supports Last-Event-ID.",
        &[("200", "text/event-stream"), ("404", "not_found")],
    ),
    route(
        "post",
        "/v1/search",
        Some(Permission::Search),
        "Search your documents: {query, limit?=10, document_ids?, mode?=hybrid|vector|keyword} -> {results: [{chunk_id, document_id, filename, page_start, page_end, section, text, score}]}",
        &[("200", "results, best first"), ("400", "invalid_request")],
    ),
    route(
        "get",
        "/v1/audit",
        Some(Permission::AuditRead),
        "The audit log, oldest first (?after=&limit=&actor=&action=&resource_id=&from=&to=&format=json|jsonl). Reading it is audited.",
        &[
            ("200", "{items, next} (or JSON lines with x-next-after)"),
            ("400", "invalid_request"),
        ],
    ),
    route("get", "/healthz", None, "Liveness.", &[("200", "ok")]),
    route(
        "get",
        "/readyz",
        None,
        "Readiness: database, storage, embedder.",
        &[("200", "ready"), ("503", "not ready")],
    ),
    route(
        "get",
        "/metrics",
        Some(Permission::MetricsRead),
        "Prometheus metrics (series prefixed navigator_).",
        &[("200", "text exposition format")],
    ),
    route(
        "get",
        "/version",
        None,
        "Build info.",
        &[("200", "name, version, embedder, chunker")],
    ),
    route(
        "get",
        "/openapi.json",
        None,
        "This document.",
        &[("200", "OpenAPI 3.1")],
    ),
    route(
        "get",
        "/docs",
        None,
        "A human-readable page of this document.",
        &[("200", "HTML")],
    ),
];

pub fn document() -> Value {
    let mut paths = Map::new();
    for Route {
        method,
        path,
        permission,
        summary,
        responses,
    } in ROUTES
    {
        let mut resp = Map::new();
        for (code, description) in *responses {
            resp.insert((*code).to_owned(), json!({"description": description}));
        }
        if permission.is_some() {
            resp.entry("401")
                .or_insert_with(|| json!({"description": "unauthorized: missing or invalid credentials (with auth.mode jwt)"}));
            resp.entry("403").or_insert_with(
                || json!({"description": "forbidden: the principal lacks the permission"}),
            );
        }
        let entry = paths
            .entry((*path).to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
        let mut op = json!({"summary": summary, "responses": resp});
        match permission {
            Some(p) => {
                op["security"] = json!([{"bearer": []}]);
                op["x-permission"] = json!(p.as_str());
            }
            None => op["security"] = json!([]),
        }
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
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
            "description": "A JWT (HS256, or RS256/ES256/EdDSA from the configured JWKS) or a service API key nav_<id>_<secret>. Not required with auth.mode none."}},
            "schemas": {"Problem": {"type": "object", "required": ["type", "title", "status", "code"],
            "properties": {"type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"},
                           "code": {"type": "string"}, "detail": {"type": "string"}}}}},
    })
}
