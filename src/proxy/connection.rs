//! One proxied connection: decide which rules apply, connect upstream, run both pumps, and end
//! both legs the way the outcome demands (half-close, FIN or RST).

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::AsyncReadExt;
use tokio::net::tcp::{ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::time::{sleep_until, timeout, Instant};
use tracing::{debug, info, warn, Instrument};

use super::live_rules::ConnectionRules;
use super::pump::{pump, PumpEnd};
use super::socket::{abort, wait_delivered};
use super::splice::splice_pump;
use super::tap::Tap;
use super::{forward, RunShared, Upstream};
use crate::capture::Leg;
use crate::direction::Direction;
use crate::fault::plan::{EndHow, Mark};
use crate::scenario::schema::{Mode, Protocol};
use crate::scenario::Scenario;
use crate::session::detect::Setup;
use crate::session::{RunView, Session, SessionPlan};

/// How long to wait for the upstream to accept a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a reset waits for already-written bytes to reach the peer before it discards them.
const DELIVERY_LIMIT: Duration = Duration::from_secs(2);
/// How long a clean close keeps reading (and discarding) so that unread bytes do not turn the
/// FIN into a RST.
const LINGER_LIMIT: Duration = Duration::from_secs(2);

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
}

impl ConnectionShared {
    /// A fault took effect: count it, say so once at info naming the rule, and return the
    /// sentence that marks it in the capture.
    pub fn fault_fired(&self, mark: &Mark) -> String {
        if let Some(rule) = &mark.rule {
            self.run.stats.rule(rule.key).fired.fetch_add(1, Relaxed);
        }
        match &mark.rule {
            Some(rule) => {
                info!(rule = %rule.name, "fault: {}", mark.note);
                format!("faultline: rule \"{}\" {}", rule.name, mark.note)
            }
            None => {
                info!("faultline: {}", mark.note);
                format!("faultline: {}", mark.note)
            }
        }
    }

    /// The source of `direction` shut down its write half: record its FIN once.
    pub async fn source_finished(&self, direction: Direction) {
        self.peer_finished[Leg::source_of(direction).index()].store(true, Relaxed);
        self.tap.source_fin(direction).await;
    }

    fn peer_has_finished(&self, leg: Leg) -> bool {
        self.peer_finished[leg.index()].load(Relaxed)
    }

    /// The answer faultline owes the client next, once the responses before it are done.
    pub fn take_ready_answer(&self) -> Option<(Vec<u8>, Mark)> {
        let session = self.http.as_ref()?;
        match session.lock() {
            Ok(mut s) => s.take_ready_answer(),
            Err(poisoned) => poisoned.into_inner().take_ready_answer(),
        }
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
        let session = self.http.as_ref()?;
        let mut session = match session.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        if !session.is_active(direction) {
            return None;
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

    /// The next instant the protocol session has a timer due (HTTP/2 `at = DURATION` faults).
    pub fn session_deadline(&self, scenario: &Scenario) -> Option<Instant> {
        let session = self.http.as_ref()?;
        let session = match session.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        session.next_deadline(scenario)
    }

    /// Fires the session's timers due at `now` and wakes the directions owed frames.
    pub fn session_tick(&self, now: Instant, scenario: &Scenario) {
        let Some(session) = self.http.as_ref() else {
            return;
        };
        let mut session = match session.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        session.tick(now, scenario);
        for direction in Direction::ALL {
            if session.wants_flush(direction) {
                self.wake[direction.index()].notify_one();
            }
        }
    }

    /// Bytes were written to the destination of `direction`.
    pub async fn relayed(&self, direction: Direction, bytes: &Bytes, comment: Option<String>) {
        self.run.stats.add_bytes(direction, bytes.len());
        self.tap.relayed(direction, bytes, comment).await;
    }
}

/// Serves one accepted client until both directions are done or a fault ends it.
pub async fn serve(client: TcpStream, client_addr: SocketAddr, id: u64, run: Arc<RunShared>) {
    let span = tracing::info_span!("conn", id, client = %client_addr);
    async move {
        let tap = Tap::new(run.capture.clone(), id);
        // Connection-level keys (ordinal, every, probability) are decided at accept, and again
        // for the new rules whenever the rule book is replaced.
        let rules = ConnectionRules::new(id, run.seed, run.rules.watch());
        let scenario = rules.scenario().clone();
        let strict = scenario.protocol == Protocol::Http;
        let forward = scenario.mode == Mode::Forward;
        let wanted =
            strict || forward || rules.matched().iter().any(|&i| scenario.rules[i].is_http());
        let setup = Setup {
            protocol: scenario.protocol,
            forward,
            seed: run.seed,
            connection: id,
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
        };
        proxy_connection(client, client_addr, rules, &conn).await;
        debug!("closed");
    }
    .instrument(span)
    .await
}

async fn proxy_connection(
    mut client: TcpStream,
    client_addr: SocketAddr,
    mut rules: ConnectionRules,
    conn: &ConnectionShared,
) {
    let run = &conn.run;
    let tap = &conn.tap;
    if let Ok(local) = client.local_addr() {
        tap.opened(Leg::Client, client_addr, local).await;
    }
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

    let (mut upstream, replay) = match open_upstream(&mut client, conn).await {
        Ok(opened) => opened,
        Err(Unrouted::Reset) => {
            abort(client);
            return;
        }
        Err(Unrouted::Answered) => return,
    };
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    if let Ok(peer) = upstream.peer_addr() {
        debug!(upstream = %peer, "upstream connected");
    }

    // Whether each pump finished, i.e. faultline already sent its FIN on that pump's destination.
    let mut upstream_fin_sent = false;
    let mut client_fin_sent = false;
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
            Bytes::new(),
        );
        tokio::pin!(to_upstream, to_client);
        let mut upstream_done = false;
        let mut client_done = false;
        loop {
            let session_timer = conn.session_deadline(rules.scenario());
            tokio::select! {
                end = &mut to_upstream, if !upstream_done => {
                    upstream_done = true;
                    match end {
                        PumpEnd::Finished => {
                            upstream_fin_sent = true;
                            if client_done {
                                break Outcome::Done;
                            }
                        }
                        // Requests stopped; the answer owed to the client comes from the other pump.
                        PumpEnd::Parked if client_done => break Outcome::Done,
                        PumpEnd::Parked => {}
                        other => break Outcome::from_pump(other, Leg::Client),
                    }
                }
                end = &mut to_client, if !client_done => {
                    client_done = true;
                    match end {
                        PumpEnd::Finished => {
                            client_fin_sent = true;
                            if upstream_done {
                                break Outcome::Done;
                            }
                        }
                        other => break Outcome::from_pump(other, Leg::Upstream),
                    }
                }
                () = sleep_until_timer(&end_timer) => {
                    if let Some((_, how, mark)) = &end_timer {
                        let comment = conn.fault_fired(mark);
                        break Outcome::Fault(*how, comment);
                    }
                }
                () = sleep_until_instant(session_timer) => {
                    conn.session_tick(Instant::now(), rules.scenario());
                }
                () = conn.timers.notified() => {}
                () = rules.changed() => {
                    rules.refresh();
                    count_matches(&rules, &mut counted, run);
                    end_timer = rules.end_timer(&mut timer_since, Instant::now());
                }
                () = run.shutdown.cancelled() => break Outcome::Shutdown,
            }
        }
    };

    match outcome {
        Outcome::Done => {}
        Outcome::Shutdown => {
            let note = || Some("faultline: run stopped".to_string());
            if !upstream_fin_sent {
                tap.proxy_fin(Leg::Upstream, note()).await;
            }
            if !client_fin_sent {
                tap.proxy_fin(Leg::Client, note()).await;
            }
        }
        Outcome::Fault(EndHow::Reset | EndHow::ResetStream { .. }, comment) => {
            let (left_up, left_client) = tokio::join!(
                wait_delivered(&upstream, DELIVERY_LIMIT),
                wait_delivered(&client, DELIVERY_LIMIT)
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
            abort(upstream);
            abort(client);
        }
        Outcome::Fault(EndHow::Finish, comment) => {
            if !upstream_fin_sent {
                tap.proxy_fin(Leg::Upstream, Some(comment.clone())).await;
            }
            if !client_fin_sent {
                tap.proxy_fin(Leg::Client, Some(comment)).await;
            }
            let _ = tokio::join!(
                close_cleanly(&mut upstream, Leg::Upstream, conn),
                close_cleanly(&mut client, Leg::Client, conn)
            );
        }
        Outcome::Answered => {
            if !upstream_fin_sent {
                tap.proxy_fin(Leg::Upstream, None).await;
            }
            if !client_fin_sent {
                tap.proxy_fin(Leg::Client, None).await;
            }
            let _ = tokio::join!(
                close_cleanly(&mut upstream, Leg::Upstream, conn),
                close_cleanly(&mut client, Leg::Client, conn)
            );
        }
        Outcome::PeerFailed { leg, error } => {
            // A transparent proxy mirrors an abort: the other peer sees a reset too.
            debug!(%leg, error = %error, "a peer failed; resetting both legs");
            let other = match leg {
                Leg::Client => Leg::Upstream,
                Leg::Upstream => Leg::Client,
            };
            tap.peer_rst(leg).await;
            tap.proxy_rst(other, None).await;
            abort(upstream);
            abort(client);
        }
    }
    tap.closed(Leg::Client).await;
    tap.closed(Leg::Upstream).await;
}

/// Counts each rule that selects this connection once (its `matched` counter), also the rules
/// a replaced rule book adds.
fn count_matches(rules: &ConnectionRules, counted: &mut HashSet<u64>, run: &RunShared) {
    for &i in rules.matched() {
        let key = rules.scenario().rules[i].key;
        if counted.insert(key) {
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
    replay: Bytes,
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
    pump(source, destination, direction, rules, chain, conn, replay).await
}

/// Connects the upstream leg: to the run's upstream, or (forward proxy) where the client's first
/// request says. Returns the upstream and the client bytes already read that must be relayed
/// first, or how the client was dealt with when that failed.
async fn open_upstream(
    client: &mut TcpStream,
    conn: &ConnectionShared,
) -> Result<(TcpStream, Bytes), Unrouted> {
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
                Ok((routed.upstream, routed.replay))
            }
            Err(refusal) => {
                use tokio::io::AsyncWriteExt;
                warn!(side = "upstream", reason = %refusal.reason, "forward proxy cannot route the request");
                run.stats.upstream_failures.fetch_add(1, Relaxed);
                let _ = client.write_all(&refusal.response).await;
                let note = format!("faultline: forward proxy refused: {}", refusal.reason);
                conn.relayed(
                    Direction::UpstreamToClient,
                    &Bytes::from(refusal.response),
                    Some(note),
                )
                .await;
                tap.proxy_fin(Leg::Client, None).await;
                close_cleanly(client, Leg::Client, conn).await;
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
            Ok((stream, Bytes::new()))
        }
        Err(e) => {
            warn!(side = "upstream", upstream = %upstream_addr, error = %e, "cannot connect to upstream; resetting the client leg");
            run.stats.upstream_failures.fetch_add(1, Relaxed);
            let note =
                format!("faultline: upstream {upstream_addr} unreachable ({e}); client leg reset");
            tap.proxy_rst(Leg::Client, Some(note)).await;
            tap.closed(Leg::Client).await;
            Err(Unrouted::Reset)
        }
    }
}

/// How a client whose upstream could not be opened was dealt with.
enum Unrouted {
    /// The caller must reset the client leg.
    Reset,
    /// The client got an HTTP answer and its leg is closed.
    Answered,
}

/// Sends a FIN, then reads and discards until the peer closes too (bounded), because closing a
/// socket with unread bytes makes the kernel send a RST instead. What the peer sends meanwhile
/// crossed the leg, so it is recorded.
async fn close_cleanly(stream: &mut TcpStream, leg: Leg, conn: &ConnectionShared) {
    use tokio::io::AsyncWriteExt;
    let tap = &conn.tap;
    let shutdown = &conn.run.shutdown;
    let _ = stream.shutdown().await;
    let mut sink = bytes::BytesMut::with_capacity(64 * 1024);
    let drain = async {
        loop {
            sink.clear();
            match stream.read_buf(&mut sink).await {
                Ok(0) if conn.peer_has_finished(leg) => return,
                Ok(0) => return tap.peer_fin(leg).await,
                Ok(_) => tap.drained(leg, &sink.split().freeze()).await,
                Err(_) => return tap.peer_rst(leg).await,
            }
        }
    };
    tokio::select! {
        _ = timeout(LINGER_LIMIT, drain) => {}
        () = shutdown.cancelled() => {}
    }
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
}

impl Outcome {
    /// What a pump's end means for the connection; `source` is the leg the pump reads from.
    fn from_pump(end: PumpEnd, source: Leg) -> Outcome {
        let destination = match source {
            Leg::Client => Leg::Upstream,
            Leg::Upstream => Leg::Client,
        };
        match end {
            PumpEnd::Finished | PumpEnd::Parked => Outcome::Done,
            PumpEnd::Fault { how, comment } => Outcome::Fault(how, comment),
            PumpEnd::Answered => Outcome::Answered,
            PumpEnd::SourceFailed(error) => Outcome::PeerFailed { leg: source, error },
            PumpEnd::DestinationFailed(error) => Outcome::PeerFailed {
                leg: destination,
                error,
            },
        }
    }
}
