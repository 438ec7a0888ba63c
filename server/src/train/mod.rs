//! Training (SPEC §5): tasks queued in the database, workers that claim them, and one
//! module per kind of model: each brings its data loading, training loop and evaluation
//! ([`classification`], [`detection`]) over the shared machinery ([`run`]: deadline, stop
//! requests, progress; [`worker`]: queue, lease, events, artifacts and versions).

pub mod classification;
pub mod detection;
pub mod ocr;
pub mod pixels;
pub mod run;
pub mod template;
pub mod weights;
pub mod worker;
