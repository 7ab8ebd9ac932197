//! Run-wide counters (connections, bytes per direction, rule activity) and the exit summary.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use crate::capture::CaptureSummary;
use crate::direction::Direction;
use crate::plural::count;
use crate::scenario::Scenario;
use crate::session::RunCounters;

/// Counters shared by every connection of a run; lock-free so the data path never waits on them.
#[derive(Debug)]
pub struct RunStats {
    /// Accepted client connections.
    pub connections: AtomicU64,
    /// Connections whose upstream could not be reached.
    pub upstream_failures: AtomicU64,
    /// Of those, the ones faultline could not even try: no file descriptor left for the
    /// upstream socket (its open-file limit), not the upstream's fault.
    pub out_of_fds: AtomicU64,
    /// Connection tasks that panicked (a bug: caught at the task boundary, logged, counted).
    pub panics: AtomicU64,
    /// Bytes written toward the upstream and toward the client.
    pub bytes: [AtomicU64; 2],
    /// Bytes read from the client and from the upstream by pumps (what faults saw, before
    /// they dropped or held any): the API's metrics report both.
    pub received: [AtomicU64; 2],
    /// Bytes read but never sent because the run stopped (queued, or held by a latency or
    /// stall), per direction: the summary says so rather than letting them vanish.
    pub unsent_at_stop: [AtomicU64; 2],
    /// Per rule, by the rule's key: the rule set may change during a run (`faultline serve`),
    /// and a rule keeps its counters for as long as it exists under the same text.
    rules: Mutex<HashMap<u64, Arc<RuleStats>>>,
    /// Rules that count on under another key (a toxic updated over the API gets a new key):
    /// by new key, the key whose counters it continues.
    carried: Mutex<HashMap<u64, u64>>,
}

/// How often one rule applied.
#[derive(Debug, Default)]
pub struct RuleStats {
    /// Connections whose connection-level conditions matched the rule.
    pub matched: AtomicU64,
    /// Times the fault took effect on traffic (a reset happened, a chunk was delayed, …).
    pub fired: AtomicU64,
}

impl Default for RunStats {
    fn default() -> Self {
        Self::new()
    }
}

impl RunStats {
    /// Zeroed counters.
    pub fn new() -> Self {
        RunStats {
            connections: AtomicU64::new(0),
            upstream_failures: AtomicU64::new(0),
            out_of_fds: AtomicU64::new(0),
            panics: AtomicU64::new(0),
            bytes: [AtomicU64::new(0), AtomicU64::new(0)],
            received: [AtomicU64::new(0), AtomicU64::new(0)],
            unsent_at_stop: [AtomicU64::new(0), AtomicU64::new(0)],
            rules: Mutex::new(HashMap::new()),
            carried: Mutex::new(HashMap::new()),
        }
    }

    /// Faults fired by every rule so far.
    pub fn fired_total(&self) -> u64 {
        let rules = match self.rules.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        rules.values().map(|r| r.fired.load(Relaxed)).sum()
    }

    /// The rule keyed `to` replaces the one keyed `from` (the same toxic, updated): it counts
    /// on from `from`'s counters, and a connection both selected counts once.
    pub fn carry(&self, from: u64, to: u64) {
        let origin = self.counting_key(from);
        if origin != to {
            let mut carried = match self.carried.lock() {
                Ok(guard) => guard,
                Err(poisoned) => poisoned.into_inner(),
            };
            carried.insert(to, origin);
        }
    }

    /// The key whose counters the rule keyed `key` uses: its own, unless it replaced another.
    pub fn counting_key(&self, key: u64) -> u64 {
        let carried = match self.carried.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        carried.get(&key).copied().unwrap_or(key)
    }

    /// The counters of the rule keyed `key`.
    pub fn rule(&self, key: u64) -> Arc<RuleStats> {
        let key = self.counting_key(key);
        let mut rules = match self.rules.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        rules.entry(key).or_default().clone()
    }

    /// Counts bytes written in `direction`.
    pub fn add_bytes(&self, direction: Direction, n: usize) {
        self.bytes[direction.index()].fetch_add(n as u64, Relaxed);
    }

    /// A plain copy of the counters, for the summary and for tests.
    pub fn snapshot(&self, scenario: &Scenario, counters: &RunCounters) -> RunSummary {
        RunSummary {
            connections: self.connections.load(Relaxed),
            upstream_failures: self.upstream_failures.load(Relaxed),
            out_of_fds: self.out_of_fds.load(Relaxed),
            panics: self.panics.load(Relaxed),
            client_to_upstream: self.bytes[0].load(Relaxed),
            upstream_to_client: self.bytes[1].load(Relaxed),
            unsent_at_stop: [
                self.unsent_at_stop[0].load(Relaxed),
                self.unsent_at_stop[1].load(Relaxed),
            ],
            rules: scenario
                .rules
                .iter()
                .map(|rule| {
                    let s = self.rule(rule.key);
                    RuleSummary {
                        named: rule.has_own_name(),
                        // goaway acts on a whole HTTP/2 connection: it matches connections,
                        // never requests (its summary said "matched 9 requests").
                        requests: (rule.is_http()
                            && !matches!(rule.fault, crate::fault::Fault::Goaway(_)))
                        .then(|| counters.armed(rule.key)),
                        name: rule.name.clone(),
                        fault: rule.fault.name(),
                        matched: s.matched.load(Relaxed),
                        fired: s.fired.load(Relaxed),
                        per_direction: !rule.is_http()
                            && rule.matcher.direction == crate::direction::DirectionMatch::Both
                            && !rule.fault.is_connection_wide(),
                    }
                })
                .collect(),
            capture: None,
        }
    }
}

/// What a run did, printed at exit.
#[derive(Debug, Clone, Default)]
pub struct RunSummary {
    /// Accepted client connections.
    pub connections: u64,
    /// Connections whose upstream could not be reached.
    pub upstream_failures: u64,
    /// Of those, the ones that failed for want of a file descriptor (faultline's limit).
    pub out_of_fds: u64,
    /// Connection tasks that panicked (caught; zero unless faultline has a bug).
    pub panics: u64,
    /// Bytes written to the upstream.
    pub client_to_upstream: u64,
    /// Bytes written to the client.
    pub upstream_to_client: u64,
    /// Bytes read but never sent when the run stopped, client->upstream and upstream->client.
    pub unsent_at_stop: [u64; 2],
    /// Per rule, in scenario order.
    pub rules: Vec<RuleSummary>,
    /// What the capture writer did, when capturing.
    pub capture: Option<CaptureSummary>,
}

/// One rule's line of the summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleSummary {
    /// Rule name.
    pub name: String,
    /// Whether the scenario named the rule (or the name is the default `rule N (FAULT)`).
    pub named: bool,
    /// HTTP rules: the requests it matched and acted on (or on their responses).
    pub requests: Option<u64>,
    /// Fault name.
    pub fault: &'static str,
    /// Connections matched.
    pub matched: u64,
    /// Times fired.
    pub fired: u64,
    /// A byte fault acting on each direction of a connection on its own (`direction = "both"`,
    /// the default): each direction's firing counts, so one connection can fire twice.
    pub per_direction: bool,
}

impl RunSummary {
    /// The summary as JSON, for scripts (`faultline run --json`): the counters the text says,
    /// and the text itself.
    pub fn to_json(&self) -> serde_json::Value {
        let rules: Vec<serde_json::Value> = self
            .rules
            .iter()
            .map(|r| {
                serde_json::json!({
                    "name": r.name,
                    "fault": r.fault,
                    "matched": r.matched,
                    "fired": r.fired,
                    "requests": r.requests,
                })
            })
            .collect();
        let capture = self.capture.as_ref().map(|c| {
            serde_json::json!({
                "path": c.path.display().to_string(),
                "packets": c.packets_written,
                "payload_bytes": c.payload_bytes,
                "write_error": c.write_error,
            })
        });
        serde_json::json!({
            "connections": self.connections,
            "upstream_failures": self.upstream_failures,
            "out_of_fds": self.out_of_fds,
            "panics": self.panics,
            "bytes": {
                "client->upstream": self.client_to_upstream,
                "upstream->client": self.upstream_to_client,
            },
            "unsent_at_stop": {
                "client->upstream": self.unsent_at_stop[0],
                "upstream->client": self.unsent_at_stop[1],
            },
            "rules": rules,
            "capture": capture,
            "text": self.to_string(),
        })
    }
}

impl fmt::Display for RunSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "connections: {} ({})",
            self.connections,
            count(self.upstream_failures, "upstream failure")
        )?;
        // Out of file descriptors is faultline's trouble, not the upstream's: a trial's summary
        // sent the user to check a server that was fine.
        if self.out_of_fds > 0 {
            writeln!(
                f,
                "{} failed for want of a file descriptor: faultline reached its open-file limit (ulimit -n; it raises the soft limit to the hard one at start)",
                count(self.out_of_fds, "upstream connection")
            )?;
        }
        // Exit 0 all the same (the proxy ran as asked), so the summary says it plainly: a
        // trial's CI job passed with a dead endpoint and only a count in parentheses.
        if self.connections > 0
            && self.upstream_failures >= self.connections
            && self.out_of_fds < self.upstream_failures
        {
            writeln!(
                f,
                "no connection reached its upstream: is the server running, at the address the scenario, --upstream or the request names (and, with TLS interception, is its certificate trusted)? The log says why each failed"
            )?;
        }
        writeln!(
            f,
            "bytes: client->upstream {}, upstream->client {}",
            self.client_to_upstream, self.upstream_to_client
        )?;
        if self.unsent_at_stop != [0, 0] {
            let [up, down] = self.unsent_at_stop;
            writeln!(
                f,
                "unsent when the run stopped (queued or held by a rule): client->upstream {up}, upstream->client {down}"
            )?;
        }
        if self.panics > 0 {
            writeln!(
                f,
                "BUG: {} panicked (caught; see the log and please report it)",
                count(self.panics, "connection task")
            )?;
        }
        if self.rules.is_empty() {
            writeln!(f, "rules: none (pass-through)")?;
        }
        for (i, rule) in self.rules.iter().enumerate() {
            let title = if rule.named {
                format!("rule {} \"{}\" ({})", i + 1, rule.name, rule.fault)
            } else {
                format!("rule {} ({})", i + 1, rule.fault)
            };
            // An HTTP rule acts on requests; its connection count is where it was eligible (its
            // connection-level conditions held), not where it acted.
            let scope = match rule.requests {
                Some(requests) => format!(
                    "matched {} ({} eligible)",
                    count(requests, "request"),
                    count(rule.matched, "connection")
                ),
                None => format!("matched {}", count(rule.matched, "connection")),
            };
            let each = if rule.per_direction && rule.fired > 0 {
                " (each direction counts)"
            } else {
                ""
            };
            writeln!(
                f,
                "{title}: {scope}, fired {}{each}",
                count(rule.fired, "time")
            )?;
        }
        if let Some(capture) = &self.capture {
            writeln!(
                f,
                "capture: {} ({}, {}{})",
                capture.path.display(),
                count(capture.packets_written, "packet"),
                count(capture.payload_bytes, "payload byte"),
                if capture.backpressure_waits > 0 {
                    format!(
                        ", traffic waited for the writer {}",
                        count(capture.backpressure_waits, "time")
                    )
                } else {
                    String::new()
                }
            )?;
            if let Some(error) = &capture.write_error {
                writeln!(
                    f,
                    "capture FAILED: {error} ({} lost)",
                    count(capture.packets_lost, "packet")
                )?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Upstream connections faultline could not open for want of file descriptors are said
    /// as its own limit, not as a dead server (a trial's summary sent the user to the server).
    #[test]
    fn failures_for_want_of_fds_name_the_limit_not_the_server() {
        let summary = RunSummary {
            connections: 3,
            upstream_failures: 3,
            out_of_fds: 3,
            ..RunSummary::default()
        };
        let text = summary.to_string();
        assert!(
            text.contains("3 upstream connections failed for want of a file descriptor"),
            "{text}"
        );
        assert!(!text.contains("is the server running"), "{text}");
        assert_eq!(summary.to_json()["out_of_fds"], 3);
    }

    /// A count of one reads singular: `1 upstream failure`, `1 connection task panicked`.
    #[test]
    fn counts_of_one_are_singular() {
        let summary = RunSummary {
            connections: 1,
            upstream_failures: 1,
            out_of_fds: 0,
            panics: 1,
            client_to_upstream: 0,
            upstream_to_client: 0,
            unsent_at_stop: [0, 0],
            rules: Vec::new(),
            capture: None,
        };
        let text = summary.to_string();
        assert!(
            text.starts_with(
                "connections: 1 (1 upstream failure)\nno connection reached its upstream: "
            ),
            "{text}"
        );
        let some_reached = RunSummary {
            connections: 2,
            ..summary.clone()
        };
        assert!(!some_reached.to_string().contains("no connection reached"));
        assert!(
            text.contains("BUG: 1 connection task panicked (caught;"),
            "{text}"
        );
    }

    /// A goaway rule acts on whole HTTP/2 connections: its summary said `matched 9 requests (2
    /// connections eligible)`, counting streams it never looked at.
    #[test]
    fn a_goaway_rule_counts_connections_not_requests() {
        let s = Scenario::from_toml(
            "[[rule]]\nmatch = { connection = [1, 2] }\nfault.goaway = { after_streams = 1 }\n",
            "t.toml",
            "t",
        )
        .expect("valid");
        let stats = RunStats::new();
        stats.rule(s.rules[0].key).matched.fetch_add(2, Relaxed);
        let summary = stats.snapshot(&s, &RunCounters::new());
        assert_eq!(summary.rules[0].requests, None);
        let text = summary.to_string();
        assert!(
            text.contains("rule 1 (goaway): matched 2 connections, fired 0 times\n"),
            "{text}"
        );
    }

    /// A trial read "matched 1 connection, fired 2 times" for a latency rule as a miscount: with
    /// `direction = "both"` (the default) each direction fires on its own, and the line says so.
    #[test]
    fn a_byte_fault_on_both_directions_says_each_direction_counts() {
        let s = Scenario::from_toml(
            "[[rule]]\nfault.latency = { delay = \"1ms\" }\n[[rule]]\nmatch = { direction = \"upstream->client\" }\nfault.latency = { delay = \"2ms\" }\n[[rule]]\nfault.refuse = {}\n",
            "t.toml",
            "t",
        )
        .expect("valid");
        let stats = RunStats::new();
        for rule in &s.rules {
            stats.rule(rule.key).matched.fetch_add(1, Relaxed);
            stats.rule(rule.key).fired.fetch_add(2, Relaxed);
        }
        let per_direction: Vec<bool> = stats
            .snapshot(&s, &RunCounters::new())
            .rules
            .iter()
            .map(|r| r.per_direction)
            .collect();
        assert_eq!(per_direction, vec![true, false, false]);
        let text = stats.snapshot(&s, &RunCounters::new()).to_string();
        assert!(
            text.contains(
                "rule 1 (latency): matched 1 connection, fired 2 times (each direction counts)\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("rule 2 (latency): matched 1 connection, fired 2 times\n"),
            "{text}"
        );
    }

    /// Issue 15 (summary wording): an attempt-1 rule on six connections acted on three requests;
    /// the summary must not read as if it matched the six connections or three on six.
    #[test]
    fn an_http_rule_counts_requests_and_says_where_it_was_eligible() {
        let rule = |named: bool, requests: Option<u64>, matched: u64| RuleSummary {
            name: if named {
                "first try fails"
            } else {
                "rule 1 (respond)"
            }
            .into(),
            named,
            requests,
            fault: "respond",
            matched,
            fired: 1,
            per_direction: false,
        };
        let summary = RunSummary {
            connections: 6,
            upstream_failures: 0,
            out_of_fds: 0,
            panics: 0,
            client_to_upstream: 1,
            upstream_to_client: 1,
            unsent_at_stop: [0, 0],
            rules: vec![rule(false, Some(3), 6), rule(true, None, 1)],
            capture: None,
        };
        let text = summary.to_string();
        assert!(
            text.contains(
                "rule 1 (respond): matched 3 requests (6 connections eligible), fired 1 time\n"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "rule 2 \"first try fails\" (respond): matched 1 connection, fired 1 time\n"
            ),
            "{text}"
        );
    }
}
