//! Browser-facing protections applied to every request: refusing cross-site requests that
//! would ride on the session cookie, and the security headers of every response.

use axum::extract::{Request, State};
use axum::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::AppState;
use crate::error::ApiError;

/// The policy the wasm app runs under: its own scripts only (`wasm-unsafe-eval` lets it
/// compile its WebAssembly), inline style attributes (the view code sets them), images and
/// fetches from itself, `data:` and `blob:` (the camera picture, drawn canvases, decoded
/// uploads: local bytes, nothing leaves), no frames around it.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; \
     style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; media-src 'self' blob:; \
     connect-src 'self' data: blob:; object-src 'none'; base-uri 'none'; form-action 'self'; \
     frame-ancestors 'none'";

/// Headers every response carries (a handler's own value wins).
const SECURITY_HEADERS: [(HeaderName, &str); 4] = [
    (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (header::X_FRAME_OPTIONS, "DENY"),
    // No `Referer` leaves the app: preview pages carry their token in the URL.
    (header::REFERRER_POLICY, "no-referrer"),
];

pub async fn security_headers(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let headers = res.headers_mut();
    for (name, value) in SECURITY_HEADERS {
        if !headers.contains_key(&name) {
            headers.insert(name, HeaderValue::from_static(value));
        }
    }
    res
}

/// Refuses a state-changing request a browser sent from another site (cross-site request
/// forgery): the session cookie would authorise it though the user never asked for it.
/// Requests with an `Authorization` header are not affected (a page on another site cannot
/// set one without a CORS preflight, which this server never grants), nor are clients that
/// send neither `Origin` nor `Sec-Fetch-Site` (command-line tools, not browsers).
pub async fn same_origin_writes(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let safe = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if safe || req.headers().contains_key(header::AUTHORIZATION) || same_origin(&s, req.headers()) {
        return next.run(req).await;
    }
    ApiError::new(
        StatusCode::FORBIDDEN,
        "cross_origin",
        "this request came from another site; state-changing requests are only accepted from \
         AutoLearn's own pages (or with an Authorization header)",
    )
    .into_response()
}

/// Whether a request's browser headers say it comes from this server's own pages.
fn same_origin(s: &AppState, headers: &HeaderMap) -> bool {
    let get = |h: &str| headers.get(h).and_then(|v| v.to_str().ok());
    match (get("origin"), get("sec-fetch-site")) {
        (Some(origin), _) => {
            let Some((_, authority)) = origin.split_once("://") else {
                return false; // `Origin: null` (sandboxed frames, redirects) and junk
            };
            let ours = |host: Option<&str>| host.is_some_and(|h| h.eq_ignore_ascii_case(authority));
            ours(get(header::HOST.as_str()))
                || ours(get("x-forwarded-host"))
                || s.config
                    .public_url
                    .as_deref()
                    .and_then(|u| u.split_once("://"))
                    .is_some_and(|(_, host)| {
                        host.trim_end_matches('/').eq_ignore_ascii_case(authority)
                    })
        }
        (None, Some(site)) => matches!(site, "same-origin" | "none"),
        (None, None) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_lets_the_app_start_and_nothing_frame_it() {
        for part in [
            "'wasm-unsafe-eval'",
            "frame-ancestors 'none'",
            "object-src 'none'",
        ] {
            assert!(CONTENT_SECURITY_POLICY.contains(part), "{part}");
        }
        assert!(!CONTENT_SECURITY_POLICY.contains("'unsafe-eval'"));
        assert!(
            !CONTENT_SECURITY_POLICY
                .split(';')
                .any(|d| d.trim().starts_with("script-src") && d.contains("'unsafe-inline'"))
        );
    }
}
