//! Liveness, readiness and metrics for operators.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use shared::api::Readiness;

use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route(
            "/api/openapi.json",
            get(|| async { axum::Json(crate::openapi::document()) }),
        )
}

/// Ready when the database answers and storage is reachable.
async fn readyz(State(s): State<AppState>) -> impl IntoResponse {
    let database = s.db.ping().await;
    let storage = s.config.data_dir.is_dir() && s.storage.s3_reachable().await;
    let status = if database && storage {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(Readiness { database, storage }))
}

async fn metrics(State(s): State<AppState>) -> impl IntoResponse {
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4")],
        s.metrics.render(),
    )
}
