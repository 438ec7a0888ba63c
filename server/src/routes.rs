//! The HTTP surface: one module per resource, each with its own `router()`, merged here.

mod auth;
mod datasets;
pub(crate) mod images;
mod instances;
mod labels;
mod models;
pub(crate) mod predict;
mod previews;
pub mod query;
mod recall;
mod system;
mod tasks;
mod users;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::routing::any;
use tower_http::services::{ServeDir, ServeFile};

use crate::AppState;
use crate::error::ApiError;

pub fn router(state: AppState) -> Router {
    let web = &state.config.web_dir;
    // The web app: static files, and index.html for its client-side routes.
    // `*.gz` siblings written by scripts/build-web.sh go to browsers that accept gzip.
    let app = ServeDir::new(web)
        .precompressed_gzip()
        .fallback(ServeFile::new(web.join("index.html")).precompressed_gzip());
    Router::new()
        .merge(system::router())
        .merge(auth::router())
        .merge(users::router())
        .merge(instances::router())
        .merge(datasets::router())
        .merge(images::router())
        .merge(labels::router())
        .merge(recall::router())
        .merge(tasks::router())
        .merge(models::router())
        .merge(predict::router())
        .merge(previews::router())
        .route(
            "/api/{*rest}",
            any(|| async {
                ApiError::new(
                    StatusCode::NOT_FOUND,
                    "not_found",
                    "no such API route; see /api/openapi.json",
                )
            }),
        )
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not take that HTTP method; see /api/openapi.json",
            )
        })
        .layer(axum::middleware::from_fn_with_state(
            state.metrics.clone(),
            crate::metrics::track,
        ))
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
        .fallback_service(app)
        // After the fallback, so the web app's files get them too.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::guard::same_origin_writes,
        ))
        .layer(axum::middleware::from_fn(crate::guard::security_headers))
        .with_state(state)
}
