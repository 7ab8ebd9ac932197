//! The writer task: turns events into records, batches them, and writes and flushes the file.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tracing::{debug, warn};

use super::batch::{self, Batch};
use super::budget::Budget;
use super::event::CaptureEvent;
use super::flow::{FlowTable, Record};
use super::packet::payload_sum;
use super::sink::{event_cost, CaptureFormat};
use super::{pcap, pcapng};

/// Pending bytes that trigger a write even before the flush deadline: large enough to amortize the
/// hop to the blocking pool and the `writev`, small enough that encoding and writing overlap.
const BATCH_BYTES: usize = 2 << 20;
/// Recent data events whose segment checksums are remembered. The two legs of a connection carry
/// the very same `Bytes` (read from one socket, written to the other) a moment apart, so the second
/// leg's checksums cost nothing.
const SUM_CACHE: usize = 8;
/// Payload bytes processed since the last trim after which an idle writer returns freed memory to
/// the operating system (see [`release_memory`]).
const TRIM_AFTER: u64 = 64 << 20;
/// Longest time a record waits in memory: what a SIGKILL can lose at most.
pub(crate) const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// A request to put everything recorded so far in the file; answered once it is there (true) or
/// the output failed (false: the file holds what was written before the error), so a reader of
/// the file sees every event recorded before the request, or learns that it cannot.
pub(crate) type FlushRequest = oneshot::Sender<bool>;

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
    pending: Batch,
    pending_packets: u64,
    pending_payload: u64,
    /// Budget units (see `sink::event_cost`) of the events in `pending`, returned once written.
    pending_cost: usize,
    /// Segment checksum sums of recent data events, by the address and length of their bytes.
    sums: VecDeque<(Bytes, Vec<u64>)>,
    in_flight: Option<InFlight>,
    /// The sink's memory budget: permits go back once an event's bytes are on their way to disk.
    budget: Arc<Budget>,
    /// Payload bytes since memory was last returned to the OS.
    since_trim: u64,
    stats: WriterStats,
    /// TLS key log lines to embed ahead of the packets they decrypt (`secrets.rs`).
    secrets: Option<std::sync::Arc<dyn super::secrets::SecretsSource>>,
    /// The file and the offset of its [`pcapng::UNFINISHED_STATE`] comment, overwritten with
    /// [`pcapng::FINISHED_STATE`] when the writer ends.
    finished_mark: Option<(std::fs::File, u64)>,
}

/// A batch being written on the blocking pool; it hands back the output.
struct InFlight {
    job: JoinHandle<(Output, io::Result<usize>)>,
    packets: u64,
    payload: u64,
    cost: usize,
}

impl Writer {
    /// A writer appending to `output`, whose file header (`header_bytes` long) is already written.
    pub(crate) fn new(
        path: PathBuf,
        format: CaptureFormat,
        output: Output,
        header_bytes: u64,
        budget: Arc<Budget>,
    ) -> Writer {
        Writer {
            path,
            format,
            output: Some(output),
            flows: FlowTable::default(),
            records: Vec::new(),
            pending: Batch::default(),
            pending_packets: 0,
            pending_payload: 0,
            pending_cost: 0,
            sums: VecDeque::with_capacity(SUM_CACHE),
            in_flight: None,
            budget,
            since_trim: 0,
            stats: WriterStats {
                file_bytes: header_bytes,
                ..WriterStats::default()
            },
            secrets: None,
            finished_mark: None,
        }
    }

    /// Marks the capture finished in `file`, at `offset`, once everything is written.
    pub(crate) fn mark_finished_in(&mut self, file: std::fs::File, offset: u64) {
        self.finished_mark = Some((file, offset));
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
    /// After a burst, once a whole tick passed without events, freed memory goes back to the OS.
    ///
    /// A [`FlushRequest`] takes the events already queued (everything recorded before it was
    /// sent: both channels are fed in program order), writes them and answers once they are in
    /// the file, for readers of a capture still being written (`GET /faultline/proxies/{name}/capture`).
    pub(crate) async fn run(
        mut self,
        mut rx: mpsc::UnboundedReceiver<CaptureEvent>,
        mut flushes: mpsc::UnboundedReceiver<FlushRequest>,
    ) -> WriterStats {
        let mut tick = tokio::time::interval(FLUSH_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut busy = false;
        loop {
            tokio::select! {
                event = rx.recv() => match event {
                    Some(event) => {
                        busy = true;
                        // Half the budget in one batch means pumps are about to wait: write now.
                        if self.encode(event)
                            || self.pending.len() >= BATCH_BYTES
                            || self.pending_cost * 2 >= self.budget.size()
                        {
                            self.flush().await;
                        }
                    }
                    None => break,
                },
                Some(reply) = flushes.recv() => {
                    // Only what is queued now: pumps that keep recording cannot hold the answer.
                    for _ in 0..rx.len() {
                        let Ok(event) = rx.try_recv() else { break };
                        busy = true;
                        self.encode(event);
                    }
                    self.flush().await;
                    self.settle().await;
                    // The asker may have stopped waiting; nothing to do then.
                    let _ = reply.send(self.output.is_some());
                }
                _ = tick.tick() => {
                    self.flush().await;
                    if !busy && self.since_trim >= TRIM_AFTER {
                        self.settle().await;
                        self.since_trim = 0;
                        release_memory();
                    }
                    busy = false;
                }
            }
        }
        self.flush().await;
        self.settle().await;
        self.close().await;
        debug!(path = %self.path.display(), packets = self.stats.packets_written, "capture: writer drained");
        self.stats
    }

    /// Marks a pcapng capture finished in its section header: without the mark `inspect` reads
    /// it as cut short. Nothing after a write error (the file is not whole anyway).
    async fn close(&mut self) {
        let Some((file, offset)) = self.finished_mark.take() else {
            return;
        };
        if self.output.is_none() {
            return;
        }
        use std::os::unix::fs::FileExt;
        if let Err(e) = file.write_all_at(pcapng::FINISHED_STATE.as_bytes(), offset) {
            warn!(path = %self.path.display(), error = %e, "capture: cannot mark the capture finished; inspect will call it cut short");
        }
    }

    /// Appends the event's records to the batch; true when one carries a comment (flush now).
    fn encode(&mut self, event: CaptureEvent) -> bool {
        if let Some(source) = &self.secrets {
            // Secrets logged before this event was recorded go in ahead of its packets.
            let lines = source.take_unwritten();
            if !lines.is_empty() {
                let mut block = Vec::with_capacity(lines.len() + 24);
                super::secrets::decryption_secrets_block(&mut block, &lines);
                self.pending.put(&block);
            }
        }
        self.records.clear();
        self.pending_cost += event_cost(&event, self.budget.size());
        let data = match &event {
            CaptureEvent::Data { bytes, .. } if !bytes.is_empty() => Some(bytes.clone()),
            _ => None,
        };
        if let Err(e) = self.flows.apply(event, &mut self.records) {
            if self.stats.events_ignored == 0 {
                warn!(path = %self.path.display(), error = %e, "capture: ignoring event (reported once)");
            }
            self.stats.events_ignored += 1;
            return false;
        }
        let sums = data.map(|bytes| self.segment_sums(bytes));
        let mut sums = sums.iter().flatten();
        let mut commented = false;
        for record in &self.records {
            let payload = &record.packet.payload;
            let sum = match payload.is_empty() {
                true => 0,
                false => sums.next().copied().unwrap_or_else(|| payload_sum(payload)),
            };
            match self.format {
                CaptureFormat::Pcapng => pcapng::packet(&mut self.pending, record, sum),
                CaptureFormat::Pcap => pcap::packet(&mut self.pending, record, sum),
            }
            commented |= record.comment.is_some();
            self.pending_packets += 1;
            self.pending_payload += payload.len() as u64;
            self.since_trim += payload.len() as u64;
        }
        commented
    }

    /// Checksum sums of the segments `records` split `bytes` into, in order: remembered when the
    /// same bytes were just written for the other leg, computed (and remembered) otherwise.
    fn segment_sums(&mut self, bytes: Bytes) -> Vec<u64> {
        let same =
            |cached: &Bytes| cached.as_ptr() == bytes.as_ptr() && cached.len() == bytes.len();
        if let Some(at) = self.sums.iter().position(|(cached, _)| same(cached)) {
            if let Some((_, sums)) = self.sums.remove(at) {
                return sums;
            }
        }
        let sums: Vec<u64> = self
            .records
            .iter()
            .map(|r| &r.packet.payload)
            .filter(|p| !p.is_empty())
            .map(|p| payload_sum(p))
            .collect();
        if self.sums.len() == SUM_CACHE {
            self.sums.pop_front();
        }
        self.sums.push_back((bytes, sums.clone()));
        sums
    }

    /// Starts writing the pending batch on the blocking pool (file I/O must not stall a runtime
    /// worker) and returns without waiting, so the next batch is encoded while this one is written.
    /// At most one write is in flight: a new batch first waits for the previous one.
    async fn flush(&mut self) {
        if self.pending.is_empty() {
            // Events that produced no bytes (ignored ones) still give their budget back.
            self.budget
                .give_back(std::mem::take(&mut self.pending_cost));
            return;
        }
        self.settle().await;
        let (packets, payload) = (self.pending_packets, self.pending_payload);
        let cost = std::mem::take(&mut self.pending_cost);
        self.pending_packets = 0;
        self.pending_payload = 0;
        let pieces = self.pending.take();
        let Some(mut output) = self.output.take() else {
            self.stats.packets_lost += packets;
            self.budget.give_back(cost);
            return;
        };
        let budget = self.budget.clone();
        let job = tokio::task::spawn_blocking(move || {
            let result = batch::write_all(&mut output, &pieces);
            // The bytes are in the file (or lost to an error): their budget is free again, now
            // rather than when the writer next looks, so waiting pumps resume at once.
            drop(pieces);
            budget.give_back(cost);
            (output, result)
        });
        self.in_flight = Some(InFlight {
            job,
            packets,
            payload,
            cost,
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
            cost,
        }) = self.in_flight.take()
        else {
            return;
        };
        let result = job.await;
        if result.is_err() {
            // The write thread died before giving the budget back.
            self.budget.give_back(cost);
        }
        match result {
            Ok((output, Ok(written))) => {
                self.stats.packets_written += packets;
                self.stats.payload_bytes += payload;
                self.stats.file_bytes += written as u64;
                self.output = Some(output);
            }
            Ok((_, Err(e))) => self.fail(packets, e.to_string()),
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

/// Hands memory freed after a burst back to the operating system. glibc keeps freed chunks in its
/// arenas for reuse, so without this a process that once queued a burst of capture data would keep
/// that resident size for good. Elsewhere (musl, other systems) the allocator's own policy applies.
fn release_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks glibc's own arenas and returns free pages; it has no
    // preconditions and touches no memory the program still uses.
    unsafe {
        libc::malloc_trim(0);
    }
}
