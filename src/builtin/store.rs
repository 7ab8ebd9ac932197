//! `builtin:store`: the built-in HTTP store (see [`crate::store`]) started on an ephemeral
//! loopback port as a scenario's upstream, keeping its files in the scenario's `store` folder.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::store;

/// The folder `builtin:store` uses when the scenario names none: under the system temp dir,
/// `faultline-store-PID`, or `faultline-store-PID-2`, `-3`, … when that exists. A folder left by
/// an earlier process with the same pid (a long-lived CI runner) holds its objects: a CI trial's
/// dvc push found them there, uploaded nothing, and the chaos run passed having tested nothing.
/// Nothing is created here; the store makes the folder when it starts.
pub fn default_dir() -> PathBuf {
    fresh_under(&std::env::temp_dir(), std::process::id())
}

/// The first of `faultline-store-PID`, `…-2`, `…-3` (up to 1000) not present in `dir`.
fn fresh_under(dir: &Path, pid: u32) -> PathBuf {
    let base = dir.join(format!("faultline-store-{pid}"));
    (1..=1000u32)
        .map(|n| match n {
            1 => base.clone(),
            n => dir.join(format!("faultline-store-{pid}-{n}")),
        })
        .find(|candidate| !candidate.exists())
        .unwrap_or(base)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_folder_left_by_an_earlier_process_is_not_reused() {
        let dir = std::env::temp_dir().join(format!("faultline-store-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        assert_eq!(fresh_under(&dir, 7), dir.join("faultline-store-7"));
        std::fs::create_dir_all(dir.join("faultline-store-7/files")).expect("stale");
        assert_eq!(fresh_under(&dir, 7), dir.join("faultline-store-7-2"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
