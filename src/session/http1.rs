//! The HTTP/1 session of one connection: follows both directions' messages with the framer and
//! maps them onto the fault engine — each message's head, framing and payload become classified
//! byte ranges that its armed rules' fault chain shapes — plus the answers faultline gives in
//! place of a request. It implements no fault itself.

use std::sync::Arc;

use bytes::Bytes;
use tokio::time::Instant;
use tracing::{debug, warn};

use super::arming::{arm_request, arm_response, RunCounters};
use super::exchanges::{Exchanges, Pending};
use super::message::{MessageFaults, RuleStreams};
use super::offsets::ChunkPlan;
use super::SessionPlan;
use crate::direction::Direction;
use crate::fault::plan::{EndHow, Mark, Role, Step};
use crate::fault::respond::RespondAfter;
use crate::fault::{Fault, MessageScope, Scope};
use crate::http::answer::plain_answer;
use crate::http::authority::{authority_of, same_origin};
use crate::http::origin_form::rewrite_for_origin;
use crate::http::{BodyKind, FrameEvent, Http1Conversation, HttpError, RequestHead};
use crate::scenario::{ConnectionFacts, RequestFacts, Scenario};

/// The interim response faultline sends for a request it answers after the body.
const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// The most request bytes a session keeps of a request held for a `respond` rule, so that a
/// fallback to raw TCP can still relay them: past it, a request framed that well is HTTP, and
/// a malformed rest of it is answered 400 as in strict mode.
const MAX_HELD: usize = 1024 * 1024;

/// What a session consults on every chunk: the run's scenario and its counters.
#[derive(Debug, Clone, Copy)]
pub struct RunView<'a> {
    /// The scenario in force now (it may be replaced between two chunks).
    pub scenario: &'a Arc<Scenario>,
    /// Attempts and request ordinals across the run.
    pub counters: &'a RunCounters,
}

/// The HTTP view of one connection.
#[derive(Debug)]
pub struct Http1Session {
    conv: Http1Conversation,
    strict: bool,
    /// Whether HTTP tracking still runs, per direction (false after a tunnel or a fallback to
    /// raw TCP, and for requests once faultline owes the client an answer).
    active: [bool; 2],
    /// Forward proxy: the origin this connection was routed to.
    route: Option<String>,
    /// HTTP rules whose connection-level keys matched this connection, and the scenario they
    /// were chosen from (chosen again when it is replaced).
    candidates: Vec<usize>,
    candidates_from: Option<Arc<Scenario>>,
    seed: u64,
    facts: ConnectionFacts,
    exchanges: Exchanges,
    request: MessageFaults,
    /// A request's head was framed and its end not yet: its head went upstream (unless
    /// faultline answers it), so a malformed body leaves the upstream waiting for the rest.
    request_open: bool,
    response: MessageFaults,
    response_is_interim: bool,
    /// Bytes of each direction covered by plans so far (the framer may have seen more: a head
    /// held back until it is complete).
    planned: [u64; 2],
    /// The server agreed to `Upgrade: h2c`: the upgraded request (stream 1's), and where each
    /// direction's HTTP/2 bytes start once the framer says so.
    h2c: Option<crate::h2::HeaderList>,
    h2c_at: [Option<u64>; 2],
    streams: RuleStreams,
    /// Copies of the request bytes held back (not relayed) for a `respond` rule, in order,
    /// up to [`MAX_HELD`]: relayed first if the connection falls back to raw TCP.
    held: Vec<u8>,
    /// More than [`MAX_HELD`] bytes were held: they cannot all be relayed any more.
    held_overflow: bool,
    /// Requests stopped (the request side parked) for an answer owed to the client.
    parked: bool,
    /// A malformed request was refused (strict): its 400 is owed, nothing of it goes upstream.
    refused: bool,
    /// The session fell back to raw TCP from the response side while requests were held or
    /// parked: what the request side must relay first, once.
    release: Option<Vec<u8>>,
}

impl Http1Session {
    /// A session for the connection `facts` describe, in a run seeded with `seed`; `strict`
    /// answers malformed requests with 400 instead of falling back to raw TCP.
    pub fn new(strict: bool, seed: u64, facts: ConnectionFacts) -> Self {
        Http1Session {
            conv: Http1Conversation::new(),
            strict,
            active: [true, true],
            route: None,
            candidates: Vec::new(),
            candidates_from: None,
            seed,
            exchanges: Exchanges::default(),
            request: MessageFaults::default(),
            request_open: false,
            response: MessageFaults::default(),
            response_is_interim: false,
            planned: [0, 0],
            h2c: None,
            h2c_at: [None, None],
            streams: RuleStreams::new(seed, facts.ordinal),
            facts,
            held: Vec::new(),
            held_overflow: false,
            parked: false,
            refused: false,
            release: None,
        }
    }

    /// Whether HTTP tracking still runs for `direction`.
    pub fn is_active(&self, direction: Direction) -> bool {
        self.active[direction.index()]
    }

    /// Stops HTTP tracking for good (the connection became a CONNECT tunnel, or is not HTTP).
    pub fn deactivate(&mut self) {
        self.active = [false, false];
    }

    /// Forward proxy: requests go to `authority`; they are rewritten to origin-form, and
    /// requests for another origin must not reach this upstream.
    pub fn set_route(&mut self, authority: String) {
        self.route = Some(authority);
    }

    /// The answer faultline owes the client next, if every response before it is done.
    pub fn take_ready_answer(&mut self) -> Option<(Vec<u8>, Mark)> {
        self.exchanges.take_ready_answer()
    }

    /// Whether `direction`'s receiver is owed bytes no chunk brings: the `100 Continue` for a
    /// request faultline answers after its body (the upstream never sends one).
    pub fn wants_flush(&self, direction: Direction) -> bool {
        match direction {
            Direction::UpstreamToClient => self.active[1] && self.exchanges.interim_ready(),
            Direction::ClientToUpstream => self.release.is_some(),
        }
    }

    /// After a fallback to raw TCP: the request bytes held back for a rule, which the request
    /// side relays before anything else, and which unpark it (once; `None` when the request side
    /// has nothing held and is not parked).
    pub fn take_release(&mut self) -> Option<Vec<u8>> {
        self.release.take()
    }

    /// The connection is not HTTP/1 after all: the rest of both directions is relayed as raw
    /// TCP. The requests held back for a rule were never sent and will not be answered by
    /// faultline: they go upstream first (from the plan of `direction` when it is the request
    /// side, else when the request side is woken for them).
    fn fall_back(&mut self) -> Option<Vec<u8>> {
        self.deactivate();
        if self.refused || self.held_overflow {
            // A strict 400 is owed (its request goes nowhere), or the held bytes are gone.
            return None;
        }
        self.exchanges = Exchanges::default();
        let held = std::mem::take(&mut self.held);
        (self.parked || !held.is_empty()).then_some(held)
    }

    /// Skips the chunk's bytes up to `to` for a request held for a rule, keeping a copy.
    fn hold(&mut self, plan: &mut ChunkPlan, chunk: &[u8], start: u64, to: u64) {
        if !self.held_overflow {
            let from = plan.pos().max(start);
            if let Some(bytes) = chunk_slice(chunk, start, from, to.min(plan.end())) {
                if self.held.len() + bytes.len() > MAX_HELD {
                    self.held_overflow = true;
                    self.held = Vec::new();
                } else {
                    self.held.extend_from_slice(bytes);
                }
            }
        }
        plan.skip(to);
    }

    /// Forward proxy: the origin the answer taken last hands the connection to (a kept-alive
    /// client asked for another origin), once.
    pub fn take_reroute(&mut self) -> Option<String> {
        self.exchanges.take_reroute()
    }

    /// Forward proxy: the connection goes to `authority` from now on, over a new upstream leg;
    /// both directions start afresh at the request that asked for it (its head is planned
    /// again, as the first bytes of the new leg).
    pub fn reroute(&mut self, authority: String) {
        self.conv = Http1Conversation::new();
        self.active = [true, true];
        self.route = Some(authority);
        self.request = MessageFaults::default();
        self.request_open = false;
        self.response = MessageFaults::default();
        self.response_is_interim = false;
        self.planned = [0, 0];
    }

    /// Whether `direction` reached the point where the connection speaks HTTP/2 after an
    /// `Upgrade: h2c` the server accepted: the last plan stopped there and held the rest back.
    pub fn switched_to_h2(&self, direction: Direction) -> bool {
        self.h2c_at[direction.index()].is_some()
    }

    /// The HTTP/2 session that takes over after an accepted `Upgrade: h2c`, opened at `opened`.
    pub fn h2c_session(&self, opened: Instant) -> Option<super::H2Session> {
        let request = self.h2c.clone()?;
        Some(super::H2Session::upgraded(
            self.seed,
            self.facts.clone(),
            opened,
            request,
        ))
    }

    /// The upgraded request (stream 1 of the HTTP/2 connection), once the server accepted it.
    pub fn upgraded_request(&self) -> Option<&crate::h2::HeaderList> {
        self.h2c.as_ref()
    }

    /// Plans a chunk of `direction` that arrived at `arrival`. The chunk starts with the bytes
    /// the previous plan of this direction deferred.
    pub fn plan(
        &mut self,
        direction: Direction,
        chunk: &[u8],
        arrival: Instant,
        run: RunView<'_>,
    ) -> SessionPlan {
        if !self.is_active(direction) {
            return SessionPlan::relay(chunk.len(), arrival);
        }
        if !self
            .candidates_from
            .as_ref()
            .is_some_and(|from| Arc::ptr_eq(from, run.scenario))
        {
            let scenario = run.scenario;
            self.candidates = scenario
                .rules_for_connection(&self.facts, self.seed)
                .into_iter()
                // HTTP/2's own faults (RST_STREAM, GOAWAY, grpc-status) never act on HTTP/1: a
                // trial saw rst_stream reset an HTTP/1.1 connection, logged as a stream reset.
                .filter(|&i| scenario.rules[i].is_http() && !scenario.rules[i].fault.is_h2_only())
                .collect();
            self.candidates_from = Some(scenario.clone());
        }
        let plan = match direction {
            Direction::ClientToUpstream => self.plan_requests(chunk, arrival, run),
            Direction::UpstreamToClient => self.plan_responses(chunk, arrival, run),
        };
        self.planned[direction.index()] += (chunk.len() - plan.deferred) as u64;
        plan
    }

    /// The part of `chunk` the framer has not seen yet (the start was fed when it was deferred).
    fn unfed(chunk: &[u8], planned: u64, fed: u64) -> &[u8] {
        let seen = usize::try_from(fed.saturating_sub(planned)).unwrap_or(usize::MAX);
        chunk.get(seen..).unwrap_or_default()
    }

    fn plan_requests(&mut self, chunk: &[u8], arrival: Instant, run: RunView<'_>) -> SessionPlan {
        let start = self.planned[0];
        let fresh = Self::unfed(chunk, start, self.conv.request_offset());
        let (events, error) = self.conv.feed_request_partial(fresh);
        if error.is_some() && !self.strict && !self.held_overflow {
            warn!(direction = %Direction::ClientToUpstream, error = %error.map(|e| e.to_string()).unwrap_or_default(), "not HTTP/1 after all; relaying the rest as raw TCP");
            let mut plan = SessionPlan::relay(chunk.len(), arrival);
            if let Some(held) = self.fall_back().filter(|h| !h.is_empty()) {
                // What was held for a rule left the client before this chunk: it goes first
                // (a trial saw the held head of `POST /fail/1` dropped and only the rest sent).
                let held = Step::Insert {
                    bytes: Bytes::from(held),
                    not_before: arrival,
                    mark: None,
                    role: Role::Payload,
                };
                plan.steps.insert(0, held);
            }
            return plan;
        }
        let mut plan = ChunkPlan::new(start, chunk.len(), arrival);
        let mut last_end = start;
        for event in events {
            match event {
                FrameEvent::Head {
                    head,
                    start: head_start,
                    end: head_end,
                    body,
                } => {
                    start_message(&mut plan, &mut self.request, head_start);
                    self.request_open = true;
                    let raw = chunk_slice(chunk, start, head_start, head_end);
                    let view = HeadView {
                        head: &head,
                        raw,
                        end: head_end,
                        body,
                    };
                    self.on_request_head(view, &mut plan, run);
                }
                FrameEvent::Body(piece) => {
                    if self.request.swallow {
                        self.hold(&mut plan, chunk, start, piece.raw.end);
                    } else {
                        plan.relay(piece.raw.start, Role::Framing);
                        plan.relay(piece.raw.end, Role::Payload);
                    }
                }
                FrameEvent::MessageEnd { end } => {
                    last_end = end;
                    self.request_open = false;
                    if self.request.swallow {
                        self.hold(&mut plan, chunk, start, end);
                        self.exchanges.body_read();
                        self.park(&mut plan);
                    } else {
                        plan.relay(end, Role::Framing);
                        plan.flush(self.request.chain.as_mut());
                    }
                    self.request = MessageFaults::default();
                }
                FrameEvent::Tunnel { start: tunnel } => {
                    plan.relay(tunnel, Role::Framing);
                    plan.flush(self.request.chain.as_mut());
                    self.request = MessageFaults::default();
                    if self.h2c.is_some() {
                        // HTTP/2 from here: the rest of the chunk is the HTTP/2 session's.
                        self.h2c_at[0] = Some(tunnel);
                        self.active[0] = false;
                        let rest = plan.end().saturating_sub(tunnel) as usize;
                        return plan.finish(rest);
                    }
                    self.deactivate();
                }
            }
            if plan.is_finished() {
                break;
            }
        }
        if let Some(error) = error {
            if !plan.is_finished() {
                return self.malformed(error, plan, last_end);
            }
        }
        self.finish(plan, chunk, Direction::ClientToUpstream)
    }

    /// Plans the rest of the chunk: the bytes of an incomplete head are deferred until it is
    /// whole (rules decide on whole heads); anything else belongs to the current message.
    fn finish(&mut self, mut plan: ChunkPlan, chunk: &[u8], direction: Direction) -> SessionPlan {
        let pending = match direction {
            Direction::ClientToUpstream => self.conv.request_head_pending(),
            Direction::UpstreamToClient => self.conv.response_head_pending(),
        };
        let deferred = if self.active[direction.index()] {
            pending
        } else {
            0
        };
        let keep_until = plan.end().saturating_sub(deferred as u64);
        let swallow = match direction {
            Direction::ClientToUpstream => self.request.swallow,
            Direction::UpstreamToClient => self.response.swallow,
        };
        if swallow && direction == Direction::ClientToUpstream {
            let start = self.planned[0];
            self.hold(&mut plan, chunk, start, keep_until);
        } else if swallow {
            plan.skip(keep_until);
        } else {
            plan.relay(keep_until, Role::Framing);
        }
        let message = match direction {
            Direction::ClientToUpstream => &mut self.request,
            Direction::UpstreamToClient => &mut self.response,
        };
        plan.flush(message.chain.as_mut());
        plan.finish(deferred)
    }

    /// Stops relaying requests here: faultline owes the client an answer (already queued),
    /// sent once the responses before it are done.
    fn park(&mut self, plan: &mut ChunkPlan) {
        plan.stop(Step::Park);
        self.active[0] = false;
        self.parked = true;
    }

    /// Arms the rules for a request whose head just completed and plans its head.
    fn on_request_head(&mut self, view: HeadView<'_>, plan: &mut ChunkPlan, run: RunView<'_>) {
        let HeadView {
            head,
            raw,
            end: head_end,
            body,
        } = view;
        if let Some(route) = &self.route {
            if let Some(origin) = authority_of(&head.target).filter(|o| !same_origin(o, route)) {
                // Not counted as an attempt here: the request is planned again, from its head,
                // on the upstream leg to its own origin.
                let label = format!("{} {}", head.method, head.target);
                let note = format!("{label}: the upstream leg moves from {route} to {origin}");
                self.exchanges.push(Pending {
                    label,
                    answer: Some((Vec::new(), Mark::proxy(note))),
                    reroute: Some(origin),
                    ..Pending::default()
                });
                self.park(plan);
                return;
            }
        }
        let attempt = run
            .counters
            .attempt(&format!("{} {}", head.method, head.target));
        let label = format!("{} {} (attempt {attempt})", head.method, head.target);
        let facts = RequestFacts {
            method: &head.method,
            path: head.path(),
            query: head.query(),
            host: head.host(),
            attempt,
        };
        let armed = arm_request(
            run.scenario,
            &self.candidates,
            &facts,
            |name| head.header_values(name),
            run.counters,
        );
        let mut pending = Pending {
            label: label.clone(),
            response_rules: armed.on_response,
            h2c: head
                .has_token("upgrade", "h2c")
                .then(|| crate::h2::headers::upgraded_request(head)),
            ..Pending::default()
        };
        let mut byte_rules = Vec::new();
        let mut answer_after = None;
        for &key in &armed.on_request {
            let Some((_, rule)) = run.scenario.rule_by_key(key) else {
                continue;
            };
            match &rule.fault {
                Fault::Respond(respond) if pending.answer.is_none() => {
                    let note = format!(
                        "answered {} to {label} without forwarding it",
                        respond.status
                    );
                    pending.answer = Some((
                        respond.response_bytes(head.method == "HEAD"),
                        Mark::rule(&rule.id, note),
                    ));
                    // A client waiting for `100 Continue` sends no body until told to: for an
                    // answer after the body faultline says `100 Continue` itself (the upstream
                    // never hears of the request), as a server that reads the body and then
                    // fails would; the answer then comes after the body, as the rule says.
                    if head.expects_continue() && respond.after == RespondAfter::RequestBody {
                        pending.interim = Some((
                            CONTINUE.to_vec(),
                            Mark::proxy(format!(
                                "100 Continue to {label}, so its body comes for rule \"{}\" to answer after it",
                                rule.name
                            )),
                        ));
                    }
                    answer_after = Some(respond.after);
                    pending.awaiting_body = respond.after == RespondAfter::RequestBody;
                }
                Fault::Respond(_) => {}
                Fault::DropResponse(_) => {
                    pending.drop_response = Some(Mark::rule(
                        &rule.id,
                        format!("forwarded {label}, then reset the client before its response"),
                    ));
                }
                _ => byte_rules.push(key),
            }
        }
        self.exchanges.push(pending);
        match answer_after {
            Some(RespondAfter::RequestHead) => return self.park(plan),
            Some(RespondAfter::RequestBody) => {
                self.request = MessageFaults::swallowed();
                if let Some(raw) = raw {
                    if self.held.len() + raw.len() > MAX_HELD {
                        self.held_overflow = true;
                        self.held = Vec::new();
                    } else if !self.held_overflow {
                        self.held.extend_from_slice(raw);
                    }
                }
                plan.skip(head_end);
                return;
            }
            None => {}
        }
        let scope = Scope::message(
            Direction::ClientToUpstream,
            MessageScope {
                body: format!("the body of {label}"),
                name: label,
                body_len: body_len(body),
            },
        );
        self.request = MessageFaults::armed(run.scenario, &byte_rules, &scope, &mut self.streams);
        let rewritten = match (&self.route, raw) {
            (Some(route), Some(raw)) => rewrite_for_origin(raw, route),
            _ => None,
        };
        match rewritten {
            Some(bytes) => {
                plan.skip(head_end);
                plan.insert(Bytes::from(bytes), Role::Head);
            }
            None => {
                if self.route.is_some() && head.is_absolute_form() {
                    debug!("forward request head not in this chunk; relayed unchanged");
                }
                plan.relay(head_end, Role::Head);
            }
        }
    }

    fn plan_responses(&mut self, chunk: &[u8], arrival: Instant, run: RunView<'_>) -> SessionPlan {
        let start = self.planned[1];
        let fresh = Self::unfed(chunk, start, self.conv.response_offset());
        let events = match self.conv.feed_response(fresh) {
            Ok(events) => events,
            Err(e) => {
                warn!(direction = %Direction::UpstreamToClient, error = %e, "response is not valid HTTP/1; relaying the rest as raw bytes");
                // The requests held for a rule (and those after them, read and parked) go
                // upstream once the request side is woken: a trial saw them never sent, and
                // the connection never end.
                self.release = self.fall_back();
                return SessionPlan::relay(chunk.len(), arrival);
            }
        };
        let mut plan = ChunkPlan::new(start, chunk.len(), arrival);
        // Woken for it (see `wants_flush`): the interim response owed to the request at the
        // front, which the upstream never got.
        if let Some((bytes, mark)) = self.exchanges.take_ready_interim() {
            plan.insert_at(Bytes::from(bytes), arrival, Some(mark));
        }
        for event in events {
            match event {
                FrameEvent::Head {
                    head,
                    start: head_start,
                    end: head_end,
                    body,
                } => {
                    start_message(&mut plan, &mut self.response, head_start);
                    self.response_is_interim = head.is_interim();
                    if self.response_is_interim {
                        plan.relay(head_end, Role::Head);
                        plan.flush(None);
                        continue;
                    }
                    let (rules, drop, label) = match self.exchanges.front_mut() {
                        Some(p) => {
                            if head.status == 101 && head.has_token("upgrade", "h2c") {
                                self.h2c = p.h2c.take();
                            }
                            (
                                std::mem::take(&mut p.response_rules),
                                p.drop_response.take(),
                                p.label.clone(),
                            )
                        }
                        None => (Vec::new(), None, "an unknown request".to_string()),
                    };
                    if let Some(mark) = drop {
                        plan.stop(Step::End {
                            how: EndHow::Reset,
                            mark,
                        });
                        break;
                    }
                    let rules = arm_response(run.scenario, &rules, head.status, run.counters);
                    let label = format!("{label} (status {})", head.status);
                    let scope = Scope::message(
                        Direction::UpstreamToClient,
                        MessageScope {
                            name: format!("the response to {label}"),
                            body: format!("the response body to {label}"),
                            body_len: body_len(body),
                        },
                    );
                    self.response =
                        MessageFaults::armed(run.scenario, &rules, &scope, &mut self.streams);
                    plan.relay(head_end, Role::Head);
                }
                FrameEvent::Body(piece) => {
                    plan.relay(piece.raw.start, Role::Framing);
                    plan.relay(piece.raw.end, Role::Payload);
                }
                FrameEvent::MessageEnd { end } => {
                    plan.relay(end, Role::Framing);
                    plan.flush(self.response.chain.as_mut());
                    self.response = MessageFaults::default();
                    if !self.response_is_interim {
                        self.exchanges.answered();
                        if let Some((bytes, mark)) = self.exchanges.take_ready_answer() {
                            plan.stop(Step::Answer { bytes, mark });
                        } else if let Some((bytes, mark)) = self.exchanges.take_ready_interim() {
                            plan.insert_at(Bytes::from(bytes), arrival, Some(mark));
                        }
                    }
                }
                FrameEvent::Tunnel { start: tunnel } => {
                    plan.relay(tunnel, Role::Framing);
                    plan.flush(self.response.chain.as_mut());
                    self.response = MessageFaults::default();
                    if self.h2c.is_some() {
                        self.h2c_at[1] = Some(tunnel);
                        self.active[1] = false;
                        let rest = plan.end().saturating_sub(tunnel) as usize;
                        return plan.finish(rest);
                    }
                    self.deactivate();
                }
            }
            if plan.is_finished() {
                break;
            }
        }
        self.finish(plan, chunk, Direction::UpstreamToClient)
    }

    /// Strict HTTP met bytes that are not a request: the complete requests before them are
    /// relayed, the rest is swallowed, and the client gets `400 Bad Request` after the responses
    /// it is owed.
    fn malformed(&mut self, error: HttpError, mut plan: ChunkPlan, last_end: u64) -> SessionPlan {
        warn!(direction = %Direction::ClientToUpstream, %error, "malformed HTTP request; answering 400 and closing");
        self.refused = true;
        let bytes = plain_answer(
            400,
            &format!("faultline could not parse the request: {error}"),
        );
        let answer = (
            bytes,
            Mark::proxy(format!("answered 400 to a malformed request ({error})")),
        );
        if self.request_open {
            // The error is inside the body of a request whose head went upstream: the upstream
            // waits for the rest of it and will never answer, so the 400 is that request's.
            self.exchanges
                .answer_latest(answer, "a malformed request".to_string());
        } else {
            self.exchanges.push(Pending {
                label: "a malformed request".to_string(),
                answer: Some(answer),
                ..Pending::default()
            });
        }
        plan.relay(last_end, Role::Framing);
        plan.flush(self.request.chain.as_mut());
        self.request = MessageFaults::default();
        let end = plan.end();
        plan.skip(end);
        self.park(&mut plan);
        plan.finish(0)
    }
}

/// A request head as the framer reported it.
struct HeadView<'a> {
    head: &'a RequestHead,
    /// Its raw bytes, when the chunk holds all of them.
    raw: Option<&'a [u8]>,
    /// Absolute offset just past it.
    end: u64,
    /// How its body is delimited.
    body: BodyKind,
}

/// A new message's head starts at `head_start`: what was planned of the previous message goes
/// through that message's chain, and the new one starts with no faults until rules arm it.
fn start_message(plan: &mut ChunkPlan, previous: &mut MessageFaults, head_start: u64) {
    plan.flush(previous.chain.as_mut());
    plan.relay(head_start, Role::Payload);
    plan.flush(None);
    *previous = MessageFaults::default();
}

/// The payload length a body's framing announces.
fn body_len(body: BodyKind) -> Option<u64> {
    match body {
        BodyKind::None => Some(0),
        BodyKind::Length(n) => Some(n),
        BodyKind::Chunked | BodyKind::UntilClose => None,
    }
}

/// The raw bytes `[from, to)` of a chunk that starts at absolute offset `chunk_start`, when the
/// chunk holds all of them.
fn chunk_slice(chunk: &[u8], chunk_start: u64, from: u64, to: u64) -> Option<&[u8]> {
    let from = usize::try_from(from.checked_sub(chunk_start)?).ok()?;
    let to = usize::try_from(to.checked_sub(chunk_start)?).ok()?;
    chunk.get(from..to)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::RunView;

    fn scenario(text: &str) -> Arc<Scenario> {
        Arc::new(Scenario::from_toml(text, "t.toml", "t").expect("valid"))
    }

    /// What one plan did to its chunk: bytes written (sent and inserted), and whether it parked.
    fn apply(plan: &SessionPlan, chunk: &[u8]) -> (Vec<u8>, bool) {
        let mut out = Vec::new();
        let mut at = 0;
        let mut parked = false;
        for step in &plan.steps {
            match step {
                Step::Send { len, .. } => {
                    out.extend_from_slice(&chunk[at..at + len]);
                    at += len;
                }
                Step::Insert { bytes, .. } => out.extend_from_slice(bytes),
                Step::Skip { len } => at += len,
                Step::Park => parked = true,
                _ => {}
            }
        }
        (out, parked)
    }

    fn plan_requests(
        session: &mut Http1Session,
        rules: &Arc<Scenario>,
        chunk: &[u8],
    ) -> SessionPlan {
        let counters = RunCounters::new();
        let run = RunView {
            scenario: rules,
            counters: &counters,
        };
        session.plan(Direction::ClientToUpstream, chunk, Instant::now(), run)
    }

    #[test]
    fn a_request_faultline_answers_never_reaches_the_upstream() {
        let rules =
            scenario("[[rule]]\nmatch = { path = \"/x\" }\nfault.respond = { status = 503 }\n");
        let mut session = Http1Session::new(false, 1, ConnectionFacts::ordinal(1));
        let request = b"PUT /x HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc";
        let plan = plan_requests(&mut session, &rules, request);
        let (sent, parked) = apply(&plan, request);
        assert!(sent.is_empty(), "{:?}", String::from_utf8_lossy(&sent));
        assert!(parked, "requests stop until the answer is out");
        let (answer, mark) = session.take_ready_answer().expect("an answer owed");
        assert!(answer.starts_with(b"HTTP/1.1 503 "));
        assert!(mark.note.contains("503"), "{}", mark.note);
    }

    /// A trial's `rst_stream` on an `auto` listener reset an HTTP/1.1 connection (logged as
    /// "reset the stream (REFUSED_STREAM)") and `grpc_status` matched without firing: HTTP/2's
    /// own faults never act on HTTP/1 requests.
    #[test]
    fn http2_faults_leave_http1_requests_alone() {
        let rules = scenario(
            "[[rule]]\nmatch = { path = \"/x\" }\nfault.rst_stream = { after = 0, code = \"REFUSED_STREAM\" }\n[[rule]]\nmatch = { path = \"/x\" }\nfault.grpc_status = { code = 14 }\n",
        );
        let mut session = Http1Session::new(false, 1, ConnectionFacts::ordinal(1));
        let request = b"GET /x HTTP/1.1\r\nHost: h\r\n\r\n";
        let plan = plan_requests(&mut session, &rules, request);
        assert_eq!(apply(&plan, request), (request.to_vec(), false));
        assert!(
            plan.steps
                .iter()
                .all(|s| matches!(s, Step::Send { mark: None, .. })),
            "{:?}",
            plan.steps
        );
    }

    /// A trial pipelined `GET` then `PUT` with `Expect: 100-continue` under a respond after
    /// the body: at the GET's response end the 500 came at once, before the body and with no
    /// 100 Continue. The answer waits for the body; the 100 comes when the GET's response ends.
    #[test]
    fn a_pipelined_answer_after_the_body_waits_for_the_body() {
        let rules =
            scenario("[[rule]]\nmatch = { method = \"PUT\" }\nfault.respond = { status = 500 }\n");
        let mut session = Http1Session::new(false, 1, ConnectionFacts::ordinal(1));
        let heads = b"GET /a HTTP/1.1\r\nHost: h\r\n\r\nPUT /b HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n";
        let (sent, _) = apply(&plan_requests(&mut session, &rules, heads), heads);
        assert!(sent.starts_with(b"GET /a ") && !sent.windows(3).any(|w| w == b"PUT"));
        let response = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";
        let counters = RunCounters::new();
        let run = RunView {
            scenario: &rules,
            counters: &counters,
        };
        let plan = session.plan(Direction::UpstreamToClient, response, Instant::now(), run);
        let (out, _) = apply(&plan, response);
        assert_eq!(
            out,
            [&response[..], b"HTTP/1.1 100 Continue\r\n\r\n"].concat()
        );
        assert!(
            !plan.steps.iter().any(|s| matches!(s, Step::Answer { .. })),
            "no answer before the body"
        );
        assert!(
            session.take_ready_answer().is_none(),
            "the body is still to come"
        );
        let body = b"hello";
        let (sent, parked) = apply(&plan_requests(&mut session, &rules, body), body);
        assert!(sent.is_empty() && parked, "the body is read and dropped");
        let (answer, _) = session
            .take_ready_answer()
            .expect("the answer, after the body");
        assert!(answer.starts_with(b"HTTP/1.1 500 "));
    }

    #[test]
    fn an_incomplete_head_is_deferred_until_it_is_whole() {
        let rules = scenario("");
        let mut session = Http1Session::new(false, 1, ConnectionFacts::ordinal(1));
        let head = b"GET /a HTTP/1.1\r\nHost: h\r\n\r\n";
        let plan = plan_requests(&mut session, &rules, &head[..10]);
        assert_eq!(plan.deferred, 10, "rules decide on whole heads");
        let plan = plan_requests(&mut session, &rules, head);
        assert_eq!(plan.deferred, 0);
        assert_eq!(apply(&plan, head).0, head, "relayed byte for byte");
    }

    #[test]
    fn forward_mode_sends_origin_form_and_moves_to_another_origin_after_its_responses() {
        let rules = scenario("");
        let mut session = Http1Session::new(false, 1, ConnectionFacts::ordinal(1));
        session.set_route("a.test:80".to_string());
        let first = b"GET http://a.test/x HTTP/1.1\r\nHost: a.test\r\n\r\n";
        let (sent, _) = apply(&plan_requests(&mut session, &rules, first), first);
        assert!(
            sent.starts_with(b"GET /x HTTP/1.1\r\n"),
            "{:?}",
            String::from_utf8_lossy(&sent)
        );
        let other = b"GET http://b.test/y HTTP/1.1\r\nHost: b.test\r\n\r\n";
        let (sent, parked) = apply(&plan_requests(&mut session, &rules, other), other);
        assert!(sent.is_empty() && parked);
        assert!(
            session.take_ready_answer().is_none(),
            "after a.test's response"
        );
        let response = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        let counters = RunCounters::new();
        let run = RunView {
            scenario: &rules,
            counters: &counters,
        };
        let plan = session.plan(Direction::UpstreamToClient, response, Instant::now(), run);
        assert_eq!(apply(&plan, response).0, response);
        match plan.steps.last() {
            Some(Step::Answer { bytes, mark }) => {
                assert!(bytes.is_empty(), "faultline writes nothing of its own");
                assert!(mark.note.ends_with("to b.test"), "{}", mark.note);
            }
            other => panic!("the switch is due after the response: {other:?}"),
        }
        assert_eq!(session.take_reroute().as_deref(), Some("b.test"));
        assert_eq!(session.take_reroute(), None, "once");
        // The parked request is planned again, first on the new leg.
        session.reroute("b.test".to_string());
        let (sent, parked) = apply(&plan_requests(&mut session, &rules, other), other);
        assert!(!parked);
        assert_eq!(sent, b"GET /y HTTP/1.1\r\nHost: b.test\r\n\r\n");
    }

    #[test]
    fn a_malformed_request_falls_back_to_raw_bytes_or_gets_a_400_when_strict() {
        let rules = scenario("");
        let garbage = b"GET / HTTP/1.1\r\nContent-Length: nope\r\n\r\n";
        let mut lenient = Http1Session::new(false, 1, ConnectionFacts::ordinal(1));
        let (sent, _) = apply(&plan_requests(&mut lenient, &rules, garbage), garbage);
        assert_eq!(sent, garbage, "relayed as raw TCP");
        assert!(!lenient.is_active(Direction::ClientToUpstream));
        let mut strict = Http1Session::new(true, 1, ConnectionFacts::ordinal(1));
        let (_, parked) = apply(&plan_requests(&mut strict, &rules, garbage), garbage);
        assert!(parked);
        let (answer, _) = strict.take_ready_answer().expect("a 400");
        assert!(answer.starts_with(b"HTTP/1.1 400 "));
    }

    /// A bad chunk size inside a request body whose head already went upstream: the upstream
    /// waits for the rest of that body and never answers, so the 400 is that request's own and
    /// goes out at once (it waited behind the upstream's answer, which never came).
    #[test]
    fn a_malformed_body_of_a_forwarded_request_is_answered_400_at_once() {
        let rules = scenario("");
        let head = b"PUT /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
        let mut strict = Http1Session::new(true, 1, ConnectionFacts::ordinal(1));
        let (sent, parked) = apply(&plan_requests(&mut strict, &rules, head), head);
        assert_eq!(sent, head, "the head goes upstream");
        assert!(!parked);
        let body = b"zz\r\nabc\r\n0\r\n\r\n";
        let (sent, parked) = apply(&plan_requests(&mut strict, &rules, body), body);
        assert!(sent.is_empty() && parked, "{sent:?}");
        let (answer, _) = strict.take_ready_answer().expect("the 400, at once");
        assert!(answer.starts_with(b"HTTP/1.1 400 "));
        assert!(strict.take_ready_answer().is_none(), "one answer");
    }

    /// A trial's strict listener held `POST /fail/1` (chunked) for a `respond` after its body;
    /// a bad chunk-size line was logged as answered 400, yet nothing was sent and the
    /// connection stayed open: the 503 waited for a body end that could never come.
    #[test]
    fn a_malformed_body_of_a_request_held_for_an_answer_gets_the_400() {
        let rules = scenario(
            "[[rule]]\nmatch = { path = \"/fail/**\" }\nfault.respond = { status = 503 }\n",
        );
        let head = b"POST /fail/1 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
        for body in [
            b"zz\r\n".to_vec(),
            [&b"0\r\n"[..], &b"X-Big: 1\r\n".repeat(100_000)].concat(),
        ] {
            let mut strict = Http1Session::new(true, 1, ConnectionFacts::ordinal(1));
            let (sent, parked) = apply(&plan_requests(&mut strict, &rules, head), head);
            assert!(sent.is_empty() && !parked, "held for the rule");
            assert!(strict.take_ready_answer().is_none(), "after the body");
            let (sent, parked) = apply(&plan_requests(&mut strict, &rules, &body), &body);
            assert!(sent.is_empty() && parked);
            let (answer, _) = strict.take_ready_answer().expect("the 400, at once");
            assert!(answer.starts_with(b"HTTP/1.1 400 "));
            assert!(strict.take_ready_answer().is_none(), "one answer");
        }
    }

    /// A trial smuggled `GET /fail/1` past a respond rule on a strict listener inside the
    /// chunked body of a request that also had a Content-Length: the upstream framed it by the
    /// length and served the smuggled request. Both framings are malformed framing: strict
    /// answers 400 and forwards nothing, auto relays the rest as raw TCP, like other such heads.
    #[test]
    fn a_request_with_both_content_length_and_chunked_is_malformed() {
        let rules = scenario(
            "[[rule]]\nmatch = { path = \"/fail/**\" }\nfault.respond = { status = 503 }\n",
        );
        let smuggler = b"POST /ok HTTP/1.1\r\nHost: a\r\nContent-Length: 40\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /fail/1 HTTP/1.1\r\nHost: a\r\n\r\n";
        let mut strict = Http1Session::new(true, 1, ConnectionFacts::ordinal(1));
        let (sent, parked) = apply(&plan_requests(&mut strict, &rules, smuggler), smuggler);
        assert!(
            sent.is_empty() && parked,
            "{:?}",
            String::from_utf8_lossy(&sent)
        );
        let (answer, _) = strict.take_ready_answer().expect("a 400");
        assert!(answer.starts_with(b"HTTP/1.1 400 "));
        let mut auto = Http1Session::new(false, 1, ConnectionFacts::ordinal(1));
        let (sent, _) = apply(&plan_requests(&mut auto, &rules, smuggler), smuggler);
        assert_eq!(sent, smuggler, "relayed as raw TCP");
        assert!(!auto.is_active(Direction::ClientToUpstream));
    }

    /// A trial (auto): `POST /fail/1` (chunked) was held for a respond rule after its body, then
    /// `zz\r\nGET /secret …` came: the fallback to raw TCP relayed only that chunk, the held
    /// 62-byte head was lost. Everything held goes first, in order.
    #[test]
    fn a_fallback_to_raw_relays_the_request_held_for_a_rule_first() {
        let rules = scenario(
            "[[rule]]\nmatch = { path = \"/fail/**\" }\nfault.respond = { status = 503 }\n",
        );
        let head = b"POST /fail/1 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
        let mut auto = Http1Session::new(false, 1, ConnectionFacts::ordinal(1));
        let (sent, parked) = apply(&plan_requests(&mut auto, &rules, head), head);
        assert!(sent.is_empty() && !parked, "held for the rule");
        // A valid chunk of the held body first: it is held too.
        let good = b"3\r\nabc\r\n";
        let (sent, _) = apply(&plan_requests(&mut auto, &rules, good), good);
        assert!(sent.is_empty());
        let rest = b"zz\r\nGET /secret HTTP/1.1\r\nHost: a\r\n\r\n";
        let (sent, parked) = apply(&plan_requests(&mut auto, &rules, rest), rest);
        assert!(!parked);
        assert_eq!(
            String::from_utf8_lossy(&sent),
            String::from_utf8_lossy(&[&head[..], good, rest].concat()),
            "byte-exact"
        );
        assert!(!auto.is_active(Direction::ClientToUpstream));
        assert!(
            auto.take_ready_answer().is_none(),
            "the upstream answers now"
        );
    }

    /// A trial (auto, echo upstream): `GET /x`, `GET /fail/1` (held for a respond rule) and
    /// `GET /y` pipelined; the echoed "response" is not HTTP, and the fallback to raw TCP left
    /// `/fail/1` and `/y` unsent and the requests parked for good. The held request is released
    /// to the request side (whose pump relays it, then what it parked), which is woken for it.
    #[test]
    fn a_fallback_to_raw_from_the_response_side_releases_the_held_requests() {
        let rules = scenario(
            "[[rule]]\nmatch = { path = \"/fail/**\" }\nfault.respond = { status = 503 }\n",
        );
        let x = b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n";
        let fail = b"GET /fail/1 HTTP/1.1\r\nHost: a\r\n\r\n";
        let y = b"GET /y HTTP/1.1\r\nHost: a\r\n\r\n";
        let requests = [&x[..], fail, y].concat();
        let mut auto = Http1Session::new(false, 1, ConnectionFacts::ordinal(1));
        let plan = plan_requests(&mut auto, &rules, &requests);
        let (sent, parked) = apply(&plan, &requests);
        assert_eq!(sent, x);
        assert!(parked, "/y waits in the pump");
        assert!(auto.take_release().is_none(), "nothing to release yet");
        let counters = RunCounters::new();
        let run = RunView {
            scenario: &rules,
            counters: &counters,
        };
        let plan = auto.plan(Direction::UpstreamToClient, x, Instant::now(), run);
        assert_eq!(apply(&plan, x), (x.to_vec(), false), "relayed as raw bytes");
        assert!(
            auto.wants_flush(Direction::ClientToUpstream),
            "the request side is woken"
        );
        assert_eq!(auto.take_release().as_deref(), Some(&fail[..]));
        assert!(auto.take_release().is_none(), "once");
        assert!(
            auto.take_ready_answer().is_none(),
            "the upstream answers now"
        );
    }

    /// A TLS ClientHello (no blank line ever comes) sent to a strict HTTP or forward-proxy port
    /// was held unanswered, and unlogged, until the client gave up; its first byte says enough.
    #[test]
    fn bytes_that_cannot_start_a_request_are_refused_at_once() {
        let rules = scenario("");
        let hello = b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03";
        let mut strict = Http1Session::new(true, 1, ConnectionFacts::ordinal(1));
        let (_, parked) = apply(&plan_requests(&mut strict, &rules, hello), hello);
        assert!(parked);
        let (answer, _) = strict.take_ready_answer().expect("a 400 at once");
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
        assert!(
            answer.contains("TLS handshake sent to a plain HTTP port"),
            "{answer}"
        );
        // What could still become a request waits for more.
        for partial in [&b"\r\nGE"[..], b"M-SEARCH * HT", b"GET /a b"] {
            let mut session = Http1Session::new(true, 1, ConnectionFacts::ordinal(1));
            let _ = plan_requests(&mut session, &rules, partial);
            assert!(session.take_ready_answer().is_none(), "{partial:?}");
        }
    }
}
