//! The predict API's wire format (SPEC §7), as clients of the original service send and
//! read it. Field names are fixed: `dataArray`, `errorCode`, `errorMsg`, `cv_common`.

use serde::{Deserialize, Serialize};

#[cfg(feature = "image")]
pub mod input;

/// `POST /api/predict/{service}` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PredictRequest {
    #[serde(rename = "dataArray")]
    pub data_array: Vec<DataItem>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataItem {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Only `stream` exists.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Base64 of a JPG, PNG or BMP file.
    pub body: String,
}

/// One prediction. Classification: `label` and `conf`; detection adds `pos` as four
/// relative corners, OCR as four pixel corners (top-left, top-right, bottom-right,
/// bottom-left), so the envelope stays the same for every instance type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    pub label: String,
    pub conf: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pos: Option<Corners>,
}

/// A box's four corners (top-left, top-right, bottom-right, bottom-left): relative to the
/// image for detection, whole pixels of the original image for OCR, as the original
/// service writes them (`[[468,992],...]`, not `468.0`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Corners {
    Pixels([[i64; 2]; 4]),
    Relative([[f64; 2]; 4]),
}

impl Corners {
    /// The corners as numbers, whichever kind.
    pub fn points(&self) -> [[f64; 2]; 4] {
        match *self {
            Self::Pixels(p) => p.map(|[x, y]| [x as f64, y as f64]),
            Self::Relative(p) => p,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Output {
    /// Always `cv_common`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Sorted by `conf`, highest first.
    pub body: Vec<Prediction>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageMeta {
    pub height: u32,
    pub width: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PredictResult {
    /// One entry per item of `dataArray`, in order.
    pub output: Vec<Output>,
    /// Size of the (first) image.
    pub meta: ImageMeta,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PredictSuccess {
    pub success: bool,
    pub result: PredictResult,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PredictFailure {
    pub success: bool,
    #[serde(rename = "errorCode")]
    pub error_code: String,
    #[serde(rename = "errorMsg")]
    pub error_msg: String,
}

/// The SPEC's error codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PredictError {
    /// 1001: bad or missing fields.
    InputFormat,
    /// 1002: not a decodable image (or over the limits).
    ImageDecode,
    /// 2001
    Unknown,
    /// 2002: no capacity (overloaded) or model not loaded.
    GetInstance,
    /// 2003: inference failed.
    ModelForward,
}

impl PredictError {
    pub fn code(self) -> &'static str {
        match self {
            Self::InputFormat => "1001",
            Self::ImageDecode => "1002",
            Self::Unknown => "2001",
            Self::GetInstance => "2002",
            Self::ModelForward => "2003",
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            Self::InputFormat => "INPUT_FORMAT_ERROR",
            Self::ImageDecode => "IMAGE_DECODE_ERROR",
            Self::Unknown => "UNKNOWN_ERROR",
            Self::GetInstance => "GET_INSTANCE_ERROR",
            Self::ModelForward => "MODEL_FORWARD_ERROR",
        }
    }

    pub fn body(self) -> PredictFailure {
        PredictFailure {
            success: false,
            error_code: self.code().to_owned(),
            error_msg: self.message().to_owned(),
        }
    }
}

/// Classification output: every label with its probability, highest first.
pub fn classification_body(labels: &[String], probs: &[f32]) -> Vec<Prediction> {
    let mut body: Vec<Prediction> = labels
        .iter()
        .zip(probs)
        .map(|(l, &p)| Prediction {
            label: l.clone(),
            conf: round6(f64::from(p)),
            pos: None,
        })
        .collect();
    body.sort_by(|a, b| b.conf.total_cmp(&a.conf));
    body
}

/// Six decimals: f32 figures printed in full look like noise to clients.
fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

/// Detection output: each box with its label, score and SPEC §7 `pos`, the four corners
/// (top-left, top-right, bottom-right, bottom-left) relative to the image, highest score
/// first. `dets` are in the model's `side`×`side` input, which is the whole image squeezed
/// to a square, so dividing by `side` gives coordinates relative to the original image.
pub fn detection_body(
    labels: &[String],
    dets: &[crate::detect::Detection],
    side: usize,
) -> Vec<Prediction> {
    let s = side as f32;
    let mut body: Vec<Prediction> = dets
        .iter()
        .map(|d| {
            let r = d.rect.scaled(1.0 / s, 1.0 / s).clipped(1.0, 1.0);
            Prediction {
                label: labels.get(d.class).cloned().unwrap_or_default(),
                conf: round6(f64::from(d.score)),
                pos: Some(Corners::Relative(
                    r.corners().map(|[x, y]| [round6(x), round6(y)]),
                )),
            }
        })
        .collect();
    body.sort_by(|a, b| b.conf.total_cmp(&a.conf));
    body
}

/// OCR output: each line read, with its text, confidence (the mean probability of its
/// characters) and SPEC §7 `pos`, the four corners of its (possibly rotated) box in whole
/// pixels of the original image, TL TR BR BL as read along the text. Lines stay in reading
/// order (top to bottom, then left to right), as documents are read, not sorted by `conf`.
#[cfg(feature = "model")]
pub fn ocr_body(lines: &[crate::model::ocr::Line]) -> Vec<Prediction> {
    lines
        .iter()
        .map(|l| Prediction {
            label: l.text.clone(),
            conf: round6(f64::from(l.conf)),
            pos: Some(Corners::Pixels(
                l.quad.map(|[x, y]| [x.round() as i64, y.round() as i64]),
            )),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn success_and_errors_have_the_spec_shape() {
        let ok = PredictSuccess {
            success: true,
            result: PredictResult {
                output: vec![Output {
                    kind: "cv_common".into(),
                    body: classification_body(&["cat".into(), "horse".into()], &[0.2, 0.8]),
                }],
                meta: ImageMeta {
                    height: 1920,
                    width: 1080,
                },
            },
        };
        let v = serde_json::to_value(&ok).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"success": true, "result": {"output": [{"type": "cv_common", "body": [
                {"label": "horse", "conf": 0.8}, {"label": "cat", "conf": 0.2}]}],
                "meta": {"height": 1920, "width": 1080}}})
        );
        let e = serde_json::to_string(&PredictError::InputFormat.body()).unwrap();
        assert_eq!(
            e,
            r#"{"success":false,"errorCode":"1001","errorMsg":"INPUT_FORMAT_ERROR"}"#
        );
        let req: PredictRequest = serde_json::from_str(
            r#"{"dataArray":[{"name":"image","type":"stream","body":"aGk="}]}"#,
        )
        .unwrap();
        assert_eq!(req.data_array[0].body, "aGk=");
    }

    #[test]
    fn detection_body_has_relative_corners_in_spec_order() {
        use crate::detect::{Detection, Rect};
        let labels = vec!["car".to_owned(), "dog".to_owned()];
        let dets = [
            Detection {
                class: 0,
                score: 0.25,
                rect: Rect::new(0.0, 0.0, 160.0, 80.0),
            },
            Detection {
                class: 1,
                score: 0.75,
                rect: Rect::new(32.0, 64.0, 320.0, 330.0),
            },
        ];
        let v = serde_json::to_value(detection_body(&labels, &dets, 320)).unwrap();
        assert_eq!(
            v,
            serde_json::json!([
                {"label": "dog", "conf": 0.75, "pos": [[0.1, 0.2], [1.0, 0.2], [1.0, 1.0], [0.1, 1.0]]},
                {"label": "car", "conf": 0.25, "pos": [[0.0, 0.0], [0.5, 0.0], [0.5, 0.25], [0.0, 0.25]]}
            ])
        );
    }
}
