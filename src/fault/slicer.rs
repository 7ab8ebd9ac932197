//! The `slicer` fault: cut each chunk of a payload stream into small pieces sent apart in time,
//! so peers that assume one read returns one message see it arrive in bits.

use std::time::Duration;

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::Deserialize;
use tokio::time::Instant;

use super::plan::{place_mark, Mark, RuleId, Step};
use super::scope::Scope;
use super::StreamFault;
use crate::units::{ByteSize, Span};

/// `fault.slicer = { average_size = 64, size_variation = 16, delay = "1ms" }` (Toxiproxy's
/// `slicer`): each chunk is halved again and again, each cut moved by a seeded draw within
/// ±`size_variation`, until the pieces are within `size_variation` of `average_size`; the pieces
/// leave `delay` apart.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Slicer {
    /// The size pieces tend to (at least one byte).
    pub average_size: ByteSize,
    /// How far a cut may move from the middle (default 0: even halves).
    #[serde(default)]
    pub size_variation: Option<ByteSize>,
    /// Time between pieces (default none).
    #[serde(default)]
    pub delay: Option<Span>,
}

impl Slicer {
    /// An average size of zero would never stop cutting.
    pub fn validate(&self) -> Result<(), super::FaultError> {
        if self.average_size.0 == 0 {
            return Err(super::FaultError::new(
                "average_size",
                "pieces need at least one byte: give average_size >= 1",
            ));
        }
        Ok(())
    }
}

/// Per-direction slicing state: the random stream of the cuts and when the link is next free.
#[derive(Debug)]
pub struct Slicing {
    average: usize,
    variation: usize,
    delay: Duration,
    rng: ChaCha8Rng,
    next_free: Option<Instant>,
    mark: Option<Mark>,
}

impl Slicing {
    /// Starts slicing for `rule` on `scope`, with the rule's own random stream.
    pub fn new(params: &Slicer, rule: &RuleId, scope: &Scope, rng: ChaCha8Rng) -> Self {
        let average = usize::try_from(params.average_size.0.max(1)).unwrap_or(usize::MAX);
        let variation = params
            .size_variation
            .map(|v| usize::try_from(v.0).unwrap_or(usize::MAX))
            .unwrap_or(0);
        let delay = params.delay.map(|d| d.0).unwrap_or_default();
        Slicing {
            average,
            variation,
            delay,
            rng,
            next_free: None,
            mark: Some(Mark::rule(
                rule,
                format!(
                    "sliced {} into pieces of about {average} bytes (± {variation}), {delay:?} apart",
                    scope.subject()
                ),
            )),
        }
    }

    /// Piece lengths of a chunk of `len` bytes, in order: halve until a piece is within
    /// `variation` of `average`, each cut moved by a draw in `[-variation, variation)` but kept
    /// strictly inside its range, so every piece has at least one byte and the cutting ends.
    fn pieces(&mut self, len: usize) -> Vec<usize> {
        let mut out = Vec::new();
        // Ranges still to cut, the leftmost on top.
        let mut stack = vec![(0usize, len)];
        while let Some((start, end)) = stack.pop() {
            let size = end - start;
            if size <= self.average.saturating_add(self.variation) || size < 2 {
                if size > 0 {
                    out.push(size);
                }
                continue;
            }
            let mut mid = start + size / 2;
            if self.variation > 0 {
                let shift = self.rng.gen_range(0..self.variation.saturating_mul(2)) as i128
                    - self.variation as i128;
                mid = (mid as i128 + shift).clamp(start as i128 + 1, end as i128 - 1) as usize;
            }
            stack.push((mid, end));
            stack.push((start, mid));
        }
        out
    }
}

/// The least time between two pieces' instants, so each piece is its own write.
const PIECE_SPACING: Duration = Duration::from_micros(1);

impl StreamFault for Slicing {
    fn apply(&mut self, steps: Vec<Step>, _arrival: Instant) -> Vec<Step> {
        let mut out = Vec::with_capacity(steps.len());
        for step in steps {
            match step {
                Step::Send {
                    len,
                    not_before,
                    mut mark,
                    role,
                } => {
                    for piece in self.pieces(len) {
                        let start = match self.next_free {
                            Some(free) => free.max(not_before),
                            None => not_before,
                        };
                        // At least a microsecond apart: the pump joins adjacent bytes due at
                        // one instant into one write, which would undo the slicing when
                        // `delay` is 0 (Toxiproxy's default).
                        self.next_free = Some(start + self.delay.max(PIECE_SPACING));
                        out.push(Step::Send {
                            len: piece,
                            not_before: start,
                            mark: mark.take(),
                            role,
                        });
                    }
                }
                other => out.push(other),
            }
        }
        place_mark(&mut out, &mut self.mark);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::direction::Direction;
    use crate::fault::plan::sent_len;
    use crate::seed::{stream, Purpose};

    fn slicing(average: u64, variation: u64, delay_ms: u64, seed: u64) -> Slicing {
        Slicing::new(
            &Slicer {
                average_size: ByteSize(average),
                size_variation: Some(ByteSize(variation)),
                delay: Some(Span(Duration::from_millis(delay_ms))),
            },
            &RuleId::new(0, "r"),
            &Scope::direction(Direction::UpstreamToClient),
            stream(seed, Purpose::FaultTiming, &[]),
        )
    }

    fn lens(plan: &[Step]) -> Vec<usize> {
        plan.iter()
            .filter_map(|s| match s {
                Step::Send { len, .. } => Some(*len),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn even_halves_without_variation_spaced_by_the_delay() {
        let t0 = Instant::now();
        let mut fault = slicing(10, 0, 5, 1);
        let plan = fault.apply(vec![Step::send(40, t0)], t0);
        assert_eq!(lens(&plan), vec![10, 10, 10, 10]);
        let times: Vec<_> = plan
            .iter()
            .filter_map(|s| match s {
                Step::Send { not_before, .. } => Some(*not_before - t0),
                _ => None,
            })
            .collect();
        assert_eq!(
            times,
            [0, 5, 10, 15].map(Duration::from_millis).to_vec(),
            "pieces leave one delay apart"
        );
        // The next chunk waits for the delay after the last piece.
        let next = fault.apply(vec![Step::send(3, t0)], t0);
        assert!(
            matches!(&next[0], Step::Send { not_before, .. } if *not_before - t0 == Duration::from_millis(20))
        );
    }

    #[test]
    fn every_byte_is_kept_in_order_and_pieces_are_never_empty() {
        let t0 = Instant::now();
        for seed in 0..50 {
            let mut fault = slicing(7, 20, 0, seed);
            let plan = fault.apply(vec![Step::send(1000, t0)], t0);
            assert_eq!(sent_len(&plan), 1000);
            assert!(lens(&plan).iter().all(|&l| l > 0));
        }
        let mut tiny = slicing(1, 0, 0, 3);
        assert_eq!(lens(&tiny.apply(vec![Step::send(5, t0)], t0)), vec![1; 5]);
    }

    #[test]
    fn the_same_seed_cuts_the_same_way() {
        let t0 = Instant::now();
        let run = |seed| lens(&slicing(16, 8, 0, seed).apply(vec![Step::send(500, t0)], t0));
        assert_eq!(run(4), run(4));
        assert_ne!(run(4), run(5));
    }

    #[test]
    fn a_zero_average_is_rejected() {
        let zero = Slicer {
            average_size: ByteSize(0),
            size_variation: None,
            delay: None,
        };
        assert_eq!(zero.validate().map_err(|e| e.key), Err("average_size"));
    }
}
