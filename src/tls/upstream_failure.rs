//! Why a TLS handshake with the upstream failed, in words a user acts on (unknown issuer, name
//! mismatch, expired, …), and the `502 Bad Gateway` that tells an intercepted HTTP client so.
//!
//! The client of an intercepted connection trusts faultline, not the upstream, so it cannot see
//! the upstream's certificate problem itself: the 502 body and the log line are its only way to
//! learn it, and they name the upstream and the fix.

use std::fmt;
use std::io;

use rustls::pki_types::UnixTime;
use rustls::{AlertDescription, CertificateError};

/// The kind of upstream handshake failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamFailureKind {
    /// The certificate chain does not lead to a trusted root.
    UnknownIssuer,
    /// The certificate is valid, but not for the name faultline connected to.
    NameMismatch,
    /// The certificate's validity ended.
    Expired,
    /// The certificate's validity has not begun (often a clock problem).
    NotYetValid,
    /// Any other certificate problem (bad signature, revoked, wrong purpose, unparsable).
    OtherCertificate,
    /// The upstream did not answer with TLS (a plain HTTP server on a TLS upstream, say).
    NotTls,
    /// The upstream ended the handshake with an alert.
    Refused(AlertDescription),
    /// No common TLS version, cipher suite, group or ALPN protocol.
    Incompatible,
    /// The upstream closed or reset the connection during the handshake.
    Closed,
    /// The handshake did not finish in time.
    Timeout,
    /// Anything else (an I/O error, a rustls error not listed above).
    Other,
}

/// One upstream handshake failure: its kind and the specifics (which names, which date).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamFailure {
    /// What kind of failure.
    pub kind: UpstreamFailureKind,
    /// The specifics, for the 502 body and the log.
    pub detail: String,
}

impl UpstreamFailure {
    /// Classifies an error from a tokio-rustls connect (rustls errors arrive wrapped in
    /// `io::Error`).
    pub fn from_io(error: &io::Error) -> UpstreamFailure {
        if let Some(tls) = error
            .get_ref()
            .and_then(|e| e.downcast_ref::<rustls::Error>())
        {
            return UpstreamFailure::from_rustls(tls);
        }
        let kind = match error.kind() {
            io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe => UpstreamFailureKind::Closed,
            io::ErrorKind::TimedOut => UpstreamFailureKind::Timeout,
            _ => UpstreamFailureKind::Other,
        };
        let detail = match kind {
            UpstreamFailureKind::Closed => {
                format!("the upstream closed the connection during the TLS handshake ({error})")
            }
            _ => error.to_string(),
        };
        UpstreamFailure { kind, detail }
    }

    /// Classifies a rustls error.
    pub fn from_rustls(error: &rustls::Error) -> UpstreamFailure {
        use UpstreamFailureKind as K;
        let (kind, detail) = match error {
            rustls::Error::InvalidCertificate(cert) => classify_certificate(cert),
            rustls::Error::InvalidMessage(_)
            | rustls::Error::InappropriateMessage { .. }
            | rustls::Error::InappropriateHandshakeMessage { .. } => (
                K::NotTls,
                format!("the upstream did not answer with a TLS handshake ({error}); is it a plain TCP/HTTP port?"),
            ),
            rustls::Error::AlertReceived(alert) => (
                K::Refused(*alert),
                format!("the upstream refused the handshake with the alert {alert:?}"),
            ),
            rustls::Error::PeerIncompatible(_) => (
                K::Incompatible,
                format!("no TLS 1.2/1.3 version, cipher suite or group in common with the upstream ({error})"),
            ),
            rustls::Error::NoApplicationProtocol => (
                K::Incompatible,
                "the upstream supports none of the ALPN protocols the client offered".to_string(),
            ),
            other => (K::Other, other.to_string()),
        };
        UpstreamFailure { kind, detail }
    }

    /// A handshake that did not finish within `limit`.
    pub fn timeout(limit: std::time::Duration) -> UpstreamFailure {
        UpstreamFailure {
            kind: UpstreamFailureKind::Timeout,
            detail: format!("the upstream did not finish the TLS handshake within {limit:?}"),
        }
    }

    /// The short human reason: `unknown issuer`, `name mismatch`, `expired`, …
    pub fn reason(&self) -> &'static str {
        match self.kind {
            UpstreamFailureKind::UnknownIssuer => "unknown issuer",
            UpstreamFailureKind::NameMismatch => "name mismatch",
            UpstreamFailureKind::Expired => "expired",
            UpstreamFailureKind::NotYetValid => "not yet valid",
            UpstreamFailureKind::OtherCertificate => "certificate rejected",
            UpstreamFailureKind::NotTls => "not TLS",
            UpstreamFailureKind::Refused(_) => "handshake refused",
            UpstreamFailureKind::Incompatible => "incompatible TLS",
            UpstreamFailureKind::Closed => "connection closed",
            UpstreamFailureKind::Timeout => "timed out",
            UpstreamFailureKind::Other => "handshake failed",
        }
    }

    /// Whether the upstream's certificate failed verification (as opposed to the handshake
    /// failing for another reason).
    pub fn is_verification(&self) -> bool {
        matches!(
            self.kind,
            UpstreamFailureKind::UnknownIssuer
                | UpstreamFailureKind::NameMismatch
                | UpstreamFailureKind::Expired
                | UpstreamFailureKind::NotYetValid
                | UpstreamFailureKind::OtherCertificate
        )
    }
}

impl fmt::Display for UpstreamFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.reason(), self.detail)
    }
}

fn classify_certificate(error: &CertificateError) -> (UpstreamFailureKind, String) {
    use UpstreamFailureKind as K;
    let fix =
        "set upstream_ca to the CA that signed it, or upstream_verify = false to accept it anyway";
    match error {
        CertificateError::UnknownIssuer => (
            K::UnknownIssuer,
            format!("the upstream's certificate is not signed by a trusted CA; {fix}"),
        ),
        CertificateError::NotValidForName => (
            K::NameMismatch,
            "the upstream's certificate is not valid for the name faultline connected to".into(),
        ),
        CertificateError::NotValidForNameContext {
            expected,
            presented,
        } => (
            K::NameMismatch,
            format!(
                "the upstream's certificate is for {}, not {}: name the upstream by a name it is for, or set upstream_verify = false to accept it anyway",
                if presented.is_empty() {
                    "no name".to_string()
                } else {
                    presented
                        .iter()
                        .map(|name| unquoted(name))
                        .collect::<Vec<_>>()
                        .join(", ")
                },
                expected.to_str()
            ),
        ),
        CertificateError::Expired => (K::Expired, "the upstream's certificate has expired".into()),
        CertificateError::ExpiredContext { time, not_after } => (
            K::Expired,
            format!(
                "the upstream's certificate expired at {} (now {})",
                date_time(not_after),
                date_time(time)
            ),
        ),
        CertificateError::NotValidYet => (
            K::NotYetValid,
            "the upstream's certificate is not valid yet (is a clock wrong?)".into(),
        ),
        CertificateError::NotValidYetContext { time, not_before } => (
            K::NotYetValid,
            format!(
                "the upstream's certificate is valid only from {} (now {}; is a clock wrong?)",
                date_time(not_before),
                date_time(time)
            ),
        ),
        // webpki reports a CA certificate served as the server's own (what `openssl req -x509`
        // makes by default for a test server) only as this text inside `Other`.
        CertificateError::Other(inner) if inner.to_string() == "CaUsedAsEndEntity" => (
            K::OtherCertificate,
            "the upstream presents a CA certificate (basicConstraints CA:TRUE) as its own \
             certificate, which faultline accepts only when that exact certificate is in \
             upstream_ca (as curl --cacert does with a self-signed one): set upstream_ca to \
             it, give the upstream a certificate signed by a CA (CA:FALSE), or set \
             upstream_verify = false to accept it anyway"
                .into(),
        ),
        other => (
            K::OtherCertificate,
            format!("the upstream's certificate was rejected ({other}); {fix}"),
        ),
    }
}

/// `2026-11-28 23:40:28 UTC` for a rustls time.
fn date_time(t: &UnixTime) -> String {
    let secs = i64::try_from(t.as_secs()).unwrap_or(i64::MAX);
    match time::OffsetDateTime::from_unix_timestamp(secs) {
        Ok(at) => format!(
            "{} {:02}:{:02}:{:02} UTC",
            at.date(),
            at.hour(),
            at.minute(),
            at.second()
        ),
        Err(_) => format!("{secs} s after the epoch"),
    }
}

/// The complete `502 Bad Gateway` response (head and body) for an HTTP/1 client whose upstream
/// handshake failed: `upstream` as the user knows it (`host:port`), the reason and the fix.
pub fn bad_gateway_response(upstream: &str, failure: &UpstreamFailure) -> Vec<u8> {
    let body = format!("502 Bad Gateway: TLS to upstream {upstream} failed: {failure}\n");
    format!(
        "HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// A presented name as rustls spells it (`DnsName("other.test")`, Rust debug text) as users
/// write it (`other.test`); other spellings stay as they are.
fn unquoted(name: &str) -> &str {
    // rustls presents `DnsName("localhost")` and `IpAddress(127.0.0.1)`: the name inside.
    let inner = match (name.find('('), name.strip_suffix(')')) {
        (Some(open), Some(body)) if open < body.len() => &body[open + 1..],
        _ => name,
    };
    inner.trim_matches('"')
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::ServerName;

    fn io_wrapped(error: rustls::Error) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, error)
    }

    #[test]
    fn certificate_errors_get_human_reasons() {
        let cases = [
            (CertificateError::UnknownIssuer, "unknown issuer"),
            (CertificateError::NotValidForName, "name mismatch"),
            (CertificateError::Expired, "expired"),
            (CertificateError::NotValidYet, "not yet valid"),
            (CertificateError::BadSignature, "certificate rejected"),
        ];
        for (error, reason) in cases {
            let failure =
                UpstreamFailure::from_io(&io_wrapped(rustls::Error::InvalidCertificate(error)));
            assert_eq!(failure.reason(), reason);
            assert!(failure.is_verification());
        }
    }

    #[test]
    fn details_name_the_names_and_dates() {
        let mismatch = UpstreamFailure::from_rustls(&rustls::Error::InvalidCertificate(
            CertificateError::NotValidForNameContext {
                expected: ServerName::try_from("up.test").unwrap(),
                presented: vec![
                    "DnsName(\"other.test\")".into(),
                    "IpAddress(127.0.0.1)".into(),
                ],
            },
        ));
        assert!(mismatch.detail.contains("up.test"), "{mismatch}");
        // A trial read `IpAddress(127.0.0.1)`: names as a user writes them.
        assert!(
            mismatch
                .detail
                .contains("is for other.test, 127.0.0.1, not up.test: name the upstream"),
            "{mismatch}"
        );
        let expired = UpstreamFailure::from_rustls(&rustls::Error::InvalidCertificate(
            CertificateError::ExpiredContext {
                time: UnixTime::since_unix_epoch(std::time::Duration::from_secs(1_780_000_000)),
                not_after: UnixTime::since_unix_epoch(std::time::Duration::from_secs(
                    1_700_000_000,
                )),
            },
        ));
        assert_eq!(expired.kind, UpstreamFailureKind::Expired);
        assert!(
            expired.detail.contains("2023-11-14 22:13:20 UTC"),
            "{expired}"
        );
    }

    #[test]
    fn other_handshake_failures_are_not_verification_failures() {
        let eof = UpstreamFailure::from_io(&io::Error::new(io::ErrorKind::UnexpectedEof, "eof"));
        assert_eq!(eof.kind, UpstreamFailureKind::Closed);
        let alert = UpstreamFailure::from_rustls(&rustls::Error::AlertReceived(
            AlertDescription::HandshakeFailure,
        ));
        assert_eq!(alert.reason(), "handshake refused");
        assert!(!alert.is_verification());
        let not_tls = UpstreamFailure::from_rustls(&rustls::Error::InvalidMessage(
            rustls::InvalidMessage::InvalidContentType,
        ));
        assert_eq!(not_tls.kind, UpstreamFailureKind::NotTls);
    }

    #[test]
    fn the_502_is_a_complete_http_response_naming_upstream_and_reason() {
        let failure = UpstreamFailure::from_rustls(&rustls::Error::InvalidCertificate(
            CertificateError::UnknownIssuer,
        ));
        let response = String::from_utf8(bad_gateway_response("up.test:443", &failure)).unwrap();
        let (head, body) = response.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 502 Bad Gateway\r\n"));
        assert!(head.contains(&format!("Content-Length: {}", body.len())));
        assert!(
            body.contains("up.test:443") && body.contains("unknown issuer"),
            "{body}"
        );
        assert!(body.contains("upstream_ca"), "{body}");
    }
}
