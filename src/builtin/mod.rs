//! Upstreams faultline starts by itself on ephemeral loopback ports, so a scenario (and the demo)
//! runs with nothing else installed.

pub mod echo;
pub mod store;

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::scenario::schema::Builtin;

/// A built-in upstream that is running.
#[derive(Debug)]
pub struct Started {
    /// Where it listens (on loopback).
    pub addr: SocketAddr,
    /// Ends after `shutdown` is cancelled.
    pub task: JoinHandle<()>,
}

/// Why a built-in upstream could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot start built-in upstream {name}: {source}")]
pub struct BuiltinError {
    /// `builtin:NAME`.
    pub name: &'static str,
    /// What failed.
    #[source]
    pub source: io::Error,
}

/// Starts `builtin` until `shutdown` is cancelled; `store_dir` is the scenario's `store` folder
/// (only `builtin:store` uses it; a fresh temp folder when absent).
pub async fn start(
    builtin: Builtin,
    store_dir: Option<PathBuf>,
    shutdown: CancellationToken,
) -> Result<Started, BuiltinError> {
    let (name, started) = match builtin {
        Builtin::Echo => ("builtin:echo", echo::spawn(shutdown).await),
        Builtin::Store => {
            let dir = store_dir.unwrap_or_else(store::default_dir);
            ("builtin:store", store::spawn(&dir, shutdown).await)
        }
    };
    let (addr, task) = started.map_err(|source| BuiltinError { name, source })?;
    Ok(Started { addr, task })
}
