//! Model versions (SPEC §5): list with metrics, one with its evaluation, delete, and the
//! artifact (weights + meta.json) runtimes load.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use shared::Permission;
use shared::train::ModelVersion;

use super::instances::authorised_instance;
use super::query::ArtifactQuery;
use crate::AppState;
use crate::artifact::MAX_ARTIFACT_BYTES;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, Id, Query};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/instances/{id}/models", get(list))
        .route("/api/models/{id}", get(show).delete(remove))
        .route("/api/models/{id}/artifact", get(artifact))
}

pub(super) async fn authorised_model(
    s: &AppState,
    p: &Principal,
    perm: Permission,
    id: i64,
) -> ApiResult<(ModelVersion, String)> {
    let found =
        s.db.model(id)
            .await?
            .ok_or_else(|| ApiError::not_found("model"))?;
    p.require_on(perm, found.0.instance_id, "model")?;
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
    crate::cleanup::Leftovers {
        artifacts: vec![key],
        ..Default::default()
    }
    .remove(&s, &format!("model {id}"))
    .await;
    Ok(StatusCode::NO_CONTENT)
}

/// The model's artifact: `format=tar` as stored (a tar of `meta.json` and `model.bpk`),
/// `format=web` in the browser's form (see [`shared::model::artifact`]), gzip-encoded.
/// Readable with a login, or with `preview=<token>` of a valid link to this model.
async fn artifact(
    State(s): State<AppState>,
    Id(id): Id,
    Query(q): Query<ArtifactQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let (m, key) = match &q.preview {
        Some(token) => {
            let link = super::previews::resolve(&s, token).await?;
            if link.model_id != id {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "preview_other_model",
                    "this preview link gives access to another model only",
                ));
            }
            s.db.model(id)
                .await?
                .ok_or_else(|| ApiError::not_found("model"))?
        }
        None => {
            let p = Principal::from_headers(&s, &headers).await?;
            authorised_model(&s, &p, Permission::ListInstance, id).await?
        }
    };
    // An artifact never changes, but access to it can end (a revoked or expired preview link,
    // a withdrawn permission): browsers keep it and revalidate on every use, which the checks
    // above answer with 403 or, still allowed, with a bodiless 304.
    let format = q.format.as_deref().unwrap_or("tar");
    let gzip = format == "web"
        && headers
            .get(header::ACCEPT_ENCODING)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("gzip"));
    let etag = format!("\"model-{id}-{format}{}\"", if gzip { "-gz" } else { "" });
    let revalidate = [
        (header::CACHE_CONTROL, "private, no-cache".to_owned()),
        (header::ETAG, etag.clone()),
    ];
    let unchanged = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    if unchanged && matches!(format, "tar" | "web") {
        return Ok((StatusCode::NOT_MODIFIED, revalidate).into_response());
    }
    let store = s.storage.open_uri(&s.config.models_uri)?;
    let [cache, tag] = revalidate;
    match format {
        "tar" => {
            let bytes = store.read(&key, MAX_ARTIFACT_BYTES).await?;
            let name = format!(
                "attachment; filename=\"model-{}-v{}.tar\"",
                m.instance_id, m.version
            );
            Ok((
                [
                    (header::CONTENT_TYPE, "application/x-tar".to_owned()),
                    (header::CONTENT_DISPOSITION, name),
                    cache,
                    tag,
                ],
                bytes,
            )
                .into_response())
        }
        "web" => {
            let gz = web_artifact(&store, &key).await?;
            let octets = (header::CONTENT_TYPE, "application/octet-stream".to_owned());
            if gzip {
                let encoding = (header::CONTENT_ENCODING, "gzip".to_owned());
                Ok(([octets, encoding, cache, tag], gz).into_response())
            } else {
                let plain = tokio::task::spawn_blocking(move || gunzip(&gz))
                    .await
                    .map_err(ApiError::internal)??;
                Ok(([octets, cache, tag], plain).into_response())
            }
        }
        other => Err(ApiError::invalid(
            "format",
            "invalid_format",
            format!("format must be tar or web, not {other:?}"),
        )),
    }
}

/// The gzip-compressed web form of an artifact, made once and kept beside it in storage
/// (so every server sharing the storage reuses it).
async fn web_artifact(store: &crate::storage::Store, key: &str) -> ApiResult<Bytes> {
    match store
        .read(&crate::artifact::web_key(key), MAX_ARTIFACT_BYTES)
        .await
    {
        Ok(b) => return Ok(b),
        Err(crate::storage::StorageError::NotFound(_)) => {}
        Err(e) => return Err(e.into()),
    }
    let tar = store.read(key, MAX_ARTIFACT_BYTES).await?;
    let gz = tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<u8>> {
        use std::io::Write;
        let (meta, weights) = crate::artifact::unpack(&tar)?;
        let web = shared::model::artifact::encode_web(&meta, &weights);
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        enc.write_all(&web)?;
        Ok(enc.finish()?)
    })
    .await
    .map_err(ApiError::internal)??;
    let gz = Bytes::from(gz);
    store
        .put(&crate::artifact::web_key(key), gz.clone())
        .await?;
    Ok(gz)
}

fn gunzip(gz: &[u8]) -> ApiResult<Vec<u8>> {
    use std::io::Read;
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(gz)
        .take(MAX_ARTIFACT_BYTES)
        .read_to_end(&mut out)
        .map_err(ApiError::internal)?;
    Ok(out)
}
