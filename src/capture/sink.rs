//! The handle the proxy records events through, and the start and finish of the capture file.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tracing::{info, warn};

use super::budget::Budget;
use super::error::CaptureError;
use super::event::CaptureEvent;
use super::writer::{FlushRequest, Output, Writer, WriterStats};
use super::{pcap, pcapng};

/// Memory the capture may hold between the pumps and the file: payload bytes of events queued for
/// the writer, being encoded, or being written, plus [`EVENT_OVERHEAD`] per event. When it is
/// used up, `record` waits (block, never drop); the event it waits for is already queued, so a
/// waiting recorder holds one event beyond the budget. 64 MiB keeps the writer busy through
/// bursts, and is (with those waiting events) what a capture adds to faultline's resident size at
/// most; it is returned when the burst is over.
pub const QUEUE_BUDGET: usize = 64 << 20;
/// What an event costs the budget beyond its payload: the event itself and its packets' headers.
const EVENT_OVERHEAD: usize = 256;

/// The budget units `event` holds from `record` until the writer has written it: never more than
/// the whole budget (`budget_size`), so one huge event waits for an empty queue instead of forever.
pub(crate) fn event_cost(event: &CaptureEvent, budget_size: usize) -> usize {
    let payload = match event {
        CaptureEvent::Data { bytes, .. } => bytes.len(),
        _ => 0,
    };
    (payload + EVENT_OVERHEAD)
        .min(budget_size)
        .min(u32::MAX as usize)
}

/// File format of a capture.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CaptureFormat {
    /// pcapng: leg interfaces, direction flags, fault comments. The default.
    Pcapng,
    /// Classic libpcap (nanosecond): for old tools; no comments, interfaces or directions.
    Pcap,
}

impl CaptureFormat {
    /// Chosen from the file name so the user picks the format by naming the file: a name ending in
    /// `.pcap` (any case) gives classic pcap, anything else pcapng.
    pub fn from_path(path: &Path) -> CaptureFormat {
        match path.extension().and_then(|e| e.to_str()) {
            Some(ext) if ext.eq_ignore_ascii_case("pcap") => CaptureFormat::Pcap,
            _ => CaptureFormat::Pcapng,
        }
    }
}

/// Identifies the run in the capture itself (pcapng section comments), so a capture file found
/// later still says which scenario and seed produced it, and carries the scenario to replay it.
#[derive(Clone, Debug, Default)]
pub struct CaptureMeta {
    /// Scenario name.
    pub scenario: String,
    /// Seed every random decision derived from.
    pub seed: u64,
    /// The command line as typed, to rerun the same thing.
    pub command_line: String,
    /// The scenario's TOML text as the run used it (its first [`SCENARIO_TEXT_LIMIT`] bytes), so
    /// the capture replays without the original file; `None` records no text.
    pub scenario_text: Option<String>,
    /// Where that text came from: the file as `command_line` names it (the replay command swaps
    /// it for the saved copy), or `proxy NAME` for `faultline serve`.
    pub scenario_origin: String,
    /// The rules may change during the run (`faultline serve`'s control API): the text is the
    /// rule set when the capture started, which the report must say.
    pub live_rules: bool,
}

/// Scenario text a capture keeps: a pcapng option holds at most 65,532 bytes, and 60 KiB of text
/// with its header lines always fits; a longer scenario is cut, and the capture says so.
pub const SCENARIO_TEXT_LIMIT: usize = 60 << 10;

/// First line of the section comment that carries the scenario's text.
pub const SCENARIO_COMMENT_TAG: &str = "faultline scenario";

/// Characters of `scenario_origin` kept in the comment (it is one header line).
const ORIGIN_LIMIT: usize = 1024;

impl CaptureMeta {
    /// The section comment: `faultline VERSION; scenario NAME; seed N; command: ...`.
    pub fn section_comment(&self) -> String {
        format!(
            "faultline {}; scenario {}; seed {}; command: {}",
            env!("CARGO_PKG_VERSION"),
            self.scenario,
            self.seed,
            self.command_line
        )
    }

    /// The second section comment, carrying the scenario's text after header lines and a blank
    /// line (`None` without a text):
    ///
    /// ```text
    /// faultline scenario
    /// origin: scenarios/s2.toml
    /// rules: live                      (faultline serve: the API may change them)
    /// cut: 61440 of 70000 bytes        (only when the text was longer than the limit)
    ///
    /// name = "s2"
    /// ...
    /// ```
    ///
    /// A separate comment keeps the first one as older faultline versions read it.
    pub fn scenario_comment(&self) -> Option<String> {
        let text = self.scenario_text.as_deref()?;
        let mut comment = format!("{SCENARIO_COMMENT_TAG}\n");
        let origin: String = self
            .scenario_origin
            .chars()
            .take(ORIGIN_LIMIT)
            .map(|c| if c.is_control() { '\u{fffd}' } else { c })
            .collect();
        if !origin.is_empty() {
            comment.push_str(&format!("origin: {origin}\n"));
        }
        if self.live_rules {
            comment.push_str("rules: live\n");
        }
        let mut kept = text.len().min(SCENARIO_TEXT_LIMIT);
        while !text.is_char_boundary(kept) {
            kept -= 1;
        }
        if kept < text.len() {
            comment.push_str(&format!("cut: {kept} of {} bytes\n", text.len()));
        }
        comment.push('\n');
        comment.push_str(&text[..kept]);
        Some(comment)
    }
}

/// What a finished capture contains, so the CLI can report it and exit non-zero on a write error.
#[derive(Clone, Debug)]
pub struct CaptureSummary {
    /// The capture file.
    pub path: PathBuf,
    /// Its format.
    pub format: CaptureFormat,
    /// Packets that reached the file.
    pub packets_written: u64,
    /// TCP payload bytes in those packets (what crossed the sockets).
    pub payload_bytes: u64,
    /// Bytes written to the file, file header included.
    pub file_bytes: u64,
    /// Times `record` found the channel full and had to wait for the writer.
    pub backpressure_waits: u64,
    /// Packets synthesized but not written because of a write error.
    pub packets_lost: u64,
    /// Events for legs that were not open (a proxy bug), ignored.
    pub events_ignored: u64,
    /// The first write error, if any: the capture is incomplete.
    pub write_error: Option<String>,
}

#[derive(Debug)]
struct Shared {
    path: PathBuf,
    /// Bytes of [`QUEUE_BUDGET`]: `record` takes, the writer gives back.
    budget: Arc<Budget>,
    backpressure_waits: AtomicU64,
    warned_backpressure: AtomicBool,
    warned_gone: AtomicBool,
}

/// Cheap, cloneable handle every connection holds to record what crossed its sockets.
#[derive(Clone, Debug)]
pub struct CaptureSink {
    tx: mpsc::UnboundedSender<CaptureEvent>,
    flushes: mpsc::UnboundedSender<FlushRequest>,
    shared: Arc<Shared>,
}

/// Owned by whoever started the capture; `finish` waits for the file to be complete.
#[derive(Debug)]
pub struct CaptureWriterHandle {
    task: JoinHandle<WriterStats>,
    shared: Arc<Shared>,
    format: CaptureFormat,
}

impl CaptureSink {
    /// Creates missing parent dirs, opens the file now (an unwritable path is an error at start, CaptureError naming the path), writes the header, spawns one writer task.
    ///
    /// The format comes from the file name (`CaptureFormat::from_path`). Must be called inside a tokio
    /// runtime (any flavor); otherwise `CaptureError::NoRuntime`.
    pub fn start(
        path: &Path,
        meta: CaptureMeta,
    ) -> Result<(CaptureSink, CaptureWriterHandle), CaptureError> {
        Self::start_embedding(path, meta, None)
    }

    /// [`start`](Self::start), embedding what `secrets` logs (TLS key log lines) as Decryption
    /// Secrets Blocks ahead of the packets they decrypt (`capture_tls = "raw"`; pcapng only).
    pub fn start_embedding(
        path: &Path,
        meta: CaptureMeta,
        secrets: Option<Arc<dyn super::secrets::SecretsSource>>,
    ) -> Result<(CaptureSink, CaptureWriterHandle), CaptureError> {
        let runtime =
            tokio::runtime::Handle::try_current().map_err(|_| CaptureError::NoRuntime {
                path: path.to_path_buf(),
            })?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir).map_err(|source| CaptureError::CreateDir {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        // Opened without truncating, and emptied only once this run holds the writing lock:
        // two runs started at the same moment on one name both passed `path::claim_for_run`'s
        // check, then truncated and wrote into each other's capture (a CI trial's parallel jobs).
        let open = || {
            fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .open(path)
        };
        let open_error = |source| CaptureError::Open {
            path: path.to_path_buf(),
            source,
        };
        let file = open().map_err(open_error)?;
        // Held while the run writes (released when the file closes, or the process dies), so
        // another run naming the same file refuses it (`path::claim_for_run`).
        if !super::path::lock_for_writing(&file) {
            return Err(CaptureError::Busy {
                path: path.to_path_buf(),
            });
        }
        // Only a regular file is emptied: a FIFO (a live Wireshark) or a device has no length.
        if file.metadata().is_ok_and(|m| m.is_file()) {
            file.set_len(0).map_err(open_error)?;
        }
        // A second handle on the file, to mark the capture finished in its header at the end.
        let marker = file.try_clone().ok();
        Self::start_with_secrets(
            &runtime,
            path,
            meta,
            Box::new(file),
            QUEUE_BUDGET,
            secrets,
            marker,
        )
    }

    /// `start` with any output and memory budget, so tests can inject full disks and tiny budgets.
    #[cfg(test)]
    pub(crate) fn start_with(
        runtime: &tokio::runtime::Handle,
        path: &Path,
        meta: CaptureMeta,
        output: Output,
        budget: usize,
    ) -> Result<(CaptureSink, CaptureWriterHandle), CaptureError> {
        Self::start_with_secrets(runtime, path, meta, output, budget, None, None)
    }

    /// `start_with`, embedding `secrets` (see [`start_embedding`](Self::start_embedding)); a
    /// pcapng capture is marked finished through `marker` (a handle on the file) when it ends.
    pub(crate) fn start_with_secrets(
        runtime: &tokio::runtime::Handle,
        path: &Path,
        meta: CaptureMeta,
        mut output: Output,
        budget: usize,
        secrets: Option<Arc<dyn super::secrets::SecretsSource>>,
        marker: Option<File>,
    ) -> Result<(CaptureSink, CaptureWriterHandle), CaptureError> {
        let format = CaptureFormat::from_path(path);
        let mut header = Vec::new();
        match format {
            CaptureFormat::Pcapng => {
                let scenario = meta.scenario_comment();
                let mut comments = vec![meta.section_comment()];
                comments.extend(scenario);
                comments.push(pcapng::UNFINISHED_STATE.to_string());
                pcapng::section_header(
                    &mut header,
                    &comments,
                    concat!("faultline ", env!("CARGO_PKG_VERSION")),
                );
                pcapng::interfaces(&mut header);
            }
            CaptureFormat::Pcap => pcap::file_header(&mut header),
        }
        output
            .write_all(&header)
            .and_then(|()| output.flush())
            .map_err(|source| CaptureError::Header {
                path: path.to_path_buf(),
                source,
            })?;
        let (tx, rx) = mpsc::unbounded_channel();
        let (flushes, flush_rx) = mpsc::unbounded_channel();
        let budget = Arc::new(Budget::new(budget));
        let mut writer = Writer::new(
            path.to_path_buf(),
            format,
            output,
            header.len() as u64,
            budget.clone(),
        );
        if format == CaptureFormat::Pcapng {
            writer.embed_secrets(secrets);
            let state = pcapng::UNFINISHED_STATE.as_bytes();
            let at = header.windows(state.len()).position(|w| w == state);
            if let (Some(file), Some(at)) = (marker, at) {
                writer.mark_finished_in(file, at as u64);
            }
        }
        let task = runtime.spawn(writer.run(rx, flush_rx));
        let shared = Arc::new(Shared {
            path: path.to_path_buf(),
            budget,
            backpressure_waits: AtomicU64::new(0),
            warned_backpressure: AtomicBool::new(false),
            warned_gone: AtomicBool::new(false),
        });
        info!(path = %path.display(), ?format, "capture: started");
        Ok((
            CaptureSink {
                tx,
                flushes,
                shared: shared.clone(),
            },
            CaptureWriterHandle {
                task,
                shared,
                format,
            },
        ))
    }

    /// Hands an event to the writer. Never drops events.
    ///
    /// Policy: each event takes its payload size (plus a small overhead) from a memory budget of
    /// [`QUEUE_BUDGET`] bytes, which the writer gives back once the event is written. When the
    /// budget is used up the writer is behind: we count a backpressure wait, warn once, and await
    /// room. We block rather than drop because a capture with holes is worthless evidence; the cost
    /// is that a slow disk slows the proxy, while memory stays bounded. The only case an event is
    /// lost is a writer task that no longer exists (it panicked), logged once.
    ///
    /// The event is queued before the wait, so dropping this future (a connection ending drops
    /// its pumps wherever they wait) loses nothing; see [`Budget`].
    pub async fn record(&self, event: CaptureEvent) {
        let owed = self.enqueue(event);
        self.pay(owed).await;
    }

    /// Queues `events` for the writer now, in order; returns what they still owe the budget, to
    /// [`pay`](Self::pay) next. Callers that must keep events in order across tasks queue under
    /// their own lock and pay after releasing it.
    pub fn enqueue_all(&self, events: impl IntoIterator<Item = CaptureEvent>) -> usize {
        events.into_iter().map(|event| self.enqueue(event)).sum()
    }

    /// Queues `event` for the writer now; returns what it still owes the budget.
    fn enqueue(&self, event: CaptureEvent) -> usize {
        let cost = event_cost(&event, self.shared.budget.size());
        let owed = if self.shared.budget.try_take(cost) {
            0
        } else {
            cost
        };
        if self.tx.send(event).is_err() {
            self.writer_gone();
            return 0;
        }
        owed
    }

    /// Waits until the writer has room for what queued events still owe (backpressure).
    pub async fn pay(&self, owed: usize) {
        if owed > 0 {
            self.waited();
            self.shared.budget.take(owed).await;
        }
    }

    /// Puts every event recorded so far in the file, waiting at most `limit` for it: true once
    /// they are there, false when the writer took longer, is gone, or failed to write (the file
    /// then holds what the writer put there on its own, at least once a second, up to an error).
    /// For readers of a capture still being written.
    pub async fn flush(&self, limit: std::time::Duration) -> bool {
        let (reply, answered) = oneshot::channel();
        if self.flushes.send(reply).is_err() {
            return false;
        }
        matches!(tokio::time::timeout(limit, answered).await, Ok(Ok(true)))
    }

    /// Counts a wait for the writer and warns the first time.
    fn waited(&self) {
        self.shared
            .backpressure_waits
            .fetch_add(1, Ordering::Relaxed);
        if !self
            .shared
            .warned_backpressure
            .swap(true, Ordering::Relaxed)
        {
            warn!(
                path = %self.shared.path.display(),
                "capture: writer is behind, traffic waits for it (reported once; see the capture summary)"
            );
        }
    }

    fn writer_gone(&self) {
        // It gives nothing back any more: waiting recorders (and later ones) must not wait.
        self.shared.budget.close();
        if !self.shared.warned_gone.swap(true, Ordering::Relaxed) {
            warn!(path = %self.shared.path.display(), "capture: writer task is gone, events are lost");
        }
    }
}

impl CaptureWriterHandle {
    /// After all CaptureSink clones are dropped: waits for the writer to drain, flush, and returns a summary.
    ///
    /// Waits forever while any `CaptureSink` clone is alive: drop them (end every connection) first.
    /// A writer that panicked yields a summary whose `write_error` says so.
    pub async fn finish(self) -> CaptureSummary {
        let stats = match self.task.await {
            Ok(stats) => stats,
            Err(e) => WriterStats {
                write_error: Some(format!("capture writer task failed: {e}")),
                ..WriterStats::default()
            },
        };
        let summary = CaptureSummary {
            path: self.shared.path.clone(),
            format: self.format,
            packets_written: stats.packets_written,
            payload_bytes: stats.payload_bytes,
            file_bytes: stats.file_bytes,
            backpressure_waits: self.shared.backpressure_waits.load(Ordering::Relaxed),
            packets_lost: stats.packets_lost,
            events_ignored: stats.events_ignored,
            write_error: stats.write_error,
        };
        info!(
            path = %summary.path.display(),
            packets = summary.packets_written,
            payload_bytes = summary.payload_bytes,
            backpressure_waits = summary.backpressure_waits,
            error = summary.write_error.as_deref(),
            "capture: finished"
        );
        summary
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::event::{Leg, LegKey, Side};
    use std::future::Future;
    use std::io;
    use std::sync::Mutex;
    use std::time::{Duration, SystemTime};

    /// In-memory output that starts failing like a full disk once `limit` bytes are written.
    #[derive(Clone)]
    struct Disk {
        bytes: Arc<Mutex<Vec<u8>>>,
        limit: usize,
    }

    /// A pcapng capture to the in-memory `disk` with a memory budget of `budget` bytes.
    fn start(disk: Disk, budget: usize) -> (CaptureSink, CaptureWriterHandle) {
        let runtime = tokio::runtime::Handle::current();
        CaptureSink::start_with(
            &runtime,
            Path::new("mem.pcapng"),
            CaptureMeta::default(),
            Box::new(disk),
            budget,
        )
        .expect("start")
    }

    impl Write for Disk {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let mut bytes = self
                .bytes
                .lock()
                .map_err(|_| io::Error::other("poisoned"))?;
            if bytes.len() + buf.len() > self.limit {
                return Err(io::Error::other("No space left on device"));
            }
            bytes.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn events(n: u64) -> Vec<CaptureEvent> {
        let key = LegKey {
            conn: 1,
            leg: Leg::Client,
        };
        let at = SystemTime::now();
        let mut out = vec![CaptureEvent::Opened {
            key,
            initiator: "127.0.0.1:40000".parse().expect("addr"),
            responder: "127.0.0.1:3030".parse().expect("addr"),
            at,
        }];
        for _ in 0..n {
            let bytes = bytes::Bytes::from_static(b"ping");
            out.push(CaptureEvent::Data {
                key,
                from: Side::Initiator,
                bytes,
                at,
                comment: None,
            });
        }
        out.push(CaptureEvent::Closed { key });
        out
    }

    #[tokio::test]
    async fn a_full_channel_waits_instead_of_dropping() {
        let disk = Disk {
            bytes: Arc::default(),
            limit: usize::MAX,
        };
        let runtime = tokio::runtime::Handle::current();
        let path = Path::new("mem.pcapng");
        let (sink, handle) =
            CaptureSink::start_with(&runtime, path, CaptureMeta::default(), Box::new(disk), 1)
                .expect("start");
        for event in events(500) {
            sink.record(event).await;
        }
        drop(sink);
        let summary = handle.finish().await;
        assert!(summary.backpressure_waits > 0);
        assert_eq!(
            summary.packets_written,
            3 + 500 * 2,
            "handshake + data and its ACK, none dropped"
        );
        assert_eq!(summary.payload_bytes, 500 * 4);
        assert_eq!(summary.write_error, None);
    }

    /// A reader of the file asks for what was recorded so far and finds it there at once, long
    /// before the writer's own once-a-second flush. Measured on tokio's paused clock (the write on
    /// the blocking pool holds it still), so a loaded machine cannot make "at once" late.
    #[tokio::test(start_paused = true)]
    async fn a_flush_puts_what_was_recorded_in_the_file_before_it_answers() {
        let bytes: Arc<Mutex<Vec<u8>>> = Arc::default();
        let (sink, handle) = start(
            Disk {
                bytes: bytes.clone(),
                limit: usize::MAX,
            },
            QUEUE_BUDGET,
        );
        let header = bytes.lock().expect("lock").len();
        let mut all = events(3);
        all.pop(); // keep the leg open: the capture is still being written
        for event in all {
            sink.record(event).await;
        }
        let started = tokio::time::Instant::now();
        assert!(sink.flush(Duration::from_secs(5)).await, "answered");
        assert!(started.elapsed() < Duration::from_millis(500));
        let written = bytes.lock().expect("lock").clone();
        assert!(written.len() > header, "the events are in the file");
        let pings = written.windows(4).filter(|w| w == b"ping").count();
        assert_eq!(pings, 3, "every payload recorded before the flush");
        drop(sink);
        assert_eq!(handle.finish().await.packets_written, 3 + 3 * 2);
    }

    #[tokio::test]
    async fn a_flush_of_a_gone_writer_says_so() {
        let (sink, handle) = start(
            Disk {
                bytes: Arc::default(),
                limit: usize::MAX,
            },
            QUEUE_BUDGET,
        );
        handle.task.abort();
        let _ = handle.finish().await;
        assert!(!sink.flush(Duration::from_secs(5)).await);
    }

    /// A writer that is gone (it panicked) gives no budget back: recorders must not wait for it
    /// forever, or every pump of the run hangs on its next event.
    #[tokio::test]
    async fn recorders_do_not_wait_for_a_gone_writer() {
        let (sink, handle) = start(
            Disk {
                bytes: Arc::default(),
                limit: usize::MAX,
            },
            8,
        );
        handle.task.abort();
        let _ = handle.finish().await;
        let recorded = tokio::time::timeout(Duration::from_secs(5), async {
            for event in events(10) {
                sink.record(event).await;
            }
        })
        .await;
        assert!(
            recorded.is_ok(),
            "a recorder waited for a writer that is gone"
        );
    }

    #[tokio::test]
    async fn an_event_whose_recorder_is_dropped_while_waiting_is_still_written() {
        let (sink, handle) = start(
            Disk {
                bytes: Arc::default(),
                limit: usize::MAX,
            },
            1,
        );
        let mut cancelled = 0;
        for event in events(300) {
            // Every recorder gives up at its first wait, as a pump does when its connection
            // ends: the event must be written all the same.
            let mut record = std::pin::pin!(sink.record(event));
            let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
            if record.as_mut().poll(&mut cx).is_pending() {
                cancelled += 1;
            }
        }
        assert!(cancelled > 0, "a budget of 1 byte makes recorders wait");
        drop(sink);
        let summary = handle.finish().await;
        assert_eq!(
            summary.packets_written,
            3 + 300 * 2,
            "handshake + data and its ACK, none lost"
        );
        assert_eq!(summary.payload_bytes, 300 * 4);
    }

    #[tokio::test]
    async fn a_flush_after_a_write_error_says_the_events_are_not_in_the_file() {
        let (sink, handle) = start(
            Disk {
                bytes: Arc::default(),
                limit: 2048,
            },
            QUEUE_BUDGET,
        );
        let mut all = events(200);
        all.pop(); // keep the leg open
        for event in all {
            sink.record(event).await;
        }
        assert!(
            !sink.flush(Duration::from_secs(5)).await,
            "the disk filled up: the events are not all in the file"
        );
        drop(sink);
        assert!(handle.finish().await.write_error.is_some());
    }

    #[tokio::test]
    async fn a_full_disk_is_reported_and_events_keep_flowing() {
        let disk = Disk {
            bytes: Arc::default(),
            limit: 4096,
        };
        let runtime = tokio::runtime::Handle::current();
        let (sink, handle) = CaptureSink::start_with(
            &runtime,
            Path::new("mem.pcap"),
            CaptureMeta::default(),
            Box::new(disk.clone()),
            8,
        )
        .expect("header fits");
        let mut all = events(20_000);
        // A comment forces a flush mid-stream, so the disk fills while events are still coming.
        if let Some(CaptureEvent::Data { comment, .. }) = all.get_mut(10) {
            *comment = Some("fault".into());
        }
        for event in all {
            sink.record(event).await;
        }
        drop(sink);
        let summary = handle.finish().await;
        assert_eq!(summary.format, CaptureFormat::Pcap);
        assert!(
            summary
                .write_error
                .as_deref()
                .is_some_and(|e| e.contains("No space")),
            "{summary:?}"
        );
        assert!(summary.packets_lost > 0);
        assert_eq!(
            summary.packets_written + summary.packets_lost,
            3 + 20_000 * 2
        );
        assert!(disk.bytes.lock().expect("lock").len() <= 4096);
    }

    #[tokio::test]
    async fn an_unwritable_path_fails_at_start_naming_the_path() {
        let dir =
            std::env::temp_dir().join(format!("faultline-capture-unit-{}", std::process::id()));
        fs::create_dir_all(&dir).expect("temp dir");
        let blocker = dir.join("not-a-dir");
        fs::write(&blocker, b"x").expect("file");
        let err = CaptureSink::start(&blocker.join("sub/x.pcapng"), CaptureMeta::default())
            .expect_err("must fail");
        assert!(matches!(err, CaptureError::CreateDir { .. }), "{err:?}");
        assert!(err.to_string().contains("not-a-dir"), "{err}");
        let err = CaptureSink::start(Path::new("/dev/full"), CaptureMeta::default())
            .expect_err("disk full");
        assert!(matches!(err, CaptureError::Header { .. }), "{err:?}");
        assert!(err.to_string().contains("/dev/full"), "{err}");
        let _ = fs::remove_dir_all(&dir);
    }

    /// Two runs started at the same moment on one fixed name both passed the claim's check and
    /// wrote into one file (a CI trial): the writing lock decides, before anything is emptied.
    #[tokio::test]
    async fn a_capture_another_run_writes_is_refused_and_left_alone() {
        let dir =
            std::env::temp_dir().join(format!("faultline-capture-busy-{}", std::process::id()));
        fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("same.pcapng");
        let (_sink, _writer) =
            CaptureSink::start(&path, CaptureMeta::default()).expect("the first run writes");
        let written = fs::metadata(&path).expect("exists").len();
        assert!(written > 0, "the header is written at start");
        let err = CaptureSink::start(&path, CaptureMeta::default()).expect_err("busy");
        assert!(matches!(err, CaptureError::Busy { .. }), "{err:?}");
        assert!(
            err.to_string()
                .contains("another faultline run is writing it now"),
            "{err}"
        );
        assert_eq!(
            fs::metadata(&path).expect("exists").len(),
            written,
            "not emptied"
        );
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn start_outside_a_runtime_is_an_error_not_a_panic() {
        let err = CaptureSink::start(Path::new("x.pcapng"), CaptureMeta::default())
            .expect_err("no runtime");
        assert!(matches!(err, CaptureError::NoRuntime { .. }));
    }

    #[test]
    fn format_follows_the_file_name() {
        assert_eq!(
            CaptureFormat::from_path(Path::new("a/b.pcap")),
            CaptureFormat::Pcap
        );
        assert_eq!(
            CaptureFormat::from_path(Path::new("b.PCAP")),
            CaptureFormat::Pcap
        );
        assert_eq!(
            CaptureFormat::from_path(Path::new("b.pcapng")),
            CaptureFormat::Pcapng
        );
        assert_eq!(
            CaptureFormat::from_path(Path::new("b")),
            CaptureFormat::Pcapng
        );
    }
}
