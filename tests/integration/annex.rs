//! The real git-annex through `faultline run`: p2phttp downloads cut and resumed, p2phttp uploads
//! reset and resumed, an object corrupted on the server, WebDAV uploads cut, plain HTTP downloads
//! resumed with Range. Each case is verified by git-annex itself (`get`, `copy`, `fsck`) and by
//! `faultline inspect --json` on the run's capture.
//!
//! git-annex 10.20261026 (from PyPI, with p2phttp) and wsgidav 4.4.0 come from
//! `tests/install-annex.sh`, which the first test here runs (idempotent, a second once installed);
//! when it fails, every test here fails. Each test has its own temp dir: `server/` (a git-annex
//! repository holding a 300,000-byte file and a small one), `client/` (a clone of it), `home/`
//! (HOME, so no user configuration leaks in), the capture and every command's output in `logs/`.
//! The servers (`git annex p2phttp`, `wsgidav`) listen on free loopback ports (they cannot be
//! given port 0); faultline listens on 127.0.0.1:0. Every process is stopped by PID.

use std::collections::BTreeSet;
use std::fs;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use faultline::inspect::schema;

use crate::support::daemon::{run_bounded, Daemon, FAULTLINE};
use crate::support::process::Finished;
use crate::support::random_bytes;
use crate::support::temp_dir::TempDir;
use crate::support::tshark;
use crate::support::venv::Tool;

const REPO: &str = env!("CARGO_MANIFEST_DIR");
/// Far above what one git-annex command takes here (under a second): reaching it means a hang.
const COMMAND_LIMIT: Duration = Duration::from_secs(120);
/// A first install downloads ten wheels (git-annex's is ~60 MB).
const INSTALL_LIMIT: Duration = Duration::from_secs(15 * 60);
/// The big file: three 100 KiB cuts and a rest.
const BIG: usize = 300_000;

/// `<venv>/bin`, holding git-annex and wsgidav; installs them on first use, and fails the test
/// (never skips it) when that is not possible.
fn tools() -> PathBuf {
    static ANNEX: Tool = Tool::new(
        "install-annex.sh",
        "FAULTLINE_ANNEX_VENV",
        "annex-venv",
        "git-annex and wsgidav are",
        INSTALL_LIMIT,
    );
    ANNEX.venv().join("bin")
}

/// One test's repositories, servers and commands.
struct Lab {
    tmp: TempDir,
    bin: PathBuf,
    n: std::cell::Cell<u32>,
    big: Vec<u8>,
}

/// A running `faultline run` and where its capture goes.
struct Proxy {
    daemon: Daemon,
    addr: SocketAddr,
    capture: PathBuf,
}

impl Lab {
    /// A server repository with `big.bin` (300,000 seeded bytes) and `small.txt` committed.
    fn new(label: &str) -> Lab {
        let bin = tools();
        let tmp = TempDir::new(label);
        for dir in ["home", "logs", "server"] {
            fs::create_dir_all(tmp.path().join(dir)).expect("create a lab dir");
        }
        let lab = Lab {
            tmp,
            bin,
            n: std::cell::Cell::new(0),
            big: random_bytes(BIG, 42),
        };
        let server = lab.dir("server");
        lab.ok(&server, "git", &["init", "-q", "-b", "main"]);
        lab.ok(&server, "git", &["annex", "init", "-q", "server"]);
        fs::write(server.join("big.bin"), &lab.big).expect("write big.bin");
        fs::write(server.join("small.txt"), b"small annexed file\n").expect("write small.txt");
        lab.ok(
            &server,
            "git",
            &["annex", "add", "-q", "big.bin", "small.txt"],
        );
        lab.ok(&server, "git", &["commit", "-q", "-m", "objects"]);
        lab
    }

    fn dir(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    fn logs(&self) -> PathBuf {
        self.dir("logs")
    }

    fn label(&self, what: &str) -> String {
        self.n.set(self.n.get() + 1);
        let what: String = what
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .take(40)
            .collect();
        format!("{:02}-{what}", self.n.get())
    }

    /// `program ARGS` in `dir` with the venv first on PATH, HOME in the lab, no proxies, no system
    /// git configuration, fixed identities.
    fn command(&self, dir: &Path, program: &str, args: &[&str]) -> Command {
        let path = format!(
            "{}:{}",
            self.bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut command = Command::new(program);
        command.args(args).current_dir(dir);
        for var in [
            "HTTP_PROXY",
            "http_proxy",
            "HTTPS_PROXY",
            "https_proxy",
            "ALL_PROXY",
            "all_proxy",
            "NO_PROXY",
            "no_proxy",
            "GIT_DIR",
            "GIT_WORK_TREE",
        ] {
            command.env_remove(var);
        }
        command
            .env("PATH", path)
            .env("HOME", self.dir("home"))
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_AUTHOR_NAME", "faultline test")
            .env("GIT_AUTHOR_EMAIL", "test@faultline.invalid")
            .env("GIT_COMMITTER_NAME", "faultline test")
            .env("GIT_COMMITTER_EMAIL", "test@faultline.invalid")
            .env("WEBDAV_USERNAME", "faultline")
            .env("WEBDAV_PASSWORD", "faultline");
        command
    }

    /// Runs a command to its end (bounded), printing it with its exit status and output.
    fn run(&self, dir: &Path, program: &str, args: &[&str]) -> Finished {
        let label = self.label(&format!("{program}-{}", args.join("-")));
        let done = run_bounded(
            &mut self.command(dir, program, args),
            &self.logs(),
            &label,
            COMMAND_LIMIT,
        );
        println!(
            "$ ({}) {program} {}\n  -> exit {:?}\n{}",
            dir.file_name().unwrap_or_default().to_string_lossy(),
            args.join(" "),
            done.code(),
            indent(&done.output())
        );
        done
    }

    /// A command that must succeed.
    fn ok(&self, dir: &Path, program: &str, args: &[&str]) -> Finished {
        let done = self.run(dir, program, args);
        assert!(
            done.status.success(),
            "{program} {} failed in {}:\n{}",
            args.join(" "),
            dir.display(),
            done.output()
        );
        done
    }

    /// `git annex p2phttp --wideopen` serving the server repository on 127.0.0.1, port 0: the
    /// port it bound is read from the listening socket its `git-annex` process holds.
    fn p2phttp(&self) -> (Daemon, SocketAddr) {
        let mut daemon = Daemon::start(
            &mut self.command(
                &self.dir("server"),
                "git",
                &[
                    "annex",
                    "p2phttp",
                    "-J2",
                    "--wideopen",
                    "--bind",
                    "127.0.0.1",
                    "--port",
                    "0",
                ],
            ),
            &self.logs(),
            &self.label("p2phttp"),
        );
        let addr = daemon
            .wait_listening(None)
            .unwrap_or_else(|| panic!("p2phttp exited:\n{}", daemon.output()));
        (daemon, addr)
    }

    /// wsgidav serving `root` read-write to anyone on a free loopback port (its `--port 0`
    /// means its default, 8080), started again on another port if that one was taken.
    fn wsgidav(&self, root: &Path) -> (Daemon, SocketAddr) {
        let root = root.to_string_lossy().into_owned();
        Daemon::start_on_free_port(&self.logs(), &self.label("wsgidav"), |port| {
            self.command(
                self.tmp.path(),
                "wsgidav",
                &[
                    "--host",
                    "127.0.0.1",
                    "--port",
                    &port.to_string(),
                    "--root",
                    &root,
                    "--auth",
                    "anonymous",
                ],
            )
        })
    }

    /// `faultline run SCENARIO --listen 127.0.0.1:0 --upstream UPSTREAM --capture …`.
    fn proxy(&self, scenario: &Path, upstream: SocketAddr) -> Proxy {
        let stem = scenario
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let capture = self.tmp.path().join(format!("{stem}.pcapng"));
        let mut daemon = Daemon::start(
            Command::new(FAULTLINE)
                .arg("run")
                .arg(scenario)
                .args(["--listen", "127.0.0.1:0", "--upstream"])
                .arg(upstream.to_string())
                .arg("--capture")
                .arg(&capture),
            &self.logs(),
            &self.label(&format!("faultline-{stem}")),
        );
        let addr = daemon.faultline_address();
        Proxy {
            daemon,
            addr,
            capture,
        }
    }

    /// A clone of the server repository, initialized as a git-annex repository that may reach
    /// loopback addresses; with `p2phttp`, its origin's annex goes through faultline.
    fn client(&self, p2phttp: Option<SocketAddr>) -> PathBuf {
        let client = self.dir("client");
        self.ok(self.tmp.path(), "git", &["clone", "-q", "server", "client"]);
        self.ok(&client, "git", &["annex", "init", "-q", "client"]);
        self.ok(
            &client,
            "git",
            &["config", "annex.security.allowed-ip-addresses", "127.0.0.1"],
        );
        if let Some(proxy) = p2phttp {
            let url = format!("annex+http://{proxy}/git-annex/");
            self.ok(&client, "git", &["config", "remote.origin.annexurl", &url]);
        }
        client
    }

    /// The key git-annex gave `file` in `repo`.
    fn key(&self, repo: &Path, file: &str) -> String {
        self.ok(repo, "git", &["annex", "lookupkey", file])
            .stdout
            .trim()
            .to_string()
    }
}

impl Proxy {
    /// SIGTERM; faultline must exit 0; returns the capture.
    fn stop(self) -> PathBuf {
        let done = self.daemon.stop();
        assert!(
            done.status.success(),
            "faultline run exited with {}:\n{}",
            done.status,
            done.output()
        );
        self.capture
    }
}

fn indent(text: &str) -> String {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| format!("    {l}\n"))
        .collect()
}

/// `faultline inspect --json CAPTURE`: the JSON and the exit code, printed.
fn inspect(lab: &Lab, capture: &Path) -> (serde_json::Value, Option<i32>) {
    let done = run_bounded(
        Command::new(FAULTLINE)
            .args(["inspect", "--json"])
            .arg(capture),
        &lab.logs(),
        &lab.label("inspect"),
        COMMAND_LIMIT,
    );
    let json: serde_json::Value = serde_json::from_str(&done.stdout).unwrap_or_else(|e| {
        panic!("inspect printed no JSON ({e}):\n{}", done.output());
    });
    let text = run_bounded(
        Command::new(FAULTLINE).arg("inspect").arg(capture),
        &lab.logs(),
        &lab.label("inspect-text"),
        COMMAND_LIMIT,
    );
    println!(
        "$ faultline inspect {}\n  -> exit {:?}\n{}",
        capture.display(),
        done.code(),
        indent(&text.stdout)
    );
    let problems = schema::violations(&json, &mut BTreeSet::new());
    assert!(
        problems.is_empty(),
        "--json departs from the documented schema:\n{}",
        problems.join("\n")
    );
    (json, done.code())
}

/// The objects of `key` (whole-object key) in the report.
fn objects<'a>(json: &'a serde_json::Value, key: &str) -> Vec<&'a serde_json::Value> {
    json["objects"]
        .as_array()
        .map(|all| {
            all.iter()
                .filter(|o| o["address"]["key"].as_str() == Some(key))
                .collect()
        })
        .unwrap_or_default()
}

fn findings(json: &serde_json::Value) -> Vec<String> {
    json["findings"]
        .as_array()
        .map(|all| {
            all.iter()
                .filter_map(|f| f.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

fn scenario(name: &str) -> PathBuf {
    Path::new(REPO)
        .join("scenarios")
        .join(format!("{name}.toml"))
}

/// Every object download cut after 100 KiB: git-annex resumes with `offset=N` until the object is
/// whole, and verifies it; inspect stitches the pieces on each leg and the key's check matches.
#[test]
fn p2phttp_cut_downloads_resumed_are_verified_by_git_annex_and_inspect() {
    let lab = Lab::new("annex-cut-get");
    let (server, p2p) = lab.p2phttp();
    let proxy = lab.proxy(&scenario("annex-p2phttp-cut-get"), p2p);
    let client = lab.client(Some(proxy.addr));
    let key = lab.key(&client, "big.bin");

    let get = lab.run(
        &client,
        "git",
        &["-c", "annex.retry=5", "annex", "get", "big.bin"],
    );
    assert!(get.status.success(), "get with retries:\n{}", get.output());
    assert_eq!(fs::read(client.join("big.bin")).expect("big.bin"), lab.big);
    lab.ok(&client, "git", &["annex", "fsck", "big.bin"]);
    let capture = proxy.stop();
    server.stop();

    let (json, code) = inspect(&lab, &capture);
    assert_eq!(code, Some(0), "{:?}", findings(&json));
    let client_leg: Vec<_> = objects(&json, &key)
        .into_iter()
        .filter(|o| o["leg"] == "client" && o["transfer"] == "download")
        .collect();
    assert_eq!(client_leg.len(), 1, "{json:#}");
    let object = client_leg[0];
    assert_eq!(object["check"]["result"], "matches", "{object:#}");
    let offsets: Vec<u64> = object["pieces"]
        .as_array()
        .expect("pieces")
        .iter()
        .filter_map(|p| p["offset"].as_u64())
        .collect();
    assert_eq!(offsets, [0, 102_400, 204_800], "{object:#}");
    let gets = json["p2phttp"]
        .as_array()
        .expect("p2phttp")
        .iter()
        .filter(|p| p["operation"] == "get")
        .count();
    assert_eq!(gets, 6, "three gets on each leg");
}

/// The first put reset after 64 KiB: git-annex asks `putoffset` and resumes from what the server
/// kept; the server stores the object (its own fsck agrees) and inspect's check of the stitched
/// upload matches.
#[test]
fn p2phttp_reset_upload_retried_is_verified_by_git_annex_and_inspect() {
    let lab = Lab::new("annex-reset-put");
    let (server, p2p) = lab.p2phttp();
    let proxy = lab.proxy(&scenario("annex-p2phttp-reset-put"), p2p);
    let client = lab.client(Some(proxy.addr));
    fs::write(client.join("up.bin"), random_bytes(BIG, 7)).expect("write up.bin");
    lab.ok(&client, "git", &["annex", "add", "-q", "up.bin"]);
    lab.ok(&client, "git", &["commit", "-q", "-m", "up"]);
    let key = lab.key(&client, "up.bin");

    let copy = lab.run(
        &client,
        "git",
        &[
            "-c",
            "annex.retry=3",
            "annex",
            "copy",
            "--to",
            "origin",
            "up.bin",
        ],
    );
    assert!(
        copy.status.success(),
        "copy with retries:\n{}",
        copy.output()
    );
    let capture = proxy.stop();
    server.stop();
    lab.ok(&lab.dir("server"), "git", &["annex", "fsck", "--key", &key]);

    let (json, code) = inspect(&lab, &capture);
    assert_eq!(code, Some(0), "{:?}", findings(&json));
    let uploads: Vec<_> = objects(&json, &key)
        .into_iter()
        .filter(|o| o["transfer"] == "upload")
        .collect();
    assert_eq!(uploads.len(), 2, "one per leg: {json:#}");
    let mut resent = false;
    for upload in uploads {
        assert_eq!(upload["check"]["result"], "matches", "{upload:#}");
        // Sometimes git-annex's HTTP library (http-client) retries the put on a fresh connection
        // by itself, sending the rest of the half-read file as `offset=0`; the server refuses
        // it (`stored: false`) and git-annex starts over. Inspect names that piece and where its
        // bytes belong: the rest of the object, so `from + length` is its end.
        // When the refused piece overlapped the put before it, the server dropped its bytes and
        // the object verifies only without them; inspect says that too.
        for problem in upload["problems"].as_array().expect("problems") {
            let problem = problem.as_str().expect("problem");
            if problem.starts_with("the object verifies only without the bytes of refused exchange")
            {
                continue;
            }
            let (exchange, from) =
                resent_piece(problem).unwrap_or_else(|| panic!("an unexpected problem: {problem}"));
            resent = true;
            let piece = upload["pieces"]
                .as_array()
                .expect("pieces")
                .iter()
                .find(|p| p["exchange"].as_u64() == Some(exchange))
                .expect("the resent piece");
            assert_eq!(
                from + piece["length"].as_u64().expect("length"),
                BIG as u64,
                "the resent bytes run to the end of the file: {upload:#}"
            );
        }
        assert!(
            upload["pieces"]
                .as_array()
                .expect("pieces")
                .iter()
                .any(|p| p["offset"].as_u64() > Some(0)),
            "the put resumed at the server's offset: {upload:#}"
        );
    }
    // A clean verdict, yet the client bug is said where a reader looks: one warning per object.
    let warned = json["warnings"]
        .as_array()
        .expect("warnings")
        .iter()
        .filter(|w| {
            w.as_str().is_some_and(|w| {
                w.ends_with("the server refused them and the object verifies, but the client sent bytes from the wrong offset")
            })
        })
        .count();
    assert_eq!(warned, usize::from(resent), "{:#}", json["warnings"]);
    let faulted = json["exchanges"]
        .as_array()
        .expect("exchanges")
        .iter()
        .any(|e| e["method"] == "POST" && !e["faults"].as_array().expect("faults").is_empty());
    assert!(faulted, "the reset is in the capture");
    // The summary counts uploads in one unit: one put object, counted once whichever legs show
    // it; `putoffset` and `checkpresent` POSTs sent again are no retried upload (a trial read
    // "2 uploads (1 not accepted), 2 retried, 2 retries differed" of one put).
    let summary = &json["summary"];
    assert_eq!(summary["uploads"], 1, "{summary:#}");
    assert!(
        summary["retried"].as_u64() <= Some(1)
            && summary["retries_differing"].as_u64() <= summary["retried"].as_u64(),
        "{summary:#}"
    );
}

/// `(exchange, from)` of inspect's "the retry from offset 0 (exchange N) carried other bytes …
/// they are the object's bytes from offset M, sent as offset 0".
fn resent_piece(problem: &str) -> Option<(u64, u64)> {
    let exchange = problem
        .strip_prefix("the retry from offset 0 (exchange ")?
        .split(')')
        .next()?
        .parse()
        .ok()?;
    let from = problem
        .split("they are the object's bytes from offset ")
        .nth(1)?
        .split(',')
        .next()?
        .parse()
        .ok()?;
    Some((exchange, from))
}

/// A byte flipped in the server's copy: git-annex refuses the download ("Verification of content
/// failed"), and inspect exits 1 with a finding naming the key.
#[test]
fn object_corrupted_on_the_server_is_refused_by_git_annex_and_named_by_inspect() {
    let lab = Lab::new("annex-corrupt");
    let server_dir = lab.dir("server");
    let key = lab.key(&server_dir, "big.bin");
    let location = lab.ok(&server_dir, "git", &["annex", "contentlocation", &key]);
    let object = server_dir.join(location.stdout.trim());
    for path in [object.parent().expect("object dir"), &object] {
        let mut mode = fs::metadata(path).expect("stat").permissions();
        mode.set_mode(mode.mode() | 0o200);
        fs::set_permissions(path, mode).expect("make writable");
    }
    let mut bytes = fs::read(&object).expect("read the object");
    bytes[123_456] ^= 0x01;
    fs::write(&object, &bytes).expect("corrupt the object");

    let (server, p2p) = lab.p2phttp();
    // No rule of this scenario touches downloads: the corruption is the server's alone.
    let proxy = lab.proxy(&scenario("annex-p2phttp-reset-put"), p2p);
    let client = lab.client(Some(proxy.addr));
    let get = lab.run(&client, "git", &["annex", "get", "big.bin"]);
    assert!(!get.status.success(), "git-annex must refuse the object");
    assert!(
        get.output().contains("Verification of content failed"),
        "{}",
        get.output()
    );
    let capture = proxy.stop();
    server.stop();

    let (json, code) = inspect(&lab, &capture);
    assert_eq!(code, Some(1), "{json:#}");
    let all = findings(&json);
    assert!(
        all.iter()
            .any(|f| f.contains(&format!("download of {key}")) && f.contains("MISMATCH")),
        "no finding names {key}: {all:#?}"
    );
}

/// The first WebDAV PUT of the object cut after 64 KiB: git-annex retries the PUT, MOVEs it in
/// place, and its fsck of the remote passes; wsgidav answered 201 to the body cut short, which
/// inspect reports on the upstream leg.
#[test]
fn webdav_cut_upload_is_retried_and_the_incomplete_body_accepted_is_named() {
    let lab = Lab::new("annex-webdav");
    let dav_root = lab.dir("dav");
    fs::create_dir_all(&dav_root).expect("dav root");
    let (dav, dav_addr) = lab.wsgidav(&dav_root);
    let proxy = lab.proxy(&scenario("annex-webdav-truncate-put"), dav_addr);
    let client = lab.client(None);
    let url = format!("url=http://{}/annex", proxy.addr);
    lab.ok(
        &client,
        "git",
        &[
            "annex",
            "initremote",
            "dav",
            "type=webdav",
            &url,
            "encryption=none",
        ],
    );
    let key = lab.key(&client, "big.bin");
    lab.ok(&client, "git", &["annex", "get", "-q", "big.bin"]);
    let copy = lab.run(
        &client,
        "git",
        &[
            "-c",
            "annex.retry=3",
            "annex",
            "copy",
            "--to",
            "dav",
            "big.bin",
        ],
    );
    assert!(
        copy.status.success(),
        "copy with retries:\n{}",
        copy.output()
    );
    lab.ok(
        &client,
        "git",
        &["annex", "fsck", "--from", "dav", "big.bin"],
    );
    let capture = proxy.stop();
    dav.stop();

    let (json, code) = inspect(&lab, &capture);
    let all = findings(&json);
    assert_eq!(code, Some(1), "{all:#?}");
    let tmp_name = format!("git-annex-webdav-tmp-{key}");
    // The line says the short upload did not stay: the whole retry, whose bytes match the key,
    // replaced it, and the MOVE put that in place.
    assert!(
        all.iter()
            .any(|f| f.contains("server accepted an incomplete body")
                && f.contains(&tmp_name)
                && f.contains("upstream leg")
                && f.contains("; later replaced: PUT exchange")
                && f.contains("bytes (they match their content address), ")
                && f.contains(", then MOVE exchange")),
        "{all:#?}"
    );
    assert!(
        all.iter()
            .all(|f| f.contains("server accepted an incomplete body")),
        "nothing else is wrong: {all:#?}"
    );
    let moves = json["webdav_moves"].as_array().expect("moves");
    assert!(
        moves
            .iter()
            .any(|m| m["method"] == "MOVE" && m["upload_complete"] == true),
        "the MOVE moved the complete retry: {moves:#?}"
    );
}

/// A plain HTTP remote (the server repository published by wsgidav, which answers Range): the
/// first object download cut after 100 KiB, git-annex resumes it with `Range: bytes=102400-`
/// and verifies it; inspect stitches the 200 and the 206 into one object whose check matches.
#[test]
fn plain_http_get_resumed_with_range_is_checked_as_one_object() {
    let lab = Lab::new("annex-range");
    let server_dir = lab.dir("server");
    lab.ok(&server_dir, "git", &["update-server-info"]);
    let (dav, dav_addr) = lab.wsgidav(lab.tmp.path());
    let rules = lab.tmp.write(
        "range-cut.toml",
        r#"name = "annex-http-range"
seed = 7
[[rule]]
name = "the first object download cut after 100 KiB"
match = { method = "GET", path = "/**/annex/objects/**", status = 200, request = 1 }
fault.truncate = { after = "100KiB" }
"#,
    );
    let proxy = lab.proxy(&rules, dav_addr);
    let proxy_port = proxy.addr.port();
    let client = lab.client(None);
    let web = format!("http://{}/server/.git", proxy.addr);
    lab.ok(&client, "git", &["remote", "add", "web", &web]);
    let key = lab.key(&client, "big.bin");
    let get = lab.run(
        &client,
        "git",
        &[
            "-c",
            "annex.retry=3",
            "annex",
            "get",
            "--from",
            "web",
            "big.bin",
        ],
    );
    assert!(get.status.success(), "get with retries:\n{}", get.output());
    lab.ok(&client, "git", &["annex", "fsck", "big.bin"]);
    let capture = proxy.stop();
    dav.stop();

    let (json, code) = inspect(&lab, &capture);
    assert_eq!(code, Some(0), "{:?}", findings(&json));
    let object = objects(&json, &key)
        .into_iter()
        .find(|o| o["leg"] == "client")
        .unwrap_or_else(|| panic!("no download of {key}: {json:#}"));
    assert_eq!(object["check"]["result"], "matches", "{object:#}");
    let pieces = object["pieces"].as_array().expect("pieces");
    assert_eq!(pieces.len(), 2, "{object:#}");
    assert_eq!(pieces[1]["offset"], 102_400);
    let resumed = &json["exchanges"][pieces[1]["exchange"].as_u64().expect("id") as usize];
    assert_eq!(resumed["response"]["status"], 206);
    assert_eq!(resumed["request"]["range"], "bytes=102400-");

    // tshark, decoding HTTP on both legs' ports, sees the same requests and the resume.
    let decode: Vec<String> = [proxy_port, dav_addr.port()]
        .iter()
        .map(|p| format!("tcp.port=={p},http"))
        .collect();
    let seen = tshark::run(
        &capture,
        &[
            "-d",
            &decode[0],
            "-d",
            &decode[1],
            "-Y",
            "http.request",
            "-T",
            "fields",
            "-e",
            "http.request.method",
            "-e",
            "http.request.line",
        ],
    )
    .stdout;
    let requests: Vec<&str> = seen.lines().collect();
    assert_eq!(
        requests.len(),
        json["exchanges"].as_array().map_or(0, Vec::len),
        "tshark's HTTP requests: {requests:#?}"
    );
    let ranged = json["exchanges"]
        .as_array()
        .expect("exchanges")
        .iter()
        .filter(|e| e["request"]["range"] == "bytes=102400-")
        .count();
    assert!(ranged >= 2, "the resume on each leg");
    assert_eq!(
        requests
            .iter()
            .filter(|r| r.starts_with("GET\t") && r.contains("Range: bytes=102400-"))
            .count(),
        ranged,
        "tshark's requests with the resume's Range: {requests:#?}"
    );
}

/// `git annex drop` relies on the server's lock (`lockcontent`, then a `keeplocked` request held
/// open) while it drops its own copy. Every keeplocked connection reset after 8 bytes of its body.
/// git-annex 10.20261026 sends `{"unlock":false}`, `{"unlock":true}` and the last chunk in one
/// segment once its drop is done, so the reset comes after the client unlocked: the lock was held
/// as long as the client relied on it, and inspect must not call it dropped (it did, falsely,
/// when it judged a keeplocked by its reset alone). Should a client ever be reset before its
/// unlock crossed, inspect names the lock dropped on the client leg.
#[test]
fn p2phttp_lock_dropped_mid_connection_is_named_only_before_the_unlock() {
    let lab = Lab::new("annex-lock");
    let (server, p2p) = lab.p2phttp();
    let rules = lab.tmp.write(
        "lock-reset.toml",
        r#"name = "annex-p2phttp-lock-reset"
seed = 7
[[rule]]
name = "keeplocked reset after 8 bytes"
match = { method = "POST", path = "/git-annex/*/v*/keeplocked" }
fault.reset = { after = "8B" }
"#,
    );
    let client = lab.client(None);
    lab.ok(&client, "git", &["annex", "get", "-q", "small.txt"]);
    let proxy = lab.proxy(&rules, p2p);
    let url = format!("annex+http://{}/git-annex/", proxy.addr);
    lab.ok(&client, "git", &["config", "remote.origin.annexurl", &url]);
    let key = lab.key(&client, "small.txt");
    let drop = lab.run(&client, "git", &["annex", "drop", "small.txt"]);
    println!("git annex drop with the lock reset: exit {:?}", drop.code());
    let capture = proxy.stop();
    server.stop();

    let (json, code) = inspect(&lab, &capture);
    let all = findings(&json);
    // The first keeplocked on the client leg: git-annex's body ends right after its unlock, so a
    // complete body means the unlock crossed before faultline's reset.
    let first_keep = json["exchanges"]
        .as_array()
        .expect("exchanges")
        .iter()
        .find(|e| {
            e["leg"] == "client"
                && e["target"]
                    .as_str()
                    .is_some_and(|t| t.contains("/keeplocked"))
        })
        .expect("a keeplocked request on the client leg");
    let dropped = all
        .iter()
        .any(|f| f.contains(&format!("lockcontent of {key} dropped mid-connection")));
    if first_keep["request"]["complete"] == true {
        println!("the client unlocked before the reset: no lock was dropped");
        assert_eq!(code, Some(0), "{all:#?}");
        assert!(!dropped, "{all:#?}");
    } else {
        println!("the client was reset before it unlocked");
        assert_eq!(code, Some(1), "{all:#?}");
        assert!(
            dropped && all.iter().any(|f| f.contains("(client leg, keeplocked")),
            "{all:#?}"
        );
    }
    let ops: Vec<&str> = json["p2phttp"]
        .as_array()
        .expect("p2phttp")
        .iter()
        .filter_map(|p| p["operation"].as_str())
        .collect();
    assert!(
        ops.contains(&"lockcontent") && ops.contains(&"keeplocked"),
        "{ops:?}"
    );
}

/// A chunked WebDAV remote (`chunk=100KiB`): the object crosses as three chunk keys
/// (`…-S102400-C1--…`), each PUT to a temporary name and MOVEd; inspect stitches the chunks of the
/// upload and of the download back into the object, whose check matches. Then one byte of chunk 2
/// is flipped on the WebDAV server: git-annex refuses the download, and inspect names the key.
#[test]
fn webdav_chunks_make_up_the_object_and_a_corrupt_chunk_is_named() {
    let lab = Lab::new("annex-chunks");
    let dav_root = lab.dir("dav");
    fs::create_dir_all(&dav_root).expect("dav root");
    let (dav, dav_addr) = lab.wsgidav(&dav_root);
    let rules = lab
        .tmp
        .write("no-faults.toml", "name = \"annex-no-faults\"\nseed = 7\n");
    let proxy = lab.proxy(&rules, dav_addr);
    let client = lab.client(None);
    let url = format!("url=http://{}/chunked", proxy.addr);
    lab.ok(
        &client,
        "git",
        &[
            "annex",
            "initremote",
            "dav",
            "type=webdav",
            &url,
            "encryption=none",
            "chunk=100KiB",
        ],
    );
    let key = lab.key(&client, "big.bin");
    lab.ok(&client, "git", &["annex", "get", "-q", "big.bin"]);
    lab.ok(&client, "git", &["annex", "copy", "--to", "dav", "big.bin"]);
    lab.ok(&client, "git", &["annex", "drop", "big.bin"]);
    lab.ok(
        &client,
        "git",
        &["annex", "get", "--from", "dav", "big.bin"],
    );
    lab.ok(&client, "git", &["annex", "drop", "big.bin"]);
    // Flip a byte of chunk 2 where wsgidav keeps it, then download again.
    let (fields, name) = key.split_once("--").expect("a key");
    let chunk2 = format!("{fields}-S102400-C2--{name}");
    let stored = find_file(&dav_root, &chunk2).expect("chunk 2 on the WebDAV server");
    let mut bytes = fs::read(&stored).expect("read chunk 2");
    bytes[100] ^= 0x80;
    fs::write(&stored, &bytes).expect("corrupt chunk 2");
    let get = lab.run(
        &client,
        "git",
        &["annex", "get", "--from", "dav", "big.bin"],
    );
    assert!(!get.status.success(), "git-annex must refuse the object");
    let capture = proxy.stop();
    dav.stop();

    let (json, code) = inspect(&lab, &capture);
    let all = findings(&json);
    assert_eq!(code, Some(1), "{all:#?}");
    let client_leg: Vec<_> = objects(&json, &key)
        .into_iter()
        .filter(|o| o["leg"] == "client")
        .collect();
    let upload = client_leg
        .iter()
        .find(|o| o["transfer"] == "upload")
        .expect("the chunked upload");
    assert_eq!(upload["check"]["result"], "matches", "{upload:#}");
    assert_eq!(
        upload["pieces"].as_array().map(Vec::len),
        Some(3),
        "{upload:#}"
    );
    // Both downloads of the key on this leg make one object: the second one's chunk 2 differs
    // from the first one's at the flipped byte, and the whole no longer matches the key.
    let download = client_leg
        .iter()
        .find(|o| o["transfer"] == "download")
        .expect("the downloads");
    assert_eq!(
        download["pieces"].as_array().map(Vec::len),
        Some(6),
        "{download:#}"
    );
    assert_eq!(download["corrupt"], true, "{download:#}");
    assert!(
        all.iter()
            .any(|f| f.contains(&format!("download of {key} (client leg"))
                && f.contains("they differ at offset 102500")
                && f.contains("MISMATCH")),
        "{all:#?}"
    );
}

/// The file named `name` somewhere under `root`.
fn find_file(root: &Path, name: &str) -> Option<PathBuf> {
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in fs::read_dir(&dir).ok()?.flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if entry.file_name().to_string_lossy() == name {
                return Some(path);
            }
        }
    }
    None
}
