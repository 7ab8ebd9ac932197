//! A response body that streams a stored file from disk in bounded chunks.
//!
//! Stored objects can be far larger than memory should hold, so a GET reads the file piece by piece as
//! hyper asks for frames instead of loading it whole. The length is fixed when the file is opened;
//! if the file shrinks while being sent the body fails, so hyper aborts the connection rather than
//! sending fewer bytes than the Content-Length it promised.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, ReadBuf};

/// Largest frame handed to hyper at once.
const CHUNK_BYTES: usize = 64 * 1024;

/// Streams exactly `len` bytes of an open file.
#[derive(Debug)]
pub struct FileBody {
    file: tokio::fs::File,
    remaining: u64,
    buf: Vec<u8>,
    /// Bytes sent after the file's (see [`FileBody::with_trailer`]).
    trailer: Option<Bytes>,
}

impl FileBody {
    /// Serves `len` bytes from the current position of `file`; `len` becomes the Content-Length.
    pub fn new(file: tokio::fs::File, len: u64) -> Self {
        let cap = usize::try_from(len).map_or(CHUNK_BYTES, |len| len.min(CHUNK_BYTES));
        Self {
            file,
            remaining: len,
            buf: vec![0; cap],
            trailer: None,
        }
    }

    /// Sends `trailer` after the file's bytes (the closing blocks of a capture copy served while
    /// it is still being written).
    pub fn with_trailer(mut self, trailer: Bytes) -> Self {
        self.trailer = (!trailer.is_empty()).then_some(trailer);
        self
    }
}

impl Body for FileBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        if this.remaining == 0 {
            return Poll::Ready(this.trailer.take().map(|t| Ok(Frame::data(t))));
        }
        let want =
            usize::try_from(this.remaining).map_or(this.buf.len(), |r| r.min(this.buf.len()));
        let mut read_buf = ReadBuf::new(&mut this.buf[..want]);
        ready!(Pin::new(&mut this.file).poll_read(cx, &mut read_buf))?;
        let filled = read_buf.filled();
        if filled.is_empty() {
            return Poll::Ready(Some(Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "stored file shrank while being sent: {} bytes missing",
                    this.remaining
                ),
            ))));
        }
        this.remaining -= filled.len() as u64;
        Poll::Ready(Some(Ok(Frame::data(Bytes::copy_from_slice(filled)))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0 && self.trailer.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        let trailer = self.trailer.as_ref().map_or(0, |t| t.len() as u64);
        SizeHint::with_exact(self.remaining + trailer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_dir::TestDir;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn streams_exactly_len_bytes() {
        let dir = TestDir::new("file-body");
        let path = dir.path().join("f");
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &data).expect("write");
        let file = tokio::fs::File::open(&path).await.expect("open");
        let body = FileBody::new(file, data.len() as u64);
        assert_eq!(body.size_hint().exact(), Some(data.len() as u64));
        let got = body.collect().await.expect("collect").to_bytes();
        assert_eq!(got.as_ref(), data.as_slice());
    }

    #[tokio::test]
    async fn shrunk_file_is_an_error() {
        let dir = TestDir::new("file-body-shrunk");
        let path = dir.path().join("f");
        std::fs::write(&path, b"abc").expect("write");
        let file = tokio::fs::File::open(&path).await.expect("open");
        let err = FileBody::new(file, 10).collect().await.expect_err("short");
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[tokio::test]
    async fn empty_file_is_an_empty_body() {
        let dir = TestDir::new("file-body-empty");
        let path = dir.path().join("f");
        std::fs::write(&path, b"").expect("write");
        let file = tokio::fs::File::open(&path).await.expect("open");
        let body = FileBody::new(file, 0);
        assert!(body.is_end_stream());
        let got = body.collect().await.expect("collect").to_bytes();
        assert!(got.is_empty());
    }
}
