//! Protocol sessions: the layer between a protocol's framing and the one fault engine.
//!
//! A session follows one connection's messages (HTTP/1 messages, HTTP/2 streams), decides
//! which rules act on each message ([`arming`]), builds each message's fault chain
//! ([`message`]), and maps the message's head, framing and payload back to raw byte ranges of
//! the chunk the pump read ([`offsets`]). It owns no fault logic: cuts, stalls and delays are
//! the `fault` module's, the same code that acts on plain TCP directions. Everything here is
//! pure (no I/O, no clock: the pump passes the arrival instant in), so it is unit-tested and
//! fuzzed without sockets.

pub mod arming;
pub mod conformance;
pub mod detect;
pub mod exchanges;
pub mod h2;
pub mod h2_call;
pub mod h2_conformance;
pub mod h2_cut;
pub mod h2_hold;
pub mod http1;
pub mod message;
pub mod offsets;

use tokio::time::Instant;

use crate::direction::Direction;
use crate::fault::plan::Step;
use crate::scenario::schema::Protocol;
use crate::scenario::Scenario;

pub use arming::RunCounters;
pub use h2::H2Session;
pub use http1::{Http1Session, RunView};

/// A session's plan for one chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionPlan {
    /// What to do with the chunk's bytes, front to back.
    pub steps: Vec<Step>,
    /// Bytes at the end of the chunk the session holds back until it can decide on them (an
    /// incomplete head): the pump keeps them and passes them again, first, with the next chunk.
    pub deferred: usize,
}

impl SessionPlan {
    /// Relay all `len` bytes unchanged as they arrived.
    pub fn relay(len: usize, arrival: Instant) -> SessionPlan {
        SessionPlan {
            steps: vec![Step::send(len, arrival)],
            deferred: 0,
        }
    }
}

/// The protocol session of one connection, chosen once from the client's first bytes (and
/// the scenario's `protocol`): HTTP/1, HTTP/2, or none.
#[derive(Debug)]
pub enum Session {
    /// Waiting for the client's first bytes.
    Detecting(detect::Detecting),
    /// HTTP/1.x.
    Http1(Box<Http1Session>),
    /// HTTP/2 (prior knowledge, TLS ALPN `h2`, or after an accepted `Upgrade: h2c`).
    H2(Box<H2Session>),
    /// Switching from HTTP/1.1 to HTTP/2 (`Upgrade: h2c`): one direction already speaks HTTP/2,
    /// the other has not reached the switch yet.
    Upgrading(Box<Upgrading>),
    /// Not a protocol faultline follows: the bytes pass as they are.
    Raw,
}

impl Session {
    /// The session for a connection of `protocol`: forward proxies and strict HTTP speak
    /// HTTP/1 from the start, `h2` HTTP/2, `auto` waits for the first bytes.
    pub fn new(setup: detect::Setup) -> Session {
        if setup.forward || setup.protocol == Protocol::Http {
            return Session::Http1(Box::new(Http1Session::new(
                setup.protocol == Protocol::Http,
                setup.seed,
                setup.facts,
            )));
        }
        if setup.protocol == Protocol::H2 {
            return Session::H2(Box::new(H2Session::new(
                setup.seed,
                setup.facts,
                setup.opened,
                Vec::new(),
            )));
        }
        Session::Detecting(detect::Detecting::new(setup))
    }

    /// Whether the session still looks at `direction`.
    pub fn is_active(&self, direction: Direction) -> bool {
        match self {
            Session::Detecting(_) => true,
            Session::Http1(s) => s.is_active(direction),
            Session::H2(s) => s.is_active(direction),
            Session::Upgrading(u) => u.h2.is_active(direction),
            Session::Raw => false,
        }
    }

    /// Stops following the protocol (a CONNECT tunnel).
    pub fn deactivate(&mut self) {
        match self {
            Session::Http1(s) => s.deactivate(),
            _ => *self = Session::Raw,
        }
    }

    /// Forward proxy: the origin this connection goes to.
    pub fn set_route(&mut self, authority: String) {
        if let Session::Http1(s) = self {
            s.set_route(authority);
        }
    }

    /// Forward proxy: the origin the answer taken last hands the connection to, once.
    pub fn take_reroute(&mut self) -> Option<String> {
        match self {
            Session::Http1(s) => s.take_reroute(),
            _ => None,
        }
    }

    /// Forward proxy: the connection continues to `authority` over a new upstream leg.
    pub fn reroute(&mut self, authority: String) {
        if let Session::Http1(s) = self {
            s.reroute(authority);
        }
    }

    /// The HTTP/1 answer faultline owes the client next, if its turn has come.
    pub fn take_ready_answer(&mut self) -> Option<(Vec<u8>, crate::fault::plan::Mark)> {
        match self {
            Session::Http1(s) => s.take_ready_answer(),
            _ => None,
        }
    }

    /// After an HTTP/1 fallback to raw TCP: the request bytes held back for a rule, relayed
    /// first by the request side (which they unpark), once.
    pub fn take_release(&mut self) -> Option<Vec<u8>> {
        match self {
            Session::Http1(s) => s.take_release(),
            _ => None,
        }
    }

    /// Whether frames wait for `direction`'s receiver (its pump should plan, even with no new
    /// bytes).
    pub fn wants_flush(&self, direction: Direction) -> bool {
        match self {
            Session::H2(s) => s.wants_flush(direction),
            Session::Http1(s) => s.wants_flush(direction),
            Session::Upgrading(u) => {
                u.http1.switched_to_h2(direction) && u.h2.wants_flush(direction)
            }
            _ => false,
        }
    }

    /// The next instant a session timer is due.
    pub fn next_deadline(&self, scenario: &Scenario) -> Option<Instant> {
        match self {
            Session::H2(s) => s.next_deadline(scenario),
            Session::Upgrading(u) => u.h2.next_deadline(scenario),
            _ => None,
        }
    }

    /// What the session still owes the receiver of `direction` once its sender closed (HTTP/2
    /// frames held by a delay, the outbox), as steps of an empty chunk.
    pub fn drain(&mut self, direction: Direction, now: Instant) -> Option<SessionPlan> {
        match self {
            Session::H2(s) => Some(s.drain(direction, now)),
            Session::Upgrading(u) if u.http1.switched_to_h2(direction) => {
                Some(u.h2.drain(direction, now))
            }
            _ => None,
        }
    }

    /// Fires the timers due at `now`.
    pub fn tick(&mut self, now: Instant, scenario: &Scenario) {
        match self {
            Session::H2(s) => s.tick(now, scenario),
            Session::Upgrading(u) => u.h2.tick(now, scenario),
            _ => {}
        }
    }

    /// Plans a chunk of `direction` (starting with what the previous plan held back).
    pub fn plan(
        &mut self,
        direction: Direction,
        chunk: &[u8],
        arrival: Instant,
        run: RunView<'_>,
    ) -> SessionPlan {
        if let Session::Detecting(detecting) = self {
            match detecting.decide(direction, chunk) {
                detect::Decision::Wait => {
                    return SessionPlan {
                        steps: Vec::new(),
                        deferred: chunk.len(),
                    }
                }
                detect::Decision::Relay => return SessionPlan::relay(chunk.len(), arrival),
                detect::Decision::Become(chosen) => {
                    let mut session = match chosen {
                        detect::Chosen::Http1 => {
                            Session::Http1(Box::new(detecting.http1(run, arrival)))
                        }
                        detect::Chosen::H2 => match detecting.h2() {
                            Some(h2) => Session::H2(Box::new(h2)),
                            None => Session::Raw,
                        },
                        detect::Chosen::Raw => Session::Raw,
                    };
                    std::mem::swap(self, &mut session);
                }
            }
        }
        let plan = match self {
            Session::Detecting(_) | Session::Raw => SessionPlan::relay(chunk.len(), arrival),
            Session::H2(s) => s.plan(direction, chunk, arrival, run),
            Session::Http1(s) => {
                let plan = s.plan(direction, chunk, arrival, run);
                if !s.switched_to_h2(direction) {
                    return plan;
                }
                let Some(h2) = s.h2c_session(arrival) else {
                    return plan;
                };
                let Session::Http1(http1) = std::mem::replace(self, Session::Raw) else {
                    return plan;
                };
                let mut upgrading = Box::new(Upgrading { http1: *http1, h2 });
                let rest = &chunk[chunk.len() - plan.deferred..];
                let after = upgrading.h2.plan(direction, rest, arrival, run);
                *self = Session::Upgrading(upgrading);
                return joined(plan, after);
            }
            Session::Upgrading(u) => {
                if u.http1.switched_to_h2(direction) {
                    u.h2.plan(direction, chunk, arrival, run)
                } else {
                    let plan = u.http1.plan(direction, chunk, arrival, run);
                    if u.http1.switched_to_h2(direction) {
                        let rest = &chunk[chunk.len() - plan.deferred..];
                        let after = u.h2.plan(direction, rest, arrival, run);
                        joined(plan, after)
                    } else {
                        plan
                    }
                }
            }
        };
        // Both directions speak HTTP/2 now: the HTTP/1 session has nothing left to do.
        if let Session::Upgrading(u) = self {
            if Direction::ALL.iter().all(|d| u.http1.switched_to_h2(*d)) {
                let Session::Upgrading(u) = std::mem::replace(self, Session::Raw) else {
                    return plan;
                };
                *self = Session::H2(Box::new(u.h2));
            }
        }
        plan
    }
}

/// A connection switching from HTTP/1.1 to HTTP/2 (`Upgrade: h2c`).
#[derive(Debug)]
pub struct Upgrading {
    http1: Http1Session,
    h2: H2Session,
}

/// The plan of the HTTP/1 part of a chunk followed by the HTTP/2 plan of its rest.
fn joined(mut first: SessionPlan, then: SessionPlan) -> SessionPlan {
    if first.steps.iter().any(Step::is_terminal) {
        return first;
    }
    first.steps.extend(then.steps);
    first.deferred = then.deferred;
    first
}
#[cfg(test)]
mod h2_hold_tests;
#[cfg(test)]
mod h2_tests;
