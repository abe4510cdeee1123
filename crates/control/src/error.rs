//! `ApiError`: every failure the control-plane API can answer, in App Mesh's error vocabulary.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// App Mesh's error types (`x-amzn-ErrorType`) plus the HTTP status each one carries in the
/// service model. Client mistakes are 4xx with a message naming the field; `Internal` is logged
/// and answered without details.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    ResourceInUse(String),
    #[error("{0}")]
    TooManyTags(String),
    #[error("{0}")]
    LimitExceeded(String),
    #[error("method {method} is not allowed on {path}")]
    MethodNotAllowed { method: String, path: String },
    /// Answered 413 but typed `BadRequestException`: App Mesh's model has no 413 error, and a
    /// modeled type is one the AWS CLI and SDKs turn into their typed exception for a client
    /// mistake, where an unknown name would surface as a bare generic error. The status says
    /// which mistake.
    #[error("request body is larger than {limit} bytes, the most this API accepts")]
    PayloadTooLarge {
        limit: usize,
        /// The whole body was read, so the connection can serve the next request.
        drained: bool,
    },
    /// The body did not arrive in time (`body::BODY_READ_TIMEOUT`).
    #[error("the request body did not arrive within {seconds} s")]
    BodyTimeout { seconds: u64 },
    /// No valid bearer token on aviary's API.
    #[error("{0}")]
    Unauthenticated(String),
    /// A SigV4 signature that is missing, of an unknown key, wrong or expired.
    #[error("{0}")]
    Signature(crate::auth::sigv4::SigError),
    /// Authenticated, but the role (or the mesh of a proxy token) does not allow it; also a
    /// request addressed by a foreign `Host`.
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The store cannot be reached or has no quorum (etcd), or this replica may not do it
    /// now; App Mesh's `ServiceUnavailableException`. Nothing is known to have been written.
    #[error("{0}")]
    Unavailable(String),
    /// Another write in the mesh committed between this operation's reads and its commit
    /// (`consistency::Guard`); the operation runs again on fresh reads, and only if that keeps
    /// happening does a caller see it, as a 409.
    #[error("mesh '{0}' changed while this write was checked; retry")]
    GuardMoved(String),
    /// A write the store may or may not have applied (it reached etcd, no answer came in
    /// time): a 500 whose message says so, never a 503 that invites sending it again.
    #[error("{0}; read it back before you retry")]
    OutcomeUnknown(String),
    /// A canary write of a replica that no longer leads (its fence failed): it must stop acting.
    #[error("this control-plane replica no longer leads; the new leader carries on")]
    Deposed,
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    /// References to resources that do not exist: App Mesh's `NotFoundException`, every one
    /// named with the field that names it (not "validation errors": the request was well-formed).
    pub(crate) fn missing(problems: &[model::Problem]) -> ApiError {
        let shown: Vec<String> = problems.iter().map(ToString::to_string).collect();
        ApiError::NotFound(shown.join("; "))
    }

    pub fn error_type(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_)
            | ApiError::MethodNotAllowed { .. }
            | ApiError::PayloadTooLarge { .. }
            | ApiError::BodyTimeout { .. }
            | ApiError::UnsupportedMediaType(_) => "BadRequestException",
            ApiError::NotFound(_) => "NotFoundException",
            ApiError::Conflict(_) => "ConflictException",
            ApiError::ResourceInUse(_) => "ResourceInUseException",
            ApiError::TooManyTags(_) => "TooManyTagsException",
            ApiError::LimitExceeded(_) => "LimitExceededException",
            ApiError::Unauthenticated(_) => "UnauthorizedException",
            ApiError::Signature(err) => err.error_type(),
            ApiError::Forbidden(_) => "ForbiddenException",
            ApiError::Unavailable(_) | ApiError::Deposed => "ServiceUnavailableException",
            ApiError::GuardMoved(_) => "ConflictException",
            ApiError::OutcomeUnknown(_) => "InternalServerErrorException",
            ApiError::Internal(_) => "InternalServerErrorException",
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) | ApiError::TooManyTags(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) | ApiError::ResourceInUse(_) | ApiError::GuardMoved(_) => {
                StatusCode::CONFLICT
            }
            ApiError::Unavailable(_) | ApiError::Deposed => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::LimitExceeded(_) => StatusCode::BAD_REQUEST,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::BodyTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            ApiError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            // AWS answers every signature problem 403.
            ApiError::Signature(_) | ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Internal(_) | ApiError::OutcomeUnknown(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }
}

/// Shape errors of a request, every one named: App Mesh's `BadRequestException`.
impl From<model::Problems> for ApiError {
    fn from(problems: model::Problems) -> Self {
        ApiError::BadRequest(problems.to_string())
    }
}

impl From<store::StoreError> for ApiError {
    fn from(err: store::StoreError) -> Self {
        match err {
            store::StoreError::Unavailable(why) => {
                ApiError::Unavailable(format!("the store cannot be reached: {why}"))
            }
            // Not 503: a client may send a `ServiceUnavailableException` write again to another
            // replica, and this one may have been applied.
            indeterminate @ store::StoreError::Indeterminate(_) => {
                ApiError::OutcomeUnknown(indeterminate.to_string())
            }
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let message = match &self {
            ApiError::Internal(detail) => {
                tracing::error!(error = %detail, "internal error answered 500");
                "internal error; see the control plane's log".to_string()
            }
            other => other.to_string(),
        };
        let body = serde_json::json!({ "message": message }).to_string();
        let mut response = (self.status(), body).into_response();
        let headers = response.headers_mut();
        if matches!(self, ApiError::Unauthenticated(_)) {
            headers.insert(
                axum::http::header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer"),
            );
        }
        if matches!(
            self,
            ApiError::PayloadTooLarge { drained: false, .. } | ApiError::BodyTimeout { .. }
        ) {
            // Unread bytes of the body are still on the wire: this connection cannot carry
            // another request, and saying so lets the client stop sending.
            headers.insert(
                axum::http::header::CONNECTION,
                HeaderValue::from_static("close"),
            );
        }
        headers.insert(
            "x-amzn-ErrorType",
            HeaderValue::from_static(self.error_type()),
        );
        headers.insert(
            axum::http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        response
    }
}

/// A handler that panics is a bug; its caller still gets a 500 in App Mesh's shape instead of a
/// dropped connection, and the panic is logged (outermost layer, so it covers `auth::guard`).
pub async fn answer_panics(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    use futures_util::FutureExt;
    match std::panic::AssertUnwindSafe(next.run(request))
        .catch_unwind()
        .await
    {
        Ok(response) => response,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic".to_string());
            ApiError::Internal(format!("handler panicked: {what}")).into_response()
        }
    }
}

#[cfg(test)]
mod tests;
