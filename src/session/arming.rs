//! Rule arming: which HTTP rules act on a request and on its response, decided once per message
//! from the scenario's keys and the run's counters (attempts, request ordinals).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

use crate::direction::Direction;
use crate::scenario::{RequestFacts, Scenario};

/// Run-wide counters shared by every connection, so `attempt = 1` and `request = 2` mean the
/// same thing on every connection of the run.
#[derive(Debug)]
pub struct RunCounters {
    attempts: Mutex<HashMap<String, u64>>,
    request_matches: Vec<AtomicU64>,
    armed: Vec<AtomicU64>,
}

impl RunCounters {
    /// Counters for a scenario with `rules` rules.
    pub fn new(rules: usize) -> Self {
        RunCounters {
            attempts: Mutex::new(HashMap::new()),
            request_matches: (0..rules).map(|_| AtomicU64::new(0)).collect(),
            armed: (0..rules).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// Requests rule `rule` was armed on (it matched them and acted on them or their response).
    pub fn armed(&self, rule: usize) -> u64 {
        self.armed.get(rule).map_or(0, |n| n.load(Relaxed))
    }

    /// Records one more sighting of the request identified by `key` (method and target for
    /// HTTP/1) and returns its attempt number (1-based).
    pub fn attempt(&self, key: &str) -> u64 {
        let mut attempts = match self.attempts.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        let n = attempts.entry(key.to_string()).or_insert(0);
        *n += 1;
        *n
    }

    /// Records one more request matching rule `rule`'s other keys and returns its ordinal
    /// (1-based) among them.
    fn nth_match(&self, rule: usize) -> u64 {
        self.request_matches
            .get(rule)
            .map_or(0, |n| n.fetch_add(1, Relaxed) + 1)
    }
}

/// The rules one request armed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Armed {
    /// Rules acting on the request itself (its bytes, or an answer in its place), in rule order.
    pub on_request: Vec<usize>,
    /// Rules acting on its response, once the response head shows its status.
    pub on_response: Vec<usize>,
}

/// Decides which of `candidates` (the HTTP rules whose connection-level keys matched this
/// connection) act on a request described by `facts`, looking its headers up through `header`.
/// Counts the request toward each matching rule's `request` ordinals.
pub fn arm_request<'h>(
    scenario: &Scenario,
    candidates: &[usize],
    facts: &RequestFacts<'_>,
    header: impl Fn(&str) -> Option<&'h [u8]>,
    counters: &RunCounters,
) -> Armed {
    let mut armed = Armed::default();
    for &i in candidates {
        let Some(rule) = scenario.rules.get(i) else {
            continue;
        };
        // A rule without HTTP keys (an HTTP-only fault such as respond) applies to every request.
        if let Some(http) = &rule.matcher.http {
            if !http.matches_request(facts, &header) {
                continue;
            }
            let ordinal = counters.nth_match(i);
            if http
                .request
                .as_ref()
                .is_some_and(|wanted| !wanted.contains(&ordinal))
            {
                continue;
            }
        }
        if let Some(n) = counters.armed.get(i) {
            n.fetch_add(1, Relaxed);
        }
        let http_only = rule.fault.is_http_only();
        let direction = rule.http_direction(rule.explicit_direction);
        if direction.includes(Direction::UpstreamToClient) && !http_only {
            armed.on_response.push(i);
        }
        if direction.includes(Direction::ClientToUpstream) || http_only {
            armed.on_request.push(i);
        }
    }
    armed
}

/// The rules of `on_response` whose `status` key (if any) accepts `status`.
pub fn arm_response(scenario: &Scenario, on_response: &[usize], status: u16) -> Vec<usize> {
    on_response
        .iter()
        .copied()
        .filter(|&i| {
            scenario.rules.get(i).is_some_and(|rule| {
                rule.matcher
                    .http
                    .as_ref()
                    .is_none_or(|h| h.matches_status(status))
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario(rules: &str) -> Scenario {
        Scenario::from_toml(rules, "t.toml", "t").expect("valid scenario")
    }

    fn facts<'a>(method: &'a str, path: &'a str, attempt: u64) -> RequestFacts<'a> {
        RequestFacts {
            method,
            path,
            query: None,
            host: Some("h"),
            attempt,
        }
    }

    #[test]
    fn attempts_count_per_key_across_the_run() {
        let counters = RunCounters::new(0);
        assert_eq!(counters.attempt("PUT /a"), 1);
        assert_eq!(counters.attempt("PUT /b"), 1);
        assert_eq!(counters.attempt("PUT /a"), 2);
    }

    #[test]
    fn requests_arm_by_keys_and_ordinals_and_status_rules_wait_for_the_response() {
        let s = scenario(
            r#"
[[rule]]
match = { method = "PUT", request = 2 }
fault.reset = { after = "1KiB" }
[[rule]]
match = { path = "/files/**", status = 500 }
fault.truncate = { after = 10 }
[[rule]]
fault.respond = { status = 503 }
"#,
        );
        let counters = RunCounters::new(s.rules.len());
        let all = [0, 1, 2];
        let no_header = |_: &str| None;
        let first = arm_request(&s, &all, &facts("PUT", "/files/a", 1), no_header, &counters);
        assert_eq!(first.on_request, vec![2], "PUT 1 is not request 2");
        assert_eq!(first.on_response, vec![1]);
        let second = arm_request(&s, &all, &facts("PUT", "/x", 1), no_header, &counters);
        assert_eq!(second.on_request, vec![0, 2]);
        assert!(second.on_response.is_empty());
        assert_eq!(arm_response(&s, &[1], 500), vec![1]);
        assert!(arm_response(&s, &[1], 200).is_empty());
    }
}
