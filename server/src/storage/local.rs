//! A directory on the local file system as an object store.

use std::io::Read;
use std::path::PathBuf;

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

    /// Writes through a temporary file and a rename, so readers never see half an object.
    pub async fn put(&self, key: &str, data: Bytes) -> StorageResult<()> {
        let path = self.path(key);
        if let Some(parent) = path.parent() {
            tokio::fs::create_dir_all(parent).await?;
        }
        let tmp = path.with_extension(format!("tmp-{}", rand::random::<u32>()));
        tokio::fs::write(&tmp, &data).await?;
        tokio::fs::rename(&tmp, &path).await?;
        Ok(())
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
