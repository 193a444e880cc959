//! Authentication and authorisation (SPEC §4, §7 SD-001).
//!
//! * [`Authenticator`] turns a request's `Authorization: Bearer …` into a [`Principal`]: a JWT
//!   ([`jwt`]) or a service API key `nav_<id>_<secret>` ([`api_keys`]). With `auth.mode: none`
//!   every request is the single local principal.
//! * [`authorize`] is the one middleware that enforces, for every matched route, the permission
//!   its entry in [`crate::http::openapi::ROUTES`] declares. The router is built from the same
//!   table (see [`crate::http::router`]), so a route cannot be served without declaring one.
//! * Every rejection is `401 unauthorized` with one constant detail and
//!   `WWW-Authenticate: Bearer` (plus `error="invalid_token"` when credentials were presented),
//!   counted in `navigator_auth_failures_total{reason}` and audited as `auth.failure`. Every
//!   denial is `403 forbidden`, counted in `navigator_auth_denied_total{permission}` and audited
//!   as `auth.denied`. Tokens are never logged, echoed or audited. Both events carry the bounded
//!   request id and the connection's peer address ([`crate::audit::RequestMeta`]), and are
//!   written at most [`audit_limit::AUDITED_PER_MINUTE`] a minute per peer address (failures)
//!   or per principal (denials); beyond that they are counted in
//!   `navigator_audit_suppressed_total{action}` instead (see [`audit_limit`]).

pub mod api_keys;
pub mod audit_limit;
pub mod jwt;
pub mod permissions;

pub use permissions::{Permission, PermissionSet, RoleTable};

use super::AppState;
use super::error::ApiError;
use super::principal::{Credential, Principal};
use crate::audit::{Action, AuditEvent, RequestMeta};
use crate::config::{AuthConfig, AuthMode};
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use navigator_domain::{ErrorCode, OwnerId};
use navigator_store::Store;
use std::net::SocketAddr;
use std::time::Duration;
use time::OffsetDateTime;

/// Why a request was not authenticated: the fixed label set of
/// `navigator_auth_failures_total{reason}` and of `auth.failure` audit events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// No `Authorization` header.
    Missing,
    /// Not `Bearer`, or an empty or whitespace token.
    Scheme,
    /// Longer than `auth.jwt.max_token_bytes` (refused before parsing).
    TooLarge,
    /// Not a three-segment JWS of strict base64url JSON, or not a well-formed API key.
    Malformed,
    /// A header we refuse (`crit`, `b64`, an unexpected `typ`).
    Header,
    /// `alg` not in the allow-list, or not the one the verifying key fixes.
    Algorithm,
    /// No configured key matches (`kid` unknown after a refresh, or no secret for HS256).
    UnknownKey,
    /// The configured key is unusable for this token.
    Key,
    Signature,
    /// A claim is missing or of the wrong JSON type.
    Claims,
    Expired,
    NotYetValid,
    IssuedInFuture,
    Lifetime,
    Issuer,
    Audience,
    Subject,
    /// No JWKS keys could be obtained.
    JwksUnavailable,
    ApiKeyUnknown,
    ApiKeySecret,
    ApiKeyRevoked,
    ApiKeyExpired,
    /// The credential store could not be read.
    Unavailable,
}

impl Reason {
    pub const fn as_str(self) -> &'static str {
        match self {
            Reason::Missing => "missing",
            Reason::Scheme => "scheme",
            Reason::TooLarge => "too_large",
            Reason::Malformed => "malformed",
            Reason::Header => "header",
            Reason::Algorithm => "algorithm",
            Reason::UnknownKey => "unknown_key",
            Reason::Key => "key",
            Reason::Signature => "signature",
            Reason::Claims => "claims",
            Reason::Expired => "expired",
            Reason::NotYetValid => "not_yet_valid",
            Reason::IssuedInFuture => "issued_in_future",
            Reason::Lifetime => "lifetime",
            Reason::Issuer => "issuer",
            Reason::Audience => "audience",
            Reason::Subject => "subject",
            Reason::JwksUnavailable => "jwks_unavailable",
            Reason::ApiKeyUnknown => "api_key_unknown",
            Reason::ApiKeySecret => "api_key_secret",
            Reason::ApiKeyRevoked => "api_key_revoked",
            Reason::ApiKeyExpired => "api_key_expired",
            Reason::Unavailable => "unavailable",
        }
    }

    /// Whether the caller presented bearer credentials at all (RFC 6750 §3.1: no error code
    /// when it did not).
    fn presented_credentials(self) -> bool {
        !matches!(self, Reason::Missing | Reason::Scheme)
    }
}

/// The one detail every `401` carries: no oracle about why.
pub const UNAUTHORIZED_DETAIL: &str = "missing or invalid credentials";

/// Resolves requests to principals.
pub struct Authenticator {
    mode: AuthMode,
    jwt: Option<jwt::JwtVerifier>,
    roles: RoleTable,
    max_token_bytes: usize,
    /// `auth.failure` entries per peer address.
    failures_audited: audit_limit::AuditLimiter,
    /// `auth.denied` entries per principal.
    denials_audited: audit_limit::AuditLimiter,
}

impl Authenticator {
    /// From `auth.*`. Errors name the key (an unknown permission in `auth.roles.<role>`, an
    /// unreadable `auth.jwt.jwks_file`).
    pub fn from_config(config: &AuthConfig) -> anyhow::Result<Authenticator> {
        let roles = RoleTable::from_config(&config.roles)?;
        let jwt_config = &config.jwt;
        let max_token_bytes = usize::try_from(jwt_config.max_token_bytes).unwrap_or(usize::MAX);
        if config.mode == AuthMode::None {
            return Ok(Authenticator::new(
                AuthMode::None,
                None,
                roles,
                max_token_bytes,
            ));
        }
        let secret = jwt_config
            .hs256_secret
            .as_ref()
            .map(|s| s.expose().as_bytes().to_vec())
            .filter(|s| !s.is_empty());
        let source = match (&jwt_config.jwks_url, &jwt_config.jwks_file) {
            (Some(url), _) if !url.is_empty() => Some(jwt::JwksSource::Url(url.clone())),
            (_, Some(path)) => Some(jwt::JwksSource::File(path.clone())),
            _ => None,
        };
        let algorithms = if jwt_config.algorithms.is_empty() {
            let mut derived = Vec::new();
            if secret.is_some() {
                derived.push(jwt::Alg::Hs256);
            }
            if source.is_some() {
                derived.extend([jwt::Alg::Rs256, jwt::Alg::Es256, jwt::Alg::EdDsa]);
            }
            derived
        } else {
            jwt_config
                .algorithms
                .iter()
                .map(|a| {
                    jwt::Alg::parse(a).ok_or_else(|| {
                        anyhow::anyhow!("auth.jwt.algorithms: {a:?} is not supported")
                    })
                })
                .collect::<anyhow::Result<_>>()?
        };
        let issuer = jwt_config
            .issuer
            .clone()
            .filter(|i| !i.is_empty())
            .ok_or_else(|| anyhow::anyhow!("auth.jwt.issuer: required when auth.mode is jwt"))?;
        let audience = jwt_config
            .audience
            .clone()
            .filter(|a| !a.is_empty())
            .ok_or_else(|| anyhow::anyhow!("auth.jwt.audience: required when auth.mode is jwt"))?;
        let settings = jwt::JwtSettings {
            issuer,
            audience,
            algorithms,
            leeway_secs: jwt_config.leeway_secs,
            max_lifetime_secs: jwt_config.max_lifetime_secs,
            max_token_bytes,
            jwks_cache: Duration::from_secs(jwt_config.jwks_cache_secs),
            jwks_min_refresh: Duration::from_secs(jwt_config.jwks_min_refresh_secs),
        };
        let verifier = jwt::JwtVerifier::new(settings, secret.as_deref(), source)?;
        Ok(Authenticator::new(
            AuthMode::Jwt,
            Some(verifier),
            roles,
            max_token_bytes,
        ))
    }

    fn new(
        mode: AuthMode,
        jwt: Option<jwt::JwtVerifier>,
        roles: RoleTable,
        max_token_bytes: usize,
    ) -> Authenticator {
        Authenticator {
            mode,
            jwt,
            roles,
            max_token_bytes,
            failures_audited: audit_limit::AuditLimiter::new(audit_limit::AUDITED_PER_MINUTE),
            denials_audited: audit_limit::AuditLimiter::new(audit_limit::AUDITED_PER_MINUTE),
        }
    }

    /// `auth.mode: none` with the default roles.
    pub fn disabled() -> Authenticator {
        Authenticator::new(
            AuthMode::None,
            None,
            RoleTable::default(),
            crate::config::DEFAULT_JWT_MAX_TOKEN_BYTES as usize,
        )
    }

    pub fn mode(&self) -> AuthMode {
        self.mode
    }

    pub fn roles(&self) -> &RoleTable {
        &self.roles
    }

    /// The principal of a request with these headers.
    pub async fn authenticate(
        &self,
        store: &dyn Store,
        headers: &HeaderMap,
        now: OffsetDateTime,
    ) -> Result<Principal, Reason> {
        let Some(verifier) = &self.jwt else {
            return Ok(Principal::local());
        };
        let mut values = headers.get_all(header::AUTHORIZATION).iter();
        let (Some(value), None) = (values.next(), values.next()) else {
            return Err(if headers.contains_key(header::AUTHORIZATION) {
                Reason::Malformed
            } else {
                Reason::Missing
            });
        };
        // "Bearer " + the longest token we accept; longer is refused before any parsing.
        if value.len() > self.max_token_bytes + 7 {
            return Err(Reason::TooLarge);
        }
        let value = value.to_str().map_err(|_| Reason::Malformed)?;
        let (scheme, token) = value.split_once(' ').ok_or(Reason::Scheme)?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(Reason::Scheme);
        }
        let token = token.trim_matches(' ');
        if token.is_empty() {
            return Err(Reason::Scheme);
        }
        if token.len() > self.max_token_bytes {
            return Err(Reason::TooLarge);
        }
        if token.bytes().any(|b| b.is_ascii_whitespace()) {
            return Err(Reason::Malformed);
        }
        if token.starts_with(api_keys::PREFIX) {
            let record = api_keys::authenticate(store, token, now).await?;
            return Ok(self.principal(record.owner, record.roles, Credential::ApiKey(record.id)));
        }
        let verified = verifier.verify(token).await?;
        let owner = OwnerId::parse(&verified.sub).map_err(|_| Reason::Subject)?;
        Ok(self.principal(owner, verified.roles, Credential::Jwt))
    }

    fn principal(&self, owner: OwnerId, roles: Vec<String>, credential: Credential) -> Principal {
        Principal {
            permissions: self.roles.permissions(&roles),
            owner,
            roles,
            unauthenticated_local: false,
            credential,
        }
    }
}

/// The 401 answer.
pub fn unauthorized(reason: Reason) -> Response {
    let mut response = ApiError::new(ErrorCode::Unauthorized, UNAUTHORIZED_DETAIL).into_response();
    let challenge = if reason.presented_credentials() {
        HeaderValue::from_static("Bearer error=\"invalid_token\"")
    } else {
        HeaderValue::from_static("Bearer")
    };
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, challenge);
    response
}

/// Appends a refusal's audit event unless `key` has used up its share (module docs).
async fn audit_refusal(
    state: &AppState,
    limiter: &audit_limit::AuditLimiter,
    key: &str,
    event: AuditEvent,
) {
    if limiter.allow(key) {
        state.audit.record_best_effort(event).await;
    } else {
        metrics::counter!("navigator_audit_suppressed_total", "action" => event.action.as_str())
            .increment(1);
    }
}

/// Enforces the matched route's declared permission (see the module docs).
pub async fn authorize(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let template = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned());
    // HEAD is served by GET handlers and needs what GET needs.
    let method = match request.method().as_str() {
        "HEAD" => "get".to_owned(),
        m => m.to_ascii_lowercase(),
    };
    let route = template
        .as_deref()
        .and_then(|t| super::openapi::find(&method, t));
    let Some(route) = route else {
        // Unmatched (404) or a method the path does not serve (the method-not-allowed
        // fallback): no handler that could reach data runs.
        return next.run(request).await;
    };
    let Some(permission) = route.permission else {
        if state.auth.mode() == AuthMode::None {
            request.extensions_mut().insert(Principal::local());
        }
        return next.run(request).await;
    };
    let now = state.clock.now();
    let (parts, body) = request.into_parts();
    let meta = RequestMeta::of(&parts);
    let mut request = Request::from_parts(parts, body);
    let resource = || Some(format!("{} {}", route.method, route.path));
    let principal = match state
        .auth
        .authenticate(state.store.as_ref(), request.headers(), now)
        .await
    {
        Ok(p) => p,
        Err(reason) => {
            metrics::counter!("navigator_auth_failures_total", "reason" => reason.as_str())
                .increment(1);
            let peer = request
                .extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map(|info| info.0.ip());
            let event = meta.event(
                "anonymous",
                Action::AuthFailure,
                "route",
                resource(),
                "failure",
                serde_json::json!({ "reason": reason.as_str() }),
            );
            let key = audit_limit::peer_key(peer);
            audit_refusal(&state, &state.auth.failures_audited, &key, event).await;
            return unauthorized(reason);
        }
    };
    if !principal.has(permission) {
        metrics::counter!("navigator_auth_denied_total", "permission" => permission.as_str())
            .increment(1);
        let actor = principal.actor();
        let event = meta.event(
            actor.clone(),
            Action::PermissionDenied,
            "route",
            resource(),
            "denied",
            serde_json::json!({ "permission": permission.as_str() }),
        );
        audit_refusal(&state, &state.auth.denials_audited, &actor, event).await;
        return ApiError::new(
            ErrorCode::Forbidden,
            format!("this route requires the {permission} permission"),
        )
        .into_response();
    }
    request.extensions_mut().insert(principal);
    next.run(request).await
}
