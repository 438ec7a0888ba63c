//! Recommendation recall (SPEC §8): tables, behaviour logs → CF, strategies, filters,
//! services, the test console and the recall endpoint.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::header::{AUTHORIZATION, CONTENT_LENGTH};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, put};
use shared::api::Instance;
use shared::names::{InstanceName, StrategyName};
use shared::recall::{
    CfJob, CreateFilter, CreateService, CreateStrategy, Filter, RecallItem, RecallRequest,
    RecallResponse, RecallTable, Service, Strategy, TableImport, TableInfo,
};
use shared::{InstanceType, Permission};

use super::instances::authorised_instance;
use super::query::{BehaviorLogQuery, ImportQuery, RecallQuery, recall_options};
use crate::AppState;
use crate::auth::{self, Principal};
use crate::db::cf_jobs::{Refused, WAITING_FOR_A_BUILDER};
use crate::db::is_unique_violation;
use crate::error::{ApiError, ApiResult, Json, Query};
use crate::recall::cache::Access;
use crate::recall::cf::{self, ActionWeights};
use crate::recall::engine::{RecallModel, RecallOptions};
use crate::recall::import::{self, ParseFailure};
use crate::recall::jobs;
use crate::upload::{self, BodyReader};

/// Largest table or log upload.
pub const MAX_UPLOAD_BYTES: usize = 256 * 1024 * 1024;
pub const MAX_STRATEGY_COUNT: i64 = 1000;

pub fn router() -> Router<AppState> {
    // The uploads read their bodies as streams, up to MAX_UPLOAD_BYTES (see parse_upload).
    Router::new()
        .route("/api/instances/{id}/tables/{table}", put(import_table))
        .route(
            "/api/instances/{id}/behavior-logs",
            axum::routing::post(behavior_log),
        )
        .route("/api/instances/{id}/tables", get(tables))
        .route("/api/instances/{id}/behavior-logs/jobs/{job}", get(cf_job))
        .route(
            "/api/instances/{id}/strategies",
            get(strategies).post(create_strategy),
        )
        .route(
            "/api/instances/{id}/strategies/{name}",
            delete(delete_strategy),
        )
        .route(
            "/api/instances/{id}/filters",
            get(filters).post(create_filter),
        )
        .route("/api/instances/{id}/filters/{name}", delete(delete_filter))
        .route(
            "/api/instances/{id}/services",
            get(services).post(create_service),
        )
        .route(
            "/api/instances/{id}/recall-test",
            axum::routing::post(recall_test),
        )
        .route(
            "/api/services/{name}",
            get(show_service)
                .delete(delete_service)
                .patch(super::predict::update),
        )
        .route("/api/recall/{service}", get(recall_get).post(recall_post))
}

fn instance_id(raw: &str) -> ApiResult<i64> {
    raw.parse().map_err(|_| ApiError::not_found("instance"))
}

/// A recall instance the principal holds `perm` on.
async fn recall_instance(
    s: &AppState,
    p: &Principal,
    perm: Permission,
    raw_id: &str,
) -> ApiResult<Instance> {
    let inst = authorised_instance(s, p, perm, instance_id(raw_id)?).await?;
    if inst.kind != InstanceType::RecommendationRecall {
        return Err(ApiError::unprocessable(
            "wrong_instance_type",
            format!(
                "{} is a {} instance; tables, strategies and filters belong to recommendation_recall instances",
                inst.name,
                inst.kind.as_str()
            ),
        ));
    }
    Ok(inst)
}

/// Parses an upload on a blocking thread as it arrives (never held whole), with our error
/// format for its size, its reading and its content (`code` names what was invalid).
async fn parse_upload<T: Send + 'static>(
    headers: &HeaderMap,
    body: Body,
    code: &'static str,
    parse: impl FnOnce(BodyReader) -> Result<T, ParseFailure> + Send + 'static,
) -> ApiResult<T> {
    let too_large = || {
        ApiError::too_large(format!(
            "uploads are limited to {MAX_UPLOAD_BYTES} bytes; split the file and append"
        ))
    };
    let announced = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > MAX_UPLOAD_BYTES as u64) {
        return Err(too_large());
    }
    let reader = BodyReader::new(body, MAX_UPLOAD_BYTES);
    match tokio::task::spawn_blocking(move || parse(reader))
        .await
        .map_err(ApiError::internal)?
    {
        Ok(v) => Ok(v),
        Err(ParseFailure::Invalid(e)) => Err(ApiError::invalid(&e.field, code, e.to_string())),
        Err(ParseFailure::Read(e)) if upload::too_large(&e) => Err(too_large()),
        Err(ParseFailure::Read(e)) => Err(ApiError::bad_request(
            "invalid_body",
            format!("the upload could not be read: {e}"),
        )),
    }
}

async fn import_table(
    State(s): State<AppState>,
    p: Principal,
    Path((id, table)): Path<(String, String)>,
    Query(q): Query<ImportQuery>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<axum::Json<TableImport>> {
    let inst = recall_instance(&s, &p, Permission::EditInstance, &id).await?;
    let table = RecallTable::parse(&table).ok_or_else(|| {
        let names: Vec<&str> = RecallTable::ALL.iter().map(|t| t.as_str()).collect();
        ApiError::not_found(&format!("table {table:?} (tables: {})", names.join(", ")))
    })?;
    let append = q.append()?;
    let rows = parse_upload(&headers, body, "invalid_table", move |r| {
        import::parse_table(table, r)
    })
    .await?;
    let total = s.db.import_table(inst.id, table, &rows, append).await?;
    s.recall.invalidate_instance(inst.id);
    Ok(axum::Json(TableImport {
        table,
        mode: if append { "append" } else { "replace" }.to_owned(),
        imported: rows.len() as i64,
        rows: total,
    }))
}

async fn tables(
    State(s): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Vec<TableInfo>>> {
    let inst = recall_instance(&s, &p, Permission::ListInstance, &id).await?;
    Ok(axum::Json(s.db.table_infos(inst.id, 5).await?))
}

/// Starts a CF build from a behaviour log; answers 202 with the job to poll (on any server).
async fn behavior_log(
    State(s): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    Query(q): Query<BehaviorLogQuery>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<(StatusCode, axum::Json<CfJob>)> {
    let inst = recall_instance(&s, &p, Permission::EditInstance, &id).await?;
    let d = ActionWeights::default();
    let (top_n, [click, buy, favorite]) = q.check([d.click, d.buy, d.favorite])?;
    let weights = ActionWeights {
        click,
        buy,
        favorite,
    };
    // A place first, before the body is read: parsing a log is the expensive part.
    let job_id = format!("cf-{:016x}", rand::random::<u64>());
    let (owner, key) = (s.cf_jobs.claim(), jobs::log_key(&job_id));
    let opened =
        s.db.open_cf_job(
            &job_id,
            inst.id,
            top_n as i64,
            &key,
            &owner,
            s.config.task_lease_secs,
            jobs::MAX_OPEN,
        )
        .await?;
    opened.map_err(|why| match why {
        Refused::InstanceBusy => ApiError::conflict(
            "this instance is already building from a behaviour log; wait for that job",
        ),
        Refused::Full => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            format!(
                "{} behaviour-log builds are open; try again when one has finished",
                jobs::MAX_OPEN
            ),
        ),
    })?;
    let mut receiving = Receiving {
        s: s.clone(),
        id: Some(job_id.clone()),
    };
    if let Err(e) = receive_log(&s, &job_id, &owner, &key, &headers, body, weights).await {
        // Forgotten before the answer, so the instance is free for a corrected log.
        receiving.forget().await;
        return Err(e);
    }
    receiving.id = None;
    s.cf_jobs.queued();
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(CfJob {
            id: job_id,
            instance_id: inst.id,
            state: "running".to_owned(),
            progress: 0.0,
            stage: WAITING_FOR_A_BUILDER.to_owned(),
            error: None,
            stats: None,
        }),
    ))
}

/// Parses a log as it arrives (before answering, so a bad log is a 400 naming its line, not
/// a failed job), stores it where every server's builder can read it and queues the build;
/// the receiving row's lease is kept alive meanwhile.
async fn receive_log(
    s: &AppState,
    job_id: &str,
    owner: &str,
    key: &str,
    headers: &HeaderMap,
    body: Body,
    weights: ActionWeights,
) -> ApiResult<()> {
    let _alive = jobs::Heartbeat::start(s, job_id, owner, Arc::default());
    let log = parse_upload(headers, body, "invalid_log", move |r| {
        cf::parse_log(r, weights)
    })
    .await?;
    if log.interactions.is_empty() {
        return Err(ApiError::invalid(
            "log",
            "invalid_log",
            "the log has no interactions",
        ));
    }
    let bytes = tokio::task::spawn_blocking(move || log.encode())
        .await
        .map_err(ApiError::internal)?;
    s.storage
        .open_uri(&s.config.models_uri)?
        .put(key, bytes.into())
        .await?;
    if !s.db.queue_cf_job(job_id, owner).await? {
        return Err(ApiError::internal(
            "the build's row was taken away while its log was stored",
        ));
    }
    Ok(())
}

/// A build row in `receiving`, with the log it may have stored: forgotten unless queued, so
/// a refused log, or a client gone while its log was parsed, leaves no build holding the
/// instance and no stored log.
struct Receiving {
    s: AppState,
    id: Option<String>,
}

impl Receiving {
    async fn forget(&mut self) {
        if let Some(id) = self.id.take() {
            forget(&self.s, &id).await;
        }
    }
}

/// The request was dropped (its client went away) while receiving.
impl Drop for Receiving {
    fn drop(&mut self) {
        if let (Some(id), Ok(rt)) = (self.id.take(), tokio::runtime::Handle::try_current()) {
            let s = self.s.clone();
            rt.spawn(async move { forget(&s, &id).await });
        }
    }
}

async fn forget(s: &AppState, id: &str) {
    match s.db.drop_cf_job(id).await {
        Ok(Some(key)) => jobs::remove_log(s, &key).await,
        Ok(None) => {}
        // Its lease runs out and the builders fail it (and remove its log).
        Err(e) => tracing::warn!("CF job {id}: forgetting a refused log: {e}"),
    }
}

async fn cf_job(
    State(s): State<AppState>,
    p: Principal,
    Path((id, job)): Path<(String, String)>,
) -> ApiResult<axum::Json<CfJob>> {
    let inst = recall_instance(&s, &p, Permission::ListInstance, &id).await?;
    s.db.cf_job(&job)
        .await?
        .filter(|j| j.instance_id == inst.id)
        .map(axum::Json)
        .ok_or_else(|| ApiError::not_found("job"))
}

fn check_name(name: &str, what: &str) -> ApiResult<()> {
    StrategyName::parse(name).map(|_| ()).map_err(|e| {
        ApiError::invalid(
            "name",
            "invalid_name",
            e.to_string().replace("strategy name", what),
        )
    })
}

async fn strategies(
    State(s): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Vec<Strategy>>> {
    let inst = recall_instance(&s, &p, Permission::ListInstance, &id).await?;
    Ok(axum::Json(s.db.strategies(inst.id).await?))
}

async fn create_strategy(
    State(s): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    Json(req): Json<CreateStrategy>,
) -> ApiResult<(StatusCode, axum::Json<Strategy>)> {
    let inst = recall_instance(&s, &p, Permission::EditInstance, &id).await?;
    check_name(&req.name, "strategy name")?;
    if !(1..=MAX_STRATEGY_COUNT).contains(&req.count) {
        return Err(ApiError::invalid(
            "count",
            "invalid_count",
            format!("count is 1 to {MAX_STRATEGY_COUNT}"),
        ));
    }
    match s
        .db
        .create_strategy(inst.id, &req.name, req.kind, req.count)
        .await
    {
        Ok(_) => {}
        Err(e) if is_unique_violation(&e) => {
            return Err(
                ApiError::conflict(format!("a strategy named {:?} exists", req.name))
                    .with_field("name"),
            );
        }
        Err(e) => return Err(e.into()),
    }
    s.recall.invalidate_instance(inst.id);
    let created =
        s.db.strategies(inst.id)
            .await?
            .into_iter()
            .find(|x| x.name == req.name);
    created
        .map(|c| (StatusCode::CREATED, axum::Json(c)))
        .ok_or_else(|| ApiError::not_found("strategy"))
}

async fn delete_strategy(
    State(s): State<AppState>,
    p: Principal,
    Path((id, name)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let inst = recall_instance(&s, &p, Permission::EditInstance, &id).await?;
    if !s.db.delete_strategy(inst.id, &name).await? {
        return Err(ApiError::not_found(&format!("strategy {name:?}")));
    }
    s.recall.invalidate_instance(inst.id);
    Ok(StatusCode::NO_CONTENT)
}

async fn filters(
    State(s): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Vec<Filter>>> {
    let inst = recall_instance(&s, &p, Permission::ListInstance, &id).await?;
    Ok(axum::Json(s.db.filters(inst.id).await?))
}

async fn create_filter(
    State(s): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    Json(req): Json<CreateFilter>,
) -> ApiResult<(StatusCode, axum::Json<Filter>)> {
    let inst = recall_instance(&s, &p, Permission::EditInstance, &id).await?;
    check_name(&req.name, "filter name")?;
    let id = match s.db.create_filter(inst.id, &req.name, req.kind).await {
        Ok(id) => id,
        Err(e) if is_unique_violation(&e) => {
            return Err(
                ApiError::conflict(format!("a filter named {:?} exists", req.name))
                    .with_field("name"),
            );
        }
        Err(e) => return Err(e.into()),
    };
    s.recall.invalidate_instance(inst.id);
    Ok((
        StatusCode::CREATED,
        axum::Json(Filter {
            id,
            name: req.name,
            kind: req.kind,
        }),
    ))
}

async fn delete_filter(
    State(s): State<AppState>,
    p: Principal,
    Path((id, name)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let inst = recall_instance(&s, &p, Permission::EditInstance, &id).await?;
    if !s.db.delete_filter(inst.id, &name).await? {
        return Err(ApiError::not_found(&format!("filter {name:?}")));
    }
    s.recall.invalidate_instance(inst.id);
    Ok(StatusCode::NO_CONTENT)
}

async fn services(
    State(s): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Vec<Service>>> {
    let inst = authorised_instance(&s, &p, Permission::ListInstance, instance_id(&id)?).await?;
    Ok(axum::Json(s.db.services(inst.id).await?))
}

/// Deploys the instance's recall configuration as a service with its own token.
async fn create_service(
    State(s): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    Json(req): Json<CreateService>,
) -> ApiResult<(StatusCode, axum::Json<Service>)> {
    let inst = recall_instance(&s, &p, Permission::TrainInstance, &id).await?;
    let svc = register_service(&s, &req.name, inst.id, "recall", req.replicas, 64, None).await?;
    Ok((StatusCode::CREATED, axum::Json(svc)))
}

/// Checks a new service's name and replica count, stores it with a fresh token (kept only
/// hashed) and returns it with that token, which is shown this once. Recall and predict
/// services both come through here.
pub(super) async fn register_service(
    s: &AppState,
    name: &str,
    instance_id: i64,
    kind: &str,
    replicas: i64,
    max_replicas: i64,
    model_id: Option<i64>,
) -> ApiResult<Service> {
    InstanceName::parse(name).map_err(|e| {
        ApiError::invalid(
            "name",
            "invalid_name",
            e.to_string().replace("instance name", "service name"),
        )
    })?;
    check_replicas(replicas, max_replicas)?;
    let token = auth::new_token();
    match s
        .db
        .create_service(
            name,
            instance_id,
            kind,
            &auth::token_hash(&token),
            replicas,
            model_id,
        )
        .await
    {
        Ok(_) => {}
        Err(e) if is_unique_violation(&e) => {
            return Err(
                ApiError::conflict(format!("a service named {name:?} exists")).with_field("name"),
            );
        }
        Err(e) => return Err(e.into()),
    }
    let mut svc =
        s.db.service(name)
            .await?
            .ok_or_else(|| ApiError::not_found("service"))?;
    svc.token = Some(token);
    Ok(svc)
}

pub(super) fn check_replicas(replicas: i64, max: i64) -> ApiResult<()> {
    if (1..=max).contains(&replicas) {
        Ok(())
    } else {
        Err(ApiError::invalid(
            "replicas",
            "invalid_replicas",
            format!("replicas is 1 to {max}"),
        ))
    }
}

async fn show_service(
    State(s): State<AppState>,
    p: Principal,
    Path(name): Path<String>,
) -> ApiResult<axum::Json<Service>> {
    let svc =
        s.db.service(&name)
            .await?
            .ok_or_else(|| ApiError::not_found("service"))?;
    p.require_on(Permission::ListInstance, svc.instance_id, "service")?;
    let mut svc = svc;
    if svc.kind == "predict" {
        svc.status = Some(s.predict.status(&name).unwrap_or_else(|| "loading".into()));
    }
    Ok(axum::Json(svc))
}

async fn delete_service(
    State(s): State<AppState>,
    p: Principal,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    let svc =
        s.db.service(&name)
            .await?
            .ok_or_else(|| ApiError::not_found("service"))?;
    p.require_on(Permission::TrainInstance, svc.instance_id, "service")?;
    s.db.delete_service(&name).await?;
    s.recall.invalidate_service(&name);
    s.predict.forget(&name);
    Ok(StatusCode::NO_CONTENT)
}

fn request_id() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// An error in the SPEC §8 envelope, with its HTTP status.
fn recall_error(status: StatusCode, msg: &str, detail: String) -> Response {
    let body = RecallResponse {
        code: i64::from(status.as_u16()),
        msg: msg.to_owned(),
        request_id: request_id(),
        size: 0,
        items: Vec::new(),
        errors: vec![detail],
    };
    (status, axum::Json(body)).into_response()
}

fn run(model: &RecallModel, user: &str, opts: RecallOptions) -> Vec<RecallItem> {
    model
        .recall(user, opts)
        .into_iter()
        .map(|(i, r)| RecallItem {
            item_id: model.name(i).to_owned(),
            retrieve_id: r.to_owned(),
        })
        .collect()
}

async fn serve_recall(
    s: &AppState,
    service: &str,
    headers: &HeaderMap,
    user: Option<String>,
    opts: Result<RecallOptions, String>,
) -> Response {
    // EAS-style `Authorization: <token>`, or `Bearer <token>`.
    let token = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.strip_prefix("Bearer ").unwrap_or(v).trim());
    let entry = match s.recall.get(&s.db, service, token).await {
        Ok(Access::Granted(e)) => e,
        // The same answer for a missing service and a wrong token: names cannot be probed.
        Ok(Access::Refused) => {
            return recall_error(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "send the service token in the Authorization header".into(),
            );
        }
        Err(e) => {
            tracing::error!("recall {service}: {e}");
            return recall_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error",
                "the server log has details".into(),
            );
        }
    };
    let Some(user) = user.filter(|u| !u.is_empty()) else {
        return recall_error(
            StatusCode::BAD_REQUEST,
            "invalid request",
            "user_id is required".into(),
        );
    };
    let opts = match opts {
        Ok(o) => o,
        Err(e) => return recall_error(StatusCode::BAD_REQUEST, "invalid request", e),
    };
    // Serialised straight from the model's strings: no per-item allocation on the hot path.
    let items = entry.model.recall(&user, opts);
    let body = RecallBody {
        code: 200,
        msg: "success",
        request_id: request_id(),
        size: items.len(),
        items: items
            .iter()
            .map(|(i, r)| RecallItemRef {
                item_id: entry.model.name(*i),
                retrieve_id: r,
            })
            .collect(),
        errors: [],
    };
    axum::Json(body).into_response()
}

/// [`RecallResponse`] with borrowed strings, field for field (tests/api/recall.rs checks
/// the exact format).
#[derive(serde::Serialize)]
struct RecallBody<'a> {
    code: i64,
    msg: &'a str,
    request_id: String,
    size: usize,
    items: Vec<RecallItemRef<'a>>,
    errors: [&'a str; 0],
}

#[derive(serde::Serialize)]
struct RecallItemRef<'a> {
    item_id: &'a str,
    retrieve_id: &'a str,
}

async fn recall_get(
    State(s): State<AppState>,
    Path(service): Path<String>,
    headers: HeaderMap,
    q: Result<axum::extract::Query<RecallQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(axum::extract::Query(q)) = q else {
        return recall_error(
            StatusCode::BAD_REQUEST,
            "invalid request",
            "invalid query string: user_id is text, size a number".into(),
        );
    };
    let opts = q.options();
    serve_recall(&s, &service, &headers, q.user_id, opts).await
}

async fn recall_post(
    State(s): State<AppState>,
    Path(service): Path<String>,
    headers: HeaderMap,
    body: Result<axum::Json<RecallRequest>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Ok(axum::Json(req)) = body else {
        return recall_error(
            StatusCode::BAD_REQUEST,
            "invalid request",
            "send JSON {\"user_id\": \"...\", \"size\": 10}".into(),
        );
    };
    let opts = recall_options(req.size, None, None);
    serve_recall(&s, &service, &headers, Some(req.user_id), opts).await
}

/// The test console: the instance's current configuration, without deploying it.
async fn recall_test(
    State(s): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    Json(req): Json<RecallRequest>,
) -> ApiResult<axum::Json<RecallResponse>> {
    let inst = recall_instance(&s, &p, Permission::ListInstance, &id).await?;
    let opts = recall_options(req.size, None, None)
        .map_err(|e| ApiError::invalid("size", "invalid_size", e))?;
    if req.user_id.is_empty() {
        return Err(ApiError::invalid(
            "user_id",
            "invalid_user_id",
            "user_id is required",
        ));
    }
    // The instance's current model, built once per change, not per call.
    let version = s.db.recall_version(inst.id).await?.unwrap_or_default();
    let model = s.recall.model(&s.db, inst.id, version).await?;
    let items = run(&model, &req.user_id, opts);
    Ok(axum::Json(RecallResponse {
        code: 200,
        msg: "success".into(),
        request_id: request_id(),
        size: items.len() as i64,
        items,
        errors: Vec::new(),
    }))
}
