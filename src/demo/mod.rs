//! `faultline demo`: the main job end to end with nothing to set up, on built-in upstreams,
//! built-in clients and shipped scenarios compiled into the binary (so it works from any
//! directory of a fresh clone). Loopback only, ephemeral ports, bounded time.

pub mod bytestream_client;
pub mod bytestream_server;
pub mod grpc;
pub mod http;
pub mod tcp;
pub mod upload_client;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use crate::capture::expand_path_template;
use crate::proxy::{self, RunPlan, Running, StartError};
use crate::scenario::{Scenario, ScenarioError};

/// Why the demo could not run.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// A compiled-in scenario is invalid (a build bug).
    #[error("the demo scenario is invalid: {0}")]
    Scenario(#[from] ScenarioError),
    /// The proxy could not start.
    #[error(transparent)]
    Start(#[from] StartError),
    /// A demo scenario must name its upstream.
    #[error("the demo scenario has no upstream")]
    NoUpstream,
    /// A built-in demo server could not start.
    #[error("the demo's built-in server cannot start: {0}")]
    Server(std::io::Error),
}

/// Starts a demo proxy on an ephemeral loopback port with the scenario's own upstream and a
/// capture under `captures/` (the scenario's template), as `faultline run` would. `story` is the
/// demo's command line, recorded in the capture as the command that replays it.
async fn start_proxy(scenario: Scenario, story: Story) -> Result<Running, DemoError> {
    let upstream = scenario.upstream.clone().ok_or(DemoError::NoUpstream)?;
    let capture = expand_path_template(
        scenario
            .capture
            .as_deref()
            .unwrap_or("captures/{name}-{time}.pcapng"),
        &scenario.name,
        SystemTime::now(),
        std::process::id(),
    );
    let seed = scenario.seed.unwrap_or(7);
    Ok(proxy::start(RunPlan {
        scenario: Arc::new(scenario),
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        upstream,
        seed,
        capture: Some(capture),
        command_line: story.command_line().to_string(),
        live_rules: false,
    })
    .await?)
}

/// Which story the demo tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Story {
    /// Retried HTTP uploads through "the first attempt fails", told apart by inspecting captures.
    Http,
    /// Four echo connections: clean, reset, truncated, slowed.
    Tcp,
    /// ByteStream Reads over HTTP/2, one stream reset: a resuming and a restarting reader.
    Grpc,
}

impl Story {
    /// The command that tells this story (the capture's replay command).
    pub fn command_line(self) -> &'static str {
        match self {
            Story::Http => "faultline demo",
            Story::Tcp => "faultline demo --tcp",
            Story::Grpc => "faultline demo --grpc",
        }
    }
}

/// The gRPC story's closing command: the client leg, as the counts the demo printed (README
/// says so); without `--leg client`, inspect also counts the upstream leg and shows other numbers.
fn grpc_see_it(capture: &std::path::Path) -> String {
    format!(
        "See it: faultline inspect {} --leg client",
        capture.display()
    )
}

/// Runs the demo. Returns whether it showed what it should: for the HTTP story, a clean verdict
/// for the rewinding client and corruption found for the other.
pub async fn run(story: Story) -> Result<bool, DemoError> {
    match story {
        Story::Tcp => tcp::run().await.map(|()| true),
        Story::Grpc => {
            let runs = grpc::run().await?;
            let expected = runs.iter().all(|run| {
                run.fired == 1
                    && run.connections == 1
                    && run.all_intact() == (run.style == bytestream_client::ReadStyle::Resume)
                    && grpc::inspected_as_expected(run)
            });
            crate::say!();
            crate::say!("inspect reads each blob off the wire and checks it against its resource name: both");
            crate::say!("times the server's bytes were intact, so reader 2's corruption is its own, and inspect");
            crate::say!("names the Read that restarted from 0 after the reset.");
            if let Some(run) = runs.last() {
                crate::say!("{}", grpc_see_it(&run.capture));
                crate::say!("The reset and faultline's comments in Wireshark's terms:");
                crate::say!("  {}", grpc::tshark_hint(run));
            }
            Ok(expected)
        }
        Story::Http => {
            let runs = http::run().await?;
            let expected = runs.iter().all(|run| {
                let corrupt_found = matches!(&run.inspection, Ok((_, true)));
                corrupt_found == (run.style == upload_client::RetryStyle::ContinueReader)
            });
            crate::say!();
            if let Some(run) = runs.last() {
                // The same legs as the verdicts above, so it prints them word for word; the
                // exchange and flow numbers are the capture's own, the same in any report of it.
                crate::say!(
                    "See the retries byte for byte: faultline inspect {} --leg client (--html report.html draws them)",
                    run.capture.display()
                );
                crate::say!(
                    "Or in Wireshark's terms: {}",
                    http::tshark_hint(&run.capture)
                );
            }
            Ok(expected)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_grpc_hint_reads_the_client_leg_like_the_demo() {
        let line = grpc_see_it(std::path::Path::new("captures/g.pcapng"));
        assert_eq!(
            line,
            "See it: faultline inspect captures/g.pcapng --leg client"
        );
    }
}
