//! OCR models: PaddleOCR's PP-OCRv4 mobile text detector (DB: a text-probability map at the
//! input's resolution) and recogniser (SVTR-LCNet: per-column class probabilities for CTC),
//! imported from the ONNX files RapidOCR ships. `ppocr_det.rs` / `ppocr_rec.rs` are the code
//! burn-onnx generated (plain burn modules: they fine-tune and run in wasm); the `.map` files
//! name, for every parameter, the ONNX constant its weights are read from, so the weights
//! come from the same wheel at run time and are never committed.

pub mod ppocr_det;
pub mod ppocr_rec;

pub use ppocr_det::Model as TextDetector;
pub use ppocr_rec::Model as TextRecognizer;

/// `path onnx_name layout` lines for the detector's parameters (or `path =value i32`).
pub const DET_WEIGHT_MAP: &str = include_str!("ppocr_det.map");
/// The same for the recogniser.
pub const REC_WEIGHT_MAP: &str = include_str!("ppocr_rec.map");

// The models' input conventions are in `crate::ocr` (MEAN, STD, REC_HEIGHT, ...).

use burn::prelude::*;
use image::RgbImage;

use crate::ocr::{DbParams, Quad, TextRegion, ctc_greedy, input, text_regions};

/// A line read from a page: where (pixels, TL TR BR BL), what, how sure (the mean
/// probability of its characters).
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub quad: Quad,
    pub text: String,
    pub conf: f32,
}

/// The whole OCR pipeline over the two models, the same on the server and in the browser:
/// detector map → text regions → straightened crops → recogniser → CTC text.
#[derive(Debug)]
pub struct OcrReader {
    pub detector: TextDetector,
    pub recogniser: TextRecognizer,
    /// Class `i + 1` of the recogniser is `charset[i]`.
    pub charset: Vec<String>,
    pub device: Device,
    pub params: DbParams,
    /// The detector input's longer side.
    pub max_side: u32,
}

/// How many lines the recogniser reads at once (bounded memory on big pages).
const REC_BATCH: usize = 8;

impl OcrReader {
    pub fn new(
        detector: TextDetector,
        recogniser: TextRecognizer,
        charset: Vec<String>,
        device: Device,
    ) -> Self {
        Self {
            detector,
            recogniser,
            charset,
            device,
            params: DbParams::default(),
            max_side: input::DET_MAX_SIDE,
        }
    }

    /// The detector's text-probability map for a `1×3×h×w` input.
    pub fn det_map(&self, x: Vec<f32>, w: usize, h: usize) -> Vec<f32> {
        let x = Tensor::from_data(TensorData::new(x, [1, 3, h, w]), &self.device);
        self.detector
            .forward(x)
            .into_data()
            .try_to_vec::<f32>()
            .expect("f32 map")
    }

    /// The recogniser's per-column class probabilities for an `n×3×48×w` input.
    pub fn rec_probs(&self, x: Vec<f32>, n: usize, w: usize) -> Vec<f32> {
        let x = Tensor::from_data(
            TensorData::new(x, [n, 3, crate::ocr::REC_HEIGHT, w]),
            &self.device,
        );
        self.recogniser
            .forward(x)
            .into_data()
            .try_to_vec::<f32>()
            .expect("f32 probabilities")
    }

    /// Number of recogniser classes (blank + characters + space).
    pub fn classes(&self) -> usize {
        self.charset.len() + 1
    }

    /// Text regions on a page, in its pixels and in reading order.
    pub fn detect(&self, img: &RgbImage) -> Vec<TextRegion> {
        let (x, (w, h)) = input::det_input(img, self.max_side);
        let map = self.det_map(x, w as usize, h as usize);
        text_regions(
            &map,
            w as usize,
            h as usize,
            img.width(),
            img.height(),
            &self.params,
        )
    }

    /// Reads straightened line images.
    pub fn read_lines(&self, lines: &[RgbImage]) -> Vec<(String, f32)> {
        let classes = self.classes();
        let mut out = Vec::with_capacity(lines.len());
        for batch in lines.chunks(REC_BATCH) {
            let mut x = Vec::new();
            let w = input::rec_batch(batch, &mut x);
            let probs = self.rec_probs(x, batch.len(), w);
            let per_line = probs.len() / batch.len();
            out.extend(
                probs
                    .chunks_exact(per_line)
                    .map(|p| ctc_greedy(p, classes, &self.charset)),
            );
        }
        out
    }

    /// Finds and reads every line of a page; lines read as empty are dropped.
    pub fn read_page(&self, img: &RgbImage) -> Vec<Line> {
        let regions = self.detect(img);
        let crops: Vec<RgbImage> = regions
            .iter()
            .map(|r| input::crop_line(img, &r.quad))
            .collect();
        self.read_lines(&crops)
            .into_iter()
            .zip(regions)
            .filter(|((text, _), _)| !text.trim().is_empty())
            .map(|((text, conf), r)| Line {
                quad: r.quad,
                text,
                conf,
            })
            .collect()
    }
}

/// Both models as one module: what a model version stores.
#[derive(Module, Debug)]
pub struct OcrModel {
    pub detector: TextDetector,
    pub recogniser: TextRecognizer,
}

impl OcrModel {
    /// The models' shapes (weights to be loaded), on `device`.
    pub fn new(device: &Device) -> Self {
        Self {
            detector: TextDetector::new(device),
            recogniser: TextRecognizer::new(device),
        }
    }
}

impl OcrReader {
    /// A reader over a stored version's models.
    pub fn from_model(model: OcrModel, charset: Vec<String>, device: Device) -> Self {
        Self::new(model.detector, model.recogniser, charset, device)
    }

    /// The models to store.
    pub fn model(&self) -> OcrModel {
        OcrModel {
            detector: self.detector.clone(),
            recogniser: self.recogniser.clone(),
        }
    }
}
