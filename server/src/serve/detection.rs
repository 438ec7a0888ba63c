//! Serving a detector: its head output per image from burn's CPU backend, and the boxes
//! the predict API answers with (the same decoding and suppression as the browser and the
//! evaluation, from `shared::detect`).

use std::sync::Mutex;

use burn::prelude::*;
use shared::detect::{self, Detection};
use shared::model::{Detector, DetectorConfig};
use shared::train::ModelMeta;

use super::engine::Network;
use super::native::Scratch;
use crate::artifact;

pub struct DetectorNet {
    /// burn modules are `Send`, not `Sync`: replicas take turns (each forward pass already
    /// spreads over all cores).
    model: Mutex<Detector>,
    device: Device,
}

impl DetectorNet {
    pub fn load(meta: &ModelMeta, weights: Vec<u8>, device: &Device) -> anyhow::Result<Self> {
        let config = DetectorConfig::for_preset(meta.preset);
        let model =
            artifact::load_into(Detector::init(config, meta.labels.len(), device), weights)?;
        Ok(Self {
            model: Mutex::new(model.valid()),
            device: device.clone(),
        })
    }
}

impl Network for DetectorNet {
    fn run(&self, input: &[f32], n: usize, side: usize, _scratch: &mut Scratch) -> Vec<Vec<f32>> {
        let x = Tensor::<4>::from_data(
            TensorData::new(input.to_vec(), [n, 3, side, side]),
            &self.device,
        );
        let out = {
            let model = self
                .model
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            model.forward(x)
        };
        let v: Vec<f32> = out.into_data().try_into_vec_as::<f32>().unwrap_or_default();
        let k = v.len() / n.max(1);
        v.chunks(k.max(1)).map(<[f32]>::to_vec).collect()
    }
}

/// The served boxes of one image's head output: at or above the model's confidence
/// threshold, after suppression, in input pixels.
pub fn boxes(output: &[f32], classes: usize, side: usize, threshold: f32) -> Vec<Detection> {
    let points = detect::points(side);
    detect::decode(output, classes, &points, side, threshold)
}
