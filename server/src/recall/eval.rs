//! Offline evaluation: hold out each user's latest interactions, build CF on the rest, and
//! measure how many held-out items the recall finds (recall@K, hit-rate@K), against a
//! popularity baseline. Runs the product's own builder and engine.

use std::collections::HashSet;
use std::sync::Arc;

use serde::Serialize;
use shared::recall::{RecallTable, Strategy, StrategyKind};

use super::cf::{self, Interaction, Log};
use super::engine::{RecallModel, RecallOptions};

/// Users with fewer interactions are kept whole in training.
const MIN_INTERACTIONS: usize = 5;

#[derive(Debug, Clone, Serialize)]
pub struct EvalRow {
    pub strategy: String,
    /// Mean over users of |hits| / |held out|.
    pub recall_at_k: f64,
    /// Share of users with at least one hit.
    pub hit_rate_at_k: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    pub k: usize,
    pub holdout_fraction: f64,
    pub users_evaluated: usize,
    pub train_interactions: usize,
    pub test_interactions: usize,
    pub rows: Vec<EvalRow>,
}

/// Splits each user's interactions by time: the latest `holdout_fraction` (at least one)
/// are the test set.
pub fn split(log: &Log, holdout_fraction: f64) -> (Log, Vec<HashSet<u32>>) {
    let mut per_user: Vec<Vec<Interaction>> = vec![Vec::new(); log.users.len()];
    for it in &log.interactions {
        per_user[it.user as usize].push(*it);
    }
    let mut train = Log {
        users: log.users.clone(),
        items: log.items.clone(),
        interactions: Vec::new(),
    };
    let mut test = vec![HashSet::new(); log.users.len()];
    for (u, mut v) in per_user.into_iter().enumerate() {
        v.sort_by_key(|i| (i.time, i.item));
        let n_test = if v.len() >= MIN_INTERACTIONS {
            ((v.len() as f64 * holdout_fraction).round() as usize).clamp(1, v.len() - 1)
        } else {
            0
        };
        let cut = v.len() - n_test;
        let train_items: HashSet<u32> = v[..cut].iter().map(|i| i.item).collect();
        // Re-watched items are not "new" to find: only unseen ones count as held out.
        test[u] = v[cut..]
            .iter()
            .map(|i| i.item)
            .filter(|i| !train_items.contains(i))
            .collect();
        train.interactions.extend_from_slice(&v[..cut]);
    }
    (train, test)
}

pub fn evaluate(log: &Log, k: usize, holdout_fraction: f64, top_n: usize) -> EvalReport {
    let (train, test) = split(log, holdout_fraction);
    let out = cf::build(&train, top_n, &Arc::default());
    let rows = out
        .user_item
        .iter()
        .map(|(k, v)| (RecallTable::UserItem, k.as_str(), v.as_str()))
        .chain(
            out.item_item
                .iter()
                .map(|(k, v)| (RecallTable::ItemItem, k.as_str(), v.as_str())),
        );
    let cf_strategy = Strategy {
        id: 1,
        name: "cf".into(),
        kind: StrategyKind::CollaborativeFiltering,
        count: k as i64,
        position: 0,
    };
    let cf_model = RecallModel::from_rows(rows.clone(), vec![cf_strategy], vec![]);
    let pop_model = RecallModel::from_rows(rows, vec![], vec![]);
    let runs: [(&str, &RecallModel, RecallOptions); 2] = [
        (
            "collaborative_filtering",
            &cf_model,
            RecallOptions {
                size: k,
                include_history: false,
                fallback_popular: false,
            },
        ),
        (
            "popularity_baseline",
            &pop_model,
            RecallOptions {
                size: k,
                include_history: false,
                fallback_popular: true,
            },
        ),
    ];
    let evaluated: Vec<usize> = (0..test.len()).filter(|&u| !test[u].is_empty()).collect();
    let report_rows = runs
        .iter()
        .map(|(name, model, opts)| {
            let (mut recall_sum, mut hits_users) = (0.0, 0usize);
            for &u in &evaluated {
                let user = &log.users.names[u];
                let got = model.recall(user, *opts);
                let hits = got
                    .iter()
                    .filter(|(i, _)| {
                        log.items
                            .get(model.name(*i))
                            .is_some_and(|orig| test[u].contains(&orig))
                    })
                    .count();
                recall_sum += hits as f64 / test[u].len() as f64;
                hits_users += usize::from(hits > 0);
            }
            let n = evaluated.len().max(1) as f64;
            EvalRow {
                strategy: (*name).to_owned(),
                recall_at_k: recall_sum / n,
                hit_rate_at_k: hits_users as f64 / n,
            }
        })
        .collect();
    EvalReport {
        k,
        holdout_fraction,
        users_evaluated: evaluated.len(),
        train_interactions: train.interactions.len(),
        test_interactions: test.iter().map(HashSet::len).sum(),
        rows: report_rows,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_out_items_are_the_latest_unseen_ones() {
        let text = (1..=10)
            .map(|t| format!("u,i{t},0,{t}\n"))
            .collect::<String>();
        let log = cf::parse_log(text.as_bytes(), cf::ActionWeights::default()).unwrap();
        let (train, test) = split(&log, 0.2);
        assert_eq!(train.interactions.len(), 8);
        let names: HashSet<&str> = test[0]
            .iter()
            .map(|i| log.items.names[*i as usize].as_str())
            .collect();
        assert_eq!(names, HashSet::from(["i9", "i10"]));
    }

    /// Two taste groups: CF, which sees them, must beat popularity.
    #[test]
    fn cf_beats_popularity_on_clustered_data() {
        let mut text = String::new();
        let mut seed: u64 = 7;
        let mut next = move || {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (seed >> 33) as usize
        };
        for u in 0..40 {
            let group = u % 2;
            // Each user takes 8 distinct items of their group's 12, in random order.
            let mut items: Vec<usize> = (0..12).collect();
            for k in (1..items.len()).rev() {
                items.swap(k, next() % (k + 1));
            }
            for (t, item) in items.iter().take(8).enumerate() {
                text += &format!("u{u},i{},0,{}\n", group * 100 + item, t + 1);
            }
        }
        // A globally popular item everyone saw first.
        for u in 0..40 {
            text += &format!("u{u},pop,0,0\n");
        }
        let log = cf::parse_log(text.as_bytes(), cf::ActionWeights::default()).unwrap();
        let r = evaluate(&log, 5, 0.25, 20);
        assert!(r.users_evaluated > 30);
        let (cf, pop) = (&r.rows[0], &r.rows[1]);
        assert!(cf.recall_at_k > pop.recall_at_k, "{r:?}");
    }
}
