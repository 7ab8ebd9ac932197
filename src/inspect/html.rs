//! Renders the report as one self-contained HTML page (`faultline inspect --html FILE`) for a bug report: verdict first, timelines, attempts with their bytes, content checks, the run and its replay command.
//!
//! Self-contained: inline CSS, inline SVG, one small inline script (copy the replay command); no
//! external resource, enforced by a Content-Security-Policy of `default-src 'none'`, so the page
//! opens offline and a capture cannot make it fetch anything. A capture is untrusted input: every
//! text that comes from it goes through [`escape`].

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt::Write;

use super::attempts::BodyComparison;
use super::hexdump::{self, Cell};
use super::html_timeline::{self, LegView};
use super::leg;
use super::model::{AttemptGroup, FlowSummary, Report, Verdict};
use super::objects::Transfer;
use super::row_caps::{h2_stream_is_notable, rows_by_rank, rows_to_show};
use super::run_info::RunInfo;
use super::text::format_time;
use super::timeline::{EventKind, FlowTimeline};
use crate::direction::Leg;
use crate::plural::count;

/// Rows of each table (exchanges, HTTP/2 streams, content checks) on the page: past it, the rows
/// worth a look stay and the rest are counted, so a load test's capture still opens in a browser.
const MAX_ROWS: usize = 2_000;
/// Findings listed on the page: the run and its replay come right after them.
const MAX_FINDINGS: usize = 50;
/// Connections drawn as timelines (each is an SVG): the ones with a fault, reset or finding first.
const MAX_TIMELINES: usize = 200;

/// "N more things are not shown here (…)." after a capped list.
fn left_out(s: &mut String, n: usize, one: &str, many: &str, which: &str) {
    if n > 0 {
        let _ = write!(
            s,
            r#"<p class="left-out">{n} more {} not shown here ({which}); the text report and <code>--json</code> list every one.</p>"#,
            if n == 1 { one } else { many }
        );
    }
}

/// [`left_out`] for a table capped by [`rows_to_show`]: the rows not `shown` are `clean` unless
/// more rows were worth a look than fit, and then it says how many of those it left out.
fn left_out_rows(
    s: &mut String,
    len: usize,
    shown: &[usize],
    notable: impl Fn(usize) -> bool,
    one: &str,
    many: &str,
    clean: &str,
) {
    let notable_left =
        (0..len).filter(|&i| notable(i)).count() - shown.iter().filter(|&&i| notable(i)).count();
    let which = if notable_left > 0 {
        format!("{notable_left} of them worth a look: more than the page lists")
    } else {
        clean.to_string()
    };
    left_out(s, len - shown.len(), one, many, &which);
}

/// `text` as HTML text or a quoted attribute value.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() && c != '\n' && c != '\t' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = r#"
:root{--ok:#1a7f37;--bad:#cf222e;--mute:#57606a;--line:#d0d7de;--bg:#f6f8fa;font-family:system-ui,-apple-system,"Segoe UI",sans-serif;color:#1f2328}
body{margin:0 auto;max-width:1100px;padding:0 16px 48px}
h1{margin:0;font-size:1.6em}h2,h3{overflow-wrap:anywhere}h2{border-bottom:1px solid var(--line);padding-bottom:4px;margin-top:32px}
.verdict{margin:16px 0;padding:16px 20px;border-radius:8px;color:#fff}
.verdict.clean{background:var(--ok)}.verdict.corrupt{background:var(--bad)}.verdict.inconclusive{background:#8a6d00}
.verdict p{margin:6px 0 0;font-size:1.05em;overflow-wrap:anywhere}
table{border-collapse:collapse;width:100%;font-size:.9em;margin:8px 0}
th,td{border:1px solid var(--line);padding:4px 8px;text-align:left;vertical-align:top;overflow-wrap:anywhere}
th{background:var(--bg);white-space:nowrap}td.nowrap,td.num{white-space:nowrap}td.faults{min-width:16em}td.result{overflow-wrap:normal;min-width:12em}td.request{min-width:18em}td.time,td.response{overflow-wrap:normal}td.num.bytes{white-space:normal;overflow-wrap:normal;min-width:7em}td.num{text-align:right;font-variant-numeric:tabular-nums}
.corrupt-mark{color:var(--bad);font-weight:bold}.ok-mark{color:var(--ok)}
ol.findings li{margin:6px 0;color:var(--bad);overflow-wrap:anywhere}
pre,code{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:.9em}
pre.replay{background:var(--bg);border:1px solid var(--line);padding:10px;white-space:pre-wrap;overflow-wrap:anywhere}
.hex td{font-family:ui-monospace,monospace;padding:2px 4px;text-align:center;overflow-wrap:normal;white-space:pre}.hex td.diff{background:#ffebe9;color:var(--bad);font-weight:bold}
.hex th{font-weight:normal;color:var(--mute);font-size:.8em}.hex th.at{color:var(--bad);font-weight:bold}.hex td.at{outline:2px solid var(--bad)}
.hex{width:auto}
@media (max-width:760px){table{display:block;overflow-x:auto}td.request{min-width:14em}td.faults{min-width:12em}}
svg.timeline{border:1px solid var(--line);border-radius:6px;background:#fff;margin:8px 0}
svg text{font-size:10px;fill:#1f2328}svg .lane-label{font-weight:bold;font-size:12px}svg .lane-sub,svg .dir{fill:var(--mute)}
svg .dir{text-anchor:end;font-size:9px}svg .life{stroke:#8c959f;stroke-width:2}
svg .request rect{fill:#0969da;opacity:.35}svg .request path{fill:#0969da}
svg .response rect{fill:#8250df;opacity:.35}svg .response path{fill:#8250df}
svg .fin line{stroke:#1f2328;stroke-width:2}svg .rst path{stroke:var(--bad);stroke-width:2.5}svg .rst text{fill:var(--bad);font-weight:bold}
svg .fault path{fill:#bf8700;stroke:#7d4e00}svg .fault text{fill:#7d4e00;font-weight:bold}
svg .mark{font-size:9px}svg .gap rect{fill:#6e7781}svg .note circle{fill:#6e7781}svg .rst-stream text{fill:var(--bad)}svg .rst-stream path{fill:var(--bad)}svg .goaway path{fill:#8250df}svg .goaway text{fill:#8250df}svg .grpc-status path{fill:#0969da}svg .grpc-status text{fill:#0969da}
svg .axis line{stroke:#8c959f}svg .separator{stroke:#d0d7de;stroke-dasharray:4 3}svg .axis text{fill:var(--mute)}
.legend span{margin-right:14px;color:var(--mute);font-size:.85em}.legend i{font-style:normal;white-space:nowrap}.legend svg.key{vertical-align:-2px;margin-right:2px}
button{font:inherit;font-size:.85em;padding:2px 10px;cursor:pointer}
nav.contents{margin:0 0 8px;font-size:.9em;color:var(--mute);overflow-wrap:anywhere}nav.contents a{color:#0969da;white-space:nowrap}
footer{margin-top:40px;color:var(--mute);font-size:.85em}
"#;

const SCRIPT: &str = r#"
document.querySelectorAll('button[data-copy]').forEach(function(b){b.addEventListener('click',function(){
var t=document.getElementById(b.getAttribute('data-copy')).textContent;
if(navigator.clipboard){navigator.clipboard.writeText(t).then(function(){b.textContent='copied';});}});});
"#;

/// The recorded command with its program shown as `faultline` when it is faultline at some path
/// (`/home/me/src/faultline/target/debug/faultline run …`), as the replay command (and the
/// Markdown summary's) names it: a bug report need not carry the reporter's directories.
fn command_shown(command: &str) -> String {
    let Some(program) = shlex::split(command).and_then(|words| words.into_iter().next()) else {
        return command.to_string();
    };
    if !program.ends_with("/faultline") {
        return command.to_string();
    }
    let quoted = shlex::try_quote(&program).map(|q| q.into_owned());
    [quoted.ok(), Some(program)]
        .into_iter()
        .flatten()
        .find_map(|typed| {
            let rest = command.strip_prefix(typed.as_str())?;
            (rest.is_empty() || rest.starts_with(' ')).then(|| format!("faultline{rest}"))
        })
        .unwrap_or_else(|| command.to_string())
}

/// The replay command, and the scenario it reads (recorded in the capture) in a collapsed block
/// with its own copy button, so the page alone replays the run from any directory.
fn html_replay(s: &mut String, run: &RunInfo) {
    let save = run
        .scenario_file
        .as_deref()
        .map(|file| {
            format!(
                r#" save the scenario below as <code class="scenario-file">{}</code>, then run"#,
                escape(file)
            )
        })
        .unwrap_or_default();
    let _ = writeln!(
        s,
        r#"<p>Replay the run (same scenario, same seed: the same faults at the same bytes):{save}</p><pre class="replay" id="replay">{}</pre><button type="button" data-copy="replay">copy</button>"#,
        escape(&run.replay)
    );
    if let Some(note) = &run.replay_note {
        let _ = writeln!(
            s,
            r#"<p class="replay-note"><strong>Note:</strong> {}</p>"#,
            super::run_info::note_parts(note)
                .into_iter()
                .map(|(code, part)| match code {
                    true => format!("<code>{}</code>", escape(part)),
                    false => escape(part),
                })
                .collect::<String>()
        );
    }
    if let Some(text) = &run.scenario_toml {
        let (name, cut) = run.scenario_label();
        let lines = text.lines().count();
        let _ = writeln!(
            s,
            r#"<details class="scenario"><summary>scenario <code>{}</code> ({}{cut})</summary><pre class="replay" id="scenario-toml">{}</pre><button type="button" data-copy="scenario-toml">copy</button></details>"#,
            escape(name),
            count(lines, "line"),
            escape(text)
        );
    }
}

impl Report {
    /// The self-contained HTML page.
    pub fn render_html(&self) -> String {
        // Signed URLs' credentials stay out of a page attached where others read it.
        super::redact::signed_url_secrets(&self.html_page())
    }

    fn html_page(&self) -> String {
        let mut s = String::new();
        let (class, word) = match self.verdict {
            Verdict::Clean => ("clean", "Clean"),
            Verdict::Corrupt => ("corrupt", "CORRUPT"),
            Verdict::Inconclusive => ("inconclusive", "INCONCLUSIVE"),
        };
        let _ = write!(
            s,
            r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="faultline {}">
<title>faultline inspect: {word} — {}</title><style>{STYLE}</style></head><body>
<header id="verdict" class="verdict {class}"><h1>{word}</h1><p>{}</p></header>
"#,
            env!("CARGO_PKG_VERSION"),
            escape(&self.capture.path),
            escape(&self.verdict_line)
        );
        let mut body = String::new();
        self.html_findings(&mut body);
        self.html_run(&mut body);
        self.html_attempts(&mut body);
        self.html_checks(&mut body);
        self.html_p2phttp(&mut body);
        self.html_expectations(&mut body);
        self.html_timelines(&mut body);
        self.html_h2(&mut body);
        self.html_exchanges(&mut body);
        if !self.warnings.is_empty() {
            let _ = write!(body, r#"<section id="warnings"><h2>Warnings</h2><ul>"#);
            for w in &self.warnings {
                let _ = write!(body, "<li>{}</li>", escape(w));
            }
            body.push_str("</ul></section>\n");
        }
        s.push_str(&self.contents(&body));
        s.push_str(&body);
        let _ = write!(
            s,
            "<footer>Written by <code>faultline inspect</code> {} from {} ({}, {}, {}, legs: {}). <code>--json</code> has every field.</footer>\n<script>{SCRIPT}</script></body></html>\n",
            env!("CARGO_PKG_VERSION"),
            escape(&self.capture.path),
            self.capture.format,
            count(self.capture.packets, "packet"),
            count(self.capture.tcp_segments, "TCP segment"),
            self.legs_shown()
        );
        s
    }

    /// Links to the sections of `body` (the page's own markup, where capture text is escaped
    /// and so never reads as a section), right under the verdict: the run and its replay are
    /// one click away however long the lists before them are.
    fn contents(&self, body: &str) -> String {
        const OPEN: &str = r#"<section id=""#;
        let mut links = Vec::new();
        let mut rest = body;
        while let Some(at) = rest.find(OPEN) {
            rest = &rest[at + OPEN.len()..];
            let Some((id, after)) = rest.split_once(r#""><h2>"#) else {
                continue;
            };
            let Some((title, _)) = after.split_once("</h2>") else {
                continue;
            };
            let title = match id {
                "findings" => format!("{title} ({})", self.findings.len()),
                _ => title.to_string(),
            };
            links.push(format!(r##"<a href="#{id}">{title}</a>"##));
        }
        if links.len() < 2 {
            return String::new();
        }
        format!("<nav class=\"contents\">{}</nav>\n", links.join(" · "))
    }

    /// The findings, capped at [`MAX_FINDINGS`]: a faultline bug first, then the CORRUPT ones,
    /// each under its own number (the text report's and `--json`'s order), the rest counted.
    /// Uncapped, 1,500 objects put 4,500 findings before the run and its replay command.
    fn html_findings(&self, s: &mut String) {
        if self.findings.is_empty() {
            return;
        }
        let _ = write!(
            s,
            r#"<section id="findings"><h2>Findings</h2><ol class="findings">"#
        );
        let corrupt = |i: usize| self.findings[i].starts_with("CORRUPT");
        let shown = rows_by_rank(self.findings.len(), MAX_FINDINGS, |i| {
            if self.findings[i].starts_with("CORRUPT: faultline bug") {
                0
            } else if corrupt(i) {
                1
            } else {
                2
            }
        });
        for &i in &shown {
            let _ = write!(
                s,
                r#"<li value="{}">{}</li>"#,
                i + 1,
                escape(&self.findings[i])
            );
        }
        s.push_str("</ol>");
        let left = self.findings.len() - shown.len();
        let corrupt_left = (0..self.findings.len()).filter(|&i| corrupt(i)).count()
            - shown.iter().filter(|&&i| corrupt(i)).count();
        let which = match corrupt_left {
            0 => "none of them CORRUPT".to_string(),
            n if n == left => "each CORRUPT, as the ones above".to_string(),
            n => format!("{n} of them CORRUPT"),
        };
        left_out(s, left, "finding is", "findings are", &which);
        s.push_str("</section>\n");
    }

    fn html_run(&self, s: &mut String) {
        let _ = write!(s, r#"<section id="run"><h2>Run and replay</h2><table>"#);
        let c = &self.capture;
        let _ = write!(
            s,
            "<tr><th>capture</th><td>{} ({}, {}, {}, {})</td></tr>",
            escape(&c.path),
            c.format,
            count(c.packets, "packet"),
            count(self.flows.len(), "flow"),
            count(c.sections, "section")
        );
        if let Some(d) = &c.damage {
            let _ = write!(s, "<tr><th>damage</th><td>{}</td></tr>", escape(d));
        }
        match &self.run {
            Some(run) => {
                let _ = writeln!(
                    s,
                    r#"<tr><th>faultline</th><td class="version">{}</td></tr><tr><th>scenario</th><td class="scenario">{}</td></tr><tr><th>seed</th><td class="seed">{}</td></tr><tr><th>command</th><td><code>{}</code></td></tr></table>"#,
                    escape(&run.faultline_version),
                    escape(&run.scenario),
                    run.seed,
                    escape(&command_shown(&run.command)),
                );
                html_replay(s, run);
                if !self.other_runs.is_empty() {
                    s.push_str(r#"<p>The capture holds more runs (a section each); replay them apart:</p><table class="other-runs">"#);
                    for (i, other) in self.other_runs.iter().enumerate() {
                        let _ = write!(
                            s,
                            r#"<tr><th>run {}</th><td>faultline {}, scenario {}, seed {}: <code>{}</code></td></tr>"#,
                            i + 2,
                            escape(&other.faultline_version),
                            escape(&other.scenario),
                            other.seed,
                            escape(&other.replay),
                        );
                    }
                    s.push_str("</table>");
                }
            }
            None => {
                let _ = write!(
                    s,
                    "<tr><th>run</th><td>{}</td></tr></table>",
                    self.no_run_text()
                );
            }
        }
        s.push_str("</section>\n");
    }

    fn html_attempts(&self, s: &mut String) {
        if self.attempt_groups.is_empty() {
            return;
        }
        let _ = write!(
            s,
            r#"<section id="attempts"><h2>Retried requests</h2><p>Attempts of the same request (method and resource) on one leg, each compared byte for byte with attempt 1.</p>"#
        );
        for g in &self.attempt_groups {
            self.html_group(s, g);
        }
        s.push_str("</section>\n");
    }

    fn html_group(&self, s: &mut String, g: &AttemptGroup) {
        let _ = write!(
            s,
            r#"<div class="attempt-group"><h3>{} {} <small>({} leg, {} attempts)</small></h3><table><tr><th>attempt</th><th>exchange</th><th>flow</th><th>status</th><th>body bytes</th><th>against attempt 1</th></tr>"#,
            escape(&g.method),
            escape(&g.target),
            leg::name(g.leg),
            g.attempts.len()
        );
        for a in &g.attempts {
            let flow = self
                .exchange(a.exchange)
                .map_or("?".to_string(), |e| e.flow.to_string());
            let against = if a.number == 1 {
                "-".to_string()
            } else {
                match (&a.comparison, &a.not_compared) {
                    (Some(c), _) => c.describe(a.number),
                    (None, Some(why)) => format!("not compared: {why}"),
                    (None, None) => "-".into(),
                }
            };
            let mark = if a.corrupt {
                r#"<span class="corrupt-mark">CORRUPT</span> "#
            } else {
                ""
            };
            let _ = write!(
                s,
                r#"<tr><td class="num">{}</td><td class="num">{}</td><td class="num">{flow}</td><td>{}</td><td class="num">{}{}</td><td>{mark}{}</td></tr>"#,
                a.number,
                a.exchange,
                a.status.map_or("none".into(), |c| c.to_string()),
                a.length,
                if a.complete { "" } else { " (cut)" },
                escape(&against)
            );
        }
        s.push_str("</table>");
        for a in &g.attempts {
            if let Some(BodyComparison::Differs {
                offset,
                first_excerpt,
                excerpt,
                shifted_from,
                before,
                ..
            }) = &a.comparison
            {
                let _ = write!(
                    s,
                    r#"<div class="difference" data-offset="{offset}"><p>Attempt {} first differs from attempt 1 at offset <strong class="offset">{offset}</strong>"#,
                    a.number
                );
                if let Some(k) = shifted_from {
                    let _ = write!(
                        s,
                        r#"; <span class="shifted">it equals attempt 1 from offset <strong>{k}</strong>: the retry re-sent a slice instead of seeking back to the start</span>"#
                    );
                }
                s.push_str(".</p>");
                hex_table(
                    s,
                    a.number,
                    *offset,
                    *offset,
                    &hexdump::align(*offset, before, first_excerpt, excerpt),
                );
                // Where the retry's bytes come from: attempt 1 at the shifted offset beside
                // attempt n at the offset above (the comparison proved them equal).
                if let Some(k) = shifted_from {
                    let same: Vec<Cell> = hexdump::bytes_of(excerpt)
                        .into_iter()
                        .enumerate()
                        .map(|(i, b)| Cell {
                            offset: k + i as u64,
                            first: Some(b),
                            other: Some(b),
                        })
                        .collect();
                    let _ = write!(
                        s,
                        r#"<p class="shifted">Attempt 1 at offset <strong>{k}</strong> and attempt {} at offset {offset}: the same bytes.</p>"#,
                        a.number
                    );
                    hex_table(s, a.number, *k, *offset, &same);
                }
                s.push_str("</div>");
            }
        }
        s.push_str("</div>");
    }

    /// git-annex p2phttp requests: version, operation, offset and key, as the text report has them.
    fn html_p2phttp(&self, s: &mut String) {
        let rows = self.p2phttp_rows();
        if rows.is_empty() {
            return;
        }
        let _ = write!(
            s,
            r#"<section id="p2phttp"><h2>git-annex p2phttp</h2><table><tr><th>exchange</th><th>request</th><th>leg</th><th>answer</th></tr>"#
        );
        for p in rows {
            let _ = write!(
                s,
                r#"<tr class="p2phttp"><td class="num">{}</td><td>{}</td><td class="nowrap">{}</td><td>{}</td></tr>"#,
                p.exchange,
                escape(&p.request),
                p.leg,
                escape(&p.answer)
            );
        }
        s.push_str("</table></section>\n");
    }

    /// `--expect`: each manifest line against what the capture shows was stored.
    fn html_expectations(&self, s: &mut String) {
        if self.expectations.is_empty() {
            return;
        }
        let _ = write!(
            s,
            r#"<section id="expectations"><h2>Expected objects (--expect)</h2><p>Each manifest line against the last successful upload of its path in the capture.</p><table><tr><th>path</th><th>line</th><th>expected bytes</th><th>stored bytes</th><th>result</th></tr>"#
        );
        for e in &self.expectations {
            let _ = write!(
                s,
                r#"<tr class="expectation"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}{}</td></tr>"#,
                escape(&e.path),
                e.line,
                e.expected_size,
                e.stored_size.map_or("-".to_string(), |n| n.to_string()),
                if e.corrupt {
                    r#"<span class="corrupt-mark">CORRUPT</span> "#
                } else {
                    ""
                },
                escape(&e.description)
            );
        }
        s.push_str("</table></section>\n");
    }

    fn html_checks(&self, s: &mut String) {
        if self.content_checks.is_empty() && self.objects.is_empty() && self.bytestream.is_empty() {
            return;
        }
        let _ = write!(
            s,
            r#"<section id="checks"><h2>Content checks</h2><p>Each object against the integrity data its protocol carries (DVC md5 paths, git-annex keys, CAS digests).</p><table><tr><th>object</th><th>leg</th><th>pieces</th><th>result</th></tr>"#
        );
        let mark = |corrupt: bool| {
            if corrupt {
                r#"<span class="corrupt-mark">CORRUPT</span> "#
            } else {
                ""
            }
        };
        let checks = rows_to_show(self.content_checks.len(), MAX_ROWS, |i| {
            let cc = &self.content_checks[i];
            cc.corrupt || cc.check.is_mismatch()
        });
        for cc in checks.iter().map(|&i| &self.content_checks[i]) {
            let (Some(ex), Some(what)) = (self.exchange(cc.exchange), self.check_subject(cc))
            else {
                continue;
            };
            let _ = write!(
                s,
                r#"<tr class="check"><td class="object">{} <small>({})</small></td><td class="nowrap">{}</td><td class="nowrap">exchange {}</td><td class="result">{}{}</td></tr>"#,
                escape(&what),
                escape(&Report::check_algorithm(cc)),
                leg::name(ex.leg),
                ex.id,
                mark(cc.corrupt),
                escape(&cc.check.describe())
            );
        }
        let objects = rows_to_show(self.objects.len(), MAX_ROWS, |i| {
            let o = &self.objects[i];
            o.corrupt || !o.problems.is_empty()
        });
        for o in objects.iter().map(|&i| &self.objects[i]) {
            let pieces: Vec<String> = o
                .pieces
                .iter()
                .map(|p| {
                    format!(
                        "exchange {} @{}+{}{}",
                        p.exchange,
                        p.offset,
                        p.length,
                        if p.complete { "" } else { " cut" }
                    )
                })
                .collect();
            let result = o
                .check
                .as_ref()
                .map_or(format!("incomplete ({})", count(o.length, "byte")), |c| {
                    c.describe()
                });
            let problems: String = o
                .problems
                .iter()
                .map(|p| format!("<br>{}", escape(p)))
                .collect();
            let _ = write!(
                s,
                r#"<tr class="object"><td class="object">{} {} <small>({})</small></td><td class="nowrap">{}</td><td>{}</td><td class="result">{}{}{problems}</td></tr>"#,
                match o.transfer {
                    Transfer::Upload => "upload",
                    Transfer::Download => "download",
                },
                escape(&o.address.name()),
                o.address.algo.name(),
                leg::name(o.leg),
                escape(&pieces.join(", ")),
                mark(o.corrupt),
                escape(&result)
            );
        }
        for b in &self.bytestream {
            let (listed, more) = b.listed_calls();
            let mut calls: Vec<String> = listed
                .iter()
                .map(|c| {
                    format!(
                        "{} flow {} stream {} {}",
                        c.method,
                        c.flow,
                        c.stream,
                        c.carried_text()
                    )
                })
                .collect();
            calls.extend(more);
            let result = b.result_text(true);
            let problems: String = b
                .problems
                .iter()
                .map(|p| format!("<br>{}", escape(p)))
                .collect();
            let _ = write!(
                s,
                r#"<tr class="blob"><td class="object">ByteStream {} {} <small>({})</small></td><td class="nowrap">{}</td><td>{}</td><td class="result">{}{}{problems}</td></tr>"#,
                match b.transfer {
                    Transfer::Upload => "write",
                    Transfer::Download => "read",
                },
                escape(&b.resource),
                escape(b.function_text()),
                leg::name(b.leg),
                escape(&calls.join(", ")),
                mark(b.corrupt),
                escape(&result)
            );
        }
        s.push_str("</table>");
        left_out(
            s,
            (self.content_checks.len() - checks.len()) + (self.objects.len() - objects.len()),
            "check is",
            "checks are",
            "each matched its content address",
        );
        s.push_str("</section>\n");
    }

    /// Connections as pairs of flows: each client-leg flow with the upstream-leg flow the leg
    /// comparison matched to it (HTTP/1), else with the first upstream-leg flow opened after it
    /// and before the next client-leg flow (faultline connects upstream right after accepting),
    /// then every flow left alone.
    fn connections(&self) -> Vec<Vec<&FlowSummary>> {
        let by_id: HashMap<u64, &FlowSummary> = self.flows.iter().map(|f| (f.id, f)).collect();
        let mut used = HashSet::new();
        let mut out = Vec::new();
        for lc in &self.leg_comparisons {
            if let (Some(&c), Some(&u)) = (by_id.get(&lc.client_flow), by_id.get(&lc.upstream_flow))
            {
                used.extend([c.id, u.id]);
                out.push(vec![c, u]);
            }
        }
        let mut clients: Vec<&FlowSummary> = self
            .flows
            .iter()
            .filter(|f| f.leg == Some(Leg::Client))
            .collect();
        clients.sort_by_key(|f| f.opened_ns);
        // Unpaired upstream flows by (opened, id): the earliest in a window is a range lookup,
        // so a capture of 100,000 connections pairs in n log n, not n².
        let mut upstreams: BTreeMap<(u64, u64), &FlowSummary> = self
            .flows
            .iter()
            .filter(|u| u.leg == Some(Leg::Upstream) && !used.contains(&u.id))
            .map(|u| ((u.opened_ns, u.id), u))
            .collect();
        for (i, c) in clients.iter().enumerate() {
            if used.contains(&c.id) {
                continue;
            }
            // The window ends at the next client flow, paired or not.
            let next = clients.get(i + 1).map_or(u64::MAX, |n| n.opened_ns);
            let found = upstreams
                .range((c.opened_ns, 0)..(next, 0))
                .next()
                .map(|(&key, &u)| (key, u));
            if let Some((key, u)) = found {
                upstreams.remove(&key);
                used.extend([c.id, u.id]);
                out.push(vec![*c, u]);
            }
        }
        for f in &self.flows {
            if !used.contains(&f.id) {
                out.push(vec![f]);
            }
        }
        out.sort_by_key(|c| c.iter().map(|f| f.opened_ns).min());
        out
    }

    /// How soon a connection (its legs' flows) is drawn: 0 when a rule's fault is marked on a
    /// leg, 1 for a reset or a gap on a leg or an exchange worth a look, 2 for the rest.
    fn connection_rank(
        &self,
        legs: &[&FlowSummary],
        timelines: &HashMap<u64, &FlowTimeline>,
        flagged: &BTreeSet<usize>,
    ) -> u8 {
        let faulted = legs.iter().any(|f| {
            f.faults
                .iter()
                .any(|c| super::text::fault_rule(c).is_some())
        });
        let notable = || {
            legs.iter().any(|f| {
                timelines.get(&f.id).is_some_and(|t| {
                    t.events
                        .iter()
                        .any(|e| matches!(e.kind, EventKind::Reset | EventKind::Gap { .. }))
                }) || f.exchanges.iter().any(|&id| {
                    self.exchanges
                        .binary_search_by_key(&id, |ex| ex.id)
                        .is_ok_and(|i| self.exchange_is_notable(i, flagged))
                })
            })
        };
        if faulted {
            0
        } else if notable() {
            1
        } else {
            2
        }
    }

    fn html_timelines(&self, s: &mut String) {
        let connections = self.connections();
        if connections.is_empty() {
            return;
        }
        let _ = write!(
            s,
            r#"<section id="timelines"><h2>Connections</h2>{}"#,
            html_timeline::legend()
        );
        let timelines: HashMap<u64, &FlowTimeline> =
            self.timelines.iter().map(|t| (t.flow, t)).collect();
        let flagged = self.flagged_exchanges();
        let ranks: Vec<u8> = connections
            .iter()
            .map(|legs| self.connection_rank(legs, &timelines, &flagged))
            .collect();
        let drawn = rows_by_rank(connections.len(), MAX_TIMELINES, |i| ranks[i]);
        for legs in drawn.iter().map(|&i| &connections[i]) {
            let views: Vec<LegView<'_>> = legs
                .iter()
                .filter_map(|f| {
                    let timeline = *timelines.get(&f.id)?;
                    Some(LegView {
                        flow: f,
                        timeline,
                        exchanges: f
                            .exchanges
                            .iter()
                            .filter_map(|&i| self.exchange(i))
                            .collect(),
                        streams: self
                            .h2_streams
                            .iter()
                            .filter(|st| st.flow == f.id)
                            .collect(),
                        goaways: self
                            .h2_connections
                            .iter()
                            .filter(|c| c.flow == f.id)
                            .flat_map(|c| &c.goaways)
                            .collect(),
                    })
                })
                .collect();
            if views.is_empty() {
                continue;
            }
            let title: Vec<String> = legs
                .iter()
                .map(|f| {
                    format!(
                        "{} leg flow {} ({} → {})",
                        leg::name(f.leg),
                        f.id,
                        f.client,
                        f.server
                    )
                })
                .collect();
            let id = format!(
                "connection-{}",
                legs.iter()
                    .map(|f| f.id.to_string())
                    .collect::<Vec<_>>()
                    .join("-")
            );
            let opened = legs.iter().map(|f| f.opened_ns).min().unwrap_or(0);
            let _ = write!(
                s,
                r#"<div class="connection"><h3>{}</h3><p><small>opened {}</small></p>{}</div>"#,
                escape(&title.join(" · ")),
                format_time(opened),
                html_timeline::render(&id, &views)
            );
        }
        // What the connections not drawn had, so "not shown" never reads as "nothing there".
        let mut left = [0usize; 3];
        let mut shown = drawn.iter().peekable();
        for (i, &rank) in ranks.iter().enumerate() {
            if shown.next_if(|&&d| d == i).is_none() {
                left[usize::from(rank)] += 1;
            }
        }
        let which = match left {
            [0, 0, _] => "no fault, reset, gap or exchange worth a look".to_string(),
            [faulted, other, _] => {
                let mut parts = Vec::new();
                if faulted > 0 {
                    parts.push(format!("{faulted} with a fault faultline injected"));
                }
                if other > 0 {
                    parts.push(format!(
                        "{other} with a reset, a gap or an exchange worth a look"
                    ));
                }
                parts.join(", ")
            }
        };
        left_out(
            s,
            connections.len() - drawn.len(),
            "connection is",
            "connections are",
            &which,
        );
        s.push_str("</section>\n");
    }

    fn html_h2(&self, s: &mut String) {
        if self.h2_streams.is_empty() {
            return;
        }
        let _ = write!(
            s,
            r#"<section id="h2"><h2>HTTP/2 streams</h2><table><tr><th>flow</th><th>stream</th><th>request</th><th>status</th><th>grpc-status</th><th>bytes ↑ / ↓</th><th>reset / faults</th></tr>"#
        );
        let shown = rows_to_show(self.h2_streams.len(), MAX_ROWS, |i| {
            h2_stream_is_notable(&self.h2_streams[i])
        });
        for st in shown.iter().map(|&i| &self.h2_streams[i]) {
            let mut notes: Vec<String> = Vec::new();
            if let Some(r) = &st.reset {
                notes.push(format!("RST_STREAM {} ({})", r.code, r.by));
            }
            notes.extend(st.faults.iter().map(|f| super::text::comment_text(f)));
            let mut grpc = match (&st.grpc_status, &st.grpc_status_name) {
                (Some(code), Some(name)) => format!("{code} {name}"),
                (Some(code), None) => code.to_string(),
                _ => "-".into(),
            };
            if let Some(late) = st.late_grpc_status() {
                grpc += &format!(" ({late})");
            }
            let path = st.path.as_deref().unwrap_or("-");
            // A request of ordinary length stays on one line: the faults column wraps instead.
            let request_class = if path.chars().count() <= 64 {
                "request nowrap"
            } else {
                "request"
            };
            let _ = write!(
                s,
                r#"<tr data-leg="{leg}" data-stream="{}"><td class="nowrap">{} <small>{leg}</small></td><td class="num">{}</td><td class="{request_class}">{} {}</td><td>{}</td><td>{}</td><td class="num">{} / {}</td><td class="faults">{}</td></tr>"#,
                st.stream,
                st.flow,
                st.stream,
                escape(st.method.as_deref().unwrap_or("-")),
                escape(path),
                st.status.map_or("-".into(), |c| c.to_string()),
                escape(&grpc),
                st.request_bytes,
                st.response_bytes_text(),
                escape(&notes.join("; ")),
                leg = leg::name(st.leg),
            );
        }
        s.push_str("</table>");
        left_out_rows(
            s,
            self.h2_streams.len(),
            &shown,
            |i| h2_stream_is_notable(&self.h2_streams[i]),
            "stream is",
            "streams are",
            "not reset, no fault, no failed gRPC status",
        );
        s.push_str("</section>\n");
    }

    fn html_exchanges(&self, s: &mut String) {
        if self.exchanges.is_empty() {
            return;
        }
        let _ = write!(
            s,
            r#"<section id="exchanges"><h2>HTTP exchanges</h2><table><tr><th>#</th><th>time (UTC)</th><th>leg</th><th>flow</th><th>request</th><th>body bytes</th><th>response</th><th>faults</th></tr>"#
        );
        let flagged = self.flagged_exchanges();
        let shown = rows_to_show(self.exchanges.len(), MAX_ROWS, |i| {
            self.exchange_is_notable(i, &flagged)
        });
        for ex in shown.iter().map(|&i| &self.exchanges[i]) {
            let faults: Vec<String> = ex
                .faults
                .iter()
                .map(|f| super::text::comment_text(&f.text))
                .collect();
            let body = body_bytes_cell(ex);
            let leg_class = match ex.leg {
                Some(Leg::Client) => "client",
                Some(Leg::Upstream) => "upstream",
                None => "unknown",
            };
            let _ = write!(
                s,
                r#"<tr class="{leg_class}"><td class="num">{}</td><td class="time">{}</td><td class="nowrap">{}</td><td class="num">{}</td><td class="request">{} {}</td>{body}<td class="response">{} ({} bytes)</td><td class="faults">{}</td></tr>"#,
                ex.id,
                // The date above the time when the columns need the room.
                escape(&format_time(ex.time_ns)).replacen('T', "T<wbr>", 1),
                leg::name(ex.leg),
                ex.flow,
                escape(&ex.method),
                breakable(&ex.target),
                escape(&ex.response_text()),
                ex.response.body_length,
                breakable(&faults.join("; "))
            );
        }
        s.push_str("</table>");
        left_out_rows(
            s,
            self.exchanges.len(),
            &shown,
            |i| self.exchange_is_notable(i, &flagged),
            "exchange is",
            "exchanges are",
            "answered 2xx or 3xx, complete, no fault",
        );
        s.push_str("</section>\n");
    }
}

/// The body-bytes cell of an exchange: `113106 (length unknown: chunked) (cut by connection
/// reset)` for a cut body. Kept on one line, that text took the width the request column needed
/// (its URL then wrapped every 7 characters): the cell wraps at its spaces instead.
fn body_bytes_cell(ex: &crate::inspect::Exchange) -> String {
    if ex.request.complete {
        return format!(r#"<td class="num">{}</td>"#, ex.request.length);
    }
    format!(
        r#"<td class="num bytes">{} (cut by {})</td>"#,
        escape(&ex.request.bytes_text("")),
        escape(ex.request.cut_text())
    )
}

/// `text` escaped, with a line-break opportunity after each `/`, `?`, `&` and `=`: a long
/// request target wraps between its path segments and query parameters before it wraps inside
/// one.
fn breakable(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    for part in text.split_inclusive(['/', '?', '&', '=']) {
        out.push_str(&escape(part));
        if part.ends_with(['/', '?', '&', '=']) {
            out.push_str("<wbr>");
        }
    }
    out
}

/// The bytes of both attempts at the first difference, as a hexdump: the bytes before it (the
/// same in both) on one line, then attempt 1's bytes from `at` on and attempt `number`'s from
/// `other_at` (the same offset, but for a shifted retry); differing bytes marked.
fn hex_table(s: &mut String, number: usize, at: u64, other_at: u64, cells: &[Cell]) {
    let (before, after): (Vec<&Cell>, Vec<&Cell>) = cells.iter().partition(|c| c.offset < at);
    let columns = before.len().max(after.len()).max(1);
    let _ = write!(
        s,
        r#"<table class="hex"><tr><th>offset</th><th>bytes of</th>"#
    );
    for i in 0..columns {
        let _ = write!(s, "<th>+{i:x}</th>");
    }
    s.push_str("<th>ASCII</th></tr>");
    let line =
        |s: &mut String, offset: u64, at_line: bool, who: &str, row: &[(Option<u8>, bool)]| {
            let mark = if at_line { r#" class="at""# } else { "" };
            let _ = write!(s, "<tr><th{mark}>{offset}</th><th>{}</th>", escape(who));
            let mut ascii = String::new();
            for i in 0..columns {
                let (byte, differs) = row.get(i).copied().unwrap_or((None, false));
                let class = match (differs, at_line && i == 0) {
                    (true, _) => r#" class="diff""#,
                    (false, true) => r#" class="at""#,
                    (false, false) => "",
                };
                match byte {
                    Some(b) => {
                        let _ = write!(s, "<td{class}>{b:02x}</td>");
                        ascii.push(hexdump::printable(b));
                    }
                    None if i < row.len() => {
                        let _ = write!(s, "<td{class}>··</td>");
                    }
                    None => s.push_str("<td></td>"),
                }
            }
            let _ = write!(s, "<td><code>{}</code></td></tr>", escape(&ascii));
        };
    if let Some(first) = before.first() {
        let row: Vec<(Option<u8>, bool)> = before.iter().map(|c| (c.first, false)).collect();
        line(s, first.offset, false, "both attempts", &row);
    }
    let first: Vec<(Option<u8>, bool)> = after.iter().map(|c| (c.first, c.differs())).collect();
    line(s, at, true, "attempt 1", &first);
    let other: Vec<(Option<u8>, bool)> = after.iter().map(|c| (c.other, c.differs())).collect();
    line(s, other_at, true, &format!("attempt {number}"), &other);
    s.push_str("</table>");
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Newcomer trial: the replay note showed literal backticks; its code spans are `<code>`,
    /// and capture text stays escaped in and out of them.
    #[test]
    fn the_replay_note_renders_its_code_spans() {
        let meta = crate::capture::CaptureMeta {
            scenario: "s".into(),
            seed: 3,
            command_line: "faultline run s.toml --store 'st<b>'".into(),
            scenario_text: None,
            scenario_origin: "s.toml".into(),
            live_rules: false,
        };
        let run = RunInfo::from_section_comments(&[meta.section_comment()]).expect("a run");
        let mut html = String::new();
        html_replay(&mut html, &run);
        assert!(
            html.contains("<strong>Note:</strong> <code>--store &#39;st&lt;b&gt;&#39;</code> is left out: that folder"),
            "{html}"
        );
        assert!(!html.contains('`'), "{html}");
    }

    /// Maintainer trial: the Run table showed `/work/wt/bin/faultline run …`, the reporter's
    /// directories in every bug report. The program is `faultline`, as in the replay command.
    #[test]
    fn the_recorded_command_names_the_program_faultline() {
        assert_eq!(
            command_shown("/work/wt/bin/faultline run /s/x.toml --seed 3"),
            "faultline run /s/x.toml --seed 3"
        );
        assert_eq!(
            command_shown("'/my dir/faultline' run x.toml"),
            "faultline run x.toml"
        );
        assert_eq!(command_shown("faultline demo"), "faultline demo");
        assert_eq!(command_shown("/usr/bin/other run"), "/usr/bin/other run");
        assert_eq!(command_shown("/x/faultliner run"), "/x/faultliner run");
        let meta = crate::capture::CaptureMeta {
            scenario: "s".into(),
            seed: 3,
            command_line: "/work/wt/bin/faultline run s.toml --seed 3".into(),
            scenario_text: None,
            scenario_origin: "s.toml".into(),
            live_rules: false,
        };
        let mut report = hostile_report();
        report.run = RunInfo::from_section_comments(&[meta.section_comment()]);
        let html = report.render_html();
        assert!(
            html.contains("<td><code>faultline run s.toml --seed 3</code></td>"),
            "{html}"
        );
        assert!(!html.contains("/work/wt/bin"), "{html}");
    }

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            escape(r#"<script>alert("x")</script> & 'y'"#),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;y&#39;"
        );
        assert_eq!(escape("a\u{0}b"), "a\u{fffd}b");
    }

    /// A report of one client-leg flow whose request target carries markup, with a fault and a
    /// reset on its timeline, from a capture without faultline's section comment.
    pub(crate) fn hostile_report() -> Report {
        use crate::direction::Direction;
        use crate::inspect::analysis;
        use crate::inspect::exchange::FlowOutcome;
        use crate::inspect::legs::tests::exchange;
        use crate::inspect::model::CaptureInfo;
        use crate::inspect::reassembly::FlowInfo;
        use crate::inspect::timeline::{EventKind, FlowTimeline};
        use crate::inspect::LegFilter;
        let mut ex = exchange(0, Leg::Client, 1, "PUT", "/<script>x</script>", None);
        ex.request_range = (0, Some(100));
        let flow = FlowInfo {
            id: 1,
            interface: Some("client leg".into()),
            client: "127.0.0.1:1".parse().expect("addr"),
            server: "127.0.0.1:2".parse().expect("addr"),
            opened_ns: 0,
            saw_syn: true,
            client_isn: None,
        };
        let outcome = FlowOutcome {
            exchanges: vec![ex],
            http: true,
            warnings: vec!["<img src=x>".into()],
            faults: Vec::new(),
            capture_missed: false,
            open_at_end: false,
            undecrypted: false,
        };
        let capture = CaptureInfo {
            path: "<i>.pcapng".into(),
            format: "pcapng",
            sections: 1,
            packets: 3,
            tcp_segments: 3,
            damage: None,
            truncated_packets: 0,
        };
        let mut report = analysis::build(capture, LegFilter::Both, vec![(flow, outcome)]);
        let mut t = FlowTimeline::new(1, 0);
        let up = Direction::ClientToUpstream;
        t.data(up, 0, 100, 10);
        t.event(
            up,
            50,
            20,
            EventKind::Fault(r#"faultline: rule "r<1>" reset client->upstream"#.into()),
        );
        t.event(up, 100, 30, EventKind::Reset);
        report.timelines = vec![t];
        report
    }

    /// Two attempts of one PUT on the client leg: the retry re-sent the first attempt's bytes from
    /// offset 1000 on and was accepted (the shifted-slice bug).
    pub(crate) fn shifted_retry_report() -> Report {
        let body: Vec<u8> = (0..4096u32).map(|i| (i * 7 % 251) as u8).collect();
        retry_report(&body, body.len() as u64, &body[1000..])
    }

    /// A report of client-leg flows, each holding one exchange opened at `ex.time_ns`.
    pub(crate) fn client_flows_report(exchanges: Vec<crate::inspect::Exchange>) -> Report {
        use crate::inspect::analysis;
        use crate::inspect::exchange::FlowOutcome;
        use crate::inspect::model::CaptureInfo;
        use crate::inspect::reassembly::FlowInfo;
        use crate::inspect::LegFilter;
        let flows = exchanges
            .into_iter()
            .map(|ex| {
                (
                    FlowInfo {
                        id: ex.flow,
                        interface: Some("client leg".into()),
                        client: "127.0.0.1:1".parse().expect("addr"),
                        server: "127.0.0.1:2".parse().expect("addr"),
                        opened_ns: ex.time_ns,
                        saw_syn: true,
                        client_isn: None,
                    },
                    FlowOutcome {
                        exchanges: vec![ex],
                        http: true,
                        warnings: Vec::new(),
                        faults: Vec::new(),
                        capture_missed: false,
                        open_at_end: false,
                        undecrypted: false,
                    },
                )
            })
            .collect();
        analysis::build(CaptureInfo::for_tests(), LegFilter::Both, flows)
    }

    /// Two attempts of one PUT on the client leg: `first` (of `expected` bytes, cut when
    /// shorter, by a reset), then `second`, accepted.
    pub(crate) fn retry_report(first: &[u8], expected: u64, second: &[u8]) -> Report {
        use crate::inspect::body_store::{MemoryUse, RetainedBody};
        use crate::inspect::legs::tests::exchange;
        let attempt = |id: usize, flow: u64, bytes: &[u8], expected: u64| {
            let mut ex = exchange(id, Leg::Client, flow, "PUT", "/upload/x.bin", None);
            let mut kept = RetainedBody::new(MemoryUse::default());
            kept.append(bytes);
            ex.body = Some(kept);
            ex.request.length = bytes.len() as u64;
            ex.request.expected = Some(expected);
            if (bytes.len() as u64) < expected {
                ex.request.complete = false;
                ex.request.cut_by = Some("reset".into());
                ex.response.status = None;
                ex.response.outcome = crate::inspect::Outcome::ConnectionReset;
            }
            // Attempt 1's answer never came (a whole body accepted would make attempt 2 a new
            // write of the file, not its retry).
            if id == 0 {
                ex.response.status = None;
                ex.response.outcome = crate::inspect::Outcome::ConnectionReset;
            }
            ex.time_ns = flow * 1_000_000;
            ex
        };
        client_flows_report(vec![
            attempt(0, 1, first, expected),
            attempt(1, 2, second, second.len() as u64),
        ])
    }

    /// A load test's capture (a trial: 3,000 connections made a 17.7 MB page) keeps its tables
    /// and timelines capped, with the exchange that went wrong still on the page.
    #[test]
    fn a_capture_of_thousands_of_exchanges_keeps_the_page_small_and_the_failure_on_it() {
        use crate::inspect::legs::tests::exchange;
        let exchanges = (0..MAX_ROWS + 50)
            .map(|i| {
                let flow = i as u64 + 1;
                let mut ex = exchange(i, Leg::Client, flow, "GET", &format!("/objects/{i}"), None);
                ex.time_ns = flow * 1_000;
                if i == 1_777 {
                    ex.response.status = Some(500);
                }
                ex
            })
            .collect();
        let html = client_flows_report(exchanges).render_html();
        assert!(
            html.contains("/<wbr>objects/<wbr>1777</td>"),
            "the 500 is listed"
        );
        assert!(
            html.contains(
                "50 more exchanges are not shown here (answered 2xx or 3xx, complete, no fault)"
            ),
            "the rest is counted"
        );
        assert!(
            html.contains("/<wbr>objects/<wbr>0</td>")
                && !html.contains("/<wbr>objects/<wbr>2049</td>")
        );
        assert_eq!(html.matches("<tr class=\"client\">").count(), MAX_ROWS);

        // More failures than fit: the note says how many failures it left out.
        let exchanges = (0..MAX_ROWS + 5)
            .map(|i| {
                let flow = i as u64 + 1;
                let mut ex = exchange(i, Leg::Client, flow, "GET", &format!("/objects/{i}"), None);
                ex.time_ns = flow * 1_000;
                ex.response.status = Some(503);
                ex
            })
            .collect();
        let html = client_flows_report(exchanges).render_html();
        assert!(
            html.contains("5 more exchanges are not shown here (5 of them worth a look: more than the page lists)"),
            "{}",
            html.len()
        );
    }

    /// Maintainer trial: 1,500 objects uploaded twice made 4,500 findings, every one listed,
    /// and the run with its replay command ~170,000 px down the page. The list is capped (the
    /// CORRUPT findings first, each under its own number), the rest counted, and the top of
    /// the page links to every section.
    #[test]
    fn thousands_of_findings_are_capped_and_the_replay_is_linked_from_the_top() {
        let mut report = shifted_retry_report();
        let mut findings: Vec<String> = (0..10).map(|i| format!("a note {i}")).collect();
        findings.extend((0..4_500).map(|i| format!("CORRUPT: object {i} differs")));
        report.findings = findings;
        let html = report.render_html();
        assert_eq!(html.matches("<li value=").count(), MAX_FINDINGS, "capped");
        assert!(
            html.contains(r#"<li value="11">CORRUPT: object 0 differs</li>"#),
            "the CORRUPT ones first, numbered as in the text report"
        );
        assert!(!html.contains("a note 0"), "the others after them");
        assert!(
            html.contains("4460 more findings are not shown here (4450 of them CORRUPT); the text report and <code>--json</code> list every one."),
            "the rest is counted"
        );
        let verdict = html.find("</header>").expect("the verdict");
        let contents = &html[verdict..html.find(r#"<section id="findings">"#).expect("findings")];
        for link in [
            r##"<a href="#findings">Findings (4510)</a>"##,
            r##"<a href="#run">Run and replay</a>"##,
            r##"<a href="#attempts">Retried requests</a>"##,
            r##"<a href="#exchanges">HTTP exchanges</a>"##,
        ] {
            assert!(contents.contains(link), "no {link} in {contents}");
        }
        assert!(
            html.find(r#"<section id="run">"#).expect("the run") < 20_000,
            "the run is near the top"
        );
    }

    #[test]
    fn a_shifted_retry_shows_its_offset_the_shift_and_both_attempts_bytes() {
        let report = shifted_retry_report();
        assert_eq!(report.verdict, Verdict::Corrupt, "{:?}", report.findings);
        let html = report.render_html();
        for expected in [
            r#"<div class="difference" data-offset="0">"#,
            r#"<span class="shifted">it equals attempt 1 from offset <strong>1000</strong>"#,
            r#"<th class="at">0</th><th>attempt 1</th><td class="diff">00</td>"#,
            r#"<th class="at">0</th><th>attempt 2</th><td class="diff">"#,
            r#"<span class="corrupt-mark">CORRUPT</span>"#,
        ] {
            assert!(html.contains(expected), "no {expected:?} in:\n{html}");
        }
        let md = report.render_markdown();
        assert!(
            md.contains("| PUT /upload/x.bin | client | 2 | 1 | 201 | 3096 | **CORRUPT** attempt 2 differs from attempt 1 at offset 0"),
            "{md}"
        );
        assert!(md.contains("equals attempt 1 from offset 1000"), "{md}");
    }

    /// User trials: attempt 1 cut by a reset (3000 of 4096 bytes), attempt 2 the body from
    /// offset 1000: "differs at offset 0" and nothing more. The shift is named from the bytes
    /// attempt 1 holds, and the hex view shows attempt 1 at the shifted offset.
    #[test]
    fn a_retry_from_mid_body_after_a_cut_attempt_shows_attempt_1_at_the_shift() {
        let body: Vec<u8> = (0..4096u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let report = retry_report(&body[..3000], 4096, &body[1000..]);
        assert_eq!(report.verdict, Verdict::Corrupt, "{:?}", report.findings);
        let said = "attempt 2 equals attempt 1 from offset 1000 (the 2000 bytes attempt 1 holds from there; it was cut at 3000)";
        assert!(
            report.render_text().contains(said),
            "{}",
            report.render_text()
        );
        assert!(report.render_markdown().contains(said));
        let html = report.render_html();
        let at_shift = format!(
            r#"<th class="at">1000</th><th>attempt 1</th><td class="at">{:02x}</td>"#,
            body[1000]
        );
        for expected in [
            r#"<span class="shifted">it equals attempt 1 from offset <strong>1000</strong>"#,
            r#"<p class="shifted">Attempt 1 at offset <strong>1000</strong> and attempt 2 at offset 0: the same bytes.</p>"#,
            &at_shift,
            &format!(
                r#"<th class="at">0</th><th>attempt 2</th><td class="at">{:02x}</td>"#,
                body[1000]
            ),
        ] {
            assert!(html.contains(expected), "no {expected:?} in:\n{html}");
        }
    }

    #[test]
    fn a_hostile_capture_renders_as_text_with_its_timeline() {
        let html = hostile_report().render_html();
        for expected in [
            "PUT /&lt;script&gt;x&lt;/script&gt;",
            r#"<g class="fault" data-rule="r&lt;1&gt;" data-ns="#,
            r#"<g class="rst" data-ns="#,
            r#"<g class="request" data-exchange="0">"#,
            "&lt;img src=x&gt;",
            "&lt;i&gt;.pcapng",
            "not recorded: the capture has no faultline section comment",
        ] {
            assert!(html.contains(expected), "no {expected:?} in:\n{html}");
        }
        assert!(
            !html.contains("<script>x") && !html.contains("<img"),
            "{html}"
        );
        assert_eq!(html.matches("<script>").count(), 1, "the page's own script");
    }
}
