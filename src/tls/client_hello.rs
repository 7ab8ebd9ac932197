//! Reads the server name (SNI) and ALPN list out of a TLS ClientHello in the first bytes of a
//! connection, without consuming them: for protocol detection, the `sni` match key (which works
//! without interception) and the decision to intercept.
//!
//! The ClientHello may arrive in pieces: a read can end anywhere, and a large hello (post-quantum
//! key shares, many extensions) can be fragmented over several TLS records. [`peek_client_hello`]
//! is called again with more bytes until it answers something other than [`Peek::NeedMore`];
//! the caller bounds that with its detection timeout and [`MAX_CLIENT_HELLO`].
//!
//! Every length is checked against what contains it, so no input panics or allocates more than
//! [`MAX_CLIENT_HELLO`]; a fuzz target (`fuzz/fuzz_targets/tls_client_hello.rs`) holds us to it.

/// The most bytes of records a ClientHello may take before we stop waiting and call it
/// malformed. Real hellos are 200 B to 2 KiB (a post-quantum key share adds ~1.2 KiB).
pub const MAX_CLIENT_HELLO: usize = 64 * 1024;

/// TLS record content type of handshake messages.
const HANDSHAKE: u8 = 22;
/// Handshake message type of a ClientHello.
const CLIENT_HELLO: u8 = 1;
/// The largest plaintext record payload (RFC 8446 §5.1).
const MAX_RECORD: usize = 1 << 14;
const EXT_SERVER_NAME: u16 = 0;
const EXT_ALPN: u16 = 16;
const EXT_SUPPORTED_VERSIONS: u16 = 43;

/// What the first bytes of a connection say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Peek {
    /// Consistent with a ClientHello so far: read more and ask again.
    NeedMore,
    /// Not TLS (decided from as few bytes as possible: the first byte often suffices).
    NotTls,
    /// TLS records, but not a ClientHello we can read (broken lengths, not a ClientHello, too
    /// large). The reason is for the log; the proxy relays such a connection as opaque TCP.
    Malformed(&'static str),
    /// A complete ClientHello.
    Tls(ClientHelloInfo),
}

/// What a ClientHello asked for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClientHelloInfo {
    /// The SNI host name, ASCII-lowercased; `None` when the client sent none (as curl does for an
    /// IP address). May be an IP literal: some clients send one although RFC 6066 forbids it.
    pub server_name: Option<String>,
    /// The ALPN protocols offered, in the client's order (`h2`, `http/1.1`, …); empty when the
    /// client sent no ALPN extension.
    pub alpn: Vec<Vec<u8>>,
    /// Whether `supported_versions` lists TLS 1.3.
    pub offers_tls13: bool,
    /// How many bytes from the start of the connection the records holding the hello take.
    pub len: usize,
    /// The client random: what the NSS key log names the session by (`inspect` finds a raw
    /// capture's keys with it).
    pub random: [u8; 32],
}

impl ClientHelloInfo {
    /// Whether the client offered `protocol` in ALPN.
    pub fn offers(&self, protocol: &[u8]) -> bool {
        self.alpn.iter().any(|p| p == protocol)
    }
}

/// Looks for a ClientHello at the start of `bytes` (everything read from the connection so far).
pub fn peek_client_hello(bytes: &[u8]) -> Peek {
    let mut handshake = Vec::new();
    let mut pos = 0;
    loop {
        let first = pos == 0;
        // Outside the first record, anything unexpected is a broken hello rather than "not TLS".
        let reject = |why| {
            if first {
                Peek::NotTls
            } else {
                Peek::Malformed(why)
            }
        };
        let header = &bytes[pos..];
        if let Some(&kind) = header.first() {
            if kind != HANDSHAKE {
                return reject("a non-handshake record inside the ClientHello");
            }
        }
        if let Some(&major) = header.get(1) {
            if major != 3 {
                return reject("a record version that is not 3.x");
            }
        }
        if let Some(&minor) = header.get(2) {
            if minor > 4 {
                return reject("a record version above 3.4");
            }
        }
        if header.len() < 5 {
            return Peek::NeedMore;
        }
        let len = usize::from(u16::from_be_bytes([header[3], header[4]]));
        if len == 0 || len > MAX_RECORD {
            return reject("a record length of 0 or above 16 KiB");
        }
        if pos + 5 + len > MAX_CLIENT_HELLO {
            return Peek::Malformed("the ClientHello is larger than 64 KiB");
        }
        let Some(payload) = header.get(5..5 + len) else {
            return Peek::NeedMore;
        };
        handshake.extend_from_slice(payload);
        pos += 5 + len;
        if handshake.len() < 4 {
            continue;
        }
        if handshake[0] != CLIENT_HELLO {
            return Peek::Malformed("the first handshake message is not a ClientHello");
        }
        let body_len = usize::from(handshake[1]) << 16
            | usize::from(handshake[2]) << 8
            | usize::from(handshake[3]);
        if body_len > MAX_CLIENT_HELLO {
            return Peek::Malformed("the ClientHello is larger than 64 KiB");
        }
        if let Some(body) = handshake.get(4..4 + body_len) {
            return match parse_body(body) {
                Ok(mut info) => {
                    info.len = pos;
                    Peek::Tls(info)
                }
                Err(why) => Peek::Malformed(why),
            };
        }
    }
}

/// Parses a complete ClientHello body (RFC 8446 §4.1.2, also valid for TLS 1.2).
fn parse_body(body: &[u8]) -> Result<ClientHelloInfo, &'static str> {
    let mut r = Reader(body);
    r.take(2).ok_or("no client version")?;
    let random = r.take(32).ok_or("no client random")?;
    let session_id = r.vec8().ok_or("a truncated session id")?;
    if session_id.len() > 32 {
        return Err("a session id longer than 32 bytes");
    }
    let suites = r.vec16().ok_or("truncated cipher suites")?;
    if suites.is_empty() || suites.len() % 2 != 0 {
        return Err("an empty or odd-length cipher suite list");
    }
    let compression = r.vec8().ok_or("truncated compression methods")?;
    if compression.is_empty() {
        return Err("no compression method");
    }
    let mut info = ClientHelloInfo {
        random: <[u8; 32]>::try_from(random).unwrap_or_default(),
        ..ClientHelloInfo::default()
    };
    if r.0.is_empty() {
        return Ok(info); // a hello without extensions (old clients): no SNI, no ALPN
    }
    let mut extensions = Reader(r.vec16().ok_or("truncated extensions")?);
    if !r.0.is_empty() {
        return Err("bytes after the extensions");
    }
    let mut seen = Vec::new();
    while !extensions.0.is_empty() {
        let kind = extensions.u16().ok_or("a truncated extension type")?;
        let data = extensions.vec16().ok_or("a truncated extension")?;
        if seen.contains(&kind) {
            return Err("an extension sent twice");
        }
        seen.push(kind);
        match kind {
            EXT_SERVER_NAME => info.server_name = parse_server_name(data)?,
            EXT_ALPN => info.alpn = parse_alpn(data)?,
            EXT_SUPPORTED_VERSIONS => info.offers_tls13 = offers_tls13(data)?,
            _ => {}
        }
    }
    Ok(info)
}

/// The `server_name` extension (RFC 6066 §3): at most one host name, printable ASCII.
fn parse_server_name(data: &[u8]) -> Result<Option<String>, &'static str> {
    let mut outer = Reader(data);
    let mut list = Reader(outer.vec16().ok_or("a truncated server name list")?);
    if !outer.0.is_empty() {
        return Err("bytes after the server name list");
    }
    let mut host = None;
    while !list.0.is_empty() {
        let kind = list.u8().ok_or("a truncated server name")?;
        let name = list.vec16().ok_or("a truncated server name")?;
        if kind != 0 {
            continue; // not host_name: no other type is defined
        }
        if host.is_some() {
            return Err("two host names in SNI");
        }
        if name.is_empty() || !name.iter().all(|b| b.is_ascii_graphic()) {
            return Err("an SNI host name that is empty or not printable ASCII");
        }
        host = Some(String::from_utf8_lossy(name).to_ascii_lowercase());
    }
    Ok(host)
}

/// The ALPN extension (RFC 7301 §3.1): a non-empty list of non-empty protocol names.
fn parse_alpn(data: &[u8]) -> Result<Vec<Vec<u8>>, &'static str> {
    let mut outer = Reader(data);
    let mut list = Reader(outer.vec16().ok_or("a truncated ALPN list")?);
    if !outer.0.is_empty() || list.0.is_empty() {
        return Err("an empty ALPN list or bytes after it");
    }
    let mut protocols = Vec::new();
    while !list.0.is_empty() {
        let name = list.vec8().ok_or("a truncated ALPN protocol")?;
        if name.is_empty() {
            return Err("an empty ALPN protocol name");
        }
        protocols.push(name.to_vec());
    }
    Ok(protocols)
}

/// The client's `supported_versions` (RFC 8446 §4.2.1): whether 0x0304 (TLS 1.3) is listed.
fn offers_tls13(data: &[u8]) -> Result<bool, &'static str> {
    let mut outer = Reader(data);
    let list = outer.vec8().ok_or("truncated supported versions")?;
    if !outer.0.is_empty() || list.len() % 2 != 0 {
        return Err("malformed supported versions");
    }
    Ok(list.chunks_exact(2).any(|v| v == [3, 4]))
}

/// A cursor over a byte slice whose reads fail (None) instead of running past the end.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }

    fn vec8(&mut self) -> Option<&'a [u8]> {
        let n = self.u8()?;
        self.take(usize::from(n))
    }

    fn vec16(&mut self) -> Option<&'a [u8]> {
        let n = self.u16()?;
        self.take(usize::from(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::provider::{provider, VERSIONS};
    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
    use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme};
    use std::sync::Arc;

    /// A verifier never asked anything: these tests only need the client's first flight.
    #[derive(Debug)]
    struct Unused;

    impl ServerCertVerifier for Unused {
        fn verify_server_cert(
            &self,
            _: &CertificateDer<'_>,
            _: &[CertificateDer<'_>],
            _: &ServerName<'_>,
            _: &[u8],
            _: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            unreachable!("no server in these tests")
        }
        fn verify_tls12_signature(
            &self,
            _: &[u8],
            _: &CertificateDer<'_>,
            _: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            unreachable!("no server in these tests")
        }
        fn verify_tls13_signature(
            &self,
            _: &[u8],
            _: &CertificateDer<'_>,
            _: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            unreachable!("no server in these tests")
        }
        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            vec![SignatureScheme::ECDSA_NISTP256_SHA256]
        }
    }

    /// The first flight of a real rustls client (its ClientHello records).
    fn real_hello(name: &str, alpn: &[&[u8]]) -> Vec<u8> {
        let mut config = ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(VERSIONS)
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Unused))
            .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        let mut conn = ClientConnection::new(
            Arc::new(config),
            ServerName::try_from(name.to_string()).unwrap(),
        )
        .unwrap();
        let mut out = Vec::new();
        conn.write_tls(&mut out).unwrap();
        out
    }

    /// Re-frames the handshake bytes of single-record `hello` into records of `size` bytes.
    fn refragment(hello: &[u8], size: usize) -> Vec<u8> {
        let payload = &hello[5..];
        let mut out = Vec::new();
        for piece in payload.chunks(size) {
            out.extend_from_slice(&[HANDSHAKE, 3, 1]);
            out.extend_from_slice(&(piece.len() as u16).to_be_bytes());
            out.extend_from_slice(piece);
        }
        out
    }

    #[test]
    fn sni_and_alpn_of_a_real_client_hello() {
        let hello = real_hello("S3.Example.test", &[b"h2", b"http/1.1"]);
        let Peek::Tls(info) = peek_client_hello(&hello) else {
            panic!("not parsed");
        };
        assert_eq!(info.server_name.as_deref(), Some("s3.example.test"));
        assert_eq!(info.alpn, vec![b"h2".to_vec(), b"http/1.1".to_vec()]);
        assert!(info.offers_tls13);
        assert!(info.offers(b"h2"));
        assert_eq!(info.len, hello.len());
    }

    #[test]
    fn an_ip_address_sends_no_sni_and_no_alpn_is_empty() {
        let hello = real_hello("127.0.0.1", &[]);
        let Peek::Tls(info) = peek_client_hello(&hello) else {
            panic!("not parsed");
        };
        assert_eq!(info.server_name, None);
        assert!(info.alpn.is_empty());
    }

    #[test]
    fn every_prefix_needs_more_and_trailing_bytes_are_not_counted() {
        let hello = real_hello("a.test", &[b"http/1.1"]);
        for cut in 0..hello.len() {
            assert_eq!(
                peek_client_hello(&hello[..cut]),
                Peek::NeedMore,
                "cut at {cut}"
            );
        }
        let mut more = hello.clone();
        more.extend_from_slice(b"\x17\x03\x03 application data follows");
        let Peek::Tls(info) = peek_client_hello(&more) else {
            panic!("not parsed");
        };
        assert_eq!(info.len, hello.len());
    }

    #[test]
    fn a_hello_fragmented_over_many_records_is_reassembled() {
        let hello = real_hello("frag.test", &[b"h2"]);
        for size in [1, 3, 100] {
            let fragmented = refragment(&hello, size);
            for cut in 0..fragmented.len() {
                assert_eq!(
                    peek_client_hello(&fragmented[..cut]),
                    Peek::NeedMore,
                    "size {size} cut {cut}"
                );
            }
            let Peek::Tls(info) = peek_client_hello(&fragmented) else {
                panic!("size {size}: not parsed");
            };
            assert_eq!(info.server_name.as_deref(), Some("frag.test"));
            assert_eq!(info.alpn, vec![b"h2".to_vec()]);
            assert_eq!(info.len, fragmented.len());
        }
    }

    #[test]
    fn other_protocols_are_not_tls_from_the_first_bytes() {
        assert_eq!(peek_client_hello(b"GET / HTTP/1.1\r\n"), Peek::NotTls);
        assert_eq!(peek_client_hello(b"P"), Peek::NotTls);
        assert_eq!(peek_client_hello(b"PRI * HTTP/2.0\r\n"), Peek::NotTls);
        assert_eq!(peek_client_hello(b"\x16\x02"), Peek::NotTls);
        assert_eq!(peek_client_hello(b"\x16\x03\x09"), Peek::NotTls);
        assert_eq!(peek_client_hello(b"\x16\x03\x01\x00\x00"), Peek::NotTls);
        assert_eq!(peek_client_hello(b""), Peek::NeedMore);
        assert_eq!(peek_client_hello(b"\x16\x03"), Peek::NeedMore);
    }

    #[test]
    fn broken_hellos_are_malformed_not_panics() {
        let hello = real_hello("x.test", &[b"h2"]);
        // Not a ClientHello (a ServerHello type byte).
        let mut server_hello = hello.clone();
        server_hello[5] = 2;
        assert!(matches!(
            peek_client_hello(&server_hello),
            Peek::Malformed(_)
        ));
        // A second record that is not a handshake record.
        let mut mixed = refragment(&hello, 10);
        mixed[15] = 23;
        assert!(matches!(peek_client_hello(&mixed), Peek::Malformed(_)));
        // A huge declared handshake length.
        let huge = [HANDSHAKE, 3, 1, 0, 4, CLIENT_HELLO, 0xff, 0xff, 0xff];
        assert!(matches!(peek_client_hello(&huge), Peek::Malformed(_)));
        // Every single-byte corruption of the body parses or is refused, never panics.
        for i in 9..hello.len() {
            let mut bad = hello.clone();
            bad[i] ^= 0xff;
            let _ = peek_client_hello(&bad);
        }
    }
}
