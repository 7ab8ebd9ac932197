//! How a connection's legs end when a fault or an answer ends them: a FIN after the last TLS
//! records, drained until the peer closes (so unread bytes do not turn it into a RST), and the
//! `tls_alert` fault's failing leg.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::{timeout, Duration};
use tracing::{debug, warn};

use super::connection::ConnectionShared;
use super::leg_stream::{FinishWrite, LegStream};
use crate::capture::Leg;

/// How long a clean close keeps reading (and discarding) so that unread bytes do not turn the
/// FIN into a RST.
pub(super) const LINGER_LIMIT: Duration = Duration::from_secs(2);

/// Ends a connection whose `failing` leg gets a `tls_alert` fault: the corrupt record or alert
/// goes out on it (`proxy::tls_alert`), then it is cut (FIN, no close_notify) and drained of what
/// its peer answers (its own alert: TLS records, not plaintext, so they are not recorded as
/// data), while the `other` leg is cut as a `truncate` would.
///
/// After a corrupted record the FIN waits (bounded) for the peer's verdict, as on a wire that
/// flipped a bit: nothing closes there. A FIN right behind the record let a peer that was busy
/// elsewhere (nginx connecting to its upstream) see the close first and never read the record,
/// so the failure the rule asked for never happened.
pub(super) async fn end_with_tls_alert(
    failing: LegStream,
    mut other: LegStream,
    leg: Leg,
    alert: crate::fault::tls_alert::AlertName,
    comment: String,
    conn: &ConnectionShared,
) {
    let tap = &conn.tap;
    let other_leg = match leg {
        Leg::Client => Leg::Upstream,
        Leg::Upstream => Leg::Client,
    };
    let (mut tcp, sent) = super::tls_alert::fail_leg(failing, alert).await;
    let corrupted = matches!(sent, Ok(super::tls_alert::AlertSent::Corrupted(_)));
    match sent {
        Ok(sent) => debug!(%leg, alert = alert.name(), ?sent, "TLS alert fault executed"),
        Err(e) => {
            warn!(%leg, alert = alert.name(), error = %e, "the TLS alert fault could not be sent; the leg is only cut")
        }
    }
    let other_fin = FinRecord::Fin(Some(comment.clone()));
    let drain_failing = async {
        let mut sink = vec![0u8; 16 * 1024];
        // `Some(ended)` once the peer answered: `true` if that answer was its close.
        let mut peer_ended = None;
        if corrupted {
            let verdict = async {
                match tcp.read(&mut sink).await {
                    Ok(0) => {
                        tap.peer_fin(leg).await;
                        true
                    }
                    Ok(_) => false,
                    Err(_) => {
                        tap.peer_rst(leg).await;
                        true
                    }
                }
            };
            tokio::select! {
                answered = timeout(LINGER_LIMIT, verdict) => peer_ended = answered.ok(),
                () = conn.run.shutdown.cancelled() => {}
            }
        }
        tap.proxy_fin(leg, Some(comment)).await;
        let _ = tcp.shutdown().await;
        if peer_ended == Some(true) {
            return;
        }
        let reading = async {
            loop {
                match tcp.read(&mut sink).await {
                    Ok(0) => return tap.peer_fin(leg).await,
                    Ok(_) => {}
                    Err(_) => return tap.peer_rst(leg).await,
                }
            }
        };
        tokio::select! {
            _ = timeout(LINGER_LIMIT, reading) => {}
            () = conn.run.shutdown.cancelled() => {}
        }
    };
    let _ = tokio::join!(
        drain_failing,
        close_cleanly(&mut other, other_leg, conn, false, other_fin)
    );
}

/// Whether [`close_cleanly`] records the FIN it sends.
pub(super) enum FinRecord {
    /// The capture already holds this leg's FIN (the pump sent it, or the caller recorded it).
    Recorded,
    /// Record the FIN, with this comment, once the stream has written its last bytes.
    Fin(Option<String>),
}

impl FinRecord {
    /// `Fin(comment)` unless the pump already sent (and recorded) the FIN.
    pub(super) fn unless(fin_sent: bool, comment: Option<String>) -> Self {
        if fin_sent {
            FinRecord::Recorded
        } else {
            FinRecord::Fin(comment)
        }
    }
}

/// Sends a FIN, then reads and discards until the peer closes too (bounded), because closing a
/// socket with unread bytes makes the kernel send a RST instead. What the peer sends meanwhile
/// crossed the leg, so it is recorded. The FIN is recorded after the stream finished writing:
/// a TLS leg's last records (flushed data, close_notify) go out before it, and a raw capture
/// must show them in that order or the close_notify lands after the FIN and cannot be read.
pub(super) async fn close_cleanly<S: FinishWrite>(
    stream: &mut S,
    leg: Leg,
    conn: &ConnectionShared,
    notify: bool,
    fin: FinRecord,
) {
    let tap = &conn.tap;
    let shutdown = &conn.run.shutdown;
    let _ = stream.finish_write(notify).await;
    if let FinRecord::Fin(comment) = fin {
        tap.proxy_fin(leg, comment).await;
    }
    let mut sink = bytes::BytesMut::with_capacity(64 * 1024);
    let drain = async {
        loop {
            sink.clear();
            match stream.read_buf(&mut sink).await {
                Ok(0) if conn.peer_has_finished(leg) => return,
                Ok(0) => return tap.peer_fin(leg).await,
                Ok(_) => tap.drained(leg, &sink.split().freeze()).await,
                Err(_) => return tap.peer_rst(leg).await,
            }
        }
    };
    tokio::select! {
        _ = timeout(LINGER_LIMIT, drain) => {}
        () = shutdown.cancelled() => {}
    }
}
