//! One error type for the management API: every failure leaves as
//! `{"error":{"code":..,"message":..,"field"?:..}}` with the right status (SPEC §9).

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use shared::api::{ErrorBody, ErrorDetail};

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub field: Option<String>,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            field: None,
        }
    }

    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    /// 400 for a request field that breaks a rule; the message says what to fix.
    pub fn invalid(field: &str, code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message).with_field(field)
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "log in first: send the session cookie or `Authorization: Bearer <token>`",
        )
    }

    pub fn forbidden(permission: shared::Permission) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "this needs the {} permission; ask an administrator",
                permission.as_str()
            ),
        )
    }

    pub fn admin_only() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "only administrators may do this",
        )
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} not found"),
        )
    }

    /// 507: the server's disk is full; nothing was saved.
    pub fn disk_full() -> Self {
        Self::new(
            StatusCode::INSUFFICIENT_STORAGE,
            "disk_full",
            "the server's disk is full; nothing was saved (an administrator must free space)",
        )
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }

    pub fn unprocessable(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }

    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", message)
    }

    /// An unexpected failure: logged once here, answered with a generic message.
    pub fn internal(err: impl std::fmt::Display) -> Self {
        tracing::error!("internal error: {err:#}");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; the server log has the details",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_owned(),
                message: self.message,
                field: self.field,
            },
        };
        (self.status, axum::Json(body)).into_response()
    }
}

impl From<crate::routes::query::Invalid> for ApiError {
    fn from(e: crate::routes::query::Invalid) -> Self {
        ApiError::invalid(e.field, e.code, e.message)
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        use sqlx::Error as E;
        // No connection, or PostgreSQL shutting down or refusing connections (SQLSTATE
        // classes 57 and 08): a clear, retryable answer rather than an internal error.
        let unreachable = match &e {
            E::Io(_) | E::PoolTimedOut | E::PoolClosed | E::Tls(_) | E::WorkerCrashed => true,
            E::Database(d) => d
                .code()
                .is_some_and(|c| c.starts_with("57") || c.starts_with("08")),
            _ => false,
        };
        // SQLITE_FULL (13), PostgreSQL's disk_full (53100): the change was not made.
        if let E::Database(d) = &e
            && matches!(d.code().as_deref(), Some("13" | "53100"))
        {
            tracing::warn!("database: {e}");
            return Self::disk_full();
        }
        if unreachable {
            tracing::warn!("database unreachable: {e}");
            return Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "database_unavailable",
                "the database cannot be reached just now; try again shortly",
            );
        }
        Self::internal(format!("database: {e}"))
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> Self {
        Self::internal(format!("{e:#}"))
    }
}

impl From<crate::storage::StorageError> for ApiError {
    fn from(e: crate::storage::StorageError) -> Self {
        use crate::storage::StorageError as E;
        match e {
            E::NotFound(key) => Self::not_found(&format!("object {key:?}")),
            E::TooLarge { .. } => Self::too_large(e.to_string()),
            E::BadPath(_)
            | E::OutsideRoots(_)
            | E::BucketNotAllowed(_)
            | E::Reserved { .. }
            | E::NoS3 => Self::invalid("path", "invalid_path", e.to_string()),
            E::Unreachable(_) => {
                tracing::warn!("{e}");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "storage_unavailable",
                    "the image storage (S3) cannot be reached just now; try again shortly",
                )
            }
            E::Io(io) if io.kind() == std::io::ErrorKind::StorageFull => {
                tracing::warn!("storage: {io}");
                Self::disk_full()
            }
            E::Io(_) | E::S3(_) => Self::internal(e),
        }
    }
}

/// A 404 about a resource found through another (an image's dataset, a link's model) as a
/// 404 about the resource asked for, so the answer is the one a missing id gets.
pub fn as_missing(e: ApiError, what: &str) -> ApiError {
    if e.status == StatusCode::NOT_FOUND {
        ApiError::not_found(what)
    } else {
        e
    }
}

/// `axum::Json` whose rejections come back in our error format.
pub struct Json<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Json(v)),
            Err(rej) => Err(json_rejection(rej)),
        }
    }
}

fn json_rejection(rej: JsonRejection) -> ApiError {
    let status = rej.status();
    match rej {
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the body as JSON with `Content-Type: application/json`",
        ),
        _ if status == StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::too_large("the request body is larger than this endpoint accepts")
        }
        other => ApiError::bad_request(
            "invalid_json",
            format!("invalid JSON body: {}", other.body_text()),
        ),
    }
}

impl<T> IntoResponse for Json<T>
where
    axum::Json<T>: IntoResponse,
{
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// `axum::extract::Query` whose rejections come back in our error format.
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(Query(v)),
            Err(rej) => Err(query_rejection(&rej)),
        }
    }
}

fn query_rejection(rej: &QueryRejection) -> ApiError {
    ApiError::bad_request(
        "invalid_query",
        format!("invalid query string: {}", rej.body_text()),
    )
}

/// Path parameters that are ids: a non-number is a 404, not a 400, as no such resource exists.
pub struct Id(pub i64);

impl<S: Send + Sync> FromRequestParts<S> for Id {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let axum::extract::Path(raw) =
            axum::extract::Path::<String>::from_request_parts(parts, state)
                .await
                .map_err(|_| ApiError::not_found("resource"))?;
        raw.parse()
            .map(Id)
            .map_err(|_| ApiError::not_found("resource"))
    }
}
