//! Who is calling. Every request resolves to a [`Principal`]; every store query is scoped by it.
//! With `auth.mode = none` (the embedded default) every request is the single local principal,
//! which owns its own documents like any member would. JWT and API keys arrive with issue 5.

use super::AppState;
use super::error::ApiError;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use navigator_domain::OwnerId;
use navigator_store::OwnerScope;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    Member,
    Operator,
    Admin,
}

#[derive(Debug, Clone)]
pub struct Principal {
    pub owner: OwnerId,
    pub roles: Vec<Role>,
    /// True only for the single principal of a deployment without authentication (never for an
    /// authenticated caller, whatever its owner id).
    pub unauthenticated_local: bool,
}

impl Principal {
    pub fn local() -> Self {
        Self {
            owner: OwnerId::local(),
            roles: vec![Role::Member],
            unauthenticated_local: true,
        }
    }

    /// The rows this principal may see: its own, unless it holds an operator or admin role.
    pub fn scope(&self) -> OwnerScope {
        if self
            .roles
            .iter()
            .any(|r| matches!(r, Role::Operator | Role::Admin))
        {
            OwnerScope::All
        } else {
            OwnerScope::Owner(self.owner.clone())
        }
    }
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(
        _parts: &mut Parts,
        _state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(Principal::local())
    }
}
