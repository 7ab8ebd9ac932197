//! One proxied connection: decide which rules apply, connect upstream, run both pumps, and end
//! both legs the way the outcome demands (half-close, FIN or RST).

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::{ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::time::{sleep_until, timeout, Instant};
use tracing::{debug, info, warn, Instrument};

use super::ending::{close_cleanly, end_with_tls_alert, FinRecord};
use super::interception::{
    intercept, read_client_hello, refuse_client_hello, Destination, FirstBytes,
};
use super::leg_stream::LegStream;
use super::live_rules::ConnectionRules;
use super::pump::{pump, PumpEnd, Replay};
use super::socket::{abort, wait_delivered};
use super::splice::splice_pump;
use super::tap::Tap;
use super::{forward, RunShared, Upstream};
use crate::capture::Leg;
use crate::direction::Direction;
use crate::fault::plan::{EndHow, Mark};
use crate::scenario::schema::{Mode, Protocol};
use crate::scenario::{ConnectionFacts, Scenario};
use crate::session::detect::Setup;
use crate::session::{RunView, Session, SessionPlan};
use crate::tls::intercept::refused_sni;
use crate::tls::ClientHelloInfo;

/// How long to wait for the upstream to accept a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a reset waits for already-written bytes to reach the peer before it discards them.
const DELIVERY_LIMIT: Duration = Duration::from_secs(2);
/// How long, after one peer failed, the other direction may still relay what that peer sent
/// before failing (an early answer), before both legs are reset.
const DRAIN_LIMIT: Duration = Duration::from_secs(2);
/// faultline's own notes of one shape a connection logs at info; later ones go to debug.
const NOTES_AT_INFO: u32 = 3;

/// What both pumps of one connection share: who it is, the run it belongs to, and its tap.
#[derive(Debug)]
pub struct ConnectionShared {
    /// 1-based ordinal among accepted connections.
    pub id: u64,
    /// The run's scenario, counters and switches.
    pub run: Arc<RunShared>,
    /// Where this connection's traffic is recorded.
    pub tap: Tap,
    /// The protocol session (HTTP/1 or HTTP/2), when HTTP rules (or strict HTTP, or forward
    /// mode) apply to this connection; both pumps share it because responses are matched to
    /// their requests and HTTP/2 frames for one peer come out of the other direction.
    pub http: Option<Mutex<Session>>,
    /// Whether the peer of each leg (client, upstream) already shut down its write half, so a
    /// clean close does not record its FIN twice.
    peer_finished: [AtomicBool; 2],
    /// Rung by the request side when faultline owes the client an answer, so the response side
    /// sends it as soon as the responses before it are done.
    pub answer_ready: Notify,
    /// Rung for a direction whose receiver is owed frames (HTTP/2): its pump plans even with
    /// no new bytes, at the next frame boundary.
    pub wake: [Notify; 2],
    /// Rung when the session's next timer may have changed (HTTP/2 `at = DURATION` faults).
    pub timers: Notify,
    /// Rules counted already on this connection whose marks count once per connection.
    fired_once: Mutex<Vec<u64>>,
    /// faultline's own notes logged on this connection, by shape (the note without its digits),
    /// with how many: a gRPC trial's stall wrote one WINDOW_UPDATE line per dropped DATA frame,
    /// 94 in a second. The capture keeps every one.
    notes_logged: Mutex<super::note_shapes::NoteShapes>,
    /// Bytes each direction's pump has read and not written yet (queued behind a latency, held
    /// by a stall), by [`Direction::index`]: what a run that stops now leaves unsent, which the
    /// capture says rather than dropping it in silence.
    pub unsent: [AtomicU64; 2],
    /// Per direction, the mark of the first queued step a fault marked (a latency's first
    /// delayed chunk): a run that stops before it is sent still counts the rule and names it
    /// beside the unsent bytes. Touched only when a marked step is queued or sent.
    pending_mark: [Mutex<Option<Mark>>; 2],
    /// The request side stopped for an answer owed to the client: the bytes it read from the
    /// stop on and did not relay (a forward proxy relays them to the next origin; a fallback
    /// to raw TCP relays them to this one).
    parked: Mutex<Option<Bytes>>,
}

/// The guarded value, also after a panic elsewhere poisoned the lock (the counters and marks it
/// guards stay meaningful).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    match mutex.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

impl ConnectionShared {
    /// `mark` was queued in `direction`: kept unless an earlier queued mark is.
    pub fn queued_mark(&self, direction: Direction, mark: &Mark) {
        let mut slot = lock(&self.pending_mark[direction.index()]);
        if slot.is_none() {
            *slot = Some(mark.clone());
        }
    }

    /// The queued mark of `direction` was sent; `next` is the next marked step still queued.
    pub fn sent_mark(&self, direction: Direction, next: Option<&Mark>) {
        *lock(&self.pending_mark[direction.index()]) = next.cloned();
    }

    /// The mark of the first marked step `direction` still had queued.
    fn take_pending_mark(&self, direction: Direction) -> Option<Mark> {
        lock(&self.pending_mark[direction.index()]).take()
    }

    /// A fault took effect: count it, say so once at info naming the rule, and return the
    /// sentence that marks it in the capture.
    pub fn fault_fired(&self, mark: &Mark) -> String {
        if let Some(rule) = &mark.rule {
            let first = !mark.once_per_connection || {
                let mut once = lock(&self.fired_once);
                !once.contains(&rule.key) && {
                    once.push(rule.key);
                    true
                }
            };
            if first {
                self.run.stats.rule(rule.key).fired.fetch_add(1, Relaxed);
            }
        }
        self.run.events.emit(|| super::events::RunEvent::Fired {
            connection: self.id,
            rule: mark.rule.as_ref().map(|r| r.name.to_string()),
            note: mark.note.clone(),
        });
        match &mark.rule {
            Some(rule) => {
                info!(rule = %rule.name, "fault: {}", mark.note);
                format!("faultline: rule \"{}\" {}", rule.name, mark.note)
            }
            None => {
                match self.note_seen(&mark.note) {
                    ..NOTES_AT_INFO => info!("faultline: {}", mark.note),
                    NOTES_AT_INFO => info!(
                        "faultline: {} (more notes like this one on this connection are logged at debug level; the capture keeps them all)",
                        mark.note
                    ),
                    _ => debug!("faultline: {}", mark.note),
                }
                format!("faultline: {}", mark.note)
            }
        }
    }

    /// How many notes of the shape of `note` this connection logged before it.
    fn note_seen(&self, note: &str) -> u32 {
        lock(&self.notes_logged).seen(note)
    }

    /// The source of `direction` shut down its write half: record its FIN once.
    pub async fn source_finished(&self, direction: Direction) {
        self.peer_finished[Leg::source_of(direction).index()].store(true, Relaxed);
        self.tap.source_fin(direction).await;
    }

    pub(super) fn peer_has_finished(&self, leg: Leg) -> bool {
        self.peer_finished[leg.index()].load(Relaxed)
    }

    /// The protocol session, locked; `None` without one. A panic elsewhere cannot leave the
    /// session unusable: a poisoned lock is taken over as it is (the connection task boundary
    /// reports the panic).
    fn session(&self) -> Option<std::sync::MutexGuard<'_, Session>> {
        let session = self.http.as_ref()?;
        Some(match session.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        })
    }

    /// The answer faultline owes the client next, once the responses before it are done.
    pub fn take_ready_answer(&self) -> Option<(Vec<u8>, Mark)> {
        self.session()?.take_ready_answer()
    }

    /// The request side stopped for an answer owed to the client, with the bytes it read from
    /// the stop on and did not relay.
    pub fn park(&self, rest: Bytes) {
        *lock(&self.parked) = Some(rest);
        self.answer_ready.notify_one();
        // The connection task ends a connection whose responses are over while requests stop.
        self.timers.notify_one();
    }

    /// Whether the request side stopped for an answer owed to the client.
    pub fn is_parked(&self) -> bool {
        lock(&self.parked).is_some()
    }

    /// The bytes the request side read from its stop on and did not relay, once.
    pub fn take_parked(&self) -> Option<Bytes> {
        lock(&self.parked).take()
    }

    /// After a fallback to raw TCP: the request bytes held back for a rule, which the request
    /// side relays first (and which unpark it), once.
    pub fn take_release(&self) -> Option<Vec<u8>> {
        self.session()?.take_release()
    }

    /// Forward proxy: the origin the answer taken last hands the connection to, once.
    pub fn take_reroute(&self) -> Option<String> {
        self.session()?.take_reroute()
    }

    /// The HTTP session's plan for a chunk under `scenario`, or `None` when HTTP rules do not
    /// apply (any more) to this connection.
    pub fn plan_http(
        &self,
        direction: Direction,
        chunk: &[u8],
        arrival: Instant,
        scenario: &Arc<Scenario>,
    ) -> Option<SessionPlan> {
        let mut session = self.session()?;
        if !session.is_active(direction) {
            // Fallen back to raw TCP: what was held back for a rule goes first.
            let held = session.take_release()?;
            let mut plan = SessionPlan::relay(chunk.len(), arrival);
            plan.steps.insert(
                0,
                crate::fault::plan::Step::Insert {
                    bytes: Bytes::from(held),
                    not_before: arrival,
                    mark: None,
                    role: crate::fault::plan::Role::Payload,
                },
            );
            return Some(plan);
        }
        let run = RunView {
            scenario,
            counters: &self.run.counters,
        };
        let before = session.next_deadline(scenario);
        let plan = session.plan(direction, chunk, arrival, run);
        for receiver in Direction::ALL {
            if receiver != direction && session.wants_flush(receiver) {
                self.wake[receiver.index()].notify_one();
            }
        }
        if session.next_deadline(scenario) != before {
            self.timers.notify_one();
        }
        Some(plan)
    }

    /// The connection's protocol starts over (TLS intercepted inside a CONNECT tunnel): a fresh
    /// session detects what the client speaks inside.
    pub fn restart_session(&self, hello: Option<&ClientHelloInfo>) {
        let Some(mut session) = self.session() else {
            return;
        };
        let scenario = self.run.rules.current();
        *session = Session::new(Setup {
            protocol: scenario.protocol,
            forward: false,
            seed: self.run.seed,
            facts: ConnectionFacts {
                ordinal: self.id,
                sni: hello.and_then(|h| h.server_name.clone()),
            },
            opened: Instant::now(),
        });
    }

    /// The next instant the protocol session has a timer due (HTTP/2 `at = DURATION` faults).
    pub fn session_deadline(&self, scenario: &Scenario) -> Option<Instant> {
        let session = self.session()?;
        session.next_deadline(scenario)
    }

    /// Fires the session's timers due at `now` and wakes the directions owed frames.
    pub fn session_tick(&self, now: Instant, scenario: &Scenario) {
        let Some(mut session) = self.session() else {
            return;
        };
        session.tick(now, scenario);
        for direction in Direction::ALL {
            if session.wants_flush(direction) {
                self.wake[direction.index()].notify_one();
            }
        }
    }

    /// What the protocol session still owes the receiver of `direction` now that its source
    /// closed (HTTP/2 frames held by a delay): relayed before the FIN, so nothing is lost.
    pub fn drain_session(&self, direction: Direction, now: Instant) -> Option<SessionPlan> {
        let mut session = self.session()?;
        session.drain(direction, now)
    }

    /// Bytes were written to the destination of `direction`.
    pub async fn relayed(&self, direction: Direction, bytes: &Bytes, comment: Option<String>) {
        self.run.stats.add_bytes(direction, bytes.len());
        self.tap.relayed(direction, bytes, comment).await;
    }
}

/// Serves one accepted client until both directions are done or a fault ends it.
pub async fn serve(mut client: TcpStream, client_addr: SocketAddr, id: u64, run: Arc<RunShared>) {
    let span = tracing::info_span!("conn", id, client = %client_addr);
    async move {
        let tap = Tap::new(run.capture.clone(), id);
        if let Ok(local) = client.local_addr() {
            tap.opened(Leg::Client, client_addr, local).await;
        }
        let scenario = run.rules.current();
        let forward = scenario.mode == Mode::Forward;
        // A ClientHello is read first when a rule looks at its server name or TLS is
        // intercepted (forward mode reads its request first; TLS comes inside CONNECT).
        let (peeked, hello) = if scenario.needs_client_hello() && !forward {
            Box::pin(read_client_hello(&mut client, &[], run.tls.is_some())).await
        } else {
            (Bytes::new(), None)
        };
        let facts = ConnectionFacts {
            ordinal: id,
            sni: hello.as_ref().and_then(|h| h.server_name.clone()),
        };
        // Connection-level keys (ordinal, every, probability, sni) are decided now, and again
        // for the new rules whenever the rule book is replaced.
        let rules = ConnectionRules::new(facts.clone(), run.seed, run.rules.watch());
        let strict = scenario.protocol == Protocol::Http;
        let wanted = strict
            || forward
            || scenario.counts_attempts()
            || rules.matched().iter().any(|&i| scenario.rules[i].is_http());
        let setup = Setup {
            protocol: scenario.protocol,
            forward,
            seed: run.seed,
            facts,
            opened: Instant::now(),
        };
        let http =
            (scenario.protocol != Protocol::Tcp && wanted).then(|| Mutex::new(Session::new(setup)));
        let conn = ConnectionShared {
            id,
            run,
            tap,
            http,
            peer_finished: [AtomicBool::new(false), AtomicBool::new(false)],
            answer_ready: Notify::new(),
            wake: [Notify::new(), Notify::new()],
            timers: Notify::new(),
            fired_once: Mutex::new(Vec::new()),
            notes_logged: Mutex::new(super::note_shapes::NoteShapes::default()),
            unsent: [AtomicU64::new(0), AtomicU64::new(0)],
            pending_mark: [Mutex::new(None), Mutex::new(None)],
            parked: Mutex::new(None),
        };
        let first = FirstBytes { peeked, hello };
        proxy_connection(client, first, rules, &conn).await;
        debug!("closed");
    }
    .instrument(span)
    .await
}

async fn proxy_connection(
    mut client: TcpStream,
    first: FirstBytes,
    mut rules: ConnectionRules,
    conn: &ConnectionShared,
) {
    let run = &conn.run;
    let tap = &conn.tap;
    let mut counted: HashSet<u64> = HashSet::new();
    count_matches(&rules, &mut counted, run);
    if let Some(mark) = rules.refusal() {
        let comment = conn.fault_fired(&mark);
        tap.proxy_rst(Leg::Client, Some(comment)).await;
        tap.closed(Leg::Client).await;
        abort(client);
        return;
    }
    let opened = Instant::now();
    let mut timer_since = HashMap::new();
    let mut end_timer = rules.end_timer(&mut timer_since, opened);

    // A ClientHello rustls will refuse is answered before the upstream is dialed.
    if let (Some(interceptor), Some(hello)) = (&run.tls, &first.hello) {
        if let Some(sni) = refused_sni(hello) {
            refuse_client_hello(client, first.peeked, sni, interceptor, conn).await;
            return;
        }
    }
    let Opened {
        upstream,
        mut replay,
        tunnel,
    } = match Box::pin(open_upstream(&mut client, conn)).await {
        Ok(opened) => opened,
        Err(Unrouted::Reset) => {
            abort(client);
            return;
        }
        Err(Unrouted::Answered) => return,
    };
    let mut first = first;
    if let (Some(target), None) = (&tunnel, &run.tls) {
        let http_rules = run.rules.current().rules.iter().any(|rule| rule.is_http());
        if http_rules && !run.opaque_tunnel_said.swap(true, Relaxed) {
            warn!(%target, "CONNECT tunnel relayed as opaque bytes: HTTP rules cannot see the requests inside it (HTTPS) without [proxy.tls] intercept = true; TCP rules still apply (said once per run)");
        }
    }
    if let (Some(target), Some(_)) = (&tunnel, &run.tls) {
        // A CONNECT tunnel: the client's TLS starts now, inside it.
        let (peeked, hello) = Box::pin(read_client_hello(&mut client, &replay, true)).await;
        replay = Bytes::new();
        first = FirstBytes { peeked, hello };
        debug!(%target, tls = first.hello.is_some(), "inside a CONNECT tunnel");
        if let (Some(interceptor), Some(hello)) = (&run.tls, &first.hello) {
            if let Some(sni) = refused_sni(hello) {
                // The tunnel's TCP leg is open already; no TLS is started on it.
                abort(upstream);
                tap.closed(Leg::Upstream).await;
                refuse_client_hello(client, first.peeked, sni, interceptor, conn).await;
                return;
            }
        }
    }
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    if let Ok(peer) = upstream.peer_addr() {
        debug!(upstream = %peer, "upstream connected");
    }
    let intercepting = run.tls.as_ref().zip(first.hello.as_ref());
    let (mut client, mut upstream, replay) = match intercepting {
        Some((interceptor, hello)) => {
            let destination = match &tunnel {
                Some(target) => Destination::named(target),
                None => Destination::of(&run.upstream),
            };
            let legs = Box::pin(intercept(
                client,
                upstream,
                first.peeked,
                hello,
                interceptor,
                &destination,
                conn,
            ))
            .await;
            match legs {
                Some((client, upstream)) => {
                    if tunnel.is_some() {
                        conn.restart_session(first.hello.as_ref());
                    }
                    (client, upstream, replay)
                }
                None => return,
            }
        }
        None => {
            let replay = if first.peeked.is_empty() {
                replay
            } else {
                let mut joined = bytes::BytesMut::from(&first.peeked[..]);
                joined.extend_from_slice(&replay);
                joined.freeze()
            };
            (LegStream::Plain(client), LegStream::Plain(upstream), replay)
        }
    };

    // Whether each pump finished, i.e. faultline already sent its FIN on that pump's destination.
    let mut ends = PumpEnds::default();
    let mut timers = Timers {
        end_timer: &mut end_timer,
        since: &mut timer_since,
        counted: &mut counted,
    };
    let outcome = match (&mut client, &mut upstream) {
        (LegStream::Plain(client), LegStream::Plain(upstream)) => {
            let mut replay = Replay::unrecorded(replay);
            loop {
                let outcome = {
                    let (mut client_read, mut client_write) = client.split();
                    let (mut upstream_read, mut upstream_write) = upstream.split();
                    let to_upstream = relay(
                        &mut client_read,
                        &mut upstream_write,
                        Direction::ClientToUpstream,
                        rules.clone(),
                        conn,
                        replay,
                    );
                    let to_client = relay(
                        &mut upstream_read,
                        &mut client_write,
                        Direction::UpstreamToClient,
                        rules.clone(),
                        conn,
                        Replay::default(),
                    );
                    tokio::pin!(to_upstream, to_client);
                    drive(
                        to_upstream,
                        to_client,
                        &mut rules,
                        &mut timers,
                        &mut ends,
                        conn,
                    )
                    .await
                };
                let rerouted = match (&outcome, conn.take_parked()) {
                    (Outcome::Answered, Some(rest)) => {
                        conn.take_reroute().map(|target| (target, rest))
                    }
                    _ => None,
                };
                let Some((target, rest)) = rerouted else {
                    break outcome;
                };
                match Box::pin(move_to_origin(client, upstream, &target, &ends, conn)).await {
                    Ok(()) => {
                        ends = PumpEnds::default();
                        replay = Replay::recorded(rest);
                    }
                    Err(outcome) => break outcome,
                }
            }
        }
        (client, upstream) => {
            // TLS on at least one leg: the pumps see plaintext (splice never applies).
            let (mut client_read, mut client_write) = tokio::io::split(client);
            let (mut upstream_read, mut upstream_write) = tokio::io::split(upstream);
            let up_chain = rules.direction_chain(Direction::ClientToUpstream, None);
            let down_chain = rules.direction_chain(Direction::UpstreamToClient, None);
            // Boxed: only TLS connections pay for two pumps and their state.
            let mut to_upstream = Box::pin(pump(
                &mut client_read,
                &mut upstream_write,
                Direction::ClientToUpstream,
                rules.clone(),
                up_chain,
                conn,
                Replay::unrecorded(replay),
            ));
            let mut to_client = Box::pin(pump(
                &mut upstream_read,
                &mut client_write,
                Direction::UpstreamToClient,
                rules.clone(),
                down_chain,
                conn,
                Replay::default(),
            ));
            drive(
                to_upstream.as_mut(),
                to_client.as_mut(),
                &mut rules,
                &mut timers,
                &mut ends,
                conn,
            )
            .await
        }
    };
    let PumpEnds {
        upstream_fin_sent,
        client_fin_sent,
        ..
    } = ends;

    match outcome {
        Outcome::Done => {}
        Outcome::Shutdown => {
            // Each leg's FIN says what its peer was never sent: a stopped run drops what a
            // fault still held, and the capture must not look as if it was relayed.
            // A rule whose first marked bytes were still queued took effect (a latency held
            // them): it counts, and the note names it.
            let mut held_by = [None, None];
            for toward in Direction::ALL {
                let unsent = conn.unsent[toward.index()].load(Relaxed);
                conn.run.stats.unsent_at_stop[toward.index()].fetch_add(unsent, Relaxed);
                if let Some(mark) = conn.take_pending_mark(toward).filter(|_| unsent > 0) {
                    let comment = conn.fault_fired(&mark);
                    held_by[toward.index()] = Some(
                        comment
                            .strip_prefix("faultline: ")
                            .unwrap_or(&comment)
                            .to_string(),
                    );
                }
            }
            let note = |toward: Direction| {
                let unsent = conn.unsent[toward.index()].load(Relaxed);
                let rule = held_by[toward.index()]
                    .as_ref()
                    .map(|rule| format!("; {rule}"))
                    .unwrap_or_default();
                Some(match unsent {
                    0 => "faultline: run stopped".to_string(),
                    n => format!(
                        "faultline: run stopped; {} {toward} read and never sent (queued or held by a rule{rule})",
                        crate::plural::count(n as usize, "byte")
                    ),
                })
            };
            if !upstream_fin_sent {
                tap.proxy_fin(Leg::Upstream, note(Direction::ClientToUpstream))
                    .await;
            }
            if !client_fin_sent {
                tap.proxy_fin(Leg::Client, note(Direction::UpstreamToClient))
                    .await;
            }
        }
        Outcome::Fault(EndHow::Reset | EndHow::ResetStream { .. }, comment) => {
            let _ = tokio::join!(upstream.flush(), client.flush());
            let (left_up, left_client) = tokio::join!(
                wait_delivered(upstream.socket(), DELIVERY_LIMIT),
                wait_delivered(client.socket(), DELIVERY_LIMIT)
            );
            if left_up + left_client > 0 {
                warn!(
                    unsent_to_upstream = left_up,
                    unsent_to_client = left_client,
                    "peer did not take every relayed byte before the reset"
                );
            }
            tap.proxy_rst(Leg::Upstream, Some(comment.clone())).await;
            tap.proxy_rst(Leg::Client, Some(comment)).await;
            upstream.abort();
            client.abort();
        }
        Outcome::Fault(EndHow::Finish, comment) => {
            // A cut: for TLS legs a FIN without close_notify, as the network would cut it.
            let _ = tokio::join!(
                close_cleanly(
                    &mut upstream,
                    Leg::Upstream,
                    conn,
                    false,
                    FinRecord::unless(upstream_fin_sent, Some(comment.clone()))
                ),
                close_cleanly(
                    &mut client,
                    Leg::Client,
                    conn,
                    false,
                    FinRecord::unless(client_fin_sent, Some(comment))
                )
            );
        }
        Outcome::Answered => {
            let _ = tokio::join!(
                close_cleanly(
                    &mut upstream,
                    Leg::Upstream,
                    conn,
                    true,
                    FinRecord::unless(upstream_fin_sent, None)
                ),
                close_cleanly(
                    &mut client,
                    Leg::Client,
                    conn,
                    true,
                    FinRecord::unless(client_fin_sent, None)
                )
            );
        }
        Outcome::TlsAlert {
            leg,
            alert,
            comment,
        } => {
            let (failing, other) = match leg {
                Leg::Client => (client, upstream),
                Leg::Upstream => (upstream, client),
            };
            end_with_tls_alert(failing, other, leg, alert, comment, conn).await;
        }
        Outcome::PeerFailed { leg, error } if error.kind() == std::io::ErrorKind::UnexpectedEof => {
            // A TLS peer's FIN came inside a record, without close_notify (after a whole record
            // it is an ordinary end: `leg_stream`): its stream was cut short. Mirrored as the
            // cut it is, not as a reset: the other peer gets every byte relayed, then a FIN
            // without close_notify, which its own TLS stack reports as a truncation.
            let other = leg.other();
            debug!(%leg, error = %error, "a peer's TLS stream ended inside a record; cutting the {other} the same way");
            tap.peer_fin(leg).await;
            let fin_sent = |leg: Leg| match leg {
                Leg::Client => client_fin_sent,
                Leg::Upstream => upstream_fin_sent,
            };
            let (mut cut, mut rest) = match leg {
                Leg::Client => (client, upstream),
                Leg::Upstream => (upstream, client),
            };
            let note = format!(
                "faultline: the {} peer's TLS stream ended inside a record (FIN without close_notify); the {other} is cut the same way",
                leg.as_str()
            );
            let close_cut = async {
                let _ = cut.finish(false).await;
                if !fin_sent(leg) {
                    tap.proxy_fin(leg, None).await;
                }
            };
            let _ = tokio::join!(
                close_cut,
                close_cleanly(
                    &mut rest,
                    other,
                    conn,
                    false,
                    FinRecord::unless(fin_sent(other), Some(note))
                )
            );
        }
        Outcome::PeerFailed { leg, error } => {
            // A transparent proxy mirrors an abort: the other peer sees a reset too, after what
            // the failed peer sent before it failed, as on a wire (the reset of a socket
            // discards what its send queue still holds).
            debug!(%leg, error = %error, "a peer failed; resetting both legs");
            let other = leg.other();
            let (failed, mut mirror) = match leg {
                Leg::Client => (client, upstream),
                Leg::Upstream => (upstream, client),
            };
            failed.abort();
            let _ = timeout(DELIVERY_LIMIT, mirror.flush()).await;
            let left = wait_delivered(mirror.socket(), DELIVERY_LIMIT).await;
            let note = (left > 0).then(|| {
                warn!(unsent = left, "the {other}'s peer did not take every relayed byte before the mirrored reset");
                format!(
                    "faultline: reset mirrored; the last {} relayed on the {other} never reached its peer",
                    crate::plural::count(left, "byte")
                )
            });
            match alert_received(&error) {
                // The peer did not reset: it sent a fatal TLS alert (moto answers a client's FIN
                // without close_notify with `decode_error`), which the capture names; faultline
                // reset its leg.
                Some(alert) => {
                    let said = format!(
                        "faultline: the {} peer sent a fatal TLS alert ({alert:?}); both legs reset",
                        leg.as_str()
                    );
                    tap.proxy_rst(leg, Some(said)).await;
                }
                None => tap.peer_rst(leg).await,
            }
            tap.proxy_rst(other, note).await;
            mirror.abort();
        }
    }
    tap.closed(Leg::Client).await;
    tap.closed(Leg::Upstream).await;
}

/// The fatal alert a TLS peer sent, when that is how its leg failed (rustls's error, as
/// tokio-rustls wraps it).
fn alert_received(error: &std::io::Error) -> Option<rustls::AlertDescription> {
    match error.get_ref()?.downcast_ref::<rustls::Error>()? {
        rustls::Error::AlertReceived(alert) => Some(*alert),
        _ => None,
    }
}

/// Which pumps ended by sending their FIN (so the endings do not record it twice).
#[derive(Debug, Default)]
struct PumpEnds {
    upstream_fin_sent: bool,
    client_fin_sent: bool,
}

/// Forward proxy: answers the request faultline could not route (a 4xx for the client's own
/// mistake, 502 for an origin it cannot reach), says so (upstream failures at most once a
/// second, and counted) and records the answer with its reason. Errors when the client's leg
/// could not take it.
async fn answer_refusal(
    client: &mut TcpStream,
    refusal: forward::Refusal,
    conn: &ConnectionShared,
) -> std::io::Result<()> {
    if refusal.is_upstream_failure() {
        if let Some(held_back) = conn.run.upstream_warnings.failure(Instant::now()) {
            warn!(side = "upstream", reason = %refusal.reason, held_back, "forward proxy cannot route the request");
        }
        conn.run.stats.upstream_failures.fetch_add(1, Relaxed);
    } else {
        warn!(side = "client", status = refusal.status, reason = %refusal.reason, "forward proxy refused the request");
    }
    // The request it answers is on the client leg first, as in reverse mode's 400.
    if !refusal.read.is_empty() {
        conn.tap
            .received(Direction::ClientToUpstream, &refusal.read)
            .await;
    }
    let response = Bytes::from(refusal.response);
    client.write_all(&response).await?;
    let note = format!("faultline: forward proxy refused: {}", refusal.reason);
    conn.relayed(Direction::UpstreamToClient, &response, Some(note))
        .await;
    Ok(())
}

/// Forward proxy: a kept-alive client asked for another origin (`target`) and the responses
/// before that request are done. Opens the new upstream leg, then closes the old one cleanly
/// and makes the session follow the new origin; the caller relays the parked request there.
/// When the origin cannot be reached, the client gets the refusal (a 502) as the answer to
/// that request, as on a first request, and the connection closes.
async fn move_to_origin(
    client: &mut TcpStream,
    upstream: &mut TcpStream,
    target: &str,
    ends: &PumpEnds,
    conn: &ConnectionShared,
) -> Result<(), Outcome> {
    let own = client.local_addr().map_err(|error| Outcome::PeerFailed {
        leg: Leg::Client,
        error,
    })?;
    let fresh = match forward::connect_origin(target, own).await {
        Ok(fresh) => fresh,
        Err(refusal) => {
            return Err(match answer_refusal(client, refusal, conn).await {
                Ok(()) => Outcome::Answered,
                Err(error) => Outcome::PeerFailed {
                    leg: Leg::Client,
                    error,
                },
            });
        }
    };
    debug!(%target, "forward proxy moves the connection to another origin");
    close_cleanly(
        upstream,
        Leg::Upstream,
        conn,
        true,
        FinRecord::unless(ends.upstream_fin_sent, None),
    )
    .await;
    conn.tap.closed(Leg::Upstream).await;
    *upstream = fresh;
    let _ = upstream.set_nodelay(true);
    if let (Ok(local), Ok(peer)) = (upstream.local_addr(), upstream.peer_addr()) {
        conn.tap.opened(Leg::Upstream, local, peer).await;
    }
    conn.peer_finished[Leg::Upstream.index()].store(false, Relaxed);
    if let Some(mut session) = conn.session() {
        session.reroute(target.to_string());
    }
    Ok(())
}

/// The connection-wide timers and counters the connection task keeps while pumps run.
struct Timers<'a> {
    end_timer: &'a mut Option<(Instant, EndHow, Mark)>,
    since: &'a mut HashMap<u64, Instant>,
    counted: &'a mut HashSet<u64>,
}

/// Runs both pumps until the connection is over: both directions done, a fault, a peer's
/// failure, a timer or shutdown. Also follows rule-book replacements and session timers.
///
/// The pumps come pinned by the caller: passed by value, each would be stored twice in this
/// future's state (as an argument and as the pinned local), which an idle connection pays for.
async fn drive<A, B>(
    mut to_upstream: Pin<&mut A>,
    mut to_client: Pin<&mut B>,
    rules: &mut ConnectionRules,
    timers: &mut Timers<'_>,
    ends: &mut PumpEnds,
    conn: &ConnectionShared,
) -> Outcome
where
    A: std::future::Future<Output = PumpEnd>,
    B: std::future::Future<Output = PumpEnd>,
{
    let run = &conn.run;
    let mut upstream_done = false;
    let mut client_done = false;
    // A peer that failed while the other direction was still running: the outcome, once the
    // other direction has relayed what that peer sent before it failed (or `DRAIN_LIMIT` passed).
    let mut failed: Option<(Outcome, Instant)> = None;
    loop {
        if client_done && !upstream_done && conn.is_parked() {
            // Requests stopped for an answer, and the responses are over: nothing more comes.
            return Outcome::Done;
        }
        let session_timer = conn.session_deadline(rules.scenario());
        tokio::select! {
            end = &mut to_upstream, if !upstream_done => {
                upstream_done = true;
                if let Some((outcome, _)) = failed.take() {
                    ends.upstream_fin_sent = matches!(end, PumpEnd::Finished);
                    return outcome;
                }
                match end {
                    PumpEnd::Finished => {
                        ends.upstream_fin_sent = true;
                        if client_done {
                            return Outcome::Done;
                        }
                    }
                    // The upstream failed under the client's bytes (a server that answered early,
                    // 413 or 501, and closed on the body it did not read): what it answered still
                    // reaches the client, before the reset, as it would without faultline.
                    PumpEnd::DestinationFailed(error) if !client_done => {
                        let outcome = Outcome::PeerFailed { leg: Leg::Upstream, error };
                        failed = Some((outcome, Instant::now() + DRAIN_LIMIT));
                    }
                    other => return Outcome::from_pump(other, Leg::Client),
                }
            }
            end = &mut to_client, if !client_done => {
                client_done = true;
                if let Some((outcome, _)) = failed.take() {
                    ends.client_fin_sent = matches!(end, PumpEnd::Finished);
                    return outcome;
                }
                match end {
                    PumpEnd::Finished => {
                        ends.client_fin_sent = true;
                        if upstream_done {
                            return Outcome::Done;
                        }
                    }
                    // The same the other way: what the client sent before it failed reaches
                    // the upstream first.
                    PumpEnd::DestinationFailed(error) if !upstream_done => {
                        let outcome = Outcome::PeerFailed { leg: Leg::Client, error };
                        failed = Some((outcome, Instant::now() + DRAIN_LIMIT));
                    }
                    other => return Outcome::from_pump(other, Leg::Upstream),
                }
            }
            () = sleep_until_instant(failed.as_ref().map(|(_, until)| *until)) => {
                if let Some((outcome, _)) = failed.take() {
                    return outcome;
                }
            }
            () = sleep_until_timer(timers.end_timer) => {
                if let Some((_, how, mark)) = timers.end_timer.as_ref() {
                    let comment = conn.fault_fired(mark);
                    return Outcome::Fault(*how, comment);
                }
            }
            () = sleep_until_instant(session_timer) => {
                conn.session_tick(Instant::now(), rules.scenario());
            }
            () = conn.timers.notified() => {}
            () = rules.changed() => {
                count_matches(rules, timers.counted, run);
                *timers.end_timer = rules.end_timer(timers.since, Instant::now());
            }
            () = run.shutdown.cancelled() => return Outcome::Shutdown,
        }
    }
}

/// Counts each rule that selects this connection once (its `matched` counter), also the rules
/// a replaced rule book adds.
fn count_matches(rules: &ConnectionRules, counted: &mut HashSet<u64>, run: &RunShared) {
    for &i in rules.matched() {
        let key = rules.scenario().rules[i].key;
        if counted.insert(run.stats.counting_key(key)) {
            run.stats.rule(key).matched.fetch_add(1, Relaxed);
        }
    }
}

/// Sleeps until `at`, or forever without it.
async fn sleep_until_instant(at: Option<Instant>) {
    match at {
        Some(at) => sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Sleeps until the connection-wide timer, or forever without one.
async fn sleep_until_timer(timer: &Option<(Instant, EndHow, Mark)>) {
    match timer {
        Some((at, _, _)) => sleep_until(*at).await,
        None => std::future::pending().await,
    }
}

/// Relays one direction: zero-copy with splice(2) when nothing needs to see its bytes (no
/// fault, no HTTP rule, no capture, and rules that cannot change during the run), through the
/// pump otherwise.
async fn relay(
    source: &mut ReadHalf<'_>,
    destination: &mut WriteHalf<'_>,
    direction: Direction,
    rules: ConnectionRules,
    conn: &ConnectionShared,
    replay: Replay,
) -> PumpEnd {
    let chain = rules.direction_chain(direction, None);
    let untouched = chain.is_empty()
        && conn.http.is_none()
        && !conn.tap.is_recording()
        && !conn.run.rules_can_change;
    if untouched && replay.is_empty() {
        if let Some(end) = splice_pump(source, destination, direction, conn).await {
            return end;
        }
    }
    // Boxed: an idle pass-through connection (splice) then carries none of the pump's state;
    // the connection's future stays a few KiB (9,000 idle connections were 200 MiB without).
    Box::pin(pump(
        source,
        destination,
        direction,
        rules,
        chain,
        conn,
        replay,
    ))
    .await
}

/// Connects the upstream leg: to the run's upstream, or (forward proxy) where the client's first
/// request says. Returns the upstream and the client bytes already read that must be relayed
/// first, or how the client was dealt with when that failed.
async fn open_upstream(
    client: &mut TcpStream,
    conn: &ConnectionShared,
) -> Result<Opened, Unrouted> {
    let run = &conn.run;
    let tap = &conn.tap;
    if run.upstream == Upstream::PerRequest {
        let own = client.local_addr().map_err(|_| Unrouted::Reset)?;
        return match forward::route(client, own).await {
            Ok(routed) => {
                debug!(target = %routed.target, tunnel = routed.tunnel, "forward proxy routed");
                if let Some(session) = &conn.http {
                    let mut session = match session.lock() {
                        Ok(guard) => guard,
                        Err(poisoned) => poisoned.into_inner(),
                    };
                    if routed.tunnel {
                        session.deactivate();
                    } else {
                        session.set_route(routed.target.clone());
                    }
                }
                // What the router read is on the client leg already: record it now, replayed
                // bytes are recorded by the pump.
                if !routed.consumed.is_empty() {
                    tap.received(Direction::ClientToUpstream, &routed.consumed)
                        .await;
                }
                if let (Ok(local), Ok(peer)) =
                    (routed.upstream.local_addr(), routed.upstream.peer_addr())
                {
                    tap.opened(Leg::Upstream, local, peer).await;
                }
                if let Some(reply) = routed.reply {
                    use tokio::io::AsyncWriteExt;
                    if client.write_all(&reply).await.is_err() {
                        return Err(Unrouted::Reset);
                    }
                    let note = format!(
                        "faultline: CONNECT {} answered by the forward proxy",
                        routed.target
                    );
                    conn.relayed(Direction::UpstreamToClient, &Bytes::from(reply), Some(note))
                        .await;
                }
                Ok(Opened {
                    upstream: routed.upstream,
                    replay: routed.replay,
                    tunnel: routed.tunnel.then_some(routed.target),
                })
            }
            Err(refusal) => {
                // The client may be gone already; its leg is closed either way.
                let _ = answer_refusal(client, refusal, conn).await;
                close_cleanly(client, Leg::Client, conn, true, FinRecord::Fin(None)).await;
                tap.closed(Leg::Client).await;
                Err(Unrouted::Answered)
            }
        };
    }
    let upstream_addr = run.upstream.to_string();
    let connected = match timeout(CONNECT_TIMEOUT, run.upstream.connect()).await {
        Ok(result) => result,
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("no answer within {CONNECT_TIMEOUT:?}"),
        )),
    };
    match connected {
        Ok(stream) => {
            if let (Ok(local), Ok(peer)) = (stream.local_addr(), stream.peer_addr()) {
                tap.opened(Leg::Upstream, local, peer).await;
            }
            Ok(Opened {
                upstream: stream,
                replay: Bytes::new(),
                tunnel: None,
            })
        }
        Err(e) => {
            // Every client of a dead upstream (or of a process out of file descriptors) fails
            // the same way: one line a second says so, with how many it stands for.
            let (done, how, doing) = match run.unreachable_closes {
                true => (Unrouted::Answered, "closed", "closing"),
                false => (Unrouted::Reset, "reset", "resetting"),
            };
            if let Some(held_back) = run.upstream_warnings.failure(tokio::time::Instant::now()) {
                warn!(side = "upstream", upstream = %upstream_addr, error = %e, held_back, "cannot connect to upstream; {doing} the client leg");
            }
            run.stats.upstream_failures.fetch_add(1, Relaxed);
            if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) {
                run.stats.out_of_fds.fetch_add(1, Relaxed);
            }
            let note =
                format!("faultline: upstream {upstream_addr} unreachable ({e}); client leg {how}");
            if run.unreachable_closes {
                close_cleanly(client, Leg::Client, conn, true, FinRecord::Fin(Some(note))).await;
                tap.closed(Leg::Client).await;
                return Err(done);
            }
            tap.proxy_rst(Leg::Client, Some(note)).await;
            tap.closed(Leg::Client).await;
            Err(done)
        }
    }
}

/// An upstream leg just opened.
struct Opened {
    upstream: TcpStream,
    /// Client bytes already read that must be relayed first.
    replay: Bytes,
    /// Forward mode `CONNECT host:port`: the tunnel's target (the 200 was sent).
    tunnel: Option<String>,
}

/// How a client whose upstream could not be opened was dealt with.
enum Unrouted {
    /// The caller must reset the client leg.
    Reset,
    /// The client got an HTTP answer and its leg is closed.
    Answered,
}

enum Outcome {
    Done,
    Shutdown,
    Fault(EndHow, String),
    /// faultline answered the client itself (the pump wrote it); close both legs.
    Answered,
    /// The peer on `leg` failed (reset, or the socket broke).
    PeerFailed {
        leg: Leg,
        error: std::io::Error,
    },
    /// A `tls_alert` fault: `leg`'s TLS fails with `alert`, then both legs are cut.
    TlsAlert {
        leg: Leg,
        alert: crate::fault::tls_alert::AlertName,
        comment: String,
    },
}

impl Outcome {
    /// What a pump's end means for the connection; `source` is the leg the pump reads from.
    fn from_pump(end: PumpEnd, source: Leg) -> Outcome {
        let destination = match source {
            Leg::Client => Leg::Upstream,
            Leg::Upstream => Leg::Client,
        };
        match end {
            PumpEnd::Finished => Outcome::Done,
            PumpEnd::Fault { how, comment } => Outcome::Fault(how, comment),
            PumpEnd::Answered => Outcome::Answered,
            PumpEnd::SourceFailed(error) => Outcome::PeerFailed { leg: source, error },
            PumpEnd::DestinationFailed(error) => Outcome::PeerFailed {
                leg: destination,
                error,
            },
            PumpEnd::TlsAlert { alert, comment } => Outcome::TlsAlert {
                leg: destination,
                alert,
                comment,
            },
        }
    }
}
