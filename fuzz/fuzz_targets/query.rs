//! The API's query strings (`server/src/routes/query.rs`, compiled here from the server's
//! own source), parsed as axum's `Query` parses them (serde_urlencoded) and then checked as
//! each route checks them. Any string must parse or be refused, never panic; what passes a
//! check is within its limits (page offsets fit in an i64, sizes in their ranges).
#![no_main]

#[path = "../../server/src/routes/query.rs"]
#[allow(dead_code)]
mod query;

use libfuzzer_sys::fuzz_target;
use query::*;

fn parse<T: serde::de::DeserializeOwned>(q: &str) -> Option<T> {
    serde_urlencoded::from_str(q).ok()
}

fuzz_target!(|data: &[u8]| {
    let Ok(q) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(images) = parse::<ImagesQuery>(q) {
        if let Ok((page, per_page)) = images.page() {
            assert!(page >= 1 && (1..=MAX_PER_PAGE).contains(&per_page));
            assert!((page - 1).checked_mul(per_page).is_some());
        }
        assert!(images.label().is_none_or(|l| !l.is_empty()));
    }
    if let Some(thumb) = parse::<ThumbQuery>(q) {
        if let Ok(size) = thumb.size(64..=512) {
            assert!((64..=512).contains(&size));
        }
    }
    if let Some(import) = parse::<ImportQuery>(q) {
        let _ = import.append();
    }
    if let Some(log) = parse::<BehaviorLogQuery>(q) {
        if let Ok((top_n, weights)) = log.check([1.0, 3.0, 2.0]) {
            assert!(TOP_N.contains(&top_n));
            assert!(weights.iter().all(|w| w.is_finite() && *w >= 0.0));
        }
    }
    if let Some(recall) = parse::<RecallQuery>(q) {
        if let Ok(o) = recall.options() {
            assert!((1..=MAX_RECALL_SIZE as usize).contains(&o.size));
        }
    }
    let _ = parse::<ExportQuery>(q);
    let _ = parse::<ArtifactQuery>(q);
    let _ = parse::<TaskLogQuery>(q);
    let _ = parse::<SuggestionsQuery>(q);
});
