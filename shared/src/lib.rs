//! Code both the browser (`app`, wasm32) and the server compile, so that both validate
//! and serialise alike: API types ([`api`]) and validated domain types ([`names`]);
//! with feature `image`, image pre- and post-processing and the predict request path
//! ([`preprocess`], [`predict::input`]); with feature `model`, the burn models ([`model`])
//! and the CPU executor that serves them ([`exec`]).
//!
//! This crate must stay free of I/O and of platform-specific dependencies (the executor's
//! vector kernels pick x86 or wasm instructions at compile or run time, with a plain fallback).

pub mod api;
pub mod detect;
#[cfg(feature = "model")]
pub mod exec;
#[cfg(feature = "model")]
pub mod model;
pub mod names;
pub mod ocr;
pub mod predict;
#[cfg(feature = "image")]
pub mod preprocess;
pub mod preview;
pub mod recall;
pub mod train;

pub use names::{InstanceType, NameError, Permission};
