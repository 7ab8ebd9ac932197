//! `faultline demo`: the main job end to end with nothing to set up, on built-in upstreams,
//! built-in clients and shipped scenarios compiled into the binary (so it works from any
//! directory of a fresh clone). Loopback only, ephemeral ports, bounded time.

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

/// Runs the TCP demo (the HTTP story joins it once captures can be inspected).
pub async fn run() -> Result<(), DemoError> {
    tcp::run().await
}
