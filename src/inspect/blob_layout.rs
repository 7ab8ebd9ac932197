//! A ByteStream blob as laid so far from its calls' kept data: non-overlapping segments, read back, compared and hashed.

use super::attempts::BodySource;
use super::bytestream_call::{Call, Placement};
use super::digest::{HashAlgo, Hasher};
use super::segments::{self, Seg};

/// Block size for reading kept data.
const BLOCK: usize = 256 * 1024;

/// The blob as laid so far: non-overlapping segments in offset order.
#[derive(Debug, Default)]
pub struct Stitch {
    segs: Vec<Seg>,
}

impl Stitch {
    pub fn end(&self) -> u64 {
        self.segs.last().map_or(0, Seg::end)
    }

    /// End of the bytes laid contiguously from offset 0.
    pub fn contiguous(&self) -> u64 {
        let mut at = 0;
        for seg in &self.segs {
            if seg.start > at {
                break;
            }
            at = at.max(seg.end());
        }
        at
    }

    /// The first bytes not laid before the last laid byte (`[from, to)`).
    pub fn first_hole(&self) -> Option<(u64, u64)> {
        let at = self.contiguous();
        self.segs
            .iter()
            .map(|seg| seg.start)
            .find(|&start| start > at)
            .map(|start| (at, start))
    }

    /// Whether every byte of `[start, end)` is laid.
    pub fn covers(&self, start: u64, end: u64) -> bool {
        let mut at = start;
        for seg in &self.segs {
            if at >= end {
                break;
            }
            if seg.end() <= at {
                continue;
            }
            if seg.start > at {
                return false;
            }
            at = seg.end();
        }
        at >= end
    }

    /// Reads `buf.len()` laid bytes at `at`; `None` when any of them is missing.
    pub fn read(&self, calls: &mut [Call], at: u64, buf: &mut [u8]) -> Option<()> {
        let end = at + buf.len() as u64;
        let mut filled = at;
        for seg in &self.segs {
            if seg.end() <= filled || seg.start >= end {
                continue;
            }
            if seg.start > filled {
                return None;
            }
            let to = seg.end().min(end);
            let out = &mut buf[(filled - at) as usize..(to - at) as usize];
            calls[seg.source]
                .data
                .read_at(seg.from + (filled - seg.start), out)
                .ok()?;
            filled = to;
        }
        (filled == end).then_some(())
    }

    /// The first blob offset where `place` of call `call` differs from bytes laid there.
    pub fn difference(&self, calls: &mut [Call], call: usize, place: Placement) -> Option<u64> {
        let (start, end) = (place.at, place.at + place.len);
        let mut old = vec![0u8; BLOCK];
        let mut new = vec![0u8; BLOCK];
        for seg in &self.segs {
            let (from, to) = (seg.start.max(start), seg.end().min(end));
            let mut at = from;
            while at < to {
                let n = ((to - at) as usize).min(BLOCK);
                calls[seg.source]
                    .data
                    .read_at(seg.from + (at - seg.start), &mut old[..n])
                    .ok()?;
                calls[call]
                    .data
                    .read_at(place.from + (at - start), &mut new[..n])
                    .ok()?;
                if let Some(i) = old[..n].iter().zip(&new[..n]).position(|(a, b)| a != b) {
                    return Some(at + i as u64);
                }
                at += n as u64;
            }
        }
        None
    }

    /// Lays `place` of call `call` over whatever is there (the segments' source is the call).
    pub fn lay(&mut self, call: usize, place: Placement) {
        let piece = Seg {
            start: place.at,
            source: call,
            from: place.from,
            len: place.len,
        };
        segments::lay(&mut self.segs, piece);
    }

    /// Drops laid bytes in `[start, end)`.
    pub fn cut(&mut self, start: u64, end: u64) {
        segments::cut(&mut self.segs, start, end);
    }

    /// The digest of the laid bytes `[0, len)` with each of `algos`.
    pub fn digests(&self, calls: &mut [Call], algos: &[HashAlgo], len: u64) -> Option<Vec<String>> {
        let mut hashers: Vec<Hasher> = algos.iter().filter_map(|a| Hasher::new(*a)).collect();
        let mut buf = vec![0u8; BLOCK];
        let mut at = 0;
        while at < len {
            let n = ((len - at) as usize).min(BLOCK);
            self.read(calls, at, &mut buf[..n])?;
            for h in &mut hashers {
                h.update(&buf[..n]);
            }
            at += n as u64;
        }
        Some(hashers.into_iter().map(Hasher::finish_hex).collect())
    }
}
