//! A small process-wide pool of kernel pipes for the splice relay, so a pipe is held only while a
//! direction moves data and an idle connection costs just its two sockets.
//!
//! Without a pool every spliced direction would keep its own pipe (two fds) for the life of the
//! connection: six fds per idle connection instead of two. Pipes go back to the pool only when empty;
//! one dropped with bytes inside (an error path) is closed instead, so no byte ever leaks from one
//! connection into another.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Mutex;

/// Capacity asked of the kernel for each pipe: the most bytes one splice moves. Failure to get it
/// (an unprivileged user past `pipe-user-pages-soft`) only costs speed.
pub const PIPE_CAPACITY: usize = 1 << 20;
/// Idle pipes kept for reuse; more are closed when returned. 64 pipes cost 128 fds, and bound the
/// kernel memory held by idle pipes (each pipe's pages are freed when it is empty).
const POOL_SIZE: usize = 64;

static POOL: Mutex<Vec<Pipe>> = Mutex::new(Vec::new());

/// A pipe used as the kernel-side buffer between two sockets.
#[derive(Debug)]
pub struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
    /// Bytes spliced in and not yet spliced out.
    pub(crate) filled: usize,
    /// Its two fds, counted against the open-file budget while it is open.
    _claim: super::fd_limit::FdClaim,
}

impl Pipe {
    fn open() -> io::Result<Pipe> {
        if !super::fd_limit::another_pipe_fits() {
            return Err(io::Error::other(
                "no fds to spare for a splice pipe under the open-file limit",
            ));
        }
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
        // SAFETY: F_SETPIPE_SZ takes an int argument and only changes the pipe's capacity.
        unsafe {
            libc::fcntl(
                write.as_raw_fd(),
                libc::F_SETPIPE_SZ,
                PIPE_CAPACITY as libc::c_int,
            )
        };
        Ok(Pipe {
            read,
            write,
            filled: 0,
            _claim: super::fd_limit::FdClaim::new(2),
        })
    }

    /// The end bytes are spliced out of.
    pub fn read_fd(&self) -> RawFd {
        self.read.as_raw_fd()
    }

    /// The end bytes are spliced into.
    pub fn write_fd(&self) -> RawFd {
        self.write.as_raw_fd()
    }
}

/// Takes an idle pipe from the pool, or opens one (an error when out of file descriptors).
pub fn take() -> io::Result<Pipe> {
    let pooled = POOL.lock().ok().and_then(|mut pool| pool.pop());
    match pooled {
        Some(pipe) => Ok(pipe),
        None => Pipe::open(),
    }
}

/// Returns a pipe for reuse. A pipe that still holds bytes, or one past the pool's size, is closed.
pub fn give_back(pipe: Pipe) {
    if pipe.filled != 0 {
        return;
    }
    if let Ok(mut pool) = POOL.lock() {
        if pool.len() < POOL_SIZE {
            pool.push(pipe);
        }
    }
}

/// Idle pipes in the pool now (for tests and the fd budget).
pub fn idle() -> usize {
    POOL.lock().map(|pool| pool.len()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dirty_pipes_are_closed_not_pooled() {
        let mut pipe = take().expect("pipe");
        pipe.filled = 1;
        let before = idle();
        give_back(pipe);
        assert!(
            idle() <= before,
            "a pipe with bytes in it is closed, not pooled"
        );
        let clean = take().expect("pipe");
        give_back(clean);
        assert!(idle() >= 1, "an empty pipe is kept for reuse");
    }
}
