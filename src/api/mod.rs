//! `faultline serve`: a control API that Toxiproxy's clients drive unchanged (same paths, JSON,
//! status codes and error bodies), plus faultline's own routes under `/faultline/`.
//!
//! Each Toxiproxy proxy is a faultline run (`proxy::start_on` with live rules); each toxic is one
//! rule of that run's scenario, so swapping toxics swaps the run's rule book and never reaches
//! into a pump. Files: [`error`] (Toxiproxy's error body), [`toxic`] (a toxic's JSON, checks and
//! rule), [`proxy`] (one proxy and its run), [`registry`] (every operation on the proxies),
//! [`routes`] (paths and methods), [`server`] (listeners, HTTP/1), [`body`] (response bodies),
//! [`events`] (Server-Sent Events), [`metrics`] (Prometheus text), [`capture_file`] (the readable
//! part of a capture being written), [`scenario_body`] (TOML or JSON scenarios), [`json_locate`] (a key's place in a JSON
//! body). See docs/api.md.

pub mod body;
pub mod capture_file;
pub mod error;
pub mod events;
pub mod json_locate;
pub mod metrics;
pub mod proxy;
pub mod registry;
pub mod routes;
pub mod scenario_body;
pub mod server;
pub mod toxic;

use tokio::sync::{broadcast, Mutex};
use tokio_util::sync::CancellationToken;

pub use error::ApiError;
pub use proxy::ServeContext;
pub use registry::Registry;

/// How many events the API's stream buffers for slow listeners.
const EVENT_BACKLOG: usize = 4096;

/// The state every API request shares.
#[derive(Debug)]
pub struct Api {
    /// The proxies (one lock: operations are short, and those that start or stop a proxy must
    /// not interleave).
    pub registry: Mutex<Registry>,
    /// Every proxy's events, for `/faultline/events`.
    pub events: broadcast::Sender<events::ApiEvent>,
    /// Cancelled when `serve` stops: event streams end.
    pub stop: CancellationToken,
}

impl Api {
    /// An API without proxies; `default_capture` is `serve --capture`, `seed` is `serve --seed`.
    pub fn new(default_capture: Option<String>, seed: Option<u64>, command_line: String) -> Self {
        let (events, _) = broadcast::channel(EVENT_BACKLOG);
        let ctx = ServeContext {
            events: events.clone(),
            default_capture,
            command_line,
        };
        Api {
            registry: Mutex::new(Registry::new(ctx, seed)),
            events,
            stop: CancellationToken::new(),
        }
    }

    /// Ends event streams and stops every proxy (connections closed, captures flushed).
    pub async fn shutdown(&self) {
        self.stop.cancel();
        self.registry.lock().await.stop_all().await;
    }
}
