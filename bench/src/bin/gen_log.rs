//! Writes a synthetic behaviour log: USERS users with on average PER_USER interactions,
//! items drawn from a Zipf-like popularity over ITEMS items, action types 0/1/2, seeded.
//!
//! Usage: gen_log USERS PER_USER ITEMS SEED > log.csv

use std::io::Write;

fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("numbers"))
        .collect();
    let [users, per_user, items, seed] = args[..] else {
        eprintln!("usage: gen_log USERS PER_USER ITEMS SEED");
        std::process::exit(2);
    };
    let mut state = seed
        .wrapping_mul(2_862_933_555_777_941_757)
        .wrapping_add(3_037_000_493);
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let unit = |x: u64| (x >> 11) as f64 / (1u64 << 53) as f64;
    // Inverse-CDF sampling of a Zipf(1) distribution over ranks 1..=items.
    let h = (items as f64).ln() + 0.577_215_664_9;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    writeln!(out, "user_id,item_id,active_type,active_date").unwrap();
    for u in 0..users {
        let n = 1 + next() % (2 * per_user);
        for t in 0..n {
            let r = (unit(next()) * h).exp().min(items as f64) as u64;
            let action = match next() % 20 {
                0 => 1,
                1 | 2 => 2,
                _ => 0,
            };
            writeln!(out, "u{u},i{r},{action},{}", 1_700_000_000 + t * 60).unwrap();
        }
    }
}
