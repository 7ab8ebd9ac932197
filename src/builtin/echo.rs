//! `builtin:echo`: a TCP echo server that keeps half-close semantics (it shuts down its write
//! half after echoing everything once the client shut down its own).

use std::io;
use std::net::{Ipv4Addr, SocketAddr};

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::debug;

/// Binds `127.0.0.1:0` and echoes every connection until `shutdown` is cancelled.
pub async fn spawn(shutdown: CancellationToken) -> io::Result<(SocketAddr, JoinHandle<()>)> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
    let addr = listener.local_addr()?;
    debug!(%addr, "builtin:echo listening");
    Ok((addr, tokio::spawn(serve(listener, shutdown))))
}

/// Echoes every accepted connection until `shutdown` is cancelled.
pub async fn serve(listener: TcpListener, shutdown: CancellationToken) {
    let tracker = TaskTracker::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = shutdown.cancelled() => break,
        };
        match accepted {
            Ok((stream, _)) => {
                let shutdown = shutdown.clone();
                tracker.spawn(async move {
                    tokio::select! {
                        _ = echo(stream) => {}
                        () = shutdown.cancelled() => {}
                    }
                });
            }
            Err(e) => {
                debug!(error = %e, "builtin:echo accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
    tracker.close();
    tracker.wait().await;
}

async fn echo(mut stream: TcpStream) -> io::Result<()> {
    let (mut read, mut write) = stream.split();
    tokio::io::copy(&mut read, &mut write).await?;
    write.shutdown().await
}
