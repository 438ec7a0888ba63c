//! Recommendation recall (SPEC §8): table names, strategy and filter types, the recall
//! response, and the parser of `id:weight` lists shared by the server's import and the
//! browser's upload preview.

use serde::{Deserialize, Serialize};

/// The tables of a recall instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecallTable {
    /// user → history items (most recent first).
    UserItem,
    /// item → similar items.
    ItemItem,
    /// user → topics.
    UserTopic,
    /// topic → items.
    TopicItem,
    /// user → precomputed items.
    Custom,
    /// user → items never to return to that user.
    FilterUserItem,
    /// item → (nothing): never return this item.
    FilterItem,
}

impl RecallTable {
    pub const ALL: [RecallTable; 7] = [
        Self::UserItem,
        Self::ItemItem,
        Self::UserTopic,
        Self::TopicItem,
        Self::Custom,
        Self::FilterUserItem,
        Self::FilterItem,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::UserItem => "user_item",
            Self::ItemItem => "item_item",
            Self::UserTopic => "user_topic",
            Self::TopicItem => "topic_item",
            Self::Custom => "custom",
            Self::FilterUserItem => "filter_user_item",
            Self::FilterItem => "filter_item",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// Column names, for headers and messages.
    pub fn columns(self) -> (&'static str, &'static str) {
        match self {
            Self::UserItem => ("user_id", "item_ids"),
            Self::ItemItem => ("item_id", "similar_item_ids"),
            Self::UserTopic => ("user_id", "topic_ids"),
            Self::TopicItem => ("topic_id", "item_ids"),
            Self::Custom => ("user_id", "item_ids"),
            Self::FilterUserItem => ("user_id", "item_ids"),
            Self::FilterItem => ("item_id", ""),
        }
    }

    /// Whether rows carry a value list (all but the item filter).
    pub fn has_value(self) -> bool {
        self != Self::FilterItem
    }
}

/// The most ids in one row's list.
pub const MAX_LIST_LEN: usize = 10_000;
/// The longest id.
pub const MAX_ID_LEN: usize = 128;

/// Checks an id: 1–128 characters, no separators (`,` `:` whitespace) or control characters.
pub fn check_id(id: &str) -> Result<(), String> {
    if id.is_empty() {
        return Err("empty id".to_owned());
    }
    if id.chars().count() > MAX_ID_LEN {
        return Err(format!("id longer than {MAX_ID_LEN} characters"));
    }
    if let Some(c) = id
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || matches!(c, ',' | ':' | '"'))
    {
        return Err(format!("id {id:?} contains {c:?}"));
    }
    Ok(())
}

/// How one recall request is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecallOptions {
    pub size: usize,
    /// Return items already in the user's history (off by default, SPEC §8).
    pub include_history: bool,
    /// Fill with popular items when strategies find too few (and for unknown users).
    pub fallback_popular: bool,
}

/// Parses `a:0.7,b:0.3`, `a,b` or the space-separated `a:0.7 b:0.3`; a missing weight is 1.
pub fn parse_weighted_list(s: &str) -> Result<Vec<(String, f64)>, String> {
    let mut out = Vec::new();
    for part in s
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|p| !p.is_empty())
    {
        let (id, weight) = match part.rsplit_once(':') {
            Some((id, w)) => {
                let w: f64 = w
                    .parse()
                    .map_err(|_| format!("weight {w:?} of {id:?} is not a number"))?;
                if !w.is_finite() {
                    return Err(format!("weight of {id:?} must be finite"));
                }
                (id, w)
            }
            None => (part, 1.0),
        };
        check_id(id)?;
        out.push((id.to_owned(), weight));
        if out.len() > MAX_LIST_LEN {
            return Err(format!("more than {MAX_LIST_LEN} ids in one row"));
        }
    }
    Ok(out)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StrategyKind {
    /// History items → their similar items (user_item + item_item).
    CollaborativeFiltering,
    /// Topics → items (user_topic + topic_item).
    Semantic,
    /// The user's precomputed list (custom).
    Custom,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Strategy {
    pub id: i64,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: StrategyKind,
    /// Items this strategy recalls at most.
    pub count: i64,
    /// Merge order: lower first.
    pub position: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreateStrategy {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: StrategyKind,
    #[serde(default = "default_count")]
    pub count: i64,
}

fn default_count() -> i64 {
    50
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FilterKind {
    /// Drops the items of the filter_user_item table for that user.
    UserItem,
    /// Drops the items of the filter_item table everywhere.
    Item,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Filter {
    pub id: i64,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: FilterKind,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreateFilter {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: FilterKind,
}

/// One row of a table, as previewed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableRow {
    pub key: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableInfo {
    pub table: RecallTable,
    pub rows: i64,
    /// The first rows by key.
    pub preview: Vec<TableRow>,
}

/// Result of `PUT /api/instances/{id}/tables/{table}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableImport {
    pub table: RecallTable,
    /// `replace` or `append`.
    pub mode: String,
    /// Rows in the upload.
    pub imported: i64,
    /// Rows in the table now.
    pub rows: i64,
}

/// A job that turns a behaviour log into user_item and item_item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CfJob {
    pub id: String,
    pub instance_id: i64,
    /// `running`, `succeeded` or `failed`.
    pub state: String,
    /// 0 to 1.
    pub progress: f64,
    pub stage: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats: Option<CfStats>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CfStats {
    pub interactions: i64,
    pub users: i64,
    pub items: i64,
    /// Rows written to item_item.
    pub item_item_rows: i64,
    pub elapsed_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecallItem {
    pub item_id: String,
    /// The strategy that found the item (`popular` for the fallback).
    pub retrieve_id: String,
}

/// The recall endpoint's response (SPEC §8), field for field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecallResponse {
    pub code: i64,
    pub msg: String,
    pub request_id: String,
    pub size: i64,
    pub items: Vec<RecallItem>,
    pub errors: Vec<String>,
}

/// `POST /api/recall/{service}` body and the test console's request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RecallRequest {
    pub user_id: String,
    #[serde(default)]
    pub size: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreateService {
    pub name: String,
    #[serde(default = "one")]
    pub replicas: i64,
}

fn one() -> i64 {
    1
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Service {
    pub id: i64,
    pub name: String,
    pub instance_id: i64,
    /// `recall` or `predict`.
    pub kind: String,
    pub replicas: i64,
    /// Path of the endpoint on this server.
    pub endpoint: String,
    pub created_at: String,
    /// Predict services: the model version served.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_id: Option<i64>,
    /// Predict services: `loading`, `running` or `failed` (with the reason) on this server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Only in the answer to the create request: keep it, it is not shown again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weighted_lists_parse_in_every_variant() {
        let w = |s| parse_weighted_list(s).unwrap();
        assert_eq!(
            w("7484728:1,16966098:0.5"),
            vec![("7484728".into(), 1.0), ("16966098".into(), 0.5)]
        );
        assert_eq!(
            w("7484728,16966098"),
            vec![("7484728".into(), 1.0), ("16966098".into(), 1.0)]
        );
        assert_eq!(w("a:0.7 b:0.3"), vec![("a".into(), 0.7), ("b".into(), 0.3)]);
        assert_eq!(w(""), vec![]);
        assert!(
            parse_weighted_list("a:x")
                .unwrap_err()
                .contains("not a number")
        );
        assert!(parse_weighted_list("a:inf").is_err());
    }

    #[test]
    fn recall_response_matches_the_spec_shape() {
        let r = RecallResponse {
            code: 200,
            msg: "success".into(),
            request_id: "r1".into(),
            size: 1,
            items: vec![RecallItem {
                item_id: "11448".into(),
                retrieve_id: "pai_rec".into(),
            }],
            errors: vec![],
        };
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"code":200,"msg":"success","request_id":"r1","size":1,"items":[{"item_id":"11448","retrieve_id":"pai_rec"}],"errors":[]}"#
        );
    }
}
