//! Test upstreams written here: a `127.0.0.1:0` listener whose connections each run a handler,
//! stopped (with every connection it serves) when dropped.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use faultline::scenario::schema::UpstreamSpec;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::sleep;

/// A test upstream: its address and how many connections it accepted. Dropping it stops the
/// accept loop and every connection it serves.
pub struct Server {
    /// Where it listens.
    pub addr: SocketAddr,
    accepted: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl Server {
    /// Connections accepted so far.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Relaxed)
    }

    /// Its address as a scenario upstream.
    pub fn spec(&self) -> UpstreamSpec {
        UpstreamSpec::Address {
            host: self.addr.ip().to_string(),
            port: self.addr.port(),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves every connection of a fresh `127.0.0.1:0` listener with `handler`.
pub async fn serve<F, Fut>(handler: F) -> Server
where
    F: Fn(TcpStream) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a test upstream");
    serve_on(listener, handler)
}

/// Serves every connection of `listener` with `handler`.
pub fn serve_on<F, Fut>(listener: TcpListener, handler: F) -> Server
where
    F: Fn(TcpStream) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let addr = listener.local_addr().expect("test upstream address");
    let accepted = Arc::new(AtomicU64::new(0));
    let counter = accepted.clone();
    let task = tokio::spawn(async move {
        // Owned by the accept task, so aborting it aborts every connection too.
        let mut connections = JoinSet::new();
        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => {
                        counter.fetch_add(1, Relaxed);
                        connections.spawn(handler(stream));
                    }
                    Err(_) => sleep(Duration::from_millis(10)).await,
                },
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
    });
    Server {
        addr,
        accepted,
        task,
    }
}

/// Echoes a connection, then half-closes once the peer did.
pub async fn echo_connection(mut stream: TcpStream) {
    let (mut read, mut write) = stream.split();
    if tokio::io::copy(&mut read, &mut write).await.is_ok() {
        let _ = write.shutdown().await;
    }
}

/// An echo upstream that half-closes once its peer did.
pub async fn echo() -> Server {
    serve(echo_connection).await
}
