//! YOLO labels (Ultralytics / Darknet): one `.txt` per image, a line `class cx cy w h` per
//! box, all four relative to the image's size; class names from `data.yaml` (`names:` as a
//! list or an index map) or `classes.txt` (one per line). A label file lies beside its image
//! (`a.jpg`, `a.txt`) or under `labels/` where the image is under `images/`. Reading them for
//! indexing, writing them for export. Imported corners are rounded to 1/1000 pixel, so a box
//! exported and read back comes back exactly as it was (to that precision).

use std::collections::HashMap;
use std::fmt::Write as _;

use shared::api::BoxAnnotation;

/// The largest label or class-name file read.
pub const MAX_TXT_BYTES: u64 = 1024 * 1024;
/// Files that name the classes rather than label an image.
pub const CLASS_FILES: [&str; 3] = ["data.yaml", "data.yml", "classes.txt"];

/// One box in pixels with its class name.
#[derive(Debug, Clone, PartialEq)]
pub struct YoloBox {
    pub name: String,
    pub xmin: f64,
    pub ymin: f64,
    pub xmax: f64,
    pub ymax: f64,
}

/// Where an image's label file may be (stems, without `.txt`): beside it, then the
/// Ultralytics layout (`…/images/…/a` → `…/labels/…/a`, the last `images` folder).
pub fn label_stems(image_stem: &str) -> Vec<String> {
    let mut out = vec![image_stem.to_owned()];
    let parts: Vec<&str> = image_stem.split('/').collect();
    if let Some(i) = parts[..parts.len() - 1]
        .iter()
        .rposition(|p| *p == "images")
    {
        let mut p = parts.clone();
        p[i] = "labels";
        out.push(p.join("/"));
    }
    out
}

/// Class names from a `data.yaml` (`names: [a, b]`, `names: {0: a}`, or the same as an
/// indented block of `- a` or `0: a` lines) or a `classes.txt`.
pub fn parse_classes(file_name: &str, bytes: &[u8]) -> Result<Vec<String>, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "not valid UTF-8".to_owned())?;
    if file_name.ends_with(".txt") {
        return Ok(text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect());
    }
    let mut lines = text.lines();
    let rest = lines
        .by_ref()
        .find_map(|l| l.strip_prefix("names:"))
        .ok_or("no `names:` entry")?
        .trim();
    let entries: Vec<String> = if rest.is_empty() {
        lines
            .take_while(|l| l.starts_with([' ', '\t']) || l.trim().is_empty())
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|l| l.strip_prefix("- ").unwrap_or(l).to_owned())
            .collect()
    } else {
        let inner = rest
            .strip_prefix('[')
            .and_then(|r| r.strip_suffix(']'))
            .or_else(|| rest.strip_prefix('{').and_then(|r| r.strip_suffix('}')))
            .ok_or("`names:` is neither a list nor a map")?;
        split_flow(inner)
    };
    let mut indexed: Vec<(usize, String)> = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        // `0: name` in a map; a list item is just the name (which may hold a colon if quoted).
        let (idx, name) = match e.split_once(':') {
            Some((k, v)) if k.trim().parse::<usize>().is_ok() => (k.trim().parse().unwrap(), v),
            _ => (i, e.as_str()),
        };
        indexed.push((idx, unquote(name.trim()).to_owned()));
    }
    indexed.sort_by_key(|(i, _)| *i);
    if indexed.iter().enumerate().any(|(i, (idx, _))| i != *idx) {
        return Err("class indices must run 0, 1, 2, … without gaps".to_owned());
    }
    Ok(indexed.into_iter().map(|(_, n)| n).collect())
}

/// A flow sequence's items, split on commas outside quotes.
fn split_flow(s: &str) -> Vec<String> {
    let (mut out, mut cur, mut quote) = (Vec::new(), String::new(), None);
    for ch in s.chars() {
        match (quote, ch) {
            (None, '\'' | '"') => {
                quote = Some(ch);
                cur.push(ch);
            }
            (Some(q), c) if c == q => {
                quote = None;
                cur.push(ch);
            }
            (None, ',') => out.push(std::mem::take(&mut cur).trim().to_owned()),
            _ => cur.push(ch),
        }
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().to_owned());
    }
    out
}

fn unquote(s: &str) -> &str {
    for q in ['\'', '"'] {
        if let Some(inner) = s.strip_prefix(q).and_then(|r| r.strip_suffix(q)) {
            return inner;
        }
    }
    s
}

/// Rounds to 1/1000 pixel (see the module's note).
fn milli(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

/// The boxes of one label file for an image of `width × height`; lines that are not boxes
/// are reported (with their line number) and left out.
pub fn parse_labels(
    bytes: &[u8],
    names: &[String],
    width: u32,
    height: u32,
) -> Result<(Vec<YoloBox>, Vec<String>), String> {
    if bytes.len() as u64 > MAX_TXT_BYTES {
        return Err(format!(
            "label file is {} bytes; the limit is {MAX_TXT_BYTES}",
            bytes.len()
        ));
    }
    let text = std::str::from_utf8(bytes).map_err(|_| "not valid UTF-8".to_owned())?;
    let (w, h) = (f64::from(width), f64::from(height));
    let (mut boxes, mut problems) = (Vec::new(), Vec::new());
    for (n, line) in text.lines().enumerate() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.is_empty() {
            continue;
        }
        let parsed = (|| {
            let [class, cx, cy, bw, bh] = f[..] else {
                return Err(format!("{} fields; a box is `class cx cy w h`", f.len()));
            };
            let class: usize = class
                .parse()
                .map_err(|_| format!("class {class:?} is not a class index"))?;
            let name = names.get(class).ok_or_else(|| {
                format!("class {class} has no name ({} classes named)", names.len())
            })?;
            let v: Vec<f64> = [cx, cy, bw, bh]
                .iter()
                .map(|s| s.parse::<f64>().ok().filter(|v| v.is_finite()))
                .collect::<Option<_>>()
                .ok_or("coordinates must be numbers")?;
            let [cx, cy, bw, bh] = v[..] else {
                unreachable!()
            };
            Ok(YoloBox {
                name: name.clone(),
                xmin: milli((cx - bw / 2.0) * w),
                ymin: milli((cy - bh / 2.0) * h),
                xmax: milli((cx + bw / 2.0) * w),
                ymax: milli((cy + bh / 2.0) * h),
            })
        })();
        match parsed {
            Ok(b) => boxes.push(b),
            Err(reason) => problems.push(format!("line {}: {reason}; left out", n + 1)),
        }
    }
    Ok((boxes, problems))
}

/// One image's label file; `classes` maps each label to its index.
pub fn write_labels(
    boxes: &[BoxAnnotation],
    classes: &HashMap<String, usize>,
    width: i64,
    height: i64,
) -> String {
    let (w, h) = (width as f64, height as f64);
    let mut out = String::new();
    for b in boxes {
        let _ = writeln!(
            out,
            "{} {} {} {} {}",
            classes[b.label.as_str()],
            (b.xmin + b.xmax) / 2.0 / w,
            (b.ymin + b.ymax) / 2.0 / h,
            (b.xmax - b.xmin) / w,
            (b.ymax - b.ymin) / h
        );
    }
    out
}

/// A `data.yaml` naming the classes in index order.
pub fn write_data_yaml(names: &[&str]) -> String {
    let mut out = format!("nc: {}\nnames:\n", names.len());
    for (i, n) in names.iter().enumerate() {
        let _ = writeln!(
            out,
            "  {i}: {}",
            serde_json::to_string(n).expect("a string")
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_names_come_from_either_file_in_any_yaml_form() {
        let want = vec!["dog".to_owned(), "red car".to_owned(), "a, b".to_owned()];
        for yaml in [
            "path: x\nnames: [dog, 'red car', \"a, b\"]\n",
            "names: {0: dog, 1: red car, 2: 'a, b'}\n",
            "train: images\nnames:\n  - dog\n  - red car\n  - \"a, b\"\nval: x\n",
            "names:\n  2: \"a, b\"\n  0: dog\n  1: red car\n",
        ] {
            assert_eq!(
                parse_classes("data.yaml", yaml.as_bytes()).unwrap(),
                want,
                "{yaml}"
            );
        }
        assert_eq!(
            parse_classes("classes.txt", b"dog\nred car\n\na, b\n").unwrap(),
            want
        );
        let written = write_data_yaml(&["dog", "red car", "a, b"]);
        assert_eq!(
            parse_classes("data.yaml", written.as_bytes()).unwrap(),
            want
        );
        assert!(parse_classes("data.yaml", b"nc: 2\n").is_err());
        assert!(parse_classes("data.yaml", b"names: {0: a, 2: b}\n").is_err());
    }

    #[test]
    fn label_files_are_found_beside_or_under_labels() {
        assert_eq!(label_stems("a"), ["a"]);
        assert_eq!(
            label_stems("set/images/train/a"),
            ["set/images/train/a", "set/labels/train/a"]
        );
        assert_eq!(label_stems("images/a"), ["images/a", "labels/a"]);
        assert_eq!(label_stems("x/images"), ["x/images"], "a file named images");
    }

    #[test]
    fn boxes_convert_to_pixels_and_back_exactly() {
        let names = vec!["dog".to_owned(), "cat".to_owned()];
        let boxes = vec![
            BoxAnnotation {
                label: "cat".into(),
                xmin: 1.0,
                ymin: 2.5,
                xmax: 30.125,
                ymax: 40.0,
                text: None,
            },
            BoxAnnotation {
                label: "dog".into(),
                xmin: 0.0,
                ymin: 0.0,
                xmax: 99.999,
                ymax: 75.0,
                text: None,
            },
        ];
        let classes = HashMap::from([("dog".to_owned(), 0), ("cat".to_owned(), 1)]);
        let txt = write_labels(&boxes, &classes, 100, 75);
        assert!(txt.starts_with("1 0.15"), "{txt}");
        let (back, problems) = parse_labels(txt.as_bytes(), &names, 100, 75).unwrap();
        assert!(problems.is_empty());
        let back: Vec<BoxAnnotation> = back
            .into_iter()
            .map(|b| BoxAnnotation {
                label: b.name,
                xmin: b.xmin,
                ymin: b.ymin,
                xmax: b.xmax,
                ymax: b.ymax,
                text: None,
            })
            .collect();
        assert_eq!(back, boxes);
    }

    #[test]
    fn bad_lines_are_reported_with_their_number() {
        let names = vec!["dog".to_owned()];
        let (boxes, problems) = parse_labels(
            b"0 0.5 0.5 0.2 0.2\n\n3 0.5 0.5 0.1 0.1\n0 x 0.5 0.1 0.1\n0 0.5\n",
            &names,
            10,
            10,
        )
        .unwrap();
        assert_eq!(boxes.len(), 1);
        assert_eq!((boxes[0].xmin, boxes[0].xmax), (4.0, 6.0));
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(
            problems[0].starts_with("line 3: class 3 has no name"),
            "{problems:?}"
        );
        assert!(
            problems[1].starts_with("line 4: coordinates"),
            "{problems:?}"
        );
        assert!(problems[2].starts_with("line 5: 2 fields"), "{problems:?}");
    }
}
