//! Errors that stop a capture from starting, each naming the capture file.

use std::io;
use std::path::PathBuf;

/// Why a capture could not start. Raised by `CaptureSink::start`, before any traffic is accepted, so a
/// run never proceeds with a capture it cannot write.
///
/// Errors after start (disk full) do not surface here: the writer keeps consuming events so the proxy
/// never stalls, and reports the first write error in its `CaptureSummary`.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// The capture's parent directory is missing and could not be created.
    #[error("capture: cannot create directory {}: {source}", path.display())]
    CreateDir {
        /// The directory we tried to create.
        path: PathBuf,
        /// What the OS said.
        source: io::Error,
    },
    /// The capture file could not be created (permissions, read-only file system, a directory in the way).
    #[error("capture: cannot open {} for writing: {source}", path.display())]
    Open {
        /// The capture file.
        path: PathBuf,
        /// What the OS said.
        source: io::Error,
    },
    /// The file opened but its header could not be written (e.g. the disk is already full).
    #[error("capture: cannot write the header of {}: {source}", path.display())]
    Header {
        /// The capture file.
        path: PathBuf,
        /// What the OS said.
        source: io::Error,
    },
    /// Another process (another faultline run) holds the file's writing lock: two writers would
    /// interleave both runs into one damaged capture.
    #[error("capture {}: another faultline run is writing it now: name another file, or put {{pid}} in the name for one file per run", path.display())]
    Busy {
        /// The capture file.
        path: PathBuf,
    },
    /// `start` was called outside a tokio runtime, so there is nowhere to run the writer task.
    #[error("capture: no tokio runtime to run the writer for {}", path.display())]
    NoRuntime {
        /// The capture file.
        path: PathBuf,
    },
}
