//! `builtin:store`: the built-in HTTP store (see [`crate::store`]) started on an ephemeral
//! loopback port as a scenario's upstream, keeping its files in the scenario's `store` folder.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::store;

/// The folder `builtin:store` uses when the scenario names none: fresh per process, under the
/// system temp dir.
pub fn default_dir() -> PathBuf {
    std::env::temp_dir().join(format!("faultline-store-{}", std::process::id()))
}

/// Starts the store on `127.0.0.1:0` keeping files in `dir`, until `shutdown` is cancelled.
pub async fn spawn(
    dir: &Path,
    shutdown: CancellationToken,
) -> io::Result<(SocketAddr, JoinHandle<()>)> {
    let (addr, task) = store::spawn_ephemeral(dir.to_path_buf(), shutdown)
        .await
        .map_err(|e| io::Error::other(e.to_string()))?;
    info!(dir = %dir.display(), %addr, "builtin:store serving");
    let task = tokio::spawn(async move {
        if let Ok(Err(e)) = task.await {
            warn!(error = %e, "builtin:store stopped with an error");
        }
    });
    Ok((addr, task))
}

/// Waits for the store `task` to end, then removes `dir` if nothing was stored in it.
pub fn remove_when_empty(task: JoinHandle<()>, dir: PathBuf) -> JoinHandle<()> {
    tokio::spawn(async move {
        let _ = task.await;
        match tokio::fs::remove_dir(&dir).await {
            Ok(()) => info!(dir = %dir.display(), "builtin:store removed its empty folder"),
            Err(_) => info!(dir = %dir.display(), "builtin:store keeps its files"),
        }
    })
}
