//! Uploaded recall tables (`server/src/recall/import.rs`, compiled here from the server's own
//! source): CSV/TSV lines of `key<sep>value` with `id:weight` lists, quoted or not. Any text,
//! for every table, must import or give a line-numbered error, never a panic; imported rows
//! hold only checked ids.
#![no_main]

#[path = "../../server/src/recall/import.rs"]
#[allow(dead_code)]
mod import;

use libfuzzer_sys::fuzz_target;
use shared::recall::{RecallTable, check_id};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for table in RecallTable::ALL {
        if let Ok(rows) = import::parse_table(table, &text) {
            for (key, _) in &rows {
                assert!(check_id(key).is_ok(), "{table:?}: imported key {key:?}");
            }
        }
    }
});
