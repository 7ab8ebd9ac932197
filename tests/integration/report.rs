//! `faultline inspect --markdown` and `--html` on a capture the built binary wrote in front of
//! `builtin:store`, the HTML page loaded by headless Chromium (DOM and screenshot).
//!
//! The run: a rule answers the first attempt of each PUT with 500; the client retries with a
//! stale buffer (16 bytes at offset 1000 overwritten), which the store accepts: a corrupt retry
//! at a known offset and a content-address mismatch. The scenario and rule names and one request
//! target carry `<script>` so the reports must show capture-derived text as text.

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use md5::{Digest, Md5};

use crate::support::daemon::{run_bounded, Daemon, FAULTLINE};
use crate::support::random_bytes;
use crate::support::temp_dir::TempDir;

/// For one inspect or one Chromium run; reaching it means a hang (the process is killed by PID).
const LIMIT: Duration = Duration::from_secs(60);
/// Where the stale buffer overwrote the retry's body.
const STALE_AT: usize = 1000;
const SCENARIO_NAME: &str = "report <script>alert(1)</script>";
const RULE_NAME: &str = "first PUT answered <b>500</b>";

/// One request on a fresh connection; returns the raw response (the connection is closed by
/// `Connection: close` or by faultline's own answer).
fn exchange(proxy: SocketAddr, method: &str, target: &str, body: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(proxy).expect("connect to faultline");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("read timeout");
    let head = format!(
        "{method} {target} HTTP/1.1\r\nHost: report.test\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).expect("send the head");
    stream.write_all(body).expect("send the body");
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .expect("the response, then the close");
    response
}

fn status_of(response: &[u8]) -> String {
    String::from_utf8_lossy(response)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// The path `recorded_run` uploads to: the md5 of its body, DVC style.
fn markdown_upload_path() -> String {
    let hex = hex::encode(Md5::digest(random_bytes(4096, 15)));
    format!("/files/md5/{}/{}", &hex[..2], &hex[2..])
}

/// Runs `faultline run` with the scenario, makes the corrupt retry and the `<script>` request,
/// stops the proxy with SIGTERM and returns the scenario and capture paths.
fn recorded_run(dir: &TempDir) -> (PathBuf, PathBuf) {
    let capture = dir.path().join("report.pcapng");
    // A space in the path: the replay command must quote it to paste as typed.
    let scenario = dir.write(
        "report scenario.toml",
        &format!(
            "name = {SCENARIO_NAME:?}\nseed = 11\n[proxy]\nupstream = \"builtin:store\"\nstore = {:?}\n\n[[rule]]\nname = {RULE_NAME:?}\nmatch = {{ method = [\"PUT\"], attempt = 1 }}\nfault.respond = {{ status = 500 }}\n",
            dir.path().join("store").display().to_string()
        ),
    );
    let mut proxy = Daemon::start(
        Command::new(FAULTLINE)
            .arg("run")
            .arg(&scenario)
            .args(["--listen", "127.0.0.1:0", "--capture"])
            .arg(&capture),
        dir.path(),
        "proxy",
    );
    let addr = proxy.faultline_address();
    let body = random_bytes(4096, 15);
    let target = format!("/files/md5/{}", {
        let hex = hex::encode(Md5::digest(&body));
        format!("{}/{}", &hex[..2], &hex[2..])
    });
    let first = exchange(addr, "PUT", &target, &body);
    assert!(status_of(&first).contains(" 500 "), "{}", status_of(&first));
    let mut stale = body.clone();
    stale[STALE_AT..STALE_AT + 16].copy_from_slice(b"stale buffer!!!!");
    assert_ne!(
        stale[STALE_AT], body[STALE_AT],
        "the bodies differ at {STALE_AT}"
    );
    let second = exchange(addr, "PUT", &target, &stale);
    assert!(
        status_of(&second).contains(" 201 "),
        "{}",
        status_of(&second)
    );
    let probe = exchange(addr, "GET", "/<script>alert(1)</script>", b"");
    assert!(!probe.is_empty(), "the probe was answered");
    let stopped = proxy.stop();
    assert!(stopped.status.success(), "{}", stopped.output());
    (scenario, capture)
}

#[test]
fn markdown_summary_of_a_real_capture() {
    let dir = TempDir::new("report-md");
    let (scenario, capture) = recorded_run(&dir);
    // The audit too: the upload's path should hold the body attempt 1 sent (md5 of the path),
    // and a path never uploaded.
    let stored_path = markdown_upload_path();
    let manifest = dir.write(
        "manifest.txt",
        &format!(
            "# what the store should hold\n{stored_path} 4096 {}\n/files/md5/00/never 10\n",
            stored_path.replace("/files/md5/", "").replace('/', "")
        ),
    );
    let out = run_bounded(
        Command::new(FAULTLINE)
            .arg("inspect")
            .arg(&capture)
            .arg("--markdown")
            .arg("--expect")
            .arg(&manifest),
        dir.path(),
        "inspect-md",
        LIMIT,
    );
    assert_eq!(out.code(), Some(1), "corrupt:\n{}", out.output());
    let md = out.stdout;
    let first = md.lines().next().unwrap_or_default();
    assert_eq!(
        first, "### ❌ faultline inspect: CORRUPT",
        "verdict first:\n{md}"
    );
    for expected in [
        format!("| faultline | {} |", env!("CARGO_PKG_VERSION")),
        "| scenario | report \\<script\\>alert(1)\\</script\\> |".to_string(),
        "| seed | 11 |".to_string(),
        "#### Findings".to_string(),
        format!("differs from attempt 1 at offset {STALE_AT}"),
        "content MISMATCH".to_string(),
        "GET /\\<script\\>alert(1)\\</script\\>".to_string(),
        "#### Expected objects (`--expect`)".to_string(),
        format!("| {stored_path} | 2 | 4096 | 4096 | **CORRUPT** "),
        "| /files/md5/00/never | 3 | 10 | - | **CORRUPT** ".to_string(),
        // Issue 15: the replay reads the scenario the report carries, saved under its own name,
        // from wherever the reader saves it (the run named it by a path in another directory).
        "Save the scenario below as **report scenario.toml**, then run:".to_string(),
        // The replay writes a capture of its own beside this one, never over it.
        format!(
            // The scenario names its store, which holds what this run stored: the replay gets a
            // fresh one, or the client would find its objects there and upload nothing.
            "```sh\nfaultline run 'report scenario.toml' --listen 127.0.0.1:0 --capture '{}' --seed 11 --store \"$(mktemp -d)\"\n```",
            capture
                .with_file_name("{name}-replay-{time}.pcapng")
                .display()
        ),
        "holds what the first run stored, so a replay into it would upload nothing".to_string(),
        "<details><summary>Scenario <code>report scenario.toml</code> (10 lines)</summary>"
            .to_string(),
        format!("```toml\n{}\n```", fs::read_to_string(&scenario).expect("scenario").trim_end()),
    ] {
        assert!(md.contains(&expected), "no {expected:?} in:\n{md}");
    }
    // Code blocks show text verbatim on GitHub; everywhere else it must stay text.
    let outside_code: String = md.split("\n```").step_by(2).collect::<Vec<_>>().join("\n");
    assert!(
        !outside_code.contains("<script>") && !outside_code.contains("<b>"),
        "capture text must not become HTML on GitHub:\n{md}"
    );
    replay_from_elsewhere(&dir, &md);
    // Issue 15: the two attempts' content checks name the same object; each row says its
    // exchange, so the clean one and the corrupt one can be told apart.
    let checks: Vec<&str> = md
        .split("#### Content checks")
        .nth(1)
        .unwrap_or_else(|| panic!("no content checks:\n{md}"))
        .lines()
        .skip(3)
        .take_while(|l| l.starts_with('|'))
        .filter(|l| l.contains("(md5)"))
        .collect();
    let exchanges: std::collections::BTreeSet<u64> = checks
        .iter()
        .map(|l| {
            l.split('|')
                .nth(1)
                .unwrap_or_default()
                .trim()
                .parse()
                .unwrap_or_else(|_| panic!("{l}: no exchange number"))
        })
        .collect();
    assert!(checks.len() >= 2, "{md}");
    assert_eq!(exchanges.len(), checks.len(), "one exchange per row:\n{md}");
}

/// Saves the scenario a Markdown report carries under the name it gives, in a directory of its
/// own, and runs the report's replay command there: it must start the proxy (then is stopped).
fn replay_from_elsewhere(dir: &TempDir, md: &str) {
    let toml = md
        .split("```toml\n")
        .nth(1)
        .and_then(|rest| rest.split("\n```").next())
        .unwrap_or_else(|| panic!("no toml block:\n{md}"));
    let replay = md
        .split("```sh\n")
        .nth(1)
        .and_then(|rest| rest.split("\n```").next())
        .unwrap_or_else(|| panic!("no replay block:\n{md}"));
    let elsewhere = dir.path().join("elsewhere");
    fs::create_dir_all(&elsewhere).expect("a directory of its own");
    fs::write(elsewhere.join("report scenario.toml"), format!("{toml}\n")).expect("save it");
    let mut words = shlex::split(replay).unwrap_or_else(|| panic!("not a shell command: {replay}"));
    // What the shell makes of the fresh store the replay asks for.
    for word in words.iter_mut().filter(|w| *w == "$(mktemp -d)") {
        let fresh = dir.path().join("replay-store");
        fs::create_dir_all(&fresh).expect("a fresh store");
        *word = fresh.display().to_string();
    }
    assert_eq!(
        words.first().map(String::as_str),
        Some("faultline"),
        "{replay}"
    );
    let mut proxy = Daemon::start(
        Command::new(FAULTLINE)
            .args(&words[1..])
            .current_dir(&elsewhere),
        dir.path(),
        "replay",
    );
    let addr = proxy.faultline_address();
    assert!(
        TcpStream::connect(addr).is_ok(),
        "the replayed proxy accepts"
    );
    let stopped = proxy.stop();
    assert!(stopped.status.success(), "{}", stopped.output());
}

/// The Chromium binary; the test fails (never skips) when it is missing.
fn chromium() -> PathBuf {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("chromium"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "chromium is not installed: run `bash tests/install-chromium.sh` (`make test` does)"
            )
        })
}

/// Headless Chromium with a fresh profile and no network of its own, on `page`, with `args`
/// (`--dump-dom`, `--screenshot=...`); bounded by [`LIMIT`], killed by PID past it.
fn headless(dir: &Path, label: &str, page: &Path, args: &[&str]) -> String {
    let profile = dir.join(format!("profile-{label}"));
    fs::create_dir_all(&profile).expect("a fresh profile dir");
    let out = run_bounded(
        Command::new(chromium())
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .args(args)
            .arg(format!("file://{}", page.display())),
        dir,
        label,
        LIMIT,
    );
    assert!(out.status.success(), "chromium {label}: {}", out.output());
    out.stdout
}

#[test]
fn html_report_of_a_real_capture_in_headless_chromium() {
    let dir = TempDir::new("report-html");
    let (_, capture) = recorded_run(&dir);
    let page = dir.path().join("report.html");
    let out = run_bounded(
        Command::new(FAULTLINE)
            .arg("inspect")
            .arg(&capture)
            .arg("--html")
            .arg(&page),
        dir.path(),
        "inspect-html",
        LIMIT,
    );
    assert_eq!(out.code(), Some(1), "corrupt:\n{}", out.output());
    let html = fs::read_to_string(&page).expect("the HTML report was written");
    for external in ["src=", "url(", "@import"] {
        assert!(
            !html.contains(external),
            "{external} in a self-contained page"
        );
    }
    // Links only within the page (its contents under the verdict).
    for link in html.split("href=").skip(1) {
        assert!(
            link.starts_with("\"#"),
            "a link out of the page: href={link:.40}"
        );
    }
    assert!(html.contains(r##"<a href="#run">Run and replay</a>"##));
    let dom = headless(dir.path(), "dom", &page, &["--dump-dom"]);
    let verdict = dom
        .find(r#"<header id="verdict" class="verdict corrupt"><h1>CORRUPT</h1>"#)
        .unwrap_or_else(|| panic!("no CORRUPT verdict in the DOM:\n{dom}"));
    for section in [
        "findings",
        "run",
        "attempts",
        "checks",
        "timelines",
        "exchanges",
    ] {
        let at = dom
            .find(&format!(r#"<section id="{section}">"#))
            .unwrap_or_else(|| panic!("no {section} section in the DOM"));
        assert!(verdict < at, "the verdict comes before {section}");
    }
    for expected in [
        format!(r#"data-offset="{STALE_AT}""#),
        format!(r#"<strong class="offset">{STALE_AT}</strong>"#),
        format!(r#"<th class="at">{STALE_AT}</th>"#),
        format!("<th>{}</th>", STALE_AT - 16),
        // the stale buffer's first byte, where attempt 2 differs: 's'
        r#"<td class="diff">73</td>"#.to_string(),
        format!(r#"<td class="version">{}</td>"#, env!("CARGO_PKG_VERSION")),
        r#"<td class="seed">11</td>"#.to_string(),
        "--seed 11 --store \"$(mktemp -d)\"</pre>".to_string(),
        r#"save the scenario below as <code class="scenario-file">report scenario.toml</code>, then run"#.to_string(),
        r#"<summary>scenario <code>report scenario.toml</code> (10 lines)</summary><pre class="replay" id="scenario-toml">name = "report &lt;script&gt;alert(1)&lt;/script&gt;""#.to_string(),
        r#"<svg class="timeline""#.to_string(),
        r#"<g class="lane" data-leg="client""#.to_string(),
        r#"<g class="lane" data-leg="upstream""#.to_string(),
        r#"<g class="fault" data-rule="first PUT answered &lt;b&gt;500&lt;/b&gt;" data-ns=""#
            .to_string(),
        "⚡ first PUT answered &lt;b&gt;5".to_string(),
        r#"<title>faultline: rule "first PUT answered &lt;b&gt;500&lt;/b&gt;""#.to_string(),
        r#"<g class="response""#.to_string(),
        "FIN".to_string(),
        "report &lt;script&gt;alert(1)&lt;/script&gt;".to_string(),
        "GET /&lt;script&gt;alert(1)&lt;/script&gt;".to_string(),
    ] {
        assert!(
            dom.contains(&expected),
            "no {expected:?} in the DOM:\n{dom}"
        );
    }
    assert_eq!(
        dom.matches("<script").count(),
        1,
        "only the page's own script is a script element"
    );
    assert!(!dom.contains("<b>500</b>"), "a rule name became markup");
    // Issue 15: a marker is drawn where its packet crossed, not at its exchange's start: the
    // 500 is answered after the request body, so its fault marker is right of (or at) the
    // request marker of the same lane, at the x its own time gives.
    let attr = |tag: &str, name: &str| -> f64 {
        let rest = tag.split(&format!(r#"{name}=""#)).nth(1).expect(name);
        rest[..rest.find('"').expect("quote")]
            .parse()
            .expect("a number")
    };
    for lane in dom.split(r#"<g class="lane" "#).skip(1) {
        let Some(fault) = lane.split(r#"<g class="fault" "#).nth(1) else {
            continue;
        };
        let fault = &fault[..fault.find('>').expect("tag end")];
        let request = lane
            .split(r#"<g class="request" "#)
            .nth(1)
            .and_then(|r| r.split(r#"<path d="M"#).nth(1))
            .and_then(|r| r.split(' ').next())
            .and_then(|x| x.parse::<f64>().ok())
            .expect("a request marker in a lane with a fault");
        assert!(
            attr(fault, "data-x") >= request,
            "fault at {} before its request at {request}: {fault}",
            attr(fault, "data-x")
        );
        assert!(attr(fault, "data-ns") > 0.0, "{fault}");
    }
    let shot = dir.path().join("report.png");
    headless(
        dir.path(),
        "screenshot",
        &page,
        &[
            "--window-size=1280,2000",
            &format!("--screenshot={}", shot.display()),
        ],
    );
    let png = fs::read(&shot).expect("chromium wrote the screenshot");
    assert!(png.len() > 10_000, "a {}-byte screenshot", png.len());
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "a PNG");
    assert_eq!(
        u32::from_be_bytes([png[16], png[17], png[18], png[19]]),
        1280,
        "the screenshot has the window's width"
    );
    // Issue 15: the page is read on a phone too. At 420 px nothing but a table (which scrolls in
    // its own box) may reach past the viewport: the page itself never scrolls sideways.
    let frame = dir.path().join("narrow.html");
    fs::write(
        &frame,
        NARROW_FRAME.replace("REPORT", &page.display().to_string()),
    )
    .expect("the frame page");
    let dom = headless(
        dir.path(),
        "narrow",
        &frame,
        &[
            "--allow-file-access-from-files",
            "--virtual-time-budget=10000",
            "--dump-dom",
        ],
    );
    let measured = dom
        .split(r#"<pre id="out">"#)
        .nth(1)
        .and_then(|rest| rest.split('<').next())
        .expect("the frame's measurement");
    assert_eq!(
        measured, "fits wide=",
        "the report is wider than a 420 px viewport"
    );
}

/// A page that shows the report in a 420 px frame and writes into `#out` how wide the report's
/// document is and which elements outside tables reach past it.
const NARROW_FRAME: &str = r#"<!doctype html><html><body style="margin:0">
<iframe id="f" src="file://REPORT" style="width:420px;height:800px;border:0"></iframe>
<pre id="out">pending</pre>
<script>
document.getElementById('f').addEventListener('load', function () {
  var doc = this.contentDocument, root = doc.documentElement, wide = [];
  doc.querySelectorAll('body *').forEach(function (e) {
    if (e.getBoundingClientRect().right > root.clientWidth + 1 && !e.closest('table'))
      wide.push(e.tagName.toLowerCase() + '.' + e.className);
  });
  var fits = root.scrollWidth <= root.clientWidth ? 'fits' : root.scrollWidth + '>' + root.clientWidth;
  document.getElementById('out').textContent = fits + ' wide=' + wide.join(',');
});
</script></body></html>"#;

/// Issue 15: one numbering everywhere. A flow keeps its number whichever legs `--leg` selects,
/// it is tshark's `tcp.stream` index, and the demo's findings, exchange and flow numbers included,
/// are printed word for word by the `--leg client` command it suggests, by a plain `inspect` of
/// every leg and by `--markdown` (exchange numbers: `exchange_numbers_do_not_depend_on_leg_or_format`).
#[test]
fn flow_numbers_do_not_depend_on_leg_and_the_demo_agrees_with_inspect() {
    let dir = TempDir::new("report-numbers");
    let (_, capture) = recorded_run(&dir);
    let json = |leg: &str| -> serde_json::Value {
        let out = run_bounded(
            Command::new(FAULTLINE)
                .arg("inspect")
                .arg(&capture)
                .args(["--json", "--leg", leg]),
            dir.path(),
            &format!("inspect-{leg}"),
            LIMIT,
        );
        serde_json::from_str(&out.stdout).expect("JSON")
    };
    let flows = |v: &serde_json::Value, leg: &str| -> Vec<(u64, String)> {
        v["flows"]
            .as_array()
            .expect("flows")
            .iter()
            .filter(|f| f["leg"] == leg)
            .map(|f| {
                (
                    f["id"].as_u64().expect("id"),
                    f["client"].as_str().expect("client").to_string(),
                )
            })
            .collect()
    };
    let both = json("both");
    for leg in ["client", "upstream"] {
        let alone = flows(&json(leg), leg);
        assert!(!alone.is_empty(), "{leg} flows");
        assert_eq!(alone, flows(&both, leg), "{leg} flows keep their numbers");
    }
    // Flow N is tshark's `tcp.stream == N`: the same conversation, found by its client's
    // address in the SYN.
    let streams: std::collections::BTreeMap<String, u64> = crate::support::tshark::fields(
        &capture,
        Some("tcp.flags.syn == 1 && tcp.flags.ack == 0"),
        &["ip.src", "tcp.srcport", "tcp.stream"],
    )
    .into_iter()
    .map(|row| {
        let stream = row[2].parse().expect("tcp.stream");
        (format!("{}:{}", row[0], row[1]), stream)
    })
    .collect();
    let flows_both = both["flows"].as_array().expect("flows");
    assert_eq!(flows_both.len(), streams.len(), "one flow per TCP stream");
    for flow in flows_both {
        let client = flow["client"].as_str().expect("client");
        assert_eq!(
            flow["id"].as_u64(),
            streams.get(client).copied(),
            "flow {client} is tshark's tcp.stream of the same conversation"
        );
    }

    let demo = run_bounded(
        Command::new(FAULTLINE).arg("demo").current_dir(dir.path()),
        dir.path(),
        "demo",
        LIMIT,
    );
    assert_eq!(demo.code(), Some(0), "{}", demo.output());
    let hint = demo
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("See the retries byte for byte: "))
        .unwrap_or_else(|| panic!("no inspect hint:\n{}", demo.stdout));
    let words: Vec<&str> = hint
        .split(" (")
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(words.first(), Some(&"faultline"), "{hint}");
    let suggested = run_bounded(
        Command::new(FAULTLINE)
            .args(&words[1..])
            .current_dir(dir.path()),
        dir.path(),
        "suggested",
        LIMIT,
    );
    let verdicts: Vec<&str> = demo
        .stdout
        .split("client 2 retries")
        .nth(1)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().strip_prefix("inspect: "))
        .collect();
    assert!(!verdicts.is_empty(), "{}", demo.stdout);
    // One file's findings together: the path a line names never comes back after another's.
    let paths: Vec<&str> = verdicts
        .iter()
        .filter_map(|l| l.split_whitespace().nth(2))
        .collect();
    let mut seen: Vec<&str> = Vec::new();
    for path in &paths {
        if seen.last() != Some(path) {
            assert!(!seen.contains(path), "{path} split up: {verdicts:#?}");
            seen.push(path);
        }
    }
    assert_eq!(seen.len(), 3, "all three files: {verdicts:#?}");
    // The same capture read without `--leg` (every leg), as text and as Markdown: the demo's
    // exchange numbers were the client leg's alone before issue 15 (exchange 3 here, 4 there).
    let every_leg = |label: &str, extra: &[&str]| {
        run_bounded(
            Command::new(FAULTLINE)
                .args(&words[1..3])
                .args(extra)
                .current_dir(dir.path()),
            dir.path(),
            label,
            LIMIT,
        )
        .stdout
    };
    assert_eq!(words.get(3..), Some(&["--leg", "client"][..]), "{hint}");
    let plain = every_leg("demo-inspect", &[]);
    let markdown = every_leg("demo-inspect-md", &["--markdown"]);
    for line in verdicts {
        assert!(
            line.contains("exchange") && suggested.stdout.contains(line),
            "the demo printed {line:?}; `{hint}` printed:\n{}",
            suggested.stdout
        );
        assert!(
            plain.contains(line),
            "the demo printed {line:?}; inspect of every leg printed:\n{plain}"
        );
        assert!(
            markdown.contains(line),
            "the demo printed {line:?}; --markdown printed:\n{markdown}"
        );
    }
}

/// One exchange as every report names it: leg, flow and method (one request per connection in
/// `recorded_run`, so leg and flow alone tell the requests apart).
type Request = (String, u64, String);

/// The exchanges of a `--json` report by number.
fn json_exchanges(report: &serde_json::Value) -> std::collections::BTreeMap<u64, Request> {
    report["exchanges"]
        .as_array()
        .expect("exchanges")
        .iter()
        .map(|e| {
            (
                e["id"].as_u64().expect("id"),
                (
                    e["leg"].as_str().expect("leg").to_string(),
                    e["flow"].as_u64().expect("flow"),
                    e["method"].as_str().expect("method").to_string(),
                ),
            )
        })
        .collect()
}

/// A table row's number, leg, flow and request ("METHOD target") cells as a numbered request.
fn row(label: &str, cells: &[&str]) -> (u64, Request) {
    let number = |cell: &str| -> u64 {
        cell.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{label}: {cell:?} is not a number in {cells:?}"))
    };
    let method = cells[3].split_whitespace().next().unwrap_or_default();
    (
        number(cells[0]),
        (cells[1].trim().to_string(), number(cells[2]), method.into()),
    )
}

/// Every sentence of `report` that names an exchange with its flow (`exchange N, flow F`) or
/// its leg (`LEG leg, exchange N`) agrees with `numbered`; returns how many there were.
fn check_mentions(
    label: &str,
    report: &str,
    numbered: &std::collections::BTreeMap<u64, Request>,
) -> usize {
    let digits = |text: &str| -> Option<u64> {
        let end = text
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len());
        text[..end].parse().ok()
    };
    let mut mentions = 0;
    for (at, _) in report.match_indices("exchange ") {
        let after = &report[at + "exchange ".len()..];
        let Some(n) = digits(after) else {
            continue;
        };
        let request = numbered
            .get(&n)
            .unwrap_or_else(|| panic!("{label} names exchange {n}, which the capture lacks"));
        if let Some(flow) = after
            .split_once(", flow ")
            .filter(|(number, _)| number.len() == n.to_string().len())
            .and_then(|(_, rest)| digits(rest))
        {
            assert_eq!(flow, request.1, "{label}: exchange {n} is {request:?}");
            mentions += 1;
        }
        for leg in ["client", "upstream"] {
            if report[..at].ends_with(&format!("{leg} leg, ")) {
                assert_eq!(leg, request.0, "{label}: exchange {n} is {request:?}");
                mentions += 1;
            }
        }
    }
    mentions
}

/// Issue 15: an exchange's number is a property of the exchange. The real binary reads a real
/// capture (a retry faultline answered itself on the client leg, so the legs' exchanges
/// interleave) with and without `--leg`, as text, `--json`, `--markdown` and `--html`: the
/// exchange numbered N is the same request in every one of them, the numbers a finding names
/// point at that request, and a finding of one leg reads the same as in the report of both.
#[test]
fn exchange_numbers_do_not_depend_on_leg_or_format() {
    let dir = TempDir::new("report-exchange-numbers");
    let (_, capture) = recorded_run(&dir);
    let inspect = |label: &str, args: &[&str]| {
        let out = run_bounded(
            Command::new(FAULTLINE)
                .arg("inspect")
                .arg(&capture)
                .args(args),
            dir.path(),
            label,
            LIMIT,
        );
        assert_eq!(out.code(), Some(1), "{label}: corrupt\n{}", out.output());
        out.stdout
    };
    let json = |label: &str, args: &[&str]| -> serde_json::Value {
        serde_json::from_str(&inspect(label, &[&["--json"], args].concat())).expect("JSON")
    };
    let all = json("json-every-leg", &[]);
    let numbered = json_exchanges(&all);
    let legs: Vec<&str> = numbered.values().map(|r| r.0.as_str()).collect();
    assert!(
        numbered.len() >= 4 && legs.contains(&"client") && legs.contains(&"upstream"),
        "both legs' exchanges: {numbered:?}"
    );
    let first_upstream = legs
        .iter()
        .position(|l| *l == "upstream")
        .expect("upstream");
    assert!(
        legs[first_upstream..].contains(&"client"),
        "a client exchange after an upstream one, so numbering one leg alone would differ: {numbered:?}"
    );
    let all_findings = all["findings"].as_array().expect("findings");
    for leg in ["both", "client", "upstream"] {
        let filter = ["--leg", leg];
        // "both" is the default: read without the flag, as a user would.
        let filter: &[&str] = if leg == "both" { &[] } else { &filter };
        let expected: std::collections::BTreeMap<u64, Request> = numbered
            .iter()
            .filter(|(_, r)| leg == "both" || r.0 == leg)
            .map(|(n, r)| (*n, r.clone()))
            .collect();

        let report = json(&format!("json-{leg}"), filter);
        assert_eq!(json_exchanges(&report), expected, "--json, legs: {leg}");
        for group in report["attempt_groups"].as_array().expect("groups") {
            for attempt in group["attempts"].as_array().expect("attempts") {
                let n = attempt["exchange"].as_u64().expect("exchange");
                assert_eq!(
                    expected.get(&n).map(|r| r.0.as_str()),
                    group["leg"].as_str(),
                    "--json, legs: {leg}: attempt of exchange {n}"
                );
            }
        }
        for check in report["content_checks"].as_array().expect("checks") {
            let n = check["exchange"].as_u64().expect("exchange");
            assert!(
                expected.contains_key(&n),
                "--json, legs: {leg}: check of {n}"
            );
        }
        for finding in report["findings"].as_array().expect("findings") {
            assert!(
                all_findings.contains(finding),
                "--json, legs: {leg}: {finding} is not in the report of every leg: {all_findings:#?}"
            );
        }
        let mut mentions = 0;
        for finding in report["findings"].as_array().expect("findings") {
            let finding = finding.as_str().expect("text");
            mentions += check_mentions(&format!("--json {leg}"), finding, &numbered);
        }

        let text = inspect(&format!("text-{leg}"), filter);
        let table: std::collections::BTreeMap<u64, Request> = text
            .lines()
            .skip_while(|l| !l.trim_start().starts_with("#  time (UTC)"))
            .skip(1)
            .take_while(|l| !l.trim().is_empty())
            .map(|l| {
                let cells: Vec<&str> = l.split_whitespace().collect();
                let request = format!("{} {}", cells[4], cells[5]);
                row("text", &[cells[0], cells[2], cells[3], &request])
            })
            .collect();
        assert_eq!(table, expected, "text, legs: {leg}:\n{text}");
        mentions += check_mentions(&format!("text {leg}"), &text, &numbered);

        let md = inspect(&format!("md-{leg}"), &[&["--markdown"], filter].concat());
        let table: std::collections::BTreeMap<u64, Request> = md
            .split("HTTP exchange")
            .nth(1)
            .unwrap_or_else(|| panic!("no exchanges:\n{md}"))
            .lines()
            .skip_while(|l| !l.starts_with("| # |"))
            .skip(2)
            .take_while(|l| l.starts_with('|'))
            .map(|l| row("markdown", &l.split('|').skip(1).collect::<Vec<_>>()))
            .collect();
        assert_eq!(table, expected, "--markdown, legs: {leg}:\n{md}");
        mentions += check_mentions(&format!("markdown {leg}"), &md, &numbered);

        let page = dir.path().join(format!("numbers-{leg}.html"));
        let path = page.display().to_string();
        inspect(
            &format!("html-{leg}"),
            &[&["--html", &path], filter].concat(),
        );
        let html = fs::read_to_string(&page).expect("the HTML report was written");
        let section = html
            .split(r#"<section id="exchanges">"#)
            .nth(1)
            .and_then(|s| s.split("</section>").next())
            .unwrap_or_else(|| panic!("no exchanges section:\n{html}"));
        let table: std::collections::BTreeMap<u64, Request> = section
            .split("<tr class=")
            .skip(1)
            .map(|r| {
                let cells: Vec<&str> = r
                    .split("<td")
                    .skip(1)
                    .map(|c| {
                        let c = c.split_once('>').map_or("", |(_, c)| c);
                        c.split("</td>").next().unwrap_or_default()
                    })
                    .collect();
                row("html", &[cells[0], cells[2], cells[3], cells[4]])
            })
            .collect();
        assert_eq!(table, expected, "--html, legs: {leg}:\n{section}");
        mentions += check_mentions(&format!("html {leg}"), &html, &numbered);
        assert!(mentions > 0, "legs {leg}: no finding names an exchange");
    }
}

/// Issue 15: the TCP demo names each connection by the flow numbers `inspect` gives its two legs
/// (not a count of its own), and every fault it says the capture holds is on those flows.
#[test]
fn tcp_demo_flow_numbers_are_inspects() {
    let dir = TempDir::new("report-tcp-demo");
    let demo = run_bounded(
        Command::new(FAULTLINE)
            .args(["demo", "--tcp"])
            .current_dir(dir.path()),
        dir.path(),
        "demo-tcp",
        LIMIT,
    );
    assert_eq!(demo.code(), Some(0), "{}", demo.output());
    assert!(
        !demo.stdout.contains("connection 1"),
        "a number of the demo's own:\n{}",
        demo.stdout
    );
    let capture = dir.path().join(crate::support::demo_capture(&demo.stdout));
    let out = run_bounded(
        Command::new(FAULTLINE)
            .arg("inspect")
            .arg(&capture)
            .arg("--json"),
        dir.path(),
        "inspect-tcp-demo",
        LIMIT,
    );
    let json: serde_json::Value = serde_json::from_str(&out.stdout).expect("JSON");
    // No HTTP: the verdict says what the capture holds, not "0 uploads, none retried".
    assert_eq!(
        json["verdict_line"],
        "OK: no HTTP; 4 connections, 3 faults marked (reset, truncated, latency)",
        "{}",
        json["verdict_line"]
    );
    let flows = json["flows"].as_array().expect("flows");
    let flow = |id: u64| {
        flows
            .iter()
            .find(|f| f["id"] == id)
            .unwrap_or_else(|| panic!("the demo printed flow {id}; inspect has {flows:?}"))
    };
    let number = |word: &str| -> u64 {
        word.parse()
            .unwrap_or_else(|_| panic!("{word:?} is not a flow number:\n{}", demo.stdout))
    };
    // "flow C (client leg) -> flow U (upstream leg): rule \"NAME\"" then the connection's lines.
    let mut printed = Vec::new();
    let mut current: Option<(u64, u64)> = None;
    for line in demo.stdout.lines() {
        if let Some(rest) = line.strip_prefix("flow ") {
            let words: Vec<&str> = rest.split_whitespace().collect();
            assert_eq!(
                words.get(1..5),
                Some(&["(client", "leg)", "->", "flow"][..]),
                "{line}"
            );
            let (c, u) = (number(words[0]), number(words[5]));
            assert_eq!(flow(c)["leg"], "client", "{line}");
            assert_eq!(flow(u)["leg"], "upstream", "{line}");
            // The rule the demo names is the one whose fault comment inspect finds on its flows.
            if let Some(rule) = line.split(": rule ").nth(1) {
                let on_flows = [c, u].iter().any(|id| {
                    flow(*id)["faults"]
                        .as_array()
                        .expect("faults")
                        .iter()
                        .any(|f| f.as_str().is_some_and(|f| f.contains(rule)))
                });
                assert!(on_flows, "{line}: no fault of {rule} on flows {c} and {u}");
            }
            printed.extend([c, u]);
            current = Some((c, u));
        } else if let Some(rest) = line.trim().strip_prefix("capture, flow") {
            let (ids, text) = rest.split_once(": ").expect("capture, flows: text");
            let ids = ids.trim_start_matches('s').trim();
            for id in ids.split(" and ").map(number) {
                let (c, u) = current.expect("a fault line under a connection");
                assert!(id == c || id == u, "{line} is not about flow {c} or {u}");
                let faults = flow(id)["faults"].as_array().expect("faults");
                assert!(
                    faults
                        .iter()
                        .any(|f| f.as_str().is_some_and(|f| f.ends_with(text))),
                    "{line}: inspect has {faults:?} on flow {id}"
                );
            }
        }
    }
    printed.sort_unstable();
    let all: Vec<u64> = (0..flows.len() as u64).collect();
    assert_eq!(printed, all, "every flow once:\n{}", demo.stdout);
    assert_eq!(printed.len(), 8, "four connections, two legs each");
    // The text report the demo points to lists the same flows, with their faults.
    let text = run_bounded(
        Command::new(FAULTLINE).arg("inspect").arg(&capture),
        dir.path(),
        "inspect-tcp-demo-text",
        LIMIT,
    );
    for id in &printed {
        let line = text
            .stdout
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("flow {id} ")))
            .unwrap_or_else(|| panic!("flow {id} not in the text report:\n{}", text.stdout));
        assert_eq!(
            line.contains("faults: "),
            !flow(*id)["faults"].as_array().expect("faults").is_empty(),
            "{line}"
        );
    }
    // The paste for a bug report lists the same flows with their faults, and replays the TCP demo.
    let md = run_bounded(
        Command::new(FAULTLINE)
            .arg("inspect")
            .arg(&capture)
            .arg("--markdown"),
        dir.path(),
        "inspect-tcp-demo-md",
        LIMIT,
    );
    assert!(
        md.stdout.contains("#### Flows without HTTP"),
        "{}",
        md.stdout
    );
    for id in &printed {
        let row = format!("| {id} | {} |", flow(*id)["leg"].as_str().expect("leg"));
        assert!(md.stdout.contains(&row), "no {row:?}:\n{}", md.stdout);
    }
    assert!(
        md.stdout.contains("```sh\nfaultline demo --tcp\n```"),
        "{}",
        md.stdout
    );
    // The suggested tshark filter shows the first faulted connection's two legs.
    let filter = demo
        .stdout
        .lines()
        .find_map(|l| l.split(" -Y '").nth(1))
        .map(|f| f.trim_end_matches('\''))
        .unwrap_or_else(|| panic!("no tshark hint:\n{}", demo.stdout));
    assert_eq!(
        filter, "tcp.stream == 2 || tcp.stream == 3",
        "{}",
        demo.stdout
    );
    let streams = crate::support::tshark::fields(&capture, Some(filter), &["tcp.stream"]);
    assert!(
        streams.iter().all(|r| r[0] == "2" || r[0] == "3") && !streams.is_empty(),
        "{streams:?}"
    );
}

/// `faultline run --inspect --expect MANIFEST --html FILE`: when the proxy stops, the capture is
/// audited and the page written; a bad manifest is refused before the run starts.
#[test]
fn run_inspect_audits_the_capture_when_the_proxy_stops() {
    let dir = TempDir::new("run-inspect-expect");
    let scenario = dir.write(
        "store.toml",
        &format!(
            "name = \"audit\"\n[proxy]\nupstream = \"builtin:store\"\nstore = {:?}\n",
            dir.path().join("store").display().to_string()
        ),
    );
    let capture = dir.path().join("audit.pcapng");
    let html = dir.path().join("audit.html");

    let bad = dir.write("bad.txt", "/files/a five\n");
    let refused = run_bounded(
        Command::new(FAULTLINE)
            .arg("run")
            .arg(&scenario)
            .args(["--listen", "127.0.0.1:0", "--inspect", "--expect"])
            .arg(&bad)
            .arg("--capture")
            .arg(&capture),
        dir.path(),
        "run-bad-manifest",
        LIMIT,
    );
    assert_eq!(refused.code(), Some(2), "{}", refused.output());
    assert!(
        refused.stderr.contains("bad.txt:1:"),
        "FILE:LINE names the bad line: {}",
        refused.stderr
    );
    assert!(!capture.exists(), "nothing ran");

    let manifest = dir.write("manifest.txt", "/files/a 5\n/files/b 3\n");
    let mut proxy = Daemon::start(
        Command::new(FAULTLINE)
            .arg("run")
            .arg(&scenario)
            .args(["--listen", "127.0.0.1:0", "--inspect", "--expect"])
            .arg(&manifest)
            .arg("--html")
            .arg(&html)
            .arg("--capture")
            .arg(&capture),
        dir.path(),
        "run-inspect",
    );
    let addr = proxy.faultline_address();
    let answer = exchange(addr, "PUT", "/files/a", b"hello");
    assert!(
        status_of(&answer).contains(" 201 "),
        "{}",
        status_of(&answer)
    );
    let stopped = proxy.stop();
    assert_eq!(
        stopped.status.code(),
        Some(1),
        "/files/b was never stored:\n{}",
        stopped.output()
    );
    assert!(
        stopped.stdout.contains("expected objects (--expect):")
            && stopped.stdout.contains("CORRUPT /files/b (line 2)"),
        "{}",
        stopped.stdout
    );
    let page = fs::read_to_string(&html).expect("the HTML report was written");
    assert!(page.contains("Expected objects (--expect)") && page.contains("/files/b"));
}

/// The capture `faultline demo --grpc` writes for its restarting reader (in `dir`'s captures).
fn grpc_demo_capture(dir: &TempDir) -> PathBuf {
    let out = run_bounded(
        Command::new(FAULTLINE)
            .args(["demo", "--grpc"])
            .current_dir(dir.path()),
        dir.path(),
        "demo-grpc",
        LIMIT,
    );
    assert_eq!(out.code(), Some(0), "{}", out.output());
    fs::read_dir(dir.path().join("captures"))
        .expect("the demo's captures")
        .map(|e| e.expect("an entry").path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().contains("-restart-"))
        })
        .unwrap_or_else(|| panic!("no restart capture:\n{}", out.output()))
}

/// The trial of the gRPC demo: its reset stream carries the rule's notes in `--json` on both
/// legs (they were lost to the 431 frames after the reset), `--markdown` names the rule next
/// to the RST_STREAM, and the HTML timeline names the rule on the HTTP/2 fault, draws the
/// responses and labels the three Reads opened together.
#[test]
fn the_grpc_demo_names_its_rule_in_every_report() {
    const RULE: &str = "the second Read is reset after 1 MiB";
    let dir = TempDir::new("report-grpc-demo");
    let capture = grpc_demo_capture(&dir);
    let inspect = |args: &[&str], label: &str| {
        let out = run_bounded(
            Command::new(FAULTLINE)
                .arg("inspect")
                .arg(&capture)
                .args(args),
            dir.path(),
            label,
            LIMIT,
        );
        assert_eq!(out.code(), Some(0), "{}", out.output());
        out.stdout
    };
    let json: serde_json::Value =
        serde_json::from_str(&inspect(&["--json"], "inspect-json")).expect("JSON");
    let streams = json["h2_streams"].as_array().expect("streams");
    let reset: Vec<&serde_json::Value> = streams.iter().filter(|s| !s["reset"].is_null()).collect();
    assert_eq!(reset.len(), 2, "one reset stream per leg: {streams:?}");
    for s in &reset {
        let faults = s["faults"].as_array().expect("faults");
        assert!(
            faults.iter().any(|f| f
                .as_str()
                .is_some_and(|f| f.contains(&format!("(rule \"{RULE}\")")))),
            "the {} leg's reset stream {} has its rule's note: {s}",
            s["leg"],
            s["stream"]
        );
    }
    let md = inspect(&["--markdown"], "inspect-markdown");
    let row = md
        .lines()
        .find(|l| l.starts_with("| client | ") && l.contains("RST\\_STREAM CANCEL"))
        .unwrap_or_else(|| panic!("no reset stream row in:\n{md}"));
    assert!(row.contains(&format!("rule \"{RULE}\"")), "{row}");
    assert!(
        md.contains("<details open><summary>8 HTTP/2 streams on 2 connections, 2 reset"),
        "{md}"
    );

    let page = dir.path().join("grpc.html");
    inspect(
        &["--html", page.to_str().expect("utf-8 path")],
        "inspect-html",
    );
    let dom = headless(dir.path(), "grpc-dom", &page, &["--dump-dom"]);
    for expected in [
        format!(r#"<g class="fault" data-rule="{RULE}""#),
        format!("⚡ {RULE}</text>"),
        r#"<g class="response h2" data-stream="1">"#.to_string(),
        r#"<td class="request nowrap">POST /google.bytestream.ByteStream/Read</td>"#.to_string(),
    ] {
        assert!(
            dom.contains(&expected),
            "no {expected:?} in the DOM:\n{dom}"
        );
    }
}

/// `faultline inspect cap.pcapng --html cap.pcapng` overwrote the capture with HTML. Any name
/// of the capture (the path, `./` in front, a symlink) or of the `--expect` manifest is refused
/// with exit 2 before anything is written; the capture still reads the same afterwards.
#[test]
fn an_html_report_over_an_input_is_refused_and_nothing_is_written() {
    let dir = TempDir::new("report-over-input");
    let (_, capture) = recorded_run(&dir);
    let before = fs::read(&capture).expect("read the capture");
    let manifest = dir.write("manifest.txt", "/files/md5/00/never 10\n");
    let link = dir.path().join("link.pcapng");
    std::os::unix::fs::symlink(&capture, &link).expect("symlink");
    let dotted = dir.path().join(".").join("report.pcapng");
    for (i, (output, role)) in [
        (&capture, "capture"),
        (&dotted, "capture"),
        (&link, "capture"),
        (&manifest, "manifest"),
    ]
    .into_iter()
    .enumerate()
    {
        let out = run_bounded(
            Command::new(FAULTLINE)
                .arg("inspect")
                .arg(&capture)
                .arg("--expect")
                .arg(&manifest)
                .arg("--html")
                .arg(output),
            dir.path(),
            &format!("inspect-over-{i}"),
            LIMIT,
        );
        assert_eq!(out.code(), Some(2), "{}", out.output());
        assert!(
            out.stderr
                .contains(&format!("that file is the {role} being inspected")),
            "{}",
            out.output()
        );
        assert!(out.stdout.is_empty(), "{}", out.output());
    }
    assert_eq!(fs::read(&capture).expect("read again"), before);
    assert_eq!(
        fs::read_to_string(&manifest).expect("manifest"),
        "/files/md5/00/never 10\n"
    );
    let out = run_bounded(
        Command::new(FAULTLINE)
            .arg("inspect")
            .arg(&link)
            .arg("--html")
            .arg(dir.path().join("report.html")),
        dir.path(),
        "inspect-elsewhere",
        LIMIT,
    );
    assert_eq!(out.code(), Some(1), "the corrupt retry: {}", out.output());
}

/// Newcomer trial: `http-truncate-download.toml` cut a 3000000-byte GET at 1 MiB and the
/// verdict read "OK: 4 HTTP exchanges, no uploads", no trace of the cut. It stays OK (nothing
/// stored wrong) and names the cut once, though both legs carry the GET.
#[test]
fn a_download_cut_by_a_fault_is_named_in_the_verdict() {
    let dir = TempDir::new("report-truncate");
    let capture = dir.path().join("truncate.pcapng");
    let mut proxy = Daemon::start(
        Command::new(FAULTLINE)
            .arg("run")
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/scenarios/http-truncate-download.toml"
            ))
            .args(["--listen", "127.0.0.1:0", "--store"])
            .arg(dir.path().join("store"))
            .arg("--capture")
            .arg(&capture),
        dir.path(),
        "proxy",
    );
    let addr = proxy.faultline_address();
    let body = random_bytes(3_000_000, 21);
    let put = exchange(addr, "PUT", "/files/big.bin", &body);
    assert!(status_of(&put).contains(" 201 "), "{}", status_of(&put));
    let got = exchange(addr, "GET", "/files/big.bin", b"");
    let head_end = got
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head")
        + 4;
    assert_eq!(got.len() - head_end, 1_048_576, "the body cut at 1 MiB");
    let stopped = proxy.stop();
    assert!(stopped.status.success(), "{}", stopped.output());
    let out = run_bounded(
        Command::new(FAULTLINE).arg("inspect").arg(&capture),
        dir.path(),
        "inspect",
        LIMIT,
    );
    assert_eq!(out.code(), Some(0), "clean:\n{}", out.output());
    assert!(
        out.stdout.contains(
            "OK: 1 upload, none retried, 1 download cut by a fault (the client got 1048576 of 3000000 bytes)"
        ),
        "{}",
        out.output()
    );
}

/// A page that shows the report in a frame `WIDTH` px wide and writes into `#out`, for each
/// exchange row whose request holds `MARK`: its request cell's width and the row's height
/// (`request=W height=H;`), rounded to whole pixels.
const ROW_FRAME: &str = r#"<!doctype html><html><body style="margin:0">
<iframe id="f" src="file://REPORT" style="width:WIDTHpx;height:900px;border:0"></iframe>
<pre id="out">pending</pre>
<script>
document.getElementById('f').addEventListener('load', function () {
  var out = [];
  this.contentDocument.querySelectorAll('#exchanges tr').forEach(function (tr) {
    var cells = tr.querySelectorAll('td');
    if (cells.length < 5 || cells[4].textContent.indexOf('MARK') < 0) return;
    out.push('request=' + Math.round(cells[4].getBoundingClientRect().width) +
      ' height=' + Math.round(tr.getBoundingClientRect().height) + ';');
  });
  document.getElementById('out').textContent = out.join('');
});
</script></body></html>"#;

/// Maintainer trial: a chunked upload cut by a reset (git-annex p2phttp) made the exchanges
/// table unreadable at 1400 px: its body-bytes cell (`113106 (length unknown: chunked) (cut by
/// connection reset)`) never wrapped, the request column shrank to ~80 px and its URL wrapped
/// every 7 characters, rows hundreds of px tall. The request keeps a readable width and the
/// row a few lines, on a desktop and on a phone (where the table scrolls in its own box).
#[test]
fn the_exchanges_table_stays_readable_when_a_chunked_upload_is_cut() {
    let dir = TempDir::new("report-chunked-cut");
    let capture = dir.path().join("chunked.pcapng");
    let scenario = dir.write(
        "chunked.toml",
        &format!(
            "name = \"chunked cut\"\nseed = 3\n[proxy]\nupstream = \"builtin:store\"\nstore = {:?}\n\n[[rule]]\nname = \"the first put reset after 1 KiB\"\nmatch = {{ method = [\"PUT\"], attempt = 1 }}\nfault.reset = {{ after = \"1KiB\" }}\n",
            dir.path().join("store").display().to_string()
        ),
    );
    let mut proxy = Daemon::start(
        Command::new(FAULTLINE)
            .arg("run")
            .arg(&scenario)
            .args(["--listen", "127.0.0.1:0", "--capture"])
            .arg(&capture),
        dir.path(),
        "proxy",
    );
    let addr = proxy.faultline_address();
    // A git-annex p2phttp put: the URL is long and breaks nowhere but at its punctuation.
    let target = format!(
        "/git-annex/9187eb5e-edc6-4836-b425-fbec936fe64e/v4/put?key=SHA256E-s300000--{}.bin&clientuuid=725c9652-7450-452f-840d-11fd5ba4857c&associatedfile=up.bin&offset=0",
        "9bfc30d82d39fd014519f1ff9d4902528570f16a570a4ae4ae88f6e38d127d3f"
    );
    let mut stream = TcpStream::connect(addr).expect("connect to faultline");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("read timeout");
    let head =
        format!("PUT {target} HTTP/1.1\r\nHost: report.test\r\nTransfer-Encoding: chunked\r\n\r\n");
    stream.write_all(head.as_bytes()).expect("send the head");
    let chunk = random_bytes(1000, 5);
    for _ in 0..8 {
        // The reset after 1 KiB ends the writes: what is refused is what the fault cut.
        let sent = stream
            .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
            .and_then(|()| stream.write_all(&chunk))
            .and_then(|()| stream.write_all(b"\r\n"));
        if sent.is_err() {
            break;
        }
    }
    let _ = stream.write_all(b"0\r\n\r\n");
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    assert!(
        !status_of(&answer).contains(" 201 "),
        "the first put was cut: {}",
        status_of(&answer)
    );
    let stopped = proxy.stop();
    assert!(stopped.status.success(), "{}", stopped.output());
    let page = dir.path().join("report.html");
    let out = run_bounded(
        Command::new(FAULTLINE)
            .arg("inspect")
            .arg(&capture)
            .arg("--html")
            .arg(&page),
        dir.path(),
        "inspect-html",
        LIMIT,
    );
    assert!(matches!(out.code(), Some(0 | 1)), "{}", out.output());
    let html = fs::read_to_string(&page).expect("the HTML report");
    assert!(
        html.contains("length unknown: chunked"),
        "the cut chunked body is in the table"
    );
    for (width, min_request, max_height) in [(1400, 250, 260), (400, 180, 400)] {
        let frame = dir.path().join(format!("rows-{width}.html"));
        fs::write(
            &frame,
            ROW_FRAME
                .replace("REPORT", &page.display().to_string())
                .replace("WIDTH", &width.to_string())
                .replace("MARK", "associatedfile=up.bin"),
        )
        .expect("the frame page");
        let dom = headless(
            dir.path(),
            &format!("rows-{width}"),
            &frame,
            &[
                "--allow-file-access-from-files",
                "--virtual-time-budget=10000",
                "--dump-dom",
            ],
        );
        let measured = dom
            .split(r#"<pre id="out">"#)
            .nth(1)
            .and_then(|rest| rest.split('<').next())
            .expect("the frame's measurement");
        let rows: Vec<(u32, u32)> = measured
            .split(';')
            .filter(|r| !r.is_empty())
            .map(|r| {
                let n = |key: &str| -> u32 {
                    r.split(key)
                        .nth(1)
                        .and_then(|v| v.split(' ').next())
                        .and_then(|v| v.parse().ok())
                        .unwrap_or_else(|| panic!("{key} in {measured:?}"))
                };
                (n("request="), n("height="))
            })
            .collect();
        assert!(rows.len() >= 2, "both legs' cut PUT: {measured:?}");
        for (request, height) in rows {
            assert!(
                request >= min_request && height <= max_height,
                "at {width} px the request column is {request} px wide (at least {min_request}) and its row {height} px tall (at most {max_height}): {measured:?}"
            );
        }
    }
}
