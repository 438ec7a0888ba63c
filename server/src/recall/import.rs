//! Parsing uploaded recall tables: CSV or TSV, `key<sep>value`, where the value is an
//! `id:weight` list (commas, or the space-separated variant). All-or-nothing: the first bad
//! line stops the import with its line number and field.

use shared::recall::{RecallTable, check_id, parse_weighted_list};

/// The most rows one upload may carry.
pub const MAX_ROWS: usize = 2_000_000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, {field}: {message}")]
pub struct ImportError {
    pub line: usize,
    pub field: String,
    pub message: String,
}

/// Formats a parsed list in the stored form `id:weight,id:weight`.
pub fn normalise(list: &[(String, f64)]) -> String {
    let mut s = String::with_capacity(list.len() * 12);
    for (i, (id, w)) in list.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(id);
        s.push(':');
        s.push_str(&format!("{w}"));
    }
    s
}

/// Parses a table upload into `(key, normalised value)` rows. A later row with the same key
/// replaces an earlier one.
pub fn parse_table(table: RecallTable, text: &str) -> Result<Vec<(String, String)>, ImportError> {
    let (key_col, value_col) = table.columns();
    let mut rows: Vec<(String, String)> = Vec::new();
    let mut index = std::collections::HashMap::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let raw = raw.trim_end_matches('\r');
        if raw.trim().is_empty() {
            continue;
        }
        let err = |field: &str, message: String| ImportError {
            line,
            field: field.to_owned(),
            message,
        };
        // The separator is a tab if the line has one, else the first comma or space.
        let (key, value) = match raw.find('\t').or_else(|| raw.find([',', ' '])) {
            Some(p) => (raw[..p].trim(), raw[p + 1..].trim()),
            None => (raw.trim(), ""),
        };
        let key = key.trim_matches('"');
        let value = value.trim_matches('"');
        if line == 1 && key == key_col {
            continue; // header
        }
        check_id(key).map_err(|m| err(key_col, m))?;
        let value = if table.has_value() {
            let list = parse_weighted_list(value).map_err(|m| err(value_col, m))?;
            if list.is_empty() {
                return Err(err(value_col, "empty list".to_owned()));
            }
            normalise(&list)
        } else {
            String::new()
        };
        match index.get(key) {
            Some(&at) => rows[at] = (key.to_owned(), value),
            None => {
                index.insert(key.to_owned(), rows.len());
                rows.push((key.to_owned(), value));
            }
        }
        if rows.len() > MAX_ROWS {
            return Err(err(
                key_col,
                format!("more than {MAX_ROWS} rows; split the upload and append"),
            ));
        }
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_tsv_and_space_variants_parse() {
        let csv = "user_id,item_ids\nu1,\"17981042,19412678\"\nu2,7484728:1,16966098:0.5\n";
        assert_eq!(
            parse_table(RecallTable::UserItem, csv).unwrap(),
            vec![
                ("u1".into(), "17981042:1,19412678:1".into()),
                ("u2".into(), "7484728:1,16966098:0.5".into())
            ]
        );
        let tsv = "i1\t7484728:1 16966098:0.5\r\n";
        assert_eq!(
            parse_table(RecallTable::ItemItem, tsv).unwrap()[0].1,
            "7484728:1,16966098:0.5"
        );
        assert_eq!(
            parse_table(RecallTable::FilterItem, "item_id\n42\n43\n")
                .unwrap()
                .len(),
            2
        );
    }

    #[test]
    fn errors_name_the_line_and_field() {
        let e = parse_table(RecallTable::UserTopic, "u1,sports:0.7\nu2,tech:high\n").unwrap_err();
        assert_eq!((e.line, e.field.as_str()), (2, "topic_ids"));
        assert!(
            e.to_string()
                .starts_with("line 2, topic_ids: weight \"high\""),
            "{e}"
        );
        let e = parse_table(RecallTable::UserItem, "u1\n").unwrap_err();
        assert_eq!((e.line, e.message.as_str()), (1, "empty list"));
        let e = parse_table(RecallTable::Custom, "\"\",a\n").unwrap_err();
        assert_eq!(e.field, "user_id");
    }

    #[test]
    fn later_rows_replace_earlier_ones() {
        let rows = parse_table(RecallTable::Custom, "u1,a\nu1,b\n").unwrap();
        assert_eq!(rows, vec![("u1".into(), "b:1".into())]);
    }
}
