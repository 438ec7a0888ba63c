//! Preview links (SPEC §6): a signed, expiring, revocable URL `<server>/p/<token>` that opens
//! a live camera preview of one model with no login, and reads only that model's artifact.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Longest lifetime a preview link may be given.
pub const MAX_EXPIRES_HOURS: f64 = 24.0 * 30.0;

/// `POST /api/models/{id}/preview-links` body; every field optional.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CreatePreviewLink {
    /// Hours until the link stops working (default: the server's `preview_hours`, 24).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in_hours: Option<f64>,
}

/// A preview link as the user who made it sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PreviewLink {
    pub id: i64,
    pub model_id: i64,
    /// `<server>/p/<token>`: what the QR code holds.
    pub url: String,
    pub token: String,
    /// The QR code of `url`, as a standalone SVG document.
    pub qr_svg: String,
    pub created_at: String,
    pub expires_at: String,
    pub revoked: bool,
    pub expired: bool,
}

/// `GET /api/preview/{token}`: what the preview page needs, and nothing else.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PreviewInfo {
    pub model_id: i64,
    pub instance_name: String,
    pub version: i64,
    pub labels: Vec<String>,
    pub image_size: u32,
    pub created_at: String,
    pub expires_at: String,
    pub metrics: BTreeMap<String, f64>,
    /// The web artifact, readable with this link's token.
    pub artifact_url: String,
}
