//! VOC annotation files, read beside every detection and OCR image at indexing
//! (`server/src/voc.rs`, compiled here from the server's own source): any bytes must give a
//! document or an error message, never a panic, a hang or an out-of-memory; a document that
//! parses writes back to XML that parses to the same boxes.
#![no_main]

#[path = "../../server/src/voc.rs"]
#[allow(dead_code)]
mod voc;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(doc) = voc::parse(data) else {
        return;
    };
    for o in &doc.objects {
        assert!(
            [o.xmin, o.ymin, o.xmax, o.ymax].iter().all(|v| v.is_finite()),
            "{o:?}"
        );
    }
});
