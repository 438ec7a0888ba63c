//! Every call the app makes to the management API (SPEC §9). Same origin as the app, so the
//! browser sends the HttpOnly session cookie by itself; nothing here touches tokens.

use std::fmt;

use gloo_net::http::{Request, RequestBuilder, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;
use shared::api::{
    Annotation, CreateDataset, CreateInstance, Dataset, ErrorBody, Image, ImagePage, ImageStatus,
    Instance, LabelBody, LabelCount, LoginRequest, LoginResponse, PrelabelRun, Prelabels,
    StartPrelabels, Suggestions, User,
};
use shared::predict::{DataItem, PredictFailure, PredictRequest, PredictResult, PredictSuccess};
use shared::preview::{CreatePreviewLink, PreviewInfo, PreviewLink};
use shared::recall::{
    CfJob, CreateFilter, CreateService, CreateStrategy, Filter, RecallRequest, RecallResponse,
    RecallTable, Service, Strategy, TableImport, TableInfo,
};
use shared::train::{CreateTask, ModelVersion, Task};

/// Why a call failed, in words a person can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status; 0 when the server could not be reached or answered nonsense.
    pub status: u16,
    /// The server's snake_case code (`invalid_name`, `conflict`, ...), or one of ours
    /// (`network`, `bad_response`).
    pub code: String,
    pub message: String,
    /// The request field at fault, when the server named one.
    pub field: Option<String>,
}

impl ApiError {
    pub fn new(status: u16, code: &str, message: &str) -> Self {
        Self {
            status,
            code: code.to_owned(),
            message: message.to_owned(),
            field: None,
        }
    }

    fn local(code: &str, message: String) -> Self {
        Self {
            status: 0,
            code: code.to_owned(),
            message,
            field: None,
        }
    }

    /// The session is missing or expired: the user has to log in again.
    pub fn is_unauthorized(&self) -> bool {
        self.status == 401
    }

    /// Worth sending again later: the server was unreachable, overloaded or failed
    /// (not a refusal of the request itself).
    pub fn is_transient(&self) -> bool {
        matches!(self.status, 0 | 408 | 429) || self.status >= 500
    }

    /// Whether the server blamed this request field.
    pub fn is_for_field(&self, field: &str) -> bool {
        self.field.as_deref() == Some(field)
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

async fn send(request: Result<Request, gloo_net::Error>) -> ApiResult<Response> {
    let request = request
        .map_err(|e| ApiError::local("bad_request", format!("Could not build the request: {e}")))?;
    let response = request
        .send()
        .await
        .map_err(|e| ApiError::local("network", format!("Cannot reach the server: {e}")))?;
    if response.ok() {
        Ok(response)
    } else {
        Err(error_from(response).await)
    }
}

/// Turns a non-2xx response into an [`ApiError`], using the server's `ErrorBody` when there is one.
async fn error_from(response: Response) -> ApiError {
    let status = response.status();
    match response.json::<ErrorBody>().await {
        Ok(body) => ApiError {
            status,
            code: body.error.code,
            message: body.error.message,
            field: body.error.field,
        },
        Err(_) => ApiError {
            status,
            code: "http_error".to_owned(),
            message: match status {
                401 => "Please log in.".to_owned(),
                403 => "You do not have permission to do that.".to_owned(),
                404 => "Not found.".to_owned(),
                s if s >= 500 => format!(
                    "The server failed ({s} {}). Try again.",
                    response.status_text()
                ),
                s => format!("Request refused ({s} {}).", response.status_text()),
            },
            field: None,
        },
    }
}

async fn json<T: DeserializeOwned>(response: Response) -> ApiResult<T> {
    response.json::<T>().await.map_err(|e| {
        ApiError::local(
            "bad_response",
            format!("Unexpected answer from the server: {e}"),
        )
    })
}

fn get(url: &str) -> Result<Request, gloo_net::Error> {
    with_accept(Request::get(url)).build()
}

fn with_accept(builder: RequestBuilder) -> RequestBuilder {
    builder.header("Accept", "application/json")
}

/// `POST /api/auth/login`: the server sets the session cookie.
pub async fn login(username: String, password: String) -> ApiResult<LoginResponse> {
    let body = LoginRequest { username, password };
    json(send(with_accept(Request::post("/api/auth/login")).json(&body)).await?).await
}

/// `POST /api/auth/logout`: the server clears the session cookie.
pub async fn logout() -> ApiResult<()> {
    send(with_accept(Request::post("/api/auth/logout")).build())
        .await
        .map(drop)
}

/// `GET /api/auth/me`: the logged-in user, or `None` without a (valid) session.
pub async fn me() -> ApiResult<Option<User>> {
    match send(get("/api/auth/me")).await {
        Ok(response) => json(response).await.map(Some),
        Err(e) if e.is_unauthorized() => Ok(None),
        Err(e) => Err(e),
    }
}

/// `GET /api/instances`.
pub async fn list_instances() -> ApiResult<Vec<Instance>> {
    json(send(get("/api/instances")).await?).await
}

/// `GET /api/instances/{id}`.
pub async fn get_instance(id: i64) -> ApiResult<Instance> {
    json(send(get(&format!("/api/instances/{id}"))).await?).await
}

/// `POST /api/instances`.
pub async fn create_instance(body: CreateInstance) -> ApiResult<Instance> {
    json(send(with_accept(Request::post("/api/instances")).json(&body)).await?).await
}

/// `DELETE /api/instances/{id}`.
pub async fn delete_instance(id: i64) -> ApiResult<()> {
    send(with_accept(Request::delete(&format!("/api/instances/{id}"))).build())
        .await
        .map(drop)
}

/// `POST /api/instances {"template": ...}`: an instance with a generated demo dataset
/// (`shapes`: an image_classification instance of circles, squares and triangles).
pub async fn create_from_template(template: &str) -> ApiResult<Instance> {
    #[derive(Serialize)]
    struct Body<'a> {
        template: &'a str,
    }
    json(send(post_json("/api/instances", &Body { template })).await?).await
}

fn post_json<B: Serialize>(url: &str, body: &B) -> Result<Request, gloo_net::Error> {
    with_accept(Request::post(url)).json(body)
}

fn encode(s: &str) -> String {
    String::from(js_sys::encode_uri_component(s))
}

/// `GET /api/instances/{id}/datasets`.
pub async fn list_datasets(instance: i64) -> ApiResult<Vec<Dataset>> {
    json(send(get(&format!("/api/instances/{instance}/datasets"))).await?).await
}

/// `POST /api/instances/{id}/datasets`: indexes the path; the answer lists skipped files.
pub async fn create_dataset(instance: i64, body: CreateDataset) -> ApiResult<Dataset> {
    json(
        send(post_json(
            &format!("/api/instances/{instance}/datasets"),
            &body,
        ))
        .await?,
    )
    .await
}

/// `GET /api/datasets/{id}`.
pub async fn get_dataset(id: i64) -> ApiResult<Dataset> {
    json(send(get(&format!("/api/datasets/{id}"))).await?).await
}

/// `POST /api/datasets/{id}/reindex`.
pub async fn reindex_dataset(id: i64) -> ApiResult<Dataset> {
    json(send(with_accept(Request::post(&format!("/api/datasets/{id}/reindex"))).build()).await?)
        .await
}

/// `DELETE /api/datasets/{id}`.
pub async fn delete_dataset(id: i64) -> ApiResult<()> {
    send(with_accept(Request::delete(&format!("/api/datasets/{id}"))).build())
        .await
        .map(drop)
}

/// Which images of a dataset to list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageFilter {
    pub status: ImageStatus,
    pub label: Option<String>,
}

impl ImageFilter {
    pub fn status_str(&self) -> &'static str {
        status_str(self.status)
    }
}

pub fn status_str(status: ImageStatus) -> &'static str {
    match status {
        ImageStatus::All => "all",
        ImageStatus::Labelled => "labelled",
        ImageStatus::Unlabelled => "unlabelled",
        ImageStatus::Deleted => "deleted",
    }
}

pub fn parse_status(s: &str) -> Option<ImageStatus> {
    Some(match s {
        "all" => ImageStatus::All,
        "labelled" => ImageStatus::Labelled,
        "unlabelled" => ImageStatus::Unlabelled,
        "deleted" => ImageStatus::Deleted,
        _ => return None,
    })
}

/// `GET /api/datasets/{id}/images?status=&label=&page=&per_page=` (pages from 1).
pub async fn list_images(
    dataset: i64,
    filter: &ImageFilter,
    page: i64,
    per_page: i64,
) -> ApiResult<ImagePage> {
    let mut url = format!(
        "/api/datasets/{dataset}/images?status={}&page={page}&per_page={per_page}",
        filter.status_str()
    );
    if let Some(label) = &filter.label {
        url.push_str("&label=");
        url.push_str(&encode(label));
    }
    json(send(get(&url)).await?).await
}

/// Every image matching the filter, in the server's order (fetched 500 at a time).
pub async fn all_images(dataset: i64, filter: &ImageFilter) -> ApiResult<Vec<Image>> {
    const PER_PAGE: i64 = 500;
    let mut items = Vec::new();
    let mut page = 1;
    loop {
        let batch = list_images(dataset, filter, page, PER_PAGE).await?;
        let done = batch.items.len() < PER_PAGE as usize
            || items.len() as i64 + batch.items.len() as i64 >= batch.total;
        items.extend(batch.items);
        if done {
            return Ok(items);
        }
        page += 1;
    }
}

/// `PUT /api/images/{id}/annotation` of the change made to `revision`: the saved image
/// comes back; 409 (`edit_conflict`) when another change came first.
pub async fn put_annotation(
    image: i64,
    revision: i64,
    annotation: &Annotation,
) -> ApiResult<Image> {
    let request = with_accept(Request::put(&format!("/api/images/{image}/annotation")))
        .header("If-Match", &format!("\"{revision}\""))
        .json(annotation);
    json(send(request).await?).await
}

/// `GET /api/images/{id}`.
pub async fn get_image(image: i64) -> ApiResult<Image> {
    json(send(get(&format!("/api/images/{image}"))).await?).await
}

/// `DELETE /api/images/{id}`: a soft delete ("skip"); [`restore_image`] undoes it.
pub async fn delete_image(image: i64) -> ApiResult<()> {
    send(with_accept(Request::delete(&format!("/api/images/{image}"))).build())
        .await
        .map(drop)
}

/// `POST /api/images/{id}/restore`.
pub async fn restore_image(image: i64) -> ApiResult<Image> {
    json(send(with_accept(Request::post(&format!("/api/images/{image}/restore"))).build()).await?)
        .await
}

/// `/api/images/{id}/thumbnail?size=`: a JPEG whose longest side is `size` pixels.
pub fn thumbnail_url(image: i64, size: u32) -> String {
    format!("/api/images/{image}/thumbnail?size={size}")
}

/// `/api/images/{id}/content`: the original bytes.
pub fn content_url(image: i64) -> String {
    format!("/api/images/{image}/content")
}

/// `/api/datasets/{id}/export?format=folder|voc`.
pub fn export_url(dataset: i64, format: &str) -> String {
    format!("/api/datasets/{dataset}/export?format={format}")
}

/// `GET /api/datasets/{id}/labels`: every tag, also those no image carries yet.
pub async fn list_labels(dataset: i64) -> ApiResult<Vec<LabelCount>> {
    json(send(get(&format!("/api/datasets/{dataset}/labels"))).await?).await
}

/// `GET /api/datasets/{id}/suggestions`: label suggestions fitted on the dataset's labels;
/// `doubtful` also lists labelled images a cross-validated fit doubts.
pub async fn get_suggestions(dataset: i64, doubtful: bool) -> ApiResult<Suggestions> {
    let url = format!("/api/datasets/{dataset}/suggestions?doubtful={doubtful}");
    json(send(get(&url)).await?).await
}

/// `GET /api/datasets/{id}/prelabels`: the pre-labelling run and the drafts waiting.
pub async fn get_prelabels(dataset: i64) -> ApiResult<Prelabels> {
    json(send(get(&format!("/api/datasets/{dataset}/prelabels"))).await?).await
}

/// `POST /api/datasets/{id}/prelabels`: runs `model` over the unlabelled images.
pub async fn start_prelabels(dataset: i64, model: i64) -> ApiResult<PrelabelRun> {
    let request = with_accept(Request::post(&format!("/api/datasets/{dataset}/prelabels")))
        .json(&StartPrelabels { model_id: model });
    json(send(request).await?).await
}

/// `DELETE /api/images/{id}/prelabel`: the image's drafts are decided.
pub async fn drop_prelabel(image: i64) -> ApiResult<()> {
    send(with_accept(Request::delete(&format!("/api/images/{image}/prelabel"))).build())
        .await
        .map(drop)
}

/// `POST /api/datasets/{id}/labels`.
pub async fn create_label(dataset: i64, name: &str) -> ApiResult<LabelCount> {
    json(
        send(post_json(
            &format!("/api/datasets/{dataset}/labels"),
            &LabelBody {
                name: name.to_owned(),
            },
        ))
        .await?,
    )
    .await
}

/// `PATCH /api/datasets/{id}/labels/{name}`: renames the tag on every image.
pub async fn rename_label(dataset: i64, name: &str, new_name: &str) -> ApiResult<()> {
    let url = format!("/api/datasets/{dataset}/labels/{}", encode(name));
    send(with_accept(Request::patch(&url)).json(&LabelBody {
        name: new_name.to_owned(),
    }))
    .await
    .map(drop)
}

/// `DELETE /api/datasets/{id}/labels/{name}`: images lose the tag.
pub async fn delete_label(dataset: i64, name: &str) -> ApiResult<()> {
    let url = format!("/api/datasets/{dataset}/labels/{}", encode(name));
    send(with_accept(Request::delete(&url)).build())
        .await
        .map(drop)
}

// ---- Recommendation recall (SPEC §8) ----

/// `GET /api/instances/{id}/tables`: every table with its row count and first rows.
pub async fn list_tables(instance: i64) -> ApiResult<Vec<TableInfo>> {
    json(send(get(&format!("/api/instances/{instance}/tables"))).await?).await
}

/// `PUT /api/instances/{id}/tables/{table}?mode=replace|append` with the file as the body
/// (the browser streams it; nothing is read into memory here).
pub async fn import_table(
    instance: i64,
    table: RecallTable,
    append: bool,
    file: &web_sys::File,
) -> ApiResult<TableImport> {
    let url = format!(
        "/api/instances/{instance}/tables/{}?mode={}",
        table.as_str(),
        if append { "append" } else { "replace" }
    );
    let request = with_accept(Request::put(&url))
        .header("Content-Type", "text/csv")
        .body(wasm_bindgen::JsValue::from(file.clone()));
    json(send(request).await?).await
}

/// `POST /api/instances/{id}/behavior-logs?top_n=`: starts the CF job (202) to poll with
/// [`get_cf_job`].
pub async fn start_behavior_log(
    instance: i64,
    top_n: u32,
    file: &web_sys::File,
) -> ApiResult<CfJob> {
    let url = format!("/api/instances/{instance}/behavior-logs?top_n={top_n}");
    let request = with_accept(Request::post(&url))
        .header("Content-Type", "text/csv")
        .body(wasm_bindgen::JsValue::from(file.clone()));
    json(send(request).await?).await
}

/// `GET /api/instances/{id}/behavior-logs/jobs/{job}`.
pub async fn get_cf_job(instance: i64, job: &str) -> ApiResult<CfJob> {
    let url = format!(
        "/api/instances/{instance}/behavior-logs/jobs/{}",
        encode(job)
    );
    json(send(get(&url)).await?).await
}

/// `GET /api/instances/{id}/strategies`, in merge order.
pub async fn list_strategies(instance: i64) -> ApiResult<Vec<Strategy>> {
    json(send(get(&format!("/api/instances/{instance}/strategies"))).await?).await
}

/// `POST /api/instances/{id}/strategies`.
pub async fn create_strategy(instance: i64, body: &CreateStrategy) -> ApiResult<Strategy> {
    json(
        send(post_json(
            &format!("/api/instances/{instance}/strategies"),
            body,
        ))
        .await?,
    )
    .await
}

/// `DELETE /api/instances/{id}/strategies/{name}`.
pub async fn delete_strategy(instance: i64, name: &str) -> ApiResult<()> {
    let url = format!("/api/instances/{instance}/strategies/{}", encode(name));
    send(with_accept(Request::delete(&url)).build())
        .await
        .map(drop)
}

/// `GET /api/instances/{id}/filters`.
pub async fn list_filters(instance: i64) -> ApiResult<Vec<Filter>> {
    json(send(get(&format!("/api/instances/{instance}/filters"))).await?).await
}

/// `POST /api/instances/{id}/filters`.
pub async fn create_filter(instance: i64, body: &CreateFilter) -> ApiResult<Filter> {
    json(
        send(post_json(
            &format!("/api/instances/{instance}/filters"),
            body,
        ))
        .await?,
    )
    .await
}

/// `DELETE /api/instances/{id}/filters/{name}`.
pub async fn delete_filter(instance: i64, name: &str) -> ApiResult<()> {
    let url = format!("/api/instances/{instance}/filters/{}", encode(name));
    send(with_accept(Request::delete(&url)).build())
        .await
        .map(drop)
}

/// `POST /api/instances/{id}/recall-test`: the parsed answer and its JSON, pretty-printed in
/// the server's field order.
pub async fn recall_test(
    instance: i64,
    body: &RecallRequest,
) -> ApiResult<(RecallResponse, String)> {
    let response = send(post_json(
        &format!("/api/instances/{instance}/recall-test"),
        body,
    ))
    .await?;
    json_and_text(response).await
}

/// The parsed answer and its JSON text, pretty-printed in the server's field order.
async fn json_and_text<T: DeserializeOwned>(response: Response) -> ApiResult<(T, String)> {
    let text = response
        .text()
        .await
        .map_err(|e| ApiError::local("bad_response", format!("Could not read the answer: {e}")))?;
    let parsed: T = serde_json::from_str(&text).map_err(|e| {
        ApiError::local(
            "bad_response",
            format!("Unexpected answer from the server: {e}"),
        )
    })?;
    Ok((parsed, pretty_json(&text)))
}

/// Indents JSON text with the browser's `JSON.stringify`, which keeps the key order.
pub fn pretty_json(text: &str) -> String {
    js_sys::JSON::parse(text)
        .ok()
        .and_then(|v| {
            js_sys::JSON::stringify_with_replacer_and_space(
                &v,
                &wasm_bindgen::JsValue::NULL,
                &wasm_bindgen::JsValue::from_f64(2.0),
            )
            .ok()
        })
        .map(String::from)
        .unwrap_or_else(|| text.to_owned())
}

/// `GET /api/instances/{id}/services`.
pub async fn list_services(instance: i64) -> ApiResult<Vec<Service>> {
    json(send(get(&format!("/api/instances/{instance}/services"))).await?).await
}

/// `POST /api/instances/{id}/services`: the answer carries the token, once.
pub async fn create_service(instance: i64, body: &CreateService) -> ApiResult<Service> {
    json(
        send(post_json(
            &format!("/api/instances/{instance}/services"),
            body,
        ))
        .await?,
    )
    .await
}

/// `DELETE /api/services/{name}`.
pub async fn delete_service(name: &str) -> ApiResult<()> {
    let url = format!("/api/services/{}", encode(name));
    send(with_accept(Request::delete(&url)).build())
        .await
        .map(drop)
}

/// `POST /api/models/{id}/services`: deploys a model version; the answer carries the
/// token, once.
pub async fn deploy_model(model: i64, body: &CreateService) -> ApiResult<Service> {
    json(send(post_json(&format!("/api/models/{model}/services"), body)).await?).await
}

/// `GET /api/services/{name}`: a predict service comes with its `status`.
pub async fn get_service(name: &str) -> ApiResult<Service> {
    json(send(get(&format!("/api/services/{}", encode(name)))).await?).await
}

/// The predict services of an instance, each with its `status` (the list itself has none).
pub async fn list_predict_services(instance: i64) -> ApiResult<Vec<Service>> {
    let mut services = Vec::new();
    for svc in list_services(instance).await? {
        if svc.kind != "predict" {
            continue;
        }
        match get_service(&svc.name).await {
            Ok(full) => services.push(full),
            // Undeployed meanwhile.
            Err(e) if e.status == 404 => {}
            Err(e) => return Err(e),
        }
    }
    Ok(services)
}

/// `PATCH /api/services/{name}` body: what to change.
#[derive(Debug, Clone, Default, Serialize)]
pub struct UpdateService {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_id: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i64>,
}

/// `PATCH /api/services/{name}`: serve another version and/or change the replicas; the
/// old version answers until the new one has loaded.
pub async fn update_service(name: &str, body: &UpdateService) -> ApiResult<Service> {
    let url = format!("/api/services/{}", encode(name));
    json(send(with_accept(Request::patch(&url)).json(body)).await?).await
}

/// What `POST /api/predict/{name}` answered: its HTTP status, the result or the SPEC's
/// error, and the JSON as sent (pretty-printed).
#[derive(Debug, Clone, PartialEq)]
pub struct PredictAnswer {
    pub status: u16,
    pub outcome: Result<PredictResult, PredictFailure>,
    pub json: String,
}

/// `POST {endpoint}` with the service token, one image as base64. A refusal of the
/// endpoint (bad token, bad image) is an answer, not an error: it says nothing about the
/// session, so it must not log anyone out.
pub async fn predict(
    endpoint: &str,
    token: &str,
    image_base64: String,
) -> ApiResult<PredictAnswer> {
    if !token.chars().all(|c| c.is_ascii_graphic()) {
        return Err(ApiError::local(
            "bad_token",
            "A token has no spaces or accented letters.".to_owned(),
        ));
    }
    let body = PredictRequest {
        data_array: vec![DataItem {
            name: Some("image".to_owned()),
            kind: Some("stream".to_owned()),
            body: image_base64,
        }],
    };
    let request = with_accept(Request::post(endpoint))
        .header("Authorization", token)
        .json(&body)
        .map_err(|e| ApiError::local("bad_request", format!("Could not build the request: {e}")))?;
    let response = request
        .send()
        .await
        .map_err(|e| ApiError::local("network", format!("Cannot reach the server: {e}")))?;
    let status = response.status();
    if response.ok() {
        let (answer, json) = json_and_text::<PredictSuccess>(response).await?;
        return Ok(PredictAnswer {
            status,
            outcome: Ok(answer.result),
            json,
        });
    }
    match json_and_text::<PredictFailure>(response).await {
        Ok((failure, json)) => Ok(PredictAnswer {
            status,
            outcome: Err(failure),
            json,
        }),
        // Not the SPEC's envelope (a proxy, a body over the limit): say what came back.
        Err(_) => Err(ApiError::new(
            status,
            "http_error",
            &format!("The endpoint refused the request ({status})."),
        )),
    }
}

// ---- Training (SPEC §5) ----

/// `GET /api/instances/{id}/tasks`, newest first.
pub async fn list_tasks(instance: i64) -> ApiResult<Vec<Task>> {
    json(send(get(&format!("/api/instances/{instance}/tasks"))).await?).await
}

/// `POST /api/instances/{id}/tasks`: the task comes back queued.
pub async fn create_task(instance: i64, body: &CreateTask) -> ApiResult<Task> {
    json(send(post_json(&format!("/api/instances/{instance}/tasks"), body)).await?).await
}

/// `GET /api/tasks/{id}`.
pub async fn get_task(id: i64) -> ApiResult<Task> {
    json(send(get(&format!("/api/tasks/{id}"))).await?).await
}

/// `POST /api/tasks/{id}/stop`: asks the worker to stop; the task as it is now comes back.
pub async fn stop_task(id: i64) -> ApiResult<Task> {
    json(send(with_accept(Request::post(&format!("/api/tasks/{id}/stop"))).build()).await?).await
}

/// `/api/tasks/{id}/logs`: the log as plain text, one timestamped line each.
pub fn task_logs_url(id: i64) -> String {
    format!("/api/tasks/{id}/logs")
}

/// `/api/tasks/{id}/events`: server-sent events (`log`, `progress`, `status`; data is a
/// `TaskEvent`), from the start or after `Last-Event-ID`, until the task finishes.
pub fn task_events_url(id: i64) -> String {
    format!("/api/tasks/{id}/events")
}

/// `GET /api/instances/{id}/models`, newest version first.
pub async fn list_models(instance: i64) -> ApiResult<Vec<ModelVersion>> {
    json(send(get(&format!("/api/instances/{instance}/models"))).await?).await
}

/// `GET /api/models/{id}`.
pub async fn get_model(id: i64) -> ApiResult<ModelVersion> {
    json(send(get(&format!("/api/models/{id}"))).await?).await
}

/// `DELETE /api/models/{id}`.
pub async fn delete_model(id: i64) -> ApiResult<()> {
    send(with_accept(Request::delete(&format!("/api/models/{id}"))).build())
        .await
        .map(drop)
}

/// `/api/models/{id}/artifact`: a tar of `meta.json` and the weights.
pub fn model_artifact_url(id: i64) -> String {
    format!("/api/models/{id}/artifact")
}

/// `/api/models/{id}/artifact?format=web`: what the browser's runtime loads.
pub fn model_web_artifact_url(id: i64) -> String {
    format!("/api/models/{id}/artifact?format=web")
}

/// `POST /api/models/{id}/preview-links`.
pub async fn create_preview_link(model: i64, body: &CreatePreviewLink) -> ApiResult<PreviewLink> {
    json(
        send(post_json(
            &format!("/api/models/{model}/preview-links"),
            body,
        ))
        .await?,
    )
    .await
}

/// `GET /api/models/{id}/preview-links`, newest first.
pub async fn list_preview_links(model: i64) -> ApiResult<Vec<PreviewLink>> {
    json(send(get(&format!("/api/models/{model}/preview-links"))).await?).await
}

/// `DELETE /api/preview-links/{id}`.
pub async fn revoke_preview_link(id: i64) -> ApiResult<()> {
    send(with_accept(Request::delete(&format!("/api/preview-links/{id}"))).build())
        .await
        .map(drop)
}

/// `GET /api/preview/{token}` (no login).
pub async fn preview_info(token: &str) -> ApiResult<PreviewInfo> {
    json(send(get(&format!("/api/preview/{token}"))).await?).await
}
