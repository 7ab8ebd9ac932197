//! The faults acting on one payload stream, applied in rule order: one chain per direction of a
//! connection (TCP faults) and one per message that HTTP rules armed.

use tokio::time::Instant;

use super::plan::{all_payload, Step};
use super::{ReadAhead, StreamFault};

/// Faults applied in order (the scenario's rule order) to every plan of one payload stream,
/// each kept with the key of the rule that armed it.
#[derive(Debug, Default)]
pub struct FaultChain {
    faults: Vec<(u64, Box<dyn StreamFault>)>,
    /// A whole-direction chain counts every byte, whatever the protocol session said about it.
    counts_every_byte: bool,
}

impl FaultChain {
    /// The chain of a whole direction: its faults count every byte relayed.
    pub fn for_direction(faults: Vec<(u64, Box<dyn StreamFault>)>) -> Self {
        FaultChain {
            faults,
            counts_every_byte: true,
        }
    }

    /// The chain of one message: its faults count the message's payload bytes only.
    pub fn for_message(faults: Vec<(u64, Box<dyn StreamFault>)>) -> Self {
        FaultChain {
            faults,
            counts_every_byte: false,
        }
    }

    /// No fault on this stream: plans pass unchanged.
    pub fn is_empty(&self) -> bool {
        self.faults.is_empty()
    }

    /// The rule set changed: the chain becomes the faults of the rules keyed `wanted`, in that
    /// order. A rule that was already in the chain keeps its instance (a cut keeps counting, a
    /// stall stays stalled); `make` builds the instance of a rule that is new here.
    pub fn rearm(&mut self, wanted: &[u64], make: impl FnMut(u64) -> Option<Box<dyn StreamFault>>) {
        self.rearm_replacing(wanted, |_| None, make);
    }

    /// [`rearm`](Self::rearm), where a rule new here that replaces one that was (`replaces(key)`
    /// names the old rule's key: the same rule with new values) starts from the old instance's
    /// count ([`StreamFault::resume_from`]).
    pub fn rearm_replacing(
        &mut self,
        wanted: &[u64],
        replaces: impl Fn(u64) -> Option<u64>,
        mut make: impl FnMut(u64) -> Option<Box<dyn StreamFault>>,
    ) {
        let mut old = std::mem::take(&mut self.faults);
        for &key in wanted {
            if let Some(at) = old.iter().position(|(k, _)| *k == key) {
                self.faults.push(old.swap_remove(at));
            } else if let Some(mut fault) = make(key) {
                let counted = replaces(key)
                    .and_then(|was| old.iter().find(|(k, _)| *k == was))
                    .and_then(|(_, previous)| previous.counted());
                if let Some(counted) = counted {
                    fault.resume_from(counted);
                }
                self.faults.push((key, fault));
            }
        }
    }

    /// The keys of the rules in the chain, in order: a chain whose keys changed lost or
    /// replaced a rule.
    pub fn keys(&self) -> Vec<u64> {
        self.faults.iter().map(|(key, _)| *key).collect()
    }

    /// The plan for a chunk of `len` payload bytes that arrived at `arrival`.
    pub fn plan(&mut self, len: usize, arrival: Instant) -> Vec<Step> {
        self.apply(vec![Step::send(len, arrival)], arrival)
    }

    /// The plan for the end of the stream (its source closed at `at`): what faults do before
    /// the end is passed on, in rule order; empty when none cares.
    pub fn finish(&mut self, at: Instant) -> Vec<Step> {
        let mut steps = Vec::new();
        for (_, fault) in &mut self.faults {
            steps = fault.at_end(steps, at);
        }
        steps
    }

    /// How much the pump may read now: the strictest of the faults' allowances.
    pub fn read_ahead(&self, now: Instant) -> ReadAhead {
        self.faults
            .iter()
            .fold(ReadAhead::Any, |ahead, (_, fault)| {
                ahead.and(fault.read_ahead(now))
            })
    }

    /// The deepest queue a fault of the chain asks for (see [`StreamFault::queue_limit`]).
    pub fn queue_limit(&self) -> Option<usize> {
        self.faults
            .iter()
            .filter_map(|(_, fault)| fault.queue_limit())
            .max()
    }

    /// Applies the chain's faults, in order, to a plan for a chunk that arrived at `arrival`.
    pub fn apply(&mut self, steps: Vec<Step>, arrival: Instant) -> Vec<Step> {
        if self.faults.is_empty() {
            return steps;
        }
        let mut steps = if self.counts_every_byte {
            all_payload(steps)
        } else {
            steps
        };
        for (_, fault) in &mut self.faults {
            steps = fault.apply(steps, arrival);
        }
        steps
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::direction::Direction;
    use crate::fault::plan::{sent_len, RuleId};
    use crate::fault::scope::Scope;
    use crate::fault::truncate::Truncate;
    use crate::fault::Fault;
    use crate::seed::{stream, Purpose};
    use crate::units::Amount;

    fn truncate(key: u64, after: u64) -> Box<dyn StreamFault> {
        Fault::Truncate(Truncate {
            after: Amount::Bytes(after),
        })
        .stream_fault(
            &RuleId::new(key, "t"),
            &Scope::direction(Direction::ClientToUpstream),
            stream(0, Purpose::FaultTiming, &[]),
        )
        .expect("resolves")
        .expect("a stream fault")
    }

    fn latency(key: u64, ms: u64) -> Box<dyn StreamFault> {
        use crate::fault::latency::Latency;
        use crate::units::Span;
        Fault::Latency(Latency {
            delay: Span(std::time::Duration::from_millis(ms)),
            jitter: None,
        })
        .stream_fault(
            &RuleId::new(key, &format!("lat{ms}")),
            &Scope::direction(Direction::UpstreamToClient),
            stream(0, Purpose::FaultTiming, &[]),
        )
        .expect("resolves")
        .expect("a stream fault")
    }

    /// A trial's reply delayed by both a 100 ms and a 300 ms rule was marked by the first
    /// alone: the second never showed in the capture and never counted as fired.
    /// A latency is a delay line: it asks the pump for a queue deep enough to carry a bulk
    /// transfer (Toxiproxy's 1024 chunks), the other faults keep the pump's own mark.
    #[test]
    fn a_latency_asks_for_a_deep_queue() {
        use crate::fault::latency::LATENCY_QUEUE;
        let chain = |faults| FaultChain::for_direction(faults);
        assert_eq!(chain(vec![(1, truncate(1, 5))]).queue_limit(), None);
        assert_eq!(
            chain(vec![(1, truncate(1, 5)), (2, latency(2, 100))]).queue_limit(),
            Some(LATENCY_QUEUE)
        );
    }

    #[test]
    fn two_rules_shaping_one_chunk_are_both_recorded() {
        let now = Instant::now();
        let mut chain = FaultChain::for_direction(vec![(1, latency(1, 100)), (2, latency(2, 300))]);
        let plan = chain.plan(100, now);
        assert_eq!(sent_len(&plan), 100);
        let rules: Vec<&str> = plan
            .iter()
            .filter_map(|s| match s {
                Step::Send { mark, .. } | Step::Insert { mark, .. } => mark.as_ref(),
                _ => None,
            })
            .filter_map(|m| m.rule.as_ref().map(|r| &*r.name))
            .collect();
        assert_eq!(rules, ["lat300", "lat100"], "{plan:?}");
        // Both go out when the bytes do, 300 ms on.
        assert!(plan
            .iter()
            .filter_map(Step::not_before)
            .all(|at| at - now == std::time::Duration::from_millis(300)));
    }

    #[test]
    fn rearming_keeps_the_state_of_rules_that_stay() {
        let now = Instant::now();
        let mut chain = FaultChain::for_direction(vec![(1, truncate(1, 10))]);
        assert_eq!(sent_len(&chain.plan(6, now)), 6);
        chain.rearm(&[2, 1], |key| Some(truncate(key, 100)));
        // Rule 1 already counted 6 bytes: 4 more reach its limit of 10.
        let plan = chain.plan(6, now);
        assert_eq!(sent_len(&plan), 4);
        chain.rearm(&[], |_| None);
        assert!(chain.is_empty());
    }

    #[test]
    fn a_replacing_rule_takes_over_the_count_of_the_one_it_replaces() {
        let now = Instant::now();
        let mut chain = FaultChain::for_direction(vec![(1, truncate(1, 10))]);
        assert_eq!(sent_len(&chain.plan(6, now)), 6);
        // Rule 3 is rule 1 updated to a limit of 8: 6 counted, 2 to go.
        chain.rearm_replacing(
            &[3],
            |key| (key == 3).then_some(1),
            |key| Some(truncate(key, 8)),
        );
        assert_eq!(sent_len(&chain.plan(6, now)), 2);
        // A new rule that replaces none counts from zero.
        chain.rearm_replacing(&[4], |_| None, |key| Some(truncate(key, 8)));
        assert_eq!(sent_len(&chain.plan(6, now)), 6);
    }
}
