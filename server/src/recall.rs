//! Recommendation recall (SPEC §8): table import, the item-based collaborative-filtering
//! builder, the in-memory recall engine with its per-service cache, and offline evaluation.

pub mod cache;
pub mod cf;
pub mod engine;
pub mod eval;
pub mod import;
pub mod jobs;
