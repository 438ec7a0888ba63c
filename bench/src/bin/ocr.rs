//! OCR figures on the OpenALPR plates (or any folder of `NAME.jpg` + `NAME.txt` lines
//! `file x y w h TEXT`): a seeded 90/10 split by image; the pretrained PP-OCRv4 pipeline's
//! end-to-end exact match, CER and detection P/R/H-mean on the validation images and its
//! pages/s; then `ocr-fast`'s training within the budget (the detector, then the
//! recogniser: `train::ocr::fine_tune`, as a task runs it), and the same figures after it;
//! peak memory. The RapidOCR peer runs in `bench/ocr/peer.sh` on the same split.
//!
//! `cargo run --release -p bench --bin ocr [DATASET_DIR] [WEIGHTS_DIR] [BUDGET_MINUTES]`

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use autolearn_server::train::ocr::evaluate::{read_pages, scores};
use autolearn_server::train::ocr::fine_tune;
use autolearn_server::train::ocr::pretrained;
use autolearn_server::train::ocr::trainer::LineSample;
use autolearn_server::train::run::{Plan, Signal};
use burn::prelude::Device;
use image::RgbImage;
use shared::ocr::Quad;
use shared::train::Preset;

/// `(image file, box, text)` of every labelled photo under `dir` (recursively one level).
fn samples(dir: &Path) -> Vec<(PathBuf, Quad, String)> {
    let mut out = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).expect("dataset folder").flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "txt") {
                let line = std::fs::read_to_string(&p).unwrap();
                let f: Vec<&str> = line.trim().split('\t').collect();
                if f.len() < 6 {
                    continue;
                }
                let [x, y, w, h]: [f32; 4] = std::array::from_fn(|i| f[i + 1].parse().unwrap());
                let q: Quad = [[x, y], [x + w, y], [x + w, y + h], [x, y + h]];
                out.push((p.with_file_name(f[0]), q, f[5].to_owned()));
            }
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir = PathBuf::from(
        args.get(1)
            .map_or("../shared/datasets/openalpr-plates", |s| s),
    );
    let weights = PathBuf::from(args.get(2).cloned().unwrap_or_else(|| {
        format!(
            "{}/.cache/autolearn/weights",
            std::env::var("HOME").unwrap()
        )
    }));
    let minutes: f64 = args.get(3).map_or(10.0, |s| s.parse().unwrap());
    let all = samples(&dir);
    // The seeded split: every tenth image after a fixed shuffle is validation.
    let mut order: Vec<usize> = (0..all.len()).collect();
    let mut state = 0x2545_f491_4f6c_dd1du64;
    for i in (1..order.len()).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        order.swap(i, (state % (i as u64 + 1)) as usize);
    }
    let val_ids: Vec<usize> = order.iter().copied().filter(|i| i % 10 == 3).collect();
    let train_ids: Vec<usize> = order.iter().copied().filter(|i| i % 10 != 3).collect();
    let t0 = Instant::now();
    let images: Vec<RgbImage> = all
        .iter()
        .map(|(p, _, _)| image::open(p).expect("photo").to_rgb8())
        .collect();
    println!(
        "{} photos ({} train, {} validation) decoded in {:.1} s",
        all.len(),
        train_ids.len(),
        val_ids.len(),
        t0.elapsed().as_secs_f64()
    );
    let lines = |ids: &[usize]| -> Vec<LineSample> {
        ids.iter()
            .map(|&i| LineSample {
                image: i,
                quad: all[i].1,
                text: all[i].2.clone(),
            })
            .collect()
    };
    let (train, val) = (lines(&train_ids), lines(&val_ids));
    // The peer, on the same validation photos, in the same run.
    let list = std::env::temp_dir().join(format!("ocr-val-{}.tsv", std::process::id()));
    let rows: Vec<String> = val_ids
        .iter()
        .map(|&i| {
            let (p, q, t) = &all[i];
            let (w, h) = (q[1][0] - q[0][0], q[3][1] - q[0][1]);
            format!("{}\t{}\t{}\t{w}\t{h}\t{t}", p.display(), q[0][0], q[0][1])
        })
        .collect();
    std::fs::write(&list, rows.join("\n")).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("ocr/rapidocr_peer.py");
    match std::process::Command::new("python3")
        .arg(script)
        .arg(&list)
        .output()
    {
        Ok(o) if o.status.success() => print!("{}", String::from_utf8_lossy(&o.stdout)),
        Ok(o) => println!("peer failed: {}", String::from_utf8_lossy(&o.stderr).trim()),
        Err(e) => println!("peer not run: {e}"),
    }
    let _ = std::fs::remove_file(&list);
    let pages: Vec<(&RgbImage, Vec<(Quad, String)>)> = val_ids
        .iter()
        .map(|&i| (&images[i], vec![(all[i].1, all[i].2.clone())]))
        .collect();

    let device = Device::flex();
    let files = pretrained::ensure(&weights).expect("pretrained OCR models");
    let mut reader = pretrained::load(&files, &device).expect("load");
    let t = Instant::now();
    let before = scores(&read_pages(&reader, &pages));
    let secs = t.elapsed().as_secs_f64();
    println!(
        "pretrained: exact match {:.3}, CER {:.3}, detection P {:.3} R {:.3} H {:.3}; {:.2} pages/s (1 thread of work, {} pages)",
        before.exact_match,
        before.cer,
        before.precision,
        before.recall,
        before.hmean,
        pages.len() as f64 / secs,
        pages.len()
    );

    let budget = Duration::from_secs_f64(minutes * 60.0);
    let plan = Plan {
        image_size: 0,
        tuned_stages: 0,
        head_share: Preset::OcrFast.head_budget_share(),
        max_epochs: None,
        deadline: Instant::now() + budget,
        seed: 7,
        patience: 4,
    };
    let stop = AtomicBool::new(false);
    let emit = |s: Signal| {
        if let Signal::Log(l) = s {
            println!("  {l}");
        }
    };
    let t = Instant::now();
    let tuned = fine_tune(
        &mut reader,
        &images,
        &train,
        &val,
        &plan,
        &device,
        &stop,
        &emit,
    )
    .expect("training")
    .expect("at least one epoch");
    println!(
        "fine-tuned in {:.0} s (stopped: {})",
        t.elapsed().as_secs_f64(),
        tuned.stopped
    );
    let after = scores(&read_pages(&reader, &pages));
    println!(
        "ocr-fast: exact match {:.3}, CER {:.3}, detection P {:.3} R {:.3} H {:.3}",
        after.exact_match, after.cer, after.precision, after.recall, after.hmean
    );
    println!("peak memory {:.0} MiB", peak_rss_mib());
}
