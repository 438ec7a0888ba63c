//! Every call the app makes to the management API (SPEC §9). Same origin as the app, so the
//! browser sends the HttpOnly session cookie by itself; nothing here touches tokens.

use std::fmt;

use gloo_net::http::{Request, RequestBuilder, Response};
use serde::de::DeserializeOwned;
use shared::api::{CreateInstance, ErrorBody, Instance, LoginRequest, LoginResponse, User};

/// Why a call failed, in words a person can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status; 0 when the server could not be reached or answered nonsense.
    pub status: u16,
    /// The server's snake_case code (`invalid_name`, `conflict`, ...), or one of ours
    /// (`network`, `bad_response`).
    pub code: String,
    pub message: String,
    /// The request field at fault, when the server named one.
    pub field: Option<String>,
}

impl ApiError {
    pub fn new(status: u16, code: &str, message: &str) -> Self {
        Self {
            status,
            code: code.to_owned(),
            message: message.to_owned(),
            field: None,
        }
    }

    fn local(code: &str, message: String) -> Self {
        Self {
            status: 0,
            code: code.to_owned(),
            message,
            field: None,
        }
    }

    /// The session is missing or expired: the user has to log in again.
    pub fn is_unauthorized(&self) -> bool {
        self.status == 401
    }

    /// Whether the server blamed this request field.
    pub fn is_for_field(&self, field: &str) -> bool {
        self.field.as_deref() == Some(field)
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

async fn send(request: Result<Request, gloo_net::Error>) -> ApiResult<Response> {
    let request = request
        .map_err(|e| ApiError::local("bad_request", format!("Could not build the request: {e}")))?;
    let response = request
        .send()
        .await
        .map_err(|e| ApiError::local("network", format!("Cannot reach the server: {e}")))?;
    if response.ok() {
        Ok(response)
    } else {
        Err(error_from(response).await)
    }
}

/// Turns a non-2xx response into an [`ApiError`], using the server's `ErrorBody` when there is one.
async fn error_from(response: Response) -> ApiError {
    let status = response.status();
    match response.json::<ErrorBody>().await {
        Ok(body) => ApiError {
            status,
            code: body.error.code,
            message: body.error.message,
            field: body.error.field,
        },
        Err(_) => ApiError {
            status,
            code: "http_error".to_owned(),
            message: match status {
                401 => "Please log in.".to_owned(),
                403 => "You do not have permission to do that.".to_owned(),
                404 => "Not found.".to_owned(),
                s if s >= 500 => format!(
                    "The server failed ({s} {}). Try again.",
                    response.status_text()
                ),
                s => format!("Request refused ({s} {}).", response.status_text()),
            },
            field: None,
        },
    }
}

async fn json<T: DeserializeOwned>(response: Response) -> ApiResult<T> {
    response.json::<T>().await.map_err(|e| {
        ApiError::local(
            "bad_response",
            format!("Unexpected answer from the server: {e}"),
        )
    })
}

fn get(url: &str) -> Result<Request, gloo_net::Error> {
    with_accept(Request::get(url)).build()
}

fn with_accept(builder: RequestBuilder) -> RequestBuilder {
    builder.header("Accept", "application/json")
}

/// `POST /api/auth/login`: the server sets the session cookie.
pub async fn login(username: String, password: String) -> ApiResult<LoginResponse> {
    let body = LoginRequest { username, password };
    json(send(with_accept(Request::post("/api/auth/login")).json(&body)).await?).await
}

/// `POST /api/auth/logout`: the server clears the session cookie.
pub async fn logout() -> ApiResult<()> {
    send(with_accept(Request::post("/api/auth/logout")).build())
        .await
        .map(drop)
}

/// `GET /api/auth/me`: the logged-in user, or `None` without a (valid) session.
pub async fn me() -> ApiResult<Option<User>> {
    match send(get("/api/auth/me")).await {
        Ok(response) => json(response).await.map(Some),
        Err(e) if e.is_unauthorized() => Ok(None),
        Err(e) => Err(e),
    }
}

/// `GET /api/instances`.
pub async fn list_instances() -> ApiResult<Vec<Instance>> {
    json(send(get("/api/instances")).await?).await
}

/// `GET /api/instances/{id}`.
pub async fn get_instance(id: i64) -> ApiResult<Instance> {
    json(send(get(&format!("/api/instances/{id}"))).await?).await
}

/// `POST /api/instances`.
pub async fn create_instance(body: CreateInstance) -> ApiResult<Instance> {
    json(send(with_accept(Request::post("/api/instances")).json(&body)).await?).await
}

/// `DELETE /api/instances/{id}`.
pub async fn delete_instance(id: i64) -> ApiResult<()> {
    send(with_accept(Request::delete(&format!("/api/instances/{id}"))).build())
        .await
        .map(drop)
}
