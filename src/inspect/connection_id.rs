//! faultline's connection ordinal of a flow, recovered from its initial sequence number.
//!
//! The capture writer derives each leg's initial sequence numbers from the connection ordinal,
//! the leg and the side (`capture::flow::isn`), so a flow whose client SYN was captured names
//! its connection exactly: both legs of one connection are paired by that, not by timing and
//! first requests, and a report can say "connection 2" as rules (`connection = 2`) and logs
//! (`conn{id=2}`) do. A capture from another tool has random numbers, which match one of the
//! ordinals looked for with a chance of about one in two million per flow, and then only when
//! the leg agrees too.

use std::collections::HashMap;

use crate::capture::event::{LegKey, Side};
use crate::capture::flow::isn;
use crate::direction::Leg;

/// Initial sequence numbers of connections `1..=limit` on both legs, to the connection and leg.
pub struct ConnectionIds {
    by_isn: HashMap<u32, (u64, Leg)>,
}

impl ConnectionIds {
    /// Ordinals up to `limit` (a run numbers its connections from 1 in accept order, so a
    /// capture of N flows holds ordinals up to about N/2; more are looked for to be safe).
    pub fn up_to(limit: u64) -> Self {
        let mut by_isn = HashMap::with_capacity(2 * limit as usize);
        for conn in 1..=limit {
            for leg in [Leg::Client, Leg::Upstream] {
                by_isn.insert(isn(LegKey { conn, leg }, Side::Initiator), (conn, leg));
            }
        }
        ConnectionIds { by_isn }
    }

    /// The connection a flow on `leg` whose client SYN carried `client_isn` belongs to.
    pub fn of(&self, client_isn: Option<u32>, leg: Option<Leg>) -> Option<u64> {
        let (conn, on) = self.by_isn.get(&client_isn?)?;
        (leg? == *on).then_some(*conn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_legs_isn_names_its_connection_and_the_leg_must_agree() {
        let ids = ConnectionIds::up_to(100);
        let key = LegKey {
            conn: 42,
            leg: Leg::Upstream,
        };
        let upstream = isn(key, Side::Initiator);
        assert_eq!(ids.of(Some(upstream), Some(Leg::Upstream)), Some(42));
        assert_eq!(ids.of(Some(upstream), Some(Leg::Client)), None);
        assert_eq!(ids.of(Some(upstream), None), None);
        assert_eq!(ids.of(None, Some(Leg::Upstream)), None);
        let beyond = isn(
            LegKey {
                conn: 101,
                leg: Leg::Client,
            },
            Side::Initiator,
        );
        assert_eq!(ids.of(Some(beyond), Some(Leg::Client)), None);
    }
}
