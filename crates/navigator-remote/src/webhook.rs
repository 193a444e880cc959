//! The signed parser-webhook protocol.
//!
//! A remote parser calls `POST {public_url}/v1/webhooks/parser/{job_id}` with the result as the
//! raw body and three headers:
//!
//! - [`HEADER_ID`]: a unique delivery id (replay protection: a second delivery with the same id
//!   is refused with 409),
//! - [`HEADER_TIMESTAMP`]: unix seconds when it was signed (refused outside ±[`TOLERANCE`]),
//! - [`HEADER_SIGNATURE`]: `v1=` + hex HMAC-SHA256 over `"{delivery_id}.{timestamp}.{raw body}"`,
//!   keyed with the job's own secret ([`job_secret`]).
//!
//! Signing the delivery id and the timestamp together with the body means none of them can be
//! swapped without the key: in particular a recorded callback cannot be replayed under a fresh
//! delivery id to get past the replay check. A delivery id is 1..=[`MAX_DELIVERY_ID_LEN`]
//! visible ASCII characters other than `.`, so the signed payload splits one way only.
//! The per-job secret is derived from one master secret (`parser.webhook_secret`), so every
//! process can verify any job's callback without storing secrets, and a secret leaked for one
//! job opens no other.

use aws_lc_rs::hmac;
use std::time::Duration;

pub const HEADER_ID: &str = "x-navigator-webhook-id";
pub const HEADER_TIMESTAMP: &str = "x-navigator-webhook-timestamp";
pub const HEADER_SIGNATURE: &str = "x-navigator-webhook-signature";
/// How far a callback's timestamp may be from our clock, either way.
pub const TOLERANCE: Duration = Duration::from_secs(300);
/// Longest delivery id accepted (it is stored). Ids are visible ASCII without `.`.
pub const MAX_DELIVERY_ID_LEN: usize = 128;

const SCHEME: &str = "v1=";

/// The secret for one job's callbacks: hex HMAC-SHA256(master, "navigator-webhook:{job_id}").
pub fn job_secret(master: &[u8], job_id: &str) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, master);
    let tag = hmac::sign(&key, format!("navigator-webhook:{job_id}").as_bytes());
    hex::encode(tag.as_ref())
}

/// The [`HEADER_SIGNATURE`] value for `body` sent as delivery `delivery_id`, signed at
/// `timestamp` (unix seconds).
pub fn sign(secret: &str, delivery_id: &str, timestamp: i64, body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let tag = hmac::sign(&key, &signed_payload(delivery_id, timestamp, body));
    format!("{SCHEME}{}", hex::encode(tag.as_ref()))
}

/// `"{delivery_id}.{timestamp}.{raw body}"`.
fn signed_payload(delivery_id: &str, timestamp: i64, body: &[u8]) -> Vec<u8> {
    let mut payload = format!("{delivery_id}.{timestamp}.").into_bytes();
    payload.extend_from_slice(body);
    payload
}

/// Why a callback was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    /// A header is missing or unreadable, or the signature does not match.
    #[error("webhook signature missing or invalid")]
    Forged,
    /// The timestamp is outside the tolerance (a captured callback replayed later).
    #[error("webhook timestamp outside the accepted window")]
    Stale,
}

/// The three headers of a callback, as received (any may be missing).
#[derive(Debug, Clone, Copy, Default)]
pub struct Received<'a> {
    pub delivery_id: Option<&'a str>,
    pub timestamp: Option<&'a str>,
    pub signature: Option<&'a str>,
}

/// Checks a callback's signature (constant-time; it covers the delivery id, the timestamp and
/// the body) and then its timestamp against `now_unix`. Returns the delivery id for the replay
/// check. The signature is checked first, so an attacker
/// learns nothing about the clock window without the key.
pub fn verify<'a>(
    secret: &str,
    received: Received<'a>,
    body: &[u8],
    now_unix: i64,
) -> Result<&'a str, WebhookError> {
    let delivery_id = received
        .delivery_id
        .filter(|id| !id.is_empty() && id.len() <= MAX_DELIVERY_ID_LEN)
        .filter(|id| id.bytes().all(|b| b.is_ascii_graphic() && b != b'.'))
        .ok_or(WebhookError::Forged)?;
    let timestamp: i64 = received
        .timestamp
        .and_then(|t| t.trim().parse().ok())
        .ok_or(WebhookError::Forged)?;
    let tag = received
        .signature
        .and_then(|s| s.trim().strip_prefix(SCHEME))
        .and_then(|h| hex::decode(h).ok())
        .ok_or(WebhookError::Forged)?;
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    hmac::verify(&key, &signed_payload(delivery_id, timestamp, body), &tag)
        .map_err(|_| WebhookError::Forged)?;
    if now_unix.abs_diff(timestamp) > TOLERANCE.as_secs() {
        return Err(WebhookError::Stale);
    }
    Ok(delivery_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    fn received<'a>(id: &'a str, ts: &'a str, sig: &'a str) -> Received<'a> {
        Received {
            delivery_id: Some(id),
            timestamp: Some(ts),
            signature: Some(sig),
        }
    }

    #[test]
    fn a_signed_fresh_callback_verifies_and_returns_its_delivery_id() {
        let secret = job_secret(b"master-secret-of-at-least-32-bytes!!", "job-1");
        let body = br#"{"id":"p1","status":"SUCCESS"}"#;
        let sig = sign(&secret, "d1", NOW, body);
        let ts = NOW.to_string();
        assert_eq!(
            verify(&secret, received("d1", &ts, &sig), body, NOW + 10),
            Ok("d1")
        );
    }

    #[test]
    fn tampering_with_body_timestamp_key_or_job_is_forgery() {
        let master = b"master-secret-of-at-least-32-bytes!!";
        let secret = job_secret(master, "job-1");
        let body = b"{}";
        let sig = sign(&secret, "d", NOW, body);
        let ts = NOW.to_string();
        let later = (NOW + 1).to_string();
        let other_job = job_secret(master, "job-2");
        assert_eq!(
            verify(&secret, received("d", &ts, &sig), b"{ }", NOW),
            Err(WebhookError::Forged)
        );
        assert_eq!(
            verify(&secret, received("d", &later, &sig), body, NOW),
            Err(WebhookError::Forged)
        );
        assert_eq!(
            verify(&other_job, received("d", &ts, &sig), body, NOW),
            Err(WebhookError::Forged)
        );
        assert_eq!(
            verify(&secret, received("d", &ts, "v1=zz"), body, NOW),
            Err(WebhookError::Forged)
        );
        assert_eq!(
            verify(&secret, received("d", &ts, &sig[3..]), body, NOW),
            Err(WebhookError::Forged)
        );
        assert_eq!(
            verify(&secret, Received::default(), body, NOW),
            Err(WebhookError::Forged)
        );
        assert_eq!(
            verify(&secret, received("d", &ts, &sig), body, NOW),
            Ok("d"),
            "the untampered callback verifies"
        );
        let long_id = "x".repeat(MAX_DELIVERY_ID_LEN + 1);
        assert_eq!(
            verify(&secret, received(&long_id, &ts, &sig), body, NOW),
            Err(WebhookError::Forged)
        );
    }

    #[test]
    fn a_recorded_callback_replayed_under_a_fresh_delivery_id_is_forgery() {
        let secret = job_secret(b"master-secret-of-at-least-32-bytes!!", "job-1");
        let body = br#"{"id":"p1","status":"SUCCESS"}"#;
        let sig = sign(&secret, "delivery-1", NOW, body);
        let ts = NOW.to_string();
        assert_eq!(
            verify(&secret, received("delivery-1", &ts, &sig), body, NOW),
            Ok("delivery-1")
        );
        for fresh in ["delivery-2", "delivery-1 ", "delivery-", "Delivery-1"] {
            assert_eq!(
                verify(&secret, received(fresh, &ts, &sig), body, NOW),
                Err(WebhookError::Forged),
                "{fresh:?}"
            );
        }
    }

    #[test]
    fn ids_with_a_dot_are_refused_so_the_signed_payload_is_unambiguous() {
        // id "a.1", ts 2, body "x" and id "a", ts 1, body "2.x" would sign the same bytes.
        let secret = job_secret(b"k", "job");
        let sig = sign(&secret, "a.1", NOW, b"{}");
        let ts = NOW.to_string();
        assert_eq!(
            verify(&secret, received("a.1", &ts, &sig), b"{}", NOW),
            Err(WebhookError::Forged)
        );
    }

    #[test]
    fn the_signature_covers_id_timestamp_and_body_in_that_layout() {
        let key = hmac::Key::new(hmac::HMAC_SHA256, b"s");
        let expected = hmac::sign(&key, b"d-1.1800000000.{}");
        assert_eq!(
            sign("s", "d-1", NOW, b"{}"),
            format!("v1={}", hex::encode(expected.as_ref()))
        );
    }

    #[test]
    fn a_correctly_signed_but_old_or_future_callback_is_stale() {
        let secret = job_secret(b"k", "job");
        for skew in [
            -(TOLERANCE.as_secs() as i64) - 1,
            TOLERANCE.as_secs() as i64 + 1,
        ] {
            let ts = NOW + skew;
            let sig = sign(&secret, "d", ts, b"{}");
            let ts = ts.to_string();
            assert_eq!(
                verify(&secret, received("d", &ts, &sig), b"{}", NOW),
                Err(WebhookError::Stale)
            );
        }
    }
}
