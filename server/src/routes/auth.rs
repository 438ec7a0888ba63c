//! Login, logout and the current user.

use axum::Router;
use axum::extract::State;
use axum::http::header::SET_COOKIE;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use shared::api::{LoginRequest, LoginResponse, User};

use crate::AppState;
use crate::auth::{self, Principal, SESSION_COOKIE, SESSION_TTL_SECS};
use crate::error::{ApiError, ApiResult, Json};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/auth/login", post(login))
        .route("/api/auth/logout", post(logout))
        .route("/api/auth/me", get(me))
}

/// A hash verified when the user does not exist, so a wrong name takes as long as a wrong
/// password and names cannot be probed by timing.
static DUMMY_HASH: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| auth::hash_password("not a real password").unwrap_or_default());

async fn login(State(s): State<AppState>, Json(req): Json<LoginRequest>) -> ApiResult<Response> {
    let found = s.db.password_hash(&req.username).await?;
    let (user_id, hash) = match &found {
        Some((id, h)) => (Some(*id), h.clone()),
        None => (None, DUMMY_HASH.clone()),
    };
    let password = req.password;
    let ok = tokio::task::spawn_blocking(move || auth::verify_password(&password, &hash))
        .await
        .map_err(ApiError::internal)?;
    let (Some(user_id), true) = (user_id, ok) else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
            "wrong username or password",
        ));
    };
    let token = auth::new_token();
    s.db.create_session(&auth::token_hash(&token), user_id, SESSION_TTL_SECS)
        .await?;
    let user =
        s.db.user(user_id)
            .await?
            .ok_or_else(|| ApiError::not_found("user"))?;
    let cookie = format!(
        "{SESSION_COOKIE}={token}; HttpOnly; SameSite=Lax; Path=/; Max-Age={SESSION_TTL_SECS}"
    );
    Ok((
        [(SET_COOKIE, cookie)],
        axum::Json(LoginResponse { token, user }),
    )
        .into_response())
}

async fn logout(State(s): State<AppState>, headers: HeaderMap) -> ApiResult<Response> {
    if let Some(token) = auth::request_token(&headers) {
        s.db.delete_session(&auth::token_hash(&token)).await?;
    }
    let clear = format!("{SESSION_COOKIE}=; HttpOnly; SameSite=Lax; Path=/; Max-Age=0");
    Ok((StatusCode::NO_CONTENT, [(SET_COOKIE, clear)]).into_response())
}

async fn me(State(s): State<AppState>, p: Principal) -> ApiResult<axum::Json<User>> {
    s.db.user(p.id)
        .await?
        .map(axum::Json)
        .ok_or_else(|| ApiError::not_found("user"))
}
