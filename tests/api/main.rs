//! One integration-test binary; every test runs on SQLite and on PostgreSQL.

mod assist;
mod auth;
mod datasets;
mod detection;
mod edits;
mod hostile;
mod images;
mod instances;
mod labels;
mod ocr;
mod predict;
mod prelabels;
mod previews;
mod recall;
mod s3;
mod security;
mod shared_datasets;
mod system;
mod training;
mod workers;
