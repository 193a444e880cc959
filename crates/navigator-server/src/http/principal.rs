//! Who is calling. Every request resolves to a [`Principal`]; every store query is scoped by it.
//!
//! The [`crate::http::auth::authorize`] middleware authenticates the request (JWT or API key),
//! checks the route's declared permission and leaves the principal in the request's extensions;
//! handlers extract it from there. With `auth.mode = none` (the embedded default) every request
//! is the single local principal: it owns its own documents like a member, and may also set its
//! own budget and read `/metrics` ([`crate::http::auth::permissions::LOCAL`]).

use super::AppState;
use super::auth::{Permission, PermissionSet, Reason, permissions};
use crate::config::AuthMode;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::response::Response;
use navigator_domain::OwnerId;
use navigator_store::OwnerScope;

/// How the principal proved who it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// `auth.mode: none`.
    Local,
    Jwt,
    /// A service API key (its id).
    ApiKey(String),
}

#[derive(Debug, Clone)]
pub struct Principal {
    pub owner: OwnerId,
    /// Role names (from the token's `roles` claim or the API key).
    pub roles: Vec<String>,
    /// The union of the roles' permissions. Which owners' rows the principal sees follows
    /// `owners:all` among them (see [`Principal::scope`]).
    pub permissions: PermissionSet,
    /// True only for the single principal of a deployment without authentication (never for an
    /// authenticated caller, whatever its owner id).
    pub unauthenticated_local: bool,
    pub credential: Credential,
}

impl Principal {
    pub fn local() -> Self {
        Self {
            owner: OwnerId::local(),
            roles: vec!["member".to_owned()],
            permissions: permissions::LOCAL,
            unauthenticated_local: true,
            credential: Credential::Local,
        }
    }

    /// The rows this principal may see: every owner's iff it holds `owners:all` (the built-in
    /// operator, auditor and admin roles do), its own otherwise. Role names play no part. (What
    /// it may do with the rows is a per-route permission.)
    pub fn scope(&self) -> OwnerScope {
        if self.has(Permission::OwnersAll) {
            OwnerScope::All
        } else {
            OwnerScope::Owner(self.owner.clone())
        }
    }

    /// The documents whose content (filenames, text, search hits) this principal may see:
    /// every owner's only for an admin; everyone else — an operator who is also a member
    /// included — sees its own, whatever `owners:all` grants it for jobs and usage.
    pub fn content_scope(&self) -> OwnerScope {
        if self.roles.iter().any(|r| r == "admin") && self.has(Permission::OwnersAll) {
            OwnerScope::All
        } else {
            OwnerScope::Owner(self.owner.clone())
        }
    }

    pub fn has(&self, permission: Permission) -> bool {
        self.permissions.contains(permission)
    }

    /// The audit actor: the owner id, or the API key's id (never a token).
    pub fn actor(&self) -> String {
        match &self.credential {
            Credential::ApiKey(id) => format!("apikey:{id}"),
            _ => self.owner.to_string(),
        }
    }
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if let Some(principal) = parts.extensions.get::<Principal>() {
            return Ok(principal.clone());
        }
        // Only the authorize middleware puts a principal here; a handler reached without one
        // (a public route, or a method the table does not declare) is the local principal when
        // authentication is off, and unauthenticated otherwise.
        match state.auth.mode() {
            AuthMode::None => Ok(Principal::local()),
            AuthMode::Jwt => Err(super::auth::unauthorized(Reason::Missing)),
        }
    }
}
