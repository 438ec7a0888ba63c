//! Object storage: where dataset images live (SPEC §2). A dataset's location is a directory
//! under one of the configured data roots or an `s3://bucket/prefix/`; images are indexed and
//! read in place, never copied.

mod local;
mod s3;

use std::path::{Path, PathBuf};

use bytes::Bytes;

pub use self::local::LocalStore;
pub use self::s3::S3Store;
use crate::config::S3Config;

/// The most objects one dataset may hold; listing stops with an error beyond it.
pub const MAX_OBJECTS: usize = 200_000;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("no such object: {0}")]
    NotFound(String),
    #[error("{key} is {size} bytes; the limit is {limit} bytes")]
    TooLarge { key: String, size: u64, limit: u64 },
    #[error("{0}")]
    BadPath(String),
    #[error("{0} is not under any configured data root (AUTOLEARN_DATA_ROOTS)")]
    OutsideRoots(String),
    #[error(
        "{0} is not in a bucket or prefix an administrator allowed for datasets (AUTOLEARN_S3_BUCKETS)"
    )]
    BucketNotAllowed(String),
    #[error("{path} {why}; datasets cannot be indexed from the server's own folders")]
    Reserved { path: String, why: String },
    #[error(
        "s3:// paths need S3 storage configured (AUTOLEARN_S3_ENDPOINT, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)"
    )]
    NoS3,
    #[error("storage I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("S3: {0}")]
    S3(String),
    /// The S3 server did not answer (connection refused, timed out): worth retrying.
    #[error("S3 not reachable: {0}")]
    Unreachable(String),
}

pub type StorageResult<T> = Result<T, StorageError>;

/// One object found by a listing: its key relative to the location, `/`-separated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub key: String,
    pub size: u64,
}

/// A place objects are read from and written to.
#[derive(Debug, Clone)]
pub enum Store {
    Local(LocalStore),
    S3(S3Store),
}

impl Store {
    /// Every object under the location, sorted by key. Refuses more than [`MAX_OBJECTS`].
    pub async fn list(&self) -> StorageResult<Vec<ObjectInfo>> {
        let mut v = match self {
            Store::Local(s) => s.list().await?,
            Store::S3(s) => s.list().await?,
        };
        v.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(v)
    }

    /// At most the first `len` bytes of an object (for reading image headers).
    pub async fn read_prefix(&self, key: &str, len: u64) -> StorageResult<Bytes> {
        let key = safe_key(key)?;
        match self {
            Store::Local(s) => s.read_prefix(&key, len).await,
            Store::S3(s) => s.read_prefix(&key, len).await,
        }
    }

    /// A whole object, refused if larger than `limit` bytes (nothing is read then).
    pub async fn read(&self, key: &str, limit: u64) -> StorageResult<Bytes> {
        let key = safe_key(key)?;
        match self {
            Store::Local(s) => s.read(&key, limit).await,
            Store::S3(s) => s.read(&key, limit).await,
        }
    }

    pub async fn put(&self, key: &str, data: Bytes) -> StorageResult<()> {
        let key = safe_key(key)?;
        match self {
            Store::Local(s) => s.put(&key, data).await,
            Store::S3(s) => s.put(&key, data).await,
        }
    }

    /// Removes an object; removing one that is not there is not an error.
    pub async fn delete(&self, key: &str) -> StorageResult<()> {
        let key = safe_key(key)?;
        match self {
            Store::Local(s) => s.delete(&key).await,
            Store::S3(s) => s.delete(&key).await,
        }
    }
}

/// Checks a relative key: `/`-separated, no empty, `.` or `..` segments, no backslashes or
/// NULs, not absolute. Returns it normalised (no leading `./`).
pub fn safe_key(key: &str) -> StorageResult<String> {
    let bad = |why: &str| {
        Err(StorageError::BadPath(format!(
            "unsafe object key {key:?}: {why}"
        )))
    };
    if key.is_empty() {
        return bad("empty");
    }
    if key.contains('\\') || key.contains('\0') {
        return bad("backslashes and NUL are not allowed");
    }
    if key.starts_with('/') {
        return bad("must be relative");
    }
    if key
        .split('/')
        .any(|seg| seg.is_empty() || seg == "." || seg == "..")
    {
        return bad("empty, '.' and '..' path segments are not allowed");
    }
    Ok(key.to_owned())
}

/// Where a dataset lives, parsed from the path a user gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A canonical directory under a data root.
    Dir(PathBuf),
    /// A bucket and a key prefix (empty or ending in `/`).
    S3 { bucket: String, prefix: String },
}

impl Location {
    /// Parses `s3://bucket/prefix/` or a directory, which must resolve (after following
    /// symlinks) to a place `roots` lets users index.
    pub fn parse(path: &str, roots: &DatasetRoots) -> StorageResult<Self> {
        roots.check(path, Self::parse_syntax(path)?)
    }

    /// Parses a location without asking whether users may index it (stored locations, the
    /// models URI): `s3://` syntax is checked; a directory is taken as it is.
    fn parse_syntax(path: &str) -> StorageResult<Self> {
        if let Some(rest) = path.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty()
                || bucket.len() > 63
                || !bucket
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
            {
                return Err(StorageError::BadPath(format!(
                    "{path:?}: a bucket name is 1-63 lowercase letters, digits, '-' or '.'"
                )));
            }
            let prefix = prefix.trim_end_matches('/');
            let prefix = if prefix.is_empty() {
                String::new()
            } else {
                format!("{}/", safe_key(prefix)?)
            };
            return Ok(Location::S3 {
                bucket: bucket.to_owned(),
                prefix,
            });
        }
        if path.contains("://") {
            return Err(StorageError::BadPath(format!(
                "{path:?}: use s3://bucket/prefix/ or a directory path"
            )));
        }
        Ok(Location::Dir(PathBuf::from(path)))
    }

    /// The form stored in the database and shown to users.
    pub fn to_uri(&self) -> String {
        match self {
            Location::Dir(p) => p.display().to_string(),
            Location::S3 { bucket, prefix } => format!("s3://{bucket}/{prefix}"),
        }
    }
}

/// A bucket and a key prefix (empty or ending in `/`): where S3 datasets may come from, or
/// where the server keeps its models.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Scope {
    pub bucket: String,
    pub prefix: String,
}

impl S3Scope {
    /// `bucket` or `bucket/prefix`, with or without `s3://` and a trailing `/`.
    pub fn parse(text: &str) -> StorageResult<Self> {
        let text = text.trim();
        let uri = if text.starts_with("s3://") {
            text.to_owned()
        } else {
            format!("s3://{text}")
        };
        match Location::parse_syntax(&uri)? {
            Location::S3 { bucket, prefix } => Ok(Self { bucket, prefix }),
            Location::Dir(_) => Err(StorageError::BadPath(format!("{text:?} is not a bucket"))),
        }
    }

    fn holds(&self, bucket: &str, prefix: &str) -> bool {
        self.bucket == bucket && prefix.starts_with(&self.prefix)
    }
}

/// Where users may index datasets from: the data roots and the allowed S3 buckets, minus
/// the server's own folders (thumbnails, models, weights, the secret, the SQLite file) and
/// its models prefix, whatever the configuration says.
#[derive(Debug, Clone, Default)]
pub struct DatasetRoots {
    pub dirs: Vec<PathBuf>,
    /// Folders no dataset may be inside of, nor contain.
    pub reserved_dirs: Vec<PathBuf>,
    /// Folders inside a reserved one that stay indexable (`<data dir>/datasets`).
    pub reserved_exceptions: Vec<PathBuf>,
    pub buckets: Vec<S3Scope>,
    /// Prefixes no S3 dataset may be inside of, nor contain (the models prefix).
    pub reserved_s3: Vec<S3Scope>,
}

/// A path made absolute with symlinks resolved where it exists (a folder created later, such
/// as the weights cache, is compared as written).
fn resolved(p: &Path) -> PathBuf {
    p.canonicalize()
        .or_else(|_| std::path::absolute(p))
        .unwrap_or_else(|_| p.to_path_buf())
}

impl DatasetRoots {
    /// `loc` (as parsed from `path`) if users may index it; directories come back canonical.
    fn check(&self, path: &str, loc: Location) -> StorageResult<Location> {
        match &loc {
            Location::S3 { bucket, prefix } => {
                if let Some(r) = self.reserved_s3.iter().find(|r| {
                    r.holds(bucket, prefix)
                        || (r.bucket == *bucket && r.prefix.starts_with(prefix.as_str()))
                }) {
                    return Err(StorageError::Reserved {
                        path: path.to_owned(),
                        why: format!(
                            "overlaps s3://{}/{}, where models are kept",
                            r.bucket, r.prefix
                        ),
                    });
                }
                if !self.buckets.iter().any(|a| a.holds(bucket, prefix)) {
                    return Err(StorageError::BucketNotAllowed(path.to_owned()));
                }
                Ok(loc)
            }
            Location::Dir(dir) => {
                let dir = dir
                    .canonicalize()
                    .map_err(|e| StorageError::BadPath(format!("{path:?}: {e}")))?;
                if !dir.is_dir() {
                    return Err(StorageError::BadPath(format!(
                        "{path:?} is not a directory"
                    )));
                }
                // Resolved once: each is a file-system call.
                let exceptions: Vec<PathBuf> = self
                    .reserved_exceptions
                    .iter()
                    .map(|e| resolved(e))
                    .collect();
                for reserved in self.reserved_dirs.iter().map(|r| resolved(r)) {
                    let excepted = exceptions
                        .iter()
                        .any(|e| *e != reserved && e.starts_with(&reserved) && dir.starts_with(e));
                    let why = if reserved == dir {
                        "is"
                    } else if reserved.starts_with(&dir) {
                        "contains"
                    } else if dir.starts_with(&reserved) && !excepted {
                        "is inside"
                    } else {
                        continue;
                    };
                    return Err(StorageError::Reserved {
                        path: path.to_owned(),
                        why: format!("{why} {}", reserved.display()),
                    });
                }
                let inside = self
                    .dirs
                    .iter()
                    .filter_map(|r| r.canonicalize().ok())
                    .any(|root| dir.starts_with(&root));
                if !inside {
                    return Err(StorageError::OutsideRoots(path.to_owned()));
                }
                Ok(Location::Dir(dir))
            }
        }
    }
}

/// Opens stores for locations; holds the one S3 client of the process.
#[derive(Debug, Clone)]
pub struct Storage {
    s3: Option<aws_sdk_s3::Client>,
}

impl Storage {
    pub fn new(s3: Option<&S3Config>) -> Self {
        Self {
            s3: s3.map(s3::client),
        }
    }

    pub fn open(&self, loc: &Location) -> StorageResult<Store> {
        match loc {
            Location::Dir(root) => Ok(Store::Local(LocalStore::new(root.clone()))),
            Location::S3 { bucket, prefix } => {
                let client = self.s3.clone().ok_or(StorageError::NoS3)?;
                Ok(Store::S3(S3Store::new(
                    client,
                    bucket.clone(),
                    prefix.clone(),
                )))
            }
        }
    }

    /// Re-opens a stored location (as written by [`Location::to_uri`]) without the data-root
    /// check, which was made when the dataset was created.
    pub fn open_uri(&self, uri: &str) -> StorageResult<Store> {
        if uri.starts_with("s3://") {
            self.open(&Location::parse_syntax(uri)?)
        } else {
            Ok(Store::Local(LocalStore::new(PathBuf::from(uri))))
        }
    }

    /// Whether the configured S3 endpoint answers (for `/readyz`); `true` without S3.
    pub async fn s3_reachable(&self) -> bool {
        match &self.s3 {
            None => true,
            Some(c) => c.list_buckets().send().await.is_ok(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_with_traversal_are_refused() {
        for bad in [
            "../etc/passwd",
            "a/../../b",
            "/abs",
            "a//b",
            "a\\b",
            "",
            "a/./b",
        ] {
            assert!(safe_key(bad).is_err(), "{bad:?} should be refused");
        }
        assert_eq!(safe_key("cat/1.jpg").unwrap(), "cat/1.jpg");
    }

    #[test]
    fn s3_paths_parse() {
        let loc = Location::parse_syntax("s3://my-bucket/data/flowers/").unwrap();
        assert_eq!(
            loc,
            Location::S3 {
                bucket: "my-bucket".into(),
                prefix: "data/flowers/".into()
            }
        );
        assert_eq!(loc.to_uri(), "s3://my-bucket/data/flowers/");
        assert_eq!(
            Location::parse_syntax("s3://b").unwrap(),
            Location::S3 {
                bucket: "b".into(),
                prefix: String::new()
            }
        );
        assert!(Location::parse_syntax("s3://b/../x").is_err());
        assert!(Location::parse_syntax("s3://Bad_Bucket/x").is_err());
        assert!(Location::parse_syntax("http://x/y").is_err());
    }

    #[test]
    fn directories_outside_the_roots_are_refused() {
        let root = tempfile::tempdir().unwrap();
        let inside = root.path().join("ds");
        std::fs::create_dir(&inside).unwrap();
        let roots = DatasetRoots {
            dirs: vec![root.path().to_path_buf()],
            ..DatasetRoots::default()
        };
        assert!(matches!(
            Location::parse(inside.to_str().unwrap(), &roots),
            Ok(Location::Dir(_))
        ));
        let escape = format!("{}/ds/../..", root.path().display());
        assert!(matches!(
            Location::parse(&escape, &roots),
            Err(StorageError::OutsideRoots(_))
        ));
        assert!(Location::parse("/etc", &roots).is_err());
    }

    #[test]
    fn the_servers_own_folders_are_never_indexable() {
        // A careless configuration: the data dir's parent is a data root.
        let top = tempfile::tempdir().unwrap();
        let data = top.path().join("data");
        for d in ["datasets/pets", "thumbs/1", "models", "elsewhere"] {
            std::fs::create_dir_all(data.join(d)).unwrap();
        }
        let roots = DatasetRoots {
            dirs: vec![top.path().to_path_buf()],
            reserved_dirs: vec![data.clone()],
            reserved_exceptions: vec![data.join("datasets")],
            ..DatasetRoots::default()
        };
        let at = |p: &Path| Location::parse(p.to_str().unwrap(), &roots);
        assert!(matches!(
            at(&data.join("datasets/pets")),
            Ok(Location::Dir(_))
        ));
        assert!(matches!(at(&data.join("datasets")), Ok(Location::Dir(_))));
        for bad in [
            data.join("thumbs"),
            data.join("thumbs/1"),
            data.join("models"),
            data.clone(),
            top.path().to_path_buf(),
        ] {
            assert!(
                matches!(at(&bad), Err(StorageError::Reserved { .. })),
                "{} must be refused",
                bad.display()
            );
        }
        // `datasets/..` resolves to the data dir itself.
        assert!(at(&data.join("datasets/..")).is_err());
    }

    #[test]
    fn s3_datasets_only_from_allowed_buckets_never_the_models_prefix() {
        let roots = DatasetRoots {
            buckets: vec![
                S3Scope::parse("shared").unwrap(),
                S3Scope::parse("s3://team/images/").unwrap(),
            ],
            reserved_s3: vec![S3Scope::parse("shared/models").unwrap()],
            ..DatasetRoots::default()
        };
        assert!(Location::parse("s3://shared/flowers/", &roots).is_ok());
        assert!(Location::parse("s3://team/images/cats/", &roots).is_ok());
        for (bad, reserved) in [
            ("s3://team/", false),
            ("s3://team/other/", false),
            ("s3://elsewhere/x/", false),
            ("s3://shared/models/instance-1/", true),
            ("s3://shared/", true),
        ] {
            let r = Location::parse(bad, &roots);
            assert!(
                matches!(
                    (&r, reserved),
                    (Err(StorageError::Reserved { .. }), true)
                        | (Err(StorageError::BucketNotAllowed(_)), false)
                ),
                "{bad}: {r:?}"
            );
        }
    }
}
