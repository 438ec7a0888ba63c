//! One page per file. Each page fetches what it shows through [`crate::api`].

pub mod instance;
pub mod instances;
pub mod login;
pub mod not_found;
