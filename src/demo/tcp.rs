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
use crate::direction::Leg;
use crate::inspect::{inspect_path, FlowSummary, InspectOptions};
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
    /// The client's own address: the capture's client-leg flow of this connection carries it.
    pub local: Option<SocketAddr>,
}

/// Runs the demo and prints what happened.
///
/// Each connection is named by the flow numbers `faultline inspect` gives its two legs in the
/// capture (tshark's `tcp.stream`), found by the client's own address, so every number the demo
/// prints can be looked up in `inspect --json` or Wireshark as it is.
pub async fn run() -> Result<(), DemoError> {
    let scenario = Scenario::from_toml(DEMO_SCENARIO, "scenarios/demo-tcp.toml", "demo-tcp")?;
    let running = super::start_proxy(scenario, super::Story::Tcp).await?;
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
    let mut reports = Vec::new();
    // The proxy numbers connections from 1 in accept order, as a rule's `match.connection` does;
    // the demo opens one at a time, so its nth is the proxy's nth.
    for n in 1..=4u64 {
        let report = exchange(running.local_addr, n).await;
        let rule = scenario
            .rules
            .iter()
            .find(|r| r.matcher.matches_connection(n, seed, r.key))
            .map(|r| format!("rule \"{}\"", r.name))
            .unwrap_or_else(|| "no rule (pass-through)".to_string());
        reports.push((report, rule));
    }
    running.shutdown();
    let summary = running.wait().await;
    // Without its capture read back the demo cannot name flows; it says why instead of
    // reporting every connection as missing from the capture.
    let flows = match summary.capture.as_ref() {
        Some(capture) => match inspect_path(&capture.path, &InspectOptions::default()) {
            Ok(report) => report.flows,
            Err(e) => {
                crate::say!(
                    "cannot read the capture {} back: {e}",
                    capture.path.display()
                );
                Vec::new()
            }
        },
        None => Vec::new(),
    };
    let mut taken = Vec::new();
    let mut example = None;
    for (report, rule) in &reports {
        crate::say!();
        let legs = legs_of(&flows, report.local, &mut taken);
        if let (Some(c), Some(u)) = legs {
            if example.is_none() && !(c.faults.is_empty() && u.faults.is_empty()) {
                example = Some((c.id, u.id));
            }
        }
        crate::say!("{}: {rule}", describe_legs(legs));
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
        // The fault comments inspect reads off each leg, said once with the flows that carry them.
        let mut notes: Vec<(&str, Vec<u64>)> = Vec::new();
        for flow in [legs.0, legs.1].into_iter().flatten() {
            for fault in &flow.faults {
                let text = fault.trim_start_matches("faultline: ");
                match notes.iter_mut().find(|(t, _)| *t == text) {
                    Some((_, ids)) => ids.push(flow.id),
                    None => notes.push((text, vec![flow.id])),
                }
            }
        }
        for (text, ids) in notes {
            let ids: Vec<String> = ids.iter().map(u64::to_string).collect();
            let flows = if ids.len() == 1 { "flow" } else { "flows" };
            crate::say!("  capture, {flows} {}: {text}", ids.join(" and "));
        }
    }
    crate::say!();
    crate::say_raw!("{summary}");
    if let Some(capture) = &summary.capture {
        crate::say!();
        crate::say!(
            "The same flow numbers: faultline inspect {} (--json for every field)",
            capture.path.display()
        );
        crate::say!("One connection's two legs in Wireshark's terms (flow N is tcp.stream == N):");
        if let Some((c, u)) = example {
            crate::say!(
                "  tshark -r {} -Y 'tcp.stream == {c} || tcp.stream == {u}'",
                capture.path.display()
            );
        }
    }
    Ok(())
}

/// The client-leg flow that `local` opened and the upstream-leg flow the proxy opened for it:
/// the first upstream flow opened after it that no earlier connection took (the demo's
/// connections run one at a time, so that is the one).
fn legs_of<'a>(
    flows: &'a [FlowSummary],
    local: Option<SocketAddr>,
    taken: &mut Vec<u64>,
) -> (Option<&'a FlowSummary>, Option<&'a FlowSummary>) {
    let Some(local) = local else {
        return (None, None);
    };
    let client = flows
        .iter()
        .find(|f| f.leg == Some(Leg::Client) && f.client == local.to_string());
    let upstream = client.and_then(|c| {
        flows.iter().find(|f| {
            f.leg == Some(Leg::Upstream) && f.opened_ns >= c.opened_ns && !taken.contains(&f.id)
        })
    });
    taken.extend(upstream.map(|u| u.id));
    (client, upstream)
}

/// How a connection ended, as the client saw it. Linux reports a received RST once, to whichever
/// of the read or the write asks first: a read that then sees end-of-stream after a write was
/// reset is a reset, not a clean close.
fn describe_ending(read: &io::Result<()>, write_error: Option<io::ErrorKind>) -> String {
    match read {
        Err(e) if e.kind() == io::ErrorKind::ConnectionReset => "connection reset (RST)".into(),
        Err(e) => format!("error: {e}"),
        Ok(()) if write_error == Some(io::ErrorKind::ConnectionReset) => {
            "connection reset (RST, reported to the write)".into()
        }
        Ok(()) => "closed cleanly (FIN)".into(),
    }
}

/// `flow 2 (client leg) -> flow 3 (upstream leg)`, or what is missing from the capture.
fn describe_legs(legs: (Option<&FlowSummary>, Option<&FlowSummary>)) -> String {
    match legs {
        (Some(c), Some(u)) => format!("flow {} (client leg) -> flow {} (upstream leg)", c.id, u.id),
        (Some(c), None) => format!("flow {} (client leg; no upstream leg in the capture)", c.id),
        _ => "a connection not found in the capture".to_string(),
    }
}

/// One demo connection: send a seeded payload, half-close, read everything back.
pub async fn exchange(proxy: SocketAddr, n: u64) -> ConnectionReport {
    let mut payload = vec![0u8; PAYLOAD];
    rand_chacha::ChaCha8Rng::seed_from_u64(n).fill_bytes(&mut payload);
    let started = Instant::now();
    let result = timeout(PER_CONNECTION, async {
        let stream = TcpStream::connect(proxy).await?;
        let local = stream.local_addr().ok();
        let (mut read, mut write) = stream.into_split();
        let writer = async {
            let mut sent = 0;
            for piece in payload.chunks(16 * 1024) {
                if let Err(e) = write.write_all(piece).await {
                    return (sent, Some(e.kind()));
                }
                sent += piece.len();
            }
            let _ = write.shutdown().await;
            (sent, None)
        };
        let reader = async {
            let mut got = Vec::with_capacity(PAYLOAD);
            let mut first_byte = None;
            let mut buf = vec![0u8; 64 * 1024];
            let end = loop {
                match read.read(&mut buf).await {
                    Ok(0) => break Ok(()),
                    Ok(n) => {
                        first_byte.get_or_insert_with(|| started.elapsed());
                        got.extend_from_slice(&buf[..n]);
                    }
                    Err(e) => break Err(e),
                }
            };
            (got, end, first_byte)
        };
        let ((sent, write_error), (got, end, first_byte)) = tokio::join!(writer, reader);
        let ending = describe_ending(&end, write_error);
        Ok::<_, io::Error>(ConnectionReport {
            sent,
            received: got.len(),
            intact: payload.starts_with(&got),
            ending,
            first_byte,
            local,
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
            local: None,
        },
        Err(_) => ConnectionReport {
            sent: 0,
            received: 0,
            intact: true,
            ending: format!("timed out after {PER_CONNECTION:?}"),
            first_byte: None,
            local: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 15: one run in about ten, the reset connection of the demo read "closed cleanly
    /// (FIN)": the kernel had given the RST to the write, and the read then saw end-of-stream.
    #[test]
    fn a_reset_reported_to_the_write_is_still_a_reset() {
        let reset = || Err(io::Error::from(io::ErrorKind::ConnectionReset));
        assert_eq!(describe_ending(&reset(), None), "connection reset (RST)");
        assert_eq!(
            describe_ending(&Ok(()), Some(io::ErrorKind::ConnectionReset)),
            "connection reset (RST, reported to the write)"
        );
        assert_eq!(describe_ending(&Ok(()), None), "closed cleanly (FIN)");
        assert_eq!(
            describe_ending(&Ok(()), Some(io::ErrorKind::BrokenPipe)),
            "closed cleanly (FIN)",
            "the upstream closed first and the write found the pipe shut"
        );
    }
}
