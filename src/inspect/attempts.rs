//! Groups attempts of the same request and compares each attempt's body with the first, byte for byte.
//!
//! Pure: bodies are read through [`BodySource`] (a slice in tests, a spill file when inspecting), so
//! a difference is found at its exact offset without holding two whole bodies in memory.

use std::collections::BTreeMap;
use std::io;

use serde::Serialize;

/// Bytes shown on each side of a difference.
pub const EXCERPT_LEN: usize = 16;
/// Block size used to walk bodies.
const BLOCK: usize = 256 * 1024;
/// Bytes of a later attempt searched for inside the first attempt when looking for a shift.
const PROBE_LEN: usize = 32;
/// Candidate shift offsets verified before giving up (repetitive bodies match everywhere).
const MAX_CANDIDATES: usize = 64;
/// Bytes a later attempt must share with the tail of a cut first attempt before it is said to
/// equal attempt 1 from a shifted offset (fewer could match by chance).
const MIN_CUT_OVERLAP: u64 = 256;

/// A body that can be read at any offset: a slice, or bytes spilled to a file.
pub trait BodySource {
    /// Total length in bytes.
    fn len(&self) -> u64;
    /// Fills `buf` with the bytes at `offset..offset + buf.len()`; that range lies inside the body.
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()>;
}

impl BodySource for &[u8] {
    fn len(&self) -> u64 {
        <[u8]>::len(self) as u64
    }
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let start = usize::try_from(offset).map_err(|_| io::ErrorKind::InvalidInput)?;
        let src = self
            .get(start..start + buf.len())
            .ok_or(io::ErrorKind::UnexpectedEof)?;
        buf.copy_from_slice(src);
        Ok(())
    }
}

/// Up to [`EXCERPT_LEN`] bytes at an offset, as hex and as ASCII (`.` for non-printable bytes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Excerpt {
    /// Space-separated lowercase hex bytes.
    pub hex: String,
    /// The same bytes, printable ASCII kept, others shown as `.`.
    pub ascii: String,
}

impl Excerpt {
    /// Formats `bytes` (at most [`EXCERPT_LEN`] are shown).
    pub fn of(bytes: &[u8]) -> Excerpt {
        let bytes = &bytes[..bytes.len().min(EXCERPT_LEN)];
        Excerpt {
            hex: bytes
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(" "),
            ascii: bytes
                .iter()
                .map(|&b| {
                    if (0x20..0x7f).contains(&b) {
                        b as char
                    } else {
                        '.'
                    }
                })
                .collect(),
        }
    }
}

/// How one attempt's body relates to the first attempt's body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum BodyComparison {
    /// Same length, same bytes.
    Identical,
    /// This attempt sent no body bytes; the first sent `first_len`.
    Empty {
        /// Length of the first attempt's body.
        first_len: u64,
    },
    /// This attempt's bytes are the first `len` bytes of the first attempt (shorter, otherwise equal).
    PrefixOfFirst {
        /// Length of the first attempt's body.
        first_len: u64,
        /// Length of this attempt's body.
        len: u64,
    },
    /// The first attempt is a shorter prefix of this one (it was cut short; this one went further).
    ExtendsFirst {
        /// Length of the first attempt's body.
        first_len: u64,
        /// Length of this attempt's body.
        len: u64,
    },
    /// The bytes differ at `offset`.
    Differs {
        /// First differing offset.
        offset: u64,
        /// Length of the first attempt's body.
        first_len: u64,
        /// Length of this attempt's body.
        len: u64,
        /// First attempt's bytes at `offset`.
        first_excerpt: Excerpt,
        /// This attempt's bytes at `offset`.
        excerpt: Excerpt,
        /// When this attempt equals the first attempt's bytes starting at this offset (> 0): the
        /// retry re-sent a slice instead of seeking back to the start.
        shifted_from: Option<u64>,
        /// The bytes just before `offset` (up to [`EXCERPT_LEN`]), the same in both attempts:
        /// the context a hex view shows in front of the difference.
        before: Excerpt,
    },
}

impl BodyComparison {
    /// True unless the bodies are identical or one is a clean prefix-extension of a cut first attempt.
    pub fn is_difference(&self) -> bool {
        !matches!(
            self,
            BodyComparison::Identical | BodyComparison::ExtendsFirst { .. }
        )
    }

    /// One human sentence about attempt number `n` (1-based) against attempt 1.
    pub fn describe(&self, n: usize) -> String {
        match self {
            BodyComparison::Identical => format!("attempt {n} is identical to attempt 1"),
            BodyComparison::Empty { first_len } => {
                format!("attempt {n} has an empty body (attempt 1 had {first_len} bytes)")
            }
            BodyComparison::PrefixOfFirst { first_len, len } => format!(
                "attempt {n} is attempt 1's first {len} of {first_len} bytes, equal up to there (it ends early at offset {len})"
            ),
            BodyComparison::ExtendsFirst { first_len, len } => format!(
                "attempt 1 ({first_len} bytes) is a prefix of attempt {n} ({len} bytes)"
            ),
            BodyComparison::Differs {
                offset,
                first_len,
                len,
                first_excerpt,
                excerpt,
                shifted_from,
                ..
            } => {
                let mut s = format!(
                    "attempt {n} differs from attempt 1 at offset {offset} (lengths {first_len} vs {len}; attempt 1: {} |{}|, attempt {n}: {} |{}|)",
                    first_excerpt.hex, first_excerpt.ascii, excerpt.hex, excerpt.ascii
                );
                match shifted_from {
                    // Attempt 1 was cut before attempt n's end: only the bytes it holds compare.
                    Some(k) if k.saturating_add(*len) > *first_len => s.push_str(&format!(
                        "; attempt {n} equals attempt 1 from offset {k} (the {} bytes attempt 1 holds from there; it was cut at {first_len}): the retry did not seek back to the start",
                        first_len - k
                    )),
                    Some(k) => s.push_str(&format!(
                        "; attempt {n} equals attempt 1 from offset {k}: the retry did not seek back to the start"
                    )),
                    None => {}
                }
                s
            }
        }
    }
}

/// Compares `other` with `first` byte for byte (see [`BodyComparison`]).
pub fn compare(
    first: &mut dyn BodySource,
    other: &mut dyn BodySource,
) -> io::Result<BodyComparison> {
    compare_after(first, other, false)
}

/// [`compare`], knowing whether `first` was cut short: then a shift is also found when `other`
/// runs past the bytes `first` holds (a retry that re-sent from the middle after a reset).
pub fn compare_after(
    first: &mut dyn BodySource,
    other: &mut dyn BodySource,
    first_cut: bool,
) -> io::Result<BodyComparison> {
    let (first_len, len) = (first.len(), other.len());
    if len == 0 {
        return Ok(if first_len == 0 {
            BodyComparison::Identical
        } else {
            BodyComparison::Empty { first_len }
        });
    }
    let common = first_len.min(len);
    match first_difference(first, 0, other, 0, common)? {
        None if first_len == len => Ok(BodyComparison::Identical),
        None if len < first_len => Ok(BodyComparison::PrefixOfFirst { first_len, len }),
        None => Ok(BodyComparison::ExtendsFirst { first_len, len }),
        Some(offset) => {
            let first_excerpt = excerpt(first, offset)?;
            let excerpt = excerpt(other, offset)?;
            let before = {
                let start = offset.saturating_sub(EXCERPT_LEN as u64);
                let mut buf = vec![0; (offset - start) as usize];
                first.read_at(start, &mut buf)?;
                Excerpt::of(&buf)
            };
            Ok(BodyComparison::Differs {
                offset,
                first_len,
                len,
                first_excerpt,
                excerpt,
                shifted_from: find_shift(first, other, first_cut)?,
                before,
            })
        }
    }
}

fn excerpt(body: &mut dyn BodySource, offset: u64) -> io::Result<Excerpt> {
    let n = (body.len().saturating_sub(offset)).min(EXCERPT_LEN as u64) as usize;
    let mut buf = vec![0; n];
    body.read_at(offset, &mut buf)?;
    Ok(Excerpt::of(&buf))
}

/// Offset (relative to the compared ranges) of the first differing byte among `len` bytes.
fn first_difference(
    a: &mut dyn BodySource,
    a_from: u64,
    b: &mut dyn BodySource,
    b_from: u64,
    len: u64,
) -> io::Result<Option<u64>> {
    let mut ba = vec![0; BLOCK];
    let mut bb = vec![0; BLOCK];
    let mut done = 0u64;
    while done < len {
        let n = (len - done).min(BLOCK as u64) as usize;
        a.read_at(a_from + done, &mut ba[..n])?;
        b.read_at(b_from + done, &mut bb[..n])?;
        if let Some(i) = ba[..n].iter().zip(&bb[..n]).position(|(x, y)| x != y) {
            return Ok(Some(done + i as u64));
        }
        done += n as u64;
    }
    Ok(None)
}

/// Finds `k > 0` with `other == first[k..k + other.len()]`: the suffix alignment is tried first
/// (the usual "resumed from where the last attempt was cut" bug), then positions where `other`'s
/// first bytes occur in `first`, at most [`MAX_CANDIDATES`] of them. When `first_cut` (attempt 1
/// was cut short, so its bytes end early), `other` may also run past `first`'s end: then
/// `first[k..]` must equal `other`'s first `first.len() - k` bytes, at least [`MIN_CUT_OVERLAP`].
pub fn find_shift(
    first: &mut dyn BodySource,
    other: &mut dyn BodySource,
    first_cut: bool,
) -> io::Result<Option<u64>> {
    let (first_len, len) = (first.len(), other.len());
    if len == 0 || (len >= first_len && !first_cut) || first_len < 2 {
        return Ok(None);
    }
    let suffix = first_len.checked_sub(len).filter(|&k| k > 0);
    if let Some(k) = suffix {
        if first_difference(first, k, other, 0, len)?.is_none() {
            return Ok(Some(k));
        }
    }
    // Where a shift may start: all of `other` inside `first`, or, after a cut, at least
    // MIN_CUT_OVERLAP of it (and all of `first`'s tail from there).
    let last_start = if first_cut {
        first_len.saturating_sub(MIN_CUT_OVERLAP.min(len))
    } else {
        first_len - len
    };
    let probe_len = (len as usize).min(PROBE_LEN);
    let mut probe = vec![0; probe_len];
    other.read_at(0, &mut probe)?;
    let mut candidates = 0;
    let mut block = vec![0; BLOCK + probe_len];
    let mut start = 1u64;
    while start <= last_start {
        let n = ((first_len - start) as usize).min(block.len());
        first.read_at(start, &mut block[..n])?;
        let window = &block[..n];
        for (i, w) in window.windows(probe_len).enumerate() {
            let k = start + i as u64;
            if k > last_start || i >= BLOCK {
                break;
            }
            if w == probe.as_slice() && Some(k) != suffix {
                let overlap = len.min(first_len - k);
                if first_difference(first, k, other, 0, overlap)?.is_none() {
                    return Ok(Some(k));
                }
                candidates += 1;
                if candidates >= MAX_CANDIDATES {
                    return Ok(None);
                }
            }
        }
        start += BLOCK as u64;
    }
    Ok(None)
}

/// Groups item indices by key, each group ordered by time (then index), groups ordered by their
/// first attempt's time. Items are `(key, time, index)`.
pub fn group_by_key<K: Ord>(items: impl IntoIterator<Item = (K, u64, usize)>) -> Vec<Vec<usize>> {
    let mut groups: BTreeMap<K, Vec<(u64, usize)>> = BTreeMap::new();
    for (key, time, index) in items {
        groups.entry(key).or_default().push((time, index));
    }
    let mut out: Vec<Vec<(u64, usize)>> = groups
        .into_values()
        .map(|mut g| {
            g.sort_unstable();
            g
        })
        .collect();
    out.sort_by_key(|g| g[0]);
    out.into_iter()
        .map(|g| g.into_iter().map(|(_, i)| i).collect())
        .collect()
}

/// When a retry is exactly as long as the part of the first attempt that never crossed, the client
/// most likely resumed from where attempt 1 was cut instead of starting over. Returns that cut offset.
pub fn resumed_from_cut(first_received: u64, first_expected: Option<u64>, len: u64) -> Option<u64> {
    let expected = first_expected?;
    (first_received > 0 && first_received < expected && len == expected - first_received)
        .then_some(first_received)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmp(a: &[u8], b: &[u8]) -> BodyComparison {
        compare(&mut &a[..], &mut &b[..]).expect("slices never fail")
    }

    fn noise(n: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    #[test]
    fn identical_empty_and_prefixes() {
        assert_eq!(cmp(b"abc", b"abc"), BodyComparison::Identical);
        assert_eq!(cmp(b"", b""), BodyComparison::Identical);
        assert_eq!(cmp(b"abc", b""), BodyComparison::Empty { first_len: 3 });
        assert_eq!(
            cmp(b"abc", b"ab"),
            BodyComparison::PrefixOfFirst {
                first_len: 3,
                len: 2
            }
        );
        assert_eq!(
            cmp(b"ab", b"abc"),
            BodyComparison::ExtendsFirst {
                first_len: 2,
                len: 3
            }
        );
        assert!(!cmp(b"ab", b"abc").is_difference());
        assert!(cmp(b"abc", b"").is_difference());
        assert!(cmp(b"abc", b"")
            .describe(2)
            .contains("attempt 2 has an empty body"));
    }

    #[test]
    fn difference_offset_and_excerpts() {
        let a = b"0123456789abcdefXYZ";
        let b = b"0123456789abcdefxyz!";
        match cmp(a, b) {
            BodyComparison::Differs {
                offset,
                first_excerpt,
                excerpt,
                shifted_from,
                len,
                before,
                ..
            } => {
                assert_eq!((offset, len, shifted_from), (16, 20, None));
                assert_eq!(first_excerpt.hex, "58 59 5a");
                assert_eq!(excerpt.ascii, "xyz!");
                assert_eq!(before.ascii, "0123456789abcdef");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(Excerpt::of(&[0, b'A', 0xff]).ascii, ".A.");
        assert_eq!(Excerpt::of(&[7; 40]).hex.split(' ').count(), EXCERPT_LEN);
    }

    #[test]
    fn detects_a_retry_that_resumed_mid_body() {
        let first = noise(3 * BLOCK + 1000, 7);
        for k in [1usize, 8192, BLOCK - 3, BLOCK + 5, 2 * BLOCK] {
            // the suffix case, as when a client does not seek back
            let c = cmp(&first, &first[k..]);
            assert!(
                matches!(c, BodyComparison::Differs { offset: 0, shifted_from: Some(s), .. } if s == k as u64),
                "{k}: {c:?}"
            );
            // a slice in the middle (not a suffix)
            let c = cmp(&first, &first[k..k + 5000]);
            assert!(
                matches!(c, BodyComparison::Differs { shifted_from: Some(s), .. } if s == k as u64),
                "{k}: {c:?}"
            );
        }
        let d = cmp(&first, &first[8192..]).describe(2);
        assert!(
            d.contains("attempt 2 equals attempt 1 from offset 8192: the retry did not seek back"),
            "{d}"
        );
        let mut changed = first[100..].to_vec();
        changed[50] ^= 1;
        assert!(matches!(
            cmp(&first, &changed),
            BodyComparison::Differs {
                shifted_from: None,
                ..
            }
        ));
    }

    /// User trials: a reset mid-upload left attempt 1 with 190,464 bytes; attempt 2 re-sent
    /// the body from offset 131072. Inspect said only "differs at offset 0", because attempt 2
    /// runs past the bytes attempt 1 holds. Against a cut attempt 1 the shift is named from the
    /// bytes that exist; against a complete one, a body that merely starts with its tail is not.
    #[test]
    fn a_retry_that_restarts_mid_body_after_a_cut_attempt_is_named() {
        let body = noise(1_048_576, 11);
        let (held, k) = (190_464, 131_072);
        let c = compare_after(&mut &body[..held], &mut &body[k..], true).expect("slices");
        assert!(
            matches!(c, BodyComparison::Differs { offset: 0, shifted_from: Some(s), .. } if s == k as u64),
            "{c:?}"
        );
        let d = c.describe(2);
        assert!(
            d.contains("attempt 2 equals attempt 1 from offset 131072 (the 59392 bytes attempt 1 holds from there; it was cut at 190464): the retry did not seek back to the start"),
            "{d}"
        );
        // Not claimed without the cut, nor when attempt 2 leaves attempt 1's bytes.
        let c = compare_after(&mut &body[..held], &mut &body[k..], false).expect("slices");
        assert!(
            matches!(
                c,
                BodyComparison::Differs {
                    shifted_from: None,
                    ..
                }
            ),
            "{c:?}"
        );
        let mut changed = body[k..].to_vec();
        changed[30_000] ^= 1;
        let c = compare_after(&mut &body[..held], &mut &changed[..], true).expect("slices");
        assert!(
            matches!(
                c,
                BodyComparison::Differs {
                    shifted_from: None,
                    ..
                }
            ),
            "{c:?}"
        );
        // Too few shared bytes to say: the last 100 bytes of attempt 1 then others.
        let mut tail = body[held - 100..held].to_vec();
        tail.extend(noise(5_000, 3));
        let c = compare_after(&mut &body[..held], &mut &tail[..], true).expect("slices");
        assert!(
            matches!(
                c,
                BodyComparison::Differs {
                    shifted_from: None,
                    ..
                }
            ),
            "{c:?}"
        );
    }

    #[test]
    fn repetitive_bodies_do_not_explode() {
        let first = vec![0u8; 2 * BLOCK];
        let mut other = vec![0u8; BLOCK];
        other[BLOCK - 1] = 1;
        assert!(matches!(
            cmp(&first, &other),
            BodyComparison::Differs {
                shifted_from: None,
                ..
            }
        ));
        assert!(matches!(
            cmp(&first, &first[..BLOCK]),
            BodyComparison::PrefixOfFirst { .. }
        ));
    }

    #[test]
    fn groups_by_key_in_time_order() {
        let groups = group_by_key(vec![
            ("b", 5, 0),
            ("a", 9, 1),
            ("b", 1, 2),
            ("a", 3, 3),
            ("c", 4, 4),
        ]);
        assert_eq!(groups, vec![vec![2, 0], vec![3, 1], vec![4]]);
    }

    #[test]
    fn resumed_from_cut_needs_exact_remaining_length() {
        assert_eq!(
            resumed_from_cut(5_242_880, Some(10_000_000), 4_757_120),
            Some(5_242_880)
        );
        assert_eq!(
            resumed_from_cut(5_242_880, Some(10_000_000), 10_000_000),
            None
        );
        assert_eq!(resumed_from_cut(0, Some(10), 10), None);
        assert_eq!(resumed_from_cut(5, None, 5), None);
    }
}
