//! The recall engine: an instance's tables, strategies and filters held in memory with
//! interned ids, answering a user's recall in microseconds.

use std::collections::{HashMap, HashSet};

use shared::recall::{Filter, FilterKind, RecallTable, Strategy, StrategyKind};

use super::cf::{Interner, top_k};

/// CF uses at most this many of the user's most recent history items.
const CF_HISTORY: usize = 50;
/// Items kept in the popularity list (the fallback).
const POPULAR: usize = 1000;
pub const POPULAR_RETRIEVE_ID: &str = "popular";

type List = Vec<(u32, f32)>;

fn set_at(v: &mut Vec<List>, k: usize, list: List) {
    if v.len() <= k {
        v.resize_with(k + 1, Vec::new);
    }
    v[k] = list;
}

/// A set of ids cleared in O(1): an id is in the set when its stamp is the current one.
#[derive(Default)]
struct Stamps {
    mark: Vec<u32>,
    current: u32,
}

impl Stamps {
    fn begin(&mut self, n: usize) {
        if self.mark.len() < n {
            self.mark.resize(n, 0);
        }
        self.current = self.current.wrapping_add(1);
        if self.current == 0 {
            self.mark.iter_mut().for_each(|m| *m = 0);
            self.current = 1;
        }
    }

    fn insert(&mut self, i: u32) -> bool {
        let m = &mut self.mark[i as usize];
        let fresh = *m != self.current;
        *m = self.current;
        fresh
    }

    fn contains(&self, i: u32) -> bool {
        self.mark[i as usize] == self.current
    }
}

/// Per-thread working memory of a recall, sized to the id space, so that a request
/// allocates almost nothing: a dense score accumulator and stamp sets.
#[derive(Default)]
struct Scratch {
    acc: Vec<f32>,
    touched: Stamps,
    touched_ids: Vec<u32>,
    skip: Stamps,
    blocked: Stamps,
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::default();
}

impl Scratch {
    fn ensure(&mut self, n: usize) {
        if self.acc.len() < n {
            self.acc.resize(n, 0.0);
        }
    }

    /// Sums `weight × score` over the lists of the seeds, leaving out ids in `skip`.
    fn expand<'a>(
        &mut self,
        seeds: impl Iterator<Item = &'a (u32, f32)>,
        table: &[List],
        n: usize,
    ) -> List {
        self.touched.begin(n);
        for &(s, w) in seeds {
            for &(j, sim) in table.get(s as usize).map_or(&[][..], Vec::as_slice) {
                if self.skip.contains(j) {
                    continue;
                }
                if self.touched.insert(j) {
                    self.touched_ids.push(j);
                }
                self.acc[j as usize] += w * sim;
            }
        }
        let out = self
            .touched_ids
            .iter()
            .map(|&j| (j, std::mem::take(&mut self.acc[j as usize])))
            .collect();
        self.touched_ids.clear();
        out
    }
}

#[derive(Debug, Default, Clone)]
pub struct RecallModel {
    pub ids: Interner,
    user_item: HashMap<String, List>,
    /// Indexed by item id.
    item_item: Vec<List>,
    user_topic: HashMap<String, List>,
    /// Indexed by topic id.
    topic_item: Vec<List>,
    custom: HashMap<String, List>,
    filter_user_item: HashMap<String, HashSet<u32>>,
    filter_item: HashSet<u32>,
    /// Items by the number of histories holding them.
    popular: Vec<u32>,
    pub strategies: Vec<Strategy>,
    pub filters: Vec<Filter>,
}

pub use shared::recall::RecallOptions;

impl RecallModel {
    /// Builds a model from stored rows `(table, key, normalised value)`.
    pub fn from_rows<'a>(
        rows: impl IntoIterator<Item = (RecallTable, &'a str, &'a str)>,
        mut strategies: Vec<Strategy>,
        filters: Vec<Filter>,
    ) -> Self {
        let mut m = RecallModel::default();
        let mut counts: HashMap<u32, u32> = HashMap::new();
        for (table, key, value) in rows {
            let mut list: List = Vec::new();
            for part in value.split(',').filter(|p| !p.is_empty()) {
                let (id, w) = part.rsplit_once(':').unwrap_or((part, "1"));
                list.push((m.ids.id(id), w.parse().unwrap_or(1.0)));
            }
            match table {
                RecallTable::UserItem => {
                    for (i, _) in &list {
                        *counts.entry(*i).or_default() += 1;
                    }
                    m.user_item.insert(key.to_owned(), list);
                }
                RecallTable::ItemItem => {
                    let k = m.ids.id(key) as usize;
                    set_at(&mut m.item_item, k, list);
                }
                RecallTable::UserTopic => {
                    m.user_topic.insert(key.to_owned(), list);
                }
                RecallTable::TopicItem => {
                    let k = m.ids.id(key) as usize;
                    set_at(&mut m.topic_item, k, list);
                }
                RecallTable::Custom => {
                    m.custom.insert(key.to_owned(), list);
                }
                RecallTable::FilterUserItem => {
                    m.filter_user_item
                        .insert(key.to_owned(), list.into_iter().map(|(i, _)| i).collect());
                }
                RecallTable::FilterItem => {
                    let k = m.ids.id(key);
                    m.filter_item.insert(k);
                }
            }
        }
        let mut popular: Vec<(u32, f32)> = counts.into_iter().map(|(i, c)| (i, c as f32)).collect();
        top_k(&mut popular, POPULAR);
        m.popular = popular.into_iter().map(|(i, _)| i).collect();
        strategies.sort_by_key(|s| (s.position, s.id));
        m.strategies = strategies;
        m.filters = filters;
        m
    }

    /// Whether any user-keyed table knows the user.
    pub fn knows(&self, user: &str) -> bool {
        self.user_item.contains_key(user)
            || self.user_topic.contains_key(user)
            || self.custom.contains_key(user)
    }

    /// Candidates of one strategy for a user, best first, at most `count`.
    fn candidates_with(
        &self,
        sc: &mut Scratch,
        kind: StrategyKind,
        user: &str,
        count: usize,
    ) -> List {
        let n = self.ids.len();
        let mut v = match kind {
            StrategyKind::CollaborativeFiltering => {
                let Some(hist) = self.user_item.get(user) else {
                    return Vec::new();
                };
                // History items are never CF candidates.
                sc.skip.begin(n);
                hist.iter().for_each(|(i, _)| {
                    sc.skip.insert(*i);
                });
                sc.expand(hist.iter().take(CF_HISTORY), &self.item_item, n)
            }
            StrategyKind::Semantic => {
                let Some(topics) = self.user_topic.get(user) else {
                    return Vec::new();
                };
                sc.skip.begin(n);
                sc.expand(topics.iter(), &self.topic_item, n)
            }
            StrategyKind::Custom => self.custom.get(user).cloned().unwrap_or_default(),
        };
        top_k(&mut v, count);
        v
    }

    /// Merges the strategies in order, de-duplicated, each item with the strategy that
    /// found it; drops history (unless asked) and filtered items; falls back to popular.
    pub fn recall(&self, user: &str, opts: RecallOptions) -> Vec<(u32, &str)> {
        SCRATCH.with_borrow_mut(|sc| {
            sc.ensure(self.ids.len());
            // `blocked` holds excluded items, then also every item taken.
            sc.blocked.begin(self.ids.len());
            let mut n_blocked = 0;
            let mut block =
                |sc: &mut Scratch, i: u32| n_blocked += usize::from(sc.blocked.insert(i));
            if !opts.include_history {
                self.user_item
                    .get(user)
                    .into_iter()
                    .flatten()
                    .for_each(|(i, _)| block(sc, *i));
            }
            for f in &self.filters {
                match f.kind {
                    FilterKind::Item => self.filter_item.iter().for_each(|i| block(sc, *i)),
                    FilterKind::UserItem => {
                        self.filter_user_item
                            .get(user)
                            .into_iter()
                            .flatten()
                            .for_each(|i| block(sc, *i));
                    }
                }
            }
            let mut out: Vec<(u32, &str)> = Vec::with_capacity(opts.size);
            for s in &self.strategies {
                if out.len() >= opts.size {
                    break;
                }
                // No strategy can contribute more than `size` after skipping blocked and
                // taken items, so a smaller top-k suffices.
                let count = usize::try_from(s.count)
                    .unwrap_or(0)
                    .min(opts.size + n_blocked + out.len());
                for (item, _) in self.candidates_with(sc, s.kind, user, count) {
                    if out.len() >= opts.size {
                        break;
                    }
                    if sc.blocked.insert(item) {
                        out.push((item, s.name.as_str()));
                    }
                }
            }
            if opts.fallback_popular {
                for &item in &self.popular {
                    if out.len() >= opts.size {
                        break;
                    }
                    if sc.blocked.insert(item) {
                        out.push((item, POPULAR_RETRIEVE_ID));
                    }
                }
            }
            out
        })
    }

    pub fn name(&self, id: u32) -> &str {
        &self.ids.names[id as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strategy(id: i64, name: &str, kind: StrategyKind, count: i64) -> Strategy {
        Strategy {
            id,
            name: name.into(),
            kind,
            count,
            position: id,
        }
    }

    fn model(filters: Vec<Filter>) -> RecallModel {
        let rows = [
            (RecallTable::UserItem, "u1", "h1:1,h2:1"),
            (RecallTable::UserItem, "u2", "x:1,y:1,h1:1"),
            (RecallTable::UserItem, "u3", "x:1"),
            (RecallTable::ItemItem, "h1", "a:0.9,h2:0.8,b:0.5"),
            (RecallTable::ItemItem, "h2", "b:0.6,c:0.1"),
            (RecallTable::UserTopic, "u1", "sports:1"),
            (RecallTable::TopicItem, "sports", "c:0.9,d:0.8"),
            (RecallTable::Custom, "u1", "e:0.2,a:0.9"),
            (RecallTable::FilterUserItem, "u1", "d:1"),
            (RecallTable::FilterItem, "e", ""),
        ];
        RecallModel::from_rows(
            rows,
            vec![
                strategy(1, "cf", StrategyKind::CollaborativeFiltering, 2),
                strategy(2, "topic", StrategyKind::Semantic, 10),
                strategy(3, "mine", StrategyKind::Custom, 10),
            ],
            filters,
        )
    }

    fn names<'a>(m: &'a RecallModel, v: &[(u32, &'a str)]) -> Vec<(&'a str, &'a str)> {
        v.iter().map(|(i, r)| (m.name(*i), *r)).collect()
    }

    const OPTS: RecallOptions = RecallOptions {
        size: 10,
        include_history: false,
        fallback_popular: false,
    };

    #[test]
    fn strategies_merge_in_order_without_duplicates_or_history() {
        let m = model(vec![]);
        let got = m.recall("u1", OPTS);
        // cf: b = 0.5 + 0.6 = 1.1 beats a = 0.9 (h2 is history); count 2 keeps b, a.
        assert_eq!(
            names(&m, &got),
            [
                ("b", "cf"),
                ("a", "cf"),
                ("c", "topic"),
                ("d", "topic"),
                ("e", "mine")
            ]
        );
        let with_history = m.recall(
            "u1",
            RecallOptions {
                include_history: true,
                ..OPTS
            },
        );
        assert_eq!(names(&m, &with_history)[..2], [("b", "cf"), ("a", "cf")]);
        let two = m.recall("u1", RecallOptions { size: 2, ..OPTS });
        assert_eq!(two.len(), 2);
    }

    #[test]
    fn filters_drop_items_after_merging() {
        let m = model(vec![
            Filter {
                id: 1,
                name: "seen".into(),
                kind: FilterKind::UserItem,
            },
            Filter {
                id: 2,
                name: "banned".into(),
                kind: FilterKind::Item,
            },
        ]);
        assert_eq!(
            names(&m, &m.recall("u1", OPTS)),
            [("b", "cf"), ("a", "cf"), ("c", "topic")]
        );
    }

    #[test]
    fn unknown_users_get_popular_items_when_asked() {
        let m = model(vec![]);
        assert!(!m.knows("nobody"));
        assert!(m.recall("nobody", OPTS).is_empty());
        let got = m.recall(
            "nobody",
            RecallOptions {
                fallback_popular: true,
                size: 2,
                ..OPTS
            },
        );
        // x and h1 are in two histories each; ties break by interned id (h1 first seen).
        assert_eq!(names(&m, &got), [("h1", "popular"), ("x", "popular")]);
    }
}
