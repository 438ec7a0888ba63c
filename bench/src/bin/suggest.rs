//! Assisted-labelling figures on a folder-per-label dataset (default: the alpaca set):
//! embedding throughput, suggestion accuracy on the images not yet labelled after k labels
//! per class (k = 1, 2, 3, 5, 10, 20; 20 random draws each), the time one refresh takes (the
//! server's own `assist::fit_and_rank`: fit, suggest, cross-validate for the doubtful list)
//! with 40 and with all images labelled, and how many of 10 labels flipped on purpose the
//! doubtful list has in its top 20 (10 draws).
//!
//! `cargo run --release -p bench --bin suggest [DATASET_DIR] [WEIGHTS_DIR]`

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use autolearn_server::assist::{fit_and_rank, head};
use autolearn_server::train::weights;
use burn::prelude::Device;
use shared::api::{Annotation, Image};
use shared::exec::{NativeNet, Scratch};
use shared::model::FusedEfficientNetLite;
use shared::predict::input;

/// A small deterministic generator (xorshift), so draws repeat across runs.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }

    fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            v.swap(i, self.below(i + 1));
        }
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let root = args
        .next()
        .unwrap_or_else(|| "../shared/datasets/alpaca-vs-not-alpaca".into());
    let weights_dir = args.next().unwrap_or_else(|| {
        format!(
            "{}/.cache/autolearn/weights",
            std::env::var("HOME").unwrap()
        )
    });
    let path = weights::ensure(std::path::Path::new(&weights_dir)).expect("ImageNet weights");
    let model = weights::load_imagenet(&path, &Device::flex()).expect("weights load");
    let net = NativeNet::new(&FusedEfficientNetLite::new(&model));

    // Folder per label, sorted.
    let mut labels: Vec<String> = std::fs::read_dir(&root)
        .expect("dataset folder")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    labels.sort();
    let mut files = Vec::new();
    for (c, l) in labels.iter().enumerate() {
        let mut names: Vec<_> = std::fs::read_dir(format!("{root}/{l}"))
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .collect();
        names.sort();
        files.extend(names.into_iter().map(|p| (p, c)));
    }

    let t0 = Instant::now();
    let mut vectors: Vec<Vec<f32>> = Vec::new();
    let mut y = Vec::new();
    let mut names = Vec::new();
    let mut scratch = Scratch::default();
    for chunk in files.chunks(8) {
        let mut batch = Vec::new();
        let mut n = 0;
        for (p, c) in chunk {
            let Ok((x, _)) = input::prepare(&std::fs::read(p).unwrap(), 224) else {
                eprintln!("skipped {}", p.display());
                continue;
            };
            batch.extend(x);
            y.push(*c);
            names.push(p.file_name().unwrap().to_string_lossy().into_owned());
            n += 1;
        }
        let f = net.features(&batch, n, 224, &mut scratch);
        vectors.extend(f.chunks(f.len() / n).map(<[f32]>::to_vec));
    }
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "{} images ({}), embeddings in {secs:.1} s ({:.1} images/s, decode included)",
        vectors.len(),
        labels.join(" / "),
        vectors.len() as f64 / secs
    );

    let refs: Vec<&[f32]> = vectors.iter().map(Vec::as_slice).collect();
    let x = head::prepare(&refs);
    let xs: Vec<&[f32]> = x.iter().map(Vec::as_slice).collect();
    let per_class: Vec<Vec<usize>> = (0..labels.len())
        .map(|c| (0..y.len()).filter(|&i| y[i] == c).collect())
        .collect();

    println!("\nlabels per class | accuracy on the rest, mean (min-max) over 20 draws");
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for k in [1, 2, 3, 5, 10, 20] {
        let mut accs = Vec::new();
        for _ in 0..20 {
            let mut labelled = Vec::new();
            for members in &per_class {
                let mut m = members.clone();
                rng.shuffle(&mut m);
                labelled.extend(m.into_iter().take(k));
            }
            let lx: Vec<&[f32]> = labelled.iter().map(|&i| xs[i]).collect();
            let ly: Vec<usize> = labelled.iter().map(|&i| y[i]).collect();
            let fitted = head::Head::fit(&lx, &ly, labels.len());
            let rest: Vec<usize> = (0..y.len()).filter(|i| !labelled.contains(i)).collect();
            let right = rest
                .iter()
                .filter(|&&i| head::argmax(&fitted.probs(xs[i])) == Some(y[i]))
                .count();
            accs.push(right as f64 / rest.len() as f64);
        }
        let mean = accs.iter().sum::<f64>() / accs.len() as f64;
        let (lo, hi) = accs
            .iter()
            .fold((1.0f64, 0.0f64), |(a, b), &v| (a.min(v), b.max(v)));
        println!("{k:>16} | {mean:.3} ({lo:.3}-{hi:.3})");
    }

    // One refresh as the server runs it, on Image values carrying the labels.
    let emb: HashMap<i64, Arc<[f32]>> = vectors
        .iter()
        .enumerate()
        .map(|(i, v)| (i as i64, Arc::from(v.as_slice())))
        .collect();
    let images_with = |labelled: &dyn Fn(usize) -> Option<usize>| -> Vec<Image> {
        (0..y.len())
            .map(|i| {
                let label = labelled(i);
                Image {
                    id: i as i64,
                    dataset_id: 1,
                    path: String::new(),
                    width: 0,
                    height: 0,
                    size_bytes: 0,
                    labelled: label.is_some(),
                    deleted: false,
                    annotation: Annotation {
                        labels: label.map(|c| labels[c].clone()).into_iter().collect(),
                        boxes: Vec::new(),
                    },
                    updated_at: String::new(),
                    revision: 0,
                }
            })
            .collect()
    };
    println!(
        "\nrefresh over {} images (suggestions alone; with the 5-fold doubtful list):",
        y.len()
    );
    let mut twenty_each = vec![None; y.len()];
    for members in &per_class {
        for &i in members.iter().take(20) {
            twenty_each[i] = Some(y[i]);
        }
    }
    let everything: Vec<Option<usize>> = y.iter().map(|&c| Some(c)).collect();
    for pick in [twenty_each, everything] {
        let imgs = images_with(&|i| pick[i]);
        let labelled = imgs.iter().filter(|i| i.labelled).count();
        for with_doubtful in [false, true] {
            let mut times = Vec::new();
            for _ in 0..5 {
                let t = Instant::now();
                let s = fit_and_rank(&imgs, &emb, with_doubtful);
                times.push(t.elapsed().as_secs_f64() * 1e3);
                assert_eq!(s.state, "ready");
            }
            times.sort_by(f64::total_cmp);
            println!(
                "  {labelled} labelled, {}: median {:.0} ms, max {:.0} ms",
                if with_doubtful {
                    "suggestions + doubtful list"
                } else {
                    "suggestions"
                },
                times[times.len() / 2],
                times[times.len() - 1]
            );
        }
    }

    println!("\n10 labels flipped on purpose: how many the doubtful list has in its top 20");
    let mut found_all = Vec::new();
    for draw in 0..10 {
        let mut order: Vec<usize> = (0..y.len()).collect();
        rng.shuffle(&mut order);
        let flipped: Vec<usize> = order[..10].to_vec();
        let mut noisy = y.clone();
        for &i in &flipped {
            noisy[i] = (noisy[i] + 1) % labels.len();
        }
        let imgs = images_with(&|i| Some(noisy[i]));
        let s = fit_and_rank(&imgs, &emb, true);
        let top: Vec<i64> = s.doubtful.iter().take(20).map(|d| d.image_id).collect();
        let found = flipped
            .iter()
            .filter(|&&i| top.contains(&(i as i64)))
            .count();
        let others: Vec<String> = top
            .iter()
            .filter(|id| !flipped.contains(&(**id as usize)))
            .map(|id| names[*id as usize].clone())
            .take(4)
            .collect();
        println!(
            "  draw {draw}: {found}/10 in the top 20 ({} doubtful in all); others listed e.g. {}",
            s.doubtful.len(),
            others.join(", ")
        );
        found_all.push(found);
    }
    println!(
        "  mean {:.1}/10, min {}",
        found_all.iter().sum::<usize>() as f64 / found_all.len() as f64,
        found_all.iter().min().unwrap()
    );
}
