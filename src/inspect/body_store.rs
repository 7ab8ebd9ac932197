//! Keeps bodies (uploads, content-addressed downloads) for byte-for-byte comparison: in memory while small, spilled to a temporary file beyond.
//!
//! Bounds: a body stays in memory up to [`SPILL_AT`] bytes and only while all retained bodies together
//! hold less than [`MEMORY_BUDGET`]; past either, it moves to an unlinked temporary file (disk, not
//! RAM). A body larger than [`MAX_RETAINED`] stops being retained (it is still hashed and measured)
//! and is reported as not compared.

use std::cell::Cell;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::attempts::BodySource;

/// Bytes a single body may keep in memory before it is spilled.
pub const SPILL_AT: usize = 1024 * 1024;
/// Bytes all in-memory bodies together may hold; later bodies spill from their first byte.
pub const MEMORY_BUDGET: u64 = 256 * 1024 * 1024;
/// Largest body retained for comparison (on disk).
pub const MAX_RETAINED: u64 = 4 * 1024 * 1024 * 1024;

/// What one inspection holds in memory, shared by all its flows, so that its bounds hold for the
/// capture and not per flow: a capture of a thousand flows costs no more than one.
#[derive(Debug, Default)]
pub struct Memory {
    /// Bytes of retained bodies held in memory, against [`MEMORY_BUDGET`].
    pub bodies: Cell<u64>,
    /// Header-list bytes (RFC 9113 §6.5.2 count) the HTTP/2 flows keep for their streams.
    pub header_lists: Cell<u64>,
}

/// The memory use of one inspection, handed to each of its flows.
pub type MemoryUse = Rc<Memory>;

static SPILL_COUNTER: AtomicU64 = AtomicU64::new(0);

/// One retained body.
#[derive(Debug)]
pub struct RetainedBody {
    memory: Vec<u8>,
    spill: Option<Spill>,
    len: u64,
    overflowed: bool,
    usage: MemoryUse,
    error: Option<String>,
}

#[derive(Debug)]
struct Spill {
    file: File,
    path: PathBuf,
}

impl Drop for Spill {
    fn drop(&mut self) {
        // Already unlinked on Unix right after creation; elsewhere this removes it.
        let _ = fs::remove_file(&self.path);
    }
}

impl RetainedBody {
    /// An empty body accounting its memory in `usage`.
    pub fn new(usage: MemoryUse) -> Self {
        RetainedBody {
            memory: Vec::new(),
            spill: None,
            len: 0,
            overflowed: false,
            usage,
            error: None,
        }
    }

    /// True when the body grew past [`MAX_RETAINED`] or a spill write failed: not comparable.
    pub fn incomplete_copy(&self) -> Option<String> {
        if self.overflowed {
            return Some(format!(
                "body larger than {MAX_RETAINED} bytes is not retained"
            ));
        }
        self.error.clone()
    }

    /// Appends body bytes.
    pub fn append(&mut self, bytes: &[u8]) {
        if self.overflowed || self.error.is_some() {
            return;
        }
        if self.len + bytes.len() as u64 > MAX_RETAINED {
            self.overflowed = true;
            self.release();
            return;
        }
        self.len += bytes.len() as u64;
        if self.spill.is_none() {
            let fits = self.memory.len() + bytes.len() <= SPILL_AT
                && self.usage.bodies.get() + bytes.len() as u64 <= MEMORY_BUDGET;
            if fits {
                self.memory.extend_from_slice(bytes);
                self.usage
                    .bodies
                    .set(self.usage.bodies.get() + bytes.len() as u64);
                return;
            }
            if let Err(e) = self.start_spill() {
                self.error = Some(format!("cannot spill body to a temporary file: {e}"));
                self.release();
                return;
            }
        }
        if let Some(spill) = &mut self.spill {
            if let Err(e) = spill.file.write_all(bytes) {
                self.error = Some(format!(
                    "cannot write body to {}: {e}",
                    spill.path.display()
                ));
                self.release();
            }
        }
    }

    fn start_spill(&mut self) -> io::Result<()> {
        let n = SPILL_COUNTER.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("faultline-inspect-{}-{n}.body", std::process::id()));
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)?;
        #[cfg(unix)]
        let _ = fs::remove_file(&path);
        file.write_all(&self.memory)?;
        self.usage
            .bodies
            .set(self.usage.bodies.get() - self.memory.len() as u64);
        self.memory = Vec::new();
        self.spill = Some(Spill { file, path });
        Ok(())
    }

    fn release(&mut self) {
        self.usage
            .bodies
            .set(self.usage.bodies.get() - self.memory.len() as u64);
        self.memory = Vec::new();
        self.spill = None;
    }
}

impl Drop for RetainedBody {
    fn drop(&mut self) {
        self.release();
    }
}

impl BodySource for RetainedBody {
    fn len(&self) -> u64 {
        self.len
    }

    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        match &mut self.spill {
            Some(spill) => {
                spill.file.seek(SeekFrom::Start(offset))?;
                spill.file.read_exact(buf)
            }
            None => (&self.memory[..]).read_at(offset, buf),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_bodies_stay_in_memory_large_ones_spill_and_read_back() {
        let usage = MemoryUse::default();
        let mut small = RetainedBody::new(usage.clone());
        small.append(b"hello");
        assert_eq!(usage.bodies.get(), 5);
        let mut big = RetainedBody::new(usage.clone());
        let data: Vec<u8> = (0..SPILL_AT + 10).map(|i| (i % 251) as u8).collect();
        big.append(&data[..100]);
        big.append(&data[100..]);
        assert_eq!(usage.bodies.get(), 5, "spilled bytes are not in memory");
        let mut buf = [0; 4];
        big.read_at(SPILL_AT as u64 + 2, &mut buf)
            .expect("read back");
        assert_eq!(buf, data[SPILL_AT + 2..SPILL_AT + 6]);
        small.read_at(1, &mut buf[..3]).expect("read");
        assert_eq!(&buf[..3], b"ell");
        drop(small);
        assert_eq!(usage.bodies.get(), 0);
        assert!(big.incomplete_copy().is_none());
    }
}
