//! Socket-level actions the pump needs beyond reading and writing: abort with RST, and waiting
//! until written bytes have left our send queue.

use std::io;
#[cfg(target_os = "linux")]
use std::os::fd::AsRawFd;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::time::{sleep, Instant};

/// Closes `stream` with a TCP RST instead of a FIN: SO_LINGER with a zero timeout makes the
/// kernel discard unsent data and reset the peer. Zero linger never blocks the thread on drop.
pub fn abort(stream: TcpStream) {
    if let Err(e) = stream.set_zero_linger() {
        tracing::debug!(error = %e, "could not set SO_LINGER 0; the close may be a FIN");
    }
    drop(stream);
}

/// Bytes written to `stream` that the peer's kernel has not acknowledged yet (Linux SIOCOUTQ).
#[cfg(target_os = "linux")]
pub fn unacknowledged(stream: &TcpStream) -> io::Result<usize> {
    let mut value: libc::c_int = 0;
    // SAFETY: the fd is a valid, open TCP socket owned by `stream` for the duration of the call,
    // and TIOCOUTQ (== SIOCOUTQ on Linux) writes exactly one c_int through the pointer, which
    // points at a live, properly aligned c_int on our stack.
    let rc = unsafe { libc::ioctl(stream.as_raw_fd(), libc::TIOCOUTQ, &mut value) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(usize::try_from(value).unwrap_or(0))
}

/// Not Linux: no portable way to ask; reports nothing pending, so a reset does not wait.
#[cfg(not(target_os = "linux"))]
pub fn unacknowledged(_stream: &TcpStream) -> io::Result<usize> {
    Ok(0)
}

/// Waits (at most `limit`) until everything written to `stream` reached the peer, so a reset
/// injected "after N bytes" really lets exactly N bytes arrive instead of discarding the tail
/// that was still in our send queue. Returns the bytes still unacknowledged when it gave up.
pub async fn wait_delivered(stream: &TcpStream, limit: Duration) -> usize {
    let deadline = Instant::now() + limit;
    let mut pause = Duration::from_micros(200);
    loop {
        match unacknowledged(stream) {
            Ok(0) | Err(_) => return 0,
            Ok(left) if Instant::now() >= deadline => return left,
            Ok(_) => {
                sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(20));
            }
        }
    }
}
