//! Tests of reading inside CONNECT tunnels: synthetic forward-mode flows (HTTP/1, HTTP/2, TLS with and without keys, opaque bytes) fed through the flow pipeline `inspect` builds.

use std::io::Write;

use md5::{Digest, Md5};

use super::analysis;
use super::body_store::MemoryUse;
use super::connect_tunnel::ConnectTunnel;
use super::content_address::AddressCheck;
use super::flow_views::FlowViews;
use super::model::{CaptureInfo, Report};
use super::reassembly::{FlowInfo, StreamConsumer};
use super::tls_flow::TlsLayer;
use super::tls_keys::TlsKeys;
use super::LegFilter;
use crate::direction::Direction;
use crate::h2::frame::PREFACE;
use crate::tls::rustls_agreement::{every_suite, handshake};

const UP: Direction = Direction::ClientToUpstream;
const DOWN: Direction = Direction::UpstreamToClient;

const CONNECT: &[u8] = b"CONNECT store.test:443 HTTP/1.1\r\nHost: store.test:443\r\n\r\n";
const ESTABLISHED: &[u8] = b"HTTP/1.1 200 Connection established\r\n\r\n";

fn info() -> FlowInfo {
    FlowInfo {
        id: 0,
        interface: Some("client leg".into()),
        client: "127.0.0.1:40000".parse().expect("addr"),
        server: "127.0.0.1:3030".parse().expect("addr"),
        opened_ns: 1_000_000_000,
        saw_syn: true,
        client_isn: None,
    }
}

/// A DVC upload of `body` to its md5 address, and the server's 201.
fn dvc_put(body: &[u8], address_of: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let md5 = hex::encode(Md5::digest(address_of));
    let request = format!(
        "PUT /files/md5/{}/{} HTTP/1.1\r\nHost: store.test\r\nContent-Length: {}\r\n\r\n",
        &md5[..2],
        &md5[2..],
        body.len()
    );
    let mut request = request.into_bytes();
    request.extend_from_slice(body);
    (
        request,
        b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n".to_vec(),
    )
}

/// Feeds one flow's chunks the way `inspect` does (TLS layer over views following tunnels),
/// keys given before the first byte, and builds the report.
fn inspect(chunks: &[(Direction, Vec<u8>)], keys: TlsKeys) -> Report {
    inspect_with(chunks, keys, |_, _| {})
}

/// Like [`inspect`], calling `each(flow, chunk index)` after each chunk (to add comments).
fn inspect_with(
    chunks: &[(Direction, Vec<u8>)],
    keys: TlsKeys,
    mut each: impl FnMut(&mut TlsLayer<FlowViews>, usize),
) -> Report {
    let info = info();
    let memory = MemoryUse::default();
    let views = FlowViews::new(&info, memory.clone()).following_tunnels(ConnectTunnel::new(
        &info,
        keys.clone(),
        memory,
        true,
    ));
    let mut flow = TlsLayer::new(views, keys, &info);
    let mut offsets = [0u64; 2];
    let mut ts = 1_000_000_000u64;
    for (i, (dir, chunk)) in chunks.iter().enumerate() {
        ts += 1000;
        // Split each chunk in two so no boundary is special.
        let (a, b) = chunk.split_at(chunk.len() / 2);
        for piece in [a, b] {
            flow.data(*dir, offsets[dir.index()], piece, ts);
            offsets[dir.index()] += piece.len() as u64;
        }
        each(&mut flow, i);
    }
    flow.fin(UP, offsets[0], ts + 1);
    flow.fin(DOWN, offsets[1], ts + 2);
    let timeline = flow.inner_mut().take_timeline();
    let (views, tls_warnings) = flow.finish();
    let (mut http, h2) = views.finish(&info);
    http.warnings.extend(tls_warnings);
    let capture = CaptureInfo::for_tests();
    let mut report = analysis::build_with_h2(
        capture,
        LegFilter::Both,
        vec![(info, http)],
        Vec::new(),
        h2.into_iter().collect(),
    );
    report.timelines = vec![timeline];
    report
}

#[test]
fn an_http1_put_inside_a_connect_tunnel_is_an_exchange_of_the_flow_with_its_content_check() {
    let (put, created) = dvc_put(b"hello through the tunnel", b"hello through the tunnel");
    let chunks = vec![
        (UP, CONNECT.to_vec()),
        (DOWN, ESTABLISHED.to_vec()),
        (UP, put),
        (DOWN, created),
    ];
    let report = inspect(&chunks, TlsKeys::default());
    let text = report.render_text();
    assert_eq!(report.exit_code(), 0, "{text}");
    assert!(report.warnings.is_empty(), "{text}");
    assert_eq!(report.exchanges.len(), 2, "{text}");
    assert_eq!(report.exchanges[0].method, "CONNECT");
    let put = &report.exchanges[1];
    assert_eq!((put.id, put.flow), (1, 0));
    assert_eq!(put.method, "PUT");
    assert_eq!(put.response.status, Some(201));
    assert!(put.request.complete);
    // The ranges count in the flow's own stream, after the CONNECT and its answer.
    assert_eq!(put.request_range.0, CONNECT.len() as u64);
    assert_eq!(report.flows[0].exchanges, vec![0, 1]);
    assert_eq!(report.content_checks.len(), 1, "{text}");
    assert_eq!(report.content_checks[0].exchange, 1);
    assert_eq!(report.content_checks[0].check, AddressCheck::Matches);
}

#[test]
fn a_corrupt_put_inside_a_tunnel_is_found_and_its_fault_is_tied_to_it() {
    let (put, created) = dvc_put(b"hello through the tunnel", b"what the client meant");
    let chunks = vec![
        (UP, CONNECT.to_vec()),
        (DOWN, ESTABLISHED.to_vec()),
        (UP, put),
        (DOWN, created),
    ];
    let at = CONNECT.len() as u64 + 10;
    let report = inspect_with(&chunks, TlsKeys::default(), |flow, i| {
        if i == 2 {
            flow.comment(UP, at, "faultline: rule \"x\" corrupted a byte", 0);
        }
    });
    let text = report.render_text();
    assert_eq!(report.exit_code(), 1, "{text}");
    assert!(report.content_checks[0].corrupt, "{text}");
    let put = &report.exchanges[1];
    assert_eq!(put.faults.len(), 1, "{text}");
    assert_eq!(put.faults[0].scope, "message");
    assert_eq!(put.faults[0].offset, at, "outer offsets in the report");
    assert!(report.exchanges[0].faults.is_empty(), "{text}");
}

#[test]
fn an_http2_preface_inside_a_tunnel_is_read_as_an_http2_connection() {
    let mut settings = PREFACE.to_vec();
    settings.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]); // empty SETTINGS
    let chunks = vec![
        (UP, CONNECT.to_vec()),
        (DOWN, ESTABLISHED.to_vec()),
        (UP, settings),
        (DOWN, vec![0, 0, 0, 4, 0, 0, 0, 0, 0]),
    ];
    let report = inspect(&chunks, TlsKeys::default());
    let text = report.render_text();
    assert_eq!(report.exit_code(), 0, "{text}");
    assert!(report.warnings.is_empty(), "{text}");
    assert_eq!(report.h2_connections.len(), 1, "{text}");
    assert_eq!(report.h2_connections[0].flow, 0);
    assert!(report.flows[0].h2 && report.flows[0].http, "{text}");
    assert_eq!(report.exchanges.len(), 1, "only the CONNECT: {text}");
}

#[test]
fn bytes_that_are_no_protocol_inside_a_tunnel_stay_opaque_without_a_finding() {
    for inner in [
        b"\x00\x01binary protocol".to_vec(),
        b"SSH-2.0-OpenSSH_9.6\r\n".to_vec(),
    ] {
        let chunks = vec![
            (UP, CONNECT.to_vec()),
            (DOWN, ESTABLISHED.to_vec()),
            (UP, inner),
            (DOWN, b"\xffserver bytes".to_vec()),
        ];
        let report = inspect(&chunks, TlsKeys::default());
        let text = report.render_text();
        assert_eq!(report.exit_code(), 0, "{text}");
        assert!(report.warnings.is_empty(), "{text}");
        assert!(report.findings.is_empty(), "{text}");
        assert_eq!(report.exchanges.len(), 1, "{text}");
        assert!(report.h2_connections.is_empty(), "{text}");
    }
}

#[test]
fn a_refused_connect_and_a_websocket_switch_open_no_tunnel() {
    let (put, created) = dvc_put(b"abc", b"abc");
    let mut refused =
        b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n".to_vec();
    refused.extend_from_slice(&created);
    let chunks = vec![(UP, [CONNECT, &put].concat()), (DOWN, refused)];
    let report = inspect(&chunks, TlsKeys::default());
    let text = report.render_text();
    assert_eq!(report.exchanges.len(), 2, "{text}");
    assert_eq!(report.exchanges[1].method, "PUT");
    assert_eq!(report.content_checks.len(), 1, "{text}");

    let upgrade =
        b"GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
    let switched =
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
    let chunks = vec![
        (UP, upgrade.to_vec()),
        (DOWN, switched.to_vec()),
        (UP, put),
        (DOWN, created),
    ];
    let report = inspect(&chunks, TlsKeys::default());
    let text = report.render_text();
    assert_eq!(
        report.exchanges.len(),
        1,
        "the WebSocket stays opaque: {text}"
    );
    assert!(report.warnings.is_empty(), "{text}");
}

/// A TLS session inside the tunnel: ClientHello onwards, with a DVC upload as its data.
fn tls_tunnel(body: &[u8]) -> (Vec<(Direction, Vec<u8>)>, String) {
    let mut session = handshake(every_suite()[0]);
    let (put, created) = dvc_put(body, body);
    session.client.writer().write_all(&put).expect("write");
    session.client_to_server();
    session.server.writer().write_all(&created).expect("write");
    session.server_to_client();
    let mut chunks = vec![(UP, CONNECT.to_vec()), (DOWN, ESTABLISHED.to_vec())];
    for (to_server, bytes) in session.transcript.iter().filter(|(_, b)| !b.is_empty()) {
        chunks.push((if *to_server { UP } else { DOWN }, bytes.clone()));
    }
    (chunks, session.key_log_text())
}

#[test]
fn tls_inside_a_tunnel_of_a_raw_capture_is_decrypted_with_its_keys() {
    let (chunks, key_log) = tls_tunnel(b"encrypted in the tunnel");
    let keys = TlsKeys::default();
    keys.add(key_log.as_bytes());
    let report = inspect(&chunks, keys);
    let text = report.render_text();
    assert_eq!(report.exit_code(), 0, "{text}");
    assert!(report.warnings.is_empty(), "{text}");
    assert_eq!(report.exchanges.len(), 2, "{text}");
    let put = &report.exchanges[1];
    assert_eq!(put.method, "PUT");
    assert_eq!(put.response.status, Some(201));
    assert_eq!(report.content_checks.len(), 1, "{text}");
    assert_eq!(report.content_checks[0].check, AddressCheck::Matches);
    // Its bytes count plaintext after the tunnel start, and the flow's timeline so too: the
    // answer is found at the time its record crossed, after the request, not at the handshake.
    assert_eq!(put.request_range.0, CONNECT.len() as u64);
    let (start, _) = put.response_range.expect("answered");
    assert_eq!(start, ESTABLISHED.len() as u64);
    let timeline = &report.timelines[0];
    let answered = timeline.time_at(DOWN, start).expect("a time");
    assert!(answered > put.time_ns, "{answered} <= {}", put.time_ns);
    assert_eq!(timeline.time_at(DOWN, 0), Some(1_000_002_000), "the 200");
}

#[test]
fn tls_inside_a_tunnel_without_any_key_stays_opaque_and_silent() {
    let (chunks, _) = tls_tunnel(b"passed through");
    let report = inspect(&chunks, TlsKeys::default());
    let text = report.render_text();
    assert_eq!(report.exit_code(), 0, "{text}");
    assert!(report.warnings.is_empty(), "{text}");
    assert_eq!(report.exchanges.len(), 1, "{text}");

    // A raw capture holding keys, but not this session's: said, like any undecryptable flow.
    let other = TlsKeys::default();
    other.add(format!("CLIENT_RANDOM {} 00\n", "ab".repeat(32)).as_bytes());
    let report = inspect(&chunks, other);
    assert_eq!(report.exit_code(), 0);
    assert!(
        report
            .warnings
            .iter()
            .any(|w| w.contains("inside its CONNECT tunnel") && w.contains("not decrypted")),
        "{:?}",
        report.warnings
    );
}

#[test]
fn garbage_inside_a_tunnel_in_any_chunking_never_panics_nor_finds_anything() {
    // A small deterministic generator (xorshift): random tunnels, some starting like TLS.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let keys = TlsKeys::default();
    keys.add(format!("CLIENT_RANDOM {} 00\n", "cd".repeat(32)).as_bytes());
    for round in 0..200 {
        let mut chunks = vec![(UP, CONNECT.to_vec()), (DOWN, ESTABLISHED.to_vec())];
        for _ in 0..(next() % 6) {
            let dir = if next() % 2 == 0 { UP } else { DOWN };
            let mut bytes: Vec<u8> = (0..next() % 300).map(|_| next() as u8).collect();
            if round % 3 == 0 && !bytes.is_empty() {
                bytes[0] = 0x16;
            }
            chunks.push((dir, bytes));
        }
        let with_keys = if round % 2 == 0 {
            keys.clone()
        } else {
            TlsKeys::default()
        };
        let report = inspect(&chunks, with_keys);
        assert_eq!(report.exit_code(), 0, "{}", report.render_text());
        assert!(report.findings.is_empty(), "{}", report.render_text());
    }
}
