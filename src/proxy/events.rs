//! What a run tells observers while it happens (a connection opened or closed, a fault fired):
//! a broadcast that costs one atomic load when nobody listens (`faultline serve`'s event stream
//! is the listener).

use std::net::SocketAddr;

use tokio::sync::broadcast;

/// How many events a slow listener may fall behind before it is told it missed some. The
/// channel allocates every slot up front, once per run, and `faultline serve` keeps one run per
/// proxy: 4,096 slots were 330 KB a proxy, so one `/populate` of 18,000 proxies (under the 1 MiB
/// body limit) took 6 GB. Its one listener in `serve` is a task that only moves each event on
/// to the API's own stream (whose backlog is the one slow SSE clients lean on), so a short
/// backlog suffices.
const BACKLOG: usize = 256;

/// One thing that happened in a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunEvent {
    /// A client connection was accepted.
    Opened {
        /// Its 1-based ordinal in the run.
        connection: u64,
        /// The client's address.
        client: SocketAddr,
    },
    /// A connection's task ended: both legs are closed.
    Closed {
        /// Its ordinal.
        connection: u64,
    },
    /// A fault took effect on a connection.
    Fired {
        /// The connection's ordinal.
        connection: u64,
        /// The rule's name, or `None` when faultline acted by itself.
        rule: Option<String>,
        /// What happened.
        note: String,
    },
}

/// The sending side, shared by every connection of a run.
#[derive(Debug)]
pub struct RunEvents {
    sender: broadcast::Sender<RunEvent>,
}

impl Default for RunEvents {
    fn default() -> Self {
        RunEvents {
            sender: broadcast::Sender::new(BACKLOG),
        }
    }
}

impl RunEvents {
    /// Sends the event `make` builds, building it only when someone listens.
    pub fn emit(&self, make: impl FnOnce() -> RunEvent) {
        if self.sender.receiver_count() > 0 {
            // A listener that went away in between is not an error.
            let _ = self.sender.send(make());
        }
    }

    /// A receiver of every event from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<RunEvent> {
        self.sender.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_reach_listeners_and_cost_nothing_without() {
        let events = RunEvents::default();
        events.emit(|| panic!("built although nobody listens"));
        let mut rx = events.subscribe();
        events.emit(|| RunEvent::Closed { connection: 3 });
        assert_eq!(rx.try_recv().ok(), Some(RunEvent::Closed { connection: 3 }));
    }
}
