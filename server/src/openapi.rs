//! The OpenAPI 3.1 document served at `/api/openapi.json`, built from one table of routes.
//! A test checks that every route in the table is served by the router.

use serde_json::{Value, json};

/// One documented operation.
pub struct RouteDoc {
    pub method: &'static str,
    pub path: &'static str,
    pub summary: &'static str,
    /// Permission needed, or "public", "login" (any user) or "admin".
    pub access: &'static str,
    pub request: Option<&'static str>,
    pub response: &'static str,
}

const fn r(
    method: &'static str,
    path: &'static str,
    summary: &'static str,
    access: &'static str,
    request: Option<&'static str>,
    response: &'static str,
) -> RouteDoc {
    RouteDoc {
        method,
        path,
        summary,
        access,
        request,
        response,
    }
}

pub const ROUTES: &[RouteDoc] = &[
    r("get", "/healthz", "Liveness", "public", None, "text"),
    r(
        "get",
        "/readyz",
        "Readiness: database and storage reachable",
        "public",
        None,
        "Readiness",
    ),
    r(
        "get",
        "/metrics",
        "Prometheus metrics",
        "public",
        None,
        "text",
    ),
    r(
        "get",
        "/api/openapi.json",
        "This document",
        "public",
        None,
        "object",
    ),
    r(
        "post",
        "/api/auth/login",
        "Log in: sets the session cookie and returns a bearer token",
        "public",
        Some("LoginRequest"),
        "LoginResponse",
    ),
    r(
        "post",
        "/api/auth/logout",
        "End the session",
        "public",
        None,
        "empty",
    ),
    r(
        "get",
        "/api/auth/me",
        "The logged-in user",
        "login",
        None,
        "User",
    ),
    r("get", "/api/users", "List users", "admin", None, "User[]"),
    r(
        "post",
        "/api/users",
        "Create a user",
        "admin",
        Some("CreateUser"),
        "User",
    ),
    r(
        "put",
        "/api/users/{id}/permissions",
        "Replace a user's permissions",
        "admin",
        Some("SetPermissions"),
        "User",
    ),
    r(
        "get",
        "/api/instances",
        "Instances the user may list",
        "ListInstance",
        None,
        "Instance[]",
    ),
    r(
        "post",
        "/api/instances",
        "Create an instance",
        "CreateInstance",
        Some("CreateInstance"),
        "Instance",
    ),
    r(
        "get",
        "/api/instances/{id}",
        "One instance",
        "ListInstance",
        None,
        "Instance",
    ),
    r(
        "patch",
        "/api/instances/{id}",
        "Rename or describe an instance",
        "EditInstance",
        Some("UpdateInstance"),
        "Instance",
    ),
    r(
        "delete",
        "/api/instances/{id}",
        "Delete an instance and its datasets (files in storage stay)",
        "CreateInstance",
        None,
        "empty",
    ),
    r(
        "get",
        "/api/instances/{id}/datasets",
        "Datasets of an instance with counts",
        "ListInstance",
        None,
        "Dataset[]",
    ),
    r(
        "post",
        "/api/instances/{id}/datasets",
        "Index a dataset from s3://bucket/prefix/ or a data-root directory",
        "EditInstance",
        Some("CreateDataset"),
        "Dataset",
    ),
    r(
        "get",
        "/api/datasets/{id}",
        "Counts, per-label counts and skipped files",
        "ListInstance",
        None,
        "Dataset",
    ),
    r(
        "delete",
        "/api/datasets/{id}",
        "Forget a dataset (files in storage stay)",
        "EditInstance",
        None,
        "empty",
    ),
    r(
        "post",
        "/api/datasets/{id}/reindex",
        "Pick up new and removed files, keeping browser labels",
        "EditInstance",
        None,
        "Dataset",
    ),
    r(
        "get",
        "/api/datasets/{id}/images",
        "Images with annotations; query: label, status (all|labelled|unlabelled|deleted), page, per_page",
        "ListInstance",
        None,
        "ImagePage",
    ),
    r(
        "get",
        "/api/datasets/{id}/suggestions",
        "Label suggestions for unlabelled images (least certain first) and doubtful labels, fitted on the dataset's labels; query: doubtful=true also lists labelled images a cross-validated fit doubts; state computing (with progress) while embeddings are computed",
        "LabelInstance",
        None,
        "Suggestions",
    ),
    r(
        "get",
        "/api/datasets/{id}/prelabels",
        "The dataset's pre-labelling run (state, progress) and the drafts waiting for a decision, by image; drafts are never labels",
        "LabelInstance",
        None,
        "Prelabels",
    ),
    r(
        "post",
        "/api/datasets/{id}/prelabels",
        "Run a version of the dataset's instance over its unlabelled images (202, a background job); the drafts replace the previous run's; 409 while a run goes on",
        "LabelInstance",
        Some("StartPrelabels"),
        "PrelabelRun",
    ),
    r(
        "delete",
        "/api/images/{id}/prelabel",
        "Drop an image's drafts (accepted or rejected); 404 when it has none",
        "LabelInstance",
        None,
        "empty",
    ),
    r(
        "get",
        "/api/datasets/{id}/export",
        "Labelled data as a tar archive; query: format (folder for classification; voc, coco or yolo for detection; voc or coco for OCR)",
        "ListInstance",
        None,
        "tar",
    ),
    r(
        "get",
        "/api/images/{id}",
        "One image with its annotation",
        "ListInstance",
        None,
        "Image",
    ),
    r(
        "delete",
        "/api/images/{id}",
        "Mark an image deleted",
        "LabelInstance",
        None,
        "empty",
    ),
    r(
        "post",
        "/api/images/{id}/restore",
        "Undelete an image",
        "LabelInstance",
        None,
        "Image",
    ),
    r(
        "get",
        "/api/images/{id}/content",
        "The image bytes",
        "ListInstance",
        None,
        "image",
    ),
    r(
        "put",
        "/api/images/{id}/annotation",
        "Save labels or boxes (one transaction); header If-Match: \"<revision>\" saves only over that revision (409 edit_conflict when another change came first)",
        "LabelInstance",
        Some("Annotation"),
        "Image",
    ),
    r(
        "put",
        "/api/instances/{id}/tables/{table}",
        "Import a recall table from CSV/TSV (all or nothing); query: mode (replace|append); tables: user_item, item_item, user_topic, topic_item, custom, filter_user_item, filter_item",
        "EditInstance",
        Some("text/csv"),
        "TableImport",
    ),
    r(
        "get",
        "/api/instances/{id}/tables",
        "Recall tables with row counts and the first rows",
        "ListInstance",
        None,
        "TableInfo[]",
    ),
    r(
        "post",
        "/api/instances/{id}/behavior-logs",
        "Build user_item and item_item from a behaviour log (user_id,item_id,active_type,active_date or MovieLens); query: top_n, w_click, w_buy, w_favorite; answers 202 with a job",
        "EditInstance",
        Some("text/csv"),
        "CfJob",
    ),
    r(
        "get",
        "/api/instances/{id}/behavior-logs/jobs/{job}",
        "Progress of a CF build, from any server on the same database (state running while it waits for or runs on a builder; a build whose server died is resumed, and failed after three tries)",
        "ListInstance",
        None,
        "CfJob",
    ),
    r(
        "get",
        "/api/instances/{id}/strategies",
        "Recall strategies in merge order",
        "ListInstance",
        None,
        "Strategy[]",
    ),
    r(
        "post",
        "/api/instances/{id}/strategies",
        "Add a strategy (last in merge order)",
        "EditInstance",
        Some("CreateStrategy"),
        "Strategy",
    ),
    r(
        "delete",
        "/api/instances/{id}/strategies/{name}",
        "Delete a strategy",
        "EditInstance",
        None,
        "empty",
    ),
    r(
        "get",
        "/api/instances/{id}/filters",
        "Recall filters",
        "ListInstance",
        None,
        "Filter[]",
    ),
    r(
        "post",
        "/api/instances/{id}/filters",
        "Add a filter",
        "EditInstance",
        Some("CreateFilter"),
        "Filter",
    ),
    r(
        "delete",
        "/api/instances/{id}/filters/{name}",
        "Delete a filter",
        "EditInstance",
        None,
        "empty",
    ),
    r(
        "get",
        "/api/instances/{id}/services",
        "Services of an instance",
        "ListInstance",
        None,
        "Service[]",
    ),
    r(
        "post",
        "/api/instances/{id}/services",
        "Deploy the recall configuration; the answer holds the token, shown once",
        "TrainInstance",
        Some("CreateService"),
        "Service",
    ),
    r(
        "post",
        "/api/instances/{id}/recall-test",
        "Test console: recall for a user with the current configuration",
        "ListInstance",
        Some("RecallRequest"),
        "RecallResponse",
    ),
    r(
        "get",
        "/api/services/{name}",
        "One service",
        "ListInstance",
        None,
        "Service",
    ),
    r(
        "delete",
        "/api/services/{name}",
        "Undeploy a service",
        "TrainInstance",
        None,
        "empty",
    ),
    r(
        "get",
        "/api/recall/{service}",
        "Recall endpoint (SPEC §8); header Authorization: <service token>; query: user_id, size (1-1000, default 10), include_history, fallback (popular|none)",
        "service token",
        None,
        "RecallResponse",
    ),
    r(
        "post",
        "/api/recall/{service}",
        "Recall endpoint with a JSON body {user_id, size}",
        "service token",
        Some("RecallRequest"),
        "RecallResponse",
    ),
    r(
        "get",
        "/api/instances/{id}/tasks",
        "Training tasks of an instance, newest first",
        "ListInstance",
        None,
        "Task[]",
    ),
    r(
        "post",
        "/api/instances/{id}/tasks",
        "Start training (queued for a worker); image_classification (classification-* presets) and object_detection (detection-* presets) instances",
        "TrainInstance",
        Some("CreateTask"),
        "Task",
    ),
    r(
        "get",
        "/api/tasks/{id}",
        "A task with its status, progress and latest figures",
        "ListInstance",
        None,
        "Task",
    ),
    r(
        "post",
        "/api/tasks/{id}/stop",
        "Stop a task: a queued one at once, a running one within seconds (keeping its best model so far)",
        "TrainInstance",
        None,
        "Task",
    ),
    r(
        "get",
        "/api/tasks/{id}/logs",
        "The task's log as text, one timestamped line each; query: after (event id)",
        "ListInstance",
        None,
        "text",
    ),
    r(
        "get",
        "/api/tasks/{id}/events",
        "Live events (text/event-stream): `log`, `progress` and `status` events whose data is a TaskEvent; resumes after Last-Event-ID; ends when the task ends",
        "ListInstance",
        None,
        "sse",
    ),
    r(
        "get",
        "/api/instances/{id}/models",
        "Model versions of an instance with their metrics, newest first",
        "ListInstance",
        None,
        "ModelVersion[]",
    ),
    r(
        "get",
        "/api/models/{id}",
        "A model version with its evaluation on the validation split",
        "ListInstance",
        None,
        "ModelVersion",
    ),
    r(
        "delete",
        "/api/models/{id}",
        "Delete a model version and its artifact",
        "TrainInstance",
        None,
        "empty",
    ),
    r(
        "get",
        "/api/models/{id}/artifact",
        "The artifact runtimes load. ?format=tar (default): meta.json and model.bpk (burnpack, f16 weights); ?format=web: the browser's form (AUTOLEARN-WEB-1: meta.json, then the burnpack's even and odd bytes), gzip-encoded. With ?preview=<token> of a valid preview link instead of a login",
        "ListInstance or preview link",
        None,
        "tar",
    ),
    r(
        "post",
        "/api/models/{id}/preview-links",
        "A signed, expiring preview link <server>/p/<token> with its QR code (SVG); body optional: {expires_in_hours} (default AUTOLEARN_PREVIEW_HOURS, 24; at most 720)",
        "TrainInstance",
        Some("CreatePreviewLink"),
        "PreviewLink",
    ),
    r(
        "get",
        "/api/models/{id}/preview-links",
        "A model's preview links, newest first (revoked and expired ones flagged)",
        "ListInstance",
        None,
        "PreviewLink[]",
    ),
    r(
        "delete",
        "/api/preview-links/{id}",
        "Revoke a preview link: its page and artifact answer 403 preview_revoked from then on",
        "TrainInstance",
        None,
        "empty",
    ),
    r(
        "get",
        "/api/preview/{token}",
        "What the preview page needs (no login; the token is the credential); 403 preview_invalid, preview_expired or preview_revoked",
        "public",
        None,
        "PreviewInfo",
    ),
    r(
        "post",
        "/api/models/{id}/services",
        "Deploy a model version as a predict service {name, replicas (1-16)}; the answer holds the token, shown once",
        "TrainInstance",
        Some("CreateService"),
        "Service",
    ),
    r(
        "patch",
        "/api/services/{name}",
        "Predict services: serve another version of the instance and/or change replicas; the old version answers until the new one is loaded",
        "TrainInstance",
        Some("UpdateService"),
        "Service",
    ),
    r(
        "post",
        "/api/predict/{service}",
        "Predict (SPEC §7); header Authorization: <service token>; body {dataArray:[{name?, type?: stream, body: base64 JPG/PNG/BMP}]} (1-16 images, 32 MiB); errors {success:false, errorCode: 1001|1002|2001|2002|2003, errorMsg}",
        "service token",
        Some("PredictRequest"),
        "PredictResponse",
    ),
];

fn schema_ref(name: &str) -> Value {
    match name.strip_suffix("[]") {
        Some(item) => {
            json!({"type": "array", "items": {"$ref": format!("#/components/schemas/{item}")}})
        }
        None => json!({"$ref": format!("#/components/schemas/{name}")}),
    }
}

fn response(kind: &str) -> Value {
    match kind {
        "empty" => json!({"description": "done"}),
        "text" => {
            json!({"description": "plain text", "content": {"text/plain": {"schema": {"type": "string"}}}})
        }
        "tar" => {
            json!({"description": "tar archive", "content": {"application/x-tar": {"schema": {"type": "string", "format": "binary"}}}})
        }
        "sse" => {
            json!({"description": "event stream", "content": {"text/event-stream": {"schema": {"type": "string", "description": "SSE; each data line is a TaskEvent"}}}})
        }
        "image" => {
            json!({"description": "image", "content": {"image/*": {"schema": {"type": "string", "format": "binary"}}}})
        }
        "object" => {
            json!({"description": "OK", "content": {"application/json": {"schema": {"type": "object"}}}})
        }
        name => {
            json!({"description": "OK", "content": {"application/json": {"schema": schema_ref(name)}}})
        }
    }
}

fn operation(d: &RouteDoc) -> Value {
    let ok = if d.response == "CfJob" && d.method == "post" {
        "202"
    } else if d.response == "empty" {
        "204"
    } else if d.method == "post"
        && matches!(
            d.response,
            "Instance"
                | "Dataset"
                | "User"
                | "LabelCount"
                | "Strategy"
                | "Filter"
                | "Service"
                | "Task"
                | "PreviewLink"
        )
        && !d.path.ends_with("{name}")
        && !d.path.ends_with("login")
        && !d.path.ends_with("stop")
    {
        "201"
    } else {
        "200"
    };
    let mut responses = json!({ ok: response(d.response) });
    let err = |desc: &str| json!({"description": desc, "content": {"application/json": {"schema": schema_ref("Error")}}});
    if d.access != "public" {
        responses["401"] = err("not logged in");
    }
    if !matches!(d.access, "public" | "login" | "service token") {
        responses["403"] = err(&format!("needs {}", d.access));
    }
    if d.request.is_some() || d.path.contains("images") {
        responses["400"] = err("invalid input; `field` names the field");
    }
    if d.path.contains("{id}") {
        responses["404"] = err("not found");
    }
    let mut op = json!({
        "summary": d.summary,
        "description": format!("Access: {}.", d.access),
        "responses": responses,
    });
    if d.path.contains("{id}") {
        op["parameters"] =
            json!([{"name": "id", "in": "path", "required": true, "schema": {"type": "integer"}}]);
    }
    if d.access == "service token" {
        op["security"] = json!([{"service_token": []}]);
    } else if d.access != "public" {
        op["security"] = json!([{"bearer": []}, {"cookie": []}]);
    }
    if let Some(req) = d.request {
        op["requestBody"] =
            json!({"required": true, "content": {"application/json": {"schema": schema_ref(req)}}});
    }
    op
}

fn schemas() -> Value {
    let s = |props: Value, required: &[&str]| json!({"type": "object", "properties": props, "required": required});
    let string = json!({"type": "string"});
    let int = json!({"type": "integer"});
    let boolean = json!({"type": "boolean"});
    let grant = s(
        json!({"permission": {"enum": ["CreateInstance", "EditInstance", "LabelInstance", "TrainInstance", "ListInstance"]}, "instance_id": int}),
        &["permission"],
    );
    let bbox = s(
        json!({"label": string, "xmin": {"type": "number"}, "ymin": {"type": "number"}, "xmax": {"type": "number"}, "ymax": {"type": "number"}, "text": string}),
        &["label", "xmin", "ymin", "xmax", "ymax"],
    );
    let annotation = s(
        json!({"labels": {"type": "array", "items": string}, "boxes": {"type": "array", "items": schema_ref("Box")}}),
        &[],
    );
    json!({
        "Error": s(json!({"error": s(json!({"code": string, "message": string, "field": string}), &["code", "message"])}), &["error"]),
        "Readiness": s(json!({"database": boolean, "storage": boolean}), &["database", "storage"]),
        "LoginRequest": s(json!({"username": string, "password": string}), &["username", "password"]),
        "LoginResponse": s(json!({"token": string, "user": schema_ref("User")}), &["token", "user"]),
        "Grant": grant,
        "User": s(json!({"id": int, "username": string, "is_admin": boolean, "permissions": {"type": "array", "items": schema_ref("Grant")}, "created_at": string}), &["id", "username", "is_admin", "permissions", "created_at"]),
        "CreateUser": s(json!({"username": string, "password": {"type": "string", "minLength": 8}, "is_admin": boolean, "permissions": {"type": "array", "items": schema_ref("Grant")}}), &["username", "password"]),
        "SetPermissions": s(json!({"permissions": {"type": "array", "items": schema_ref("Grant")}}), &["permissions"]),
        "InstanceType": {"enum": ["image_classification", "object_detection", "ocr", "recommendation_recall"]},
        "Instance": s(json!({"id": int, "type": schema_ref("InstanceType"), "name": string, "description": string, "created_at": string, "dataset_count": int, "image_count": int}), &["id", "type", "name", "description", "created_at"]),
        "CreateInstance": {"oneOf": [
            s(json!({"type": schema_ref("InstanceType"), "name": {"type": "string", "description": "1-30 chars; first an ASCII letter, digit or CJK; then letters, digits, CJK, _ or - (recall: 1-20, no -)"}, "description": string}), &["type", "name"]),
            s(json!({"template": {"enum": ["shapes", "scenes", "signs"], "description": "shapes: classification demo; scenes: object detection demo with VOC boxes; signs: OCR demo, rendered text lines with VOC boxes whose name is the text"}}), &["template"]),
        ]},
        "UpdateInstance": s(json!({"name": string, "description": string}), &[]),
        "CreateDataset": s(json!({"name": string, "description": string, "path": {"type": "string", "description": "s3://bucket/prefix/ or a directory under AUTOLEARN_DATA_ROOTS"}}), &["name", "path"]),
        "Skipped": s(json!({"path": string, "reason": string}), &["path", "reason"]),
        "Dataset": s(json!({"id": int, "instance_id": int, "name": string, "description": string, "path": string, "created_at": string, "indexed_at": string, "total": int, "labelled": int, "unlabelled": int, "deleted": int, "per_label": {"type": "object", "additionalProperties": int}, "skipped": {"type": "array", "items": schema_ref("Skipped")}}), &["id", "total", "labelled", "unlabelled", "per_label", "skipped"]),
        "Box": bbox,
        "Annotation": annotation,
        "Image": s(json!({"id": int, "dataset_id": int, "path": string, "width": int, "height": int, "size_bytes": int, "labelled": boolean, "deleted": boolean, "annotation": schema_ref("Annotation"), "updated_at": string, "revision": int}), &["id", "path", "width", "height", "annotation", "revision"]),
        "DraftBox": s(json!({"label": string, "xmin": {"type": "number"}, "ymin": {"type": "number"}, "xmax": {"type": "number"}, "ymax": {"type": "number"}, "text": string, "conf": {"type": "number"}}), &["label", "xmin", "ymin", "xmax", "ymax", "conf"]),
        "Prelabel": s(json!({"image_id": int, "model_id": int, "boxes": {"type": "array", "items": schema_ref("DraftBox")}, "label": s(json!({"label": string, "conf": {"type": "number"}}), &["label", "conf"])}), &["image_id", "model_id"]),
        "PrelabelRun": s(json!({"model_id": int, "state": {"type": "string", "enum": ["running", "done", "failed"]}, "done": int, "total": int, "message": string, "started_at": string, "updated_at": string}), &["model_id", "state", "done", "total"]),
        "Prelabels": s(json!({"run": schema_ref("PrelabelRun"), "items": {"type": "array", "items": schema_ref("Prelabel")}}), &["items"]),
        "StartPrelabels": s(json!({"model_id": int}), &["model_id"]),
        "LabelCount": s(json!({"name": string, "count": int}), &["name", "count"]),
        "LabelBody": s(json!({"name": string}), &["name"]),
        "ImagePage": s(json!({"items": {"type": "array", "items": schema_ref("Image")}, "page": int, "per_page": int, "total": int}), &["items", "page", "per_page", "total"]),
        "Suggestion": s(json!({"image_id": int, "label": string, "confidence": {"type": "number"}}), &["image_id", "label", "confidence"]),
        "Doubtful": s(json!({"image_id": int, "label": string, "suggested": string, "confidence": {"type": "number"}}), &["image_id", "label", "suggested", "confidence"]),
        "Suggestions": s(json!({"state": {"type": "string", "enum": ["computing", "ready"]}, "progress": {"type": "number"}, "min_per_label": int, "labels": {"type": "array", "items": schema_ref("LabelCount")}, "suggestions": {"type": "array", "items": schema_ref("Suggestion")}, "doubtful": {"type": "array", "items": schema_ref("Doubtful")}, "fit_ms": {"type": "number"}}), &["state", "progress", "min_per_label", "labels", "suggestions", "doubtful"]),
    })
}

/// Schemas of the recall API (a second `json!`, which keeps each macro within its
/// recursion limit).
fn recall_schemas() -> Value {
    let s = |props: Value, required: &[&str]| json!({"type": "object", "properties": props, "required": required});
    let string = json!({"type": "string"});
    let int = json!({"type": "integer"});
    json!({
        "RecallTable": {"enum": ["user_item", "item_item", "user_topic", "topic_item", "custom", "filter_user_item", "filter_item"]},
        "TableImport": s(json!({"table": schema_ref("RecallTable"), "mode": string, "imported": int, "rows": int}), &["table", "mode", "imported", "rows"]),
        "TableInfo": s(json!({"table": schema_ref("RecallTable"), "rows": int, "preview": {"type": "array", "items": s(json!({"key": string, "value": string}), &["key", "value"])}}), &["table", "rows", "preview"]),
        "CfJob": s(json!({"id": string, "instance_id": int, "state": {"enum": ["running", "succeeded", "failed"]}, "progress": {"type": "number"}, "stage": string, "error": string,
            "stats": s(json!({"interactions": int, "users": int, "items": int, "item_item_rows": int, "elapsed_ms": int}), &[])}), &["id", "state", "progress", "stage"]),
        "Strategy": s(json!({"id": int, "name": string, "type": {"enum": ["collaborative_filtering", "semantic", "custom"]}, "count": int, "position": int}), &["id", "name", "type", "count", "position"]),
        "CreateStrategy": s(json!({"name": {"type": "string", "description": "1-20 chars; an ASCII letter, then letters, digits or _"}, "type": {"enum": ["collaborative_filtering", "semantic", "custom"]}, "count": int}), &["name", "type"]),
        "Filter": s(json!({"id": int, "name": string, "type": {"enum": ["user_item", "item"]}}), &["id", "name", "type"]),
        "CreateFilter": s(json!({"name": string, "type": {"enum": ["user_item", "item"]}}), &["name", "type"]),
        "CreateService": s(json!({"name": string, "replicas": int}), &["name"]),
        "Service": s(json!({"id": int, "name": string, "instance_id": int, "kind": {"enum": ["recall", "predict"]}, "replicas": int, "endpoint": string, "created_at": string, "model_id": int, "status": string, "token": string}), &["id", "name", "endpoint"]),
        "RecallRequest": s(json!({"user_id": string, "size": int}), &["user_id"]),
        "RecallResponse": s(json!({"code": int, "msg": string, "request_id": string, "size": int, "items": {"type": "array", "items": s(json!({"item_id": string, "retrieve_id": string}), &["item_id", "retrieve_id"])}, "errors": {"type": "array", "items": string}}), &["code", "msg", "request_id", "size", "items", "errors"]),
    })
}

/// Schemas of training and models.
fn training_schemas() -> Value {
    let s = |props: Value, required: &[&str]| json!({"type": "object", "properties": props, "required": required});
    let string = json!({"type": "string"});
    let int = json!({"type": "integer"});
    let num = json!({"type": "number"});
    let preset = json!({"enum": ["classification-fast", "classification-accurate", "detection-fast", "detection-accurate", "ocr-fast"]});
    let status = json!({"enum": ["queued", "running", "succeeded", "failed", "stopped"]});
    let labels = json!({"type": "array", "items": string});
    json!({
        "CreateTask": s(json!({"name": string, "description": string, "dataset_id": int, "labels": labels, "preset": preset,
            "device": {"enum": ["auto", "cpu", "gpu"]}, "max_minutes": {"type": "number", "description": "10-60 (AUTOLEARN_MIN_TASK_MINUTES lowers the minimum)"},
            "base_model_id": int, "image_size": {"type": "integer", "description": "multiple of 32, 64-512; the preset's by default"},
            "max_epochs": int, "seed": int, "patience": {"type": "integer", "description": "early-stopping patience in epochs (default 3)"}}), &["name", "dataset_id", "labels", "preset", "max_minutes"]),
        "Progress": s(json!({"phase": {"enum": ["head", "finetune"]}, "metric": {"type": "string", "description": "what the accuracy fields measure when not classification accuracy (detection: mAP@0.5 on validation)"}, "epoch": int, "step": int, "elapsed_s": num, "eta_s": num, "progress": num,
            "train_loss": num, "train_accuracy": num, "val_loss": num, "val_accuracy": num}), &["phase", "epoch", "step", "progress"]),
        "Task": s(json!({"id": int, "instance_id": int, "name": string, "description": string, "dataset_id": int, "labels": labels, "preset": preset,
            "device": string, "max_minutes": num, "base_model_id": int, "image_size": int, "max_epochs": int, "seed": int, "status": status,
            "progress": num, "stop_requested": {"type": "boolean"}, "device_used": string, "worker": string, "attempts": int, "error": string,
            "model_id": int, "created_at": string, "started_at": string, "finished_at": string, "last_progress": schema_ref("Progress")}),
            &["id", "instance_id", "name", "status", "progress", "labels", "preset"]),
        "TaskEvent": s(json!({"seq": int, "at": string, "kind": {"enum": ["log", "progress", "status"]}, "line": string, "status": status,
            "error": string, "model_id": int}), &["seq", "at", "kind"]),
        "ClassificationMetrics": s(json!({"accuracy": num, "precision": num, "recall": num, "f1": num, "loss": num,
            "per_class": {"type": "object", "additionalProperties": s(json!({"precision": num, "recall": num, "f1": num, "support": int}), &[])},
            "confusion_matrix": {"type": "array", "items": {"type": "array", "items": int}, "description": "[truth][predicted] in label order"},
            "model_size": int, "validation_images": int, "train_images": int,
            "misclassified": {"type": "array", "items": s(json!({"image_id": int, "truth": string, "predicted": string, "confidence": num}), &[])}}),
            &["accuracy", "precision", "recall", "f1", "loss", "confusion_matrix", "model_size"]),
        "DetectionMetrics": s(json!({"map": {"type": "number", "description": "mAP at IoU 0.5, all-point interpolated AP averaged over classes with validation boxes"},
            "map_50_95": {"type": "number", "description": "AP averaged over IoU 0.50:0.05:0.95"},
            "precision": num, "recall": num, "conf_threshold": num, "loss": num, "classification_loss": num, "localization_loss": num,
            "per_class": {"type": "object", "additionalProperties": s(json!({"ap": num, "ap_50_95": num, "precision": num, "recall": num, "support": int,
                "pr_curve": {"type": "array", "items": {"type": "array", "items": num}, "description": "[confidence, precision, recall]"}}), &[])},
            "model_size": int, "validation_images": int, "train_images": int,
            "images": {"type": "array", "items": s(json!({"image_id": int,
                "truth": {"type": "array", "items": schema_ref("EvalBox")}, "predicted": {"type": "array", "items": schema_ref("EvalBox")}}), &[])}}),
            &["map", "map_50_95", "loss", "classification_loss", "localization_loss", "model_size"]),
        "OcrScores": s(json!({"exact_match": {"type": "number", "description": "share of true lines whose matched line (IoU >= 0.5, one to one) reads the same text, case folded, spaces and punctuation dropped"},
            "cer": {"type": "number", "description": "character error rate: edit distance over true characters (a missed line counts all its characters)"},
            "precision": num, "recall": num, "hmean": num}), &["exact_match", "cer", "precision", "recall", "hmean"]),
        "OcrMetrics": s(json!({"exact_match": num, "cer": num, "precision": num, "recall": num, "hmean": num,
            "pretrained": schema_ref("OcrScores"), "loss": {"type": "number", "description": "CTC loss on the validation lines"}, "pretrained_loss": num,
            "validation_lines": int, "model_size": int, "validation_images": int, "train_images": int,
            "images": {"type": "array", "items": s(json!({"image_id": int, "width": int, "height": int,
                "truth": {"type": "array", "items": s(json!({"pos": {"type": "array", "description": "4 pixel corners TL TR BR BL"}, "text": string, "conf": num}), &[])},
                "read": {"type": "array", "items": s(json!({"pos": {"type": "array"}, "text": string, "conf": num}), &[])}}), &[])}}),
            &["exact_match", "cer", "precision", "recall", "hmean", "pretrained", "loss", "model_size"]),
        "EvalBox": s(json!({"label": string, "conf": num, "xmin": num, "ymin": num, "xmax": num, "ymax": num}), &["label", "conf", "xmin", "ymin", "xmax", "ymax"]),
        "UpdateService": s(json!({"model_id": int, "replicas": int}), &[]),
        "CreatePreviewLink": s(json!({"expires_in_hours": num}), &[]),
        "PreviewLink": s(json!({"id": int, "model_id": int, "url": string, "token": string, "qr_svg": {"type": "string", "description": "SVG document"},
            "created_at": string, "expires_at": string, "revoked": {"type": "boolean"}, "expired": {"type": "boolean"}}),
            &["id", "model_id", "url", "token", "qr_svg", "expires_at", "revoked", "expired"]),
        "PreviewInfo": s(json!({"model_id": int, "instance_name": string, "version": int, "labels": labels, "image_size": int, "created_at": string,
            "expires_at": string, "metrics": {"type": "object", "additionalProperties": num}, "artifact_url": string}),
            &["model_id", "version", "labels", "image_size", "artifact_url"]),
        "PredictRequest": s(json!({"dataArray": {"type": "array", "items": s(json!({"name": string, "type": {"enum": ["stream"]}, "body": {"type": "string", "description": "base64 image"}}), &["body"])}}), &["dataArray"]),
        "PredictResponse": {"oneOf": [
            s(json!({"success": {"const": true}, "result": s(json!({
                "output": {"type": "array", "items": s(json!({"type": {"const": "cv_common"}, "body": {"type": "array", "items": s(json!({"label": string, "conf": num, "pos": {"type": "array", "description": "detection: 4 relative corners; OCR: 4 pixel corners"}}), &["label", "conf"])}}), &["type", "body"])},
                "meta": s(json!({"height": int, "width": int}), &["height", "width"])}), &["output", "meta"])}), &["success", "result"]),
            s(json!({"success": {"const": false}, "errorCode": string, "errorMsg": string}), &["success", "errorCode", "errorMsg"]),
        ]},
        "ModelVersion": s(json!({"id": int, "instance_id": int, "task_id": int, "version": int, "preset": preset, "labels": labels, "image_size": int,
            "metrics": {"oneOf": [schema_ref("ClassificationMetrics"), schema_ref("DetectionMetrics"), schema_ref("OcrMetrics")], "description": "by the preset's instance type"}, "size_bytes": int, "pretrained": {"type": "boolean"}, "base_model_id": int, "created_at": string}),
            &["id", "version", "labels", "metrics"]),
    })
}

pub fn document() -> Value {
    let mut all_schemas = schemas();
    for more in [recall_schemas(), training_schemas()] {
        if let (Some(a), Value::Object(b)) = (all_schemas.as_object_mut(), more) {
            a.extend(b);
        }
    }
    let mut paths = serde_json::Map::new();
    for d in ROUTES {
        let entry = paths.entry(d.path).or_insert_with(|| json!({}));
        entry[d.method] = operation(d);
    }
    json!({
        "openapi": "3.1.0",
        "info": {"title": "AutoLearn API", "version": env!("CARGO_PKG_VERSION"),
                 "description": "Management API of AutoLearn. Errors: {\"error\":{\"code\",\"message\",\"field\"?}}."},
        "paths": paths,
        "components": {
            "schemas": all_schemas,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "cookie": {"type": "apiKey", "in": "cookie", "name": crate::auth::SESSION_COOKIE},
                "service_token": {"type": "apiKey", "in": "header", "name": "Authorization", "description": "the service's token, as is or after `Bearer `"},
            },
        },
    })
}
