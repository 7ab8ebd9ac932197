//! Finds the holes of a stitched download that the client skipped: bytes after what had arrived that no request of the capture asked for, with bytes after them.
//!
//! A client resuming a cut download asks for the rest from where its bytes end (`Range:
//! bytes=N-`, p2phttp `offset=N`). One that asks from further on (a trial's client resumed a GET
//! cut at 1,048,576 with `Range: bytes=1052672-`) assembles bytes it never fetched: its file
//! lacks the hole, or holds whatever lay there, and it cannot be the object. That is corruption
//! the client made, not an incomplete transfer, so it is a finding (CORRUPT) rather than the
//! "incomplete" a cut download is: nothing later can fill a hole no request asked for.
//!
//! Only a hole that starts where an earlier piece was cut counts: a first piece that starts past
//! 0 is a client resuming a file it kept from before the capture, and a hole some request asked
//! for from inside it (a ranged request that failed, one of parallel ranges) is an incomplete
//! download, said as such.

use super::exchange::Exchange;
use super::p2phttp::P2pRequest;
use super::target;

/// One piece of a download, in time order: where its bytes lie in the object.
#[derive(Debug, Clone, Copy)]
pub struct Span {
    pub start: u64,
    pub len: u64,
}

/// `[start, end)` of the object the client skipped, and the exchange whose bytes follow it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hole {
    pub start: u64,
    pub end: u64,
    pub after: usize,
}

impl Hole {
    /// The problem and finding text: which bytes, and which exchange resumed past them.
    pub fn describe(&self, exchanges: &[Exchange]) -> String {
        let asked = exchanges
            .get(self.after)
            .and_then(|ex| ex.request_header("range").map(|r| format!(" ({r})")))
            .unwrap_or_default();
        format!(
            "bytes {}..{} ({}) were never requested: exchange {}{asked} resumed at offset {} after only {} bytes had arrived, so the client assembled bytes after a hole it never fetched",
            self.start,
            self.end,
            crate::plural::count(self.end - self.start, "byte"),
            self.after,
            self.end,
            self.start
        )
    }
}

/// The path a request names, query and scheme/authority dropped: the requests for one object.
fn path_of(ex: &Exchange) -> &str {
    let origin = target::origin_form(&ex.target);
    origin.split('?').next().unwrap_or(origin)
}

/// The object bytes `ex` asked for, `[start, end)` (`None`: to the end). A request without a
/// Range, or with one this does not read (several ranges, a suffix), counts as asking for all.
fn requested(ex: &Exchange) -> (u64, Option<u64>) {
    if let Some(p2p) = P2pRequest::of(ex) {
        return (p2p.offset, None);
    }
    let Some(range) = ex.request_header("range") else {
        return (0, None);
    };
    let spec = range.trim().strip_prefix("bytes=").unwrap_or_default();
    if spec.contains(',') {
        return (0, None);
    }
    let Some((first, last)) = spec.split_once('-') else {
        return (0, None);
    };
    let Ok(start) = first.trim().parse::<u64>() else {
        return (0, None);
    };
    match last.trim() {
        "" => (start, None),
        last => match last.parse::<u64>() {
            Ok(last) => (start, Some(last.saturating_add(1))),
            Err(_) => (0, None),
        },
    }
}

/// The holes `pieces` (in time order, each with its exchange) leave that the client skipped:
/// bytes no piece covers, right after the bytes of an earlier piece whose request asked for them
/// and for the bytes after them (it was cut there), and before the bytes of a later piece that
/// resumed past them, where no GET of the same path on the first piece's leg asked from inside
/// the hole. Parallel ranged requests each ask for their own range only, so a failed one leaves
/// an incomplete download, not a skipped hole.
pub fn skipped(exchanges: &[Exchange], pieces: &[(Span, usize)]) -> Vec<Hole> {
    let Some(first) = pieces.first().and_then(|&(_, id)| exchanges.get(id)) else {
        return Vec::new();
    };
    let (leg, path) = (first.leg, path_of(first));
    let starts: Vec<u64> = exchanges
        .iter()
        .filter(|e| e.leg == leg && e.method == "GET" && path_of(e) == path)
        .map(|e| requested(e).0)
        .collect();
    let mut spans: Vec<(u64, u64)> = pieces
        .iter()
        .filter(|(s, _)| s.len > 0)
        .map(|(s, _)| (s.start, s.start + s.len))
        .collect();
    spans.sort_unstable();
    let mut holes = Vec::new();
    let mut reach: Option<u64> = None;
    for (start, end) in spans {
        if let Some(at) = reach.filter(|&at| at < start) {
            let after = pieces
                .iter()
                .position(|(s, _)| s.start == start && s.len > 0);
            let cut_before = |i: usize| {
                pieces[..i].iter().any(|&(s, id)| {
                    s.len > 0
                        && s.start + s.len == at
                        && exchanges.get(id).is_some_and(|ex| {
                            let (from, to) = requested(ex);
                            from <= at && to.is_none_or(|to| to > start)
                        })
                })
            };
            let tried = starts.iter().any(|&s| at <= s && s < start);
            if let Some(after) = after.filter(|&i| cut_before(i) && !tried) {
                holes.push(Hole {
                    start: at,
                    end: start,
                    after: pieces[after].1,
                });
            }
        }
        reach = Some(reach.map_or(end, |r| r.max(end)));
    }
    holes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::direction::Leg;
    use crate::inspect::legs::tests::exchange;

    fn get(id: usize, range: Option<&str>) -> Exchange {
        let mut ex = exchange(id, Leg::Client, id as u64, "GET", "/bkt/big.bin", None);
        if let Some(r) = range {
            ex.request_headers.push(("range".into(), r.into()));
        }
        ex
    }

    fn span(start: u64, len: u64) -> Span {
        Span { start, len }
    }

    /// A trial's GET cut at 1,048,576 and resumed with `Range: bytes=1052672-`: "incomplete",
    /// OK, exit 0. The 4,096 bytes between were never asked for again.
    #[test]
    fn a_resume_past_where_the_cut_piece_ended_skips_a_hole() {
        let exchanges = vec![get(0, None), get(1, Some("bytes=1052672-"))];
        let pieces = [(span(0, 1_048_576), 0), (span(1_052_672, 9_947_328), 1)];
        let holes = skipped(&exchanges, &pieces);
        assert_eq!(
            holes,
            vec![Hole {
                start: 1_048_576,
                end: 1_052_672,
                after: 1
            }]
        );
        assert!(holes[0]
            .describe(&exchanges)
            .starts_with("bytes 1048576..1052672 (4096 bytes) were never requested: exchange 1 (bytes=1052672-) resumed at offset 1052672 after only 1048576 bytes had arrived"));
    }

    /// A resume from where the bytes ended, parallel ranges one of which failed, a first piece
    /// starting past 0 (a file kept from before the capture), and a hole some request asked
    /// for from inside: no skipped hole.
    #[test]
    fn resumes_parallel_ranges_and_earlier_files_skip_nothing() {
        let exchanges = vec![get(0, None), get(1, Some("bytes=1048576-"))];
        let pieces = [(span(0, 1_048_576), 0), (span(1_048_576, 10), 1)];
        assert!(skipped(&exchanges, &pieces).is_empty());

        let exchanges = vec![
            get(0, Some("bytes=0-99")),
            get(1, Some("bytes=100-199")),
            get(2, Some("bytes=200-299")),
        ];
        let pieces = [(span(0, 100), 0), (span(100, 50), 1), (span(200, 100), 2)];
        assert!(skipped(&exchanges, &pieces).is_empty());

        let exchanges = vec![get(0, Some("bytes=500-"))];
        assert!(skipped(&exchanges, &[(span(500, 10), 0)]).is_empty());

        let exchanges = vec![
            get(0, None),
            get(1, Some("bytes=100-")),
            get(2, Some("bytes=150-")),
        ];
        let pieces = [(span(0, 100), 0), (span(150, 50), 2)];
        assert!(skipped(&exchanges, &pieces).is_empty());
    }
}
