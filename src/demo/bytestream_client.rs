//! The demo's built-in ByteStream readers (h2 crate, one HTTP/2 connection, every blob read at
//! once): one resumes a failed Read from the bytes it has (`read_offset` = bytes received, the
//! correct way), one restarts at offset 0 and appends what comes to what it had (a bug seen in
//! real clients: the blob comes out longer and wrong).

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use tokio::net::TcpStream;
use tokio::time::timeout;

use crate::h2::bytestream::{ReadRequest, ReadResponse};
use crate::h2::grpc::{frame_message, MessageAssembler};

/// How a reader tries again after a Read failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadStyle {
    /// Asks for `read_offset` = the bytes it already has.
    Resume,
    /// Asks for the whole blob again and appends it to what it had.
    RestartAtZero,
}

/// One Read of one blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadAttempt {
    /// The `read_offset` asked for.
    pub offset: u64,
    /// Data bytes received.
    pub received: u64,
    /// `Ok` (grpc-status 0) or why the Read failed.
    pub outcome: Result<(), String>,
}

/// What a reader made of one blob.
#[derive(Debug, Clone)]
pub struct BlobRead {
    /// The resource name.
    pub resource: String,
    /// Every Read, in order.
    pub attempts: Vec<ReadAttempt>,
    /// The bytes it assembled.
    pub bytes: Vec<u8>,
}

/// Bound on each Read, so the demo always ends.
const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Reads per blob at most.
const MAX_ATTEMPTS: usize = 3;
/// The largest response message the reader accepts.
const MESSAGE_LIMIT: usize = 4 * 1024 * 1024;

/// Reads every blob named in `resources` at once over one HTTP/2 connection to `target`,
/// retrying failed Reads in `style`. Fails only when the connection cannot be opened.
pub async fn read_all(
    target: SocketAddr,
    resources: &[String],
    style: ReadStyle,
) -> Result<Vec<BlobRead>, String> {
    let tcp = TcpStream::connect(target)
        .await
        .map_err(|e| format!("connect to {target}: {e}"))?;
    let _ = tcp.set_nodelay(true);
    let (client, connection) = ::h2::client::handshake(tcp)
        .await
        .map_err(|e| format!("HTTP/2 handshake with {target}: {e}"))?;
    let driver = tokio::spawn(connection);
    let mut reads = tokio::task::JoinSet::new();
    for (i, resource) in resources.iter().enumerate() {
        let client = client.clone();
        let resource = resource.clone();
        reads.spawn(async move { (i, read_blob(client, resource, style).await) });
    }
    let mut done: Vec<(usize, BlobRead)> = Vec::new();
    while let Some(joined) = reads.join_next().await {
        match joined {
            Ok(read) => done.push(read),
            Err(e) => return Err(format!("a reader task failed: {e}")),
        }
    }
    drop(client);
    driver.abort();
    done.sort_by_key(|(i, _)| *i);
    Ok(done.into_iter().map(|(_, read)| read).collect())
}

/// Reads one blob to its end (or `MAX_ATTEMPTS` Reads).
async fn read_blob(
    client: ::h2::client::SendRequest<Bytes>,
    resource: String,
    style: ReadStyle,
) -> BlobRead {
    let mut read = BlobRead {
        resource,
        attempts: Vec::new(),
        bytes: Vec::new(),
    };
    for _ in 0..MAX_ATTEMPTS {
        let offset = match style {
            ReadStyle::Resume => read.bytes.len() as u64,
            ReadStyle::RestartAtZero => 0,
        };
        let before = read.bytes.len();
        let outcome = match timeout(
            READ_TIMEOUT,
            one_read(client.clone(), &read.resource, offset, &mut read.bytes),
        )
        .await
        {
            Ok(outcome) => outcome,
            Err(_) => Err(format!("no answer within {READ_TIMEOUT:?}")),
        };
        let ok = outcome.is_ok();
        read.attempts.push(ReadAttempt {
            offset,
            received: (read.bytes.len() - before) as u64,
            outcome,
        });
        if ok {
            break;
        }
    }
    read
}

/// One Read call from `offset`, appending the data it receives to `into`.
async fn one_read(
    client: ::h2::client::SendRequest<Bytes>,
    resource: &str,
    offset: u64,
    into: &mut Vec<u8>,
) -> Result<(), String> {
    let request = Request::post("http://faultline.demo/google.bytestream.ByteStream/Read")
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .map_err(|e| e.to_string())?;
    let message = ReadRequest {
        resource_name: resource.to_string(),
        read_offset: i64::try_from(offset).unwrap_or(i64::MAX),
        read_limit: 0,
    }
    .encode();
    let mut ready = client.ready().await.map_err(|e| e.to_string())?;
    let (response, mut send) = ready
        .send_request(request, false)
        .map_err(|e| e.to_string())?;
    send.send_data(Bytes::from(frame_message(&message)), true)
        .map_err(|e| e.to_string())?;
    let response = response.await.map_err(|e| e.to_string())?;
    if let Some(status) = grpc_status(response.headers()) {
        // Trailers-only: the call ended before any message.
        return status_result(status);
    }
    let mut body = response.into_body();
    let mut assembler = MessageAssembler::new(MESSAGE_LIMIT);
    let mut at = 0u64;
    while let Some(chunk) = body.data().await {
        let chunk = chunk.map_err(|e| e.to_string())?;
        let _ = body.flow_control().release_capacity(chunk.len());
        let messages = assembler.feed(at, &chunk).map_err(|e| e.to_string())?;
        at += chunk.len() as u64;
        for message in messages {
            let data = ReadResponse::parse(&message.body).map_err(|e| e.to_string())?;
            into.extend_from_slice(message.body.get(data.data).unwrap_or_default());
        }
    }
    let trailers = body.trailers().await.map_err(|e| e.to_string())?;
    match trailers.as_ref().and_then(grpc_status) {
        Some(status) => status_result(status),
        None => Err("the stream ended without grpc-status".to_string()),
    }
}

fn grpc_status(headers: &http::HeaderMap) -> Option<u32> {
    headers
        .get("grpc-status")?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

fn status_result(status: u32) -> Result<(), String> {
    if status == 0 {
        Ok(())
    } else {
        Err(format!("grpc-status {status}"))
    }
}
