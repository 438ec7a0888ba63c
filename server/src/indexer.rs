//! Dataset indexing (SPEC §3): lists a location, reads only image headers for sizes and the
//! box files (VOC `.xml` beside images or in the VOC layout, COCO `.json`, YOLO `.txt` with
//! `data.yaml` or `classes.txt`), and reports every file it leaves out and why. An image's
//! boxes come from the first of VOC, COCO, YOLO that describes it.

use std::collections::HashMap;

use futures_util::StreamExt;
use shared::InstanceType;
use shared::api::{Annotation, BoxAnnotation, SkippedFile};
use shared::names::LabelName;

use crate::storage::{ObjectInfo, StorageResult, Store};
use crate::{coco, voc, yolo};

/// Bytes read to find an image's size: enough for PNG and for JPEG with typical EXIF.
const HEADER_BYTES: u64 = 64 * 1024;
/// A JPEG whose EXIF block (thumbnails) is larger gets one longer read.
const LONG_HEADER_BYTES: u64 = 1024 * 1024;
/// Images larger than this are skipped (and never read whole).
pub const MAX_IMAGE_BYTES: u64 = 64 * 1024 * 1024;
/// Decoding an image this large would need gigabytes; skip it.
pub const MAX_PIXELS: u64 = 80_000_000;
/// Detection and OCR images must be larger than this on both sides (SPEC §3).
const MIN_BOX_IMAGE_SIDE: u32 = 30;
/// Concurrent header reads (matters for S3, where each read is a round trip: on loopback
/// s3s-fs answers a ranged GET in about 45 ms whatever the CPU load, so 16 at once gave 353
/// images/s and 64 give 800-1,000; bench/index.sh).
const CONCURRENCY: usize = 64;

/// An image's `(width, height)`, or why it is skipped.
type SizeResult = Result<(u32, u32), String>;

#[derive(Debug, Clone, PartialEq)]
pub struct IndexedImage {
    pub key: String,
    pub width: u32,
    pub height: u32,
    pub size: u64,
    /// What the source layout says (folder label or VOC boxes); empty if unlabelled.
    pub annotation: Annotation,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct IndexReport {
    pub images: Vec<IndexedImage>,
    pub skipped: Vec<SkippedFile>,
}

impl IndexReport {
    fn skip(&mut self, path: &str, reason: impl Into<String>) {
        self.skipped.push(SkippedFile {
            path: path.to_owned(),
            reason: reason.into(),
        });
    }
}

fn extension(key: &str) -> String {
    key.rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default()
}

fn is_image_ext(ext: &str) -> bool {
    matches!(ext, "jpg" | "jpeg" | "png")
}

/// Where the standard Pascal VOC layout keeps an image's annotation: `.../JPEGImages/x.jpg`
/// is described by `.../Annotations/x.xml` (the stem without `.xml` is returned).
fn voc_layout_xml(image_stem: &str) -> Option<String> {
    let (before, name) = image_stem.rsplit_once("JPEGImages/")?;
    (!name.contains('/')).then(|| format!("{before}Annotations/{name}"))
}

/// Indexes every object of `store` for an instance of type `kind`.
pub async fn index(store: &Store, kind: InstanceType) -> StorageResult<IndexReport> {
    let objects = store.list().await?;
    let mut report = IndexReport::default();
    let mut images = Vec::new();
    let mut xmls: HashMap<String, &ObjectInfo> = HashMap::new();
    let mut jsons = Vec::new();
    let mut txts: HashMap<String, &ObjectInfo> = HashMap::new();
    let mut class_files = Vec::new();
    const BOX_FILES: &str = "JPG, JPEG or PNG images and box files (VOC .xml, COCO .json, YOLO .txt with data.yaml or classes.txt)";
    for obj in &objects {
        let ext = extension(&obj.key);
        let file_name = obj.key.rsplit('/').next().unwrap_or(&obj.key);
        if is_image_ext(&ext) {
            images.push(obj);
        } else if !kind.uses_boxes() {
            report.skip(
                &obj.key,
                "unsupported file type; expected JPG, JPEG or PNG images",
            );
        } else if ext == "xml" {
            let stem = obj.key[..obj.key.len() - 4].to_owned();
            xmls.insert(stem, obj);
        } else if yolo::CLASS_FILES.contains(&file_name) {
            class_files.push(obj);
        } else if ext == "json" {
            jsons.push(obj);
        } else if ext == "txt" {
            txts.insert(obj.key[..obj.key.len() - 4].to_owned(), obj);
        } else {
            report.skip(
                &obj.key,
                format!("unsupported file type; expected {BOX_FILES}"),
            );
        }
    }
    let image_keys: std::collections::HashSet<&str> =
        images.iter().map(|o| o.key.as_str()).collect();
    let mut from_coco = read_coco_files(store, &jsons, &image_keys, &mut report).await;
    let class_names = read_class_files(store, &class_files, &mut report).await;

    // Read headers concurrently, keeping listing order in the result.
    // Owned items: a stream of borrowed ones trips the compiler's higher-ranked lifetime
    // check once the future must be `Send` for axum.
    let headers: Vec<(ObjectInfo, SizeResult)> =
        futures_util::stream::iter(images.into_iter().cloned())
            .map(|obj| async move {
                let size = image_size(store, &obj).await;
                (obj, size)
            })
            .buffered(CONCURRENCY)
            .collect()
            .await;

    let mut matched_files = std::collections::HashSet::new();
    for (obj, size) in headers {
        let (width, height) = match size {
            Ok(wh) => wh,
            Err(reason) => {
                report.skip(&obj.key, reason);
                continue;
            }
        };
        if kind.uses_boxes() && (width <= MIN_BOX_IMAGE_SIDE || height <= MIN_BOX_IMAGE_SIDE) {
            report.skip(
                &obj.key,
                format!("image is {width}x{height} px; detection and OCR images must be larger than {MIN_BOX_IMAGE_SIDE} px"),
            );
            continue;
        }
        let annotation = if kind.uses_boxes() {
            let stem = &obj.key[..obj.key.rfind('.').unwrap_or(obj.key.len())];
            let xml = xmls
                .get(stem)
                .or_else(|| voc_layout_xml(stem).and_then(|s| xmls.get(&s)));
            let coco_boxes = from_coco.remove(&obj.key);
            let txt = yolo::label_stems(stem)
                .into_iter()
                .find_map(|s| txts.get(&s).copied());
            // A box file the image's boxes do not come from is named in the report.
            let first = xml
                .map(|x| x.key.clone())
                .or_else(|| coco_boxes.as_ref().map(|(json, _)| json.clone()));
            if let (Some(first), Some(txt)) = (&first, txt) {
                matched_files.insert(txt.key.clone());
                report.skip(
                    &txt.key,
                    format!("ignored: the image's boxes come from {first}"),
                );
            }
            let read = if let Some(xml) = xml {
                matched_files.insert(xml.key.clone());
                Some((
                    xml.key.clone(),
                    read_boxes(store, xml, kind, width, height, &mut report).await,
                ))
            } else if let Some((json, boxes)) = coco_boxes {
                let found = boxes
                    .into_iter()
                    .map(|b| {
                        (
                            b.text.unwrap_or_else(|| b.name.clone()),
                            b.name,
                            [b.xmin, b.ymin, b.xmax, b.ymax],
                        )
                    })
                    .collect();
                Some((
                    json,
                    Ok(checked(found, kind, width, height, &obj.key, &mut report)),
                ))
            } else if let Some(txt) = txt {
                matched_files.insert(txt.key.clone());
                Some((
                    txt.key.clone(),
                    read_yolo(store, txt, kind, &class_names, (width, height), &mut report).await,
                ))
            } else {
                None
            };
            match read {
                Some((_, Ok(boxes))) => Annotation {
                    labels: Vec::new(),
                    boxes,
                },
                Some((file, Err(reason))) => {
                    report.skip(
                        &file,
                        format!("{reason}; the image is indexed as unlabelled"),
                    );
                    Annotation::default()
                }
                None => Annotation::default(),
            }
        } else {
            match folder_label(&obj.key) {
                Ok(None) => Annotation::default(),
                Ok(Some(label)) => Annotation {
                    labels: vec![label],
                    boxes: Vec::new(),
                },
                Err(reason) => {
                    report.skip(&obj.key, reason);
                    continue;
                }
            }
        };
        report.images.push(IndexedImage {
            key: obj.key.clone(),
            width,
            height,
            size: obj.size,
            annotation,
        });
    }
    let mut orphans: Vec<&&ObjectInfo> = xmls
        .values()
        .chain(txts.values())
        .filter(|x| !matched_files.contains(&x.key))
        .collect();
    orphans.sort_by(|a, b| a.key.cmp(&b.key));
    for file in orphans {
        let why = if file.key.ends_with(".txt") {
            "text file without an image of the same name to be its YOLO labels (beside it, or under images/ for labels/)"
        } else {
            "XML without an image of the same name (.jpg, .jpeg or .png)"
        };
        report.skip(&file.key, why);
    }
    let mut unused: Vec<(String, String)> = from_coco
        .into_iter()
        .map(|(image, (json, _))| (json, image))
        .collect();
    unused.sort();
    for (json, image) in unused {
        report.skip(
            &json,
            format!("boxes of {image} not indexed: the image was left out"),
        );
    }
    report.skipped.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(report)
}

/// Classification layout: `label/image` is labelled, `image` at the root is unlabelled.
fn folder_label(key: &str) -> Result<Option<String>, String> {
    let parts: Vec<&str> = key.split('/').collect();
    match parts.as_slice() {
        [_] => Ok(None),
        [dir, _] => LabelName::parse(*dir)
            .map(|l| Some(l.to_string()))
            .map_err(|e| {
                format!("folder {dir:?} is not a valid label: {e} (labels are ASCII only)")
            }),
        _ => Err("nested more than one folder deep; use <dataset>/<label>/<image>".to_owned()),
    }
}

/// Width and height from the image header, or why the image is skipped.
async fn image_size(store: &Store, obj: &ObjectInfo) -> SizeResult {
    if obj.size > MAX_IMAGE_BYTES {
        return Err(format!(
            "file is {} bytes; images may be at most {MAX_IMAGE_BYTES} bytes",
            obj.size
        ));
    }
    if obj.size == 0 {
        return Err("empty file".to_owned());
    }
    let read = |len| async move {
        store
            .read_prefix(&obj.key, len)
            .await
            .map_err(|e| format!("could not read: {e}"))
    };
    let mut head = read(HEADER_BYTES).await?;
    let kind = imagesize::image_type(&head)
        .map_err(|_| "corrupt or not an image (no JPEG or PNG header)".to_owned())?;
    if !matches!(kind, imagesize::ImageType::Jpeg | imagesize::ImageType::Png) {
        return Err(format!(
            "unsupported image format {kind:?}; use JPEG or PNG"
        ));
    }
    let mut size = imagesize::blob_size(&head);
    if size.is_err() && head.len() as u64 == HEADER_BYTES && obj.size > HEADER_BYTES {
        head = read(LONG_HEADER_BYTES).await?;
        size = imagesize::blob_size(&head);
    }
    let size = size.map_err(|_| "corrupt image: no readable size in its header".to_owned())?;
    let (w, h) = (size.width as u64, size.height as u64);
    if w == 0 || h == 0 {
        return Err("corrupt image: zero width or height".to_owned());
    }
    if w * h > MAX_PIXELS {
        return Err(format!(
            "image is {w}x{h} px; at most {MAX_PIXELS} pixels are accepted"
        ));
    }
    Ok((w as u32, h as u32))
}

/// Reads the VOC boxes of one image, checking each against the real image size. Bad boxes
/// are reported and left out; a bad file is an error.
async fn read_boxes(
    store: &Store,
    xml: &ObjectInfo,
    kind: InstanceType,
    width: u32,
    height: u32,
    report: &mut IndexReport,
) -> Result<Vec<BoxAnnotation>, String> {
    if xml.size > voc::MAX_XML_BYTES {
        return Err(format!(
            "XML is {} bytes; the limit is {}",
            xml.size,
            voc::MAX_XML_BYTES
        ));
    }
    let bytes = store
        .read(&xml.key, voc::MAX_XML_BYTES)
        .await
        .map_err(|e| format!("could not read: {e}"))?;
    let doc = voc::parse(&bytes)?;
    let found = doc
        .objects
        .into_iter()
        .map(|o| (o.name.clone(), o.name, [o.xmin, o.ymin, o.xmax, o.ymax]))
        .collect();
    Ok(checked(found, kind, width, height, &xml.key, report))
}

/// The boxes found for one image — `(text, label, [xmin, ymin, xmax, ymax])` each, the text
/// being what an OCR instance reads — checked against the image's real size; bad boxes are
/// reported on `file` and left out. OCR boxes are labelled `text`.
fn checked(
    found: Vec<(String, String, [f64; 4])>,
    kind: InstanceType,
    width: u32,
    height: u32,
    file: &str,
    report: &mut IndexReport,
) -> Vec<BoxAnnotation> {
    let mut boxes = Vec::with_capacity(found.len());
    for (i, (text, name, [xmin, ymin, xmax, ymax])) in found.into_iter().enumerate() {
        let (label, text) = match kind {
            InstanceType::Ocr => (shared::api::OCR_LABEL.to_owned(), Some(text)),
            _ => (name, None),
        };
        let shown = text.as_deref().unwrap_or(&label);
        if let Err(reason) = check_box(shown, xmin, ymin, xmax, ymax, width, height) {
            report.skip(
                file,
                format!("object {} ({shown:?}): {reason}; box left out", i + 1),
            );
            continue;
        }
        boxes.push(BoxAnnotation {
            label,
            xmin,
            ymin,
            xmax,
            ymax,
            text,
        });
    }
    boxes
}

/// Every COCO file's boxes by the image key they describe: `file_name` relative to the
/// file's folder, else to the folder above it (`annotations/` beside the images), else to
/// `images/` beside that. A JSON file that is not COCO is reported as unsupported, and so is
/// an entry whose image is not among `images`.
async fn read_coco_files(
    store: &Store,
    jsons: &[&ObjectInfo],
    images: &std::collections::HashSet<&str>,
    report: &mut IndexReport,
) -> HashMap<String, (String, Vec<coco::CocoBox>)> {
    let mut out = HashMap::new();
    for json in jsons {
        if json.size > coco::MAX_JSON_BYTES {
            report.skip(
                &json.key,
                format!(
                    "COCO file is {} bytes; the limit is {}",
                    json.size,
                    coco::MAX_JSON_BYTES
                ),
            );
            continue;
        }
        let doc = match store.read(&json.key, coco::MAX_JSON_BYTES).await {
            Ok(bytes) if !coco::looks_like_coco(&bytes[..bytes.len().min(4096)]) => {
                report.skip(&json.key, "unsupported file type: a JSON file that is not a COCO annotation file (no \"images\")");
                continue;
            }
            Ok(bytes) => coco::parse(&bytes),
            Err(e) => Err(format!("could not read: {e}")),
        };
        let doc = match doc {
            Ok(doc) => doc,
            Err(reason) => {
                report.skip(
                    &json.key,
                    format!("{reason}; its images are indexed as unlabelled"),
                );
                continue;
            }
        };
        for p in doc.problems {
            report.skip(&json.key, p);
        }
        let dir = json.key.rsplit_once('/').map_or("", |(d, _)| d);
        let parent = dir.rsplit_once('/').map_or("", |(p, _)| p);
        let join = |a: &str, b: &str| {
            if a.is_empty() {
                b.to_owned()
            } else {
                format!("{a}/{b}")
            }
        };
        for (file_name, boxes) in doc.images {
            let file_name = file_name.trim_start_matches("./").to_owned();
            let candidates = [
                join(dir, &file_name),
                join(parent, &file_name),
                join(&join(parent, "images"), &file_name),
            ];
            match candidates.into_iter().find(|k| images.contains(k.as_str())) {
                Some(key) if out.contains_key(&key) => report.skip(
                    &json.key,
                    format!("{key} is described by another COCO file too; the first one is used"),
                ),
                Some(key) => {
                    out.insert(key, (json.key.clone(), boxes));
                }
                None => report.skip(
                    &json.key,
                    format!("image {file_name:?} is not in the dataset; its boxes are not indexed"),
                ),
            }
        }
    }
    out
}

/// Class names of YOLO labels by the folder of their `data.yaml` / `classes.txt`.
async fn read_class_files(
    store: &Store,
    files: &[&ObjectInfo],
    report: &mut IndexReport,
) -> HashMap<String, Vec<String>> {
    let mut out = HashMap::new();
    for f in files {
        let (dir, name) = f.key.rsplit_once('/').unwrap_or(("", &f.key));
        let names = match store.read(&f.key, yolo::MAX_TXT_BYTES).await {
            Ok(bytes) => yolo::parse_classes(name, &bytes),
            Err(e) => Err(format!("could not read: {e}")),
        };
        match names {
            // data.yaml before classes.txt when a folder has both.
            Ok(names) => {
                if name.starts_with("data.") || !out.contains_key(dir) {
                    out.insert(dir.to_owned(), names);
                }
            }
            Err(reason) => report.skip(&f.key, format!("{reason}; its class names are not used")),
        }
    }
    out
}

/// The boxes of one YOLO label file, named by the class file nearest above it.
async fn read_yolo(
    store: &Store,
    txt: &ObjectInfo,
    kind: InstanceType,
    classes: &HashMap<String, Vec<String>>,
    (width, height): (u32, u32),
    report: &mut IndexReport,
) -> Result<Vec<BoxAnnotation>, String> {
    if kind == InstanceType::Ocr {
        return Err(
            "YOLO labels carry no text; OCR boxes are read from VOC or COCO files".to_owned(),
        );
    }
    let mut dir = txt.key.rsplit_once('/').map_or("", |(d, _)| d);
    let names = loop {
        if let Some(n) = classes.get(dir) {
            break n;
        }
        if dir.is_empty() {
            return Err(
                "no data.yaml or classes.txt in its folder or above names the classes".to_owned(),
            );
        }
        dir = dir.rsplit_once('/').map_or("", |(d, _)| d);
    };
    let bytes = store
        .read(&txt.key, yolo::MAX_TXT_BYTES)
        .await
        .map_err(|e| format!("could not read: {e}"))?;
    let (boxes, problems) = yolo::parse_labels(&bytes, names, width, height)?;
    for p in problems {
        report.skip(&txt.key, p);
    }
    let found = boxes
        .into_iter()
        .map(|b| (b.name.clone(), b.name, [b.xmin, b.ymin, b.xmax, b.ymax]))
        .collect();
    Ok(checked(found, kind, width, height, &txt.key, report))
}

/// Validates one box in pixels against the image size; the message says what is wrong.
pub fn check_box(
    name: &str,
    xmin: f64,
    ymin: f64,
    xmax: f64,
    ymax: f64,
    width: u32,
    height: u32,
) -> Result<(), String> {
    if name.trim().is_empty() {
        return Err("empty <name>".to_owned());
    }
    if ![xmin, ymin, xmax, ymax].iter().all(|v| v.is_finite()) {
        return Err("coordinates must be finite numbers".to_owned());
    }
    if xmax <= xmin || ymax <= ymin {
        return Err(format!(
            "box has zero area (xmin {xmin}, xmax {xmax}, ymin {ymin}, ymax {ymax})"
        ));
    }
    if xmin < 0.0 || ymin < 0.0 || xmax > f64::from(width) || ymax > f64::from(height) {
        return Err(format!(
            "box ({xmin},{ymin})-({xmax},{ymax}) lies outside the {width}x{height} image"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_voc_layout_pairs_jpegimages_with_annotations() {
        assert_eq!(
            voc_layout_xml("bccd/JPEGImages/BloodImage_00001").as_deref(),
            Some("bccd/Annotations/BloodImage_00001")
        );
        assert_eq!(
            voc_layout_xml("JPEGImages/a").as_deref(),
            Some("Annotations/a")
        );
        assert_eq!(voc_layout_xml("photos/a"), None);
        assert_eq!(voc_layout_xml("JPEGImages/sub/a"), None);
    }

    #[test]
    fn classification_folders_give_labels() {
        assert_eq!(folder_label("a.jpg"), Ok(None));
        assert_eq!(folder_label("cat/a.jpg"), Ok(Some("cat".to_owned())));
        assert!(folder_label("猫/a.jpg").unwrap_err().contains("ASCII"));
        assert!(folder_label("a/b/c.jpg").unwrap_err().contains("nested"));
    }

    #[test]
    fn boxes_must_have_area_and_fit() {
        assert!(check_box("dog", 0.0, 0.0, 10.0, 10.0, 64, 64).is_ok());
        assert!(
            check_box("dog", 5.0, 0.0, 5.0, 10.0, 64, 64)
                .unwrap_err()
                .contains("zero area")
        );
        assert!(
            check_box("dog", 0.0, 0.0, 65.0, 10.0, 64, 64)
                .unwrap_err()
                .contains("outside")
        );
        assert!(check_box(" ", 0.0, 0.0, 1.0, 1.0, 64, 64).is_err());
    }
}
