//! Training tasks (SPEC §5): create (queued for a worker), progress, stop, logs and a live
//! event stream (SSE) that also works when the worker runs on another machine, because
//! events are read back from the database.

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::{get, post};
use futures_util::stream::{self, Stream};
use shared::names::TaskName;
use shared::train::{
    CreateTask, MAX_EPOCHS, MIN_IMAGE_SIZE, Preset, Task, TaskEvent, TaskEventBody,
};
use shared::{InstanceType, Permission};

use super::instances::{authorised_instance, check_description};
use super::query::TaskLogQuery;
use crate::AppState;
use crate::auth::Principal;
use crate::db::is_unique_violation;
use crate::error::{ApiError, ApiResult, Id, Json, Query};

pub const MAX_MINUTES: f64 = 60.0;
/// Events one `/logs` or `/events` read returns at most.
const EVENT_PAGE: i64 = 500;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/instances/{id}/tasks", get(list).post(create))
        .route("/api/tasks/{id}", get(show))
        .route("/api/tasks/{id}/stop", post(stop))
        .route("/api/tasks/{id}/logs", get(logs))
        .route("/api/tasks/{id}/events", get(events))
}

/// Loads a task the principal may see with `perm` on its instance.
async fn authorised_task(
    s: &AppState,
    p: &Principal,
    perm: Permission,
    id: i64,
) -> ApiResult<Task> {
    let task =
        s.db.task(id)
            .await?
            .ok_or_else(|| ApiError::not_found("task"))?;
    p.require_on(perm, task.instance_id, "task")?;
    Ok(task)
}

async fn list(
    State(s): State<AppState>,
    p: Principal,
    Id(id): Id,
) -> ApiResult<axum::Json<Vec<Task>>> {
    authorised_instance(&s, &p, Permission::ListInstance, id).await?;
    Ok(axum::Json(s.db.tasks(id).await?))
}

async fn show(State(s): State<AppState>, p: Principal, Id(id): Id) -> ApiResult<axum::Json<Task>> {
    authorised_task(&s, &p, Permission::ListInstance, id)
        .await
        .map(axum::Json)
}

/// Checks a task request against the instance, its dataset and the server's limits;
/// returns the image size and seed to store.
async fn validate(
    s: &AppState,
    instance_id: i64,
    kind: InstanceType,
    req: &CreateTask,
) -> ApiResult<(u32, u64)> {
    if req.preset.instance_type() != kind {
        let allowed: Vec<&str> = Preset::for_type(kind).iter().map(|p| p.as_str()).collect();
        return Err(ApiError::invalid(
            "preset",
            "invalid_preset",
            format!(
                "{} is not a preset of {} instances; use one of: {}",
                req.preset.as_str(),
                kind.as_str(),
                allowed.join(", ")
            ),
        ));
    }
    TaskName::parse(req.name.as_str())
        .map_err(|e| ApiError::invalid("name", "invalid_name", e.to_string()))?;
    check_description(&req.description)?;
    let min = s.config.min_task_minutes;
    if !(req.max_minutes.is_finite() && req.max_minutes >= min && req.max_minutes <= MAX_MINUTES) {
        return Err(ApiError::invalid(
            "max_minutes",
            "invalid_max_minutes",
            format!("max_minutes must be between {min} and {MAX_MINUTES}"),
        ));
    }
    let image_size = req.image_size.unwrap_or_else(|| req.preset.image_size());
    let max_size = req.preset.max_image_size();
    if !(MIN_IMAGE_SIZE..=max_size).contains(&image_size) || !image_size.is_multiple_of(32) {
        return Err(ApiError::invalid(
            "image_size",
            "invalid_image_size",
            format!(
                "image_size must be a multiple of 32 from {MIN_IMAGE_SIZE} to {max_size} for {}",
                req.preset.as_str()
            ),
        ));
    }
    if req.patience.is_some_and(|e| e == 0 || e > MAX_EPOCHS) {
        return Err(ApiError::invalid(
            "patience",
            "invalid_patience",
            format!("patience must be 1 to {MAX_EPOCHS} epochs"),
        ));
    }
    if req.max_epochs.is_some_and(|e| e == 0 || e > MAX_EPOCHS) {
        return Err(ApiError::invalid(
            "max_epochs",
            "invalid_max_epochs",
            format!("max_epochs must be 1 to {MAX_EPOCHS}"),
        ));
    }
    let seed = req.seed.unwrap_or_else(|| u64::from(rand::random::<u32>()));
    if seed > i64::MAX.cast_unsigned() {
        return Err(ApiError::invalid(
            "seed",
            "invalid_seed",
            "seed must be below 2^63",
        ));
    }
    let ds =
        s.db.dataset(req.dataset_id)
            .await?
            .filter(|d| d.instance_id == instance_id)
            .ok_or_else(|| {
                ApiError::invalid(
                    "dataset_id",
                    "unknown_dataset",
                    format!("instance {instance_id} has no dataset {}", req.dataset_id),
                )
            })?;
    // A detector may learn a single kind of object; a classifier needs two to choose from.
    let min_labels = if matches!(kind, InstanceType::ObjectDetection | InstanceType::Ocr) {
        1
    } else {
        2
    };
    let distinct: BTreeSet<&str> = req.labels.iter().map(String::as_str).collect();
    if distinct.len() < min_labels || distinct.len() != req.labels.len() {
        return Err(ApiError::invalid(
            "labels",
            "invalid_labels",
            if min_labels == 1 {
                "give at least one label to learn, each once"
            } else {
                "give at least two different labels to learn"
            },
        ));
    }
    for label in &req.labels {
        let n = ds.per_label.get(label).copied().unwrap_or(0);
        if n < 2 {
            return Err(ApiError::invalid(
                "labels",
                "too_few_images",
                format!(
                    "label {label:?} has {n} labelled image(s) in dataset {:?}; label at least 2",
                    ds.name
                ),
            ));
        }
    }
    if let Some(base) = req.base_model_id {
        let (m, _) =
            s.db.model(base)
                .await?
                .filter(|(m, _)| m.instance_id == instance_id)
                .ok_or_else(|| {
                    ApiError::invalid(
                        "base_model_id",
                        "unknown_model",
                        format!("instance {instance_id} has no model {base}"),
                    )
                })?;
        if m.preset != req.preset {
            return Err(ApiError::invalid(
                "base_model_id",
                "preset_mismatch",
                format!(
                    "model {base} was trained with {}; incremental training keeps the preset",
                    m.preset.as_str()
                ),
            ));
        }
    }
    Ok((image_size, seed))
}

async fn create(
    State(s): State<AppState>,
    p: Principal,
    Id(instance_id): Id,
    Json(req): Json<CreateTask>,
) -> ApiResult<(StatusCode, axum::Json<Task>)> {
    let inst = authorised_instance(&s, &p, Permission::TrainInstance, instance_id).await?;
    if Preset::for_type(inst.kind).is_empty() {
        return Err(ApiError::unprocessable(
            "unsupported_instance_type",
            format!(
                "training is available for image_classification, object_detection and ocr instances; {} is {}",
                inst.name,
                inst.kind.as_str()
            ),
        ));
    }
    let (image_size, seed) = validate(&s, instance_id, inst.kind, &req).await?;
    let id = match s.db.create_task(instance_id, &req, image_size, seed).await {
        Ok(id) => id,
        Err(e) if is_unique_violation(&e) => {
            return Err(ApiError::conflict(format!(
                "instance {} already has a task named {:?}",
                inst.name, req.name
            ))
            .with_field("name"));
        }
        Err(e) => return Err(e.into()),
    };
    let task =
        s.db.task(id)
            .await?
            .ok_or_else(|| ApiError::not_found("task"))?;
    Ok((StatusCode::CREATED, axum::Json(task)))
}

async fn stop(State(s): State<AppState>, p: Principal, Id(id): Id) -> ApiResult<axum::Json<Task>> {
    let task = authorised_task(&s, &p, Permission::TrainInstance, id).await?;
    if !task.status.is_finished() {
        s.db.request_stop(id).await?;
    }
    s.db.task(id)
        .await?
        .map(axum::Json)
        .ok_or_else(|| ApiError::not_found("task"))
}

/// The task's log lines as plain text, one per line, each prefixed with its time.
async fn logs(
    State(s): State<AppState>,
    p: Principal,
    Id(id): Id,
    Query(q): Query<TaskLogQuery>,
) -> ApiResult<String> {
    authorised_task(&s, &p, Permission::ListInstance, id).await?;
    let mut out = String::new();
    let mut after = q.after;
    loop {
        let page = s.db.task_events(id, after, Some("log"), EVENT_PAGE).await?;
        for e in &page {
            if let TaskEventBody::Log { line } = &e.body {
                out.push_str(&e.at);
                out.push(' ');
                out.push_str(line);
                out.push('\n');
            }
        }
        match page.last() {
            Some(last) if page.len() as i64 == EVENT_PAGE => after = last.seq,
            _ => break,
        }
    }
    Ok(out)
}

/// Server-sent events: every event since `Last-Event-ID` (or the start), then new ones as
/// they happen, until the task finishes.
async fn events(
    State(s): State<AppState>,
    p: Principal,
    Id(id): Id,
    headers: HeaderMap,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    authorised_task(&s, &p, Permission::ListInstance, id).await?;
    let after = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let state = EventCursor {
        db: s.db.clone(),
        task: id,
        after,
        pending: Vec::new(),
        finished: false,
        closing: false,
    };
    let stream = stream::unfold(state, |mut c| async move {
        loop {
            if let Some(e) = c.pending.pop() {
                return Some((Ok(to_sse(&e)), c));
            }
            if c.finished {
                return None;
            }
            match c.db.task_events(c.task, c.after, None, EVENT_PAGE).await {
                Ok(mut page) if !page.is_empty() => {
                    c.after = page.last().map_or(c.after, |e| e.seq);
                    c.finished = page.iter().any(|e| {
                        matches!(e.body, TaskEventBody::Status { status, .. } if status.is_finished())
                    });
                    page.reverse();
                    c.pending = page;
                }
                // An unreachable database ends the stream; clients reconnect with
                // Last-Event-ID.
                Err(_) => return None,
                // Nothing new, after the last read the task's row asked for: done.
                Ok(_) if c.closing => return None,
                // Nothing new: the task's row says whether more can come. A status change
                // commits with its event, so once the row says finished (or the task is
                // gone), one more read finds everything there will ever be.
                Ok(_) => match c.db.task(c.task).await {
                    Ok(Some(t)) if !t.status.is_finished() => {
                        tokio::time::sleep(Duration::from_millis(300)).await;
                    }
                    Ok(Some(_)) => c.closing = true,
                    Ok(None) | Err(_) => return None,
                },
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

struct EventCursor {
    db: crate::db::Db,
    task: i64,
    after: i64,
    /// Fetched events not yet sent, newest first.
    pending: Vec<TaskEvent>,
    finished: bool,
    /// The task's row says it finished: the next empty read ends the stream.
    closing: bool,
}

fn to_sse(e: &TaskEvent) -> Event {
    let kind = match e.body {
        TaskEventBody::Log { .. } => "log",
        TaskEventBody::Progress(_) => "progress",
        TaskEventBody::Status { .. } => "status",
    };
    Event::default()
        .id(e.seq.to_string())
        .event(kind)
        .data(serde_json::to_string(e).unwrap_or_default())
}
