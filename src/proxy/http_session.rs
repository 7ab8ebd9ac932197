//! The HTTP rule engine of one connection: follows both directions' HTTP/1 messages, decides
//! which HTTP rules apply to each request and response, and turns them into plan steps at exact
//! byte offsets. Pure (no I/O, no clock): the pump passes the arrival instant in.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::Duration;

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use tokio::time::Instant;
use tracing::warn;

use crate::direction::Direction;
use crate::fault::plan::{EndHow, Mark, Step};
use crate::fault::respond::RespondAfter;
use crate::fault::Fault;
use crate::http::{BodyKind, FrameEvent, Http1Conversation, RequestHead};
use crate::scenario::{RequestFacts, Scenario};
use crate::units::Amount;

/// Run-wide HTTP counters: attempts of each method + target, and matches of each rule, so
/// `attempt = 1` and `request = 2` mean the same thing on every connection of the run.
#[derive(Debug)]
pub struct HttpRunState {
    attempts: Mutex<HashMap<(String, String), u64>>,
    request_matches: Vec<AtomicU64>,
}

impl HttpRunState {
    /// Counters for a scenario with `rules` rules.
    pub fn new(rules: usize) -> Self {
        HttpRunState {
            attempts: Mutex::new(HashMap::new()),
            request_matches: (0..rules).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// Records one more sighting of `method target` and returns its attempt number (1-based).
    fn attempt(&self, method: &str, target: &str) -> u64 {
        let mut attempts = match self.attempts.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        let n = attempts
            .entry((method.to_string(), target.to_string()))
            .or_insert(0);
        *n += 1;
        *n
    }
}

/// A per-message fault that acts once the message body reached `limit` payload bytes.
#[derive(Debug)]
enum BodyFault {
    Cut {
        limit: u64,
        how: EndHow,
        mark: Mark,
    },
    Stall {
        limit: u64,
        duration: Option<Duration>,
        mark: Mark,
    },
}

impl BodyFault {
    fn limit(&self) -> u64 {
        match self {
            BodyFault::Cut { limit, .. } | BodyFault::Stall { limit, .. } => *limit,
        }
    }
}

/// State of the message currently crossing in one direction.
#[derive(Debug, Default)]
struct MessageState {
    payload_seen: u64,
    faults: Vec<BodyFault>,
    /// Bytes up to the message end are swallowed (faultline answers this request itself).
    swallow_to_end: bool,
    /// Bytes wait until this instant (a stall with a duration).
    delay_until: Option<Instant>,
}

/// What a request left for its response.
#[derive(Debug, Default)]
struct Pending {
    response_rules: Vec<usize>,
    drop_response: Option<Mark>,
    label: String,
    /// faultline answers this request itself (empty bytes: it only closes), once the responses
    /// before it are done; the upstream never sees it.
    answer: Option<(Vec<u8>, Mark)>,
}

/// Builds the steps for one chunk, front to back, at absolute stream offsets.
struct ChunkPlan {
    pos: u64,
    end: u64,
    not_before: Instant,
    skipping: bool,
    steps: Vec<Step>,
    finished: bool,
}

impl ChunkPlan {
    fn new(
        start: u64,
        len: usize,
        arrival: Instant,
        delay_until: Option<Instant>,
        skipping: bool,
    ) -> Self {
        ChunkPlan {
            pos: start,
            end: start + len as u64,
            not_before: delay_until.map_or(arrival, |d| d.max(arrival)),
            skipping,
            steps: Vec::new(),
            finished: false,
        }
    }

    /// Relays (or skips) bytes up to absolute offset `to`.
    fn advance(&mut self, to: u64) {
        let to = to.clamp(self.pos, self.end);
        if to > self.pos && !self.finished {
            let len = (to - self.pos) as usize;
            if self.skipping {
                self.steps.push(Step::Skip { len });
            } else {
                self.steps.push(Step::Send {
                    len,
                    not_before: self.not_before,
                    mark: None,
                });
            }
        }
        self.pos = self.pos.max(to);
    }

    /// Bytes from `at` on leave no earlier than `until`.
    fn delay_from(&mut self, at: u64, until: Instant, mark: Mark) {
        self.advance(at);
        self.not_before = self.not_before.max(until);
        // The mark rides on the next bytes sent; a zero-length send carries it otherwise.
        self.steps.push(Step::Send {
            len: 0,
            not_before: self.not_before,
            mark: Some(mark),
        });
    }

    fn stop(&mut self, at: u64, step: Step) {
        if self.finished {
            return;
        }
        self.advance(at);
        self.steps.push(step);
        self.finished = true;
    }

    fn finish(mut self) -> Vec<Step> {
        let end = self.end;
        self.advance(end);
        self.steps
    }
}

/// The HTTP view of one connection.
#[derive(Debug)]
pub struct HttpSession {
    conv: Http1Conversation,
    strict: bool,
    requests_active: bool,
    responses_active: bool,
    /// Forward proxy: the origin this connection was routed to.
    route: Option<String>,
    /// HTTP rules whose connection-level keys matched this connection.
    armed: Vec<usize>,
    pending: VecDeque<Pending>,
    request: MessageState,
    response: MessageState,
    response_is_interim: bool,
    rng: ChaCha8Rng,
}

impl HttpSession {
    /// A session for a connection on which `armed` HTTP rules matched; `strict` answers malformed
    /// requests with 400 instead of falling back to raw TCP.
    pub fn new(armed: Vec<usize>, strict: bool, rng: ChaCha8Rng) -> Self {
        HttpSession {
            conv: Http1Conversation::new(),
            strict,
            requests_active: true,
            responses_active: true,
            route: None,
            armed,
            pending: VecDeque::new(),
            request: MessageState::default(),
            response: MessageState::default(),
            response_is_interim: false,
            rng,
        }
    }

    /// Whether HTTP tracking still runs for `direction` (false after a tunnel or a fallback to
    /// raw TCP).
    pub fn is_active(&self, direction: Direction) -> bool {
        match direction {
            Direction::ClientToUpstream => self.requests_active,
            Direction::UpstreamToClient => self.responses_active,
        }
    }

    /// Stops HTTP tracking for good (the connection became a CONNECT tunnel, or is not HTTP).
    pub fn deactivate(&mut self) {
        self.requests_active = false;
        self.responses_active = false;
    }

    /// Forward proxy: requests for another origin than `authority` must not reach this upstream.
    pub fn set_route(&mut self, authority: String) {
        self.route = Some(authority);
    }

    /// The answer faultline owes the client next, if every response before it is done.
    pub fn take_ready_answer(&mut self) -> Option<(Vec<u8>, Mark)> {
        if self.pending.front().is_some_and(|p| p.answer.is_some()) {
            return self.pending.pop_front().and_then(|p| p.answer);
        }
        None
    }

    /// Plans a chunk of `direction` that arrived at `arrival`.
    pub fn plan(
        &mut self,
        direction: Direction,
        chunk: &[u8],
        arrival: Instant,
        scenario: &Scenario,
        counters: &HttpRunState,
    ) -> Vec<Step> {
        if !self.is_active(direction) {
            return vec![Step::send(chunk.len(), arrival)];
        }
        match direction {
            Direction::ClientToUpstream => self.plan_request(chunk, arrival, scenario, counters),
            Direction::UpstreamToClient => self.plan_response(chunk, arrival, scenario),
        }
    }

    fn plan_request(
        &mut self,
        chunk: &[u8],
        arrival: Instant,
        scenario: &Scenario,
        counters: &HttpRunState,
    ) -> Vec<Step> {
        let start = self.conv.request_offset();
        let (events, error) = self.conv.feed_request_partial(chunk);
        if error.is_some() && !self.strict {
            warn!(direction = %Direction::ClientToUpstream, error = ?error.map(|e| e.to_string()), "not HTTP/1 after all; relaying the rest as raw TCP");
            self.deactivate();
            return vec![Step::send(chunk.len(), arrival)];
        }
        let mut plan = ChunkPlan::new(
            start,
            chunk.len(),
            arrival,
            self.request.delay_until,
            self.request.swallow_to_end,
        );
        let mut last_end = start;
        for event in events {
            match event {
                FrameEvent::Head {
                    head,
                    start: head_start,
                    end: head_end,
                    body,
                } => {
                    plan.advance(head_start);
                    self.request = MessageState::default();
                    self.on_request_head(
                        &head, head_start, head_end, body, &mut plan, arrival, scenario, counters,
                    );
                }
                FrameEvent::Body(piece) => {
                    Self::on_body(
                        &mut self.request,
                        piece.raw.start,
                        piece.len(),
                        &mut plan,
                        arrival,
                    );
                }
                FrameEvent::MessageEnd { end } => {
                    plan.advance(end);
                    last_end = end;
                    if self.request.swallow_to_end {
                        plan.skipping = false;
                        self.park(&mut plan, end);
                    }
                    self.request = MessageState::default();
                    plan.not_before = arrival;
                }
                FrameEvent::Tunnel { .. } => self.deactivate(),
            }
            if plan.finished {
                break;
            }
        }
        if let Some(error) = error {
            if !plan.finished {
                return self.malformed(error.to_string(), plan, last_end);
            }
        }
        plan.finish()
    }

    /// Stops relaying requests at `at`: faultline owes the client an answer (already queued in
    /// `pending`), sent once the responses before it are done.
    fn park(&mut self, plan: &mut ChunkPlan, at: u64) {
        plan.stop(at, Step::Park);
        self.requests_active = false;
    }

    #[allow(clippy::too_many_arguments)]
    fn on_request_head(
        &mut self,
        head: &RequestHead,
        head_start: u64,
        head_end: u64,
        body: BodyKind,
        plan: &mut ChunkPlan,
        arrival: Instant,
        scenario: &Scenario,
        counters: &HttpRunState,
    ) {
        let attempt = counters.attempt(&head.method, &head.target);
        let facts = RequestFacts {
            method: &head.method,
            path: head.path(),
            query: head.query(),
            host: head.host(),
            attempt,
        };
        let label = format!("{} {} (attempt {attempt})", head.method, head.target);
        if let Some(route) = &self.route {
            let origin = crate::proxy::forward::authority_of(&head.target);
            if let Some(origin) = origin.filter(|o| !crate::proxy::forward::same_origin(o, route)) {
                let note = format!(
                    "{label} is for {origin}, but this connection goes to {route}: closed after the earlier responses so the client reconnects"
                );
                self.pending.push_back(Pending {
                    label,
                    answer: Some((
                        Vec::new(),
                        Mark {
                            rule: usize::MAX,
                            note,
                        },
                    )),
                    ..Pending::default()
                });
                self.park(plan, head_start);
                return;
            }
        }
        let body_len = match body {
            BodyKind::None => Some(0),
            BodyKind::Length(n) => Some(n),
            BodyKind::Chunked | BodyKind::UntilClose => None,
        };
        let mut pending = Pending {
            label: label.clone(),
            ..Pending::default()
        };
        let armed = std::mem::take(&mut self.armed);
        for &i in &armed {
            let rule = &scenario.rules[i];
            // A rule without HTTP keys (an HTTP-only fault such as respond) applies to every request.
            if let Some(http) = &rule.matcher.http {
                if !http.matches_request(&facts, |name| head.header(name)) {
                    continue;
                }
                let ordinal = counters.request_matches[i].fetch_add(1, Relaxed) + 1;
                if http
                    .request
                    .as_ref()
                    .is_some_and(|wanted| !wanted.contains(&ordinal))
                {
                    continue;
                }
            }
            let direction = rule.http_direction(rule.explicit_direction);
            if direction.includes(Direction::UpstreamToClient) && !rule.fault.is_http_only() {
                pending.response_rules.push(i);
            }
            if direction.includes(Direction::ClientToUpstream) || rule.fault.is_http_only() {
                self.fire_on_request(
                    i,
                    rule,
                    &label,
                    head_start,
                    body_len,
                    head.expects_continue(),
                    plan,
                    arrival,
                    &mut pending,
                );
            }
            if plan.finished {
                break;
            }
        }
        self.armed = armed;
        self.pending.push_back(pending);
        // A zero limit acts right after the head.
        Self::on_body(&mut self.request, head_end, 0, plan, arrival);
    }

    #[allow(clippy::too_many_arguments)]
    fn fire_on_request(
        &mut self,
        i: usize,
        rule: &crate::scenario::Rule,
        label: &str,
        head_start: u64,
        body_len: Option<u64>,
        expects_continue: bool,
        plan: &mut ChunkPlan,
        arrival: Instant,
        pending: &mut Pending,
    ) {
        match &rule.fault {
            Fault::Respond(respond) => {
                let mark = Mark {
                    rule: i,
                    note: format!(
                        "answered {} to {label} without forwarding it",
                        respond.status
                    ),
                };
                pending.answer = Some((respond.response_bytes(), mark));
                // A client waiting for `100 Continue` sends no body: answering at once is what
                // RFC 9110 §10.1.1 allows a server that will not read the body.
                if respond.after == RespondAfter::RequestHead || expects_continue {
                    self.park(plan, head_start);
                } else {
                    plan.advance(head_start);
                    plan.skipping = true;
                    self.request.swallow_to_end = true;
                }
            }
            Fault::DropResponse(_) => {
                pending.drop_response = Some(Mark {
                    rule: i,
                    note: format!("forwarded {label}, then reset the client before its response"),
                });
            }
            other => self.arm_message_fault(
                i,
                other,
                label,
                Direction::ClientToUpstream,
                head_start,
                body_len,
                plan,
                arrival,
            ),
        }
    }

    /// Arms a byte/time fault on the message whose head starts at `head_start`.
    #[allow(clippy::too_many_arguments)]
    fn arm_message_fault(
        &mut self,
        i: usize,
        fault: &Fault,
        label: &str,
        direction: Direction,
        head_start: u64,
        body_len: Option<u64>,
        plan: &mut ChunkPlan,
        arrival: Instant,
    ) {
        let message = match direction {
            Direction::ClientToUpstream => &mut self.request,
            Direction::UpstreamToClient => &mut self.response,
        };
        let what = match direction {
            Direction::ClientToUpstream => format!("the body of {label}"),
            Direction::UpstreamToClient => format!("the response body to {label}"),
        };
        let limit_of = |amount: Amount| {
            let limit = amount.of(body_len);
            if limit.is_none() {
                warn!(
                    rule = i + 1,
                    "{amount} of {what}: the body has no Content-Length; rule skipped"
                );
            }
            limit
        };
        // reset and truncate differ only in how the connection ends.
        let cut = match fault {
            Fault::Reset(reset) => reset.after.map(|a| (a, EndHow::Reset, "reset")),
            Fault::Truncate(truncate) => Some((truncate.after, EndHow::Finish, "truncated")),
            _ => None,
        };
        if let Some((amount, how, verb)) = cut {
            if let Some(limit) = limit_of(amount) {
                message.faults.push(BodyFault::Cut {
                    limit,
                    how,
                    mark: Mark {
                        rule: i,
                        note: format!("{verb} {direction} after {limit} bytes of {what}"),
                    },
                });
            }
            return;
        }
        match fault {
            Fault::Stall(stall) => {
                if let Some(limit) = limit_of(stall.after.unwrap_or(Amount::Bytes(0))) {
                    let duration = stall.duration.map(|d| d.0);
                    message.faults.push(BodyFault::Stall {
                        limit,
                        duration,
                        mark: Mark {
                            rule: i,
                            note: match duration {
                                Some(d) => format!(
                                    "stalled {direction} for {d:?} after {limit} bytes of {what}"
                                ),
                                None => format!(
                                    "stalled {direction} forever after {limit} bytes of {what}"
                                ),
                            },
                        },
                    });
                }
            }
            Fault::Latency(latency) => {
                let jitter = latency.jitter.map(|j| j.0).unwrap_or_default();
                let extra = if jitter.is_zero() {
                    Duration::ZERO
                } else {
                    Duration::from_nanos(self.rng.gen_range(0..=jitter.as_nanos() as u64))
                };
                let delay = latency.delay.0 + extra;
                plan.delay_from(
                    head_start,
                    arrival + delay,
                    Mark {
                        rule: i,
                        note: format!(
                            "delayed the head of {} by {delay:?}",
                            match direction {
                                Direction::ClientToUpstream => label.to_string(),
                                Direction::UpstreamToClient => format!("the response to {label}"),
                            }
                        ),
                    },
                );
            }
            // Handled above (reset, truncate); validation keeps the others off HTTP rules.
            Fault::Reset(_)
            | Fault::Truncate(_)
            | Fault::Bandwidth(_)
            | Fault::Terminate(_)
            | Fault::Refuse(_)
            | Fault::Respond(_)
            | Fault::DropResponse(_) => {}
        }
    }

    /// Advances a message's payload count over a body piece at raw offset `raw_start` of `len`
    /// payload bytes, acting where a body fault's limit falls.
    fn on_body(
        message: &mut MessageState,
        raw_start: u64,
        len: u64,
        plan: &mut ChunkPlan,
        arrival: Instant,
    ) {
        let seen = message.payload_seen;
        let mut triggered: Vec<usize> = message
            .faults
            .iter()
            .enumerate()
            .filter(|(_, f)| f.limit() <= seen + len)
            .map(|(i, _)| i)
            .collect();
        triggered.sort_by_key(|&i| message.faults[i].limit());
        for (removed, index) in triggered.into_iter().enumerate() {
            let fault = message.faults.remove(index - removed);
            let at = raw_start + (fault.limit() - seen);
            match fault {
                BodyFault::Cut { how, mark, .. } => plan.stop(at, Step::End { how, mark }),
                BodyFault::Stall {
                    duration: None,
                    mark,
                    ..
                } => plan.stop(at, Step::Hold { mark }),
                BodyFault::Stall {
                    duration: Some(d),
                    mark,
                    ..
                } => {
                    let until = arrival + d;
                    message.delay_until = Some(until);
                    plan.delay_from(at, until, mark);
                }
            }
            if plan.finished {
                break;
            }
        }
        message.payload_seen += len;
    }

    fn plan_response(&mut self, chunk: &[u8], arrival: Instant, scenario: &Scenario) -> Vec<Step> {
        let start = self.conv.response_offset();
        let events = match self.conv.feed_response(chunk) {
            Ok(events) => events,
            Err(e) => {
                warn!(direction = %Direction::UpstreamToClient, error = %e, "response is not valid HTTP/1; relaying the rest as raw bytes");
                self.deactivate();
                return vec![Step::send(chunk.len(), arrival)];
            }
        };
        let mut plan = ChunkPlan::new(
            start,
            chunk.len(),
            arrival,
            self.response.delay_until,
            false,
        );
        for event in events {
            match event {
                FrameEvent::Head {
                    head,
                    start: head_start,
                    end: head_end,
                    body,
                } => {
                    plan.advance(head_start);
                    self.response = MessageState::default();
                    self.response_is_interim = head.is_interim();
                    if self.response_is_interim {
                        continue;
                    }
                    let body_len = match body {
                        BodyKind::None => Some(0),
                        BodyKind::Length(n) => Some(n),
                        BodyKind::Chunked | BodyKind::UntilClose => None,
                    };
                    let (rules, drop, label) = match self.pending.front_mut() {
                        Some(p) => (
                            std::mem::take(&mut p.response_rules),
                            p.drop_response.take(),
                            p.label.clone(),
                        ),
                        None => (Vec::new(), None, "an unknown request".to_string()),
                    };
                    if let Some(mark) = drop {
                        plan.stop(
                            head_start,
                            Step::End {
                                how: EndHow::Reset,
                                mark,
                            },
                        );
                        break;
                    }
                    for i in rules {
                        let rule = &scenario.rules[i];
                        let status_ok = rule
                            .matcher
                            .http
                            .as_ref()
                            .is_none_or(|h| h.matches_status(head.status));
                        if status_ok {
                            let label = format!("{label} (status {})", head.status);
                            self.arm_message_fault(
                                i,
                                &rule.fault,
                                &label,
                                Direction::UpstreamToClient,
                                head_start,
                                body_len,
                                &mut plan,
                                arrival,
                            );
                        }
                    }
                    Self::on_body(&mut self.response, head_end, 0, &mut plan, arrival);
                }
                FrameEvent::Body(piece) => {
                    Self::on_body(
                        &mut self.response,
                        piece.raw.start,
                        piece.len(),
                        &mut plan,
                        arrival,
                    );
                }
                FrameEvent::MessageEnd { end } => {
                    plan.advance(end);
                    if !self.response_is_interim {
                        self.pending.pop_front();
                        if let Some((bytes, mark)) = self.take_ready_answer() {
                            plan.stop(end, Step::Answer { bytes, mark });
                        }
                    }
                    self.response = MessageState::default();
                    plan.not_before = arrival;
                }
                FrameEvent::Tunnel { .. } => self.deactivate(),
            }
            if plan.finished {
                break;
            }
        }
        plan.finish()
    }

    /// Strict HTTP met bytes that are not a request: the complete requests before them are
    /// relayed, the rest is swallowed, and the client gets `400 Bad Request` after the responses
    /// it is owed.
    fn malformed(&mut self, error: String, mut plan: ChunkPlan, last_end: u64) -> Vec<Step> {
        warn!(direction = %Direction::ClientToUpstream, %error, "malformed HTTP request; answering 400 and closing");
        let body = format!("400 Bad Request: faultline could not parse the request: {error}\n");
        let bytes = format!(
            "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .into_bytes();
        self.pending.push_back(Pending {
            label: "a malformed request".to_string(),
            answer: Some((
                bytes,
                Mark {
                    rule: usize::MAX,
                    note: format!("answered 400 to a malformed request ({error})"),
                },
            )),
            ..Pending::default()
        });
        plan.advance(last_end);
        plan.skipping = true;
        let end = plan.end;
        self.park(&mut plan, end);
        plan.finish()
    }
}
