//! Login, logout and the current user.

use std::net::SocketAddr;
use std::time::Instant;

use axum::Router;
use axum::extract::{ConnectInfo, State};
use axum::http::header::{self, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use shared::api::{LoginRequest, LoginResponse, User};

use crate::AppState;
use crate::auth::{self, Principal, SESSION_COOKIE, SESSION_TTL_SECS};
use crate::error::{ApiError, ApiResult, Json};
use crate::login_limits::Refusal;

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

/// A refusal before the password is checked, with the `Retry-After` a client should honour.
fn refused(why: Refusal) -> Response {
    let (status, code, secs, message) = match why {
        Refusal::Throttled { retry_after } => {
            let secs = (retry_after.as_secs_f64().ceil() as u64).max(1);
            (
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_attempts",
                secs,
                format!(
                    "too many failed logins for this user name or from this address; try again in {secs} s"
                ),
            )
        }
        Refusal::Busy => (
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            1,
            "the server is checking too many logins at once; try again in a second".to_owned(),
        ),
    };
    let mut res = ApiError::new(status, code, message).into_response();
    res.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    res
}

/// `Secure` on the session cookie when the server is reached over HTTPS: configured
/// (`AUTOLEARN_SECURE_COOKIES`), implied by an `https://` public URL, or said by the TLS proxy.
fn secure_cookie(s: &AppState, headers: &HeaderMap) -> bool {
    s.config.secure_cookies.unwrap_or_else(|| {
        s.config
            .public_url
            .as_deref()
            .is_some_and(|u| u.starts_with("https://"))
            || headers
                .get("x-forwarded-proto")
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"))
    })
}

async fn login(
    State(s): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Json(req): Json<LoginRequest>,
) -> ApiResult<Response> {
    let limits = &s.login_limits;
    let ip = Some(peer.ip());
    if let Err(why) = limits.check(&req.username, ip, Instant::now()) {
        return Ok(refused(why));
    }
    // Held until the password is checked: argon2 never runs for more logins than the pool.
    let _slot = match limits.hash_slot().await {
        Ok(slot) => slot,
        Err(why) => return Ok(refused(why)),
    };
    let found = s.db.password_hash(&req.username).await?;
    let (user_id, hash) = match &found {
        Some((id, h)) => (Some(*id), h.clone()),
        None => (None, DUMMY_HASH.clone()),
    };
    let password = req.password;
    let ok = auth::on_hashing_threads(move || auth::verify_password(&password, &hash)).await;
    let (Some(user_id), true) = (user_id, ok) else {
        limits.failed(&req.username, ip, Instant::now());
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
            "wrong username or password",
        ));
    };
    limits.succeeded(&req.username);
    let token = auth::new_token();
    s.db.create_session(&auth::token_hash(&token), user_id, SESSION_TTL_SECS)
        .await?;
    let user =
        s.db.user(user_id)
            .await?
            .ok_or_else(|| ApiError::not_found("user"))?;
    let secure = if secure_cookie(&s, &headers) {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!(
        "{SESSION_COOKIE}={token}; HttpOnly; SameSite=Lax; Path=/; Max-Age={SESSION_TTL_SECS}{secure}"
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
    let secure = if secure_cookie(&s, &headers) {
        "; Secure"
    } else {
        ""
    };
    let clear = format!("{SESSION_COOKIE}=; HttpOnly; SameSite=Lax; Path=/; Max-Age=0{secure}");
    Ok((StatusCode::NO_CONTENT, [(SET_COOKIE, clear)]).into_response())
}

async fn me(State(s): State<AppState>, p: Principal) -> ApiResult<axum::Json<User>> {
    s.db.user(p.id)
        .await?
        .map(axum::Json)
        .ok_or_else(|| ApiError::not_found("user"))
}
