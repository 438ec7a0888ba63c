//! The predict endpoint's input path: request body → JSON → base64 → image header → decoder
//! → resize → normalise (`shared::predict::input`, the code the server runs). Any input
//! must give a result or a SPEC error, never a panic, a hang or an out-of-memory.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shared::predict::input::{parse, prepare};

fuzz_target!(|data: &[u8]| {
    // As a request body.
    if let Ok(images) = parse(data) {
        for image in images {
            let _ = prepare(&image, 64);
        }
    }
    // As the bytes of an uploaded image.
    let _ = prepare(data, 64);
});
