//! Export of labelled data back to the input layouts (SPEC §3): folder-per-label for
//! classification, image + VOC XML for detection and OCR, as a tar archive streamed to the
//! client.

use std::collections::HashSet;

use bytes::Bytes;
use futures_util::stream::{self, Stream};
use shared::InstanceType;
use shared::api::Image;
use tokio::sync::OwnedSemaphorePermit;

use crate::error::{ApiError, ApiResult};
use crate::indexer::MAX_IMAGE_BYTES;
use crate::storage::Store;
use crate::voc;

/// Exports running at once; each holds one image in memory at a time.
pub const MAX_CONCURRENT_EXPORTS: usize = 2;

/// What an export stream carries from one chunk to the next.
struct Exporting {
    store: Store,
    kind: InstanceType,
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
    images: Vec<Image>,
    permit: OwnedSemaphorePermit,
) -> impl Stream<Item = std::io::Result<Bytes>> + Send + 'static {
    let state = Exporting {
        store,
        kind,
        images: images.into_iter(),
        tar: Some(tar::Builder::new(Vec::new())),
        used: HashSet::new(),
        _permit: permit,
    };
    stream::unfold(state, |mut st| async move {
        let tar = st.tar.as_mut()?;
        let step = match st.images.next() {
            Some(img) => add(&st.store, st.kind, &mut st.used, tar, &img).await,
            None => {
                // The end-of-archive blocks; the next poll finds no builder and ends.
                let last = st.tar.take()?.into_inner().map(Bytes::from);
                return Some((last, st));
            }
        };
        match step {
            Ok(()) => {
                let chunk = std::mem::take(st.tar.as_mut()?.get_mut());
                Some((Ok(Bytes::from(chunk)), st))
            }
            Err(e) => {
                st.tar = None;
                Some((Err(std::io::Error::other(e.message)), st))
            }
        }
    })
}

/// Appends one image (and, for box datasets, its VOC file) to the archive.
async fn add(
    store: &Store,
    kind: InstanceType,
    used: &mut HashSet<String>,
    tar: &mut tar::Builder<Vec<u8>>,
    img: &Image,
) -> ApiResult<()> {
    let bytes = store.read(&img.path, MAX_IMAGE_BYTES).await?;
    let file_name = img.path.rsplit('/').next().unwrap_or(&img.path);
    if kind.uses_boxes() {
        append(tar, &img.path, &bytes)?;
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
        append(tar, &format!("{stem}.xml"), xml.as_bytes())?;
    } else if let Some(label) = img.annotation.labels.first() {
        let mut path = format!("{label}/{file_name}");
        let mut n = 1;
        while !used.insert(path.clone()) {
            n += 1;
            path = format!("{label}/{n}-{file_name}");
        }
        append(tar, &path, &bytes)?;
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
