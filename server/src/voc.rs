//! Pascal VOC annotation files (SPEC §3): parsing with hostile-input limits, and writing for
//! export. Parsing never expands entities: a document with a DTD is refused outright.

use std::fmt::Write as _;

use shared::api::BoxAnnotation;

/// The largest XML file read; real VOC files are a few KB.
pub const MAX_XML_BYTES: u64 = 1024 * 1024;
/// VOC nests four levels deep; anything far deeper is hostile.
const MAX_DEPTH: usize = 32;
const MAX_NODES: u32 = 200_000;

#[derive(Debug, Clone, PartialEq)]
pub struct VocObject {
    pub name: String,
    pub xmin: f64,
    pub ymin: f64,
    pub xmax: f64,
    pub ymax: f64,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct VocDoc {
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub objects: Vec<VocObject>,
}

/// Parses a VOC document. The error says what is wrong, for the skipped-file report.
pub fn parse(bytes: &[u8]) -> Result<VocDoc, String> {
    if bytes.len() as u64 > MAX_XML_BYTES {
        return Err(format!(
            "XML is {} bytes; the limit is {MAX_XML_BYTES}",
            bytes.len()
        ));
    }
    let text = std::str::from_utf8(bytes).map_err(|_| "XML is not valid UTF-8".to_owned())?;
    if text.contains("<!DOCTYPE") || text.contains("<!ENTITY") {
        return Err("XML with a DOCTYPE or entity declarations is refused".to_owned());
    }
    let depth = max_depth(text);
    if depth > MAX_DEPTH {
        return Err(format!(
            "XML nests {depth} levels deep; VOC needs 4 (limit {MAX_DEPTH})"
        ));
    }
    let opts = roxmltree::ParsingOptions {
        allow_dtd: false,
        nodes_limit: MAX_NODES,
    };
    let doc = roxmltree::Document::parse_with_options(text, opts)
        .map_err(|e| format!("invalid XML: {e}"))?;
    let root = doc.root_element();
    if root.tag_name().name() != "annotation" {
        return Err(format!(
            "root element is <{}>, expected <annotation>",
            root.tag_name().name()
        ));
    }
    let child_text = |n: roxmltree::Node<'_, '_>, tag: &str| {
        n.children()
            .find(|c| c.has_tag_name(tag))
            .and_then(|c| c.text())
            .map(str::trim)
            .map(str::to_owned)
    };
    let size = root.children().find(|c| c.has_tag_name("size"));
    let dim = |tag| {
        size.and_then(|s| child_text(s, tag))
            .and_then(|v| v.parse::<f64>().ok())
            .map(|v| v as u32)
    };
    let mut out = VocDoc {
        width: dim("width"),
        height: dim("height"),
        objects: Vec::new(),
    };
    for (i, obj) in root
        .children()
        .filter(|c| c.has_tag_name("object"))
        .enumerate()
    {
        let n = i + 1;
        let name = child_text(obj, "name").unwrap_or_default();
        let bb = obj
            .children()
            .find(|c| c.has_tag_name("bndbox"))
            .ok_or_else(|| format!("object {n} has no <bndbox>"))?;
        let coord = |tag: &str| -> Result<f64, String> {
            let v =
                child_text(bb, tag).ok_or_else(|| format!("object {n}: <bndbox> lacks <{tag}>"))?;
            v.parse::<f64>()
                .ok()
                .filter(|x| x.is_finite())
                .ok_or_else(|| format!("object {n}: <{tag}> is {v:?}, not a number"))
        };
        out.objects.push(VocObject {
            name,
            xmin: coord("xmin")?,
            ymin: coord("ymin")?,
            xmax: coord("xmax")?,
            ymax: coord("ymax")?,
        });
    }
    Ok(out)
}

/// Element nesting depth by a plain scan, checked before building a tree.
fn max_depth(text: &str) -> usize {
    let bytes = text.as_bytes();
    let (mut depth, mut max) = (0usize, 0usize);
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'<' {
            match bytes.get(i + 1) {
                Some(b'/') => depth = depth.saturating_sub(1),
                Some(b'?' | b'!') => {}
                Some(_) => {
                    let end = text[i..].find('>').map_or(bytes.len(), |e| i + e);
                    if bytes.get(end.wrapping_sub(1)) != Some(&b'/') {
                        depth += 1;
                        max = max.max(depth);
                    }
                    i = end;
                }
                None => {}
            }
        }
        i += 1;
    }
    max
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Writes a VOC document. For OCR, each box's `<name>` is its transcription.
pub fn write(
    filename: &str,
    width: i64,
    height: i64,
    boxes: &[BoxAnnotation],
    ocr: bool,
) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        "<annotation>\n  <filename>{}</filename>\n  <size><width>{width}</width><height>{height}</height><depth>3</depth></size>\n  <segmented>0</segmented>\n",
        escape(filename)
    );
    for b in boxes {
        let name = if ocr {
            b.text.as_deref().unwrap_or(&b.label)
        } else {
            &b.label
        };
        let _ = write!(
            s,
            "  <object>\n    <name>{}</name>\n    <truncated>0</truncated>\n    <difficult>0</difficult>\n    <bndbox><xmin>{}</xmin><ymin>{}</ymin><xmax>{}</xmax><ymax>{}</ymax></bndbox>\n  </object>\n",
            escape(name),
            b.xmin,
            b.ymin,
            b.xmax,
            b.ymax
        );
    }
    s.push_str("</annotation>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "<annotation><size><width>640</width><height>480</height><depth>3</depth></size>\
        <object><name>dog</name><bndbox><xmin>10</xmin><xmax>100</xmax><ymin>20</ymin><ymax>200</ymax></bndbox>\
        <truncated>0</truncated><difficult>0</difficult></object><segmented>0</segmented></annotation>";

    #[test]
    fn parses_the_spec_layout() {
        let d = parse(SAMPLE.as_bytes()).unwrap();
        assert_eq!((d.width, d.height), (Some(640), Some(480)));
        assert_eq!(
            d.objects,
            vec![VocObject {
                name: "dog".into(),
                xmin: 10.0,
                ymin: 20.0,
                xmax: 100.0,
                ymax: 200.0
            }]
        );
    }

    #[test]
    fn entity_declarations_are_refused_without_expansion() {
        let bomb = "<?xml version=\"1.0\"?><!DOCTYPE lolz [<!ENTITY lol \"lol\"><!ENTITY lol2 \"&lol;&lol;&lol;\">]>\
            <annotation><object><name>&lol2;</name></object></annotation>";
        let err = parse(bomb.as_bytes()).unwrap_err();
        assert!(err.contains("DOCTYPE"), "{err}");
    }

    #[test]
    fn deep_nesting_and_huge_files_are_refused() {
        let deep = format!(
            "<annotation>{}{}</annotation>",
            "<a>".repeat(100),
            "</a>".repeat(100)
        );
        assert!(parse(deep.as_bytes()).unwrap_err().contains("levels deep"));
        let huge = vec![b' '; (MAX_XML_BYTES + 1) as usize];
        assert!(parse(&huge).unwrap_err().contains("limit"));
    }

    #[test]
    fn bad_coordinates_name_the_object() {
        let bad = SAMPLE.replace("<xmin>10</xmin>", "<xmin>ten</xmin>");
        assert_eq!(
            parse(bad.as_bytes()).unwrap_err(),
            "object 1: <xmin> is \"ten\", not a number"
        );
    }

    #[test]
    fn written_documents_parse_back_with_unicode_text() {
        let boxes = vec![BoxAnnotation {
            label: "text".into(),
            xmin: 1.0,
            ymin: 2.0,
            xmax: 30.0,
            ymax: 40.0,
            text: Some("京A·12345 <&>".into()),
        }];
        let xml = write("a.jpg", 64, 48, &boxes, true);
        let d = parse(xml.as_bytes()).unwrap();
        assert_eq!(d.objects[0].name, "京A·12345 <&>");
        assert_eq!(d.width, Some(64));
    }
}
