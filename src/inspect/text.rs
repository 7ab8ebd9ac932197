//! Renders the report as the human text table `faultline inspect` prints by default.

use super::content_address::{AddressCheck, HashAlgo};
use super::leg;
use super::model::{LegComparison, Report};

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
                    ex.response_text(),
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
                    HashAlgo::Md5 => "md5",
                    HashAlgo::Sha256 => "sha256",
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
