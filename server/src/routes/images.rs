//! Single images: metadata, content, annotation, deletion.

use axum::Router;
use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, IF_MATCH};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use shared::api::{Annotation, Image};
use shared::names::LabelName;
use shared::{InstanceType, Permission};

use super::datasets::authorised_dataset;
use super::query::ThumbQuery;
use crate::auth::Principal;
use crate::db::datasets::DatasetRef;
use crate::error::{ApiError, ApiResult, Id, Json, Query, as_missing};
use crate::indexer::{MAX_IMAGE_BYTES, check_box};
use crate::{AppState, thumbnail};

/// Boxes on one image; more is a labelling mistake or an attack.
pub const MAX_BOXES: usize = 5000;
pub const MAX_TEXT_CHARS: usize = 500;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/images/{id}", get(show).delete(remove))
        .route("/api/images/{id}/restore", post(restore))
        .route("/api/images/{id}/content", get(content))
        .route("/api/images/{id}/thumbnail", get(thumbnail))
        .route("/api/images/{id}/annotation", put(annotate))
        .route("/api/images/{id}/prelabel", delete(drop_prelabel))
}

/// Drops the image's drafts (the user accepted or rejected them all); 404 when it has none.
async fn drop_prelabel(
    State(s): State<AppState>,
    p: Principal,
    Id(id): Id,
) -> ApiResult<StatusCode> {
    authorised_image(&s, &p, Permission::LabelInstance, id).await?;
    if s.db.delete_prelabel(id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("pre-label"))
    }
}

async fn authorised_image(
    s: &AppState,
    p: &Principal,
    perm: Permission,
    id: i64,
) -> ApiResult<(Image, DatasetRef)> {
    let img =
        s.db.image(id)
            .await?
            .ok_or_else(|| ApiError::not_found("image"))?;
    // Refused as "image not found" too, so image ids of other teams cannot be probed.
    let d = authorised_dataset(s, p, perm, img.dataset_id)
        .await
        .map_err(|e| as_missing(e, "image"))?;
    Ok((img, d))
}

async fn show(State(s): State<AppState>, p: Principal, Id(id): Id) -> ApiResult<axum::Json<Image>> {
    Ok(axum::Json(
        authorised_image(&s, &p, Permission::ListInstance, id)
            .await?
            .0,
    ))
}

async fn content(State(s): State<AppState>, p: Principal, Id(id): Id) -> ApiResult<Response> {
    let (img, d) = authorised_image(&s, &p, Permission::ListInstance, id).await?;
    let store = s.storage.open_uri(&d.location)?;
    let bytes = store.read(&img.path, MAX_IMAGE_BYTES).await?;
    let mime = if img.path.to_ascii_lowercase().ends_with(".png") {
        "image/png"
    } else {
        "image/jpeg"
    };
    Ok((
        [
            (CONTENT_TYPE, mime),
            (CACHE_CONTROL, "private, max-age=3600"),
        ],
        bytes,
    )
        .into_response())
}

/// A JPEG whose longest side is `size` (default 256), from the cache or made now.
async fn thumbnail(
    State(s): State<AppState>,
    p: Principal,
    Id(id): Id,
    Query(q): Query<ThumbQuery>,
) -> ApiResult<Response> {
    let size = q.size(thumbnail::MIN_SIZE..=thumbnail::MAX_SIZE)?;
    let (img, d) = authorised_image(&s, &p, Permission::ListInstance, id).await?;
    let store = s.storage.open_uri(&d.location)?;
    let jpeg = thumbnail::get_or_make(&s, &img, &store, size)
        .await
        .map_err(|e| match e {
            thumbnail::ThumbError::Storage(e) => ApiError::from(e),
            thumbnail::ThumbError::Decode(e) => {
                ApiError::unprocessable("image_decode_error", format!("{}: {e}", img.path))
            }
        })?;
    Ok((
        [
            (CONTENT_TYPE, "image/jpeg"),
            (CACHE_CONTROL, "private, max-age=86400"),
        ],
        jpeg,
    )
        .into_response())
}

/// Checks an annotation against the instance type and the image; the error names the field.
fn validate(kind: InstanceType, img: &Image, a: &Annotation) -> ApiResult<()> {
    let bad =
        |field: String, msg: String| Err(ApiError::invalid(&field, "invalid_annotation", msg));
    match kind {
        InstanceType::ImageClassification => {
            if !a.boxes.is_empty() {
                return bad(
                    "boxes".into(),
                    "classification images take labels, not boxes".into(),
                );
            }
            if a.labels.len() > 1 {
                return bad(
                    "labels".into(),
                    "a classification image takes one label".into(),
                );
            }
            for (i, l) in a.labels.iter().enumerate() {
                if let Err(e) = LabelName::parse(l.as_str()) {
                    return bad(format!("labels[{i}]"), e.to_string());
                }
            }
        }
        InstanceType::ObjectDetection | InstanceType::Ocr => {
            if !a.labels.is_empty() {
                return bad(
                    "labels".into(),
                    "detection and OCR images take boxes, not labels".into(),
                );
            }
            if a.boxes.len() > MAX_BOXES {
                return bad(
                    "boxes".into(),
                    format!("at most {MAX_BOXES} boxes per image"),
                );
            }
            let (w, h) = (
                u32::try_from(img.width).unwrap_or(0),
                u32::try_from(img.height).unwrap_or(0),
            );
            for (i, b) in a.boxes.iter().enumerate() {
                if b.label.chars().count() > 64 {
                    return bad(
                        format!("boxes[{i}].label"),
                        "labels are at most 64 characters".into(),
                    );
                }
                if let Err(e) = check_box(&b.label, b.xmin, b.ymin, b.xmax, b.ymax, w, h) {
                    return bad(format!("boxes[{i}]"), e);
                }
                if b.text
                    .as_ref()
                    .is_some_and(|t| t.chars().count() > MAX_TEXT_CHARS)
                {
                    return bad(
                        format!("boxes[{i}].text"),
                        format!("text is at most {MAX_TEXT_CHARS} characters"),
                    );
                }
            }
        }
        InstanceType::RecommendationRecall => {
            return Err(ApiError::unprocessable(
                "wrong_instance_type",
                "recall instances have no images",
            ));
        }
    }
    Ok(())
}

/// The revision a save edits, from `If-Match` (`"3"`, `3` or `W/"3"`); none when absent.
fn edited_revision(headers: &HeaderMap) -> ApiResult<Option<i64>> {
    let Some(v) = headers.get(IF_MATCH) else {
        return Ok(None);
    };
    let bad = || {
        ApiError::invalid(
            "If-Match",
            "invalid_revision",
            "If-Match takes the image's revision, e.g. \"3\"",
        )
    };
    let v = v.to_str().map_err(|_| bad())?.trim();
    let v = v.strip_prefix("W/").unwrap_or(v).trim_matches('"');
    v.parse::<i64>().map(Some).map_err(|_| bad())
}

async fn annotate(
    State(s): State<AppState>,
    p: Principal,
    Id(id): Id,
    headers: HeaderMap,
    Json(a): Json<Annotation>,
) -> ApiResult<axum::Json<Image>> {
    let (img, d) = authorised_image(&s, &p, Permission::LabelInstance, id).await?;
    validate(d.kind, &img, &a)?;
    let expected = edited_revision(&headers)?;
    if !s.db.save_annotation(id, &a, expected).await? {
        let now = s.db.image(id).await?.map_or(0, |i| i.revision);
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "edit_conflict",
            format!(
                "this image was changed elsewhere since revision {} (it is at revision {now}); \
                 load it again and redo the change",
                expected.unwrap_or_default()
            ),
        ));
    }
    s.db.image(id)
        .await?
        .map(axum::Json)
        .ok_or_else(|| ApiError::not_found("image"))
}

async fn remove(State(s): State<AppState>, p: Principal, Id(id): Id) -> ApiResult<StatusCode> {
    authorised_image(&s, &p, Permission::LabelInstance, id).await?;
    s.db.set_image_deleted(id, true).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn restore(
    State(s): State<AppState>,
    p: Principal,
    Id(id): Id,
) -> ApiResult<axum::Json<Image>> {
    authorised_image(&s, &p, Permission::LabelInstance, id).await?;
    s.db.set_image_deleted(id, false).await?;
    s.db.image(id)
        .await?
        .map(axum::Json)
        .ok_or_else(|| ApiError::not_found("image"))
}
