//! The tag list of a dataset (SPEC §4: "define tags"), with counts.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, patch};
use shared::api::{LabelBody, LabelCount};
use shared::names::LabelName;
use shared::{InstanceType, Permission};

use super::datasets::authorised_dataset;
use crate::AppState;
use crate::auth::Principal;
use crate::db::is_unique_violation;
use crate::error::{ApiError, ApiResult, Json};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/datasets/{id}/labels", get(list).post(create))
        .route(
            "/api/datasets/{id}/labels/{name}",
            patch(rename).delete(remove),
        )
}

/// Classification labels are folder names (ASCII); box labels are any short text.
pub fn check_label(kind: InstanceType, name: &str) -> ApiResult<()> {
    let err = |m: String| Err(ApiError::invalid("name", "invalid_label", m));
    if kind == InstanceType::ImageClassification {
        return LabelName::parse(name)
            .map(|_| ())
            .or_else(|e| err(e.to_string()));
    }
    if name.trim().is_empty() || name.chars().count() > 64 {
        return err("label name must be 1-64 characters".to_owned());
    }
    Ok(())
}

fn id(raw: &str) -> ApiResult<i64> {
    raw.parse().map_err(|_| ApiError::not_found("dataset"))
}

async fn list(
    State(s): State<AppState>,
    p: Principal,
    Path(ds): Path<String>,
) -> ApiResult<axum::Json<Vec<LabelCount>>> {
    let ds = id(&ds)?;
    authorised_dataset(&s, &p, Permission::ListInstance, ds).await?;
    Ok(axum::Json(s.db.dataset_labels(ds).await?))
}

async fn create(
    State(s): State<AppState>,
    p: Principal,
    Path(ds): Path<String>,
    Json(body): Json<LabelBody>,
) -> ApiResult<(StatusCode, axum::Json<LabelCount>)> {
    let d = authorised_dataset(&s, &p, Permission::LabelInstance, id(&ds)?).await?;
    check_label(d.kind, &body.name)?;
    match s.db.add_label(d.id, &body.name).await {
        Ok(()) => Ok((
            StatusCode::CREATED,
            axum::Json(LabelCount {
                name: body.name,
                count: 0,
            }),
        )),
        Err(e) if is_unique_violation(&e) => Err(ApiError::conflict(format!(
            "the dataset already has a label {:?}",
            body.name
        ))
        .with_field("name")),
        Err(e) => Err(e.into()),
    }
}

async fn rename(
    State(s): State<AppState>,
    p: Principal,
    Path((ds, old)): Path<(String, String)>,
    Json(body): Json<LabelBody>,
) -> ApiResult<axum::Json<LabelCount>> {
    let d = authorised_dataset(&s, &p, Permission::LabelInstance, id(&ds)?).await?;
    check_label(d.kind, &body.name)?;
    if body.name == old {
        return Err(ApiError::invalid(
            "name",
            "invalid_label",
            "the new name is the old one",
        ));
    }
    match s.db.relabel(d.id, &old, Some(&body.name)).await {
        Ok(true) => {}
        Ok(false) => return Err(ApiError::not_found(&format!("label {old:?}"))),
        Err(e) if is_unique_violation(&e) => {
            return Err(ApiError::conflict(format!(
                "the dataset already has a label {:?}",
                body.name
            ))
            .with_field("name"));
        }
        Err(e) => return Err(e.into()),
    }
    let labels = s.db.dataset_labels(d.id).await?;
    labels
        .into_iter()
        .find(|l| l.name == body.name)
        .map(axum::Json)
        .ok_or_else(|| ApiError::not_found("label"))
}

async fn remove(
    State(s): State<AppState>,
    p: Principal,
    Path((ds, name)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let d = authorised_dataset(&s, &p, Permission::LabelInstance, id(&ds)?).await?;
    if s.db.relabel(d.id, &name, None).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(&format!("label {name:?}")))
    }
}
