//! Parsing uploaded recall tables and behaviour logs as they stream in: CSV or TSV (the
//! delimiter is a tab when the first line has one), quoted fields with `""` escapes, a UTF-8
//! byte-order mark skipped, blank lines ignored. Tables are `key<sep>value`, where the value
//! is an `id:weight` list (commas, or the space-separated variant). All-or-nothing: the
//! first bad line stops the import with its line number and field.

use std::io::{BufRead, BufReader, Read};

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

/// Why an upload did not parse: its content, or reading it (a broken or oversized body).
#[derive(Debug, thiserror::Error)]
pub enum ParseFailure {
    #[error(transparent)]
    Invalid(#[from] ImportError),
    #[error("reading the upload failed: {0}")]
    Read(std::io::Error),
}

/// Calls `each(line, fields)` for every non-blank record of `reader` (fields trimmed), in
/// order, holding one record at a time.
pub fn for_each_record<R: Read>(
    reader: R,
    mut each: impl FnMut(usize, &csv::StringRecord) -> Result<(), ImportError>,
) -> Result<(), ParseFailure> {
    let mut reader = BufReader::with_capacity(64 * 1024, reader);
    let head = reader.fill_buf().map_err(ParseFailure::Read)?;
    let bom = head.starts_with(b"\xEF\xBB\xBF");
    let first_line = head[if bom { 3 } else { 0 }..]
        .split(|&b| b == b'\n')
        .next()
        .unwrap_or_default();
    let delimiter = if first_line.contains(&b'\t') {
        b'\t'
    } else {
        b','
    };
    if bom {
        reader.consume(3);
    }
    let mut csv = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(delimiter)
        .trim(csv::Trim::All)
        .from_reader(reader);
    let mut record = csv::StringRecord::new();
    loop {
        match csv.read_record(&mut record) {
            Ok(false) => return Ok(()),
            Ok(true) => {}
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line() as usize);
                return Err(match e.into_kind() {
                    csv::ErrorKind::Io(io) => ParseFailure::Read(io),
                    csv::ErrorKind::Utf8 { err, .. } => ParseFailure::Invalid(ImportError {
                        line,
                        field: format!("field {}", err.field() + 1),
                        message: "not UTF-8 text".to_owned(),
                    }),
                    other => ParseFailure::Invalid(ImportError {
                        line,
                        field: "upload".to_owned(),
                        message: format!("{other:?}"),
                    }),
                });
            }
        }
        if record.iter().all(str::is_empty) {
            continue;
        }
        let line = record.position().map_or(0, |p| p.line() as usize);
        each(line, &record)?;
    }
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

/// Splits a table record into its key and its value: the key is the first field up to any
/// whitespace (the space-separated variant); the value is the rest, its fields joined with
/// commas (an unquoted `u1,a:1,b:0.5` is three fields).
fn key_and_value(record: &csv::StringRecord) -> (&str, String) {
    let first = record.get(0).unwrap_or_default();
    let (key, rest) = match first.split_once(char::is_whitespace) {
        Some((k, r)) => (k, r.trim()),
        None => (first, ""),
    };
    let mut value = rest.to_owned();
    for field in record.iter().skip(1) {
        if !value.is_empty() {
            value.push(',');
        }
        value.push_str(field);
    }
    (key, value)
}

/// Parses a table upload into `(key, normalised value)` rows. A later row with the same key
/// replaces an earlier one.
pub fn parse_table<R: Read>(
    table: RecallTable,
    reader: R,
) -> Result<Vec<(String, String)>, ParseFailure> {
    let (key_col, value_col) = table.columns();
    let mut rows: Vec<(String, String)> = Vec::new();
    let mut index = std::collections::HashMap::new();
    let mut first = true;
    for_each_record(reader, |line, record| {
        let err = |field: &str, message: String| ImportError {
            line,
            field: field.to_owned(),
            message,
        };
        let (key, value) = key_and_value(record);
        if std::mem::take(&mut first) && key == key_col {
            return Ok(()); // header
        }
        check_id(key).map_err(|m| err(key_col, m))?;
        let value = if table.has_value() {
            let list = parse_weighted_list(&value).map_err(|m| err(value_col, m))?;
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
        Ok(())
    })?;
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(t: RecallTable, text: &str) -> Result<Vec<(String, String)>, ImportError> {
        parse_table(t, text.as_bytes()).map_err(|e| match e {
            ParseFailure::Invalid(e) => e,
            ParseFailure::Read(e) => panic!("reading a slice failed: {e}"),
        })
    }

    #[test]
    fn csv_tsv_and_space_variants_parse() {
        let csv = "user_id,item_ids\nu1,\"17981042,19412678\"\nu2,7484728:1,16966098:0.5\n";
        assert_eq!(
            table(RecallTable::UserItem, csv).unwrap(),
            vec![
                ("u1".into(), "17981042:1,19412678:1".into()),
                ("u2".into(), "7484728:1,16966098:0.5".into())
            ]
        );
        let tsv = "i1\t7484728:1 16966098:0.5\r\n";
        assert_eq!(
            table(RecallTable::ItemItem, tsv).unwrap()[0].1,
            "7484728:1,16966098:0.5"
        );
        assert_eq!(
            table(RecallTable::ItemItem, "i1 7484728:1 16966098:0.5\n").unwrap(),
            vec![("i1".into(), "7484728:1,16966098:0.5".into())]
        );
        assert_eq!(
            table(RecallTable::FilterItem, "item_id\n42\n\n  \n43\n")
                .unwrap()
                .len(),
            2
        );
    }

    #[test]
    fn a_byte_order_mark_quotes_and_escapes_are_read_as_csv_writers_write_them() {
        // Spreadsheet exports start with a BOM, so the header is still recognised.
        let rows = table(RecallTable::UserItem, "\u{feff}user_id,item_ids\nu1,a\n").unwrap();
        assert_eq!(rows, vec![("u1".into(), "a:1".into())]);
        // A quoted list over two lines keeps its line number for the next record.
        let e = table(
            RecallTable::UserItem,
            "u1,\"a:1,\nb:2\"\nu2,\"c:\"\"x\"\"\"\n",
        )
        .unwrap_err();
        assert_eq!((e.line, e.field.as_str()), (3, "item_ids"), "{e}");
        assert!(
            e.message.contains("\"\\\"x\\\"\""),
            "the escaped quote: {e}"
        );
    }

    #[test]
    fn errors_name_the_line_and_field() {
        let e = table(RecallTable::UserTopic, "u1,sports:0.7\nu2,tech:high\n").unwrap_err();
        assert_eq!((e.line, e.field.as_str()), (2, "topic_ids"));
        assert!(
            e.to_string()
                .starts_with("line 2, topic_ids: weight \"high\""),
            "{e}"
        );
        let e = table(RecallTable::UserItem, "u1\n").unwrap_err();
        assert_eq!((e.line, e.message.as_str()), (1, "empty list"));
        let e = table(RecallTable::Custom, "\"\",a\n").unwrap_err();
        assert_eq!(e.field, "user_id");
        let e = parse_table(RecallTable::Custom, &b"u1,a\nu2,\xff\n"[..]).unwrap_err();
        assert!(
            matches!(&e, ParseFailure::Invalid(e) if e.line == 2 && e.message == "not UTF-8 text"),
            "{e}"
        );
    }

    #[test]
    fn later_rows_replace_earlier_ones() {
        let rows = table(RecallTable::Custom, "u1,a\nu1,b\n").unwrap();
        assert_eq!(rows, vec![("u1".into(), "b:1".into())]);
    }
}
