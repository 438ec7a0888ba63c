//! Image pre-processing and output post-processing, identical in the browser and on the
//! server so both give the same answer for the same image.

use std::io::Cursor;

use image::metadata::Orientation;
use image::{
    DynamicImage, ExtendedColorType, GrayImage, ImageDecoder, ImageFormat, ImageReader, Limits,
    RgbImage,
};

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

/// [`decode`] for a model input of `side` px, with the size of the original (after EXIF
/// orientation). A JPEG whose sides are both at least twice `side` is decoded at the smallest
/// scale (1/2, 1/4 or 1/8, by a reduced inverse DCT, which averages each 8×8 block down as a
/// box filter would) that keeps both sides at least `side`: a fraction of a full decode, and
/// [`resize_square`] still only shrinks. Everything else is decoded in full. The server's
/// training data, its predict API and the browser all decode through here, so the model
/// sees its inputs made the same way everywhere.
pub fn decode_near(
    bytes: &[u8],
    max_alloc: u64,
    side: u32,
) -> Result<(DynamicImage, (u32, u32)), String> {
    if let Some(scaled) = decode_jpeg_scaled(bytes, max_alloc, side) {
        return Ok(scaled);
    }
    let img = decode(bytes, max_alloc)?;
    let size = (img.width(), img.height());
    Ok((img, size))
}

/// The scaled JPEG path of [`decode_near`]; `None` sends the image to the full decoder
/// (not a JPEG, too small to scale, CMYK, or anything the scaling decoder refuses).
fn decode_jpeg_scaled(
    bytes: &[u8],
    max_alloc: u64,
    side: u32,
) -> Option<(DynamicImage, (u32, u32))> {
    if image::guess_format(bytes).ok()? != ImageFormat::Jpeg {
        return None;
    }
    // The scale from the size in the header alone: most images are too small to scale, and
    // they go to the full decoder without a second header parse here.
    let size = imagesize::blob_size(bytes).ok()?;
    let (w, h) = (
        u32::try_from(size.width).ok()?,
        u32::try_from(size.height).ok()?,
    );
    let f = [8u32, 4, 2]
        .into_iter()
        .find(|f| w.div_ceil(*f) >= side && h.div_ceil(*f) >= side)?;
    // The full decoder reads and checks the headers first, so only 8-bit grey or colour
    // JPEGs it accepts reach the scaling decoder.
    let mut header = image::codecs::jpeg::JpegDecoder::new(Cursor::new(bytes)).ok()?;
    if header.dimensions() != (w, h) {
        return None;
    }
    let grey = match header.original_color_type() {
        ExtendedColorType::L8 => true,
        ExtendedColorType::Rgb8 => false,
        _ => return None,
    };
    let orientation = header.orientation().ok();
    let mut dec = jpeg_decoder::Decoder::new(Cursor::new(bytes));
    dec.set_max_decoding_buffer_size(usize::try_from(max_alloc).ok()?);
    let (sw, sh) = dec
        .scale(
            u16::try_from(w.div_ceil(f)).ok()?,
            u16::try_from(h.div_ceil(f)).ok()?,
        )
        .ok()?;
    let (sw, sh) = (u32::from(sw), u32::from(sh));
    if sw < side || sh < side {
        return None;
    }
    let px = dec.decode().ok()?;
    let mut img = if grey {
        DynamicImage::ImageLuma8(GrayImage::from_raw(sw, sh, px)?)
    } else {
        DynamicImage::ImageRgb8(RgbImage::from_raw(sw, sh, px)?)
    };
    let mut size = (w, h);
    if let Some(o) = orientation {
        img.apply_orientation(o);
        if matches!(
            o,
            Orientation::Rotate90
                | Orientation::Rotate270
                | Orientation::Rotate90FlipH
                | Orientation::Rotate270FlipH
        ) {
            size = (h, w);
        }
    }
    Some((img, size))
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
    // Borrowed when already RGB (the usual case): no copy of the decoded image.
    let converted;
    let rgb = match img.as_rgb8() {
        Some(rgb) => rgb,
        None => {
            converted = img.to_rgb8();
            &converted
        }
    };
    if rgb.width() == side && rgb.height() == side {
        return rgb.clone();
    }
    resize_rgb(rgb, side, side)
}

/// Weights of a triangle filter (bilinear, widened by the ratio when shrinking so every
/// source pixel counts) from `src` samples to `dst`: per output sample, the first source
/// index and the normalised weights from there. The same filter as `image`'s
/// `FilterType::Triangle`.
fn triangle_weights(src: u32, dst: u32) -> Vec<(usize, Vec<f32>)> {
    let ratio = src as f32 / dst as f32;
    let scale = ratio.max(1.0);
    (0..dst)
        .map(|o| {
            let centre = (o as f32 + 0.5) * ratio;
            let first = (centre - scale).floor().max(0.0) as usize;
            let end = ((centre + scale).ceil() as usize).min(src as usize);
            let mut w: Vec<f32> = (first..end)
                .map(|i| (1.0 - ((i as f32 + 0.5 - centre) / scale).abs()).max(0.0))
                .collect();
            let sum: f32 = w.iter().sum();
            if sum > 0.0 {
                w.iter_mut().for_each(|v| *v /= sum);
            }
            (first, w)
        })
        .collect()
}

/// Separable triangle-filter resampling of an RGB image to `w`×`h`, one output row at a
/// time: the source rows under it are blended into one row of floats, which is then
/// resampled along x. The weights are computed once per axis (several times faster than
/// `image::imageops::resize`, which recomputes them through its generic pixel types), and
/// the only buffer is one source row wide (no image-sized intermediate to allocate and
/// page in on every call).
pub fn resize_rgb(src: &RgbImage, w: u32, h: u32) -> RgbImage {
    let (sw, dw) = (src.width() as usize, w as usize);
    let xs = triangle_weights(src.width(), w);
    let ys = triangle_weights(src.height(), h);
    let raw = src.as_raw();
    let mut out = vec![0u8; h as usize * dw * 3];
    let mut blend = vec![0.0f32; sw * 3];
    for ((first, weights), line) in ys.iter().zip(out.chunks_exact_mut(dw * 3)) {
        blend.iter_mut().for_each(|a| *a = 0.0);
        for (k, &wt) in weights.iter().enumerate() {
            let row = &raw[(first + k) * sw * 3..][..sw * 3];
            for (a, &v) in blend.iter_mut().zip(row) {
                *a += wt * f32::from(v);
            }
        }
        for ((first, weights), px) in xs.iter().zip(line.chunks_exact_mut(3)) {
            let mut acc = [0.0f32; 3];
            for (k, &wt) in weights.iter().enumerate() {
                let s = &blend[(first + k) * 3..][..3];
                for (a, &v) in acc.iter_mut().zip(s) {
                    *a += wt * v;
                }
            }
            for (o, a) in px.iter_mut().zip(acc) {
                // Round half up (`round` is a library call on baseline x86-64; `as`
                // saturates).
                *o = (a + 0.5) as u8;
            }
        }
    }
    RgbImage::from_raw(w, h, out).expect("w×h×3 bytes")
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

    /// A smooth colour photo-like JPEG of `w`×`h`.
    fn jpeg(w: u32, h: u32) -> Vec<u8> {
        let img = RgbImage::from_fn(w, h, |x, y| {
            image::Rgb([
                (x * 255 / w) as u8,
                (y * 255 / h) as u8,
                ((x + y) % 256) as u8,
            ])
        });
        let mut out = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90)
            .encode_image(&img)
            .unwrap();
        out
    }

    #[test]
    fn large_jpegs_decode_scaled_to_the_same_input() {
        let bytes = jpeg(1000, 700);
        let (scaled, size) = decode_near(&bytes, 1 << 28, 224).unwrap();
        assert_eq!(size, (1000, 700), "the original's size");
        assert_eq!(
            (scaled.width(), scaled.height()),
            (500, 350),
            "decoded at 1/2"
        );
        // The model's input differs from a full decode's only by rounding.
        let a = resize_square(&scaled, 224);
        let b = resize_square(&decode(&bytes, 1 << 28).unwrap(), 224);
        let diff = a
            .as_raw()
            .iter()
            .zip(b.as_raw())
            .map(|(p, q)| u32::from(p.abs_diff(*q)));
        let mean = diff.sum::<u32>() as f64 / a.as_raw().len() as f64;
        assert!(mean < 3.0, "mean difference {mean} of 255");
        // Too small to scale: decoded in full.
        let (full, size) = decode_near(&jpeg(300, 300), 1 << 28, 224).unwrap();
        assert_eq!((full.width(), full.height(), size), (300, 300, (300, 300)));
        // Truncated: the scaling decoder refuses it and the full one fills the missing
        // blocks, so a cut-off upload is answered as it was before scaling.
        let cut = &bytes[..bytes.len() / 2];
        let (img, size) = decode_near(cut, 1 << 28, 224).unwrap();
        assert_eq!((img.width(), size), (1000, (1000, 700)));
    }

    #[test]
    fn resizing_matches_image_triangle_filter() {
        let src = RgbImage::from_fn(517, 333, |x, y| {
            image::Rgb([(x % 256) as u8, (y * 7 % 256) as u8, ((x * y) % 256) as u8])
        });
        for (w, h) in [(224, 224), (64, 64), (600, 400)] {
            let ours = resize_rgb(&src, w, h);
            let theirs = image::imageops::resize(&src, w, h, image::imageops::FilterType::Triangle);
            let worst = ours
                .as_raw()
                .iter()
                .zip(theirs.as_raw())
                .map(|(a, b)| a.abs_diff(*b))
                .max()
                .unwrap();
            assert!(worst <= 1, "{w}x{h}: largest difference {worst}");
        }
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
