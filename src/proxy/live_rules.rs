//! One connection's view of the rule book: which rules select it (decided by the seeded,
//! per-connection keys), the fault chain of each direction, and the connection-wide timers —
//! rebuilt when the book is replaced, keeping the state of every rule that stayed.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::direction::Direction;
use crate::fault::plan::{EndHow, Mark};
use crate::fault::{ConnectionFault, Fault, FaultChain, Scope};
use crate::scenario::{ConnectionFacts, Scenario};
use crate::seed::{self, Purpose};

/// The rules in force for connection number `id`, following the rule book.
#[derive(Debug, Clone)]
pub struct ConnectionRules {
    facts: ConnectionFacts,
    seed: u64,
    book: watch::Receiver<Arc<Scenario>>,
    scenario: Arc<Scenario>,
    /// The scenario before the last replacement: where an updated rule's old key is found.
    previous: Option<Arc<Scenario>>,
    matched: Vec<usize>,
}

impl ConnectionRules {
    /// The rules of the book's current scenario that select the connection `facts` describe,
    /// in a run seeded with `seed`.
    pub fn new(
        facts: ConnectionFacts,
        seed: u64,
        mut book: watch::Receiver<Arc<Scenario>>,
    ) -> Self {
        let scenario = book.borrow_and_update().clone();
        let matched = scenario.rules_for_connection(&facts, seed);
        ConnectionRules {
            facts,
            seed,
            book,
            scenario,
            previous: None,
            matched,
        }
    }

    /// The connection these rules are for.
    pub fn facts(&self) -> &ConnectionFacts {
        &self.facts
    }

    /// The scenario these rules come from.
    pub fn scenario(&self) -> &Arc<Scenario> {
        &self.scenario
    }

    /// Indices (in [`scenario`](Self::scenario)) of the rules that select this connection.
    pub fn matched(&self) -> &[usize] {
        &self.matched
    }

    /// Takes the book's newest scenario if it was replaced since the last look; returns whether
    /// it was. Cheap when nothing changed (one atomic load).
    pub fn refresh(&mut self) -> bool {
        if !self.book.has_changed().unwrap_or(false) {
            return false;
        }
        self.adopt_newest();
        true
    }

    /// Waits until the book is replaced (forever when it never will be), then takes the newest
    /// scenario. (`watch::Receiver::changed` marks the value seen, so a [`refresh`](Self::refresh)
    /// after it would find nothing new: this adopts the scenario itself.)
    pub async fn changed(&mut self) {
        if self.book.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
        self.adopt_newest();
    }

    fn adopt_newest(&mut self) {
        let newest = self.book.borrow_and_update().clone();
        self.previous = Some(std::mem::replace(&mut self.scenario, newest));
        self.matched = self.scenario.rules_for_connection(&self.facts, self.seed);
    }

    /// Keys of the byte-stream rules acting on the whole of `direction`, in rule order.
    fn direction_keys(&self, direction: Direction) -> Vec<u64> {
        self.matched
            .iter()
            .map(|&i| &self.scenario.rules[i])
            .filter(|rule| !rule.is_http() && rule.matcher.direction.includes(direction))
            .map(|rule| rule.key)
            .collect()
    }

    /// The key, in the scenario before the last replacement, of the rule the rule keyed `key`
    /// replaced: the one of the same lineage (the same toxic, updated), if any.
    fn replaced_key(&self, key: u64) -> Option<u64> {
        let lineage = self.scenario.lineage.get(&key)?;
        let previous = self.previous.as_ref()?;
        previous
            .lineage
            .iter()
            .find(|(old, of)| *of == lineage && **old != key)
            .map(|(old, _)| *old)
    }

    /// The fault chain of `direction`, or `chain` brought in step with the current rules (rules
    /// that stayed keep their instance and its state; a rule of the same lineage as one that
    /// went, an updated toxic, takes over its predecessor's count).
    pub fn direction_chain(&self, direction: Direction, chain: Option<FaultChain>) -> FaultChain {
        let mut chain = chain.unwrap_or_else(|| FaultChain::for_direction(Vec::new()));
        let scope = Scope::direction(direction);
        let replaces = |key| self.replaced_key(key);
        chain.rearm_replacing(&self.direction_keys(direction), replaces, |key| {
            let (_, rule) = self.scenario.rule_by_key(key)?;
            let rng = seed::stream(
                self.seed,
                Purpose::FaultTiming,
                &[self.facts.ordinal, rule.draws, direction.index() as u64],
            );
            // Whole-direction amounts are plain sizes (percentages need an HTTP rule, checked at
            // load), so they always resolve.
            rule.fault
                .stream_fault(&rule.id, &scope, rng)
                .ok()
                .flatten()
        });
        chain
    }

    /// Whether a rule that selects this connection refuses it outright.
    pub fn refusal(&self) -> Option<Mark> {
        self.matched.iter().find_map(|&i| {
            let rule = &self.scenario.rules[i];
            match rule.fault.connection_fault(&rule.id) {
                Some(ConnectionFault::Refuse { mark }) => Some(mark),
                _ => None,
            }
        })
    }

    /// After a replacement: the mark that ends a direction whose chain held the `timeout` rule
    /// keyed `key` (in the scenario before), now lifted: what it dropped leaves a gap, and
    /// Toxiproxy's timeout closes the connection when removed too. The pump that saw the rule
    /// asks: replacements in quick succession reach each receiver of the book as one, so only
    /// the pump that held the rule knows it was in force.
    pub fn lifted_timeout_mark(&self, key: u64) -> Option<Mark> {
        let previous = self.previous.as_ref()?;
        let (_, rule) = previous.rule_by_key(key)?;
        // An updated toxic (a new key of the same lineage) goes on: not lifted.
        let updated = previous
            .lineage
            .get(&key)
            .is_some_and(|l| self.scenario.lineage.values().any(|now| now == l));
        (matches!(rule.fault, Fault::Timeout(_)) && !updated).then(|| {
            Mark::follow_up(
                &rule.id,
                "timeout lifted: the connection closes (the bytes it dropped leave a gap)",
            )
        })
    }

    /// The earliest connection-wide end (terminate, reset.at) among the current rules. Each
    /// rule's time counts from when it came into force for this connection: the connection's
    /// opening for the rules it started with, the replacement for rules added later (`since`
    /// remembers those instants by rule key).
    pub fn end_timer(
        &self,
        since: &mut HashMap<u64, Instant>,
        now: Instant,
    ) -> Option<(Instant, EndHow, Mark)> {
        let mut earliest: Option<(Instant, EndHow, Mark)> = None;
        for &i in &self.matched {
            let rule = &self.scenario.rules[i];
            let Some(ConnectionFault::EndAfter { after, how, mark }) =
                rule.fault.connection_fault(&rule.id)
            else {
                continue;
            };
            let start = *since.entry(rule.key).or_insert(now);
            let at = start + after;
            if earliest.as_ref().is_none_or(|(t, _, _)| at < *t) {
                earliest = Some((at, how, mark));
            }
        }
        earliest
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fault::plan::{sent_len, Step};
    use std::time::Duration;

    fn scenario(text: &str) -> Arc<Scenario> {
        Arc::new(Scenario::from_toml(text, "t.toml", "t").expect("valid"))
    }

    #[test]
    fn a_replaced_book_rearms_chains_and_keeps_what_stayed() {
        let cut = "[[rule]]\nmatch = { direction = \"client->upstream\" }\nfault.truncate = { after = 10 }\n";
        let (book, rx) = watch::channel(scenario(cut));
        let mut rules = ConnectionRules::new(ConnectionFacts::ordinal(1), 7, rx);
        let now = Instant::now();
        let mut chain = rules.direction_chain(Direction::ClientToUpstream, None);
        assert_eq!(sent_len(&chain.plan(6, now)), 6);
        assert!(!rules.refresh());
        let latency = "[[rule]]\nfault.latency = { delay = \"1s\" }\n";
        book.send_replace(scenario(&format!("{latency}{cut}")));
        assert!(rules.refresh());
        let mut chain = rules.direction_chain(Direction::ClientToUpstream, Some(chain));
        let plan = chain.plan(6, now);
        assert_eq!(sent_len(&plan), 4, "the cut kept counting");
        assert!(
            matches!(&plan[0], Step::Send { not_before, .. } if *not_before == now + Duration::from_secs(1))
        );
        book.send_replace(scenario(""));
        assert!(rules.refresh());
        let mut chain = rules.direction_chain(Direction::ClientToUpstream, Some(chain));
        assert!(chain.is_empty());
        assert_eq!(sent_len(&chain.plan(6, now)), 6);
    }

    #[test]
    fn an_updated_rule_keeps_counting_where_it_was() {
        // Rules of lineage 1 (one toxic, updated), then one of lineage 2 (another toxic).
        let cut = |after: u64, lineage: u64| {
            let mut scenario = Scenario::from_toml(
                &format!(
                    "[[rule]]\nname = \"cut\"\nmatch = {{ direction = \"client->upstream\" }}\nfault.truncate = {{ after = {after} }}\n"
                ),
                "t.toml",
                "t",
            )
            .expect("valid");
            let key = scenario.rules[0].key;
            scenario.lineage.insert(key, lineage);
            Arc::new(scenario)
        };
        let (book, rx) = watch::channel(cut(10, 1));
        let mut rules = ConnectionRules::new(ConnectionFacts::ordinal(1), 7, rx);
        let now = Instant::now();
        let mut chain = rules.direction_chain(Direction::ClientToUpstream, None);
        assert_eq!(sent_len(&chain.plan(6, now)), 6);
        book.send_replace(cut(8, 1));
        assert!(rules.refresh());
        let mut chain = rules.direction_chain(Direction::ClientToUpstream, Some(chain));
        assert_eq!(sent_len(&chain.plan(6, now)), 2, "6 counted of the new 8");
        // Same name and fault, another lineage (removed and added again): from zero.
        book.send_replace(cut(9, 2));
        assert!(rules.refresh());
        let mut chain = rules.direction_chain(Direction::ClientToUpstream, Some(chain));
        assert_eq!(sent_len(&chain.plan(6, now)), 6);
    }

    #[test]
    fn timers_count_from_when_their_rule_came_into_force() {
        let terminate = "[[rule]]\nfault.terminate = { after = \"10s\" }\n";
        let (book, rx) = watch::channel(scenario(""));
        let mut rules = ConnectionRules::new(ConnectionFacts::ordinal(1), 7, rx);
        let opened = Instant::now();
        let mut since = HashMap::new();
        assert!(rules.end_timer(&mut since, opened).is_none());
        book.send_replace(scenario(terminate));
        rules.refresh();
        let later = opened + Duration::from_secs(5);
        let (at, how, _) = rules.end_timer(&mut since, later).expect("a timer");
        assert_eq!((at, how), (later + Duration::from_secs(10), EndHow::Reset));
        let (again, _, _) = rules
            .end_timer(&mut since, later + Duration::from_secs(1))
            .expect("a timer");
        assert_eq!(again, at, "the start is remembered");
    }

    /// Regression: the connection task waits on `changed()` and then reads the rules; the wait
    /// used to mark the new book seen without adopting it, so a timeout added through the API
    /// to an open connection never armed.
    #[tokio::test]
    async fn waiting_for_a_change_adopts_the_new_rules() {
        let terminate = "[[rule]]\nfault.terminate = { after = \"1s\" }\n";
        let (book, rx) = watch::channel(scenario(""));
        let mut rules = ConnectionRules::new(ConnectionFacts::ordinal(1), 7, rx);
        book.send_replace(scenario(terminate));
        rules.changed().await;
        let mut since = HashMap::new();
        assert!(rules.end_timer(&mut since, Instant::now()).is_some());
        assert!(!rules.refresh(), "nothing newer left to take");
    }
}
