//! Deploying model versions as services and the predict endpoint (SPEC §7).

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::Deserialize;
use shared::Permission;
use shared::predict::{
    ImageMeta, Output, PredictError, PredictResult, PredictSuccess, input, ocr_body,
};
use shared::recall::Service;

use super::recall::{check_replicas, register_service};
use crate::AppState;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, Id, Json};
use crate::serve::engine::Ticket;
use crate::serve::{Caller, Runner, Unavailable};
use shared::model::ocr::Line;
use tokio::sync::oneshot;

/// Largest predict body (base64 of up to [`input::MAX_ITEMS`] images).
pub const MAX_PREDICT_BODY: usize = 32 * 1024 * 1024;
pub const MAX_REPLICAS: i64 = 16;
/// A request waits at most this long for its turn and its forward pass.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(30);

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/models/{id}/services", post(deploy))
        .route(
            "/api/predict/{service}",
            // The handler reads the body itself, after the token check, up to its own limit.
            post(predict).layer(DefaultBodyLimit::disable()),
        )
}

#[derive(Deserialize)]
struct DeployRequest {
    name: String,
    #[serde(default = "one")]
    replicas: i64,
}

fn one() -> i64 {
    1
}

/// Deploys a model version; the answer carries the token, shown once.
async fn deploy(
    State(s): State<AppState>,
    p: Principal,
    Id(model_id): Id,
    Json(req): Json<DeployRequest>,
) -> ApiResult<(StatusCode, axum::Json<Service>)> {
    let (m, _) =
        s.db.model(model_id)
            .await?
            .ok_or_else(|| ApiError::not_found("model"))?;
    p.require_on(Permission::TrainInstance, m.instance_id, "model")?;
    let mut svc = register_service(
        &s,
        &req.name,
        m.instance_id,
        "predict",
        req.replicas,
        MAX_REPLICAS,
        Some(model_id),
    )
    .await?;
    load_in_background(&s, &req.name);
    svc.status = Some("loading".into());
    Ok((StatusCode::CREATED, axum::Json(svc)))
}

/// Loads (or re-loads) a service's model now, so the first request does not wait for it.
fn load_in_background(s: &AppState, name: &str) {
    let s = s.clone();
    let name = name.to_owned();
    tokio::spawn(async move {
        let _ = s.predict.get(&s, &name, Caller::Server).await;
    });
}

#[derive(Deserialize)]
pub struct UpdateService {
    pub model_id: Option<i64>,
    pub replicas: Option<i64>,
}

/// `PATCH /api/services/{name}`: serve another version of the same instance and/or change
/// the replica count. The new model loads beside the old one, which answers meanwhile.
pub async fn update(
    State(s): State<AppState>,
    p: Principal,
    Path(name): Path<String>,
    Json(req): Json<UpdateService>,
) -> ApiResult<axum::Json<Service>> {
    let svc =
        s.db.service(&name)
            .await?
            .ok_or_else(|| ApiError::not_found("service"))?;
    p.require_on(Permission::TrainInstance, svc.instance_id, "service")?;
    let Some(current) = svc.model_id else {
        return Err(ApiError::unprocessable(
            "not_a_predict_service",
            format!("{name} is a recall service; it has no model version"),
        ));
    };
    let model_id = req.model_id.unwrap_or(current);
    let (m, _) =
        s.db.model(model_id)
            .await?
            .filter(|(m, _)| m.instance_id == svc.instance_id)
            .ok_or_else(|| {
                ApiError::invalid(
                    "model_id",
                    "unknown_model",
                    format!("the service's instance has no model {model_id}"),
                )
            })?;
    let replicas = req.replicas.unwrap_or(svc.replicas);
    check_replicas(replicas, MAX_REPLICAS)?;
    s.db.update_predict_service(&name, m.id, replicas).await?;
    load_in_background(&s, &name);
    let mut svc =
        s.db.service(&name)
            .await?
            .ok_or_else(|| ApiError::not_found("service"))?;
    svc.status = s.predict.status(&name);
    Ok(axum::Json(svc))
}

fn failure(status: StatusCode, e: PredictError) -> Response {
    (status, axum::Json(e.body())).into_response()
}

fn error_status(e: PredictError) -> StatusCode {
    match e {
        PredictError::InputFormat | PredictError::ImageDecode => StatusCode::BAD_REQUEST,
        PredictError::GetInstance => StatusCode::SERVICE_UNAVAILABLE,
        PredictError::Unknown | PredictError::ModelForward => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The token as sent: bare (the original's clients) or after `Bearer `.
fn sent_token(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get("authorization")?.to_str().ok()?.trim();
    Some(v.strip_prefix("Bearer ").unwrap_or(v))
}

async fn predict(
    State(s): State<AppState>,
    Path(service): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    // The token first: without it nothing is loaded, parsed, decoded or run, and a missing
    // service answers as a wrong token does.
    let loaded = match s
        .predict
        .get(&s, &service, Caller::Token(sent_token(&headers)))
        .await
    {
        Ok(l) => l,
        Err(Unavailable::Refused) => {
            return (
                StatusCode::UNAUTHORIZED,
                axum::Json(serde_json::json!({"success": false, "errorCode": "401", "errorMsg": "missing or wrong token in the Authorization header"})),
            )
                .into_response();
        }
        Err(Unavailable::Failed(_)) => {
            return failure(StatusCode::SERVICE_UNAVAILABLE, PredictError::GetInstance);
        }
    };
    // A body announced as too large is refused before any of it is read.
    let announced = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > MAX_PREDICT_BODY as u64) {
        return failure(StatusCode::PAYLOAD_TOO_LARGE, PredictError::InputFormat);
    }
    // A place in the engine before the body is read: a full service refuses at once, and
    // the bodies being read at any time are bounded by the engine's places.
    let Ok(first) = loaded.runner.admit() else {
        return failure(StatusCode::SERVICE_UNAVAILABLE, PredictError::GetInstance);
    };
    // The place is held while the body arrives, so a body must arrive in time.
    let body = match tokio::time::timeout(
        FORWARD_TIMEOUT,
        axum::body::to_bytes(body, MAX_PREDICT_BODY),
    )
    .await
    {
        Ok(Ok(b)) => b,
        Ok(Err(_)) => return failure(StatusCode::PAYLOAD_TOO_LARGE, PredictError::InputFormat),
        Err(_) => return failure(StatusCode::REQUEST_TIMEOUT, PredictError::InputFormat),
    };
    let images = match input::parse(&body) {
        Ok(i) => i,
        Err(e) => return failure(error_status(e), e),
    };
    drop(body);
    match answer(&s, &loaded, images, first).await {
        Ok(result) => axum::Json(PredictSuccess {
            success: true,
            result,
        })
        .into_response(),
        Err(e) => failure(error_status(e), e),
    }
}

/// An image's answer on its way, from the engine its service runs.
enum Pending {
    Image(oneshot::Receiver<Result<Vec<f32>, String>>, usize),
    Ocr(oneshot::Receiver<Result<Vec<Line>, String>>),
}

/// Each image's answer from a loaded model: decoded under the decode permits, run on its
/// engine (batched with whatever else is queued there), in the SPEC §7 shape. `first` is a
/// place already taken for the first image.
pub(crate) async fn answer(
    s: &AppState,
    loaded: &crate::serve::Loaded,
    images: Vec<Vec<u8>>,
    first: Ticket,
) -> Result<PredictResult, PredictError> {
    let mut pending = Vec::with_capacity(images.len());
    let mut meta: Option<ImageMeta> = None;
    let mut first = Some(first);
    for bytes in images {
        // A place in the engine first (the first image's was taken before the body was
        // read): when it is full, refuse before decoding anything.
        let ticket = match first.take() {
            Some(t) => t,
            None => loaded
                .runner
                .admit()
                .map_err(|_| PredictError::GetInstance)?,
        };
        // Decoding is CPU-heavy: bounded by the decode permits, and refused (2002) when
        // they stay taken, rather than queueing without end.
        let permit = tokio::time::timeout(
            Duration::from_secs(5),
            s.decode_permits.clone().acquire_owned(),
        )
        .await
        .map_err(|_| PredictError::GetInstance)?
        .map_err(|_| PredictError::Unknown)?;
        let busy = |_| PredictError::GetInstance;
        let answer = match &loaded.runner {
            Runner::Image { engine, side } => {
                let side = *side;
                let (input, m) = tokio::task::spawn_blocking(move || {
                    let _permit = permit;
                    input::prepare(&bytes, u32::try_from(side).unwrap_or(224))
                })
                .await
                .map_err(|_| PredictError::Unknown)??;
                meta.get_or_insert(m);
                Pending::Image(engine.submit(input).map_err(busy)?, side)
            }
            Runner::Ocr(engine) => {
                let (page, m) = tokio::task::spawn_blocking(move || {
                    let _permit = permit;
                    input::decode_page(&bytes)
                })
                .await
                .map_err(|_| PredictError::Unknown)??;
                meta.get_or_insert(m);
                Pending::Ocr(engine.submit(page).map_err(busy)?)
            }
        };
        pending.push((ticket, answer));
    }
    let mut output = Vec::with_capacity(pending.len());
    for (_ticket, answer) in pending {
        let body = match answer {
            Pending::Image(rx, side) => loaded.body(&wait(rx).await?, side),
            Pending::Ocr(rx) => ocr_body(&wait(rx).await?),
        };
        output.push(Output {
            kind: "cv_common".into(),
            body,
        });
    }
    Ok(PredictResult {
        output,
        meta: meta.ok_or(PredictError::InputFormat)?,
    })
}

/// An engine's answer, within the time a request may wait.
async fn wait<T>(rx: oneshot::Receiver<Result<T, String>>) -> Result<T, PredictError> {
    tokio::time::timeout(FORWARD_TIMEOUT, rx)
        .await
        .map_err(|_| PredictError::GetInstance)?
        .map_err(|_| PredictError::ModelForward)?
        .map_err(|_| PredictError::ModelForward)
}
