//! Service API keys: `nav_<id>_<secret>`. Only the SHA-256 of the secret is stored; a request
//! names the key by its id and proves the secret, compared in constant time. Revoked and expired
//! keys do not authenticate. The functions here are what `navigator apikey create|list|revoke`
//! call.

use super::Reason;
use anyhow::{Context, bail};
use navigator_domain::OwnerId;
use navigator_store::{ApiKeyRecord, Store};
use rand::RngCore;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

/// Every API key starts with this (so it can never be mistaken for a JWT, whose first segment
/// is base64url of `{`).
pub const PREFIX: &str = "nav_";
/// `last_used_at` is written at most this often per key.
pub const TOUCH_INTERVAL: time::Duration = time::Duration::seconds(60);
const ID_BYTES: usize = 8;
const SECRET_BYTES: usize = 32;
const MAX_ID_LEN: usize = 64;
const MAX_SECRET_LEN: usize = 256;

/// Splits `nav_<id>_<secret>`; `None` when it is not shaped like an API key.
pub fn parse_api_key(token: &str) -> Option<(&str, &str)> {
    let rest = token.strip_prefix(PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    let id_ok =
        !id.is_empty() && id.len() <= MAX_ID_LEN && id.bytes().all(|b| b.is_ascii_alphanumeric());
    let secret_ok = !secret.is_empty()
        && secret.len() <= MAX_SECRET_LEN
        && secret
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    (id_ok && secret_ok).then_some((id, secret))
}

/// SHA-256 of the secret half.
pub fn hash_secret(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    hex::encode(buf)
}

/// Creates a key for `owner` with `roles`. Returns the full key (`nav_<id>_<secret>`), which is
/// shown once and never stored, and the stored record.
pub async fn create_api_key(
    store: &dyn Store,
    owner: OwnerId,
    roles: Vec<String>,
    label: String,
    expires_at: Option<OffsetDateTime>,
    now: OffsetDateTime,
) -> anyhow::Result<(String, ApiKeyRecord)> {
    if roles.iter().any(|r| r.trim().is_empty() || r.len() > 128) {
        bail!("role names must be non-empty and at most 128 characters");
    }
    if expires_at.is_some_and(|e| e <= now) {
        bail!("the expiry must be in the future");
    }
    let id = random_hex(ID_BYTES);
    let secret = random_hex(SECRET_BYTES);
    let record = ApiKeyRecord {
        id: id.clone(),
        owner,
        roles,
        secret_sha256: hash_secret(&secret),
        label,
        created_at: now,
        expires_at,
        revoked_at: None,
        last_used_at: None,
    };
    store
        .create_api_key(&record)
        .await
        .context("could not store the API key")?;
    Ok((format!("{PREFIX}{id}_{secret}"), record))
}

/// Every key, revoked and expired ones included (never their secrets: only hashes are stored).
pub async fn list_api_keys(store: &dyn Store) -> anyhow::Result<Vec<ApiKeyRecord>> {
    store
        .list_api_keys()
        .await
        .context("could not list API keys")
}

/// Revokes key `id`; `false` when there is no such key (or it was already revoked).
pub async fn revoke_api_key(
    store: &dyn Store,
    id: &str,
    now: OffsetDateTime,
) -> anyhow::Result<bool> {
    store
        .revoke_api_key(id, now)
        .await
        .context("could not revoke the API key")
}

/// Authenticates `token` (already known to start with [`PREFIX`]) at `now`.
pub(crate) async fn authenticate(
    store: &dyn Store,
    token: &str,
    now: OffsetDateTime,
) -> Result<ApiKeyRecord, Reason> {
    let (id, secret) = parse_api_key(token).ok_or(Reason::Malformed)?;
    let presented = hash_secret(secret);
    let record = match store.get_api_key(id).await {
        Ok(Some(record)) => record,
        Ok(None) => return Err(Reason::ApiKeyUnknown),
        Err(e) => {
            tracing::warn!(error = %e, "could not look up an API key");
            return Err(Reason::Unavailable);
        }
    };
    if !navigator_crypto::constant_time_eq(&presented, &record.secret_sha256) {
        return Err(Reason::ApiKeySecret);
    }
    if record.revoked_at.is_some() {
        return Err(Reason::ApiKeyRevoked);
    }
    if !record.is_active(now) {
        return Err(Reason::ApiKeyExpired);
    }
    if record
        .last_used_at
        .is_none_or(|last| now - last >= TOUCH_INTERVAL)
        && let Err(e) = store.touch_api_key(&record.id, now).await
    {
        tracing::warn!(error = %e, "could not record an API key's last use");
    }
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_only_well_formed_keys() {
        assert_eq!(parse_api_key("nav_ab12_s3cr3t"), Some(("ab12", "s3cr3t")));
        assert_eq!(parse_api_key("nav_ab12_s3_cr-t"), Some(("ab12", "s3_cr-t")));
        for bad in [
            "nav_",
            "nav__x",
            "nav_ab12_",
            "nav_ab12",
            "xnav_a_b",
            "nav_a.b_c",
            "nav_a_b c",
        ] {
            assert_eq!(parse_api_key(bad), None, "{bad}");
        }
    }

    #[test]
    fn compare_is_exact() {
        let a = hash_secret("one");
        assert!(navigator_crypto::constant_time_eq(&a, &hash_secret("one")));
        assert!(!navigator_crypto::constant_time_eq(&a, &hash_secret("two")));
    }
}
