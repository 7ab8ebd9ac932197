//! The TCP part of `faultline demo`: a built-in echo upstream, the shipped `demo-tcp` scenario
//! (compiled in) and a built-in client that opens four connections and reports, byte for byte,
//! what each one saw.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::{RngCore, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

use super::DemoError;
use crate::scenario::Scenario;

/// The shipped scenario the demo runs.
pub const DEMO_SCENARIO: &str = include_str!("../../scenarios/demo-tcp.toml");

/// Bytes each demo connection sends.
const PAYLOAD: usize = 256 * 1024;
/// Bound on each demo connection, so the demo always ends.
const PER_CONNECTION: Duration = Duration::from_secs(10);

/// What one client connection saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionReport {
    /// Bytes the client managed to write.
    pub sent: usize,
    /// Bytes the client read back.
    pub received: usize,
    /// Whether what came back is a prefix of what was sent (an echo must be).
    pub intact: bool,
    /// How the read side ended.
    pub ending: String,
    /// Time until the first byte came back.
    pub first_byte: Option<Duration>,
}

/// Runs the demo and prints what happened.
pub async fn run() -> Result<(), DemoError> {
    let scenario = Scenario::from_toml(DEMO_SCENARIO, "scenarios/demo-tcp.toml", "demo-tcp")?;
    let running = super::start_proxy(scenario).await?;
    let scenario = running.shared.rules.current();
    let seed = running.shared.seed;
    let upstream = scenario.upstream.clone().ok_or(DemoError::NoUpstream)?;
    crate::say!(
        "faultline demo: scenario \"{}\" (seed {seed}), proxy on {} in front of {upstream} ({})",
        scenario.name,
        running.local_addr,
        running.shared.upstream
    );
    crate::say!("{}", scenario.description.as_deref().unwrap_or_default());
    crate::say!();
    for n in 1..=4u64 {
        let report = exchange(running.local_addr, n).await;
        let rule = scenario
            .rules
            .iter()
            .enumerate()
            .find(|(_, r)| r.matcher.matches_connection(n, seed, r.key))
            .map(|(_, r)| format!("rule \"{}\"", r.name))
            .unwrap_or_else(|| "no rule (pass-through)".to_string());
        crate::say!("connection {n}: {rule}");
        crate::say!(
            "  sent {} bytes, got {} back ({}), then {}{}",
            report.sent,
            report.received,
            if report.intact {
                "intact prefix of what was sent"
            } else {
                "CORRUPTED"
            },
            report.ending,
            report
                .first_byte
                .map(|d| format!("; first byte after {} ms", d.as_millis()))
                .unwrap_or_default()
        );
    }
    running.shutdown();
    let summary = running.wait().await;
    crate::say!();
    crate::say_raw!("{summary}");
    if let Some(capture) = &summary.capture {
        crate::say!();
        crate::say!("See both legs of every connection (two TCP conversations each):");
        crate::say!("  tshark -r {} -q -z conv,tcp", capture.path.display());
    }
    Ok(())
}

/// One demo connection: send a seeded payload, half-close, read everything back.
pub async fn exchange(proxy: SocketAddr, n: u64) -> ConnectionReport {
    let mut payload = vec![0u8; PAYLOAD];
    rand_chacha::ChaCha8Rng::seed_from_u64(n).fill_bytes(&mut payload);
    let started = Instant::now();
    let result = timeout(PER_CONNECTION, async {
        let stream = TcpStream::connect(proxy).await?;
        let (mut read, mut write) = stream.into_split();
        let writer = async {
            let mut sent = 0;
            for piece in payload.chunks(16 * 1024) {
                if write.write_all(piece).await.is_err() {
                    return sent;
                }
                sent += piece.len();
            }
            let _ = write.shutdown().await;
            sent
        };
        let reader = async {
            let mut got = Vec::with_capacity(PAYLOAD);
            let mut first_byte = None;
            let mut buf = vec![0u8; 64 * 1024];
            let ending = loop {
                match read.read(&mut buf).await {
                    Ok(0) => break "closed cleanly (FIN)".to_string(),
                    Ok(n) => {
                        first_byte.get_or_insert_with(|| started.elapsed());
                        got.extend_from_slice(&buf[..n]);
                    }
                    Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {
                        break "connection reset (RST)".to_string()
                    }
                    Err(e) => break format!("error: {e}"),
                }
            };
            (got, ending, first_byte)
        };
        let (sent, (got, ending, first_byte)) = tokio::join!(writer, reader);
        Ok::<_, io::Error>(ConnectionReport {
            sent,
            received: got.len(),
            intact: payload.starts_with(&got),
            ending,
            first_byte,
        })
    })
    .await;
    match result {
        Ok(Ok(report)) => report,
        Ok(Err(e)) => ConnectionReport {
            sent: 0,
            received: 0,
            intact: true,
            ending: format!("could not connect: {e}"),
            first_byte: None,
        },
        Err(_) => ConnectionReport {
            sent: 0,
            received: 0,
            intact: true,
            ending: format!("timed out after {PER_CONNECTION:?}"),
            first_byte: None,
        },
    }
}
