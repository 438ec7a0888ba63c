//! Serving an OCR version: the reader (detector → text regions → straightened crops →
//! recogniser → CTC text, `shared::model::ocr`, the same code the browser and the
//! evaluation run) as an engine [`Worker`] taking whole decoded pages, one at a time (pages
//! differ in size; a page's lines are already batched through the recogniser). The
//! detector, most of a page's time, runs on the channels-last executor ([`super::plan`])
//! with the version's own weights.

use image::RgbImage;
use shared::model::ocr::{Line, OcrModel, OcrReader};
use shared::train::ModelMeta;

use super::engine::{Engine, Worker};
use super::plan::{Plan, Shape, weights_of};
use crate::artifact;
use shared::exec::Scratch;
use shared::exec::detector::nchw;

/// An OCR service's engine: pages in, lines (pixels, reading order) out.
pub type OcrEngine = Engine<RgbImage, Vec<Line>>;

pub struct PageReader {
    reader: OcrReader,
    detector: Plan,
    /// The recogniser's backbone; burn runs its neck and head.
    rec_backbone: Plan,
}

impl PageReader {
    /// The reader of a stored OCR version, reading at the detector size it was trained at.
    pub fn load(meta: &ModelMeta, weights: Vec<u8>) -> anyhow::Result<Self> {
        let device = burn::prelude::Device::flex();
        let model = artifact::load_into(OcrModel::new(&device), weights)?;
        anyhow::ensure!(
            !meta.charset.is_empty(),
            "the artifact has no character list"
        );
        let mut reader = OcrReader::from_model(model, meta.charset.clone(), device);
        reader.max_side = meta.image_size;
        Self::new(reader)
    }

    /// Serves `reader`, its detector and recogniser backbone planned for the executor.
    pub fn new(reader: OcrReader) -> anyhow::Result<Self> {
        use shared::model::ocr::{DET_PLAN, REC_PLAN};
        let detector = Plan::new(DET_PLAN, &weights_of(&reader.detector)?)?;
        let rec_backbone = Plan::new(REC_PLAN, &weights_of(&reader.recogniser)?)?;
        Ok(Self {
            reader,
            detector,
            rec_backbone,
        })
    }

    /// Finds and reads every line of a page, as [`OcrReader::read_page`] does.
    pub fn read_page(&self, page: &RgbImage, scratch: &mut Scratch) -> Vec<Line> {
        let pool = std::cell::RefCell::new(std::mem::take(&mut scratch.pool));
        let lines = self.reader.read_page_with(
            page,
            |x, w, h| self.det_map(&x, w, h, &mut pool.borrow_mut()),
            |x, n, w| self.rec_probs(&x, n, w, &mut pool.borrow_mut()),
        );
        scratch.pool = pool.into_inner();
        lines
    }

    /// Reads straightened line images, as [`OcrReader::read_lines`] does.
    pub fn read_lines(&self, lines: &[RgbImage], pool: &mut Vec<Vec<f32>>) -> Vec<(String, f32)> {
        self.reader
            .read_lines_with(lines, |x, n, w| self.rec_probs(&x, n, w, pool))
    }

    /// The recogniser's per-column class probabilities for its `n×3×48×w` input.
    pub fn rec_probs(&self, x: &[f32], n: usize, w: usize, pool: &mut Vec<Vec<f32>>) -> Vec<f32> {
        let h = shared::ocr::REC_HEIGHT;
        let (features, s) =
            self.rec_backbone
                .run(nhwc(x, n, 3, h, w), Shape { n, h, w, c: 3 }, pool);
        let nchw = nchw(&features, s.n, (s.h, s.w, s.c));
        pool.push(features);
        self.reader.rec_neck(nchw, [s.n, s.c, s.h, s.w])
    }

    /// The detector's map for its `1×3×h×w` input.
    pub fn det_map(&self, x: &[f32], w: usize, h: usize, pool: &mut Vec<Vec<f32>>) -> Vec<f32> {
        let (map, shape) = self
            .detector
            .run(nhwc(x, 1, 3, h, w), Shape { n: 1, h, w, c: 3 }, pool);
        debug_assert_eq!((shape.h, shape.w, shape.c), (h, w, 1));
        map
    }
}

/// `n` images' `c×h×w` planes as `h×w×c` pixels.
fn nhwc(x: &[f32], n: usize, c: usize, h: usize, w: usize) -> Vec<f32> {
    let plane = h * w;
    let mut out = vec![0.0; n * c * plane];
    for (i, img) in out.chunks_exact_mut(c * plane).enumerate() {
        let x = &x[i * c * plane..(i + 1) * c * plane];
        for (p, px) in img.chunks_exact_mut(c).enumerate() {
            for (ch, v) in px.iter_mut().enumerate() {
                *v = x[ch * plane + p];
            }
        }
    }
    out
}

impl Worker for PageReader {
    type Input = RgbImage;
    type Output = Vec<Line>;
    const MAX_BATCH: usize = 1;

    fn run(&self, pages: Vec<RgbImage>, scratch: &mut Scratch) -> Vec<Vec<Line>> {
        pages.iter().map(|p| self.read_page(p, scratch)).collect()
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::train::ocr::pretrained;
    use crate::train::weights::{cannot_run, test_weights_dir};
    use shared::exec::testing::largest_difference;
    use shared::ocr::input;

    /// The served detector and recogniser backbone (plans on the executor) compute burn's
    /// map and probabilities for a real photo, and the served reader reads the page as the
    /// burn reader does.
    #[test]
    fn served_models_compute_what_burn_computes() {
        let photo = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../shared/datasets/openalpr-plates/eu/eu1.jpg");
        if !photo.is_file() {
            return cannot_run(&format!("{} is absent", photo.display()));
        }
        let pretrained = match pretrained::ensure(&test_weights_dir()) {
            Ok(p) => p,
            Err(e) => return cannot_run(&format!("pretrained OCR models unavailable: {e:#}")),
        };
        let device = burn::prelude::Device::flex();
        let mut reader = pretrained::load(&pretrained, &device).unwrap();
        // A smaller page keeps the burn reference quick; odd sizes test the padding.
        reader.max_side = 480;
        let page = image::open(&photo).unwrap().to_rgb8();
        let want_lines = reader.read_page(&page);
        let (x, (w, h)) = input::det_input(&page, reader.max_side);
        let want = reader.det_map(x.clone(), w as usize, h as usize);

        let served = PageReader::new(reader).unwrap();
        assert!(
            served.detector.steps() < 150,
            "element-wise chains folded: {} steps for 330 operations",
            served.detector.steps()
        );
        let mut scratch = Scratch::default();
        for _ in 0..2 {
            // Twice: the second run reuses the first one's buffers.
            let got = served.det_map(&x, w as usize, h as usize, &mut scratch.pool);
            let diff = largest_difference(&got, &want);
            assert!(diff < 1e-4, "the maps differ by up to {diff}");
        }
        // The recogniser on the lines burn found: the same probabilities.
        let crops: Vec<_> = want_lines
            .iter()
            .map(|l| input::crop_line(&page, &l.quad))
            .collect();
        let mut x = Vec::new();
        let width = input::rec_batch(&crops, &mut x);
        let want = served.reader.rec_probs(x.clone(), crops.len(), width);
        let got = served.rec_probs(&x, crops.len(), width, &mut scratch.pool);
        let diff = largest_difference(&got, &want);
        assert!(diff < 1e-4, "the probabilities differ by up to {diff}");
        let lines = served.read_page(&page, &mut scratch);
        assert!(!lines.is_empty(), "the plate is read");
        assert_eq!(
            lines.iter().map(|l| &l.text).collect::<Vec<_>>(),
            want_lines.iter().map(|l| &l.text).collect::<Vec<_>>()
        );
    }
}
