//! The writer task: turns events into records, batches them, and writes and flushes the file.

use std::io::{self, Write};
use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{debug, warn};

use super::event::CaptureEvent;
use super::flow::{FlowTable, Record};
use super::sink::CaptureFormat;
use super::{pcap, pcapng};

/// Pending bytes that trigger a write even before the flush deadline: large enough to amortize the
/// hop to the blocking pool, small enough to bound memory.
const BATCH_BYTES: usize = 1 << 20;
/// Longest time a record waits in memory: what a SIGKILL can lose at most.
pub(crate) const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// The destination: a file in production, anything in tests (e.g. a writer that fails like a full disk).
pub(crate) type Output = Box<dyn Write + Send>;

/// What the writer did, reported once it has drained.
#[derive(Debug, Default, Clone)]
pub(crate) struct WriterStats {
    pub(crate) packets_written: u64,
    pub(crate) payload_bytes: u64,
    pub(crate) file_bytes: u64,
    pub(crate) packets_lost: u64,
    pub(crate) events_ignored: u64,
    pub(crate) write_error: Option<String>,
}

/// Owns the output, the flow table and the pending batch; lives inside one tokio task.
pub(crate) struct Writer {
    path: PathBuf,
    format: CaptureFormat,
    output: Option<Output>,
    flows: FlowTable,
    records: Vec<Record>,
    pending: Vec<u8>,
    pending_packets: u64,
    pending_payload: u64,
    /// The buffer of the previous write, reused for the next batch.
    spare: Vec<u8>,
    in_flight: Option<InFlight>,
    stats: WriterStats,
    /// TLS key log lines to embed ahead of the packets they decrypt (`secrets.rs`).
    secrets: Option<std::sync::Arc<dyn super::secrets::SecretsSource>>,
}

/// A batch being written on the blocking pool; it hands back the output and the emptied buffer.
struct InFlight {
    job: JoinHandle<(Output, Vec<u8>, io::Result<()>)>,
    packets: u64,
    payload: u64,
}

impl Writer {
    /// A writer appending to `output`, whose file header (`header_bytes` long) is already written.
    pub(crate) fn new(
        path: PathBuf,
        format: CaptureFormat,
        output: Output,
        header_bytes: u64,
    ) -> Writer {
        Writer {
            path,
            format,
            output: Some(output),
            flows: FlowTable::default(),
            records: Vec::new(),
            pending: Vec::with_capacity(BATCH_BYTES + 128 * 1024),
            pending_packets: 0,
            pending_payload: 0,
            spare: Vec::with_capacity(BATCH_BYTES + 128 * 1024),
            in_flight: None,
            stats: WriterStats {
                file_bytes: header_bytes,
                ..WriterStats::default()
            },
            secrets: None,
        }
    }

    /// Embeds what `source` logs as Decryption Secrets Blocks (pcapng only).
    pub(crate) fn embed_secrets(
        &mut self,
        source: Option<std::sync::Arc<dyn super::secrets::SecretsSource>>,
    ) {
        self.secrets = source;
    }

    /// Consumes events until every sender is gone, then writes what is pending.
    ///
    /// Flushes at least every `FLUSH_EVERY` while data is pending, and right after any event that
    /// carries a fault comment, so a killed proxy leaves a capture readable up to its last fault.
    pub(crate) async fn run(mut self, mut rx: mpsc::Receiver<CaptureEvent>) -> WriterStats {
        let mut tick = tokio::time::interval(FLUSH_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                event = rx.recv() => match event {
                    Some(event) => {
                        if self.encode(event) || self.pending.len() >= BATCH_BYTES {
                            self.flush().await;
                        }
                    }
                    None => break,
                },
                _ = tick.tick() => self.flush().await,
            }
        }
        self.flush().await;
        self.settle().await;
        debug!(path = %self.path.display(), packets = self.stats.packets_written, "capture: writer drained");
        self.stats
    }

    /// Appends the event's records to the batch; true when one carries a comment (flush now).
    fn encode(&mut self, event: CaptureEvent) -> bool {
        if let Some(source) = &self.secrets {
            // Secrets logged before this event was recorded go in ahead of its packets.
            let lines = source.take_unwritten();
            if !lines.is_empty() {
                super::secrets::decryption_secrets_block(&mut self.pending, &lines);
            }
        }
        self.records.clear();
        if let Err(e) = self.flows.apply(event, &mut self.records) {
            if self.stats.events_ignored == 0 {
                warn!(path = %self.path.display(), error = %e, "capture: ignoring event (reported once)");
            }
            self.stats.events_ignored += 1;
            return false;
        }
        let mut commented = false;
        for record in &self.records {
            match self.format {
                CaptureFormat::Pcapng => pcapng::packet(&mut self.pending, record),
                CaptureFormat::Pcap => pcap::packet(&mut self.pending, record),
            }
            commented |= record.comment.is_some();
            self.pending_packets += 1;
            self.pending_payload += record.packet.payload.len() as u64;
        }
        commented
    }

    /// Starts writing the pending batch on the blocking pool (file I/O must not stall a runtime
    /// worker) and returns without waiting, so the next batch is encoded while this one is written.
    /// At most one write is in flight: a new batch first waits for the previous one.
    async fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        self.settle().await;
        let (packets, payload) = (self.pending_packets, self.pending_payload);
        self.pending_packets = 0;
        self.pending_payload = 0;
        let Some(mut output) = self.output.take() else {
            self.stats.packets_lost += packets;
            self.pending.clear();
            return;
        };
        let buf = std::mem::replace(&mut self.pending, std::mem::take(&mut self.spare));
        let job = tokio::task::spawn_blocking(move || {
            let result = output.write_all(&buf).and_then(|()| output.flush());
            (output, buf, result)
        });
        self.in_flight = Some(InFlight {
            job,
            packets,
            payload,
        });
    }

    /// Waits for the write in flight, if any, and accounts for it.
    ///
    /// On the first error the output is dropped: writing on after a partial write would put garbage in
    /// the middle of the file, whereas stopping leaves it readable up to the failure.
    async fn settle(&mut self) {
        let Some(InFlight {
            job,
            packets,
            payload,
        }) = self.in_flight.take()
        else {
            return;
        };
        match job.await {
            Ok((output, mut buf, Ok(()))) => {
                self.stats.packets_written += packets;
                self.stats.payload_bytes += payload;
                self.stats.file_bytes += buf.len() as u64;
                buf.clear();
                self.spare = buf;
                self.output = Some(output);
            }
            Ok((_, mut buf, Err(e))) => {
                self.fail(packets, e.to_string());
                buf.clear();
                self.spare = buf;
            }
            Err(e) => self.fail(packets, format!("writer thread failed: {e}")),
        }
    }

    fn fail(&mut self, packets: u64, error: String) {
        warn!(
            path = %self.path.display(),
            %error,
            "capture: write failed; the capture stops here but traffic keeps flowing"
        );
        self.stats.packets_lost += packets;
        self.stats.write_error.get_or_insert(error);
    }
}
