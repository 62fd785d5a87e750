//! The one error type of the HTTP layer, and the refusals several handlers give.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use ioc_schema::Status;
use serde_json::json;

/// The one error type of the HTTP layer.
pub struct ApiError(pub StatusCode, pub &'static str, pub String);

impl ApiError {
    /// Whether the same request may succeed later (503: the event store was away).
    pub fn retryable(&self) -> bool {
        self.0 == StatusCode::SERVICE_UNAVAILABLE
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = (
            self.0,
            Json(json!({"error": {"code": self.1, "message": self.2}})),
        )
            .into_response();
        if self.0 == StatusCode::SERVICE_UNAVAILABLE {
            resp.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("5"),
            );
        }
        resp
    }
}

pub(crate) fn not_found(id: &str) -> ApiError {
    ApiError(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("No incident {id}. A report just accepted may take a moment to appear."),
    )
}

pub(crate) fn bad_query(e: impl std::fmt::Display) -> ApiError {
    ApiError(
        StatusCode::BAD_REQUEST,
        "invalid_query",
        format!(
            "Bad query parameter: {}. Filters: ward, status ({}), category, since, until (RFC 3339), limit, offset.",
            e.to_string().replace(['\n', '\r'], " "),
            Status::ALL.map(Status::as_str).join(", ")
        ),
    )
}

/// The refusal a ward unit gets for anything outside its ward: it says no more than that.
pub(crate) fn not_yours() -> ApiError {
    ApiError(
        StatusCode::FORBIDDEN,
        "forbidden",
        "This is not in your ward.".into(),
    )
}
