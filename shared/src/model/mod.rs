//! The models the server trains and serves and the browser runs (their pre- and
//! post-processing is [`crate::preprocess`]). Backend-independent (burn 0.22 picks the device at run time), so the
//! same code compiles natively and for wasm32.

pub mod artifact;
pub mod detector;
pub mod efficientnet;
pub mod fused;
pub mod losses;
pub mod ocr;

pub use detector::{Detector, DetectorConfig};
pub use efficientnet::EfficientNetLite;
pub use fused::FusedEfficientNetLite;
