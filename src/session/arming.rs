//! Rule arming: which HTTP rules act on a request and on its response, decided once per message
//! from the scenario's keys and the run's counters (attempts, request ordinals).

use std::collections::HashMap;
use std::sync::Mutex;

use crate::direction::Direction;
use crate::scenario::{RequestFacts, Scenario};

/// Run-wide counters shared by every connection, so `attempt = 1` and `request = 2` mean the
/// same thing on every connection of the run.
#[derive(Debug)]
pub struct RunCounters {
    attempts: Mutex<HashMap<String, u64>>,
    /// Per rule key: requests that matched the rule's keys (for `request = N`).
    request_matches: Mutex<HashMap<u64, u64>>,
    /// Per rule key: requests the rule was armed on.
    armed: Mutex<HashMap<u64, u64>>,
}

/// Adds one to `key`'s count in `counts` and returns the new count.
fn bump(counts: &Mutex<HashMap<u64, u64>>, key: u64) -> u64 {
    let mut counts = match counts.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    };
    let n = counts.entry(key).or_insert(0);
    *n += 1;
    *n
}

impl Default for RunCounters {
    fn default() -> Self {
        Self::new()
    }
}

impl RunCounters {
    /// Zeroed counters.
    pub fn new() -> Self {
        RunCounters {
            attempts: Mutex::new(HashMap::new()),
            request_matches: Mutex::new(HashMap::new()),
            armed: Mutex::new(HashMap::new()),
        }
    }

    /// Requests the rule keyed `key` was armed on (it matched them and acted on them or their
    /// response).
    pub fn armed(&self, key: u64) -> u64 {
        let armed = match self.armed.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        armed.get(&key).copied().unwrap_or(0)
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

    /// Records one more request matching the other keys of the rule keyed `key` and returns its
    /// ordinal (1-based) among them.
    fn nth_match(&self, key: u64) -> u64 {
        bump(&self.request_matches, key)
    }
}

/// The rules one request armed, by key (the rule set may change before the response comes).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Armed {
    /// Rules acting on the request itself (its bytes, or an answer in its place), in rule order.
    pub on_request: Vec<u64>,
    /// Rules acting on its response, once the response head shows its status.
    pub on_response: Vec<u64>,
}

/// Decides which of `candidates` (the HTTP rules whose connection-level keys matched this
/// connection) act on a request described by `facts`, looking its headers up through `header`.
/// Counts the request toward each matching rule's `request` ordinals.
pub fn arm_request<'h>(
    scenario: &Scenario,
    candidates: &[usize],
    facts: &RequestFacts<'_>,
    header: impl Fn(&str) -> Vec<&'h [u8]>,
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
            // With `status`, the nth request is among those whose response had the status:
            // counted at the response ([`arm_response`]).
            if !waits_for_status(rule) {
                let ordinal = counters.nth_match(rule.key);
                if http
                    .request
                    .as_ref()
                    .is_some_and(|wanted| !wanted.contains(&ordinal))
                {
                    continue;
                }
            }
        }
        // A `status` rule matched only once its response shows that status: counted then.
        if !waits_for_status(rule) {
            bump(&counters.armed, rule.key);
        }
        let http_only = rule.fault.is_http_only();
        let direction = rule.http_direction(rule.explicit_direction);
        if direction.includes(Direction::UpstreamToClient) && !http_only {
            armed.on_response.push(rule.key);
        }
        if direction.includes(Direction::ClientToUpstream) || http_only {
            armed.on_request.push(rule.key);
        }
    }
    armed
}

/// Whether the rule's `status` key decides, at the response, whether it matched.
fn waits_for_status(rule: &crate::scenario::Rule) -> bool {
    rule.matcher
        .http
        .as_ref()
        .is_some_and(|h| h.status.is_some())
}

/// The rules of `on_response` (keys) still in `scenario` whose `status` key (if any) accepts
/// `status` (and, with `request = N`, whose nth response with that status this is); each
/// `status` rule it keeps is counted as matched now (the summary's "matched N requests" is the
/// responses that had the status, not the requests that might have).
pub fn arm_response(
    scenario: &Scenario,
    on_response: &[u64],
    status: u16,
    counters: &RunCounters,
) -> Vec<u64> {
    on_response
        .iter()
        .copied()
        .filter(|&key| {
            scenario.rule_by_key(key).is_some_and(|(_, rule)| {
                let mut accepted = rule
                    .matcher
                    .http
                    .as_ref()
                    .is_none_or(|h| h.matches_status(status));
                if accepted && waits_for_status(rule) {
                    let ordinal = counters.nth_match(key);
                    accepted = rule
                        .matcher
                        .http
                        .as_ref()
                        .and_then(|h| h.request.as_ref())
                        .is_none_or(|wanted| wanted.contains(&ordinal));
                }
                if accepted && waits_for_status(rule) {
                    bump(&counters.armed, key);
                }
                accepted
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

    /// A header on several field lines is one list: a rule matches one line's value or all of
    /// them joined (an HTTP/1 trial's second `X-Multi: b` line was invisible to rules).
    #[test]
    fn a_header_sent_on_several_lines_matches_any_line_or_the_joined_list() {
        let s = scenario(
            r#"
[[rule]]
match = { header = { x-multi = "a, b" } }
fault.respond = { status = 500 }
[[rule]]
match = { header = { X-Multi = "b" } }
fault.respond = { status = 502 }
[[rule]]
match = { header = { x-other = "*" } }
fault.respond = { status = 503 }
"#,
        );
        let counters = RunCounters::new();
        let lines: Vec<&[u8]> = vec![b"a", b"b"];
        let header = |name: &str| match name.to_ascii_lowercase().as_str() {
            "x-multi" => lines.clone(),
            _ => Vec::new(),
        };
        let armed = arm_request(&s, &[0, 1, 2], &facts("GET", "/", 1), header, &counters);
        assert_eq!(armed.on_request, vec![s.rules[0].key, s.rules[1].key]);
    }

    #[test]
    fn attempts_count_per_key_across_the_run() {
        let counters = RunCounters::new();
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
        let counters = RunCounters::new();
        let all = [0, 1, 2];
        let key = |i: usize| s.rules[i].key;
        let no_header = |_: &str| Vec::new();
        let first = arm_request(&s, &all, &facts("PUT", "/files/a", 1), no_header, &counters);
        assert_eq!(first.on_request, vec![key(2)], "PUT 1 is not request 2");
        assert_eq!(first.on_response, vec![key(1)]);
        let second = arm_request(&s, &all, &facts("PUT", "/x", 1), no_header, &counters);
        assert_eq!(second.on_request, vec![key(0), key(2)]);
        assert!(second.on_response.is_empty());
        assert_eq!(
            counters.armed(key(1)),
            0,
            "a status rule waits for the status"
        );
        assert_eq!(arm_response(&s, &[key(1)], 500, &counters), vec![key(1)]);
        assert!(arm_response(&s, &[key(1)], 200, &counters).is_empty());
        assert_eq!(counters.armed(key(1)), 1, "one response had the status");
        assert_eq!(counters.armed(key(2)), 2);
    }

    /// `request = 2` with `status = 404` is the second 404, not whichever 404 answered the
    /// second request: the ordinal counts the responses that had the status.
    #[test]
    fn the_nth_request_of_a_status_rule_counts_responses_with_the_status() {
        let s = scenario(
            r#"
[[rule]]
match = { method = "GET", status = 404, request = 2 }
fault.truncate = { after = 5 }
"#,
        );
        let counters = RunCounters::new();
        let key = s.rules[0].key;
        let mut cut = Vec::new();
        for status in [200, 404, 200, 404, 404] {
            let armed = arm_request(&s, &[0], &facts("GET", "/x", 1), |_| Vec::new(), &counters);
            assert_eq!(armed.on_response, vec![key]);
            cut.push(!arm_response(&s, &armed.on_response, status, &counters).is_empty());
        }
        assert_eq!(cut, [false, false, false, true, false]);
        assert_eq!(counters.armed(key), 1);
    }
}
