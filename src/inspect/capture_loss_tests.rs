//! Tests of captures that miss payload (packets cut by a snap length, segments never captured): what they hold is reported, never called clean.

use super::*;

const SYN: u8 = 0x02;
const ACK: u8 = 0x10;
const FIN: u8 = 0x01;
const RST: u8 = 0x04;

/// An Ethernet/IPv4/TCP frame between 10.0.0.1:5555 (client) and 10.0.0.2:80.
fn frame(to_server: bool, seq: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
    acking(to_server, seq, 0, flags, payload)
}

/// [`frame`] with an acknowledgment number.
fn acking(to_server: bool, seq: u32, ack: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
    let (src, dst, sport, dport) = if to_server {
        ([10, 0, 0, 1], [10, 0, 0, 2], 5555u16, 80u16)
    } else {
        ([10, 0, 0, 2], [10, 0, 0, 1], 80, 5555)
    };
    let mut f = vec![0u8; 12];
    f.extend_from_slice(&[0x08, 0x00, 0x45, 0]);
    f.extend_from_slice(&((40 + payload.len()) as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0, 0x40, 0, 64, 6, 0, 0]);
    f.extend_from_slice(&src);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&sport.to_be_bytes());
    f.extend_from_slice(&dport.to_be_bytes());
    f.extend_from_slice(&seq.to_be_bytes());
    f.extend_from_slice(&ack.to_be_bytes());
    f.extend_from_slice(&[0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    f.extend_from_slice(payload);
    f
}

/// A classic pcap (little-endian, microseconds, Ethernet) of `frames`, each captured at most
/// `snap` bytes of (its original length kept in the record, as a snap length leaves it).
pub(crate) fn pcap(frames: &[Vec<u8>], snap: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for word in [0xa1b2_c3d4u32, 0x0004_0002, 0, 0, snap as u32, 1] {
        out.extend_from_slice(&word.to_le_bytes());
    }
    for (i, f) in frames.iter().enumerate() {
        let kept = &f[..f.len().min(snap)];
        for word in [
            1_780_000_000 + i as u32,
            0,
            kept.len() as u32,
            f.len() as u32,
        ] {
            out.extend_from_slice(&word.to_le_bytes());
        }
        out.extend_from_slice(kept);
    }
    out
}

/// One PUT of 3000 bytes answered 201, its body in three segments; `drop` leaves segment
/// `drop` (0..3) out of the capture.
pub(crate) fn put(drop: Option<usize>) -> Vec<Vec<u8>> {
    let body: Vec<u8> = (0..3000u32).map(|i| (i * 7 % 251) as u8).collect();
    let mut request = b"PUT /files/md5/ab/cdef HTTP/1.1\r\nContent-Length: 3000\r\n\r\n".to_vec();
    request.extend_from_slice(&body);
    let mut frames = vec![
        frame(true, 100, SYN, b""),
        frame(false, 500, SYN | ACK, b""),
    ];
    let pieces = [0, 1000, 2000, request.len()];
    for i in 0..3 {
        if drop != Some(i) {
            let bytes = &request[pieces[i]..pieces[i + 1]];
            frames.push(frame(true, 101 + pieces[i] as u32, ACK, bytes));
        }
    }
    let answer = b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n";
    frames.push(frame(false, 501, ACK, answer));
    frames.push(frame(true, 101 + request.len() as u32, FIN | ACK, b""));
    frames
}

fn inspect(bytes: &[u8]) -> Report {
    inspect_bytes(bytes, &InspectOptions::default()).expect("readable")
}

/// The capture read whole is clean: the control the two tests below differ from.
#[test]
fn the_whole_capture_is_clean() {
    let report = inspect(&pcap(&put(None), 65_535));
    assert_eq!(report.verdict, Verdict::Clean, "{}", report.render_text());
    assert_eq!(report.capture.truncated_packets, 0);
}

/// `editcap -s 200` of a run's capture said "OK: 0 uploads, none retried" (exit 0) with only
/// "HTTP tracking stopped" warnings: a capture whose payload was cut cannot show anything clean.
#[test]
fn packets_cut_by_a_snap_length_make_the_verdict_inconclusive() {
    let report = inspect(&pcap(&put(None), 200));
    let text = report.render_text();
    assert_eq!(report.capture.truncated_packets, 3, "{text}");
    assert_eq!(report.verdict, Verdict::Inconclusive, "{text}");
    assert_eq!(report.exit_code(), 3);
    assert!(
        report
            .verdict_line
            .starts_with("INCONCLUSIVE: the capture is missing payload (3 packets cut by a snap length; bytes missing on flow 0)"),
        "{}",
        report.verdict_line
    );
    assert!(
        text.contains("warning: 3 packets captured shorter than they crossed the wire"),
        "{text}"
    );
    assert!(report.to_json().contains(r#""verdict": "inconclusive""#));
    assert!(report.render_markdown().contains("INCONCLUSIVE"));
    assert!(report.render_html().contains("INCONCLUSIVE"));
}

/// A body segment the capture never saw: the upload is not called clean either.
#[test]
fn a_segment_missing_from_the_capture_makes_the_verdict_inconclusive() {
    let report = inspect(&pcap(&put(Some(1)), 65_535));
    let text = report.render_text();
    assert_eq!(report.capture.truncated_packets, 0, "{text}");
    assert_eq!(report.verdict, Verdict::Inconclusive, "{text}");
    assert!(
        report
            .verdict_line
            .starts_with("INCONCLUSIVE: the capture is missing payload (bytes missing on flow 0)"),
        "{}",
        report.verdict_line
    );
}

/// A download whose middle segment the capture missed said "incomplete: N of M bytes crossed",
/// as if the connection had cut it: the capture missed them, they may well have crossed.
#[test]
fn a_download_the_capture_missed_bytes_of_says_so() {
    use md5::{Digest, Md5};
    let body: Vec<u8> = (0..3000u32).map(|i| (i * 13 % 251) as u8).collect();
    let hex = hex::encode(Md5::digest(&body));
    let request = format!(
        "GET /files/md5/{}/{} HTTP/1.1\r\n\r\n",
        &hex[..2],
        &hex[2..]
    );
    let mut answer = b"HTTP/1.1 200 OK\r\nContent-Length: 3000\r\n\r\n".to_vec();
    let head = answer.len();
    answer.extend_from_slice(&body);
    let mut frames = vec![
        frame(true, 100, SYN, b""),
        frame(false, 500, SYN | ACK, b""),
        frame(true, 101, ACK, request.as_bytes()),
    ];
    let pieces = [0, head + 1000, head + 2000, answer.len()];
    for i in [0, 2] {
        let bytes = &answer[pieces[i]..pieces[i + 1]];
        frames.push(frame(false, 501 + pieces[i] as u32, ACK, bytes));
    }
    frames.push(frame(false, 501 + answer.len() as u32, FIN | ACK, b""));
    let report = inspect(&pcap(&frames, 65_535));
    let text = report.render_text();
    assert_eq!(report.objects.len(), 1, "{text}");
    let problems = &report.objects[0].problems;
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("incomplete in the capture: it holds ")),
        "{problems:?}"
    );
    assert!(
        !problems.iter().any(|p| p.contains("bytes crossed")),
        "{problems:?}"
    );
    assert_eq!(report.verdict, Verdict::Inconclusive, "{text}");
}

/// `tshark -i lo` dropped the tail of an upload (the kernel's drops): the server acknowledged
/// bytes the capture never saw, answered 200, and the client reset. inspect said "CORRUPT: server
/// accepted an incomplete body … cut by connection reset": the capture, not the connection, lost
/// them, and the README promises INCONCLUSIVE.
#[test]
fn bytes_the_server_acknowledged_but_the_capture_missed_make_the_verdict_inconclusive() {
    let mut frames = put(Some(2));
    let request_end = 101 + frames_request_len();
    // put() ends with the answer and the client's FIN: replace them with an ACK of the whole
    // request, the 200 and a reset by the client at the end of what it sent.
    frames.truncate(frames.len() - 2);
    frames.push(acking(false, 501, request_end, ACK, b""));
    let answer = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    frames.push(acking(false, 501, request_end, ACK, answer));
    let answered = 501 + answer.len() as u32;
    frames.push(acking(true, request_end, answered, RST | ACK, b""));
    let report = inspect(&pcap(&frames, 65_535));
    let text = report.render_text();
    assert_eq!(report.verdict, Verdict::Inconclusive, "{text}");
    assert_eq!(report.exit_code(), 3);
    assert!(
        report
            .verdict_line
            .starts_with("INCONCLUSIVE: the capture is missing payload (bytes missing on flow 0)"),
        "{}",
        report.verdict_line
    );
    assert!(text.contains("missing from the capture"), "{text}");
}

/// The same capture with only the reset past the captured bytes (no acknowledgment of them).
#[test]
fn a_reset_past_the_captured_bytes_says_the_capture_missed_them() {
    let mut frames = put(Some(2));
    frames.truncate(frames.len() - 2);
    let request_end = 101 + frames_request_len();
    frames.push(frame(true, request_end, RST, b""));
    let report = inspect(&pcap(&frames, 65_535));
    assert_eq!(
        report.verdict,
        Verdict::Inconclusive,
        "{}",
        report.render_text()
    );
}

/// Length of the request [`put`] sends (head and 3000-byte body).
fn frames_request_len() -> u32 {
    let head = b"PUT /files/md5/ab/cdef HTTP/1.1\r\nContent-Length: 3000\r\n\r\n";
    (head.len() + 3000) as u32
}
