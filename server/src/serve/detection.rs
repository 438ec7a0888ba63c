//! Serving a detector: the CPU executor's [`DetectorNet`] (`shared::exec::detector`) behind
//! the engine's [`Network`], and the boxes the predict API answers with (the same decoding
//! and suppression as the browser and the evaluation, from `shared::detect`).

use burn::prelude::*;
use shared::detect::{self, Detection};
use shared::exec::Scratch;
use shared::exec::detector::DetectorNet;
use shared::model::{Detector, DetectorConfig};
use shared::train::ModelMeta;

use super::engine::Network;
use crate::artifact;

/// A stored detector's weights, laid out for the executor.
pub fn load(meta: &ModelMeta, weights: Vec<u8>, device: &Device) -> anyhow::Result<DetectorNet> {
    let config = DetectorConfig::for_preset(meta.preset);
    let model = artifact::load_into(Detector::init(config, meta.labels.len(), device), weights)?;
    Ok(DetectorNet::new(model.valid()))
}

impl Network for DetectorNet {
    fn run(&self, input: &[f32], n: usize, side: usize, scratch: &mut Scratch) -> Vec<Vec<f32>> {
        self.forward(input, n, side, scratch)
    }
}

/// The served boxes of one image's head output: at or above the model's confidence
/// threshold, after suppression, in input pixels.
pub fn boxes(output: &[f32], classes: usize, side: usize, threshold: f32) -> Vec<Detection> {
    let points = detect::points(side);
    detect::decode(output, classes, &points, side, threshold)
}
