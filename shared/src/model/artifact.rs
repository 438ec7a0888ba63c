//! How a trained model's weights are stored and shipped, the same on the server and in the
//! browser, so both load bit-identical weights:
//!
//! - **Storage precision**: every float parameter is rounded to 8 significant bits (the
//!   bfloat16 mantissa) and stored as f16 in a burnpack. The rounding is applied *before*
//!   evaluation, so the metrics describe exactly the weights that are served, including
//!   whatever the rounding costs (bfloat16 keeps as many bits). It zeroes the three lowest
//!   mantissa bits of each f16, which is what lets the browser download compress below 6 MB.
//! - **Web form** ([`encode_web`]): `meta.json` and the burnpack in one buffer, the burnpack's
//!   bytes split into even and odd planes (the little-endian f16 low bytes, then the high
//!   bytes with sign and exponent) so that gzip finds the redundancy. The server sends it gzip-encoded; the
//!   browser's fetch undoes the gzip, [`decode_web`] the planes.

use burn::module::{Module, ModuleMapper, Param};
use burn::prelude::*;
use burn::store::{BurnpackStore, HalfPrecisionAdapter, ModuleSnapshot};
use burn::tensor::Bytes;

use super::EfficientNetLite;
use crate::train::ModelMeta;

/// First bytes of the web form.
pub const WEB_MAGIC: &[u8; 16] = b"AUTOLEARN-WEB-1\n";
/// Largest `meta.json` a web artifact may carry.
const MAX_META: usize = 1 << 20;

/// `x` rounded to nearest-even at 8 significant bits (what bfloat16 keeps).
pub fn round_to_storage(x: f32) -> f32 {
    if !x.is_finite() {
        return x;
    }
    let bits = x.to_bits();
    let rounded = bits.wrapping_add(0x7FFF + ((bits >> 16) & 1)) & 0xFFFF_0000;
    f32::from_bits(rounded)
}

struct StoragePrecision;

impl ModuleMapper for StoragePrecision {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        param.map(|t| {
            let device = t.device();
            let shape = t.shape();
            let values: Vec<f32> = t
                .into_data()
                .try_into_vec_as::<f32>()
                .expect("float parameters convert to f32");
            let rounded: Vec<f32> = values.into_iter().map(round_to_storage).collect();
            Tensor::from_data(TensorData::new(rounded, shape), &device)
        })
    }
}

/// The model (of any kind) with its parameters rounded to storage precision (see the
/// module docs).
pub fn to_storage_precision<M: Module>(model: M) -> M {
    model.map(&mut StoragePrecision)
}

/// Half-precision burnpack of a model's weights (BatchNorm statistics stay f32).
pub fn weights_f16<M: Module>(model: &M) -> Result<Vec<u8>, String> {
    let mut store = BurnpackStore::from_bytes(None).with_to_adapter(HalfPrecisionAdapter::new());
    model
        .save_into(&mut store)
        .map_err(|e| format!("saving weights: {e}"))?;
    Ok(store
        .get_bytes()
        .map_err(|e| format!("saving weights: {e}"))?
        .to_vec())
}

/// A model with `classes` outputs from [`weights_f16`]'s bytes.
pub fn load_weights(
    bytes: Vec<u8>,
    classes: usize,
    device: &Device,
) -> Result<EfficientNetLite, String> {
    load_into(EfficientNetLite::lite0(classes, device), bytes)
}

/// `model` (of the stored shape) with [`weights_f16`]'s bytes loaded into it.
pub fn load_into<M: Module>(mut model: M, bytes: Vec<u8>) -> Result<M, String> {
    let mut store = BurnpackStore::from_bytes(Some(Bytes::from_bytes_vec(bytes)))
        .with_from_adapter(HalfPrecisionAdapter::new());
    model
        .load_from(&mut store)
        .map_err(|e| format!("loading weights: {e}"))?;
    Ok(model)
}

/// The web form of an artifact: magic, `meta.json` length (u32 LE), `meta.json`, then the
/// burnpack as even bytes followed by odd bytes.
pub fn encode_web(meta: &ModelMeta, weights: &[u8]) -> Vec<u8> {
    let meta = serde_json::to_vec(meta).expect("metadata serialises");
    let mut out = Vec::with_capacity(WEB_MAGIC.len() + 4 + meta.len() + weights.len());
    out.extend_from_slice(WEB_MAGIC);
    out.extend_from_slice(&(meta.len() as u32).to_le_bytes());
    out.extend_from_slice(&meta);
    out.extend(weights.iter().step_by(2));
    out.extend(weights.iter().skip(1).step_by(2));
    out
}

/// The metadata and burnpack bytes of [`encode_web`]'s output.
pub fn decode_web(bytes: &[u8]) -> Result<(ModelMeta, Vec<u8>), String> {
    let rest = bytes
        .strip_prefix(WEB_MAGIC.as_slice())
        .ok_or("not an AutoLearn web artifact (wrong magic bytes)")?;
    if rest.len() < 4 {
        return Err("the web artifact is truncated".into());
    }
    let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
    if len > MAX_META || rest.len() < 4 + len {
        return Err("the web artifact is truncated or its metadata too large".into());
    }
    let meta: ModelMeta = serde_json::from_slice(&rest[4..4 + len])
        .map_err(|e| format!("the web artifact's meta.json: {e}"))?;
    let planes = &rest[4 + len..];
    let (even, odd) = planes.split_at(planes.len().div_ceil(2));
    let mut weights = Vec::with_capacity(planes.len());
    for (i, b) in even.iter().enumerate() {
        weights.push(*b);
        if let Some(o) = odd.get(i) {
            weights.push(*o);
        }
    }
    Ok((meta, weights))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_keeps_eight_significant_bits() {
        assert_eq!(round_to_storage(1.0), 1.0);
        assert_eq!(round_to_storage(0.0), 0.0);
        // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties go to even (1.0).
        assert_eq!(round_to_storage(1.0 + 1.0 / 256.0), 1.0);
        assert_eq!(round_to_storage(1.0 + 3.0 / 256.0), 1.0 + 4.0 / 256.0);
        for x in [0.123_456_f32, -3.7e-3, 42.42] {
            let r = round_to_storage(x);
            assert!(((r - x) / x).abs() <= 1.0 / 256.0, "{x} -> {r}");
            // Representable in f16 exactly: the low 16 bits are zero.
            assert_eq!(r.to_bits() & 0xFFFF, 0);
        }
        assert!(round_to_storage(f32::NAN).is_nan());
    }

    #[test]
    fn web_form_round_trips() {
        let meta = ModelMeta {
            format: "autolearn-burnpack-1".into(),
            instance_type: crate::InstanceType::ImageClassification,
            preset: crate::train::Preset::ClassificationFast,
            architecture: "efficientnet-lite0".into(),
            labels: vec!["a".into(), "b".into()],
            image_size: 224,
            mean: [0.5; 3],
            std: [0.25; 3],
            precision: "f16".into(),
            weights_bytes: 5,
            metrics: Default::default(),
            created_at: "2026-11-27T00:00:00Z".into(),
            charset: Vec::new(),
        };
        for weights in [vec![], vec![1u8], vec![1, 2, 3, 4, 5], vec![9; 10]] {
            let web = encode_web(&meta, &weights);
            let (m, w) = decode_web(&web).unwrap();
            assert_eq!((m, w), (meta.clone(), weights));
        }
        assert!(decode_web(b"AUTOLEARN-WEB-1\n\xff\xff\xff\x00").is_err());
        assert!(decode_web(b"PK\x03\x04").is_err());
    }

    #[test]
    fn weights_round_trip_at_storage_precision() {
        let device = Device::flex();
        device.seed(1);
        let m = to_storage_precision(EfficientNetLite::lite0(3, &device));
        let bytes = weights_f16(&m).unwrap();
        let back = load_weights(bytes, 3, &device).unwrap();
        let x = Tensor::<4>::random(
            [1, 3, 32, 32],
            burn::tensor::Distribution::Normal(0.0, 1.0),
            &device,
        );
        let a: Vec<f32> = m
            .valid()
            .forward(x.clone())
            .into_data()
            .try_to_vec()
            .unwrap();
        let b: Vec<f32> = back.valid().forward(x).into_data().try_to_vec().unwrap();
        // Rounded weights are exact in f16 (apart from subnormals), so outputs agree closely.
        for (p, q) in a.iter().zip(&b) {
            assert!((p - q).abs() < 1e-4, "{p} vs {q}");
        }
    }
}
