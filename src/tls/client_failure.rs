//! Why an intercepted client's handshake with faultline failed, as the one log line the
//! connection gets: above all "the client does not trust faultline's CA", with how to fix it.

use std::fmt;
use std::io;

use rustls::AlertDescription;

/// The kind of client handshake failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientFailureKind {
    /// The client rejected faultline's leaf: it does not trust the CA (or checks something
    /// the leaf lacks).
    Untrusted,
    /// The client's bytes were not a TLS handshake.
    NotTls,
    /// No TLS version, cipher suite or ALPN protocol in common.
    Incompatible,
    /// The client closed or reset the connection during the handshake.
    Closed,
    /// The handshake did not finish in time.
    Timeout,
    /// Anything else.
    Other,
}

/// One client handshake failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientFailure {
    /// What kind of failure.
    pub kind: ClientFailureKind,
    /// The specifics and the fix, for the log.
    pub detail: String,
}

impl ClientFailure {
    /// Classifies the error of [`Interceptor::accept_client`](crate::tls::Interceptor::accept_client).
    pub fn from_io(error: &io::Error) -> ClientFailure {
        use ClientFailureKind as K;
        let (kind, detail) = match error.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()) {
            Some(rustls::Error::AlertReceived(
                alert @ (AlertDescription::UnknownCA
                | AlertDescription::BadCertificate
                | AlertDescription::CertificateUnknown
                | AlertDescription::UnsupportedCertificate
                | AlertDescription::CertificateExpired
                | AlertDescription::AccessDenied),
            )) => (
                K::Untrusted,
                format!(
                    "the client rejected faultline's certificate (alert {alert:?}): make it trust faultline's CA (`faultline ca init` prints the variables, `faultline ca show` the file)"
                ),
            ),
            Some(rustls::Error::AlertReceived(alert)) => {
                (K::Other, format!("the client ended the handshake with the alert {alert:?}"))
            }
            Some(
                e @ (rustls::Error::InvalidMessage(_)
                | rustls::Error::InappropriateMessage { .. }
                | rustls::Error::InappropriateHandshakeMessage { .. }),
            ) => (K::NotTls, format!("the client did not speak TLS ({e})")),
            Some(e @ rustls::Error::PeerIncompatible(_)) => (
                K::Incompatible,
                format!("no TLS 1.2/1.3 version or cipher suite in common with the client ({e})"),
            ),
            Some(rustls::Error::NoApplicationProtocol) => (
                K::Incompatible,
                "the client does not accept the ALPN protocol the upstream chose".to_string(),
            ),
            Some(other) => (K::Other, other.to_string()),
            None => match error.kind() {
                io::ErrorKind::UnexpectedEof
                | io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionAborted
                | io::ErrorKind::BrokenPipe => (
                    K::Closed,
                    format!("the client closed the connection during the TLS handshake ({error}); a client that does not trust faultline's CA may close without an alert"),
                ),
                io::ErrorKind::TimedOut => (K::Timeout, error.to_string()),
                _ => (K::Other, error.to_string()),
            },
        };
        ClientFailure { kind, detail }
    }
}

impl fmt::Display for ClientFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.detail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wrapped(error: rustls::Error) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, error)
    }

    #[test]
    fn an_unknown_ca_alert_says_how_to_trust_the_ca() {
        let failure = ClientFailure::from_io(&wrapped(rustls::Error::AlertReceived(
            AlertDescription::UnknownCA,
        )));
        assert_eq!(failure.kind, ClientFailureKind::Untrusted);
        assert!(
            failure.to_string().contains("faultline ca init"),
            "{failure}"
        );
    }

    #[test]
    fn plain_text_clients_and_hangups_are_told_apart() {
        let not_tls = ClientFailure::from_io(&wrapped(rustls::Error::InvalidMessage(
            rustls::InvalidMessage::InvalidContentType,
        )));
        assert_eq!(not_tls.kind, ClientFailureKind::NotTls);
        let closed = ClientFailure::from_io(&io::Error::new(io::ErrorKind::UnexpectedEof, "eof"));
        assert_eq!(closed.kind, ClientFailureKind::Closed);
        let timeout = ClientFailure::from_io(&io::Error::new(io::ErrorKind::TimedOut, "slow"));
        assert_eq!(timeout.kind, ClientFailureKind::Timeout);
    }
}
