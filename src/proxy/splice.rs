//! Zero-copy relay for a direction nobody needs to look at: no fault, no HTTP rule, no capture.
//!
//! Bytes move socket → pipe → socket inside the kernel with splice(2), so a pass-through
//! direction costs no copy through user space. Half-close and error reporting are the same as the
//! copying pump's; anything that needs the bytes (faults, HTTP rules, captures) uses the pump.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use tokio::io::{AsyncWriteExt, Interest};
use tokio::net::tcp::{ReadHalf, WriteHalf};

use super::connection::ConnectionShared;
use super::pump::PumpEnd;
use crate::direction::Direction;

/// Bytes asked of the kernel per splice: the pipe is sized to hold them.
const SPLICE_CHUNK: usize = 1 << 20;

/// A pipe used as the kernel-side buffer between two sockets.
struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
}

impl Pipe {
    fn new() -> io::Result<Pipe> {
        let mut fds: [RawFd; 2] = [-1, -1];
        // SAFETY: `fds` is a live array of two c_ints, exactly what pipe2 writes on success; on
        // failure nothing is written and we return before using it.
        let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: pipe2 succeeded, so both fds are open and owned by nobody else; OwnedFd takes
        // sole ownership and closes each exactly once.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        // A larger pipe means fewer splices per megabyte; failure only costs speed.
        // SAFETY: F_SETPIPE_SZ takes an int argument and only changes the pipe's capacity.
        unsafe {
            libc::fcntl(
                write.as_raw_fd(),
                libc::F_SETPIPE_SZ,
                SPLICE_CHUNK as libc::c_int,
            )
        };
        Ok(Pipe { read, write })
    }
}

/// Moves up to `len` bytes from `from` to `to` without blocking.
fn splice(from: RawFd, to: RawFd, len: usize) -> io::Result<usize> {
    // SAFETY: both fds are open for the duration of the call (borrowed from live sockets and an
    // owned pipe), null offsets mean "current position" as splice(2) requires for sockets and
    // pipes, and the kernel writes no memory of ours.
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

/// Relays `direction` from `source` to `destination` through a pipe until EOF or an error. Returns
/// `None` when splicing is not possible here (no pipe), so the caller falls back to the pump.
pub async fn splice_pump(
    source: &mut ReadHalf<'_>,
    destination: &mut WriteHalf<'_>,
    direction: Direction,
    conn: &ConnectionShared,
) -> Option<PumpEnd> {
    let pipe = Pipe::new().ok()?;
    let src = source.as_ref().as_raw_fd();
    let dst = destination.as_ref().as_raw_fd();
    loop {
        // Fill the pipe from the source socket.
        let n = loop {
            if let Err(e) = source.as_ref().readable().await {
                return Some(PumpEnd::SourceFailed(e));
            }
            match source.as_ref().try_io(Interest::READABLE, || {
                splice(src, pipe.write.as_raw_fd(), SPLICE_CHUNK)
            }) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Some(PumpEnd::SourceFailed(e)),
            }
        };
        if n == 0 {
            conn.source_finished(direction).await;
            return Some(match destination.shutdown().await {
                Ok(()) => {
                    conn.tap.destination_fin(direction).await;
                    PumpEnd::Finished
                }
                Err(e) => PumpEnd::DestinationFailed(e),
            });
        }
        // Drain it into the destination socket.
        let mut left = n;
        while left > 0 {
            if let Err(e) = destination.as_ref().writable().await {
                return Some(PumpEnd::DestinationFailed(e));
            }
            match destination.as_ref().try_io(Interest::WRITABLE, || {
                splice(pipe.read.as_raw_fd(), dst, left)
            }) {
                Ok(m) => left -= m,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Some(PumpEnd::DestinationFailed(e)),
            }
        }
        conn.run.stats.add_bytes(direction, n);
    }
}
