//! The HTTP story of `faultline demo`: two clients upload the same files through the "first
//! attempt fails" scenario to the built-in store; one rewinds before retrying, one does not. The
//! store's contents and the capture inspection tell them apart.

use std::path::{Path, PathBuf};

use md5::{Digest, Md5};
use rand::{RngCore, SeedableRng};

use super::upload_client::{upload, Attempt, RetryStyle};
use super::DemoError;
use crate::inspect::{inspect_path, InspectOptions, LegFilter};
use crate::scenario::Scenario;

/// The shipped scenario this part of the demo runs.
pub const DEMO_SCENARIO: &str = include_str!("../../scenarios/demo-http.toml");

/// Sizes of the demo's files: a few bytes, a few hundred KiB, a couple of MiB.
const FILE_SIZES: [usize; 3] = [5, 300 * 1024, 2 * 1024 * 1024 + 123];

/// What one client's run produced.
#[derive(Debug)]
pub struct ClientRun {
    /// How the client retries.
    pub style: RetryStyle,
    /// Per file: its path and attempts.
    pub uploads: Vec<(String, Vec<Attempt>)>,
    /// Per file: stored length and whether the stored bytes match the md5 in the path.
    pub stored: Vec<(String, Option<usize>, bool)>,
    /// The capture file.
    pub capture: PathBuf,
    /// `faultline inspect` of that capture: its findings (or its OK line) and whether it found
    /// corruption.
    pub inspection: Result<(Vec<String>, bool), String>,
}

/// Runs both clients and prints the story.
pub async fn run() -> Result<Vec<ClientRun>, DemoError> {
    let scenario = Scenario::from_toml(DEMO_SCENARIO, "scenarios/demo-http.toml", "demo-http")?;
    let files = demo_files();
    crate::say!(
        "faultline demo: scenario \"{}\" (seed {})",
        scenario.name,
        scenario.seed.unwrap_or(7)
    );
    crate::say!("  {}", scenario.description.as_deref().unwrap_or_default());
    crate::say!(
        "  {} files ({}) uploaded with PUT to a DVC-style remote (/files/md5/XX/…) on the built-in store",
        files.len(),
        FILE_SIZES.iter().map(|s| format!("{s} B")).collect::<Vec<_>>().join(", ")
    );
    let mut runs = Vec::new();
    for style in [RetryStyle::Rewind, RetryStyle::ContinueReader] {
        let run = client_run(&scenario, &files, style).await?;
        print_run(&run);
        runs.push(run);
    }
    Ok(runs)
}

/// Seeded file contents and their DVC-style content-addressed paths.
fn demo_files() -> Vec<(String, Vec<u8>)> {
    FILE_SIZES
        .iter()
        .enumerate()
        .map(|(i, &size)| {
            let mut data = vec![0u8; size];
            rand_chacha::ChaCha8Rng::seed_from_u64(100 + i as u64).fill_bytes(&mut data);
            let md5 = hex::encode(Md5::digest(&data));
            (format!("/files/md5/{}/{}", &md5[..2], &md5[2..]), data)
        })
        .collect()
}

async fn client_run(
    scenario: &Scenario,
    files: &[(String, Vec<u8>)],
    style: RetryStyle,
) -> Result<ClientRun, DemoError> {
    let label = match style {
        RetryStyle::Rewind => "rewind",
        RetryStyle::ContinueReader => "no-rewind",
    };
    let store_dir = std::env::temp_dir().join(format!(
        "faultline-demo-store-{}-{label}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&store_dir);
    let mut scenario = scenario.clone();
    scenario.name = format!("{}-{label}", scenario.name);
    scenario.store = Some(store_dir.display().to_string());
    let running = super::start_proxy(scenario, super::Story::Http).await?;
    let mut uploads = Vec::new();
    for (path, data) in files {
        uploads.push((
            path.clone(),
            upload(running.local_addr, path, data, style).await,
        ));
    }
    running.shutdown();
    let summary = running.wait().await;
    let stored = files
        .iter()
        .map(|(path, _)| {
            let on_disk = store_dir.join(path.trim_start_matches('/'));
            match std::fs::read(&on_disk) {
                Ok(bytes) => (
                    path.clone(),
                    Some(bytes.len()),
                    matches_md5_path(path, &bytes),
                ),
                Err(_) => (path.clone(), None, false),
            }
        })
        .collect();
    let _ = std::fs::remove_dir_all(&store_dir);
    let capture = summary.capture.map(|c| c.path).unwrap_or_default();
    let inspection = inspect_path(
        &capture,
        &InspectOptions {
            leg: LegFilter::Client,
            key_log: Vec::new(),
        },
    )
    .map(|report| {
        let corrupt = report.exit_code() != 0;
        let lines = match report.findings.is_empty() {
            true => vec![report.verdict_line],
            false => report.findings,
        };
        (lines, corrupt)
    })
    .map_err(|e| e.to_string());
    Ok(ClientRun {
        style,
        uploads,
        stored,
        capture,
        inspection,
    })
}

/// Whether `bytes` hash to the md5 spread over the last two segments of a DVC path.
fn matches_md5_path(path: &str, bytes: &[u8]) -> bool {
    let mut segments = path.rsplit('/');
    let rest = segments.next().unwrap_or_default();
    let prefix = segments.next().unwrap_or_default();
    hex::encode(Md5::digest(bytes)) == format!("{prefix}{rest}")
}

/// Findings printed per client; the rest are counted (inspect itself prints them all).
const SHOWN_FINDINGS: usize = 8;

fn print_run(run: &ClientRun) {
    crate::say!();
    match run.style {
        RetryStyle::Rewind => crate::say!("client 1 rewinds its body before retrying (correct):"),
        RetryStyle::ContinueReader => {
            crate::say!(
                "client 2 retries from wherever its body reader stopped (the bug in the reports):"
            )
        }
    }
    for ((path, attempts), (_, stored, ok)) in run.uploads.iter().zip(&run.stored) {
        let tries: Vec<String> = attempts
            .iter()
            .enumerate()
            .map(|(i, a)| match &a.outcome {
                Ok(status) => format!("attempt {} sent {} B -> {status}", i + 1, a.sent),
                Err(e) => format!("attempt {} sent {} B -> {e}", i + 1, a.sent),
            })
            .collect();
        crate::say!("  PUT {}…  {}", short(path), tries.join("; "));
        match stored {
            Some(len) if *ok => crate::say!("    store holds {len} B, md5 matches the path: intact"),
            Some(len) => crate::say!("    store holds {len} B, md5 does NOT match the path: CORRUPT (and the client saw success)"),
            None => crate::say!("    store holds nothing"),
        }
    }
    crate::say!("  capture: {}", run.capture.display());
    match &run.inspection {
        Ok((lines, _)) => {
            // One file's findings together, in upload order (inspect lists them by kind).
            let mut lines: Vec<&String> = lines.iter().collect();
            lines.sort_by_key(|l| {
                run.uploads
                    .iter()
                    .position(|(path, _)| l.contains(&format!(" {path} ")))
            });
            for line in lines.iter().take(SHOWN_FINDINGS) {
                crate::say!("  inspect: {line}");
            }
            if lines.len() > SHOWN_FINDINGS {
                crate::say!("  inspect: … and {} more", lines.len() - SHOWN_FINDINGS);
            }
        }
        Err(e) => crate::say!("  inspect failed: {e}"),
    }
}

fn short(path: &str) -> &str {
    path.get(..path.len().min(24)).unwrap_or(path)
}

/// Path of a capture, for the closing hint.
pub fn tshark_hint(capture: &Path) -> String {
    format!("tshark -r {} -q -z conv,tcp", capture.display())
}
