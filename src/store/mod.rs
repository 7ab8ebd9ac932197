//! The built-in HTTP store upstream (`upstream = "builtin:store"`): a minimal DVC-compatible HTTP remote.
//!
//! A scenario that exercises uploads needs something on the far side that behaves like a real remote,
//! and it should run with nothing else installed. The store is that remote: an HTTP/1.1 server over a
//! directory. `PUT`/`POST` store the request body at the request path (atomically: a cut upload never
//! replaces a good file), `GET`/`HEAD` serve it back or answer 404, which is exactly the protocol of a
//! DVC HTTP remote (`<remote>/files/md5/XX/REST`). Every stored object is logged with its md5 and
//! sha256 so a run's log says what really arrived.
//!
//! Like mini-redis, [`serve`] takes an already bound listener and a shutdown token, so tests bind
//! `127.0.0.1:0` and the proxy decides where the store listens; [`spawn_ephemeral`] is the
//! `builtin:store` shortcut. hyper does the HTTP/1 work (keep-alive, pipelining, chunked bodies,
//! `Expect: 100-continue`): the store originates HTTP, it does not proxy it.
//!
//! Files: [`paths`] turns a request path into a safe relative path (pure), [`confine`] refuses
//! symlinks on disk, [`atomic_write`] streams uploads to a temp file and renames, [`file_body`]
//! streams downloads, [`handler`] dispatches on the method.

pub mod atomic_write;
pub mod confine;
mod error;
pub mod file_body;
pub mod handler;
pub mod paths;
#[cfg(test)]
pub(crate) mod test_dir;

pub use error::StoreError;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use handler::Handler;

/// A client that opened a connection must send its request head within this time; otherwise idle
/// and half-open connections would pile up for the whole run.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// An upload that receives no body bytes for this long is abandoned (temp file removed). Generous
/// on purpose: scenarios may stall traffic through the proxy for a long time, and the store must
/// not be the one that gives up first.
const BODY_IDLE_TIMEOUT: Duration = Duration::from_secs(300);

/// After shutdown, connections get this long to finish their current request before being aborted
/// (which removes the temp files of unfinished uploads).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Pause after a failed `accept` (e.g. out of file descriptors) so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Where the store keeps its files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfig {
    /// Root of the store: request path `/a/b` is file `dir/a/b`. Created if missing. Nothing outside
    /// it is ever read or written.
    pub dir: PathBuf,
}

/// Serves the store on `listener` until `shutdown` is cancelled.
///
/// Takes a bound listener so callers choose the address (tests bind `127.0.0.1:0`). On shutdown it
/// stops accepting, lets open connections finish their current request for a few seconds, then
/// aborts the rest and returns `Ok(())`. Connection and request errors are logged, never returned.
///
/// Errors: [`StoreError::CreateDir`] when the store directory cannot be created.
pub async fn serve(
    listener: TcpListener,
    config: StoreConfig,
    shutdown: CancellationToken,
) -> Result<(), StoreError> {
    tokio::fs::create_dir_all(&config.dir)
        .await
        .map_err(|source| StoreError::CreateDir {
            dir: config.dir.clone(),
            source,
        })?;
    match listener.local_addr() {
        Ok(addr) => tracing::info!(listen = %addr, dir = %config.dir.display(), "store serving"),
        Err(_) => tracing::info!(dir = %config.dir.display(), "store serving"),
    }
    let handler = Arc::new(Handler::new(config.dir, BODY_IDLE_TIMEOUT));
    let mut connections = JoinSet::new();
    let mut next_id: u64 = 0;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, client)) => {
                    next_id += 1;
                    let span = tracing::info_span!("store_connection", id = next_id, %client);
                    connections.spawn(
                        serve_connection(stream, Arc::clone(&handler), shutdown.clone())
                            .instrument(span),
                    );
                }
                Err(e) => {
                    tracing::warn!(side = "client", error = %e, "store accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
            Some(joined) = connections.join_next(), if !connections.is_empty() => {
                log_join(joined);
            }
        }
    }
    drop(listener);
    let drain = async {
        while let Some(joined) = connections.join_next().await {
            log_join(joined);
        }
    };
    if tokio::time::timeout(DRAIN_TIMEOUT, drain).await.is_err() {
        tracing::warn!(
            open = connections.len(),
            "store connections still busy after shutdown; aborting them"
        );
        connections.shutdown().await;
    }
    tracing::info!("store stopped");
    Ok(())
}

/// Binds `127.0.0.1:0`, spawns [`serve`] on it for `dir`, and returns the bound address and the
/// task; cancel `shutdown` and await the handle to stop it. This is what `builtin:store` uses.
///
/// Errors: [`StoreError::Bind`] / [`StoreError::LocalAddr`] when the loopback socket cannot be set
/// up, [`StoreError::CreateDir`] when `dir` cannot be created (checked before spawning, so the
/// caller learns it here rather than from the handle).
pub async fn spawn_ephemeral(
    dir: PathBuf,
    shutdown: CancellationToken,
) -> Result<(SocketAddr, JoinHandle<Result<(), StoreError>>), StoreError> {
    tokio::fs::create_dir_all(&dir)
        .await
        .map_err(|source| StoreError::CreateDir {
            dir: dir.clone(),
            source,
        })?;
    let wanted = SocketAddr::from(([127, 0, 0, 1], 0));
    let listener = TcpListener::bind(wanted)
        .await
        .map_err(|source| StoreError::Bind {
            addr: wanted,
            source,
        })?;
    let addr = listener.local_addr().map_err(StoreError::LocalAddr)?;
    let span = tracing::info_span!("store", listen = %addr);
    let handle = tokio::spawn(serve(listener, StoreConfig { dir }, shutdown).instrument(span));
    Ok((addr, handle))
}

/// Runs hyper's HTTP/1 state machine on one accepted connection until the client leaves or the
/// store shuts down (then the request in flight finishes and the connection closes).
async fn serve_connection(stream: TcpStream, handler: Arc<Handler>, shutdown: CancellationToken) {
    let service = service_fn(move |req| {
        let handler = Arc::clone(&handler);
        async move { Ok::<_, Infallible>(handler.handle(req).await) }
    });
    let mut builder = http1::Builder::new();
    // A client may shut its write side once its request is sent (`nc -N`, some test
    // harnesses) and still expects the answer, as nginx and Python's http.server give it;
    // hyper would otherwise close the connection at that EOF without answering.
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .half_close(true)
        .keep_alive(true);
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    let mut conn = std::pin::pin!(conn);
    let result = tokio::select! {
        result = conn.as_mut() => result,
        _ = shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    match result {
        Ok(()) => tracing::debug!("store connection closed"),
        // The client went away (mid-message, or before reading our answer); the handler already
        // logged any upload that this cut, so once is enough.
        Err(e) if client_went_away(&e) => {
            tracing::debug!(side = "client", error = %e, "store connection ended early")
        }
        Err(e) => tracing::warn!(side = "client", error = %e, "store connection failed"),
    }
}

/// True for the ordinary ways a client leaves: EOF mid-message, reset, broken pipe, idle timeout.
/// A fault-injecting proxy in front of the store causes these on purpose; they are not store faults.
fn client_went_away(e: &hyper::Error) -> bool {
    if e.is_incomplete_message() || e.is_canceled() || e.is_timeout() {
        return true;
    }
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            return matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::ConnectionAborted
                    | std::io::ErrorKind::BrokenPipe
                    | std::io::ErrorKind::UnexpectedEof
            );
        }
        source = cause.source();
    }
    false
}

fn log_join(joined: Result<(), tokio::task::JoinError>) {
    if let Err(e) = joined {
        if e.is_panic() {
            tracing::error!(error = %e, "store connection task panicked");
        }
    }
}
