//! Server configuration: an optional TOML file, overridden key by key by environment
//! variables (SPEC §9). File keys are the variable names in lower case without the
//! `AUTOLEARN_` prefix (`addr`, `data_dir`, `database_url`, `s3_endpoint`, ...).

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use crate::storage::{DatasetRoots, S3Scope};

/// The folder of the data dir that is the default data root, created on first start.
pub const DATASETS_DIR: &str = "datasets";

/// A secret whose `Debug` does not print it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[derive(Debug, Clone)]
pub struct S3Config {
    /// Custom endpoint (MinIO, Garage, OSS); `None` means AWS.
    pub endpoint: Option<String>,
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: Secret,
    /// Path-style addressing (`endpoint/bucket/key`), which most self-hosted servers need.
    pub path_style: bool,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub addr: SocketAddr,
    pub data_dir: PathBuf,
    /// `sqlite:...` or `postgres://...`; `None` is a SQLite file in the data dir.
    pub database_url: Option<String>,
    /// Directories datasets may be indexed from (default `<data dir>/datasets`).
    pub data_roots: Vec<PathBuf>,
    /// Buckets (or `bucket/prefix`es) S3 datasets may be indexed from; none by default.
    pub s3_buckets: Vec<S3Scope>,
    pub s3: Option<S3Config>,
    pub admin_password: Option<Secret>,
    pub secret: Option<Secret>,
    /// The built web app (`scripts/build-web.sh` writes it).
    pub web_dir: PathBuf,
    /// Largest JSON body the management API accepts.
    pub max_body_bytes: usize,
    /// `tracing` filter, e.g. `info,sqlx=warn`.
    pub log_filter: String,
    /// Where model artifacts go: a directory or `s3://bucket/prefix/` (shared by all workers).
    pub models_uri: String,
    /// Cache of downloaded pretrained weights.
    pub weights_dir: PathBuf,
    /// Start backbones from ImageNet weights (fetched once with pip); `false` trains from
    /// scratch and never touches the network (air-gapped installations).
    pub pretrained: bool,
    /// Training workers `autolearn serve` runs (0: API only; `autolearn worker` trains).
    pub workers: usize,
    /// Seconds a worker's claim on a task lasts without renewal (it renews every third).
    pub task_lease_secs: i64,
    /// Behaviour-log (CF) builds `autolearn serve` runs at once (0: leaves them to other
    /// servers on the same database).
    pub cf_builders: usize,
    /// Smallest training budget a task may ask for (SPEC: 10 minutes; lower for demos/tests).
    pub min_task_minutes: f64,
    /// How phones reach this server (`https://autolearn.example.com`), for preview links;
    /// `None`: the scheme and host the creating browser used.
    pub public_url: Option<String>,
    /// Default lifetime of a preview link, in hours.
    pub preview_hours: f64,
    /// `Secure` session cookies: `Some` as configured, `None` when the public URL is
    /// `https://` or the proxy says `X-Forwarded-Proto: https`.
    pub secure_cookies: Option<bool>,
    /// Memory a training task may hold in decoded images and cached backbone outputs;
    /// images beyond it are kept in a spill file under `<data dir>/tmp` and read back as
    /// needed, caches beyond it are recomputed.
    pub train_memory_bytes: u64,
}

/// Keys and the environment variable each one reads.
const KEYS: &[(&str, &str)] = &[
    ("addr", "AUTOLEARN_ADDR"),
    ("data_dir", "AUTOLEARN_DATA_DIR"),
    ("database_url", "DATABASE_URL"),
    ("data_roots", "AUTOLEARN_DATA_ROOTS"),
    ("s3_buckets", "AUTOLEARN_S3_BUCKETS"),
    ("s3_endpoint", "AUTOLEARN_S3_ENDPOINT"),
    ("s3_region", "AUTOLEARN_S3_REGION"),
    ("s3_path_style", "AUTOLEARN_S3_PATH_STYLE"),
    ("aws_access_key_id", "AWS_ACCESS_KEY_ID"),
    ("aws_secret_access_key", "AWS_SECRET_ACCESS_KEY"),
    ("admin_password", "AUTOLEARN_ADMIN_PASSWORD"),
    ("secret", "AUTOLEARN_SECRET"),
    ("web_dir", "AUTOLEARN_WEB_DIR"),
    ("max_body_bytes", "AUTOLEARN_MAX_BODY_BYTES"),
    ("log", "AUTOLEARN_LOG"),
    ("models", "AUTOLEARN_MODELS"),
    ("weights_dir", "AUTOLEARN_WEIGHTS_DIR"),
    ("pretrained", "AUTOLEARN_PRETRAINED"),
    ("workers", "AUTOLEARN_WORKERS"),
    ("task_lease_secs", "AUTOLEARN_TASK_LEASE_SECS"),
    ("cf_builders", "AUTOLEARN_CF_BUILDERS"),
    ("min_task_minutes", "AUTOLEARN_MIN_TASK_MINUTES"),
    ("public_url", "AUTOLEARN_PUBLIC_URL"),
    ("preview_hours", "AUTOLEARN_PREVIEW_HOURS"),
    ("secure_cookies", "AUTOLEARN_SECURE_COOKIES"),
    ("train_memory_mb", "AUTOLEARN_TRAIN_MEMORY_MB"),
];

impl Config {
    /// Reads `file` (if given) and the process environment.
    pub fn load(file: Option<&Path>) -> anyhow::Result<Self> {
        let mut values = HashMap::new();
        if let Some(path) = file {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading config file {}", path.display()))?;
            values =
                parse_file(&text).with_context(|| format!("in config file {}", path.display()))?;
        }
        for (key, var) in KEYS {
            if let Ok(v) = std::env::var(var) {
                values.insert((*key).to_owned(), v);
            }
        }
        Self::from_values(&values)
    }

    /// Builds a configuration from key/value pairs (file keys), applying defaults.
    pub fn from_values(values: &HashMap<String, String>) -> anyhow::Result<Self> {
        let get = |k: &str| values.get(k).map(String::as_str).filter(|v| !v.is_empty());
        let addr = get("addr")
            .unwrap_or("127.0.0.1:8080")
            .parse()
            .context("addr / AUTOLEARN_ADDR must be host:port, e.g. 127.0.0.1:8080")?;
        let data_dir = PathBuf::from(get("data_dir").unwrap_or("./autolearn-data"));
        let data_roots = match get("data_roots") {
            Some(v) => std::env::split_paths(v).collect(),
            None => vec![data_dir.join(DATASETS_DIR)],
        };
        let s3_buckets = get("s3_buckets")
            .unwrap_or_default()
            .split([',', ' ', ':'])
            .filter(|b| !b.is_empty())
            .map(|b| {
                S3Scope::parse(b).map_err(|e| {
                    anyhow::anyhow!("s3_buckets / AUTOLEARN_S3_BUCKETS lists bucket or bucket/prefix entries: {e}")
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let s3 = match (get("aws_access_key_id"), get("aws_secret_access_key")) {
            (Some(id), Some(secret)) => Some(S3Config {
                endpoint: get("s3_endpoint").map(str::to_owned),
                region: get("s3_region").unwrap_or("us-east-1").to_owned(),
                access_key_id: id.to_owned(),
                secret_access_key: Secret(secret.to_owned()),
                path_style: get("s3_path_style").is_none_or(|v| v != "false" && v != "0"),
            }),
            (None, None) if get("s3_endpoint").is_some() => {
                bail!(
                    "AUTOLEARN_S3_ENDPOINT is set but AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY are not"
                )
            }
            (None, None) => None,
            _ => bail!("set both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or neither"),
        };
        let max_body_bytes = match get("max_body_bytes") {
            Some(v) => v
                .parse()
                .context("max_body_bytes must be a number of bytes")?,
            None => 2 * 1024 * 1024,
        };
        let number = |k: &str, default: f64| -> anyhow::Result<f64> {
            get(k).map_or(Ok(default), |v| {
                v.parse::<f64>()
                    .ok()
                    .filter(|n| n.is_finite() && *n >= 0.0)
                    .with_context(|| format!("{k} must be a non-negative number, not {v:?}"))
            })
        };
        let workers = number("workers", 1.0)? as usize;
        let task_lease_secs = (number("task_lease_secs", 60.0)? as i64).max(3);
        let cf_builders = number("cf_builders", 2.0)? as usize;
        let min_task_minutes = number("min_task_minutes", 10.0)?;
        let train_memory_bytes = (number("train_memory_mb", 4096.0)? * 1024.0 * 1024.0) as u64;
        let preview_hours = number("preview_hours", 24.0)?;
        if preview_hours <= 0.0 || preview_hours > shared::preview::MAX_EXPIRES_HOURS {
            bail!(
                "preview_hours must be above 0 and at most {}",
                shared::preview::MAX_EXPIRES_HOURS
            );
        }
        let pretrained = match get("pretrained").unwrap_or("imagenet") {
            "imagenet" => true,
            "none" => false,
            other => {
                bail!("pretrained / AUTOLEARN_PRETRAINED must be imagenet or none, not {other:?}")
            }
        };
        let secure_cookies = match get("secure_cookies").unwrap_or("auto") {
            "auto" => None,
            "true" | "1" => Some(true),
            "false" | "0" => Some(false),
            other => bail!(
                "secure_cookies / AUTOLEARN_SECURE_COOKIES must be auto, true or false, not {other:?}"
            ),
        };
        Ok(Self {
            train_memory_bytes,
            secure_cookies,
            pretrained,
            models_uri: get("models").map_or_else(
                || data_dir.join("models").display().to_string(),
                str::to_owned,
            ),
            weights_dir: get("weights_dir").map_or_else(|| data_dir.join("weights"), PathBuf::from),
            workers,
            task_lease_secs,
            cf_builders,
            min_task_minutes,
            public_url: get("public_url").map(|u| u.trim_end_matches('/').to_owned()),
            preview_hours,
            addr,
            data_dir,
            database_url: get("database_url").map(str::to_owned),
            data_roots,
            s3_buckets,
            s3,
            admin_password: get("admin_password").map(|s| Secret(s.to_owned())),
            secret: get("secret").map(|s| Secret(s.to_owned())),
            web_dir: PathBuf::from(get("web_dir").unwrap_or("dist")),
            max_body_bytes,
            log_filter: get("log").unwrap_or("info,sqlx=warn,aws=warn").to_owned(),
        })
    }

    /// Where users may index datasets from: the data roots and allowed buckets, never the
    /// data dir's own folders (thumbnails, models, the secret, the SQLite file) other than
    /// [`DATASETS_DIR`], the weights cache, a local models folder or the models prefix.
    pub fn dataset_roots(&self) -> DatasetRoots {
        let mut reserved_dirs = vec![self.data_dir.clone(), self.weights_dir.clone()];
        let mut reserved_s3 = Vec::new();
        if self.models_uri.starts_with("s3://") {
            reserved_s3.extend(S3Scope::parse(&self.models_uri).ok());
        } else {
            reserved_dirs.push(PathBuf::from(&self.models_uri));
        }
        DatasetRoots {
            dirs: self.data_roots.clone(),
            reserved_dirs,
            reserved_exceptions: vec![self.data_dir.join(DATASETS_DIR)],
            buckets: self.s3_buckets.clone(),
            reserved_s3,
        }
    }

    /// The database URL in use: the configured one or the embedded SQLite file.
    pub fn database_url(&self) -> String {
        self.database_url.clone().unwrap_or_else(|| {
            format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("autolearn.db").display()
            )
        })
    }
}

/// Parses the TOML file into string values; lists (for `data_roots`) are joined with `:`.
fn parse_file(text: &str) -> anyhow::Result<HashMap<String, String>> {
    let table: toml::Table = text.parse()?;
    let mut out = HashMap::new();
    for (k, v) in table {
        if !KEYS.iter().any(|(key, _)| *key == k) {
            let known: Vec<&str> = KEYS.iter().map(|(k, _)| *k).collect();
            bail!("unknown key {k:?}; known keys: {}", known.join(", "));
        }
        let s = match v {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            toml::Value::Array(items) => {
                let parts: Option<Vec<String>> = items
                    .into_iter()
                    .map(|i| i.as_str().map(str::to_owned))
                    .collect();
                parts
                    .with_context(|| format!("{k}: a list must hold strings"))?
                    .join(":")
            }
            other => bail!("{k}: unsupported value of type {}", other.type_str()),
        };
        out.insert(k, s);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_need_nothing_installed() {
        let c = Config::from_values(&HashMap::new()).unwrap();
        assert_eq!(c.addr.to_string(), "127.0.0.1:8080");
        assert!(
            c.database_url()
                .starts_with("sqlite://./autolearn-data/autolearn.db")
        );
        assert_eq!(
            c.data_roots,
            vec![PathBuf::from("./autolearn-data/datasets")]
        );
        assert!(c.s3_buckets.is_empty());
        assert!(c.s3.is_none());
    }

    #[test]
    fn file_keys_parse_and_unknown_keys_are_refused() {
        let v = parse_file("addr = \"0.0.0.0:9000\"\ndata_roots = [\"/a\", \"/b\"]\n").unwrap();
        let c = Config::from_values(&v).unwrap();
        assert_eq!(c.addr.port(), 9000);
        assert_eq!(c.data_roots, vec![PathBuf::from("/a"), PathBuf::from("/b")]);
        let err = parse_file("adr = \"x\"").unwrap_err().to_string();
        assert!(err.contains("unknown key \"adr\""), "{err}");
    }

    #[test]
    fn half_configured_s3_is_an_error() {
        let v = HashMap::from([("aws_access_key_id".to_owned(), "k".to_owned())]);
        assert!(Config::from_values(&v).is_err());
    }

    #[test]
    fn secrets_do_not_print() {
        assert_eq!(format!("{:?}", Secret("hunter2".into())), "Secret(***)");
    }
}
