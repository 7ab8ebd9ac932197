//! Zero-copy relay for a direction nobody needs to look at: no fault, no HTTP rule, no capture.
//!
//! Bytes move socket → pipe → socket inside the kernel with splice(2), so a pass-through
//! direction costs no copy through user space. The pipe comes from a small pool
//! ([`super::pipe_pool`]) and is held only while the direction moves data: an idle connection
//! holds no pipe, just its two sockets. Half-close and error reporting are the same as the copying
//! pump's; anything that needs the bytes (faults, HTTP rules, captures) uses the pump.
//!
//! splice(2) is Linux-only; elsewhere [`splice_pump`] always declines and the pump relays.

use tokio::net::tcp::{ReadHalf, WriteHalf};

use super::connection::ConnectionShared;
use super::pump::PumpEnd;
use crate::direction::Direction;

/// Relays `direction` from `source` to `destination` through pooled pipes until EOF or an error.
///
/// Returns `None` when splicing is not possible (no pipe could be opened, e.g. out of file
/// descriptors, or not Linux). That only happens while no pipe holds any byte of this direction,
/// so the caller can go on with the copying pump from exactly where this left off.
#[cfg(target_os = "linux")]
pub async fn splice_pump(
    source: &mut ReadHalf<'_>,
    destination: &mut WriteHalf<'_>,
    direction: Direction,
    conn: &ConnectionShared,
) -> Option<PumpEnd> {
    linux::splice_pump(source, destination, direction, conn).await
}

/// Not Linux: no splice(2); the caller relays with the pump.
#[cfg(not(target_os = "linux"))]
pub async fn splice_pump(
    _source: &mut ReadHalf<'_>,
    _destination: &mut WriteHalf<'_>,
    _direction: Direction,
    _conn: &ConnectionShared,
) -> Option<PumpEnd> {
    None
}

#[cfg(target_os = "linux")]
mod linux {
    use std::io;
    use std::os::fd::{AsRawFd, RawFd};

    use tokio::io::{AsyncWriteExt, Interest};
    use tokio::net::tcp::{ReadHalf, WriteHalf};

    use super::super::connection::ConnectionShared;
    use super::super::pipe_pool::{self, Pipe, PIPE_CAPACITY};
    use super::super::pump::PumpEnd;
    use crate::direction::Direction;

    /// Moves up to `len` bytes from `from` to `to` without blocking.
    fn splice(from: RawFd, to: RawFd, len: usize) -> io::Result<usize> {
        // SAFETY: both fds are open for the duration of the call (borrowed from live sockets and
        // an owned pipe), null offsets mean "current position" as splice(2) requires for sockets
        // and pipes, and the kernel writes no memory of ours.
        let n = unsafe {
            libc::splice(
                from,
                std::ptr::null_mut(),
                to,
                std::ptr::null_mut(),
                len,
                libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK,
            )
        };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    }

    /// What a burst of data movement ended with.
    enum Burst {
        /// The source has nothing more for now: give the pipe back and wait.
        Idle,
        /// The source shut down its write half.
        Eof,
        /// The direction ended with an error.
        Failed(PumpEnd),
    }

    pub(super) async fn splice_pump(
        source: &mut ReadHalf<'_>,
        destination: &mut WriteHalf<'_>,
        direction: Direction,
        conn: &ConnectionShared,
    ) -> Option<PumpEnd> {
        loop {
            if let Err(e) = source.as_ref().readable().await {
                return Some(PumpEnd::SourceFailed(e));
            }
            // Out of fds: no byte of this direction is in a pipe, so the pump can take over.
            let mut pipe = pipe_pool::take().ok()?;
            let burst = burst(source, destination, direction, conn, &mut pipe).await;
            pipe_pool::give_back(pipe);
            match burst {
                Burst::Idle => continue,
                Burst::Failed(end) => return Some(end),
                Burst::Eof => {
                    conn.source_finished(direction).await;
                    return Some(match destination.shutdown().await {
                        Ok(()) => {
                            conn.tap.destination_fin(direction).await;
                            PumpEnd::Finished
                        }
                        Err(e) => PumpEnd::DestinationFailed(e),
                    });
                }
            }
        }
    }

    /// Splices source → pipe → destination for as long as the source has bytes ready.
    async fn burst(
        source: &mut ReadHalf<'_>,
        destination: &mut WriteHalf<'_>,
        direction: Direction,
        conn: &ConnectionShared,
        pipe: &mut Pipe,
    ) -> Burst {
        let src = source.as_ref().as_raw_fd();
        let dst = destination.as_ref().as_raw_fd();
        loop {
            let n = match source.as_ref().try_io(Interest::READABLE, || {
                splice(src, pipe.write_fd(), PIPE_CAPACITY)
            }) {
                Ok(0) => return Burst::Eof,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Burst::Idle,
                Err(e) => return Burst::Failed(PumpEnd::SourceFailed(e)),
            };
            pipe.filled = n;
            while pipe.filled > 0 {
                if let Err(e) = destination.as_ref().writable().await {
                    return Burst::Failed(PumpEnd::DestinationFailed(e));
                }
                match destination.as_ref().try_io(Interest::WRITABLE, || {
                    splice(pipe.read_fd(), dst, pipe.filled)
                }) {
                    Ok(m) => pipe.filled -= m,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                    Err(e) => return Burst::Failed(PumpEnd::DestinationFailed(e)),
                }
            }
            conn.run.stats.add_bytes(direction, n);
        }
    }
}
