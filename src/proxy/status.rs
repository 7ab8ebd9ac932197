//! The live status line `faultline run` draws on a terminal: connections open and in total,
//! bytes each way, faults fired, capture size — redrawn at most four times a second, and never
//! when stderr is not a terminal (logs and CI output stay plain).

use std::fmt;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;

use super::RunShared;
use crate::plural;

/// What the status line shows, read from a run's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    /// Connections being served.
    pub open: u64,
    /// Connections accepted.
    pub total: u64,
    /// Bytes written toward the upstream.
    pub up: u64,
    /// Bytes written toward the client.
    pub down: u64,
    /// Faults that took effect.
    pub fired: u64,
    /// Bytes of capture on disk, when capturing.
    pub capture: Option<u64>,
}

impl Status {
    /// The counters of `run` now; `capture` is the capture file's size so far.
    pub fn of(run: &RunShared, capture: Option<u64>) -> Status {
        Status {
            open: run.active.load(Relaxed),
            total: run.stats.connections.load(Relaxed),
            up: run.stats.bytes[0].load(Relaxed),
            down: run.stats.bytes[1].load(Relaxed),
            fired: run.stats.fired_total(),
            capture,
        }
    }
}

impl Status {
    /// The line for a terminal `width` columns wide: the full sentence when it fits, else a
    /// compact one, else the compact one cut. It stays shorter than the width, because a line
    /// that reaches the last column wraps on many terminals, and `\r` with erase-line then
    /// redraws below the old line instead of over it (an 80-column terminal filled with status
    /// lines).
    pub fn line(&self, width: usize) -> String {
        let room = width.saturating_sub(1).max(1);
        let full = self.to_string();
        if full.chars().count() <= room {
            return full;
        }
        let mut compact = format!(
            "{} open/{} · up {} · down {} · {} fired",
            self.open,
            self.total,
            size(self.up),
            size(self.down),
            self.fired
        );
        if let Some(capture) = self.capture {
            compact.push_str(&format!(" · cap {}", size(capture)));
        }
        compact.chars().take(room).collect()
    }
}

/// The width of the terminal stderr is, in columns; `None` when it is not a terminal or does
/// not say.
pub fn terminal_width() -> Option<usize> {
    let mut size = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one `winsize` through the pointer, which points at a live,
    // properly aligned local; on failure nothing is written and the return value says so.
    let rc = unsafe { libc::ioctl(libc::STDERR_FILENO, libc::TIOCGWINSZ, &mut size) };
    (rc == 0 && size.ws_col > 0).then_some(usize::from(size.ws_col))
}

/// `1.5 MiB`, `800 B`.
fn size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} open / {} · client->upstream {} · upstream->client {} · {} fired",
            self.open,
            plural::count(self.total, "connection"),
            size(self.up),
            size(self.down),
            plural::count(self.fired, "fault"),
        )?;
        if let Some(capture) = self.capture {
            write!(f, " · capture {}", size(capture))?;
        }
        Ok(())
    }
}

/// Whether a status line is on screen, so log lines clear it before they print (the next
/// redraw brings it back).
#[derive(Debug, Clone, Default)]
pub struct StatusShown(Arc<AtomicBool>);

impl StatusShown {
    /// Draws `status` over the current line of stderr.
    pub fn draw(&self, status: &Status) {
        // A terminal that does not say its width (a bare pty) gets the whole line.
        let line = status.line(terminal_width().unwrap_or(usize::MAX));
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[2K{line}");
        let _ = err.flush();
        self.0.store(true, Relaxed);
    }

    /// Whether the line is on the terminal now (no log line cleared it since it was drawn).
    pub fn is_shown(&self) -> bool {
        self.0.load(Relaxed)
    }

    /// Clears the line (before a log line, and at the end of the run).
    pub fn clear(&self) {
        if self.0.swap(false, Relaxed) {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K");
            let _ = err.flush();
        }
    }
}

/// A stderr writer for logs that clears the status line first.
#[derive(Debug, Clone, Default)]
pub struct LogWriter {
    shown: StatusShown,
}

impl LogWriter {
    /// Log lines that make room for `shown`'s status line.
    pub fn new(shown: StatusShown) -> Self {
        LogWriter { shown }
    }
}

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.shown.clear();
        std::io::stderr().write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_says_what_moved() {
        let status = Status {
            open: 2,
            total: 40,
            up: 1536,
            down: 5 * 1024 * 1024,
            fired: 1,
            capture: Some(800),
        };
        assert_eq!(
            status.to_string(),
            "2 open / 40 connections · client->upstream 1.5 KiB · upstream->client 5.0 MiB · 1 fault fired · capture 800 B"
        );
    }

    #[test]
    fn the_line_fits_a_narrow_terminal_without_reaching_its_last_column() {
        let status = Status {
            open: 0,
            total: 0,
            up: 0,
            down: 0,
            fired: 0,
            capture: Some(12 * 1024),
        };
        let wide = status.line(200);
        assert_eq!(wide, status.to_string());
        let eighty = status.line(80);
        assert!(eighty.chars().count() < 80, "{eighty}");
        assert_eq!(
            eighty,
            "0 open/0 · up 0 B · down 0 B · 0 fired · cap 12.0 KiB"
        );
        let tiny = status.line(20);
        assert_eq!(tiny.chars().count(), 19, "{tiny}");
    }

    #[test]
    fn one_connection_and_no_fault_read_right() {
        let status = Status {
            open: 0,
            total: 1,
            up: 0,
            down: 0,
            fired: 0,
            capture: None,
        };
        assert_eq!(
            status.to_string(),
            "0 open / 1 connection · client->upstream 0 B · upstream->client 0 B · 0 faults fired"
        );
    }
}
