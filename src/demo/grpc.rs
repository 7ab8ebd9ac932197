//! The gRPC story of `faultline demo --grpc`: two readers fetch the same blobs over one HTTP/2
//! connection each from the built-in ByteStream server, through the shipped scenario that resets
//! one Read stream mid-blob; one resumes from the bytes it has, one restarts at 0 and appends.
//! Each blob is checked against the sha256 and size in its resource name.

use std::collections::HashMap;
use std::path::PathBuf;

use bytes::Bytes;
use rand::{RngCore, SeedableRng};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use super::bytestream_client::{read_all, BlobRead, ReadStyle};
use super::bytestream_server::{self, ServedRead};
use super::DemoError;
use crate::inspect::{inspect_path, InspectOptions, LegFilter, Report};
use crate::scenario::schema::UpstreamSpec;
use crate::scenario::Scenario;

/// The shipped scenario this part of the demo runs.
pub const GRPC_SCENARIO: &str = include_str!("../../scenarios/grpc-reset-one-stream.toml");

/// Three blobs of 2 MiB and a bit: the reset after 1 MiB lands in the middle of one.
const BLOB_SIZES: [usize; 3] = [
    2 * 1024 * 1024 + 17,
    2 * 1024 * 1024 + 4099,
    3 * 1024 * 1024,
];

/// What one reader's run produced.
#[derive(Debug)]
pub struct ReaderRun {
    /// How the reader retries.
    pub style: ReadStyle,
    /// Per blob: its Reads and the bytes assembled (or why the reader could not run).
    pub reads: Result<Vec<BlobRead>, String>,
    /// The Reads the server was asked for.
    pub served: Vec<ServedRead>,
    /// Connections the proxy accepted.
    pub connections: u64,
    /// How often the scenario's rule fired.
    pub fired: u64,
    /// The capture file.
    pub capture: PathBuf,
    /// The proxy's and the server's ports, for tshark's `-d tcp.port==N,http2`.
    pub ports: (u16, u16),
    /// `faultline inspect` of the capture's client leg (or why it failed).
    pub inspection: Result<Report, String>,
}

impl ReaderRun {
    /// Whether every blob the reader assembled matches its resource name.
    pub fn all_intact(&self) -> bool {
        self.reads
            .as_ref()
            .is_ok_and(|reads| reads.iter().all(|r| verifies(&r.resource, &r.bytes)))
    }
}

/// Runs both readers and prints the story.
pub async fn run() -> Result<Vec<ReaderRun>, DemoError> {
    let scenario = Scenario::from_toml(
        GRPC_SCENARIO,
        "scenarios/grpc-reset-one-stream.toml",
        "grpc-reset-one-stream",
    )?;
    let blobs = demo_blobs();
    crate::say!(
        "faultline demo --grpc: scenario \"{}\" (seed {})",
        scenario.name,
        scenario.seed.unwrap_or(7)
    );
    crate::say!("  {}", scenario.description.as_deref().unwrap_or_default());
    crate::say!(
        "  {} blobs ({}) read at once over one HTTP/2 connection from the built-in google.bytestream server",
        blobs.len(),
        BLOB_SIZES
            .iter()
            .map(|s| format!("{s} B"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    // The numbers below do not all say "1 MiB": a trial could not tell why.
    crate::say!(
        "  (the server answers in {} KiB messages and a reader keeps only whole ones, so a Read cut after 1 MiB of response got fewer bytes; \"second\" counts Reads in the order the client opened them, by HTTP/2 stream)",
        bytestream_server::MESSAGE_SIZE / 1024
    );
    let mut runs = Vec::new();
    for style in [ReadStyle::Resume, ReadStyle::RestartAtZero] {
        let run = reader_run(&scenario, &blobs, style).await?;
        print_run(&run);
        runs.push(run);
    }
    Ok(runs)
}

/// Seeded blobs named `demo/blobs/{sha256}/{size}` as REAPI names them.
fn demo_blobs() -> Vec<(String, Bytes)> {
    BLOB_SIZES
        .iter()
        .enumerate()
        .map(|(i, &size)| {
            let mut data = vec![0u8; size];
            rand_chacha::ChaCha8Rng::seed_from_u64(200 + i as u64).fill_bytes(&mut data);
            let name = format!("demo/blobs/{}/{size}", hex::encode(Sha256::digest(&data)));
            (name, Bytes::from(data))
        })
        .collect()
}

/// Whether `bytes` have the sha256 and size the resource name `demo/blobs/{hash}/{size}` says.
fn verifies(resource: &str, bytes: &[u8]) -> bool {
    let mut parts = resource.rsplit('/');
    let size = parts.next().and_then(|s| s.parse::<usize>().ok());
    let hash = parts.next().unwrap_or_default();
    size == Some(bytes.len()) && hex::encode(Sha256::digest(bytes)) == hash
}

async fn reader_run(
    scenario: &Scenario,
    blobs: &[(String, Bytes)],
    style: ReadStyle,
) -> Result<ReaderRun, DemoError> {
    let label = match style {
        ReadStyle::Resume => "resume",
        ReadStyle::RestartAtZero => "restart",
    };
    let stop = CancellationToken::new();
    let server = bytestream_server::start(
        blobs.iter().cloned().collect::<HashMap<_, _>>(),
        stop.clone(),
    )
    .await
    .map_err(DemoError::Server)?;
    let mut scenario = scenario.clone();
    scenario.name = format!("{}-{label}", scenario.name);
    scenario.upstream = Some(UpstreamSpec::Address {
        host: server.addr.ip().to_string(),
        port: server.addr.port(),
    });
    let running = super::start_proxy(scenario, super::Story::Grpc).await?;
    let ports = (running.local_addr.port(), server.addr.port());
    let names: Vec<String> = blobs.iter().map(|(name, _)| name.clone()).collect();
    let reads = read_all(running.local_addr, &names, style).await;
    running.shutdown();
    let summary = running.wait().await;
    let served = server.served();
    stop.cancel();
    let _ = server.task.await;
    let capture = summary.capture.map(|c| c.path).unwrap_or_default();
    let inspection = inspect_path(
        &capture,
        &InspectOptions {
            leg: LegFilter::Client,
            key_log: Vec::new(),
        },
    )
    .map_err(|e| e.to_string());
    Ok(ReaderRun {
        style,
        reads,
        served,
        connections: summary.connections,
        fired: summary.rules.iter().map(|r| r.fired).sum(),
        capture,
        ports,
        inspection,
    })
}

fn print_run(run: &ReaderRun) {
    crate::say!();
    match run.style {
        ReadStyle::Resume => {
            crate::say!("reader 1 resumes a failed Read from the bytes it has (correct):")
        }
        ReadStyle::RestartAtZero => crate::say!(
            "reader 2 restarts a failed Read at offset 0 and appends what comes (the bug):"
        ),
    }
    let reads = match &run.reads {
        Ok(reads) => reads,
        Err(e) => {
            crate::say!("  the reader could not run: {e}");
            return;
        }
    };
    for read in reads {
        let tries: Vec<String> = read
            .attempts
            .iter()
            .enumerate()
            .map(|(i, a)| {
                let how = match &a.outcome {
                    Ok(()) => "OK".to_string(),
                    Err(e) => e.clone(),
                };
                format!("Read {} from {}: {} B, {how}", i + 1, a.offset, a.received)
            })
            .collect();
        crate::say!("  {}…  {}", short(&read.resource), tries.join("; "));
        let client_ok = read.attempts.last().is_some_and(|a| a.outcome.is_ok());
        if verifies(&read.resource, &read.bytes) {
            crate::say!(
                "    assembled {} B, sha256 and size match the resource name: intact",
                read.bytes.len()
            );
        } else {
            crate::say!(
                "    assembled {} B, sha256 does NOT match the resource name: CORRUPT{}",
                read.bytes.len(),
                if client_ok {
                    " (and the last Read said OK)"
                } else {
                    ""
                }
            );
        }
    }
    let served: Vec<String> = run
        .served
        .iter()
        .map(|s| format!("{}… at {}", short(&s.resource), s.offset))
        .collect();
    crate::say!("  the server served: {}", served.join(", "));
    crate::say!(
        "  faultline: {}, the rule fired {}; capture: {}",
        crate::plural::count(run.connections, "connection"),
        crate::plural::count(run.fired, "time"),
        run.capture.display()
    );
    match &run.inspection {
        Ok(report) => {
            for blob in &report.bytestream {
                for problem in &blob.problems {
                    crate::say!("  inspect: {}…: {problem}", short(&blob.resource));
                }
            }
            let text = report.render_text();
            let verdict = text
                .lines()
                .filter(|l| l.starts_with("OK") || l.starts_with("CORRUPT"));
            for line in verdict {
                crate::say!("  inspect: {line}");
            }
        }
        Err(e) => crate::say!("  inspect failed: {e}"),
    }
}

/// Whether inspect judged the run as it should: the wire carried every blob intact both times
/// (the restarting reader's corruption is its own), and the restart from 0 is noted.
pub fn inspected_as_expected(run: &ReaderRun) -> bool {
    let Ok(report) = &run.inspection else {
        return false;
    };
    let noted = report
        .bytestream
        .iter()
        .any(|b| b.problems.iter().any(|p| p.contains("starts over")));
    report.exit_code() == 0 && noted == (run.style == ReadStyle::RestartAtZero)
}

fn short(resource: &str) -> &str {
    resource.get(..resource.len().min(24)).unwrap_or(resource)
}

/// The tshark command that shows a run's HTTP/2 frames and faultline's comments on them.
pub fn tshark_hint(run: &ReaderRun) -> String {
    format!(
        "tshark -r {} -d tcp.port=={},http2 -d tcp.port=={},http2 -Y 'http2.type == 3 || frame.comment' -T fields -e frame.number -e http2.streamid -e http2.rst_stream.error -e frame.comment",
        run.capture.display(),
        run.ports.0,
        run.ports.1
    )
}
