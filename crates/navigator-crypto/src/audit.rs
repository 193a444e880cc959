//! The keyed hash chain of the audit log.
//!
//! Row `seq` (starting at 1) stores `prev_hash` (the previous row's hash, or
//! [`GENESIS`] for row 1), the canonical JSON bytes of its entry, and
//!
//! ```text
//! hash = HMAC-SHA256(audit key, "navigator-audit-v1" ‖ seq (i64, 8 bytes big-endian) ‖ prev_hash ‖ canonical entry)
//! ```
//!
//! The chain is keyed: without the audit key nobody can recompute hashes after
//! editing, deleting or inserting rows. Deleting rows from the *end* leaves a
//! valid shorter chain, so the writer also keeps a signed anchor of the head
//! ([`sign_anchor`]) outside the database; the verifier compares it with the
//! chain ([`ChainVerifier::expect_anchor`], [`ChainVerifier::finish`]).
//!
//! The writer computes [`entry_hash`] inside its append transaction;
//! `navigator audit verify` streams rows in `seq` order through a
//! [`ChainVerifier`].

use std::collections::BTreeMap;
use std::fmt;

use aws_lc_rs::hmac;
use serde::Deserialize;
use serde_json::Value;
use zeroize::Zeroizing;

use crate::CryptoError;

/// SHA-256("navigator-audit-genesis-v1"): the `prev_hash` of row 1.
pub const GENESIS: [u8; 32] = [
    0xfc, 0xf3, 0xc8, 0xbe, 0x54, 0xdd, 0x3a, 0xeb, 0x6c, 0xce, 0x3c, 0xd5, 0x16, 0xdf, 0x27, 0x45,
    0xd4, 0x92, 0xa5, 0x38, 0xf8, 0x85, 0x84, 0x12, 0xd7, 0xc8, 0xff, 0x65, 0x33, 0x2d, 0xca, 0xcb,
];

const ENTRY_DOMAIN: &[u8] = b"navigator-audit-v1";
const ANCHOR_DOMAIN: &[u8] = b"navigator-audit-anchor-v1";

/// The secret key of the audit chain (at least 32 bytes). Zeroized on drop;
/// `Debug` is redacted.
#[derive(Clone)]
pub struct AuditKey {
    bytes: Zeroizing<Vec<u8>>,
    hmac: hmac::Key,
}

impl AuditKey {
    /// Minimum key length in bytes.
    pub const MIN_LEN: usize = 32;

    /// Wraps key bytes (taken over and zeroized on drop).
    ///
    /// # Errors
    /// [`CryptoError::InvalidKey`] when shorter than 32 bytes.
    pub fn new(bytes: Vec<u8>) -> Result<Self, CryptoError> {
        let bytes = Zeroizing::new(bytes);
        if bytes.len() < Self::MIN_LEN {
            return Err(CryptoError::InvalidKey(format!(
                "audit key must be at least {} bytes, got {}",
                Self::MIN_LEN,
                bytes.len()
            )));
        }
        let hmac = hmac::Key::new(hmac::HMAC_SHA256, &bytes);
        Ok(Self { bytes, hmac })
    }

    /// A fresh random 32-byte key.
    ///
    /// # Panics
    /// If the system random number generator fails.
    #[must_use]
    pub fn generate() -> Self {
        let mut bytes = Zeroizing::new(vec![0u8; Self::MIN_LEN]);
        crate::random_fill(&mut bytes);
        let hmac = hmac::Key::new(hmac::HMAC_SHA256, &bytes);
        Self { bytes, hmac }
    }

    /// The raw key bytes (for persisting in the keyring file only).
    #[must_use]
    pub fn expose_secret(&self) -> &[u8] {
        &self.bytes
    }
}

impl fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AuditKey([redacted])")
    }
}

/// `HMAC-SHA256(key, "navigator-audit-v1" ‖ seq BE ‖ prev ‖ canonical_entry)`.
#[must_use]
pub fn entry_hash(key: &AuditKey, seq: i64, prev: &[u8; 32], canonical_entry: &[u8]) -> [u8; 32] {
    let mut ctx = hmac::Context::with_key(&key.hmac);
    ctx.update(ENTRY_DOMAIN);
    ctx.update(&seq.to_be_bytes());
    ctx.update(prev);
    ctx.update(canonical_entry);
    tag32(&ctx.sign())
}

fn tag32(tag: &hmac::Tag) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(tag.as_ref());
    out
}

/// Deterministic JSON: object keys sorted (by UTF-8 bytes) at every depth, no
/// whitespace, strings escaped and numbers formatted as `serde_json` does.
///
/// Audit entries must contain only strings, integers, booleans, null, arrays
/// and objects — **no floating-point numbers**: a float's text does not always
/// survive a parse/print round trip, so a stored entry with one could be
/// reported as [`BreakKind::NotCanonical`]. Put fractional values in strings.
#[must_use]
pub fn canonical_json(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => out.extend_from_slice(n.to_string().as_bytes()),
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push(b'{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_string(k, out);
                out.push(b':');
                write_canonical(v, out);
            }
            out.push(b'}');
        }
    }
}

fn write_string(s: &str, out: &mut Vec<u8>) {
    // Serialising a str into a Vec cannot fail.
    serde_json::to_writer(&mut *out, s).expect("serialising a string to memory");
}

/// Whether `bytes` are exactly the canonical form of the JSON they contain.
#[must_use]
pub fn is_canonical(bytes: &[u8]) -> bool {
    serde_json::from_slice::<Value>(bytes).is_ok_and(|v| canonical_json(&v) == bytes)
}

/// One stored audit row, as read back from the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRow {
    pub seq: i64,
    pub prev_hash: [u8; 32],
    pub hash: [u8; 32],
    /// The canonical entry bytes exactly as stored.
    pub entry: Vec<u8>,
}

impl AuditRow {
    /// Builds the row the writer appends after `prev_hash` (the head's hash,
    /// or [`GENESIS`] for seq 1).
    #[must_use]
    pub fn build(key: &AuditKey, seq: i64, prev_hash: [u8; 32], entry: &Value) -> Self {
        let entry = canonical_json(entry);
        let hash = entry_hash(key, seq, &prev_hash, &entry);
        Self {
            seq,
            prev_hash,
            hash,
            entry,
        }
    }
}

/// What is wrong at a broken link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakKind {
    /// `seq` is not the previous seq + 1 (first row not 1): rows deleted or inserted.
    Gap,
    /// The same seq as the previous row.
    Duplicate,
    /// `prev_hash` is not the previous row's hash: reordering, deletion, insertion.
    PrevMismatch,
    /// The stored hash is not the keyed hash of the row: a modified entry or hash,
    /// or a row forged without the key.
    HashMismatch,
    /// The entry bytes are not in canonical JSON form.
    NotCanonical,
    /// The anchored head is beyond the last row, or the row at the anchored seq
    /// has another hash: the tail was truncated or rolled back.
    TailMissing,
}

impl BreakKind {
    fn describe(self) -> &'static str {
        match self {
            Self::Gap => "sequence gap (rows deleted or inserted)",
            Self::Duplicate => "duplicate sequence number",
            Self::PrevMismatch => {
                "previous-hash link does not match (rows reordered, deleted or inserted)"
            }
            Self::HashMismatch => "hash does not match the row (modified or forged)",
            Self::NotCanonical => "entry is not canonical JSON",
            Self::TailMissing => {
                "anchored head missing or different (tail truncated or rolled back)"
            }
        }
    }
}

/// The first broken link of a chain. `seq` is the seq of the offending row;
/// for [`BreakKind::TailMissing`] it is the first missing seq (last row + 1)
/// or the anchored seq whose hash differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Break {
    pub seq: i64,
    pub kind: BreakKind,
}

impl fmt::Display for Break {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "audit chain broken at seq {}: {}",
            self.seq,
            self.kind.describe()
        )
    }
}

impl std::error::Error for Break {}

/// Result of a verified chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    pub entries: u64,
    /// `(seq, hash)` of the last row, `None` for an empty chain.
    pub head: Option<(i64, [u8; 32])>,
}

/// Streaming verifier: push rows in ascending `seq` order, then `finish`.
/// Memory is constant (plus one hash per registered anchor). After the first
/// break every call returns that same break.
pub struct ChainVerifier {
    key: AuditKey,
    last_seq: i64,
    last_hash: [u8; 32],
    entries: u64,
    broken: Option<Break>,
    /// Anchors registered in advance: seq → expected hash.
    anchors: BTreeMap<i64, [u8; 32]>,
}

impl fmt::Debug for ChainVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChainVerifier")
            .field("last_seq", &self.last_seq)
            .field("entries", &self.entries)
            .field("broken", &self.broken)
            .finish_non_exhaustive()
    }
}

impl ChainVerifier {
    #[must_use]
    pub fn new(key: AuditKey) -> Self {
        Self {
            key,
            last_seq: 0,
            last_hash: GENESIS,
            entries: 0,
            broken: None,
            anchors: BTreeMap::new(),
        }
    }

    /// Registers an anchor `(seq, hash)` (from [`verify_anchor`]) before the
    /// rows are pushed, so that an anchor older than the current head can be
    /// checked as its row streams past. An anchor equal to the head can simply
    /// be passed to [`ChainVerifier::finish`].
    ///
    /// Registering an anchor older than the last pushed row is too late to
    /// check it and is reported as a [`BreakKind::TailMissing`] at that seq.
    pub fn expect_anchor(&mut self, seq: i64, hash: [u8; 32]) {
        if self.broken.is_none() {
            let ok = if seq == self.last_seq {
                bool_ct_eq(&hash, &self.last_hash)
            } else {
                seq > self.last_seq
            };
            if !ok {
                self.broken = Some(Break {
                    seq,
                    kind: BreakKind::TailMissing,
                });
            }
        }
        self.anchors.insert(seq, hash);
    }

    fn fail(&mut self, seq: i64, kind: BreakKind) -> Result<(), Break> {
        let b = Break { seq, kind };
        self.broken = Some(b);
        Err(b)
    }

    /// Checks the next row.
    ///
    /// # Errors
    /// The first [`Break`] of the chain.
    pub fn push(&mut self, row: &AuditRow) -> Result<(), Break> {
        if let Some(b) = self.broken {
            return Err(b);
        }
        if self.last_seq > 0 && row.seq == self.last_seq {
            return self.fail(row.seq, BreakKind::Duplicate);
        }
        if Some(row.seq) != self.last_seq.checked_add(1) {
            return self.fail(row.seq, BreakKind::Gap);
        }
        if !bool_ct_eq(&row.prev_hash, &self.last_hash) {
            return self.fail(row.seq, BreakKind::PrevMismatch);
        }
        if !is_canonical(&row.entry) {
            return self.fail(row.seq, BreakKind::NotCanonical);
        }
        let expected = entry_hash(&self.key, row.seq, &row.prev_hash, &row.entry);
        if !bool_ct_eq(&expected, &row.hash) {
            return self.fail(row.seq, BreakKind::HashMismatch);
        }
        if let Some(anchored) = self.anchors.get(&row.seq)
            && !bool_ct_eq(anchored, &row.hash)
        {
            return self.fail(row.seq, BreakKind::TailMissing);
        }
        self.last_seq = row.seq;
        self.last_hash = row.hash;
        self.entries += 1;
        Ok(())
    }

    /// Ends the stream. `expected_head` is the anchored head (from
    /// [`verify_anchor`]): it must be the last row, or an earlier row that was
    /// registered with [`ChainVerifier::expect_anchor`]; an anchor beyond the
    /// last row, with another hash, or older and unregistered (so unverifiable)
    /// is a [`BreakKind::TailMissing`]. `(0, GENESIS)` anchors an empty chain.
    ///
    /// # Errors
    /// The first [`Break`].
    pub fn finish(self, expected_head: Option<(i64, [u8; 32])>) -> Result<Summary, Break> {
        if let Some(b) = self.broken {
            return Err(b);
        }
        let missing = Break {
            seq: self.last_seq + 1,
            kind: BreakKind::TailMissing,
        };
        // Registered anchors beyond the last row.
        if self.anchors.range(self.last_seq + 1..).next().is_some() {
            return Err(missing);
        }
        if let Some((seq, hash)) = expected_head {
            if seq > self.last_seq {
                return Err(missing);
            }
            let matches = if seq == self.last_seq {
                bool_ct_eq(&hash, &self.last_hash)
            } else {
                // Older than the head: verified in `push` only if registered.
                self.anchors.get(&seq).is_some_and(|h| bool_ct_eq(h, &hash))
            };
            if !matches {
                return Err(Break {
                    seq,
                    kind: BreakKind::TailMissing,
                });
            }
        }
        Ok(Summary {
            entries: self.entries,
            head: (self.last_seq > 0).then_some((self.last_seq, self.last_hash)),
        })
    }
}

fn bool_ct_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    crate::constant_time_eq(a, b)
}

/// A signed anchor of the chain head, `{"seq":N,"hash":"<hex>","mac":"<hex>"}`,
/// to be written outside the database (file, object store, log shipper) so
/// that truncating or rolling back the tail of the log is detected.
/// mac = HMAC-SHA256(key, "navigator-audit-anchor-v1" ‖ seq BE ‖ hash).
#[must_use]
pub fn sign_anchor(key: &AuditKey, seq: i64, hash: &[u8; 32]) -> String {
    let mac = tag32(&hmac::sign(&key.hmac, &anchor_input(seq, hash)));
    format!(
        "{{\"seq\":{seq},\"hash\":\"{}\",\"mac\":\"{}\"}}",
        hex::encode(hash),
        hex::encode(mac)
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AnchorDoc {
    seq: i64,
    hash: String,
    mac: String,
}

fn hex32(s: &str, what: &str) -> Result<[u8; 32], CryptoError> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(s, &mut out)
        .map_err(|_| CryptoError::Anchor(format!("{what} must be 64 hex digits")))?;
    Ok(out)
}

/// Parses and authenticates an anchor written by [`sign_anchor`] (surrounding
/// whitespace allowed), returning `(seq, hash)`.
///
/// # Errors
/// [`CryptoError::Anchor`] when malformed, [`CryptoError::Integrity`] when the
/// MAC does not match (edited anchor or another key).
pub fn verify_anchor(key: &AuditKey, anchor: &str) -> Result<(i64, [u8; 32]), CryptoError> {
    let doc: AnchorDoc = serde_json::from_str(anchor.trim()).map_err(|e| {
        CryptoError::Anchor(format!(
            "expected {{\"seq\":N,\"hash\":\"hex\",\"mac\":\"hex\"}} (line {}, column {})",
            e.line(),
            e.column()
        ))
    })?;
    if doc.seq < 0 {
        return Err(CryptoError::Anchor("seq must not be negative".into()));
    }
    let hash = hex32(&doc.hash, "hash")?;
    let mac = hex32(&doc.mac, "mac")?;
    hmac::verify(&key.hmac, &anchor_input(doc.seq, &hash), &mac)
        .map_err(|_| CryptoError::Integrity)?;
    Ok((doc.seq, hash))
}

fn anchor_input(seq: i64, hash: &[u8; 32]) -> Vec<u8> {
    let mut v = Vec::with_capacity(ANCHOR_DOMAIN.len() + 8 + 32);
    v.extend_from_slice(ANCHOR_DOMAIN);
    v.extend_from_slice(&seq.to_be_bytes());
    v.extend_from_slice(hash);
    v
}
