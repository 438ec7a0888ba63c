//! Export of labelled data back to the input layouts (SPEC §3): folder-per-label for
//! classification, image + VOC XML for detection and OCR, as a tar archive.

use shared::InstanceType;
use shared::api::Image;

use crate::error::{ApiError, ApiResult};
use crate::indexer::MAX_IMAGE_BYTES;
use crate::storage::Store;
use crate::voc;

/// An export is built in memory; larger datasets should be read from storage directly.
pub const MAX_EXPORT_BYTES: i64 = 2 * 1024 * 1024 * 1024;

pub async fn archive(store: &Store, kind: InstanceType, images: &[Image]) -> ApiResult<Vec<u8>> {
    let total: i64 = images.iter().map(|i| i.size_bytes).sum();
    if total > MAX_EXPORT_BYTES {
        return Err(ApiError::too_large(format!(
            "the labelled images total {total} bytes; exports are limited to {MAX_EXPORT_BYTES} bytes"
        )));
    }
    let mut used = std::collections::HashSet::new();
    let mut tar = tar::Builder::new(Vec::with_capacity(
        usize::try_from(total).unwrap_or(0) + 4096,
    ));
    for img in images {
        let bytes = store.read(&img.path, MAX_IMAGE_BYTES).await?;
        let file_name = img.path.rsplit('/').next().unwrap_or(&img.path);
        if kind.uses_boxes() {
            append(&mut tar, &img.path, &bytes)?;
            let stem = img
                .path
                .rsplit_once('.')
                .map_or(img.path.as_str(), |(s, _)| s);
            let xml = voc::write(
                file_name,
                img.width,
                img.height,
                &img.annotation.boxes,
                kind == InstanceType::Ocr,
            );
            append(&mut tar, &format!("{stem}.xml"), xml.as_bytes())?;
        } else if let Some(label) = img.annotation.labels.first() {
            // Two source folders may hold the same file name under one label now.
            let mut path = format!("{label}/{file_name}");
            let mut n = 1;
            while !used.insert(path.clone()) {
                n += 1;
                path = format!("{label}/{n}-{file_name}");
            }
            append(&mut tar, &path, &bytes)?;
        }
    }
    tar.into_inner().map_err(ApiError::internal)
}

fn append(tar: &mut tar::Builder<Vec<u8>>, path: &str, data: &[u8]) -> ApiResult<()> {
    let mut header = tar::Header::new_gnu();
    header.set_size(data.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    tar.append_data(&mut header, path, data)
        .map_err(ApiError::internal)
}
