//! Tests of inspect's HTTP/2 evidence: the real grpcio and curl recordings, and synthetic ByteStream conversations (resumes, ignored offsets, writes) fed through the flow views.

use sha2::{Digest, Sha256};

use super::analysis;
use super::body_store::MemoryUse;
use super::content_address::AddressCheck;
use super::flow_views::FlowViews;
use super::model::{CaptureInfo, Report};
use super::reassembly::{FlowInfo, StreamConsumer};
use super::LegFilter;
use crate::direction::Direction;
use crate::h2::build::{self, BlockLimits};
use crate::h2::bytestream::{
    QueryWriteStatusResponse, ReadRequest, ReadResponse, WriteRequest, WriteResponse,
};
use crate::h2::frame::{FrameHeader, FrameType, StreamId, PREFACE};
use crate::h2::grpc::frame_message;
use crate::h2::{ErrorCode, HeaderList};

const GRPCIO: &[u8] = include_bytes!("../../tests/fixtures/h2/grpcio-bytestream.h2rec");
const CURL: &[u8] = include_bytes!("../../tests/fixtures/h2/curl-grpc-query.h2rec");

const UP: Direction = Direction::ClientToUpstream;
const DOWN: Direction = Direction::UpstreamToClient;

/// Splits a `.h2rec` recording into (direction, chunk) records.
fn records(mut raw: &[u8]) -> Vec<(Direction, Vec<u8>)> {
    let mut out = Vec::new();
    while !raw.is_empty() {
        let direction = if raw[0] == 0 { UP } else { DOWN };
        let len = u32::from_be_bytes(raw[1..5].try_into().expect("4 bytes")) as usize;
        out.push((direction, raw[5..5 + len].to_vec()));
        raw = &raw[5 + len..];
    }
    out
}

fn info(id: u64) -> FlowInfo {
    FlowInfo {
        id,
        interface: Some("client leg".into()),
        client: "127.0.0.1:40000".parse().expect("addr"),
        server: "127.0.0.1:50051".parse().expect("addr"),
        opened_ns: id * 1_000_000,
        saw_syn: true,
        client_isn: None,
    }
}

/// Feeds each flow's chunks (in order, both directions interleaved as given) and builds the
/// report; flows run one after the other in time.
fn inspect(flows: Vec<Vec<(Direction, Vec<u8>)>>) -> Report {
    inspect_commented(flows, &[])
}

/// Like [`inspect`], with packet comments: `(flow, chunk, text)` comments the packet that
/// carried that chunk, delivered right after its bytes as the reassembler does.
fn inspect_commented(
    flows: Vec<Vec<(Direction, Vec<u8>)>>,
    comments: &[(usize, usize, &str)],
) -> Report {
    let memory = MemoryUse::default();
    let mut finished = Vec::new();
    let mut h2 = Vec::new();
    let mut ts = 1_000_000_000u64;
    for (n, chunks) in flows.into_iter().enumerate() {
        let info = info(n as u64 + 1);
        let mut views = FlowViews::new(&info, memory.clone());
        let mut offsets = [0u64; 2];
        for (c, (direction, chunk)) in chunks.into_iter().enumerate() {
            ts += 1000;
            let at = offsets[direction.index()];
            views.data(direction, at, &chunk, ts);
            offsets[direction.index()] += chunk.len() as u64;
            for (_, _, text) in comments.iter().filter(|(f, i, _)| (*f, *i) == (n, c)) {
                views.comment(direction, at, text, ts);
            }
        }
        let (http, flow) = views.finish(&info);
        h2.extend(flow);
        finished.push((info, http));
    }
    let capture = CaptureInfo::for_tests();
    analysis::build_with_h2(capture, LegFilter::Both, finished, Vec::new(), h2)
}

#[test]
fn the_grpcio_recording_gives_streams_statuses_and_a_verified_blob() {
    let report = inspect(vec![records(GRPCIO)]);
    let text = report.render_text();
    assert_eq!(report.exit_code(), 0, "{text}");
    assert_eq!(report.h2_streams.len(), 5, "{text}");
    assert!(report.flows[0].h2 && !report.flows[0].http);
    let not_found: Vec<_> = report
        .h2_streams
        .iter()
        .filter(|s| s.grpc_status == Some(5))
        .collect();
    assert_eq!(not_found.len(), 1, "{text}");
    assert_eq!(not_found[0].grpc_status_name.as_deref(), Some("NOT_FOUND"));
    assert!(not_found[0]
        .grpc_message
        .as_deref()
        .is_some_and(|m| m.contains("no blob")));
    assert!(report.h2_streams.iter().all(|s| s.status == Some(200)
        && s.method.as_deref() == Some("POST")
        && s.request_ended
        && s.response_ended
        && s.reset.is_none()));
    let read = report
        .h2_streams
        .iter()
        .find(|s| {
            s.path.as_deref() == Some("/google.bytestream.ByteStream/Read")
                && s.response_bytes > 100_000
        })
        .expect("the whole read");
    assert_eq!(read.request_messages, 1);
    assert!(read.response_messages >= 4, "{read:?}");
    assert!(read
        .trailers
        .iter()
        .any(|f| f.name == "grpc-status" && f.value == "0"));

    // Reads: the whole read and the range read laid together verify; the missing blob is
    // its own (empty, incomplete) group. Write: three requests, committed 100000.
    let reads: Vec<_> = report
        .bytestream
        .iter()
        .filter(|b| b.transfer == super::Transfer::Download)
        .collect();
    assert_eq!(reads.len(), 2, "{text}");
    let blob = reads.iter().find(|b| b.size == 100_000).expect("the blob");
    assert_eq!(blob.check, Some(AddressCheck::Matches), "{text}");
    assert_eq!(blob.matched.as_deref(), Some("sha256"));
    assert_eq!(blob.digest_function, "sha256 or blake3");
    assert_eq!(blob.instance_name, "main");
    assert_eq!(blob.calls.len(), 2);
    assert!(!blob.corrupt && blob.problems.is_empty(), "{text}");
    let write = report
        .bytestream
        .iter()
        .find(|b| b.transfer == super::Transfer::Upload)
        .expect("the write");
    assert_eq!(write.check, Some(AddressCheck::Matches), "{text}");
    assert_eq!(write.committed_size, Some(100_000));
    assert_eq!(write.calls.len(), 2, "Write and QueryWriteStatus: {text}");
    assert!(
        text.contains("HTTP/2 streams:") && text.contains("5 NOT_FOUND"),
        "{text}"
    );
    assert!(
        report.verdict_line.contains("5 HTTP/2 streams"),
        "{}",
        report.verdict_line
    );
}

#[test]
fn the_curl_recording_is_one_stream_with_its_headers() {
    let report = inspect(vec![records(CURL)]);
    assert_eq!(report.exit_code(), 0);
    assert_eq!(report.h2_streams.len(), 1);
    let stream = &report.h2_streams[0];
    assert_eq!(stream.stream, 1);
    assert!(stream
        .request_headers
        .iter()
        .any(|f| f.name == "user-agent" && f.value.starts_with("curl/")));
    assert_eq!(stream.grpc_status, Some(0));
    assert_eq!(stream.grpc_status_name.as_deref(), Some("OK"));
    assert_eq!((stream.request_messages, stream.response_messages), (1, 1));
}

#[test]
fn every_chunking_of_the_recording_gives_the_same_streams() {
    // Split every record into 7-byte pieces: frames, prefixes and messages then cross reads.
    let fine: Vec<(Direction, Vec<u8>)> = records(GRPCIO)
        .into_iter()
        .flat_map(|(d, chunk)| chunk.chunks(7).map(|c| (d, c.to_vec())).collect::<Vec<_>>())
        .collect();
    let report = inspect(vec![fine]);
    assert_eq!(report.exit_code(), 0, "{}", report.render_text());
    assert_eq!(report.h2_streams.len(), 5);
    assert_eq!(
        report
            .bytestream
            .iter()
            .filter(|b| b.check == Some(AddressCheck::Matches))
            .count(),
        2
    );
}

#[test]
fn a_flow_that_is_not_http2_is_left_alone() {
    let report = inspect(vec![vec![
        (UP, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec()),
        (
            DOWN,
            b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n".to_vec(),
        ),
    ]]);
    assert!(report.h2_streams.is_empty() && report.h2_connections.is_empty());
    assert!(!report.flows[0].h2 && report.flows[0].http);
}

/// A synthetic HTTP/2 connection: the client's and the server's frames, in the order given.
struct Conn {
    chunks: Vec<(Direction, Vec<u8>)>,
    next: u32,
}

fn grpc_request(path: &str) -> HeaderList {
    HeaderList::from_pairs([
        (":method", "POST"),
        (":scheme", "http"),
        (":path", path),
        (":authority", "cas"),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
    ])
}

impl Conn {
    fn new() -> Conn {
        let settings = FrameHeader {
            length: 0,
            kind: FrameType::Settings,
            flags: 0,
            stream: StreamId(0),
        }
        .to_bytes()
        .to_vec();
        let mut client = PREFACE.to_vec();
        client.extend(&settings);
        Conn {
            chunks: vec![(DOWN, settings.clone()), (UP, client)],
            next: 1,
        }
    }

    fn send(&mut self, direction: Direction, bytes: Vec<u8>) {
        self.chunks.push((direction, bytes));
    }

    /// Opens a call and sends its request messages (END_STREAM after them when `end`).
    fn call(&mut self, path: &str, messages: &[Vec<u8>], end: bool) -> StreamId {
        let s = StreamId(self.next);
        self.next += 2;
        let block = build::headers(s, &grpc_request(path), false, BlockLimits::default());
        self.send(UP, block);
        for (i, m) in messages.iter().enumerate() {
            let framed = frame_message(m);
            let last = end && i + 1 == messages.len();
            let mut frame = build::data_header(s, framed.len() as u32, last).to_vec();
            frame.extend(framed);
            self.send(UP, frame);
        }
        s
    }

    fn respond(&mut self, s: StreamId, messages: &[Vec<u8>]) {
        let head =
            HeaderList::from_pairs([(":status", "200"), ("content-type", "application/grpc")]);
        self.send(
            DOWN,
            build::headers(s, &head, false, BlockLimits::default()),
        );
        for m in messages {
            let framed = frame_message(m);
            let mut frame = build::data_header(s, framed.len() as u32, false).to_vec();
            frame.extend(framed);
            self.send(DOWN, frame);
        }
    }

    /// Only the first `n` bytes of one more framed message (the stream is then cut).
    fn respond_partial(&mut self, s: StreamId, message: &[u8], n: usize) {
        let framed = frame_message(message);
        let mut frame = build::data_header(s, n as u32, false).to_vec();
        frame.extend(&framed[..n]);
        self.send(DOWN, frame);
    }

    fn trailers(&mut self, s: StreamId, status: u32) {
        let status = status.to_string();
        let list = HeaderList::from_pairs([("grpc-status", status.as_str())]);
        self.send(DOWN, build::headers(s, &list, true, BlockLimits::default()));
    }

    fn reset(&mut self, s: StreamId, direction: Direction, code: ErrorCode) {
        self.send(direction, build::rst_stream(s, code));
    }
}

fn blob(n: usize) -> (Vec<u8>, String) {
    let bytes: Vec<u8> = (0..n).map(|i| (i * 7 + i / 251) as u8).collect();
    let name = format!("inst/a/blobs/{}/{n}", hex::encode(Sha256::digest(&bytes)));
    (bytes, name)
}

fn read_request(name: &str, offset: i64) -> Vec<u8> {
    ReadRequest {
        resource_name: name.into(),
        read_offset: offset,
        read_limit: 0,
    }
    .encode()
}

const READ: &str = "/google.bytestream.ByteStream/Read";
const WRITE: &str = "/google.bytestream.ByteStream/Write";
const QUERY: &str = "/google.bytestream.ByteStream/QueryWriteStatus";

/// A Read of `bytes` from `offset`, in messages of `chunk` bytes, ended OK.
fn read_call(conn: &mut Conn, name: &str, offset: usize, bytes: &[u8], chunk: usize) -> StreamId {
    let s = conn.call(READ, &[read_request(name, offset as i64)], true);
    let messages: Vec<Vec<u8>> = bytes.chunks(chunk).map(ReadResponse::encode).collect();
    conn.respond(s, &messages);
    conn.trailers(s, 0);
    s
}

/// A Read cut by RST_STREAM(CANCEL) toward the client after `whole` complete messages of
/// `chunk` bytes and part of one more.
fn cut_read(conn: &mut Conn, name: &str, bytes: &[u8], chunk: usize, whole: usize) -> StreamId {
    let s = conn.call(READ, &[read_request(name, 0)], true);
    let messages: Vec<Vec<u8>> = bytes[..whole * chunk]
        .chunks(chunk)
        .map(ReadResponse::encode)
        .collect();
    conn.respond(s, &messages);
    conn.respond_partial(
        s,
        &ReadResponse::encode(&bytes[whole * chunk..(whole + 1) * chunk]),
        100,
    );
    conn.reset(s, DOWN, ErrorCode::CANCEL);
    s
}

#[test]
fn a_read_cut_and_resumed_on_another_connection_verifies() {
    let (bytes, name) = blob(50_000);
    let mut first = Conn::new();
    // Two sibling reads on the first connection: one cut, one whole.
    cut_read(&mut first, &name, &bytes, 8_000, 3);
    read_call(&mut first, &name, 0, &bytes, 16_000);
    let mut second = Conn::new();
    read_call(&mut second, &name, 24_000, &bytes[24_000..], 10_000);
    let report = inspect(vec![first.chunks, second.chunks]);
    let text = report.render_text();
    assert_eq!(report.exit_code(), 0, "{text}");
    let b = &report.bytestream[0];
    assert_eq!(
        report.verdict_line, "OK: 3 HTTP/2 streams, 1 ByteStream blob (1 verified whole)",
        "HTTP/2 only: no word about HTTP/1 uploads"
    );
    assert_eq!(b.calls.len(), 3);
    assert_eq!(b.calls[0].reset.as_deref(), Some("CANCEL"));
    assert_eq!(b.calls[0].length, 24_000, "only complete messages count");
    assert_eq!(b.check, Some(AddressCheck::Matches), "{text}");
    assert_eq!(b.resource, format!("inst/a/blobs/{}/50000", &b.hash));
    let reset = report
        .h2_streams
        .iter()
        .find_map(|s| s.reset.as_ref())
        .expect("a reset stream");
    assert_eq!(
        (reset.code.as_str(), reset.by.as_str()),
        ("CANCEL", "upstream->client")
    );
    assert!(
        text.contains("RST_STREAM CANCEL (upstream->client)"),
        "{text}"
    );
}

#[test]
fn a_resume_only_after_the_cut_verifies_and_a_late_resume_is_corrupt_at_its_offset() {
    let (bytes, name) = blob(40_000);
    let mut conn = Conn::new();
    cut_read(&mut conn, &name, &bytes, 5_000, 2);
    read_call(&mut conn, &name, 10_000, &bytes[10_000..], 7_000);
    let report = inspect(vec![conn.chunks]);
    assert_eq!(report.exit_code(), 0, "{}", report.render_text());

    // The client claims 15000 bytes but the cut stream delivered 10000.
    let mut conn = Conn::new();
    cut_read(&mut conn, &name, &bytes, 5_000, 2);
    read_call(&mut conn, &name, 15_000, &bytes[15_000..], 7_000);
    let report = inspect(vec![conn.chunks]);
    assert_eq!(report.exit_code(), 1);
    let line = &report.findings[0];
    assert!(
        line.contains("ByteStream Read of inst/a/blobs/")
            && line.contains("the resume at offset 15000 (stream 3 (flow 1)) does not continue where stream 1 (flow 1) stopped at offset 10000"),
        "{line}"
    );
}

#[test]
fn a_server_that_ignored_read_offset_is_corrupt_with_the_offset() {
    let (bytes, name) = blob(30_000);
    let mut conn = Conn::new();
    cut_read(&mut conn, &name, &bytes, 4_000, 3);
    // The resume asks for 12000, the server sends the blob from 0 again.
    read_call(&mut conn, &name, 12_000, &bytes[..18_000], 4_000);
    let report = inspect(vec![conn.chunks]);
    let text = report.render_text();
    assert_eq!(report.exit_code(), 1, "{text}");
    assert!(
        report.findings[0].contains("the Read at offset 12000 (stream 3 (flow 1)) ignored read_offset: its bytes are the blob's bytes from offset 0")
            && report.findings[0].contains("content MISMATCH"),
        "{text}"
    );
    // Whole blob sent from 0: then also too long.
    let mut conn = Conn::new();
    cut_read(&mut conn, &name, &bytes, 4_000, 3);
    read_call(&mut conn, &name, 12_000, &bytes, 4_000);
    let report = inspect(vec![conn.chunks]);
    assert_eq!(report.exit_code(), 1);
    assert!(
        report.findings[0].contains("ignored read_offset")
            && report.findings[0]
                .contains("size MISMATCH: the name says 30000 bytes, 42000 crossed"),
        "{:?}",
        report.findings
    );
}

#[test]
fn overlapping_reads_with_other_bytes_are_corrupt_at_the_first_differing_byte() {
    let (bytes, name) = blob(20_000);
    let mut other = bytes.clone();
    other[12_345] ^= 0x40;
    let mut conn = Conn::new();
    read_call(&mut conn, &name, 0, &bytes, 6_000);
    read_call(&mut conn, &name, 10_000, &other[10_000..], 6_000);
    let report = inspect(vec![conn.chunks]);
    assert_eq!(report.exit_code(), 1);
    assert!(
        report.findings[0].contains("the Read at offset 10000 (stream 3 (flow 1)) does not continue the earlier bytes: they differ at offset 12345"),
        "{:?}",
        report.findings
    );
}

#[test]
fn a_read_answered_ok_too_short_is_corrupt_and_compressed_or_partial_reads_are_not_checked() {
    let (bytes, name) = blob(9_000);
    let mut conn = Conn::new();
    read_call(&mut conn, &name, 0, &bytes[..5_000], 4_000);
    let report = inspect(vec![conn.chunks]);
    assert_eq!(report.exit_code(), 1);
    assert!(
        report.findings[0]
            .contains("answered OK after 5000 bytes from offset 0: the blob has 4000 more"),
        "{:?}",
        report.findings
    );

    let compressed = name.replace("blobs/", "compressed-blobs/zstd/");
    let mut conn = Conn::new();
    read_call(
        &mut conn,
        &compressed,
        0,
        b"whatever zstd made of it",
        4_000,
    );
    // A range read is not a resume and is not checked whole.
    let s = conn.call(
        READ,
        &[ReadRequest {
            resource_name: name.clone(),
            read_offset: 100,
            read_limit: 50,
        }
        .encode()],
        true,
    );
    conn.respond(s, &[ReadResponse::encode(&bytes[100..150])]);
    conn.trailers(s, 0);
    let report = inspect(vec![conn.chunks]);
    let text = report.render_text();
    assert_eq!(report.exit_code(), 0, "{text}");
    let z = report
        .bytestream
        .iter()
        .find(|b| b.compressor.is_some())
        .expect("compressed");
    assert!(
        matches!(&z.check, Some(AddressCheck::NotChecked { reason }) if reason.contains("compressed-blobs/zstd")),
        "{text}"
    );
    let range = report
        .bytestream
        .iter()
        .find(|b| b.compressor.is_none())
        .expect("range");
    assert!(
        range.check.is_none() && !range.complete && !range.corrupt,
        "{text}"
    );
}

fn write_request(name: &str, offset: usize, data: &[u8], finish: bool) -> Vec<u8> {
    WriteRequest {
        resource_name: name.into(),
        write_offset: offset as i64,
        finish_write: finish,
        data: 0..0,
    }
    .encode(data)
}

#[test]
fn a_write_resumed_after_query_write_status_verifies_and_a_wrong_one_is_corrupt() {
    let (bytes, read_name) = blob(30_000);
    let upload =
        |id: &str| read_name.replace("inst/a/blobs", &format!("inst/a/uploads/{id}/blobs"));
    for corrupt in [false, true] {
        let mut sent = bytes.clone();
        if corrupt {
            sent[20_001] ^= 1;
        }
        let mut conn = Conn::new();
        // First Write: two messages, then the stream is reset (faultline cut it).
        let first = conn.call(
            WRITE,
            &[
                write_request(&upload("u1"), 0, &sent[..10_000], false),
                write_request("", 10_000, &sent[10_000..15_000], false),
            ],
            false,
        );
        conn.reset(first, UP, ErrorCode::CANCEL);
        let q = conn.call(
            QUERY,
            &[crate::h2::bytestream::QueryWriteStatusRequest {
                resource_name: upload("u1"),
            }
            .encode()],
            true,
        );
        conn.respond(
            q,
            &[QueryWriteStatusResponse {
                committed_size: 10_000,
                complete: false,
            }
            .encode()],
        );
        conn.trailers(q, 0);
        let second = conn.call(
            WRITE,
            &[
                write_request(&upload("u2"), 10_000, &sent[10_000..25_000], false),
                write_request("", 25_000, &sent[25_000..], true),
            ],
            true,
        );
        conn.respond(
            second,
            &[WriteResponse {
                committed_size: 30_000,
            }
            .encode()],
        );
        conn.trailers(second, 0);
        let report = inspect(vec![conn.chunks]);
        let text = report.render_text();
        let w = &report.bytestream[0];
        assert_eq!(w.calls.len(), 3, "{text}");
        assert_eq!(w.committed_size, Some(30_000));
        assert_eq!(w.resource, read_name, "upload ids do not split the blob");
        if corrupt {
            assert_eq!(report.exit_code(), 1, "{text}");
            assert!(
                report.findings[0].starts_with("CORRUPT: ByteStream Write of inst/a/blobs/")
                    && report.findings[0].contains("content MISMATCH"),
                "{text}"
            );
        } else {
            assert_eq!(report.exit_code(), 0, "{text}");
            assert_eq!(w.check, Some(AddressCheck::Matches), "{text}");
        }
    }
}

#[test]
fn goaway_codes_are_named_and_broken_http2_is_a_warning() {
    let (bytes, name) = blob(1_000);
    let mut conn = Conn::new();
    read_call(&mut conn, &name, 0, &bytes, 1_000);
    conn.send(
        DOWN,
        build::goaway(StreamId(1), ErrorCode::NO_ERROR, b"bye"),
    );
    // Then garbage: a frame longer than the default maximum.
    conn.send(DOWN, vec![0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 1]);
    let report = inspect(vec![conn.chunks]);
    let text = report.render_text();
    assert_eq!(report.exit_code(), 0, "{text}");
    let c = &report.h2_connections[0];
    assert_eq!(c.goaways[0].code, "NO_ERROR");
    assert_eq!(c.goaways[0].debug, "bye");
    assert!(
        c.error
            .as_deref()
            .is_some_and(|e| e.contains("HTTP/2 decoding stopped")),
        "{c:?}"
    );
    assert!(
        text.contains("GOAWAY NO_ERROR (upstream->client), last stream 1"),
        "{text}"
    );
    assert!(report
        .warnings
        .iter()
        .any(|w| w.contains("HTTP/2 decoding stopped")));
}

#[test]
fn an_h2c_upgrade_is_followed_to_http2_with_the_request_as_stream_1() {
    let request = "GET /status HTTP/1.1\r\nHost: cas:8080\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\nUser-Agent: curl/8\r\n\r\n";
    let mut conn = Conn::new();
    // Conn::new() starts with the server's SETTINGS then the client's preface: put the HTTP/1
    // exchange in front, the 101 before the server's first frame.
    let mut chunks = vec![(UP, request.as_bytes().to_vec())];
    let mut switched =
        b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n".to_vec();
    switched.extend(&conn.chunks[0].1);
    chunks.push((DOWN, switched));
    chunks.push(conn.chunks[1].clone());
    conn.chunks = chunks;
    let head = HeaderList::from_pairs([(":status", "200"), ("content-type", "text/plain")]);
    conn.send(
        DOWN,
        build::headers(StreamId(1), &head, false, BlockLimits::default()),
    );
    let mut data = build::data_header(StreamId(1), 2, true).to_vec();
    data.extend(b"ok");
    conn.send(DOWN, data);
    // A second request on the upgraded connection, as HTTP/2 (stream 3).
    conn.next = 3;
    let s = conn.call("/next", &[], false);
    conn.trailers(s, 0);
    // Comments are tied by TCP offset, which counts the HTTP/1 exchange before HTTP/2.
    let (data_chunk, trailers_chunk) = (4, conn.chunks.len() - 1);
    let report = inspect_commented(
        vec![conn.chunks],
        &[
            (0, data_chunk, "on the data"),
            (0, trailers_chunk, "on the trailers"),
        ],
    );
    let text = report.render_text();
    assert_eq!(report.exit_code(), 0, "{text}");
    assert_eq!(report.h2_streams.len(), 2, "{text}");
    assert_eq!(report.h2_streams[0].faults, vec!["on the data"], "{text}");
    assert_eq!(
        report.h2_streams[1].faults,
        vec!["on the trailers"],
        "{text}"
    );
    let first = &report.h2_streams[0];
    assert_eq!(first.stream, 1);
    assert_eq!(first.method.as_deref(), Some("GET"));
    assert_eq!(first.path.as_deref(), Some("/status"));
    assert_eq!(first.authority.as_deref(), Some("cas:8080"));
    assert_eq!((first.status, first.response_bytes), (Some(200), 2));
    assert!(first.request_ended && first.response_ended);
    assert!(first.request_headers.iter().any(|f| f.name == "user-agent"));
    assert!(!first.request_headers.iter().any(|f| f.name == "upgrade"));
    assert_eq!(report.h2_streams[1].path.as_deref(), Some("/next"));
    assert!(
        report.flows[0].h2 && report.flows[0].http,
        "both views: {text}"
    );
    assert!(report.h2_connections[0].error.is_none());

    // A refused upgrade stays HTTP/1.
    let report = inspect(vec![vec![
        (UP, request.as_bytes().to_vec()),
        (
            DOWN,
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec(),
        ),
    ]]);
    assert!(report.h2_connections.is_empty() && !report.flows[0].h2);
}

#[test]
fn what_a_capture_cannot_attribute_is_no_finding() {
    let (bytes, name) = blob(30_000);
    let mut conn = Conn::new();
    // Client A is cut at 10000; client B reads the whole blob; A resumes at 10000. (A resume
    // at 15000 was no finding here, "the bytes before it did cross": to client B, never to A.
    // It is CORRUPT now, see `a_skipped_resume_is_corrupt_though_another_reader_got_those_bytes`.)
    cut_read(&mut conn, &name, &bytes, 5_000, 2);
    read_call(&mut conn, &name, 0, &bytes, 7_000);
    read_call(&mut conn, &name, 10_000, &bytes[10_000..], 7_000);
    // A server that ends a finished call with RST_STREAM(NO_ERROR) completed it.
    let s = read_call(&mut conn, &name, 0, &bytes, 10_000);
    conn.reset(s, DOWN, ErrorCode::NO_ERROR);
    let report = inspect(vec![conn.chunks]);
    let text = report.render_text();
    assert_eq!(report.exit_code(), 0, "{text}");
    let b = &report.bytestream[0];
    assert_eq!(b.check, Some(AddressCheck::Matches), "{text}");
    assert!(
        b.calls[3].complete && b.calls[3].reset.as_deref() == Some("NO_ERROR"),
        "{:?}",
        b.calls[3]
    );
}

/// Real traffic with seeded random corruption and truncation: inspect never panics, and a
/// corrupted flow is at worst a warning.
#[test]
fn corrupted_recordings_never_panic() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
    let original = records(GRPCIO);
    for _ in 0..100 {
        let mut chunks = original.clone();
        for _ in 0..rng.gen_range(1..4) {
            let i = rng.gen_range(0..chunks.len());
            let chunk = &mut chunks[i].1;
            let at = rng.gen_range(0..chunk.len());
            chunk[at] = rng.gen();
        }
        chunks.truncate(rng.gen_range(1..=chunks.len()));
        let report = inspect(vec![chunks]);
        let _ = report.render_text();
        let _ = report.to_json();
    }
}

#[test]
fn a_read_restarted_from_0_after_a_reset_is_noted_and_a_sibling_is_not() {
    let (bytes, name) = blob(50_000);
    // The retry opens after the reset: noted (a client that appends would hold too much).
    let mut conn = Conn::new();
    cut_read(&mut conn, &name, &bytes, 8_000, 3);
    read_call(&mut conn, &name, 0, &bytes, 16_000);
    let report = inspect(vec![conn.chunks]);
    let text = report.render_text();
    assert_eq!(
        report.exit_code(),
        0,
        "the wire carried the blob whole: {text}"
    );
    let note = &report.bytestream[0].problems;
    assert_eq!(note.len(), 1, "{text}");
    assert!(
        note[0].contains("the Read from offset 0 (stream 3 (flow 1)) starts over after stream 1 (flow 1) was cut at offset 24000")
            && note[0].contains("would hold 74000 bytes"),
        "{note:?}"
    );
    assert!(text.contains(&note[0]), "the note is in the text report");
    // ... and in both pages (user trials: neither showed it).
    let html = report.render_html();
    assert!(
        html.contains(&crate::inspect::html::escape(&note[0])),
        "the note is in the HTML page:\n{html}"
    );
    let md = report.render_markdown();
    assert!(
        md.contains(&crate::inspect::markdown::escape(&note[0])),
        "the note is in the Markdown summary:\n{md}"
    );

    // Opened before the reset (a concurrent sibling): nothing to say.
    let mut conn = Conn::new();
    let sibling = conn.call(READ, &[read_request(&name, 0)], true);
    cut_read(&mut conn, &name, &bytes, 8_000, 3);
    let messages: Vec<Vec<u8>> = bytes.chunks(16_000).map(ReadResponse::encode).collect();
    conn.respond(sibling, &messages);
    conn.trailers(sibling, 0);
    let report = inspect(vec![conn.chunks]);
    assert_eq!(report.exit_code(), 0, "{}", report.render_text());
    assert!(
        report.bytestream[0].problems.is_empty(),
        "{:?}",
        report.bytestream[0].problems
    );
}

fn ping() -> Vec<u8> {
    build::frame(FrameType::Ping, 0, StreamId(0), &[0; 8])
}

/// A comment is tied to its stream however many frames follow it (the demo's reset stream was
/// followed by 431 frames and lost its note).
#[test]
fn a_fault_comment_stays_on_its_stream_whatever_follows() {
    let (bytes, name) = blob(20_000);
    let mut conn = Conn::new();
    let cut = cut_read(&mut conn, &name, &bytes, 5_000, 1);
    let rst = conn.chunks.len() - 1;
    // A busy sibling: 600 frames after the reset.
    let s = conn.call(READ, &[read_request(&name, 0)], true);
    let messages: Vec<Vec<u8>> = bytes.chunks(100).map(ReadResponse::encode).collect();
    conn.respond(s, &messages[..199]);
    let head = conn.chunks.len();
    conn.respond(s, &messages[199..]);
    conn.trailers(s, 0);
    for _ in 0..400 {
        conn.send(DOWN, ping());
    }
    let note = r#"faultline: rule "cut" rst_stream CANCEL upstream->client"#;
    let sibling = "faultline: rule \"late\" latency";
    let report = inspect_commented(vec![conn.chunks], &[(0, rst, note), (0, head, sibling)]);
    let text = report.render_text();
    let faults = |id: StreamId| {
        report
            .h2_streams
            .iter()
            .find(|st| st.stream == id.0)
            .map(|st| st.faults.clone())
            .unwrap_or_default()
    };
    assert_eq!(faults(cut), vec![note.to_string()], "{text}");
    assert_eq!(faults(s), vec![sibling.to_string()], "{text}");
}

/// A comment on a packet whose frame is not whole yet (or whose earlier bytes come later) is
/// tied once the frame is parsed; a comment past the last frame is about the connection.
#[test]
fn a_comment_before_its_frame_is_parsed_waits_for_it() {
    let mut conn = Conn::new();
    let s = conn.call(READ, &[read_request("inst/blobs/ab/1", 0)], true);
    let mut rst = build::rst_stream(s, ErrorCode::CANCEL);
    let tail = rst.split_off(5);
    conn.send(DOWN, rst);
    let first = conn.chunks.len() - 1;
    conn.send(DOWN, tail);
    conn.send(DOWN, ping());
    let report = inspect_commented(
        vec![conn.chunks.clone()],
        &[
            (0, first, "cut"),
            (0, first + 1, "tail"),
            (0, first + 2, "ping"),
        ],
    );
    assert_eq!(report.h2_streams[0].faults, vec!["cut", "tail"]);
    // The preface is decided only once the client's bytes come: the server's SETTINGS and the
    // comment on it wait (and the SETTINGS frame is the connection's).
    let report = inspect_commented(vec![conn.chunks], &[(0, 0, "settings")]);
    assert!(report.h2_streams[0].faults.is_empty());
}

/// faultline resets a stalled stream toward the client, then forwards the server's trailers
/// (their HPACK must reach the client): the client ignores them, so the call was CANCELLED,
/// not OK, and did not end.
#[test]
fn trailers_after_a_reset_are_not_the_calls_status() {
    let (bytes, name) = blob(20_000);
    let mut conn = Conn::new();
    let s = cut_read(&mut conn, &name, &bytes, 5_000, 2);
    conn.trailers(s, 0);
    let report = inspect(vec![conn.chunks]);
    let text = report.render_text();
    let st = &report.h2_streams[0];
    assert_eq!(st.reset.as_ref().map(|r| r.code.as_str()), Some("CANCEL"));
    assert_eq!(st.grpc_status, None, "{text}");
    assert_eq!(st.grpc_status_ns, None);
    assert!(!st.response_ended && st.trailers.is_empty(), "{st:?}");
    assert_eq!(
        st.status,
        Some(200),
        "the response headers came before the reset"
    );
    assert!(
        st.ignored_after_reset
            .iter()
            .any(|f| f.name == "grpc-status" && f.value == "0"),
        "{st:?}"
    );
    let call = &report.bytestream[0].calls[0];
    assert_eq!(call.grpc_status, None, "{call:?}");
    assert!(!call.complete, "{call:?}");
    assert!(!text.contains("0 OK"), "{text}");
    assert!(
        text.contains("grpc-status 0 came after the reset: ignored"),
        "{text}"
    );
    let json: serde_json::Value = serde_json::from_str(&report.to_json()).expect("json");
    let problems = super::schema::violations(&json, &mut Default::default());
    assert!(problems.is_empty(), "{problems:?}");
}

/// `--markdown` lists the HTTP/2 streams with their outcome and the rule that reset one, its
/// capture text escaped so a rule name can neither split the table nor become HTML.
#[test]
fn markdown_lists_streams_resets_goaways_and_rule_notes() {
    let (bytes, name) = blob(20_000);
    let mut conn = Conn::new();
    read_call(&mut conn, &name, 0, &bytes, 10_000);
    let cut = cut_read(&mut conn, &name, &bytes, 5_000, 2);
    let rst = conn.chunks.len() - 1;
    conn.trailers(cut, 0);
    conn.send(DOWN, build::goaway(cut, ErrorCode::NO_ERROR, b"bye|<b>"));
    let note = r#"faultline: rule "cut | <script>" reset the stream (CANCEL)"#;
    let md = inspect_commented(vec![conn.chunks], &[(0, rst, note)]).render_markdown();
    for expected in [
        "<details open><summary>2 HTTP/2 streams on 1 connection, 1 reset, 1 with faults, 1 GOAWAY</summary>",
        "| leg | flow | stream | request | status | grpc-status | bytes (request / response) | end | faults |",
        "| client | 1 | 1 | POST /google.bytestream.ByteStream/Read | 200 | 0 OK | ",
        " | ended |  |",
        "| client | 1 | 3 | POST /google.bytestream.ByteStream/Read | 200 | - (grpc-status 0 came after the reset: ignored) | ",
        " | RST\\_STREAM CANCEL (upstream-\\>client) | rule \"cut \\| \\<script\\>\" reset the stream (CANCEL) |",
        "- flow 1 (client leg): GOAWAY NO\\_ERROR (upstream-\\>client), last stream 3, debug \"bye\\|\\<b\\>\"",
    ] {
        assert!(md.contains(expected), "no {expected:?} in:\n{md}");
    }
    // A capture without resets or faults folds its streams away.
    let mut conn = Conn::new();
    read_call(&mut conn, &name, 0, &bytes, 10_000);
    let md = inspect(vec![conn.chunks]).render_markdown();
    assert!(
        md.contains("<details><summary>1 HTTP/2 stream on 1 connection</summary>"),
        "{md}"
    );
}

/// A long capture pastes within an issue's size: the reset stream is listed even past the row
/// limit, and what is left out is counted.
#[test]
fn markdown_keeps_the_reset_stream_of_many_and_counts_the_rest() {
    let (bytes, name) = blob(1_000);
    let mut conn = Conn::new();
    for _ in 0..240 {
        read_call(&mut conn, &name, 0, &bytes, 1_000);
    }
    let cut = cut_read(&mut conn, &name, &bytes, 500, 1);
    for _ in 0..10 {
        read_call(&mut conn, &name, 0, &bytes, 1_000);
    }
    let report = inspect(vec![conn.chunks]);
    assert_eq!(report.h2_streams.len(), 251);
    let md = report.render_markdown();
    let rows = md
        .lines()
        .filter(|l| l.starts_with("| client | 1 | "))
        .count();
    assert_eq!(rows, 200, "{md}");
    assert!(
        md.contains(&format!("| client | 1 | {} | POST", cut.0)),
        "the reset stream is listed: {md}"
    );
    assert!(
        md.contains(
            "\n51 more streams are left out here (every one is in the text report and `--json`).\n"
        ),
        "{md}"
    );
}

/// A ByteStream Read whose connection lost bytes to the capture (a gap toward the client): the
/// blob said "incomplete: N of M bytes crossed" and the verdict OK. The capture missed them:
/// the blob says so and the verdict is INCONCLUSIVE.
#[test]
fn a_blob_the_capture_missed_bytes_of_is_inconclusive() {
    let (bytes, name) = blob(50_000);
    let mut conn = Conn::new();
    read_call(&mut conn, &name, 0, &bytes, 10_000);
    let info = info(1);
    let mut views = FlowViews::new(&info, MemoryUse::default());
    let mut offsets = [0u64; 2];
    let mut dropped = false;
    for (n, (direction, chunk)) in conn.chunks.into_iter().enumerate() {
        let at = offsets[direction.index()];
        offsets[direction.index()] += chunk.len() as u64;
        // The first large chunk toward the client (a DATA frame) never reached the capture.
        if direction == DOWN && chunk.len() > 5_000 && !std::mem::replace(&mut dropped, true) {
            views.gap(direction, at, chunk.len() as u64);
            continue;
        }
        views.data(direction, at, &chunk, 1_000_000_000 + n as u64);
    }
    assert!(dropped, "a chunk to drop");
    let (http, h2) = views.finish(&info);
    let report = analysis::build_with_h2(
        CaptureInfo::for_tests(),
        LegFilter::Both,
        vec![(info, http)],
        Vec::new(),
        h2.into_iter().collect(),
    );
    let text = report.render_text();
    assert_eq!(report.verdict, super::Verdict::Inconclusive, "{text}");
    assert_eq!(report.exit_code(), 3);
    let problems = &report.bytestream[0].problems;
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("incomplete in the capture: it holds ")),
        "{problems:?}"
    );
}

/// A plain (non-gRPC) request on a new stream of `conn`.
fn get(conn: &mut Conn, method: &str, path: &str) -> StreamId {
    let s = StreamId(conn.next);
    conn.next += 2;
    let head = HeaderList::from_pairs([
        (":method", method),
        (":scheme", "https"),
        (":path", path),
        (":authority", "files"),
    ]);
    conn.send(UP, build::headers(s, &head, true, BlockLimits::default()));
    s
}

/// A 200 answer stating `length` (when given), then `sent` body bytes in DATA frames, the last
/// one carrying END_STREAM when `end`.
fn answer(conn: &mut Conn, s: StreamId, length: Option<u64>, sent: usize, end: bool) {
    let length = length.map(|n| n.to_string());
    let mut pairs = vec![(":status", "200")];
    pairs.extend(length.as_deref().map(|n| ("content-length", n)));
    let head = HeaderList::from_pairs(pairs);
    conn.send(
        DOWN,
        build::headers(s, &head, sent == 0 && end, BlockLimits::default()),
    );
    let mut left = sent;
    while left > 0 {
        let n = left.min(16_384);
        left -= n;
        let mut frame = build::data_header(s, n as u32, end && left == 0).to_vec();
        frame.extend(std::iter::repeat_n(0x5a, n));
        conn.send(DOWN, frame);
    }
}

/// The black-box repro: `fault.truncate={after="100KiB"}` on a 3 MB download over
/// `curl --http2` showed `102400` and `response_ended: true` with no sign the body was short
/// (faultline's truncate ends the stream with END_STREAM at the cut), and a `tls_alert` left
/// the stream unended with no mark either. A response is now cut, as an HTTP/1 one is, when
/// fewer DATA bytes than its content-length crossed or its stream never ended.
#[test]
fn a_cut_http2_response_is_marked_short_as_http1_is() {
    let mut conn = Conn::new();
    let whole = get(&mut conn, "GET", "/whole");
    answer(&mut conn, whole, Some(30_000), 30_000, true);
    let truncated = get(&mut conn, "GET", "/truncated");
    answer(&mut conn, truncated, Some(300_000), 40_960, false);
    // faultline's truncate: an empty DATA frame with END_STREAM at the cut.
    conn.send(DOWN, build::data_header(truncated, 0, true).to_vec());
    let head = get(&mut conn, "HEAD", "/head");
    answer(&mut conn, head, Some(5_000), 0, true);
    let no_length = get(&mut conn, "GET", "/unsized");
    answer(&mut conn, no_length, None, 500, false);
    conn.reset(no_length, DOWN, ErrorCode(8));
    let open = get(&mut conn, "GET", "/alert");
    answer(&mut conn, open, Some(5_000), 1_000, false);
    // The connection ends here (a TLS alert, a reset): /alert never ended.
    let report = inspect(vec![conn.chunks]);
    let text = report.render_text();
    let by_path = |p: &str| {
        report
            .h2_streams
            .iter()
            .find(|s| s.path.as_deref() == Some(p))
            .unwrap_or_else(|| panic!("{p} in {text}"))
    };
    let cuts: Vec<(&str, bool, String)> = ["/whole", "/truncated", "/head", "/unsized", "/alert"]
        .iter()
        .map(|p| {
            let s = by_path(p);
            (*p, s.response_cut, s.response_bytes_text())
        })
        .collect();
    assert_eq!(
        cuts,
        vec![
            ("/whole", false, "30000".to_string()),
            ("/truncated", true, "40960/300000 CUT".to_string()),
            ("/head", false, "0".to_string()),
            ("/unsized", true, "500/? CUT".to_string()),
            ("/alert", true, "1000/5000 CUT".to_string()),
        ],
        "{text}"
    );
    assert!(by_path("/truncated").response_ended, "{text}");
    assert_eq!(by_path("/truncated").response_content_length, Some(300_000));
    assert!(text.contains("40960/300000 CUT"), "{text}");
    let json = report.to_json();
    let json: serde_json::Value = serde_json::from_str(&json).expect("JSON");
    let truncated = json["h2_streams"]
        .as_array()
        .expect("h2_streams")
        .iter()
        .find(|s| s["path"] == "/truncated")
        .expect("/truncated");
    assert_eq!(truncated["response_cut"], true, "{truncated}");
    assert_eq!(truncated["response_content_length"], 300_000, "{truncated}");
    assert!(report.render_markdown().contains("40960/300000 CUT"));
}

/// User trials: a blob with a hole said `incomplete (300000 bytes)` (where its furthest Read
/// ended) though fewer crossed. It says what crossed and where the hole is.
#[test]
fn an_incomplete_blob_says_what_crossed_and_where_the_hole_is() {
    let (bytes, name) = blob(300_000);
    let mut conn = Conn::new();
    cut_read(&mut conn, &name, &bytes, 16_000, 8);
    read_call(&mut conn, &name, 215_536, &bytes[215_536..], 16_000);
    let report = inspect(vec![conn.chunks]);
    let blob = &report.bytestream[0];
    assert_eq!(blob.length, 300_000, "where the furthest Read ended");
    let said = "incomplete (212464 of 300000 bytes; bytes 128000..215536 missing)";
    assert_eq!(blob.incomplete_text(), said);
    assert!(
        report.render_text().contains(said),
        "{}",
        report.render_text()
    );
    assert!(report.render_markdown().contains(said));
    assert!(report.render_html().contains(said));
}

/// User trials: an upstream-leg Read reset only after all 3,000,000 bytes had crossed was
/// "cut at offset 3000000". It says it carried the whole blob before its reset.
#[test]
fn a_read_reset_after_the_whole_blob_is_not_called_cut() {
    let (bytes, name) = blob(48_000);
    let mut conn = Conn::new();
    let s = conn.call(READ, &[read_request(&name, 0)], true);
    let messages: Vec<Vec<u8>> = bytes.chunks(16_000).map(ReadResponse::encode).collect();
    conn.respond(s, &messages);
    conn.reset(s, DOWN, ErrorCode::CANCEL);
    read_call(&mut conn, &name, 0, &bytes, 16_000);
    let report = inspect(vec![conn.chunks]);
    let note = &report.bytestream[0].problems;
    assert_eq!(note.len(), 1, "{}", report.render_text());
    assert!(
        note[0].contains("starts over after stream 1 (flow 1) was reset after carrying all 48000 bytes of the blob:"),
        "{note:?}"
    );
    assert!(!note[0].contains("cut at offset"), "{note:?}");
}

/// User trials: a gRPC Read cut by `truncate` (END_STREAM at the cut, no trailers) showed
/// `307200` without `CUT`. A gRPC answer that ends without its grpc-status is cut.
#[test]
fn a_grpc_answer_ended_without_its_status_is_cut() {
    let (bytes, name) = blob(48_000);
    let mut conn = Conn::new();
    let s = conn.call(READ, &[read_request(&name, 0)], true);
    let messages: Vec<Vec<u8>> = bytes[..32_000]
        .chunks(16_000)
        .map(ReadResponse::encode)
        .collect();
    conn.respond(s, &messages);
    conn.send(DOWN, build::data_header(s, 0, true).to_vec());
    let whole = read_call(&mut conn, &name, 0, &bytes, 16_000);
    let report = inspect(vec![conn.chunks]);
    let text = report.render_text();
    let stream = |id: StreamId| {
        report
            .h2_streams
            .iter()
            .find(|st| st.stream == id.0)
            .unwrap_or_else(|| panic!("stream {id:?} in {text}"))
    };
    assert!(stream(s).response_ended, "{text}");
    assert!(stream(s).response_cut, "{text}");
    assert!(
        stream(s).response_bytes_text().ends_with("/? CUT"),
        "{text}"
    );
    assert!(!stream(whole).response_cut, "{text}");
}

/// A flow of an "HPACK bomb" (`GET /` on stream 1 inserting a 4,000-byte entry, then `streams`
/// GETs of `refs` one-byte references to it each), one frame a packet, the server's SETTINGS
/// after the preface.
fn bomb_flow(streams: u32, refs: usize) -> Vec<(Direction, Vec<u8>)> {
    let client = crate::h2::hpack_bomb::client(streams, refs);
    let mut chunks = vec![
        (UP, client[..PREFACE.len()].to_vec()),
        (DOWN, vec![0, 0, 0, 4, 0, 0, 0, 0, 0]),
    ];
    let mut rest = &client[PREFACE.len()..];
    while !rest.is_empty() {
        let len = 9 + u32::from_be_bytes([0, rest[0], rest[1], rest[2]]) as usize;
        chunks.push((UP, rest[..len].to_vec()));
        rest = &rest[len..];
    }
    chunks
}

/// The hostile-input trial's capture took `inspect` to 3.2 GB and 27 s: every bomb block was
/// decoded (64 MB each, 1 MiB kept per stream). Now the flow's HTTP/2 stops with a warning at
/// the first block over the list limit, and at the block that would pass the flow's header
/// budget when each block is just under it; the streams before are listed.
#[test]
fn an_hpack_bomb_stops_the_flows_http2_with_a_warning() {
    for (refs, streams, says, listed) in [
        (16_000, 200, "header list exceeds 262144 bytes", 1),
        (62, 1000, "past 67108864 bytes", 1 + 268),
    ] {
        let started = std::time::Instant::now();
        let report = inspect(vec![bomb_flow(streams, refs)]);
        let text = report.render_text();
        let c = &report.h2_connections[0];
        let error = c.error.as_deref().unwrap_or_default();
        assert!(
            error.contains("HTTP/2 decoding stopped") && error.contains(says),
            "{refs} refs: {c:?}"
        );
        assert!(
            report.warnings.iter().any(|w| w.contains(says)),
            "{refs} refs: {text}"
        );
        assert_eq!(report.h2_streams.len(), listed, "{refs} refs: {text}");
        assert!(started.elapsed() < std::time::Duration::from_secs(20));
    }
}

/// The header budget holds for the capture, not for each flow: a trial's capture of 8 bomb
/// flows took `inspect` to 627 MB, 64 MiB of lists each. Four flows fill the capture's 256 MiB;
/// the fifth stops at its first block and says the other connections hold the budget.
#[test]
fn many_bomb_flows_share_one_header_budget() {
    let report = inspect(vec![bomb_flow(1000, 62); 5]);
    let errors: Vec<&str> = report
        .h2_connections
        .iter()
        .map(|c| c.error.as_deref().unwrap_or_default())
        .collect();
    assert_eq!(errors.len(), 5, "{errors:?}");
    for error in &errors[..4] {
        assert!(error.contains("past 67108864 bytes"), "{errors:?}");
        assert!(!error.contains("together"), "{errors:?}");
    }
    assert!(
        errors[4].contains("together keep at most 268435456 bytes of header lists"),
        "{errors:?}"
    );
    let listed_last = report
        .h2_streams
        .iter()
        .filter(|s| s.flow == report.h2_connections[4].flow)
        .count();
    assert_eq!(listed_last, 1, "only the first GET fits: {errors:?}");
}

/// Past the 10,000 streams a flow lists, closed streams are dropped from the conversation
/// (their header lists with them, so a long connection stays within the flow's header
/// budget); the streams listed keep everything, and the rest are counted.
#[test]
fn streams_past_the_listed_ones_are_counted_and_their_lists_released() {
    let mut conn = Conn::new();
    // 12,500 GETs with 2 KB of headers each, each answered and closed before the next.
    let cookie = "c".repeat(2000);
    for i in 0..12_500u32 {
        let s = StreamId(conn.next);
        conn.next += 2;
        let head = HeaderList::from_pairs([
            (":method", "GET"),
            (":scheme", "https"),
            (":path", &format!("/f{i}")),
            (":authority", "files"),
            ("cookie", &cookie),
        ]);
        conn.send(UP, build::headers(s, &head, true, BlockLimits::default()));
        let answer = HeaderList::from_pairs([(":status", "204")]);
        conn.send(
            DOWN,
            build::headers(s, &answer, true, BlockLimits::default()),
        );
    }
    let report = inspect(vec![conn.chunks]);
    let text = report.render_text();
    assert!(report.h2_connections[0].error.is_none(), "{text}");
    assert_eq!(report.h2_streams.len(), 10_000);
    assert_eq!(report.h2_connections[0].streams, 12_500);
    assert!(
        report
            .warnings
            .iter()
            .any(|w| w.contains("2500 more HTTP/2 streams not listed")),
        "{:?}",
        report.warnings
    );
    let last = &report.h2_streams[9_999];
    assert_eq!(last.path.as_deref(), Some("/f9999"));
    assert_eq!(last.status, Some(204));
}

/// A gRPC message with the compressed flag set: `body` as `encoding` makes it.
fn compressed_message(encoding: &str, body: &[u8]) -> Vec<u8> {
    use flate2::write::{GzEncoder, ZlibEncoder};
    use flate2::Compression;
    use std::io::Write;
    let packed = match encoding.to_ascii_lowercase().as_str() {
        "gzip" => {
            let mut e = GzEncoder::new(Vec::new(), Compression::default());
            e.write_all(body).expect("gzip");
            e.finish().expect("gzip")
        }
        "deflate" => {
            let mut e = ZlibEncoder::new(Vec::new(), Compression::default());
            e.write_all(body).expect("zlib");
            e.finish().expect("zlib")
        }
        // Bytes no reader here takes for what they claim to be.
        _ => body.iter().rev().copied().collect(),
    };
    let mut framed = vec![1u8];
    framed.extend((packed.len() as u32).to_be_bytes());
    framed.extend(packed);
    framed
}

impl Conn {
    /// Opens a call whose request headers add `extra`, its messages framed already.
    fn call_framed(&mut self, path: &str, extra: &[(&str, &str)], framed: &[Vec<u8>]) -> StreamId {
        let s = StreamId(self.next);
        self.next += 2;
        let mut pairs: Vec<(&str, &str)> = vec![
            (":method", "POST"),
            (":scheme", "http"),
            (":path", path),
            (":authority", "cas"),
            ("content-type", "application/grpc"),
            ("te", "trailers"),
        ];
        pairs.extend_from_slice(extra);
        let list = HeaderList::from_pairs(pairs);
        self.send(UP, build::headers(s, &list, false, BlockLimits::default()));
        for (i, m) in framed.iter().enumerate() {
            let mut frame = build::data_header(s, m.len() as u32, i + 1 == framed.len()).to_vec();
            frame.extend(m);
            self.send(UP, frame);
        }
        s
    }

    /// Answers with response headers that add `extra`, then the framed messages.
    fn respond_framed(&mut self, s: StreamId, extra: &[(&str, &str)], framed: &[Vec<u8>]) {
        let mut pairs = vec![(":status", "200"), ("content-type", "application/grpc")];
        pairs.extend_from_slice(extra);
        let head = HeaderList::from_pairs(pairs);
        self.send(
            DOWN,
            build::headers(s, &head, false, BlockLimits::default()),
        );
        for m in framed {
            let mut frame = build::data_header(s, m.len() as u32, false).to_vec();
            frame.extend(m);
            self.send(DOWN, frame);
        }
    }
}

/// A Read answered with `grpc-encoding: encoding` and every message compressed.
fn compressed_read(conn: &mut Conn, name: &str, bytes: &[u8], encoding: &str) {
    let s = conn.call(READ, &[read_request(name, 0)], true);
    let framed: Vec<Vec<u8>> = bytes
        .chunks(16_000)
        .map(|c| compressed_message(encoding, &ReadResponse::encode(c)))
        .collect();
    conn.respond_framed(s, &[("grpc-encoding", encoding)], &framed);
    conn.trailers(s, 0);
}

/// User trial: a server answering with `grpc-encoding: gzip` made a correct 5,000,000-byte Read
/// "CORRUPT … incomplete (0 of 5000000 bytes)". Compressed messages are read as gzip or deflate;
/// any other encoding leaves the blob not checked, never corrupt.
#[test]
fn a_read_compressed_by_the_server_verifies_and_an_unread_encoding_is_not_checked() {
    let (bytes, name) = blob(50_000);
    for encoding in ["gzip", "deflate", "GZIP"] {
        let mut conn = Conn::new();
        compressed_read(&mut conn, &name, &bytes, encoding);
        let report = inspect(vec![conn.chunks]);
        let text = report.render_text();
        assert_eq!(report.exit_code(), 0, "{encoding}: {text}");
        let b = &report.bytestream[0];
        assert_eq!(b.check, Some(AddressCheck::Matches), "{encoding}: {text}");
        assert!(b.problems.is_empty(), "{encoding}: {text}");
    }
    // A wrong byte inside the compressed data is still found.
    let mut bad = bytes.clone();
    bad[31_000] ^= 2;
    let mut conn = Conn::new();
    compressed_read(&mut conn, &name, &bad, "gzip");
    let report = inspect(vec![conn.chunks]);
    assert_eq!(report.exit_code(), 1, "{}", report.render_text());
    assert!(report.findings[0].contains("content MISMATCH"));

    for (encoding, why) in [
        ("zstd", "grpc-encoding \"zstd\" is not read here"),
        ("snappy", "grpc-encoding \"snappy\" is not read here"),
        (
            "identity",
            "is marked compressed but the stream's grpc-encoding is \"identity\"",
        ),
    ] {
        let mut conn = Conn::new();
        compressed_read(&mut conn, &name, &bytes, encoding);
        let report = inspect(vec![conn.chunks]);
        let text = report.render_text();
        assert_eq!(report.exit_code(), 0, "{encoding}: {text}");
        let b = &report.bytestream[0];
        assert!(!b.corrupt, "{text}");
        assert!(
            matches!(&b.check, Some(AddressCheck::NotChecked { reason }) if reason.contains(why)
                && reason.contains("stream 1 (flow 1): message 0 (upstream->client)")),
            "{encoding}: {text}"
        );
        assert!(
            text.contains("not checked:") && !text.contains("incomplete"),
            "{text}"
        );
    }
    // gzip named but the bytes are not gzip: not checked, no finding against the server.
    let mut conn = Conn::new();
    let s = conn.call(READ, &[read_request(&name, 0)], true);
    let framed = compressed_message("zstd", &ReadResponse::encode(&bytes[..10_000]));
    conn.respond_framed(s, &[("grpc-encoding", "gzip")], &[framed]);
    conn.trailers(s, 0);
    let report = inspect(vec![conn.chunks]);
    let b = &report.bytestream[0];
    assert_eq!(report.exit_code(), 0, "{}", report.render_text());
    assert!(
        matches!(&b.check, Some(AddressCheck::NotChecked { reason }) if reason.contains("does not decompress as gzip")),
        "{:?}",
        b.check
    );
}

/// Client messages are read by the request's `grpc-encoding`: a gzip Write verifies.
#[test]
fn a_write_compressed_by_the_client_verifies() {
    let (bytes, read_name) = blob(30_000);
    let name = read_name.replace("inst/a/blobs", "inst/a/uploads/u1/blobs");
    let mut conn = Conn::new();
    let framed = vec![
        compressed_message("gzip", &write_request(&name, 0, &bytes[..20_000], false)),
        frame_message(&write_request("", 20_000, &bytes[20_000..], true)),
    ];
    let s = conn.call_framed(WRITE, &[("grpc-encoding", "gzip")], &framed);
    conn.respond(
        s,
        &[WriteResponse {
            committed_size: 30_000,
        }
        .encode()],
    );
    conn.trailers(s, 0);
    let report = inspect(vec![conn.chunks]);
    let text = report.render_text();
    assert_eq!(report.exit_code(), 0, "{text}");
    assert_eq!(
        report.bytestream[0].check,
        Some(AddressCheck::Matches),
        "{text}"
    );
}

/// A Read of `bytes` at `offset` with `read_limit` = its length, ended OK.
fn chunk_read(conn: &mut Conn, name: &str, offset: usize, bytes: &[u8]) -> StreamId {
    let s = conn.call(
        READ,
        &[ReadRequest {
            resource_name: name.into(),
            read_offset: offset as i64,
            read_limit: bytes.len() as i64,
        }
        .encode()],
        true,
    );
    let messages: Vec<Vec<u8>> = bytes.chunks(7_000).map(ReadResponse::encode).collect();
    conn.respond(s, &messages);
    conn.trailers(s, 0);
    s
}

/// User trial: chunked Reads [0,7000), [7000,14000) ended OK, then a Read at 14010: verdict OK
/// with only "incomplete". A Read that starts past where an OK chunk stopped is CORRUPT as a
/// resume past a reset is; chunks read again, in parallel or with the gap filled are not.
#[test]
fn a_chunked_read_that_skips_bytes_is_corrupt_and_overlaps_are_not() {
    let (bytes, name) = blob(30_000);
    let mut conn = Conn::new();
    chunk_read(&mut conn, &name, 0, &bytes[..7_000]);
    chunk_read(&mut conn, &name, 7_000, &bytes[7_000..14_000]);
    let mut later = Conn::new();
    chunk_read(&mut later, &name, 14_010, &bytes[14_010..]);
    let report = inspect(vec![conn.chunks, later.chunks]);
    let text = report.render_text();
    assert_eq!(report.exit_code(), 1, "{text}");
    assert!(
        report.findings[0].contains("the Read at offset 14010 (stream 1 (flow 2)) does not continue where stream 3 (flow 1) stopped at offset 14000 (it ended OK at its read_limit): bytes 14000..14010 never arrived"),
        "{text}"
    );

    // Contiguous, overlapping (re-read from 3000) and a gap filled later: clean.
    let mut conn = Conn::new();
    chunk_read(&mut conn, &name, 0, &bytes[..7_000]);
    chunk_read(&mut conn, &name, 3_000, &bytes[3_000..14_000]);
    chunk_read(&mut conn, &name, 14_000, &bytes[14_000..]);
    let report = inspect(vec![conn.chunks]);
    assert_eq!(report.exit_code(), 0, "{}", report.render_text());
    assert_eq!(report.bytestream[0].check, Some(AddressCheck::Matches));

    // A parallel reader: the chunk at 20000 opens before the one at 10000 was answered.
    let mut conn = Conn::new();
    chunk_read(&mut conn, &name, 0, &bytes[..10_000]);
    let s = conn.call(
        READ,
        &[ReadRequest {
            resource_name: name.clone(),
            read_offset: 10_000,
            read_limit: 10_000,
        }
        .encode()],
        true,
    );
    chunk_read(&mut conn, &name, 20_000, &bytes[20_000..]);
    conn.respond(s, &[ReadResponse::encode(&bytes[10_000..20_000])]);
    conn.trailers(s, 0);
    let report = inspect(vec![conn.chunks]);
    assert_eq!(report.exit_code(), 0, "{}", report.render_text());
    assert_eq!(report.bytestream[0].check, Some(AddressCheck::Matches));
}

/// User trial: a Write whose client leg carried every byte, resumed past what the server had
/// committed, read "incomplete (3000000 of 3000000 bytes)" and "983040 of 3000000 bytes crossed
/// contiguously"; its QueryWriteStatus showed `@0+0`. Both say what happened now.
#[test]
fn a_write_resumed_past_the_committed_size_says_which_bytes_it_skipped() {
    let (bytes, read_name) = blob(30_000);
    let name = read_name.replace("inst/a/blobs", "inst/a/uploads/u1/blobs");
    let mut conn = Conn::new();
    let first = conn.call(
        WRITE,
        &[
            write_request(&name, 0, &bytes[..10_000], false),
            write_request("", 10_000, &bytes[10_000..20_000], false),
        ],
        false,
    );
    conn.reset(first, UP, ErrorCode::CANCEL);
    let q = conn.call(
        QUERY,
        &[crate::h2::bytestream::QueryWriteStatusRequest {
            resource_name: name.clone(),
        }
        .encode()],
        true,
    );
    conn.respond(
        q,
        &[QueryWriteStatusResponse {
            committed_size: 9_830,
            complete: false,
        }
        .encode()],
    );
    conn.trailers(q, 0);
    let second = conn.call(
        WRITE,
        &[write_request(&name, 20_000, &bytes[20_000..], true)],
        true,
    );
    conn.respond(
        second,
        &[WriteResponse {
            committed_size: 30_000,
        }
        .encode()],
    );
    conn.trailers(second, 0);
    let report = inspect(vec![conn.chunks]);
    let text = report.render_text();
    assert_eq!(report.exit_code(), 1, "{text}");
    let said = "the resumed Write at offset 20000 (stream 5 (flow 1)) skips bytes 9830..20000 the server had not committed (committed_size 9830)";
    assert!(report.findings[0].contains(said), "{text}");
    let result = "incomplete: bytes 9830..20000 never stored";
    assert!(
        text.contains(result) && report.render_html().contains(result),
        "{text}"
    );
    assert!(
        !text.contains("30000 of 30000") && !text.contains("crossed contiguously"),
        "{text}"
    );
    assert!(
        text.contains("QueryWriteStatus s3/f1 committed 9830,") && !text.contains("@0+0"),
        "{text}"
    );
}

/// User trial: a Read faultline answered UNAVAILABLE showed its status in the text pieces
/// (`Read s21/f0 @1032192+0 UNAVAILABLE`) but not in the HTML cell.
#[test]
fn the_html_pieces_show_how_each_call_ended() {
    let (bytes, name) = blob(20_000);
    let mut conn = Conn::new();
    let s = conn.call(READ, &[read_request(&name, 0)], true);
    conn.respond(s, &[ReadResponse::encode(&bytes[..8_000])]);
    conn.trailers(s, 14);
    read_call(&mut conn, &name, 8_000, &bytes[8_000..], 6_000);
    let report = inspect(vec![conn.chunks]);
    let text = report.render_text();
    let html = report.render_html();
    assert!(text.contains("Read s1/f1 @0+8000 UNAVAILABLE"), "{text}");
    assert!(
        html.contains(
            "Read flow 1 stream 1 @0+8000 UNAVAILABLE, Read flow 1 stream 3 @8000+12000<"
        ),
        "{html}"
    );
}

/// User trial: a blob read 300 times listed 300 pieces on one text line and in a 9 MB HTML
/// cell. Text and HTML list the first LISTED_CALLS and count the rest; `--json` keeps all.
#[test]
fn a_blob_read_many_times_lists_its_first_calls_and_counts_the_rest() {
    let (bytes, name) = blob(2_000);
    let mut conn = Conn::new();
    for _ in 0..super::blobs::LISTED_CALLS + 13 {
        read_call(&mut conn, &name, 0, &bytes, 2_000);
    }
    let report = inspect(vec![conn.chunks]);
    let text = report.render_text();
    assert_eq!(report.exit_code(), 0, "{text}");
    assert_eq!(
        report.bytestream[0].calls.len(),
        super::blobs::LISTED_CALLS + 13
    );
    let line = text
        .lines()
        .find(|l| l.contains("read inst/a/blobs/"))
        .expect("the blob line");
    assert_eq!(
        line.matches("Read s").count(),
        super::blobs::LISTED_CALLS,
        "{line}"
    );
    assert!(line.ends_with(", and 13 more Reads]"), "{line}");
    let html = report.render_html();
    assert_eq!(
        html.matches("Read flow 1 stream").count(),
        super::blobs::LISTED_CALLS
    );
    assert!(html.contains(", and 13 more Reads<"), "{html}");
    let json = serde_json::to_value(&report).expect("json");
    assert_eq!(
        json["bytestream"][0]["calls"].as_array().map(Vec::len),
        Some(super::blobs::LISTED_CALLS + 13)
    );
}

/// A call that cannot be read does not hide what the others show: a whole plain Read beside a
/// zstd one verifies, with a note; a zstd Write alone is not checked, never corrupt.
#[test]
fn an_unreadable_call_beside_readable_ones_is_a_note() {
    let (bytes, name) = blob(40_000);
    let mut conn = Conn::new();
    compressed_read(&mut conn, &name, &bytes[..16_000], "zstd");
    read_call(&mut conn, &name, 0, &bytes, 16_000);
    let report = inspect(vec![conn.chunks]);
    let text = report.render_text();
    assert_eq!(report.exit_code(), 0, "{text}");
    let b = &report.bytestream[0];
    assert_eq!(b.check, Some(AddressCheck::Matches), "{text}");
    assert!(
        b.problems
            .iter()
            .any(|p| p.contains("stream 1 (flow 1): message 0 (upstream->client) cannot be read")),
        "{text}"
    );

    let upload = name.replace("inst/a/blobs", "inst/a/uploads/u1/blobs");
    let mut conn = Conn::new();
    let framed = vec![
        frame_message(&write_request(&upload, 0, &bytes[..10_000], false)),
        compressed_message("zstd", &write_request("", 10_000, &bytes[10_000..], true)),
    ];
    let s = conn.call_framed(WRITE, &[("grpc-encoding", "zstd")], &framed);
    conn.respond(
        s,
        &[WriteResponse {
            committed_size: 40_000,
        }
        .encode()],
    );
    conn.trailers(s, 0);
    let report = inspect(vec![conn.chunks]);
    let text = report.render_text();
    assert_eq!(report.exit_code(), 0, "{text}");
    assert!(
        report.bytestream.is_empty() || !report.bytestream[0].corrupt,
        "{text}"
    );
}

/// A call whose request cannot be read names no blob: a warning says it is not checked.
#[test]
fn a_call_whose_request_cannot_be_read_is_a_warning() {
    let (bytes, name) = blob(4_000);
    let mut conn = Conn::new();
    let framed = vec![compressed_message("zstd", &read_request(&name, 0))];
    let s = conn.call_framed(READ, &[("grpc-encoding", "zstd")], &framed);
    conn.respond(s, &[ReadResponse::encode(&bytes)]);
    conn.trailers(s, 0);
    let report = inspect(vec![conn.chunks]);
    assert_eq!(report.exit_code(), 0, "{}", report.render_text());
    assert!(
        report.warnings.iter().any(|w| w
            == "flow 1 stream 1: a ByteStream Read is not checked: message 0 (client->upstream) cannot be read: grpc-encoding \"zstd\" is not read here"),
        "{:?}",
        report.warnings
    );
}

/// A Read from `offset` cut by RST_STREAM(CANCEL) toward the client after `whole` complete
/// messages of `chunk` bytes of `bytes` (the blob from `offset`) and part of one more.
fn cut_read_at(
    conn: &mut Conn,
    name: &str,
    offset: usize,
    bytes: &[u8],
    chunk: usize,
    whole: usize,
) -> StreamId {
    let s = conn.call(READ, &[read_request(name, offset as i64)], true);
    let messages: Vec<Vec<u8>> = bytes[..whole * chunk]
        .chunks(chunk)
        .map(ReadResponse::encode)
        .collect();
    conn.respond(s, &messages);
    conn.respond_partial(
        s,
        &ReadResponse::encode(&bytes[whole * chunk..(whole + 1) * chunk]),
        100,
    );
    conn.reset(s, DOWN, ErrorCode::CANCEL);
    s
}

/// Black-box trial (`cap/dup-skip.pcapng`, `cap/xconn-skip.pcapng`): a reader cut at 524288
/// resumed at 589824, and the blob said OK because other Reads of the same blob, on the same
/// connection or another, had carried bytes 524288..589824 to someone else. Each reader's
/// resume is checked against the stream it resumes.
#[test]
fn a_skipped_resume_is_corrupt_though_another_reader_got_those_bytes() {
    let (bytes, name) = blob(60_000);
    // Same connection: a whole Read, then a reader cut at 16000 that resumes at 20000.
    let mut conn = Conn::new();
    read_call(&mut conn, &name, 0, &bytes, 16_000);
    cut_read(&mut conn, &name, &bytes, 8_000, 2);
    read_call(&mut conn, &name, 0, &bytes, 16_000);
    read_call(&mut conn, &name, 20_000, &bytes[20_000..], 16_000);
    let same = inspect(vec![conn.chunks]);
    // Another connection: the whole Read comes after, on its own connection.
    let mut first = Conn::new();
    cut_read(&mut first, &name, &bytes, 8_000, 2);
    read_call(&mut first, &name, 20_000, &bytes[20_000..], 16_000);
    let mut second = Conn::new();
    read_call(&mut second, &name, 0, &bytes, 16_000);
    let across = inspect(vec![first.chunks, second.chunks]);
    for (report, resume, cut) in [
        (same, "stream 7 (flow 1)", "stream 3 (flow 1)"),
        (across, "stream 3 (flow 1)", "stream 1 (flow 1)"),
    ] {
        let text = report.render_text();
        assert_eq!(report.exit_code(), 1, "{text}");
        let said = format!("the resume at offset 20000 ({resume}) does not continue where {cut} stopped at offset 16000: bytes 16000..20000 never arrived");
        assert!(report.findings[0].contains(&said), "{text}");
        assert!(report.bytestream[0].corrupt, "{text}");
    }

    // Two readers cut at different offsets, each resuming where its own stream stopped: OK
    // (the second reader's Read from 0 is noted as a restart, nothing about the resumes).
    let mut conn = Conn::new();
    cut_read(&mut conn, &name, &bytes, 8_000, 2);
    cut_read(&mut conn, &name, &bytes, 8_000, 5);
    read_call(&mut conn, &name, 40_000, &bytes[40_000..], 16_000);
    read_call(&mut conn, &name, 16_000, &bytes[16_000..], 16_000);
    let report = inspect(vec![conn.chunks]);
    let text = report.render_text();
    assert_eq!(report.exit_code(), 0, "{text}");
    assert!(
        report.bytestream[0]
            .problems
            .iter()
            .all(|p| !p.contains("resume")),
        "{text}"
    );

    // A resume of a resume: the chain goes on from where the second stream stopped.
    let mut conn = Conn::new();
    cut_read(&mut conn, &name, &bytes, 8_000, 2);
    cut_read_at(&mut conn, &name, 16_000, &bytes[16_000..], 8_000, 2);
    read_call(&mut conn, &name, 0, &bytes, 16_000);
    read_call(&mut conn, &name, 36_000, &bytes[36_000..], 16_000);
    let report = inspect(vec![conn.chunks]);
    let text = report.render_text();
    assert_eq!(report.exit_code(), 1, "{text}");
    assert!(
        report.findings[0].contains("the resume at offset 36000 (stream 7 (flow 1)) does not continue where stream 3 (flow 1) stopped at offset 32000: bytes 32000..36000 never arrived"),
        "{text}"
    );
}

/// Black-box trial (`cap/rd-overlap.pcapng`): a resume at 458752 after 524288 bytes had crossed
/// got no note, though a restart from 0 gets one. Any resume that goes back gets it, on the
/// client leg (on the upstream leg faultline dropped those bytes with the stream it cut).
#[test]
fn a_resume_that_goes_back_is_noted_as_a_restart_from_0_is() {
    let (bytes, name) = blob(50_000);
    let mut conn = Conn::new();
    cut_read(&mut conn, &name, &bytes, 8_000, 3);
    read_call(&mut conn, &name, 16_000, &bytes[16_000..], 16_000);
    let report = inspect(vec![conn.chunks]);
    let text = report.render_text();
    assert_eq!(report.exit_code(), 0, "the wire carried the blob: {text}");
    let note = &report.bytestream[0].problems;
    assert_eq!(note.len(), 1, "{text}");
    assert_eq!(
        note[0],
        "the resume at offset 16000 (stream 3 (flow 1)) goes back before where stream 1 (flow 1) stopped at offset 24000: correct if the client dropped those 8000 bytes; a client that appends them would hold 58000 bytes",
    );
    assert!(text.contains(&note[0]), "{text}");
    assert!(report
        .render_markdown()
        .contains(&crate::inspect::markdown::escape(&note[0])));
}

/// Black-box trial (`cap/wr-skip.pcapng`, `cap/wr-skip-lie.pcapng`): a Write cut at 1 MiB,
/// resumed at 2 MiB without asking what was committed, was finished and answered OK (committed
/// the full size, or not): the blob said "incomplete (… bytes 1048576..2097152 missing)" and
/// the verdict was clean. A hole the server committed is CORRUPT, naming its offsets.
#[test]
fn a_write_hole_the_server_committed_is_corrupt_naming_the_hole() {
    let (bytes, read_name) = blob(30_000);
    let upload = read_name.replace("inst/a/blobs", "inst/a/uploads/u1/blobs");
    // (status, committed_size answered to the resume, what the finding says)
    let cases = [
        (
            0,
            30_000,
            Some("bytes 10000..20000 were never written, yet the server committed them: stream 3 (flow 1) reported committed_size 30000"),
        ),
        (
            0,
            10_000,
            Some("bytes 10000..20000 were never written, yet the server committed them: stream 3 (flow 1) sent finish_write and was answered OK"),
        ),
        // The server refused the resume: nothing committed, nothing corrupt.
        (3, 10_000, None),
    ];
    for (status, committed, said) in cases {
        let mut conn = Conn::new();
        let first = conn.call(
            WRITE,
            &[write_request(&upload, 0, &bytes[..10_000], false)],
            false,
        );
        conn.reset(first, UP, ErrorCode::CANCEL);
        let second = conn.call(
            WRITE,
            &[write_request(&upload, 20_000, &bytes[20_000..], true)],
            true,
        );
        if status == 0 {
            conn.respond(
                second,
                &[WriteResponse {
                    committed_size: committed,
                }
                .encode()],
            );
        } else {
            conn.respond(second, &[]);
        }
        conn.trailers(second, status);
        let report = inspect(vec![conn.chunks]);
        let text = report.render_text();
        let w = &report.bytestream[0];
        match said {
            Some(said) => {
                assert_eq!(report.exit_code(), 1, "{text}");
                assert!(w.corrupt, "{text}");
                assert!(
                    report.findings[0].starts_with("CORRUPT: ByteStream Write of inst/a/blobs/")
                        && report.findings[0].contains(said),
                    "{text}"
                );
            }
            None => {
                assert_eq!(report.exit_code(), 0, "{text}");
                assert!(!w.corrupt, "{text}");
            }
        }
    }
}

/// Black-box trial (`cap/xconn-skip.pcapng`, `rep/rst-ignore.txt`): a blob line read
/// "CORRUPT read blobs/…: matches (sha256)", every line said "(sha256 or blake3)" even after
/// "matches (sha256)", and the last line repeated the first finding "(and 1 more)" as if it
/// were a third. Each line says one thing.
#[test]
fn blob_lines_and_the_verdict_say_one_thing() {
    let (bytes, name) = blob(60_000);
    let (other, other_name) = blob(30_000);
    let mut conn = Conn::new();
    read_call(&mut conn, &name, 0, &bytes, 16_000);
    cut_read(&mut conn, &name, &bytes, 8_000, 2);
    read_call(&mut conn, &name, 20_000, &bytes[20_000..], 16_000);
    // A second corrupt blob: its resume skipped bytes nobody carried.
    cut_read(&mut conn, &other_name, &other, 5_000, 2);
    read_call(&mut conn, &other_name, 15_000, &other[15_000..], 5_000);
    let report = inspect(vec![conn.chunks]);
    let text = report.render_text();
    assert_eq!(report.findings.len(), 2, "{text}");
    let line = text
        .lines()
        .find(|l| l.starts_with("  CORRUPT read inst/a/blobs/") && l.contains("/60000 "))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        line.contains("(client leg, sha256): bytes 16000..20000 never reached the Read that resumed past them; the bytes the other Reads carried match ["),
        "{line}"
    );
    assert!(!text.contains("sha256 or blake3): matches"), "{text}");
    assert!(
        text.ends_with(&format!(
            "\n{}\n{}\nCORRUPT: 2 findings, listed above\n",
            report.findings[0], report.findings[1]
        )),
        "{text}"
    );
    let md = report.render_markdown();
    assert!(
        md.contains("bytes 16000..20000 never reached the Read that resumed past them; the bytes the other Reads carried match (sha256)"),
        "{md}"
    );
    let html = report.render_html();
    assert!(
        html.contains("bytes 16000..20000 never reached the Read that resumed past them; the bytes the other Reads carried match<"),
        "{html}"
    );
}
