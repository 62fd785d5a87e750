//! Who is asking, and what they may see. Configuration holds only SHA-256 digests of tokens; a
//! request presents its token as `Authorization: Bearer <token>` (the live stream alone also
//! takes `?access_token=`, because browsers open it without custom headers).
//!
//! Handlers get the caller through extractors: [`Authenticated`] (a valid token and its holder's
//! name) and [`Scoped`] (a listing's filters, narrowed to the caller's ward).

use std::collections::HashMap;

use axum::extract::{FromRequestParts, Query as QueryParams};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use ioc_config::load::token_digest;
use ioc_config::{Role, TokenConfig};

use crate::view::Query;
use crate::{bad_query, not_yours, ApiError, AppState};

/// Who is asking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    Operator,
    /// A ward unit, limited to this ward id.
    Ward(String),
}

/// A caller with a valid token: what it may do, and who holds the token (for the audit trail).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authenticated {
    pub caller: Caller,
    /// The token's `name` in the configuration, e.g. "Phường An Bình traffic team".
    pub name: String,
    /// May read licence plates on enforcement records.
    pub plates: bool,
}

/// Configured tokens by digest.
#[derive(Default)]
pub struct Tokens {
    by_digest: HashMap<String, Authenticated>,
}

impl Tokens {
    pub fn from_config(tokens: &[TokenConfig]) -> Tokens {
        let by_digest = tokens
            .iter()
            .map(|t| {
                let caller = match t.role {
                    Role::Operator => Caller::Operator,
                    Role::Ward => Caller::Ward(t.ward.clone().unwrap_or_default()),
                };
                let who = Authenticated {
                    caller,
                    name: t.name.clone(),
                    plates: t.plates,
                };
                (t.sha256.to_ascii_lowercase(), who)
            })
            .collect();
        Tokens { by_digest }
    }

    pub fn is_empty(&self) -> bool {
        self.by_digest.is_empty()
    }

    /// Finds the caller for a request, or answers 401.
    pub fn authenticate(
        &self,
        headers: &HeaderMap,
        query_token: Option<&str>,
    ) -> Result<Authenticated, ApiError> {
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        let Some(token) = bearer.or(query_token) else {
            return Err(ApiError(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "Send 'Authorization: Bearer <token>'; operators and ward units get tokens from the IOC administrator.".into(),
            ));
        };
        self.by_digest
            .get(&token_digest(token.trim()))
            .cloned()
            .ok_or_else(|| {
                ApiError(
                    StatusCode::UNAUTHORIZED,
                    "invalid_token",
                    "The token is not valid.".into(),
                )
            })
    }
}

/// Whether the URL's query carries a token (refused everywhere but the live streams).
fn token_in_url(parts: &Parts) -> Result<(), ApiError> {
    let query = parts.uri.query().unwrap_or_default();
    let has_token = serde_urlencoded::from_str::<Vec<(String, String)>>(query)
        .unwrap_or_default()
        .iter()
        .any(|(k, _)| k == "access_token");
    if has_token {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            "token_in_url",
            "access_token in the URL is accepted only by the live streams (/v1/stream, /v1/violations/stream); send 'Authorization: Bearer <token>' instead.".into(),
        ));
    }
    Ok(())
}

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, s: &AppState) -> Result<Self, ApiError> {
        token_in_url(parts)?;
        s.tokens.authenticate(&parts.headers, None)
    }
}

/// Narrows a query to what the caller may see: a ward unit only its own ward.
pub(crate) fn scope(caller: &Caller, mut q: Query) -> Result<Query, ApiError> {
    narrow_ward(caller, &mut q.ward)?;
    Ok(q)
}

/// The one rule for a listing's `ward` filter: a ward unit's is set to its own ward, and
/// asking for another ward is refused; an operator's stays as asked.
pub(crate) fn narrow_ward(caller: &Caller, ward: &mut Option<String>) -> Result<(), ApiError> {
    if let Caller::Ward(own) = caller {
        match ward {
            Some(w) if w != own => return Err(not_yours()),
            _ => *ward = Some(own.clone()),
        }
    }
    Ok(())
}

/// The filters of a listing, checked (an unknown status or a bad date is a 400) and narrowed
/// to what the caller may see.
pub struct Scoped(pub Query, pub Authenticated);

impl FromRequestParts<AppState> for Scoped {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, s: &AppState) -> Result<Self, ApiError> {
        let QueryParams(q) = QueryParams::<Query>::from_request_parts(parts, s)
            .await
            .map_err(bad_query)?;
        let who = Authenticated::from_request_parts(parts, s).await?;
        Ok(Scoped(scope(&who.caller, q)?, who))
    }
}
