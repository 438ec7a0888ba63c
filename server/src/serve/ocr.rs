//! Serving an OCR version: the reader (detector → text regions → straightened crops →
//! recogniser → CTC text, `shared::model::ocr`, the same code the browser and the
//! evaluation run) as an engine [`Worker`] taking whole decoded pages, one at a time (pages
//! differ in size; a page's lines are already batched through the recogniser).

use image::RgbImage;
use shared::model::ocr::{Line, OcrModel, OcrReader};
use shared::train::ModelMeta;

use super::engine::{Engine, Worker};
use super::native::Scratch;
use crate::artifact;

/// An OCR service's engine: pages in, lines (pixels, reading order) out.
pub type OcrEngine = Engine<RgbImage, Vec<Line>>;

pub struct PageReader(OcrReader);

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
        Ok(Self(reader))
    }
}

impl Worker for PageReader {
    type Input = RgbImage;
    type Output = Vec<Line>;
    const MAX_BATCH: usize = 1;

    fn run(&self, pages: Vec<RgbImage>, _: &mut Scratch) -> Vec<Vec<Line>> {
        pages.iter().map(|p| self.0.read_page(p)).collect()
    }
}
