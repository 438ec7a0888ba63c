//! Resized JPEG thumbnails for image grids, made once and cached in the data dir.

use std::io::Cursor;
use std::path::PathBuf;

use image::{ImageDecoder, ImageReader, Limits};

/// Thumbnail sizes accepted (longest side, pixels).
pub const MIN_SIZE: u32 = 64;
pub const MAX_SIZE: u32 = 512;
/// Memory a single decode may allocate; indexing already refuses images over 80 MP.
const MAX_DECODE_BYTES: u64 = 512 * 1024 * 1024;

/// Where the thumbnail of an image version is cached: the file size is part of the name,
/// so a changed source file gets a new thumbnail.
pub fn cache_path(
    data_dir: &std::path::Path,
    image_id: i64,
    size: u32,
    source_bytes: i64,
) -> PathBuf {
    data_dir
        .join("thumbs")
        .join(format!("{image_id}-{size}-{source_bytes}.jpg"))
}

/// Removes the cached thumbnails (every size, every version) of images `ids` from the
/// thumbnail folder `dir`.
pub fn remove_of(
    dir: &std::path::Path,
    ids: &std::collections::HashSet<i64>,
) -> std::io::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let id = name
            .to_str()
            .and_then(|n| n.split('-').next())
            .and_then(|n| n.parse::<i64>().ok());
        if id.is_some_and(|id| ids.contains(&id)) {
            std::fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

/// Decodes `bytes` (JPEG or PNG) within memory limits and encodes a JPEG whose longest side
/// is at most `size`. CPU-heavy: call on a blocking thread.
pub fn make(bytes: &[u8], size: u32) -> Result<Vec<u8>, String> {
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| e.to_string())?;
    let mut limits = Limits::default();
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    reader.limits(limits);
    let mut decoder = reader
        .into_decoder()
        .map_err(|e| format!("cannot decode: {e}"))?;
    let orientation = decoder.orientation().ok();
    let mut img =
        image::DynamicImage::from_decoder(decoder).map_err(|e| format!("cannot decode: {e}"))?;
    if let Some(o) = orientation {
        img.apply_orientation(o);
    }
    let thumb = img.thumbnail(size, size).into_rgb8();
    let mut out = Cursor::new(Vec::new());
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 82)
        .encode_image(&thumb)
        .map_err(|e| e.to_string())?;
    Ok(out.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thumbnails_keep_the_aspect_ratio() {
        let img = image::RgbImage::from_fn(400, 200, |x, _| image::Rgb([(x % 256) as u8, 0, 0]));
        let mut png = Cursor::new(Vec::new());
        img.write_to(&mut png, image::ImageFormat::Png).unwrap();
        let jpg = make(&png.into_inner(), 100).unwrap();
        let t = image::load_from_memory(&jpg).unwrap();
        assert_eq!((t.width(), t.height()), (100, 50));
        assert!(make(b"junk", 100).is_err());
    }
}

/// Why a thumbnail could not be made.
#[derive(Debug)]
pub enum ThumbError {
    Storage(crate::storage::StorageError),
    Decode(String),
}

/// The cached thumbnail of an image, made (and cached) now if missing.
pub async fn get_or_make(
    s: &crate::AppState,
    img: &shared::api::Image,
    store: &crate::storage::Store,
    size: u32,
) -> Result<Vec<u8>, ThumbError> {
    let path = cache_path(&s.config.data_dir, img.id, size, img.size_bytes);
    if let Ok(b) = tokio::fs::read(&path).await {
        return Ok(b);
    }
    let bytes = store
        .read(&img.path, crate::indexer::MAX_IMAGE_BYTES)
        .await
        .map_err(ThumbError::Storage)?;
    let jpeg = {
        let _permit = s
            .decode_permits
            .acquire()
            .await
            .map_err(|e| ThumbError::Decode(e.to_string()))?;
        tokio::task::spawn_blocking(move || make(&bytes, size))
            .await
            .map_err(|e| ThumbError::Decode(e.to_string()))?
            .map_err(ThumbError::Decode)?
    };
    // Written via a temporary name so a concurrent reader never sees half a file.
    if let Some(dir) = path.parent() {
        let _ = tokio::fs::create_dir_all(dir).await;
    }
    let tmp = path.with_extension(format!("tmp{}", rand::random::<u32>()));
    if tokio::fs::write(&tmp, &jpeg).await.is_ok() {
        let _ = tokio::fs::rename(&tmp, &path).await;
    }
    Ok(jpeg)
}

/// The grid size the web app asks for.
pub const GRID_SIZE: u32 = 256;

/// Makes the grid thumbnails of a dataset in the background after (re-)indexing, so the
/// first visit to a page of 100 images finds them ready. Bounded by the decode permits, so
/// requests for thumbnails interleave with it.
pub async fn warm_dataset(s: crate::AppState, dataset_id: i64) {
    let Ok(Some(d)) = s.db.dataset_ref(dataset_id).await else {
        return;
    };
    let Ok(store) = s.storage.open_uri(&d.location) else {
        return;
    };
    let mut page = 1;
    loop {
        let filter = crate::db::images::ImageFilter {
            label: None,
            status: shared::api::ImageStatus::All,
            page,
            per_page: 500,
        };
        let Ok((items, total)) = s.db.images(dataset_id, &filter).await else {
            return;
        };
        for img in &items {
            let _ = get_or_make(&s, img, &store, GRID_SIZE).await;
        }
        if page * 500 >= total || items.is_empty() {
            break;
        }
        page += 1;
    }
}
