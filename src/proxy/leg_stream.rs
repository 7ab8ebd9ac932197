//! One leg's byte stream as the pumps see it: a plain TCP socket, or TLS that faultline
//! terminated (the client leg) or opened (the upstream leg) over one — so faults act on
//! plaintext — with the TCP socket underneath still reachable for the endings a fault needs
//! (RST, a FIN without close_notify, waiting until the peer took what was written).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::{client, server};

use super::record_tap::RecordTap;
use super::socket::abort;
use crate::tls::Replay;

/// A leg's stream.
#[derive(Debug)]
pub enum LegStream {
    /// Plain TCP (also TLS that faultline does not intercept: its records are just bytes).
    Plain(TcpStream),
    /// The client leg with TLS terminated by faultline (the peeked ClientHello replayed first;
    /// the record tap notes the ciphertext for raw captures).
    ClientTls(Box<server::TlsStream<Replay<RecordTap<TcpStream>>>>),
    /// The upstream leg with TLS opened by faultline.
    UpstreamTls(Box<client::TlsStream<RecordTap<TcpStream>>>),
}

impl LegStream {
    /// The TCP socket under the leg.
    pub fn socket(&self) -> &TcpStream {
        match self {
            LegStream::Plain(tcp) => tcp,
            LegStream::ClientTls(tls) => tls.get_ref().0.get_ref().get_ref(),
            LegStream::UpstreamTls(tls) => tls.get_ref().0.get_ref(),
        }
    }

    /// Whether the leg carries plain TCP (so splice(2) may move its bytes).
    pub fn is_plain(&self) -> bool {
        matches!(self, LegStream::Plain(_))
    }

    /// Closes the leg with a TCP RST (SO_LINGER 0), whatever runs above TCP.
    pub fn abort(self) {
        match self {
            LegStream::Plain(tcp) => abort(tcp),
            LegStream::ClientTls(tls) => {
                let (replay, _) = tls.into_inner();
                abort(replay.into_parts().1.into_inner());
            }
            LegStream::UpstreamTls(tls) => abort(tls.into_inner().0.into_inner()),
        }
    }

    /// Ends the leg's sending side. With `notify` a TLS leg first says close_notify (a clean
    /// close, as a server answering `Connection: close` does); without it only the TCP FIN goes
    /// out, which is how a connection cut by the network looks to TLS.
    pub async fn finish(&mut self, notify: bool) -> io::Result<()> {
        match self {
            LegStream::Plain(tcp) => tcp.shutdown().await,
            tls if notify => tls.shutdown().await,
            tls => {
                let _ = tls.flush().await;
                socket2::SockRef::from(tls.socket()).shutdown(std::net::Shutdown::Write)
            }
        }
    }
}

/// Ending a stream's sending side, for what closes a leg: a plain socket or a [`LegStream`].
pub trait FinishWrite: AsyncRead + AsyncWrite + Unpin {
    /// Sends a FIN (after close_notify on TLS when `notify`).
    fn finish_write(&mut self, notify: bool) -> impl std::future::Future<Output = io::Result<()>>;
}

impl FinishWrite for TcpStream {
    async fn finish_write(&mut self, _notify: bool) -> io::Result<()> {
        self.shutdown().await
    }
}

impl FinishWrite for LegStream {
    async fn finish_write(&mut self, notify: bool) -> io::Result<()> {
        self.finish(notify).await
    }
}

impl AsyncRead for LegStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            LegStream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            LegStream::ClientTls(s) => {
                let polled = Pin::new(s.as_mut()).poll_read(cx, buf);
                end_of_stream(polled, s.get_ref().0.get_ref(), "client")
            }
            LegStream::UpstreamTls(s) => {
                let polled = Pin::new(s.as_mut()).poll_read(cx, buf);
                end_of_stream(polled, s.get_ref().0, "upstream")
            }
        }
    }
}

/// A TLS read that failed because the peer's TCP FIN came without a close_notify (rustls:
/// `UnexpectedEof`, once every byte before it was read) is the end of the stream, as for a
/// plain socket, when the FIN came after a whole record: many TLS stacks end a stream so
/// (Python's `ssl` closed without `unwrap`, moto after its response, servers after
/// `Connection: close`), and a proxy that took it for a failure reset both legs with the
/// response's tail still queued for the client (an 11 MB S3 download arrived as 9.8 MB). Its
/// bytes are relayed, then the end is carried across as it came, a FIN without close_notify
/// (see [`BareEnds`](super::record_tap::BareEnds)). A FIN inside a record stays an error: the
/// stream was cut short, which the connection mirrors as a cut.
fn end_of_stream(
    polled: Poll<io::Result<()>>,
    tap: &RecordTap<TcpStream>,
    peer: &str,
) -> Poll<io::Result<()>> {
    match polled {
        Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::UnexpectedEof && tap.at_record_end() => {
            tracing::debug!(
                peer,
                "the {peer} closed its TLS stream with a TCP FIN and no close_notify, after a whole record: read as the end of its stream"
            );
            tap.note_bare_end();
            Poll::Ready(Ok(()))
        }
        other => other,
    }
}

/// Ends a TLS leg's sending side (the pump's end of a direction) the way the other leg's peer
/// ended: close_notify + FIN, or a bare FIN when that peer sent one (see
/// [`BareEnds`](super::record_tap::BareEnds)).
fn poll_finish<S: AsyncWrite + Unpin>(
    tls: &mut S,
    cx: &mut Context<'_>,
    tap: fn(&S) -> &RecordTap<TcpStream>,
) -> Poll<io::Result<()>> {
    if !tap(tls).other_ended_bare() {
        return Pin::new(tls).poll_shutdown(cx);
    }
    std::task::ready!(Pin::new(&mut *tls).poll_flush(cx))?;
    Poll::Ready(socket2::SockRef::from(tap(tls).get_ref()).shutdown(std::net::Shutdown::Write))
}

impl AsyncWrite for LegStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            LegStream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            LegStream::ClientTls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            LegStream::UpstreamTls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            LegStream::Plain(s) => Pin::new(s).poll_flush(cx),
            LegStream::ClientTls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            LegStream::UpstreamTls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            LegStream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            LegStream::ClientTls(s) => poll_finish(s.as_mut(), cx, |s| s.get_ref().0.get_ref()),
            LegStream::UpstreamTls(s) => poll_finish(s.as_mut(), cx, |s| s.get_ref().0),
        }
    }
}
