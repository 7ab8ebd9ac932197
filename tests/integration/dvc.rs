//! The real DVC pushing and pulling through `faultline run`, checked against the content addresses
//! of what the remote stored: reproduces the retry-corruption bug end to end.
//!
//! DVC comes from `tests/install-dvc.sh`, which the first test here runs (idempotent, a few seconds
//! once installed): one venv with dvc 3.67.1, dvc-http 2.32.0 and the current aiohttp 3.14.5, plus
//! an overlay holding aiohttp 3.14.3 alone, put first on PYTHONPATH for the buggy case. A venv
//! that cannot be installed fails every test here, everywhere: `make test` installs it, and a
//! test that skips in silence proves nothing.
//!
//! Each test has its own temp dir: `store/` (served by `faultline serve-store` on 127.0.0.1:0),
//! `repo/` (a `dvc init --no-scm` workspace with a 10-byte file, an exact 5 MiB file and a
//! 12,000,000-byte file, seeded), the capture, every command's output, and DVC's global, system
//! and site-cache dirs so nothing leaks into the user's. `faultline run SCENARIO --listen
//! 127.0.0.1:0 --upstream STORE` sits in between, and the remote is `http://PROXY`, so objects
//! travel as `/files/md5/XX/REST` and land at `store/files/md5/XX/REST`.
//!
//! Ground truth is the store itself: every object whose md5 differs from its path is corrupt, and
//! `faultline inspect --json` on the run's capture must reach the same verdict.
//! Every process is stopped by PID (SIGTERM, then SIGKILL if it hangs); every wait is bounded.
//! The temp dir is kept when a test fails, for a look at the store and the capture.

use std::cell::Cell;
use std::fmt;
use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use md5::{Digest, Md5};

use crate::support::daemon::{run_bounded, Daemon};
use crate::support::process::Finished;
use crate::support::random_bytes;
use crate::support::temp_dir::TempDir;

const BIN: &str = env!("CARGO_BIN_EXE_faultline");
const REPO: &str = env!("CARGO_MANIFEST_DIR");
/// Far above what one dvc command takes here (2–5 s): reaching it means a hang.
const DVC_LIMIT: Duration = Duration::from_secs(120);
/// A first install downloads ~100 wheels (about 3 minutes here).
const INSTALL_LIMIT: Duration = Duration::from_secs(20 * 60);
/// For faultline to print its address, or to exit after SIGTERM.
const PROCESS_LIMIT: Duration = Duration::from_secs(30);
/// dvc-http sends an upload as one chunk per 5 MiB read from the file.
const CHUNK: usize = 5 * 1024 * 1024;
/// aiohttp releases in the venv: the last one that re-sends a reset PUT from a half-consumed
/// body, and the current one, which reports the reset.
const BUGGY_AIOHTTP: &str = "3.14.3";
const CURRENT_AIOHTTP: &str = "3.14.5";

// ---------------------------------------------------------------------------------------------
// processes
// ---------------------------------------------------------------------------------------------

// ---------------------------------------------------------------------------------------------
// the venv
// ---------------------------------------------------------------------------------------------

/// The installed DVC: the venv's python, and the folder holding aiohttp 3.14.3 alone.
pub(crate) struct Venv {
    pub(crate) python: PathBuf,
    overlay: PathBuf,
}

/// Runs tests/install-dvc.sh once per test process; a failed install fails the test.
pub(crate) fn venv() -> Venv {
    static DVC: crate::support::venv::Tool = crate::support::venv::Tool::new(
        "install-dvc.sh",
        "FAULTLINE_DVC_VENV",
        "dvc-venv",
        "dvc is",
        INSTALL_LIMIT,
    );
    let dir = DVC.venv();
    Venv {
        python: dir.join("bin/python"),
        overlay: dir.join(format!("aiohttp-{BUGGY_AIOHTTP}")),
    }
}

// ---------------------------------------------------------------------------------------------
// the workspace and the store
// ---------------------------------------------------------------------------------------------

/// One file tracked by dvc: its name in the workspace, its bytes and their md5.
struct Payload {
    name: &'static str,
    bytes: Vec<u8>,
    md5: String,
}

fn md5_hex(bytes: &[u8]) -> String {
    hex::encode(Md5::digest(bytes))
}

/// A few bytes (below any fault's threshold), exactly one upload chunk, and two chunks and a bit.
fn payloads() -> Vec<Payload> {
    [
        ("small.txt", b"hello dvc\n".to_vec()),
        ("five.bin", random_bytes(CHUNK, 5)),
        ("twelve.bin", random_bytes(12_000_000, 12)),
    ]
    .into_iter()
    .map(|(name, bytes)| Payload {
        name,
        md5: md5_hex(&bytes),
        bytes,
    })
    .collect()
}

/// A content-addressed object (`…/files/md5/XX/REST`) found under a store or cache.
struct Object {
    path: PathBuf,
    /// XX + REST: what the content must hash to.
    address: String,
    actual: String,
    len: u64,
}

/// Every file under a folder, checked against its content address (the ground truth).
struct Audit {
    root: PathBuf,
    objects: Vec<Object>,
    /// Files outside the `files/md5/XX/REST` layout (none expected from dvc 3).
    others: Vec<PathBuf>,
}

impl Audit {
    fn of(root: &Path) -> Audit {
        let mut audit = Audit {
            root: root.to_path_buf(),
            objects: Vec::new(),
            others: Vec::new(),
        };
        let mut dirs = vec![root.to_path_buf()];
        while let Some(dir) = dirs.pop() {
            let Ok(entries) = fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.map(|e| e.expect("read a store entry")) {
                let path = entry.path();
                if entry.file_type().expect("file type").is_dir() {
                    dirs.push(path);
                } else if let Some(address) = content_address(&path) {
                    let bytes = fs::read(&path).expect("read a stored object");
                    audit.objects.push(Object {
                        path,
                        address,
                        actual: md5_hex(&bytes),
                        len: bytes.len() as u64,
                    });
                } else {
                    audit.others.push(path);
                }
            }
        }
        audit.objects.sort_by(|a, b| a.path.cmp(&b.path));
        audit
    }

    fn corrupt(&self) -> Vec<&Object> {
        self.objects
            .iter()
            .filter(|o| o.actual != o.address)
            .collect()
    }

    fn is_clean(&self) -> bool {
        self.corrupt().is_empty()
    }

    fn find(&self, md5: &str) -> Option<&Object> {
        self.objects.iter().find(|o| o.address == md5)
    }

    /// What became of `payload` here: intact, missing, or which part of it was kept.
    fn fate(&self, payload: &Payload) -> Fate {
        let Some(object) = self.find(&payload.md5) else {
            return Fate::Missing;
        };
        let stored = fs::read(&object.path).expect("read a stored object");
        if stored == payload.bytes {
            return Fate::Intact;
        }
        // The retry re-sends what is left of the body stream: one or more whole chunks were
        // read (and lost) before the reset reached aiohttp, possibly all of them.
        let len = payload.bytes.len();
        (1..=len.div_ceil(CHUNK))
            .map(|k| (k * CHUNK).min(len))
            .find(|&from| stored == payload.bytes[from..])
            .map_or(Fate::Other { len: stored.len() }, |from| Fate::Tail {
                from,
            })
    }
}

impl fmt::Display for Audit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}:", self.root.display())?;
        for o in &self.objects {
            let rel = o.path.strip_prefix(&self.root).unwrap_or(&o.path);
            let verdict = if o.actual == o.address {
                "ok".to_string()
            } else {
                format!("CORRUPT: content md5 {}", o.actual)
            };
            writeln!(f, "  {:<50} {:>9} bytes  {verdict}", rel.display(), o.len)?;
        }
        for p in &self.others {
            writeln!(f, "  {} (not content-addressed)", p.display())?;
        }
        if self.objects.is_empty() && self.others.is_empty() {
            writeln!(f, "  (empty)")?;
        }
        Ok(())
    }
}

/// The md5 a `…/files/md5/XX/REST` path names, if it is one.
fn content_address(path: &Path) -> Option<String> {
    let parts: Vec<&str> = path
        .iter()
        .rev()
        .take(4)
        .map(|p| p.to_str())
        .collect::<Option<_>>()?;
    let [rest, xx, "md5", "files"] = parts[..] else {
        return None;
    };
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    (hex(xx, 2) && hex(rest, 30)).then(|| format!("{xx}{rest}"))
}

/// What a store (or cache) holds for one payload.
#[derive(Debug, PartialEq)]
enum Fate {
    Intact,
    Missing,
    /// The payload from byte `from` on (empty when `from` is its length): the shifted retry.
    Tail {
        from: usize,
    },
    Other {
        len: usize,
    },
}

// ---------------------------------------------------------------------------------------------
// one test's world
// ---------------------------------------------------------------------------------------------

/// Which aiohttp dvc runs with.
#[derive(Clone, Copy, PartialEq)]
enum Aiohttp {
    /// 3.14.3: a reset PUT on a reused connection is re-sent from the half-consumed body.
    Buggy,
    /// 3.14.5: the reset is reported.
    Current,
}

/// A temp dir, a `faultline serve-store`, a dvc workspace, and the dvc commands run in it.
struct Lab {
    // Dropped first (fields drop in order): a store never outlives its folder.
    store: Option<Daemon>,
    tmp: TempDir,
    venv: Venv,
    aiohttp: Aiohttp,
    store_addr: SocketAddr,
    payloads: Vec<Payload>,
    commands: Cell<u32>,
}

impl Lab {
    /// Starts the store and makes a workspace with the payloads `dvc add`ed (no remote yet).
    fn new(label: &str, aiohttp: Aiohttp) -> Lab {
        let venv = venv();
        let tmp = TempDir::new(label);
        for dir in ["repo", "logs", "dvc-global", "dvc-system", "dvc-site-cache"] {
            fs::create_dir_all(tmp.path().join(dir)).expect("create a lab dir");
        }
        let mut store = Daemon::start(
            Command::new(BIN)
                .args(["serve-store", "--listen", "127.0.0.1:0", "--dir"])
                .arg(tmp.path().join("store")),
            &tmp.path().join("logs"),
            "serve-store",
        );
        let store_addr = store.faultline_address();
        let lab = Lab {
            tmp,
            venv,
            aiohttp,
            store: Some(store),
            store_addr,
            payloads: payloads(),
            commands: Cell::new(0),
        };
        let version = lab.python(&["-c", "import aiohttp; print(aiohttp.__version__)"]);
        let expected = match aiohttp {
            Aiohttp::Buggy => BUGGY_AIOHTTP,
            Aiohttp::Current => CURRENT_AIOHTTP,
        };
        assert_eq!(version.stdout.trim(), expected, "aiohttp seen by dvc");
        for p in &lab.payloads {
            fs::write(lab.repo().join(p.name), &p.bytes).expect("write a payload");
        }
        lab.ok(&["init", "--no-scm", "-q"]);
        let mut add = vec!["add", "-q"];
        add.extend(lab.payloads.iter().map(|p| p.name));
        lab.ok(&add);
        lab
    }

    fn repo(&self) -> PathBuf {
        self.tmp.path().join("repo")
    }

    fn store_dir(&self) -> PathBuf {
        self.tmp.path().join("store")
    }

    fn payload(&self, name: &str) -> &Payload {
        self.payloads
            .iter()
            .find(|p| p.name == name)
            .expect("a payload")
    }

    /// `faultline run SCENARIO` in front of the store (reverse mode) or alone (forward mode).
    fn proxy(&self, scenario: &str, forward: bool) -> Proxy {
        let n = self.next();
        let capture = self.tmp.path().join(format!("{scenario}-{n}.pcapng"));
        let mut command = Command::new(BIN);
        command
            .arg("run")
            .arg(
                Path::new(REPO)
                    .join("scenarios")
                    .join(format!("{scenario}.toml")),
            )
            .args(["--listen", "127.0.0.1:0"])
            .arg("--capture")
            .arg(&capture);
        if !forward {
            command.arg("--upstream").arg(self.store_addr.to_string());
        }
        let mut daemon = Daemon::start(
            &mut command,
            &self.tmp.path().join("logs"),
            &format!("{n}-faultline-{scenario}"),
        );
        let addr = daemon.faultline_address();
        println!(
            "faultline run {scenario}: listening on {addr}, capture {}",
            capture.display()
        );
        Proxy {
            daemon,
            addr,
            capture,
        }
    }

    fn next(&self) -> u32 {
        self.commands.set(self.commands.get() + 1);
        self.commands.get()
    }

    /// The venv's python in the workspace, with this lab's aiohttp and nothing from the user's
    /// environment that could divert or change it (proxies, PYTHONPATH, DVC config).
    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.venv.python);
        command.args(args).current_dir(self.repo());
        for var in [
            "HTTP_PROXY",
            "http_proxy",
            "HTTPS_PROXY",
            "https_proxy",
            "ALL_PROXY",
            "all_proxy",
            "NO_PROXY",
            "no_proxy",
            "PYTHONPATH",
            "PYTHONHOME",
            "VIRTUAL_ENV",
        ] {
            command.env_remove(var);
        }
        command
            .env("DVC_NO_ANALYTICS", "1")
            .env("DVC_GLOBAL_CONFIG_DIR", self.tmp.path().join("dvc-global"))
            .env("DVC_SYSTEM_CONFIG_DIR", self.tmp.path().join("dvc-system"))
            .env("DVC_SITE_CACHE_DIR", self.tmp.path().join("dvc-site-cache"))
            .env("PYTHONNOUSERSITE", "1");
        if self.aiohttp == Aiohttp::Buggy {
            command.env("PYTHONPATH", &self.venv.overlay);
        }
        command
    }

    fn python(&self, args: &[&str]) -> Finished {
        let n = self.next();
        run_bounded(
            &mut self.command(args),
            &self.tmp.path().join("logs"),
            &format!("{n}-python"),
            DVC_LIMIT,
        )
    }

    /// `dvc ARGS` (bounded, killed by PID on time-out), printed with its exit status and output.
    fn dvc(&self, args: &[&str], http_proxy: Option<SocketAddr>) -> Finished {
        let n = self.next();
        let mut command = self.command(&["-m", "dvc"]);
        command.args(args);
        let mut shown = String::new();
        if let Some(proxy) = http_proxy {
            command.env("HTTP_PROXY", format!("http://{proxy}"));
            shown = format!("HTTP_PROXY=http://{proxy} ");
        }
        let label = format!("{n}-dvc-{}", args.first().copied().unwrap_or("dvc"));
        let done = run_bounded(
            &mut command,
            &self.tmp.path().join("logs"),
            &label,
            DVC_LIMIT,
        );
        println!(
            "$ {shown}dvc {}\n  -> exit {:?}\n{}{}",
            args.join(" "),
            done.code(),
            indent("stdout", &done.stdout),
            indent("stderr", &done.stderr)
        );
        done
    }

    /// `dvc ARGS`, which must succeed.
    fn ok(&self, args: &[&str]) -> Finished {
        let done = self.dvc(args, None);
        assert!(
            done.status.success(),
            "dvc {} failed:\n{}",
            args.join(" "),
            done.output()
        );
        done
    }

    /// Points the default remote at `url`, uploading with `method`.
    fn remote(&self, url: &str, method: &str) {
        self.ok(&["remote", "add", "-d", "chaos", url]);
        if method != "POST" {
            self.ok(&["remote", "modify", "chaos", "method", method]);
        }
    }

    /// Forgets every local copy (cache and workspace files), so a pull must download them all.
    fn forget_local(&self) {
        fs::remove_dir_all(self.repo().join(".dvc/cache")).expect("remove the dvc cache");
        for p in &self.payloads {
            fs::remove_file(self.repo().join(p.name)).expect("remove a workspace file");
        }
    }

    fn audit_store(&self) -> Audit {
        let audit = Audit::of(&self.store_dir());
        println!("store audit: {audit}");
        audit
    }

    fn stop(mut self) {
        if let Some(store) = self.store.take() {
            let done = store.stop();
            assert!(
                done.status.success(),
                "serve-store exited with {}:\n{}",
                done.status,
                done.stderr
            );
        }
    }
}

fn indent(label: &str, text: &str) -> String {
    if text.trim().is_empty() {
        return String::new();
    }
    let mut out = format!("  {label}:\n");
    for line in text.lines() {
        out.push_str("    ");
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// A running `faultline run` and where its capture goes.
struct Proxy {
    daemon: Daemon,
    addr: SocketAddr,
    capture: PathBuf,
}

impl Proxy {
    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// SIGTERM; faultline must exit 0 and print its summary (shown); returns the capture.
    fn stop(self) -> PathBuf {
        let done = self.daemon.stop();
        println!("faultline summary:\n{}", indent("stdout", &done.stdout));
        assert!(
            done.status.success(),
            "faultline run exited with {} after SIGTERM:\n{}",
            done.status,
            done.output()
        );
        assert!(
            done.stdout.contains("connections:"),
            "no summary:\n{}",
            done.stdout
        );
        self.capture
    }
}

// ---------------------------------------------------------------------------------------------
// faultline inspect
// ---------------------------------------------------------------------------------------------

/// Checks `faultline inspect --json CAPTURE` against the ground truth, the store's `audit`: exit 0
/// and verdict "clean" when every stored object matches its address; otherwise exit 1, verdict
/// "corrupt", and for each corrupt object a finding that names its path and the md5 its stored
/// bytes hash to (what inspect saw on the wire is what the store kept).
fn check_inspect(lab: &Lab, capture: &Path, audit: &Audit) {
    let n = lab.next();
    let done = run_bounded(
        Command::new(BIN).args(["inspect", "--json"]).arg(capture),
        &lab.tmp.path().join("logs"),
        &format!("{n}-inspect"),
        PROCESS_LIMIT,
    );
    let report: serde_json::Value = serde_json::from_str(&done.stdout).unwrap_or_else(|e| {
        panic!(
            "faultline inspect --json {} (exit {:?}) printed no JSON ({e}):\n{}",
            capture.display(),
            done.code(),
            done.output()
        )
    });
    let verdict = report["verdict"].as_str().unwrap_or("?");
    let findings: Vec<&str> = report["findings"]
        .as_array()
        .map(|all| all.iter().filter_map(|f| f.as_str()).collect())
        .unwrap_or_default();
    println!(
        "$ faultline inspect --json {}\n  -> exit {:?}, verdict {verdict}: {}\n{}",
        capture.display(),
        done.code(),
        report["verdict_line"].as_str().unwrap_or("?"),
        indent("findings", &findings.join("\n"))
    );
    // A download the fault cut is counted where the downloads are: "N downloads checked
    // (M incomplete)".
    // Counted once per object whichever legs show it, as the verdict counts them.
    let incomplete = report["objects"].as_array().map_or(0, |all| {
        let mut keys: Vec<String> = all
            .iter()
            .filter(|o| o["transfer"] == "download" && o["complete"] == false)
            .filter(|o| o["check"]["result"] != "not_checked")
            .map(|o| format!("{} {}", o["address"]["key"], o["address"]["digest"]))
            .collect();
        keys.sort();
        keys.dedup();
        keys.len()
    });
    if incomplete > 0 {
        let line = report["verdict_line"].as_str().unwrap_or("?");
        assert!(
            line.contains(&format!("({incomplete} incomplete)")),
            "{incomplete} incomplete downloads, verdict line: {line}"
        );
    }
    let (code, expected) = if audit.is_clean() {
        (0, "clean")
    } else {
        (1, "corrupt")
    };
    assert_eq!(
        (done.code(), verdict),
        (Some(code), expected),
        "faultline inspect disagrees with the store:\n{audit}\ninspect said:\n{}",
        done.output()
    );
    for object in audit.corrupt() {
        let target = format!(
            "/files/md5/{}/{}",
            &object.address[..2],
            &object.address[2..]
        );
        assert!(
            findings
                .iter()
                .any(|f| f.contains(&target) && f.contains(&object.actual)),
            "no finding names {target} with the stored bytes' md5 {}:\n{}",
            object.actual,
            findings.join("\n")
        );
    }
}

// ---------------------------------------------------------------------------------------------
// the cases
// ---------------------------------------------------------------------------------------------

/// Default POST uploads, each answered 500 on its first attempt: dvc-http does not retry uploads,
/// so the push fails and nothing corrupt is stored; the second push goes through.
#[test]
fn post_answered_500_fails_the_push_and_stores_nothing_corrupt() {
    let lab = Lab::new("post-500", Aiohttp::Current);
    let proxy = lab.proxy("dvc-first-attempt-500", false);
    lab.remote(&proxy.url(), "POST");

    let push = lab.dvc(&["push"], None);
    assert_ne!(push.code(), Some(0), "a push answered 500 must fail");
    assert!(
        push.stderr.contains("500"),
        "dvc names the 500:\n{}",
        push.stderr
    );
    let audit = lab.audit_store();
    assert!(
        audit.is_clean(),
        "a failed push stored corrupt objects:\n{audit}"
    );

    let again = lab.dvc(&["push"], None);
    assert_eq!(again.code(), Some(0), "the second attempts are not faulted");
    let audit = lab.audit_store();
    assert!(audit.is_clean(), "{audit}");
    for p in &lab.payloads {
        assert_eq!(
            audit.fate(p),
            Fate::Intact,
            "{} after the second push",
            p.name
        );
    }
    let capture = proxy.stop();
    check_inspect(&lab, &capture, &audit);
    lab.stop();
}

/// The bug: PUT uploads with aiohttp 3.14.3, the first attempt of each reset after 1 MiB of body.
/// aiohttp re-sends the PUT on a fresh connection from the body stream dvc already read from, so
/// the store gets the 5 MiB file as 0 bytes and the 12 MB file without its first chunk(s), and
/// `dvc push` says all went well. A second push sees nothing to do, and a pull writes the corrupt
/// bytes into the workspace.
#[test]
fn put_reset_with_aiohttp_3_14_3_stores_corrupt_objects_and_push_succeeds() {
    let lab = Lab::new("put-reset-buggy", Aiohttp::Buggy);
    let proxy = lab.proxy("dvc-put-reset-mid-body", false);
    lab.remote(&proxy.url(), "PUT");

    let push = lab.dvc(&["push"], None);
    assert_eq!(
        push.code(),
        Some(0),
        "aiohttp 3.14.3 hides the reset from dvc"
    );
    assert!(
        push.output().contains("3 files pushed"),
        "{}",
        push.output()
    );
    let audit = lab.audit_store();
    assert!(
        !audit.is_clean(),
        "the silent retry must have stored corrupt objects:\n{audit}"
    );
    let small = lab.payload("small.txt");
    let five = lab.payload("five.bin");
    let twelve = lab.payload("twelve.bin");
    assert_eq!(audit.fate(small), Fate::Intact, "below the 1 MiB trigger");
    assert_eq!(
        audit.fate(five),
        Fate::Tail { from: CHUNK },
        "stored as 0 bytes"
    );
    // Which chunk the retry starts from depends on how much aiohttp had written into socket
    // buffers when the reset reached it: 5 MiB or 10 MiB here, even all 12 MB (0 bytes stored).
    match audit.fate(twelve) {
        Fate::Tail { from } => println!(
            "twelve.bin stored as its bytes {from}..{} ({} bytes): shifted by {} chunk(s)",
            twelve.bytes.len(),
            twelve.bytes.len() - from,
            from / CHUNK
        ),
        other => panic!("twelve.bin should be stored as a tail at a chunk boundary, got {other:?}"),
    }

    let again = lab.dvc(&["push"], None);
    assert_eq!(again.code(), Some(0));
    assert!(
        again.output().contains("Everything is up to date"),
        "dvc trusts the corrupt remote:\n{}",
        again.output()
    );

    lab.forget_local();
    let pull = lab.dvc(&["pull"], None);
    assert_eq!(
        pull.code(),
        Some(0),
        "dvc pull does not verify what it downloads"
    );
    let pulled = fs::read(lab.repo().join("five.bin")).expect("five.bin pulled");
    assert!(
        pulled.is_empty(),
        "the workspace's five.bin is the remote's 0-byte object"
    );
    let cache = Audit::of(&lab.repo().join(".dvc/cache"));
    println!("cache audit after the pull: {cache}");
    assert!(!cache.is_clean(), "the corrupt objects reached the cache");

    let capture = proxy.stop();
    check_inspect(&lab, &capture, &audit);
    lab.stop();
}

/// The same reset with the current aiohttp: the error reaches dvc, the push fails, nothing
/// corrupt is stored, and the second push (unfaulted second attempts) stores everything intact.
#[test]
fn put_reset_with_current_aiohttp_fails_the_push_and_stores_nothing_corrupt() {
    let lab = Lab::new("put-reset-current", Aiohttp::Current);
    let proxy = lab.proxy("dvc-put-reset-mid-body", false);
    lab.remote(&proxy.url(), "PUT");

    let push = lab.dvc(&["push"], None);
    assert_ne!(
        push.code(),
        Some(0),
        "aiohttp {CURRENT_AIOHTTP} reports the reset"
    );
    assert!(push.stderr.contains("failed to upload"), "{}", push.stderr);
    let audit = lab.audit_store();
    assert!(
        audit.is_clean(),
        "a failed push stored corrupt objects:\n{audit}"
    );
    assert_eq!(audit.fate(lab.payload("five.bin")), Fate::Missing);
    assert_eq!(audit.fate(lab.payload("twelve.bin")), Fate::Missing);

    let again = lab.dvc(&["push"], None);
    assert_eq!(again.code(), Some(0), "the second attempts are not faulted");
    let audit = lab.audit_store();
    for p in &lab.payloads {
        assert_eq!(
            audit.fate(p),
            Fate::Intact,
            "{} after the second push",
            p.name
        );
    }
    let capture = proxy.stop();
    check_inspect(&lab, &capture, &audit);
    lab.stop();
}

/// Downloads cut short (FIN after 1 MiB of a longer Content-Length): dvc pull fails and writes
/// no short file into the workspace or its cache.
#[test]
fn pull_of_truncated_downloads_fails_and_keeps_no_short_file() {
    let lab = Lab::new("pull-truncated", Aiohttp::Current);
    let proxy = lab.proxy("dvc-pull-truncated", false);
    lab.remote(&proxy.url(), "POST");
    lab.ok(&["push"]); // uploads are not faulted by this scenario
    let audit = lab.audit_store();
    for p in &lab.payloads {
        assert_eq!(audit.fate(p), Fate::Intact, "{} after the push", p.name);
    }

    lab.forget_local();
    let pull = lab.dvc(&["pull"], None);
    assert_ne!(
        pull.code(),
        Some(0),
        "a truncated download must fail the pull"
    );
    assert!(
        pull.stderr.contains("failed to download"),
        "{}",
        pull.stderr
    );
    for p in &lab.payloads {
        match fs::read(lab.repo().join(p.name)) {
            Ok(bytes) => assert!(bytes == p.bytes, "{} pulled with wrong bytes", p.name),
            Err(_) => println!("{}: not in the workspace after the failed pull", p.name),
        }
    }
    let cache = Audit::of(&lab.repo().join(".dvc/cache"));
    println!("cache audit after the pull: {cache}");
    assert!(
        cache.is_clean(),
        "a short download reached the cache:\n{cache}"
    );

    let capture = proxy.stop();
    check_inspect(&lab, &capture, &lab.audit_store());
    lab.stop();
}

/// Wrapping an existing remote without changing its URL: faultline as HTTP_PROXY (forward mode)
/// in front of a remote with a path prefix reproduces the same corruption.
#[test]
fn forward_proxy_put_reset_with_aiohttp_3_14_3_stores_corrupt_objects() {
    let lab = Lab::new("forward-put-reset", Aiohttp::Buggy);
    let proxy = lab.proxy("dvc-forward-put-reset", true);
    lab.remote(&format!("http://{}/dvc-remote", lab.store_addr), "PUT");

    let push = lab.dvc(&["push"], Some(proxy.addr));
    assert_eq!(
        push.code(),
        Some(0),
        "aiohttp 3.14.3 hides the reset from dvc"
    );
    let audit = lab.audit_store();
    assert_eq!(
        audit.fate(lab.payload("five.bin")),
        Fate::Tail { from: CHUNK }
    );
    assert!(!audit.is_clean(), "{audit}");
    assert!(
        audit
            .objects
            .iter()
            .all(|o| o.path.starts_with(lab.store_dir().join("dvc-remote"))),
        "objects land under the remote's prefix:\n{audit}"
    );
    let capture = proxy.stop();
    check_inspect(&lab, &capture, &audit);
    lab.stop();
}
