//! boto3 and the AWS CLI through `faultline run` against a real S3 API (moto's server): uploads
//! reset on attempt 1 and rewound by botocore, multipart objects assembled from their acknowledged
//! parts, throttling, cut downloads, a Complete whose answer is lost, forward mode (HTTP_PROXY),
//! each flexible checksum algorithm;
//! each verified by reading the objects back from moto directly (ground truth) and by `faultline
//! inspect --json` (S3 checks, objects, attempts) and `--expect MANIFEST` (the audit) on the run's
//! capture.
//!
//! moto 5.2.5 (`moto_server`), boto3 1.44.8, the AWS CLI 1.46.3 and awscrt 0.38.0 (botocore's
//! CRC32C, CRC64NVME and XXHASH*; off, by BOTO_DISABLE_CRT, unless a test asks for it) come from
//! `tests/install-s3.sh`, which the first test here runs (idempotent, a second once installed);
//! when it fails, every test here fails. Each test has its own temp dir (HOME, AWS config files
//! that do not exist, the files uploaded, the capture and every command's output in `logs/`).
//! moto and faultline listen on 127.0.0.1:0 and print the port they got; every process is stopped
//! by PID.

use std::collections::BTreeSet;
use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use faultline::inspect::schema;
use md5::{Digest, Md5};
use sha2::Sha256;

use crate::support::daemon::{run_bounded, Daemon, FAULTLINE};
use crate::support::process::Finished;
use crate::support::random_bytes;
use crate::support::temp_dir::TempDir;
use crate::support::tshark;
use crate::support::venv::Tool;
use crate::tls::UpstreamPki;

const REPO: &str = env!("CARGO_MANIFEST_DIR");
/// Far above what one client command takes here (a few seconds): reaching it means a hang.
const COMMAND_LIMIT: Duration = Duration::from_secs(120);
/// A first install downloads 65 wheels (moto[server] brings cfn-lint, sympy, …).
const INSTALL_LIMIT: Duration = Duration::from_secs(15 * 60);
/// 5 MiB parts (S3's minimum) for boto3's upload_file: three parts, the last one short.
const MULTIPART: usize = 11_000_000;
const MIB: usize = 1024 * 1024;

/// faultline's S3 test client: boto3 against `S3_ENDPOINT`, operations given as
/// `OP BUCKET KEY PATH` groups, one JSON line printed per operation. `nowind`: a presigned
/// put_object sent by `requests` (no Content-MD5, no checksum), retried up to 3 times without
/// rewinding the file, as a buggy client does. `skipget`: a get_object read until it is cut,
/// then resumed 4,096 bytes past what arrived (`Range: bytes=N+4096-`), as a buggy client does.
/// `put-ALGO`: put_object with
/// `ChecksumAlgorithm=ALGO`; `stale-ALGO`: put_object with the ALGO checksum of other bytes (the
/// file's last byte flipped: a file that changed after its checksum was taken); `tryput`: a
/// put_object with 2 attempts at most whose failure is printed, not raised.
const CLIENT: &str = r#"
import base64, hashlib, json, os, sys, zlib
import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config

MIB = 1024 * 1024
s3 = boto3.client("s3", endpoint_url=os.environ["S3_ENDPOINT"])
parts = TransferConfig(multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB, max_concurrency=1)

def checksum(algo, data):
    if algo == "CRC32":
        return zlib.crc32(data).to_bytes(4, "big")
    if algo in ("CRC32C", "CRC64NVME"):
        from awscrt import checksums
        if algo == "CRC32C":
            return checksums.crc32c(data).to_bytes(4, "big")
        return checksums.crc64nvme(data).to_bytes(8, "big")
    if algo.startswith("XXHASH"):
        from awscrt.checksums import XXHash
        new = {"XXHASH64": XXHash.new_xxhash64, "XXHASH3": XXHash.new_xxhash3_64,
               "XXHASH128": XXHash.new_xxhash3_128}[algo]
        h = new()
        h.update(data)
        return h.finalize()
    return hashlib.new(algo.lower(), data).digest()

args = sys.argv[1:]
while args:
    op, bucket, key, path = args[:4]
    args = args[4:]
    meta = {}
    error = None
    if op == "mb":
        meta = s3.create_bucket(Bucket=bucket)
    elif op == "put":
        with open(path, "rb") as f:
            meta = s3.put_object(Bucket=bucket, Key=key, Body=f.read())
    elif op.startswith("put-"):
        with open(path, "rb") as f:
            meta = s3.put_object(Bucket=bucket, Key=key, Body=f.read(), ChecksumAlgorithm=op[4:])
    elif op.startswith("stale-"):
        algo = op[6:]
        with open(path, "rb") as f:
            data = f.read()
        other = data[:-1] + bytes([data[-1] ^ 0xFF])
        claimed = base64.b64encode(checksum(algo, other)).decode()
        meta = s3.put_object(Bucket=bucket, Key=key, Body=data, **{"Checksum" + algo: claimed})
    elif op == "tryput":
        once = boto3.client("s3", endpoint_url=os.environ["S3_ENDPOINT"],
                            config=Config(retries={"total_max_attempts": 2}))
        with open(path, "rb") as f:
            try:
                meta = once.put_object(Bucket=bucket, Key=key, Body=f.read())
            except Exception as e:
                error = f"{type(e).__name__}: {e}"
    elif op == "nowind":
        import requests
        url = s3.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=600)
        with open(path, "rb") as f:
            for attempt in range(3):
                try:
                    answer = requests.put(url, data=f, timeout=60)
                    meta = {"ETag": answer.headers.get("ETag"), "ResponseMetadata": {"RetryAttempts": attempt}}
                    break
                except Exception as e:
                    error = f"{type(e).__name__}: {e}"
    elif op == "skipget":
        data = bytearray()
        for attempt in range(3):
            ranged = {"Range": "bytes=%d-" % (len(data) + 4096)} if data else {}
            answer = s3.get_object(Bucket=bucket, Key=key, **ranged)
            raw = answer["Body"]._raw_stream
            try:
                while True:
                    block = raw.read(MIB)
                    if not block:
                        break
                    data += block
            except Exception as e:
                error = f"{type(e).__name__}: {e}"
            if attempt > 0 or len(data) >= answer["ContentLength"]:
                break
        with open(path, "wb") as f:
            f.write(data)
        meta = {"ContentLength": len(data)}
    elif op == "upload":
        s3.upload_file(path, bucket, key, Config=parts)
    elif op == "get":
        answer = s3.get_object(Bucket=bucket, Key=key)
        with open(path, "wb") as f:
            f.write(answer["Body"].read())
        meta = answer
    elif op == "download":
        s3.download_file(bucket, key, path, Config=parts)
    elif op == "head":
        meta = s3.head_object(Bucket=bucket, Key=key)
    else:
        sys.exit("unknown operation " + op)
    print(json.dumps({
        "op": op,
        "key": key,
        "retries": meta.get("ResponseMetadata", {}).get("RetryAttempts"),
        "etag": meta.get("ETag"),
        "length": meta.get("ContentLength"),
        "checksums": {k[8:]: v for k, v in meta.items() if k.startswith("Checksum") and k != "ChecksumType"},
        "error": error,
    }), flush=True)
"#;

/// `<venv>/bin`, holding moto_server, aws and the python that imports boto3; installs them on
/// first use, and fails the test (never skips it) when that is not possible.
fn tools() -> PathBuf {
    static S3: Tool = Tool::new(
        "install-s3.sh",
        "FAULTLINE_S3_VENV",
        "s3-venv",
        "moto, boto3 and the AWS CLI are",
        INSTALL_LIMIT,
    );
    S3.venv().join("bin")
}

/// One test's files, servers and commands.
struct Lab {
    tmp: TempDir,
    bin: PathBuf,
    n: std::cell::Cell<u32>,
    /// Whether botocore may use awscrt (BOTO_DISABLE_CRT unset): only for CRC32C, CRC64NVME and
    /// XXHASH*, which botocore computes only through it; every other run is pure-Python botocore.
    crt: bool,
}

/// A running `faultline run` and where its capture goes.
struct Proxy {
    daemon: Daemon,
    addr: SocketAddr,
    capture: PathBuf,
}

impl Lab {
    fn new(label: &str) -> Lab {
        let bin = tools();
        let tmp = TempDir::new(label);
        for dir in ["home", "logs", "files"] {
            fs::create_dir_all(tmp.path().join(dir)).expect("create a lab dir");
        }
        fs::write(tmp.path().join("client.py"), CLIENT).expect("write the client");
        Lab {
            tmp,
            bin,
            n: std::cell::Cell::new(0),
            crt: false,
        }
    }

    /// A lab whose boto3 and moto use awscrt.
    fn with_crt(label: &str) -> Lab {
        Lab {
            crt: true,
            ..Lab::new(label)
        }
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

    /// A file of `len` seeded bytes under `files/`.
    fn file(&self, name: &str, len: usize, seed: u64) -> (PathBuf, Vec<u8>) {
        let bytes = random_bytes(len, seed);
        let path = self.dir("files").join(name);
        fs::write(&path, &bytes).expect("write a file to upload");
        (path, bytes)
    }

    /// `program ARGS` with the venv first on PATH, HOME in the lab, test credentials, no AWS
    /// configuration, botocore without awscrt unless the lab is [`Lab::with_crt`], and no proxy
    /// unless `proxy` is given (then HTTP_PROXY/http_proxy).
    fn command(&self, program: &str, args: &[&str], proxy: Option<SocketAddr>) -> Command {
        let path = format!(
            "{}:{}",
            self.bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut command = Command::new(program);
        command.args(args).current_dir(self.tmp.path());
        for var in [
            "HTTP_PROXY",
            "http_proxy",
            "HTTPS_PROXY",
            "https_proxy",
            "ALL_PROXY",
            "all_proxy",
            "NO_PROXY",
            "no_proxy",
            "AWS_PROFILE",
            "AWS_ENDPOINT_URL",
            "AWS_SESSION_TOKEN",
            "BOTO_DISABLE_CRT",
        ] {
            command.env_remove(var);
        }
        if !self.crt {
            command.env("BOTO_DISABLE_CRT", "true");
        }
        command
            .env("PATH", path)
            .env("HOME", self.dir("home"))
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env("AWS_CONFIG_FILE", self.dir("home/no-aws-config"))
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                self.dir("home/no-aws-credentials"),
            )
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_PAGER", "");
        if let Some(proxy) = proxy {
            let url = format!("http://{proxy}");
            command.env("HTTP_PROXY", &url).env("http_proxy", &url);
        }
        command
    }

    /// Runs a command to its end (bounded), printing it with its exit status and output.
    fn run(&self, program: &str, args: &[&str], proxy: Option<SocketAddr>) -> Finished {
        let label = self.label(&format!("{program}-{}", args.join("-")));
        let done = run_bounded(
            &mut self.command(program, args, proxy),
            &self.logs(),
            &label,
            COMMAND_LIMIT,
        );
        println!(
            "$ {program} {}\n  -> exit {:?}\n{}",
            args.join(" "),
            done.code(),
            indent(&done.output())
        );
        done
    }

    /// boto3 operations (see [`CLIENT`]) against `endpoint`; they must succeed. Returns one JSON
    /// value per operation.
    fn boto3(&self, endpoint: SocketAddr, ops: &[[&str; 4]]) -> Vec<serde_json::Value> {
        self.boto3_at(&format!("http://{endpoint}"), None, ops)
    }

    /// [`Lab::boto3`] against an endpoint URL, trusting `ca` (a PEM file) when given.
    fn boto3_at(
        &self,
        endpoint: &str,
        ca: Option<&Path>,
        ops: &[[&str; 4]],
    ) -> Vec<serde_json::Value> {
        self.boto3_via(endpoint, ca, None, ops)
    }

    /// [`Lab::boto3_at`] with `https_proxy` as HTTPS_PROXY/https_proxy when given: botocore then
    /// reaches an `https://` endpoint through a CONNECT tunnel, as a user's shell would send it.
    fn boto3_via(
        &self,
        endpoint: &str,
        ca: Option<&Path>,
        https_proxy: Option<SocketAddr>,
        ops: &[[&str; 4]],
    ) -> Vec<serde_json::Value> {
        let script = self.dir("client.py");
        let mut args = vec![script.to_str().expect("utf-8 path")];
        for op in ops {
            args.extend_from_slice(op);
        }
        let mut command = self.command("python", &args, None);
        command.env("S3_ENDPOINT", endpoint);
        if let Some(proxy) = https_proxy {
            let url = format!("http://{proxy}");
            command.env("HTTPS_PROXY", &url).env("https_proxy", &url);
        }
        // Trust comes the way `faultline ca init` tells users: the AWS_CA_BUNDLE variable.
        match ca {
            Some(ca) => command.env("AWS_CA_BUNDLE", ca),
            None => command.env_remove("AWS_CA_BUNDLE"),
        };
        let label = self.label(&format!("boto3-{}", ops[0][0]));
        let done = run_bounded(&mut command, &self.logs(), &label, COMMAND_LIMIT);
        println!(
            "$ boto3 {ops:?} via {endpoint}\n  -> exit {:?}\n{}",
            done.code(),
            indent(&done.output())
        );
        assert!(done.status.success(), "boto3 failed:\n{}", done.output());
        done.stdout
            .lines()
            .map(|l| serde_json::from_str(l).expect("a JSON line"))
            .collect()
    }

    /// `moto_server` on 127.0.0.1, port 0: the port it bound is read from its output.
    fn moto(&self) -> (Daemon, SocketAddr) {
        self.moto_with(&[])
    }

    /// `moto_server` with extra arguments (`-s`: HTTPS with a certificate it makes up).
    fn moto_with(&self, extra: &[&str]) -> (Daemon, SocketAddr) {
        let mut args = vec!["-H", "127.0.0.1", "-p", "0"];
        args.extend_from_slice(extra);
        let mut daemon = Daemon::start(
            &mut self.command("moto_server", &args, None),
            &self.logs(),
            &self.label("moto"),
        );
        let text = daemon.wait_printed("://127.0.0.1:");
        let port = text
            .split("://127.0.0.1:")
            .nth(1)
            .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|p| p.parse::<u16>().ok())
            .unwrap_or_else(|| panic!("moto printed no port:\n{text}"));
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("address");
        daemon.wait_accepting(addr);
        (daemon, addr)
    }

    /// `faultline run SCENARIO --listen 127.0.0.1:0 [--upstream MOTO] --capture …`.
    fn proxy(&self, scenario: &Path, upstream: Option<SocketAddr>) -> Proxy {
        let stem = scenario
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let capture = self.tmp.path().join(format!("{stem}.pcapng"));
        let mut command = Command::new(FAULTLINE);
        command
            .env("FAULTLINE_CA_DIR", self.dir("ca"))
            .arg("run")
            .arg(scenario)
            .args(["--listen", "127.0.0.1:0", "--capture"])
            .arg(&capture);
        if let Some(up) = upstream {
            command.arg("--upstream").arg(up.to_string());
        }
        let mut daemon = Daemon::start(
            &mut command,
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

    /// `faultline inspect --json [--expect MANIFEST] CAPTURE` and the text report: the JSON (schema
    /// checked), the exit code and the text.
    fn inspect(
        &self,
        capture: &Path,
        manifest: Option<&Path>,
    ) -> (serde_json::Value, Option<i32>, String) {
        let mut args: Vec<&str> = vec!["inspect"];
        if let Some(m) = manifest {
            args.extend(["--expect", m.to_str().expect("utf-8 path")]);
        }
        let capture = capture.to_str().expect("utf-8 path");
        let json_run = run_bounded(
            Command::new(FAULTLINE)
                .args(&args)
                .args(["--json", capture]),
            &self.logs(),
            &self.label("inspect-json"),
            COMMAND_LIMIT,
        );
        let json: serde_json::Value = serde_json::from_str(&json_run.stdout).unwrap_or_else(|e| {
            panic!("inspect printed no JSON ({e}):\n{}", json_run.output());
        });
        let text = run_bounded(
            Command::new(FAULTLINE).args(&args).arg(capture),
            &self.logs(),
            &self.label("inspect-text"),
            COMMAND_LIMIT,
        );
        println!(
            "$ faultline {} {capture}\n  -> exit {:?}\n{}",
            args.join(" "),
            text.code(),
            indent(&text.stdout)
        );
        assert_eq!(
            text.code(),
            json_run.code(),
            "text and JSON agree on the verdict"
        );
        let problems = schema::violations(&json, &mut BTreeSet::new());
        assert!(
            problems.is_empty(),
            "--json departs from the documented schema:\n{}",
            problems.join("\n")
        );
        (json, json_run.code(), text.stdout)
    }

    /// A manifest file holding `text`.
    fn manifest(&self, name: &str, text: &str) -> PathBuf {
        self.tmp.write(name, text)
    }

    /// `faultline ca init` into `ca/`, the folder [`Lab::proxy`] gives faultline
    /// (FAULTLINE_CA_DIR); returns the certificate clients are told to trust.
    fn faultline_ca(&self) -> PathBuf {
        let init = run_bounded(
            Command::new(FAULTLINE)
                .env("FAULTLINE_CA_DIR", self.dir("ca"))
                .args(["ca", "init"]),
            &self.logs(),
            &self.label("ca-init"),
            COMMAND_LIMIT,
        );
        assert!(
            init.status.success(),
            "faultline ca init: {}",
            init.output()
        );
        self.dir("ca/ca.pem")
    }
}

/// `s3-reset-put` written to the lab as `name`: in forward mode (no upstream: each request names
/// its own) when `forward`, intercepting TLS with `tls_keys` added to its `[proxy.tls]` table when
/// given.
fn reset_put_variant(lab: &Lab, name: &str, forward: bool, tls_keys: Option<&str>) -> PathBuf {
    let mut text = fs::read_to_string(scenario("s3-reset-put")).expect("read s3-reset-put");
    if forward {
        text = text
            .replace("[proxy]\n", "[proxy]\nmode = \"forward\"\n")
            .replace("upstream = \"127.0.0.1:5000\"\n", "");
    }
    if let Some(keys) = tls_keys {
        text = text.replace(
            "\n[[rule]]",
            &format!("\n[proxy.tls]\nintercept = true\n{keys}\n[[rule]]"),
        );
    }
    lab.tmp.write(name, &text)
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

fn scenario(name: &str) -> PathBuf {
    Path::new(REPO)
        .join("scenarios")
        .join(format!("{name}.toml"))
}

fn md5_hex(bytes: &[u8]) -> String {
    hex::encode(Md5::digest(bytes))
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The audit's verdicts: (path, result) per line of the manifest, in order.
fn audit_results(json: &serde_json::Value) -> Vec<(&str, &str)> {
    list(json, "expectations")
        .iter()
        .map(|e| {
            (
                e["path"].as_str().unwrap_or(""),
                e["result"].as_str().unwrap_or(""),
            )
        })
        .collect()
}

fn list<'a>(json: &'a serde_json::Value, field: &str) -> &'a Vec<serde_json::Value> {
    json[field]
        .as_array()
        .unwrap_or_else(|| panic!("{field} is not a list"))
}

fn findings(json: &serde_json::Value) -> Vec<String> {
    list(json, "findings")
        .iter()
        .filter_map(|f| f.as_str().map(String::from))
        .collect()
}

/// The S3 content checks of the report.
fn s3_checks(json: &serde_json::Value) -> Vec<&serde_json::Value> {
    list(json, "content_checks")
        .iter()
        .filter(|c| c["address"]["scheme"] == "s3")
        .collect()
}

/// The multipart objects of `path` in the report, by leg.
fn multipart<'a>(json: &'a serde_json::Value, path: &str, leg: &str) -> &'a serde_json::Value {
    list(json, "objects")
        .iter()
        .find(|o| o["address"]["key"] == path && o["leg"] == leg)
        .unwrap_or_else(|| panic!("no {leg} leg object {path}: {:#}", json["objects"]))
}

/// Reads `key` back from moto itself (not through faultline) and compares it with `want`.
fn ground_truth(lab: &Lab, moto: SocketAddr, key: &str, want: &[u8]) {
    ground_truth_at(lab, &format!("http://{moto}"), None, key, want);
}

/// [`ground_truth`] from moto at an endpoint URL, trusting `ca` when given (moto over TLS).
fn ground_truth_at(lab: &Lab, endpoint: &str, ca: Option<&Path>, key: &str, want: &[u8]) {
    let out = lab
        .dir("files")
        .join(format!("moto-{}", key.replace('/', "-")));
    lab.boto3_at(
        endpoint,
        ca,
        &[["get", "bkt", key, out.to_str().expect("utf-8")]],
    );
    let got = fs::read(&out).expect("read back");
    assert!(
        got == want,
        "moto holds {} bytes for {key} (md5 {}), uploaded {} (md5 {})",
        got.len(),
        md5_hex(&got),
        want.len(),
        md5_hex(want)
    );
}

/// tshark decodes the same whole HTTP requests inspect found, on both ports, and sees no
/// problem in the capture but the injected resets.
fn tshark_agrees(capture: &Path, ports: &[u16], json: &serde_json::Value) {
    // The server ports decoded as HTTP, for the expert check too: tshark tries the server port
    // first, then the lower and the higher port, so without this an ephemeral client port that
    // Wireshark registers for another protocol (57000 is IRC, 34980 EtherCAT) decodes that
    // connection's HTTP as that protocol, with "Malformed" warnings that say nothing about the
    // capture (a flake; reproduced by giving boto3 port 57000).
    let mut decode: Vec<String> = Vec::new();
    for p in ports {
        decode.push("-d".into());
        decode.push(format!("tcp.port=={p},http"));
    }
    let decode: Vec<&str> = decode.iter().map(String::as_str).collect();
    let mut args: Vec<&str> = decode.clone();
    args.extend([
        "-Y",
        "http.request",
        "-T",
        "fields",
        "-e",
        "http.request.method",
    ]);
    let seen = tshark::run(capture, &args).stdout;
    // tshark shows a request once its body is whole: the reset attempts are not among them.
    let whole = list(json, "exchanges")
        .iter()
        .filter(|e| e["request"]["complete"] == true)
        .count();
    assert_eq!(
        seen.lines().count(),
        whole,
        "tshark's HTTP requests: {seen}"
    );
    let problems = tshark::expert_problems_with(capture, &decode);
    assert!(problems.is_empty(), "tshark expert problems: {problems:#?}");
}

/// put_object and upload_file (three 5 MiB parts) through `s3-reset-put`: attempt 1 of each PUT
/// is reset after 64 KiB of its body. botocore rewinds and sends each again, whole: moto holds the
/// right bytes, every S3 check matches, the multipart object is assembled from the parts S3
/// acknowledged, and the audit finds each object as listed, except a 0-byte put the manifest says
/// holds 5,000,000 bytes.
#[test]
fn boto3_put_and_multipart_reset_on_attempt_1_are_rewound_and_audited() {
    let lab = Lab::new("s3-reset-put");
    let (moto, moto_addr) = lab.moto();
    let proxy = lab.proxy(&scenario("s3-reset-put"), Some(moto_addr));
    let (one, one_bytes) = lab.file("one.bin", 300_000, 1);
    let (big, big_bytes) = lab.file("big.bin", MULTIPART, 2);
    let (zero, _) = lab.file("zero.bin", 0, 3);
    let s = |p: &Path| p.to_str().expect("utf-8").to_string();
    let (one_s, big_s, zero_s) = (s(&one), s(&big), s(&zero));
    let done = lab.boto3(
        proxy.addr,
        &[
            ["mb", "bkt", "-", "-"],
            ["put", "bkt", "one.bin", &one_s],
            ["upload", "bkt", "big.bin", &big_s],
            ["put", "bkt", "zero.bin", &zero_s],
        ],
    );
    assert_eq!(
        done[1]["retries"], 1,
        "botocore retried the reset put: {done:?}"
    );
    assert_eq!(done[1]["etag"], format!("\"{}\"", md5_hex(&one_bytes)));
    let capture = proxy.stop();
    ground_truth(&lab, moto_addr, "one.bin", &one_bytes);
    ground_truth(&lab, moto_addr, "big.bin", &big_bytes);
    ground_truth(&lab, moto_addr, "zero.bin", b"");
    moto.stop();

    let (json, code, text) = lab.inspect(&capture, None);
    assert_eq!(code, Some(0), "{:?}", findings(&json));
    // Every complete PutObject and UploadPart, on both legs, checked with S3's own data.
    let checks = s3_checks(&json);
    let sources: BTreeSet<&str> = checks
        .iter()
        .filter_map(|c| c["address"]["backend"].as_str())
        .collect();
    for source in ["x-amz-checksum-crc32", "x-amz-content-sha256", "ETag"] {
        assert!(
            sources.contains(source),
            "{source} not checked: {sources:?}"
        );
    }
    assert!(
        checks.iter().all(|c| c["check"]["result"] == "matches"),
        "{checks:#?}"
    );
    // 1 put + 3 parts, complete, on 2 legs, 3 checks each; the 0-byte put: crc32, sha256, ETag.
    assert_eq!(checks.len(), (4 * 2 + 2) * 3, "{checks:#?}");
    for leg in ["client", "upstream"] {
        let object = multipart(&json, "/bkt/big.bin", leg);
        assert_eq!(object["check"]["result"], "matches", "{object:#}");
        assert_eq!(object["length"], MULTIPART);
        assert_eq!(object["pieces"].as_array().map(Vec::len), Some(3));
        assert_eq!(object["pieces"][2]["offset"], 10 * MIB);
    }
    let operations: BTreeSet<&str> = list(&json, "s3")
        .iter()
        .filter_map(|r| r["operation"].as_str())
        .collect();
    for op in [
        "CreateBucket",
        "PutObject",
        "CreateMultipartUpload",
        "UploadPart",
        "CompleteMultipartUpload",
    ] {
        assert!(operations.contains(op), "{op}: {operations:?}");
    }
    // Attempt 1 of each PUT was cut; said so, not "identical".
    let groups = list(&json, "attempt_groups");
    assert_eq!(groups.len(), 8, "4 PUTs retried on 2 legs");
    assert!(groups
        .iter()
        .all(|g| g["attempts"][0]["complete"] == false && g["attempts"][1]["complete"] == true));
    assert!(
        text.contains("attempt 1 was cut after 65536 bytes; attempt 2 complete"),
        "{text}"
    );
    assert!(
        json["verdict_line"]
            .as_str()
            .is_some_and(|v| v.contains("attempt 1 of each was cut after 65536 bytes")),
        "{}",
        json["verdict_line"]
    );
    tshark_agrees(&capture, &[proxy_port(&json), moto_addr.port()], &json);

    // The audit: what the bucket must hold.
    let good = lab.manifest(
        "good.txt",
        &format!(
            "# the bucket after the upload\n/bkt/one.bin {} {}\n/bkt/big.bin {MULTIPART} {}  # multipart\n",
            one_bytes.len(),
            md5_hex(&one_bytes),
            sha256_hex(&big_bytes)
        ),
    );
    let (json, code, text) = lab.inspect(&capture, Some(&good));
    assert_eq!(code, Some(0), "{:?}\n{text}", findings(&json));
    let expectations = list(&json, "expectations");
    assert_eq!(expectations.len(), 2);
    for e in expectations {
        assert_eq!(e["result"], "matches", "{e:#}");
        assert_eq!(e["leg"], "upstream");
    }
    assert_eq!(expectations[1]["how"], "CompleteMultipartUpload");
    assert_eq!(expectations[1]["stored_digest"], sha256_hex(&big_bytes));
    assert!(
        text.contains("2 of 2 expected objects stored as listed"),
        "{text}"
    );

    let missing = lab.manifest(
        "zero.txt",
        &format!("/bkt/big.bin {MULTIPART}\n/bkt/zero.bin 5000000\n"),
    );
    let (json, code, text) = lab.inspect(&capture, Some(&missing));
    assert_eq!(code, Some(1), "{text}");
    let found = findings(&json);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with("CORRUPT: /bkt/zero.bin: stored 0 bytes, expected 5000000"),
        "{found:?}"
    );
    assert!(text.contains("CORRUPT /bkt/zero.bin (line 2)"), "{text}");
    assert_eq!(list(&json, "expectations")[1]["result"], "size_mismatch");

    // A malformed manifest: its path and line, exit 2, no report.
    let bad = lab.manifest(
        "bad.txt",
        "/bkt/one.bin 300000\n/bkt/big.bin eleven-million\n",
    );
    let done = run_bounded(
        Command::new(FAULTLINE)
            .args(["inspect", "--expect"])
            .arg(&bad)
            .arg(&capture),
        &lab.logs(),
        &lab.label("inspect-bad-manifest"),
        COMMAND_LIMIT,
    );
    assert_eq!(done.code(), Some(2), "{}", done.output());
    assert!(done.stdout.is_empty(), "{}", done.stdout);
    assert!(
        done.stderr
            .starts_with(&format!("{}:2: SIZE \"eleven-million\"", bad.display())),
        "{}",
        done.stderr
    );
}

/// The port faultline listened on, from the client leg's flows.
fn proxy_port(json: &serde_json::Value) -> u16 {
    list(json, "flows")
        .iter()
        .find(|f| f["leg"] == "client")
        .and_then(|f| f["server"].as_str())
        .and_then(|s| s.rsplit(':').next())
        .and_then(|p| p.parse().ok())
        .expect("a client leg flow")
}

/// The AWS CLI with faultline as its HTTP_PROXY (forward mode), the resets of `s3-reset-put`:
/// `aws s3 cp` of 10,000,000 bytes (two parts: the CLI's 8 MiB chunks) and `aws s3api
/// put-object`. The client leg carries absolute-form targets, the upstream leg origin-form; both
/// name the same S3 objects, moto holds the right bytes, and inspect and the audit agree.
#[test]
fn aws_cli_through_forward_mode_resets_are_rewound_and_audited() {
    let lab = Lab::new("s3-forward");
    let (moto, moto_addr) = lab.moto();
    lab.boto3(moto_addr, &[["mb", "bkt", "-", "-"]]);
    let forward = reset_put_variant(&lab, "s3-forward-reset-put.toml", true, None);
    let proxy = lab.proxy(&forward, None);
    let (big, big_bytes) = lab.file("cli.bin", 10_000_000, 4);
    let (small, small_bytes) = lab.file("small.bin", 200_000, 5);
    let endpoint = format!("http://{moto_addr}");
    let cp = lab.run(
        "aws",
        &[
            "--endpoint-url",
            &endpoint,
            "s3",
            "cp",
            big.to_str().expect("utf-8"),
            "s3://bkt/dir/cli.bin",
            "--only-show-errors",
        ],
        Some(proxy.addr),
    );
    assert!(cp.status.success(), "aws s3 cp:\n{}", cp.output());
    let put = lab.run(
        "aws",
        &[
            "--endpoint-url",
            &endpoint,
            "s3api",
            "put-object",
            "--bucket",
            "bkt",
            "--key",
            "small.bin",
            "--body",
            small.to_str().expect("utf-8"),
        ],
        Some(proxy.addr),
    );
    assert!(
        put.status.success(),
        "aws s3api put-object:\n{}",
        put.output()
    );
    assert!(
        put.stdout.contains(&md5_hex(&small_bytes)),
        "the CLI printed the ETag: {}",
        put.stdout
    );
    let capture = proxy.stop();
    ground_truth(&lab, moto_addr, "dir/cli.bin", &big_bytes);
    ground_truth(&lab, moto_addr, "small.bin", &small_bytes);
    moto.stop();

    let manifest = lab.manifest(
        "manifest.txt",
        &format!(
            "/bkt/dir/cli.bin 10000000 {}\n/bkt/small.bin 200000 {}\n",
            md5_hex(&big_bytes),
            sha256_hex(&small_bytes)
        ),
    );
    let (json, code, text) = lab.inspect(&capture, Some(&manifest));
    assert_eq!(code, Some(0), "{:?}\n{text}", findings(&json));
    let exchanges = list(&json, "exchanges");
    assert!(
        exchanges
            .iter()
            .filter(|e| e["leg"] == "client")
            .all(|e| e["target"]
                .as_str()
                .is_some_and(|t| t.starts_with(&format!("http://{moto_addr}/bkt/")))),
        "absolute-form on the client leg"
    );
    for r in list(&json, "s3") {
        assert_eq!(r["style"], "path", "{r:#}");
        assert!(
            r["path"] == "/bkt/dir/cli.bin" || r["path"] == "/bkt/small.bin",
            "{r:#}"
        );
    }
    for leg in ["client", "upstream"] {
        let object = multipart(&json, "/bkt/dir/cli.bin", leg);
        assert_eq!(object["check"]["result"], "matches", "{object:#}");
        assert_eq!(object["pieces"].as_array().map(Vec::len), Some(2));
        assert_eq!(object["pieces"][1]["offset"], 8 * MIB);
    }
    let checks = s3_checks(&json);
    assert!(!checks.is_empty());
    assert!(
        checks.iter().all(|c| c["check"]["result"] == "matches"),
        "{checks:#?}"
    );
    // Parts and the put on both legs: none without its S3 checks.
    let checked: BTreeSet<u64> = checks
        .iter()
        .filter_map(|c| c["exchange"].as_u64())
        .collect();
    let whole_puts = exchanges
        .iter()
        .filter(|e| e["method"] == "PUT" && e["request"]["complete"] == true)
        .count();
    assert_eq!(checked.len(), whole_puts, "{checked:?}");
    let expectations = list(&json, "expectations");
    assert!(
        expectations.iter().all(|e| e["result"] == "matches"),
        "{expectations:#?}"
    );
}

/// The shipped throttling, cut-download and lost-Complete scenarios with boto3 against one moto:
/// botocore retries the throttled PUT (a 503 answered before the body, per `Expect:
/// 100-continue`), download_file fetches a cut download again, upload_file retries a Complete
/// whose answer was lost (moto answers the retry 200). Every object is right in moto; inspect is
/// clean and says what happened.
#[test]
fn boto3_throttled_cut_and_uncommitted_runs_end_clean_and_say_what_happened() {
    let lab = Lab::new("s3-scenarios");
    let (moto, moto_addr) = lab.moto();
    lab.boto3(moto_addr, &[["mb", "bkt", "-", "-"]]);
    let (file, bytes) = lab.file("file.bin", 3_000_000, 6);
    let (big, big_bytes) = lab.file("big.bin", MULTIPART, 7);
    let file_s = file.to_str().expect("utf-8").to_string();
    let big_s = big.to_str().expect("utf-8").to_string();

    // 503 SlowDown on attempt 1 of each PUT.
    let proxy = lab.proxy(&scenario("s3-503-slowdown-first-attempt"), Some(moto_addr));
    let done = lab.boto3(proxy.addr, &[["put", "bkt", "throttled.bin", &file_s]]);
    assert_eq!(done[0]["retries"], 1, "botocore retried the 503: {done:?}");
    let capture = proxy.stop();
    ground_truth(&lab, moto_addr, "throttled.bin", &bytes);
    let (json, code, _) = lab.inspect(&capture, None);
    assert_eq!(code, Some(0), "{:?}", findings(&json));
    assert!(
        json["verdict_line"].as_str().is_some_and(|v| v
            .contains("attempt 1 was answered 503 before its body was sent; attempt 2 complete")),
        "{}",
        json["verdict_line"]
    );

    // The first GET of the object cut after 1 MiB: download_file fetches it again.
    lab.boto3(moto_addr, &[["put", "bkt", "cut.bin", &file_s]]);
    let proxy = lab.proxy(&scenario("s3-truncate-get"), Some(moto_addr));
    let out = lab.dir("files/downloaded.bin");
    lab.boto3(
        proxy.addr,
        &[["download", "bkt", "cut.bin", out.to_str().expect("utf-8")]],
    );
    assert!(
        fs::read(&out).expect("downloaded") == bytes,
        "the download is whole"
    );
    let capture = proxy.stop();
    let (json, code, text) = lab.inspect(&capture, None);
    assert_eq!(code, Some(0), "{:?}", findings(&json));
    let gets: Vec<&serde_json::Value> = list(&json, "exchanges")
        .iter()
        .filter(|e| e["method"] == "GET" && e["leg"] == "client")
        .collect();
    assert_eq!(gets.len(), 2, "the cut GET and the one that followed");
    assert_eq!(gets[0]["response"]["complete"], false);
    assert_eq!(gets[0]["response"]["body_length"], MIB);
    assert!(
        text.contains(&format!("{MIB}/3000000 CUT")),
        "the cut response is marked in the table:\n{text}"
    );
    let get_checks: Vec<&serde_json::Value> = s3_checks(&json)
        .into_iter()
        .filter(|c| c["exchange"] == gets[1]["id"])
        .collect();
    assert!(
        get_checks.iter().any(|c| c["address"]["backend"] == "ETag")
            && get_checks.iter().all(|c| c["check"]["result"] == "matches"),
        "the whole download checked against its ETag: {get_checks:#?}"
    );

    // A single-part object above the multipart threshold: download_file fetches it in 5 MiB
    // ranges, the first one cut and fetched again; inspect stitches the ranges and checks the
    // whole against the ETag (the MD5 of a single-part object).
    lab.boto3(moto_addr, &[["put", "bkt", "ranged.bin", &big_s]]);
    let proxy = lab.proxy(&scenario("s3-truncate-get"), Some(moto_addr));
    let out = lab.dir("files/ranged.bin");
    lab.boto3(
        proxy.addr,
        &[[
            "download",
            "bkt",
            "ranged.bin",
            out.to_str().expect("utf-8"),
        ]],
    );
    assert!(
        fs::read(&out).expect("downloaded") == big_bytes,
        "the ranged download is whole"
    );
    let capture = proxy.stop();
    let (json, code, _) = lab.inspect(&capture, None);
    assert_eq!(code, Some(0), "{:?}", findings(&json));
    let ranged: Vec<&serde_json::Value> = list(&json, "objects")
        .iter()
        .filter(|o| o["address"]["key"] == "/bkt/ranged.bin")
        .collect();
    assert_eq!(ranged.len(), 2, "one object on each leg: {ranged:#?}");
    for o in &ranged {
        assert_eq!(o["address"]["scheme"], "s3", "{o:#}");
        assert_eq!(o["address"]["digest"], md5_hex(&big_bytes), "{o:#}");
        assert_eq!(o["check"]["result"], "matches", "{o:#}");
        assert_eq!(o["length"], MULTIPART);
    }
    let client = ranged
        .iter()
        .find(|o| o["leg"] == "client")
        .expect("client leg");
    let pieces = client["pieces"].as_array().expect("pieces");
    assert_eq!(
        pieces.len(),
        4,
        "3 ranges and the cut one again: {client:#}"
    );
    assert_eq!(pieces[0]["complete"], false);
    assert_eq!(pieces[0]["length"], MIB);

    // The answer to the first CompleteMultipartUpload dropped: upload_file retries it.
    let proxy = lab.proxy(&scenario("s3-drop-complete-multipart"), Some(moto_addr));
    lab.boto3(proxy.addr, &[["upload", "bkt", "big.bin", &big_s]]);
    let capture = proxy.stop();
    ground_truth(&lab, moto_addr, "big.bin", &big_bytes);
    let manifest = lab.manifest("m.txt", &format!("/bkt/big.bin {MULTIPART}\n"));
    let (json, code, _) = lab.inspect(&capture, Some(&manifest));
    assert_eq!(code, Some(0), "{:?}", findings(&json));
    let completes: Vec<&serde_json::Value> = list(&json, "s3")
        .iter()
        .filter(|r| r["operation"] == "CompleteMultipartUpload")
        .collect();
    assert_eq!(
        completes.len(),
        4,
        "two attempts on each leg: {completes:#?}"
    );
    let lost = &json["exchanges"][completes[0]["exchange"].as_u64().expect("id") as usize];
    assert_eq!(lost["response"]["outcome"], "connection_reset", "{lost:#}");
    let client_objects: Vec<&serde_json::Value> = list(&json, "objects")
        .iter()
        .filter(|o| o["leg"] == "client" && o["address"]["key"] == "/bkt/big.bin")
        .collect();
    // The retried Complete's 200 says what S3 assembled: the lost one is no "not checked: got
    // no answer" object beside it.
    assert_eq!(client_objects.len(), 1, "{client_objects:#?}");
    assert_eq!(client_objects[0]["check"]["result"], "matches");
    assert_eq!(list(&json, "expectations")[0]["result"], "matches");
    // Each leg lists the object once, however many of its Completes were answered 200.
    let upstream_objects = list(&json, "objects")
        .iter()
        .filter(|o| o["leg"] == "upstream" && o["address"]["key"] == "/bkt/big.bin")
        .count();
    assert_eq!(upstream_objects, 1, "{:#}", json["objects"]);

    // A multipart object uploaded, then downloaded in ranges (the first one cut and fetched
    // again) through one proxy: its ETag is no digest of the bytes, so the download is
    // compared with the upload, and says so: a download object that matches, counted in the
    // verdict line.
    let proxy = lab.proxy(&scenario("s3-truncate-get"), Some(moto_addr));
    let out = lab.dir("files/big-again.bin");
    lab.boto3(
        proxy.addr,
        &[
            ["upload", "bkt", "big2.bin", &big_s],
            ["download", "bkt", "big2.bin", out.to_str().expect("utf-8")],
        ],
    );
    assert!(fs::read(&out).expect("downloaded") == big_bytes);
    let capture = proxy.stop();
    let (json, code, text) = lab.inspect(&capture, None);
    assert_eq!(code, Some(0), "{:?}", findings(&json));
    let downloads: Vec<&serde_json::Value> = list(&json, "objects")
        .iter()
        .filter(|o| o["transfer"] == "download" && o["address"]["key"] == "/bkt/big2.bin")
        .collect();
    assert_eq!(downloads.len(), 2, "one on each leg: {downloads:#?}");
    for d in &downloads {
        assert_eq!(d["check"]["result"], "matches", "{d:#}");
        assert_eq!(d["length"], MULTIPART, "{d:#}");
        if d["leg"] == "client" {
            assert_eq!(d["pieces"][0]["complete"], false, "the cut range: {d:#}");
        }
    }
    let verdict = json["verdict_line"].as_str().expect("verdict line");
    // One object on both legs: counted once, as uploads are.
    assert!(verdict.contains("1 download checked"), "{verdict}");
    assert!(
        text.contains("download /bkt/big2.bin (client leg, md5): matches"),
        "{text}"
    );

    // The same download with its upload not in the capture: not checked, and it says why.
    let proxy = lab.proxy(&scenario("s3-truncate-get"), Some(moto_addr));
    lab.boto3(
        proxy.addr,
        &[["download", "bkt", "big2.bin", out.to_str().expect("utf-8")]],
    );
    assert!(fs::read(&out).expect("downloaded") == big_bytes);
    let capture = proxy.stop();
    moto.stop();
    let (json, code, text) = lab.inspect(&capture, None);
    assert_eq!(code, Some(0), "{:?}", findings(&json));
    let verdict = json["verdict_line"].as_str().expect("verdict line");
    // One object on both legs: counted once, as uploads are.
    assert!(verdict.contains("1 download not checked"), "{verdict}");
    assert!(
        text.contains("not checked: no upload of it is in the capture, and a multipart ETag is no digest of the bytes"),
        "{text}"
    );
}

/// The flexible checksums boto3 offers (`ChecksumAlgorithm`), each on its own put_object through
/// faultline, with awscrt (botocore computes CRC32C, CRC64NVME and XXHASH* only through it). inspect
/// checks every object on both legs with S3's own value for its algorithm, the value botocore
/// sent and moto echoed. The same algorithms on uploads whose checksum was taken of other bytes
/// (a file that changed under the client; real S3 would refuse them with BadDigest, moto stores
/// them): each is CORRUPT, naming its algorithm. And a rule cutting every attempt of one upload
/// after 1,000 bytes of its body: boto3 gives up, inspect checks none of its cut bodies, and the
/// audit says the object was never stored.
#[test]
fn boto3_flexible_checksums_are_checked_per_algorithm_and_a_cut_upload_is_caught() {
    // boto3's name, and inspect's name of the algorithm (x-amz-checksum-NAME says which).
    const ALGOS: [(&str, &str); 9] = [
        ("CRC32", "crc32"),
        ("CRC32C", "crc32c"),
        ("CRC64NVME", "crc64nvme"),
        ("SHA1", "sha1"),
        ("SHA256", "sha256"),
        ("SHA512", "sha512"),
        ("XXHASH3", "xxh3"),
        ("XXHASH64", "xxh64"),
        ("XXHASH128", "xxh128"),
    ];
    let lab = Lab::with_crt("s3-checksums");
    let (moto, moto_addr) = lab.moto();
    lab.boto3(moto_addr, &[["mb", "bkt", "-", "-"]]);
    let cut_scenario = lab.tmp.write(
        "s3-checksums.toml",
        "name = \"s3-checksums\"\nseed = 13\n\n[proxy]\n\n[[rule]]\n\
         name = \"every attempt of cut.bin is cut after 1000 bytes of its body\"\n\
         match = { method = \"PUT\", path = \"/bkt/cut.bin\" }\n\
         fault.truncate = { after = \"1000B\" }\n",
    );
    let proxy = lab.proxy(&cut_scenario, Some(moto_addr));
    let mut ops: Vec<[String; 4]> = Vec::new();
    let mut files = Vec::new();
    for (i, (algo, _)) in ALGOS.iter().enumerate() {
        let (path, bytes) = lab.file(&format!("{algo}.bin"), 200_000 + i, 20 + i as u64);
        let path = path.to_str().expect("utf-8").to_string();
        ops.push([
            format!("put-{algo}"),
            "bkt".into(),
            format!("{algo}.bin"),
            path.clone(),
        ]);
        ops.push([
            format!("stale-{algo}"),
            "bkt".into(),
            format!("stale-{algo}.bin"),
            path,
        ]);
        files.push(bytes);
    }
    let (cut, _) = lab.file("cut.bin", 50_000, 30);
    ops.push([
        "tryput".into(),
        "bkt".into(),
        "cut.bin".into(),
        cut.to_str().expect("utf-8").into(),
    ]);
    let ops: Vec<[&str; 4]> = ops
        .iter()
        .map(|[a, b, c, d]| [a.as_str(), b.as_str(), c.as_str(), d.as_str()])
        .collect();
    let done = lab.boto3(proxy.addr, &ops);
    let capture = proxy.stop();
    assert!(
        done.last().is_some_and(|d| d["error"].is_string()),
        "boto3 gave up on cut.bin: {done:?}"
    );
    for (i, (algo, _)) in ALGOS.iter().enumerate() {
        ground_truth(&lab, moto_addr, &format!("{algo}.bin"), &files[i]);
        ground_truth(&lab, moto_addr, &format!("stale-{algo}.bin"), &files[i]);
    }
    moto.stop();

    let manifest = lab.manifest(
        "m.txt",
        &format!("/bkt/CRC32C.bin {}\n/bkt/cut.bin 50000\n", files[1].len()),
    );
    let (json, code, text) = lab.inspect(&capture, Some(&manifest));
    assert_eq!(code, Some(1), "{text}");
    let exchanges = list(&json, "exchanges");
    let leg_of = |c: &serde_json::Value| {
        let id = c["exchange"].as_u64().expect("exchange id") as usize;
        exchanges[id]["leg"].as_str().expect("leg").to_string()
    };
    let checks = s3_checks(&json);
    let found = findings(&json);
    for (i, (algo, name)) in ALGOS.iter().enumerate() {
        // What botocore sent (moto echoes it): base64 of the digest, as hex.
        let sent = done[2 * i]["checksums"][algo]
            .as_str()
            .unwrap_or_else(|| panic!("boto3 reported no {algo} checksum: {:?}", done[2 * i]));
        let sent = hex::encode(
            base64::Engine::decode(&base64::engine::general_purpose::STANDARD, sent)
                .expect("base64"),
        );
        let header = format!("x-amz-checksum-{}", algo.to_ascii_lowercase());
        for (key, result, digest) in [
            (format!("/bkt/{algo}.bin"), "matches", Some(sent)),
            (format!("/bkt/stale-{algo}.bin"), "digest_mismatch", None),
        ] {
            let mine: Vec<&&serde_json::Value> = checks
                .iter()
                .filter(|c| {
                    c["address"]["key"] == key.as_str()
                        && c["address"]["backend"]
                            .as_str()
                            .is_some_and(|b| b.starts_with(&header))
                })
                .collect();
            let legs: BTreeSet<String> = mine.iter().map(|c| leg_of(c)).collect();
            assert_eq!(
                mine.len(),
                2,
                "{key}: one {header} check per leg: {checks:#?}"
            );
            assert_eq!(legs.len(), 2, "{key}: {mine:#?}");
            for c in &mine {
                assert_eq!(c["address"]["algo"], *name, "{c:#}");
                assert_eq!(c["check"]["result"], result, "{key}: {c:#}");
                if let Some(d) = &digest {
                    assert_eq!(c["address"]["digest"], d.as_str(), "{key}: {c:#}");
                }
            }
            // Every other S3 check of the object (x-amz-content-sha256, ETag) matches: the bytes
            // are right, only a stale checksum is wrong.
            assert!(
                checks
                    .iter()
                    .filter(|c| c["address"]["key"] == key.as_str() && !mine.contains(c))
                    .all(|c| c["check"]["result"] == "matches"),
                "{key}: {checks:#?}"
            );
            let corrupt = found
                .iter()
                .filter(|f| {
                    f.starts_with(&format!("CORRUPT: s3 PutObject {key} ("))
                        && f.contains(&format!("{header} says "))
                        && f.ends_with(&format!("({name})"))
                })
                .count();
            assert_eq!(
                corrupt,
                if result == "matches" { 0 } else { 2 },
                "{key}: {found:#?}"
            );
        }
    }
    // The cut upload: boto3 sent each attempt whole (its checks match on the client leg), moto got
    // 1,000 bytes of each (never checked) and refused them.
    let cut_puts: Vec<&serde_json::Value> = exchanges
        .iter()
        .filter(|e| e["method"] == "PUT" && e["target"] == "/bkt/cut.bin")
        .collect();
    assert_eq!(cut_puts.len(), 4, "2 attempts on 2 legs: {cut_puts:#?}");
    for e in &cut_puts {
        let upstream = e["leg"] == "upstream";
        assert_eq!(e["request"]["complete"], !upstream, "{e:#}");
        if upstream {
            assert_eq!(e["request"]["length"], 1000, "{e:#}");
        }
    }
    let cut_checks: Vec<&&serde_json::Value> = checks
        .iter()
        .filter(|c| c["address"]["key"] == "/bkt/cut.bin")
        .collect();
    assert!(
        !cut_checks.is_empty()
            && cut_checks
                .iter()
                .all(|c| leg_of(c) == "client" && c["check"]["result"] == "matches"),
        "{cut_checks:#?}"
    );
    let results = audit_results(&json);
    assert_eq!(
        results,
        vec![
            ("/bkt/CRC32C.bin", "matches"),
            ("/bkt/cut.bin", "never_stored")
        ]
    );
    assert_eq!(
        found.len(),
        2 * ALGOS.len() + 1,
        "two per stale checksum, one for cut.bin: {found:#?}"
    );
    tshark_agrees(&capture, &[proxy_port(&json), moto_addr.port()], &json);
}

/// An object overwritten behind faultline's back (straight to moto): a later HEAD through
/// faultline reports another size than the upload the capture shows, a finding; and a GET with
/// the other bytes names the offset where they differ.
#[test]
fn a_head_or_get_reporting_other_bytes_than_uploaded_is_corrupt() {
    let lab = Lab::new("s3-head");
    let (moto, moto_addr) = lab.moto();
    lab.boto3(moto_addr, &[["mb", "bkt", "-", "-"]]);
    let (first, _) = lab.file("first.bin", 100_000, 8);
    let mut other = random_bytes(100_000, 8);
    other[70_000] ^= 0xff;
    let changed = lab.dir("files/changed.bin");
    fs::write(&changed, &other).expect("write");
    let (short, _) = lab.file("short.bin", 60_000, 9);
    let s = |p: &Path| p.to_str().expect("utf-8").to_string();
    let proxy = lab.proxy(&scenario("s3-reset-put"), Some(moto_addr));
    lab.boto3(
        proxy.addr,
        &[
            ["put", "bkt", "sized.bin", &s(&first)],
            ["put", "bkt", "flipped.bin", &s(&first)],
        ],
    );
    lab.boto3(
        moto_addr,
        &[
            ["put", "bkt", "sized.bin", &s(&short)],
            ["put", "bkt", "flipped.bin", &s(&changed)],
        ],
    );
    let read = lab.dir("files/read.bin");
    lab.boto3(
        proxy.addr,
        &[
            ["head", "bkt", "sized.bin", "-"],
            ["get", "bkt", "flipped.bin", &s(&read)],
        ],
    );
    let capture = proxy.stop();
    moto.stop();
    let (json, code, _) = lab.inspect(&capture, None);
    assert_eq!(code, Some(1));
    let found = findings(&json);
    assert!(
        found.iter().any(|f| f.starts_with(
            "CORRUPT: s3 returned size 60000 for /bkt/sized.bin, uploaded 100000 (HEAD exchange"
        )),
        "{found:#?}"
    );
    assert!(
        found.iter().any(|f| f.starts_with(
            "CORRUPT: s3 returned other bytes for /bkt/flipped.bin than were uploaded: they differ at offset 70000"
        )),
        "{found:#?}"
    );
}

/// A presigned PutObject sent by a client that retries without rewinding its file, through
/// `s3-reset-put`: attempt 2 carries what was left of the file (nothing, or its tail), moto
/// stores that and answers its MD5 as the ETag. inspect said OK, "attempt 2 matches its content
/// address: attempt 1 held the wrong bytes": the ETag only says what moto got, and nothing the
/// client sent vouches for the retry, so it is CORRUPT.
#[test]
fn a_presigned_put_retried_without_rewinding_is_corrupt_whatever_its_etag_says() {
    let lab = Lab::new("s3-nowind");
    let (moto, moto_addr) = lab.moto();
    lab.boto3(moto_addr, &[["mb", "bkt", "-", "-"]]);
    let proxy = lab.proxy(&scenario("s3-reset-put"), Some(moto_addr));
    let (file, _) = lab.file("pre.bin", 3_000_000, 11);
    let s = file.to_str().expect("utf-8").to_string();
    let done = lab.boto3(proxy.addr, &[["nowind", "bkt", "pre.bin", &s]]);
    assert!(done[0]["etag"].is_string(), "{done:?}");
    let capture = proxy.stop();
    let stored = lab.boto3(moto_addr, &[["head", "bkt", "pre.bin", "-"]]);
    moto.stop();
    let length = stored[0]["length"].as_u64().expect("a length");
    assert!(
        length < 3_000_000,
        "moto holds {length} bytes: the client rewound"
    );
    let (json, code, text) = lab.inspect(&capture, None);
    assert_eq!(code, Some(1), "{text}");
    let found = findings(&json);
    assert!(
        found.iter().any(|f| f.contains("(exchange ")
            && f.contains("was accepted but")
            && f.contains("the ETag S3 answered matches the bytes it received")),
        "{found:#?}"
    );
    assert!(!text.contains("held the wrong bytes"), "{text}");
}

/// GETs cut after 1 MiB by `s3-truncate-get` and resumed 4,096 bytes past the cut, of a
/// single-part object (checked against its ETag in `objects`) and of a multipart one (compared
/// with its upload in `s3_download`): the client assembled bytes after a hole it never fetched.
/// inspect said "incomplete" and OK, exit 0.
#[test]
fn a_download_resumed_past_its_cut_is_corrupt_naming_the_hole() {
    let lab = Lab::new("s3-skipget");
    let (moto, moto_addr) = lab.moto();
    let (one, _) = lab.file("one.bin", 3_000_000, 12);
    let (big, _) = lab.file("big.bin", MULTIPART, 13);
    let s = |p: &Path| p.to_str().expect("utf-8").to_string();
    lab.boto3(
        moto_addr,
        &[
            ["mb", "bkt", "-", "-"],
            ["put", "bkt", "one.bin", &s(&one)],
            ["upload", "bkt", "big.bin", &s(&big)],
        ],
    );
    let proxy = lab.proxy(&scenario("s3-truncate-get"), Some(moto_addr));
    let (got_one, got_big) = (lab.dir("files/got-one.bin"), lab.dir("files/got-big.bin"));
    let done = lab.boto3(
        proxy.addr,
        &[
            ["skipget", "bkt", "one.bin", &s(&got_one)],
            ["skipget", "bkt", "big.bin", &s(&got_big)],
        ],
    );
    let capture = proxy.stop();
    moto.stop();
    assert_eq!(done[0]["length"], 3_000_000 - 4096, "{done:?}");
    assert_eq!(done[1]["length"], MULTIPART - 4096, "{done:?}");
    let (json, code, text) = lab.inspect(&capture, None);
    assert_eq!(code, Some(1), "{text}");
    let found = findings(&json);
    for path in ["/bkt/one.bin", "/bkt/big.bin"] {
        assert!(
            found.iter().any(|f| f.starts_with("CORRUPT: download of ")
                && f.contains(path)
                && f.contains("(client leg, ")
                && f.contains("bytes 1048576..1052672 (4096 bytes) were never requested")),
            "{path}: {found:#?}"
        );
    }
}

/// boto3 over HTTPS (TLS intercepted by faultline, moto serving HTTPS): botocore streams each
/// upload aws-chunked (`STREAMING-UNSIGNED-PAYLOAD-TRAILER`) with its CRC-32 in a trailer. inspect
/// decodes the bodies, checks every trailer and ETag, assembles the multipart object, and the
/// audit finds both objects, through the resets of `s3-reset-put`.
#[test]
fn boto3_over_https_streams_aws_chunked_with_trailers_that_inspect_decodes() {
    let lab = Lab::new("s3-tls");
    let ca = lab.faultline_ca();
    let (moto, moto_addr) = lab.moto_with(&["-s"]);
    let tls = reset_put_variant(
        &lab,
        "s3-tls-reset-put.toml",
        false,
        Some("upstream_verify = false\n"),
    );
    let proxy = lab.proxy(&tls, Some(moto_addr));
    let (one, one_bytes) = lab.file("one.bin", 300_000, 10);
    let (big, big_bytes) = lab.file("big.bin", MULTIPART, 11);
    let s = |p: &Path| p.to_str().expect("utf-8").to_string();
    let done = lab.boto3_at(
        &format!("https://{}", proxy.addr),
        Some(&ca),
        &[
            ["mb", "bkt", "-", "-"],
            ["put", "bkt", "one.bin", &s(&one)],
            ["upload", "bkt", "big.bin", &s(&big)],
        ],
    );
    assert_eq!(done[1]["retries"], 1, "{done:?}");
    let capture = proxy.stop();
    moto.stop();
    let json = audit_one_and_big(&lab, &capture, &one_bytes, &big_bytes);
    let checks = s3_checks(&json);
    let trailers = checks
        .iter()
        .filter(|c| c["address"]["backend"] == "x-amz-checksum-crc32 trailer")
        .count();
    assert_eq!(
        trailers, 8,
        "a put and three parts on two legs: {checks:#?}"
    );
    assert_eq!(
        multipart(&json, "/bkt/big.bin", "client")["check"]["result"],
        "matches"
    );
}

/// The audit of a run that uploaded `one.bin` (put) and `big.bin` (multipart) to `bkt`:
/// `inspect --expect` finds both as uploaded, every S3 check matches, and the multipart object
/// assembled on the upstream leg matches its ETag. Returns inspect's JSON.
fn audit_one_and_big(
    lab: &Lab,
    capture: &Path,
    one_bytes: &[u8],
    big_bytes: &[u8],
) -> serde_json::Value {
    let manifest = lab.manifest(
        "m.txt",
        &format!(
            "/bkt/one.bin {} {}\n/bkt/big.bin {} {}\n",
            one_bytes.len(),
            sha256_hex(one_bytes),
            big_bytes.len(),
            md5_hex(big_bytes)
        ),
    );
    let (json, code, text) = lab.inspect(capture, Some(&manifest));
    assert_eq!(code, Some(0), "{:?}\n{text}", findings(&json));
    let checks = s3_checks(&json);
    assert!(!checks.is_empty(), "no S3 checks");
    assert!(
        checks.iter().all(|c| c["check"]["result"] == "matches"),
        "{checks:#?}"
    );
    assert_eq!(
        multipart(&json, "/bkt/big.bin", "upstream")["check"]["result"],
        "matches"
    );
    assert!(
        list(&json, "expectations")
            .iter()
            .all(|e| e["result"] == "matches"),
        "{:#}",
        json["expectations"]
    );
    json
}

/// boto3 with faultline as its HTTPS_PROXY (forward mode: botocore opens a CONNECT tunnel, which
/// faultline intercepts), trusting faultline's CA through AWS_CA_BUNDLE, against moto serving TLS
/// with a certificate from the test's own CA that faultline verifies (`upstream_ca`;
/// `upstream_verify` stays on). The resets of `s3-reset-put` act on the plaintext inside the
/// tunnel: botocore rewinds each first PUT, moto holds the right bytes, and inspect checks the
/// decrypted uploads of both legs against S3's own checksums and the manifest.
#[test]
fn boto3_through_https_proxy_is_intercepted_inside_connect_with_the_upstream_verified() {
    let lab = Lab::new("s3-connect");
    let ca = lab.faultline_ca();
    let pki = UpstreamPki::new(lab.tmp.path());
    let (cert, key) = pki.server_pem_files(&["localhost", "127.0.0.1"], lab.tmp.path(), "moto");
    let (cert, key) = (cert.to_str().expect("utf-8"), key.to_str().expect("utf-8"));
    let (moto, moto_addr) = lab.moto_with(&["-c", cert, "-k", key]);
    let moto_url = format!("https://{moto_addr}");
    let connect = reset_put_variant(
        &lab,
        "s3-connect-reset-put.toml",
        true,
        Some(&format!(
            "upstream_ca = {:?}\n",
            pki.pem_path.display().to_string()
        )),
    );
    let proxy = lab.proxy(&connect, None);
    let (one, one_bytes) = lab.file("one.bin", 300_000, 14);
    let (big, big_bytes) = lab.file("big.bin", MULTIPART, 15);
    let s = |p: &Path| p.to_str().expect("utf-8").to_string();
    let done = lab.boto3_via(
        &moto_url,
        Some(&ca),
        Some(proxy.addr),
        &[
            ["mb", "bkt", "-", "-"],
            ["put", "bkt", "one.bin", &s(&one)],
            ["upload", "bkt", "big.bin", &s(&big)],
        ],
    );
    assert_eq!(
        done[1]["retries"], 1,
        "the reset PUT was sent again: {done:?}"
    );
    let capture = proxy.stop();
    ground_truth_at(&lab, &moto_url, Some(&pki.pem_path), "one.bin", &one_bytes);
    ground_truth_at(&lab, &moto_url, Some(&pki.pem_path), "big.bin", &big_bytes);
    moto.stop();

    let comments = tshark::packet_comments(&capture);
    let resets = comments
        .iter()
        .filter(|c| c.contains("the first attempt of each PUT dies after 64 KiB"))
        .count();
    assert!(
        resets >= 4,
        "the put and three parts reset on attempt 1, inside the tunnel: {comments:#?}"
    );
    let json = audit_one_and_big(&lab, &capture, &one_bytes, &big_bytes);
    // The client leg holds each CONNECT and then the plaintext inside its tunnel: tshark reads
    // there the same requests as on the upstream leg, and so does inspect, which checks them
    // (S3 checksums, the multipart object) as it does the upstream leg's.
    let exchanges = list(&json, "exchanges");
    let leg_of = |check: &serde_json::Value| {
        let id = check["exchange"].as_u64().expect("an exchange id") as usize;
        exchanges[id]["leg"].as_str().expect("a leg").to_string()
    };
    let checks = s3_checks(&json);
    let on = |leg: &str| checks.iter().filter(|c| leg_of(c) == leg).count();
    assert!(
        on("client") > 0,
        "no S3 check on the client leg: {checks:#?}"
    );
    assert_eq!(on("client"), on("upstream"), "{checks:#?}");
    assert_eq!(
        multipart(&json, "/bkt/big.bin", "client")["check"]["result"],
        "matches"
    );
    let requests_on = |leg: &str| {
        let mut out: Vec<String> = exchanges
            .iter()
            .filter(|e| e["leg"] == leg && e["method"] != "CONNECT")
            .map(|e| format!("{} {}", e["method"], e["target"]))
            .collect();
        // Parts go up in parallel: the legs' orders may differ.
        out.sort_unstable();
        out
    };
    assert_eq!(
        requests_on("client"),
        requests_on("upstream"),
        "inspect reads inside the tunnels the requests the upstream leg carried"
    );
    let ports = [proxy_port(&json), moto_addr.port()];
    let mut args: Vec<String> = ports
        .iter()
        .flat_map(|p| ["-d".to_string(), format!("tcp.port=={p},http")])
        .collect();
    args.extend(
        ["-Y", "http.request", "-T", "fields", "-e", "tcp.dstport"]
            .into_iter()
            .chain(["-e", "http.request.method", "-e", "http.request.uri"])
            .map(String::from),
    );
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let rows = tshark::run(&capture, &args).stdout;
    let sent_to = |port: u16| -> Vec<&str> {
        let prefix = format!("{port}\t");
        rows.lines()
            .filter_map(|l| l.strip_prefix(&prefix))
            .collect()
    };
    let (connects, inside): (Vec<&str>, Vec<&str>) = sent_to(ports[0])
        .into_iter()
        .partition(|r| r.starts_with("CONNECT\t"));
    assert_eq!(
        connects.len(),
        list(&json, "flows")
            .iter()
            .filter(|f| f["leg"] == "client")
            .count(),
        "one CONNECT per connection: {rows}"
    );
    assert_eq!(
        inside,
        sent_to(ports[1]),
        "the plaintext inside the tunnels, as the upstream leg carried it"
    );
}

/// The audit is not S3's alone: through `http-first-attempt-fails` to faultline's built-in store
/// (curl PUTs, attempt 1 of each answered 500), each path's last upload answered 2xx is what the
/// manifest is held to; the store's files are the ground truth.
#[test]
fn the_audit_reads_plain_http_uploads_to_the_built_in_store_too() {
    let lab = Lab::new("audit-store");
    let store = lab.dir("store");
    let capture = lab.dir("store.pcapng");
    let mut daemon = Daemon::start(
        Command::new(FAULTLINE)
            .arg("run")
            .arg(scenario("http-first-attempt-fails"))
            .args([
                "--listen",
                "127.0.0.1:0",
                "--upstream",
                "builtin:store",
                "--store",
            ])
            .arg(&store)
            .arg("--capture")
            .arg(&capture),
        &lab.logs(),
        &lab.label("faultline-store"),
    );
    let addr = daemon.faultline_address();
    let (data, data_bytes) = lab.file("data.bin", 100_000, 12);
    let (empty, _) = lab.file("empty.bin", 0, 13);
    let put = |file: &Path, path: &str| {
        let done = lab.run(
            "curl",
            &[
                "-sS",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "-H",
                "Expect:",
                "-X",
                "PUT",
                "--data-binary",
                &format!("@{}", file.display()),
                &format!("http://{addr}{path}"),
            ],
            None,
        );
        done.stdout.trim().to_string()
    };
    for (file, path) in [(&data, "/data/my%20data.bin"), (&empty, "/data/empty.bin")] {
        assert_eq!(put(file, path), "500", "attempt 1");
        assert!(put(file, path).starts_with('2'), "attempt 2");
    }
    let done = daemon.stop();
    assert!(done.status.success(), "{}", done.output());
    assert!(fs::read(store.join("data/my data.bin")).expect("stored") == data_bytes);
    assert_eq!(
        fs::read(store.join("data/empty.bin"))
            .expect("stored")
            .len(),
        0
    );

    let manifest = lab.manifest(
        "m.txt",
        &format!(
            "/data/my%20data.bin 100000 {}\n/data/empty.bin 5000000\n/data/never.bin 1\n",
            md5_hex(&data_bytes)
        ),
    );
    let (json, code, text) = lab.inspect(&capture, Some(&manifest));
    assert_eq!(code, Some(1), "{text}");
    let results = audit_results(&json);
    assert_eq!(
        results,
        vec![
            ("/data/my data.bin", "matches"),
            ("/data/empty.bin", "size_mismatch"),
            ("/data/never.bin", "never_stored"),
        ]
    );
    let found = findings(&json);
    assert!(
        found.iter().any(|f| f.starts_with(
            "CORRUPT: /data/empty.bin: stored 0 bytes, expected 5000000 (PUT exchange"
        )),
        "{found:#?}"
    );
    assert!(list(&json, "s3").is_empty(), "plain HTTP is not S3");
}
