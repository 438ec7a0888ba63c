//! OCR (`ocr-fast`): the pretrained PP-OCRv4 mobile detector and recogniser
//! ([`pretrained`], imported from ONNX by [`onnx`]), the recogniser fine-tuned on the
//! user's lines with CTC ([`trainer`]), and end-to-end evaluation ([`evaluate`]).

pub mod evaluate;
pub mod onnx;
pub mod pretrained;
pub mod trainer;
