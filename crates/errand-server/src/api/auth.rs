//! Bearer-token authentication: `Authorization: Bearer <token>` names the caller. Tokens are
//! checked against their stored SHA-256 (the store never holds the plain text).

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use errand_store::{Scope, User, UserId};

use super::AppState;
use super::error::ApiFailure;

/// The authenticated user a request acts for.
#[derive(Debug, Clone)]
pub struct Caller(pub User);

impl Caller {
    pub fn id(&self) -> UserId {
        self.0.id
    }

    /// What this caller may see in the store: their own rows only.
    pub fn scope(&self) -> Scope {
        Scope::User(self.0.id)
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiFailure;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiFailure> {
        let header = parts.headers.get(header::AUTHORIZATION).ok_or_else(|| {
            ApiFailure::unauthorized(
                "this API needs a token: send `Authorization: Bearer <token>` (on the server: `errand user token NAME`)",
            )
        })?;
        let secret = header
            .to_str()
            .ok()
            .and_then(|value| value.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|secret| !secret.is_empty())
            .ok_or_else(|| {
                ApiFailure::unauthorized("the Authorization header must be `Bearer <token>`")
            })?;
        match state.store.authenticate(secret).await? {
            Some(user) => Ok(Caller(user)),
            None => Err(ApiFailure::unauthorized("the token is unknown or revoked")),
        }
    }
}
