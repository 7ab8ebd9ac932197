//! The demo's built-in HTTP upload clients: one rewinds its body before a retry (correct), one
//! retries from wherever its body reader stopped (the bug behind the DVC reports).

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

/// How a client retries a failed upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryStyle {
    /// Seeks the body back to the start: the retry sends the same bytes.
    Rewind,
    /// Keeps reading the same stream: the retry sends whatever the reader had not consumed yet.
    ContinueReader,
}

/// What one attempt of an upload saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// Body bytes this attempt sent.
    pub sent: usize,
    /// The response status, or why there was none.
    pub outcome: Result<u16, String>,
}

/// Bound on each attempt, so the demo always ends.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// How many times a client tries an upload.
const MAX_ATTEMPTS: usize = 3;
/// The size of each read from the body "file".
const READ_SIZE: usize = 64 * 1024;

/// Uploads `body` with PUT to `path` through `proxy`, retrying failures in `style`. Returns every
/// attempt in order.
pub async fn upload(proxy: SocketAddr, path: &str, body: &[u8], style: RetryStyle) -> Vec<Attempt> {
    let mut attempts = Vec::new();
    // The body "file" and how far its reader got: a rewinding client resets this on retry.
    let mut reader_position = 0usize;
    for _ in 0..MAX_ATTEMPTS {
        if style == RetryStyle::Rewind {
            reader_position = 0;
        }
        let remaining = &body[reader_position.min(body.len())..];
        let (consumed, outcome) =
            match timeout(ATTEMPT_TIMEOUT, put_once(proxy, path, remaining)).await {
                Ok(result) => result,
                Err(_) => (0, Err(format!("timed out after {ATTEMPT_TIMEOUT:?}"))),
            };
        reader_position += consumed;
        let done = matches!(outcome, Ok(status) if (200..300).contains(&status));
        attempts.push(Attempt {
            sent: consumed,
            outcome,
        });
        if done {
            break;
        }
    }
    attempts
}

/// One PUT on a fresh connection. Returns how many body bytes the reader consumed (what was
/// handed to the socket) and the status or the error.
async fn put_once(proxy: SocketAddr, path: &str, body: &[u8]) -> (usize, Result<u16, String>) {
    let mut stream = match TcpStream::connect(proxy).await {
        Ok(s) => s,
        Err(e) => return (0, Err(format!("connect: {e}"))),
    };
    let head = format!(
        "PUT {path} HTTP/1.1\r\nHost: {proxy}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    if let Err(e) = stream.write_all(head.as_bytes()).await {
        return (0, Err(format!("sending the head: {e}")));
    }
    let mut consumed = 0;
    for piece in body.chunks(READ_SIZE) {
        if let Err(e) = stream.write_all(piece).await {
            return (consumed, Err(format!("sending the body: {e}")));
        }
        consumed += piece.len();
    }
    (consumed, read_status(&mut stream).await)
}

/// Reads a response until its status line is complete, then drains the rest.
async fn read_status(stream: &mut TcpStream) -> Result<u16, String> {
    let mut response = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => response.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {
                return Err("connection reset (RST)".to_string())
            }
            Err(e) => return Err(e.to_string()),
        }
    }
    let line = response.split(|&b| b == b'\r').next().unwrap_or_default();
    let text = String::from_utf8_lossy(line);
    text.split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| "no HTTP response".to_string())
}
