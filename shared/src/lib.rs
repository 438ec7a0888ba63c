//! Code both the browser (`app`, wasm32) and the server compile, so that both validate
//! and serialise alike: API types ([`api`]) and validated domain types ([`names`]).
//!
//! This crate must stay free of I/O and of platform-specific dependencies.

pub mod api;
pub mod names;
pub mod recall;

pub use names::{InstanceType, NameError, Permission};
