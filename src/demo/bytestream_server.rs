//! The demo's built-in `google.bytestream.ByteStream` server: serves Reads of a few blobs over
//! h2c with the h2 crate (faultline *originates* HTTP/2 here, so it uses a real stack rather than
//! its own read-only frame layer), and remembers every Read it served with its offset.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Response};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::h2::bytestream::{ReadRequest, ReadResponse};
use crate::h2::grpc::{frame_message, MessageAssembler};

/// Bytes per ReadResponse message (what Bazel remote caches typically send).
pub(crate) const MESSAGE_SIZE: usize = 64 * 1024;
/// The largest request message the server reads (a ReadRequest is a name and two numbers).
const REQUEST_LIMIT: usize = 64 * 1024;

/// One Read the server was asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServedRead {
    /// The resource name asked for.
    pub resource: String,
    /// Its `read_offset`.
    pub offset: i64,
}

/// A running server: where it listens and what it served. Stops with its token.
#[derive(Debug)]
pub struct ByteStreamServer {
    /// Its loopback address.
    pub addr: SocketAddr,
    served: Arc<Mutex<Vec<ServedRead>>>,
    /// The accept loop.
    pub task: JoinHandle<()>,
}

impl ByteStreamServer {
    /// The Reads served so far, in the order they came.
    pub fn served(&self) -> Vec<ServedRead> {
        match self.served.lock() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

/// Serves `blobs` (resource name → bytes) on 127.0.0.1:0 until `shutdown`.
pub async fn start(
    blobs: HashMap<String, Bytes>,
    shutdown: CancellationToken,
) -> io::Result<ByteStreamServer> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let served = Arc::new(Mutex::new(Vec::new()));
    let blobs = Arc::new(blobs);
    let log = served.clone();
    let task = tokio::spawn(async move {
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let Ok((stream, _)) = accepted else { continue };
                    let blobs = blobs.clone();
                    let log = log.clone();
                    let stop = shutdown.clone();
                    tokio::spawn(async move {
                        tokio::select! {
                            () = connection(stream, blobs, log) => {}
                            () = stop.cancelled() => {}
                        }
                    });
                }
                () = shutdown.cancelled() => return,
            }
        }
    });
    Ok(ByteStreamServer { addr, served, task })
}

/// Serves one HTTP/2 connection: every stream is a call, handled in its own task.
async fn connection(
    stream: TcpStream,
    blobs: Arc<HashMap<String, Bytes>>,
    log: Arc<Mutex<Vec<ServedRead>>>,
) {
    let mut conn = match ::h2::server::handshake(stream).await {
        Ok(conn) => conn,
        Err(e) => {
            debug!(error = %e, "demo ByteStream server: handshake failed");
            return;
        }
    };
    while let Some(Ok((request, respond))) = conn.accept().await {
        let blobs = blobs.clone();
        let log = log.clone();
        tokio::spawn(async move {
            if let Err(e) = call(request, respond, &blobs, &log).await {
                // A reset stream (the demo's fault) ends here: the client reads again.
                debug!(error = %e, "demo ByteStream server: call ended early");
            }
        });
    }
}

/// Answers one call: a Read of a known blob from its `read_offset`; anything else gets a
/// trailers-only status.
async fn call(
    request: http::Request<::h2::RecvStream>,
    mut respond: ::h2::server::SendResponse<Bytes>,
    blobs: &HashMap<String, Bytes>,
    log: &Mutex<Vec<ServedRead>>,
) -> Result<(), ::h2::Error> {
    let is_read = request.uri().path() == "/google.bytestream.ByteStream/Read";
    let mut body = request.into_body();
    let mut assembler = MessageAssembler::new(REQUEST_LIMIT);
    let mut at = 0u64;
    let mut first = None;
    while let Some(chunk) = body.data().await {
        let chunk = chunk?;
        let _ = body.flow_control().release_capacity(chunk.len());
        if first.is_none() {
            first = assembler
                .feed(at, &chunk)
                .ok()
                .and_then(|done| done.into_iter().next());
        }
        at += chunk.len() as u64;
    }
    let read = first.and_then(|m| ReadRequest::parse(&m.body).ok());
    let (read, blob) = match read {
        Some(read) if is_read => {
            let blob = blobs.get(&read.resource_name).cloned();
            (read, blob)
        }
        _ => return status_only(respond, 12, "only ByteStream Read is served here"),
    };
    let Some(blob) = blob else {
        return status_only(respond, 5, "no such blob");
    };
    if let Ok(mut served) = log.lock() {
        served.push(ServedRead {
            resource: read.resource_name.clone(),
            offset: read.read_offset,
        });
    }
    let start = usize::try_from(read.read_offset.max(0))
        .unwrap_or(usize::MAX)
        .min(blob.len());
    let mut send = respond.send_response(grpc_head(), false)?;
    for piece in blob[start..].chunks(MESSAGE_SIZE) {
        send.send_data(
            Bytes::from(frame_message(&ReadResponse::encode(piece))),
            false,
        )?;
    }
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from_static("0"));
    send.send_trailers(trailers)
}

/// `200` with `content-type: application/grpc`.
fn grpc_head() -> Response<()> {
    let mut response = Response::new(());
    response
        .headers_mut()
        .insert("content-type", HeaderValue::from_static("application/grpc"));
    response
}

/// A trailers-only answer with `code`.
fn status_only(
    mut respond: ::h2::server::SendResponse<Bytes>,
    code: u32,
    message: &'static str,
) -> Result<(), ::h2::Error> {
    let mut response = grpc_head();
    let headers = response.headers_mut();
    headers.insert("grpc-status", HeaderValue::from(code));
    headers.insert("grpc-message", HeaderValue::from_static(message));
    respond.send_response(response, true).map(|_| ())
}
