//! Export of labelled data back to the input layouts (SPEC §3) as a tar archive streamed to
//! the client: folder-per-label for classification; for detection and OCR each image with a
//! VOC XML beside it, or the images with one COCO `annotations.json`, or (detection) YOLO's
//! `images/`, `labels/` and `data.yaml`. Each indexes back to the same boxes.

use std::collections::{HashMap, HashSet};

use bytes::Bytes;
use futures_util::stream::{self, Stream};
use shared::InstanceType;
use shared::api::Image;
use tokio::sync::OwnedSemaphorePermit;

use crate::error::{ApiError, ApiResult};
use crate::indexer::MAX_IMAGE_BYTES;
use crate::storage::Store;
use crate::{coco, voc, yolo};

/// Exports running at once; each holds one image in memory at a time.
pub const MAX_CONCURRENT_EXPORTS: usize = 2;

/// An export layout (`?format=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Folder,
    Voc,
    Coco,
    Yolo,
}

impl Format {
    /// The layout named `name` for datasets of `kind`, or the message saying which exist.
    pub fn parse(name: Option<&str>, kind: InstanceType) -> Result<Self, String> {
        let (default, allowed): (_, &[_]) = match kind {
            InstanceType::ObjectDetection => (Self::Voc, &[Self::Voc, Self::Coco, Self::Yolo]),
            InstanceType::Ocr => (Self::Voc, &[Self::Voc, Self::Coco]),
            _ => (Self::Folder, &[Self::Folder]),
        };
        let Some(name) = name else {
            return Ok(default);
        };
        allowed
            .iter()
            .copied()
            .find(|f| f.name() == name)
            .ok_or_else(|| {
                let names: Vec<&str> = allowed.iter().map(|f| f.name()).collect();
                format!(
                    "{} datasets export as format={}",
                    kind.as_str(),
                    names.join(" | ")
                )
            })
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Folder => "folder",
            Self::Voc => "voc",
            Self::Coco => "coco",
            Self::Yolo => "yolo",
        }
    }
}

/// What an export stream carries from one chunk to the next.
struct Exporting {
    store: Store,
    kind: InstanceType,
    format: Format,
    /// YOLO class indices, labels in name order.
    classes: HashMap<String, usize>,
    images: std::vec::IntoIter<Image>,
    tar: Option<tar::Builder<Vec<u8>>>,
    /// Folder-per-label paths taken (two source folders may hold one file name).
    used: HashSet<String>,
    /// The export's place among [`MAX_CONCURRENT_EXPORTS`], given back when the stream ends.
    _permit: OwnedSemaphorePermit,
}

/// The labelled images as a tar archive, produced image by image as the client reads, so an
/// export of any size holds one image in memory. A storage error mid-way ends the stream with
/// an error (the client sees a truncated download, not a wrong archive).
pub fn archive(
    store: Store,
    kind: InstanceType,
    format: Format,
    images: Vec<Image>,
    permit: OwnedSemaphorePermit,
) -> impl Stream<Item = std::io::Result<Bytes>> + Send + 'static {
    let mut labels: Vec<&str> = images
        .iter()
        .flat_map(|i| i.annotation.boxes.iter().map(|b| b.label.as_str()))
        .collect();
    labels.sort_unstable();
    labels.dedup();
    let classes: HashMap<String, usize> = labels
        .iter()
        .enumerate()
        .map(|(i, l)| ((*l).to_owned(), i))
        .collect();
    // The files that describe every image go first (built from the list at hand; the
    // images follow one by one).
    let mut tar = tar::Builder::new(Vec::new());
    let first = match format {
        Format::Coco => Some((
            "annotations.json",
            coco::write(
                images.iter().map(|i| {
                    (
                        i.path.as_str(),
                        i.width,
                        i.height,
                        i.annotation.boxes.as_slice(),
                    )
                }),
                kind == InstanceType::Ocr,
            ),
        )),
        Format::Yolo => Some(("data.yaml", yolo::write_data_yaml(&labels))),
        _ => None,
    };
    let tar = match first.map(|(path, text)| append(&mut tar, path, text.as_bytes())) {
        Some(Err(_)) => None,
        _ => Some(tar),
    };
    let state = Exporting {
        store,
        kind,
        format,
        classes,
        images: images.into_iter(),
        tar,
        used: HashSet::new(),
        _permit: permit,
    };
    stream::unfold(state, |mut st| async move {
        // Out of the state while the image is added; a stream whose builder is gone has ended.
        let mut tar = st.tar.take()?;
        let Some(img) = st.images.next() else {
            // The end-of-archive blocks; the next poll finds no builder and ends.
            return Some((tar.into_inner().map(Bytes::from), st));
        };
        match add(&mut st, &mut tar, &img).await {
            Ok(()) => {
                let chunk = std::mem::take(tar.get_mut());
                st.tar = Some(tar);
                Some((Ok(Bytes::from(chunk)), st))
            }
            Err(e) => Some((Err(std::io::Error::other(e.message)), st)),
        }
    })
}

/// Appends one image (and its VOC or YOLO file) to the archive.
async fn add(st: &mut Exporting, tar: &mut tar::Builder<Vec<u8>>, img: &Image) -> ApiResult<()> {
    let bytes = st.store.read(&img.path, MAX_IMAGE_BYTES).await?;
    let file_name = img.path.rsplit('/').next().unwrap_or(&img.path);
    let stem = img
        .path
        .rsplit_once('.')
        .map_or(img.path.as_str(), |(s, _)| s);
    match st.format {
        Format::Voc => {
            append(tar, &img.path, &bytes)?;
            let xml = voc::write(
                file_name,
                img.width,
                img.height,
                &img.annotation.boxes,
                st.kind == InstanceType::Ocr,
            );
            append(tar, &format!("{stem}.xml"), xml.as_bytes())?;
        }
        Format::Coco => append(tar, &img.path, &bytes)?,
        Format::Yolo => {
            // Under `images/`; the label file where the import (and Ultralytics) looks: the
            // last `images` folder of the path replaced by `labels`.
            let path = format!("images/{}", img.path);
            let label = yolo::label_stems(&format!("images/{stem}"))
                .pop()
                .expect("a path under images/ has a labels/ twin");
            append(tar, &path, &bytes)?;
            let txt = yolo::write_labels(&img.annotation.boxes, &st.classes, img.width, img.height);
            append(tar, &format!("{label}.txt"), txt.as_bytes())?;
        }
        Format::Folder => {
            if let Some(label) = img.annotation.labels.first() {
                let mut path = format!("{label}/{file_name}");
                let mut n = 1;
                while !st.used.insert(path.clone()) {
                    n += 1;
                    path = format!("{label}/{n}-{file_name}");
                }
                append(tar, &path, &bytes)?;
            }
        }
    }
    Ok(())
}

fn append(tar: &mut tar::Builder<Vec<u8>>, path: &str, data: &[u8]) -> ApiResult<()> {
    let mut header = tar::Header::new_gnu();
    header.set_size(data.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    tar.append_data(&mut header, path, data)
        .map_err(ApiError::internal)
}
