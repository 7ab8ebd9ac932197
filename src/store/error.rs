//! The errors that stop the store as a whole (as opposed to one request or one connection).
//!
//! Request-level failures become HTTP answers and connection-level failures are logged; neither ever
//! stops the accept loop. Only what prevents serving at all is a [`StoreError`].

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Why the store could not start serving.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store directory does not exist and could not be created.
    #[error("store: cannot create directory {dir}: {source}")]
    CreateDir {
        /// The configured store directory.
        dir: PathBuf,
        /// What the OS said.
        source: io::Error,
    },
    /// The listening socket could not be bound.
    #[error("store: cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// What the OS said.
        source: io::Error,
    },
    /// The bound socket would not tell its address (needed to hand out the ephemeral port).
    #[error("store: cannot read the listening address: {0}")]
    LocalAddr(#[source] io::Error),
}
