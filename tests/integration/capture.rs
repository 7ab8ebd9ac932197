//! Captures of real proxied traffic, checked by tshark.
//!
//! Every test drives real sockets on loopback through a real proxy, keeps its own record of the
//! bytes each socket sent and received, and then asks tshark whether the capture says the same.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, BufRead, BufReader, ErrorKind};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::{sleep, timeout, Instant};

use faultline::proxy::stats::RunSummary;
use faultline::proxy::{self, RunPlan, Running, StartError};
use faultline::scenario::schema::UpstreamSpec;
use faultline::scenario::Scenario;

use crate::support::process;
use crate::support::temp_dir::TempDir;
use crate::support::tshark;

/// Longest any single network step (an exchange, a drain, a process start) may take.
const STEP: Duration = Duration::from_secs(20);

const THREE: &str = r#"
name = "capture-three"
seed = 7

[[rule]]
name = "upload reset"
match = { connection = 2, direction = "client->upstream" }
fault.reset = { after = "64KiB" }

[[rule]]
name = "download truncate"
match = { connection = 3, direction = "upstream->client" }
fault.truncate = { after = "100KiB" }
"#;

const RESET_AT: usize = 64 * 1024;
const TRUNCATE_AT: usize = 100 * 1024;
const RESET_COMMENT: &str =
    "faultline: rule \"upload reset\" reset client->upstream after 65536 bytes";
const TRUNCATE_COMMENT: &str =
    "faultline: rule \"download truncate\" truncated upstream->client after 102400 bytes";

// ---------------------------------------------------------------------------------------------
// Scratch space, bytes and sockets.

/// `len` reproducible random bytes from `StdRng`: not `support::random_bytes` (ChaCha8), which
/// gives other bytes for the same seed.
fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut bytes = vec![0; len];
    StdRng::seed_from_u64(seed).fill_bytes(&mut bytes);
    bytes
}

/// Writes `data` in pieces, counting what the kernel accepted, until done or the first error.
async fn write_counting<W: AsyncWrite + Unpin>(
    w: &mut W,
    data: &[u8],
) -> (usize, Option<ErrorKind>) {
    let mut done = 0;
    while done < data.len() {
        let end = (done + 16 * 1024).min(data.len());
        match w.write(&data[done..end]).await {
            Ok(0) => return (done, Some(ErrorKind::WriteZero)),
            Ok(n) => done += n,
            Err(e) => return (done, Some(e.kind())),
        }
    }
    (done, None)
}

/// Reads until EOF or the first error, keeping every byte.
async fn read_all<R: AsyncRead + Unpin>(r: &mut R) -> (Vec<u8>, Option<ErrorKind>) {
    let mut out = Vec::new();
    let mut buf = vec![0; 64 * 1024];
    loop {
        match r.read(&mut buf).await {
            Ok(0) => return (out, None),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) => return (out, Some(e.kind())),
        }
    }
}

/// What the test's upstream saw on one connection.
#[derive(Debug)]
struct UpstreamSeen {
    /// The proxy's end of the upstream leg.
    peer: SocketAddr,
    received: Vec<u8>,
    read_error: Option<ErrorKind>,
    sent: Vec<u8>,
    write_error: Option<ErrorKind>,
}

/// An upstream serving one connection per entry of `downloads`, in accept order: it reads the
/// upload to EOF, then sends its download and closes. After a read error (a reset) it sends nothing.
async fn spawn_upstream(
    downloads: Vec<Vec<u8>>,
) -> (SocketAddr, mpsc::UnboundedReceiver<UpstreamSeen>) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the test upstream");
    let addr = listener.local_addr().expect("upstream address");
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        for download in downloads {
            let Ok((stream, peer)) = listener.accept().await else {
                return;
            };
            let tx = tx.clone();
            tokio::spawn(async move {
                let (mut r, mut w) = stream.into_split();
                let (received, read_error) = read_all(&mut r).await;
                let (n, write_error) = if read_error.is_none() {
                    write_counting(&mut w, &download).await
                } else {
                    (0, None)
                };
                let _ = w.shutdown().await;
                let _ = tx.send(UpstreamSeen {
                    peer,
                    received,
                    read_error,
                    sent: download[..n].to_vec(),
                    write_error,
                });
            });
        }
    });
    (addr, rx)
}

/// What the test client saw on one connection.
#[derive(Debug)]
struct ClientSeen {
    local: SocketAddr,
    /// Bytes of the upload the kernel accepted (not necessarily delivered).
    sent: usize,
    write_error: Option<ErrorKind>,
    received: Vec<u8>,
    read_error: Option<ErrorKind>,
}

/// Connects to the proxy, uploads `upload` then half-closes, while reading to EOF.
async fn client_exchange(proxy: SocketAddr, upload: &[u8]) -> ClientSeen {
    let stream = TcpStream::connect(proxy)
        .await
        .expect("connect to the proxy");
    let local = stream.local_addr().expect("client address");
    let (mut r, mut w) = stream.into_split();
    let send = async {
        let result = write_counting(&mut w, upload).await;
        let _ = w.shutdown().await;
        result
    };
    let ((sent, write_error), (received, read_error)) = tokio::join!(send, read_all(&mut r));
    ClientSeen {
        local,
        sent,
        write_error,
        received,
        read_error,
    }
}

/// One proxied connection as both ends of it saw it.
#[derive(Debug)]
struct Exchange {
    upload: Vec<u8>,
    download: Vec<u8>,
    client: ClientSeen,
    upstream: UpstreamSeen,
}

/// Runs one exchange through the proxy and waits until the proxy has finished the connection
/// (so its capture events are all recorded and the next connection's legs come after).
async fn exchange(
    running: &Running,
    seen: &mut mpsc::UnboundedReceiver<UpstreamSeen>,
    upload: Vec<u8>,
    download: Vec<u8>,
) -> Exchange {
    let client = timeout(STEP, client_exchange(running.local_addr, &upload))
        .await
        .expect("the client exchange ends in time");
    let upstream = timeout(STEP, seen.recv())
        .await
        .expect("the upstream finishes in time")
        .expect("the upstream reports the connection");
    wait_idle(running).await;
    Exchange {
        upload,
        download,
        client,
        upstream,
    }
}

async fn wait_idle(running: &Running) {
    timeout(STEP, async {
        while running.shared.active.load(Ordering::Relaxed) > 0 {
            sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the proxy ends every connection in time");
}

fn plan(scenario: &str, listen: &str, upstream: SocketAddr, capture: PathBuf) -> RunPlan {
    RunPlan {
        scenario: Arc::new(Scenario::from_toml(scenario, "t.toml", "t").expect("valid scenario")),
        listen: listen.parse().expect("listen address"),
        upstream: UpstreamSpec::Address {
            host: upstream.ip().to_string(),
            port: upstream.port(),
        },
        seed: 7,
        capture: Some(capture),
        command_line: "test".into(),
        live_rules: false,
    }
}

// ---------------------------------------------------------------------------------------------
// The three-connection run: pass-through, reset mid-upload, truncate mid-download.

struct ThreeRun {
    proxy: SocketAddr,
    upstream: SocketAddr,
    pass: Exchange,
    reset: Exchange,
    truncate: Exchange,
    summary: RunSummary,
}

async fn run_three(capture: PathBuf) -> ThreeRun {
    let pass_down = random_bytes(200 * 1024, 2);
    let truncate_down = random_bytes(300 * 1024, 6);
    let (upstream, mut seen) =
        spawn_upstream(vec![pass_down.clone(), Vec::new(), truncate_down.clone()]).await;
    let running = proxy::start(plan(THREE, "127.0.0.1:0", upstream, capture))
        .await
        .expect("start the proxy");
    let proxy = running.local_addr;

    let pass = exchange(&running, &mut seen, random_bytes(300 * 1024, 1), pass_down).await;
    let reset = exchange(&running, &mut seen, random_bytes(256 * 1024, 3), Vec::new()).await;
    let truncate = exchange(&running, &mut seen, random_bytes(1000, 5), truncate_down).await;

    running.shutdown();
    let summary = timeout(STEP, running.wait())
        .await
        .expect("the run drains in time");
    ThreeRun {
        proxy,
        upstream,
        pass,
        reset,
        truncate,
        summary,
    }
}

/// What the sockets did, before looking at the capture: if this fails, the capture is not to blame.
fn check_sockets(run: &ThreeRun) {
    let pass = &run.pass;
    assert_eq!(pass.client.sent, pass.upload.len(), "#1 client upload");
    assert_eq!(pass.client.write_error, None, "#1 client write");
    assert_eq!(pass.client.read_error, None, "#1 client read");
    same_bytes(
        "#1 upstream received",
        &pass.upstream.received,
        &pass.upload,
    );
    same_bytes("#1 client received", &pass.client.received, &pass.download);
    same_bytes("#1 upstream sent", &pass.upstream.sent, &pass.download);

    let reset = &run.reset;
    same_bytes(
        "#2 upstream received exactly the bytes before the reset",
        &reset.upstream.received,
        &reset.upload[..RESET_AT],
    );
    assert_eq!(
        reset.upstream.read_error,
        Some(ErrorKind::ConnectionReset),
        "#2 the upstream sees a reset"
    );
    assert!(reset.upstream.sent.is_empty(), "#2 upstream sent nothing");
    assert!(
        reset.client.received.is_empty(),
        "#2 client received nothing"
    );
    // The kernel reports a reset once, to whichever call comes first: the read (ECONNRESET)
    // or a write still sending the upload (ECONNRESET or EPIPE); the other then sees EOF.
    let reset_seen = reset.client.read_error == Some(ErrorKind::ConnectionReset)
        || matches!(
            reset.client.write_error,
            Some(ErrorKind::ConnectionReset | ErrorKind::BrokenPipe)
        );
    assert!(
        reset_seen,
        "#2 the client sees a reset: read {:?}, write {:?}",
        reset.client.read_error, reset.client.write_error
    );
    assert!(
        reset.client.sent >= RESET_AT,
        "#2 client sent {}",
        reset.client.sent
    );

    let trunc = &run.truncate;
    assert_eq!(trunc.client.sent, trunc.upload.len(), "#3 client upload");
    same_bytes(
        "#3 upstream received",
        &trunc.upstream.received,
        &trunc.upload,
    );
    same_bytes("#3 upstream sent", &trunc.upstream.sent, &trunc.download);
    assert_eq!(trunc.upstream.write_error, None, "#3 upstream write");
    same_bytes(
        "#3 client received exactly the bytes before the truncation",
        &trunc.client.received,
        &trunc.download[..TRUNCATE_AT],
    );
    assert_eq!(
        trunc.client.read_error, None,
        "#3 the client sees a clean EOF"
    );

    let summary = &run.summary;
    assert_eq!(summary.connections, 3);
    assert_eq!(
        summary.rules.iter().map(|r| r.fired).collect::<Vec<_>>(),
        vec![1, 1],
        "each fault fired once: {summary:?}"
    );
    let capture = summary.capture.as_ref().expect("a capture summary");
    assert_eq!(capture.write_error, None, "{capture:?}");
    assert_eq!(capture.packets_lost, 0, "{capture:?}");
    assert_eq!(capture.events_ignored, 0, "{capture:?}");
}

/// Panics with the first differing offset instead of dumping hundreds of KiB.
fn same_bytes(what: &str, got: &[u8], want: &[u8]) {
    if got == want {
        return;
    }
    let first = got
        .iter()
        .zip(want)
        .position(|(a, b)| a != b)
        .unwrap_or(got.len().min(want.len()));
    panic!(
        "{what}: got {} bytes, want {} bytes; first difference at offset {first}",
        got.len(),
        want.len()
    );
}

/// One TCP leg as the test expects to find it in the capture.
struct LegSpec {
    name: &'static str,
    initiator: SocketAddr,
    responder: SocketAddr,
    /// The leg connects the client to the proxy.
    client_leg: bool,
}

fn legs(run: &ThreeRun) -> Vec<LegSpec> {
    let mut legs = Vec::new();
    for (names, ex) in [
        (["#1 client leg", "#1 upstream leg"], &run.pass),
        (["#2 client leg", "#2 upstream leg"], &run.reset),
        (["#3 client leg", "#3 upstream leg"], &run.truncate),
    ] {
        legs.push(LegSpec {
            name: names[0],
            initiator: ex.client.local,
            responder: run.proxy,
            client_leg: true,
        });
        legs.push(LegSpec {
            name: names[1],
            initiator: ex.upstream.peer,
            responder: run.upstream,
            client_leg: false,
        });
    }
    legs
}

fn ip_of(row: &[String], v4: usize, v6: usize) -> IpAddr {
    let text = [v4, v6]
        .iter()
        .filter_map(|&i| row.get(i))
        .find(|s| !s.is_empty())
        .unwrap_or_else(|| panic!("no address in {row:?}"));
    text.parse()
        .unwrap_or_else(|_| panic!("bad address {text:?} in {row:?}"))
}

/// tcp.stream of each leg, keyed by (initiator, responder), from the SYNs in the capture.
fn streams(path: &Path) -> HashMap<(SocketAddr, SocketAddr), usize> {
    let rows = tshark::fields(
        path,
        Some("tcp.flags.syn == 1 && tcp.flags.ack == 0"),
        &[
            "tcp.stream",
            "ip.src",
            "ipv6.src",
            "tcp.srcport",
            "ip.dst",
            "ipv6.dst",
            "tcp.dstport",
        ],
    );
    let mut map = HashMap::new();
    for row in rows {
        assert_eq!(row.len(), 7, "fields row {row:?}");
        let port = |i: usize| -> u16 { row[i].parse().expect("tcp port") };
        let src = SocketAddr::new(ip_of(&row, 1, 2), port(3));
        let dst = SocketAddr::new(ip_of(&row, 4, 5), port(6));
        let stream: usize = row[0].parse().expect("tcp.stream");
        assert!(
            map.insert((src, dst), stream).is_none(),
            "two SYNs for {src} -> {dst}"
        );
    }
    map
}

fn stream_of(map: &HashMap<(SocketAddr, SocketAddr), usize>, leg: &LegSpec) -> usize {
    *map.get(&(leg.initiator, leg.responder)).unwrap_or_else(|| {
        panic!(
            "{}: no SYN {} -> {} in the capture; SYNs: {map:?}",
            leg.name, leg.initiator, leg.responder
        )
    })
}

/// Expert problems with checksum validation, every payload decoded as plain data: random bytes on
/// an ephemeral port that happens to be registered to some protocol (EtherNet/IP on 44818, ...)
/// would otherwise add "malformed" warnings that say nothing about the capture.
fn expert_problems(path: &Path, addrs: &[SocketAddr]) -> Vec<String> {
    let mut ports: Vec<u16> = addrs.iter().map(SocketAddr::port).collect();
    ports.sort_unstable();
    ports.dedup();
    let specs: Vec<String> = ports
        .iter()
        .map(|p| format!("tcp.port=={p},data"))
        .collect();
    let mut args = Vec::new();
    for spec in &specs {
        args.extend(["-d", spec.as_str()]);
    }
    tshark::expert_problems_with(path, &args)
}

/// Checks shared by pcapng and classic pcap: conversations, exact bytes per leg, expert, RSTs.
fn check_flows(path: &Path, run: &ThreeRun) {
    let legs = legs(run);

    // Exactly two conversations per proxied connection, between the right addresses.
    let convs = tshark::conversations(path);
    assert_eq!(convs.len(), 6, "conversations: {convs:#?}");
    for leg in &legs {
        let (i, r) = (leg.initiator.to_string(), leg.responder.to_string());
        assert!(
            convs
                .iter()
                .any(|c| (c.a == i && c.b == r) || (c.a == r && c.b == i)),
            "{}: no conversation {i} <-> {r} in {convs:#?}",
            leg.name
        );
    }

    // tcp.stream follows the order the legs were opened.
    let map = streams(path);
    assert_eq!(map.len(), 6, "one SYN per leg: {map:?}");
    let order: Vec<usize> = legs.iter().map(|leg| stream_of(&map, leg)).collect();
    assert_eq!(order, vec![0, 1, 2, 3, 4, 5], "stream index per leg");

    // Every leg carries exactly the bytes that crossed its socket.
    let follow = |i: usize| tshark::follow_raw(path, order[i]);
    let (pass, reset, trunc) = (&run.pass, &run.reset, &run.truncate);
    let mut total = 0;

    let (up, down) = follow(0);
    same_bytes("#1 client leg, client->proxy", &up, &pass.upload);
    same_bytes("#1 client leg, proxy->client", &down, &pass.client.received);
    total += up.len() + down.len();
    let (up, down) = follow(1);
    same_bytes(
        "#1 upstream leg, proxy->upstream",
        &up,
        &pass.upstream.received,
    );
    same_bytes(
        "#1 upstream leg, upstream->proxy",
        &down,
        &pass.upstream.sent,
    );
    total += up.len() + down.len();

    let (up, down) = follow(2);
    assert!(
        up.len() >= RESET_AT && up.len() <= reset.client.sent,
        "#2 client leg carries what the proxy read: {} bytes, client wrote {}",
        up.len(),
        reset.client.sent
    );
    same_bytes(
        "#2 client leg, client->proxy (a prefix of the upload)",
        &up,
        &reset.upload[..up.len()],
    );
    same_bytes(
        "#2 client leg, proxy->client",
        &down,
        &reset.client.received,
    );
    total += up.len() + down.len();
    let (up, down) = follow(3);
    same_bytes(
        "#2 upstream leg, proxy->upstream",
        &up,
        &reset.upstream.received,
    );
    assert_eq!(up.len(), RESET_AT, "#2 upstream leg stops at the reset");
    same_bytes(
        "#2 upstream leg, upstream->proxy",
        &down,
        &reset.upstream.sent,
    );
    total += up.len() + down.len();

    let (up, down) = follow(4);
    same_bytes("#3 client leg, client->proxy", &up, &trunc.upload);
    same_bytes(
        "#3 client leg, proxy->client",
        &down,
        &trunc.client.received,
    );
    assert_eq!(
        down.len(),
        TRUNCATE_AT,
        "#3 client leg stops at the truncation"
    );
    total += up.len() + down.len();
    let (up, down) = follow(5);
    same_bytes(
        "#3 upstream leg, proxy->upstream",
        &up,
        &trunc.upstream.received,
    );
    same_bytes(
        "#3 upstream leg, upstream->proxy",
        &down,
        &trunc.upstream.sent,
    );
    assert_eq!(
        down.len(),
        300 * 1024,
        "#3 upstream leg carries the whole download"
    );
    total += up.len() + down.len();

    let capture = run.summary.capture.as_ref().expect("a capture summary");
    assert_eq!(
        capture.payload_bytes, total as u64,
        "the writer's payload count matches what tshark reassembled"
    );
    let (packets, status) = tshark::packet_count(path);
    assert!(status.success(), "tshark reads the whole file: {status}");
    assert_eq!(
        packets as u64, capture.packets_written,
        "packets in the file"
    );

    // No expert warnings or errors with checksum validation, and only the injected RSTs.
    let addrs: Vec<SocketAddr> = legs
        .iter()
        .flat_map(|leg| [leg.initiator, leg.responder])
        .collect();
    let problems = expert_problems(path, &addrs);
    assert!(problems.is_empty(), "expert problems: {problems:#?}");
    assert_eq!(tshark::rst_count(path), 2, "one injected RST per leg of #2");

    // The RSTs come from the proxy, right after the last byte it relayed.
    let mut rsts = tshark::fields(
        path,
        Some("tcp.flags.reset == 1"),
        &["tcp.stream", "tcp.srcport", "tcp.seq"],
    );
    rsts.sort();
    let want = vec![
        vec![
            order[2].to_string(),
            run.proxy.port().to_string(),
            "1".to_string(),
        ],
        vec![
            order[3].to_string(),
            reset.upstream.peer.port().to_string(),
            (1 + RESET_AT).to_string(),
        ],
    ];
    assert_eq!(rsts, want, "RSTs as [tcp.stream, tcp.srcport, tcp.seq]");

    // Each side of each leg closes at most once: FINs as they really happened.
    let mut fins: BTreeMap<(String, String), usize> = BTreeMap::new();
    for row in tshark::fields(
        path,
        Some("tcp.flags.fin == 1"),
        &["tcp.stream", "tcp.srcport"],
    ) {
        *fins.entry((row[0].clone(), row[1].clone())).or_default() += 1;
    }
    let mut want = BTreeMap::new();
    for i in [0, 1, 4, 5] {
        let leg = &legs[i];
        want.insert((order[i].to_string(), leg.initiator.port().to_string()), 1);
        want.insert((order[i].to_string(), leg.responder.port().to_string()), 1);
    }
    assert_eq!(
        fins, want,
        "FINs per (tcp.stream, tcp.srcport): one per side on #1 and #3, none on #2"
    );
}

/// pcapng only: comments, interfaces, directions, section comment.
fn check_pcapng_annotations(path: &Path, run: &ThreeRun) {
    let legs = legs(run);
    let map = streams(path);
    let stream_leg: HashMap<String, &LegSpec> = legs
        .iter()
        .map(|leg| (stream_of(&map, leg).to_string(), leg))
        .collect();

    // Each injected fault carries a comment naming the rule: on both RSTs, on the truncating FIN.
    let comments = tshark::packet_comments(path);
    let mut commented = tshark::fields(
        path,
        Some("frame.comment"),
        &[
            "tcp.stream",
            "tcp.srcport",
            "tcp.flags.reset",
            "tcp.flags.fin",
        ],
    );
    commented.sort();
    let flag = |set: bool| if set { "1" } else { "0" }.to_string();
    let row = |i: usize, from: SocketAddr, rst: bool, fin: bool| {
        vec![
            stream_of(&map, &legs[i]).to_string(),
            from.port().to_string(),
            flag(rst),
            flag(fin),
        ]
    };
    let mut want = vec![
        row(2, run.proxy, true, false),
        row(3, run.reset.upstream.peer, true, false),
        row(4, run.proxy, false, true),
    ];
    want.sort();
    assert_eq!(
        commented, want,
        "commented packets [tcp.stream, tcp.srcport, rst, fin]; comments: {comments:#?}"
    );
    let mut comments_sorted = comments.clone();
    comments_sorted.sort();
    assert_eq!(
        comments_sorted,
        vec![TRUNCATE_COMMENT, RESET_COMMENT, RESET_COMMENT],
        "comment texts"
    );

    // Interfaces name the leg; direction flags say who sent each packet.
    let rows = tshark::fields(
        path,
        None,
        &[
            "tcp.stream",
            "tcp.srcport",
            "frame.interface_name",
            "frame.packet_flags_direction",
        ],
    );
    let (packets, _) = tshark::packet_count(path);
    assert_eq!(rows.len(), packets, "one row per packet");
    let mut seen_directions = BTreeMap::new();
    for row in &rows {
        assert_eq!(row.len(), 4, "fields row {row:?}");
        let leg = stream_leg
            .get(&row[0])
            .unwrap_or_else(|| panic!("packet on unknown stream: {row:?}"));
        let want_name = if leg.client_leg {
            "client leg"
        } else {
            "upstream leg"
        };
        assert_eq!(row[2], want_name, "{}: interface of {row:?}", leg.name);
        let from_proxy = if leg.client_leg {
            row[1] == leg.responder.port().to_string()
        } else {
            row[1] == leg.initiator.port().to_string()
        };
        // pcapng epb_flags direction: 1 inbound, 2 outbound.
        let want_direction = if from_proxy { 2 } else { 1 };
        let direction = parse_number(&row[3])
            .unwrap_or_else(|| panic!("{}: no direction flag in {row:?}", leg.name));
        assert_eq!(
            direction, want_direction,
            "{}: direction of {row:?} (from the proxy: {from_proxy})",
            leg.name
        );
        *seen_directions.entry(direction).or_insert(0) += 1;
    }
    assert_eq!(seen_directions.len(), 2, "both directions appear");

    let section = tshark::section_comment(path).expect("a section comment");
    assert!(
        section.contains("scenario capture-three") && section.contains("seed 7"),
        "section comment names scenario and seed: {section:?}"
    );
}

/// `1`, `0x00000001` or `Inbound (1)`-like renderings of a numeric field.
fn parse_number(text: &str) -> Option<u64> {
    let text = text.trim();
    if let Some(hex) = text.strip_prefix("0x") {
        return u64::from_str_radix(hex, 16).ok();
    }
    text.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pcapng_holds_exactly_what_crossed_each_socket_with_fault_comments() {
    tshark::tshark();
    let dir = TempDir::new("pcapng");
    let path = dir.path().join("three.pcapng");
    let run = run_three(path.clone()).await;
    check_sockets(&run);
    check_flows(&path, &run);
    check_pcapng_annotations(&path, &run);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn classic_pcap_holds_exactly_what_crossed_each_socket() {
    tshark::tshark();
    let dir = TempDir::new("pcap");
    let path = dir.path().join("three.pcap");
    let run = run_three(path.clone()).await;
    check_sockets(&run);
    check_flows(&path, &run);
    assert_eq!(
        tshark::packet_comments(&path),
        Vec::<String>::new(),
        "classic pcap has no comments"
    );
    let mut magic = [0u8; 4];
    magic.copy_from_slice(&std::fs::read(&path).expect("read the capture")[..4]);
    assert_eq!(
        u32::from_le_bytes(magic),
        0xa1b2_3c4d,
        "a .pcap name gives classic nanosecond libpcap"
    );
}

const TRUNCATE_FIRST: &str = r#"
name = "capture-truncate"

[[rule]]
name = "short download"
match = { connection = 1, direction = "upstream->client" }
fault.truncate = { after = "10KiB" }
"#;

/// The client half-closes before the truncation, so its FIN was already read (and recorded) by the
/// client->upstream pump; the clean close after the truncation must not record it a second time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_connection_records_the_clients_fin_once() {
    tshark::tshark();
    let dir = TempDir::new("truncate-fin");
    let path = dir.path().join("t.pcapng");
    let download = random_bytes(50 * 1024, 21);
    let (upstream, mut seen) = spawn_upstream(vec![download.clone()]).await;
    let running = proxy::start(plan(TRUNCATE_FIRST, "127.0.0.1:0", upstream, path.clone()))
        .await
        .expect("start the proxy");
    let proxy_addr = running.local_addr;
    let ex = exchange(&running, &mut seen, random_bytes(100, 20), download).await;
    running.shutdown();
    timeout(STEP, running.wait())
        .await
        .expect("the run drains in time");
    same_bytes(
        "client received",
        &ex.client.received,
        &ex.download[..10 * 1024],
    );

    let client_leg = LegSpec {
        name: "client leg",
        initiator: ex.client.local,
        responder: proxy_addr,
        client_leg: true,
    };
    let stream = stream_of(&streams(&path), &client_leg);
    let client_fins = tshark::fields(
        &path,
        Some(&format!(
            "tcp.stream == {stream} && tcp.flags.fin == 1 && tcp.srcport == {}",
            ex.client.local.port()
        )),
        &["frame.number", "tcp.seq"],
    );
    assert_eq!(
        client_fins.len(),
        1,
        "the client sent one FIN, at relative seq 101; [frame, tcp.seq]: {client_fins:?}"
    );
    assert_eq!(
        client_fins[0][1], "101",
        "the FIN follows the 100-byte upload"
    );
}

/// Bytes a latency rule still held when the run stopped never reach the upstream: the FIN
/// faultline sends the upstream says how many, so the capture does not look as if the client's
/// bytes were relayed or lost in silence. The client's FIN keeps the plain note, and the run's
/// summary counts them and the rule that held them (a trial read "fired 0 times" and nothing
/// else).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_stopped_while_latency_holds_bytes_says_how_many_were_never_sent() {
    tshark::tshark();
    let dir = TempDir::new("stopped-unsent");
    let path = dir.path().join("t.pcapng");
    let (upstream, _seen) = spawn_upstream(vec![Vec::new()]).await;
    let scenario = "[[rule]]\nmatch = { direction = \"client->upstream\" }\nfault.latency = { delay = \"60s\" }\n";
    let running = proxy::start(plan(scenario, "127.0.0.1:0", upstream, path.clone()))
        .await
        .expect("start the proxy");
    let mut client = TcpStream::connect(running.local_addr)
        .await
        .expect("connect to the proxy");
    client.write_all(b"hello\n").await.expect("send");
    // Stop once the proxy has read the bytes (its stats count them), not after a guess.
    timeout(STEP, async {
        while running.shared.stats.received[0].load(Ordering::Relaxed) < 6 {
            sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the proxy reads the six bytes");
    running.shutdown();
    let summary = timeout(STEP, running.wait())
        .await
        .expect("the run drains in time");
    drop(client);
    assert_eq!(summary.unsent_at_stop, [6, 0], "{summary}");
    // The latency took effect (it holds the bytes) though none were sent: it counts.
    assert_eq!(summary.rules[0].fired, 1, "{summary}");
    assert!(
        summary.to_string().contains(
            "unsent when the run stopped (queued or held by a rule): client->upstream 6, upstream->client 0\n"
        ),
        "{summary}"
    );
    let comments: Vec<String> = tshark::fields(&path, Some("frame.comment"), &["frame.comment"])
        .into_iter()
        .map(|row| row.join(" "))
        .collect();
    assert!(
        comments.contains(
            &"faultline: run stopped; 6 bytes client->upstream read and never sent (queued or held by a rule; rule \"rule 1 (latency)\" latency 60s on client->upstream)"
                .to_string()
        ),
        "{comments:#?}"
    );
    assert!(
        comments.contains(&"faultline: run stopped".to_string()),
        "{comments:#?}"
    );
}

// ---------------------------------------------------------------------------------------------
// IPv6 client leg, IPv4 upstream leg.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ipv6_client_leg_and_an_ipv4_upstream_leg_keep_their_families() {
    tshark::tshark();
    // No ::1 fails the test: the brief's loopback includes it, and a skipped test proves nothing.
    if let Err(e) = std::net::TcpListener::bind("[::1]:0") {
        panic!(
            "this test needs the IPv6 loopback ::1 and cannot bind [::1]:0 ({e}): enable IPv6 on \
             lo (`sysctl net.ipv6.conf.lo.disable_ipv6=0`; `ip -6 addr show lo` lists ::1)"
        );
    }
    let dir = TempDir::new("ipv6");
    let path = dir.path().join("v6.pcapng");
    let download = random_bytes(30 * 1024, 12);
    let (upstream, mut seen) = spawn_upstream(vec![download.clone()]).await;
    let running = proxy::start(plan(
        "name = \"capture-ipv6\"\n",
        "[::1]:0",
        upstream,
        path.clone(),
    ))
    .await
    .expect("start the proxy on [::1]:0");
    let proxy_addr = running.local_addr;
    assert!(proxy_addr.is_ipv6(), "{proxy_addr}");
    let ex = exchange(&running, &mut seen, random_bytes(20 * 1024, 11), download).await;
    running.shutdown();
    let summary = timeout(STEP, running.wait())
        .await
        .expect("the run drains in time");
    let capture = summary.capture.expect("a capture summary");
    assert_eq!(capture.write_error, None);
    same_bytes("client received", &ex.client.received, &ex.download);
    same_bytes("upstream received", &ex.upstream.received, &ex.upload);

    let map = streams(&path);
    let client_leg = LegSpec {
        name: "client leg",
        initiator: ex.client.local,
        responder: proxy_addr,
        client_leg: true,
    };
    let upstream_leg = LegSpec {
        name: "upstream leg",
        initiator: ex.upstream.peer,
        responder: upstream,
        client_leg: false,
    };
    let (c, u) = (stream_of(&map, &client_leg), stream_of(&map, &upstream_leg));
    assert_eq!((c, u), (0, 1), "streams in the order the legs opened");

    for row in tshark::fields(&path, None, &["tcp.stream", "ip.src", "ipv6.src"]) {
        assert_eq!(row.len(), 3, "fields row {row:?}");
        if row[0] == c.to_string() {
            assert_eq!((row[1].as_str(), row[2].as_str()), ("", "::1"), "{row:?}");
        } else {
            assert_eq!(row[0], u.to_string(), "{row:?}");
            assert_eq!(
                (row[1].as_str(), row[2].as_str()),
                ("127.0.0.1", ""),
                "{row:?}"
            );
        }
    }
    let (up, down) = tshark::follow_raw(&path, c);
    same_bytes("client leg, client->proxy", &up, &ex.upload);
    same_bytes("client leg, proxy->client", &down, &ex.client.received);
    let (up, down) = tshark::follow_raw(&path, u);
    same_bytes("upstream leg, proxy->upstream", &up, &ex.upstream.received);
    same_bytes("upstream leg, upstream->proxy", &down, &ex.upstream.sent);
    let problems = expert_problems(
        &path,
        &[ex.client.local, proxy_addr, ex.upstream.peer, upstream],
    );
    assert!(problems.is_empty(), "expert problems: {problems:#?}");
    assert_eq!(tshark::conversations(&path).len(), 2);
}

// ---------------------------------------------------------------------------------------------
// Unwritable capture paths.

#[tokio::test]
async fn an_unwritable_capture_path_stops_the_start_naming_the_path() {
    let dir = TempDir::new("unwritable");
    let blocker = dir.path().join("a-regular-file");
    std::fs::write(&blocker, b"not a directory").expect("write the blocker file");
    let a_directory = dir.path().join("a-directory.pcapng");
    std::fs::create_dir(&a_directory).expect("create the directory in the way");
    let upstream: SocketAddr = "127.0.0.1:9".parse().expect("addr");

    for (path, names) in [
        (blocker.join("x.pcapng"), blocker.clone()),
        (blocker.join("sub/x.pcap"), blocker.clone()),
        (a_directory.clone(), a_directory.clone()),
    ] {
        let err = proxy::start(plan(
            "name = \"unwritable\"\n",
            "127.0.0.1:0",
            upstream,
            path.clone(),
        ))
        .await
        .expect_err("an unwritable capture path must stop the start");
        assert!(matches!(err, StartError::Capture(_)), "{err:?}");
        let message = err.to_string();
        assert!(
            message.contains(&names.display().to_string()) && message.contains("capture"),
            "{}: the error names the path: {message}",
            path.display()
        );
    }
}

/// A child process killed by PID when the guard drops, so a failing test leaves nothing running.
struct ChildGuard(Child);

impl ChildGuard {
    fn pid(&self) -> u32 {
        self.0.id()
    }

    /// Waits for the exit, killing the process if it outlives `limit`.
    fn wait_for(&mut self, limit: Duration) -> ExitStatus {
        if let Some(status) = process::wait_within(&mut self.0, limit) {
            return status;
        }
        process::kill_if_running(&mut self.0);
        panic!(
            "faultline (pid {}) did not exit within {limit:?}",
            self.pid()
        );
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        process::kill_if_running(&mut self.0);
    }
}

fn faultline_run(scenario: &Path, upstream: SocketAddr, capture: &Path) -> ChildGuard {
    let child = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .arg("run")
        .arg(scenario)
        .args(["--listen", "127.0.0.1:0", "--upstream"])
        .arg(upstream.to_string())
        .arg("--capture")
        .arg(capture)
        .env("RUST_LOG", "faultline=warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the faultline binary");
    ChildGuard(child)
}

/// A capture folder that cannot be created is a setup the user must fix before anything runs:
/// exit 2, as for a bad scenario (1 is for runtime failures and findings).
#[test]
fn the_binary_exits_2_naming_an_unwritable_capture_path() {
    let dir = TempDir::new("unwritable-bin");
    let scenario = dir.path().join("s.toml");
    std::fs::write(&scenario, "name = \"unwritable\"\n").expect("write the scenario");
    let blocker = dir.path().join("a-regular-file");
    std::fs::write(&blocker, b"not a directory").expect("write the blocker file");
    let capture = blocker.join("x.pcapng");
    let upstream: SocketAddr = "127.0.0.1:9".parse().expect("addr");

    let mut child = faultline_run(&scenario, upstream, &capture);
    let mut stderr = child.0.stderr.take().expect("stderr pipe");
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = io::Read::read_to_string(&mut stderr, &mut text);
        text
    });
    let status = child.wait_for(STEP);
    let stderr = reader.join().expect("stderr reader");
    assert_eq!(status.code(), Some(2), "exit status; stderr: {stderr}");
    assert!(
        stderr.contains(&blocker.display().to_string()),
        "stderr names the path: {stderr}"
    );
    assert!(!stderr.contains("listening on"), "never listened: {stderr}");
}

// ---------------------------------------------------------------------------------------------
// SIGKILL mid-transfer.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_capture_survives_sigkill_up_to_the_last_flush() {
    tshark::tshark();
    let dir = TempDir::new("sigkill");
    let scenario = dir.path().join("killed.toml");
    std::fs::write(&scenario, "name = \"killed\"\n").expect("write the scenario");
    let capture = dir.path().join("k.pcapng");

    // An upstream that swallows everything.
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the upstream");
    let upstream = listener.local_addr().expect("upstream address");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let _ = read_all(&mut stream).await;
            });
        }
    });

    let mut child = faultline_run(&scenario, upstream, &capture);
    let pid = child.pid();
    let stderr = child.0.stderr.take().expect("stderr pipe");
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    // Reads stderr to EOF (the pipe must never fill), passing each line on.
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let listen: SocketAddr = tokio::task::spawn_blocking(move || {
        let deadline = std::time::Instant::now() + STEP;
        let mut seen = Vec::new();
        while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
            let Ok(line) = rx.recv_timeout(left) else {
                break;
            };
            if let Some(rest) = line.split("listening on ").nth(1) {
                let addr = rest.split(',').next().unwrap_or_default();
                return addr
                    .parse()
                    .unwrap_or_else(|_| panic!("bad address in {line:?}"));
            }
            seen.push(line);
        }
        panic!("faultline never said where it listens; stderr: {seen:#?}");
    })
    .await
    .expect("stderr watcher");

    // Stream slowly (~200 KB/s, well under the writer's batch size) so that what reaches the file
    // before the kill got there by the timed flush.
    let mut client = timeout(STEP, TcpStream::connect(listen))
        .await
        .expect("connect in time")
        .expect("connect to the proxy");
    let mut sent = Vec::new();
    let started = Instant::now();
    let mut chunk_seed = 100;
    while started.elapsed() < Duration::from_millis(2200) {
        let chunk = random_bytes(4096, chunk_seed);
        chunk_seed += 1;
        timeout(STEP, client.write_all(&chunk))
            .await
            .expect("write in time")
            .expect("write to the proxy");
        sent.extend_from_slice(&chunk);
        sleep(Duration::from_millis(20)).await;
    }

    // SIGKILL by PID while the connection is still open.
    let killed = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(killed.success(), "kill -KILL {pid}: {killed}");
    let status = tokio::task::spawn_blocking(move || child.wait_for(STEP))
        .await
        .expect("wait for the child");
    {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            status.signal(),
            Some(9),
            "faultline was still running and died of SIGKILL: {status}"
        );
    }
    drop(client);

    let (packets, status) = tshark::packet_count(&capture);
    assert!(
        packets > 0,
        "tshark reads packets from the killed capture ({status})"
    );
    let syns = tshark::fields(
        &capture,
        Some("tcp.stream == 0 && tcp.flags.syn == 1"),
        &["tcp.flags.ack"],
    );
    assert_eq!(syns.len(), 2, "the client leg's SYN and SYN-ACK: {syns:?}");
    let (up, _) = tshark::follow_raw(&capture, 0);
    eprintln!(
        "killed capture: {packets} packets readable (tshark {status}), {} of {} bytes sent",
        up.len(),
        sent.len()
    );
    assert!(
        !up.is_empty(),
        "the flushed part holds data ({packets} packets)"
    );
    same_bytes(
        "client leg of the killed run is a prefix of what was sent",
        &up,
        &sent[..up.len().min(sent.len())],
    );
    assert!(up.len() <= sent.len(), "{} > {}", up.len(), sent.len());

    // The file holds whole blocks (the kill fell between two flushes), so nothing in it looks
    // cut: the closing blocks its section promised are missing, and `inspect` says the run never
    // finished (exit 3) where a trial's kill -9 captures read as clean.
    let inspected = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .arg("inspect")
        .arg(&capture)
        .output()
        .expect("run inspect");
    let text = String::from_utf8_lossy(&inspected.stdout);
    assert_eq!(inspected.status.code(), Some(3), "{text}");
    assert!(
        text.contains("INCONCLUSIVE") && text.contains("faultline never finished this capture"),
        "{text}"
    );
}

// ---------------------------------------------------------------------------------------------
// A connection ended by a timer while a pump is in the middle of a write.

const TERMINATE_MID_WRITE: &str = r#"
[[rule]]
name = "end mid-upload"
fault.terminate = { after = "300ms", how = "fin" }
"#;

/// A timer ends the connection while the upload's pump is blocked in the middle of a write to an
/// upstream that reads slowly. The bytes the upstream got before the FIN are exactly the bytes the
/// capture's upstream leg holds: a write cut short by the end still records what it delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_ended_mid_write_records_every_byte_the_upstream_got() {
    tshark::tshark();
    let dir = TempDir::new("terminate-mid-write");
    let path = dir.path().join("t.pcapng");
    // A small receive buffer and a slow reader keep faultline's writes partial and waiting.
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    socket
        .bind("127.0.0.1:0".parse().expect("address"))
        .expect("bind the slow upstream");
    let listener = socket.listen(8).expect("listen");
    let upstream = listener.local_addr().expect("upstream address");
    let slow_reader = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.expect("accept");
        let mut got = Vec::new();
        let mut buf = vec![0; 8 * 1024];
        loop {
            sleep(Duration::from_millis(2)).await;
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return got,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    });
    let running = proxy::start(plan(
        TERMINATE_MID_WRITE,
        "127.0.0.1:0",
        upstream,
        path.clone(),
    ))
    .await
    .expect("start the proxy");
    let upload = random_bytes(32 << 20, 31);
    let client = timeout(STEP, client_exchange(running.local_addr, &upload))
        .await
        .expect("the client's exchange ends in time");
    let got = timeout(STEP, slow_reader)
        .await
        .expect("the upstream reads to the end in time")
        .expect("the upstream task");
    wait_idle(&running).await;
    running.shutdown();
    timeout(STEP, running.wait())
        .await
        .expect("the run drains in time");
    assert!(
        !got.is_empty() && got.len() < client.sent,
        "the upload was cut by the timer: upstream got {} of {} sent",
        got.len(),
        client.sent
    );
    same_bytes("upstream received", &got, &upload[..got.len()]);

    let map = streams(&path);
    let upstream_leg = map
        .iter()
        .find(|((_, responder), _)| *responder == upstream)
        .map(|(_, stream)| *stream)
        .expect("the upstream leg's SYN is in the capture");
    let (captured, _) = tshark::follow_raw(&path, upstream_leg);
    assert_eq!(
        captured.len(),
        got.len(),
        "the capture's upstream leg holds every byte the upstream got, no more"
    );
    same_bytes("captured upstream leg", &captured, &got);
}
