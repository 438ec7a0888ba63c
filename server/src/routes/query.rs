//! The API's query strings: each route's parameters and their checks, with nothing but serde
//! and `shared` types, so the fuzz target `fuzz/fuzz_targets/query.rs` runs exactly what the
//! server runs on any query string. A value that passes a check is safe to use as is (page
//! offsets fit in an `i64`, sizes are within their limits).

use std::ops::RangeInclusive;

use serde::Deserialize;
use shared::api::ImageStatus;
use shared::recall::RecallOptions;

/// Most images on one page of a dataset's listing.
pub const MAX_PER_PAGE: i64 = 500;
/// Most items one recall request may ask for.
pub const MAX_RECALL_SIZE: i64 = 1000;
/// Similar items kept per item by a CF build.
pub const TOP_N: RangeInclusive<usize> = 1..=500;

/// A parameter that failed its check: the field, an error code and what to send instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub field: &'static str,
    pub code: &'static str,
    pub message: String,
}

fn invalid(field: &'static str, code: &'static str, message: impl Into<String>) -> Invalid {
    Invalid {
        field,
        code,
        message: message.into(),
    }
}

/// `GET /api/datasets/{id}/images`.
#[derive(Debug, Deserialize)]
pub struct ImagesQuery {
    pub label: Option<String>,
    pub status: Option<ImageStatus>,
    pub page: Option<i64>,
    pub per_page: Option<i64>,
}

impl ImagesQuery {
    /// `(page, per_page)`, 1-based; `(page - 1) * per_page` is known not to overflow.
    pub fn page(&self) -> Result<(i64, i64), Invalid> {
        let page = self.page.unwrap_or(1);
        let per_page = self.per_page.unwrap_or(50);
        if page < 1 {
            return Err(invalid("page", "invalid_page", "page starts at 1"));
        }
        if !(1..=MAX_PER_PAGE).contains(&per_page) {
            return Err(invalid(
                "per_page",
                "invalid_page",
                format!("per_page must be 1 to {MAX_PER_PAGE}"),
            ));
        }
        if (page - 1).checked_mul(per_page).is_none() {
            return Err(invalid(
                "page",
                "invalid_page",
                "page is past any dataset's end",
            ));
        }
        Ok((page, per_page))
    }

    /// The label filter; empty means none.
    pub fn label(&self) -> Option<&str> {
        self.label.as_deref().filter(|l| !l.is_empty())
    }
}

/// `GET /api/datasets/{id}/export`.
#[derive(Debug, Deserialize)]
pub struct ExportQuery {
    pub format: Option<String>,
}

/// `GET /api/models/{id}/artifact`.
#[derive(Debug, Deserialize)]
pub struct ArtifactQuery {
    /// `tar` (default: as stored) or `web` (what the browser loads).
    pub format: Option<String>,
    /// A preview link's token, instead of a login.
    pub preview: Option<String>,
}

/// `GET /api/datasets/{id}/suggestions`.
#[derive(Debug, Deserialize)]
pub struct SuggestionsQuery {
    /// Also list the labelled images a cross-validated fit doubts (several fits more).
    #[serde(default)]
    pub doubtful: bool,
}

/// `GET /api/images/{id}/thumbnail`.
#[derive(Debug, Deserialize)]
pub struct ThumbQuery {
    pub size: Option<u32>,
}

impl ThumbQuery {
    /// The longest side asked for (default 256), within `allowed`.
    pub fn size(&self, allowed: RangeInclusive<u32>) -> Result<u32, Invalid> {
        let size = self.size.unwrap_or(256);
        if allowed.contains(&size) {
            Ok(size)
        } else {
            Err(invalid(
                "size",
                "invalid_size",
                format!("size must be {} to {}", allowed.start(), allowed.end()),
            ))
        }
    }
}

/// `GET /api/tasks/{id}/logs`.
#[derive(Debug, Deserialize)]
pub struct TaskLogQuery {
    #[serde(default)]
    pub after: i64,
}

/// `PUT /api/instances/{id}/tables/{table}`.
#[derive(Debug, Deserialize)]
pub struct ImportQuery {
    pub mode: Option<String>,
}

impl ImportQuery {
    /// Whether the upload appends (`mode=append`) rather than replaces (the default).
    pub fn append(&self) -> Result<bool, Invalid> {
        match self.mode.as_deref().unwrap_or("replace") {
            "replace" => Ok(false),
            "append" => Ok(true),
            _ => Err(invalid("mode", "invalid_mode", "mode is replace or append")),
        }
    }
}

/// `POST /api/instances/{id}/behavior-logs`.
#[derive(Debug, Deserialize)]
pub struct BehaviorLogQuery {
    pub top_n: Option<usize>,
    pub w_click: Option<f32>,
    pub w_buy: Option<f32>,
    pub w_favorite: Option<f32>,
}

impl BehaviorLogQuery {
    /// `(top_n, [click, buy, favourite] weights)`, the weights defaulting to `defaults`.
    pub fn check(&self, defaults: [f32; 3]) -> Result<(usize, [f32; 3]), Invalid> {
        let top_n = self.top_n.unwrap_or(50);
        if !TOP_N.contains(&top_n) {
            return Err(invalid(
                "top_n",
                "invalid_top_n",
                format!(
                    "top_n is {} to {} similar items per item",
                    TOP_N.start(),
                    TOP_N.end()
                ),
            ));
        }
        let weights = [
            self.w_click.unwrap_or(defaults[0]),
            self.w_buy.unwrap_or(defaults[1]),
            self.w_favorite.unwrap_or(defaults[2]),
        ];
        if !weights.iter().all(|w| w.is_finite() && *w >= 0.0) {
            return Err(invalid(
                "w_click",
                "invalid_weight",
                "action weights must be finite and non-negative",
            ));
        }
        Ok((top_n, weights))
    }
}

/// `GET /api/recall/{service}` (the POST body carries the same fields).
#[derive(Debug, Deserialize)]
pub struct RecallQuery {
    pub user_id: Option<String>,
    pub size: Option<i64>,
    pub include_history: Option<bool>,
    /// `popular` (default) or `none`.
    pub fallback: Option<String>,
}

impl RecallQuery {
    pub fn options(&self) -> Result<RecallOptions, String> {
        recall_options(self.size, self.include_history, self.fallback.as_deref())
    }
}

/// A recall request's options: `size` 1 to [`MAX_RECALL_SIZE`] (default 10), popular
/// items as fallback unless `fallback=none`.
pub fn recall_options(
    size: Option<i64>,
    include_history: Option<bool>,
    fallback: Option<&str>,
) -> Result<RecallOptions, String> {
    let size = size.unwrap_or(10);
    if !(1..=MAX_RECALL_SIZE).contains(&size) {
        return Err(format!("size must be 1 to {MAX_RECALL_SIZE}"));
    }
    let fallback_popular = match fallback.unwrap_or("popular") {
        "popular" => true,
        "none" => false,
        other => return Err(format!("fallback {other:?} is popular or none")),
    };
    Ok(RecallOptions {
        size: size as usize,
        include_history: include_history.unwrap_or(false),
        fallback_popular,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn images(q: &str) -> Result<(i64, i64), Invalid> {
        serde_urlencoded::from_str::<ImagesQuery>(q).unwrap().page()
    }

    #[test]
    fn a_page_past_any_offset_is_refused_not_overflowed() {
        assert_eq!(images(""), Ok((1, 50)));
        assert_eq!(images("page=3&per_page=500"), Ok((3, 500)));
        let e = images(&format!("page={}&per_page=500", i64::MAX)).unwrap_err();
        assert_eq!((e.field, e.code), ("page", "invalid_page"));
        assert_eq!(images("page=0").unwrap_err().field, "page");
        assert_eq!(images("per_page=501").unwrap_err().field, "per_page");
    }

    #[test]
    fn recall_and_log_parameters_keep_their_limits() {
        let q: RecallQuery = serde_urlencoded::from_str("user_id=u1&size=1001").unwrap();
        assert!(q.options().unwrap_err().contains("1 to 1000"));
        let q: RecallQuery = serde_urlencoded::from_str("fallback=none").unwrap();
        assert!(!q.options().unwrap().fallback_popular);
        let q: BehaviorLogQuery = serde_urlencoded::from_str("w_buy=NaN").unwrap();
        assert_eq!(q.check([1.0, 3.0, 2.0]).unwrap_err().code, "invalid_weight");
        let q: BehaviorLogQuery = serde_urlencoded::from_str("top_n=7").unwrap();
        assert_eq!(q.check([1.0, 3.0, 2.0]), Ok((7, [1.0, 3.0, 2.0])));
    }
}
