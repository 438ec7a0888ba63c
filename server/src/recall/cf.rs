//! Behaviour logs → user histories (user_item) and item-based collaborative filtering
//! (item_item): cosine similarity over co-occurrence, with per-action weights and an
//! inverse-user-frequency penalty so that very active users count less per pair.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::import::{self, ImportError, ParseFailure};

/// Stored histories keep at most this many items per user (most recent first).
pub const MAX_STORED_HISTORY: usize = 200;
/// Similarities are computed over each user's most recent items, bounding the quadratic
/// cost of very long histories.
pub const MAX_HISTORY_FOR_SIMILARITY: usize = 500;
/// The most lines a log upload may have.
pub const MAX_LOG_LINES: usize = 20_000_000;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ActionWeights {
    pub click: f32,
    pub buy: f32,
    pub favorite: f32,
}

impl Default for ActionWeights {
    fn default() -> Self {
        Self {
            click: 1.0,
            buy: 3.0,
            favorite: 2.0,
        }
    }
}

/// A fast, non-cryptographic hasher (the FxHash mix) for the interner: ids come from the
/// platform's own uploads, and SipHash dominated parsing a million-line log.
#[derive(Default, Clone, Copy)]
pub struct FastHasher(u64);

impl std::hash::Hasher for FastHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(b))
                .wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

pub type FastMap<K, V> = HashMap<K, V, std::hash::BuildHasherDefault<FastHasher>>;

/// Interned ids: strings in, dense `u32` out.
#[derive(Debug, Default, Clone)]
pub struct Interner {
    pub names: Vec<String>,
    index: FastMap<String, u32>,
}

impl Interner {
    pub fn id(&mut self, s: &str) -> u32 {
        if let Some(&i) = self.index.get(s) {
            return i;
        }
        let i = u32::try_from(self.names.len()).expect("fewer than 4 billion ids");
        self.names.push(s.to_owned());
        self.index.insert(s.to_owned(), i);
        i
    }

    pub fn get(&self, s: &str) -> Option<u32> {
        self.index.get(s).copied()
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Interaction {
    pub user: u32,
    pub item: u32,
    pub weight: f32,
    /// Sortable time (Unix seconds, or the digits of a date such as 20240131).
    pub time: i64,
}

#[derive(Debug, Default, Clone)]
pub struct Log {
    pub users: Interner,
    pub items: Interner,
    pub interactions: Vec<Interaction>,
}

/// The stored form of a parsed log starts with this (and a format version).
const LOG_MAGIC: &[u8; 8] = b"ALCFLOG1";

impl Log {
    /// The parsed log as bytes (kept in the models store while its build is open, so any
    /// server can run or resume the build): the magic, user and item names (length-prefixed
    /// UTF-8) and the interactions, little-endian.
    pub fn encode(&self) -> Vec<u8> {
        let names: usize = self
            .users
            .names
            .iter()
            .chain(&self.items.names)
            .map(|n| n.len() + 4)
            .sum();
        let mut out = Vec::with_capacity(24 + names + self.interactions.len() * 20);
        out.extend_from_slice(LOG_MAGIC);
        for interner in [&self.users, &self.items] {
            out.extend_from_slice(&(interner.len() as u32).to_le_bytes());
            for n in &interner.names {
                out.extend_from_slice(&(n.len() as u32).to_le_bytes());
                out.extend_from_slice(n.as_bytes());
            }
        }
        out.extend_from_slice(&(self.interactions.len() as u64).to_le_bytes());
        for i in &self.interactions {
            out.extend_from_slice(&i.user.to_le_bytes());
            out.extend_from_slice(&i.item.to_le_bytes());
            out.extend_from_slice(&i.weight.to_le_bytes());
            out.extend_from_slice(&i.time.to_le_bytes());
        }
        out
    }

    /// Reads [`Log::encode`]'s bytes back, checking every length and id.
    pub fn decode(bytes: &[u8]) -> anyhow::Result<Log> {
        struct Reader<'a>(&'a [u8]);
        impl<'a> Reader<'a> {
            fn take(&mut self, n: usize) -> anyhow::Result<&'a [u8]> {
                anyhow::ensure!(self.0.len() >= n, "the stored log is cut short");
                let (head, rest) = self.0.split_at(n);
                self.0 = rest;
                Ok(head)
            }
            fn array<const N: usize>(&mut self) -> anyhow::Result<[u8; N]> {
                Ok(self.take(N)?.try_into().expect("took N bytes"))
            }
            fn u32(&mut self) -> anyhow::Result<u32> {
                Ok(u32::from_le_bytes(self.array()?))
            }
        }
        let mut r = Reader(bytes);
        anyhow::ensure!(
            r.take(LOG_MAGIC.len())? == LOG_MAGIC,
            "not a stored behaviour log"
        );
        let mut log = Log::default();
        for interner in [&mut log.users, &mut log.items] {
            let n = r.u32()?;
            for _ in 0..n {
                let len = r.u32()? as usize;
                let name = std::str::from_utf8(r.take(len)?)?;
                interner.id(name);
            }
            anyhow::ensure!(interner.len() == n as usize, "the stored log repeats an id");
        }
        let n = u64::from_le_bytes(r.array()?);
        anyhow::ensure!(
            n.checked_mul(20).is_some_and(|b| b == r.0.len() as u64),
            "the stored log's interactions do not match their count"
        );
        let (users, items) = (log.users.len() as u32, log.items.len() as u32);
        log.interactions.reserve(n as usize);
        for _ in 0..n {
            let i = Interaction {
                user: r.u32()?,
                item: r.u32()?,
                weight: f32::from_le_bytes(r.array()?),
                time: i64::from_le_bytes(r.array()?),
            };
            anyhow::ensure!(
                i.user < users && i.item < items,
                "the stored log names an unknown id"
            );
            log.interactions.push(i);
        }
        Ok(log)
    }
}

/// Turns `2024-01-31 12:00:00` or `1700000000` into a number that sorts like the time.
fn sortable_time(s: &str) -> Option<i64> {
    if let Ok(v) = s.parse::<i64>() {
        return Some(v);
    }
    let digits: String = s.chars().filter(char::is_ascii_digit).collect();
    if digits.is_empty() || digits.len() > 18 {
        None
    } else {
        digits.parse().ok()
    }
}

/// Parses a log as it streams in: `user_id,item_id,active_type,active_date` (0 click, 1 buy,
/// 2 favourite) or MovieLens `userId,movieId,rating,timestamp` (weight = rating / 5). CSV or
/// TSV as [`import::for_each_record`] reads them; a header line is recognised and skipped.
/// Errors name the line and field.
pub fn parse_log<R: std::io::Read>(reader: R, w: ActionWeights) -> Result<Log, ParseFailure> {
    let mut log = Log::default();
    let mut movielens = false;
    let mut first = true;
    let mut records = 0usize;
    import::for_each_record(reader, |line, f| {
        let err = |field: &str, message: String| ImportError {
            line,
            field: field.to_owned(),
            message,
        };
        records += 1;
        if records > MAX_LOG_LINES {
            return Err(err("log", format!("more than {MAX_LOG_LINES} lines")));
        }
        let field = |k: usize| f.get(k).unwrap_or_default();
        if std::mem::take(&mut first)
            && (field(0).eq_ignore_ascii_case("user_id") || field(0) == "userId")
        {
            movielens = field(2) == "rating";
            return Ok(());
        }
        if f.len() < 4 {
            return Err(err(
                "log",
                format!(
                    "expected 4 fields (user_id, item_id, active_type, active_date), got {}",
                    f.len()
                ),
            ));
        }
        shared::recall::check_id(field(0)).map_err(|m| err("user_id", m))?;
        shared::recall::check_id(field(1)).map_err(|m| err("item_id", m))?;
        let weight = if movielens {
            let r: f32 = field(2)
                .parse()
                .map_err(|_| err("rating", format!("{:?} is not a number", field(2))))?;
            if !(0.0..=10.0).contains(&r) {
                return Err(err("rating", format!("{r} is outside 0-10")));
            }
            r / 5.0
        } else {
            match field(2) {
                "0" => w.click,
                "1" => w.buy,
                "2" => w.favorite,
                other => {
                    return Err(err(
                        "active_type",
                        format!("{other:?} is not 0 (click), 1 (buy) or 2 (favourite)"),
                    ));
                }
            }
        };
        let time = sortable_time(field(3)).ok_or_else(|| {
            err(
                "active_date",
                format!("{:?} is not a date or timestamp", field(3)),
            )
        })?;
        let user = log.users.id(field(0));
        let item = log.items.id(field(1));
        log.interactions.push(Interaction {
            user,
            item,
            weight,
            time,
        });
        Ok(())
    })?;
    Ok(log)
}

/// Per-user histories: `(item, summed weight)`, most recently touched first.
pub fn histories(log: &Log) -> Vec<Vec<(u32, f32)>> {
    // Sorting by (user, item) groups repeated interactions without a map per user.
    let mut v: Vec<(u32, u32, f32, i64)> = log
        .interactions
        .iter()
        .map(|it| (it.user, it.item, it.weight, it.time))
        .collect();
    v.sort_unstable_by_key(|&(u, i, _, _)| (u, i));
    let mut out: Vec<Vec<(u32, f32, i64)>> = vec![Vec::new(); log.users.len()];
    for (u, i, w, t) in v {
        let h = &mut out[u as usize];
        match h.last_mut() {
            Some(last) if last.0 == i => {
                last.1 += w;
                last.2 = last.2.max(t);
            }
            _ => h.push((i, w, t)),
        }
    }
    out.into_iter()
        .map(|mut h| {
            h.sort_by(|a, b| b.2.cmp(&a.2).then(a.0.cmp(&b.0)));
            h.into_iter().map(|(i, w, _)| (i, w)).collect()
        })
        .collect()
}

/// `(item, score)` pairs, best first.
type Scored = Vec<(u32, f32)>;

/// Top-`n` similar items of every item. `progress` counts items done (for live progress).
pub fn item_similarities(
    histories: &[Vec<(u32, f32)>],
    n_items: usize,
    top_n: usize,
    progress: &Arc<AtomicUsize>,
) -> Vec<Vec<(u32, f32)>> {
    // Inverted index item → (user, weight), over each user's most recent items.
    let mut by_item: Vec<Vec<(u32, f32)>> = vec![Vec::new(); n_items];
    let mut norm = vec![0f64; n_items];
    let mut iuf = vec![0f32; histories.len()];
    for (u, h) in histories.iter().enumerate() {
        let h = &h[..h.len().min(MAX_HISTORY_FOR_SIMILARITY)];
        iuf[u] = 1.0 / (1.0 + h.len() as f32).ln();
        for &(i, w) in h {
            by_item[i as usize].push((u as u32, w));
            norm[i as usize] += f64::from(w) * f64::from(w);
        }
    }
    let threads = std::thread::available_parallelism()
        .map_or(1, std::num::NonZero::get)
        .max(1);
    let inv_norm: Vec<f32> = norm
        .iter()
        .map(|&n| {
            if n > 0.0 {
                (1.0 / n.sqrt()) as f32
            } else {
                0.0
            }
        })
        .collect();
    // Popular items cost far more than rare ones, so threads take small blocks of items
    // from a shared counter rather than one fixed range each.
    const BLOCK: usize = 32;
    let next = AtomicUsize::new(0);
    let mut out: Vec<Vec<(u32, f32)>> = vec![Vec::new(); n_items];
    let parts: Vec<Vec<(usize, Scored)>> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                let (by_item, inv_norm, iuf, next) = (&by_item, &inv_norm, &iuf, &next);
                s.spawn(move || {
                    let mut acc = vec![0f32; n_items];
                    let mut touched: Vec<u32> = Vec::new();
                    let mut scored: Vec<(u32, f32)> = Vec::new();
                    let mut done = Vec::new();
                    loop {
                        let start = next.fetch_add(BLOCK, Ordering::Relaxed);
                        if start >= n_items {
                            break;
                        }
                        for i in start..(start + BLOCK).min(n_items) {
                            for &(u, wi) in &by_item[i] {
                                let h = &histories[u as usize];
                                let f = wi * iuf[u as usize];
                                for &(j, wj) in &h[..h.len().min(MAX_HISTORY_FOR_SIMILARITY)] {
                                    let add = f * wj;
                                    // A zero contribution would list `j` twice in `touched`.
                                    if j as usize == i || add == 0.0 {
                                        continue;
                                    }
                                    if acc[j as usize] == 0.0 {
                                        touched.push(j);
                                    }
                                    acc[j as usize] += add;
                                }
                            }
                            // Cosine: co-occurrence / (|i| |j|), inverse norms precomputed.
                            scored.clear();
                            scored.extend(touched.iter().map(|&j| {
                                (
                                    j,
                                    std::mem::take(&mut acc[j as usize])
                                        * inv_norm[i]
                                        * inv_norm[j as usize],
                                )
                            }));
                            touched.clear();
                            top_k(&mut scored, top_n);
                            // An exact-size copy: `scored` keeps its large capacity for reuse.
                            done.push((i, scored.clone()));
                            progress.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    done
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("similarity worker panicked"))
            .collect()
    });
    for (i, list) in parts.into_iter().flatten() {
        out[i] = list;
    }
    out
}

/// Keeps the `k` highest scores, sorted descending (ties by id, for determinism).
pub fn top_k(v: &mut Vec<(u32, f32)>, k: usize) {
    let cmp = |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
    if v.len() > k {
        v.select_nth_unstable_by(k, cmp);
        v.truncate(k);
    }
    v.sort_unstable_by(cmp);
}

/// What a build writes: user_item and item_item rows in the stored form.
pub struct CfOutput {
    pub user_item: Vec<(String, String)>,
    pub item_item: Vec<(String, String)>,
}

fn format_list(names: &[String], list: &[(u32, f32)]) -> String {
    let mut s = String::with_capacity(list.len() * 14);
    for (k, (i, w)) in list.iter().enumerate() {
        if k > 0 {
            s.push(',');
        }
        s.push_str(&names[*i as usize]);
        s.push(':');
        // Four significant decimals are plenty for ranking and keep rows short.
        s.push_str(&format!("{:.4}", w));
    }
    s
}

/// Builds user histories and top-`top_n` item similarities from a log.
pub fn build(log: &Log, top_n: usize, progress: &Arc<AtomicUsize>) -> CfOutput {
    let hist = histories(log);
    let sims = item_similarities(&hist, log.items.len(), top_n, progress);
    let user_item = hist
        .iter()
        .enumerate()
        .filter(|(_, h)| !h.is_empty())
        .map(|(u, h)| {
            (
                log.users.names[u].clone(),
                format_list(&log.items.names, &h[..h.len().min(MAX_STORED_HISTORY)]),
            )
        })
        .collect();
    let item_item = sims
        .iter()
        .enumerate()
        .filter(|(_, s)| !s.is_empty())
        .map(|(i, s)| (log.items.names[i].clone(), format_list(&log.items.names, s)))
        .collect();
    CfOutput {
        user_item,
        item_item,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_logs_read_back_whole_and_damaged_ones_are_refused() {
        let text = "user_id,item_id,active_type,active_date\nu1,tea,0,2024-01-01\n\
                    u2,tea,1,2024-01-02\nu1,cup,2,2024-01-03\nü,tea,0,1700000000\n";
        let log = parse_text(text, ActionWeights::default()).unwrap();
        let bytes = log.encode();
        let back = Log::decode(&bytes).unwrap();
        assert_eq!(back.users.names, log.users.names);
        assert_eq!(back.items.names, log.items.names);
        assert_eq!(back.interactions, log.interactions);
        assert_eq!(back.users.get("ü"), log.users.get("ü"), "ids are rebuilt");
        assert!(Log::decode(&bytes[..bytes.len() - 1]).is_err(), "cut short");
        assert!(Log::decode(b"ALCFLOG0").is_err(), "another format");
        let mut unknown = bytes.clone();
        let at = unknown.len() - 20;
        unknown[at..at + 4].copy_from_slice(&99u32.to_le_bytes());
        assert!(Log::decode(&unknown).is_err(), "a user id past the names");
    }

    fn parse_text(text: &str, w: ActionWeights) -> Result<Log, ImportError> {
        parse_log(text.as_bytes(), w).map_err(|e| match e {
            ParseFailure::Invalid(e) => e,
            ParseFailure::Read(e) => panic!("reading a slice failed: {e}"),
        })
    }

    #[test]
    fn logs_parse_both_formats_and_name_bad_fields() {
        let log = parse_text(
            "user_id,item_id,active_type,active_date\nu1,i1,0,2024-01-02\nu1,i2,1,2024-01-03\n",
            ActionWeights::default(),
        )
        .unwrap();
        assert_eq!(log.interactions.len(), 2);
        assert_eq!(log.interactions[1].weight, 3.0);
        assert_eq!(log.interactions[0].time, 20_240_102);
        let ml = parse_text(
            "userId,movieId,rating,timestamp\n1,31,2.5,1260759144\n",
            ActionWeights::default(),
        )
        .unwrap();
        assert_eq!(ml.interactions[0].weight, 0.5);
        let e = parse_text("u1,i1,7,2024-01-01\n", ActionWeights::default()).unwrap_err();
        assert_eq!((e.line, e.field.as_str()), (1, "active_type"));
        let e = parse_text("u1,i1,0\n", ActionWeights::default()).unwrap_err();
        assert!(e.message.contains("expected 4 fields"));
    }

    #[test]
    fn co_occurring_items_are_most_similar() {
        // Users 0-2 take a and b together; user 3 takes a and c.
        let text = "0,a,0,1\n0,b,0,2\n1,a,0,1\n1,b,0,2\n2,a,0,1\n2,b,0,2\n3,a,0,1\n3,c,0,2\n";
        let log = parse_text(text, ActionWeights::default()).unwrap();
        let h = histories(&log);
        assert_eq!(h[0][0].0, log.items.get("b").unwrap(), "most recent first");
        let sims = item_similarities(&h, log.items.len(), 10, &Arc::default());
        let a = log.items.get("a").unwrap() as usize;
        let names: Vec<&str> = sims[a]
            .iter()
            .map(|(j, _)| log.items.names[*j as usize].as_str())
            .collect();
        assert_eq!(names, ["b", "c"]);
        // Cosine: a·b = 3·iuf, |a| = 2, |b| = sqrt(3), iuf = 1/ln(3).
        let expected = 3.0 / 3f32.ln() / (2.0 * 3f32.sqrt());
        assert!(
            (sims[a][0].1 - expected).abs() < 1e-5,
            "{} vs {expected}",
            sims[a][0].1
        );
    }

    #[test]
    fn top_k_sorts_and_truncates() {
        let mut v = vec![(1, 0.5), (2, 0.9), (3, 0.1), (4, 0.9)];
        top_k(&mut v, 3);
        assert_eq!(v, vec![(2, 0.9), (4, 0.9), (1, 0.5)]);
    }
}
