//! The rule set a proxy uses for new decisions. `faultline run` fixes it at start; the control
//! API (`faultline serve`) swaps it whole. A swap never reaches into a pump: pumps and sessions
//! notice the new version at their next decision (the next chunk, the next request) and rebuild
//! what they derive from it, keeping the state of rules that did not change.

use std::sync::Arc;

use tokio::sync::watch;

use crate::scenario::Scenario;

/// The current scenario of a run, and a way to be told when it is replaced.
#[derive(Debug)]
pub struct RuleBook {
    current: watch::Sender<Arc<Scenario>>,
}

impl RuleBook {
    /// A book whose rules are `scenario`'s.
    pub fn new(scenario: Arc<Scenario>) -> Self {
        RuleBook {
            current: watch::Sender::new(scenario),
        }
    }

    /// The scenario in force now.
    pub fn current(&self) -> Arc<Scenario> {
        self.current.borrow().clone()
    }

    /// A receiver that sees every later replacement (`has_changed`, `changed`).
    pub fn watch(&self) -> watch::Receiver<Arc<Scenario>> {
        self.current.subscribe()
    }

    /// Puts `scenario` in force for every decision from now on.
    pub fn replace(&self, scenario: Arc<Scenario>) {
        self.current.send_replace(scenario);
    }
}
