//! OCR (`ocr-fast`): the pretrained PP-OCRv4 mobile detector and recogniser
//! ([`pretrained`], imported from ONNX by [`onnx`]).

pub mod onnx;
pub mod pretrained;
