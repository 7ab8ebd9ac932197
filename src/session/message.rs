//! Per-message state: the fault chain the armed rules build for one message, and the seeded
//! random streams those chains draw from.

use std::collections::HashMap;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tracing::warn;

use crate::direction::Direction;
use crate::fault::{FaultChain, Scope};
use crate::scenario::Scenario;
use crate::seed::{self, Purpose};

/// The random streams of one connection's message faults: one per (rule, direction), keyed by
/// (seed, connection, rule, direction) like every other draw, so adding a rule never changes
/// another rule's decisions. Each message a rule arms on draws its own sub-seed from it.
#[derive(Debug)]
pub struct RuleStreams {
    seed: u64,
    connection: u64,
    streams: HashMap<(u64, Direction), ChaCha8Rng>,
}

impl RuleStreams {
    /// The streams of connection number `connection` in a run seeded with `seed`.
    pub fn new(seed: u64, connection: u64) -> Self {
        RuleStreams {
            seed,
            connection,
            streams: HashMap::new(),
        }
    }

    /// A fresh stream for the next message the rule keyed `rule` (its [`Rule::key`]) arms on
    /// in `direction`.
    ///
    /// [`Rule::key`]: crate::scenario::Rule::key
    pub fn next(&mut self, rule: u64, direction: Direction) -> ChaCha8Rng {
        let (seed, connection) = (self.seed, self.connection);
        let parent = self.streams.entry((rule, direction)).or_insert_with(|| {
            seed::stream(
                seed,
                Purpose::FaultTiming,
                &[connection, rule, direction.index() as u64],
            )
        });
        ChaCha8Rng::seed_from_u64(parent.gen())
    }
}

/// What faultline does to the message currently crossing in one direction.
#[derive(Debug, Default)]
pub struct MessageFaults {
    /// The faults of the rules armed on this message, in rule order; `None` when none applies.
    pub chain: Option<FaultChain>,
    /// The message is consumed, never relayed (faultline answers the request itself).
    pub swallow: bool,
}

impl MessageFaults {
    /// The chain for the rules keyed `rules` acting on the message described by `scope`. A rule
    /// whose amount cannot be resolved for this message (a percentage of a body without
    /// Content-Length) is skipped with a warning rather than guessed.
    pub fn armed(
        scenario: &Scenario,
        rules: &[u64],
        scope: &Scope,
        streams: &mut RuleStreams,
    ) -> MessageFaults {
        let mut faults = Vec::new();
        for &key in rules {
            let Some((_, rule)) = scenario.rule_by_key(key) else {
                continue;
            };
            let rng = streams.next(rule.draws, scope.direction);
            match rule.fault.stream_fault(&rule.id, scope, rng) {
                Ok(Some(fault)) => faults.push((key, fault)),
                Ok(None) => {}
                Err(unresolved) => {
                    let what = scope
                        .message
                        .as_ref()
                        .map_or("this message", |m| m.body.as_str());
                    warn!(
                        rule = %rule.name,
                        "{}: {what} has no Content-Length, so the share cannot be known; rule skipped",
                        unresolved.0
                    );
                }
            }
        }
        MessageFaults {
            chain: (!faults.is_empty()).then(|| FaultChain::for_message(faults)),
            swallow: false,
        }
    }

    /// A message faultline consumes without relaying.
    pub fn swallowed() -> MessageFaults {
        MessageFaults {
            chain: None,
            swallow: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::RngCore;

    #[test]
    fn a_rules_streams_do_not_depend_on_other_rules() {
        let mut alone = RuleStreams::new(7, 3);
        let mut crowded = RuleStreams::new(7, 3);
        let _ = crowded.next(0, Direction::ClientToUpstream).next_u64();
        let _ = crowded.next(2, Direction::UpstreamToClient).next_u64();
        let a: Vec<u64> = (0..3)
            .map(|_| alone.next(1, Direction::ClientToUpstream).next_u64())
            .collect();
        let b: Vec<u64> = (0..3)
            .map(|_| crowded.next(1, Direction::ClientToUpstream).next_u64())
            .collect();
        assert_eq!(a, b);
        assert_ne!(a[0], a[1], "each message gets its own stream");
    }
}
