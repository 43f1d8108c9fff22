//! The one error type of the API: every handler answers with it, and it renders itself as the
//! response (status and an `error: ...` line).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// Why a request was not done.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed (400).
    #[error("{0}")]
    BadRequest(String),
    /// No valid credentials came with the request (401).
    #[error("{0}")]
    Unauthorized(String),
    /// The caller's role may not do this (403); only for what the caller may see.
    #[error("{0}")]
    Forbidden(String),
    /// Too many failed logins (429), with the seconds to wait.
    #[error("{message}")]
    TooManyRequests {
        /// What to tell.
        message: String,
        /// Seconds until a new attempt is taken.
        retry_after_secs: u64,
    },
    /// What it names does not exist, or lies outside the caller's jurisdiction (404).
    #[error("{0}")]
    NotFound(String),
    /// The change is not allowed in the current state (409).
    #[error("{0}")]
    Conflict(String),
    /// An idempotency key given again with another request (422).
    #[error("{0}")]
    Unprocessable(String),
    /// A part of Argus the request needs cannot answer now (503): the store, the ticket book.
    #[error("{0}")]
    Unavailable(String),
    /// Argus failed (500).
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    /// The HTTP status it answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::warn!(status = status.as_u16(), "api: {self}");
        }
        let mut response = (status, format!("error: {self}\n")).into_response();
        let headers = response.headers_mut();
        match &self {
            Self::Unauthorized(_) => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"argus\""),
                );
            }
            Self::TooManyRequests {
                retry_after_secs, ..
            } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
            }
            _ => {}
        }
        response
    }
}
