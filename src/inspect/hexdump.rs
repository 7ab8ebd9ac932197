//! Lines up the bytes two attempts sent at their first differing offset, byte by byte, for the HTML and Markdown reports.
//!
//! The comparison keeps [`Excerpt`]s (hex and ASCII of up to 16 bytes at the offset); this turns
//! them back into bytes and marks where the two attempts disagree.

use super::attempts::Excerpt;

/// One byte position of the view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cell {
    /// Stream offset of this position.
    pub offset: u64,
    /// The first attempt's byte, if it had one here.
    pub first: Option<u8>,
    /// The later attempt's byte, if it had one here.
    pub other: Option<u8>,
}

impl Cell {
    /// True when the attempts disagree here (a byte differs, or only one has a byte).
    pub fn differs(&self) -> bool {
        self.first != self.other
    }
}

/// The bytes of an excerpt (its `hex` field, space-separated); malformed pairs are skipped.
pub fn bytes_of(excerpt: &Excerpt) -> Vec<u8> {
    excerpt
        .hex
        .split_whitespace()
        .filter_map(|pair| u8::from_str_radix(pair, 16).ok())
        .collect()
}

/// The common bytes `before` the offset, then both excerpts at `offset`, position by position.
pub fn align(offset: u64, before: &Excerpt, first: &Excerpt, other: &Excerpt) -> Vec<Cell> {
    let common = bytes_of(before);
    let start = offset.saturating_sub(common.len() as u64);
    let (a, b) = (bytes_of(first), bytes_of(other));
    let shared = common.iter().enumerate().map(|(i, &c)| Cell {
        offset: start + i as u64,
        first: Some(c),
        other: Some(c),
    });
    let at = (0..a.len().max(b.len())).map(|i| Cell {
        offset: offset + i as u64,
        first: a.get(i).copied(),
        other: b.get(i).copied(),
    });
    shared.chain(at).collect()
}

/// `b` as shown in the ASCII column: printable ASCII kept, `.` otherwise.
pub fn printable(b: u8) -> char {
    if (0x20..0x7f).contains(&b) {
        b as char
    } else {
        '.'
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligns_and_marks_differences_and_missing_bytes() {
        let cells = align(
            100,
            &Excerpt::of(b"xy"),
            &Excerpt::of(b"abcd"),
            &Excerpt::of(&[b'a', 0xff, b'c']),
        );
        assert_eq!(cells.len(), 6);
        assert_eq!((cells[0].offset, cells[3].offset), (98, 101));
        let differs: Vec<bool> = cells.iter().map(Cell::differs).collect();
        assert_eq!(differs, [false, false, false, true, false, true]);
        assert_eq!(cells[5].other, None);
        assert_eq!((printable(b'a'), printable(0xff)), ('a', '.'));
    }
}
