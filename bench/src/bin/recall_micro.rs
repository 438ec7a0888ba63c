//! Time per recall in the engine alone (no HTTP), on a CF model built from a log.
//!
//! Usage: recall_micro LOG   → prints µs per recall for size 10 and 100.

use std::sync::Arc;
use std::time::Instant;

use autolearn_server::recall::cf;
use autolearn_server::recall::engine::{RecallModel, RecallOptions};
use shared::recall::{RecallTable, Strategy, StrategyKind};

fn main() {
    let path = std::env::args().nth(1).expect("usage: recall_micro LOG");
    let log = cf::parse_log(
        std::fs::File::open(path).expect("open"),
        cf::ActionWeights::default(),
    )
    .expect("log");
    let out = cf::build(&log, 50, &Arc::default());
    let rows = out
        .user_item
        .iter()
        .map(|(k, v)| (RecallTable::UserItem, k.as_str(), v.as_str()))
        .chain(
            out.item_item
                .iter()
                .map(|(k, v)| (RecallTable::ItemItem, k.as_str(), v.as_str())),
        );
    let cf = Strategy {
        id: 1,
        name: "cf".into(),
        kind: StrategyKind::CollaborativeFiltering,
        count: 200,
        position: 0,
    };
    let model = RecallModel::from_rows(rows, vec![cf], vec![]);
    for size in [10, 100] {
        let opts = RecallOptions {
            size,
            include_history: false,
            fallback_popular: true,
        };
        let start = Instant::now();
        let mut n = 0usize;
        for _ in 0..5 {
            for u in &log.users.names {
                n += model.recall(u, opts).len();
            }
        }
        let calls = 5 * log.users.len();
        println!(
            "size {size}: {:.1} µs per recall ({n} items)",
            start.elapsed().as_secs_f64() * 1e6 / calls as f64
        );
    }
}
