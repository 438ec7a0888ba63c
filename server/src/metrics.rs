//! Prometheus metrics: request counts and latency per route, in the text exposition format.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::hash::{Hash, Hasher};
use std::sync::Mutex;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;

/// Latency bucket upper bounds in seconds.
const BUCKETS: [f64; 10] = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0, 30.0];

#[derive(Default)]
struct Series {
    method: String,
    route: String,
    status: u16,
    count: u64,
    sum_secs: f64,
    buckets: [u64; BUCKETS.len()],
}

#[derive(Default)]
pub struct Metrics {
    /// Keyed by a hash of (method, route template, status), so the hot path allocates
    /// nothing once a series exists.
    requests: Mutex<HashMap<u64, Series>>,
}

fn series_key(method: &str, route: &str, status: u16) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (method, route, status).hash(&mut h);
    h.finish()
}

impl Metrics {
    fn record(&self, method: &str, route: &str, status: u16, secs: f64) {
        let key = series_key(method, route, status);
        let mut map = self
            .requests
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let s = map.entry(key).or_insert_with(|| Series {
            method: method.to_owned(),
            route: route.to_owned(),
            status,
            ..Series::default()
        });
        s.count += 1;
        s.sum_secs += secs;
        for (i, le) in BUCKETS.iter().enumerate() {
            if secs <= *le {
                s.buckets[i] += 1;
            }
        }
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let map = self
            .requests
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut series: Vec<&Series> = map.values().collect();
        series
            .sort_by(|a, b| (&a.route, &a.method, a.status).cmp(&(&b.route, &b.method, b.status)));
        let mut out = String::new();
        out.push_str("# HELP autolearn_http_requests_total HTTP requests by route and status.\n");
        out.push_str("# TYPE autolearn_http_requests_total counter\n");
        for s in &series {
            let (m, r, st) = (&s.method, &s.route, s.status);
            let _ = writeln!(
                out,
                "autolearn_http_requests_total{{method=\"{m}\",route=\"{r}\",status=\"{st}\"}} {}",
                s.count
            );
        }
        out.push_str("# HELP autolearn_http_request_duration_seconds Request latency by route.\n");
        out.push_str("# TYPE autolearn_http_request_duration_seconds histogram\n");
        for s in &series {
            let (m, r, st) = (&s.method, &s.route, s.status);
            let labels = format!("method=\"{m}\",route=\"{r}\",status=\"{st}\"");
            for (i, le) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "autolearn_http_request_duration_seconds_bucket{{{labels},le=\"{le}\"}} {}",
                    s.buckets[i]
                );
            }
            let _ = writeln!(
                out,
                "autolearn_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                s.count
            );
            let _ = writeln!(
                out,
                "autolearn_http_request_duration_seconds_sum{{{labels}}} {}",
                s.sum_secs
            );
            let _ = writeln!(
                out,
                "autolearn_http_request_duration_seconds_count{{{labels}}} {}",
                s.count
            );
        }
        out
    }
}

/// Middleware recording every request under its route template (not the raw path, so ids
/// do not explode the number of series).
pub async fn track(State(m): State<std::sync::Arc<Metrics>>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().clone();
    let route = req.extensions().get::<MatchedPath>().cloned();
    let res = next.run(req).await;
    let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
    m.record(
        method.as_str(),
        route,
        res.status().as_u16(),
        start.elapsed().as_secs_f64(),
    );
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_histograms() {
        let m = Metrics::default();
        m.record("GET", "/api/instances", 200, 0.002);
        m.record("GET", "/api/instances", 200, 0.2);
        let text = m.render();
        assert!(text.contains("autolearn_http_requests_total{method=\"GET\",route=\"/api/instances\",status=\"200\"} 2"));
        assert!(text.contains("le=\"0.005\"} 1"));
        assert!(text.contains("le=\"+Inf\"} 2"));
    }
}
