//! Uploaded recall tables and behaviour logs (`server/src/recall/import.rs` and
//! `server/src/recall/cf.rs`, compiled here from the server's own source): CSV/TSV bytes,
//! quoted or not, with `id:weight` lists. Any bytes, for every table and as a log, must
//! import or give a line-numbered error, never a panic; imported rows hold only checked ids.
#![no_main]

#[path = "../../server/src/recall"]
mod recall {
    #[allow(dead_code)]
    pub mod cf;
    #[allow(dead_code)]
    pub mod import;
}

use libfuzzer_sys::fuzz_target;
use recall::{cf, import};
use shared::recall::{RecallTable, check_id};

fuzz_target!(|data: &[u8]| {
    for table in RecallTable::ALL {
        match import::parse_table(table, data) {
            Ok(rows) => {
                for (key, _) in &rows {
                    assert!(check_id(key).is_ok(), "{table:?}: imported key {key:?}");
                }
            }
            Err(import::ParseFailure::Invalid(e)) => assert!(e.line >= 1, "{e}"),
            Err(import::ParseFailure::Read(e)) => panic!("reading a slice failed: {e}"),
        }
    }
    match cf::parse_log(data, cf::ActionWeights::default()) {
        Ok(log) => {
            for name in log.users.names.iter().chain(&log.items.names) {
                assert!(check_id(name).is_ok(), "logged id {name:?}");
            }
            assert!(log.interactions.iter().all(|i| i.weight.is_finite()));
        }
        Err(import::ParseFailure::Invalid(e)) => assert!(e.line >= 1, "{e}"),
        Err(import::ParseFailure::Read(e)) => panic!("reading a slice failed: {e}"),
    }
});
