//! The two handshakes of an intercepted connection, in the order ALPN mirroring needs: first TLS
//! to the upstream offering exactly the client's ALPN list, then the client's handshake
//! completed with a minted leaf and the protocol the upstream chose.
//!
//! The proxy drives it (see `TLS-DESIGN.md`):
//! 1. read the first bytes of the client leg until [`peek_client_hello`](crate::tls::peek_client_hello)
//!    returns [`Peek::Tls`](crate::tls::Peek) (bounded by the detection timeout);
//! 2. [`Interceptor::connect_upstream`] with [`upstream_server_name`] and the client's ALPN list;
//!    on failure answer the client with [`bad_gateway_response`](crate::tls::bad_gateway_response)
//!    after [`Interceptor::accept_client`] with [`error_alpn`];
//! 3. [`Interceptor::accept_client`] on a [`Replay`] of the peeked bytes, with
//!    [`fallback_name`] and the upstream's ALPN choice;
//! 4. hand both plaintext streams to the usual detection and HTTP engines.

use std::io;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::{DnsName, ServerName};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::timeout;
use tokio_rustls::{client, server, TlsConnector};

use crate::tls::client_config::upstream_client_config;
use crate::tls::server_config::ClientFacing;
use crate::tls::{
    ClientHelloInfo, LeafMinter, LeafName, NssKeyLog, Replay, TlsError, TlsSettings,
    UpstreamFailure,
};

/// How long either handshake may take before the connection is given up.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Everything an intercepted connection needs, built once per run and shared by connections.
#[derive(Debug, Clone)]
pub struct Interceptor {
    client_facing: ClientFacing,
    upstream: Arc<rustls::ClientConfig>,
    minter: Arc<LeafMinter>,
    keylog: Arc<NssKeyLog>,
    raw_capture: bool,
}

impl Interceptor {
    /// Builds both configs from the run's settings: leaves from `minter`, upstream trust from
    /// `settings` (faultline's own CA is never an upstream root), keys to `keylog`.
    pub fn new(
        minter: LeafMinter,
        settings: &TlsSettings,
        keylog: Arc<NssKeyLog>,
    ) -> Result<Interceptor, TlsError> {
        let own_ca = minter.ca().certificate().der.clone();
        let minter = Arc::new(minter);
        let client_facing = ClientFacing::new(minter.clone(), Some(keylog.clone()))?;
        let upstream = upstream_client_config(
            &settings.upstream_trust,
            Some(&own_ca),
            Some(keylog.clone()),
        )?;
        Ok(Interceptor {
            client_facing,
            upstream: Arc::new(upstream),
            minter,
            keylog,
            raw_capture: settings.capture_tls == crate::tls::CaptureTls::Raw,
        })
    }

    /// The leaf minter (and through it the CA).
    pub fn minter(&self) -> &LeafMinter {
        &self.minter
    }

    /// The key log both legs write to (the capture writer drains it for `capture_tls = "raw"`).
    pub fn keylog(&self) -> &Arc<NssKeyLog> {
        &self.keylog
    }

    /// Whether captures hold the TLS records as they crossed (`capture_tls = "raw"`) rather
    /// than the decrypted bytes.
    pub fn raw_capture(&self) -> bool {
        self.raw_capture
    }

    /// Opens TLS over `stream` (a connected upstream socket) for `server_name`, offering `alpn`
    /// (the client's list, unchanged). The upstream's choice is then
    /// `stream.get_ref().1.alpn_protocol()`. Fails with a classified reason within
    /// [`HANDSHAKE_TIMEOUT`].
    pub async fn connect_upstream<S>(
        &self,
        stream: S,
        server_name: ServerName<'static>,
        alpn: &[Vec<u8>],
    ) -> Result<client::TlsStream<S>, UpstreamFailure>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let connect = TlsConnector::from(self.upstream.clone())
            .with_alpn(alpn.to_vec())
            .connect(server_name, stream);
        match timeout(HANDSHAKE_TIMEOUT, connect).await {
            Ok(Ok(tls)) => Ok(tls),
            Ok(Err(e)) => Err(UpstreamFailure::from_io(&e)),
            Err(_) => Err(UpstreamFailure::timeout(HANDSHAKE_TIMEOUT)),
        }
    }

    /// Completes the client's handshake over `stream` (the client socket with the peeked bytes
    /// in front) with a leaf for its SNI (else `fallback`) and `alpn` as the only protocol.
    /// A client that does not trust the CA fails here (an `InvalidData` error naming the alert),
    /// within [`HANDSHAKE_TIMEOUT`].
    pub async fn accept_client<S>(
        &self,
        stream: Replay<S>,
        fallback: LeafName,
        alpn: Option<&[u8]>,
    ) -> io::Result<server::TlsStream<Replay<S>>>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let config = self.client_facing.for_connection(Some(fallback), alpn);
        let accept = tokio_rustls::TlsAcceptor::from(config).accept(stream);
        match timeout(HANDSHAKE_TIMEOUT, accept).await {
            Ok(result) => result,
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("the client did not finish the TLS handshake within {HANDSHAKE_TIMEOUT:?}"),
            )),
        }
    }
}

/// The name faultline verifies the upstream certificate against (and sends as SNI): the
/// upstream's host name when it has one (reverse mode with a named upstream, or the `CONNECT`
/// host); for an IP upstream, the client's SNI when it is a DNS name (a client pointed at
/// faultline with `--resolve name:port:127.0.0.1` or `/etc/hosts`); else the IP itself.
pub fn upstream_server_name(
    upstream_host: &str,
    client_sni: Option<&str>,
) -> Option<ServerName<'static>> {
    let bare = upstream_host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(upstream_host);
    match bare.parse::<IpAddr>() {
        Err(_) => DnsName::try_from(bare.to_string())
            .ok()
            .map(ServerName::DnsName),
        Ok(ip) => Some(
            client_sni
                .filter(|sni| sni.parse::<IpAddr>().is_err())
                .and_then(|sni| DnsName::try_from(sni.to_string()).ok())
                .map(ServerName::DnsName)
                .unwrap_or(ServerName::IpAddress(ip.into())),
        ),
    }
}

/// The client's SNI when rustls will refuse its ClientHello for it (`a..b`, `-`, `*`: neither a
/// DNS name nor an IP literal, judged by the same `ServerName` parsing rustls applies), else
/// `None`. Such a client can only get an `illegal_parameter` alert, so the proxy decides that
/// before it dials the upstream: a connection opened then would only be thrown away.
pub fn refused_sni(hello: &ClientHelloInfo) -> Option<&str> {
    let sni = hello.server_name.as_deref()?;
    match ServerName::try_from(sni) {
        Ok(ServerName::DnsName(_) | ServerName::IpAddress(_)) => None,
        _ => Some(sni),
    }
}

/// What to mint for a client that sent no SNI rustls can use: the IP literal it put in SNI,
/// else `destination` (the address it connected to, or the `CONNECT` host).
pub fn fallback_name(hello: &ClientHelloInfo, destination: LeafName) -> LeafName {
    hello
        .server_name
        .as_deref()
        .and_then(|sni| sni.parse::<IpAddr>().ok())
        .map(LeafName::Ip)
        .unwrap_or(destination)
}

/// The ALPN protocol to complete the client handshake with when faultline must answer by
/// itself (the upstream handshake failed): `http/1.1` if the client offered it, so the `502`
/// can be sent; no ALPN for a client that offered none. A client that offered only `h2` gets
/// `h2`, and the answer must then come from the HTTP/2 engine.
pub fn error_alpn(hello: &ClientHelloInfo) -> Option<&'static [u8]> {
    if hello.offers(b"http/1.1") {
        Some(b"http/1.1")
    } else if hello.offers(b"h2") {
        Some(b"h2")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_upstreams_keep_their_name_and_ip_upstreams_borrow_the_sni() {
        let name = |host, sni| upstream_server_name(host, sni).map(|n| n.to_str().into_owned());
        assert_eq!(
            name("s3.example.test", Some("other.test")).as_deref(),
            Some("s3.example.test")
        );
        assert_eq!(
            name("127.0.0.1", Some("up.test")).as_deref(),
            Some("up.test")
        );
        assert_eq!(name("127.0.0.1", None).as_deref(), Some("127.0.0.1"));
        assert_eq!(name("[::1]", Some("10.0.0.1")).as_deref(), Some("::1"));
        assert_eq!(name("bad host", None), None);
    }

    #[test]
    fn ip_literals_in_sni_win_over_the_destination() {
        let dest = LeafName::Ip("127.0.0.1".parse().unwrap());
        let hello = |sni: Option<&str>| ClientHelloInfo {
            server_name: sni.map(String::from),
            ..Default::default()
        };
        assert_eq!(fallback_name(&hello(None), dest.clone()), dest);
        assert_eq!(fallback_name(&hello(Some("up.test")), dest.clone()), dest);
        assert_eq!(
            fallback_name(&hello(Some("127.0.0.2")), dest),
            LeafName::Ip("127.0.0.2".parse().unwrap())
        );
    }

    #[test]
    fn sni_rustls_refuses_is_found_before_any_handshake() {
        let hello = |sni: &str| ClientHelloInfo {
            server_name: Some(sni.to_string()),
            ..Default::default()
        };
        for bad in ["a..b", "-", "*", "*.example.test", ".a", "a-.b", "1.2.3"] {
            assert_eq!(refused_sni(&hello(bad)), Some(bad), "{bad}");
        }
        for good in [
            "up.test",
            "a-b_c.example.",
            "127.0.0.1",
            "::1",
            "xn--bcher-kva.test",
        ] {
            assert_eq!(refused_sni(&hello(good)), None, "{good}");
        }
        assert_eq!(
            refused_sni(&ClientHelloInfo::default()),
            None,
            "no SNI at all"
        );
    }

    #[test]
    fn errors_are_answered_in_http1_when_possible() {
        let hello = |alpn: &[&[u8]]| ClientHelloInfo {
            alpn: alpn.iter().map(|p| p.to_vec()).collect(),
            ..Default::default()
        };
        assert_eq!(
            error_alpn(&hello(&[b"h2", b"http/1.1"])),
            Some(&b"http/1.1"[..])
        );
        assert_eq!(error_alpn(&hello(&[b"h2"])), Some(&b"h2"[..]));
        assert_eq!(error_alpn(&hello(&[])), None);
    }
}
