//! Training (SPEC §5): tasks queued in the database, workers that claim them, the
//! transfer-learning loop on burn, evaluation on the validation split, and model artifacts.

pub mod artifact;
pub mod data;
pub mod metrics;
pub mod template;
pub mod trainer;
pub mod weights;
pub mod worker;
