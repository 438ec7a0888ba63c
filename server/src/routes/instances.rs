//! Instances of the four types (SPEC §1).

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use serde::Deserialize;
use shared::api::{CreateInstance, Instance, UpdateInstance};
use shared::names::validate_instance_name;
use shared::{InstanceType, Permission};

use crate::AppState;
use crate::auth::Principal;
use crate::db::is_unique_violation;
use crate::error::{ApiError, ApiResult, Id, Json};
use crate::storage::Location;
use crate::train::template;
use crate::{indexer, thumbnail};

pub const MAX_DESCRIPTION_CHARS: usize = 500;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/instances", get(list).post(create))
        .route(
            "/api/instances/{id}",
            get(show).patch(update).delete(remove),
        )
}

pub fn check_description(d: &str) -> ApiResult<()> {
    if d.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(ApiError::invalid(
            "description",
            "invalid_description",
            format!("description must be at most {MAX_DESCRIPTION_CHARS} characters"),
        ));
    }
    Ok(())
}

fn check_name(kind: InstanceType, name: &str) -> ApiResult<()> {
    validate_instance_name(kind, name)
        .map_err(|e| ApiError::invalid("name", "invalid_name", e.to_string()))
}

/// Loads an instance the principal may see with `perm`; 403 before 404 so that names of
/// instances one may not see do not leak.
pub async fn authorised_instance(
    s: &AppState,
    p: &Principal,
    perm: Permission,
    id: i64,
) -> ApiResult<Instance> {
    p.require(perm, Some(id))?;
    s.db.instance(id)
        .await?
        .ok_or_else(|| ApiError::not_found("instance"))
}

async fn list(State(s): State<AppState>, p: Principal) -> ApiResult<axum::Json<Vec<Instance>>> {
    let all = s.db.instances().await?;
    Ok(axum::Json(
        all.into_iter()
            .filter(|i| p.can(Permission::ListInstance, Some(i.id)))
            .collect(),
    ))
}

/// Either a new instance or one made from a template.
#[derive(Deserialize)]
#[serde(untagged)]
enum CreateRequest {
    Template { template: String },
    Plain(CreateInstance),
}

async fn create(
    State(s): State<AppState>,
    p: Principal,
    Json(req): Json<serde_json::Value>,
) -> ApiResult<(StatusCode, axum::Json<Instance>)> {
    p.require(Permission::CreateInstance, None)?;
    let req: CreateRequest = serde_json::from_value(req).map_err(|e| {
        ApiError::bad_request(
            "invalid_json",
            format!("expected {{\"type\", \"name\", \"description\"}} or {{\"template\"}}: {e}"),
        )
    })?;
    let req = match req {
        CreateRequest::Plain(c) => c,
        CreateRequest::Template { template } => {
            let id = create_from_template(&s, &template).await?;
            let inst =
                s.db.instance(id)
                    .await?
                    .ok_or_else(|| ApiError::not_found("instance"))?;
            return Ok((StatusCode::CREATED, axum::Json(inst)));
        }
    };
    check_name(req.kind, &req.name)?;
    check_description(&req.description)?;
    let id = match s
        .db
        .create_instance(req.kind, &req.name, &req.description)
        .await
    {
        Ok(id) => id,
        Err(e) if is_unique_violation(&e) => {
            return Err(ApiError::conflict(format!(
                "an instance named {:?} already exists",
                req.name
            ))
            .with_field("name"));
        }
        Err(e) => return Err(e.into()),
    };
    let inst =
        s.db.instance(id)
            .await?
            .ok_or_else(|| ApiError::not_found("instance"))?;
    Ok((StatusCode::CREATED, axum::Json(inst)))
}

/// Creates an instance with a generated demo dataset; on any failure the instance is removed
/// again, so nothing half-made is left.
async fn create_from_template(s: &AppState, template: &str) -> ApiResult<i64> {
    if !template::TEMPLATES.contains(&template) {
        return Err(ApiError::invalid(
            "template",
            "unknown_template",
            format!(
                "unknown template {template:?}; available: {}",
                template::TEMPLATES.join(", ")
            ),
        ));
    }
    let (kind, description) = match template {
        "scenes" => (
            InstanceType::ObjectDetection,
            "Demo: scenes of circles, squares and triangles with their boxes, drawn by the server (seeded).",
        ),
        "signs" => (
            InstanceType::Ocr,
            "Demo: signs with one or two lines of text and their boxes, rendered by the server in DejaVu Sans (seeded).",
        ),
        _ => (
            InstanceType::ImageClassification,
            "Demo: circles, squares and triangles drawn by the server (seeded).",
        ),
    };
    let mut id = None;
    for n in 1..=50 {
        let name = if n == 1 {
            format!("{template}-demo")
        } else {
            format!("{template}-demo-{n}")
        };
        match s.db.create_instance(kind, &name, description).await {
            Ok(i) => {
                id = Some(i);
                break;
            }
            Err(e) if is_unique_violation(&e) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let id = id.ok_or_else(|| {
        ApiError::conflict(format!("too many {template}-demo instances; delete some"))
    })?;
    let filled = async {
        let dir = s
            .config
            .data_dir
            .join("templates")
            .join(format!("instance-{id}"));
        let d = dir.clone();
        tokio::task::spawn_blocking(move || match kind {
            InstanceType::ObjectDetection => template::write_scenes(&d, 42),
            InstanceType::Ocr => template::write_signs(&d, 42),
            _ => template::write_shapes(&d, 42),
        })
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
        let dir = dir.canonicalize().map_err(ApiError::internal)?;
        let loc = Location::Dir(dir);
        let store = s.storage.open(&loc)?;
        let report = indexer::index(&store, kind)
            .await
            .map_err(ApiError::internal)?;
        let ds =
            s.db.create_dataset(
                id,
                template,
                "Generated demo images",
                &loc.to_uri(),
                &report,
            )
            .await?;
        tokio::spawn(thumbnail::warm_dataset(s.clone(), ds));
        Ok::<_, ApiError>(())
    }
    .await;
    if let Err(e) = filled {
        let _ = s.db.delete_instance(id).await;
        return Err(e);
    }
    Ok(id)
}

async fn show(
    State(s): State<AppState>,
    p: Principal,
    Id(id): Id,
) -> ApiResult<axum::Json<Instance>> {
    authorised_instance(&s, &p, Permission::ListInstance, id)
        .await
        .map(axum::Json)
}

async fn update(
    State(s): State<AppState>,
    p: Principal,
    Id(id): Id,
    Json(req): Json<UpdateInstance>,
) -> ApiResult<axum::Json<Instance>> {
    let inst = authorised_instance(&s, &p, Permission::EditInstance, id).await?;
    let name = req.name.unwrap_or(inst.name);
    let description = req.description.unwrap_or(inst.description);
    check_name(inst.kind, &name)?;
    check_description(&description)?;
    match s.db.update_instance(id, &name, &description).await {
        Ok(()) => {}
        Err(e) if is_unique_violation(&e) => {
            return Err(
                ApiError::conflict(format!("an instance named {name:?} already exists"))
                    .with_field("name"),
            );
        }
        Err(e) => return Err(e.into()),
    }
    s.db.instance(id)
        .await?
        .map(axum::Json)
        .ok_or_else(|| ApiError::not_found("instance"))
}

async fn remove(State(s): State<AppState>, p: Principal, Id(id): Id) -> ApiResult<StatusCode> {
    authorised_instance(&s, &p, Permission::CreateInstance, id).await?;
    let leftovers = crate::cleanup::Leftovers::of_instance(&s, id).await?;
    s.db.delete_instance(id).await?;
    leftovers.remove(&s, &format!("instance {id}")).await;
    Ok(StatusCode::NO_CONTENT)
}
