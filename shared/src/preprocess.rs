//! Image pre-processing and output post-processing, identical in the browser and on the
//! server so both give the same answer for the same image.

use std::io::Cursor;

use image::{DynamicImage, ImageDecoder, ImageReader, Limits, RgbImage, imageops::FilterType};

/// ImageNet statistics, which the pretrained EfficientNet-Lite weights expect (settled by a
/// known-answer test on the server).
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// Decodes JPEG or PNG, allocating at most `max_alloc` bytes (so a decompression bomb is an
/// error, not an out-of-memory), and applies the EXIF orientation.
pub fn decode(bytes: &[u8], max_alloc: u64) -> Result<DynamicImage, String> {
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| e.to_string())?;
    let mut limits = Limits::default();
    limits.max_alloc = Some(max_alloc);
    reader.limits(limits);
    let mut decoder = reader
        .into_decoder()
        .map_err(|e| format!("cannot decode: {e}"))?;
    let orientation = decoder.orientation().ok();
    let mut img = DynamicImage::from_decoder(decoder).map_err(|e| format!("cannot decode: {e}"))?;
    if let Some(o) = orientation {
        img.apply_orientation(o);
    }
    Ok(img)
}

/// The whole image squeezed to `side`×`side` RGB (no crop: nothing at the edges is lost,
/// which matters for small objects near borders).
pub fn resize_square(img: &DynamicImage, side: u32) -> RgbImage {
    // Large photos are first shrunk with the fast area-averaging thumbnail filter to about
    // twice the target; the bilinear pass over the whole original dominated predict latency.
    let shrunk;
    let img = if img.width() > 4 * side && img.height() > 4 * side {
        shrunk = img.thumbnail_exact(2 * side, 2 * side);
        &shrunk
    } else {
        img
    };
    let rgb = img.to_rgb8();
    if rgb.width() == side && rgb.height() == side {
        return rgb;
    }
    image::imageops::resize(&rgb, side, side, FilterType::Triangle)
}

/// Appends interleaved RGB bytes (`side`×`side`×3) to `out` as normalised channel-first
/// floats, the layout the model takes.
pub fn normalise_chw(rgb: &[u8], side: usize, mean: [f32; 3], std: [f32; 3], out: &mut Vec<f32>) {
    let plane = side * side;
    debug_assert_eq!(rgb.len(), plane * 3);
    let start = out.len();
    out.resize(start + plane * 3, 0.0);
    let dst = &mut out[start..];
    for (i, px) in rgb.chunks_exact(3).enumerate() {
        for c in 0..3 {
            dst[c * plane + i] = (f32::from(px[c]) / 255.0 - mean[c]) / std[c];
        }
    }
}

/// Numerically stable softmax.
pub fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f32> = logits.iter().map(|&l| (l - max).exp()).collect();
    let sum: f32 = exps.iter().sum();
    exps.into_iter().map(|e| e / sum).collect()
}

/// Indices of the `k` largest values, largest first (ties: lower index first).
pub fn top_k(values: &[f32], k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..values.len()).collect();
    idx.sort_by(|&a, &b| values[b].total_cmp(&values[a]).then(a.cmp(&b)));
    idx.truncate(k);
    idx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalisation_is_channel_first() {
        // 1×1 image, one pixel: white.
        let mut out = Vec::new();
        normalise_chw(&[255, 255, 255], 1, IMAGENET_MEAN, IMAGENET_STD, &mut out);
        for c in 0..3 {
            assert!((out[c] - (1.0 - IMAGENET_MEAN[c]) / IMAGENET_STD[c]).abs() < 1e-6);
        }
        // 2×1: red then blue.
        let mut out = Vec::new();
        normalise_chw(
            &[255, 0, 0, 0, 0, 255, 0, 0, 0, 0, 0, 0],
            2,
            [0.0; 3],
            [1.0; 3],
            &mut out,
        );
        assert_eq!(&out[0..4], &[1.0, 0.0, 0.0, 0.0]); // R plane
        assert_eq!(&out[8..12], &[0.0, 1.0, 0.0, 0.0]); // B plane
    }

    #[test]
    fn softmax_and_top_k() {
        let p = softmax(&[1.0, 3.0, 2.0]);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert_eq!(top_k(&p, 2), vec![1, 2]);
        assert!(softmax(&[1000.0, 0.0])[0] > 0.999);
    }

    #[test]
    fn resize_squeezes_to_a_square() {
        let img = DynamicImage::new_rgb8(40, 10);
        let r = resize_square(&img, 16);
        assert_eq!((r.width(), r.height()), (16, 16));
    }
}
