//! The predict request's path from bytes to model input, with the SPEC's error codes:
//! JSON and base64 problems are 1001, anything about the image is 1002. Every step is
//! bounded: items per request, bytes per image, pixels (read from the header before
//! decoding) and the decoder's allocations. In `shared` so the fuzz target (`fuzz/`) can
//! drive exactly this code without the server.

use super::{ImageMeta, PredictError, PredictRequest};
use crate::preprocess::{self, IMAGENET_MEAN, IMAGENET_STD};
use base64::Engine as _;

/// Images one request may carry.
pub const MAX_ITEMS: usize = 16;
/// Pixels an image may have (checked from its header, before decoding).
pub const MAX_PIXELS: u64 = 40_000_000;
/// What one decode may allocate.
const MAX_DECODE_BYTES: u64 = 256 * 1024 * 1024;

/// Parses the body and decodes the base64 of each item.
pub fn parse(body: &[u8]) -> Result<Vec<Vec<u8>>, PredictError> {
    let req: PredictRequest =
        serde_json::from_slice(body).map_err(|_| PredictError::InputFormat)?;
    if req.data_array.is_empty() || req.data_array.len() > MAX_ITEMS {
        return Err(PredictError::InputFormat);
    }
    req.data_array
        .iter()
        .map(|item| {
            if item.kind.as_deref().is_some_and(|k| k != "stream") {
                return Err(PredictError::InputFormat);
            }
            let b64 = item.body.trim();
            // Some clients send a data URL.
            let b64 = b64.split_once(";base64,").map_or(b64, |(_, rest)| rest);
            base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|_| PredictError::InputFormat)
        })
        .collect()
}

/// Decodes an image (JPG, PNG, BMP) and prepares it as the model's input: the normalised
/// `3×side×side` floats and the original size. CPU-heavy: call on a blocking thread.
pub fn prepare(bytes: &[u8], side: u32) -> Result<(Vec<f32>, ImageMeta), PredictError> {
    check_header(bytes)?;
    let (img, (width, height)) = preprocess::decode_near(bytes, MAX_DECODE_BYTES, side)
        .map_err(|_| PredictError::ImageDecode)?;
    Ok((to_input(&img, side), ImageMeta { height, width }))
}

/// Decodes a page for OCR at its full size (lines are cut from the original pixels, and
/// `pos` answers in them), with the same limits as [`prepare`].
pub fn decode_page(bytes: &[u8]) -> Result<(image::RgbImage, ImageMeta), PredictError> {
    check_header(bytes)?;
    let img = preprocess::decode(bytes, MAX_DECODE_BYTES)
        .map_err(|_| PredictError::ImageDecode)?
        .to_rgb8();
    let meta = ImageMeta {
        height: img.height(),
        width: img.width(),
    };
    Ok((img, meta))
}

/// Refuses, from its header alone, what is not an image or has too many pixels.
fn check_header(bytes: &[u8]) -> Result<(), PredictError> {
    let size = imagesize::blob_size(bytes).map_err(|_| PredictError::ImageDecode)?;
    if (size.width as u64) * (size.height as u64) > MAX_PIXELS
        || size.width == 0
        || size.height == 0
    {
        return Err(PredictError::ImageDecode);
    }
    Ok(())
}

/// [`prepare`] for an image already decoded (a camera frame in the browser).
pub fn prepare_decoded(img: &image::DynamicImage, side: u32) -> (Vec<f32>, ImageMeta) {
    let meta = ImageMeta {
        height: img.height(),
        width: img.width(),
    };
    (to_input(img, side), meta)
}

/// The model's input: squeezed to `side`×`side`, normalised, channel-first.
fn to_input(img: &image::DynamicImage, side: u32) -> Vec<f32> {
    let rgb = preprocess::resize_square(img, side);
    let mut out = Vec::with_capacity(3 * (side * side) as usize);
    preprocess::normalise_chw(
        rgb.as_raw(),
        side as usize,
        IMAGENET_MEAN,
        IMAGENET_STD,
        &mut out,
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_requests_are_input_format_errors() {
        for body in [
            &b"not json"[..],
            br#"{"data":[]}"#,
            br#"{"dataArray":[]}"#,
            br#"{"dataArray":[{"name":"image"}]}"#,
            br#"{"dataArray":[{"body":"***"}]}"#,
            br#"{"dataArray":[{"type":"url","body":"aGk="}]}"#,
        ] {
            assert_eq!(
                parse(body),
                Err(PredictError::InputFormat),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        assert_eq!(
            parse(br#"{"dataArray":[{"body":"aGk="}]}"#).unwrap(),
            vec![b"hi".to_vec()]
        );
    }

    #[test]
    fn bad_images_are_decode_errors() {
        assert_eq!(prepare(b"hi", 32).unwrap_err(), PredictError::ImageDecode);
        // A PNG header claiming 100000 x 100000 pixels: refused from the header alone.
        let mut png = Vec::new();
        png.extend_from_slice(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR");
        png.extend_from_slice(&100_000u32.to_be_bytes());
        png.extend_from_slice(&100_000u32.to_be_bytes());
        png.extend_from_slice(&[8, 2, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(prepare(&png, 32).unwrap_err(), PredictError::ImageDecode);
        assert_eq!(decode_page(&png).unwrap_err(), PredictError::ImageDecode);
        assert_eq!(decode_page(b"hi").unwrap_err(), PredictError::ImageDecode);
    }
}
