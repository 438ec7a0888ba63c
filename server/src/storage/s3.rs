//! Any S3-compatible server (AWS S3, Alibaba OSS, MinIO, Garage) through aws-sdk-s3.

use aws_sdk_s3::Client;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;

use super::{MAX_OBJECTS, ObjectInfo, StorageError, StorageResult};
use crate::config::S3Config;

pub fn client(cfg: &S3Config) -> Client {
    let creds = Credentials::new(
        cfg.access_key_id.clone(),
        cfg.secret_access_key.0.clone(),
        None,
        None,
        "autolearn-config",
    );
    let mut b = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(cfg.region.clone()))
        .credentials_provider(creds)
        .force_path_style(cfg.path_style);
    if let Some(endpoint) = &cfg.endpoint {
        b = b.endpoint_url(endpoint);
    }
    Client::from_conf(b.build())
}

#[derive(Debug, Clone)]
pub struct S3Store {
    client: Client,
    bucket: String,
    /// Empty or ending in `/`.
    prefix: String,
}

fn s3_err(e: impl std::error::Error) -> StorageError {
    // The SDK's Display is terse ("service error"); the source chain says what happened.
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    // The SDK's "dispatch failure" is a request that never got an answer.
    if msg.starts_with("dispatch failure") || msg.contains("timed out") {
        return StorageError::Unreachable(msg);
    }
    StorageError::S3(msg)
}

impl S3Store {
    pub fn new(client: Client, bucket: String, prefix: String) -> Self {
        Self {
            client,
            bucket,
            prefix,
        }
    }

    fn full_key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    pub async fn list(&self) -> StorageResult<Vec<ObjectInfo>> {
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(&self.prefix)
            .into_paginator()
            .send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(s3_err)?;
            for obj in page.contents() {
                let Some(key) = obj.key().and_then(|k| k.strip_prefix(&self.prefix)) else {
                    continue;
                };
                // "Directory" marker objects end in '/': not images.
                if key.is_empty() || key.ends_with('/') {
                    continue;
                }
                let size = obj.size().unwrap_or(0).max(0).cast_unsigned();
                out.push(ObjectInfo {
                    key: key.to_owned(),
                    size,
                });
            }
            if out.len() > MAX_OBJECTS {
                return Err(StorageError::BadPath(format!(
                    "s3://{}/{} holds more than {MAX_OBJECTS} objects; index a smaller prefix",
                    self.bucket, self.prefix
                )));
            }
        }
        Ok(out)
    }

    pub async fn read_prefix(&self, key: &str, len: u64) -> StorageResult<Bytes> {
        if len == 0 {
            return Ok(Bytes::new());
        }
        let res = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(self.full_key(key))
            .range(format!("bytes=0-{}", len - 1))
            .send()
            .await;
        match res {
            Ok(out) => Ok(out.body.collect().await.map_err(s3_err)?.into_bytes()),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => {
                Err(StorageError::NotFound(key.to_owned()))
            }
            // An empty object has no byte 0: a range request on it is "not satisfiable".
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 416) => {
                Ok(Bytes::new())
            }
            Err(e) => Err(s3_err(e)),
        }
    }

    pub async fn read(&self, key: &str, limit: u64) -> StorageResult<Bytes> {
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(self.full_key(key))
            .send()
            .await
            .map_err(|e| {
                if e.as_service_error().is_some_and(|s| s.is_no_such_key()) {
                    StorageError::NotFound(key.to_owned())
                } else {
                    s3_err(e)
                }
            })?;
        let size = out.content_length().unwrap_or(0).max(0).cast_unsigned();
        if size > limit {
            return Err(StorageError::TooLarge {
                key: key.to_owned(),
                size,
                limit,
            });
        }
        Ok(out.body.collect().await.map_err(s3_err)?.into_bytes())
    }

    pub async fn put(&self, key: &str, data: Bytes) -> StorageResult<()> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(self.full_key(key))
            .body(ByteStream::from(data))
            .send()
            .await
            .map_err(s3_err)?;
        Ok(())
    }

    /// Creates the bucket if it does not exist yet.
    pub async fn delete(&self, key: &str) -> StorageResult<()> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(self.full_key(key))
            .send()
            .await
            .map_err(s3_err)?;
        Ok(())
    }

    pub async fn ensure_bucket(&self) -> StorageResult<()> {
        if self
            .client
            .head_bucket()
            .bucket(&self.bucket)
            .send()
            .await
            .is_ok()
        {
            return Ok(());
        }
        self.client
            .create_bucket()
            .bucket(&self.bucket)
            .send()
            .await
            .map_err(s3_err)?;
        Ok(())
    }
}
