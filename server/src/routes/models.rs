//! Model versions (SPEC §5): list with metrics, one with its evaluation, delete, and the
//! artifact (weights + meta.json) runtimes load.

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use shared::Permission;
use shared::train::ModelVersion;

use super::instances::authorised_instance;
use crate::AppState;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, Id};
use crate::train::artifact::MAX_ARTIFACT_BYTES;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/instances/{id}/models", get(list))
        .route("/api/models/{id}", get(show).delete(remove))
        .route("/api/models/{id}/artifact", get(artifact))
}

async fn authorised_model(
    s: &AppState,
    p: &Principal,
    perm: Permission,
    id: i64,
) -> ApiResult<(ModelVersion, String)> {
    let found =
        s.db.model(id)
            .await?
            .ok_or_else(|| ApiError::not_found("model"))?;
    p.require(perm, Some(found.0.instance_id))?;
    Ok(found)
}

async fn list(
    State(s): State<AppState>,
    p: Principal,
    Id(id): Id,
) -> ApiResult<axum::Json<Vec<ModelVersion>>> {
    authorised_instance(&s, &p, Permission::ListInstance, id).await?;
    Ok(axum::Json(s.db.models(id).await?))
}

async fn show(
    State(s): State<AppState>,
    p: Principal,
    Id(id): Id,
) -> ApiResult<axum::Json<ModelVersion>> {
    let (m, _) = authorised_model(&s, &p, Permission::ListInstance, id).await?;
    Ok(axum::Json(m))
}

/// Deletes the version's row first (so nothing can load it any more), then its artifact.
async fn remove(State(s): State<AppState>, p: Principal, Id(id): Id) -> ApiResult<StatusCode> {
    let (_, key) = authorised_model(&s, &p, Permission::TrainInstance, id).await?;
    let serving = s.db.services_of_model(id).await?;
    if !serving.is_empty() {
        return Err(ApiError::conflict(format!(
            "model {id} is deployed as {}; undeploy it or switch the service to another version first",
            serving.join(", ")
        )));
    }
    s.db.delete_model(id).await?;
    let store = s.storage.open_uri(&s.config.models_uri)?;
    if let Err(e) = store.delete(&key).await {
        tracing::warn!("model {id} deleted, but its artifact {key} could not be removed: {e}");
    }
    Ok(StatusCode::NO_CONTENT)
}

/// The artifact as stored: a tar of `meta.json` and `model.bpk` (half-precision weights).
async fn artifact(
    State(s): State<AppState>,
    p: Principal,
    Id(id): Id,
) -> ApiResult<impl IntoResponse> {
    let (m, key) = authorised_model(&s, &p, Permission::ListInstance, id).await?;
    let store = s.storage.open_uri(&s.config.models_uri)?;
    let bytes = store.read(&key, MAX_ARTIFACT_BYTES).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/x-tar".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!(
                    "attachment; filename=\"model-{}-v{}.tar\"",
                    m.instance_id, m.version
                ),
            ),
            (
                header::CACHE_CONTROL,
                "private, max-age=31536000, immutable".to_owned(),
            ),
        ],
        bytes,
    ))
}
