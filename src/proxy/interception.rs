//! TLS interception of one connection: read the ClientHello, terminate the client's TLS and open
//! TLS to the upstream (ALPN mirrored), and deal with the clients that cannot be intercepted: a
//! refused server name, an upstream that failed TLS (a `502`, or its HTTP/2 form for h2-only
//! clients), a client whose own handshake fails.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{timeout, Duration, Instant};
use tracing::{debug, warn};

use super::connection::ConnectionShared;
use super::ending::{close_cleanly, FinRecord};
use super::leg_stream::LegStream;
use super::record_tap::{BareEnds, RecordTap};
use super::socket::abort;
use super::Upstream;
use crate::capture::Leg;
use crate::direction::Direction;
use crate::h2::refusing_server::RefusingServer;
use crate::tls::client_hello::MAX_CLIENT_HELLO;
use crate::tls::intercept::{error_alpn, fallback_name, upstream_server_name};
use crate::tls::{
    bad_gateway_response, peek_client_hello, ClientFailure, ClientHelloInfo, Interceptor, LeafName,
    Peek, Replay,
};

/// How long a client may take to send its ClientHello when rules need it (a rule with `sni`,
/// TLS interception) before the connection goes on without it.
const CLIENT_HELLO_TIMEOUT: Duration = Duration::from_secs(5);

/// What was read from the client before relaying started.
pub(super) struct FirstBytes {
    /// The bytes read to see the ClientHello (relayed first, or replayed into TLS).
    pub(super) peeked: Bytes,
    /// The ClientHello they hold, when the connection is TLS.
    pub(super) hello: Option<ClientHelloInfo>,
}

/// Reads until the first bytes (after `already`, read earlier) say whether the client speaks
/// TLS (bounded in time and size). With `intercepting`, a ClientHello faultline cannot read is a
/// warning: that connection escapes interception, so no rule sees its HTTP.
pub(super) async fn read_client_hello(
    client: &mut TcpStream,
    already: &[u8],
    intercepting: bool,
) -> (Bytes, Option<ClientHelloInfo>) {
    let mut buf = bytes::BytesMut::with_capacity(4096);
    buf.extend_from_slice(already);
    let reading = async {
        loop {
            match peek_client_hello(&buf) {
                Peek::Tls(info) => return Some(info),
                Peek::NotTls => return None,
                Peek::Malformed(why) if intercepting => {
                    warn!(
                        why,
                        "TLS ClientHello faultline cannot read: not intercepted, relayed to the upstream unchanged (no rule sees its HTTP)"
                    );
                    return None;
                }
                Peek::Malformed(why) => {
                    debug!(
                        why,
                        "TLS records, but no ClientHello faultline can read; relayed as bytes"
                    );
                    return None;
                }
                Peek::NeedMore if buf.len() >= MAX_CLIENT_HELLO => return None,
                Peek::NeedMore => {}
            }
            match client.read_buf(&mut buf).await {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    };
    let hello = timeout(CLIENT_HELLO_TIMEOUT, reading).await.unwrap_or(None);
    (buf.freeze(), hello)
}

/// Terminates the client's TLS and opens TLS to the upstream, in the order ALPN mirroring needs
/// (the upstream chooses among the client's protocols first). Returns the two plaintext legs,
/// or `None` when the connection was dealt with: the client got a `502` naming why the upstream
/// failed, or its own handshake failed (one log line each).
pub(super) async fn intercept(
    client: TcpStream,
    upstream: TcpStream,
    peeked: Bytes,
    hello: &ClientHelloInfo,
    interceptor: &Interceptor,
    destination: &Destination,
    conn: &ConnectionShared,
) -> Option<(LegStream, LegStream)> {
    let tap = &conn.tap;
    let upstream_name = destination.label.clone();
    let host = destination.host.clone();
    let local_ip = client
        .local_addr()
        .map(|a| a.ip())
        .unwrap_or(std::net::Ipv4Addr::LOCALHOST.into());
    // A client without SNI gets a leaf for where it said it goes: the CONNECT host, or the
    // address it connected to.
    let destination_leaf = match &destination.leaf {
        Some(name) => LeafName::parse(name).unwrap_or(LeafName::Ip(local_ip)),
        None => LeafName::Ip(local_ip),
    };
    let fallback = fallback_name(hello, destination_leaf);
    let Some(server_name) = upstream_server_name(&host, hello.server_name.as_deref()) else {
        warn!(side = "upstream", upstream = %upstream_name, "no name to verify the upstream's certificate against; closing");
        abort(upstream);
        abort(client);
        tap.closed(Leg::Client).await;
        tap.closed(Leg::Upstream).await;
        return None;
    };
    // capture_tls = "raw": record taps under both TLS sessions note the ciphertext; the
    // ClientHello already read crossed the client leg first.
    let raw = interceptor.raw_capture();
    let up_recorder = raw.then(|| tap.raw_recorder(Leg::Upstream)).flatten();
    let client_recorder = raw.then(|| tap.raw_recorder(Leg::Client)).flatten();
    if let Some(recorder) = &client_recorder {
        recorder.read(&peeked);
    }
    let ends = Arc::new(BareEnds::default());
    let upstream = RecordTap::new(upstream, up_recorder).on_leg(Leg::Upstream, ends.clone());
    let mut client = RecordTap::new(client, client_recorder).on_leg(Leg::Client, ends);
    client.already_read(&peeked);
    match interceptor
        .connect_upstream(upstream, server_name, &hello.alpn)
        .await
    {
        Ok(up) => {
            let chosen = up.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
            match interceptor
                .accept_client(Replay::new(peeked, client), fallback, chosen.as_deref())
                .await
            {
                Ok(down) => {
                    debug!(
                        sni = ?hello.server_name,
                        alpn = ?chosen.as_deref().map(String::from_utf8_lossy),
                        "TLS intercepted"
                    );
                    Some((
                        LegStream::ClientTls(Box::new(down)),
                        LegStream::UpstreamTls(Box::new(up)),
                    ))
                }
                Err(e) => {
                    let failure = ClientFailure::from_io(&e);
                    if let Some(held_back) = conn.run.client_tls_warnings.failure(Instant::now()) {
                        warn!(side = "client", held_back, "{failure}");
                    }
                    abort(up.into_inner().0.into_inner());
                    tap.closed(Leg::Client).await;
                    tap.closed(Leg::Upstream).await;
                    None
                }
            }
        }
        Err(failure) => {
            if let Some(held_back) = conn.run.upstream_warnings.failure(Instant::now()) {
                warn!(side = "upstream", upstream = %upstream_name, reason = failure.reason(), held_back, "{failure}");
            }
            conn.run.stats.upstream_failures.fetch_add(1, Relaxed);
            let alpn = error_alpn(hello);
            match interceptor
                .accept_client(Replay::new(peeked, client), fallback, alpn)
                .await
            {
                Ok(down) => {
                    let mut down = LegStream::ClientTls(Box::new(down));
                    let note = format!(
                        "faultline: upstream {upstream_name} failed TLS ({}): answered 502",
                        failure.reason()
                    );
                    if alpn == Some(b"h2".as_slice()) {
                        let reason = format!("TLS to upstream {upstream_name} failed: {failure}");
                        let note = format!(
                            "faultline: upstream {upstream_name} failed TLS ({}): answered over HTTP/2 (gRPC calls grpc-status 14, other requests 502)",
                            failure.reason()
                        );
                        refuse_h2_client(&mut down, reason, note, conn).await;
                    } else {
                        let answer = bad_gateway_response(&upstream_name, &failure);
                        if down.write_all(&answer).await.is_ok() {
                            conn.relayed(
                                Direction::UpstreamToClient,
                                &Bytes::from(answer),
                                Some(note),
                            )
                            .await;
                        }
                    }
                    close_cleanly(&mut down, Leg::Client, conn, true, FinRecord::Fin(None)).await;
                }
                Err(e) => {
                    if let Some(held_back) = conn.run.client_tls_warnings.failure(Instant::now()) {
                        warn!(side = "client", held_back, "{}", ClientFailure::from_io(&e));
                    }
                }
            }
            tap.closed(Leg::Client).await;
            tap.closed(Leg::Upstream).await;
            None
        }
    }
}

/// How long faultline answers an HTTP/2 client whose upstream failed, however chatty it is
/// (keepalive PINGs, a stream of calls), and how many of its requests: then GOAWAY.
const H2_REFUSAL_LIMIT: Duration = Duration::from_secs(30);
const H2_REFUSAL_MAX_REQUESTS: usize = 100;
/// How long an HTTP/2 client whose upstream failed may take to send its first request.
const H2_REFUSAL_FIRST_REQUEST: Duration = Duration::from_secs(5);
/// How long after an answer faultline waits for requests sent alongside it before GOAWAY.
const H2_REFUSAL_MORE_REQUESTS: Duration = Duration::from_millis(100);

/// Answers an HTTP/2 client (ALPN `h2`, e.g. gRPC) whose upstream could not be reached over TLS:
/// every request it sends gets the failure in its own terms (see [`RefusingServer`]), then
/// GOAWAY. The bytes it sent crossed the client leg and are recorded; faultline's answers carry
/// `note`. Bounded: a client that sends nothing is left after [`H2_REFUSAL_FIRST_REQUEST`], any
/// client after [`H2_REFUSAL_LIMIT`] or [`H2_REFUSAL_MAX_REQUESTS`] answers.
async fn refuse_h2_client(
    down: &mut LegStream,
    reason: String,
    note: String,
    conn: &ConnectionShared,
) {
    let mut server = RefusingServer::new(reason);
    if !answer_h2(down, RefusingServer::preface(), &note, conn).await {
        return;
    }
    let mut buf = bytes::BytesMut::with_capacity(16 * 1024);
    let deadline = Instant::now() + H2_REFUSAL_LIMIT;
    while server.answered() < H2_REFUSAL_MAX_REQUESTS && Instant::now() < deadline {
        let wait = if server.answered() == 0 {
            H2_REFUSAL_FIRST_REQUEST
        } else {
            H2_REFUSAL_MORE_REQUESTS
        };
        buf.clear();
        let read = tokio::select! {
            read = timeout(wait, down.read_buf(&mut buf)) => read,
            () = conn.run.shutdown.cancelled() => break,
        };
        match read {
            Ok(Ok(n)) if n > 0 => {
                let bytes = buf.split().freeze();
                conn.tap.drained(Leg::Client, &bytes).await;
                match server.feed(&bytes) {
                    Ok(answer) => {
                        if !answer_h2(down, answer, &note, conn).await {
                            return;
                        }
                    }
                    Err(e) => {
                        debug!(side = "client", error = %e, "not HTTP/2 after ALPN h2; closing");
                        break;
                    }
                }
            }
            // The client's FIN or reset is recorded by the drain that closes the leg.
            Ok(Ok(_)) | Err(_) => break,
            Ok(Err(_)) => return,
        }
    }
    answer_h2(down, server.goodbye(), &note, conn).await;
}

/// Writes frames faultline made to the client and records them with `note`; `false` when the
/// client is gone.
async fn answer_h2(
    down: &mut LegStream,
    frames: Vec<u8>,
    note: &str,
    conn: &ConnectionShared,
) -> bool {
    if frames.is_empty() {
        return true;
    }
    // A client that stops reading must not hold up the run's shutdown.
    let written = tokio::select! {
        written = down.write_all(&frames) => written.is_ok(),
        () = conn.run.shutdown.cancelled() => false,
    };
    if !written {
        return false;
    }
    let frames = Bytes::from(frames);
    conn.relayed(Direction::UpstreamToClient, &frames, Some(note.to_string()))
        .await;
    true
}

/// Ends an intercepted client whose SNI rustls refuses (see
/// [`refused_sni`]): one warning naming the name, then rustls' own
/// `illegal_parameter` alert from the client handshake over the peeked bytes, and the close.
/// Nothing is dialed for it: its handshake cannot succeed whatever the upstream says.
pub(super) async fn refuse_client_hello(
    client: TcpStream,
    peeked: Bytes,
    sni: &str,
    interceptor: &Interceptor,
    conn: &ConnectionShared,
) {
    warn!(
        side = "client",
        sni,
        "the client's TLS server name (SNI) is neither a DNS name nor an IP address, so TLS cannot be intercepted: refused with an illegal_parameter alert, no upstream connection opened"
    );
    let local_ip = client
        .local_addr()
        .map(|a| a.ip())
        .unwrap_or(std::net::Ipv4Addr::LOCALHOST.into());
    let recorder = interceptor
        .raw_capture()
        .then(|| conn.tap.raw_recorder(Leg::Client))
        .flatten();
    if let Some(recorder) = &recorder {
        recorder.read(&peeked);
    }
    let mut client = RecordTap::new(client, recorder);
    client.already_read(&peeked);
    match interceptor
        .accept_client(Replay::new(peeked, client), LeafName::Ip(local_ip), None)
        .await
    {
        Ok(tls) => {
            // Not reached with a rustls that refuses the name; never leave a session half-made.
            debug!(sni, "the client handshake completed after all; closing it");
            LegStream::ClientTls(Box::new(tls)).abort();
        }
        Err(e) => debug!(sni, "{}", ClientFailure::from_io(&e)),
    }
    conn.tap.closed(Leg::Client).await;
}

/// Where an intercepted connection's upstream TLS goes, as certificates name it.
pub(super) struct Destination {
    /// The host verified against the upstream's certificate (a name, or an IP).
    host: String,
    /// How logs and the 502 name the upstream (`host:port`).
    label: String,
    /// The name minted for a client that sent no SNI (the CONNECT host), if any.
    leaf: Option<String>,
}

impl Destination {
    /// The run's upstream.
    pub(super) fn of(upstream: &Upstream) -> Destination {
        let host = match upstream {
            Upstream::Socket(addr) => addr.ip().to_string(),
            Upstream::HostPort { host, .. } => host.clone(),
            Upstream::PerRequest => upstream.to_string(),
        };
        Destination {
            host,
            label: upstream.to_string(),
            leaf: None,
        }
    }

    /// A CONNECT target (`host:port`).
    pub(super) fn named(target: &str) -> Destination {
        let host = match crate::http::authority::split_host_port(target, 443) {
            Some((host, _)) => host,
            None => target.to_string(),
        };
        Destination {
            leaf: Some(host.clone()),
            host,
            label: target.to_string(),
        }
    }
}
