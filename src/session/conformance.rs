//! What every session plan must satisfy, checked by driving a session over a whole conversation
//! exactly as the pump does (chunks, held-back tails, terminal steps). The fuzz target `session`
//! and the unit tests feed it random rule sets over random framings and random chunkings.
//!
//! The invariants: no panic; every byte read is sent, skipped or held back exactly once and in
//! order (no byte twice, none lost) until a step ends the direction; nothing follows a terminal
//! step; no empty sends; no step leaves before its chunk arrived; faultline's own answers and
//! inserted bytes appear only where a rule (or strict/forward mode) asks for them; every mark
//! names a real rule.

use std::fmt;
use std::sync::Arc;

use tokio::time::Instant;

use super::{Http1Session, RunCounters, RunView, SessionPlan};
use crate::direction::Direction;
use crate::fault::plan::Step;
use crate::fault::Fault;
use crate::scenario::Scenario;

/// A broken invariant, with where it broke.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation(pub String);

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How one direction went.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DirectionOutcome {
    /// Bytes of the source the plans sent.
    pub sent: u64,
    /// Bytes of the source the plans skipped.
    pub skipped: u64,
    /// Bytes faultline inserted.
    pub inserted: u64,
    /// The terminal step that ended the direction, if one did (its debug form).
    pub ended_by: Option<String>,
}

/// Drives a fresh HTTP/1 session (connection 1 of a run seeded with 1) over `requests` then `responses`, each already split into the chunks the
/// pump would read, and checks every plan.
pub fn drive(
    scenario: &Scenario,
    strict: bool,
    requests: &[&[u8]],
    responses: &[&[u8]],
) -> Result<[DirectionOutcome; 2], Violation> {
    let counters = RunCounters::new();
    let scenario = Arc::new(scenario.clone());
    let run = RunView {
        scenario: &scenario,
        counters: &counters,
    };
    let mut session = Http1Session::new(strict, 1, crate::scenario::ConnectionFacts::ordinal(1));
    let answers_allowed = strict
        || scenario
            .rules
            .iter()
            .any(|r| matches!(r.fault, Fault::Respond(_)));
    let mut outcome = [DirectionOutcome::default(), DirectionOutcome::default()];
    for (direction, pieces) in [
        (Direction::ClientToUpstream, requests),
        (Direction::UpstreamToClient, responses),
    ] {
        let out = &mut outcome[direction.index()];
        let mut carry: Vec<u8> = Vec::new();
        for (n, piece) in pieces.iter().enumerate() {
            if out.ended_by.is_some() {
                break;
            }
            let mut chunk = std::mem::take(&mut carry);
            chunk.extend_from_slice(piece);
            let arrival = Instant::now();
            let plan = session.plan(direction, &chunk, arrival, run);
            let at = || format!("{direction} chunk {n} ({} bytes)", chunk.len());
            let covered = check_plan(&plan, chunk.len(), arrival, &scenario, answers_allowed, out)
                .map_err(|why| Violation(format!("{}: {why}: {plan:?}", at())))?;
            if out.ended_by.is_none() {
                carry = chunk[covered..].to_vec();
            }
        }
        // What is still held back when the source ends goes out as it came (the pump's rule).
        if out.ended_by.is_none() {
            out.sent += carry.len() as u64;
        }
    }
    let _ = session.take_ready_answer();
    Ok(outcome)
}

/// Checks one plan over a chunk of `len` bytes and returns the bytes it covered.
fn check_plan(
    plan: &SessionPlan,
    len: usize,
    arrival: Instant,
    scenario: &Scenario,
    answers_allowed: bool,
    out: &mut DirectionOutcome,
) -> Result<usize, String> {
    let mut covered = 0usize;
    for (i, step) in plan.steps.iter().enumerate() {
        if out.ended_by.is_some() {
            return Err(format!("step {i} follows the terminal step"));
        }
        if let Step::Send { not_before, .. } | Step::Insert { not_before, .. } = step {
            if *not_before < arrival {
                return Err(format!("step {i} leaves before its chunk arrived"));
            }
        }
        let mark = match step {
            Step::Send { len: 0, .. } => return Err(format!("step {i} sends nothing")),
            Step::Send { len: n, mark, .. } => {
                covered += n;
                out.sent += *n as u64;
                mark.as_ref()
            }
            Step::Skip { len: n } => {
                covered += n;
                out.skipped += *n as u64;
                None
            }
            // A note of a rule's own (no bytes): two rules shaped the same bytes.
            Step::Insert { bytes, mark, .. } if bytes.is_empty() && mark.is_some() => mark.as_ref(),
            Step::Insert { bytes, mark, .. } => {
                out.inserted += bytes.len() as u64;
                return Err(format!(
                    "step {i} inserts {} bytes outside forward mode (mark {mark:?})",
                    bytes.len()
                ));
            }
            Step::Answer { mark, .. } if !answers_allowed => {
                return Err(format!("step {i} answers without a respond rule: {mark:?}"));
            }
            Step::Park if !answers_allowed => {
                return Err(format!("step {i} parks without a respond rule"));
            }
            Step::End { mark, .. } | Step::Hold { mark } | Step::Answer { mark, .. } => {
                out.ended_by = Some(format!("{step:?}"));
                Some(mark)
            }
            Step::Park => {
                out.ended_by = Some("Park".to_string());
                None
            }
        };
        if let Some(mark) = mark {
            match &mark.rule {
                Some(rule) if scenario.rule_by_key(rule.key).is_none() => {
                    return Err(format!(
                        "step {i} names rule {rule:?}, which does not exist"
                    ))
                }
                None if !answers_allowed => {
                    return Err(format!("step {i} is faultline's own without a reason"))
                }
                _ => {}
            }
        }
    }
    if covered > len {
        return Err(format!("the plan covers {covered} bytes of {len}"));
    }
    if out.ended_by.is_none() && covered + plan.deferred != len {
        return Err(format!(
            "the plan covers {covered} bytes and holds back {} of {len}",
            plan.deferred
        ));
    }
    if out.ended_by.is_some() && plan.deferred != 0 {
        return Err("a terminal plan still holds bytes back".to_string());
    }
    Ok(covered)
}

/// A reader of choices from fuzz input: each call takes the next byte (0 when exhausted), so
/// any input maps to some conversation.
#[derive(Debug)]
pub struct Choices<'a> {
    data: &'a [u8],
}

impl<'a> Choices<'a> {
    /// Choices drawn from `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Choices { data }
    }

    /// A number below `n` (0 when `n` is 0 or the input is exhausted).
    pub fn below(&mut self, n: usize) -> usize {
        let Some((&b, rest)) = self.data.split_first() else {
            return 0;
        };
        self.data = rest;
        if n == 0 {
            0
        } else {
            b as usize % n
        }
    }

    /// One of `options` (the first when exhausted).
    pub fn pick<'o, T: ?Sized>(&mut self, options: &[&'o T]) -> &'o T {
        options[self.below(options.len())]
    }
}

/// A scenario of up to four HTTP rules chosen from a menu that covers every HTTP-capable fault
/// and every match key; `None` when the combination is invalid (the loader rejects it).
pub fn random_scenario(choices: &mut Choices<'_>) -> Option<Scenario> {
    const MATCHES: [&str; 8] = [
        "method = \"PUT\"",
        "method = [\"GET\", \"PUT\"]",
        "path = \"/a/**\"",
        "attempt = 1",
        "request = 2",
        "status = 200",
        "status = [404, 500], direction = \"both\"",
        "path = \"/**\", direction = \"upstream->client\"",
    ];
    const FAULTS: [&str; 10] = [
        "fault.reset = { after = 0 }",
        "fault.reset = { after = 5 }",
        "fault.truncate = { after = \"50%\" }",
        "fault.truncate = { after = 17 }",
        "fault.stall = { after = 3, duration = \"1ms\" }",
        "fault.stall = { after = 40 }",
        "fault.latency = { delay = \"1ms\", jitter = \"1ms\" }",
        "fault.respond = { status = 503 }",
        "fault.respond = { status = 500, after = \"request-head\" }",
        "fault.drop_response = {}",
    ];
    let mut text = String::new();
    for _ in 0..choices.below(5) {
        let matcher = choices.pick(&MATCHES);
        let fault = choices.pick(&FAULTS);
        text.push_str(&format!("[[rule]]\nmatch = {{ {matcher} }}\n{fault}\n"));
    }
    Scenario::from_toml(&text, "fuzz.toml", "fuzz").ok()
}

/// A random HTTP/1 byte stream of a few messages (requests or responses), sometimes with
/// garbage, split into random chunks.
pub fn random_stream(choices: &mut Choices<'_>, requests: bool) -> Vec<Vec<u8>> {
    let mut bytes = Vec::new();
    for _ in 0..choices.below(4) + 1 {
        let body_len = choices.below(4) * 23;
        let body: Vec<u8> = (0..body_len).map(|i| b'a' + (i % 26) as u8).collect();
        let head = if requests {
            let method = choices.pick(&["GET", "PUT", "POST", "HEAD"]);
            let path = choices.pick(&["/a/x", "/b", "/a/y?q=1"]);
            format!("{method} {path} HTTP/1.1\r\nHost: h\r\n")
        } else {
            let status = choices.pick(&["200 OK", "404 Not Found", "500 Oops", "100 Continue"]);
            format!("HTTP/1.1 {status}\r\n")
        };
        bytes.extend_from_slice(head.as_bytes());
        match choices.below(4) {
            0 => {
                bytes.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
                for piece in body.chunks(10) {
                    bytes.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
                    bytes.extend_from_slice(piece);
                    bytes.extend_from_slice(b"\r\n");
                }
                bytes.extend_from_slice(b"0\r\n\r\n");
            }
            1 => bytes.extend_from_slice(&[0xff, b'\r', b'\n', b'x']),
            _ => {
                bytes.extend_from_slice(format!("Content-Length: {body_len}\r\n\r\n").as_bytes());
                bytes.extend_from_slice(&body);
            }
        }
    }
    let mut pieces = Vec::new();
    let mut rest = bytes.as_slice();
    while !rest.is_empty() {
        let n = (choices.below(40) + 1).min(rest.len());
        pieces.push(rest[..n].to_vec());
        rest = &rest[n..];
    }
    pieces
}

/// One whole case from fuzz input: a scenario, a conversation, strict or not.
pub fn run_case(data: &[u8]) -> Result<(), Violation> {
    let mut choices = Choices::new(data);
    let Some(scenario) = random_scenario(&mut choices) else {
        return Ok(());
    };
    let strict = choices.below(2) == 1;
    let requests = random_stream(&mut choices, true);
    let responses = random_stream(&mut choices, false);
    let requests: Vec<&[u8]> = requests.iter().map(Vec::as_slice).collect();
    let responses: Vec<&[u8]> = responses.iter().map(Vec::as_slice).collect();
    drive(&scenario, strict, &requests, &responses).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{RngCore, SeedableRng};

    #[test]
    fn random_rule_sets_over_random_framings_keep_every_invariant() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(20261128);
        let mut data = vec![0u8; 256];
        for case in 0..3000 {
            rng.fill_bytes(&mut data);
            if let Err(v) = run_case(&data) {
                panic!("case {case} ({}): {v}", hex::encode(&data));
            }
        }
    }

    #[test]
    fn a_plain_put_is_relayed_whole_and_a_cut_is_counted_exactly() {
        let scenario = Scenario::from_toml(
            "[[rule]]\nmatch = { method = \"PUT\" }\nfault.truncate = { after = 4 }\n",
            "t.toml",
            "t",
        )
        .expect("valid");
        let put = b"PUT /x HTTP/1.1\r\nContent-Length: 10\r\n\r\n0123456789";
        let head = put.len() - 10;
        let pieces: Vec<&[u8]> = put.chunks(3).collect();
        let [requests, _] = drive(&scenario, false, &pieces, &[]).expect("invariants hold");
        assert_eq!(requests.sent, head as u64 + 4);
        assert!(requests.ended_by.is_some_and(|s| s.contains("Finish")));
        let clean = Scenario::from_toml("", "t.toml", "t").expect("valid");
        let [requests, _] = drive(&clean, false, &pieces, &[]).expect("invariants hold");
        assert_eq!(requests.sent, put.len() as u64);
    }
}
