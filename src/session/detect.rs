//! Which protocol a connection speaks, decided once from the client's first bytes: the HTTP/2
//! client preface, an HTTP/1 request line, or neither. Bytes the upstream sends before the
//! client spoke (an HTTP/2 server's SETTINGS) are relayed at once and kept, so the chosen
//! session can read them afterwards.

use tokio::time::Instant;
use tracing::{debug, warn};

use super::{H2Session, Http1Session, RunView};
use crate::direction::Direction;
use crate::http::{looks_like_http1_request, Detection};
use crate::scenario::schema::Protocol;
use crate::scenario::ConnectionFacts;

/// Upstream bytes kept while waiting for the client (an HTTP/2 server's first frames fit in
/// a few hundred bytes); a server that says more before the client spoke is not HTTP.
const EARLY_UPSTREAM_LIMIT: usize = 64 * 1024;

/// What a connection's session is set up from.
#[derive(Debug, Clone)]
pub struct Setup {
    /// The scenario's `protocol`.
    pub protocol: Protocol,
    /// Forward-proxy mode (always HTTP/1).
    pub forward: bool,
    /// The run's seed.
    pub seed: u64,
    /// The connection's ordinal and SNI.
    pub facts: ConnectionFacts,
    /// When the connection opened.
    pub opened: Instant,
}

/// The session before the client's first bytes.
#[derive(Debug)]
pub struct Detecting {
    setup: Setup,
    early_upstream: Vec<u8>,
    overflowed: bool,
}

/// What the session does with a chunk while detecting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Hold the client's bytes: too few to tell.
    Wait,
    /// Relay (upstream bytes before the client spoke).
    Relay,
    /// The protocol is known.
    Become(Chosen),
}

/// The protocol a connection turned out to speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chosen {
    /// HTTP/1.x.
    Http1,
    /// HTTP/2 with prior knowledge.
    H2,
    /// Something else: relayed as bytes.
    Raw,
}

impl Detecting {
    /// Waiting for the first bytes of a connection set up as `setup`.
    pub fn new(setup: Setup) -> Self {
        Detecting {
            setup,
            early_upstream: Vec::new(),
            overflowed: false,
        }
    }

    /// Looks at a chunk of `direction` (client chunks start with what an earlier `Wait` held).
    pub fn decide(&mut self, direction: Direction, chunk: &[u8]) -> Decision {
        if direction == Direction::UpstreamToClient {
            if self.early_upstream.len() + chunk.len() <= EARLY_UPSTREAM_LIMIT {
                self.early_upstream.extend_from_slice(chunk);
            } else {
                self.overflowed = true;
            }
            return Decision::Relay;
        }
        match looks_like_http1_request(chunk) {
            Detection::NeedMore => Decision::Wait,
            Detection::Http2 => Decision::Become(Chosen::H2),
            Detection::Http1 => Decision::Become(Chosen::Http1),
            Detection::NotHttp => {
                debug!("the client does not speak HTTP; relaying bytes as they are");
                Decision::Become(Chosen::Raw)
            }
        }
    }

    /// The HTTP/1 session, having read what the upstream said before the client spoke.
    pub fn http1(&mut self, run: RunView<'_>, arrival: Instant) -> Http1Session {
        let mut session = Http1Session::new(false, self.setup.seed, self.setup.facts.clone());
        if !self.early_upstream.is_empty() {
            let early = std::mem::take(&mut self.early_upstream);
            // Already relayed: only the session's view of the stream advances.
            let _ = session.plan(Direction::UpstreamToClient, &early, arrival, run);
        }
        session
    }

    /// The HTTP/2 session, or `None` when too much came from the upstream first to follow it.
    pub fn h2(&mut self) -> Option<H2Session> {
        if self.overflowed {
            warn!("the upstream sent more than 64 KiB before the HTTP/2 client spoke; relaying the connection as raw bytes");
            return None;
        }
        Some(H2Session::new(
            self.setup.seed,
            self.setup.facts.clone(),
            self.setup.opened,
            std::mem::take(&mut self.early_upstream),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::h2::frame::PREFACE;
    use crate::session::RunCounters;

    fn detecting() -> Detecting {
        Detecting::new(Setup {
            protocol: Protocol::Auto,
            forward: false,
            seed: 1,
            facts: ConnectionFacts::ordinal(1),
            opened: Instant::now(),
        })
    }

    #[test]
    fn the_client_first_bytes_decide_and_too_few_wait() {
        let mut d = detecting();
        assert_eq!(
            d.decide(Direction::ClientToUpstream, b"PRI * HT"),
            Decision::Wait
        );
        assert_eq!(
            d.decide(Direction::ClientToUpstream, PREFACE),
            Decision::Become(Chosen::H2)
        );
        assert_eq!(d.decide(Direction::ClientToUpstream, b"GE"), Decision::Wait);
        assert_eq!(
            d.decide(Direction::ClientToUpstream, b"GET / HTTP/1.1\r\n"),
            Decision::Become(Chosen::Http1)
        );
        assert_eq!(
            d.decide(Direction::ClientToUpstream, b"\x16\x03\x01\x02\x00"),
            Decision::Become(Chosen::Raw)
        );
    }

    /// A server that speaks first (an HTTP/2 server's SETTINGS) is relayed at once; the session
    /// chosen later reads those bytes before anything else.
    #[test]
    fn upstream_bytes_before_the_client_are_relayed_and_kept_for_the_session() {
        let mut d = detecting();
        let settings = [0u8, 0, 0, 4, 0, 0, 0, 0, 0];
        assert_eq!(
            d.decide(Direction::UpstreamToClient, &settings),
            Decision::Relay
        );
        assert_eq!(
            d.decide(Direction::ClientToUpstream, PREFACE),
            Decision::Become(Chosen::H2)
        );
        assert!(d.h2().is_some());
        assert!(d.early_upstream.is_empty(), "handed to the session");
    }

    #[test]
    fn more_than_64_kib_before_the_client_spoke_is_not_followed_as_http2() {
        let mut d = detecting();
        let chunk = vec![0u8; 40 * 1024];
        assert_eq!(
            d.decide(Direction::UpstreamToClient, &chunk),
            Decision::Relay
        );
        assert_eq!(
            d.decide(Direction::UpstreamToClient, &chunk),
            Decision::Relay
        );
        assert!(d.h2().is_none());
    }

    #[test]
    fn the_http1_session_reads_what_the_upstream_said_first() {
        let mut d = detecting();
        let banner = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(
            d.decide(Direction::UpstreamToClient, banner),
            Decision::Relay
        );
        let scenario = std::sync::Arc::new(
            crate::scenario::Scenario::from_toml("", "t.toml", "t").expect("valid"),
        );
        let counters = RunCounters::new();
        let run = RunView {
            scenario: &scenario,
            counters: &counters,
        };
        let _session = d.http1(run, Instant::now());
        assert!(d.early_upstream.is_empty(), "read by the HTTP/1 session");
    }
}
