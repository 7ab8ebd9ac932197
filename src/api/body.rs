//! The bodies the API answers with: a whole buffer, a stream of chunks (Server-Sent Events) or a
//! file read as hyper asks (a capture).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tokio::sync::mpsc;

use crate::store::file_body::FileBody;

/// A response body of the API.
#[derive(Debug)]
pub enum ApiBody {
    /// All of it at once (`None` once sent, or for an empty body).
    Full(Option<Bytes>),
    /// Chunks as they come, until the sender is dropped.
    Stream(mpsc::Receiver<Bytes>),
    /// A file, streamed.
    File(FileBody),
}

impl ApiBody {
    /// A body of `bytes` (empty bytes make an empty body).
    pub fn full(bytes: impl Into<Bytes>) -> Self {
        let bytes = bytes.into();
        ApiBody::Full((!bytes.is_empty()).then_some(bytes))
    }
}

impl Body for ApiBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        match self.get_mut() {
            ApiBody::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            ApiBody::Stream(rx) => rx
                .poll_recv(cx)
                .map(|chunk| chunk.map(|b| Ok(Frame::data(b)))),
            ApiBody::File(file) => Pin::new(file).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ApiBody::Full(bytes) => bytes.is_none(),
            ApiBody::Stream(_) => false,
            ApiBody::File(file) => file.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ApiBody::Full(Some(bytes)) => SizeHint::with_exact(bytes.len() as u64),
            ApiBody::Full(None) => SizeHint::with_exact(0),
            ApiBody::Stream(_) => SizeHint::default(),
            ApiBody::File(file) => file.size_hint(),
        }
    }
}
