//! Request bodies read as they arrive: a blocking parser (on a `spawn_blocking` thread)
//! pulls the body through [`BodyReader`], a `std::io::Read`, while a small task feeds it the
//! body's chunks. At most a few chunks are held at a time, whatever the upload's size, and a
//! body past its limit fails the read as soon as the limit is crossed.

use std::io::{self, Read};

use axum::body::{Body, Bytes};
use futures_util::StreamExt;
use tokio::sync::mpsc;

/// Chunks waiting for the parser: enough to keep it busy, few enough to bound memory.
const CHUNKS_IN_FLIGHT: usize = 8;

/// The read error of a body that went past its limit (see [`too_large`]).
#[derive(Debug, thiserror::Error)]
#[error("the upload is larger than {0} bytes")]
pub struct TooLarge(pub usize);

/// Whether a read error is a body past its limit.
pub fn too_large(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<TooLarge>())
}

/// A request body as a blocking reader; call `read` only off the async runtime.
pub struct BodyReader {
    chunks: mpsc::Receiver<io::Result<Bytes>>,
    current: Bytes,
}

impl BodyReader {
    /// Starts feeding `body` (at most `limit` bytes) to the reader it returns. The feeding
    /// task ends when the body ends, fails or goes past the limit, or the reader is dropped.
    pub fn new(body: Body, limit: usize) -> Self {
        let (tx, rx) = mpsc::channel(CHUNKS_IN_FLIGHT);
        tokio::spawn(async move {
            let mut stream = body.into_data_stream();
            let mut total = 0usize;
            while let Some(chunk) = stream.next().await {
                let item = match chunk {
                    Ok(b) => {
                        total = total.saturating_add(b.len());
                        if total > limit {
                            Err(io::Error::new(io::ErrorKind::InvalidData, TooLarge(limit)))
                        } else {
                            Ok(b)
                        }
                    }
                    Err(e) => Err(io::Error::other(e)),
                };
                let failed = item.is_err();
                if tx.send(item).await.is_err() || failed {
                    return;
                }
            }
        });
        Self {
            chunks: rx,
            current: Bytes::new(),
        }
    }
}

impl Read for BodyReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.chunks.blocking_recv() {
                Some(Ok(b)) => self.current = b,
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunked(parts: &[&'static str]) -> Body {
        let chunks: Vec<Result<Bytes, io::Error>> = parts
            .iter()
            .map(|p| Ok(Bytes::from_static(p.as_bytes())))
            .collect();
        Body::from_stream(futures_util::stream::iter(chunks))
    }

    #[tokio::test]
    async fn a_chunked_body_reads_whole_and_a_long_one_fails_at_its_limit() {
        let mut reader = BodyReader::new(chunked(&["user_id,", "item_ids\nu1", ",a\n"]), 100);
        let text = tokio::task::spawn_blocking(move || {
            let mut s = String::new();
            reader.read_to_string(&mut s).map(|_| s)
        })
        .await
        .unwrap()
        .unwrap();
        assert_eq!(text, "user_id,item_ids\nu1,a\n");

        let mut reader = BodyReader::new(chunked(&["0123456789", "0123456789", "01"]), 20);
        let e = tokio::task::spawn_blocking(move || reader.read_to_end(&mut Vec::new()))
            .await
            .unwrap()
            .unwrap_err();
        assert!(too_large(&e), "{e}");
    }
}
