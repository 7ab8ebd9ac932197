//! `GET /faultline/events`: every proxy's runs' events (connection opened/closed, rule fired)
//! as Server-Sent Events, one JSON object per event.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use tokio::sync::{broadcast, mpsc};

use super::toxic::json_string;
use crate::proxy::events::RunEvent;
use crate::proxy::RunShared;

/// How often an idle stream sends a comment, so clients and proxies see it alive.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// One event of one proxy's run.
#[derive(Debug, Clone)]
pub struct ApiEvent {
    /// The proxy's name.
    pub proxy: Arc<str>,
    /// What happened.
    pub event: RunEvent,
    /// When the API heard of it.
    pub at: SystemTime,
}

impl ApiEvent {
    /// The event as one JSON object.
    pub fn to_json(&self) -> String {
        let ms = self
            .at
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        let proxy = json_string(&self.proxy);
        match &self.event {
            RunEvent::Opened { connection, client } => format!(
                "{{\"type\":\"connection_opened\",\"proxy\":{proxy},\"connection\":{connection},\"client\":\"{client}\",\"unix_ms\":{ms}}}"
            ),
            RunEvent::Closed { connection } => format!(
                "{{\"type\":\"connection_closed\",\"proxy\":{proxy},\"connection\":{connection},\"unix_ms\":{ms}}}"
            ),
            RunEvent::Fired {
                connection,
                rule,
                note,
            } => format!(
                "{{\"type\":\"rule_fired\",\"proxy\":{proxy},\"connection\":{connection},\"rule\":{},\"note\":{},\"unix_ms\":{ms}}}",
                rule.as_deref().map(json_string).unwrap_or_else(|| "null".to_string()),
                json_string(note)
            ),
        }
    }
}

/// Forwards the events of `run` (proxy `proxy`) to the API's stream until the run ends.
pub fn forward(proxy: String, run: &RunShared, to: broadcast::Sender<ApiEvent>) {
    let mut from = run.events.subscribe();
    let proxy: Arc<str> = Arc::from(proxy);
    tokio::spawn(async move {
        loop {
            match from.recv().await {
                Ok(event) => {
                    // Nobody listening is not an error.
                    let _ = to.send(ApiEvent {
                        proxy: proxy.clone(),
                        event,
                        at: SystemTime::now(),
                    });
                }
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::warn!(proxy = %proxy, missed, "event stream fell behind; events dropped");
                }
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    });
}

/// Starts writing the stream for one client: `data: {…}` blocks into the returned channel,
/// which ends when the client goes away (the channel's receiver is dropped) or `stop` fires.
pub fn stream(
    mut events: broadcast::Receiver<ApiEvent>,
    stop: tokio_util::sync::CancellationToken,
) -> mpsc::Receiver<Bytes> {
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    tokio::spawn(async move {
        if tx
            .send(Bytes::from_static(b": faultline events\n\n"))
            .await
            .is_err()
        {
            return;
        }
        loop {
            let chunk = tokio::select! {
                received = events.recv() => match received {
                    Ok(event) => format!("data: {}\n\n", event.to_json()),
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        format!("data: {{\"type\":\"lagged\",\"missed\":{missed}}}\n\n")
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                () = tokio::time::sleep(KEEP_ALIVE) => ": keep-alive\n\n".to_string(),
                () = stop.cancelled() => return,
                () = tx.closed() => return,
            };
            if tx.send(Bytes::from(chunk)).await.is_err() {
                return;
            }
        }
    });
    rx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_one_json_object_each() {
        let event = ApiEvent {
            proxy: Arc::from("p\"1"),
            event: RunEvent::Fired {
                connection: 2,
                rule: Some("latency_downstream".into()),
                note: "latency 5ms".into(),
            },
            at: UNIX_EPOCH + Duration::from_millis(1500),
        };
        let json: serde_json::Value = serde_json::from_str(&event.to_json()).expect("json");
        assert_eq!(json["type"], "rule_fired");
        assert_eq!(json["proxy"], "p\"1");
        assert_eq!(json["unix_ms"], 1500);
    }
}
