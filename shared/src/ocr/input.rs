//! Model inputs for OCR, made the same way by the server and the browser: the page resized
//! for the detector, text lines cut out (perspective crops) and scaled for the recogniser.
//! PaddleOCR's models read BGR, normalised to [-1, 1].

use image::RgbImage;

use super::{
    DET_MULTIPLE, MEAN, Quad, REC_HEIGHT, REC_MIN_WIDTH, STD, apply_homography, crop_homography,
    crop_size,
};
use crate::preprocess::resize_rgb;

/// The detector's input side limit used by default: the longer side is scaled to at most
/// this (PaddleOCR's `det_limit_side_len` 960, `limit_type` max), then both sides are
/// rounded to multiples of 32.
pub const DET_MAX_SIDE: u32 = 960;

/// The detector input's size for an image: the longer side at most `max_side`, both sides
/// multiples of 32 (at least 32).
pub fn det_size(w: u32, h: u32, max_side: u32) -> (u32, u32) {
    let ratio = (max_side as f32 / w.max(h) as f32).min(1.0);
    let round = |v: u32| {
        let m = DET_MULTIPLE as f32;
        ((v as f32 * ratio / m).round() as u32).max(1) * DET_MULTIPLE as u32
    };
    (round(w), round(h))
}

/// Appends an RGB image as the models' channel-first BGR floats.
pub fn push_bgr(img: &RgbImage, out: &mut Vec<f32>) {
    let plane = (img.width() * img.height()) as usize;
    let start = out.len();
    out.resize(start + 3 * plane, 0.0);
    let dst = &mut out[start..];
    for (i, px) in img.as_raw().chunks_exact(3).enumerate() {
        for (c, &v) in [px[2], px[1], px[0]].iter().enumerate() {
            dst[c * plane + i] = (f32::from(v) / 255.0 - MEAN) / STD;
        }
    }
}

/// The detector input for a page: its floats (1×3×H×W) and `(W, H)`.
pub fn det_input(img: &RgbImage, max_side: u32) -> (Vec<f32>, (u32, u32)) {
    let (w, h) = det_size(img.width(), img.height(), max_side);
    let resized = resize_rgb(img, w, h);
    let mut out = Vec::with_capacity((3 * w * h) as usize);
    push_bgr(&resized, &mut out);
    (out, (w, h))
}

/// The text line under `quad`, straightened: a perspective crop sized by the quad's sides,
/// bilinear with the border repeated (PaddleOCR's `get_rotate_crop_image`). Lines standing
/// upright (height ≥ 1.5 × width) are turned a quarter to lie flat.
pub fn crop_line(img: &RgbImage, quad: &Quad) -> RgbImage {
    let (w, h) = crop_size(quad);
    let hm = crop_homography(quad, w as f32, h as f32);
    let (iw, ih) = (img.width() as i64, img.height() as i64);
    let px = |x: i64, y: i64| {
        img.get_pixel(x.clamp(0, iw - 1) as u32, y.clamp(0, ih - 1) as u32)
            .0
    };
    let mut out = RgbImage::new(w, h);
    for y in 0..h {
        for x in 0..w {
            // Pixel centres map to pixel centres.
            let (u, v) = apply_homography(&hm, f64::from(x) + 0.5, f64::from(y) + 0.5);
            let (u, v) = (u - 0.5, v - 0.5);
            let (x0, y0) = (u.floor() as i64, v.floor() as i64);
            let (fx, fy) = ((u - x0 as f64) as f32, (v - y0 as f64) as f32);
            let (a, b, c, d) = (
                px(x0, y0),
                px(x0 + 1, y0),
                px(x0, y0 + 1),
                px(x0 + 1, y0 + 1),
            );
            let mut rgb = [0u8; 3];
            for k in 0..3 {
                let top = f32::from(a[k]) * (1.0 - fx) + f32::from(b[k]) * fx;
                let bottom = f32::from(c[k]) * (1.0 - fx) + f32::from(d[k]) * fx;
                rgb[k] = (top * (1.0 - fy) + bottom * fy + 0.5) as u8;
            }
            out.put_pixel(x, y, image::Rgb(rgb));
        }
    }
    if h as f32 >= 1.5 * w as f32 {
        image::imageops::rotate270(&out)
    } else {
        out
    }
}

/// The width a line is scaled to at the recogniser's height (aspect kept, at least 1).
pub fn rec_width(w: u32, h: u32) -> usize {
    ((REC_HEIGHT as f32 * w as f32 / h.max(1) as f32).ceil() as usize).max(1)
}

/// Appends a batch of lines as the recogniser's input, all padded (with zeros after
/// normalisation, as PaddleOCR) to one width: the widest line's, at least 320. Returns
/// that width.
pub fn rec_batch(lines: &[RgbImage], out: &mut Vec<f32>) -> usize {
    let width = lines
        .iter()
        .map(|l| rec_width(l.width(), l.height()))
        .max()
        .unwrap_or(0)
        .max(REC_MIN_WIDTH);
    let plane = REC_HEIGHT * width;
    for line in lines {
        let w = rec_width(line.width(), line.height()).min(width) as u32;
        let scaled = resize_rgb(line, w, REC_HEIGHT as u32);
        let mut one = Vec::with_capacity(3 * (w as usize) * REC_HEIGHT);
        push_bgr(&scaled, &mut one);
        let start = out.len();
        out.resize(start + 3 * plane, 0.0);
        for c in 0..3 {
            for y in 0..REC_HEIGHT {
                let src = &one[c * REC_HEIGHT * w as usize + y * w as usize..][..w as usize];
                out[start + c * plane + y * width..][..w as usize].copy_from_slice(src);
            }
        }
    }
    width
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detector_sizes_are_multiples_of_32_within_the_limit() {
        assert_eq!(det_size(1280, 720, 960), (960, 544));
        assert_eq!(det_size(200, 50, 960), (192, 64));
        assert_eq!(det_size(10, 10, 960), (32, 32));
    }

    #[test]
    fn an_axis_aligned_crop_is_the_pixels_under_the_box() {
        let img = RgbImage::from_fn(40, 20, |x, y| image::Rgb([x as u8 * 5, y as u8 * 10, 7]));
        let q: Quad = [[10.0, 5.0], [30.0, 5.0], [30.0, 15.0], [10.0, 15.0]];
        let crop = crop_line(&img, &q);
        assert_eq!(crop.dimensions(), (20, 10));
        assert_eq!(crop.get_pixel(0, 0).0, [50, 50, 7]);
        assert_eq!(crop.get_pixel(19, 9).0, [145, 140, 7]);
    }

    #[test]
    fn recogniser_batches_are_bgr_and_padded_to_one_width() {
        let red = RgbImage::from_pixel(96, 48, image::Rgb([255, 0, 0]));
        let wide = RgbImage::from_pixel(960, 48, image::Rgb([0, 0, 0]));
        let mut out = Vec::new();
        let width = rec_batch(&[red, wide], &mut out);
        assert_eq!(width, 960);
        assert_eq!(out.len(), 2 * 3 * 48 * 960);
        let plane = 48 * 960;
        assert_eq!(out[0], -1.0, "B of red");
        assert_eq!(out[2 * plane], 1.0, "R of red is the third channel");
        assert_eq!(out[2 * plane + 96], 0.0, "padding");
    }
}
