//! COCO annotation files (`instances_*.json`: `images`, `annotations` with `bbox` as
//! `[x, y, width, height]` in pixels, `categories`): reading one for indexing and writing one
//! for export. OCR texts travel in each annotation's `text` (COCO-Text's `utf8_string` is read
//! too).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use shared::api::BoxAnnotation;

/// The largest COCO file read (it holds every image's boxes; COCO 2017 val is 25 MB).
pub const MAX_JSON_BYTES: u64 = 64 * 1024 * 1024;

#[derive(Debug, Deserialize, Serialize)]
struct File {
    images: Vec<ImageEntry>,
    #[serde(default)]
    annotations: Vec<AnnotationEntry>,
    #[serde(default)]
    categories: Vec<Category>,
}

#[derive(Debug, Deserialize, Serialize)]
struct ImageEntry {
    id: i64,
    file_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    width: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    height: Option<i64>,
}

#[derive(Debug, Deserialize, Serialize)]
struct AnnotationEntry {
    id: i64,
    image_id: i64,
    category_id: i64,
    bbox: [f64; 4],
    #[serde(default)]
    area: f64,
    #[serde(default)]
    iscrowd: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    text: Option<String>,
    #[serde(default, skip_serializing)]
    utf8_string: Option<String>,
}

#[derive(Debug, Deserialize, Serialize)]
struct Category {
    id: i64,
    name: String,
}

/// One box of a COCO file, in pixels, with its category's name and (OCR) text.
#[derive(Debug, Clone, PartialEq)]
pub struct CocoBox {
    pub name: String,
    pub text: Option<String>,
    pub xmin: f64,
    pub ymin: f64,
    pub xmax: f64,
    pub ymax: f64,
}

/// What a COCO file says: each image's `file_name` with its boxes, and what was left out.
#[derive(Debug, Default)]
pub struct CocoDoc {
    pub images: Vec<(String, Vec<CocoBox>)>,
    /// Annotations left out, each with the reason.
    pub problems: Vec<String>,
}

/// Whether a JSON file looks like a COCO file (its first bytes name `images` or
/// `annotations`), so other JSON files in a dataset folder are reported as unsupported.
pub fn looks_like_coco(prefix: &[u8]) -> bool {
    let text = String::from_utf8_lossy(prefix);
    text.trim_start().starts_with('{')
        && (text.contains("\"images\"") || text.contains("\"annotations\""))
}

/// Parses a COCO file; the error says what is wrong, for the skipped-file report.
pub fn parse(bytes: &[u8]) -> Result<CocoDoc, String> {
    if bytes.len() as u64 > MAX_JSON_BYTES {
        return Err(format!(
            "COCO file is {} bytes; the limit is {MAX_JSON_BYTES}",
            bytes.len()
        ));
    }
    let file: File =
        serde_json::from_slice(bytes).map_err(|e| format!("not a COCO annotation file: {e}"))?;
    let names: HashMap<i64, &str> = file
        .categories
        .iter()
        .map(|c| (c.id, c.name.as_str()))
        .collect();
    let mut doc = CocoDoc::default();
    let mut at: HashMap<i64, usize> = HashMap::new();
    for img in &file.images {
        if at.insert(img.id, doc.images.len()).is_some() {
            return Err(format!("image id {} appears twice", img.id));
        }
        doc.images.push((img.file_name.clone(), Vec::new()));
    }
    for a in file.annotations {
        let Some(&i) = at.get(&a.image_id) else {
            doc.problems.push(format!(
                "annotation {}: no image with id {}; left out",
                a.id, a.image_id
            ));
            continue;
        };
        let Some(name) = names.get(&a.category_id) else {
            doc.problems.push(format!(
                "annotation {}: no category with id {}; left out",
                a.id, a.category_id
            ));
            continue;
        };
        let [x, y, w, h] = a.bbox;
        doc.images[i].1.push(CocoBox {
            name: (*name).to_owned(),
            text: a.text.or(a.utf8_string),
            xmin: x,
            ymin: y,
            xmax: x + w,
            ymax: y + h,
        });
    }
    Ok(doc)
}

/// A COCO file for exported images: `(file_name, width, height, boxes)` each, categories
/// numbered from 1 in name order; OCR boxes carry their `text` (category `text`).
pub fn write<'a>(
    images: impl IntoIterator<Item = (&'a str, i64, i64, &'a [BoxAnnotation])>,
    ocr: bool,
) -> String {
    let images: Vec<_> = images.into_iter().collect();
    let mut labels: Vec<&str> = images
        .iter()
        .flat_map(|(_, _, _, boxes)| boxes.iter().map(|b| b.label.as_str()))
        .collect();
    labels.sort_unstable();
    labels.dedup();
    let ids: HashMap<&str, i64> = labels.iter().zip(1..).map(|(l, i)| (*l, i)).collect();
    let mut file = File {
        images: Vec::with_capacity(images.len()),
        annotations: Vec::new(),
        categories: labels
            .iter()
            .map(|l| Category {
                id: ids[l],
                name: (*l).to_owned(),
            })
            .collect(),
    };
    for (i, (name, width, height, boxes)) in images.iter().enumerate() {
        let image_id = i as i64 + 1;
        file.images.push(ImageEntry {
            id: image_id,
            file_name: (*name).to_owned(),
            width: Some(*width),
            height: Some(*height),
        });
        for b in boxes.iter() {
            let (w, h) = (b.xmax - b.xmin, b.ymax - b.ymin);
            file.annotations.push(AnnotationEntry {
                id: file.annotations.len() as i64 + 1,
                image_id,
                category_id: ids[b.label.as_str()],
                bbox: [b.xmin, b.ymin, w, h],
                area: w * h,
                iscrowd: 0,
                text: if ocr { b.text.clone() } else { None },
                utf8_string: None,
            });
        }
    }
    serde_json::to_string(&file).expect("a COCO file serialises")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(label: &str, text: Option<&str>, c: [f64; 4]) -> BoxAnnotation {
        BoxAnnotation {
            label: label.to_owned(),
            xmin: c[0],
            ymin: c[1],
            xmax: c[2],
            ymax: c[3],
            text: text.map(str::to_owned),
        }
    }

    #[test]
    fn a_written_file_reads_back_to_the_same_boxes() {
        let boxes = [
            b("dog", None, [1.0, 2.5, 30.0, 40.25]),
            b("cat", None, [0.0, 0.0, 64.0, 48.0]),
        ];
        let json = write(
            [("a/x.jpg", 64, 48, &boxes[..]), ("y.png", 10, 10, &[][..])],
            false,
        );
        assert!(looks_like_coco(json.as_bytes()));
        let doc = parse(json.as_bytes()).unwrap();
        assert!(doc.problems.is_empty());
        assert_eq!(doc.images.len(), 2);
        assert_eq!(doc.images[0].0, "a/x.jpg");
        let back: Vec<BoxAnnotation> = doc.images[0]
            .1
            .iter()
            .map(|c| b(&c.name, None, [c.xmin, c.ymin, c.xmax, c.ymax]))
            .collect();
        assert_eq!(back, boxes);
        assert!(doc.images[1].1.is_empty(), "an image without boxes stays");
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(
            v["categories"][0]["name"], "cat",
            "categories in name order"
        );
        assert_eq!(
            v["annotations"][0]["bbox"],
            serde_json::json!([1.0, 2.5, 29.0, 37.75])
        );
    }

    #[test]
    fn ocr_texts_travel_and_coco_text_strings_are_read() {
        let json = write(
            [(
                "p.jpg",
                100,
                50,
                &[b("text", Some("KX-4821"), [5.0, 5.0, 60.0, 20.0])][..],
            )],
            true,
        );
        let doc = parse(json.as_bytes()).unwrap();
        assert_eq!(doc.images[0].1[0].text.as_deref(), Some("KX-4821"));
        let coco_text = br#"{"images":[{"id":7,"file_name":"s.jpg"}],"categories":[{"id":1,"name":"text"}],
            "annotations":[{"id":1,"image_id":7,"category_id":1,"bbox":[1,2,3,4],"utf8_string":"EXIT"}]}"#;
        let doc = parse(coco_text).unwrap();
        assert_eq!(doc.images[0].1[0].text.as_deref(), Some("EXIT"));
        assert_eq!(
            (doc.images[0].1[0].xmax, doc.images[0].1[0].ymax),
            (4.0, 6.0)
        );
    }

    #[test]
    fn broken_files_and_dangling_ids_are_reported() {
        assert!(
            parse(b"{\"images\": 3}")
                .unwrap_err()
                .contains("not a COCO")
        );
        assert!(parse(b"[1,2]").is_err());
        let dup = br#"{"images":[{"id":1,"file_name":"a.jpg"},{"id":1,"file_name":"b.jpg"}]}"#;
        assert!(parse(dup).unwrap_err().contains("appears twice"));
        let dangling =
            br#"{"images":[{"id":1,"file_name":"a.jpg"}],"categories":[{"id":1,"name":"x"}],
            "annotations":[{"id":5,"image_id":2,"category_id":1,"bbox":[0,0,1,1]},
                           {"id":6,"image_id":1,"category_id":9,"bbox":[0,0,1,1]}]}"#;
        let doc = parse(dangling).unwrap();
        assert!(doc.images[0].1.is_empty());
        assert_eq!(doc.problems.len(), 2);
        assert!(
            doc.problems[0].contains("no image with id 2"),
            "{:?}",
            doc.problems
        );
        assert!(
            doc.problems[1].contains("no category with id 9"),
            "{:?}",
            doc.problems
        );
        assert!(!looks_like_coco(b"{\"name\": \"package.json\"}"));
    }
}
