//! Builds the inspection report from finished flows and renders it as a text table or stable JSON.

use serde::Serialize;

use super::attempts::{self, BodyComparison};
use super::content_address::{self, AddressCheck, ContentAddress};
use super::exchange::{Exchange, FlowOutcome, Outcome};
use super::leg;
pub use super::legs::LegComparison;
use super::reassembly::FlowInfo;
use super::LegFilter;
use crate::direction::Leg;

/// JSON schema version; bumped only for incompatible changes (fields may be added within a version).
pub const SCHEMA_VERSION: u32 = 1;

/// The `--json` schema, for `--help` and scripts. Field docs on the structs say the same.
pub const SCHEMA: &str = r#"faultline inspect --json (schema_version 1): one JSON object
  schema_version   1
  verdict          "clean" | "corrupt"          (exit status 0 | 1; unreadable capture: exit 2, no JSON)
  verdict_line     "OK: ..." or the first "CORRUPT: ..." line
  findings         ["CORRUPT: ..."]              every corruption found
  summary          {exchanges, uploads, retried, retries_differing}
  capture          {path, format: "pcap"|"pcapng", sections, packets, tcp_segments, damage: null|"why reading stopped"}
  leg_filter       "client" | "upstream" | "both"
  warnings         ["..."]                       framing lost, capture gaps
  flows            [{id, leg, client: "ip:port", server: "ip:port", opened_ns, saw_syn, http, exchanges: [exchange id], faults: ["comment"]}]
  exchanges        [{id, leg: "client"|"upstream"|"unknown", flow, time_ns, method, target,
                     request: {length, expected: null|n, chunked, complete, cut_by: null|"...", md5, sha256},
                     response: {outcome: "status"|"no_response"|"connection_reset", status: null|n, body_length, complete},
                     faults: [{text, direction: "client->upstream"|"upstream->client", offset, scope: "message"|"flow"}]}]
  attempt_groups   [{leg, method, target, attempts: [{number, exchange, status, length, complete,
                     comparison: null (attempt 1) | {result: "identical"|"empty"|"prefix_of_first"|"extends_first"|"differs",
                       first_len, len, offset, first_excerpt: {hex, ascii}, excerpt: {hex, ascii}, shifted_from: null|n},
                     description, not_compared: null|"why", corrupt}]}]
  content_checks   [{exchange, address: {algo: "md5"|"sha256", digest, size: null|n, scheme: "dvc"|"git-annex"|"cas"},
                     check: {result: "matches"} | {result: "digest_mismatch", expected, actual} | {result: "size_mismatch", expected, actual},
                     corrupt}]
  leg_comparisons  [{client_flow, upstream_flow, exchanges_compared, faulted, differences: ["..."], faultline_bug}]
"#;

/// Whether the capture shows corruption.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// No corruption found (exit status 0).
    Clean,
    /// At least one corrupt retry, content-address mismatch or faultline bug (exit status 1).
    Corrupt,
}

/// Where the evidence came from.
#[derive(Debug, Clone, Serialize)]
pub struct CaptureInfo {
    /// The capture file as given.
    pub path: String,
    /// `pcap` or `pcapng`.
    pub format: &'static str,
    /// pcapng sections read (1 for classic pcap; more for merged or concatenated captures).
    pub sections: u32,
    /// Packet records read.
    pub packets: u64,
    /// Records that decoded to a TCP segment (on the selected legs).
    pub tcp_segments: u64,
    /// Why reading stopped before the end of the file (a cut or damaged record), if it did.
    pub damage: Option<String>,
}

/// One TCP flow.
#[derive(Debug, Clone, Serialize)]
pub struct FlowSummary {
    /// Flow id, in order of first packet.
    pub id: u64,
    /// Capture leg (`None`: not a faultline leg, "unknown" in JSON).
    #[serde(serialize_with = "leg::serialize")]
    pub leg: Option<Leg>,
    /// Connecting side, `ip:port`.
    pub client: String,
    /// Accepting side, `ip:port`.
    pub server: String,
    /// First packet time, ns since the epoch.
    pub opened_ns: u64,
    /// True when its SYN was captured.
    pub saw_syn: bool,
    /// True when it carried HTTP/1.
    pub http: bool,
    /// Ids of its exchanges.
    pub exchanges: Vec<usize>,
    /// Fault comments on its packets.
    pub faults: Vec<String>,
}

/// One attempt of a retried request.
#[derive(Debug, Clone, Serialize)]
pub struct Attempt {
    /// 1-based attempt number, in time order.
    pub number: usize,
    /// Exchange id.
    pub exchange: usize,
    /// Final status, if any.
    pub status: Option<u16>,
    /// Body bytes received.
    pub length: u64,
    /// True when the body was complete.
    pub complete: bool,
    /// Comparison with attempt 1 (`null` for attempt 1).
    pub comparison: Option<BodyComparison>,
    /// One sentence for humans.
    pub description: String,
    /// Why the bodies could not be compared, if they could not.
    pub not_compared: Option<String>,
    /// True when this attempt differs from attempt 1 and was answered 2xx.
    pub corrupt: bool,
}

/// Attempts of the same request (same leg, method and target), in time order.
#[derive(Debug, Clone, Serialize)]
pub struct AttemptGroup {
    /// Capture leg (`None`: not a faultline leg, "unknown" in JSON).
    #[serde(serialize_with = "leg::serialize")]
    pub leg: Option<Leg>,
    /// Request method.
    pub method: String,
    /// Request target.
    pub target: String,
    /// Two or more attempts.
    pub attempts: Vec<Attempt>,
}

/// A complete upload checked against the content address in its target.
#[derive(Debug, Clone, Serialize)]
pub struct ContentCheck {
    /// Exchange id.
    pub exchange: usize,
    /// What the target promises.
    pub address: ContentAddress,
    /// What the body was.
    pub check: AddressCheck,
    /// True for a mismatch the server did not reject (status 2xx or no status).
    pub corrupt: bool,
}

/// Counts behind the verdict line.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// HTTP exchanges.
    pub exchanges: usize,
    /// Distinct uploads (PUT/POST/PATCH method + target).
    pub uploads: usize,
    /// Distinct uploads sent more than once on some leg.
    pub retried: usize,
    /// Retries whose body differs from their first attempt.
    pub retries_differing: usize,
}

/// Everything `faultline inspect` found.
#[derive(Debug, Serialize)]
pub struct Report {
    /// See [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// Clean or corrupt.
    pub verdict: Verdict,
    /// The verdict line.
    pub verdict_line: String,
    /// Every corruption, one line each.
    pub findings: Vec<String>,
    /// Counts.
    pub summary: Summary,
    /// The capture.
    pub capture: CaptureInfo,
    /// Legs inspected.
    pub leg_filter: &'static str,
    /// Non-fatal problems.
    pub warnings: Vec<String>,
    /// TCP flows.
    pub flows: Vec<FlowSummary>,
    /// HTTP exchanges in time order.
    pub exchanges: Vec<Exchange>,
    /// Retried requests.
    pub attempt_groups: Vec<AttemptGroup>,
    /// Content-address checks.
    pub content_checks: Vec<ContentCheck>,
    /// Client leg vs upstream leg.
    pub leg_comparisons: Vec<LegComparison>,
}

/// Assembles the report; compares retained bodies, then drops them.
pub(crate) fn build(
    capture: CaptureInfo,
    leg_filter: LegFilter,
    finished: Vec<(FlowInfo, FlowOutcome)>,
) -> Report {
    let mut warnings = Vec::new();
    if let Some(d) = &capture.damage {
        warnings.push(format!("capture damaged, reading stopped: {d}"));
    }
    let mut flows = Vec::new();
    let mut exchanges = Vec::new();
    for (info, outcome) in finished {
        warnings.extend(outcome.warnings);
        flows.push(FlowSummary {
            id: info.id,
            leg: leg::of_interface(info.interface.as_deref()),
            client: info.client.to_string(),
            server: info.server.to_string(),
            opened_ns: info.opened_ns,
            saw_syn: info.saw_syn,
            http: outcome.http,
            exchanges: Vec::new(),
            faults: outcome.faults,
        });
        exchanges.extend(outcome.exchanges);
    }
    flows.sort_by_key(|f| f.id);
    exchanges.sort_by_key(|e| (e.time_ns, e.flow));
    for (id, ex) in exchanges.iter_mut().enumerate() {
        ex.id = id;
        if let Ok(i) = flows.binary_search_by_key(&ex.flow, |f| f.id) {
            flows[i].exchanges.push(id);
        }
    }
    let mut findings = Vec::new();
    let attempt_groups = compare_attempts(&mut exchanges, &mut findings);
    let content_checks = check_addresses(&exchanges, &mut findings);
    let leg_comparisons = super::legs::compare_legs(&flows, &mut exchanges);
    for lc in leg_comparisons.iter().filter(|l| l.faultline_bug) {
        findings.push(format!(
            "CORRUPT: faultline bug: client leg flow {} and upstream leg flow {} differ with no fault acting: {}",
            lc.client_flow,
            lc.upstream_flow,
            lc.differences.join("; ")
        ));
    }
    for ex in &mut exchanges {
        ex.body = None;
    }
    let mut upload_keys: Vec<(&str, &str)> = exchanges
        .iter()
        .filter(|e| e.is_upload())
        .map(|e| (e.method.as_str(), e.target.as_str()))
        .collect();
    upload_keys.sort_unstable();
    upload_keys.dedup();
    let mut retried: Vec<(&str, &str)> = attempt_groups
        .iter()
        .map(|g| (g.method.as_str(), g.target.as_str()))
        .collect();
    retried.sort_unstable();
    retried.dedup();
    let summary = Summary {
        exchanges: exchanges.len(),
        uploads: upload_keys.len(),
        retried: retried.len(),
        retries_differing: attempt_groups
            .iter()
            .flat_map(|g| &g.attempts)
            .filter(|a| a.comparison.as_ref().is_some_and(|c| c.is_difference()))
            .count(),
    };
    let verdict = if findings.is_empty() {
        Verdict::Clean
    } else {
        Verdict::Corrupt
    };
    let verdict_line = match findings.first() {
        Some(first) if findings.len() == 1 => first.clone(),
        Some(first) => format!("{first} (and {} more)", findings.len() - 1),
        None => {
            let retries = match (summary.retried, summary.retries_differing) {
                (0, _) => "none retried".to_string(),
                (n, 0) => format!("{n} retried, all retries identical"),
                (n, d) => {
                    format!("{n} retried, {d} retries differed but none was accepted with 2xx")
                }
            };
            format!("OK: {} uploads, {retries}", summary.uploads)
        }
    };
    Report {
        schema_version: SCHEMA_VERSION,
        verdict,
        verdict_line,
        findings,
        summary,
        capture,
        leg_filter: leg_filter.as_str(),
        warnings,
        flows,
        exchanges,
        attempt_groups,
        content_checks,
        leg_comparisons,
    }
}

fn compare_attempts(exchanges: &mut [Exchange], findings: &mut Vec<String>) -> Vec<AttemptGroup> {
    let keys = exchanges
        .iter()
        .filter(|e| e.is_upload())
        .map(|e| ((e.leg, e.method.clone(), e.target.clone()), e.time_ns, e.id));
    let mut out = Vec::new();
    for group in attempts::group_by_key(keys.collect::<Vec<_>>()) {
        if group.len() < 2 {
            continue;
        }
        let first_id = group[0];
        let mut first_body = exchanges[first_id].body.take();
        let (first_len, first_expected) = {
            let f = &exchanges[first_id];
            (f.request.length, f.request.expected)
        };
        let mut list = Vec::new();
        for (n, &id) in group.iter().enumerate() {
            let number = n + 1;
            let ex = &mut exchanges[id];
            let mut attempt = Attempt {
                number,
                exchange: id,
                status: ex.response.status,
                length: ex.request.length,
                complete: ex.request.complete,
                comparison: None,
                description: String::new(),
                not_compared: None,
                corrupt: false,
            };
            if number == 1 {
                attempt.description = format!("attempt 1: {}", describe_exchange(ex));
                list.push(attempt);
                continue;
            }
            let why_not = match (&mut first_body, &mut ex.body) {
                (Some(a), Some(b)) => match a.incomplete_copy().or(b.incomplete_copy()) {
                    Some(why) => Some(why),
                    None => match attempts::compare(a, b) {
                        Ok(c) => {
                            attempt.comparison = Some(c);
                            None
                        }
                        Err(e) => Some(format!("cannot read retained body: {e}")),
                    },
                },
                _ => Some("body not retained".to_string()),
            };
            attempt.not_compared = why_not;
            let mut description = match (&attempt.comparison, &attempt.not_compared) {
                (Some(c), _) => c.describe(number),
                (None, Some(why)) => format!("attempt {number} not compared: {why}"),
                (None, None) => String::new(),
            };
            if let Some(BodyComparison::Differs {
                shifted_from: None, ..
            }) = &attempt.comparison
            {
                if let Some(cut) =
                    attempts::resumed_from_cut(first_len, first_expected, ex.request.length)
                {
                    description.push_str(&format!(
                        "; its length is exactly what attempt 1 never sent (attempt 1 was cut at {cut} of {} bytes): the retry likely resumed from offset {cut} instead of starting over",
                        first_expected.unwrap_or_default()
                    ));
                }
            }
            attempt.corrupt = ex.succeeded()
                && attempt
                    .comparison
                    .as_ref()
                    .is_some_and(|c| c.is_difference());
            attempt.description = format!("{description} [{}]", describe_exchange(ex));
            if attempt.corrupt {
                findings.push(format!(
                    "CORRUPT: {} {} ({} leg): attempt {number} (exchange {id}, flow {}, status {}) was accepted but {}",
                    ex.method,
                    ex.target,
                    leg::name(ex.leg),
                    ex.flow,
                    ex.response.status.unwrap_or_default(),
                    description
                ));
            }
            list.push(attempt);
        }
        exchanges[first_id].body = first_body;
        let f = &exchanges[first_id];
        out.push(AttemptGroup {
            leg: f.leg,
            method: f.method.clone(),
            target: f.target.clone(),
            attempts: list,
        });
    }
    out
}

fn describe_exchange(ex: &Exchange) -> String {
    let body = if ex.request.complete {
        format!("{} bytes", ex.request.length)
    } else {
        format!(
            "{} of {} bytes, cut by {}",
            ex.request.length,
            ex.request
                .expected
                .map_or("?".to_string(), |e| e.to_string()),
            ex.request.cut_by.as_deref().unwrap_or("?")
        )
    };
    format!(
        "exchange {}, flow {}, {body}, {}",
        ex.id,
        ex.flow,
        response_text(ex)
    )
}

fn response_text(ex: &Exchange) -> String {
    match (ex.response.outcome, ex.response.status) {
        (Outcome::Status, Some(s)) => format!("status {s}"),
        (Outcome::ConnectionReset, _) => "connection reset".into(),
        _ => "no response".into(),
    }
}

fn check_addresses(exchanges: &[Exchange], findings: &mut Vec<String>) -> Vec<ContentCheck> {
    let mut out = Vec::new();
    for ex in exchanges {
        if !matches!(ex.method.as_str(), "PUT" | "POST") || !ex.request.complete {
            continue;
        }
        let Some(address) = content_address::parse_target(&ex.target) else {
            continue;
        };
        let check = address.check(ex.request.length, &ex.request.md5, &ex.request.sha256);
        let rejected = ex.response.status.is_some() && !ex.succeeded();
        let corrupt = check.is_mismatch() && !rejected;
        if corrupt {
            let what = match &check {
                AddressCheck::DigestMismatch { expected, actual } => {
                    format!("content MISMATCH: target says {expected}, body hashes to {actual}")
                }
                AddressCheck::SizeMismatch { expected, actual } => {
                    format!("size MISMATCH: target says {expected} bytes, body has {actual}")
                }
                AddressCheck::Matches => String::new(),
            };
            findings.push(format!(
                "CORRUPT: {} {} ({} leg, exchange {}, {}): {what}",
                ex.method,
                ex.target,
                leg::name(ex.leg),
                ex.id,
                response_text(ex)
            ));
        }
        out.push(ContentCheck {
            exchange: ex.id,
            address,
            check,
            corrupt,
        });
    }
    out
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

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let head: String = s.chars().take(max - 1).collect();
        format!("{head}…")
    }
}

impl Report {
    /// Clean or corrupt.
    pub fn verdict(&self) -> Verdict {
        self.verdict
    }

    /// 0 when clean, 1 when corruption or a content-address mismatch was found.
    pub fn exit_code(&self) -> u8 {
        match self.verdict {
            Verdict::Clean => 0,
            Verdict::Corrupt => 1,
        }
    }

    /// Pretty JSON following [`SCHEMA`].
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// The human report: capture line, warnings, exchange table, attempts, content checks, legs, verdict.
    pub fn render_text(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let c = &self.capture;
        let http_flows = self.flows.iter().filter(|f| f.http).count();
        let _ = writeln!(
            s,
            "capture {} ({}, {} packets, {} flows, {} HTTP, legs: {})",
            c.path,
            c.format,
            c.packets,
            self.flows.len(),
            http_flows,
            self.leg_filter
        );
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
            for ex in &self.exchanges {
                let body = if ex.request.complete {
                    format!("{}", ex.request.length)
                } else {
                    format!(
                        "{}/{} CUT",
                        ex.request.length,
                        ex.request.expected.map_or("?".into(), |e| e.to_string())
                    )
                };
                let faults = ex
                    .faults
                    .iter()
                    .map(|f| f.text.trim_start_matches("faultline: ").to_string())
                    .collect::<Vec<_>>()
                    .join("; ");
                let _ = writeln!(
                    s,
                    "{:>4}  {:<27} {:<8} {:>4}  {:<6} {:<44} {:>22}  {:<16} {:>10}  {}",
                    ex.id,
                    format_time(ex.time_ns),
                    leg::name(ex.leg),
                    ex.flow,
                    ex.method,
                    truncate(&ex.target, 44),
                    body,
                    response_text(ex),
                    ex.response.body_length,
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
                let ex = &self.exchanges[cc.exchange];
                let result = match &cc.check {
                    AddressCheck::Matches => "matches".to_string(),
                    AddressCheck::DigestMismatch { expected, actual } => {
                        format!("MISMATCH: expected {expected}, actual {actual}")
                    }
                    AddressCheck::SizeMismatch { expected, actual } => {
                        format!("MISMATCH: expected {expected} bytes, actual {actual}")
                    }
                };
                let algo = match cc.address.algo {
                    content_address::HashAlgo::Md5 => "md5",
                    content_address::HashAlgo::Sha256 => "sha256",
                };
                let _ = writeln!(
                    s,
                    "  #{} {} {} ({algo}): {result}",
                    ex.id, ex.method, ex.target
                );
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
                "\nlegs: {} connections compared, {} with differences",
                self.leg_comparisons.len(),
                compared.len()
            );
            for l in compared {
                let why = if l.faultline_bug {
                    "FAULTLINE BUG"
                } else if l.faulted {
                    "explained by faults"
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
        for f in self.findings.iter().skip(1) {
            let _ = writeln!(s, "{f}");
        }
        let _ = writeln!(s, "{}", self.findings.first().unwrap_or(&self.verdict_line));
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn truncates_long_targets() {
        assert_eq!(truncate("abc", 5), "abc");
        assert_eq!(truncate("abcdefgh", 5), "abcd…");
    }
}
