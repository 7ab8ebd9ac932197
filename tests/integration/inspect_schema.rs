//! The documented `--json` schema (`faultline inspect --help`) held against the real output of
//! `faultline inspect --json` on real captures: `faultline run` in front of `faultline serve-store`,
//! real curl uploads and downloads, clean and corrupt runs, a capture cut short, forward mode.
//! Every object must carry exactly its documented fields with their documented types.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use faultline::inspect::schema;
use md5::{Digest, Md5};
use sha2::Sha256;

use crate::support::daemon::{run_bounded, Daemon, FAULTLINE};
use crate::support::random_bytes;
use crate::support::temp_dir::TempDir;

const REPO: &str = env!("CARGO_MANIFEST_DIR");
const LIMIT: Duration = Duration::from_secs(60);

struct World {
    tmp: TempDir,
    store: Option<Daemon>,
    store_addr: std::net::SocketAddr,
    n: std::cell::Cell<u32>,
}

impl World {
    fn new() -> World {
        let tmp = TempDir::new("inspect-schema");
        fs::create_dir_all(tmp.path().join("logs")).expect("logs dir");
        let mut store = Daemon::start(
            Command::new(FAULTLINE)
                .args(["serve-store", "--listen", "127.0.0.1:0", "--dir"])
                .arg(tmp.path().join("store")),
            &tmp.path().join("logs"),
            "serve-store",
        );
        let store_addr = store.faultline_address();
        World {
            tmp,
            store: Some(store),
            store_addr,
            n: std::cell::Cell::new(0),
        }
    }

    fn logs(&self) -> PathBuf {
        self.tmp.path().join("logs")
    }

    fn label(&self, what: &str) -> String {
        self.n.set(self.n.get() + 1);
        format!("{}-{what}", self.n.get())
    }

    /// `faultline run scenarios/NAME.toml`, reverse (in front of the store) or forward.
    fn proxy(&self, scenario: &str, forward: bool) -> (Daemon, std::net::SocketAddr, PathBuf) {
        let capture = self.tmp.path().join(format!("{scenario}.pcapng"));
        let mut command = Command::new(FAULTLINE);
        command
            .arg("run")
            .arg(Path::new(REPO).join(format!("scenarios/{scenario}.toml")))
            .args(["--listen", "127.0.0.1:0", "--capture"])
            .arg(&capture);
        if !forward {
            command.arg("--upstream").arg(self.store_addr.to_string());
        }
        let mut daemon = Daemon::start(&mut command, &self.logs(), &self.label(scenario));
        let addr = daemon.faultline_address();
        (daemon, addr, capture)
    }

    /// curl with `args`; returns the HTTP status it printed (000 when the transfer failed).
    fn curl(&self, args: &[&str]) -> String {
        let done = run_bounded(
            Command::new("curl")
                .args([
                    "-sS",
                    "-o",
                    "/dev/null",
                    "-w",
                    "%{http_code}",
                    "-H",
                    "Expect:",
                ])
                .args(args)
                .env_remove("http_proxy")
                .env_remove("HTTP_PROXY"),
            &self.logs(),
            &self.label("curl"),
            LIMIT,
        );
        done.stdout.trim().to_string()
    }

    fn put(&self, url: &str, body: &[u8], proxy: Option<std::net::SocketAddr>) -> String {
        let file = self.tmp.path().join(self.label("body"));
        fs::write(&file, body).expect("write a body");
        let data = format!("@{}", file.display());
        let mut args = vec!["-X", "PUT", "--data-binary", &data, url];
        let via;
        if let Some(p) = proxy {
            via = format!("http://{p}");
            args.extend(["-x", &via]);
        }
        self.curl(&args)
    }

    /// `faultline inspect --json CAPTURE`: the JSON and the exit code.
    fn inspect(&self, capture: &Path) -> (serde_json::Value, Option<i32>) {
        let done = run_bounded(
            Command::new(FAULTLINE)
                .args(["inspect", "--json"])
                .arg(capture),
            &self.logs(),
            &self.label("inspect"),
            LIMIT,
        );
        let json = serde_json::from_str(&done.stdout).unwrap_or_else(|e| {
            panic!("no JSON from inspect ({e}):\n{}", done.output());
        });
        (json, done.code())
    }
}

impl Drop for World {
    fn drop(&mut self) {
        if let Some(store) = self.store.take() {
            store.stop();
        }
    }
}

fn md5_path(body: &[u8]) -> String {
    let hex = hex::encode(Md5::digest(body));
    format!("/files/md5/{}/{}", &hex[..2], &hex[2..])
}

fn annex_path(size: usize, body: &[u8]) -> String {
    format!(
        "/annex/SHA256E-s{size}--{}.bin",
        hex::encode(Sha256::digest(body))
    )
}

fn stop(daemon: Daemon) {
    let done = daemon.stop();
    assert!(done.status.success(), "faultline run: {}", done.output());
}

#[test]
fn json_output_of_real_captures_follows_the_documented_schema() {
    let w = World::new();
    let mut outputs = Vec::new();

    // clean: attempt 1 of each upload answered 500 by faultline, attempt 2 stored; a download.
    let (proxy, addr, capture) = w.proxy("http-first-attempt-fails", false);
    let body = random_bytes(100_000, 1);
    let url = format!("http://{addr}{}", md5_path(&body));
    assert_eq!(w.put(&url, &body, None), "500");
    assert_eq!(w.put(&url, &body, None), "201");
    assert_eq!(w.curl(&[&url]), "200");
    stop(proxy);
    outputs.push(("clean", w.inspect(&capture), 0));

    // corrupt: bodies that do not match the md5 path or the git-annex key's size.
    let (proxy, addr, capture) = w.proxy("http-first-attempt-fails", false);
    let other = random_bytes(5_000, 3);
    let url = format!("http://{addr}{}", md5_path(&random_bytes(5_000, 2)));
    assert_eq!(w.put(&url, &other, None), "500");
    assert_eq!(w.put(&url, &other, None), "201");
    let url = format!("http://{addr}{}", annex_path(4_000, &other));
    w.put(&url, &other, None);
    assert_eq!(w.put(&url, &other, None), "201");
    // retries that send other bytes than the refused attempt 1: a slice, nothing, a prefix
    // (each its own upload: a write after an accepted one is a new write, not a retry).
    for (i, retry) in [&other[1000..], &[][..], &other[..100]]
        .into_iter()
        .enumerate()
    {
        let url = format!("http://{addr}/upload/x{i}.bin");
        assert_eq!(w.put(&url, &other, None), "500");
        assert!(w.put(&url, retry, None).starts_with('2'), "retries are 2xx");
    }
    stop(proxy);
    outputs.push(("corrupt", w.inspect(&capture), 1));

    // cut: an upload reset half-way, retried; then the capture loses its last bytes: reading
    // stops at the cut block, so whatever followed it is missing (INCONCLUSIVE, exit 3).
    let (proxy, addr, capture) = w.proxy("http-reset-mid-upload", false);
    let body = random_bytes(200_000, 4);
    let url = format!("http://{addr}{}", md5_path(&body));
    assert_eq!(w.put(&url, &body, None), "000", "reset");
    assert_eq!(w.put(&url, &body, None), "201");
    stop(proxy);
    let bytes = fs::read(&capture).expect("capture");
    let cut = capture.with_file_name("cut.pcapng");
    fs::write(&cut, &bytes[..bytes.len() - 7]).expect("write the cut capture");
    outputs.push(("cut", w.inspect(&cut), 3));

    // forward mode: curl with faultline as its HTTP proxy.
    let (proxy, addr, capture) = w.proxy("http-forward-proxy", true);
    let body = random_bytes(70_000, 5);
    let url = format!("http://{}{}", w.store_addr, md5_path(&body));
    assert_eq!(w.put(&url, &body, Some(addr)), "201");
    stop(proxy);
    outputs.push(("forward", w.inspect(&capture), 0));

    let mut seen = BTreeSet::new();
    for (name, (json, code), expected) in &outputs {
        let problems = schema::violations(json, &mut seen);
        assert!(
            problems.is_empty(),
            "{name}: --json departs from the documented schema:\n{}\n{json:#}",
            problems.join("\n")
        );
        assert_eq!(code, &Some(*expected), "{name}: {}", json["verdict_line"]);
    }
    assert!(outputs[2].1 .0["capture"]["damage"].is_string());
    let unexercised: Vec<String> = schema::paths().difference(&seen).cloned().collect();
    println!("schema paths no capture here exercised: {unexercised:#?}");
    for must in [
        "exchanges[].request.cut_by",
        "attempt_groups[].attempts[].comparison<identical>",
        "content_checks[].check<digest_mismatch>.actual",
        "content_checks[].check<size_mismatch>.actual",
        "content_checks[].check<matches>",
        "leg_comparisons[].differences",
        "leg_comparisons[].difference_details[].client_exchange",
        "leg_comparisons[].difference_details[].upstream_exchange",
        "attempt_groups[].attempts[].comparison<differs>.shifted_from",
        "attempt_groups[].attempts[].comparison<empty>.first_len",
        "attempt_groups[].attempts[].comparison<prefix_of_first>.len",
        "exchanges[].faults[].scope",
    ] {
        assert!(
            seen.contains(must),
            "{must} never appeared; seen: {seen:#?}"
        );
    }
}
