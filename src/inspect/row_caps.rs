//! Which rows a capped list of the report shows: the rows worth a look first, then the rest in order.
//!
//! A capture of a soak or a load test holds thousands of connections and exchanges. The Markdown
//! summary must fit an issue body and the HTML page must still open in a browser, so both cap
//! their lists; what they keep is decided here, once, so the two never disagree on what is
//! notable.

use std::collections::BTreeSet;

use super::h2_model::H2Stream;
use super::model::Report;

/// Indexes `0..len` to show when at most `max` fit: the `notable` ones first (up to `max`), then
/// the others in order, all sorted back into order.
pub fn rows_to_show(len: usize, max: usize, notable: impl Fn(usize) -> bool) -> Vec<usize> {
    let mut shown: Vec<usize> = (0..len).filter(|&i| notable(i)).take(max).collect();
    let room = max - shown.len();
    shown.extend((0..len).filter(|&i| !notable(i)).take(room));
    shown.sort_unstable();
    shown
}

/// Indexes `0..len` to show when at most `max` fit, lowest `rank` first (ties in order), sorted
/// back into order: for lists where some notable rows matter more than others.
pub fn rows_by_rank(len: usize, max: usize, rank: impl Fn(usize) -> u8) -> Vec<usize> {
    let mut order: Vec<(u8, usize)> = (0..len).map(|i| (rank(i), i)).collect();
    order.sort_unstable();
    let mut shown: Vec<usize> = order.into_iter().take(max).map(|(_, i)| i).collect();
    shown.sort_unstable();
    shown
}

impl Report {
    /// Ids of the exchanges a retried upload, content check or object check names as corrupt or
    /// differing: kept in every capped exchange table.
    pub(super) fn flagged_exchanges(&self) -> BTreeSet<usize> {
        let mut ids = BTreeSet::new();
        for g in &self.attempt_groups {
            let differs = g
                .attempts
                .iter()
                .any(|a| a.corrupt || a.comparison.as_ref().is_some_and(|c| c.is_difference()));
            if differs {
                ids.extend(g.attempts.iter().map(|a| a.exchange));
            }
        }
        ids.extend(
            self.content_checks
                .iter()
                .filter(|c| c.corrupt || c.check.is_mismatch())
                .map(|c| c.exchange),
        );
        for o in self
            .objects
            .iter()
            .filter(|o| o.corrupt || !o.problems.is_empty())
        {
            ids.extend(o.pieces.iter().map(|p| p.exchange));
        }
        ids
    }

    /// Whether the exchange at index `i` is worth a look: named by a finding or check
    /// (`flagged`), faulted, cut, or not answered 2xx/3xx.
    pub(super) fn exchange_is_notable(&self, i: usize, flagged: &BTreeSet<usize>) -> bool {
        let ex = &self.exchanges[i];
        flagged.contains(&ex.id)
            || !ex.faults.is_empty()
            || !ex.request.complete
            || !ex.response.complete
            || ex.response.status.is_none_or(|c| c >= 400)
    }
}

/// Whether an HTTP/2 stream is worth a look: reset, faulted, or a gRPC call that failed.
pub fn h2_stream_is_notable(st: &H2Stream) -> bool {
    st.reset.is_some() || !st.faults.is_empty() || st.grpc_status.is_some_and(|c| c != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notable_rows_come_first_and_the_rest_fill_in_order() {
        let shown = rows_to_show(10, 4, |i| i == 7 || i == 9);
        assert_eq!(shown, vec![0, 1, 7, 9]);
        assert_eq!(rows_to_show(3, 10, |_| false), vec![0, 1, 2]);
        assert_eq!(rows_to_show(10, 2, |i| i > 5), vec![6, 7]);
    }

    #[test]
    fn lower_ranks_come_first_and_ties_keep_their_order() {
        let rank = |i: usize| match i {
            8 => 0,
            2 | 9 => 1,
            _ => 2,
        };
        assert_eq!(rows_by_rank(10, 2, rank), vec![2, 8]);
        assert_eq!(rows_by_rank(10, 4, rank), vec![0, 2, 8, 9]);
    }
}
