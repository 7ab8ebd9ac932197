//! Faults: what a rule does to traffic, as pure plan rewriters that never touch a socket or a clock.
//!
//! This is the one fault engine. A fault acts on a payload stream with offsets — a TCP direction,
//! an HTTP/1 message, an HTTP/2 stream — described by a [`Scope`]; protocol sessions only map
//! their framing to such streams and back to raw offsets, they never implement a fault themselves.
//!
//! Adding a fault means one file here, one variant of [`Fault`], one arm in each `match` below
//! (the compiler lists them), unit tests in the file, a scenario in `scenarios/` and an integration
//! test.

pub mod bandwidth;
pub mod chain;
pub mod cut;
pub mod drop_response;
pub mod goaway;
pub mod grpc_status;
pub mod latency;
pub mod plan;
pub mod refuse;
pub mod reset;
pub mod reset_peer;
pub mod respond;
pub mod rst_stream;
pub mod scope;
pub mod slicer;
pub mod slow_close;
pub mod stall;
pub mod terminate;
pub mod timeout;
pub mod tls_alert;
pub mod truncate;

use std::time::Duration;

use rand_chacha::ChaCha8Rng;
use serde::Deserialize;
use tokio::time::Instant;

pub use chain::FaultChain;
use plan::{EndHow, Mark, RuleId, Step};
pub use scope::{MessageScope, Scope, Unresolved};

/// A fault whose behaviour depends on the bytes of one direction. It sees every chunk of that
/// direction, in order, and rewrites the plan for it.
pub trait StreamFault: Send + std::fmt::Debug {
    /// Rewrites `steps` for a chunk that arrived at `arrival`. Must be deterministic given its
    /// inputs and its own seeded state.
    fn apply(&mut self, steps: Vec<Step>, arrival: Instant) -> Vec<Step>;

    /// The source of the stream ended (EOF) at `at`: rewrites the plan for the end, which the
    /// pump carries out before it passes the end on (a delayed close, a reset the end
    /// triggers). Most faults leave it as it is.
    fn at_end(&mut self, steps: Vec<Step>, at: Instant) -> Vec<Step> {
        let _ = at;
        steps
    }

    /// The payload bytes counted so far toward a limit (a cut's count): the state an updated
    /// rule's new instance takes over (see [`resume_from`](Self::resume_from)). `None` for faults
    /// that count nothing.
    fn counted(&self) -> Option<u64> {
        None
    }

    /// Starts from `counted` bytes already counted by the instance this one replaces (the same
    /// rule with new values, e.g. a Toxiproxy `limit_data` toxic updated through the API, which
    /// keeps its count as Toxiproxy's does). Faults that count nothing ignore it.
    fn resume_from(&mut self, counted: u64) {
        let _ = counted;
    }

    /// How much the pump may read now, given what this fault already planned: a fault that
    /// paces the stream keeps what is read ahead of the link small, so a rule change reaches
    /// the bytes still to come instead of finding them queued on the old schedule.
    fn read_ahead(&self, now: Instant) -> ReadAhead {
        let _ = now;
        ReadAhead::Any
    }

    /// How many planned bytes the pump may hold while they wait for their instant, when this
    /// fault needs more than the pump's own high-water mark; `None`: that mark.
    fn queue_limit(&self) -> Option<usize> {
        None
    }
}

/// What a fault lets the pump read ahead of the bytes it already planned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadAhead {
    /// As much as the pump likes (up to its high-water mark).
    Any,
    /// At most this many bytes now.
    UpTo(usize),
    /// Nothing before this instant.
    Wait(Instant),
}

impl ReadAhead {
    /// The stricter of two allowances: a wait beats any amount, the later wait and the smaller
    /// amount win.
    pub fn and(self, other: ReadAhead) -> ReadAhead {
        use ReadAhead::{Any, UpTo, Wait};
        match (self, other) {
            (Wait(a), Wait(b)) => Wait(a.max(b)),
            (Wait(a), _) | (_, Wait(a)) => Wait(a),
            (UpTo(a), UpTo(b)) => UpTo(a.min(b)),
            (UpTo(a), Any) | (Any, UpTo(a)) => UpTo(a),
            (Any, Any) => Any,
        }
    }
}

/// What a rule does, written `fault.NAME = { … }` in a scenario (externally tagged, so a TOML
/// error always points at the right table).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    /// Abort with RST after bytes or time.
    Reset(reset::Reset),
    /// Close with FIN after bytes.
    Truncate(truncate::Truncate),
    /// End a connection after a time.
    Terminate(terminate::Terminate),
    /// Delay each chunk.
    Latency(latency::Latency),
    /// Pace to a rate.
    Bandwidth(bandwidth::Bandwidth),
    /// Stop relaying for a while or forever.
    Stall(stall::Stall),
    /// Reset the client without connecting upstream.
    Refuse(refuse::Refuse),
    /// Answer an HTTP request from faultline instead of forwarding it.
    Respond(respond::Respond),
    /// Forward an HTTP request, then reset the client before any response byte.
    DropResponse(drop_response::DropResponse),
    /// End one HTTP/2 stream with RST_STREAM, after bytes or time; the connection lives on.
    RstStream(rst_stream::RstStream),
    /// Send an HTTP/2 GOAWAY to the client, gracefully or not.
    Goaway(goaway::Goaway),
    /// Answer a gRPC call with a trailers-only status from faultline.
    GrpcStatus(grpc_status::GrpcStatus),
    /// Fail an intercepted TLS leg at the record layer after bytes: a corrupt record or an alert.
    TlsAlert(tls_alert::TlsAlert),
    /// Hold back the close of a direction (Toxiproxy's `slow_close`).
    SlowClose(slow_close::SlowClose),
    /// Drop a direction's bytes, and close the connection after a time (Toxiproxy's `timeout`).
    Timeout(timeout::Timeout),
    /// Reset a while after a direction's first data, dropping it (Toxiproxy's `reset_peer`).
    ResetPeer(reset_peer::ResetPeer),
    /// Cut chunks into small pieces sent apart (Toxiproxy's `slicer`).
    Slicer(slicer::Slicer),
}

/// A fault parameter that is well-typed but meaningless (e.g. both `after` and `at`); the loader
/// turns it into a `FILE:LINE:COL` error naming the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultError {
    /// The parameter at fault, relative to the fault's table.
    pub key: &'static str,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl FaultError {
    fn new(key: &'static str, message: impl Into<String>) -> Self {
        FaultError {
            key,
            message: message.into(),
        }
    }
}

/// A fault that acts on the connection as a whole rather than on the bytes of one direction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectionFault {
    /// Reset the client leg at once; never connect upstream.
    Refuse { mark: Mark },
    /// End the connection this long after it opened.
    EndAfter {
        after: Duration,
        how: EndHow,
        mark: Mark,
    },
}

impl Fault {
    /// The name used in scenario files (`fault.NAME`).
    pub fn name(&self) -> &'static str {
        match self {
            Fault::Reset(_) => "reset",
            Fault::Truncate(_) => "truncate",
            Fault::Terminate(_) => "terminate",
            Fault::Latency(_) => "latency",
            Fault::Bandwidth(_) => "bandwidth",
            Fault::Stall(_) => "stall",
            Fault::Refuse(_) => "refuse",
            Fault::Respond(_) => "respond",
            Fault::DropResponse(_) => "drop_response",
            Fault::RstStream(_) => "rst_stream",
            Fault::Goaway(_) => "goaway",
            Fault::GrpcStatus(_) => "grpc_status",
            Fault::TlsAlert(_) => "tls_alert",
            Fault::SlowClose(_) => "slow_close",
            Fault::Timeout(_) => "timeout",
            Fault::ResetPeer(_) => "reset_peer",
            Fault::Slicer(_) => "slicer",
        }
    }

    /// Checks what serde cannot: combinations of parameters.
    pub fn validate(&self) -> Result<(), FaultError> {
        match self {
            Fault::Reset(reset) => reset.validate(),
            Fault::Respond(respond) => respond.validate(),
            Fault::RstStream(r) => r.validate(),
            Fault::Goaway(g) => g.validate(),
            Fault::Slicer(s) => s.validate(),
            Fault::SlowClose(_) | Fault::Timeout(_) | Fault::ResetPeer(_) => Ok(()),
            Fault::GrpcStatus(_)
            | Fault::DropResponse(_)
            | Fault::Truncate(_)
            | Fault::Terminate(_)
            | Fault::Latency(_)
            | Fault::Bandwidth(_)
            | Fault::Stall(_)
            | Fault::Refuse(_)
            | Fault::TlsAlert(_) => Ok(()),
        }
    }

    /// The connection-wide action of this fault for `rule`, if it is one.
    pub fn connection_fault(&self, rule: &RuleId) -> Option<ConnectionFault> {
        match self {
            Fault::Refuse(_) => Some(ConnectionFault::Refuse {
                mark: Mark::rule(rule, "refused: client leg reset before connecting upstream"),
            }),
            Fault::Terminate(t) => Some(ConnectionFault::EndAfter {
                after: t.after.0,
                how: t.how.into(),
                mark: Mark::rule(
                    rule,
                    format!(
                        "terminated with {} after {:?}",
                        match t.how {
                            terminate::TerminateHow::Rst => "RST",
                            terminate::TerminateHow::Fin => "FIN",
                        },
                        t.after.0
                    ),
                ),
            }),
            Fault::Reset(reset::Reset { at: Some(at), .. }) => Some(ConnectionFault::EndAfter {
                after: at.0,
                how: EndHow::Reset,
                mark: Mark::rule(
                    rule,
                    format!("reset at {:?} after the connection opened", at.0),
                ),
            }),
            Fault::Timeout(timeout::Timeout { after: Some(after) }) => {
                Some(ConnectionFault::EndAfter {
                    after: after.0,
                    how: EndHow::Finish,
                    mark: Mark::rule(
                        rule,
                        format!(
                            "timeout: closed with FIN {:?} after it came in force",
                            after.0
                        ),
                    )
                    .once_per_connection(),
                })
            }
            Fault::Reset(_)
            | Fault::Truncate(_)
            | Fault::Latency(_)
            | Fault::Bandwidth(_)
            | Fault::Stall(_)
            | Fault::Respond(_)
            | Fault::DropResponse(_)
            | Fault::RstStream(_)
            | Fault::Goaway(_)
            | Fault::GrpcStatus(_)
            | Fault::TlsAlert(_) => None,
            Fault::SlowClose(_) | Fault::Timeout(_) | Fault::ResetPeer(_) | Fault::Slicer(_) => {
                None
            }
        }
    }

    /// Whether the fault acts on a request/response pair as a whole (an answer in its place, a
    /// dropped response), so `direction` means nothing for it.
    pub fn is_http_only(&self) -> bool {
        matches!(
            self,
            Fault::Respond(_) | Fault::DropResponse(_) | Fault::GrpcStatus(_)
        )
    }

    /// Whether the fault only exists in HTTP/2 (streams, GOAWAY, gRPC status): a protocol
    /// session arms it even without HTTP keys, and it never fires on HTTP/1 or plain TCP.
    pub fn is_h2_only(&self) -> bool {
        matches!(
            self,
            Fault::RstStream(_) | Fault::Goaway(_) | Fault::GrpcStatus(_)
        )
    }

    /// Whether a parameter is a percentage of a body, which only an HTTP rule can resolve.
    pub fn uses_percentage(&self) -> bool {
        let percent =
            |a: Option<crate::units::Amount>| matches!(a, Some(crate::units::Amount::Percent(_)));
        match self {
            Fault::Reset(r) => percent(r.after),
            Fault::Truncate(t) => percent(Some(t.after)),
            Fault::Stall(s) => percent(s.after),
            Fault::RstStream(r) => percent(r.after),
            _ => false,
        }
    }

    /// Whether the fault acts on the connection as a whole (so `direction` is meaningless).
    /// `timeout` has a connection-wide timer but drops the bytes of its direction.
    pub fn is_connection_wide(&self) -> bool {
        self.connection_fault(&RuleId::new(0, "")).is_some() && !matches!(self, Fault::Timeout(_))
    }

    /// A fresh instance of this fault for `rule` acting on `scope`, or
    /// `Ok(None)` for faults that are not byte-stream rewriters (connection-wide faults, and the
    /// HTTP answers the protocol session handles). `rng` is the rule's own seeded stream for this
    /// scope. Fails when a percentage cannot be resolved in the scope.
    pub fn stream_fault(
        &self,
        rule: &RuleId,
        scope: &Scope,
        rng: ChaCha8Rng,
    ) -> Result<Option<Box<dyn StreamFault>>, Unresolved> {
        let fault: Box<dyn StreamFault> = match self {
            Fault::Reset(reset::Reset {
                after: Some(after), ..
            }) => Box::new(cut::CutAfter::new(
                scope.resolve(*after)?,
                EndHow::Reset,
                rule,
                scope,
            )),
            Fault::Truncate(t) => Box::new(cut::CutAfter::new(
                scope.resolve(t.after)?,
                EndHow::Finish,
                rule,
                scope,
            )),
            Fault::Latency(l) => Box::new(latency::Delaying::new(l, rule, scope, rng)),
            Fault::TlsAlert(t) => Box::new(tls_alert::AlertAfter::new(t, rule, scope)),
            Fault::Bandwidth(b) => Box::new(bandwidth::Pacing::new(b, rule, scope)),
            Fault::Stall(s) => Box::new(stall::Stalling::new(s, rule, scope)?),
            Fault::RstStream(rst_stream::RstStream {
                after: Some(after),
                code,
                ..
            }) => Box::new(cut::CutAfter::new(
                scope.resolve(*after)?,
                EndHow::ResetStream { code: code.0 .0 },
                rule,
                scope,
            )),
            Fault::SlowClose(s) => Box::new(slow_close::ClosingSlowly::new(s, rule, scope)),
            Fault::Timeout(_) => Box::new(timeout::Dropping::new(rule, scope)),
            Fault::ResetPeer(r) => Box::new(reset_peer::ResettingPeer::new(r, rule, scope)),
            Fault::Slicer(s) => Box::new(slicer::Slicing::new(s, rule, scope, rng)),
            Fault::Reset(_)
            | Fault::Terminate(_)
            | Fault::Refuse(_)
            | Fault::Respond(_)
            | Fault::DropResponse(_)
            | Fault::RstStream(_)
            | Fault::Goaway(_)
            | Fault::GrpcStatus(_) => return Ok(None),
        };
        Ok(Some(fault))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::direction::Direction;
    use crate::seed::{stream, Purpose};
    use crate::units::{Amount, Span};

    #[test]
    fn faults_compose_in_rule_order() {
        let t0 = Instant::now();
        let latency = Fault::Latency(latency::Latency {
            delay: Span(Duration::from_millis(100)),
            jitter: None,
        });
        let reset = Fault::Reset(reset::Reset {
            after: Some(Amount::Bytes(50)),
            at: None,
        });
        let rng = || stream(0, Purpose::FaultTiming, &[]);
        let scope = Scope::direction(Direction::ClientToUpstream);
        let instance = |fault: &Fault, key| {
            fault
                .stream_fault(&RuleId::new(key, "r"), &scope, rng())
                .expect("bytes resolve")
                .expect("a stream fault")
        };
        let mut planner =
            FaultChain::for_direction(vec![(0, instance(&latency, 0)), (1, instance(&reset, 1))]);
        let plan = planner.plan(80, t0);
        match plan.as_slice() {
            [Step::Send {
                len: 50,
                not_before,
                ..
            }, Step::End {
                how: EndHow::Reset,
                mark,
            }] => {
                assert_eq!(*not_before, t0 + Duration::from_millis(100));
                assert_eq!(mark.rule.as_ref().map(|r| r.key), Some(1));
            }
            other => panic!("unexpected plan {other:?}"),
        }
    }

    #[test]
    fn reset_needs_exactly_one_trigger() {
        let both = Fault::Reset(reset::Reset {
            after: Some(Amount::Bytes(1)),
            at: Some(Span(Duration::from_secs(1))),
        });
        assert_eq!(both.validate().map_err(|e| e.key), Err("at"));
        let neither = Fault::Reset(reset::Reset {
            after: None,
            at: None,
        });
        assert!(neither.validate().is_err());
    }
}
