//! The pump: moves one direction's bytes from a source socket to a destination socket, executing
//! the plans the faults make. It is the only place that waits and writes.
//!
//! Reading goes on while planned bytes wait for their instant (so a latency fault delays each
//! chunk from its own arrival instead of adding up), but only while less than [`HIGH_WATER`]
//! bytes are queued (a latency asks for a deeper queue, [`FaultChain::queue_limit`]):
//! backpressure reaches the sender as a full TCP window, never as memory growth.
//! A fault that paces the stream (bandwidth) bounds that read-ahead further
//! ([`FaultChain::read_ahead`]), and a rule change is taken up at once, even while not reading:
//! a removed limit must not leave megabytes queued on its old schedule.

use std::collections::VecDeque;
use std::io;
use std::sync::atomic::Ordering::Relaxed;

use bytes::{BufMut, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::{sleep_until, Instant};

use super::connection::ConnectionShared;
use super::live_rules::ConnectionRules;
use crate::direction::Direction;
use crate::fault::plan::{EndHow, Mark, Step};
use crate::fault::{FaultChain, ReadAhead};

/// Bytes asked of the kernel per read: large reads keep syscalls per byte low on bulk transfers.
const READ_CHUNK: usize = 256 * 1024;
/// Queued bytes above which the pump stops reading.
pub const HIGH_WATER: usize = 4 * 1024 * 1024;

/// How a pump ended.
#[derive(Debug)]
pub enum PumpEnd {
    /// The source shut down its write half, every planned byte was written, and the
    /// destination's write half was shut down in turn (half-close carried across).
    Finished,
    /// A fault ends the connection; everything planned before it was written. `comment` names
    /// the rule and what it did, for the capture.
    Fault { how: EndHow, comment: String },
    /// faultline wrote its own answer to the destination (an HTTP `respond` rule, a malformed
    /// request, a forward-proxy request for another origin); the connection closes.
    Answered,
    /// Reading from the source failed (typically the peer reset).
    SourceFailed(io::Error),
    /// Writing to the destination failed.
    DestinationFailed(io::Error),
    /// A `tls_alert` fault ends the connection: the destination leg's TLS fails with `alert`
    /// (everything planned before it was written).
    TlsAlert {
        alert: crate::fault::tls_alert::AlertName,
        comment: String,
    },
}

enum Queued {
    Send {
        bytes: Bytes,
        not_before: Option<Instant>,
        mark: Option<Mark>,
    },
    End {
        how: EndHow,
        mark: Mark,
    },
    Hold {
        mark: Mark,
    },
    Answer {
        bytes: Vec<u8>,
        mark: Mark,
    },
    Park {
        /// The chunk's bytes from the stop on.
        rest: Bytes,
    },
}

/// Bytes already read from a pump's source before it started, relayed first, exactly as if just
/// read.
#[derive(Debug, Default)]
pub struct Replay {
    bytes: Bytes,
    /// The capture holds them already: an earlier pump of the connection read them (a request
    /// parked until a forward proxy moved the connection to its origin).
    recorded: bool,
}

impl Replay {
    /// Bytes read while routing or peeking (a forward-proxy request head, a ClientHello), not
    /// recorded yet.
    pub fn unrecorded(bytes: Bytes) -> Self {
        Replay {
            bytes,
            recorded: false,
        }
    }

    /// Bytes an earlier pump read and recorded, and did not relay.
    pub fn recorded(bytes: Bytes) -> Self {
        Replay {
            bytes,
            recorded: true,
        }
    }

    /// Whether there is nothing to replay.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

/// Relays `direction` from `source` to `destination` until EOF, a fault or an error, after
/// the bytes `replay` holds.
pub async fn pump<R, W>(
    source: &mut R,
    destination: &mut W,
    direction: Direction,
    mut rules: ConnectionRules,
    mut planner: FaultChain,
    conn: &ConnectionShared,
    replay: Replay,
) -> PumpEnd
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    let mut queue: VecDeque<Queued> = VecDeque::new();
    let mut queued_bytes = 0usize;
    let mut eof = false;
    // Once an End or Hold is planned, nothing more is read in this direction.
    let mut closed_by_plan = false;
    let mut holding = false;
    // The rule whose hold is in force (`None`: faultline's own, or not known).
    let mut held_by: Option<u64> = None;
    let replay_recorded = replay.recorded;
    let mut replay = (!replay.is_empty()).then_some(replay.bytes);
    // Bytes read but not planned yet: the HTTP session holds back an incomplete head until it
    // is whole, and they are planned again, first, with the next chunk.
    let mut carry = Bytes::new();
    // Only the direction toward the client delivers faultline's own answers.
    let owes_answers = direction == Direction::UpstreamToClient && conn.http.is_some();
    let has_session = conn.http.is_some();
    // Requests stopped for an answer owed to the client (see `Queued::Park`).
    let mut parked = false;

    loop {
        // Execute every step whose time has come.
        while let Some(front) = queue.front() {
            if let Queued::Send {
                not_before: Some(at),
                ..
            } = front
            {
                if *at > Instant::now() {
                    break;
                }
            }
            if holding {
                break;
            }
            match queue.pop_front() {
                Some(Queued::Send { bytes, mark, .. }) => {
                    queued_bytes -= bytes.len();
                    let comment = mark.map(|mark| {
                        conn.sent_mark(direction, queue.iter().find_map(Queued::mark));
                        conn.fault_fired(&mark)
                    });
                    if let Err(e) =
                        write_recorded(destination, direction, bytes, comment, conn).await
                    {
                        return PumpEnd::DestinationFailed(e);
                    }
                }
                Some(Queued::End { how, mark }) => {
                    let comment = conn.fault_fired(&mark);
                    if let Some(alert) = mark.tls_alert {
                        return PumpEnd::TlsAlert { alert, comment };
                    }
                    return PumpEnd::Fault { how, comment };
                }
                Some(Queued::Answer { bytes, mark }) => {
                    let comment = conn.fault_fired(&mark);
                    let bytes = Bytes::from(bytes);
                    if let Err(e) =
                        write_recorded(destination, direction, bytes, Some(comment), conn).await
                    {
                        return PumpEnd::DestinationFailed(e);
                    }
                    return PumpEnd::Answered;
                }
                Some(Queued::Park { rest }) => {
                    // The request side stops: faultline owes the client an answer, which the
                    // response side sends once the responses before it are done (the
                    // connection then ends). Until then this pump waits, reading nothing, with
                    // what it read from the stop on: a fallback to raw TCP relays it after
                    // the requests held for the answer (a trial saw them lost and both legs
                    // left open), a forward proxy to the next origin.
                    let rest = if carry.is_empty() {
                        rest
                    } else {
                        let mut joined = BytesMut::from(&rest[..]);
                        joined.extend_from_slice(&carry);
                        carry = Bytes::new();
                        joined.freeze()
                    };
                    conn.park(rest);
                    parked = true;
                }
                Some(Queued::Hold { mark }) => {
                    held_by = mark.rule_key();
                    conn.sent_mark(direction, queue.iter().find_map(Queued::mark));
                    let comment = conn.fault_fired(&mark);
                    conn.tap.note(direction, comment).await;
                    holding = true;
                }
                None => break,
            }
        }

        if eof && queue.is_empty() && owes_answers && !closed_by_plan {
            // The upstream closed, but an answer from faultline may still be owed: send it first.
            if let Some((bytes, mark)) = conn.take_ready_answer() {
                closed_by_plan = true;
                queue.push_back(Queued::Answer { bytes, mark });
                continue;
            }
        }
        if eof && queue.is_empty() && !holding {
            return match destination.shutdown().await {
                Ok(()) => {
                    conn.tap.destination_fin(direction).await;
                    PumpEnd::Finished
                }
                Err(e) => PumpEnd::DestinationFailed(e),
            };
        }

        let relaying = !eof && !closed_by_plan;
        let (read_limit, read_again) = match planner.read_ahead(Instant::now()) {
            ReadAhead::Any => (READ_CHUNK, None),
            ReadAhead::UpTo(n) => (n.min(READ_CHUNK), None),
            ReadAhead::Wait(at) => (0, relaying.then_some(at)),
        };
        let high_water = planner
            .queue_limit()
            .map_or(HIGH_WATER, |l| l.max(HIGH_WATER));
        let can_read = relaying && queued_bytes < high_water && read_limit > 0;
        let deadline = match queue.front() {
            Some(Queued::Send {
                not_before: Some(at),
                ..
            }) if !holding => Some(*at),
            _ => None,
        };
        let deadline = match (deadline, read_again) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };

        if can_read && buf.capacity() - buf.len() < READ_CHUNK / 4 {
            buf.reserve(READ_CHUNK);
        }
        let mut woken = false;
        let mut rules_changed = false;
        // Whether the bytes about to be read are in the capture already.
        let read_recorded = replay.is_some() && replay_recorded;
        // What a run stopping now would leave unsent (the connection says it in the capture).
        conn.unsent[direction.index()].store((queued_bytes + carry.len()) as u64, Relaxed);
        let read = if let Some(replayed) = replay.take() {
            buf.extend_from_slice(&replayed);
            Some(Ok(replayed.len()))
        } else {
            let mut room = (&mut buf).limit(read_limit);
            tokio::select! {
                biased;
                _ = sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => None,
                () = conn.wake[direction.index()].notified(), if has_session && (!closed_by_plan || parked) && !eof => {
                    woken = true;
                    None
                }
                () = conn.answer_ready.notified(), if owes_answers && !closed_by_plan => {
                    if let Some((bytes, mark)) = conn.take_ready_answer() {
                        closed_by_plan = true;
                        queue.push_back(Queued::Answer { bytes, mark });
                    }
                    None
                }
                // Also while held or delayed: a lifted rule releases what it holds.
                () = rules.changed(), if !eof || !queue.is_empty() => {
                    rules_changed = true;
                    None
                }
                result = source.read_buf(&mut room), if can_read => Some(result),
                else => {
                    // Held for good (stall without duration): keep both sockets open until the
                    // connection is ended by the other direction, a timer or shutdown.
                    std::future::pending::<()>().await;
                    None
                }
            }
        };
        if rules_changed {
            // `changed` adopted the new rules already (a refresh would find nothing new).
            let before = planner.keys();
            planner = rules.direction_chain(direction, Some(planner));
            let now_in_force = planner.keys();
            // A lifted timeout (an updated one goes on) ends the connection after what was
            // queued before it: the bytes it dropped leave a gap.
            let lifted_timeout = before
                .iter()
                .filter(|key| !now_in_force.contains(key))
                .find_map(|&key| rules.lifted_timeout_mark(key));
            if let (Some(mark), false) = (lifted_timeout, closed_by_plan) {
                queue.push_back(Queued::End {
                    how: EndHow::Finish,
                    mark,
                });
                closed_by_plan = true;
                continue;
            }
            if before.iter().any(|key| !now_in_force.contains(key)) {
                // A rule of this direction was lifted or replaced: what its old schedule still
                // holds leaves now, as Toxiproxy's toxics hand their data on when interrupted.
                // A hold is lifted when its own rule went, and only without a protocol session
                // (whose framer planned the held bytes already).
                let lifted = |key: Option<u64>| key.is_some_and(|k| !now_in_force.contains(&k));
                let unhold = !has_session;
                release(&mut queue, Instant::now(), |mark| {
                    unhold && lifted(mark.rule_key())
                });
                conn.sent_mark(direction, queue.iter().find_map(Queued::mark));
                if holding && unhold && lifted(held_by) {
                    holding = false;
                    closed_by_plan = queue.iter().any(Queued::ends_direction);
                }
            }
            continue;
        }
        if woken && parked {
            // Fallen back to raw TCP: the requests held for the answer, then what was read
            // after the stop, and on as raw bytes.
            if let Some(held) = conn.take_release() {
                let rest = conn.take_parked().unwrap_or_default();
                parked = false;
                closed_by_plan = false;
                for bytes in [Bytes::from(held), rest] {
                    if !bytes.is_empty() {
                        queued_bytes += bytes.len();
                        queue.push_back(Queued::Send {
                            bytes,
                            not_before: None,
                            mark: None,
                        });
                    }
                }
            }
            continue;
        }
        if woken {
            // The session owes this direction's receiver frames: plan what is held, if anything.
            let held = std::mem::take(&mut carry);
            let arrival = Instant::now();
            if let Some(session) = conn.plan_http(direction, &held, arrival, rules.scenario()) {
                let covered = held.len() - session.deferred.min(held.len());
                let mut held = held;
                carry = held.split_off(covered);
                let steps = planner.apply(session.steps, arrival);
                closed_by_plan =
                    enqueue_noted(conn, direction, &mut queue, &mut queued_bytes, held, steps);
            } else {
                carry = held;
            }
            continue;
        }
        let Some(result) = read else { continue };
        let n = match result {
            Ok(0) => {
                eof = true;
                conn.source_finished(direction).await;
                if !closed_by_plan {
                    // Frames the session still holds for this receiver leave before the FIN
                    // (the session says when they cannot: the sender stopped inside a frame).
                    let now = Instant::now();
                    let owed = conn.drain_session(direction, now);
                    let h2 = owed.is_some();
                    if let Some(session) = owed.filter(|s| !s.steps.is_empty()) {
                        let steps = planner.apply(session.steps, now);
                        closed_by_plan = enqueue_noted(
                            conn,
                            direction,
                            &mut queue,
                            &mut queued_bytes,
                            Bytes::new(),
                            steps,
                        );
                    }
                    if h2 && !carry.is_empty() && !closed_by_plan {
                        // Whole HTTP/2 frames the session kept back (upstream DATA waiting for
                        // the client's credit, and the frames after it) are planned now that
                        // the sender closed: their header blocks may have to reach the
                        // receiver in another form than their bytes. What that planning holds
                        // is drained too; only an unfinished frame follows as it came.
                        let held = std::mem::take(&mut carry);
                        if let Some(session) =
                            conn.plan_http(direction, &held, now, rules.scenario())
                        {
                            let covered = held.len() - session.deferred.min(held.len());
                            let mut held = held;
                            carry = held.split_off(covered);
                            let steps = planner.apply(session.steps, now);
                            closed_by_plan = enqueue_noted(
                                conn,
                                direction,
                                &mut queue,
                                &mut queued_bytes,
                                held,
                                steps,
                            );
                        } else {
                            carry = held;
                        }
                        let again = conn
                            .drain_session(direction, now)
                            .filter(|s| !s.steps.is_empty());
                        if let Some(session) = again.filter(|_| !closed_by_plan) {
                            let steps = planner.apply(session.steps, now);
                            closed_by_plan = enqueue_noted(
                                conn,
                                direction,
                                &mut queue,
                                &mut queued_bytes,
                                Bytes::new(),
                                steps,
                            );
                        }
                    }
                }
                if !carry.is_empty() && !closed_by_plan {
                    // The source ended inside a held-back head: relay it as it came.
                    let arrival = Instant::now();
                    let held = std::mem::take(&mut carry);
                    let steps = planner.plan(held.len(), arrival);
                    closed_by_plan =
                        enqueue_noted(conn, direction, &mut queue, &mut queued_bytes, held, steps);
                }
                if !closed_by_plan {
                    // Faults may act on the end itself (slow_close delays it, reset_peer resets).
                    if rules.refresh() {
                        planner = rules.direction_chain(direction, Some(planner));
                    }
                    let steps = planner.finish(Instant::now());
                    closed_by_plan = enqueue_noted(
                        conn,
                        direction,
                        &mut queue,
                        &mut queued_bytes,
                        Bytes::new(),
                        steps,
                    );
                }
                continue;
            }
            Ok(n) => n,
            Err(e) => return PumpEnd::SourceFailed(e),
        };
        let fresh = buf.split_to(n).freeze();
        if !read_recorded {
            conn.tap.received(direction, &fresh).await;
            conn.run.stats.received[direction.index()].fetch_add(n as u64, Relaxed);
        }
        let chunk = if carry.is_empty() {
            fresh
        } else {
            let mut joined = BytesMut::with_capacity(carry.len() + fresh.len());
            joined.extend_from_slice(&carry);
            joined.extend_from_slice(&fresh);
            carry = Bytes::new();
            joined.freeze()
        };

        let arrival = Instant::now();
        if rules.refresh() {
            planner = rules.direction_chain(direction, Some(planner));
        }
        let steps = match conn.plan_http(direction, &chunk, arrival, rules.scenario()) {
            Some(session) => {
                let covered = chunk.len() - session.deferred.min(chunk.len());
                let mut chunk = chunk;
                carry = chunk.split_off(covered);
                let steps = planner.apply(session.steps, arrival);
                closed_by_plan =
                    enqueue_noted(conn, direction, &mut queue, &mut queued_bytes, chunk, steps);
                continue;
            }
            None if !planner.is_empty() => planner.plan(chunk.len(), arrival),
            None => {
                // Nothing to decide: relay as soon as possible.
                queued_bytes += chunk.len();
                queue.push_back(Queued::Send {
                    bytes: chunk,
                    not_before: None,
                    mark: None,
                });
                continue;
            }
        };
        closed_by_plan =
            enqueue_noted(conn, direction, &mut queue, &mut queued_bytes, chunk, steps);
    }
}

/// Writes `bytes` to `destination` and records each piece the moment it left, so the capture
/// holds every byte that reached the peer even when this future is dropped between two partial
/// writes (a connection ending drops its pumps wherever they wait); see [`deliver`].
async fn write_recorded<W>(
    destination: &mut W,
    direction: Direction,
    bytes: Bytes,
    comment: Option<String>,
    conn: &ConnectionShared,
) -> std::io::Result<()>
where
    W: AsyncWrite + Unpin,
{
    deliver(destination, bytes, comment, move |piece, note| async move {
        conn.relayed(direction, &piece, note).await;
    })
    .await
}

/// Writes `rest` to `destination` piece by piece and hands each piece to `record` once it left.
///
/// A TLS leg's write() may only take the plaintext into its own buffer: a flush puts it on the
/// socket, so a piece is recorded once flushed, and a capture never holds bytes a failed flush
/// kept back (flushing is free on a socket, so a plain leg records in the same poll as its
/// write). `comment` rides on the first piece: inspect places a fault where its commented
/// segment starts, which must be the start of the bytes the fault shaped. When no piece left at
/// all, the comment is still recorded, on no bytes: the fault acted and was counted, so the
/// capture must say so.
async fn deliver<W, F, R>(
    destination: &mut W,
    mut rest: Bytes,
    mut comment: Option<String>,
    mut record: F,
) -> std::io::Result<()>
where
    W: AsyncWrite + Unpin,
    F: FnMut(Bytes, Option<String>) -> R,
    R: std::future::Future<Output = ()>,
{
    if rest.is_empty() {
        record(rest, comment).await;
        return Ok(());
    }
    while !rest.is_empty() {
        let written = match destination.write(&rest).await {
            Ok(0) => Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => destination.flush().await.map(|()| n),
            Err(e) => Err(e),
        };
        match written {
            Ok(n) => record(rest.split_to(n), comment.take()).await,
            Err(e) => {
                if comment.is_some() {
                    record(Bytes::new(), comment).await;
                }
                return Err(e);
            }
        }
    }
    Ok(())
}

impl Queued {
    /// The fault's mark this step carries.
    fn mark(&self) -> Option<&Mark> {
        match self {
            Queued::Send { mark, .. } => mark.as_ref(),
            Queued::End { mark, .. } | Queued::Hold { mark } | Queued::Answer { mark, .. } => {
                Some(mark)
            }
            Queued::Park { .. } => None,
        }
    }

    /// Whether this step ends relaying in its direction for good.
    fn ends_direction(&self) -> bool {
        matches!(
            self,
            Queued::End { .. } | Queued::Answer { .. } | Queued::Park { .. }
        )
    }
}

/// A rule of the direction was lifted or replaced: every queued write due later is due `now`
/// (order kept), and the holds not reached yet whose mark `lifted` says went are dropped, so
/// the bytes behind them follow (the caller lifts the one in force).
fn release(queue: &mut VecDeque<Queued>, now: Instant, lifted: impl Fn(&Mark) -> bool) {
    for queued in queue.iter_mut() {
        if let Queued::Send {
            not_before: Some(at),
            ..
        } = queued
        {
            *at = (*at).min(now);
        }
    }
    queue.retain(|q| !matches!(q, Queued::Hold { mark } if lifted(mark)));
}

/// [`enqueue`], telling the connection of the first marked step queued (see
/// `ConnectionShared::queued_mark`).
fn enqueue_noted(
    conn: &ConnectionShared,
    direction: Direction,
    queue: &mut VecDeque<Queued>,
    queued_bytes: &mut usize,
    chunk: Bytes,
    steps: Vec<Step>,
) -> bool {
    if let Some(mark) = steps.iter().find_map(Step::mark) {
        conn.queued_mark(direction, mark);
    }
    enqueue(queue, queued_bytes, chunk, steps)
}

/// Queues the steps of a plan over `chunk`; returns whether a step ended relaying in this
/// direction (nothing more is read then).
///
/// Adjacent unmarked sends of the chunk due at the same instant are queued as one write: a
/// protocol session splits a chunk at frame and message boundaries, and writing each piece on
/// its own would send one TCP segment per HTTP/2 frame (TCP_NODELAY) where the peer sent one.
fn enqueue(
    queue: &mut VecDeque<Queued>,
    queued_bytes: &mut usize,
    mut chunk: Bytes,
    steps: Vec<Step>,
) -> bool {
    // Unmarked bytes at the front of `chunk` due at one instant, not split off yet.
    let mut pending: Option<(usize, Instant)> = None;
    let flush = |pending: &mut Option<(usize, Instant)>,
                 chunk: &mut Bytes,
                 queue: &mut VecDeque<Queued>,
                 queued_bytes: &mut usize| {
        if let Some((len, at)) = pending.take() {
            *queued_bytes += len;
            queue.push_back(Queued::Send {
                bytes: chunk.split_to(len),
                not_before: Some(at),
                mark: None,
            });
        }
    };
    for step in steps {
        if let Step::Send {
            len,
            not_before,
            mark: None,
            ..
        } = step
        {
            let held = pending.map_or(0, |(held, _)| held);
            let len = len.min(chunk.len() - held);
            match &mut pending {
                Some((held, at)) if *at == not_before => *held += len,
                _ => {
                    flush(&mut pending, &mut chunk, queue, queued_bytes);
                    pending = Some((len, not_before));
                }
            }
            continue;
        }
        flush(&mut pending, &mut chunk, queue, queued_bytes);
        match step {
            Step::Send {
                len,
                not_before,
                mark,
                ..
            } => {
                let len = len.min(chunk.len());
                *queued_bytes += len;
                queue.push_back(Queued::Send {
                    bytes: chunk.split_to(len),
                    not_before: Some(not_before),
                    mark,
                });
            }
            Step::Insert {
                bytes,
                not_before,
                mark,
                ..
            } => {
                *queued_bytes += bytes.len();
                queue.push_back(Queued::Send {
                    bytes,
                    not_before: Some(not_before),
                    mark,
                });
            }
            Step::Skip { len } => {
                let len = len.min(chunk.len());
                drop(chunk.split_to(len));
            }
            Step::End { how, mark } => {
                queue.push_back(Queued::End { how, mark });
                return true;
            }
            Step::Hold { mark } => {
                queue.push_back(Queued::Hold { mark });
                // The rest of the chunk waits behind the hold: a rule change that lifts it
                // (see `release`) relays it, nothing is lost.
                if !chunk.is_empty() {
                    *queued_bytes += chunk.len();
                    queue.push_back(Queued::Send {
                        bytes: chunk,
                        not_before: None,
                        mark: None,
                    });
                }
                return true;
            }
            Step::Answer { bytes, mark } => {
                queue.push_back(Queued::Answer { bytes, mark });
                return true;
            }
            Step::Park => {
                queue.push_back(Queued::Park { rest: chunk });
                return true;
            }
        }
    }
    flush(&mut pending, &mut chunk, queue, queued_bytes);
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sends(queue: &VecDeque<Queued>) -> Vec<(Vec<u8>, bool)> {
        queue
            .iter()
            .map(|q| match q {
                Queued::Send { bytes, mark, .. } => (bytes.to_vec(), mark.is_some()),
                _ => (b"(other)".to_vec(), false),
            })
            .collect()
    }

    /// A lifted rule releases what it held; a rule still in force keeps its hold.
    #[test]
    fn a_release_frees_delayed_writes_and_only_the_lifted_rules_holds() {
        use crate::fault::plan::RuleId;
        let now = Instant::now();
        let later = now + std::time::Duration::from_secs(60);
        let (gone, kept) = (RuleId::new(1, "gone"), RuleId::new(2, "kept"));
        let mut queue = VecDeque::new();
        queue.push_back(Queued::Send {
            bytes: Bytes::from_static(b"late"),
            not_before: Some(later),
            mark: None,
        });
        queue.push_back(Queued::Hold {
            mark: Mark::rule(&gone, "stalled"),
        });
        queue.push_back(Queued::Hold {
            mark: Mark::follow_up(&kept, "end held"),
        });
        release(&mut queue, now, |mark| mark.rule_key() == Some(1));
        assert!(matches!(
            queue.front(),
            Some(Queued::Send { not_before: Some(at), .. }) if *at == now
        ));
        let holds: Vec<Option<u64>> = queue
            .iter()
            .filter_map(|q| match q {
                Queued::Hold { mark } => Some(mark.rule_key()),
                _ => None,
            })
            .collect();
        assert_eq!(holds, vec![Some(2)]);
    }

    /// A slicer with no delay (Toxiproxy's default) must still write each piece on its own:
    /// a trial saw 1,000 bytes leave as 85 + 915.
    #[test]
    fn a_sliced_chunk_with_no_delay_is_one_write_per_piece() {
        use crate::fault::plan::RuleId;
        use crate::fault::scope::Scope;
        use crate::fault::slicer::{Slicer, Slicing};
        use crate::fault::StreamFault;
        use crate::seed::{stream, Purpose};
        use crate::units::ByteSize;
        let now = Instant::now();
        let mut slicing = Slicing::new(
            &Slicer {
                average_size: ByteSize(64),
                size_variation: Some(ByteSize(32)),
                delay: None,
            },
            &RuleId::new(0, "slices"),
            &Scope::direction(Direction::ClientToUpstream),
            stream(1, Purpose::FaultTiming, &[]),
        );
        let steps = slicing.apply(vec![Step::send(1000, now)], now);
        let pieces = steps.len();
        assert!(pieces >= 10, "{steps:?}");
        let mut queue = VecDeque::new();
        let mut queued = 0;
        enqueue(&mut queue, &mut queued, Bytes::from(vec![7u8; 1000]), steps);
        let writes = sends(&queue);
        assert_eq!(writes.len(), pieces, "one write per piece");
        assert!(writes.iter().all(|(bytes, _)| bytes.len() <= 96));
        assert_eq!(queued, 1000);
    }

    #[test]
    fn adjacent_unmarked_sends_due_together_are_one_write() {
        let now = Instant::now();
        let later = now + std::time::Duration::from_millis(5);
        let mut queue = VecDeque::new();
        let mut queued = 0;
        let steps = vec![
            Step::send(2, now),
            Step::send(3, now),
            Step::Skip { len: 1 },
            Step::send(1, now),
            Step::send(1, later),
            Step::Send {
                len: 1,
                not_before: later,
                mark: Some(Mark::proxy("a note")),
                role: crate::fault::plan::Role::Payload,
            },
            Step::Insert {
                bytes: Bytes::from_static(b"X"),
                not_before: later,
                mark: None,
                role: crate::fault::plan::Role::Framing,
            },
            Step::send(2, later),
        ];
        let ended = enqueue(
            &mut queue,
            &mut queued,
            Bytes::from_static(b"abcdefghij"),
            steps,
        );
        assert!(!ended);
        assert_eq!(
            sends(&queue),
            vec![
                (b"abcde".to_vec(), false),
                (b"g".to_vec(), false),
                (b"h".to_vec(), false),
                (b"i".to_vec(), true),
                (b"X".to_vec(), false),
                (b"j".to_vec(), false),
            ]
        );
        assert_eq!(queued, 10);
    }

    /// A destination that takes at most `take` bytes per write and keeps them until a flush,
    /// which fails when `flush_fails` (a TLS leg whose socket went away under its buffer).
    struct Buffered {
        took: Vec<u8>,
        take: usize,
        flush_fails: bool,
    }

    impl AsyncWrite for Buffered {
        fn poll_write(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            buf: &[u8],
        ) -> std::task::Poll<io::Result<usize>> {
            let me = self.get_mut();
            let n = buf.len().min(me.take);
            me.took.extend_from_slice(&buf[..n]);
            std::task::Poll::Ready(Ok(n))
        }

        fn poll_flush(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<io::Result<()>> {
            std::task::Poll::Ready(match self.flush_fails {
                true => Err(io::ErrorKind::BrokenPipe.into()),
                false => Ok(()),
            })
        }

        fn poll_shutdown(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }
    }

    async fn delivered(
        destination: &mut Buffered,
        bytes: &'static [u8],
    ) -> (io::Result<()>, Vec<(Vec<u8>, Option<String>)>) {
        let mut recorded = Vec::new();
        let result = deliver(
            destination,
            Bytes::from_static(bytes),
            Some("fault".to_string()),
            |piece, note| {
                recorded.push((piece.to_vec(), note));
                std::future::ready(())
            },
        )
        .await;
        (result, recorded)
    }

    #[tokio::test]
    async fn a_partial_write_puts_the_fault_comment_where_the_shaped_bytes_start() {
        let mut destination = Buffered {
            took: Vec::new(),
            take: 4,
            flush_fails: false,
        };
        let (result, recorded) = delivered(&mut destination, b"abcdefghij").await;
        assert!(result.is_ok());
        assert_eq!(destination.took, b"abcdefghij");
        assert_eq!(
            recorded,
            vec![
                (b"abcd".to_vec(), Some("fault".to_string())),
                (b"efgh".to_vec(), None),
                (b"ij".to_vec(), None),
            ],
            "inspect reads the fault's offset from the start of its commented segment"
        );
    }

    #[tokio::test]
    async fn bytes_a_failed_flush_kept_back_are_not_recorded() {
        let mut destination = Buffered {
            took: Vec::new(),
            take: usize::MAX,
            flush_fails: true,
        };
        let (result, recorded) = delivered(&mut destination, b"abcdefghij").await;
        assert!(result.is_err());
        assert_eq!(
            recorded,
            vec![(Vec::new(), Some("fault".to_string()))],
            "no byte left for the peer, but the fault that acted is marked"
        );
    }
}
