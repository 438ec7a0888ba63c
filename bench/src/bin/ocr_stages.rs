//! Where one page's OCR time goes: decoding, the detector's forward pass (burn's, as the
//! browser and training run it, and the server's executor), the text regions, cutting the
//! lines and the recogniser, each averaged over N reads of the same photo with the
//! pretrained models (`cargo run -p bench --bin ocr_stages -- PHOTO [N] [WEIGHTS_DIR]`).

use std::time::Instant;

use autolearn_server::serve::ocr::PageReader;
use autolearn_server::train::ocr::pretrained;
use burn::prelude::Device;
use shared::ocr::input;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let photo = args.get(1).expect("a photo");
    let n: usize = args.get(2).map_or(10, |s| s.parse().unwrap());
    let home = std::env::var("HOME").unwrap_or_default();
    let weights = args
        .get(3)
        .cloned()
        .unwrap_or(format!("{home}/.cache/autolearn/weights"));
    let device = Device::flex();
    let reader = pretrained::load(
        &pretrained::ensure(std::path::Path::new(&weights)).unwrap(),
        &device,
    )
    .unwrap();
    let served = PageReader::new(
        pretrained::load(
            &pretrained::ensure(std::path::Path::new(&weights)).unwrap(),
            &device,
        )
        .unwrap(),
    )
    .unwrap();
    let mut pool = Vec::new();
    let bytes = std::fs::read(photo).unwrap();
    let mut t = [0f64; 7];
    let names = [
        "decode",
        "detector (burn)",
        "detector (served)",
        "regions",
        "crops",
        "recogniser (burn)",
        "recogniser (served)",
    ];
    for i in 0..=n {
        let mut lap = Instant::now();
        let mut tick = |k: usize, t: &mut [f64; 7]| {
            if i > 0 {
                t[k] += lap.elapsed().as_secs_f64() * 1000.0;
            }
            lap = Instant::now();
        };
        let (page, _) = shared::predict::input::decode_page(&bytes).unwrap();
        tick(0, &mut t);
        let (x, (w, h)) = input::det_input(&page, reader.max_side);
        let map = reader.det_map(x.clone(), w as usize, h as usize);
        tick(1, &mut t);
        let served_map = served.det_map(&x, w as usize, h as usize, &mut pool);
        tick(2, &mut t);
        assert_eq!(served_map.len(), map.len());
        let regions = shared::ocr::text_regions(
            &map,
            w as usize,
            h as usize,
            page.width(),
            page.height(),
            &reader.params,
        );
        tick(3, &mut t);
        let crops: Vec<_> = regions
            .iter()
            .map(|r| input::crop_line(&page, &r.quad))
            .collect();
        tick(4, &mut t);
        let read = reader.read_lines(&crops);
        tick(5, &mut t);
        let served_read = served.read_lines(&crops, &mut pool);
        tick(6, &mut t);
        assert_eq!(served_read.len(), read.len());
        if i == 0 {
            println!("{w}x{h} detector input; read {read:?}");
        }
    }
    for (name, ms) in names.iter().zip(t) {
        println!("{name:>18}: {:7.1} ms", ms / n as f64);
    }
    // A page as the server reads it: everything but burn's models.
    let served: f64 = (t.iter().sum::<f64>() - t[1] - t[5]) / n as f64;
    println!(
        "{:>18}: {served:7.1} ms = {:.2} pages/s",
        "served page",
        1000.0 / served
    );
}
