//! The audit trail: who did what to which resource, when, from where, and with what outcome.
//! Every read of document content or search results, every upload, delete and retry, every
//! authentication failure and permission denial, and every key or configuration operation is
//! appended to the hash-chained, HMAC-keyed log in the store.
//!
//! Entries hold ids, actions and outcomes only — never document text, filenames, queries or
//! tokens.

use serde::Serialize;

/// What happened; the `action` strings are part of the audit contract (filters use them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Action {
    #[serde(rename = "document.upload")]
    DocumentUpload,
    #[serde(rename = "document.read")]
    DocumentRead,
    #[serde(rename = "document.list")]
    DocumentList,
    #[serde(rename = "document.delete")]
    DocumentDelete,
    #[serde(rename = "search")]
    Search,
    #[serde(rename = "job.retry")]
    JobRetry,
    #[serde(rename = "auth.failure")]
    AuthFailure,
    #[serde(rename = "auth.denied")]
    PermissionDenied,
    #[serde(rename = "apikey.create")]
    ApiKeyCreate,
    #[serde(rename = "apikey.revoke")]
    ApiKeyRevoke,
    #[serde(rename = "keys.rewrap")]
    KeysRewrap,
    #[serde(rename = "keys.rotate")]
    KeysRotate,
    #[serde(rename = "budget.set")]
    BudgetSet,
    #[serde(rename = "config.load")]
    ConfigLoad,
    #[serde(rename = "audit.read")]
    AuditRead,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::DocumentUpload => "document.upload",
            Action::DocumentRead => "document.read",
            Action::DocumentList => "document.list",
            Action::DocumentDelete => "document.delete",
            Action::Search => "search",
            Action::JobRetry => "job.retry",
            Action::AuthFailure => "auth.failure",
            Action::PermissionDenied => "auth.denied",
            Action::ApiKeyCreate => "apikey.create",
            Action::ApiKeyRevoke => "apikey.revoke",
            Action::KeysRewrap => "keys.rewrap",
            Action::KeysRotate => "keys.rotate",
            Action::BudgetSet => "budget.set",
            Action::ConfigLoad => "config.load",
            Action::AuditRead => "audit.read",
        }
    }
}

/// One event to append. `actor` is the principal's owner id or API key id (never a token);
/// `details` holds ids, counts and codes only.
#[derive(Debug, Clone)]
pub struct AuditEvent {
    pub actor: String,
    pub action: Action,
    pub resource_type: &'static str,
    pub resource_id: Option<String>,
    /// `success`, `denied`, `failure`, or an error code.
    pub outcome: String,
    pub request_id: Option<String>,
    pub source_ip: Option<String>,
    pub details: serde_json::Value,
}

/// Where audit events go. Implemented by [`Auditor`] (the store's hash-chained log).
#[async_trait::async_trait]
pub trait AuditSink: Send + Sync {
    /// Appends `event`, returning its sequence number. An error means it was not recorded:
    /// callers serving protected data fail the request rather than serve it unaudited.
    async fn record(&self, event: AuditEvent) -> Result<i64, navigator_store::StoreError>;

    /// For events whose loss must not fail the caller (a 401 is answered anyway): a failure is
    /// logged and counted.
    async fn record_best_effort(&self, event: AuditEvent) {
        let action = event.action.as_str();
        if let Err(e) = self.record(event).await {
            metrics::counter!("navigator_audit_failures_total").increment(1);
            tracing::error!(action, error = %e, "could not append to the audit log");
        }
    }
}

/// Appends audit events to the store's chain, sealing each with the audit key.
pub struct Auditor {
    store: std::sync::Arc<dyn navigator_store::Store>,
    sealer: Sealer,
    clock: std::sync::Arc<dyn navigator_domain::Clock>,
}

/// Seals entries with HMAC-SHA256 under the audit key (see `navigator_crypto::audit`).
pub struct Sealer(pub navigator_crypto::audit::AuditKey);

impl navigator_store::AuditSealer for Sealer {
    fn seal(&self, seq: i64, prev_hash: &[u8; 32], entry: &[u8]) -> [u8; 32] {
        navigator_crypto::audit::entry_hash(&self.0, seq, prev_hash, entry)
    }
}

impl Auditor {
    pub fn new(
        store: std::sync::Arc<dyn navigator_store::Store>,
        key: navigator_crypto::audit::AuditKey,
        clock: std::sync::Arc<dyn navigator_domain::Clock>,
    ) -> Self {
        Self {
            store,
            sealer: Sealer(key),
            clock,
        }
    }
}

#[async_trait::async_trait]
impl AuditSink for Auditor {
    async fn record(&self, event: AuditEvent) -> Result<i64, navigator_store::StoreError> {
        // Milliseconds, as the store keeps them, so the sealed entry and the `at` column agree.
        let now = self.clock.now();
        let at = now
            .replace_nanosecond(now.millisecond() as u32 * 1_000_000)
            .unwrap_or(now);
        let at_text = at
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        // Integers, strings and ids only (the canonical form has no floats).
        let entry = serde_json::json!({
            "v": 1,
            "at": at_text,
            "actor": event.actor,
            "action": event.action.as_str(),
            "resource": {"type": event.resource_type, "id": event.resource_id},
            "outcome": event.outcome,
            "request_id": event.request_id,
            "source_ip": event.source_ip,
            "details": event.details,
        });
        let record = self
            .store
            .append_audit(
                &navigator_store::NewAuditEntry {
                    at,
                    actor: event.actor,
                    action: event.action.as_str().to_owned(),
                    resource_type: event.resource_type.to_owned(),
                    resource_id: event.resource_id,
                    outcome: event.outcome,
                    request_id: event.request_id,
                    source_ip: event.source_ip,
                    entry: navigator_crypto::audit::canonical_json(&entry),
                },
                &self.sealer,
                &navigator_crypto::audit::GENESIS,
            )
            .await?;
        metrics::counter!("navigator_audit_events_total", "action" => event.action.as_str())
            .increment(1);
        Ok(record.seq)
    }
}

/// Where a request came from, for its audit events: the request id every response carries and
/// the peer address of the connection (never a client-supplied header).
#[derive(Debug, Clone, Default)]
pub struct RequestMeta {
    pub request_id: Option<String>,
    pub source_ip: Option<String>,
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for RequestMeta {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(Self::of(parts))
    }
}

impl RequestMeta {
    pub fn of(parts: &axum::http::request::Parts) -> Self {
        let request_id = parts
            .headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(|v| v.chars().take(64).collect());
        let source_ip = parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|info| info.0.ip().to_string());
        Self {
            request_id,
            source_ip,
        }
    }

    /// An event for `action` on a resource by `actor`, with this request's id and address.
    pub fn event(
        &self,
        actor: impl Into<String>,
        action: Action,
        resource_type: &'static str,
        resource_id: Option<String>,
        outcome: impl Into<String>,
        details: serde_json::Value,
    ) -> AuditEvent {
        AuditEvent {
            actor: actor.into(),
            action,
            resource_type,
            resource_id,
            outcome: outcome.into(),
            request_id: self.request_id.clone(),
            source_ip: self.source_ip.clone(),
            details,
        }
    }
}

/// How the chain broke, in words an operator can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainBroken {
    /// A link of the chain: the first bad sequence number and what is wrong there.
    Link(navigator_crypto::audit::Break),
    /// The query columns of an entry disagree with the sealed entry (edited for filtering).
    Columns { seq: i64 },
    /// The anchor file exists but its MAC does not verify.
    Anchor,
    /// The log has entries but there is no anchor: a cut-off tail could not be detected.
    AnchorMissing,
}

impl std::fmt::Display for ChainBroken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChainBroken::Link(b) => write!(f, "first broken link at seq {} ({:?})", b.seq, b.kind),
            ChainBroken::Columns { seq } => {
                write!(
                    f,
                    "first broken link at seq {seq} (columns differ from the sealed entry)"
                )
            }
            ChainBroken::Anchor => write!(f, "the anchor file's MAC does not verify"),
            ChainBroken::AnchorMissing => write!(
                f,
                "no anchor file: the chain verifies, but a cut-off tail could not be detected"
            ),
        }
    }
}

/// Page size of a verification pass.
const VERIFY_PAGE: u32 = 1000;

/// Verifies the whole chain: every link (sequence, previous hash, keyed hash, canonical form),
/// every entry's query columns against the sealed entry, and — when the anchor file exists —
/// that the anchored head is still there (a truncated tail is detected).
pub async fn verify_chain(
    store: &dyn navigator_store::Store,
    key: navigator_crypto::audit::AuditKey,
    anchor_path: Option<&std::path::Path>,
) -> anyhow::Result<Result<navigator_crypto::audit::Summary, ChainBroken>> {
    use navigator_crypto::audit::{AuditRow, ChainVerifier};
    let mut verifier = ChainVerifier::new(key.clone());
    let mut anchored = false;
    if let Some(path) = anchor_path {
        match read_anchor(&key, path)? {
            AnchorFile::Valid(seq, hash) => {
                verifier.expect_anchor(seq, hash);
                anchored = true;
            }
            AnchorFile::Forged => return Ok(Err(ChainBroken::Anchor)),
            AnchorFile::Missing => {}
        }
    }
    let mut after = 0;
    loop {
        let page = store.audit_chain(after, VERIFY_PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        for record in &page {
            if let Err(b) = verifier.push(&AuditRow {
                seq: record.seq,
                prev_hash: record.prev_hash,
                hash: record.hash,
                entry: record.entry.clone(),
            }) {
                return Ok(Err(ChainBroken::Link(b)));
            }
            if !columns_match(record) {
                return Ok(Err(ChainBroken::Columns { seq: record.seq }));
            }
        }
    }
    let summary = match verifier.finish(None) {
        Ok(summary) => summary,
        Err(b) => return Ok(Err(ChainBroken::Link(b))),
    };
    if anchor_path.is_some() && !anchored && summary.entries > 0 {
        return Ok(Err(ChainBroken::AnchorMissing));
    }
    Ok(Ok(summary))
}

/// What the anchor file holds.
enum AnchorFile {
    Valid(i64, [u8; 32]),
    /// Present, but its MAC does not verify.
    Forged,
    Missing,
}

fn read_anchor(
    key: &navigator_crypto::audit::AuditKey,
    path: &std::path::Path,
) -> anyhow::Result<AnchorFile> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(
            match navigator_crypto::audit::verify_anchor(key, text.trim()) {
                Ok((seq, hash)) => AnchorFile::Valid(seq, hash),
                Err(_) => AnchorFile::Forged,
            },
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(AnchorFile::Missing),
        Err(e) => anyhow::bail!("could not read {}: {e}", path.display()),
    }
}

/// Whether the denormalised query columns say what the sealed entry says.
fn columns_match(record: &navigator_store::AuditRecord) -> bool {
    let Ok(entry) = serde_json::from_slice::<serde_json::Value>(&record.entry) else {
        return false;
    };
    let text = |v: &serde_json::Value| v.as_str().map(str::to_owned);
    text(&entry["actor"]).as_deref() == Some(record.actor.as_str())
        && text(&entry["action"]).as_deref() == Some(record.action.as_str())
        && text(&entry["outcome"]).as_deref() == Some(record.outcome.as_str())
        && text(&entry["resource"]["type"]).as_deref() == Some(record.resource_type.as_str())
        && text(&entry["resource"]["id"]) == record.resource_id
        && text(&entry["request_id"]) == record.request_id
        && text(&entry["source_ip"]) == record.source_ip
        && text(&entry["at"])
            .and_then(|at| {
                time::OffsetDateTime::parse(&at, &time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .is_some_and(|at| at == record.at)
}

/// Moves the anchor file forward to the chain's current head (atomically, mode 0600), so that
/// `navigator audit verify` detects a log whose tail was cut off.
///
/// The anchor only ever moves forward along the same chain: before writing, the entry it names
/// must still be in the log with the anchored hash. If it is not (the tail was cut, or the log
/// rolled back and re-grown), the file is left as it is — it is the evidence — and an error is
/// returned. Returns the head now anchored.
pub async fn write_anchor(
    store: &dyn navigator_store::Store,
    key: &navigator_crypto::audit::AuditKey,
    anchor_path: &std::path::Path,
) -> anyhow::Result<Option<(i64, [u8; 32])>> {
    let mut after = 0;
    match read_anchor(key, anchor_path)? {
        AnchorFile::Valid(seq, hash) => {
            let still_there = store
                .audit_chain(seq - 1, 1)
                .await?
                .first()
                .is_some_and(|r| r.seq == seq && r.hash == hash);
            if !still_there {
                metrics::counter!("navigator_audit_anchor_mismatch_total").increment(1);
                anyhow::bail!(
                    "the anchored audit entry {seq} is gone or changed: the log was truncated or rolled back; run `navigator audit verify`"
                );
            }
            after = seq;
        }
        AnchorFile::Forged => {
            metrics::counter!("navigator_audit_anchor_mismatch_total").increment(1);
            anyhow::bail!(
                "the audit anchor {} does not verify; run `navigator audit verify`",
                anchor_path.display()
            );
        }
        AnchorFile::Missing => {}
    }
    let mut head = None;
    loop {
        let page = store.audit_chain(after, VERIFY_PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        head = Some((last.seq, last.hash));
    }
    let Some((seq, hash)) = head else {
        return Ok(None);
    };
    let text = navigator_crypto::audit::sign_anchor(key, seq, &hash);
    // A name of its own, so two processes anchoring into one directory never share a file.
    let tmp = anchor_path.with_extension(format!(
        "{}.{}.tmp",
        std::process::id(),
        uuid::Uuid::now_v7().simple()
    ));
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
    }
    std::fs::rename(&tmp, anchor_path)?;
    Ok(Some((seq, hash)))
}
