//! An object laid from pieces of several sources (exchanges' bodies, ByteStream calls' data):
//! non-overlapping segments in offset order, each naming its source and where in that source its
//! bytes are. A later piece overwrites what lies under it, as the receiving side writes.

/// `len` object bytes from `start`: source `source`'s bytes from `from`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seg {
    pub start: u64,
    pub source: usize,
    pub from: u64,
    pub len: u64,
}

impl Seg {
    pub fn end(&self) -> u64 {
        self.start + self.len
    }
}

/// Lays `piece` over `segs` (kept in offset order): whatever lay in its range is trimmed away.
pub fn lay(segs: &mut Vec<Seg>, piece: Seg) {
    if piece.len == 0 {
        return;
    }
    cut(segs, piece.start, piece.end());
    segs.push(piece);
    segs.sort_by_key(|s| s.start);
}

/// Drops the laid bytes in `[start, end)`, trimming the segments that straddle its edges.
pub fn cut(segs: &mut Vec<Seg>, start: u64, end: u64) {
    let mut next = Vec::with_capacity(segs.len() + 2);
    for seg in segs.drain(..) {
        if seg.end() <= start || seg.start >= end {
            next.push(seg);
            continue;
        }
        if seg.start < start {
            next.push(Seg {
                len: start - seg.start,
                ..seg
            });
        }
        if seg.end() > end {
            next.push(Seg {
                start: end,
                from: seg.from + (end - seg.start),
                len: seg.end() - end,
                ..seg
            });
        }
    }
    *segs = next;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(start: u64, source: usize, from: u64, len: u64) -> Seg {
        Seg {
            start,
            source,
            from,
            len,
        }
    }

    #[test]
    fn a_later_piece_overwrites_the_middle_and_the_edges_are_trimmed() {
        let mut segs = Vec::new();
        lay(&mut segs, seg(0, 0, 0, 100));
        lay(&mut segs, seg(40, 1, 0, 20));
        assert_eq!(
            segs,
            vec![seg(0, 0, 0, 40), seg(40, 1, 0, 20), seg(60, 0, 60, 40)]
        );
        cut(&mut segs, 50, u64::MAX);
        assert_eq!(segs, vec![seg(0, 0, 0, 40), seg(40, 1, 0, 10)]);
        lay(&mut segs, seg(10, 2, 5, 0));
        assert_eq!(segs.len(), 2, "an empty piece lays nothing");
    }
}
