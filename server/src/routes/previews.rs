//! Preview links (SPEC §6): create (with the QR code of the link), list and revoke them for a
//! model; and, with no login, what the preview page `/p/<token>` needs.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::{delete, get};
use shared::Permission;
use shared::preview::{CreatePreviewLink, MAX_EXPIRES_HOURS, PreviewInfo, PreviewLink};

use super::models::authorised_model;
use crate::AppState;
use crate::auth::Principal;
use crate::db::previews::PreviewRow;
use crate::db::rfc3339;
use crate::error::{ApiError, ApiResult, Id};
use crate::preview;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/models/{id}/preview-links", get(list).post(create))
        .route("/api/preview-links/{id}", delete(revoke))
        .route("/api/preview/{token}", get(info))
}

/// Where phones reach this server: the configured public URL, else the scheme and host the
/// request came to (behind a proxy, its `X-Forwarded-*` headers).
fn public_base(s: &AppState, headers: &HeaderMap) -> String {
    if let Some(u) = &s.config.public_url {
        return u.clone();
    }
    let get = |h: &str| headers.get(h).and_then(|v| v.to_str().ok());
    let host = get("x-forwarded-host")
        .or_else(|| get(header::HOST.as_str()))
        .unwrap_or("localhost");
    let proto = get("x-forwarded-proto").unwrap_or("http");
    format!("{proto}://{host}")
}

fn view(s: &AppState, row: &PreviewRow, base: &str) -> PreviewLink {
    let token = preview::token(&s.secret, row);
    let url = format!("{base}/p/{token}");
    PreviewLink {
        id: row.id,
        model_id: row.model_id,
        qr_svg: preview::qr_svg(&url),
        url,
        token,
        created_at: row.created_at.clone(),
        expires_at: rfc3339(row.expires_at),
        revoked: row.revoked,
        expired: s.clock.unix_now() >= row.expires_at,
    }
}

async fn create(
    State(s): State<AppState>,
    p: Principal,
    Id(id): Id,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> ApiResult<(StatusCode, axum::Json<PreviewLink>)> {
    authorised_model(&s, &p, Permission::TrainInstance, id).await?;
    // The body is optional: no body means the defaults.
    let req: CreatePreviewLink = if body.iter().all(u8::is_ascii_whitespace) {
        CreatePreviewLink::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::bad_request("invalid_json", format!("the body is not valid JSON: {e}"))
        })?
    };
    let hours = req.expires_in_hours.unwrap_or(s.config.preview_hours);
    if !(hours > 0.0 && hours <= MAX_EXPIRES_HOURS) {
        return Err(ApiError::invalid(
            "expires_in_hours",
            "invalid_expiry",
            format!("expires_in_hours must be above 0 and at most {MAX_EXPIRES_HOURS} (30 days)"),
        ));
    }
    let expires_at = s.clock.unix_now() + (hours * 3600.0).round().max(1.0) as i64;
    let row = s.db.create_preview_link(id, p.id, expires_at).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(view(&s, &row, &public_base(&s, &headers))),
    ))
}

async fn list(
    State(s): State<AppState>,
    p: Principal,
    Id(id): Id,
    headers: HeaderMap,
) -> ApiResult<axum::Json<Vec<PreviewLink>>> {
    authorised_model(&s, &p, Permission::ListInstance, id).await?;
    let base = public_base(&s, &headers);
    let rows = s.db.preview_links(id).await?;
    Ok(axum::Json(
        rows.iter().map(|r| view(&s, r, &base)).collect(),
    ))
}

async fn revoke(State(s): State<AppState>, p: Principal, Id(id): Id) -> ApiResult<StatusCode> {
    let row =
        s.db.preview_link(id)
            .await?
            .ok_or_else(|| ApiError::not_found("preview link"))?;
    authorised_model(&s, &p, Permission::TrainInstance, row.model_id)
        .await
        .map_err(|e| crate::error::as_missing(e, "preview link"))?;
    if !s.db.revoke_preview_link(id).await? {
        return Err(ApiError::conflict(format!(
            "preview link {id} is already revoked"
        )));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// The link a token stands for, or 403 saying why it is refused.
pub async fn resolve(s: &AppState, token: &str) -> ApiResult<PreviewRow> {
    let row = match preview::link_id(token) {
        Some(id) => s.db.preview_link(id).await?,
        None => None,
    };
    preview::check(&s.secret, token, row.as_ref(), s.clock.unix_now())
        .map_err(|r| ApiError::new(StatusCode::FORBIDDEN, r.code(), r.message()))?;
    row.ok_or_else(|| ApiError::internal("checked preview link vanished"))
}

async fn info(
    State(s): State<AppState>,
    Path(token): Path<String>,
) -> ApiResult<axum::Json<PreviewInfo>> {
    let link = resolve(&s, &token).await?;
    let (m, _) =
        s.db.model(link.model_id)
            .await?
            .ok_or_else(|| ApiError::not_found("model"))?;
    let instance = s.db.instance(m.instance_id).await?.map(|i| i.name);
    Ok(axum::Json(PreviewInfo {
        model_id: m.id,
        instance_name: instance.unwrap_or_default(),
        version: m.version,
        labels: m.labels.clone(),
        image_size: m.image_size,
        created_at: m.created_at.clone(),
        expires_at: rfc3339(link.expires_at),
        metrics: m.metrics.summary(),
        artifact_url: format!("/api/models/{}/artifact?format=web&preview={token}", m.id),
    }))
}
