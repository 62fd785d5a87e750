//! Dashboard tokens. Configuration holds only SHA-256 digests; a request presents the token as
//! `Authorization: Bearer <token>` (or `?access_token=` for the event stream, which browsers open
//! without custom headers).

use std::collections::HashMap;

use axum::http::{header, HeaderMap, StatusCode};
use ioc_config::load::token_digest;
use ioc_config::{Role, TokenConfig};

use crate::ApiError;

/// Who is asking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    Operator,
    /// A ward unit, limited to this ward id.
    Ward(String),
}

/// Configured tokens by digest.
#[derive(Default)]
pub struct Tokens {
    by_digest: HashMap<String, Caller>,
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
                (t.sha256.to_ascii_lowercase(), caller)
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
    ) -> Result<Caller, ApiError> {
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
