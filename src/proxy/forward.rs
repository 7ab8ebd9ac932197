//! Forward-proxy routing: read a client's first request head to learn where it wants to go
//! (absolute-form `GET http://host:port/…` or `CONNECT host:port`), and connect there.
//!
//! The bytes read to decide are replayed to the pump afterwards, never lost; an absolute-form
//! request is forwarded byte for byte (origin servers must accept absolute-form, RFC 9112 §3.2.2).

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::AsyncReadExt;
use tokio::net::{lookup_host, TcpStream};
use tokio::time::timeout;

use crate::http::authority::{authority_of, split_host_port};
use crate::http::RequestHead;

/// Largest request head faultline waits for before routing.
const MAX_HEAD: usize = 64 * 1024;
/// How long a client may take to send its first request head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the chosen upstream may take to accept.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where a forward-proxy connection goes.
#[derive(Debug)]
pub struct Routed {
    /// The connected upstream leg.
    pub upstream: TcpStream,
    /// `host:port` as the client named it.
    pub target: String,
    /// Bytes already read from the client that must still be relayed.
    pub replay: Bytes,
    /// Bytes read from the client that faultline consumed itself (the CONNECT head).
    pub consumed: Bytes,
    /// `CONNECT`: the connection is a raw tunnel from now on; `reply` must go to the client.
    pub tunnel: bool,
    /// Bytes faultline must send the client before relaying (the CONNECT `200`).
    pub reply: Option<Vec<u8>>,
}

/// Why a client could not be routed, with the answer it gets.
#[derive(Debug)]
pub struct Refusal {
    /// The answer's status: 4xx (and 508, a request for faultline itself) for the client's
    /// own mistakes, 502 when the origin cannot be reached.
    pub status: u16,
    /// Status line and body for the client.
    pub response: Vec<u8>,
    /// What happened, for logs and the capture.
    pub reason: String,
    /// What faultline read from the client before it refused (the request it could not
    /// route): the capture's client leg holds it before the answer.
    pub read: Bytes,
}

impl Refusal {
    fn new(status: u16, reason: String) -> Self {
        Refusal {
            status,
            response: crate::http::answer::plain_answer(status, &reason),
            reason,
            read: Bytes::new(),
        }
    }

    /// Whether the origin failed (the run's upstream failures count it), not the client's
    /// request.
    pub fn is_upstream_failure(&self) -> bool {
        matches!(self.status, 502..=504)
    }
}

/// Reads the first request head from `client` and connects where it says; `own` is faultline's
/// listen address, so a request for it is refused instead of looping forever.
pub async fn route(client: &mut TcpStream, own: SocketAddr) -> Result<Routed, Refusal> {
    let mut buf = BytesMut::with_capacity(4096);
    match route_head(client, own, &mut buf).await {
        Ok((head, target, upstream)) => Ok(routed(head, target, upstream, buf.freeze())),
        Err(mut refusal) => {
            refusal.read = buf.freeze();
            Err(refusal)
        }
    }
}

/// Reads the first request head into `buf` and connects where it names.
async fn route_head(
    client: &mut TcpStream,
    own: SocketAddr,
    buf: &mut BytesMut,
) -> Result<(RequestHead, String, TcpStream), Refusal> {
    let head = timeout(HEAD_TIMEOUT, async {
        loop {
            if let Some(head) = RequestHead::parse(buf, 100)
                .map_err(|e| Refusal::new(400, format!("not an HTTP/1 request: {e}")))?
            {
                return Ok(head);
            }
            if buf.len() >= MAX_HEAD {
                return Err(Refusal::new(431, "request head too large".to_string()));
            }
            match client.read_buf(buf).await {
                Ok(0) => {
                    return Err(Refusal::new(
                        400,
                        "client closed before a request head".to_string(),
                    ))
                }
                Ok(_) => {}
                Err(e) => {
                    return Err(Refusal::new(
                        400,
                        format!("reading the request failed: {e}"),
                    ))
                }
            }
        }
    })
    .await
    .map_err(|_| Refusal::new(408, format!("no request head within {HEAD_TIMEOUT:?}")))??;

    let tunnel = head.method == "CONNECT";
    let target = if tunnel {
        // CONNECT names host AND port (RFC 9110 §9.3.6): a trial's `CONNECT 127.0.0.1` met
        // "cannot connect to 127.0.0.1: Connection refused", port 80 tried without a word.
        if split_host_port(&head.target, 0).is_none_or(|(_, port)| port == 0) {
            return Err(Refusal::new(
                400,
                format!(
                    "CONNECT needs host:port (RFC 9110 §9.3.6), got {:?}",
                    head.target
                ),
            ));
        }
        head.target.clone()
    } else {
        authority_of(&head.target).ok_or_else(|| {
            Refusal::new(
                400,
                format!(
                    "faultline is a forward proxy here: use an absolute-form target (http://host:port/path), got {:?}",
                    head.target
                ),
            )
        })?
    };
    let upstream = connect_origin(&target, own).await?;
    Ok((head, target, upstream))
}

/// The routed connection: what was read is replayed upstream, but a CONNECT's own head.
fn routed(head: RequestHead, target: String, upstream: TcpStream, read: Bytes) -> Routed {
    let tunnel = head.method == "CONNECT";
    let mut replay = read;
    let mut consumed = Bytes::new();
    let mut reply = None;
    if tunnel {
        // The CONNECT head is for faultline; only what follows belongs to the tunnel.
        consumed = replay.split_to(head.head_len.min(replay.len()));
        reply = Some(b"HTTP/1.1 200 Connection Established\r\n\r\n".to_vec());
    }
    Routed {
        upstream,
        target,
        replay,
        consumed,
        tunnel,
        reply,
    }
}

/// Connects to the origin `target` (`host:port`, port 80 when absent) a client named, unless it
/// is faultline itself (`own`): also used when a kept-alive client asks for another origin.
pub async fn connect_origin(target: &str, own: SocketAddr) -> Result<TcpStream, Refusal> {
    let (host, port) = split_host_port(target, 80)
        .ok_or_else(|| Refusal::new(400, format!("bad target authority {target:?}")))?;
    let addrs: Vec<SocketAddr> = lookup_host((host.as_str(), port))
        .await
        .map_err(|e| Refusal::new(502, format!("cannot resolve {host}: {e}")))?
        .collect();
    if addrs.iter().any(|a| is_self(*a, own)) {
        return Err(Refusal::new(508, format!("{target} is faultline itself")));
    }
    connect_any(&addrs)
        .await
        .map_err(|e| Refusal::new(502, format!("cannot connect to {target}: {e}")))
}

async fn connect_any(addrs: &[SocketAddr]) -> io::Result<TcpStream> {
    let mut last = io::Error::new(io::ErrorKind::NotFound, "no address");
    for addr in addrs {
        match timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => return Ok(stream),
            Ok(Err(e)) => last = e,
            Err(_) => last = io::Error::new(io::ErrorKind::TimedOut, "connect timed out"),
        }
    }
    Err(last)
}

/// Whether connecting to `addr` would reach faultline's own listener. Connecting to `0.0.0.0`
/// or `::` reaches this host, and `::ffff:127.0.0.1` is 127.0.0.1: both are loopback here
/// (`CONNECT 0.0.0.0:PORT` once tunnelled faultline into itself).
fn is_self(addr: SocketAddr, own: SocketAddr) -> bool {
    let ip = addr.ip().to_canonical();
    let own_ip = own.ip().to_canonical();
    let local = |ip: std::net::IpAddr| ip.is_loopback() || ip.is_unspecified();
    addr.port() == own.port()
        && (ip == own_ip || own_ip.is_unspecified() || (local(ip) && local(own_ip)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_address_is_recognised_on_loopback_and_wildcard() {
        let own: SocketAddr = "127.0.0.1:3030".parse().expect("addr");
        assert!(is_self("127.0.0.1:3030".parse().expect("addr"), own));
        assert!(is_self("127.0.0.2:3030".parse().expect("addr"), own));
        assert!(!is_self("127.0.0.1:3031".parse().expect("addr"), own));
        let any: SocketAddr = "0.0.0.0:3030".parse().expect("addr");
        assert!(is_self("127.0.0.1:3030".parse().expect("addr"), any));
        // Reached this host by other spellings, and were tunnelled into faultline itself.
        for spelling in [
            "0.0.0.0:3030",
            "[::]:3030",
            "[::ffff:127.0.0.1]:3030",
            "[::1]:3030",
        ] {
            assert!(is_self(spelling.parse().expect("addr"), own), "{spelling}");
        }
        assert!(!is_self(
            "[::ffff:10.0.0.1]:3030".parse().expect("addr"),
            own
        ));
    }
}
