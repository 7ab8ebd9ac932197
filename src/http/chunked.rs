//! Incremental tracking of chunked transfer coding: chunk-size lines, data, CRLFs and trailers.

use crate::http::error::HttpErrorKind;

/// Where the decoder is within a chunked body. Framing is walked byte by byte (it is small); data
/// is skipped in one step, so the decoder never buffers or copies anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Expecting the first hex digit of a chunk size.
    SizeStart,
    /// Reading further hex digits.
    Size,
    /// Whitespace after the size, before `;` or the line end.
    SizeSpace,
    /// Inside chunk extensions, which are skipped up to the line end.
    Extension,
    /// Saw CR at the end of the size line, expecting LF.
    SizeLf,
    /// Inside chunk data with this many bytes left.
    Data(u64),
    /// After chunk data, expecting CR (or a bare LF).
    DataCr,
    /// After chunk data and CR, expecting LF.
    DataLf,
    /// At the start of a trailer line (or of the final empty line).
    TrailerStart,
    /// Inside a trailer field line, skipped up to LF.
    TrailerLine,
    /// Saw CR on the final empty line, expecting LF.
    EndLf,
    /// The body, trailers included, is complete.
    Done,
}

/// What one call to [`ChunkedDecoder::advance`] found at the start of its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// The first `n` bytes are chunk data (payload).
    Data(usize),
    /// The first `n` bytes are framing; the body goes on.
    Framing(usize),
    /// The first `n` bytes are framing and complete the body.
    Done(usize),
}

/// Tracks one chunked body across any split of its bytes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ChunkedDecoder {
    state: State,
    size: u64,
    line_len: usize,
    trailer_len: usize,
    max_line: usize,
    max_trailers: usize,
}

impl ChunkedDecoder {
    /// A decoder at the start of a chunked body, with limits for size lines and the trailer section.
    pub fn new(max_line: usize, max_trailers: usize) -> Self {
        ChunkedDecoder {
            state: State::SizeStart,
            size: 0,
            line_len: 0,
            trailer_len: 0,
            max_line,
            max_trailers,
        }
    }

    /// Data bytes still expected in the chunk being read (0 outside chunk data), for EOF reports.
    pub fn missing_in_chunk(&self) -> u64 {
        match self.state {
            State::Data(n) => n,
            _ => 0,
        }
    }

    /// Classifies the bytes at the start of `input` (which must not be empty). On error, returns the
    /// index in `input` of the offending byte.
    pub fn advance(&mut self, input: &[u8]) -> Result<Step, (usize, HttpErrorKind)> {
        if let State::Data(remaining) = self.state {
            let n = usize::try_from(remaining).map_or(input.len(), |r| r.min(input.len()));
            let left = remaining - n as u64;
            self.state = if left == 0 {
                State::DataCr
            } else {
                State::Data(left)
            };
            return Ok(Step::Data(n));
        }
        for (i, &b) in input.iter().enumerate() {
            self.framing_byte(b).map_err(|kind| (i, kind))?;
            match self.state {
                State::Data(_) => return Ok(Step::Framing(i + 1)),
                State::Done => return Ok(Step::Done(i + 1)),
                _ => {}
            }
        }
        Ok(Step::Framing(input.len()))
    }

    /// Moves the state machine over one framing byte.
    fn framing_byte(&mut self, b: u8) -> Result<(), HttpErrorKind> {
        let in_size_line = matches!(
            self.state,
            State::SizeStart | State::Size | State::SizeSpace | State::Extension | State::SizeLf
        );
        if in_size_line {
            self.line_len += 1;
            if self.line_len > self.max_line {
                return Err(HttpErrorKind::ChunkLineTooLong {
                    limit: self.max_line,
                });
            }
        }
        if matches!(
            self.state,
            State::TrailerStart | State::TrailerLine | State::EndLf
        ) {
            self.trailer_len += 1;
            if self.trailer_len > self.max_trailers {
                return Err(HttpErrorKind::TrailersTooLarge {
                    limit: self.max_trailers,
                });
            }
        }
        self.state = match (self.state, b) {
            (State::SizeStart, _) => {
                self.size = 0;
                self.push_hex_digit(b)?;
                State::Size
            }
            (State::Size, b' ' | b'\t') => State::SizeSpace,
            (State::Size, _) if b.is_ascii_hexdigit() => {
                self.push_hex_digit(b)?;
                State::Size
            }
            (State::Size | State::SizeSpace, b';') => State::Extension,
            (State::SizeSpace, b' ' | b'\t') => State::SizeSpace,
            (State::Size | State::SizeSpace | State::Extension, b'\r') => State::SizeLf,
            (State::Size | State::SizeSpace | State::Extension | State::SizeLf, b'\n') => {
                self.end_size_line()
            }
            (State::Extension, _) => State::Extension,
            (State::Size | State::SizeSpace | State::SizeLf, _) => {
                return Err(HttpErrorKind::InvalidChunkSize)
            }
            (State::DataCr, b'\r') => State::DataLf,
            (State::DataCr | State::DataLf, b'\n') => State::SizeStart,
            (State::DataCr | State::DataLf, _) => {
                return Err(HttpErrorKind::MissingChunkTerminator)
            }
            (State::TrailerStart, b'\r') => State::EndLf,
            (State::TrailerStart, b'\n') | (State::EndLf, b'\n') => State::Done,
            (State::TrailerLine, b'\n') => State::TrailerStart,
            (State::TrailerStart | State::TrailerLine, _) => State::TrailerLine,
            (State::EndLf, _) => return Err(HttpErrorKind::InvalidTrailerSection),
            (State::Data(_) | State::Done, _) => self.state,
        };
        Ok(())
    }

    /// Adds one hex digit to the chunk size being read.
    fn push_hex_digit(&mut self, b: u8) -> Result<(), HttpErrorKind> {
        let digit = match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            b'A'..=b'F' => b - b'A' + 10,
            _ => return Err(HttpErrorKind::InvalidChunkSize),
        };
        self.size = self
            .size
            .checked_mul(16)
            .and_then(|s| s.checked_add(u64::from(digit)))
            .ok_or(HttpErrorKind::ChunkSizeOverflow)?;
        Ok(())
    }

    /// The size line ended: data follows, or for the last chunk (size 0) the trailer section.
    fn end_size_line(&mut self) -> State {
        self.line_len = 0;
        if self.size == 0 {
            State::TrailerStart
        } else {
            State::Data(self.size)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the decoder over `input` fed in pieces of `step` bytes; returns the data bytes and
    /// how many input bytes completed the body.
    fn decode(
        input: &[u8],
        step: usize,
    ) -> Result<(Vec<u8>, Option<usize>), (usize, HttpErrorKind)> {
        let mut dec = ChunkedDecoder::new(64, 64);
        let mut data = Vec::new();
        let mut pos = 0;
        while pos < input.len() {
            let end = (pos + step).min(input.len());
            let mut i = pos;
            while i < end {
                match dec.advance(&input[i..end]).map_err(|(j, k)| (i + j, k))? {
                    Step::Data(n) => {
                        data.extend_from_slice(&input[i..i + n]);
                        i += n;
                    }
                    Step::Framing(n) => i += n,
                    Step::Done(n) => return Ok((data, Some(i + n))),
                }
            }
            pos = end;
        }
        Ok((data, None))
    }

    #[test]
    fn extensions_trailers_and_any_split() {
        let body = b"5;name=\"v;x\"\r\nhello\r\nA \t; ext\r\n0123456789\r\n0;last\r\nX-Sum: 1\r\nY: 2\r\n\r\nNEXT";
        for step in 1..=body.len() {
            assert_eq!(
                decode(body, step),
                Ok((b"hello0123456789".to_vec(), Some(body.len() - 4))),
                "step {step}"
            );
        }
    }

    #[test]
    fn bare_lf_and_uppercase_hex() {
        assert_eq!(
            decode(b"1F\n0123456789abcdef0123456789abcde\n0\n\n", 3).map(|r| r.0.len()),
            Ok(31)
        );
    }

    #[test]
    fn errors_with_positions() {
        assert_eq!(
            decode(b"x\r\n", 1),
            Err((0, HttpErrorKind::InvalidChunkSize))
        );
        assert_eq!(
            decode(b"3 4\r\n", 1),
            Err((2, HttpErrorKind::InvalidChunkSize))
        );
        assert_eq!(
            decode(b"3\rx", 1),
            Err((2, HttpErrorKind::InvalidChunkSize))
        );
        assert_eq!(
            decode(b"3\r\nabcX", 2),
            Err((6, HttpErrorKind::MissingChunkTerminator))
        );
        assert_eq!(
            decode(b"11111111111111111\r\n", 1),
            Err((16, HttpErrorKind::ChunkSizeOverflow))
        );
        let long = [b"1;".as_slice(), &[b'e'; 100]].concat();
        assert_eq!(
            decode(&long, 7),
            Err((64, HttpErrorKind::ChunkLineTooLong { limit: 64 }))
        );
        let trailers = [b"0\r\n".as_slice(), &[b't'; 100]].concat();
        assert_eq!(
            decode(&trailers, 7),
            Err((67, HttpErrorKind::TrailersTooLarge { limit: 64 }))
        );
        assert!(matches!(
            decode(b"0\r\n\rx", 1),
            Err((4, HttpErrorKind::InvalidTrailerSection))
        ));
    }

    #[test]
    fn missing_in_chunk_reports_data_left() {
        let mut dec = ChunkedDecoder::new(64, 64);
        assert_eq!(dec.advance(b"a\r\n"), Ok(Step::Framing(3)));
        assert_eq!(dec.advance(b"abc"), Ok(Step::Data(3)));
        assert_eq!(dec.missing_in_chunk(), 7);
    }
}
