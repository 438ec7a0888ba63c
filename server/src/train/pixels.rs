//! Decoded training images within a memory budget. Images stay in memory while the budget
//! lasts; beyond it they go to a spill file on local disk (raw RGB, read back with one
//! positioned read each), so a 100,000-image dataset trains in bounded memory instead of
//! needing tens of gigabytes. The same budget decides whether the trainers may cache
//! backbone outputs ([`PixelStore::reserve`]) or must recompute them.

use std::borrow::Cow;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use image::RgbImage;

/// One decoded image: in memory, or at an offset of the spill file.
pub enum Pixels {
    Resident(RgbImage),
    Spilled {
        file: Arc<File>,
        offset: u64,
        width: u32,
        height: u32,
    },
}

impl Pixels {
    /// The image: borrowed when resident, read from the spill file otherwise.
    pub fn rgb(&self) -> Cow<'_, RgbImage> {
        match self {
            Pixels::Resident(img) => Cow::Borrowed(img),
            Pixels::Spilled {
                file,
                offset,
                width,
                height,
            } => {
                let mut raw = vec![0u8; *width as usize * *height as usize * 3];
                // The file is private to this process and written before any read: a
                // failure here is a broken disk, which ends the task.
                file.read_exact_at(&mut raw, *offset)
                    .expect("reading a spilled training image back");
                Cow::Owned(RgbImage::from_raw(*width, *height, raw).expect("sized buffer"))
            }
        }
    }

    pub fn width(&self) -> u32 {
        match self {
            Pixels::Resident(img) => img.width(),
            Pixels::Spilled { width, .. } => *width,
        }
    }
}

/// A task's budget and, once the budget is spent, its spill file.
pub struct PixelStore {
    /// Bytes of the budget not yet taken.
    left: AtomicU64,
    spill: Mutex<Option<(Arc<File>, u64)>>,
    dir: std::path::PathBuf,
    spilled: AtomicUsize,
}

impl PixelStore {
    /// A store holding at most `budget` bytes in memory, spilling to a file in `dir`.
    pub fn new(budget: u64, dir: &Path) -> Self {
        Self {
            left: AtomicU64::new(budget),
            spill: Mutex::new(None),
            dir: dir.to_owned(),
            spilled: AtomicUsize::new(0),
        }
    }

    /// Takes `bytes` from the budget if they fit; `false` leaves the budget as it was.
    pub fn reserve(&self, bytes: u64) -> bool {
        self.left
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |left| {
                left.checked_sub(bytes)
            })
            .is_ok()
    }

    /// Keeps `img` in memory if the budget allows, else appends it to the spill file.
    pub fn keep(&self, img: RgbImage) -> io::Result<Pixels> {
        if self.reserve(img.as_raw().len() as u64) {
            return Ok(Pixels::Resident(img));
        }
        let mut spill = self.spill.lock().unwrap_or_else(|e| e.into_inner());
        if spill.is_none() {
            *spill = Some((Arc::new(self.create_spill_file()?), 0));
        }
        let (file, end) = spill.as_mut().expect("just created");
        file.write_all_at(img.as_raw(), *end)?;
        let pixels = Pixels::Spilled {
            file: file.clone(),
            offset: *end,
            width: img.width(),
            height: img.height(),
        };
        *end += img.as_raw().len() as u64;
        self.spilled.fetch_add(1, Ordering::Relaxed);
        Ok(pixels)
    }

    /// Images written to the spill file so far.
    pub fn spilled(&self) -> usize {
        self.spilled.load(Ordering::Relaxed)
    }

    /// A new file in the spill folder, unlinked at once: it lives while the task holds it
    /// and leaves nothing behind however the process ends.
    fn create_spill_file(&self) -> io::Result<File> {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        std::fs::create_dir_all(&self.dir)?;
        let path = self.dir.join(format!(
            "train-spill-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)?;
        std::fs::remove_file(&path)?;
        Ok(file)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(seed: u8) -> RgbImage {
        RgbImage::from_fn(7, 5, |x, y| {
            image::Rgb([seed, x as u8 * 30, y as u8 * 40 + seed])
        })
    }

    #[test]
    fn images_past_the_budget_spill_and_read_back_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        // Room for two 7×5 images (105 bytes each), not three.
        let store = PixelStore::new(250, dir.path());
        let kept: Vec<Pixels> = (0..5).map(|i| store.keep(image(i)).unwrap()).collect();
        assert!(matches!(kept[0], Pixels::Resident(_)));
        assert!(matches!(kept[1], Pixels::Resident(_)));
        assert!(
            kept[2..]
                .iter()
                .all(|p| matches!(p, Pixels::Spilled { .. }))
        );
        assert_eq!(store.spilled(), 3);
        for (i, p) in kept.iter().enumerate() {
            assert_eq!(*p.rgb(), image(i as u8), "image {i}");
            assert_eq!(p.width(), 7);
        }
        // The spill file is already unlinked: nothing is left in the folder.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        // The rest of the budget (40 bytes) is there for caches, and no more.
        assert!(!store.reserve(41));
        assert!(store.reserve(40));
        assert!(!store.reserve(1));
    }
}
