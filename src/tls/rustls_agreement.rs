//! Tests: real rustls sessions in memory, in both versions and every suite faultline's provider
//! offers, agree byte for byte with faultline's own record crypto: the key log's secrets give
//! the keys rustls uses (its records open, handshake records included), and an alert sealed
//! with its extracted keys reaches rustls as exactly that alert.

use std::io::Write;
use std::sync::{Arc, Mutex};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConfig, ServerConnection};

use super::key_schedule::{tls12_keys, tls13_keys};
use super::provider::provider;
use super::record_keys::{content_type, RecordKeys};
use super::server_hello::{parse_server_hello, SERVER_HELLO};
use super::suite::{Suite, TlsVersion};

/// One key log line as rustls reports it: (label, client random, secret).
type Line = (String, Vec<u8>, Vec<u8>);

/// Key log lines in the order rustls logged them.
#[derive(Debug, Default)]
struct Log(Mutex<Vec<Line>>);

impl rustls::KeyLog for Log {
    fn log(&self, label: &str, client_random: &[u8], secret: &[u8]) {
        if let Ok(mut lines) = self.0.lock() {
            lines.push((label.to_string(), client_random.to_vec(), secret.to_vec()));
        }
    }
}

impl Log {
    fn secret(&self, label: &str) -> (Vec<u8>, Vec<u8>) {
        let lines = self.0.lock().unwrap();
        let (_, random, secret) = lines
            .iter()
            .find(|(l, _, _)| l == label)
            .unwrap_or_else(|| panic!("no {label} in {lines:?}"));
        (random.clone(), secret.clone())
    }
}

/// One finished handshake: both ends, the key log, every byte the server sent, and the
/// transcript of both directions in the order they crossed (true: client to server).
pub(crate) struct Session {
    pub(crate) client: ClientConnection,
    pub(crate) server: ServerConnection,
    log: Arc<Log>,
    server_bytes: Vec<u8>,
    pub(crate) transcript: Vec<(bool, Vec<u8>)>,
    suite: Suite,
    pub(crate) version: TlsVersion,
}

impl Session {
    /// The key log as NSS key log text.
    pub(crate) fn key_log_text(&self) -> String {
        self.log
            .0
            .lock()
            .unwrap()
            .iter()
            .map(|(label, random, secret)| {
                format!("{label} {} {}\n", hex::encode(random), hex::encode(secret))
            })
            .collect()
    }

    /// Moves what the client wrote to the server (recorded in the transcript).
    pub(crate) fn client_to_server(&mut self) {
        let mut wire = Vec::new();
        while self.client.wants_write() {
            self.client.write_tls(&mut wire).unwrap();
        }
        feed_server(&mut self.server, &wire);
        self.transcript.push((true, wire));
    }

    /// Moves what the server wrote to the client (recorded in the transcript).
    pub(crate) fn server_to_client(&mut self) {
        let mut wire = Vec::new();
        while self.server.wants_write() {
            self.server.write_tls(&mut wire).unwrap();
        }
        feed_client(&mut self.client, &wire);
        self.transcript.push((false, wire));
    }
}

fn identity() -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
    let certified = rcgen::generate_simple_self_signed(vec!["test.local".to_string()]).unwrap();
    (
        certified.cert.der().clone(),
        PrivateKeyDer::try_from(certified.signing_key.serialize_der()).unwrap(),
    )
}

pub(crate) fn handshake(suite: rustls::SupportedCipherSuite) -> Session {
    let only = Arc::new(CryptoProvider {
        cipher_suites: vec![suite],
        ..(*provider()).clone()
    });
    let version = match suite {
        rustls::SupportedCipherSuite::Tls13(_) => TlsVersion::Tls13,
        rustls::SupportedCipherSuite::Tls12(_) => TlsVersion::Tls12,
    };
    let versions: &[&rustls::SupportedProtocolVersion] = match version {
        TlsVersion::Tls13 => &[&rustls::version::TLS13],
        TlsVersion::Tls12 => &[&rustls::version::TLS12],
    };
    let (cert, key) = identity();
    let mut roots = RootCertStore::empty();
    roots.add(cert.clone()).unwrap();
    let log = Arc::new(Log::default());
    let mut client_config = ClientConfig::builder_with_provider(only.clone())
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    client_config.key_log = log.clone();
    client_config.enable_secret_extraction = true;
    let server_config = ServerConfig::builder_with_provider(only)
        .with_protocol_versions(versions)
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .unwrap();
    let mut client = ClientConnection::new(
        Arc::new(client_config),
        ServerName::try_from("test.local").unwrap(),
    )
    .unwrap();
    let mut server = ServerConnection::new(Arc::new(server_config)).unwrap();
    let mut server_bytes = Vec::new();
    let mut transcript = Vec::new();
    for _ in 0..20 {
        let mut to_server = Vec::new();
        while client.wants_write() {
            client.write_tls(&mut to_server).unwrap();
        }
        feed_server(&mut server, &to_server);
        transcript.push((true, to_server));
        let mut to_client = Vec::new();
        while server.wants_write() {
            server.write_tls(&mut to_client).unwrap();
        }
        server_bytes.extend_from_slice(&to_client);
        feed_client(&mut client, &to_client);
        transcript.push((false, to_client));
        if !client.is_handshaking()
            && !server.is_handshaking()
            && !client.wants_write()
            && !server.wants_write()
        {
            let id = u16::from(suite.suite());
            return Session {
                client,
                server,
                log,
                server_bytes,
                transcript,
                suite: Suite::by_id(id).expect("a known suite"),
                version,
            };
        }
    }
    panic!("the handshake did not finish");
}

fn feed_server(server: &mut ServerConnection, mut bytes: &[u8]) {
    while !bytes.is_empty() {
        server.read_tls(&mut bytes).unwrap();
        server.process_new_packets().unwrap();
    }
}

fn feed_client(client: &mut ClientConnection, mut bytes: &[u8]) {
    while !bytes.is_empty() {
        client.read_tls(&mut bytes).unwrap();
        client.process_new_packets().unwrap();
    }
}

/// The records in `bytes`: (header, payload).
fn records(mut bytes: &[u8]) -> Vec<([u8; 5], Vec<u8>)> {
    let mut out = Vec::new();
    while bytes.len() >= 5 {
        let header: [u8; 5] = bytes[..5].try_into().unwrap();
        let len = usize::from(u16::from_be_bytes([header[3], header[4]]));
        out.push((header, bytes[5..5 + len].to_vec()));
        bytes = &bytes[5 + len..];
    }
    out
}

/// The keys of the client's writes, from the key log alone (and the server's hello).
fn client_keys_from_log(session: &Session) -> RecordKeys {
    match session.version {
        TlsVersion::Tls13 => {
            let (_, secret) = session.log.secret("CLIENT_TRAFFIC_SECRET_0");
            tls13_keys(session.suite, &secret)
        }
        TlsVersion::Tls12 => {
            let (client_random, master) = session.log.secret("CLIENT_RANDOM");
            let (header, hello) = &records(&session.server_bytes)[0];
            assert_eq!(header[0], content_type::HANDSHAKE);
            assert_eq!(hello[0], SERVER_HELLO);
            let info = parse_server_hello(&hello[4..]).unwrap();
            assert_eq!(info.suite, session.suite.id);
            assert_eq!(info.version, 0x0303);
            tls12_keys(session.suite, &master, &client_random, &info.random).0
        }
    }
}

/// Every suite the provider offers that an ECDSA certificate can serve (the TLS 1.2 RSA suites
/// differ from their ECDSA twins only in authentication, not in record protection).
pub(crate) fn every_suite() -> Vec<rustls::SupportedCipherSuite> {
    provider()
        .cipher_suites
        .iter()
        .filter(|s| !format!("{:?}", s.suite()).contains("_RSA_"))
        .copied()
        .collect()
}

#[test]
fn records_rustls_writes_open_with_keys_from_the_key_log() {
    // Three TLS 1.3 suites and three ECDSA TLS 1.2 suites (GCM 128/256, ChaCha20).
    assert_eq!(every_suite().len(), 6, "{:?}", every_suite());
    for suite in every_suite() {
        let mut session = handshake(suite);
        session
            .client
            .writer()
            .write_all(b"GET / HTTP/1.1\r\n\r\n")
            .unwrap();
        let mut wire = Vec::new();
        session.client.write_tls(&mut wire).unwrap();
        let keys = client_keys_from_log(&session);
        let [(header, payload)] = &records(&wire)[..] else {
            panic!("one record expected");
        };
        // TLS 1.3: the first application record; TLS 1.2: the client's Finished came first.
        let seq = match session.version {
            TlsVersion::Tls13 => 0,
            TlsVersion::Tls12 => 1,
        };
        assert_eq!(
            keys.open(seq, *header, payload),
            Ok((
                content_type::APPLICATION_DATA,
                b"GET / HTTP/1.1\r\n\r\n".to_vec()
            )),
            "{suite:?}"
        );
    }
}

#[test]
fn tls13_handshake_records_open_with_the_handshake_secret() {
    for suite in every_suite() {
        let session = handshake(suite);
        if session.version != TlsVersion::Tls13 {
            continue;
        }
        let (_, secret) = session.log.secret("SERVER_HANDSHAKE_TRAFFIC_SECRET");
        let keys = tls13_keys(session.suite, &secret);
        let encrypted: Vec<_> = records(&session.server_bytes)
            .into_iter()
            .filter(|(h, _)| h[0] == content_type::APPLICATION_DATA)
            .collect();
        let (header, payload) = &encrypted[0];
        let (kind, plain) = keys.open(0, *header, payload).unwrap();
        assert_eq!(kind, content_type::HANDSHAKE, "{suite:?}");
        assert_eq!(plain[0], 8, "EncryptedExtensions comes first");
    }
}

#[test]
fn an_alert_sealed_with_extracted_keys_is_the_alert_rustls_receives() {
    for suite in every_suite() {
        let mut session = handshake(suite);
        // Some application data first, so the sequence number is not the first one.
        session.client.writer().write_all(b"hello").unwrap();
        let mut wire = Vec::new();
        session.client.write_tls(&mut wire).unwrap();
        feed_server(&mut session.server, &wire);
        let version = session.version;
        let extracted = session.client.dangerous_extract_secrets().unwrap();
        let (seq, secrets) = extracted.tx;
        let keys = RecordKeys::from_extracted(version, &secrets).expect("a known AEAD");
        let alert = keys.seal(seq, content_type::ALERT, &[2, 80]);
        let mut bytes = &alert[..];
        session.server.read_tls(&mut bytes).unwrap();
        match session.server.process_new_packets() {
            Err(rustls::Error::AlertReceived(rustls::AlertDescription::InternalError)) => {}
            other => panic!("{suite:?}: rustls saw {other:?}"),
        }
    }
}
