//! A model version's artifact: one object in storage, a tar of `meta.json` and `model.bpk`
//! (burnpack, half-precision weights; BatchNorm statistics stay f32). One object, so a
//! version is either fully written or absent; tar, so any tool can look inside.

use std::io::Read;

use anyhow::{Context, bail};
use burn::prelude::*;
use shared::model::EfficientNetLite;
use shared::train::ModelMeta;

/// Artifacts larger than this are refused when read (Lite0 in f16 is about 8 MB).
pub const MAX_ARTIFACT_BYTES: u64 = 64 * 1024 * 1024;
pub const FORMAT: &str = "autolearn-burnpack-1";

/// Half-precision weights of a model (already at storage precision; see
/// [`shared::model::artifact`]).
pub fn weights_f16<M: burn::module::Module>(model: &M) -> anyhow::Result<Vec<u8>> {
    shared::model::artifact::weights_f16(model).map_err(anyhow::Error::msg)
}

/// A model with `classes` outputs from half-precision weights.
pub fn load_weights(
    bytes: Vec<u8>,
    classes: usize,
    device: &Device,
) -> anyhow::Result<EfficientNetLite> {
    shared::model::artifact::load_weights(bytes, classes, device).map_err(anyhow::Error::msg)
}

/// `model` (of the stored shape) with half-precision weights loaded into it.
pub fn load_into<M: burn::module::Module>(model: M, bytes: Vec<u8>) -> anyhow::Result<M> {
    shared::model::artifact::load_into(model, bytes).map_err(anyhow::Error::msg)
}

pub fn pack(meta: &ModelMeta, weights: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut tar = tar::Builder::new(Vec::new());
    let meta = serde_json::to_vec_pretty(meta)?;
    for (name, data) in [("meta.json", meta.as_slice()), ("model.bpk", weights)] {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        tar.append_data(&mut h, name, data)?;
    }
    Ok(tar.into_inner()?)
}

pub fn unpack(bytes: &[u8]) -> anyhow::Result<(ModelMeta, Vec<u8>)> {
    let mut meta = None;
    let mut weights = None;
    let mut archive = tar::Archive::new(bytes);
    for entry in archive.entries().context("reading the artifact")? {
        let mut entry = entry?;
        let name = entry.path()?.to_string_lossy().into_owned();
        let mut data = Vec::new();
        entry
            .by_ref()
            .take(MAX_ARTIFACT_BYTES)
            .read_to_end(&mut data)?;
        match name.as_str() {
            "meta.json" => meta = Some(serde_json::from_slice::<ModelMeta>(&data)?),
            "model.bpk" => weights = Some(data),
            _ => {}
        }
    }
    match (meta, weights) {
        (Some(m), Some(w)) if m.format == FORMAT => Ok((m, w)),
        (Some(m), Some(_)) => bail!("artifact format {:?} is not {FORMAT:?}", m.format),
        _ => bail!("the artifact lacks meta.json or model.bpk"),
    }
}

/// Key of the gzip-compressed web form kept beside an artifact.
pub fn web_key(key: &str) -> String {
    format!("{key}.web.gz")
}
