//! JSON bodies of the management API (SPEC §9). Field names are the wire format: keep them
//! stable, add fields rather than rename.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{InstanceType, Permission};

/// Error body of every management API error: `{"error":{"code":..,"message":..}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// snake_case, stable, for programs.
    pub code: String,
    /// Says what to fix, for people.
    pub message: String,
    /// The request field at fault, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoginResponse {
    /// Bearer token for scripts (`Authorization: Bearer <token>`); the browser gets the
    /// same session as an HttpOnly cookie.
    pub token: String,
    pub user: User,
}

/// One permission, on every instance (`instance_id: None`) or on one.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Grant {
    pub permission: Permission,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    pub id: i64,
    pub username: String,
    pub is_admin: bool,
    pub permissions: Vec<Grant>,
    pub created_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreateUser {
    pub username: String,
    pub password: String,
    #[serde(default)]
    pub is_admin: bool,
    #[serde(default)]
    pub permissions: Vec<Grant>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SetPermissions {
    pub permissions: Vec<Grant>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Instance {
    pub id: i64,
    #[serde(rename = "type")]
    pub kind: InstanceType,
    pub name: String,
    pub description: String,
    pub created_at: String,
    pub dataset_count: i64,
    pub image_count: i64,
}

/// `POST /api/instances`: `{type, name, description}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreateInstance {
    #[serde(rename = "type")]
    pub kind: InstanceType,
    pub name: String,
    #[serde(default)]
    pub description: String,
}

/// `PATCH /api/instances/{id}`: any of the fields.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct UpdateInstance {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// `POST /api/instances/{id}/datasets`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreateDataset {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// `s3://bucket/prefix/` or a directory under one of the server's data roots.
    pub path: String,
}

/// A file the indexer left out, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedFile {
    pub path: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dataset {
    pub id: i64,
    pub instance_id: i64,
    pub name: String,
    pub description: String,
    pub path: String,
    pub created_at: String,
    pub indexed_at: String,
    pub total: i64,
    pub labelled: i64,
    pub unlabelled: i64,
    pub deleted: i64,
    /// Images per label (for boxes: images having at least one box of the label).
    pub per_label: BTreeMap<String, i64>,
    pub skipped: Vec<SkippedFile>,
}

/// The label of OCR boxes; their `text` is the transcription.
pub const OCR_LABEL: &str = "text";

/// A box coordinate as annotations keep it: hundredths of a pixel (what the labelling page
/// saves, and what a model's drafts are rounded to, so accepting one saves it unchanged).
pub fn saved_px(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// One box in pixel coordinates of the image. `text` is the transcription for OCR.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BoxAnnotation {
    pub label: String,
    pub xmin: f64,
    pub ymin: f64,
    pub xmax: f64,
    pub ymax: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

/// `PUT /api/images/{id}/annotation`: `{"labels":[..]}` or `{"boxes":[..]}`. An empty
/// annotation marks the image unlabelled.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Annotation {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub boxes: Vec<BoxAnnotation>,
}

impl Annotation {
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty() && self.boxes.is_empty()
    }

    /// Distinct label names used, sorted.
    pub fn label_set(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .labels
            .iter()
            .cloned()
            .chain(self.boxes.iter().map(|b| b.label.clone()))
            .collect();
        v.sort();
        v.dedup();
        v
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Image {
    pub id: i64,
    pub dataset_id: i64,
    /// Path relative to the dataset root, `/`-separated.
    pub path: String,
    pub width: i64,
    pub height: i64,
    pub size_bytes: i64,
    pub labelled: bool,
    pub deleted: bool,
    pub annotation: Annotation,
    pub updated_at: String,
    /// Bumped by every change of the annotation; a save may name the revision it edits
    /// (`If-Match`) and is refused (409) when another change came first.
    #[serde(default)]
    pub revision: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImagePage {
    pub items: Vec<Image>,
    pub page: i64,
    pub per_page: i64,
    /// Number of images matching the filter, over all pages.
    pub total: i64,
}

/// Filter of `GET /api/datasets/{id}/images?status=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImageStatus {
    /// Every image not deleted (the default).
    All,
    Labelled,
    Unlabelled,
    Deleted,
}

/// Label suggestions for a classification dataset (`GET /api/datasets/{id}/suggestions`),
/// fitted on the dataset's current labels; never stored as labels.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Suggestions {
    /// `computing` (the images' embeddings are being computed, see `progress`) or `ready`.
    pub state: String,
    /// 0 to 1.
    pub progress: f64,
    /// Labelled images each label needs before suggestions are given.
    pub min_per_label: usize,
    /// Images with exactly one label, per label.
    pub labels: Vec<LabelCount>,
    /// Unlabelled images with their most likely label, least certain first.
    pub suggestions: Vec<Suggestion>,
    /// Labelled images whose label a cross-validated fit doubts, most doubtful first.
    pub doubtful: Vec<Doubtful>,
    /// Time the fit and the suggestions took, in milliseconds.
    pub fit_ms: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Suggestion {
    pub image_id: i64,
    pub label: String,
    /// Probability of `label`, 0 to 1.
    pub confidence: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Doubtful {
    pub image_id: i64,
    /// The label it carries.
    pub label: String,
    /// The label the cross-validated fit prefers.
    pub suggested: String,
    /// Probability the fit gives the carried label.
    pub confidence: f64,
}

/// One box a model found, as a draft: pixel coordinates of the image, rounded to hundredths
/// of a pixel as the labelling page saves them, so accepting it saves exactly this box.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DraftBox {
    #[serde(flatten)]
    pub rect: BoxAnnotation,
    /// The model's confidence, 0 to 1.
    pub conf: f64,
}

/// A model version's answer for one unlabelled image, stored apart from its annotation:
/// `boxes` for detection and OCR (OCR boxes carry the text read), `label` for
/// classification (the most likely one).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prelabel {
    pub image_id: i64,
    pub model_id: i64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub boxes: Vec<DraftBox>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<DraftLabel>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DraftLabel {
    pub label: String,
    pub conf: f64,
}

impl Prelabel {
    /// The annotation that accepting every draft at or above `min_conf` saves.
    pub fn accepted(&self, min_conf: f64) -> Annotation {
        Annotation {
            labels: self
                .label
                .iter()
                .filter(|l| l.conf >= min_conf)
                .map(|l| l.label.clone())
                .collect(),
            boxes: self
                .boxes
                .iter()
                .filter(|b| b.conf >= min_conf)
                .map(|b| b.rect.clone())
                .collect(),
        }
    }
}

/// A dataset's pre-labelling run (`GET`/`POST /api/datasets/{id}/prelabels`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrelabelRun {
    pub model_id: i64,
    /// `running`, `done` or `failed` (see `message`).
    pub state: String,
    /// Images done, of `total` (the unlabelled images when the run started).
    pub done: i64,
    pub total: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    pub started_at: String,
    pub updated_at: String,
}

/// `GET /api/datasets/{id}/prelabels`: the last run and the drafts still waiting for a
/// decision, by image.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Prelabels {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<PrelabelRun>,
    pub items: Vec<Prelabel>,
}

/// `POST /api/datasets/{id}/prelabels`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StartPrelabels {
    pub model_id: i64,
}

/// A tag of a dataset and the number of images carrying it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelCount {
    pub name: String,
    pub count: i64,
}

/// `POST /api/datasets/{id}/labels` and `PATCH /api/datasets/{id}/labels/{name}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LabelBody {
    pub name: String,
}

impl Annotation {
    /// Renames label `old` to `new`, or removes it (and boxes carrying it) when `new` is
    /// `None`. Returns whether anything changed.
    pub fn relabel(&mut self, old: &str, new: Option<&str>) -> bool {
        let before = self.clone();
        match new {
            Some(n) => {
                for l in self.labels.iter_mut().filter(|l| *l == old) {
                    n.clone_into(l);
                }
                for b in self.boxes.iter_mut().filter(|b| b.label == old) {
                    n.clone_into(&mut b.label);
                }
                self.labels.dedup();
            }
            None => {
                self.labels.retain(|l| l != old);
                self.boxes.retain(|b| b.label != old);
            }
        }
        *self != before
    }
}

/// `GET /readyz` body.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Readiness {
    pub database: bool,
    pub storage: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn annotation_wire_format_matches_spec() {
        let a: Annotation = serde_json::from_str(r#"{"labels":["horse"]}"#).unwrap();
        assert_eq!(a.labels, vec!["horse"]);
        let b: Annotation = serde_json::from_str(
            r#"{"boxes":[{"label":"dog","xmin":1,"ymin":2,"xmax":30,"ymax":40,"text":"猫"}]}"#,
        )
        .unwrap();
        assert_eq!(b.boxes[0].text.as_deref(), Some("猫"));
        assert_eq!(b.label_set(), vec!["dog"]);
        assert_eq!(serde_json::to_string(&Annotation::default()).unwrap(), "{}");
    }

    #[test]
    fn relabel_renames_and_removes() {
        let mut a: Annotation = serde_json::from_str(
            r#"{"boxes":[{"label":"dog","xmin":1,"ymin":2,"xmax":3,"ymax":4},{"label":"cat","xmin":1,"ymin":2,"xmax":3,"ymax":4}]}"#,
        )
        .unwrap();
        assert!(a.relabel("dog", Some("puppy")));
        assert_eq!(a.label_set(), vec!["cat", "puppy"]);
        assert!(!a.relabel("bird", None));
        assert!(a.relabel("cat", None));
        assert_eq!(a.boxes.len(), 1);
        let mut c = Annotation {
            labels: vec!["x".into()],
            boxes: vec![],
        };
        assert!(c.relabel("x", None));
        assert!(c.is_empty());
    }

    #[test]
    fn instance_type_field_is_named_type() {
        let c: CreateInstance = serde_json::from_str(r#"{"type":"ocr","name":"plates"}"#).unwrap();
        assert_eq!(c.kind, InstanceType::Ocr);
        assert_eq!(c.description, "");
    }
}
