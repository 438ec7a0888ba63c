//! Administration of users and their permissions (SPEC §2).

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, put};
use shared::api::{CreateUser, Grant, SetPermissions, User};

use crate::AppState;
use crate::auth::{self, MIN_PASSWORD_CHARS, Principal};
use crate::db::is_unique_violation;
use crate::db::users::NewUser;
use crate::error::{ApiError, ApiResult, Id, Json};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/users", get(list).post(create))
        .route("/api/users/{id}/permissions", put(set_permissions))
}

async fn list(State(s): State<AppState>, p: Principal) -> ApiResult<axum::Json<Vec<User>>> {
    p.require_admin()?;
    Ok(axum::Json(s.db.users().await?))
}

fn check_username(name: &str) -> ApiResult<()> {
    let ok = (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '@'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid(
            "username",
            "invalid_username",
            "username must be 1-64 ASCII letters, digits, '_', '-', '.' or '@'",
        ))
    }
}

async fn check_grants(s: &AppState, grants: &[Grant]) -> ApiResult<()> {
    for g in grants {
        if let Some(id) = g.instance_id
            && s.db.instance(id).await?.is_none()
        {
            return Err(ApiError::invalid(
                "permissions",
                "unknown_instance",
                format!(
                    "permission {} names instance {id}, which does not exist",
                    g.permission.as_str()
                ),
            ));
        }
    }
    Ok(())
}

async fn create(
    State(s): State<AppState>,
    p: Principal,
    Json(req): Json<CreateUser>,
) -> ApiResult<(StatusCode, axum::Json<User>)> {
    p.require_admin()?;
    check_username(&req.username)?;
    if req.password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(ApiError::invalid(
            "password",
            "weak_password",
            format!("password must be at least {MIN_PASSWORD_CHARS} characters"),
        ));
    }
    check_grants(&s, &req.permissions).await?;
    let password = req.password;
    let hash = auth::on_hashing_threads(move || auth::hash_password(&password)).await?;
    let new = NewUser {
        username: &req.username,
        password_hash: &hash,
        is_admin: req.is_admin,
        grants: &req.permissions,
    };
    let id = match s.db.create_user(&new).await {
        Ok(id) => id,
        Err(e) if is_unique_violation(&e) => {
            return Err(
                ApiError::conflict(format!("user {:?} already exists", req.username))
                    .with_field("username"),
            );
        }
        Err(e) => return Err(e.into()),
    };
    let user =
        s.db.user(id)
            .await?
            .ok_or_else(|| ApiError::not_found("user"))?;
    Ok((StatusCode::CREATED, axum::Json(user)))
}

async fn set_permissions(
    State(s): State<AppState>,
    p: Principal,
    Id(id): Id,
    Json(req): Json<SetPermissions>,
) -> ApiResult<axum::Json<User>> {
    p.require_admin()?;
    check_grants(&s, &req.permissions).await?;
    if !s.db.set_grants(id, &req.permissions).await? {
        return Err(ApiError::not_found("user"));
    }
    let user =
        s.db.user(id)
            .await?
            .ok_or_else(|| ApiError::not_found("user"))?;
    Ok(axum::Json(user))
}
