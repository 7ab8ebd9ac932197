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
            self.has_content |= piece.iter().any(|b| !matches!(b, b'\r' | b'\n'));
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
