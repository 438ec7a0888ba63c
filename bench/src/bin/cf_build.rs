//! Times the product's CF build on a log and writes item_item as TSV for comparison with
//! the Python/scipy peer (`bench/cf_peer.py`).
//!
//! Usage: cf_build LOG TOP_N OUT.tsv   → prints one JSON line of figures.

use std::io::Write;
use std::sync::Arc;
use std::time::Instant;

use autolearn_server::recall::cf;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, log, top_n, out] = &args[..] else {
        eprintln!("usage: cf_build LOG TOP_N OUT.tsv");
        std::process::exit(2);
    };
    let top_n: usize = top_n.parse().expect("TOP_N is a number");
    let t0 = Instant::now();
    let text = std::fs::read_to_string(log).expect("read log");
    let parsed = cf::parse_log(text.as_bytes(), cf::ActionWeights::default()).expect("valid log");
    let parse_s = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    let built = cf::build(&parsed, top_n, &Arc::default());
    let build_s = t1.elapsed().as_secs_f64();
    let mut f = std::io::BufWriter::new(std::fs::File::create(out).expect("create output"));
    for (k, v) in &built.item_item {
        writeln!(f, "{k}\t{v}").expect("write");
    }
    println!(
        "{}",
        serde_json::json!({
            "interactions": parsed.interactions.len(),
            "users": parsed.users.len(),
            "items": parsed.items.len(),
            "parse_s": parse_s,
            "build_s": build_s,
            "total_s": parse_s + build_s,
        })
    );
}
