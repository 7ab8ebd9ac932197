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
    /// The user's to fix before anything runs (a `store` folder that cannot be created), as
    /// opposed to the machine failing (no port to listen on).
    pub setup: bool,
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
            let fresh = store_dir.is_none();
            let dir = store_dir.unwrap_or_else(store::default_dir);
            if let Err(e) = tokio::fs::create_dir_all(&dir).await {
                return Err(BuiltinError {
                    name: "builtin:store",
                    source: io::Error::new(
                        e.kind(),
                        format!("cannot create the store folder {}: {e}", dir.display()),
                    ),
                    setup: true,
                });
            }
            let started = store::spawn(&dir, shutdown).await;
            // A fresh folder nothing was stored in is removed when the store stops (each run
            // made one under the temp dir and left it); one with files is kept, and said.
            let started = match started {
                Ok((addr, task)) if fresh => Ok((addr, store::remove_when_empty(task, dir))),
                other => other,
            };
            ("builtin:store", started)
        }
    };
    let (addr, task) = started.map_err(|source| BuiltinError {
        name,
        source,
        setup: false,
    })?;
    Ok(Started { addr, task })
}
