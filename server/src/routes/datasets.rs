//! Datasets: indexed from a storage location, counted, listed, re-indexed and exported.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use shared::api::{
    CreateDataset, Dataset, ImagePage, ImageStatus, PrelabelRun, Prelabels, StartPrelabels,
};
use shared::names::DatasetName;
use shared::{InstanceType, Permission};

use super::instances::{authorised_instance, check_description};
use super::query::{ExportQuery, ImagesQuery, SuggestionsQuery};
use crate::auth::Principal;
use crate::db::datasets::DatasetRef;
use crate::db::images::ImageFilter;
use crate::db::is_unique_violation;
use crate::error::{ApiError, ApiResult, Id, Json, Query};
use crate::storage::Location;
use crate::{AppState, export, indexer, prelabel, thumbnail};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/instances/{id}/datasets", get(list).post(create))
        .route("/api/datasets/{id}", get(show).delete(remove))
        .route("/api/datasets/{id}/reindex", post(reindex))
        .route("/api/datasets/{id}/images", get(images))
        .route("/api/datasets/{id}/export", get(export_archive))
        .route("/api/datasets/{id}/suggestions", get(suggestions))
        .route(
            "/api/datasets/{id}/prelabels",
            get(prelabels).post(start_prelabels),
        )
}

/// The dataset's pre-labelling run and the drafts waiting for a decision.
async fn prelabels(
    State(s): State<AppState>,
    p: Principal,
    Id(id): Id,
) -> ApiResult<axum::Json<Prelabels>> {
    authorised_dataset(&s, &p, Permission::LabelInstance, id).await?;
    Ok(axum::Json(Prelabels {
        run: s.db.prelabel_run(id).await?,
        items: s.db.prelabels(id).await?,
    }))
}

/// Starts pre-labelling the dataset's unlabelled images with one of its instance's model
/// versions (replacing the previous run's drafts); 409 while a run is going on.
async fn start_prelabels(
    State(s): State<AppState>,
    p: Principal,
    Id(id): Id,
    Json(req): Json<StartPrelabels>,
) -> ApiResult<(StatusCode, axum::Json<PrelabelRun>)> {
    let d = authorised_dataset(&s, &p, Permission::LabelInstance, id).await?;
    if d.kind == InstanceType::RecommendationRecall {
        return Err(ApiError::unprocessable(
            "wrong_instance_type",
            "recall datasets have no images to pre-label",
        ));
    }
    let unknown = || {
        ApiError::invalid(
            "model_id",
            "unknown_model",
            format!(
                "model {} is not a version of this dataset's instance",
                req.model_id
            ),
        )
    };
    let (m, _) =
        s.db.model(req.model_id)
            .await?
            .filter(|(m, _)| m.instance_id == d.instance_id)
            .ok_or_else(unknown)?;
    let targets: Vec<prelabel::Target> =
        s.db.current_images(id)
            .await?
            .into_iter()
            .filter(|i| !i.labelled)
            .map(|i| prelabel::Target {
                id: i.id,
                path: i.path,
                width: i.width,
                height: i.height,
            })
            .collect();
    if !s
        .db
        .start_prelabel_run(id, m.id, targets.len() as i64)
        .await?
    {
        return Err(ApiError::conflict(
            "a pre-labelling run is going on for this dataset; wait for it to finish",
        ));
    }
    tokio::spawn(prelabel::run(s.clone(), d, m.id, targets));
    let run =
        s.db.prelabel_run(id)
            .await?
            .ok_or_else(|| ApiError::internal("the run just started is missing"))?;
    Ok((StatusCode::ACCEPTED, axum::Json(run)))
}

/// Label suggestions from the dataset's own labels (classification datasets): answers
/// `computing` with progress while the images' embeddings are computed; the app polls.
async fn suggestions(
    State(s): State<AppState>,
    p: Principal,
    Id(id): Id,
    Query(q): Query<SuggestionsQuery>,
) -> ApiResult<axum::Json<shared::api::Suggestions>> {
    let d = authorised_dataset(&s, &p, Permission::LabelInstance, id).await?;
    if d.kind != InstanceType::ImageClassification {
        return Err(ApiError::unprocessable(
            "wrong_instance_type",
            format!(
                "suggestions are for image_classification datasets; {} is {}",
                d.name,
                d.kind.as_str()
            ),
        ));
    }
    let images = s.db.current_images(id).await?;
    let out = s
        .assist
        .suggestions(&s, id, &d.location, images, q.doubtful)
        .await
        .map_err(|e| ApiError::unprocessable("suggestions_unavailable", format!("{e:#}")))?;
    Ok(axum::Json(out))
}

/// Loads a dataset after checking `perm` on its instance.
pub async fn authorised_dataset(
    s: &AppState,
    p: &Principal,
    perm: Permission,
    id: i64,
) -> ApiResult<DatasetRef> {
    let d =
        s.db.dataset_ref(id)
            .await?
            .ok_or_else(|| ApiError::not_found("dataset"))?;
    p.require_on(perm, d.instance_id, "dataset")?;
    Ok(d)
}

async fn list(
    State(s): State<AppState>,
    p: Principal,
    Id(id): Id,
) -> ApiResult<axum::Json<Vec<Dataset>>> {
    authorised_instance(&s, &p, Permission::ListInstance, id).await?;
    let mut out = Vec::new();
    for ds in s.db.dataset_ids(id).await? {
        if let Some(d) = s.db.dataset(ds).await? {
            out.push(d);
        }
    }
    Ok(axum::Json(out))
}

async fn create(
    State(s): State<AppState>,
    p: Principal,
    Id(id): Id,
    Json(req): Json<CreateDataset>,
) -> ApiResult<(StatusCode, axum::Json<Dataset>)> {
    let inst = authorised_instance(&s, &p, Permission::EditInstance, id).await?;
    if inst.kind == InstanceType::RecommendationRecall {
        return Err(ApiError::unprocessable(
            "wrong_instance_type",
            "recommendation_recall instances take tables, not image datasets",
        ));
    }
    DatasetName::parse(req.name.as_str())
        .map_err(|e| ApiError::invalid("name", "invalid_name", e.to_string()))?;
    check_description(&req.description)?;
    let loc = Location::parse(req.path.trim(), &s.config.dataset_roots())
        .map_err(|e| ApiError::from(e).with_field("path"))?;
    let store = s
        .storage
        .open(&loc)
        .map_err(|e| ApiError::from(e).with_field("path"))?;
    let report = indexer::index(&store, inst.kind).await.map_err(|e| {
        ApiError::unprocessable(
            "index_failed",
            format!("could not index {}: {e}", loc.to_uri()),
        )
        .with_field("path")
    })?;
    let ds = match s
        .db
        .create_dataset(id, &req.name, &req.description, &loc.to_uri(), &report)
        .await
    {
        Ok(ds) => ds,
        Err(e) if is_unique_violation(&e) => {
            return Err(ApiError::conflict(format!(
                "this instance already has a dataset named {:?}",
                req.name
            ))
            .with_field("name"));
        }
        Err(e) => return Err(e.into()),
    };
    tokio::spawn(thumbnail::warm_dataset(s.clone(), ds));
    let d =
        s.db.dataset(ds)
            .await?
            .ok_or_else(|| ApiError::not_found("dataset"))?;
    Ok((StatusCode::CREATED, axum::Json(d)))
}

async fn show(
    State(s): State<AppState>,
    p: Principal,
    Id(id): Id,
) -> ApiResult<axum::Json<Dataset>> {
    authorised_dataset(&s, &p, Permission::ListInstance, id).await?;
    s.db.dataset(id)
        .await?
        .map(axum::Json)
        .ok_or_else(|| ApiError::not_found("dataset"))
}

async fn remove(State(s): State<AppState>, p: Principal, Id(id): Id) -> ApiResult<StatusCode> {
    authorised_dataset(&s, &p, Permission::EditInstance, id).await?;
    s.db.delete_dataset(id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Picks up new and removed files; annotations edited in the browser are kept.
async fn reindex(
    State(s): State<AppState>,
    p: Principal,
    Id(id): Id,
) -> ApiResult<axum::Json<Dataset>> {
    let d = authorised_dataset(&s, &p, Permission::EditInstance, id).await?;
    let store = s.storage.open_uri(&d.location)?;
    let report = indexer::index(&store, d.kind).await.map_err(|e| {
        ApiError::unprocessable(
            "index_failed",
            format!("could not index {}: {e}", d.location),
        )
    })?;
    s.db.reindex_dataset(id, &report).await?;
    tokio::spawn(thumbnail::warm_dataset(s.clone(), id));
    s.db.dataset(id)
        .await?
        .map(axum::Json)
        .ok_or_else(|| ApiError::not_found("dataset"))
}

async fn images(
    State(s): State<AppState>,
    p: Principal,
    Id(id): Id,
    Query(q): Query<ImagesQuery>,
) -> ApiResult<axum::Json<ImagePage>> {
    authorised_dataset(&s, &p, Permission::ListInstance, id).await?;
    let (page, per_page) = q.page()?;
    let filter = ImageFilter {
        label: q.label(),
        status: q.status.unwrap_or(ImageStatus::All),
        page,
        per_page,
    };
    let (items, total) = s.db.images(id, &filter).await?;
    Ok(axum::Json(ImagePage {
        items,
        page,
        per_page,
        total,
    }))
}

async fn export_archive(
    State(s): State<AppState>,
    p: Principal,
    Id(id): Id,
    Query(q): Query<ExportQuery>,
) -> ApiResult<Response> {
    let d = authorised_dataset(&s, &p, Permission::ListInstance, id).await?;
    let format = export::Format::parse(q.format.as_deref(), d.kind)
        .map_err(|m| ApiError::invalid("format", "invalid_format", m))?;
    let permit = s.export_permits.clone().try_acquire_owned().map_err(|_| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            format!(
                "{} exports are running; try again when one has finished",
                export::MAX_CONCURRENT_EXPORTS
            ),
        )
    })?;
    let images = s.db.labelled_images(id).await?;
    let store = s.storage.open_uri(&d.location)?;
    let tar = axum::body::Body::from_stream(export::archive(store, d.kind, format, images, permit));
    let filename = format!("{}-{}.tar", d.name, format.name());
    Ok((
        [
            (CONTENT_TYPE, "application/x-tar".to_owned()),
            (
                CONTENT_DISPOSITION,
                format!("attachment; filename=\"{filename}\""),
            ),
        ],
        tar,
    )
        .into_response())
}
