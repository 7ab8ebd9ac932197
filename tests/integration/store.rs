//! End-to-end tests of the built-in store over real loopback sockets, speaking raw HTTP/1.1 bytes.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use faultline::store::{self, StoreError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::support::temp_dir::TempDir;

// ---------------------------------------------------------------- support

/// A running store on `127.0.0.1:0`, serving `<tmp>/store` inside its own test directory.
struct Store {
    tmp: TempDir,
    addr: SocketAddr,
    shutdown: CancellationToken,
    handle: Option<JoinHandle<Result<(), StoreError>>>,
}

impl Store {
    async fn start(label: &str) -> Self {
        let tmp = TempDir::new(label);
        let shutdown = CancellationToken::new();
        let (addr, handle) = store::spawn_ephemeral(tmp.path().join("store"), shutdown.clone())
            .await
            .expect("store starts");
        Self {
            tmp,
            addr,
            shutdown,
            handle: Some(handle),
        }
    }

    fn dir(&self) -> PathBuf {
        self.tmp.path().join("store")
    }

    async fn connect(&self) -> Conn {
        Conn {
            stream: TcpStream::connect(self.addr).await.expect("connect"),
            buf: Vec::new(),
        }
    }

    async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(handle) = self.handle.take() {
            let result = tokio::time::timeout(Duration::from_secs(10), handle)
                .await
                .expect("store stops in time")
                .expect("store task joins");
            result.expect("store returns Ok");
        }
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

#[derive(Debug)]
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One client connection speaking raw HTTP/1.1, so tests control every byte (framing, cuts).
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("send");
    }

    async fn fill(&mut self) -> usize {
        let mut chunk = [0u8; 64 * 1024];
        let n = tokio::time::timeout(Duration::from_secs(10), self.stream.read(&mut chunk))
            .await
            .expect("response in time")
            .expect("read");
        self.buf.extend_from_slice(&chunk[..n]);
        n
    }

    /// Reads one response; `head_request` says the body is absent whatever Content-Length says.
    async fn response(&mut self, head_request: bool) -> Resp {
        let head_end = loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i;
            }
            assert!(self.fill().await > 0, "connection closed before a response");
        };
        let head = String::from_utf8(self.buf[..head_end].to_vec()).expect("utf-8 head");
        self.buf.drain(..head_end + 4);
        let mut lines = head.split("\r\n");
        let status_line = lines.next().expect("status line");
        let status: u16 = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("status code");
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
            .collect();
        let mut resp = Resp {
            status,
            headers,
            body: Vec::new(),
        };
        assert!(
            resp.header("transfer-encoding").is_none(),
            "store responses have a fixed length"
        );
        let len: usize = if head_request || status < 200 || status == 204 {
            0
        } else {
            resp.header("content-length")
                .map(|v| v.parse().expect("content-length"))
                .unwrap_or(0)
        };
        while self.buf.len() < len {
            assert!(self.fill().await > 0, "connection closed mid-body");
        }
        resp.body = self.buf.drain(..len).collect();
        resp
    }

    async fn request(&mut self, method: &str, path: &str, body: &[u8]) -> Resp {
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: store\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        self.send(head.as_bytes()).await;
        self.send(body).await;
        self.response(method == "HEAD").await
    }

    async fn get(&mut self, path: &str) -> Resp {
        self.send(format!("GET {path} HTTP/1.1\r\nHost: store\r\n\r\n").as_bytes())
            .await;
        self.response(false).await
    }

    /// Waits for the server to close; returns whether it did (EOF or reset) in time.
    async fn closed_by_server(&mut self) -> bool {
        let mut chunk = [0u8; 1024];
        matches!(
            tokio::time::timeout(Duration::from_secs(10), self.stream.read(&mut chunk)).await,
            Ok(Ok(0)) | Ok(Err(_))
        )
    }
}

/// Deterministic pseudo-random bytes (xorshift), so content is incompressible and reproducible.
fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// All names below `dir`, recursively, relative to it (empty if `dir` is missing).
fn tree(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries {
            let entry = entry.expect("entry");
            let path = entry.path();
            out.push(
                path.strip_prefix(root)
                    .expect("below root")
                    .display()
                    .to_string(),
            );
            if entry.file_type().expect("file type").is_dir() {
                walk(root, &path, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

fn temp_files(dir: &Path) -> Vec<String> {
    tree(dir)
        .into_iter()
        .filter(|p| p.contains(".tmp-"))
        .collect()
}

/// Polls `cond` every 10 ms for up to 10 s.
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..1000 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for: {what}");
}

const OBJ: &str = "/files/md5/ab/cdef0123456789abcdef0123456789";

// ---------------------------------------------------------------- tests

#[tokio::test]
async fn put_then_get_round_trips_8_mib() {
    let store = Store::start("roundtrip").await;
    let data = random_bytes(8 * 1024 * 1024, 42);
    let mut conn = store.connect().await;
    let put = conn.request("PUT", OBJ, &data).await;
    assert_eq!(put.status, 201, "{}", put.text());

    let got = store.connect().await.get(OBJ).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.header("content-length"), Some("8388608"));
    assert!(got.body == data, "GET returns the exact bytes");
    let on_disk = std::fs::read(store.dir().join(&OBJ[1..])).expect("file on disk");
    assert!(on_disk == data);

    let again = conn.request("PUT", OBJ, b"replacement").await;
    assert_eq!(again.status, 204, "replacing answers 204");
    assert_eq!(conn.get(OBJ).await.body, b"replacement");
    assert!(temp_files(&store.dir()).is_empty());
    store.stop().await;
}

#[tokio::test]
async fn post_chunked_then_get() {
    let store = Store::start("chunked").await;
    let mut conn = store.connect().await;
    let chunks: [&[u8]; 4] = [b"hello ", b"chunked ", &[b'x'; 5000], b"world"];
    let mut req = format!(
        "POST {OBJ} HTTP/1.1\r\nHost: store\r\nTransfer-Encoding: chunked\r\nContent-Type: application/octet-stream\r\n\r\n"
    )
    .into_bytes();
    for chunk in chunks {
        req.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        req.extend_from_slice(chunk);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"0\r\n\r\n");
    // Send in small pieces so chunk boundaries and TCP segments do not line up.
    for piece in req.chunks(7) {
        conn.send(piece).await;
    }
    let resp = conn.response(false).await;
    assert_eq!(resp.status, 201, "{}", resp.text());

    let expected: Vec<u8> = chunks.concat();
    let got = conn.get(OBJ).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.body, expected);
    store.stop().await;
}

#[tokio::test]
async fn head_has_length_but_no_body() {
    let store = Store::start("head").await;
    let mut conn = store.connect().await;
    assert_eq!(conn.request("PUT", "/a/b", b"0123456789").await.status, 201);

    let head = conn.request("HEAD", "/a/b", b"").await;
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), Some("10"));
    assert!(head.body.is_empty());
    // If HEAD had leaked body bytes, this next response would be garbled.
    let get = conn.get("/a/b").await;
    assert_eq!(get.body, b"0123456789");

    let absent = conn.request("HEAD", "/a/nope", b"").await;
    assert_eq!(absent.status, 404);
    store.stop().await;
}

#[tokio::test]
async fn absent_and_directories_are_404() {
    let store = Store::start("absent").await;
    let mut conn = store.connect().await;
    assert_eq!(conn.get(OBJ).await.status, 404);
    assert_eq!(conn.request("PUT", "/d/f", b"x").await.status, 201);
    assert_eq!(conn.get("/d").await.status, 404);
    assert_eq!(conn.get("/d/").await.status, 404);
    assert_eq!(conn.get("/").await.status, 404);
    assert_eq!(conn.get("/d/f/g").await.status, 404);
    assert_eq!(conn.get("/d/f?query=1").await.status, 200);
    store.stop().await;
}

#[tokio::test]
async fn other_methods_are_405_with_allow() {
    let store = Store::start("405").await;
    let mut conn = store.connect().await;
    let resp = conn.request("DELETE", OBJ, b"").await;
    assert_eq!(resp.status, 405);
    assert_eq!(resp.header("allow"), Some("GET, HEAD, PUT, POST"));
    // The connection stays usable.
    assert_eq!(conn.get(OBJ).await.status, 404);
    store.stop().await;
}

#[tokio::test]
async fn three_requests_on_one_keep_alive_connection() {
    let store = Store::start("keepalive").await;
    let mut conn = store.connect().await;
    assert_eq!(conn.get("/k").await.status, 404);
    assert_eq!(conn.request("PUT", "/k", b"kept alive").await.status, 201);
    let got = conn.get("/k").await;
    assert_eq!(got.status, 200);
    assert_eq!(got.body, b"kept alive");
    store.stop().await;
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let store = Store::start("pipeline").await;
    let mut conn = store.connect().await;
    conn.send(
        b"PUT /p HTTP/1.1\r\nHost: s\r\nContent-Length: 3\r\n\r\nabc\
          GET /p HTTP/1.1\r\nHost: s\r\n\r\n\
          GET /missing HTTP/1.1\r\nHost: s\r\n\r\n",
    )
    .await;
    assert_eq!(conn.response(false).await.status, 201);
    let got = conn.response(false).await;
    assert_eq!((got.status, got.body.as_slice()), (200, &b"abc"[..]));
    assert_eq!(conn.response(false).await.status, 404);
    store.stop().await;
}

/// A client that shuts its write side once its request is sent still gets the answer (hyper
/// closed such connections at the EOF without answering, about 4 times in 10).
#[tokio::test]
async fn a_client_that_half_closes_after_its_request_is_answered() {
    let store = Store::start("half-close").await;
    let mut conn = store.connect().await;
    assert_eq!(conn.request("PUT", "/h", b"half").await.status, 201);
    for attempt in 1..=20 {
        let mut conn = store.connect().await;
        conn.send(b"GET /h HTTP/1.1\r\nHost: s\r\n\r\n").await;
        conn.stream.shutdown().await.expect("half-close");
        let got = conn.response(false).await;
        assert_eq!(
            (got.status, got.body.as_slice()),
            (200, &b"half"[..]),
            "attempt {attempt}"
        );
    }
    store.stop().await;
}

#[tokio::test]
async fn expect_100_continue_is_honoured() {
    let store = Store::start("expect").await;
    let mut conn = store.connect().await;
    conn.send(
        format!(
            "PUT {OBJ} HTTP/1.1\r\nHost: s\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"
        )
        .as_bytes(),
    )
    .await;
    let interim = conn.response(false).await;
    assert_eq!(interim.status, 100);
    conn.send(b"later").await;
    assert_eq!(conn.response(false).await.status, 201);
    assert_eq!(conn.get(OBJ).await.body, b"later");
    store.stop().await;
}

/// Sends a head and part of a body, waits until the store is writing the temp file, then cuts the
/// connection (`reset`: RST via zero linger; otherwise a FIN).
async fn cut_upload(store: &Store, head: &str, partial: &[u8], reset: bool) {
    let mut conn = store.connect().await;
    conn.send(head.as_bytes()).await;
    conn.send(partial).await;
    let dir = store.dir();
    eventually("the store creates a temp file", || {
        !temp_files(&dir).is_empty()
    })
    .await;
    if reset {
        conn.stream.set_zero_linger().expect("zero linger");
        drop(conn);
    } else {
        conn.stream.shutdown().await.expect("shutdown");
        // The store answers (400) or closes; either way the upload is over.
        let _ = conn.closed_by_server().await;
    }
    eventually("the store removes the temp file", || {
        temp_files(&dir).is_empty()
    })
    .await;
}

#[tokio::test]
async fn short_content_length_upload_leaves_nothing() {
    let store = Store::start("cut").await;
    let head = format!("PUT {OBJ} HTTP/1.1\r\nHost: s\r\nContent-Length: 1000\r\n\r\n");
    cut_upload(&store, &head, &[b'z'; 500], false).await;
    cut_upload(&store, &head, &[b'z'; 500], true).await;
    assert!(!store.dir().join(&OBJ[1..]).exists(), "no final file");
    assert!(temp_files(&store.dir()).is_empty(), "no temp file");
    assert_eq!(store.connect().await.get(OBJ).await.status, 404);
    store.stop().await;
}

#[tokio::test]
async fn truncated_chunked_upload_leaves_nothing() {
    let store = Store::start("cut-chunked").await;
    let head = format!("POST {OBJ} HTTP/1.1\r\nHost: s\r\nTransfer-Encoding: chunked\r\n\r\n");
    let mut partial = b"100\r\n".to_vec();
    partial.extend_from_slice(&[b'c'; 100]);
    cut_upload(&store, &head, &partial, false).await;
    assert!(!store.dir().join(&OBJ[1..]).exists());
    store.stop().await;
}

#[tokio::test]
async fn earlier_good_file_survives_a_cut_upload() {
    let store = Store::start("survive").await;
    let good = random_bytes(100_000, 7);
    assert_eq!(
        store
            .connect()
            .await
            .request("PUT", OBJ, &good)
            .await
            .status,
        201
    );
    let head = format!("PUT {OBJ} HTTP/1.1\r\nHost: s\r\nContent-Length: 200000\r\n\r\n");
    cut_upload(&store, &head, &random_bytes(50_000, 8), true).await;
    cut_upload(&store, &head, &random_bytes(50_000, 9), false).await;
    let got = store.connect().await.get(OBJ).await;
    assert_eq!(got.status, 200);
    assert!(got.body == good, "the earlier file is intact");
    store.stop().await;
}

#[tokio::test]
async fn path_traversal_is_refused_and_writes_nothing_outside() {
    let store = Store::start("traversal").await;
    let outside = store.tmp.path().join("outside");
    std::fs::create_dir_all(&outside).expect("mkdir outside");
    std::fs::write(outside.join("secret"), b"secret").expect("write secret");
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(&outside, store.dir().join("link")).expect("symlink dir");
        std::os::unix::fs::symlink(outside.join("secret"), store.dir().join("file"))
            .expect("symlink file");
    }
    let before_parent = tree(store.tmp.path());

    let mut refused = vec![
        "/../x",
        "/../outside/secret",
        "/%2e%2e/x",
        "/%2E%2E/outside/secret",
        "/a/..%2fb",
        "/a/..%2f..%2fx",
        "//x",
        "/a%5c..%5cx",
        "/a%00b",
        "/.x.tmp-1",
    ];
    if cfg!(unix) {
        refused.extend(["/link/evil", "/link/secret", "/file", "/link/sub/evil"]);
    }
    for path in refused {
        let mut conn = store.connect().await;
        let put = conn.request("PUT", path, b"evil").await;
        assert!(
            (400..500).contains(&put.status),
            "PUT {path} → {}",
            put.status
        );
        let mut conn = store.connect().await;
        let get = conn.get(path).await;
        assert!(
            (400..500).contains(&get.status) && !get.text().contains("secret\n"),
            "GET {path} → {} {}",
            get.status,
            get.text()
        );
        if path.starts_with("/link") || path == "/file" {
            assert_eq!(put.status, 403, "symlinks are forbidden: {path}");
        } else {
            assert_eq!(put.status, 400, "bad paths are bad requests: {path}");
        }
    }
    assert_eq!(
        tree(store.tmp.path()),
        before_parent,
        "nothing was written anywhere"
    );
    assert_eq!(
        std::fs::read(outside.join("secret")).expect("read"),
        b"secret"
    );
    store.stop().await;
}

#[tokio::test]
async fn twenty_concurrent_uploads() {
    let store = Store::start("concurrent").await;
    let addr = store.addr;
    let mut tasks = Vec::new();
    for i in 0..20u64 {
        tasks.push(tokio::spawn(async move {
            let data = random_bytes(200_000 + i as usize * 1000, i + 100);
            let path = format!("/files/md5/{i:02x}/object{i}");
            let mut conn = Conn {
                stream: TcpStream::connect(addr).await.expect("connect"),
                buf: Vec::new(),
            };
            let resp = conn.request("PUT", &path, &data).await;
            (path, data, resp.status)
        }));
    }
    for task in tasks {
        let (path, data, status) = task.await.expect("upload task");
        assert_eq!(status, 201, "{path}");
        let got = store.connect().await.get(&path).await;
        assert!(got.body == data, "{path} round trips");
    }
    assert!(temp_files(&store.dir()).is_empty());
    store.stop().await;
}

#[tokio::test]
async fn shutdown_closes_idle_connections_and_returns() {
    let store = Store::start("shutdown").await;
    let mut conn = store.connect().await;
    assert_eq!(conn.get("/x").await.status, 404);
    store.shutdown.cancel();
    assert!(conn.closed_by_server().await, "idle keep-alive is closed");
    store.stop().await;
}

#[tokio::test]
async fn serve_takes_a_bound_listener() {
    let tmp = TempDir::new("serve");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let shutdown = CancellationToken::new();
    let config = store::StoreConfig {
        dir: tmp.path().join("nested/store"),
    };
    let task = tokio::spawn(store::serve(listener, config, shutdown.clone()));
    let mut conn = Conn {
        stream: TcpStream::connect(addr).await.expect("connect"),
        buf: Vec::new(),
    };
    assert_eq!(conn.request("POST", "/f", b"data").await.status, 201);
    assert_eq!(
        std::fs::read(tmp.path().join("nested/store/f")).expect("read"),
        b"data"
    );
    shutdown.cancel();
    task.await.expect("join").expect("serve returns Ok");
}

#[tokio::test]
async fn refused_upload_does_not_desync_the_connection() {
    let store = Store::start("desync").await;
    let mut conn = store.connect().await;
    conn.send(
        b"PUT /../x HTTP/1.1\r\nHost: s\r\nContent-Length: 4\r\n\r\nevil\
          GET /y HTTP/1.1\r\nHost: s\r\n\r\n",
    )
    .await;
    let refused = conn.response(false).await;
    assert_eq!(refused.status, 400);
    assert!(refused.text().contains("'..'"), "{}", refused.text());
    // The unread body was skipped, not parsed as the next request.
    assert_eq!(conn.response(false).await.status, 404);
    store.stop().await;
}
