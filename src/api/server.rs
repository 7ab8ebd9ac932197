//! The API's listeners and HTTP/1 serving (hyper): `localhost` means 127.0.0.1 and [::1], never
//! another interface unless `--api` names it.

use std::convert::Infallible;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

use super::{routes, Api};

/// A client must send its request head within this time.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a request in flight may take to finish once `serve` is told to stop. A trial's
/// client that sent half a request head (or a body that never came) kept `serve` from exiting,
/// with every summary unprinted, for as long as it stayed connected.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// Why the API cannot listen.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    /// `--api` is not an address.
    #[error("--api {0:?}: expected HOST:PORT such as localhost:8474 or 127.0.0.1:0")]
    Invalid(String),
    /// The address cannot be bound (in use, not local).
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
}

/// Binds the API's listeners for `spec`: `localhost:PORT` binds 127.0.0.1 and, where the host
/// has IPv6, [::1] on the same port; anything else binds the one address it names.
pub async fn bind(spec: &str) -> Result<Vec<TcpListener>, BindError> {
    let invalid = || BindError::Invalid(spec.to_string());
    let addrs: Vec<SocketAddr> = match spec.rsplit_once(':') {
        Some(("localhost", port)) => {
            let port: u16 = port.parse().map_err(|_| invalid())?;
            vec![
                SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port),
                SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), port),
            ]
        }
        _ => match spec.parse::<SocketAddr>() {
            Ok(addr) => vec![addr],
            Err(_) => {
                let (host, port) = spec.rsplit_once(':').ok_or_else(invalid)?;
                let port: u16 = port.parse().map_err(|_| invalid())?;
                let found: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
                    .await
                    .map_err(|_| invalid())?
                    .collect();
                vec![*found
                    .iter()
                    .find(|a| a.is_ipv4())
                    .or_else(|| found.first())
                    .ok_or_else(invalid)?]
            }
        },
    };
    let mut listeners: Vec<TcpListener> = Vec::new();
    for (i, mut addr) in addrs.into_iter().enumerate() {
        if let Some(first) = listeners.first() {
            // [::1] takes the port 127.0.0.1 got (which matters for port 0).
            if let Ok(bound) = first.local_addr() {
                addr.set_port(bound.port());
            }
        }
        match TcpListener::bind(addr).await {
            Ok(listener) => listeners.push(listener),
            // IPv6 loopback is a bonus: a host without it still serves on 127.0.0.1.
            Err(e) if i > 0 => debug!(%addr, error = %e, "API not on IPv6 loopback"),
            Err(source) => return Err(BindError::Bind { addr, source }),
        }
    }
    Ok(listeners)
}

/// Serves the API on `listeners` until `shutdown`; connections in flight finish their request
/// (within [`SHUTDOWN_GRACE`]).
pub async fn serve(listeners: Vec<TcpListener>, api: Arc<Api>, shutdown: CancellationToken) {
    let tracker = TaskTracker::new();
    for listener in listeners {
        let api = api.clone();
        let shutdown = shutdown.clone();
        let connections = tracker.clone();
        tracker.spawn(async move {
            loop {
                let accepted = tokio::select! {
                    accepted = listener.accept() => accepted,
                    () = shutdown.cancelled() => break,
                };
                match accepted {
                    Ok((stream, _)) => {
                        connections.spawn(connection(stream, api.clone(), shutdown.clone()));
                    }
                    Err(e) => {
                        warn!(side = "client", error = %e, "API accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
        });
    }
    tracker.close();
    tracker.wait().await;
}

async fn connection(stream: TcpStream, api: Arc<Api>, shutdown: CancellationToken) {
    let _ = stream.set_nodelay(true);
    let service = service_fn(move |request| {
        let api = api.clone();
        async move { Ok::<_, Infallible>(routes::handle(&api, request).await) }
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .keep_alive(true);
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    let mut conn = std::pin::pin!(conn);
    let result = tokio::select! {
        result = conn.as_mut() => result,
        () = shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            match tokio::time::timeout(SHUTDOWN_GRACE, conn).await {
                Ok(result) => result,
                Err(_) => {
                    debug!(side = "client", "API request unfinished {SHUTDOWN_GRACE:?} after the stop; connection closed");
                    return;
                }
            }
        }
    };
    if let Err(e) = result {
        debug!(side = "client", error = %e, "API connection ended");
    }
}
