//! Capture: records what crossed each leg's socket as synthesized TCP flows in pcapng or pcap.
//!
//! The proxy never sniffs the network. Pumps report events (`CaptureEvent`) to a `CaptureSink`; one
//! writer task turns them into TCP packets with consistent sequence numbers (`flow`), encodes them
//! (`pcapng`, `pcap`) and writes batches, flushing every second and at every fault.
//!
//! - `event`: what the proxy reports. `sink`: start, record, finish. `path`: capture file names.
//! - `flow`: per-leg TCP state, pure. `packet`: IP/TCP bytes and checksums.
//! - `pcapng`, `pcap`: file formats. `writer`: the task that batches and writes. `budget`: the
//!   memory the queue may hold, exact even when a recorder stops waiting.
//! - `secrets`: TLS key log lines as pcapng Decryption Secrets Blocks (`capture_tls = "raw"`).

mod batch;
mod budget;
mod error;
pub mod event;
pub(crate) mod flow;
pub(crate) mod packet;
pub mod path;
mod pcap;
pub(crate) mod pcapng;
pub mod secrets;
pub mod sink;
mod writer;

pub use error::CaptureError;
pub use event::{CaptureEvent, Leg, LegKey, Side};
pub use path::{expand_path_template, prepare_template_folder};
pub use secrets::SecretsSource;
pub use sink::{
    CaptureFormat, CaptureMeta, CaptureSink, CaptureSummary, CaptureWriterHandle, QUEUE_BUDGET,
    SCENARIO_COMMENT_TAG, SCENARIO_TEXT_LIMIT,
};
