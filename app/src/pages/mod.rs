//! One page per file. Each page fetches what it shows through [`crate::api`]; [`common`]
//! holds what several pages share.

pub mod classify;
pub mod common;
pub mod dataset;
pub mod deploy;
pub mod instance;
pub mod instances;
pub mod label;
pub mod label_boxes;
pub mod login;
pub mod model;
pub mod model_detection;
pub mod model_ocr;
pub mod not_found;
pub mod prelabel;
pub mod preview;
pub mod publish;
pub mod recall;
pub mod service;
pub mod task;
pub mod training;
pub mod try_model;
