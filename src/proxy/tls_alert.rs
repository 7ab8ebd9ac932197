//! Executes the `tls_alert` fault on an intercepted leg's TLS record layer, where the pure fault
//! only decided *when*: `bad_record_mac` corrupts a record faultline writes (the peer's own stack
//! detects it and sends the alert, as with real corruption on the wire); any other alert is a
//! real fatal alert record sealed with the leg's current traffic key, taken from rustls with
//! `dangerous_extract_secrets` (the session ends here, so consuming it costs nothing).

use std::io::{self, Write};

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::leg_stream::LegStream;
use super::record_tap::RecordTap;
use crate::fault::tls_alert::AlertName;
use crate::tls::record_keys::{content_type, RecordKeys};
use crate::tls::suite::TlsVersion;

/// Alert level "fatal" (RFC 8446 §6).
const FATAL: u8 = 2;

/// What went out on the leg.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlertSent {
    /// A record of this many bytes with its last byte (inside the AEAD tag) flipped.
    Corrupted(usize),
    /// A sealed fatal alert record.
    Alert,
    /// The leg carries no TLS of faultline's (the client did not speak TLS): nothing was sent,
    /// the leg is only cut.
    NoTls,
}

/// Fails `leg`'s TLS session with `alert` and returns the TCP socket under it, still behind its
/// record tap (a raw capture records the alert, and the peer's answer the caller drains); the
/// caller ends it like a cut: FIN, no close_notify. Bytes the pump already planned were written
/// and flushed before the fault's step, so the session holds nothing unsent.
///
/// Errors: writing to the socket failed, or rustls would not give out the session's keys; the
/// socket is returned either way.
pub async fn fail_leg(
    leg: LegStream,
    alert: AlertName,
) -> (RecordTap<TcpStream>, io::Result<AlertSent>) {
    match leg {
        LegStream::Plain(tcp) => (RecordTap::new(tcp, None), Ok(AlertSent::NoTls)),
        LegStream::ClientTls(mut tls) => {
            let prepared = if alert.is_corruption() {
                corrupt_next_record(&mut **tls.get_mut().1)
            } else {
                Ok(Vec::new())
            };
            let (replay, conn) = tls.into_inner();
            let mut tcp = replay.into_parts().1;
            let record = match prepared {
                Ok(record) if alert.is_corruption() => Ok(record),
                Ok(_) => sealed_alert(
                    conn.protocol_version(),
                    conn.dangerous_extract_secrets(),
                    alert,
                ),
                Err(e) => Err(e),
            };
            let sent = write(&mut tcp, record, alert).await;
            (tcp, sent)
        }
        LegStream::UpstreamTls(mut tls) => {
            let prepared = if alert.is_corruption() {
                corrupt_next_record(&mut **tls.get_mut().1)
            } else {
                Ok(Vec::new())
            };
            let (mut tcp, conn) = tls.into_inner();
            let record = match prepared {
                Ok(record) if alert.is_corruption() => Ok(record),
                Ok(_) => sealed_alert(
                    conn.protocol_version(),
                    conn.dangerous_extract_secrets(),
                    alert,
                ),
                Err(e) => Err(e),
            };
            let sent = write(&mut tcp, record, alert).await;
            (tcp, sent)
        }
    }
}

async fn write(
    tcp: &mut RecordTap<TcpStream>,
    record: io::Result<Vec<u8>>,
    alert: AlertName,
) -> io::Result<AlertSent> {
    let record = record?;
    tcp.write_all(&record).await?;
    tcp.flush().await?;
    Ok(if alert.is_corruption() {
        AlertSent::Corrupted(record.len())
    } else {
        AlertSent::Alert
    })
}

/// One application-data record of a single byte, sealed by the session itself (so sequence
/// number and keys are right), with the last byte of its AEAD tag flipped.
fn corrupt_next_record<D>(conn: &mut rustls::ConnectionCommon<D>) -> io::Result<Vec<u8>> {
    conn.writer().write_all(&[0])?;
    let mut out = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut out)?;
    }
    match out.last_mut() {
        Some(last) => *last ^= 0x01,
        None => return Err(io::Error::other("rustls produced no record to corrupt")),
    }
    Ok(out)
}

/// A fatal `alert` record sealed with the session's write key at its next sequence number.
fn sealed_alert(
    version: Option<rustls::ProtocolVersion>,
    secrets: Result<rustls::ExtractedSecrets, rustls::Error>,
    alert: AlertName,
) -> io::Result<Vec<u8>> {
    let secrets = secrets
        .map_err(|e| io::Error::other(format!("no TLS keys to seal the alert with: {e}")))?;
    let version = match version {
        Some(rustls::ProtocolVersion::TLSv1_2) => TlsVersion::Tls12,
        _ => TlsVersion::Tls13,
    };
    let (seq, traffic) = secrets.tx;
    let keys = RecordKeys::from_extracted(version, &traffic)
        .ok_or_else(|| io::Error::other("the session's cipher is unknown to faultline"))?;
    Ok(keys.seal(seq, content_type::ALERT, &[FATAL, alert.code()]))
}
