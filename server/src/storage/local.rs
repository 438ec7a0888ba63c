//! A directory on the local file system as an object store.

use std::io::Read;
use std::path::{Path, PathBuf};

use bytes::Bytes;

use super::{MAX_OBJECTS, ObjectInfo, StorageError, StorageResult};

#[derive(Debug, Clone)]
pub struct LocalStore {
    root: PathBuf,
}

impl LocalStore {
    pub fn new(root: PathBuf) -> Self {
        Self { root }
    }

    /// Walks the tree without following symlinks (a link could point outside the root).
    pub async fn list(&self) -> StorageResult<Vec<ObjectInfo>> {
        let root = self.root.clone();
        tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            let mut stack = vec![(root.clone(), String::new())];
            while let Some((dir, rel)) = stack.pop() {
                for entry in std::fs::read_dir(&dir)? {
                    let entry = entry?;
                    let Ok(name) = entry.file_name().into_string() else {
                        continue;
                    };
                    let key = if rel.is_empty() {
                        name
                    } else {
                        format!("{rel}/{name}")
                    };
                    let ty = entry.file_type()?;
                    if ty.is_dir() {
                        stack.push((entry.path(), key));
                    } else if ty.is_file() {
                        out.push(ObjectInfo {
                            key,
                            size: entry.metadata()?.len(),
                        });
                        if out.len() > MAX_OBJECTS {
                            return Err(StorageError::BadPath(format!(
                                "{} holds more than {MAX_OBJECTS} files; index a smaller directory",
                                root.display()
                            )));
                        }
                    }
                }
            }
            Ok(out)
        })
        .await
        .map_err(|e| StorageError::Io(std::io::Error::other(e)))?
    }

    fn path(&self, key: &str) -> PathBuf {
        self.root.join(key)
    }

    pub async fn read_prefix(&self, key: &str, len: u64) -> StorageResult<Bytes> {
        let path = self.path(key);
        let key = key.to_owned();
        tokio::task::spawn_blocking(move || {
            let file = std::fs::File::open(&path).map_err(|e| not_found(e, &key))?;
            let mut buf = Vec::new();
            file.take(len).read_to_end(&mut buf)?;
            Ok(Bytes::from(buf))
        })
        .await
        .map_err(|e| StorageError::Io(std::io::Error::other(e)))?
    }

    pub async fn read(&self, key: &str, limit: u64) -> StorageResult<Bytes> {
        let path = self.path(key);
        let meta = tokio::fs::metadata(&path)
            .await
            .map_err(|e| not_found(e, key))?;
        if !meta.is_file() {
            return Err(StorageError::NotFound(key.to_owned()));
        }
        if meta.len() > limit {
            return Err(StorageError::TooLarge {
                key: key.to_owned(),
                size: meta.len(),
                limit,
            });
        }
        Ok(Bytes::from(
            tokio::fs::read(&path)
                .await
                .map_err(|e| not_found(e, key))?,
        ))
    }

    /// Writes durably and atomically: a temporary file, flushed to the disk, renamed over the
    /// key, then the folder flushed (so the rename itself survives a power cut). Readers never
    /// see half an object; a failed write (disk full) leaves the old object, or none, and no
    /// temporary file.
    pub async fn put(&self, key: &str, data: Bytes) -> StorageResult<()> {
        let path = self.path(key);
        let parent = path.parent().map(Path::to_path_buf);
        if let Some(parent) = &parent {
            tokio::fs::create_dir_all(parent).await?;
        }
        let tmp = path.with_extension(format!("tmp-{}", rand::random::<u32>()));
        let written = tokio::task::spawn_blocking({
            let (tmp, path) = (tmp.clone(), path.clone());
            move || -> std::io::Result<()> {
                use std::io::Write;
                let mut f = std::fs::File::create(&tmp)?;
                f.write_all(&data)?;
                f.sync_all()?;
                drop(f);
                std::fs::rename(&tmp, &path)?;
                if let Some(parent) = parent {
                    std::fs::File::open(parent)?.sync_all()?;
                }
                Ok(())
            }
        })
        .await
        .map_err(std::io::Error::other)
        .and_then(|r| r);
        if written.is_err() {
            let _ = tokio::fs::remove_file(&tmp).await;
        }
        Ok(written?)
    }

    pub async fn delete(&self, key: &str) -> StorageResult<()> {
        match tokio::fs::remove_file(self.path(key)).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }
}

fn not_found(e: std::io::Error, key: &str) -> StorageError {
    if e.kind() == std::io::ErrorKind::NotFound {
        StorageError::NotFound(key.to_owned())
    } else {
        StorageError::Io(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Files in `dir` whose names say they are temporary.
    fn temporaries(dir: &Path) -> Vec<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.contains("tmp-"))
            .collect()
    }

    #[tokio::test]
    async fn writes_replace_whole_objects_and_a_failed_write_leaves_nothing_behind() {
        let root = tempfile::tempdir().unwrap();
        let store = LocalStore::new(root.path().to_path_buf());
        store
            .put("a/b.bin", Bytes::from_static(b"first"))
            .await
            .unwrap();
        store
            .put("a/b.bin", Bytes::from_static(b"second"))
            .await
            .unwrap();
        assert_eq!(&store.read("a/b.bin", 100).await.unwrap()[..], b"second");
        assert!(temporaries(&root.path().join("a")).is_empty());

        // The rename cannot replace a folder that holds a file: the write fails, the folder
        // and its file are untouched and the temporary file is gone.
        std::fs::create_dir_all(root.path().join("a/taken")).unwrap();
        std::fs::write(root.path().join("a/taken/x"), b"kept").unwrap();
        let err = store.put("a/taken", Bytes::from_static(b"new")).await;
        assert!(err.is_err(), "{err:?}");
        assert_eq!(
            std::fs::read(root.path().join("a/taken/x")).unwrap(),
            b"kept"
        );
        assert!(temporaries(&root.path().join("a")).is_empty());
        assert_eq!(&store.read("a/b.bin", 100).await.unwrap()[..], b"second");
    }
}
