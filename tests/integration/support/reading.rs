//! Reading a socket (or any async reader) to its end, and how that end came: FIN, reset or error.

use std::fmt;
use std::io;

use tokio::io::{AsyncRead, AsyncReadExt};

/// How a read side ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// A clean FIN.
    Eof,
    /// ECONNRESET: the peer sent a RST.
    Reset,
    /// Any other error.
    Failed(io::ErrorKind),
}

impl Ending {
    /// The ending an I/O error stands for.
    pub fn of(error: &io::Error) -> Ending {
        match error.kind() {
            io::ErrorKind::ConnectionReset => Ending::Reset,
            kind => Ending::Failed(kind),
        }
    }
}

/// Everything a side read, and how its reading ended.
pub struct Received {
    /// Every byte read, in order.
    pub bytes: Vec<u8>,
    /// How the reading stopped.
    pub ending: Ending,
}

impl fmt::Debug for Received {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = &self.bytes[..self.bytes.len().min(200)];
        write!(
            f,
            "{} bytes ({:?}…) then {:?}",
            self.bytes.len(),
            String::from_utf8_lossy(shown),
            self.ending
        )
    }
}

/// Reads until EOF or an error.
pub async fn read_all<R: AsyncRead + Unpin>(source: &mut R) -> Received {
    let mut bytes = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match source.read(&mut buf).await {
            Ok(0) => {
                return Received {
                    bytes,
                    ending: Ending::Eof,
                }
            }
            Ok(n) => bytes.extend_from_slice(&buf[..n]),
            Err(e) => {
                return Received {
                    bytes,
                    ending: Ending::of(&e),
                }
            }
        }
    }
}
