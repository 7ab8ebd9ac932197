//! A batch of encoded capture records on its way to the file: headers are copied into one buffer,
//! large payloads are referenced (refcounted `Bytes`, no copy), and the whole batch is written with
//! vectored writes (`writev`).
//!
//! Copying every payload into the batch was a third of the writer's time on bulk transfers; with
//! references the only copy left is the kernel's, into the page cache.

use std::io::{self, IoSlice, Write};

use bytes::{Bytes, BytesMut};

/// Payloads shorter than this are copied: an iovec entry costs more than copying a few bytes.
const COPY_BELOW: usize = 2048;
/// Most iovec entries one `writev` takes (Linux `IOV_MAX`).
const IOV_MAX: usize = 1024;

/// Encoded records in file order: a list of pieces, each either copied header bytes or a payload.
#[derive(Debug, Default)]
pub(crate) struct Batch {
    /// Header bytes not yet closed into a piece.
    heads: BytesMut,
    pieces: Vec<Bytes>,
    len: usize,
}

impl Batch {
    /// Appends bytes by copying them (headers, padding, options).
    pub(crate) fn put(&mut self, bytes: &[u8]) {
        self.heads.extend_from_slice(bytes);
        self.len += bytes.len();
    }

    /// Appends a payload: by reference when large, copied when small.
    pub(crate) fn payload(&mut self, payload: &Bytes) {
        if payload.len() < COPY_BELOW {
            return self.put(payload);
        }
        if !self.heads.is_empty() {
            self.pieces.push(self.heads.split().freeze());
        }
        self.pieces.push(payload.clone());
        self.len += payload.len();
    }

    /// Bytes in the batch.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is pending.
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Takes the pieces out, leaving the batch empty (its header buffer keeps its capacity).
    pub(crate) fn take(&mut self) -> Vec<Bytes> {
        if !self.heads.is_empty() {
            self.pieces.push(self.heads.split().freeze());
        }
        self.len = 0;
        std::mem::take(&mut self.pieces)
    }
}

/// Writes every piece, in order, with as few `writev` calls as the kernel allows, then flushes;
/// returns the bytes written.
pub(crate) fn write_all(output: &mut dyn Write, pieces: &[Bytes]) -> io::Result<usize> {
    let mut index = 0;
    // Bytes of pieces[index] already written.
    let mut offset = 0;
    while index < pieces.len() {
        let slices: Vec<IoSlice<'_>> = pieces[index..]
            .iter()
            .take(IOV_MAX)
            .enumerate()
            .map(|(i, piece)| IoSlice::new(if i == 0 { &piece[offset..] } else { piece }))
            .collect();
        let mut written = match output.write_vectored(&slices) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        while written > 0 {
            let left = pieces[index].len() - offset;
            if written >= left {
                written -= left;
                index += 1;
                offset = 0;
            } else {
                offset += written;
                written = 0;
            }
        }
        // Skip empty pieces so the next call never starts on one.
        while index < pieces.len() && pieces[index].len() == offset {
            index += 1;
            offset = 0;
        }
    }
    output.flush()?;
    Ok(pieces.iter().map(Bytes::len).sum())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Accepts at most `step` bytes per call, like a pipe or a full disk would.
    struct Trickle {
        out: Vec<u8>,
        step: usize,
    }

    impl Write for Trickle {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let n = buf.len().min(self.step);
            self.out.extend_from_slice(&buf[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn pieces_are_written_in_order_whatever_the_partial_writes() {
        let big = Bytes::from((0..10_000u32).map(|i| i as u8).collect::<Vec<u8>>());
        let mut batch = Batch::default();
        let mut expected = Vec::new();
        for round in 0..3u8 {
            batch.put(&[round; 5]);
            expected.extend_from_slice(&[round; 5]);
            batch.payload(&big);
            expected.extend_from_slice(&big);
            batch.payload(&Bytes::from_static(b"tiny"));
            expected.extend_from_slice(b"tiny");
        }
        assert_eq!(batch.len(), expected.len());
        let pieces = batch.take();
        assert!(batch.is_empty());
        for step in [1, 7, 4096, usize::MAX] {
            let mut out = Trickle {
                out: Vec::new(),
                step,
            };
            write_all(&mut out, &pieces).expect("write");
            assert_eq!(out.out, expected, "step {step}");
        }
    }
}
