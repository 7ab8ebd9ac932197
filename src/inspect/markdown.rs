//! Renders the report as a GitHub-ready Markdown summary (`faultline inspect --markdown`) to paste into an issue.
//!
//! Verdict first, then the run (faultline version, scenario, seed), the findings as a table, the
//! retried uploads and content checks, the exchanges and HTTP/2 streams, and the command that
//! replays the run. Everything that comes from the capture (targets, comments, the recorded
//! command) is untrusted text: it is escaped so it can neither break the table nor become HTML or
//! a link on GitHub.

use std::fmt::Write;

use super::leg;
use super::model::{Report, Verdict};
use super::objects::Transfer;
use super::row_caps::{h2_stream_is_notable, rows_to_show};
use super::run_info::RunInfo;
use crate::plural::count;

/// Rows of each list (exchanges, HTTP/2 streams, retried requests, content checks, …) in the
/// Markdown summary before the total budget cuts them further.
const MAX_EXCHANGE_ROWS: usize = 200;
/// GitHub refuses an issue body of more characters than this.
pub const ISSUE_BODY_LIMIT: usize = 65_536;

/// How much of each list one rendering shows: the summary is rendered with the widest caps that
/// keep it under [`ISSUE_BODY_LIMIT`].
#[derive(Debug, Clone, Copy)]
struct Caps {
    /// Rows of every list.
    rows: usize,
    /// Findings listed (the first, the headline, always is).
    findings: usize,
    /// Characters of one finding before it is cut.
    finding_chars: usize,
    /// Whether the recorded scenario is pasted in full.
    scenario: bool,
}

/// From widest to narrowest: the first rendering under the limit is the one pasted.
const CAPS: [Caps; 8] = [
    Caps {
        rows: MAX_EXCHANGE_ROWS,
        findings: usize::MAX,
        finding_chars: usize::MAX,
        scenario: true,
    },
    Caps {
        rows: 100,
        findings: usize::MAX,
        finding_chars: usize::MAX,
        scenario: true,
    },
    Caps {
        rows: 50,
        findings: usize::MAX,
        finding_chars: usize::MAX,
        scenario: true,
    },
    Caps {
        rows: 20,
        findings: 200,
        finding_chars: 2_000,
        scenario: true,
    },
    Caps {
        rows: 10,
        findings: 100,
        finding_chars: 1_000,
        scenario: true,
    },
    Caps {
        rows: 5,
        findings: 50,
        finding_chars: 600,
        scenario: true,
    },
    Caps {
        rows: 0,
        findings: 20,
        finding_chars: 400,
        scenario: true,
    },
    Caps {
        rows: 0,
        findings: 10,
        finding_chars: 300,
        scenario: false,
    },
];

/// "N more things are left out here (where)." after a capped list.
fn left_out_line(s: &mut String, n: usize, one: &str, many: &str, place: &str) {
    if n > 0 {
        let _ = writeln!(
            s,
            "\n{n} more {} left out here ({place}).",
            if n == 1 {
                format!("{one} is")
            } else {
                format!("{many} are")
            }
        );
    }
}

/// Where a list left out of the summary is found in full.
const ELSEWHERE: &str = "every one is in the text report and `--json`";

/// `text` as a Markdown code span: shown as typed (no escapes are read inside one), on one
/// line, fenced by more backticks than any run of them in `text`, padded when it starts or
/// ends with one.
pub fn code_span(text: &str) -> String {
    let text: String = text
        .chars()
        .map(|c| match c {
            '\r' | '\n' | '\t' => ' ',
            c if c.is_control() => '\u{fffd}',
            c => c,
        })
        .collect();
    let longest = text.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest + 1);
    let pad = if text.starts_with('`') || text.ends_with('`') {
        " "
    } else {
        ""
    };
    format!("{fence}{pad}{text}{pad}{fence}")
}

/// `text` safe inside a Markdown paragraph or table cell: one line, CommonMark's active ASCII
/// punctuation backslash-escaped (so `<script>` stays text and `|` stays in its cell).
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\r' | '\n' | '\t' => out.push(' '),
            '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '|' | '~' | '&' | '!' | '#' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// A fenced code block holding `text` verbatim (but control characters, which a capture's
/// section comment may carry, as U+FFFD): the fence is longer than any backtick run inside.
pub fn code_block(lang: &str, text: &str) -> String {
    let text: String = text
        .chars()
        .map(|c| {
            if c.is_control() && c != '\n' {
                '\u{fffd}'
            } else {
                c
            }
        })
        .collect();
    let longest = text.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest.max(2) + 1);
    format!("{fence}{lang}\n{text}\n{fence}\n")
}

/// The replay command, what it does not reproduce, and the scenario it reads (recorded in the
/// capture) as a collapsed TOML block, so the pasted issue alone replays the run from anywhere.
fn markdown_replay(s: &mut String, run: &RunInfo, scenario: bool) {
    let _ = writeln!(s, "\n#### Replay\n");
    if let Some(file) = &run.scenario_file {
        let _ = writeln!(
            s,
            "Save the scenario below as **{}**, then run:\n",
            escape(file)
        );
    }
    s.push_str(&code_block("sh", &run.replay));
    if let Some(note) = &run.replay_note {
        let note: String = super::run_info::note_parts(note)
            .into_iter()
            .map(|(code, part)| match code {
                true => code_span(part),
                false => escape(part),
            })
            .collect();
        let _ = writeln!(s, "\n> **Note:** {note}");
    }
    if let (Some(text), false) = (&run.scenario_toml, scenario) {
        let _ = writeln!(
            s,
            "\nThe recorded scenario ({}) is left out to keep this summary under GitHub's limit: `faultline inspect --html FILE` shows it.",
            count(text.lines().count(), "line")
        );
    } else if let Some(text) = &run.scenario_toml {
        let (name, cut) = run.scenario_label();
        let _ = writeln!(
            s,
            "\n<details><summary>Scenario <code>{}</code> ({}{cut})</summary>\n",
            // Markdown is not read inside an HTML block: HTML's escaping, not Markdown's.
            super::html::escape(name),
            count(text.lines().count(), "line")
        );
        s.push_str(&code_block("toml", text.trim_end_matches('\n')));
        let _ = writeln!(s, "\n</details>");
    }
}

impl Report {
    /// The Markdown summary for a bug report, always under GitHub's issue body limit: every
    /// list is capped (the rows worth a look first) and cut further, saying so, until it fits.
    pub fn render_markdown(&self) -> String {
        let mut last = String::new();
        for (level, caps) in CAPS.iter().enumerate() {
            // Signed URLs' credentials stay out of what is pasted where others read it.
            last = super::redact::signed_url_secrets(&self.markdown_with(caps, level > 0));
            if last.chars().count() < ISSUE_BODY_LIMIT {
                return last;
            }
        }
        // Only a capture whose every line is enormous (a hostile one) gets here: cut the text
        // itself, at a line, and say so.
        let note = "\n\n**This summary was cut at GitHub's issue body limit: `--json` has every detail.**\n";
        let room = ISSUE_BODY_LIMIT - 1 - note.chars().count();
        let mut cut: String = last.chars().take(room).collect();
        if let Some(end) = cut.rfind('\n') {
            cut.truncate(end);
        }
        cut.push_str(note);
        cut
    }

    fn markdown_with(&self, caps: &Caps, budget_cut: bool) -> String {
        let mut s = String::new();
        let (icon, word) = match self.verdict {
            Verdict::Clean => ("✅", "clean"),
            Verdict::Corrupt => ("❌", "CORRUPT"),
            Verdict::Inconclusive => ("⚠️", "INCONCLUSIVE"),
        };
        let _ = writeln!(s, "### {icon} faultline inspect: {word}\n");
        let _ = writeln!(s, "**{}**\n", escape(&self.verdict_line));
        if budget_cut {
            let _ = writeln!(
                s,
                "> Lists below are cut to {} each (the flagged ones first) to keep this summary under GitHub's {ISSUE_BODY_LIMIT}-character issue body limit; `--json` and `--html FILE` have every row.\n",
                count(caps.rows, "row")
            );
        }
        let c = &self.capture;
        let _ = writeln!(s, "| | |\n|---|---|");
        let _ = writeln!(
            s,
            "| capture | {} ({}, {}, {}, legs: {}) |",
            escape(&c.path),
            c.format,
            count(c.packets, "packet"),
            count(self.flows.len(), "flow"),
            self.legs_shown()
        );
        match &self.run {
            Some(run) => {
                let _ = writeln!(s, "| faultline | {} |", escape(&run.faultline_version));
                let _ = writeln!(s, "| scenario | {} |", escape(&run.scenario));
                let _ = writeln!(s, "| seed | {} |", run.seed);
                for (i, other) in self.other_runs.iter().enumerate() {
                    let _ = writeln!(
                        s,
                        "| run {} | faultline {}, scenario {}, seed {}; replay: {} |",
                        i + 2,
                        escape(&other.faultline_version),
                        escape(&other.scenario),
                        other.seed,
                        escape(&other.replay)
                    );
                }
            }
            None => {
                let _ = writeln!(s, "| run | {} |", self.no_run_text());
            }
        }
        let sum = &self.summary;
        let _ = writeln!(
            s,
            "| evidence | {}, {} ({} retried, {} with a differing retry), {}, {}, {} |",
            count(sum.exchanges, "exchange"),
            count(sum.uploads, "upload"),
            sum.retried,
            sum.retries_differing,
            count(sum.downloads, "download"),
            count(sum.h2_streams, "HTTP/2 stream"),
            count(sum.blobs, "ByteStream blob"),
        );
        if let Some(d) = &c.damage {
            let _ = writeln!(s, "| damage | {} |", escape(d));
        }
        self.markdown_findings(&mut s, caps);
        self.markdown_attempts(&mut s, caps.rows);
        self.markdown_checks(&mut s, caps.rows);
        self.markdown_p2phttp(&mut s, caps.rows);
        self.markdown_expectations(&mut s, caps.rows);
        self.markdown_exchanges(&mut s, caps.rows);
        self.markdown_h2(&mut s, caps.rows);
        self.markdown_plain_flows(&mut s, caps.rows);
        if !self.warnings.is_empty() {
            let _ = writeln!(
                s,
                "\n<details><summary>{}</summary>\n",
                count(self.warnings.len(), "warning")
            );
            for w in self.warnings.iter().take(caps.rows.max(1)) {
                let _ = writeln!(s, "- {}", escape(&super::text::truncate(w, 500)));
            }
            left_out_line(
                &mut s,
                self.warnings.len().saturating_sub(caps.rows.max(1)),
                "warning",
                "warnings",
                "the text report has every one",
            );
            let _ = writeln!(s, "\n</details>");
        }
        if let Some(run) = &self.run {
            markdown_replay(&mut s, run, caps.scenario);
        }
        let _ = writeln!(
            s,
            "\n<sub>Written by faultline inspect {}: `--json` has every detail, `--html FILE` draws each connection's timeline.</sub>",
            env!("CARGO_PKG_VERSION")
        );
        s
    }

    fn markdown_findings(&self, s: &mut String, caps: &Caps) {
        if self.findings.is_empty() {
            return;
        }
        let _ = writeln!(s, "\n#### Findings\n\n| # | finding |\n|---:|---|");
        let shown = caps.findings.max(1);
        for (i, f) in self.findings.iter().take(shown).enumerate() {
            let f = super::text::truncate(f, caps.finding_chars);
            let _ = writeln!(s, "| {} | {} |", i + 1, escape(&f));
        }
        left_out_line(
            s,
            self.findings.len().saturating_sub(shown),
            "finding",
            "findings",
            "the text report and `--json` list every one",
        );
    }

    fn markdown_attempts(&self, s: &mut String, max: usize) {
        if self.attempt_groups.is_empty() {
            return;
        }
        let _ = writeln!(
            s,
            "\n#### Retried requests\n\n| request | leg | attempt | exchange | status | body bytes | against attempt 1 |\n|---|---|---:|---:|---|---:|---|"
        );
        let rows: Vec<_> = self
            .attempt_groups
            .iter()
            .flat_map(|g| g.attempts.iter().map(move |a| (g, a)))
            .collect();
        // The attempts worth a look (corrupt, differing, cut) first, each with its attempt 1.
        let differs = |a: &super::model::Attempt| {
            a.corrupt || !a.complete || a.comparison.as_ref().is_some_and(|c| c.is_difference())
        };
        let notable = |i: usize| {
            let (g, a) = rows[i];
            differs(a) || (a.number == 1 && g.attempts.iter().any(differs))
        };
        let shown = rows_to_show(rows.len(), max, notable);
        for &(g, a) in shown.iter().map(|&i| &rows[i]) {
            let against = match (&a.comparison, &a.not_compared) {
                _ if a.number == 1 => "-".to_string(),
                (Some(c), _) => c.describe(a.number),
                (None, Some(why)) => format!("not compared: {why}"),
                (None, None) => "-".into(),
            };
            let mark = if a.corrupt { "**CORRUPT** " } else { "" };
            let _ = writeln!(
                s,
                "| {} {} | {} | {} | {} | {} | {}{} | {mark}{} |",
                escape(&g.method),
                escape(&g.target),
                leg::name(g.leg),
                a.number,
                a.exchange,
                a.status.map_or("none".into(), |c| c.to_string()),
                a.length,
                if a.complete { "" } else { " (cut)" },
                escape(&against)
            );
        }
        left_out_line(
            s,
            rows.len() - shown.len(),
            "attempt",
            "attempts",
            ELSEWHERE,
        );
    }

    /// git-annex p2phttp requests: version, operation, offset and key, as the text report has them.
    fn markdown_p2phttp(&self, s: &mut String, max: usize) {
        let rows = self.p2phttp_rows();
        if rows.is_empty() {
            return;
        }
        let _ = writeln!(
            s,
            "\n#### git-annex p2phttp\n\n| exchange | request | leg | answer |\n|---:|---|---|---|"
        );
        let notable = |i: usize| {
            self.exchange(rows[i].exchange)
                .is_some_and(|ex| !ex.faults.is_empty() || !ex.response.complete)
        };
        let shown = rows_to_show(rows.len(), max, notable);
        for p in shown.iter().map(|&i| &rows[i]) {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} |",
                p.exchange,
                escape(&p.request),
                p.leg,
                escape(&p.answer)
            );
        }
        left_out_line(
            s,
            rows.len() - shown.len(),
            "request",
            "requests",
            ELSEWHERE,
        );
    }

    /// Every exchange, folded away (GitHub renders `<details>`): the context behind the findings.
    fn markdown_exchanges(&self, s: &mut String, max: usize) {
        if self.exchanges.is_empty() {
            return;
        }
        let _ = writeln!(
            s,
            "\n<details><summary>{}</summary>\n\n| # | leg | flow | request | body bytes | response | faults |\n|---:|---|---:|---|---:|---|---|",
            count(self.exchanges.len(), "HTTP exchange")
        );
        // A pasted issue has a size limit: past MAX_EXCHANGE_ROWS, the exchanges worth a look
        // (named by a finding or check, faulted, cut, not answered 2xx/3xx) come first.
        let flagged = self.flagged_exchanges();
        let shown = rows_to_show(self.exchanges.len(), max, |i| {
            self.exchange_is_notable(i, &flagged)
        });
        let left_out = self.exchanges.len() - shown.len();
        for ex in shown.iter().map(|&i| &self.exchanges[i]) {
            let body = if ex.request.complete {
                ex.request.length.to_string()
            } else {
                format!(
                    "{} (cut by {})",
                    ex.request.bytes_text(""),
                    ex.request.cut_text()
                )
            };
            let faults: Vec<String> = ex
                .faults
                .iter()
                .map(|f| super::text::comment_text(&f.text))
                .collect();
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} {} | {} | {} | {} |",
                ex.id,
                leg::name(ex.leg),
                ex.flow,
                escape(&ex.method),
                escape(&ex.target),
                escape(&body),
                escape(&ex.response_text()),
                escape(&faults.join("; "))
            );
        }
        left_out_line(s, left_out, "exchange", "exchanges", ELSEWHERE);
        let _ = writeln!(s, "\n</details>");
    }

    /// Every HTTP/2 stream with its outcome (status, grpc-status, END_STREAM or RST_STREAM) and
    /// the faults on it, then the GOAWAYs: folded away unless a stream was reset or carries a
    /// fault, so a pasted report says which stream faultline reset and by which rule.
    fn markdown_h2(&self, s: &mut String, max: usize) {
        if self.h2_streams.is_empty() && self.h2_connections.iter().all(|c| c.goaways.is_empty()) {
            return;
        }
        let reset = self
            .h2_streams
            .iter()
            .filter(|st| st.reset.is_some())
            .count();
        let faulted = self
            .h2_streams
            .iter()
            .filter(|st| !st.faults.is_empty())
            .count();
        let goaways: usize = self.h2_connections.iter().map(|c| c.goaways.len()).sum();
        let mut summary = format!(
            "{} on {}",
            count(self.h2_streams.len(), "HTTP/2 stream"),
            count(self.h2_connections.len(), "connection")
        );
        for (n, what) in [
            (reset, "reset"),
            (faulted, "with faults"),
            (goaways, "GOAWAY"),
        ] {
            if n > 0 {
                let _ = write!(summary, ", {n} {what}");
            }
        }
        let open = if reset + faulted + goaways > 0 {
            " open"
        } else {
            ""
        };
        let _ = writeln!(
            s,
            "
<details{open}><summary>{summary}</summary>
"
        );
        if !self.h2_streams.is_empty() {
            let _ = writeln!(
                s,
                "| leg | flow | stream | request | status | grpc-status | bytes (request / response) | end | faults |\n|---|---:|---:|---|---|---|---:|---|---|"
            );
        }
        // A pasted issue has a size limit: past MAX_STREAM_ROWS, the streams worth a look (reset,
        // faulted, not OK) come first, in order, and the rest are counted.
        let shown = rows_to_show(self.h2_streams.len(), max, |i| {
            h2_stream_is_notable(&self.h2_streams[i])
        });
        let left_out = self.h2_streams.len() - shown.len();
        for st in shown.iter().map(|&i| &self.h2_streams[i]) {
            let mut grpc = match (st.grpc_status, &st.grpc_status_name) {
                (Some(code), Some(name)) => format!("{code} {name}"),
                (Some(code), None) => code.to_string(),
                (None, _) => "-".into(),
            };
            if let Some(m) = st.grpc_message.as_ref().filter(|m| !m.is_empty()) {
                let _ = write!(grpc, ": {m}");
            }
            if let Some(late) = st.late_grpc_status() {
                let _ = write!(grpc, " ({late})");
            }
            let end = match (&st.reset, st.response_ended) {
                (Some(r), _) => format!("RST_STREAM {} ({})", r.code, r.by),
                (None, true) => "ended".into(),
                (None, false) => "not ended".into(),
            };
            let faults: Vec<String> = st
                .faults
                .iter()
                .map(|f| super::text::comment_text(f))
                .collect();
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} {} | {} | {} | {} / {} | {} | {} |",
                leg::name(st.leg),
                st.flow,
                st.stream,
                escape(st.method.as_deref().unwrap_or("-")),
                escape(st.path.as_deref().unwrap_or("-")),
                st.status.map_or("-".into(), |c| c.to_string()),
                escape(&grpc),
                st.request_bytes,
                st.response_bytes_text(),
                escape(&end),
                escape(&faults.join("; "))
            );
        }
        left_out_line(s, left_out, "stream", "streams", ELSEWHERE);
        let mut first = true;
        for c in &self.h2_connections {
            for g in &c.goaways {
                if std::mem::take(&mut first) {
                    s.push('\n');
                }
                let debug = if g.debug.is_empty() {
                    String::new()
                } else {
                    format!(", debug \"{}\"", escape(&g.debug))
                };
                let _ = writeln!(
                    s,
                    "- flow {} ({} leg): GOAWAY {} ({}), last stream {}{debug}",
                    c.flow,
                    leg::name(c.leg),
                    escape(&g.code),
                    escape(&g.by),
                    g.last_stream
                );
            }
        }
        let _ = writeln!(s, "\n</details>");
    }

    /// Flows that carried no HTTP (a plain TCP proxy's), with the faults on them: otherwise a
    /// capture of TCP faults pastes as a bare "clean" with nothing to look at.
    fn markdown_plain_flows(&self, s: &mut String, max: usize) {
        let plain: Vec<_> = self.flows.iter().filter(|f| !f.http && !f.h2).collect();
        if plain.is_empty() {
            return;
        }
        let _ = writeln!(
            s,
            "\n#### Flows without HTTP\n\nFlow N is Wireshark's `tcp.stream == N`.\n\n| flow | leg | client | server | faults |\n|---:|---|---|---|---|"
        );
        let shown = rows_to_show(plain.len(), max, |i| !plain[i].faults.is_empty());
        let left_out = plain.len() - shown.len();
        for f in shown.iter().map(|&i| plain[i]) {
            let faults: Vec<String> = f
                .faults
                .iter()
                .map(|t| super::text::comment_text(t))
                .collect();
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} |",
                f.id,
                leg::name(f.leg),
                escape(&f.client),
                escape(&f.server),
                escape(&faults.join("; "))
            );
        }
        left_out_line(s, left_out, "flow", "flows", ELSEWHERE);
    }

    /// `--expect`: each manifest line against what the capture shows was stored.
    fn markdown_expectations(&self, s: &mut String, max: usize) {
        if self.expectations.is_empty() {
            return;
        }
        let _ = writeln!(
            s,
            "\n#### Expected objects (`--expect`)\n\n| path | line | expected bytes | stored bytes | result |\n|---|---:|---:|---:|---|"
        );
        let shown = rows_to_show(self.expectations.len(), max, |i| {
            self.expectations[i].corrupt
        });
        for e in shown.iter().map(|&i| &self.expectations[i]) {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {}{} |",
                escape(&e.path),
                e.line,
                e.expected_size,
                e.stored_size.map_or("-".to_string(), |n| n.to_string()),
                if e.corrupt { "**CORRUPT** " } else { "" },
                escape(&e.description)
            );
        }
        left_out_line(
            s,
            self.expectations.len() - shown.len(),
            "manifest line",
            "manifest lines",
            ELSEWHERE,
        );
    }

    /// Every content check, object and ByteStream blob with its result and the notes the text
    /// report has under it (a Read that started over, a resume that skipped bytes).
    fn markdown_checks(&self, s: &mut String, max: usize) {
        let objects = self.objects.iter().map(|o| {
            let what = match o.transfer {
                Transfer::Upload => "upload",
                Transfer::Download => "download",
            };
            let result = o
                .check
                .as_ref()
                .map_or(format!("incomplete ({})", count(o.length, "byte")), |c| {
                    c.describe()
                });
            (
                o.corrupt,
                None,
                format!("{what} {} ({})", o.address.name(), o.address.algo.name()),
                o.leg,
                result,
                o.problems.as_slice(),
            )
        });
        let checks = self.content_checks.iter().filter_map(|cc| {
            let what = self.check_subject(cc)?;
            Some((
                cc.corrupt,
                Some(cc.exchange),
                format!("{what} ({})", Report::check_algorithm(cc)),
                self.exchange(cc.exchange)?.leg,
                cc.check.describe(),
                &[][..],
            ))
        });
        let blobs = self.bytestream.iter().map(|b| {
            let what = match b.transfer {
                Transfer::Upload => "write",
                Transfer::Download => "read",
            };
            let result = b.result_text(false);
            (
                b.corrupt,
                None,
                format!("ByteStream {what} {}", b.resource),
                b.leg,
                result,
                b.problems.as_slice(),
            )
        });
        let rows: Vec<_> = checks.chain(objects).chain(blobs).collect();
        if rows.is_empty() {
            return;
        }
        let _ = writeln!(
            s,
            "\n#### Content checks\n\n| exchange | object | leg | result |\n|---:|---|---|---|"
        );
        let shown = rows_to_show(rows.len(), max, |i| rows[i].0 || !rows[i].5.is_empty());
        // Attempts of one upload check the same object: the exchange tells their rows apart.
        for (corrupt, exchange, what, leg, result, problems) in shown.iter().map(|&i| &rows[i]) {
            let mark = if *corrupt { "**CORRUPT** " } else { "" };
            let notes: String = problems
                .iter()
                .map(|p| format!("<br>{}", escape(p)))
                .collect();
            let _ = writeln!(
                s,
                "| {} | {} | {} | {mark}{}{notes} |",
                exchange.map_or("-".to_string(), |id| id.to_string()),
                escape(what),
                leg::name(*leg),
                escape(result)
            );
        }
        left_out_line(s, rows.len() - shown.len(), "check", "checks", ELSEWHERE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn untrusted_text_stays_text_in_one_cell() {
        assert_eq!(
            escape("PUT /<script>x|y</script>\n`a`"),
            "PUT /\\<script\\>x\\|y\\</script\\> \\`a\\`"
        );
        assert_eq!(escape("a_b*c [l](u) &amp;"), "a\\_b\\*c \\[l\\](u) \\&amp;");
    }

    #[test]
    fn a_hostile_capture_stays_text_and_names_no_run() {
        let md = crate::inspect::html::tests::hostile_report().render_markdown();
        assert!(md.starts_with("### ✅ faultline inspect: clean\n"), "{md}");
        for expected in [
            "| run | not recorded: the capture has no faultline section comment (another tool wrote it) |",
            "| 0 | client | 1 | PUT /\\<script\\>x\\</script\\> | 3 | status 201 |",
            "- \\<img src=x\\>",
        ] {
            assert!(md.contains(expected), "no {expected:?} in:\n{md}");
        }
        assert!(!md.contains("Replay"), "no run, no replay command:\n{md}");
    }

    /// A hostile scenario (backticks, markup, a hostile file name) stays text: the TOML in a
    /// fence longer than its backticks, the name HTML-escaped inside `<summary>`, the note quoted.
    #[test]
    fn the_recorded_scenario_and_the_note_stay_text() {
        let meta = crate::capture::CaptureMeta {
            scenario: "up".into(),
            seed: 3,
            command_line: "faultline run '<b>.toml'".into(),
            scenario_text: Some("name = \"```<script>\"\n".into()),
            scenario_origin: "<b>.toml".into(),
            live_rules: true,
        };
        let mut comments = vec![meta.section_comment()];
        comments.extend(meta.scenario_comment());
        let run = RunInfo::from_section_comments(&comments).expect("a run");
        let mut md = String::new();
        markdown_replay(&mut md, &run, true);
        for expected in [
            "Save the scenario below as **up.toml**, then run:",
            "```sh\nfaultline run up.toml --seed 3\n```",
            "> **Note:** This run was a faultline serve proxy",
            "<summary>Scenario <code>up.toml</code> (1 line)</summary>",
            "````toml\nname = \"```<script>\"\n````",
        ] {
            assert!(md.contains(expected), "no {expected:?} in:\n{md}");
        }
        let run = RunInfo {
            scenario_file: None,
            ..run
        };
        let mut md = String::new();
        markdown_replay(&mut md, &run, true);
        assert!(md.contains("<code>&lt;b&gt;.toml</code>"), "{md}");
        assert!(!md.contains("Save the scenario"), "{md}");
    }

    /// Newcomer trial: the replay note "`--store st` is left out: …" showed its backticks
    /// escaped; they are a code span, and capture text stays text in and out of it.
    #[test]
    fn the_replay_note_renders_its_code_spans() {
        let meta = crate::capture::CaptureMeta {
            scenario: "s".into(),
            seed: 3,
            command_line: "faultline run s.toml --store 'st<b>|x'".into(),
            scenario_text: None,
            scenario_origin: "s.toml".into(),
            live_rules: false,
        };
        let run = RunInfo::from_section_comments(&[meta.section_comment()]).expect("a run");
        let mut md = String::new();
        markdown_replay(&mut md, &run, true);
        assert!(
            md.contains("> **Note:** `--store 'st<b>|x'` is left out: that folder holds"),
            "{md}"
        );
        assert!(!md.contains("\\`"), "{md}");
        assert_eq!(code_span("a`b"), "``a`b``");
        assert_eq!(code_span("`a"), "`` `a ``");
        assert_eq!(code_span("x\ny"), "`x y`");
    }

    #[test]
    fn a_code_block_fence_outgrows_backticks_inside() {
        assert_eq!(
            code_block("sh", "faultline demo"),
            "```sh\nfaultline demo\n```\n"
        );
        assert_eq!(code_block("sh", "a\u{1b}[2J"), "```sh\na\u{fffd}[2J\n```\n");
        let tricky = code_block("sh", "a ```` b");
        assert!(tricky.starts_with("`````sh\n"), "{tricky}");
        assert!(tricky.ends_with("\n`````\n"), "{tricky}");
    }

    /// 900 HTTP/1 connections made a 105,399-character summary, which GitHub refuses as an
    /// issue body (65,536 at most): the exchange table keeps MAX_EXCHANGE_ROWS rows, the
    /// flagged and faulted ones first, and says how many it left out and where they are.
    #[test]
    fn a_capture_of_many_exchanges_pastes_within_an_issue_body() {
        use crate::direction::Leg;
        use crate::inspect::exchange::FaultNote;
        use crate::inspect::legs::tests::exchange;
        let mut exchanges: Vec<_> = (0..900)
            .map(|i| {
                exchange(
                    i,
                    Leg::Client,
                    1,
                    "PUT",
                    &format!("/files/{i:04}"),
                    Some("h"),
                )
            })
            .collect();
        exchanges[850].faults.push(FaultNote {
            text: "faultline rule \"late one\": reset".into(),
            direction: "client->upstream".into(),
            offset: 0,
            scope: "message",
        });
        exchanges[851].response.status = Some(500);
        let report = crate::inspect::analysis::tests::report_of("client leg", exchanges);
        let md = report.render_markdown();
        assert!(md.len() < 65_536, "{} characters", md.len());
        let rows = md.lines().filter(|l| l.contains("| PUT /files/")).count();
        assert_eq!(rows, MAX_EXCHANGE_ROWS, "{md}");
        assert!(
            md.contains("| 850 | client | 1 | PUT /files/0850 |"),
            "{md}"
        );
        assert!(
            md.contains("| 851 | client | 1 | PUT /files/0851 |"),
            "{md}"
        );
        assert!(md.contains("| 0 | client | 1 | PUT /files/0000 |"), "{md}");
        assert!(!md.contains("PUT /files/0500"), "{md}");
        assert!(
            md.contains("700 more exchanges are left out here (every one is in the text report and `--json`)."),
            "{md}"
        );
        assert!(report.render_text().contains("/files/0500"));
    }

    /// A classic pcap of one flow: the text said "legs: none named" and the Markdown "legs:
    /// both", and the Markdown called it "not a faultline capture" though faultline writes .pcap
    /// too. Both now say the same, in the words of the format.
    #[test]
    fn text_and_markdown_agree_on_the_legs_and_the_run_of_a_classic_pcap() {
        use crate::inspect::capture_loss_tests::{pcap, put};
        let report = crate::inspect::inspect_bytes(&pcap(&put(None), 65_535), &Default::default())
            .expect("readable");
        let (text, md) = (report.render_text(), report.render_markdown());
        assert_eq!(report.capture.format, "pcap");
        assert!(text.contains(", legs: none named)"), "{text}");
        assert!(md.contains(", legs: none named) |"), "{md}");
        assert!(
            md.contains("| run | not recorded: a classic pcap has no section comment (a .pcapng capture records the run) |"),
            "{md}"
        );
        assert!(text.contains("a classic pcap has none"), "{text}");
    }

    fn hex_md5(bytes: &[u8]) -> String {
        use md5::{Digest, Md5};
        Md5::digest(bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// 150 PUTs through scenarios/http-first-attempt-fails.toml, each answered 500 and then
    /// 201: `report` of `n` such uploads, each `/dvc-remote/files/md5/…` (`corrupt`: the md5 in
    /// the path is not the body's, so every check and every retry is a finding).
    fn retried_uploads(n: usize, corrupt: bool) -> Report {
        use crate::direction::Leg;
        use crate::inspect::body_store::{MemoryUse, RetainedBody};
        use crate::inspect::legs::tests::exchange;
        let mut exchanges = Vec::new();
        for i in 0..n {
            let body = format!("object {i} ").repeat(40).into_bytes();
            let md5 = if corrupt {
                format!("{:032x}", i)
            } else {
                hex_md5(&body)
            };
            let target = format!("/dvc-remote/files/md5/{}/{}", &md5[..2], &md5[2..]);
            for (attempt, status) in [(0, 500), (1, 201)] {
                let id = exchanges.len();
                let mut ex = exchange(id, Leg::Client, 1, "PUT", &target, Some("h"));
                let mut kept = RetainedBody::new(MemoryUse::default());
                let mut sent = body.clone();
                if corrupt && attempt == 1 {
                    sent[7] ^= 1;
                }
                kept.append(&sent);
                ex.request.length = sent.len() as u64;
                ex.request.expected = Some(sent.len() as u64);
                ex.request.md5 = hex_md5(&sent);
                ex.body = Some(kept);
                ex.response.status = Some(status);
                exchanges.push(ex);
            }
        }
        let mut report = crate::inspect::analysis::tests::report_of("client leg", exchanges);
        let meta = crate::capture::CaptureMeta {
            scenario: "http-first-attempt-fails".into(),
            seed: 7,
            command_line: "faultline run scenarios/http-first-attempt-fails.toml".into(),
            scenario_text: Some("name = \"http-first-attempt-fails\"\n".into()),
            scenario_origin: "scenarios/http-first-attempt-fails.toml".into(),
            live_rules: false,
        };
        let mut comments = vec![meta.section_comment()];
        comments.extend(meta.scenario_comment());
        report.run = RunInfo::from_section_comments(&comments);
        report
    }

    /// Issue: 150 retried PUTs pasted as 94,010 characters, more than GitHub takes (65,536):
    /// the retried requests had no row cap. Every list is capped now, and a total budget cuts
    /// them further, saying so, while the verdict, the findings and the replay stay.
    #[test]
    fn many_retried_uploads_paste_within_an_issue_body() {
        for (n, corrupt) in [(150, false), (400, false), (150, true), (1000, true)] {
            let report = retried_uploads(n, corrupt);
            let md = report.render_markdown();
            let chars = md.chars().count();
            assert!(
                chars < ISSUE_BODY_LIMIT,
                "{n} {corrupt}: {chars} characters"
            );
            let word = if corrupt { "CORRUPT" } else { "clean" };
            assert!(
                md.starts_with(&format!(
                    "### {} faultline inspect: {word}\n",
                    if corrupt { "❌" } else { "✅" }
                )),
                "{md}"
            );
            assert!(md.contains(&escape(&report.verdict_line)), "{md}");
            assert!(md.contains("#### Replay"), "{md}");
            assert!(md.contains("faultline run"), "{md}");
            assert!(md.contains("attempts are left out here"), "{md}");
            if corrupt {
                assert!(md.contains("#### Findings"), "{md}");
                let headline: String = report.findings[0].chars().take(200).collect();
                assert!(md.contains(&format!("| 1 | {}", escape(&headline))), "{md}");
                assert!(md.contains("more checks are left out here"), "{md}");
                assert!(md.contains("issue body limit"), "{md}");
            }
        }
        // 150 clean retries fit in the first caps: no budget note, 200 attempt rows.
        let md = retried_uploads(150, false).render_markdown();
        assert!(!md.contains("issue body limit"), "{md}");
        assert!(md.contains("100 more attempts are left out here"), "{md}");
    }
}
