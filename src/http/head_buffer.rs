//! Accumulates the bytes of one incomplete head and hands them to the parser once a blank line may end it.

use crate::http::error::HttpErrorKind;

/// Bytes of a head that has not completed yet, up to and never past the blank line that ends it,
/// so body bytes that follow a head are never copied.
///
/// The parser only runs when the buffer ends with an empty line after some content, so feeding a
/// head byte by byte costs O(head) scanning rather than a parse per byte.
#[derive(Debug, Default)]
pub(crate) struct HeadBuffer {
    buf: Vec<u8>,
    has_content: bool,
    /// Where the content starts, after leading empty lines (valid when `has_content`).
    content_at: usize,
}

impl HeadBuffer {
    /// Number of buffered bytes.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// True when nothing but empty lines (which heads may be preceded by) is buffered.
    pub fn is_blank(&self) -> bool {
        !self.has_content
    }

    /// Takes bytes from `input` until a head completes; returns how many bytes were taken and the
    /// head when `parse` accepted one (the buffer is then empty again). Errors when the buffered head
    /// would exceed `limit` bytes or `parse` rejects it.
    pub fn push<H>(
        &mut self,
        input: &[u8],
        limit: usize,
        mut parse: impl FnMut(&[u8]) -> Result<Option<H>, HttpErrorKind>,
    ) -> Result<(usize, Option<H>), HttpErrorKind> {
        let mut taken = 0;
        while taken < input.len() {
            let rest = &input[taken..];
            let line_end = rest.iter().position(|b| *b == b'\n');
            let piece = &rest[..line_end.map_or(rest.len(), |i| i + 1)];
            if self.buf.len() + piece.len() > limit {
                // Checked before copying, so one huge chunk never inflates the buffer.
                return Err(HttpErrorKind::HeadTooLarge { limit });
            }
            if !self.has_content {
                if let Some(at) = piece.iter().position(|b| !matches!(b, b'\r' | b'\n')) {
                    self.has_content = true;
                    self.content_at = self.buf.len() + at;
                }
            }
            self.buf.extend_from_slice(piece);
            taken += piece.len();
            if line_end.is_some() && self.has_content && self.ends_with_empty_line() {
                if let Some(head) = parse(&self.buf)? {
                    self.buf.clear();
                    self.has_content = false;
                    return Ok((taken, Some(head)));
                }
            }
        }
        Ok((taken, None))
    }

    /// How many bytes of a head's start [`Self::start`] shows: enough for any method or
    /// `HTTP/`, and a bounded cost per chunk however long the head grows.
    pub const START: usize = 32;

    /// The first [`Self::START`] bytes buffered after the empty lines a head may follow.
    pub fn start(&self) -> &[u8] {
        if !self.has_content {
            return &[];
        }
        let rest = self.buf.get(self.content_at..).unwrap_or_default();
        &rest[..rest.len().min(Self::START)]
    }

    /// [`Self::start`] of a whole head `buf` (scans its leading empty lines).
    pub fn start_of(buf: &[u8]) -> &[u8] {
        let at = buf
            .iter()
            .position(|b| !matches!(b, b'\r' | b'\n'))
            .unwrap_or(buf.len());
        &buf[at..buf.len().min(at + Self::START)]
    }

    /// True when the buffer ends with `\n\n` or `\n\r\n`: an empty line after a line.
    fn ends_with_empty_line(&self) -> bool {
        self.buf.ends_with(b"\n\n") || self.buf.ends_with(b"\n\r\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn complete(buf: &[u8]) -> Result<Option<usize>, HttpErrorKind> {
        Ok(Some(buf.len()))
    }

    #[test]
    fn stops_at_blank_line_and_never_takes_body_bytes() {
        let mut hb = HeadBuffer::default();
        assert_eq!(hb.push(b"\r\n\r\nGET / HT", 100, complete), Ok((12, None)));
        assert!(!hb.is_blank());
        assert_eq!(hb.push(b"TP/1.1\r\n\r", 100, complete), Ok((9, None)));
        assert_eq!(hb.push(b"\nBODY", 100, complete), Ok((1, Some(22))));
        assert_eq!(hb.len(), 0);
        assert!(hb.is_blank());
    }

    #[test]
    fn the_start_skips_leading_empty_lines_and_is_bounded() {
        let mut hb = HeadBuffer::default();
        let never = |_: &[u8]| -> Result<Option<usize>, HttpErrorKind> { Ok(None) };
        assert_eq!(hb.push(b"\r\n\r\n", 100, never), Ok((4, None)));
        assert_eq!(hb.start(), b"");
        assert_eq!(hb.push(b"\nGET /", 100, never), Ok((6, None)));
        assert_eq!(hb.start(), b"GET /");
        let long = [b'x'; 60];
        assert_eq!(hb.push(&long, 100, never), Ok((60, None)));
        assert_eq!(hb.start().len(), HeadBuffer::START);
    }

    #[test]
    fn leading_empty_lines_alone_never_parse_and_limit_applies() {
        let mut hb = HeadBuffer::default();
        let never = |_: &[u8]| -> Result<Option<()>, HttpErrorKind> { panic!("parsed too early") };
        assert_eq!(hb.push(b"\r\n\r\n\n\n", 100, never), Ok((6, None)));
        assert!(hb.is_blank());
        assert_eq!(
            hb.push(b"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", 100, complete),
            Err(HttpErrorKind::HeadTooLarge { limit: 100 })
        );
    }
}
