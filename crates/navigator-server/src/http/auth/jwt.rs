//! Bearer JWT verification (SD-001, REQ-JWT-01…08).
//!
//! Every token goes through two independent layers:
//!
//! 1. Our own strict pre-parse: size cap before anything else, exactly three segments (JWS
//!    compact serialisation), strict unpadded base64url, a header with typed fields (duplicate
//!    `alg`/`kid` rejected, `crit` and `b64` refused, `jku`/`x5u`/`jwk`/`x5c` never read), an
//!    algorithm from the allow-list, and the verifying key chosen by *us*: the HS256 secret for
//!    HS256, a JWKS key (by `kid`, used only as a map key) whose type fixes RS256, ES256 or EdDSA.
//!    An RSA/EC/OKP key can never become an HMAC secret, and a JWKS never supplies symmetric keys.
//! 2. `jsonwebtoken` (aws-lc-rs backend) verifies the signature and the registered claims with an
//!    explicit [`Validation`]: one algorithm, required `exp`/`iat`/`sub`/`iss`/`aud`,
//!    `validate_nbf`, the configured leeway, issuer and audience.
//!
//! Then the payload is decoded again into [`Claims`] with strict types (a string `exp`, a float
//! `nbf`, a string `roles` are rejections), and `iat` in the future, the lifetime cap and a usable
//! `sub` are checked. Nothing here logs or returns the token.

use super::Reason;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A JWKS response larger than this is refused.
pub const MAX_JWKS_BYTES: usize = 256 * 1024;
/// Keys beyond this many in one JWKS are ignored.
pub const MAX_JWKS_KEYS: usize = 32;
/// A `kid` longer than this cannot name a key (and never triggers a JWKS fetch).
pub const MAX_KID_LEN: usize = 256;
/// A token naming more roles than this is refused.
pub const MAX_ROLES: usize = 64;
const JWKS_TIMEOUT: Duration = Duration::from_secs(5);

/// The algorithms this build verifies. `none` and everything else are never accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alg {
    Hs256,
    Rs256,
    Es256,
    EdDsa,
}

impl Alg {
    /// Exact, case-sensitive (`"none"`, `"None"`, `"HS512"` … are not algorithms here).
    pub fn parse(name: &str) -> Option<Alg> {
        match name {
            "HS256" => Some(Alg::Hs256),
            "RS256" => Some(Alg::Rs256),
            "ES256" => Some(Alg::Es256),
            "EdDSA" => Some(Alg::EdDsa),
            _ => None,
        }
    }

    fn jsonwebtoken(self) -> Algorithm {
        match self {
            Alg::Hs256 => Algorithm::HS256,
            Alg::Rs256 => Algorithm::RS256,
            Alg::Es256 => Algorithm::ES256,
            Alg::EdDsa => Algorithm::EdDSA,
        }
    }
}

/// What the verifier needs from `auth.jwt`.
#[derive(Debug, Clone)]
pub struct JwtSettings {
    pub issuer: String,
    pub audience: String,
    pub algorithms: Vec<Alg>,
    pub leeway_secs: u64,
    pub max_lifetime_secs: u64,
    pub max_token_bytes: usize,
    pub jwks_cache: Duration,
    pub jwks_min_refresh: Duration,
}

/// Where JWKS keys come from.
#[derive(Debug, Clone)]
pub enum JwksSource {
    Url(String),
    File(PathBuf),
}

/// The claims of an accepted token.
#[derive(Debug, Clone)]
pub struct Verified {
    pub sub: String,
    pub roles: Vec<String>,
}

/// Verifies bearer JWTs.
pub struct JwtVerifier {
    settings: JwtSettings,
    hmac: Option<DecodingKey>,
    jwks: Option<Jwks>,
}

impl JwtVerifier {
    /// Builds the verifier. A `jwks_file` is read now (a broken file is a startup error); a
    /// `jwks_url` is fetched on first use.
    pub fn new(
        settings: JwtSettings,
        hs256_secret: Option<&[u8]>,
        jwks: Option<JwksSource>,
    ) -> anyhow::Result<JwtVerifier> {
        let jwks = match jwks {
            None => None,
            Some(source) => {
                let client = reqwest::Client::builder()
                    .redirect(reqwest::redirect::Policy::none())
                    .timeout(JWKS_TIMEOUT)
                    .connect_timeout(JWKS_TIMEOUT)
                    .build()?;
                let jwks = Jwks {
                    source,
                    client,
                    keys: RwLock::new(Arc::new(Vec::new())),
                    times: Mutex::new(Times::default()),
                    fetching: tokio::sync::Mutex::new(()),
                };
                if let JwksSource::File(path) = &jwks.source {
                    let bytes = std::fs::read(path).map_err(|e| {
                        anyhow::anyhow!("auth.jwt.jwks_file: cannot read {}: {e}", path.display())
                    })?;
                    let keys = parse_jwks(&bytes)
                        .map_err(|e| anyhow::anyhow!("auth.jwt.jwks_file: {e}"))?;
                    jwks.install(keys, Instant::now());
                }
                Some(jwks)
            }
        };
        Ok(JwtVerifier {
            settings,
            hmac: hs256_secret.map(DecodingKey::from_secret),
            jwks,
        })
    }

    pub fn settings(&self) -> &JwtSettings {
        &self.settings
    }

    /// Verifies `token` (the part after `Bearer `).
    pub async fn verify(&self, token: &str) -> Result<Verified, Reason> {
        if token.len() > self.settings.max_token_bytes {
            return Err(Reason::TooLarge);
        }
        let mut parts = token.split('.');
        let (Some(h64), Some(p64), Some(s64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(Reason::Malformed);
        };
        let header_bytes = b64(h64)?;
        let payload_bytes = b64(p64)?;
        let signature = b64(s64)?;
        if signature.is_empty() {
            return Err(Reason::Signature);
        }
        let header: Header =
            serde_json::from_slice(&header_bytes).map_err(|_| Reason::Malformed)?;
        // Extensions we would have to understand; b64=false changes what is signed.
        if header.crit.is_some() || header.b64.is_some() {
            return Err(Reason::Header);
        }
        if let Some(typ) = &header.typ
            && !(typ.eq_ignore_ascii_case("JWT") || typ.eq_ignore_ascii_case("at+jwt"))
        {
            return Err(Reason::Header);
        }
        let alg = Alg::parse(&header.alg).ok_or(Reason::Algorithm)?;
        if !self.settings.algorithms.contains(&alg) {
            return Err(Reason::Algorithm);
        }
        let key = self.key_for(alg, header.kid.as_deref()).await?;

        // Signature and registered claims, by the library, with nothing left to its defaults.
        let mut validation = Validation::new(alg.jsonwebtoken());
        validation.algorithms = vec![alg.jsonwebtoken()];
        validation.set_required_spec_claims(&["exp", "iat", "sub", "iss", "aud"]);
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.validate_aud = true;
        validation.leeway = self.settings.leeway_secs;
        validation.reject_tokens_expiring_in_less_than = 0;
        validation.set_issuer(&[&self.settings.issuer]);
        validation.set_audience(&[&self.settings.audience]);
        if let Err(e) = jsonwebtoken::decode::<serde_json::Value>(token, &key, &validation) {
            return Err(match e.kind() {
                ErrorKind::InvalidSignature => Reason::Signature,
                ErrorKind::ExpiredSignature => Reason::Expired,
                ErrorKind::ImmatureSignature => Reason::NotYetValid,
                ErrorKind::InvalidIssuer => Reason::Issuer,
                ErrorKind::InvalidAudience => Reason::Audience,
                ErrorKind::MissingRequiredClaim(_) | ErrorKind::InvalidClaimFormat(_) => {
                    Reason::Claims
                }
                ErrorKind::InvalidAlgorithm
                | ErrorKind::InvalidAlgorithmName
                | ErrorKind::MissingAlgorithm
                | ErrorKind::UnsupportedAlgorithm => Reason::Algorithm,
                ErrorKind::InvalidEcdsaKey
                | ErrorKind::InvalidEddsaKey
                | ErrorKind::InvalidRsaKey(_)
                | ErrorKind::InvalidKeyFormat => Reason::Key,
                _ => Reason::Malformed,
            });
        }

        // Our own strict reading of the (now authenticated) payload.
        let claims: Claims = serde_json::from_slice(&payload_bytes).map_err(|_| Reason::Claims)?;
        self.check_claims(claims, unix_now())
    }

    fn check_claims(&self, claims: Claims, now: i64) -> Result<Verified, Reason> {
        let s = &self.settings;
        let leeway = i64::try_from(s.leeway_secs).unwrap_or(i64::MAX);
        if claims.iss != s.issuer {
            return Err(Reason::Issuer);
        }
        let audience_ok = match &claims.aud {
            Audience::One(a) => *a == s.audience,
            Audience::Many(list) => list.contains(&s.audience),
        };
        if !audience_ok {
            return Err(Reason::Audience);
        }
        if claims.exp.saturating_add(leeway) < now {
            return Err(Reason::Expired);
        }
        if let Some(nbf) = claims.nbf
            && nbf > now.saturating_add(leeway)
        {
            return Err(Reason::NotYetValid);
        }
        if claims.iat > now.saturating_add(leeway) {
            return Err(Reason::IssuedInFuture);
        }
        let lifetime = claims.exp.saturating_sub(claims.iat);
        if lifetime < 0 || lifetime as u64 > s.max_lifetime_secs {
            return Err(Reason::Lifetime);
        }
        if claims.sub.is_empty() || navigator_domain::OwnerId::parse(&claims.sub).is_err() {
            return Err(Reason::Subject);
        }
        let roles = claims.roles.unwrap_or_default();
        if roles.len() > MAX_ROLES || roles.iter().any(|r| r.is_empty() || r.len() > 128) {
            return Err(Reason::Claims);
        }
        Ok(Verified {
            sub: claims.sub,
            roles,
        })
    }

    async fn key_for(&self, alg: Alg, kid: Option<&str>) -> Result<DecodingKey, Reason> {
        if alg == Alg::Hs256 {
            // Only the configured secret; a JWKS never supplies HMAC keys.
            return self.hmac.clone().ok_or(Reason::UnknownKey);
        }
        let jwks = self.jwks.as_ref().ok_or(Reason::UnknownKey)?;
        if kid.is_some_and(|k| k.is_empty() || k.len() > MAX_KID_LEN) {
            return Err(Reason::UnknownKey);
        }
        jwks.refresh_if_stale(self.settings.jwks_cache, self.settings.jwks_min_refresh)
            .await;
        match jwks.lookup(alg, kid) {
            Lookup::Found(key) => return Ok(key),
            Lookup::WrongType => return Err(Reason::Algorithm),
            Lookup::Missing => {}
        }
        // An unknown kid may mean the IdP rotated keys: refetch, at most once per
        // jwks_min_refresh_secs however many such tokens arrive.
        if jwks
            .refresh_for_unknown_kid(self.settings.jwks_min_refresh)
            .await
        {
            match jwks.lookup(alg, kid) {
                Lookup::Found(key) => return Ok(key),
                Lookup::WrongType => return Err(Reason::Algorithm),
                Lookup::Missing => {}
            }
        }
        if jwks.is_empty() {
            Err(Reason::JwksUnavailable)
        } else {
            Err(Reason::UnknownKey)
        }
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Strict base64url without padding (RFC 7515 §2): `=`, `+`, `/` and stray bits are errors.
fn b64(segment: &str) -> Result<Vec<u8>, Reason> {
    URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| Reason::Malformed)
}

/// The JOSE header fields we read. `jku`, `x5u`, `jwk`, `x5c` are deliberately absent: never
/// followed, never trusted. Duplicate members among these are a parse error.
#[derive(Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    typ: Option<String>,
    #[serde(default)]
    crit: Option<serde_json::Value>,
    #[serde(default)]
    b64: Option<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

/// The claims, strictly typed: a mistyped claim fails deserialisation (never "absent").
#[derive(Deserialize)]
struct Claims {
    iss: String,
    sub: String,
    aud: Audience,
    exp: i64,
    iat: i64,
    #[serde(default, deserialize_with = "present_i64")]
    nbf: Option<i64>,
    #[serde(default, deserialize_with = "present_roles")]
    roles: Option<Vec<String>>,
}

/// `nbf` when present must be an integer (`null` is not "absent").
fn present_i64<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    i64::deserialize(d).map(Some)
}

/// `roles` when present must be an array of strings (`null` or `"admin"` are rejections).
fn present_roles<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    Vec::<String>::deserialize(d).map(Some)
}

// ---------------------------------------------------------------------------------------------
// JWKS

struct JwkEntry {
    kid: Option<String>,
    alg: Alg,
    key: DecodingKey,
}

#[derive(Default)]
struct Times {
    /// When the current key set was installed.
    fetched_at: Option<Instant>,
    /// When a fetch was last attempted (successful or not).
    last_attempt: Option<Instant>,
}

struct Jwks {
    source: JwksSource,
    client: reqwest::Client,
    keys: RwLock<Arc<Vec<JwkEntry>>>,
    times: Mutex<Times>,
    /// Serialises fetches so a burst of requests causes one.
    fetching: tokio::sync::Mutex<()>,
}

enum Lookup {
    Found(DecodingKey),
    /// The kid names a key whose type fixes another algorithm.
    WrongType,
    Missing,
}

impl Jwks {
    fn is_empty(&self) -> bool {
        self.keys.read().map(|k| k.is_empty()).unwrap_or(true)
    }

    fn lookup(&self, alg: Alg, kid: Option<&str>) -> Lookup {
        let keys = match self.keys.read() {
            Ok(k) => k.clone(),
            Err(_) => return Lookup::Missing,
        };
        match kid {
            Some(kid) => match keys.iter().find(|k| k.kid.as_deref() == Some(kid)) {
                Some(entry) if entry.alg == alg => Lookup::Found(entry.key.clone()),
                Some(_) => Lookup::WrongType,
                None => Lookup::Missing,
            },
            None => {
                // No kid: acceptable only when exactly one key could have signed it.
                let mut candidates = keys.iter().filter(|k| k.alg == alg);
                match (candidates.next(), candidates.next()) {
                    (Some(entry), None) => Lookup::Found(entry.key.clone()),
                    _ => Lookup::Missing,
                }
            }
        }
    }

    fn install(&self, keys: Vec<JwkEntry>, at: Instant) {
        if let Ok(mut slot) = self.keys.write() {
            *slot = Arc::new(keys);
        }
        if let Ok(mut t) = self.times.lock() {
            t.fetched_at = Some(at);
            t.last_attempt = Some(at);
        }
    }

    /// Whether a fetch is due now. `unknown_kid` fetches need `min_refresh` since the last
    /// attempt; stale-cache fetches need the cache to have expired (and, after a failure,
    /// `min_refresh` since that failure).
    fn due(&self, cache: Duration, min_refresh: Duration, unknown_kid: bool) -> bool {
        let Ok(t) = self.times.lock() else {
            return false;
        };
        let since_attempt = t.last_attempt.map(|a| a.elapsed());
        if unknown_kid {
            return since_attempt.is_none_or(|e| e >= min_refresh);
        }
        let stale = t.fetched_at.is_none_or(|f| f.elapsed() >= cache);
        let last_failed = t.last_attempt.is_some() && t.last_attempt != t.fetched_at;
        stale && (!last_failed || since_attempt.is_none_or(|e| e >= min_refresh))
    }

    async fn refresh_if_stale(&self, cache: Duration, min_refresh: Duration) {
        if !self.due(cache, min_refresh, false) {
            return;
        }
        let _guard = self.fetching.lock().await;
        if self.due(cache, min_refresh, false) {
            self.fetch().await;
        }
    }

    async fn refresh_for_unknown_kid(&self, min_refresh: Duration) -> bool {
        if !self.due(Duration::MAX, min_refresh, true) {
            return false;
        }
        let _guard = self.fetching.lock().await;
        if self.due(Duration::MAX, min_refresh, true) {
            self.fetch().await;
        }
        true
    }

    /// Fetches and installs the key set; on failure keeps the previous one.
    async fn fetch(&self) {
        let started = Instant::now();
        if let Ok(mut t) = self.times.lock() {
            t.last_attempt = Some(started);
        }
        let result = match &self.source {
            JwksSource::Url(url) => self.download(url).await,
            JwksSource::File(path) => tokio::fs::read(path)
                .await
                .map_err(|e| format!("cannot read the JWKS file: {e}")),
        }
        .and_then(|bytes| parse_jwks(&bytes));
        metrics::counter!("navigator_jwks_fetches_total", "outcome" => if result.is_ok() { "ok" } else { "error" }).increment(1);
        match result {
            Ok(keys) => {
                tracing::info!(keys = keys.len(), "JWKS refreshed");
                self.install(keys, started);
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not refresh the JWKS; keeping the keys we have")
            }
        }
    }

    async fn download(&self, url: &str) -> Result<Vec<u8>, String> {
        let mut response = self
            .client
            .get(url)
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|e| format!("JWKS request failed: {}", e.without_url()))?;
        if !response.status().is_success() {
            return Err(format!("JWKS endpoint answered {}", response.status()));
        }
        if response
            .content_length()
            .is_some_and(|n| n > MAX_JWKS_BYTES as u64)
        {
            return Err(format!("JWKS larger than {MAX_JWKS_BYTES} bytes"));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| format!("JWKS read failed: {}", e.without_url()))?
        {
            if body.len() + chunk.len() > MAX_JWKS_BYTES {
                return Err(format!("JWKS larger than {MAX_JWKS_BYTES} bytes"));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

#[derive(Deserialize)]
struct JwkSet {
    keys: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
struct Jwk {
    kty: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    alg: Option<String>,
    #[serde(default, rename = "use")]
    use_: Option<String>,
    #[serde(default)]
    crv: Option<String>,
    #[serde(default)]
    n: Option<String>,
    #[serde(default)]
    e: Option<String>,
    #[serde(default)]
    x: Option<String>,
    #[serde(default)]
    y: Option<String>,
}

/// Parses a JWKS: RSA (RS256), EC P-256 (ES256) and OKP Ed25519 (EdDSA) signature keys; others
/// (symmetric `oct` keys above all) are skipped. At most [`MAX_JWKS_KEYS`] are kept.
fn parse_jwks(bytes: &[u8]) -> Result<Vec<JwkEntry>, String> {
    if bytes.len() > MAX_JWKS_BYTES {
        return Err(format!("JWKS larger than {MAX_JWKS_BYTES} bytes"));
    }
    let set: JwkSet =
        serde_json::from_slice(bytes).map_err(|e| format!("not a JWKS document: {e}"))?;
    let mut out = Vec::new();
    for raw in set.keys {
        if out.len() == MAX_JWKS_KEYS {
            tracing::warn!(
                max = MAX_JWKS_KEYS,
                "JWKS has too many keys; ignoring the rest"
            );
            break;
        }
        match serde_json::from_value::<Jwk>(raw)
            .map_err(|e| e.to_string())
            .and_then(jwk_entry)
        {
            Ok(Some(entry)) => out.push(entry),
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "skipping an unusable JWKS key"),
        }
    }
    Ok(out)
}

fn jwk_entry(jwk: Jwk) -> Result<Option<JwkEntry>, String> {
    if jwk.use_.as_deref().is_some_and(|u| u != "sig") {
        return Ok(None);
    }
    if jwk
        .kid
        .as_deref()
        .is_some_and(|k| k.is_empty() || k.len() > MAX_KID_LEN)
    {
        return Err("kid is empty or too long".to_owned());
    }
    let field = |v: &Option<String>, name: &str| {
        v.clone()
            .ok_or_else(|| format!("{} key without {name}", jwk.kty))
    };
    let (alg, key) = match jwk.kty.as_str() {
        "RSA" => {
            let n = field(&jwk.n, "n")?;
            let modulus = URL_SAFE_NO_PAD.decode(&n).map_err(|_| "bad n".to_owned())?;
            let bits = modulus.iter().skip_while(|b| **b == 0).count() * 8;
            if bits < 2048 {
                return Err("RSA key shorter than 2048 bits".to_owned());
            }
            let key = DecodingKey::from_rsa_components(&n, &field(&jwk.e, "e")?)
                .map_err(|e| e.to_string())?;
            (Alg::Rs256, key)
        }
        "EC" => {
            if jwk.crv.as_deref() != Some("P-256") {
                return Ok(None);
            }
            let x = field(&jwk.x, "x")?;
            let y = field(&jwk.y, "y")?;
            for c in [&x, &y] {
                let bytes = URL_SAFE_NO_PAD
                    .decode(c)
                    .map_err(|_| "bad coordinate".to_owned())?;
                if bytes.len() != 32 {
                    return Err("P-256 coordinate is not 32 bytes".to_owned());
                }
            }
            let key = DecodingKey::from_ec_components(&x, &y).map_err(|e| e.to_string())?;
            (Alg::Es256, key)
        }
        "OKP" => {
            if jwk.crv.as_deref() != Some("Ed25519") {
                return Ok(None);
            }
            let x = field(&jwk.x, "x")?;
            let bytes = URL_SAFE_NO_PAD.decode(&x).map_err(|_| "bad x".to_owned())?;
            if bytes.len() != 32 {
                return Err("Ed25519 key is not 32 bytes".to_owned());
            }
            let key = DecodingKey::from_ed_components(&x).map_err(|e| e.to_string())?;
            (Alg::EdDsa, key)
        }
        // Symmetric keys never come from a JWKS; unknown types are skipped.
        _ => return Ok(None),
    };
    let expected = match alg {
        Alg::Rs256 => "RS256",
        Alg::Es256 => "ES256",
        Alg::EdDsa => "EdDSA",
        Alg::Hs256 => "HS256",
    };
    if jwk.alg.as_deref().is_some_and(|a| a != expected) {
        // The key is pinned to an algorithm we do not verify with it (RS512, ES384, …).
        return Ok(None);
    }
    Ok(Some(JwkEntry {
        kid: jwk.kid,
        alg,
        key,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn algorithm_names_are_exact() {
        for bad in [
            "none", "None", "NONE", "nOnE", "hs256", "HS512", "RS512", "ES384", "PS256", "",
        ] {
            assert_eq!(Alg::parse(bad), None, "{bad}");
        }
        assert_eq!(Alg::parse("EdDSA"), Some(Alg::EdDsa));
    }

    #[test]
    fn strict_base64url() {
        assert!(b64("eyJhIjoxfQ").is_ok());
        for bad in ["eyJhIjoxfQ==", "ab+c", "ab/c", "a b", "ab.c"] {
            assert!(b64(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn claims_are_strictly_typed() {
        let ok = r#"{"iss":"i","sub":"s","aud":"a","exp":10,"iat":1}"#;
        assert!(serde_json::from_str::<Claims>(ok).is_ok());
        for bad in [
            r#"{"iss":"i","sub":"s","aud":"a","exp":"10","iat":1}"#,
            r#"{"iss":"i","sub":"s","aud":"a","exp":10.5,"iat":1}"#,
            r#"{"iss":"i","sub":"s","aud":"a","exp":true,"iat":1}"#,
            r#"{"iss":"i","sub":"s","aud":"a","exp":null,"iat":1}"#,
            r#"{"iss":"i","sub":"s","aud":"a","exp":1e400,"iat":1}"#,
            r#"{"iss":"i","sub":"s","aud":"a","exp":10,"iat":1,"nbf":"1"}"#,
            r#"{"iss":"i","sub":"s","aud":"a","exp":10,"iat":1,"nbf":null}"#,
            r#"{"iss":"i","sub":"s","aud":5,"exp":10,"iat":1}"#,
            r#"{"iss":"i","sub":"s","aud":"a","exp":10,"iat":1,"roles":"admin"}"#,
            r#"{"iss":"i","sub":"s","aud":"a","exp":10,"iat":1,"roles":[1]}"#,
            r#"{"iss":"i","sub":"s","sub":"t","aud":"a","exp":10,"iat":1}"#,
            r#"{"iss":"i","sub":"s","aud":"a","exp":10}"#,
        ] {
            assert!(serde_json::from_str::<Claims>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn headers_reject_duplicates() {
        assert!(serde_json::from_str::<Header>(r#"{"alg":"HS256","alg":"none"}"#).is_err());
        assert!(serde_json::from_str::<Header>(r#"{"alg":"HS256","kid":5}"#).is_err());
    }
}
