//! `faultline demo`: the main job end to end with nothing to set up, on built-in upstreams,
//! built-in clients and shipped scenarios compiled into the binary (so it works from any
//! directory of a fresh clone). Loopback only, ephemeral ports, bounded time.

pub mod http;
pub mod tcp;
pub mod upload_client;

use crate::proxy::StartError;
use crate::scenario::ScenarioError;

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
}

/// Which story the demo tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Story {
    /// Retried HTTP uploads through "the first attempt fails", told apart by inspecting captures.
    Http,
    /// Four echo connections: clean, reset, truncated, slowed.
    Tcp,
}

/// Runs the demo. Returns whether it showed what it should: for the HTTP story, a clean verdict
/// for the rewinding client and corruption found for the other.
pub async fn run(story: Story) -> Result<bool, DemoError> {
    match story {
        Story::Tcp => tcp::run().await.map(|()| true),
        Story::Http => {
            let runs = http::run().await?;
            let expected = runs.iter().all(|run| {
                let corrupt_found = matches!(&run.inspection, Ok((_, true)));
                corrupt_found == (run.style == upload_client::RetryStyle::ContinueReader)
            });
            println!();
            if let Some(run) = runs.last() {
                println!(
                    "See the retries byte for byte: faultline inspect {}",
                    run.capture.display()
                );
                println!(
                    "Or in Wireshark's terms: {}",
                    http::tshark_hint(&run.capture)
                );
            }
            Ok(expected)
        }
    }
}
