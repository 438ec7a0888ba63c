//! Training tasks, their live events and the model versions they yield (SPEC §5, §9).
//! Wire types only: the models themselves are in [`crate::model`] (feature `model`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Algorithms ("presets") a task can use; each belongs to one instance type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Preset {
    /// EfficientNet-Lite0 at 224 px: light enough for phones and browsers.
    #[serde(rename = "classification-fast")]
    ClassificationFast,
    /// EfficientNet-Lite0 at 288 px with longer fine-tuning of more blocks.
    #[serde(rename = "classification-accurate")]
    ClassificationAccurate,
    /// EfficientNet-Lite0 backbone, a 64-channel feature pyramid over strides 8/16/32 and an
    /// anchor-free (FCOS) head at 320 px.
    #[serde(rename = "detection-fast")]
    DetectionFast,
    /// The same family at 416 px with a 96-channel pyramid, a deeper head and more of the
    /// backbone fine-tuned.
    #[serde(rename = "detection-accurate")]
    DetectionAccurate,
    /// PaddleOCR's PP-OCRv4 mobile detector and recogniser, pretrained; the recogniser is
    /// fine-tuned on the user's lines (CTC), the detector kept.
    #[serde(rename = "ocr-fast")]
    OcrFast,
}

impl Preset {
    pub const ALL: [Preset; 5] = [
        Self::ClassificationFast,
        Self::ClassificationAccurate,
        Self::DetectionFast,
        Self::DetectionAccurate,
        Self::OcrFast,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClassificationFast => "classification-fast",
            Self::ClassificationAccurate => "classification-accurate",
            Self::DetectionFast => "detection-fast",
            Self::DetectionAccurate => "detection-accurate",
            Self::OcrFast => "ocr-fast",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
    }

    /// The instance type whose tasks may use the preset.
    pub fn instance_type(self) -> crate::InstanceType {
        match self {
            Self::ClassificationFast | Self::ClassificationAccurate => {
                crate::InstanceType::ImageClassification
            }
            Self::DetectionFast | Self::DetectionAccurate => crate::InstanceType::ObjectDetection,
            Self::OcrFast => crate::InstanceType::Ocr,
        }
    }

    /// The presets of an instance type, fast first.
    pub fn for_type(t: crate::InstanceType) -> Vec<Preset> {
        Self::ALL
            .into_iter()
            .filter(|p| p.instance_type() == t)
            .collect()
    }

    /// Square input side in pixels the preset trains and predicts at.
    pub fn image_size(self) -> u32 {
        match self {
            Self::ClassificationFast => 224,
            Self::ClassificationAccurate => 288,
            Self::DetectionFast => 320,
            Self::DetectionAccurate => 416,
            // The detector's longer side (`shared::ocr::input::DET_MAX_SIDE`).
            Self::OcrFast => 960,
        }
    }

    /// The largest input side a task of the preset may ask for (OCR's is the detector's
    /// longer side, which reads small text better the larger it is).
    pub fn max_image_size(self) -> u32 {
        match self {
            Self::OcrFast => 1920,
            _ => MAX_IMAGE_SIZE,
        }
    }

    /// How many of the backbone's last stages are fine-tuned after the head.
    pub fn tuned_stages(self) -> usize {
        match self {
            Self::ClassificationFast => 2,
            Self::ClassificationAccurate | Self::DetectionFast => 4,
            // At 416 px, fine-tuning more of the backbone on a few hundred images costs
            // minutes per epoch and, on BCCD with detection-fast's 4 stages, lowered
            // validation mAP; the last two stages (blocks 11-15) adapt the deepest features.
            Self::DetectionAccurate => 2,
            Self::OcrFast => 0,
        }
    }

    /// The most of the budget the first phase (neck and head on the frozen backbone) may
    /// take when fine-tuning follows. Detection's first phase is where most of its mAP
    /// comes from (see docs/benchmarks.md); the accurate preset's larger head needs more
    /// epochs of it. Classification's first phase is bounded by epochs instead. OCR's first
    /// phase is the text detector's fine-tuning, before the recogniser's: the recogniser,
    /// which learns the user's strings, gets most of the time.
    pub fn head_budget_share(self) -> f64 {
        match self {
            Self::DetectionAccurate => 0.6,
            Self::DetectionFast => 0.4,
            Self::OcrFast => 0.35,
            Self::ClassificationFast | Self::ClassificationAccurate => 1.0,
        }
    }
}

/// Where training runs; `auto` picks a GPU when one is usable.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceChoice {
    #[default]
    Auto,
    Cpu,
    Gpu,
}

impl DeviceChoice {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Cpu => "cpu",
            Self::Gpu => "gpu",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Auto, Self::Cpu, Self::Gpu]
            .into_iter()
            .find(|d| d.as_str() == s)
    }
}

/// `POST /api/instances/{id}/tasks`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreateTask {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub dataset_id: i64,
    /// Labels to learn (at least two); images with none of them are left out.
    pub labels: Vec<String>,
    pub preset: Preset,
    #[serde(default)]
    pub device: DeviceChoice,
    /// Upper bound on training time; early stopping usually ends sooner.
    pub max_minutes: f64,
    /// Incremental training: start from this model version of the same instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_model_id: Option<i64>,
    /// Advanced: input side in pixels (multiple of 32, 64-512); the preset's by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_size: Option<u32>,
    /// Advanced: cap on fine-tuning epochs; early stopping and the time budget still apply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_epochs: Option<u32>,
    /// Advanced: seed of the validation split, initialisation and augmentation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Advanced: fine-tuning epochs without a better validation loss before early stopping
    /// (default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patience: Option<u32>,
}

pub const DEFAULT_PATIENCE: u32 = 3;

pub const MIN_IMAGE_SIZE: u32 = 64;
pub const MAX_IMAGE_SIZE: u32 = 512;
pub const MAX_EPOCHS: u32 = 500;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
    Stopped,
}

impl TaskStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Stopped => "stopped",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Queued,
            Self::Running,
            Self::Succeeded,
            Self::Failed,
            Self::Stopped,
        ]
        .into_iter()
        .find(|t| t.as_str() == s)
    }

    pub fn is_finished(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Stopped)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    pub id: i64,
    pub instance_id: i64,
    pub name: String,
    pub description: String,
    pub dataset_id: i64,
    pub labels: Vec<String>,
    pub preset: Preset,
    pub device: DeviceChoice,
    pub max_minutes: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_model_id: Option<i64>,
    pub image_size: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_epochs: Option<u32>,
    pub seed: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patience: Option<u32>,
    pub status: TaskStatus,
    /// 0..1 of the time budget or epochs, whichever is further along.
    pub progress: f64,
    pub stop_requested: bool,
    /// The device the worker actually used, e.g. `cpu (flex, 2 threads)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_used: Option<String>,
    /// The worker that runs or ran it (host:pid).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<String>,
    pub attempts: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_id: Option<i64>,
    pub created_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    /// The latest progress event, for pages that open mid-run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_progress: Option<Progress>,
}

/// One step of training progress: what the curves plot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// `features` (computing backbone features), `head` or `finetune`.
    pub phase: String,
    pub epoch: u32,
    pub step: u64,
    /// Seconds since the task started.
    pub elapsed_s: f64,
    /// Estimated seconds left (budget or epochs, whichever ends first).
    pub eta_s: f64,
    pub progress: f64,
    pub train_loss: f64,
    pub train_accuracy: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val_loss: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val_accuracy: Option<f64>,
    /// What `train_accuracy`/`val_accuracy` measure when not classification accuracy:
    /// detection reports the share of positive locations classified right (training) and
    /// `mAP@0.5` (validation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<String>,
}

/// What `GET /api/tasks/{id}/events` streams (SSE `event:` name = `kind`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskEvent {
    /// Increasing per task; SSE `id:`, so a reconnecting client resumes after it.
    pub seq: i64,
    pub at: String,
    #[serde(flatten)]
    pub body: TaskEventBody,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum TaskEventBody {
    Log {
        line: String,
    },
    Progress(Progress),
    Status {
        status: TaskStatus,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        model_id: Option<i64>,
    },
}

/// Per-class figures on the validation split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassMetrics {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    /// Validation images of the class.
    pub support: u64,
}

/// Evaluation of a classification model on the validation split only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassificationMetrics {
    pub accuracy: f64,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub loss: f64,
    pub per_class: BTreeMap<String, ClassMetrics>,
    /// `confusion_matrix[true][predicted]`, in the order of the model's labels.
    pub confusion_matrix: Vec<Vec<u64>>,
    /// Weights in bytes as stored.
    pub model_size: u64,
    pub validation_images: u64,
    pub train_images: u64,
    /// Validation images the model got wrong, for drilling down from the matrix.
    pub misclassified: Vec<Misclassified>,
}

impl ClassificationMetrics {
    /// The headline figures as key/value pairs (`meta.json`, the publish and preview pages).
    pub fn summary(&self) -> BTreeMap<String, f64> {
        [
            ("accuracy", self.accuracy),
            ("precision", self.precision),
            ("recall", self.recall),
            ("f1", self.f1),
            ("loss", self.loss),
            ("model_size", self.model_size as f64),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }
}

/// A model version's evaluation, whatever its kind. Untagged: a classification version's
/// metrics keep the exact shape they always had.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Metrics {
    Classification(ClassificationMetrics),
    Detection(DetectionMetrics),
    Ocr(OcrMetrics),
}

impl Metrics {
    /// The headline figures as key/value pairs (`meta.json`, the publish and preview pages).
    pub fn summary(&self) -> BTreeMap<String, f64> {
        match self {
            Self::Classification(m) => m.summary(),
            Self::Detection(m) => m.summary(),
            Self::Ocr(m) => m.summary(),
        }
    }

    pub fn model_size(&self) -> u64 {
        match self {
            Self::Classification(m) => m.model_size,
            Self::Detection(m) => m.model_size,
            Self::Ocr(m) => m.model_size,
        }
    }

    pub fn set_model_size(&mut self, bytes: u64) {
        match self {
            Self::Classification(m) => m.model_size = bytes,
            Self::Detection(m) => m.model_size = bytes,
            Self::Ocr(m) => m.model_size = bytes,
        }
    }

    pub fn validation_images(&self) -> u64 {
        match self {
            Self::Classification(m) => m.validation_images,
            Self::Detection(m) => m.validation_images,
            Self::Ocr(m) => m.validation_images,
        }
    }

    /// The one figure a version list shows: accuracy, mAP@0.5 for detection, line exact
    /// match for OCR.
    pub fn headline(&self) -> (&'static str, f64) {
        match self {
            Self::Classification(m) => ("accuracy", m.accuracy),
            Self::Detection(m) => ("mAP@0.5", m.map),
            Self::Ocr(m) => ("exact match", m.scores.exact_match),
        }
    }

    pub fn classification(&self) -> Option<&ClassificationMetrics> {
        match self {
            Self::Classification(m) => Some(m),
            _ => None,
        }
    }

    pub fn detection(&self) -> Option<&DetectionMetrics> {
        match self {
            Self::Detection(m) => Some(m),
            _ => None,
        }
    }

    pub fn ocr(&self) -> Option<&OcrMetrics> {
        match self {
            Self::Ocr(m) => Some(m),
            _ => None,
        }
    }
}

/// End-to-end OCR figures on validation images (the server's `train::ocr::evaluate` has the
/// definitions): true lines matched one to one by box IoU ≥ 0.5; texts compared with case
/// folded and everything but letters and digits dropped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct OcrScores {
    /// Share of true lines read exactly.
    pub exact_match: f64,
    /// Character error rate: edit distance over true characters.
    pub cer: f64,
    /// Detection precision, recall and H-mean of the boxes alone.
    pub precision: f64,
    pub recall: f64,
    pub hmean: f64,
}

/// A line on a validation image: its corners in pixels (TL TR BR BL) and text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OcrEvalLine {
    pub pos: [[f32; 2]; 4],
    pub text: String,
    /// 1 for true lines.
    pub conf: f64,
}

/// A validation image with its true and read lines, for the model page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OcrEvalImage {
    pub image_id: i64,
    /// The photo's size in pixels (the lines' coordinate space).
    pub width: u32,
    pub height: u32,
    pub truth: Vec<OcrEvalLine>,
    pub read: Vec<OcrEvalLine>,
}

/// Evaluation of an OCR model on the validation split only, beside the pretrained models'
/// own figures on the same images (what training bought).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OcrMetrics {
    #[serde(flatten)]
    pub scores: OcrScores,
    pub pretrained: OcrScores,
    /// Mean CTC loss of the recogniser on the validation lines (their true boxes) ...
    pub loss: f64,
    /// ... and of the starting recogniser, before training.
    pub pretrained_loss: f64,
    pub validation_lines: u64,
    pub model_size: u64,
    pub validation_images: u64,
    pub train_images: u64,
    pub images: Vec<OcrEvalImage>,
}

impl OcrMetrics {
    pub fn summary(&self) -> BTreeMap<String, f64> {
        [
            ("exact_match", self.scores.exact_match),
            ("cer", self.scores.cer),
            ("precision", self.scores.precision),
            ("recall", self.scores.recall),
            ("hmean", self.scores.hmean),
            ("pretrained_exact_match", self.pretrained.exact_match),
            ("pretrained_cer", self.pretrained.cer),
            ("pretrained_loss", self.pretrained_loss),
            ("loss", self.loss),
            ("model_size", self.model_size as f64),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }
}

/// Per-class detection figures on the validation split.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DetectionClassMetrics {
    /// Average precision at IoU 0.5 (all-point interpolation).
    pub ap: f64,
    /// AP averaged over IoU 0.50:0.05:0.95.
    pub ap_50_95: f64,
    /// At the served confidence threshold, IoU 0.5.
    pub precision: f64,
    pub recall: f64,
    /// True boxes of the class in the validation images.
    pub support: u64,
    /// The precision-recall curve at IoU 0.5: `[confidence, precision, recall]` down the
    /// ranking (at most about 50 points).
    pub pr_curve: Vec<[f64; 3]>,
}

/// A box on a validation image, in coordinates relative to the image (0..1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalBox {
    pub label: String,
    /// 1 for true boxes.
    pub conf: f64,
    pub xmin: f64,
    pub ymin: f64,
    pub xmax: f64,
    pub ymax: f64,
}

/// A validation image with its true and predicted boxes, for the model page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalImage {
    pub image_id: i64,
    pub truth: Vec<EvalBox>,
    /// Every box the model found above [`crate::detect::MIN_SCORE`], highest first, so the
    /// page can redraw at any confidence threshold.
    pub predicted: Vec<EvalBox>,
}

/// Evaluation of a detection model on the validation split only (see [`crate::detect`]
/// for the definitions).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DetectionMetrics {
    /// mAP at IoU 0.5 (all-point interpolated AP, mean over classes with validation boxes).
    pub map: f64,
    /// mAP averaged over IoU 0.50:0.05:0.95.
    pub map_50_95: f64,
    /// Over all classes, at `conf_threshold` and IoU 0.5.
    pub precision: f64,
    pub recall: f64,
    /// The confidence under which the served model drops boxes: the best-F1 threshold on
    /// the validation images.
    pub conf_threshold: f64,
    /// Training objective on the validation images: classification + localization
    /// (+ centre-ness), each a mean per positive location.
    pub loss: f64,
    pub classification_loss: f64,
    pub localization_loss: f64,
    pub per_class: BTreeMap<String, DetectionClassMetrics>,
    pub model_size: u64,
    pub validation_images: u64,
    pub train_images: u64,
    pub images: Vec<EvalImage>,
}

impl DetectionMetrics {
    pub fn summary(&self) -> BTreeMap<String, f64> {
        [
            ("mAP@0.5", self.map),
            ("mAP@0.5:0.95", self.map_50_95),
            ("precision", self.precision),
            ("recall", self.recall),
            ("conf_threshold", self.conf_threshold),
            ("loss", self.loss),
            ("classification_loss", self.classification_loss),
            ("localization_loss", self.localization_loss),
            ("model_size", self.model_size as f64),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Misclassified {
    pub image_id: i64,
    pub truth: String,
    pub predicted: String,
    pub confidence: f64,
}

/// A trained model version (`GET /api/instances/{id}/models`, `GET /api/models/{id}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelVersion {
    pub id: i64,
    pub instance_id: i64,
    pub task_id: i64,
    /// 1, 2, ... per instance.
    pub version: i64,
    pub preset: Preset,
    pub labels: Vec<String>,
    pub image_size: u32,
    pub metrics: Metrics,
    pub size_bytes: u64,
    /// Whether the backbone started from ImageNet weights.
    pub pretrained: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_model_id: Option<i64>,
    pub created_at: String,
}

impl ModelMeta {
    /// The confidence under which a detector's boxes are not served: its evaluation's
    /// choice, kept in the metrics summary.
    pub fn conf_threshold(&self) -> f32 {
        self.metrics
            .get("conf_threshold")
            .map_or(crate::detect::CONF_THRESHOLD, |v| *v as f32)
    }
}

/// `meta.json` of an artifact: what a runtime (server or browser) needs besides the weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelMeta {
    pub format: String,
    pub instance_type: crate::InstanceType,
    pub preset: Preset,
    pub architecture: String,
    pub labels: Vec<String>,
    pub image_size: u32,
    /// Per-channel mean and std applied to RGB values scaled to 0..1.
    pub mean: [f32; 3],
    pub std: [f32; 3],
    /// `f16` or `f32`.
    pub precision: String,
    pub weights_bytes: u64,
    pub metrics: BTreeMap<String, f64>,
    pub created_at: String,
    /// OCR: the recogniser's characters (class `i + 1` is `charset[i]`; 0 is CTC's blank).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub charset: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_of_either_kind_round_trip_and_classification_keeps_its_shape() {
        let c = ClassificationMetrics {
            accuracy: 0.5,
            precision: 0.5,
            recall: 0.5,
            f1: 0.5,
            loss: 1.0,
            per_class: BTreeMap::new(),
            confusion_matrix: vec![],
            model_size: 3,
            validation_images: 2,
            train_images: 8,
            misclassified: vec![],
        };
        let v = serde_json::to_value(Metrics::Classification(c.clone())).unwrap();
        assert_eq!(v, serde_json::to_value(&c).unwrap());
        let back: Metrics = serde_json::from_value(v).unwrap();
        assert_eq!(back, Metrics::Classification(c));
        let d = Metrics::Detection(DetectionMetrics {
            map: 0.7,
            ..DetectionMetrics::default()
        });
        let back: Metrics = serde_json::from_str(&serde_json::to_string(&d).unwrap()).unwrap();
        assert_eq!(back, d);
        assert_eq!(back.headline(), ("mAP@0.5", 0.7));
    }

    #[test]
    fn presets_belong_to_their_instance_type() {
        use crate::InstanceType;
        assert_eq!(
            Preset::for_type(InstanceType::ObjectDetection),
            vec![Preset::DetectionFast, Preset::DetectionAccurate]
        );
        assert_eq!(Preset::for_type(InstanceType::Ocr), vec![Preset::OcrFast]);
        for p in Preset::ALL {
            assert_eq!(Preset::parse(p.as_str()), Some(p));
        }
    }
}
