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
/// The detector's forward pass one operation per line, weights named by their paths, for
/// the server's channels-last executor (`bench/ocr/plan.py` wrote it from `ppocr_det.rs`).
pub const DET_PLAN: &str = include_str!("ppocr_det.plan");
/// The recogniser's backbone (submodules 1-6, PP-LCNetV3) the same way; burn runs the rest
/// ([`OcrReader::rec_neck`]).
pub const REC_PLAN: &str = include_str!("ppocr_rec.plan");

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
        floats(self.det_forward(x, w, h).into_data())
    }

    /// The recogniser's per-column class probabilities for an `n×3×48×w` input.
    pub fn rec_probs(&self, x: Vec<f32>, n: usize, w: usize) -> Vec<f32> {
        floats(self.rec_forward(x, n, w).into_data())
    }

    fn det_forward(&self, x: Vec<f32>, w: usize, h: usize) -> Tensor<4> {
        let x = Tensor::from_data(TensorData::new(x, [1, 3, h, w]), &self.device);
        self.detector.forward(x)
    }

    fn rec_forward(&self, x: Vec<f32>, n: usize, w: usize) -> Tensor<3> {
        let x = Tensor::from_data(
            TensorData::new(x, [n, 3, crate::ocr::REC_HEIGHT, w]),
            &self.device,
        );
        self.recogniser.forward(x)
    }

    /// Number of recogniser classes (blank + characters + space).
    pub fn classes(&self) -> usize {
        self.charset.len() + 1
    }

    /// Text regions on a page, in its pixels and in reading order.
    pub fn detect(&self, img: &RgbImage) -> Vec<TextRegion> {
        let (x, (w, h)) = input::det_input(img, self.max_side);
        let map = self.det_map(x, w as usize, h as usize);
        self.regions(&map, (w, h), img)
    }

    /// The regions of a detector map computed at `w×h` for `img`.
    fn regions(&self, map: &[f32], (w, h): (u32, u32), img: &RgbImage) -> Vec<TextRegion> {
        text_regions(
            map,
            w as usize,
            h as usize,
            img.width(),
            img.height(),
            &self.params,
        )
    }

    /// The CTC texts of a batch's probabilities.
    fn texts(&self, probs: &[f32], n: usize) -> Vec<(String, f32)> {
        let per_line = probs.len() / n.max(1);
        probs
            .chunks_exact(per_line.max(1))
            .map(|p| ctc_greedy(p, self.classes(), &self.charset))
            .collect()
    }

    /// Reads straightened line images.
    pub fn read_lines(&self, lines: &[RgbImage]) -> Vec<(String, f32)> {
        self.read_lines_with(lines, |x, n, w| self.rec_probs(x, n, w))
    }

    /// [`Self::read_lines`] with the recogniser's probabilities computed by `rec_probs` from
    /// an `n×3×48×w` input.
    pub fn read_lines_with(
        &self,
        lines: &[RgbImage],
        mut rec_probs: impl FnMut(Vec<f32>, usize, usize) -> Vec<f32>,
    ) -> Vec<(String, f32)> {
        let mut out = Vec::with_capacity(lines.len());
        for batch in lines.chunks(REC_BATCH) {
            let mut x = Vec::new();
            let w = input::rec_batch(batch, &mut x);
            out.extend(self.texts(&rec_probs(x, batch.len(), w), batch.len()));
        }
        out
    }

    /// The recogniser after its backbone (the neck and the CTC head: submodules 7 and 8),
    /// from the backbone's `n×c×h×w` output.
    pub fn rec_neck(&self, features: Vec<f32>, [n, c, h, w]: [usize; 4]) -> Vec<f32> {
        let x = Tensor::from_data(TensorData::new(features, [n, c, h, w]), &self.device);
        let r = &self.recogniser;
        let (a, b, c) = r.submodule7.forward(x);
        floats(r.submodule8.forward(a, b, c).into_data())
    }

    /// Finds and reads every line of a page; lines read as empty are dropped.
    pub fn read_page(&self, img: &RgbImage) -> Vec<Line> {
        self.read_page_with(
            img,
            |x, w, h| self.det_map(x, w, h),
            |x, n, w| self.rec_probs(x, n, w),
        )
    }

    /// [`Self::read_page`] with the detector's map computed by `det_map` from the `1×3×h×w`
    /// input and the recogniser's probabilities by `rec_probs` (the server runs parts of
    /// the same models on its own executor).
    pub fn read_page_with(
        &self,
        img: &RgbImage,
        det_map: impl FnOnce(Vec<f32>, usize, usize) -> Vec<f32>,
        rec_probs: impl FnMut(Vec<f32>, usize, usize) -> Vec<f32>,
    ) -> Vec<Line> {
        let (x, (w, h)) = input::det_input(img, self.max_side);
        let map = det_map(x, w as usize, h as usize);
        let regions = self.regions(&map, (w, h), img);
        let crops = crops(img, &regions);
        lines(regions, self.read_lines_with(&crops, rec_probs))
    }

    /// [`Self::read_page`] on a backend whose results can only be read asynchronously
    /// (WebGPU in the browser): the same steps, awaiting each model's output.
    pub async fn read_page_async(&self, img: &RgbImage) -> Result<Vec<Line>, String> {
        let (x, (w, h)) = input::det_input(img, self.max_side);
        let map = read_async(self.det_forward(x, w as usize, h as usize)).await?;
        let regions = self.regions(&map, (w, h), img);
        let crops = crops(img, &regions);
        let mut read = Vec::with_capacity(crops.len());
        for batch in crops.chunks(REC_BATCH) {
            let mut x = Vec::new();
            let w = input::rec_batch(batch, &mut x);
            let probs = read_async(self.rec_forward(x, batch.len(), w)).await?;
            read.extend(self.texts(&probs, batch.len()));
        }
        Ok(lines(regions, read))
    }
}

fn floats(data: TensorData) -> Vec<f32> {
    data.try_to_vec::<f32>().expect("f32 outputs")
}

async fn read_async<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>, String> {
    t.into_data_async()
        .await
        .map_err(|e| format!("{e:?}"))?
        .try_to_vec::<f32>()
        .map_err(|e| format!("{e:?}"))
}

/// Each region's line, straightened.
fn crops(img: &RgbImage, regions: &[TextRegion]) -> Vec<RgbImage> {
    regions
        .iter()
        .map(|r| input::crop_line(img, &r.quad))
        .collect()
}

/// Regions with their texts; those read as empty are dropped.
fn lines(regions: Vec<TextRegion>, read: Vec<(String, f32)>) -> Vec<Line> {
    read.into_iter()
        .zip(regions)
        .filter(|((text, _), _)| !text.trim().is_empty())
        .map(|((text, conf), r)| Line {
            quad: r.quad,
            text,
            conf,
        })
        .collect()
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
