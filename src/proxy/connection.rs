//! One proxied connection: decide which rules apply, connect upstream, run both pumps, and end
//! both legs the way the outcome demands (half-close, FIN or RST).

use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::time::{sleep_until, timeout, Instant};
use tracing::{debug, info, warn, Instrument};

use super::pump::{pump, PumpEnd};
use super::socket::{abort, wait_delivered};
use super::RunShared;
use crate::direction::Direction;
use crate::fault::plan::{EndHow, Mark};
use crate::fault::{ConnectionFault, DirectionPlanner};
use crate::seed::{self, Purpose};

/// How long to wait for the upstream to accept a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a reset waits for already-written bytes to reach the peer before it discards them.
const DELIVERY_LIMIT: Duration = Duration::from_secs(2);
/// How long a clean close keeps reading (and discarding) so that unread bytes do not turn the
/// FIN into a RST.
const LINGER_LIMIT: Duration = Duration::from_secs(2);

/// What both pumps of one connection share: who it is, and the run it belongs to.
#[derive(Debug)]
pub struct ConnectionShared {
    /// 1-based ordinal among accepted connections.
    pub id: u64,
    /// The run's scenario, counters and switches.
    pub run: Arc<RunShared>,
}

impl ConnectionShared {
    /// A fault took effect: count it and say so once, at info, naming the rule.
    pub fn fault_fired(&self, mark: &Mark) {
        if let Some(stats) = self.run.stats.rules.get(mark.rule) {
            stats.fired.fetch_add(1, Relaxed);
        }
        let rule = self
            .run
            .scenario
            .rules
            .get(mark.rule)
            .map(|r| r.name.as_str())
            .unwrap_or("?");
        info!(rule, "fault: {}", mark.note);
    }

    /// Bytes were read from the source of `direction`.
    pub fn received(&self, direction: Direction, bytes: &[u8]) {
        tracing::trace!(%direction, len = bytes.len(), "read");
    }

    /// Bytes were written to the destination of `direction`.
    pub fn relayed(&self, direction: Direction, bytes: &[u8]) {
        self.run.stats.add_bytes(direction, bytes.len());
    }

    /// The source of `direction` shut down its write half.
    pub fn source_closed(&self, direction: Direction) {
        debug!(%direction, "source closed its write half");
    }

    /// The pump shut down the destination's write half.
    pub fn shut_down(&self, direction: Direction) {
        debug!(%direction, "half-close relayed");
    }
}

/// Serves one accepted client until both directions are done or a fault ends it.
pub async fn serve(client: TcpStream, client_addr: SocketAddr, id: u64, run: Arc<RunShared>) {
    let span = tracing::info_span!("conn", id, client = %client_addr);
    async move {
        let conn = ConnectionShared { id, run };
        proxy_connection(client, &conn).await;
        debug!("closed");
    }
    .instrument(span)
    .await
}

async fn proxy_connection(mut client: TcpStream, conn: &ConnectionShared) {
    let run = &conn.run;
    let matched: Vec<usize> = run
        .scenario
        .rules
        .iter()
        .enumerate()
        .filter(|(i, rule)| rule.matcher.matches_connection(conn.id, run.seed, *i))
        .map(|(i, _)| i)
        .collect();
    for &i in &matched {
        run.stats.rules[i].matched.fetch_add(1, Relaxed);
    }

    let mut end_timer: Option<(Instant, EndHow, Mark)> = None;
    let opened = Instant::now();
    for &i in &matched {
        match run.scenario.rules[i].fault.connection_fault(i) {
            Some(ConnectionFault::Refuse { mark }) => {
                conn.fault_fired(&mark);
                abort(client);
                return;
            }
            Some(ConnectionFault::EndAfter { after, how, mark }) => {
                let at = opened + after;
                if end_timer.as_ref().is_none_or(|(t, _, _)| at < *t) {
                    end_timer = Some((at, how, mark));
                }
            }
            None => {}
        }
    }

    let upstream_addr = run.upstream.to_string();
    let mut upstream = match timeout(CONNECT_TIMEOUT, run.upstream.connect()).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => {
            warn!(side = "upstream", upstream = %upstream_addr, error = %e, "cannot connect to upstream; resetting the client leg");
            run.stats.upstream_failures.fetch_add(1, Relaxed);
            abort(client);
            return;
        }
        Err(_) => {
            warn!(side = "upstream", upstream = %upstream_addr, "upstream did not accept within {CONNECT_TIMEOUT:?}; resetting the client leg");
            run.stats.upstream_failures.fetch_add(1, Relaxed);
            abort(client);
            return;
        }
    };
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    debug!(upstream = %upstream_addr, "upstream connected");

    let planner_for = |direction: Direction| {
        let faults = matched
            .iter()
            .filter(|&&i| run.scenario.rules[i].matcher.direction.includes(direction))
            .filter_map(|&i| {
                let rng = seed::stream(
                    run.seed,
                    Purpose::FaultTiming,
                    &[conn.id, i as u64, direction.index() as u64],
                );
                run.scenario.rules[i].fault.stream_fault(i, direction, rng)
            })
            .collect();
        DirectionPlanner::new(faults)
    };

    let outcome = {
        let (mut client_read, mut client_write) = client.split();
        let (mut upstream_read, mut upstream_write) = upstream.split();
        let to_upstream = pump(
            &mut client_read,
            &mut upstream_write,
            Direction::ClientToUpstream,
            planner_for(Direction::ClientToUpstream),
            conn,
        );
        let to_client = pump(
            &mut upstream_read,
            &mut client_write,
            Direction::UpstreamToClient,
            planner_for(Direction::UpstreamToClient),
            conn,
        );
        tokio::pin!(to_upstream, to_client);
        let timer = async {
            match &end_timer {
                Some((at, _, _)) => sleep_until(*at).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(timer);
        let mut upstream_done = false;
        let mut client_done = false;
        loop {
            tokio::select! {
                end = &mut to_upstream, if !upstream_done => {
                    upstream_done = true;
                    match end {
                        PumpEnd::Finished if client_done => break Outcome::Done,
                        PumpEnd::Finished => {}
                        other => break Outcome::from_pump(other, Direction::ClientToUpstream),
                    }
                }
                end = &mut to_client, if !client_done => {
                    client_done = true;
                    match end {
                        PumpEnd::Finished if upstream_done => break Outcome::Done,
                        PumpEnd::Finished => {}
                        other => break Outcome::from_pump(other, Direction::UpstreamToClient),
                    }
                }
                () = &mut timer => {
                    if let Some((_, how, mark)) = &end_timer {
                        conn.fault_fired(mark);
                        break Outcome::Fault(*how);
                    }
                }
                () = run.shutdown.cancelled() => break Outcome::Shutdown,
            }
        }
    };

    match outcome {
        Outcome::Done | Outcome::Shutdown => {}
        Outcome::Fault(EndHow::Reset) => {
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
            abort(upstream);
            abort(client);
        }
        Outcome::Fault(EndHow::Finish) => {
            let _ = tokio::join!(
                close_cleanly(&mut upstream, &run.shutdown),
                close_cleanly(&mut client, &run.shutdown)
            );
        }
        Outcome::PeerFailed { direction, error } => {
            // A transparent proxy mirrors an abort: the other peer sees a reset too.
            debug!(%direction, error = %error, "a peer failed; resetting both legs");
            abort(upstream);
            abort(client);
        }
    }
}

/// Sends a FIN, then reads and discards until the peer closes too (bounded), because closing a
/// socket with unread bytes makes the kernel send a RST instead.
async fn close_cleanly(stream: &mut TcpStream, shutdown: &tokio_util::sync::CancellationToken) {
    use tokio::io::AsyncWriteExt;
    let _ = stream.shutdown().await;
    let mut sink = [0u8; 16 * 1024];
    let drain = async {
        loop {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
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
    Fault(EndHow),
    PeerFailed {
        direction: Direction,
        error: std::io::Error,
    },
}

impl Outcome {
    fn from_pump(end: PumpEnd, direction: Direction) -> Outcome {
        match end {
            PumpEnd::Finished => Outcome::Done,
            PumpEnd::Fault { how, .. } => Outcome::Fault(how),
            PumpEnd::SourceFailed(error) | PumpEnd::DestinationFailed(error) => {
                Outcome::PeerFailed { direction, error }
            }
        }
    }
}
