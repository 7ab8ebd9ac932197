//! Renders the report as the human text table `faultline inspect` prints by default.

use super::exchange::Outcome;
use super::leg;
use super::model::{FlowSummary, LegComparison, Report};
use super::objects::Transfer;
use crate::plural::count;

/// A capture comment as the reports show it: without the `faultline: ` prefix, and the note
/// faultline puts on the FINs it sends when a run stops said as what it is, not as a fault.
pub fn comment_text(comment: &str) -> String {
    match comment.trim_start_matches("faultline: ") {
        "run stopped" => "closed when the run stopped (not a fault)".to_string(),
        other => match other.strip_prefix("run stopped; ") {
            Some(unsent) => format!("closed when the run stopped (not a fault); {unsent}"),
            None => other.to_string(),
        },
    }
}

/// Whether a capture comment is a rule's fault (`faultline: rule "NAME" …`) rather than a note.
pub fn is_rule_fault(comment: &str) -> bool {
    comment
        .trim_start_matches("faultline: ")
        .starts_with("rule \"")
}

/// The rule a fault comment names: at its start (`rule "NAME" reset …`, HTTP/1 and TCP faults)
/// or at its end (`RST_STREAM(CANCEL) on stream 3 to the upstream (rule "NAME")`, the HTTP/2
/// session's frame-level notes); `None` for a note such as `run stopped`.
pub fn fault_rule(comment: &str) -> Option<&str> {
    let text = comment.trim_start_matches("faultline: ");
    let rest = if is_rule_fault(comment) {
        text.strip_prefix("rule \"")
    } else {
        text.rsplit_once("(rule \"").map(|(_, rest)| rest)
    }?;
    rest.split_once('"').map(|(name, _)| name)
}

/// `2026-05-28T12:34:56.789012Z` from nanoseconds since the epoch (UTC, proleptic Gregorian).
pub fn format_time(ns: u64) -> String {
    let secs = ns / 1_000_000_000;
    let micros = (ns % 1_000_000_000) / 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = crate::utc::civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{micros:06}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

/// `s` in at most `max` characters, an ellipsis ending what was cut.
pub(crate) fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let head: String = s.chars().take(max - 1).collect();
        format!("{head}…")
    }
}

/// The target of `ex` for a table column of `max` characters: a git-annex p2phttp request as
/// its operation and offset (`/git-annex/…/v4/put?…offset=65536`: a maintainer's trial could
/// not tell a `checkpresent` from a `putoffset`, nor two resumed `get`s apart, in the middle cut
/// of their long URLs; the key is in the p2phttp section), any other as [`table_target`] cuts it.
pub(crate) fn exchange_target(ex: &super::exchange::Exchange, max: usize) -> String {
    match super::p2phttp::P2pRequest::of(ex) {
        Some(p) => {
            let offset = if p.offset > 0 {
                format!("?…offset={}", p.offset)
            } else {
                String::new()
            };
            // A download is `GET …/key/KEY` on the wire: shown as sent (`key/…`), not as the
            // operation's name, which no request carries (a trial looked for a `/get`).
            let short = match p.operation.as_str() {
                "get" => format!("/git-annex/…/v{}/key/…{offset}", p.version),
                op => format!("/git-annex/…/v{}/{op}{offset}", p.version),
            };
            table_target(&short, max)
        }
        None => table_target(&ex.target, max),
    }
}

/// A request target for a table column of `max` characters: whole when it fits, else an
/// absolute-form target (`http://host:port/path`, forward mode) without its scheme and
/// authority, then, if still too long, cut in the middle so the object's distinctive tail (a
/// hash, a key) stays.
pub(crate) fn table_target(target: &str, max: usize) -> String {
    // A whole absolute-form target that fits keeps its origin (a forward proxy's connection
    // may change origins; a trial could not tell its rows apart).
    if target.chars().count() <= max {
        return target.to_string();
    }
    let path = target
        .split_once("://")
        .and_then(|(scheme, rest)| {
            let plain = !scheme.is_empty() && scheme.chars().all(|c| c.is_ascii_alphanumeric());
            plain.then(|| rest.find('/').map_or("/", |i| &rest[i..]))
        })
        .unwrap_or(target);
    let n = path.chars().count();
    if n <= max || max < 3 {
        return truncate(path, max.max(1));
    }
    let head = max / 4;
    let tail = max - head - 1;
    let front: String = path.chars().take(head).collect();
    let back: String = path.chars().skip(n - tail).collect();
    format!("{front}…{back}")
}

impl Report {
    /// The human report: capture line, warnings, exchange table, attempts, content checks, legs, verdict.
    pub fn render_text(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let c = &self.capture;
        let http_flows = self.flows.iter().filter(|f| f.http).count();
        let h2_flows = match self.flows.iter().filter(|f| f.h2).count() {
            0 => String::new(),
            n => format!(", {n} HTTP/2"),
        };
        let _ = writeln!(
            s,
            "capture {} ({}, {}, {}, {} HTTP{h2_flows}, legs: {})",
            c.path,
            c.format,
            count(c.packets, "packet"),
            count(self.flows.len(), "flow"),
            http_flows,
            self.legs_shown()
        );
        // Who made the capture and how to make it again, as --markdown and --html say: a seed
        // trial found the plain report the only one without them.
        if let Some(run) = &self.run {
            let _ = writeln!(
                s,
                "run: faultline {}, scenario \"{}\", seed {}",
                run.faultline_version, run.scenario, run.seed
            );
            let save = run
                .scenario_file
                .as_ref()
                .map(|file| {
                    format!(" (first save the scenario this capture records as {file}: --markdown shows it)")
                })
                .unwrap_or_default();
            let _ = writeln!(s, "replay: {}{save}", run.replay);
        }
        for w in &self.warnings {
            let _ = writeln!(s, "warning: {w}");
        }
        if !self.exchanges.is_empty() {
            let _ = writeln!(
                s,
                "\n{:>4}  {:<27} {:<8} {:>4}  {:<6} {:<44} {:>22}  {:<16} {:>10}  faults",
                "#",
                "time (UTC)",
                "leg",
                "flow",
                "method",
                "target",
                "request body",
                "response",
                "resp bytes"
            );
            // Whether a `N/? CUT` cell needs the line that says what `?` is.
            let mut unstated = false;
            for ex in &self.exchanges {
                let body = if ex.request.complete {
                    format!("{}", ex.request.length)
                } else {
                    let total = super::objects::stated_request_length(ex);
                    unstated |= total.is_none();
                    format!(
                        "{}/{} CUT",
                        ex.request.length,
                        total.map_or("?".into(), |e| e.to_string())
                    )
                };
                let faults = ex
                    .faults
                    .iter()
                    .map(|f| comment_text(&f.text))
                    .collect::<Vec<_>>()
                    .join("; ");
                // A response cut short says so here too, not only in --json.
                let response_bytes =
                    if ex.response.outcome == Outcome::Status && !ex.response.complete {
                        let total = super::objects::stated_response_length(ex);
                        unstated |= total.is_none();
                        format!(
                            "{}/{} CUT",
                            ex.response.body_length,
                            total.map_or("?".into(), |n| n.to_string())
                        )
                    } else {
                        ex.response.body_length.to_string()
                    };
                let _ = writeln!(
                    s,
                    "{:>4}  {:<27} {:<8} {:>4}  {:<6} {:<44} {:>22}  {:<16} {:>10}  {}",
                    ex.id,
                    format_time(ex.time_ns),
                    leg::name(ex.leg),
                    ex.flow,
                    ex.method,
                    exchange_target(ex, 44),
                    body,
                    ex.response_text(),
                    response_bytes,
                    faults
                );
            }
            if unstated {
                let _ = writeln!(
                    s,
                    "  N/? CUT: N bytes arrived of a body whose length was never stated (chunked, or ended by close)"
                );
            }
        }
        // Flows that carried no HTTP are in no table above; a plain TCP capture (the TCP demo's)
        // would otherwise show only a flow count, with nothing to match `tcp.stream == N` to.
        let plain: Vec<&FlowSummary> = self.flows.iter().filter(|f| !f.http && !f.h2).collect();
        if !plain.is_empty() {
            let _ = writeln!(
                s,
                "\nflows without HTTP (flow N is tshark's tcp.stream == N):"
            );
            for f in plain {
                let faults = f
                    .faults
                    .iter()
                    .map(|t| comment_text(t))
                    .collect::<Vec<_>>()
                    .join("; ");
                let _ = writeln!(
                    s,
                    "  flow {:<3} {:<8} {} -> {}  opened {}{}{}",
                    f.id,
                    leg::name(f.leg),
                    f.client,
                    f.server,
                    format_time(f.opened_ns),
                    if faults.is_empty() { "" } else { "  faults: " },
                    faults
                );
            }
        }
        if !self.attempt_groups.is_empty() {
            let _ = writeln!(s, "\nretried requests:");
            for g in &self.attempt_groups {
                let _ = writeln!(
                    s,
                    "  {} {} ({} leg), {} attempts",
                    g.method,
                    g.target,
                    leg::name(g.leg),
                    g.attempts.len()
                );
                for a in &g.attempts {
                    let mark = if a.corrupt { "CORRUPT " } else { "" };
                    let _ = writeln!(s, "    {mark}{}", a.description);
                }
            }
        }
        if !self.content_checks.is_empty() {
            let _ = writeln!(s, "\ncontent addresses:");
            for cc in &self.content_checks {
                let Some(what) = self.check_subject(cc) else {
                    continue;
                };
                let _ = writeln!(
                    s,
                    "  #{} {what} ({}): {}",
                    cc.exchange,
                    Report::check_algorithm(cc),
                    cc.check.describe()
                );
            }
        }
        if !self.objects.is_empty() {
            let _ = writeln!(s, "\nobjects (stitched from their pieces, checked whole):");
            for o in &self.objects {
                let pieces: Vec<String> = o
                    .pieces
                    .iter()
                    .map(|p| {
                        format!(
                            "#{} @{}+{}{}",
                            p.exchange,
                            p.offset,
                            p.length,
                            if p.complete { "" } else { " CUT" }
                        )
                    })
                    .collect();
                let result = match &o.check {
                    Some(c) => c.describe(),
                    None => format!("incomplete ({})", count(o.length, "byte")),
                };
                let mark = if o.corrupt { "CORRUPT " } else { "" };
                let _ = writeln!(
                    s,
                    "  {mark}{} {} ({} leg, {}): {result} [{}]",
                    match o.transfer {
                        Transfer::Upload => "upload",
                        Transfer::Download => "download",
                    },
                    o.address.name(),
                    leg::name(o.leg),
                    o.address.algo.name(),
                    pieces.join(", ")
                );
                for p in &o.problems {
                    let _ = writeln!(s, "    {p}");
                }
            }
        }
        let p2phttp = self.p2phttp_rows();
        if !p2phttp.is_empty() {
            let _ = writeln!(s, "\ngit-annex p2phttp:");
        }
        for p in p2phttp {
            let _ = writeln!(
                s,
                "  #{} {} ({} leg): {}",
                p.exchange, p.request, p.leg, p.answer
            );
        }
        if !self.webdav_moves.is_empty() {
            let _ = writeln!(s, "\nWebDAV moves:");
        }
        for m in &self.webdav_moves {
            let _ = writeln!(
                s,
                "  #{} {} {} -> {} (status {}), upload {}",
                m.exchange,
                m.method,
                m.source,
                m.destination,
                m.status.map_or("none".into(), |c| c.to_string()),
                match (m.upload, m.upload_complete) {
                    (Some(u), Some(true)) => format!("#{u} complete"),
                    (Some(u), _) => format!("#{u} INCOMPLETE"),
                    (None, _) => "not in the capture".into(),
                }
            );
        }
        self.render_h2(&mut s);
        if !self.expectations.is_empty() {
            let _ = writeln!(s, "\nexpected objects (--expect):");
            for e in &self.expectations {
                let mark = if e.corrupt { "CORRUPT " } else { "" };
                let _ = writeln!(s, "  {mark}{} (line {}): {}", e.path, e.line, e.description);
            }
        }
        let compared: Vec<&LegComparison> = self
            .leg_comparisons
            .iter()
            .filter(|l| !l.differences.is_empty())
            .collect();
        if !self.leg_comparisons.is_empty() {
            let _ = writeln!(
                s,
                "\nlegs: {} compared, {} with differences",
                count(self.leg_comparisons.len(), "connection"),
                compared.len()
            );
            for l in compared {
                let why = if l.faultline_bug {
                    "FAULTLINE BUG"
                } else if l.faulted {
                    "explained by faults"
                } else if l.capture_ended {
                    "no fault, the capture ended while they were open"
                } else if self.capture.format == "pcap" {
                    "no fault comments in a classic pcap"
                } else {
                    "no fault, ends differ"
                };
                let _ = writeln!(
                    s,
                    "  client flow {} / upstream flow {} ({why}): {}",
                    l.client_flow,
                    l.upstream_flow,
                    l.differences.join("; ")
                );
            }
        }
        let _ = writeln!(s);
        // Findings in the order `--json` and `--markdown` list them (the headline first), then
        // the verdict line last, where a terminal leaves it in view; a single finding is its own
        // verdict line.
        for f in &self.findings {
            let _ = writeln!(s, "{f}");
        }
        // Several findings: the verdict counts them (the verdict line would repeat the first,
        // which read as one more finding in a trial's report).
        match self.findings.len() {
            0 => {
                let _ = writeln!(s, "{}", self.verdict_line);
            }
            1 => {}
            n => {
                let _ = writeln!(s, "CORRUPT: {}, listed above", count(n, "finding"));
            }
        }
        visible(s)
    }
}

/// `text` with every control character but the line feed shown as U+FFFD: packet comments,
/// warnings and `--expect` paths (percent-decoded) come from files anyone can write, and the
/// report goes to a terminal, which must not obey their escape sequences.
fn visible(text: String) -> String {
    let hidden = |c: char| c.is_control() && c != '\n';
    if !text.chars().any(hidden) {
        return text;
    }
    text.chars()
        .map(|c| if hidden(c) { '\u{fffd}' } else { c })
        .collect()
}

impl Report {
    /// HTTP/2 streams, GOAWAYs and ByteStream blobs (nothing when the capture has no HTTP/2).
    fn render_h2(&self, s: &mut String) {
        use std::fmt::Write;
        if !self.h2_streams.is_empty() {
            let _ = writeln!(
                s,
                "\nHTTP/2 streams:\n{:>4}  {:<8} {:>6}  {:<6} {:<44} {:>6}  {:<20} {:>10} {:>10}  reset / faults",
                "flow", "leg", "stream", "method", "path", "status", "grpc-status", "req bytes", "resp bytes"
            );
        }
        for st in &self.h2_streams {
            let grpc = match (&st.grpc_status, &st.grpc_status_name) {
                (Some(code), Some(name)) => format!("{code} {name}"),
                (Some(code), None) => code.to_string(),
                _ => "-".into(),
            };
            let mut notes: Vec<String> = Vec::new();
            if let Some(r) = &st.reset {
                notes.push(format!("RST_STREAM {} ({})", r.code, r.by));
            }
            notes.extend(st.late_grpc_status());
            if let Some(m) = st.grpc_message.as_ref().filter(|m| !m.is_empty()) {
                notes.push(format!("grpc-message {m:?}"));
            }
            notes.extend(st.faults.iter().map(|f| comment_text(f)));
            let _ = writeln!(
                s,
                "{:>4}  {:<8} {:>6}  {:<6} {:<44} {:>6}  {:<20} {:>10} {:>10}  {}",
                st.flow,
                leg::name(st.leg),
                st.stream,
                st.method.as_deref().unwrap_or("-"),
                table_target(st.path.as_deref().unwrap_or("-"), 44),
                st.status.map_or("-".into(), |c| c.to_string()),
                grpc,
                st.request_bytes,
                st.response_bytes_text(),
                notes.join("; ")
            );
        }
        for c in &self.h2_connections {
            for g in &c.goaways {
                let _ = writeln!(
                    s,
                    "  flow {} ({} leg): GOAWAY {} ({}), last stream {}{}",
                    c.flow,
                    leg::name(c.leg),
                    g.code,
                    g.by,
                    g.last_stream,
                    if g.debug.is_empty() {
                        String::new()
                    } else {
                        format!(", debug {:?}", g.debug)
                    }
                );
            }
        }
        if !self.bytestream.is_empty() {
            let _ = writeln!(
                s,
                "\nByteStream blobs (calls stitched by offset, checked whole):"
            );
        }
        for b in &self.bytestream {
            let (listed, more) = b.listed_calls();
            let mut calls: Vec<String> = listed
                .iter()
                .map(|c| {
                    format!(
                        "{} s{}/f{} {}",
                        c.method,
                        c.stream,
                        c.flow,
                        c.carried_text()
                    )
                })
                .collect();
            calls.extend(more);
            let result = b.result_text(true);
            let mark = if b.corrupt { "CORRUPT " } else { "" };
            let _ = writeln!(
                s,
                "  {mark}{} {} ({} leg, {}): {result} [{}]",
                match b.transfer {
                    Transfer::Upload => "write",
                    Transfer::Download => "read",
                },
                b.resource,
                leg::name(b.leg),
                b.function_text(),
                calls.join(", ")
            );
            for p in &b.problems {
                let _ = writeln!(s, "    {p}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Black-box trial: the text report listed the headline finding last, `--json` and
    /// `--markdown` first. Every format lists them in one order now, the text with its verdict
    /// line after them.
    #[test]
    fn findings_are_listed_in_the_order_of_json_and_markdown() {
        let mut report = crate::inspect::analysis::tests::report_of("client leg", Vec::new());
        report.findings = vec!["CORRUPT: first".into(), "CORRUPT: second".into()];
        report.verdict_line = "CORRUPT: first (and 1 more)".into();
        let text = report.render_text();
        assert!(
            text.ends_with(
                "\nCORRUPT: first\nCORRUPT: second\nCORRUPT: 2 findings, listed above\n"
            ),
            "{text}"
        );
        let md = report.render_markdown();
        let (a, b) = (
            md.find("CORRUPT: first\n").or(md.find("CORRUPT: first |")),
            md.find("CORRUPT: second"),
        );
        assert!(a.zip(b).is_some_and(|(a, b)| a < b), "{md}");
        let json = report.to_json();
        assert!(
            json.find("\"CORRUPT: first\"") < json.find("\"CORRUPT: second\""),
            "{json}"
        );
        report.findings.truncate(1);
        report.verdict_line = "CORRUPT: first".into();
        assert!(report.render_text().ends_with("\n\nCORRUPT: first\n"));
    }

    /// A manifest path `/a%1b%5b31m` (percent-decoded) or a packet comment holding ESC reached
    /// the terminal as an escape sequence.
    #[test]
    fn control_characters_never_reach_the_terminal() {
        let mut report = crate::inspect::html::tests::hostile_report();
        report
            .warnings
            .push("path /a\u{1b}[2J\u{1b}]0;title\u{7} and\ttab\r".into());
        let text = report.render_text();
        assert!(
            !text.chars().any(|c| c.is_control() && c != '\n'),
            "{text:?}"
        );
        assert!(
            text.contains("path /a\u{fffd}[2J\u{fffd}]0;title\u{fffd} and\u{fffd}tab\u{fffd}\n"),
            "{text}"
        );
        assert!(
            text.contains("/<script>x</script>"),
            "the rest is unchanged: {text}"
        );
    }

    /// Issue 15: the FIN comment of a stopped run read as a fault ("run stopped") in the
    /// exchange tables.
    #[test]
    fn a_stopped_run_is_a_note_not_a_fault() {
        assert!(!is_rule_fault("faultline: run stopped"));
        assert_eq!(
            comment_text("faultline: run stopped"),
            "closed when the run stopped (not a fault)"
        );
        let unsent = "faultline: run stopped; 6 bytes client->upstream read and never sent (queued or held by a rule)";
        assert!(!is_rule_fault(unsent));
        assert_eq!(
            comment_text(unsent),
            "closed when the run stopped (not a fault); 6 bytes client->upstream read and never sent (queued or held by a rule)"
        );
        let fault = r#"faultline: rule "r" reset client->upstream after 3 bytes"#;
        assert!(is_rule_fault(fault));
        assert_eq!(comment_text(fault), &fault["faultline: ".len()..]);
    }

    #[test]
    fn formats_utc_times() {
        assert_eq!(format_time(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(
            format_time(1_780_000_000_123_456_789),
            "2026-05-28T20:26:40.123456Z"
        );
        assert_eq!(
            format_time(951_782_400_000_000_000),
            "2000-02-29T00:00:00.000000Z"
        );
    }

    /// User trials: in forward mode every row read `http://127.0.0.1:33719/dvc-remote/files/md5…`,
    /// the part that told the objects apart cut off. The table drops scheme and authority and
    /// cuts the middle.
    /// p2phttp requests show their operation and offset; others are cut as before.
    #[test]
    fn p2phttp_rows_show_the_operation_and_the_offset() {
        use crate::direction::Leg;
        use crate::inspect::legs::tests::exchange;
        let key =
            "SHA256E-s300000--9bfc30d82d39fd014519f1ff9d4902528570f16a570a4ae4ae88f6e38d127d3f.bin";
        let row = |query: &str| {
            let target = format!("/git-annex/9187eb5e-edc6-4836-b425-fbec936fe64e/v4/{query}");
            exchange_target(&exchange(0, Leg::Client, 1, "POST", &target, None), 44)
        };
        assert_eq!(
            row(&format!("checkpresent?key={key}")),
            "/git-annex/…/v4/checkpresent"
        );
        assert_eq!(
            row(&format!("put?key={key}&clientuuid=c&offset=65536")),
            "/git-annex/…/v4/put?…offset=65536"
        );
        assert_eq!(
            row(&format!("put?key={key}&offset=0")),
            "/git-annex/…/v4/put"
        );
        let plain = exchange(0, Leg::Client, 1, "GET", "/a/b", None);
        assert_eq!(exchange_target(&plain, 44), "/a/b");
    }

    #[test]
    fn table_targets_keep_the_objects_tail() {
        let t = table_target(
            "http://127.0.0.1:33719/dvc-remote/files/md5/99/4e368ae5a22a6db1943a397e7c4308",
            44,
        );
        assert_eq!(t, "/dvc-remote…9/4e368ae5a22a6db1943a397e7c4308");
        assert_eq!(t.chars().count(), 44);
        assert_eq!(table_target("http://h:1", 44), "http://h:1");
        assert_eq!(
            table_target("http://127.0.0.1:18099/a.txt", 44),
            "http://127.0.0.1:18099/a.txt"
        );
        assert_eq!(table_target("http://127.0.0.1:18099/a.txt", 20), "/a.txt");
        assert_eq!(table_target("/short", 44), "/short");
        assert_eq!(table_target("example.com:443", 44), "example.com:443");
        assert_eq!(table_target("/abcdefgh", 5), "/…fgh");
        assert_eq!(table_target("/abcdefghijkl", 8), "/a…hijkl");
        assert_eq!(table_target("/abcdefgh", 2), "/…");
        assert_eq!(table_target("/€€€€€€€€€€€€", 6), "/…€€€€");
    }

    #[test]
    fn truncates_long_targets() {
        assert_eq!(truncate("abc", 5), "abc");
        assert_eq!(truncate("abcdefgh", 5), "abcd…");
    }
}
