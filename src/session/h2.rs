//! The HTTP/2 session of one connection: labels every byte with the frame reader, decides rules
//! per stream, and maps each stream's DATA onto the one fault engine — a stream is a payload
//! stream like an HTTP/1 body — then turns what the faults did into HTTP/2: a cut frame gets a
//! rewritten header, an ended stream gets RST_STREAM to both peers, discarded DATA has its
//! connection flow-control credit returned so sibling streams never starve. Frames faultline
//! passes on are never re-serialized; frames it writes use HPACK literals without indexing. One
//! exception: once faultline had to withhold from the client an upstream header block that
//! changed the client's HPACK table (it came on a stream the client saw end), later upstream
//! blocks reach the client re-encoded without the dynamic table (`client_detached`).
//!
//! Frames meant for the *sender* of a direction (credit, RST_STREAM, GOAWAY, answers) wait in
//! the other direction's outbox and go out at that direction's next frame boundary; the caller
//! wakes an idle direction when its outbox fills (`wants_flush`).
//!
//! A fault that delays one stream (`latency`, a `stall` with a `duration`) does not delay the
//! connection: the stream's frames are held ([`super::h2_hold`]) and put back, bytes unchanged,
//! through the outbox once due, while the other streams' frames keep flowing. Where holding
//! would reorder what must stay in order (a frame of the stream other than DATA that cannot be
//! held, a header block that changes the HPACK table behind a held one, GOAWAY, the cap), the
//! held frames leave in place and the direction waits for them, as a slow middlebox would.
//!
//! faultline's own answer bodies spend the client's connection window, which the upstream never
//! saw spent: until the client acknowledges them, the upstream may send that much more than
//! the client can take. So no upstream DATA frame goes past the client's real window; one that
//! would waits, with every upstream frame after it, unplanned and in order, until the client's
//! WINDOW_UPDATE makes room (`waits_for_credit`).

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;

use bytes::Bytes;
use tokio::time::Instant;
use tracing::{debug, warn};

use super::arming::{arm_request, arm_response};
use super::h2_call::{attempt_key, CallHead, FIRST_MESSAGE_LIMIT};
use super::h2_cut::{fate_of, FrameFate, FrameLayout};
use super::h2_hold::{HeldFrame, HeldFrames, MAX_HELD_BYTES};
use super::message::{MessageFaults, RuleStreams};
use super::offsets::ChunkPlan;
use super::{RunView, SessionPlan};
use crate::direction::Direction;
use crate::fault::plan::{EndHow, Mark, Role, RuleId, Step};
use crate::fault::respond::RespondAfter;
use crate::fault::rst_stream::RstStream;
use crate::fault::{Fault, FaultChain, MessageScope, Scope};
use crate::h2::build::{self, BlockLimits};
use crate::h2::flow::{credit_for, flow_controlled};
use crate::h2::frame::{FLAG_ACK, FLAG_END_STREAM, HEADER_LEN};
use crate::h2::grpc::MessageAssembler;
use crate::h2::hpack_encode::encode_size_update;
use crate::h2::own_body::OwnBody;
use crate::h2::settings::HEADER_TABLE_SIZE;
use crate::h2::Control;
use crate::h2::{
    BlockRole, Conversation, DecodedBlock, ErrorCode, FrameHeader, FrameType, HeaderList, Piece,
    PieceKind, StreamId,
};
use crate::http::answer::reason_phrase;
use crate::scenario::{ConnectionFacts, RequestFacts, Scenario};

/// A piece of a chunk, with the header block it completed (if it did).
#[derive(Debug, Clone)]
struct Labelled {
    piece: Piece,
    block: Option<DecodedBlock>,
}

impl Labelled {
    fn end(&self) -> u64 {
        self.piece.start + self.piece.len as u64
    }
}

/// Something faultline owes the receiver of a direction.
#[derive(Debug, Clone)]
enum Owed {
    /// A frame it made, with its mark: the rule's own when it is the fault's first sign, a
    /// follow-up note otherwise, so every injected frame is commented in the capture.
    Frame(Bytes, Mark),
    /// A frame the sender wrote, held for a delay and now due: its bytes as they came, with the
    /// comment of its stretch of held frames (on the first of them only).
    Held(Bytes, Option<Mark>),
    /// Connection-window credit for DATA faultline dropped, merged until the next flush (one
    /// WINDOW_UPDATE instead of one per dropped frame): bytes and the streams they came from,
    /// then the stream-window credit owed too (the client's DATA on a stream faultline answers
    /// once the request ends: the upstream, which never saw it, cannot return it).
    Credit(u64, Vec<StreamId>, Vec<(StreamId, u64)>),
    /// Close the connection cleanly once the frames before are written (GOAWAY, not graceful).
    Close(Mark),
    /// Owed to the receiver of the other direction, once the frames before it here are planned:
    /// a non-graceful GOAWAY reaches the client first, then the upstream's GOAWAY and the close
    /// ride the client->upstream direction, so the close can never overtake the upstream's
    /// GOAWAY (it waited in an idle direction's outbox while the close won).
    Handoff(Vec<Owed>),
}

/// What the session does with the rest of a DATA or unknown frame that began in an earlier
/// chunk, and how many of its bytes are still to come.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ongoing {
    Relay(usize),
    Skip(usize),
}

/// What faultline decided for one stream.
#[derive(Debug)]
struct StreamRules {
    head: CallHead,
    request: HeaderList,
    label: String,
    /// Rules decided (at the request headers, or at the first gRPC message).
    armed: bool,
    /// A gRPC call waits for its first request message before rules decide.
    first_message: Option<MessageAssembler>,
    /// Client payload offset fed to `first_message` so far.
    first_fed: u64,
    /// While the client direction waits for the first request message: when rules decide on
    /// what came of it if it is still not whole (a client that stops mid-message would hold
    /// every later client frame of the connection for good).
    first_wait: Option<Instant>,
    /// `first_wait` passed: rules decide at the next plan on the message's bytes so far.
    first_overdue: bool,
    /// The first request message, once assembled.
    first_body: Option<Vec<u8>>,
    /// Fault chains per direction (request: client->upstream, response: upstream->client).
    chains: [Option<FaultChain>; 2],
    /// Rules (keys) waiting for the response headers.
    response_rules: Vec<u64>,
    /// Later frames of the stream in this direction are dropped (faultline ended the stream).
    discard: [bool; 2],
    /// Reset the client instead of relaying the response.
    drop_response: Option<Mark>,
    /// A stall without end froze the stream toward the receiver of this direction (its mark):
    /// nothing of it reaches that receiver any more, not even its end.
    stalled: [Option<Mark>; 2],
    /// When the stream opened, for `rst_stream.at`.
    opened: Instant,
    /// A reset due at an instant (`rst_stream.at`).
    timer: Option<(Instant, ErrorCode, Mark)>,
    /// The mark of the rule that delays the stream in this direction, for the notes of the
    /// frames it holds (used through [`follow_up`], so the rule is counted once).
    delayed_by: [Option<Mark>; 2],
    /// The rule's own mark, taken off a header block that is not delayed (header blocks carry
    /// HPACK state, so they are never held for a delay of their own): it rides on the first
    /// frame the rule really delays.
    pending_mark: [Option<Mark>; 2],
    /// faultline answered the stream itself (or refused it after its GOAWAY): the client's
    /// stream-level WINDOW_UPDATEs acknowledge faultline's DATA, not the upstream's.
    answered: bool,
    /// The upstream never heard of the stream (its request block was kept from it): no frame of
    /// it may reach the upstream, where the stream is idle (RFC 9113 §5.1).
    upstream_unaware: bool,
    /// faultline's answer (`respond` with `after = "request-body"`), owed once the request
    /// ends: its DATA is read and dropped until then.
    deferred: Option<DeferredAnswer>,
}

/// faultline's answer to a plain HTTP/2 request that has not ended yet, sent at its END_STREAM
/// (DATA or trailers) as a server that reads the whole upload before refusing it would: the
/// client is not cut off mid-upload (curl reports RST_STREAM(NO_ERROR) there as an error).
#[derive(Debug)]
struct DeferredAnswer {
    /// The answer's header block.
    frames: Vec<u8>,
    mark: Mark,
    /// The answer's body (DATA, sent as the client's windows allow).
    body: Vec<u8>,
    /// Request body bytes (flow-controlled, padding included) read and dropped so far.
    dropped: u64,
}

impl StreamRules {
    /// A stream whose request block `request` arrived at `opened`: nothing decided yet.
    fn new(request: &HeaderList, opened: Instant) -> StreamRules {
        let head = CallHead::of(request);
        StreamRules {
            label: head.label(),
            head,
            request: request.clone(),
            armed: false,
            first_message: None,
            first_fed: 0,
            first_wait: None,
            first_overdue: false,
            first_body: None,
            chains: [None, None],
            response_rules: Vec::new(),
            discard: [false, false],
            stalled: [None, None],
            drop_response: None,
            opened,
            timer: None,
            delayed_by: [None, None],
            pending_mark: [None, None],
            answered: false,
            upstream_unaware: false,
            deferred: None,
        }
    }
}

/// A body of faultline's own answer still owed to the client, sent as its windows allow.
#[derive(Debug)]
struct PendingBody {
    body: OwnBody,
    total: usize,
    mark: Mark,
    /// Owed once the body is complete (the RST_STREAM(NO_ERROR) of an answer that came before
    /// the request ended).
    then: Option<(Vec<u8>, Mark)>,
}

/// The HTTP/2 view of one connection.
#[derive(Debug)]
pub struct H2Session {
    conv: Conversation,
    failed: bool,
    /// The most the conversation's streams held in header lists at once (RFC 9113 §6.5.2
    /// count): past [`RELEASE_AFTER`], the session's end hands freed memory back.
    headers_peak: usize,
    planned: [u64; 2],
    /// Bytes the reader still has to see before the next chunk: relayed while the protocol was
    /// being detected.
    prefix: [Vec<u8>; 2],
    /// Pieces read but not planned yet (a DATA frame a chain must see whole, a first gRPC
    /// message rules wait for); their bytes start the next chunk.
    held: [Vec<Labelled>; 2],
    ongoing: [Option<Ongoing>; 2],
    /// Frames relayed so far per direction: nothing is inserted before a peer's first frame.
    frames_seen: [u64; 2],
    outbox: [Vec<Owed>; 2],
    /// Frames of delayed streams held back per direction, until their release.
    delayed: [HeldFrames; 2],
    /// Per direction, for each SETTINGS the other peer sent that this direction's sender has
    /// not acknowledged yet, in order: whether it set SETTINGS_HEADER_TABLE_SIZE. Only the
    /// acknowledgment of such a change obliges the sender's next header block to start with a
    /// table size update, so only that SETTINGS ACK must not pass a held block. At most
    /// `MAX_SETTINGS_OWED` are kept; an acknowledgment beyond them counts as a change.
    settings_owed: [VecDeque<bool>; 2],
    streams: HashMap<StreamId, StreamRules>,
    candidates: Vec<usize>,
    candidates_from: Option<Arc<Scenario>>,
    seed: u64,
    facts: ConnectionFacts,
    rule_streams: RuleStreams,
    opened: Instant,
    goaways_fired: HashSet<u64>,
    /// faultline withheld from the client an upstream header block that changed the client's
    /// HPACK table (a late answer on a stream the client saw end): the client's table no longer
    /// mirrors the upstream's encoder, so every later upstream block goes to the client in its
    /// detached form (see [`DecodedBlock::detached`]).
    client_detached: bool,
    /// Table size updates of withheld upstream blocks (their smallest and their last, RFC 7541
    /// §4.2), which the next block sent to the client must start with: a decoder may insist on
    /// the update after it lowered SETTINGS_HEADER_TABLE_SIZE.
    owed_size_updates: Vec<usize>,
    /// Bodies of faultline's own answers not yet all sent, by stream.
    bodies: BTreeMap<StreamId, PendingBody>,
    /// DATA payload bytes faultline itself sent the client (answer bodies): they use up the
    /// client's connection window as the upstream's DATA does.
    own_sent: u64,
    /// Of those, the bytes the client's connection WINDOW_UPDATEs have not yet acknowledged:
    /// that much of the client's next credit is kept from the upstream, which never sent them
    /// (forwarded, it would let the upstream overrun the client's window).
    own_unacknowledged: u64,
    /// Upstream DATA bytes faultline dropped before they reached the client (their credit went
    /// back to the upstream): the client never spent its window on them.
    dropped_toward_client: u64,
    /// Flow-controlled bytes of the upstream DATA frames let on toward the client (relayed,
    /// cut, held for a delay, or dropped: those count in `dropped_toward_client` too). With
    /// `own_sent` it is what the client's connection window has to take, which faultline never
    /// lets exceed what the client granted (see [`Self::client_window_left`]).
    toward_client: u64,
    /// The upstream DATA frame (its stream, its flow-controlled bytes) that waits, with every
    /// upstream frame after it, for the client's connection credit: the upstream never sent
    /// faultline's own DATA, so it believes the client's window larger than it is by what the
    /// client has not acknowledged of that DATA, and may send that much too soon.
    waits_for_credit: Option<(StreamId, u64)>,
    /// Per direction, its sender closed (the pump asked to [`Self::drain`] it): nothing waits
    /// for the client's credit or a gRPC call's first message any more, or the pump would
    /// relay the frames waiting as they came, header blocks the receiver must get in another
    /// form (or not at all) included.
    source_closed: [bool; 2],
    /// The last stream faultline's GOAWAY let the client open, and that GOAWAY's mark: a later
    /// stream is refused, never forwarded (RFC 9113 §6.8).
    goaway_last: Option<(StreamId, Mark)>,
    /// faultline kept from the upstream a request block that changed the upstream's HPACK
    /// table (a stream refused after its GOAWAY): the upstream's table no longer mirrors the
    /// client's encoder, so every later client block goes to the upstream in its detached form,
    /// as `client_detached` does the other way.
    upstream_detached: bool,
    /// Table size updates of client blocks kept from the upstream, owed to the next block sent
    /// there (see `owed_size_updates`).
    owed_upstream_size_updates: Vec<usize>,
    /// A first request message that never came whole within [`FIRST_MESSAGE_WAIT`] was warned
    /// about (once per connection; later ones are logged at debug).
    first_wait_warned: bool,
    /// Streams opened (client requests and pushes) as far as planned, and the highest client
    /// stream planned: what `goaway.after_streams` counts and its GOAWAY names. The tracker's
    /// counts run ahead, over every block read, and a burst of requests is read in one chunk:
    /// counted there, a GOAWAY after 2 streams named the 8th, and all 8 went upstream.
    opened_planned: u64,
    highest_planned: StreamId,
}

/// The longest the client direction waits for a gRPC call's first request message to come
/// whole before rules decide on what came of it. A client writes a message at once, so its
/// bytes arrive back to back unless its flow-control windows stop it (decided at once, see
/// `first_message_stuck`); this only bounds a client that pauses inside a message.
pub(crate) const FIRST_MESSAGE_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// Header lists held at once past which a session's end hands freed memory back to the
/// operating system: glibc keeps freed chunks in its arenas, so 24 connections of header
/// bombs left faultline at 1.3 GB resident after they all closed (a `malloc_trim` then
/// brought it to 30 MB: nothing was leaked). Real traffic stays far below.
const RELEASE_AFTER: usize = 1 << 20;

impl Drop for H2Session {
    fn drop(&mut self) {
        if self.headers_peak >= RELEASE_AFTER {
            release_memory();
        }
    }
}

/// Hands memory freed by the session back to the operating system (glibc only; elsewhere the
/// allocator's own policy applies).
fn release_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks glibc's own arenas and returns free pages; it has no
    // preconditions and touches no memory the program still uses.
    unsafe {
        libc::malloc_trim(0);
    }
}

impl H2Session {
    /// A session for the connection `facts` describe, in a run seeded with `seed`, opened at
    /// `opened`. `relayed_upstream` holds upstream bytes already relayed before the protocol was
    /// known (a server's SETTINGS may come first): the session reads them before anything else.
    pub fn new(
        seed: u64,
        facts: ConnectionFacts,
        opened: Instant,
        relayed_upstream: Vec<u8>,
    ) -> Self {
        let planned_upstream = relayed_upstream.len() as u64;
        // The conversation reads the early bytes now, not at the upstream's next chunk: the
        // server's SETTINGS (say, a larger maximum frame size) govern what the client sends
        // next, and the client's next chunk may come first. Their pieces wait in `held`, as
        // pieces already relayed, for the upstream direction's next plan.
        let mut conv = Conversation::new().with_client_detached_forms();
        let mut failed = false;
        let mut early_pieces = Vec::new();
        let mut unread = Vec::new();
        match conv.feed(Direction::UpstreamToClient, &relayed_upstream) {
            Ok(fed) => {
                let mut blocks: HashMap<usize, DecodedBlock> =
                    fed.blocks.into_iter().map(|b| (b.piece, b)).collect();
                early_pieces = fed
                    .pieces
                    .into_iter()
                    .enumerate()
                    .map(|(i, piece)| Labelled {
                        piece,
                        block: blocks.remove(&i),
                    })
                    .collect();
                unread = relayed_upstream[fed.consumed..].to_vec();
            }
            Err(error) => {
                warn!(%error, "the upstream's first bytes are not HTTP/2; relaying the connection as raw bytes");
                failed = true;
            }
        }
        H2Session {
            conv,
            failed,
            headers_peak: 0,
            planned: [0, planned_upstream],
            prefix: [Vec::new(), unread],
            held: [Vec::new(), early_pieces],
            ongoing: [None, None],
            frames_seen: [0, 0],
            outbox: [Vec::new(), Vec::new()],
            delayed: [HeldFrames::default(), HeldFrames::default()],
            settings_owed: [VecDeque::new(), VecDeque::new()],
            streams: HashMap::new(),
            candidates: Vec::new(),
            candidates_from: None,
            seed,
            rule_streams: RuleStreams::new(seed, facts.ordinal),
            facts,
            opened,
            goaways_fired: HashSet::new(),
            client_detached: false,
            owed_size_updates: Vec::new(),
            bodies: BTreeMap::new(),
            own_sent: 0,
            own_unacknowledged: 0,
            dropped_toward_client: 0,
            toward_client: 0,
            waits_for_credit: None,
            source_closed: [false, false],
            goaway_last: None,
            upstream_detached: false,
            owed_upstream_size_updates: Vec::new(),
            first_wait_warned: false,
            opened_planned: 0,
            highest_planned: StreamId(0),
        }
    }

    /// A session for a connection that just switched from HTTP/1.1 with `Upgrade: h2c`: the
    /// client starts with the preface, the server with SETTINGS, and stream 1 carries the
    /// upgraded request (`request`, decided by the HTTP/1 session: its rules do not apply again).
    pub fn upgraded(
        seed: u64,
        facts: ConnectionFacts,
        opened: Instant,
        request: HeaderList,
    ) -> Self {
        let mut session = H2Session::new(seed, facts, opened, Vec::new());
        session.conv = Conversation::upgraded(request).with_client_detached_forms();
        session.opened_planned = 1;
        session.highest_planned = StreamId(1);
        session
    }

    /// Whether the session still plans `direction`: while it follows the connection, and after
    /// a peer broke HTTP/2 until the frames it still holds for that direction went out.
    pub fn is_active(&self, direction: Direction) -> bool {
        !self.failed || self.holds_frames(direction)
    }

    /// Frames held for the receiver of `direction` (delayed, or released and not yet written).
    fn holds_frames(&self, direction: Direction) -> bool {
        let d = direction.index();
        !self.delayed[d].is_empty()
            || self.outbox[d]
                .iter()
                .any(|o| matches!(o, Owed::Frame(..) | Owed::Held(..)))
    }

    /// After a peer broke HTTP/2 the session no longer knows frame boundaries, but the frames it
    /// held for a delay were skipped from earlier chunks and exist nowhere else: they go out now,
    /// each not before its release, ahead of the raw bytes (they came before them). Credit and
    /// closes owed are dropped: the connection is relayed as plain bytes from here.
    fn spill_held(&mut self, direction: Direction, plan: &mut ChunkPlan) {
        let d = direction.index();
        let frames = self.delayed[d].take_all();
        for owed in std::mem::take(&mut self.outbox[d]) {
            match owed {
                Owed::Frame(bytes, mark) => plan.insert_at(bytes, plan.arrival(), Some(mark)),
                Owed::Held(bytes, mark) => plan.insert_at(bytes, plan.arrival(), mark),
                Owed::Credit(..) | Owed::Close(_) | Owed::Handoff(_) => {}
            }
        }
        for frame in frames {
            plan.insert_at(frame.bytes, frame.release, frame.mark);
        }
    }

    /// Whether faultline owes the receiver of `direction` frames that wait for that direction's
    /// next plan: the caller wakes its pump.
    pub fn wants_flush(&self, direction: Direction) -> bool {
        if self.failed {
            return self.holds_frames(direction);
        }
        !self.outbox[direction.index()].is_empty()
            || (direction == Direction::UpstreamToClient && self.credit_arrived())
            || (direction == Direction::ClientToUpstream && self.first_message_due())
    }

    /// Whether the client direction holds frames behind a first request message now overdue:
    /// it plans again (its pump holds their bytes) and rules decide.
    fn first_message_due(&self) -> bool {
        !self.held[Direction::ClientToUpstream.index()].is_empty()
            && self.streams.values().any(|s| !s.armed && s.first_overdue)
    }

    /// Whether the client's connection window now takes the upstream DATA frame that waits for
    /// it: the upstream direction plans again (its pump holds the frame's bytes).
    fn credit_arrived(&self) -> bool {
        self.waits_for_credit
            .is_some_and(|(_, len)| self.client_window_left() >= len as i64)
    }

    /// The next instant a timer of the session is due (`rst_stream.at`, `goaway.at`, the
    /// release of a held frame).
    pub fn next_deadline(&self, scenario: &Scenario) -> Option<Instant> {
        if self.failed {
            return None;
        }
        let streams = self
            .streams
            .values()
            .filter_map(|s| s.timer.as_ref().map(|(at, _, _)| *at));
        let goaways = self.goaway_rules(scenario).filter_map(|(key, g, _)| {
            (!self.goaways_fired.contains(&key))
                .then_some(g.at.map(|at| self.opened + at.0))
                .flatten()
        });
        let held = self.delayed.iter().filter_map(HeldFrames::next_release);
        let first_messages = self
            .streams
            .values()
            .filter(|s| !s.armed)
            .filter_map(|s| s.first_wait);
        streams
            .chain(goaways)
            .chain(held)
            .chain(first_messages)
            .min()
    }

    /// Fires the timers due at `now`: their frames go to the outboxes.
    pub fn tick(&mut self, now: Instant, scenario: &Scenario) {
        if self.failed {
            return;
        }
        let due: Vec<(StreamId, ErrorCode, Mark)> = self
            .streams
            .iter_mut()
            .filter_map(|(id, s)| {
                let fire = s.timer.as_ref().is_some_and(|(at, _, _)| *at <= now);
                fire.then(|| s.timer.take())
                    .flatten()
                    .map(|(_, code, mark)| (*id, code, mark))
            })
            .collect();
        for (id, code, mark) in due {
            self.reset_both(id, code, mark);
        }
        self.first_messages_overdue(now);
        let goaways: Vec<(u64, crate::fault::goaway::Goaway, Mark)> = self
            .goaway_rules(scenario)
            .filter(|(key, g, _)| {
                !self.goaways_fired.contains(key)
                    && g.at.is_some_and(|at| self.opened + at.0 <= now)
            })
            .map(|(key, g, mark)| (key, g.clone(), mark))
            .collect();
        for (key, goaway, mark) in goaways {
            self.fire_goaway(key, &goaway, mark);
        }
        for direction in Direction::ALL {
            self.release_due(direction, now);
        }
    }

    /// Marks the first request messages waited for past [`FIRST_MESSAGE_WAIT`] overdue: the
    /// client direction, woken (`wants_flush`), decides on what came of them and relays what it
    /// held behind them. Said once per connection at warn (the wait held the client's frames),
    /// then at debug.
    fn first_messages_overdue(&mut self, now: Instant) {
        let mut overdue = Vec::new();
        for (id, s) in &mut self.streams {
            if !s.armed && s.first_wait.is_some_and(|at| at <= now) {
                s.first_wait = None;
                s.first_overdue = true;
                overdue.push((*id, s.first_fed, s.label.clone()));
            }
        }
        for (id, came, call) in overdue {
            let wait = format!("{FIRST_MESSAGE_WAIT:?}");
            if self.first_wait_warned {
                debug!(stream = id.0, came, call, wait, "a gRPC call's first request message did not come whole in time: rules decide on what came");
            } else {
                self.first_wait_warned = true;
                warn!(stream = id.0, came, call, wait, "a gRPC call's first request message did not come whole in time, and the client's frames after it waited meanwhile: rules decide on what came (said once per connection)");
            }
        }
    }

    /// Everything still owed to the receiver of `direction` when its sender closed: the outbox
    /// and the held frames, each not before its release (nothing held is lost on a normal
    /// end, nor when the sender stopped inside a frame none of whose bytes went out yet: those
    /// follow as they came). Empty when part of that frame already reached the receiver
    /// (nothing may follow that).
    pub fn drain(&mut self, direction: Direction, now: Instant) -> SessionPlan {
        let d = direction.index();
        self.source_closed[d] = true;
        let mut plan = ChunkPlan::new(self.planned[d], 0, now);
        if self.failed {
            self.spill_held(direction, &mut plan);
            return plan.finish(0);
        }
        if self.relayed_part_of_a_frame(direction) {
            // Anything written now would be read as the rest of that frame.
            let held = self.delayed[d].bytes();
            if held > 0 {
                warn!(%direction, held, "the sender closed inside a frame: the frames held for a delay cannot follow it and are dropped");
            }
            return plan.finish(0);
        }
        self.flush_outbox(direction, &mut plan);
        let all = self.delayed[d].take_all();
        self.release_inline(direction, all, &mut plan);
        plan.finish(0)
    }

    /// Whether the receiver of `direction` got the start of a frame but not its end: the
    /// sender stopped inside it, or the session is still deciding on the rest.
    pub fn relayed_part_of_a_frame(&self, direction: Direction) -> bool {
        let d = direction.index();
        matches!(self.ongoing[d], Some(Ongoing::Relay(_)))
            || self.held[d].iter().any(|l| l.piece.start < self.planned[d])
    }

    /// Plans a chunk of `direction` (it starts with the bytes this direction's previous plan
    /// held back).
    pub fn plan(
        &mut self,
        direction: Direction,
        chunk: &[u8],
        arrival: Instant,
        run: RunView<'_>,
    ) -> SessionPlan {
        if self.failed {
            let d = direction.index();
            let mut plan = ChunkPlan::new(self.planned[d], chunk.len(), arrival);
            self.spill_held(direction, &mut plan);
            plan.relay(plan.end(), Role::Framing);
            self.planned[d] += chunk.len() as u64;
            return plan.finish(0);
        }
        self.refresh_candidates(run.scenario);
        self.release_due(direction, arrival);
        let d = direction.index();
        let held = std::mem::take(&mut self.held[d]);
        let held_len: usize = held
            .iter()
            .filter(|l| l.piece.start >= self.planned[d])
            .map(|l| l.piece.len)
            .sum();
        let fresh = chunk.get(held_len..).unwrap_or_default();
        let prefix = std::mem::take(&mut self.prefix[d]);
        let fed = if prefix.is_empty() {
            self.conv.feed(direction, fresh)
        } else {
            let mut input = prefix.clone();
            input.extend_from_slice(fresh);
            self.conv.feed(direction, &input)
        };
        self.headers_peak = self.headers_peak.max(self.conv.tracker().headers_kept());
        let fed = match fed {
            Ok(fed) => fed,
            Err(error) => {
                warn!(%direction, %error, "not HTTP/2 after all; relaying the rest of the connection as raw bytes");
                self.failed = true;
                return self.plan(direction, chunk, arrival, run);
            }
        };
        let input_len = prefix.len() + fresh.len();
        let unread = input_len - fed.consumed;
        if fed.consumed < prefix.len() {
            self.prefix[d] = prefix[fed.consumed..].to_vec();
        }
        let unread_in_chunk = unread.min(fresh.len());
        let mut blocks: HashMap<usize, DecodedBlock> =
            fed.blocks.into_iter().map(|b| (b.piece, b)).collect();
        let mut pieces = held;
        pieces.extend(
            fed.pieces
                .into_iter()
                .enumerate()
                .map(|(i, piece)| Labelled {
                    piece,
                    block: blocks.remove(&i),
                }),
        );

        let start = self.planned[d];
        let mut plan = ChunkPlan::new(start, chunk.len(), arrival);
        let kept = self.walk(direction, &pieces, chunk, start, &mut plan, run);
        // The client's WINDOW_UPDATEs and SETTINGS just read may let more of faultline's own
        // answer bodies go.
        self.send_bodies();
        let mut deferred = unread_in_chunk;
        if let Some(from) = kept {
            let held_again: Vec<Labelled> = pieces[from..].to_vec();
            deferred += held_again
                .iter()
                .filter(|l| l.piece.start >= start)
                .map(|l| l.piece.len)
                .sum::<usize>();
            self.held[d] = held_again;
        } else if self.ongoing[d].is_none() {
            // A frame boundary: what is owed to this direction's receiver goes out now.
            self.flush_outbox(direction, &mut plan);
        }
        let covered = plan.end().saturating_sub(deferred as u64);
        plan.relay(covered, Role::Framing);
        let result = plan.finish(deferred);
        self.planned[d] += (chunk.len() - result.deferred) as u64;
        self.prune_closed();
        result
    }

    /// Forgets streams that ended (so a long connection stays small, and a timer of a stream that
    /// ended by itself never fires), except those faultline ended: their late frames are still
    /// dropped.
    fn prune_closed(&mut self) {
        let tracker = self.conv.tracker_mut();
        tracker.prune_closed();
        let tracker = self.conv.tracker();
        // Frames read but not planned yet (waiting for the client's credit, a first gRPC
        // message) still need their stream's rules.
        let waiting: HashSet<StreamId> = self
            .held
            .iter()
            .flatten()
            .filter_map(|l| match &l.piece.kind {
                PieceKind::Header(header) => Some(header.stream),
                _ => None,
            })
            .collect();
        self.streams.retain(|id, s| {
            s.discard.iter().any(|&d| d) || tracker.stream(*id).is_some() || waiting.contains(id)
        });
    }

    /// Rules whose connection keys select this connection, chosen again when the scenario is
    /// replaced.
    fn refresh_candidates(&mut self, scenario: &Arc<Scenario>) {
        if self
            .candidates_from
            .as_ref()
            .is_some_and(|from| Arc::ptr_eq(from, scenario))
        {
            return;
        }
        self.candidates = scenario
            .rules_for_connection(&self.facts, self.seed)
            .into_iter()
            .filter(|&i| scenario.rules[i].is_http())
            .collect();
        self.candidates_from = Some(scenario.clone());
    }

    fn goaway_rules<'s>(
        &'s self,
        scenario: &'s Scenario,
    ) -> impl Iterator<Item = (u64, &'s crate::fault::goaway::Goaway, Mark)> + 's {
        self.candidates.iter().filter_map(move |&i| {
            let rule = scenario.rules.get(i)?;
            match &rule.fault {
                Fault::Goaway(g) if rule.matcher.http.is_none() => {
                    // The note is written when it fires, with the last stream it names.
                    Some((rule.key, g, Mark::rule(&rule.id, String::new())))
                }
                _ => None,
            }
        })
    }

    /// Walks the labelled pieces of one chunk, planning each; returns the index from which
    /// pieces must be held back, if any.
    fn walk(
        &mut self,
        direction: Direction,
        pieces: &[Labelled],
        chunk: &[u8],
        start: u64,
        plan: &mut ChunkPlan,
        run: RunView<'_>,
    ) -> Option<usize> {
        let d = direction.index();
        let mut i = 0;
        while i < pieces.len() {
            if plan.is_finished() {
                return None;
            }
            let piece = &pieces[i].piece;
            match &piece.kind {
                PieceKind::Preface => {
                    plan.relay(pieces[i].end(), Role::Framing);
                    i += 1;
                }
                PieceKind::Header(header) => {
                    self.ongoing[d] = None;
                    if self.frames_seen[d] > 0 {
                        self.flush_outbox(direction, plan);
                    }
                    self.frames_seen[d] += 1;
                    let frame_end = frame_extent(pieces, i, header);
                    match header.kind {
                        FrameType::Data => {
                            match self
                                .plan_data(direction, pieces, i, header, chunk, start, plan, run)
                            {
                                DataPlan::Done(next) => i = next,
                                DataPlan::Hold => return Some(i),
                            }
                        }
                        FrameType::Headers | FrameType::PushPromise => {
                            let Some(last) = block_end(pieces, i) else {
                                // A block is a unit: the reader never splits one across calls.
                                plan.relay(pieces[i].end(), Role::Framing);
                                i += 1;
                                continue;
                            };
                            self.plan_block(direction, pieces, i, last, chunk, start, plan, run);
                            i = last + 1;
                        }
                        FrameType::RstStream | FrameType::WindowUpdate
                            if direction == Direction::UpstreamToClient
                                && self.closed_to_client(header.stream) =>
                        {
                            // RFC 9113 §5.1: the client saw the stream end (faultline's answer,
                            // END_STREAM or RST_STREAM): a frame on it now is an error there.
                            match frame_end {
                                Some(last) => {
                                    plan.skip(pieces[last].end());
                                    i = last + 1;
                                }
                                None => {
                                    let left = frame_left(pieces, i, header);
                                    self.ongoing[d] = Some(Ongoing::Skip(left));
                                    plan.skip(pieces[pieces.len() - 1].end());
                                    i = pieces.len();
                                }
                            }
                        }
                        FrameType::WindowUpdate | FrameType::RstStream | FrameType::Priority
                            if direction == Direction::ClientToUpstream
                                && frame_end.is_some()
                                && self.intercepts_client_control(header) =>
                        {
                            let last = frame_end.unwrap_or(i);
                            self.plan_client_control(header, &pieces[i..=last], plan);
                            i = last + 1;
                        }
                        _ => {
                            if direction == Direction::ClientToUpstream
                                && header.kind == FrameType::RstStream
                            {
                                // The client gave up on the stream: nothing more of faultline's
                                // answer may follow.
                                self.bodies.remove(&header.stream);
                                self.forget_deferred(header.stream, plan);
                            }
                            let acks_table_resize = self.track_settings(
                                direction,
                                header,
                                frame_end.map(|last| &pieces[i..=last]),
                            );
                            self.barrier_before_frame(direction, header, acks_table_resize, plan);
                            match frame_end {
                                Some(last) => {
                                    plan.relay(pieces[last].end(), Role::Framing);
                                    i = last + 1;
                                }
                                None => {
                                    let left = frame_left(pieces, i, header);
                                    self.ongoing[d] = Some(Ongoing::Relay(left));
                                    plan.relay(pieces[pieces.len() - 1].end(), Role::Framing);
                                    i = pieces.len();
                                }
                            }
                        }
                    }
                }
                // The rest of a frame that began in an earlier chunk.
                _ => {
                    let len = piece.len;
                    self.ongoing[d] = match self.ongoing[d] {
                        Some(Ongoing::Skip(left)) => {
                            plan.skip(pieces[i].end());
                            (left > len).then(|| Ongoing::Skip(left - len))
                        }
                        Some(Ongoing::Relay(left)) => {
                            plan.relay(pieces[i].end(), Role::Framing);
                            (left > len).then(|| Ongoing::Relay(left - len))
                        }
                        None => {
                            plan.relay(pieces[i].end(), Role::Framing);
                            None
                        }
                    };
                    i += 1;
                }
            }
        }
        None
    }

    /// Plans the DATA frame whose header is piece `i`.
    #[allow(clippy::too_many_arguments)]
    fn plan_data(
        &mut self,
        direction: Direction,
        pieces: &[Labelled],
        i: usize,
        header: &FrameHeader,
        chunk: &[u8],
        start: u64,
        plan: &mut ChunkPlan,
        run: RunView<'_>,
    ) -> DataPlan {
        let d = direction.index();
        let id = header.stream;
        let last = frame_extent(pieces, i, header);
        let discarded = self.streams.get(&id).is_some_and(|s| s.discard[d]);
        // Bytes of the client's connection window this frame is counted against (given back if
        // it waits to be whole).
        let mut counted = 0;
        if direction == Direction::UpstreamToClient {
            let len = flow_controlled(header);
            // Bytes relayed before the protocol was known reached the client already.
            let relayed = pieces[i].piece.start < start;
            let left = self.client_window_left();
            // Only what faultline's own DATA made the upstream believe waits: an upstream past
            // even the window it was told of overruns the client by itself, as without
            // faultline, and waiting for credit that never comes would hold it for good.
            let told = left + self.own_unacknowledged as i64;
            let waiting: usize = pieces[i..].iter().map(|l| l.piece.len).sum();
            let fits = left >= len as i64;
            let closed = self.source_closed[d];
            if !discarded
                && !relayed
                && !fits
                && !closed
                && len as i64 <= told
                && waiting <= MAX_HELD_BYTES
            {
                self.wait_for_credit(id, len, plan);
                return DataPlan::Hold;
            }
            if let Some((waited, _)) = self.waits_for_credit.take() {
                let why = if discarded || fits {
                    "the client's WINDOW_UPDATE made room (or the stream ended and its DATA is dropped)"
                } else if closed {
                    "the upstream closed its side, so they go now, past the client's window, as they would without faultline"
                } else {
                    warn!(waiting, "the upstream's frames waiting for the client's connection credit passed the cap: they go on, past the client's window");
                    "more waited than faultline holds, so they go on past the client's window"
                };
                let note = format!(
                    "the upstream's frames from stream {}'s DATA on go on: {why}",
                    waited.0
                );
                plan.insert_at(Bytes::new(), plan.arrival(), Some(Mark::proxy(note)));
            }
            self.toward_client += len;
            counted = len;
        }
        if discarded {
            let credit = credit_for(header, 0);
            self.owe_credit(direction, credit, id);
            if direction == Direction::ClientToUpstream {
                self.read_request_body(id, header, credit);
            }
            return self.skip_frame(direction, pieces, i, last, plan);
        }
        // A gRPC call's rules wait for its first request message.
        if direction == Direction::ClientToUpstream
            && self.streams.get(&id).is_some_and(|s| !s.armed)
        {
            // The frame and every client frame after it wait until the message is whole. Its
            // rest may lie in later frames already read (a client splits a message across DATA
            // frames, other streams' frames between them): read on for it, or this frame, the
            // head of everything held, would wait for bytes behind itself.
            let complete = match last {
                Some(last) => {
                    self.feed_first_message(id, pieces, i, last, chunk, start)
                        || header.ends_stream()
                        || self.first_message_ahead(id, pieces, last + 1, chunk, start)
                        || self.first_message_stuck(id)
                        || self.first_message_overdue(id)
                        || self.source_closed[d]
                }
                // The client closed: no more of the message comes, rules decide on what came.
                None => self.first_message_overdue(id) || self.source_closed[d],
            };
            if !complete {
                self.wait_for_first_message(id, plan.arrival());
                return DataPlan::Hold;
            }
            let Some(last) = last else {
                // Decided on what came; the frame itself is planned once whole.
                let body = self.first_body_so_far(id);
                if let Some(answer) = self.arm(id, body.as_deref(), false, run) {
                    let cancel = Bytes::from(build::rst_stream(id, ErrorCode::CANCEL));
                    let note = cancelled_upstream(id, &answer);
                    plan.insert_at(cancel, plan.arrival(), Some(note));
                }
                return DataPlan::Hold;
            };
            let body = self.first_body_so_far(id);
            if let Some(answer) = self.arm(id, body.as_deref(), false, run) {
                // The request headers went upstream earlier: cancel the call there.
                let cancel = Bytes::from(build::rst_stream(id, ErrorCode::CANCEL));
                let note = cancelled_upstream(id, &answer);
                plan.insert_at(cancel, plan.arrival(), Some(note));
            }
            if self.streams.get(&id).is_some_and(|s| s.discard[d]) {
                self.owe_credit(direction, credit_for(header, 0), id);
                return self.skip_frame(direction, pieces, i, Some(last), plan);
            }
        }
        let has_chain = self.streams.get(&id).is_some_and(|s| s.chains[d].is_some());
        if !has_chain && self.delayed[d].holds(id) {
            // The stream's earlier frames are held: this one queues behind them (no delay of
            // its own), or, split across reads or over the cap, they leave here first.
            if let Some(last) = last {
                let frame = FrameSpan::data(header, pieces[i].piece.start, pieces[last].end());
                if self.hold(direction, frame, chunk, start, plan.arrival(), None, plan) {
                    return DataPlan::Done(last + 1);
                }
            }
            let mine = self.delayed[d].take_stream(id);
            self.release_inline(direction, mine, plan);
        }
        if !has_chain {
            return match last {
                Some(last) => {
                    plan.relay(pieces[last].end(), Role::Framing);
                    DataPlan::Done(last + 1)
                }
                None => {
                    self.ongoing[d] = Some(Ongoing::Relay(frame_left(pieces, i, header)));
                    plan.relay(pieces[pieces.len() - 1].end(), Role::Framing);
                    DataPlan::Done(pieces.len())
                }
            };
        }
        let Some(last) = last else {
            // Planned again once whole: counted then.
            self.toward_client -= counted;
            return DataPlan::Hold;
        };
        let layout = layout_of(pieces, i, last);
        let frame_start = pieces[i].piece.start;
        let arrival = plan.arrival();
        let input = vec![
            Step::send_as(layout.head, arrival, Role::Framing),
            Step::send_as(layout.payload, arrival, Role::Payload),
            Step::send_as(layout.padding, arrival, Role::Framing),
        ]
        .into_iter()
        .filter(|s| s.chunk_len() > 0)
        .collect();
        let Some(chain) = self.streams.get_mut(&id).and_then(|s| s.chains[d].as_mut()) else {
            return DataPlan::Done(last + 1);
        };
        let output = chain.apply(input, arrival);
        match fate_of(layout, output, arrival) {
            FrameFate::Whole(mut steps) => {
                let release = steps
                    .iter()
                    .filter_map(|step| match step {
                        Step::Send { not_before, .. } => Some(*not_before),
                        _ => None,
                    })
                    .max()
                    .unwrap_or(arrival);
                if release > arrival || self.delayed[d].holds(id) {
                    let mark = steps.iter().find_map(|step| match step {
                        Step::Send { mark, .. } => mark.clone(),
                        _ => None,
                    });
                    let frame = FrameSpan::data(header, frame_start, pieces[last].end());
                    if self.hold(direction, frame, chunk, start, release, mark, plan) {
                        return DataPlan::Done(last + 1);
                    }
                    // Over the cap: what is held leaves here and the direction waits for it.
                    let all = self.delayed[d].take_all();
                    self.release_inline(direction, all, plan);
                    let pending = self
                        .streams
                        .get_mut(&id)
                        .and_then(|s| s.pending_mark[d].take());
                    if let Some(slot) = steps.iter_mut().find_map(Step::mark_mut) {
                        if slot.is_none() {
                            *slot = pending;
                        }
                    }
                }
                // Timing and marks from the chain, bytes as they came.
                plan.flush(None);
                let mut at = frame_start;
                for step in steps {
                    let len = step.chunk_len() as u64;
                    if len == 0 {
                        // A second rule's note on the same bytes (no bytes of its own).
                        if let Step::Insert {
                            bytes,
                            not_before,
                            mark: Some(mark),
                            ..
                        } = step
                        {
                            if bytes.is_empty() {
                                plan.insert_at(bytes, not_before, Some(mark));
                            }
                        }
                        continue;
                    }
                    let (not_before, mark) = match step {
                        Step::Send {
                            not_before, mark, ..
                        } => (not_before, mark),
                        _ => (arrival, None),
                    };
                    at += len;
                    plan.relay_at(at, not_before, mark);
                }
            }
            FrameFate::Cut {
                kept,
                not_before,
                marks,
                end,
                mark,
            } => {
                // The stream's held frames come before its end.
                let mine = self.delayed[d].take_stream(id);
                self.release_inline(direction, mine, plan);
                plan.skip(frame_start + layout.head as u64);
                let end_stream = end == Some(EndHow::Finish);
                let mut first_mark = marks.into_iter().next();
                let rewrite = kept > 0 || end_stream;
                // The end's mark rides on the rewritten header when the stream ends there (FIN,
                // stall), on the RST_STREAM otherwise.
                let header_carries_end = rewrite && matches!(end, Some(EndHow::Finish) | None);
                if rewrite {
                    let rewritten = build::data_header(id, kept as u32, end_stream);
                    let header_mark = if header_carries_end {
                        mark.clone()
                    } else {
                        first_mark.take().unwrap_or_else(|| {
                            let what = if kept == layout.payload {
                                let padding = if layout.padding > 0 {
                                    ", its padding dropped"
                                } else {
                                    ""
                                };
                                format!(
                                    "DATA frame of stream {} kept whole ({kept} payload bytes{padding}) before the stream's end",
                                    id.0
                                )
                            } else {
                                format!(
                                    "DATA frame of stream {} rewritten to its first {kept} of {} payload bytes",
                                    id.0, layout.payload
                                )
                            };
                            follow_up(&mark, what)
                        })
                    };
                    plan.insert_at(
                        Bytes::copy_from_slice(&rewritten),
                        not_before,
                        Some(header_mark),
                    );
                }
                let payload_start = frame_start + layout.head as u64;
                plan.relay_at(payload_start + kept as u64, not_before, first_mark);
                plan.skip(pieces[last].end());
                self.owe_credit(direction, credit_for(header, kept as u32), id);
                self.end_stream(direction, id, end, mark, plan, header_carries_end);
            }
        }
        DataPlan::Done(last + 1)
    }

    /// Skips the frame starting at piece `i` (and its continuation in later chunks).
    fn skip_frame(
        &mut self,
        direction: Direction,
        pieces: &[Labelled],
        _i: usize,
        last: Option<usize>,
        plan: &mut ChunkPlan,
    ) -> DataPlan {
        match last {
            Some(last) => {
                plan.skip(pieces[last].end());
                DataPlan::Done(last + 1)
            }
            None => {
                let left = frame_left_after(pieces, _i);
                self.ongoing[direction.index()] = Some(Ongoing::Skip(left));
                plan.skip(pieces[pieces.len() - 1].end());
                DataPlan::Done(pieces.len())
            }
        }
    }

    /// After a chain ended stream `id` in `direction` (`end`; `None`: stalled for good).
    fn end_stream(
        &mut self,
        direction: Direction,
        id: StreamId,
        end: Option<EndHow>,
        mark: Mark,
        plan: &mut ChunkPlan,
        mark_used: bool,
    ) {
        let d = direction.index();
        let other = other(direction);
        match end {
            Some(EndHow::Finish) => {
                // The receiver saw END_STREAM; the sender is told to stop. When the sender is
                // the client, that RST_STREAM closes the whole stream at the client: the
                // upstream's answer to the shortened request must not follow it.
                let note = follow_up(&mark, rst_note(id, ErrorCode::CANCEL, other));
                self.owe(other, build::rst_stream(id, ErrorCode::CANCEL), note);
                self.end_own_body(id);
                if let Some(s) = self.streams.get_mut(&id) {
                    s.discard[d] = true;
                    if direction == Direction::ClientToUpstream {
                        s.discard[Direction::UpstreamToClient.index()] = true;
                    }
                }
            }
            Some(EndHow::Reset) | Some(EndHow::ResetStream { .. }) => {
                let code = match end {
                    Some(EndHow::ResetStream { code }) => ErrorCode(code),
                    _ => ErrorCode::CANCEL,
                };
                let frame = Bytes::from(build::rst_stream(id, code));
                let here = if mark_used {
                    follow_up(&mark, rst_note(id, code, direction))
                } else {
                    mark.clone()
                };
                plan.insert_at(frame, plan.arrival(), Some(here));
                let there = follow_up(&mark, rst_note(id, code, other));
                self.owe(other, build::rst_stream(id, code), there);
                self.end_own_body(id);
                if let Some(s) = self.streams.get_mut(&id) {
                    s.discard = [true, true];
                }
            }
            None => {
                if let Some(s) = self.streams.get_mut(&id) {
                    s.discard[d] = true;
                    s.stalled[d] = Some(mark.clone());
                }
                if !mark_used {
                    plan.insert_at(Bytes::new(), plan.arrival(), Some(mark));
                }
            }
        }
    }

    /// Feeds the client payload of `id` in pieces `i..=last` to its first-message assembler;
    /// returns whether the first message is complete.
    fn feed_first_message(
        &mut self,
        id: StreamId,
        pieces: &[Labelled],
        i: usize,
        last: usize,
        chunk: &[u8],
        start: u64,
    ) -> bool {
        let Some(stream) = self.streams.get_mut(&id) else {
            return true;
        };
        let Some(assembler) = stream.first_message.as_mut() else {
            return true;
        };
        let mut complete = false;
        for labelled in &pieces[i..=last] {
            let PieceKind::Data { offset, .. } = labelled.piece.kind else {
                continue;
            };
            let end = offset + labelled.piece.len as u64;
            if end <= stream.first_fed {
                continue;
            }
            let skip = stream.first_fed.saturating_sub(offset) as usize;
            let from = labelled.piece.start.checked_sub(start).map(|f| f as usize);
            let Some(bytes) = from.and_then(|f| chunk.get(f + skip..f + labelled.piece.len)) else {
                continue;
            };
            stream.first_fed = end;
            match assembler.feed(offset + skip as u64, bytes) {
                Ok(done) => {
                    if let Some(message) = done.into_iter().next() {
                        stream.first_body = Some(message.body);
                        complete = true;
                        break;
                    }
                }
                Err(_) => {
                    complete = true;
                    break;
                }
            }
        }
        complete || stream.first_fed >= FIRST_MESSAGE_LIMIT as u64
    }

    /// The first request message of `id` if it came whole, else the bytes of it that came.
    fn first_body_so_far(&mut self, id: StreamId) -> Option<Vec<u8>> {
        self.streams.get_mut(&id).and_then(|s| {
            s.first_body.take().or_else(|| {
                s.first_message
                    .as_ref()
                    .and_then(|a| a.partial().map(<[u8]>::to_vec))
            })
        })
    }

    /// Reads on, in pieces `from..` (read, not yet planned: they wait behind the frame that
    /// needs the message), for the rest of `id`'s first request message; returns whether it
    /// is whole now, or the stream ended (or was reset) before it was.
    fn first_message_ahead(
        &mut self,
        id: StreamId,
        pieces: &[Labelled],
        from: usize,
        chunk: &[u8],
        start: u64,
    ) -> bool {
        for j in from..pieces.len() {
            let PieceKind::Header(header) = &pieces[j].piece.kind else {
                continue;
            };
            if header.stream != id {
                continue;
            }
            match header.kind {
                FrameType::Data => {
                    let last = frame_extent(pieces, j, header).unwrap_or(pieces.len() - 1);
                    let whole = self.feed_first_message(id, pieces, j, last, chunk, start);
                    if whole || header.ends_stream() {
                        return true;
                    }
                }
                // Trailers or a reset: the message will never be whole.
                FrameType::Headers | FrameType::RstStream => return true,
                _ => {}
            }
        }
        false
    }

    /// Whether the client cannot send the rest of `id`'s first request message before the
    /// upstream has read some of what is held: its stream or connection window (as the
    /// upstream granted them) is smaller than what the message still needs. Waiting on would
    /// never end (the upstream returns credit only for DATA it received), so rules decide on
    /// what came of the message.
    fn first_message_stuck(&self, id: StreamId) -> bool {
        let Some(rules) = self.streams.get(&id) else {
            return true;
        };
        let Some(assembler) = rules.first_message.as_ref() else {
            return true;
        };
        let needed = assembler
            .reader()
            .bytes_to_message_end()
            .min((FIRST_MESSAGE_LIMIT as u64).saturating_sub(rules.first_fed))
            .max(1);
        let tracker = self.conv.tracker();
        let c2u = Direction::ClientToUpstream;
        let stream_window = tracker
            .stream(id)
            .map_or(0, |s| s.send_window[c2u.index()].available());
        let window = stream_window.min(tracker.connection_window(c2u).available());
        if window >= needed {
            return false;
        }
        debug!(
            stream = id.0,
            came = rules.first_fed,
            needed,
            window,
            "the client's flow-control window cannot take the rest of a gRPC call's first request message until the upstream reads some of it: rules decide on what came"
        );
        true
    }

    /// Whether [`FIRST_MESSAGE_WAIT`] passed since `id`'s first request message began to be
    /// waited for (see [`Self::tick`]).
    fn first_message_overdue(&self, id: StreamId) -> bool {
        self.streams.get(&id).is_none_or(|s| s.first_overdue)
    }

    /// The client direction holds from a DATA frame of `id` until its first request message is
    /// whole: from `now`, for at most [`FIRST_MESSAGE_WAIT`].
    fn wait_for_first_message(&mut self, id: StreamId, now: Instant) {
        if let Some(s) = self.streams.get_mut(&id) {
            if !s.first_overdue {
                s.first_wait.get_or_insert(now + FIRST_MESSAGE_WAIT);
            }
        }
    }

    /// Plans the header block in pieces `i..=last`.
    #[allow(clippy::too_many_arguments)]
    fn plan_block(
        &mut self,
        direction: Direction,
        pieces: &[Labelled],
        i: usize,
        last: usize,
        chunk: &[u8],
        start: u64,
        plan: &mut ChunkPlan,
        run: RunView<'_>,
    ) {
        let d = direction.index();
        let Some(block) = pieces[i..=last].iter().find_map(|l| l.block.clone()) else {
            plan.relay(pieces[last].end(), Role::Head);
            return;
        };
        let id = block.stream;
        let end = pieces[last].end();
        // Once the client's table is detached, no upstream block must reach it for HPACK's sake.
        let may_skip = !block.touches_table
            || (direction == Direction::UpstreamToClient && self.client_detached)
            || (direction == Direction::ClientToUpstream && self.upstream_detached);
        if (block.touches_table && self.delayed[d].holds_block())
            || self.delayed[d].holds_touching_block()
        {
            // HPACK: a block that changes the receiver's table must not pass a held block, nor
            // any block pass a held one that changed it. The held frames leave here (the
            // direction waits for them, as without holding).
            let all = self.delayed[d].take_all();
            self.release_inline(direction, all, plan);
        }
        let stalled = self
            .streams
            .get(&id)
            .is_some_and(|s| s.stalled[d].is_some());
        if direction == Direction::UpstreamToClient && stalled && !may_skip {
            // A block that changed the client's table on a stream stalled for good toward it:
            // the client gets RST_STREAM(CANCEL) (the call fails rather than hanging, as when
            // such blocks had to reach it), and the block itself is withheld below.
            self.reset_stalled_before_block(direction, id, plan);
        }
        if direction == Direction::UpstreamToClient && self.closed_to_client(id) {
            // A late block (the upstream's answer to a call faultline answered, trailers after
            // a cut) on a stream the client saw end: RFC 9113 §5.1 makes any frame there a
            // connection error, so it never reaches the client, even when it changed the
            // client's table.
            self.withhold_from_client(&block, end, plan);
            return;
        }
        let substitute = self.needs_substitute(direction, &block);
        // PUSH_PROMISE reserves a stream the server may use at once: it is never held. A block
        // sent in another form is never held either (the held bytes are the original's).
        let promise = matches!(
            &pieces[i].piece.kind,
            PieceKind::Header(h) if h.kind == FrameType::PushPromise
        );
        let may_hold = !promise && !substitute;
        let plain = Head {
            end,
            substitute: None,
        };
        let span = FrameSpan {
            id,
            from: pieces[i].piece.start,
            to: end,
            credit: 0,
            block: true,
            touches: block.touches_table,
        };
        let lone = block.end_stream.then(|| LoneBlock {
            span,
            bytes: if may_hold {
                span.bytes_in(chunk, start)
            } else {
                None
            },
        });
        match (direction, block.role) {
            (Direction::ClientToUpstream, BlockRole::Request) => {
                if let Some((last, goaway)) = self.goaway_last.clone().filter(|(l, _)| id > *l) {
                    self.refuse(&block, end, last, &goaway, plan);
                    return;
                }
                self.opened_planned += 1;
                self.highest_planned = self.highest_planned.max(id);
                let mut stream = StreamRules::new(&block.headers, plan.arrival());
                let waits = stream.head.grpc && !block.end_stream;
                stream.first_message = waits.then(|| MessageAssembler::new(FIRST_MESSAGE_LIMIT));
                self.streams.insert(id, stream);
                let answered = if waits {
                    None
                } else {
                    self.arm(id, None, false, run)
                };
                self.check_goaway_count(run.scenario);
                match answered {
                    // The upstream never hears of the call.
                    Some(_) if may_skip => {
                        plan.skip(end);
                        if let Some(s) = self.streams.get_mut(&id) {
                            s.upstream_unaware = true;
                        }
                    }
                    Some(answer) => {
                        // Its HPACK table must see the block, so the call reaches it, cancelled
                        // at once.
                        self.relay_answered_request(id, plain, lone, &answer, plan);
                        let cancel = Bytes::from(build::rst_stream(id, ErrorCode::CANCEL));
                        let note = cancelled_upstream(id, &answer);
                        plan.insert_at(cancel, plan.arrival(), Some(note));
                    }
                    None => {
                        let head = self.head(direction, &block, pieces, i, last, substitute);
                        self.relay_block(direction, id, head, lone, plan);
                    }
                }
            }
            (Direction::UpstreamToClient, BlockRole::Response) => {
                if self.streams.get(&id).is_some_and(|s| !s.armed) {
                    if let Some(answer) = self.arm(id, None, true, run) {
                        let cancel = build::rst_stream(id, ErrorCode::CANCEL);
                        let note = cancelled_upstream(id, &answer);
                        self.owe(Direction::ClientToUpstream, cancel, note);
                        // The upstream answered before the gRPC call's first message: the
                        // client gets faultline's answer instead, never both.
                        self.withhold_from_client(&block, end, plan);
                        return;
                    }
                }
                let status = block.headers.status().unwrap_or(0);
                let mut dropped = None;
                if let Some(stream) = self.streams.get_mut(&id) {
                    if let Some(mark) = stream.drop_response.take() {
                        dropped = Some(mark);
                    } else if !stream.discard[d] {
                        let rules = arm_response(
                            run.scenario,
                            &stream.response_rules,
                            status,
                            run.counters,
                        );
                        // A time has no direction: `rst_stream.at` on a response rule counts
                        // from when the stream opened, like one on the request.
                        if stream.timer.is_none() {
                            stream.timer = rules.iter().find_map(|&key| {
                                let (_, rule) = run.scenario.rule_by_key(key)?;
                                match &rule.fault {
                                    Fault::RstStream(r) => {
                                        reset_timer(&rule.id, r, &stream.label, stream.opened)
                                    }
                                    _ => None,
                                }
                            });
                        }
                        let label = format!("the response to {} (status {status})", stream.label);
                        let scope = Scope::message(
                            direction,
                            MessageScope {
                                body: format!("the response body to {}", &stream.label),
                                name: label,
                                body_len: content_length(&block.headers),
                            },
                        );
                        let faults = MessageFaults::armed(
                            run.scenario,
                            &rules,
                            &scope,
                            &mut self.rule_streams,
                        );
                        stream.chains[d] = faults.chain;
                    }
                }
                if let Some(mark) = dropped {
                    // The client gets the reset instead of the answer, which it never sees,
                    // not even when the block changed its table (see `withhold_from_client`).
                    plan.flush(None);
                    self.reset_both_now(direction, id, ErrorCode::CANCEL, mark, plan);
                    self.withhold_from_client(&block, end, plan);
                    return;
                }
                if self.streams.get(&id).is_some_and(|s| s.discard[d]) && may_skip {
                    self.withhold_from_client(&block, end, plan);
                } else if !self.block_behind_held(direction, span, may_hold, chunk, start, plan) {
                    self.reset_stalled_before_block(direction, id, plan);
                    let relayed = self.head(direction, &block, pieces, i, last, substitute);
                    self.relay_block(direction, id, relayed, lone, plan);
                }
            }
            _ => {
                if matches!(block.role, BlockRole::PushRequest { .. }) {
                    self.opened_planned += 1;
                }
                if direction == Direction::ClientToUpstream && block.end_stream {
                    // Trailers end a request faultline answers at its end.
                    self.answer_deferred(id);
                }
                if direction == Direction::ClientToUpstream
                    && self.streams.get(&id).is_some_and(|s| s.upstream_unaware)
                {
                    // A block of a stream the upstream never heard of (trailers of a request
                    // faultline answers) would open the stream there: it stays here.
                    plan.skip(end);
                    if let Some(detached) = self.kept_from_upstream(&block) {
                        let note = format!(
                            "header block of stream {} kept from the upstream, which never heard of the stream; {detached}",
                            id.0
                        );
                        plan.insert_at(Bytes::new(), plan.arrival(), Some(Mark::proxy(note)));
                    }
                    return;
                }
                if self.streams.get(&id).is_some_and(|s| s.discard[d]) && may_skip {
                    if direction == Direction::UpstreamToClient {
                        self.withhold_from_client(&block, end, plan);
                    } else {
                        plan.skip(end);
                    }
                } else if !self.block_behind_held(direction, span, may_hold, chunk, start, plan) {
                    self.reset_stalled_before_block(direction, id, plan);
                    self.head(direction, &block, pieces, i, last, substitute)
                        .relay(plan);
                }
            }
        }
    }

    /// A request block (up to `end`) opening stream `block.stream` above `last`, the last stream
    /// faultline's GOAWAY (`goaway`) let the client open: RFC 9113 §6.8 says such a stream was
    /// never processed, so a client may retry it elsewhere; it must not reach the upstream,
    /// where a retried call would run twice. The client gets RST_STREAM(REFUSED_STREAM); the
    /// upstream hears nothing of the stream, not even when the block changed the HPACK table
    /// (then the upstream's decoder stops mirroring the client's encoder, which a client that
    /// got the GOAWAY no longer uses for new requests; it is said in the capture).
    fn refuse(
        &mut self,
        block: &DecodedBlock,
        end: u64,
        last: StreamId,
        goaway: &Mark,
        plan: &mut ChunkPlan,
    ) {
        let id = block.stream;
        let stream = StreamRules {
            armed: true,
            discard: [true, true],
            answered: true,
            upstream_unaware: true,
            ..StreamRules::new(&block.headers, plan.arrival())
        };
        let label = stream.label.clone();
        self.streams.insert(id, stream);
        plan.skip(end);
        let mut note = format!(
            "{} for {label}: opened after faultline's GOAWAY (last stream {}), never forwarded",
            rst_note(id, ErrorCode::REFUSED_STREAM, Direction::UpstreamToClient),
            last.0
        );
        if let Some(detached) = self.kept_from_upstream(block) {
            note.push_str(&format!("; {detached}"));
        }
        self.owe(
            Direction::UpstreamToClient,
            build::rst_stream(id, ErrorCode::REFUSED_STREAM),
            follow_up(goaway, note),
        );
    }

    /// The client's header block `block` is kept from the upstream: its table size updates are
    /// owed to the next block sent there, and when it changed the HPACK table, the upstream's
    /// table no longer mirrors the client's encoder, so every later client block goes there
    /// re-encoded without the dynamic table. Returns what the capture should say about that.
    fn kept_from_upstream(&mut self, block: &DecodedBlock) -> Option<&'static str> {
        if !block.size_updates.is_empty() {
            let owed = &mut self.owed_upstream_size_updates;
            let smallest = owed.iter().chain(&block.size_updates).copied().min();
            let last = block.size_updates.last().copied();
            *owed = smallest.into_iter().chain(last).collect();
            owed.dedup();
        }
        if !block.touches_table || self.upstream_detached {
            return None;
        }
        self.upstream_detached = true;
        debug!(
            stream = block.stream.0,
            "a client block kept from the upstream changed the HPACK table; later client blocks reach the upstream without the dynamic table"
        );
        Some("its header block changed the HPACK table, so the client's later header blocks reach the upstream re-encoded without the dynamic table")
    }

    /// Whether the client's frame `header` (WINDOW_UPDATE, RST_STREAM, PRIORITY) is not for the
    /// upstream as it came: connection credit partly for faultline's own DATA, stream credit for
    /// a stream faultline answered, any frame of a stream the upstream never heard of.
    fn intercepts_client_control(&self, header: &FrameHeader) -> bool {
        if header.stream.is_connection() {
            return header.kind == FrameType::WindowUpdate && self.own_unacknowledged > 0;
        }
        self.streams.get(&header.stream).is_some_and(|s| {
            s.upstream_unaware || (s.answered && header.kind == FrameType::WindowUpdate)
        })
    }

    /// Plans a client frame [`Self::intercepts_client_control`] chose (`frame`: its pieces): a
    /// connection WINDOW_UPDATE loses the part that acknowledges faultline's own DATA (the rest
    /// goes on, rewritten; nothing when nothing is left), a stream WINDOW_UPDATE credits
    /// faultline's answer body, and nothing of a stream the upstream never heard of reaches it.
    fn plan_client_control(
        &mut self,
        header: &FrameHeader,
        frame: &[Labelled],
        plan: &mut ChunkPlan,
    ) {
        let end = frame.last().map_or(0, Labelled::end);
        let increment = frame.iter().find_map(|l| match &l.piece.kind {
            PieceKind::Control(Control::WindowUpdate { increment }) => Some(*increment),
            _ => None,
        });
        let id = header.stream;
        plan.skip(end);
        let note = match (header.kind, increment) {
            (FrameType::WindowUpdate, Some(increment)) if id.is_connection() => {
                let kept = u64::from(increment).min(self.own_unacknowledged);
                self.own_unacknowledged -= kept;
                let on = u64::from(increment) - kept;
                let frames = build::window_updates(StreamId::CONNECTION, on);
                let note = if on == 0 {
                    format!(
                        "WINDOW_UPDATE +{increment} on the connection from the client kept from the upstream: it acknowledges DATA faultline sent itself"
                    )
                } else {
                    format!(
                        "WINDOW_UPDATE +{increment} on the connection from the client reaches the upstream as +{on}: {kept} bytes of it acknowledge DATA faultline sent itself"
                    )
                };
                plan.insert_at(Bytes::from(frames), plan.arrival(), Some(Mark::proxy(note)));
                return;
            }
            (FrameType::WindowUpdate, Some(increment)) => {
                if let Some(pending) = self.bodies.get_mut(&id) {
                    pending.body.grant(increment);
                }
                format!(
                    "WINDOW_UPDATE +{increment} on stream {} from the client kept from the upstream: faultline answered the stream itself",
                    id.0
                )
            }
            (kind, _) => {
                let name = match kind {
                    FrameType::RstStream => {
                        self.bodies.remove(&id);
                        self.forget_deferred(id, plan);
                        "RST_STREAM"
                    }
                    FrameType::Priority => "PRIORITY",
                    _ => "WINDOW_UPDATE",
                };
                format!(
                    "{name} on stream {} from the client kept from the upstream, which never heard of the stream",
                    id.0
                )
            }
        };
        plan.insert_at(Bytes::new(), plan.arrival(), Some(Mark::proxy(note)));
    }

    /// The client's connection window left for faultline's own DATA: what the client granted,
    /// less faultline's own DATA and every upstream DATA byte read and not dropped, also those
    /// still waiting for the client's credit (they came first, so they go first).
    fn client_connection_window(&self) -> u64 {
        let tracker = self.conv.tracker();
        // The tracker counts every upstream DATA byte read, also those faultline dropped.
        let granted = tracker.connection_window(Direction::UpstreamToClient).0
            + self.dropped_toward_client as i64
            - self.own_sent as i64;
        granted.max(0) as u64
    }

    /// What the client's connection window still takes of upstream DATA: what the client
    /// granted, less the upstream DATA let on toward it (what faultline dropped of that
    /// excepted) and faultline's own DATA. Negative never happens (the upstream's DATA that
    /// would make it so waits), but is not hidden.
    fn client_window_left(&self) -> i64 {
        let granted = self
            .conv
            .tracker()
            .connection_granted(Direction::UpstreamToClient)
            .0;
        let spent = self
            .toward_client
            .saturating_sub(self.dropped_toward_client)
            + self.own_sent;
        granted - spent as i64
    }

    /// The upstream DATA frame of stream `id`, `len` flow-controlled bytes, does not fit in the
    /// client's connection window: it and every upstream frame after it wait, unplanned and in
    /// order, until the client's WINDOW_UPDATE makes room (see `wants_flush`). The excess is at
    /// most faultline's own DATA the client has not acknowledged (the upstream keeps within the
    /// window it was told of), so what waits stays small. Noted once per wait.
    fn wait_for_credit(&mut self, id: StreamId, len: u64, plan: &mut ChunkPlan) {
        if self.waits_for_credit.is_some() {
            return;
        }
        self.waits_for_credit = Some((id, len));
        let note = format!(
            "DATA frame of stream {} ({len} bytes) and the upstream's frames after it held by faultline until the client's WINDOW_UPDATE: the client's connection window takes {} more bytes, the upstream counts {} more (faultline's own DATA the client has not acknowledged)",
            id.0,
            self.client_window_left().max(0),
            self.own_unacknowledged
        );
        plan.insert_at(Bytes::new(), plan.arrival(), Some(Mark::proxy(note)));
    }

    /// A fault ended stream `id` at the client (RST_STREAM, or END_STREAM at a cut): what is
    /// left of faultline's own answer on it is never sent (the fuzz target found its DATA
    /// following the RST_STREAM a reset rule sent).
    fn end_own_body(&mut self, id: StreamId) {
        self.bodies.remove(&id);
        if let Some(s) = self.streams.get_mut(&id) {
            s.deferred = None;
        }
    }

    /// Sends the client as much of faultline's pending answer bodies as its maximum frame size
    /// and flow-control windows allow (through the outbox); a body that completes is followed by
    /// what was owed after it.
    fn send_bodies(&mut self) {
        if self.bodies.is_empty() {
            return;
        }
        let settings = self.conv.tracker().settings(Direction::ClientToUpstream);
        let (initial, max_frame) = (settings.initial_window_size, settings.max_frame_size);
        let ids: Vec<StreamId> = self.bodies.keys().copied().collect();
        for id in ids {
            let connection = self.client_connection_window();
            let Some(pending) = self.bodies.get_mut(&id) else {
                continue;
            };
            let sent = pending.body.take(connection, initial, max_frame);
            if sent.frames.is_empty() {
                continue;
            }
            let left = pending.body.left();
            let mut what = format!(
                "DATA of faultline's answer on stream {}: {} of its {} body bytes",
                id.0, sent.payload, pending.total
            );
            if left > 0 {
                what.push_str(&format!(
                    ", {left} wait for the client's WINDOW_UPDATE (flow control)"
                ));
            }
            let note = follow_up(&pending.mark, what);
            let then = if sent.finished {
                self.bodies.remove(&id).and_then(|p| p.then)
            } else {
                None
            };
            self.own_sent += sent.payload;
            self.own_unacknowledged += sent.payload;
            self.owe(Direction::UpstreamToClient, sent.frames, note);
            if let Some((frame, mark)) = then {
                self.owe(Direction::UpstreamToClient, frame, mark);
            }
        }
    }

    /// Whether the client saw stream `id` end by faultline's hand (an answer, END_STREAM at a
    /// cut, RST_STREAM), so no frame of it may reach the client any more. A stream stalled for
    /// good did not end at the client: it is not one.
    fn closed_to_client(&self, id: StreamId) -> bool {
        let d = Direction::UpstreamToClient.index();
        self.streams
            .get(&id)
            .is_some_and(|s| s.discard[d] && s.stalled[d].is_none())
    }

    /// Keeps the upstream block `block` (up to `end`) from the client. A block that changed
    /// the client's table detaches it: from here every upstream block reaches the client in
    /// its detached form, which decodes the same whatever the client's table holds, and its
    /// size updates are owed to the next block sent.
    fn withhold_from_client(&mut self, block: &DecodedBlock, end: u64, plan: &mut ChunkPlan) {
        plan.skip(end);
        if let Some(note) = self.withheld(block.stream, block.touches_table, &block.size_updates) {
            plan.insert_at(Bytes::new(), plan.arrival(), Some(note));
        }
    }

    /// What withholding a block of stream `id` from the client does to the session: its size
    /// updates are owed, and a block that changed the client's table (`touches`) detaches it.
    /// Returns the note for the capture when it detached the table now.
    fn withheld(&mut self, id: StreamId, touches: bool, size_updates: &[usize]) -> Option<Mark> {
        if !size_updates.is_empty() {
            let smallest = self
                .owed_size_updates
                .iter()
                .chain(size_updates)
                .copied()
                .min();
            let last = size_updates.last().copied();
            self.owed_size_updates = smallest.into_iter().chain(last).collect();
            self.owed_size_updates.dedup();
        }
        if !touches || self.client_detached {
            return None;
        }
        self.client_detached = true;
        debug!(
            stream = id.0,
            "withheld a late upstream header block that changed the client's HPACK table; later upstream blocks reach the client without the dynamic table"
        );
        let note = format!(
            "header block of stream {} from the upstream withheld: the client saw the stream end, and the block changed its HPACK table, so the upstream's later header blocks reach the client re-encoded without the dynamic table",
            id.0
        );
        Some(Mark::proxy(note))
    }

    /// A held frame of `direction` whose stream the client saw end since it was held: a block
    /// is withheld (see [`Self::withheld`]); returns the note to write, if any, or `None` with
    /// `false` when the frame is not such a block.
    fn withhold_held(&mut self, direction: Direction, frame: &HeldFrame) -> (bool, Option<Mark>) {
        if direction != Direction::UpstreamToClient
            || !frame.block
            || !self.closed_to_client(frame.stream)
        {
            return (false, None);
        }
        let updates = leading_size_updates(&frame.bytes);
        (true, self.withheld(frame.stream, frame.touches, &updates))
    }

    /// Whether the block must reach the receiver of `direction` in another form than its own
    /// bytes: the client's table is detached and the block uses it, or a withheld block's size
    /// update is owed.
    fn needs_substitute(&self, direction: Direction, block: &DecodedBlock) -> bool {
        let (detached, owed) = match direction {
            Direction::UpstreamToClient => (self.client_detached, &self.owed_size_updates),
            Direction::ClientToUpstream => {
                (self.upstream_detached, &self.owed_upstream_size_updates)
            }
        };
        (detached && block.detached.is_some()) || !owed.is_empty()
    }

    /// How the block in pieces `i..=last` is relayed: its own bytes, or (`substitute`) the
    /// frames that carry it to the client instead.
    fn head(
        &mut self,
        direction: Direction,
        block: &DecodedBlock,
        pieces: &[Labelled],
        i: usize,
        last: usize,
        substitute: bool,
    ) -> Head {
        let why = match direction {
            Direction::UpstreamToClient => {
                "the client's table stopped mirroring the upstream's when a late block was withheld"
            }
            Direction::ClientToUpstream => {
                "the upstream's table stopped mirroring the client's when a refused request's block was kept from it"
            }
        };
        let substitute = substitute
            .then(|| self.substitute(direction, block, pieces, i, last))
            .flatten()
            .map(|bytes| {
                let note = format!(
                    "header block of stream {} re-encoded by faultline without the HPACK dynamic table ({why})",
                    block.stream.0
                );
                (bytes, Mark::proxy(note))
            });
        Head {
            end: pieces[last].end(),
            substitute,
        }
    }

    /// The frames that carry `block` (pieces `i..=last`) to the receiver of `direction` instead
    /// of its own: the owed size updates, then its detached form, framed for the receiver's
    /// frame size.
    fn substitute(
        &mut self,
        direction: Direction,
        block: &DecodedBlock,
        pieces: &[Labelled],
        i: usize,
        last: usize,
    ) -> Option<Bytes> {
        // The reader puts the whole block on its last fragment, the piece `block` came from.
        let whole = pieces[i..=last].iter().find_map(|l| match &l.piece.kind {
            PieceKind::Fragment {
                block: Some(whole), ..
            } => Some(whole),
            _ => None,
        })?;
        let mut hpack = Vec::new();
        let owed = match direction {
            Direction::UpstreamToClient => &mut self.owed_size_updates,
            Direction::ClientToUpstream => &mut self.owed_upstream_size_updates,
        };
        for size in std::mem::take(owed) {
            encode_size_update(size, &mut hpack);
        }
        hpack.extend_from_slice(block.detached.as_deref().unwrap_or(&whole.hpack));
        let max = self.conv.reader(direction).max_frame_size();
        Some(Bytes::from(build::reframed_block(
            block.stream,
            &whole.kind,
            &hpack,
            max,
        )))
    }

    /// A header block of a stream stalled for good toward this direction's receiver must still
    /// reach it when it changes the receiver's HPACK table, but trailers with END_STREAM would end
    /// the stall as a success (grpc-status 0 after a cut body). So the receiver gets
    /// RST_STREAM(CANCEL) first: the upstream decodes the block (tables stay in sync) and
    /// ignores it; the client never gets the block (nothing may follow a reset it received),
    /// its table detaches instead (see `withhold_from_client`).
    fn reset_stalled_before_block(
        &mut self,
        direction: Direction,
        id: StreamId,
        plan: &mut ChunkPlan,
    ) {
        let d = direction.index();
        let Some(mark) = self.streams.get_mut(&id).and_then(|s| s.stalled[d].take()) else {
            return;
        };
        let why = match direction {
            Direction::ClientToUpstream => {
                "before a header block of the stalled stream that must reach it (HPACK) and would end it"
            }
            Direction::UpstreamToClient => {
                "instead of a header block of the stalled stream that would end it"
            }
        };
        let note = follow_up(
            &mark,
            format!("{} {why}", rst_note(id, ErrorCode::CANCEL, direction)),
        );
        let frame = Bytes::from(build::rst_stream(id, ErrorCode::CANCEL));
        plan.insert_at(frame, plan.arrival(), Some(note));
        if direction == Direction::UpstreamToClient {
            self.end_own_body(id);
        }
    }

    /// Relays a header block through the stream's chain in this direction (a limit of zero
    /// acts right after it). A latency rule's delay moves to the stream's DATA, which is held
    /// while other streams flow; a block that ends the stream (`lone`: a GET, a trailers-only
    /// answer) has no DATA to delay, so the block itself is held, or, when its bytes are not
    /// all at hand or over the cap, waits in place, and with it the direction (HPACK order).
    fn relay_block(
        &mut self,
        direction: Direction,
        id: StreamId,
        head: Head,
        lone: Option<LoneBlock<'_>>,
        plan: &mut ChunkPlan,
    ) {
        let d = direction.index();
        plan.flush(None);
        let has_chain = self.streams.get(&id).is_some_and(|s| s.chains[d].is_some());
        if !has_chain {
            head.relay(plan);
            return;
        }
        let steps = head.into_steps(plan);
        let arrival = plan.arrival();
        let Some(chain) = self.streams.get_mut(&id).and_then(|s| s.chains[d].as_mut()) else {
            return;
        };
        let output = chain.apply(steps, arrival);
        let output = match lone {
            Some(lone) => match self.hold_lone_block(direction, lone, output, arrival) {
                Ok(skip) => {
                    plan.push_steps(vec![skip]);
                    return;
                }
                Err(output) => output,
            },
            None => output,
        };
        let ends_stream = lone.is_some();
        let mut ended = None;
        let mut kept = Vec::new();
        for mut step in output {
            // A header block is never delayed for its own sake on HTTP/2: it carries HPACK
            // state, so delaying it would delay every stream. The stream's DATA is delayed (held)
            // instead, and the rule's mark goes with the first frame it delays.
            if let Step::Send {
                not_before, mark, ..
            } = &mut step
            {
                if *not_before > arrival && !ends_stream {
                    *not_before = arrival;
                    if let Some(taken) = mark.take() {
                        if let Some(s) = self.streams.get_mut(&id) {
                            s.delayed_by[d].get_or_insert_with(|| taken.clone());
                            s.pending_mark[d].get_or_insert(taken);
                        }
                    }
                }
            }
            match step {
                Step::End { how, mark } => {
                    ended = Some((Some(how), mark));
                    break;
                }
                Step::Hold { mark } => {
                    ended = Some((None, mark));
                    break;
                }
                other => kept.push(other),
            }
        }
        plan.push_steps(kept);
        if let Some((end, mark)) = ended {
            // A limit of zero: the stream ends right after its headers.
            let end_stream = end == Some(EndHow::Finish);
            if end_stream {
                let frame = Bytes::copy_from_slice(&build::data_header(id, 0, true));
                plan.insert_at(frame, arrival, Some(mark.clone()));
            }
            self.end_stream(direction, id, end, mark, plan, end_stream);
        }
    }

    /// Relays upstream the request block of a call faultline answered itself (the block
    /// changes the upstream's HPACK table, so it cannot be left out). A request that ends with
    /// its block (a GET) goes with END_STREAM cleared: most servers then wait for a body that
    /// never comes, and the RST_STREAM(CANCEL) that follows in the same write ends the call.
    /// Only the flag byte differs, the HPACK block is the client's own. Some servers answer
    /// anyway (nginx runs a GET as soon as its HEADERS arrive): that late answer is withheld
    /// from the client, whose stream already ended (see `withhold_from_client`).
    fn relay_answered_request(
        &mut self,
        id: StreamId,
        head: Head,
        lone: Option<LoneBlock<'_>>,
        answer: &Mark,
        plan: &mut ChunkPlan,
    ) {
        let headers = lone
            .and_then(|l| l.bytes)
            .filter(|b| b.len() >= HEADER_LEN && b[3] == FrameType::Headers.as_u8());
        let Some(bytes) = headers else {
            self.relay_block(Direction::ClientToUpstream, id, head, lone, plan);
            return;
        };
        let mut open = bytes.to_vec();
        open[4] &= !FLAG_END_STREAM;
        let note = follow_up(
            answer,
            format!(
                "request HEADERS of stream {} relayed with END_STREAM cleared (HPACK state), so the upstream waits instead of answering: faultline answered the call itself",
                id.0
            ),
        );
        plan.flush(None);
        plan.insert_at(Bytes::from(open), plan.arrival(), Some(note));
        plan.skip(head.end);
    }

    /// Holds a header block that ends its stream when its chain delayed it (`output`) and
    /// nothing else acts on it: returns the step that skips its bytes in the plan, or the
    /// chain's steps unchanged when it is not delayed, cut, over the cap or not all at hand.
    fn hold_lone_block(
        &mut self,
        direction: Direction,
        lone: LoneBlock<'_>,
        output: Vec<Step>,
        arrival: Instant,
    ) -> Result<Step, Vec<Step>> {
        let mut release = arrival;
        let mut mark = None;
        let mut len = 0;
        for step in &output {
            match step {
                Step::Send {
                    len: sent,
                    not_before,
                    mark: with,
                    ..
                } => {
                    release = release.max(*not_before);
                    len += sent;
                    if mark.is_none() {
                        mark.clone_from(with);
                    }
                }
                _ => return Err(output),
            }
        }
        let Some(bytes) = lone.bytes else {
            return Err(output);
        };
        if release <= arrival
            || len != bytes.len()
            || !self.delayed[direction.index()].fits(bytes.len())
        {
            return Err(output);
        }
        self.queue_held(direction, lone.span, bytes, release, mark, arrival);
        Ok(Step::Skip { len })
    }

    /// Decides the rules of stream `id`: `first` is its first request message (gRPC). Returns
    /// the mark of faultline's own answer when it answered the call itself (the caller keeps or
    /// cancels it upstream).
    ///
    /// `at_response`: rules decide at the upstream's response block, which is not relayed yet
    /// (faultline's answer takes its place); otherwise an upstream that already answered toward
    /// the client keeps faultline from answering.
    fn arm(
        &mut self,
        id: StreamId,
        first: Option<&[u8]>,
        at_response: bool,
        run: RunView<'_>,
    ) -> Option<Mark> {
        let stream = self.streams.get_mut(&id)?;
        stream.armed = true;
        stream.first_message = None;
        stream.first_wait = None;
        let attempt = run.counters.attempt(&attempt_key(&stream.head, first));
        let label = format!("{} (attempt {attempt})", stream.head.label());
        stream.label = label.clone();
        let facts = RequestFacts {
            method: &stream.head.method,
            path: stream.head.path(),
            query: stream.head.query(),
            host: stream.head.authority.as_deref(),
            attempt,
        };
        let request = stream.request.clone();
        let armed = arm_request(
            run.scenario,
            &self.candidates,
            &facts,
            |name| request.values(name),
            run.counters,
        );
        stream.response_rules = armed.on_response;
        let mut byte_rules = Vec::new();
        // The answer's header block, its mark, its body (DATA, sent as the windows allow), and
        // whether it waits for the request's end.
        let mut answer: Option<(Vec<u8>, Mark, Vec<u8>, bool)> = None;
        for key in armed.on_request {
            let Some((_, rule)) = run.scenario.rule_by_key(key) else {
                continue;
            };
            match &rule.fault {
                Fault::GrpcStatus(g) if answer.is_none() => {
                    let frames = build::grpc_trailers_only(
                        id,
                        g.code.0,
                        &g.message_text(),
                        BlockLimits::default(),
                    );
                    let note = format!(
                        "answered {label} with grpc-status {} from faultline and cancelled it upstream",
                        g.code.0
                    );
                    answer = Some((frames, Mark::rule(&rule.id, note), Vec::new(), false));
                }
                Fault::Respond(r) if answer.is_none() => {
                    // As on HTTP/1: no body for 204, 205 and 304 (no length either for a 204 or
                    // a 304, whose length would be the 200's, RFC 9110 §8.6); a HEAD gets the
                    // length only. DATA there is malformed
                    // (RFC 9113 §8.1.1), a stream error at strict clients.
                    let body = if !r.has_body() {
                        String::new()
                    } else {
                        r.body.clone().unwrap_or_else(|| {
                            format!(
                                "{} {} (injected by faultline)\n",
                                r.status,
                                reason_phrase(r.status)
                            )
                        })
                    };
                    let length = body.len().to_string();
                    let status = r.status.to_string();
                    let mut pairs =
                        vec![(":status", status.as_str()), ("content-type", "text/plain")];
                    if !matches!(r.status, 204 | 304) {
                        pairs.push(("content-length", length.as_str()));
                    }
                    let mut list = HeaderList::from_pairs(pairs);
                    for (name, value) in &r.headers {
                        let lower = name.to_ascii_lowercase();
                        list.fields.extend(
                            HeaderList::from_pairs([(lower.as_str(), value.as_str())]).fields,
                        );
                    }
                    let body = if stream.head.method.eq_ignore_ascii_case("HEAD") {
                        Vec::new()
                    } else {
                        body.into_bytes()
                    };
                    let frames = build::headers(id, &list, body.is_empty(), BlockLimits::default());
                    // Whether the upstream saw the request's headers depends on HPACK (a block
                    // that changed the table must still reach it, then gets RST_STREAM(CANCEL));
                    // that follow-up carries its own note, so this one claims only the answer.
                    let note = format!("answered {} to {label} from faultline", r.status);
                    // A gRPC call's rules decide at its first message: it is answered there.
                    let after_body = r.after == RespondAfter::RequestBody && !stream.head.grpc;
                    answer = Some((frames, Mark::rule(&rule.id, note), body, after_body));
                }
                Fault::GrpcStatus(_) | Fault::Respond(_) | Fault::Goaway(_) => {}
                Fault::DropResponse(_) => {
                    stream.drop_response = Some(Mark::rule(
                        &rule.id,
                        format!(
                            "forwarded {label}, then reset the client's stream before its response"
                        ),
                    ));
                }
                Fault::RstStream(r) if r.at.is_some() => {
                    stream.timer = reset_timer(&rule.id, r, &label, stream.opened);
                }
                _ => byte_rules.push(key),
            }
        }
        let scope = Scope::message(
            Direction::ClientToUpstream,
            MessageScope {
                body: format!("the body of {label}"),
                name: label,
                body_len: content_length(&request),
            },
        );
        let faults =
            MessageFaults::armed(run.scenario, &byte_rules, &scope, &mut self.rule_streams);
        stream.chains[Direction::ClientToUpstream.index()] = faults.chain;
        let (frames, mark, body, after_body) = answer?;
        let stream_label = self
            .streams
            .get(&id)
            .map(|s| s.label.clone())
            .unwrap_or_default();
        // A stream the tracker no longer follows closed both ways (the upstream's RST_STREAM
        // reached the client): answering it would follow that reset.
        let spoke = !at_response
            && self.conv.tracker().stream(id).is_none_or(|s| {
                s.response.is_some()
                    || s.ended[Direction::UpstreamToClient.index()]
                    || s.data_bytes[Direction::UpstreamToClient.index()] > 0
                    || s.reset.is_some()
            });
        if spoke {
            // A rule decided at the end of the request body, when the upstream had already
            // answered (or reset) the stream toward the client: a second answer would follow
            // the first on the same stream, so the call is left as it goes, and said so.
            let mut note = mark;
            note.note = format!(
                "{} not answered by faultline: the upstream's response had already reached the client",
                stream_label
            );
            self.owe(Direction::UpstreamToClient, Vec::new(), note);
            return None;
        }
        let client_open = !self
            .conv
            .tracker()
            .stream(id)
            .is_some_and(|s| s.ended[Direction::ClientToUpstream.index()]);
        if let Some(s) = self.streams.get_mut(&id) {
            s.discard = [true, true];
            s.answered = true;
            if client_open && after_body {
                // `after = "request-body"`: the body is read and dropped, the answer follows
                // the request's end (see `read_request_body`). A client waiting for
                // `100 Continue` gets one, as on HTTP/1, so it sends the body at once.
                let expects = s
                    .request
                    .get("expect")
                    .is_some_and(|v| v.eq_ignore_ascii_case(b"100-continue"));
                let interim = expects.then(|| {
                    let list = HeaderList::from_pairs([(":status", "100")]);
                    let note = follow_up(
                        &mark,
                        format!(
                            "100 Continue on stream {} from faultline: it reads the request's body before it answers",
                            id.0
                        ),
                    );
                    (build::headers(id, &list, false, BlockLimits::default()), note)
                });
                s.deferred = Some(DeferredAnswer {
                    frames,
                    mark: mark.clone(),
                    body,
                    dropped: 0,
                });
                if let Some((frames, note)) = interim {
                    self.owe(Direction::UpstreamToClient, frames, note);
                }
                return Some(mark);
            }
        }
        self.answer(id, frames, mark.clone(), body, client_open);
        Some(mark)
    }

    /// Sends the client faultline's answer to stream `id` (`frames`, its header block, then
    /// `body` as the client's windows allow); `client_open`: the request had not ended, so
    /// RST_STREAM(NO_ERROR) follows (RFC 9113 §8.1).
    fn answer(
        &mut self,
        id: StreamId,
        frames: Vec<u8>,
        mark: Mark,
        body: Vec<u8>,
        client_open: bool,
    ) {
        self.owe(Direction::UpstreamToClient, frames, mark.clone());
        // RFC 9113 §8.1: a complete response before the request is complete ends the client's
        // half with RST_STREAM(NO_ERROR), after the body.
        let then = client_open.then(|| {
            let note = follow_up(
                &mark,
                format!(
                    "{} after the answer: the request had not ended",
                    rst_note(id, ErrorCode::NO_ERROR, Direction::UpstreamToClient)
                ),
            );
            (build::rst_stream(id, ErrorCode::NO_ERROR), note)
        });
        if body.is_empty() {
            if let Some((frame, note)) = then {
                self.owe(Direction::UpstreamToClient, frame, note);
            }
        } else {
            let total = body.len();
            self.bodies.insert(
                id,
                PendingBody {
                    body: OwnBody::new(id, body),
                    total,
                    mark: mark.clone(),
                    then,
                },
            );
            self.send_bodies();
        }
    }

    /// The client's DATA frame `header` on stream `id`, dropped (`credit`: its flow-controlled
    /// bytes, already returned on the connection): when faultline answers the stream at the
    /// request's end, the stream's credit goes back too (the upstream never saw the DATA, and
    /// without it the client stalls at its stream window), and END_STREAM releases the answer.
    fn read_request_body(&mut self, id: StreamId, header: &FrameHeader, credit: u64) {
        let Some(deferred) = self.streams.get_mut(&id).and_then(|s| s.deferred.as_mut()) else {
            return;
        };
        deferred.dropped += credit;
        if header.ends_stream() {
            self.answer_deferred(id);
        } else {
            self.owe_stream_credit(id, credit);
        }
    }

    /// The request on stream `id` ended (END_STREAM on DATA or trailers): faultline's deferred
    /// answer, if any, goes out now, complete (no RST_STREAM after it).
    fn answer_deferred(&mut self, id: StreamId) {
        let Some(deferred) = self.streams.get_mut(&id).and_then(|s| s.deferred.take()) else {
            return;
        };
        let mut mark = deferred.mark;
        mark.note = format!(
            "{} at the request's end (its body read and dropped: {} bytes)",
            mark.note, deferred.dropped
        );
        self.answer(id, deferred.frames, mark, deferred.body, false);
    }

    /// The client reset stream `id` before its request ended: the answer faultline deferred to
    /// the request's end is owed no more; the capture says so under the rule's mark.
    fn forget_deferred(&mut self, id: StreamId, plan: &mut ChunkPlan) {
        let Some(deferred) = self.streams.get_mut(&id).and_then(|s| s.deferred.take()) else {
            return;
        };
        let label = self
            .streams
            .get(&id)
            .map(|s| s.label.clone())
            .unwrap_or_default();
        let mut mark = deferred.mark;
        mark.note = format!(
            "{label} not answered by faultline: the client reset stream {} before its request ended ({} body bytes read and dropped)",
            id.0, deferred.dropped
        );
        plan.insert_at(Bytes::new(), plan.arrival(), Some(mark));
    }

    /// Resets stream `id` toward both peers from the planning of `direction` (RST_STREAM in
    /// this plan toward its receiver, the other one owed to its sender).
    fn reset_both_now(
        &mut self,
        direction: Direction,
        id: StreamId,
        code: ErrorCode,
        mark: Mark,
        plan: &mut ChunkPlan,
    ) {
        let frame = Bytes::from(build::rst_stream(id, code));
        let there = follow_up(&mark, rst_note(id, code, other(direction)));
        plan.insert_at(frame, plan.arrival(), Some(mark));
        self.owe(other(direction), build::rst_stream(id, code), there);
        self.end_own_body(id);
        if let Some(s) = self.streams.get_mut(&id) {
            s.discard = [true, true];
        }
    }

    /// Resets stream `id` toward both peers through the outboxes (a timer fired), unless it
    /// already ended or faultline already ended it.
    fn reset_both(&mut self, id: StreamId, code: ErrorCode, mark: Mark) {
        let open = self
            .conv
            .tracker()
            .stream(id)
            .is_some_and(|s| !s.is_closed());
        let ended_by_faultline = self
            .streams
            .get(&id)
            .is_some_and(|s| s.discard == [true, true]);
        if !open || ended_by_faultline {
            return;
        }
        let upstream_note = follow_up(&mark, rst_note(id, code, Direction::ClientToUpstream));
        self.end_own_body(id);
        self.owe(
            Direction::UpstreamToClient,
            build::rst_stream(id, code),
            mark,
        );
        self.owe(
            Direction::ClientToUpstream,
            build::rst_stream(id, code),
            upstream_note,
        );
        if let Some(s) = self.streams.get_mut(&id) {
            s.discard = [true, true];
        }
    }

    /// `goaway.after_streams`: fires once enough streams were opened.
    /// Fires the `after_streams` GOAWAYs the stream just planned completes the count of: its
    /// GOAWAY names that stream, so the client's streams after it, read in the same burst, are
    /// refused (REFUSED_STREAM) and never reach the upstream.
    fn check_goaway_count(&mut self, scenario: &Scenario) {
        let opened = self.opened_planned;
        let due: Vec<(u64, crate::fault::goaway::Goaway, Mark)> = self
            .goaway_rules(scenario)
            .filter(|(key, g, _)| {
                !self.goaways_fired.contains(key) && g.after_streams.is_some_and(|n| opened >= n)
            })
            .map(|(key, g, mark)| (key, g.clone(), mark))
            .collect();
        for (key, goaway, mark) in due {
            self.fire_goaway(key, &goaway, mark);
        }
    }

    fn fire_goaway(&mut self, key: u64, goaway: &crate::fault::goaway::Goaway, mark: Mark) {
        self.goaways_fired.insert(key);
        // The highest stream planned, not read: a stream read but not planned yet (behind a
        // held frame, later in the chunk) is refused when its turn comes.
        let last = self.highest_planned;
        let code = goaway.code.0;
        let mut mark = mark;
        mark.note = format!(
            "GOAWAY ({code}{}, last stream {}) sent to the client",
            if goaway.graceful {
                ", graceful"
            } else {
                ", then closed"
            },
            last.0
        );
        self.owe(
            Direction::UpstreamToClient,
            build::goaway(last, code, b"faultline"),
            mark.clone(),
        );
        // The lowest last stream of the GOAWAYs sent counts (a later one may not raise it).
        if self.goaway_last.as_ref().is_none_or(|(was, _)| last < *was) {
            self.goaway_last = Some((last, mark.clone()));
        }
        if !goaway.graceful {
            let pushed = self.conv.tracker().highest_pushed_stream();
            let note = follow_up(
                &mark,
                format!(
                    "GOAWAY ({}, last stream {}) sent to the upstream too",
                    code, pushed.0
                ),
            );
            // The GOAWAY above carries the rule's mark (and counts it); the close is its sequel.
            // It follows the upstream's GOAWAY in the same direction, which the client's GOAWAY
            // hands them to once planned: each peer gets its GOAWAY before the close.
            let close = follow_up(&mark, "connection closed after the GOAWAY".to_string());
            let upstream =
                Owed::Frame(Bytes::from(build::goaway(pushed, code, b"faultline")), note);
            self.outbox[Direction::UpstreamToClient.index()]
                .push(Owed::Handoff(vec![upstream, Owed::Close(close)]));
        }
    }

    /// Holds the frame (or header block) `frame` of `direction` until `release` (no earlier
    /// than the stream's frames already held): its bytes leave the plan now and come back
    /// unchanged through the outbox once due. `mark` is what the chain put on it. Returns false,
    /// holding nothing, when its bytes are not all in this chunk or the cap is reached.
    #[allow(clippy::too_many_arguments)]
    fn hold(
        &mut self,
        direction: Direction,
        frame: FrameSpan,
        chunk: &[u8],
        start: u64,
        release: Instant,
        mark: Option<Mark>,
        plan: &mut ChunkPlan,
    ) -> bool {
        let d = direction.index();
        let Some(bytes) = frame.bytes_in(chunk, start) else {
            return false;
        };
        if !self.delayed[d].fits(bytes.len()) {
            return false;
        }
        plan.flush(None);
        plan.skip(frame.to);
        self.queue_held(direction, frame, bytes, release, mark, plan.arrival());
        true
    }

    /// Queues `bytes`, the frame `frame` of `direction` read at `arrival` whose plan skipped
    /// them, until `release` (no earlier than the stream's frames already held); `mark` is what
    /// the chain put on it.
    fn queue_held(
        &mut self,
        direction: Direction,
        frame: FrameSpan,
        bytes: &[u8],
        release: Instant,
        mark: Option<Mark>,
        arrival: Instant,
    ) {
        let d = direction.index();
        let release = self.delayed[d]
            .last_release(frame.id)
            .map_or(release, |last| last.max(release));
        // One comment per stretch of a stream's held frames, not one per frame: a long download
        // under a latency would otherwise carry thousands.
        let stretch_goes_on = self.delayed[d].holds(frame.id);
        let stream = self.streams.get_mut(&frame.id);
        let mark = match (mark, stream) {
            (Some(mark), Some(s)) => {
                s.delayed_by[d].get_or_insert_with(|| mark.clone());
                Some(mark)
            }
            (Some(mark), None) => Some(mark),
            (None, stream) => {
                let (pending, by) = match stream {
                    Some(s) => (s.pending_mark[d].take(), s.delayed_by[d].clone()),
                    None => (None, None),
                };
                if pending.is_none() && stretch_goes_on {
                    None
                } else {
                    Some(pending.unwrap_or_else(|| {
                    let what = if frame.block {
                        "header block"
                    } else {
                        "DATA frame"
                    };
                    let note = format!(
                        "{what} of stream {} held {:?} by faultline while the connection's other streams flowed",
                        frame.id.0,
                        release.saturating_duration_since(arrival)
                    );
                    match by {
                        Some(by) => follow_up(&by, note),
                        None => Mark::proxy(note),
                    }
                    }))
                }
            }
        };
        self.delayed[d].push(HeldFrame {
            stream: frame.id,
            bytes: Bytes::copy_from_slice(bytes),
            release,
            mark,
            credit: frame.credit,
            block: frame.block,
            touches: frame.touches,
        });
    }

    /// A header block of a stream whose frames are held must follow them: held too when
    /// `may_hold` (a later block that may not pass it is a barrier, see `plan_block`), or else
    /// (over the cap, a PUSH_PROMISE) the held frames leave here and the direction waits for
    /// them. Returns whether the block was held.
    fn block_behind_held(
        &mut self,
        direction: Direction,
        block: FrameSpan,
        may_hold: bool,
        chunk: &[u8],
        start: u64,
        plan: &mut ChunkPlan,
    ) -> bool {
        let d = direction.index();
        if !self.delayed[d].holds(block.id) {
            return false;
        }
        let arrival = plan.arrival();
        if may_hold && self.hold(direction, block, chunk, start, arrival, None, plan) {
            return true;
        }
        let mine = self.delayed[d].take_stream(block.id);
        self.release_inline(direction, mine, plan);
        false
    }

    /// Follows SETTINGS in `direction` (the frame `header` opens, `pieces` when whole): a
    /// SETTINGS that sets the header table size is owed an acknowledgment by the other peer;
    /// returns whether this frame is the acknowledgment of such a change (true when it cannot
    /// be told: the safe answer).
    fn track_settings(
        &mut self,
        direction: Direction,
        header: &FrameHeader,
        pieces: Option<&[Labelled]>,
    ) -> bool {
        if header.kind != FrameType::Settings {
            return false;
        }
        let d = direction.index();
        // An empty SETTINGS (an ACK, or no values) says all in its header.
        let settings = if header.length == 0 {
            Some((header.flags & FLAG_ACK != 0, &[][..]))
        } else {
            pieces.and_then(|pieces| {
                pieces.iter().find_map(|l| match &l.piece.kind {
                    PieceKind::Control(Control::Settings { ack, values }) => {
                        Some((*ack, values.as_slice()))
                    }
                    _ => None,
                })
            })
        };
        match settings {
            Some((true, _)) => self.settings_owed[d].pop_front().unwrap_or(true),
            Some((false, values)) => {
                let owed = &mut self.settings_owed[other(direction).index()];
                if owed.len() < MAX_SETTINGS_OWED {
                    owed.push_back(values.iter().any(|&(id, _)| id == HEADER_TABLE_SIZE));
                }
                false
            }
            None => header.flags & FLAG_ACK != 0,
        }
    }

    /// Before a frame other than DATA or a header block (RST_STREAM, WINDOW_UPDATE, PRIORITY,
    /// GOAWAY, …): the held frames of its stream leave first (a stream keeps its order); before
    /// GOAWAY, which may be followed by the end of the connection, every held frame; and before
    /// the SETTINGS ACK of a header table size change while a header block is held (it obliges
    /// the sender's next block to start with a table size update, which a held older block
    /// lacks).
    fn barrier_before_frame(
        &mut self,
        direction: Direction,
        header: &FrameHeader,
        acks_table_resize: bool,
        plan: &mut ChunkPlan,
    ) {
        let d = direction.index();
        if self.delayed[d].is_empty() {
            return;
        }
        let all = header.kind == FrameType::Goaway
            || (acks_table_resize && self.delayed[d].holds_block());
        let frames = if all {
            self.delayed[d].take_all()
        } else if !header.stream.is_connection() && self.delayed[d].holds(header.stream) {
            self.delayed[d].take_stream(header.stream)
        } else {
            return;
        };
        self.release_inline(direction, frames, plan);
    }

    /// Held frames of `direction` leave here, in the plan, each not before its release: the
    /// direction waits for them (the fallback where holding would break an order). Frames of a
    /// stream faultline ended since are dropped and their credit returned.
    fn release_inline(
        &mut self,
        direction: Direction,
        frames: Vec<HeldFrame>,
        plan: &mut ChunkPlan,
    ) {
        if frames.is_empty() {
            return;
        }
        plan.flush(None);
        for frame in frames {
            if let (true, note) = self.withhold_held(direction, &frame) {
                plan.insert_at(Bytes::new(), plan.arrival(), note);
                continue;
            }
            // A block that changes the receiver's HPACK table reaches it even on an ended stream.
            if !frame.touches && self.discards(direction, frame.stream) {
                self.owe_credit(direction, frame.credit, frame.stream);
            } else {
                plan.insert_at(frame.bytes, frame.release, frame.mark);
            }
        }
    }

    /// Moves the held frames of `direction` due at `now` to its outbox: they go out at the
    /// direction's next frame boundary (frames of a stream faultline ended since are dropped and
    /// their credit returned).
    fn release_due(&mut self, direction: Direction, now: Instant) {
        let d = direction.index();
        for frame in self.delayed[d].take_due(now) {
            if let (true, note) = self.withhold_held(direction, &frame) {
                if let Some(note) = note {
                    self.owe(direction, Vec::new(), note);
                }
                continue;
            }
            if !frame.touches && self.discards(direction, frame.stream) {
                self.owe_credit(direction, frame.credit, frame.stream);
            } else {
                self.outbox[d].push(Owed::Held(frame.bytes, frame.mark));
            }
        }
    }

    /// Whether faultline drops the later frames of stream `id` in `direction`.
    fn discards(&self, direction: Direction, id: StreamId) -> bool {
        self.streams
            .get(&id)
            .is_some_and(|s| s.discard[direction.index()])
    }

    /// Returns `credit` bytes of connection window, for DATA of stream `id` faultline dropped,
    /// to the sender of `direction` (merged with credit already waiting there).
    fn owe_credit(&mut self, direction: Direction, credit: u64, id: StreamId) {
        if credit == 0 {
            return;
        }
        if direction == Direction::UpstreamToClient {
            self.dropped_toward_client += credit;
        }
        let outbox = &mut self.outbox[other(direction).index()];
        if let Some(Owed::Credit(bytes, streams, _)) = outbox.last_mut() {
            *bytes += credit;
            if !streams.contains(&id) {
                streams.push(id);
            }
        } else {
            outbox.push(Owed::Credit(credit, vec![id], Vec::new()));
        }
    }

    /// Returns `credit` bytes of stream `id`'s window to the client, for its DATA faultline
    /// dropped while the request it answers runs to its end (merged with the connection credit
    /// waiting for the client, one entry per stream).
    fn owe_stream_credit(&mut self, id: StreamId, credit: u64) {
        if credit == 0 {
            return;
        }
        let outbox = &mut self.outbox[Direction::UpstreamToClient.index()];
        if !matches!(outbox.last(), Some(Owed::Credit(..))) {
            outbox.push(Owed::Credit(0, Vec::new(), Vec::new()));
        }
        if let Some(Owed::Credit(_, _, per_stream)) = outbox.last_mut() {
            match per_stream.iter_mut().find(|(s, _)| *s == id) {
                Some((_, owed)) => *owed += credit,
                None => per_stream.push((id, credit)),
            }
        }
    }

    /// Queues `frame` for the receiver of `direction`.
    fn owe(&mut self, direction: Direction, frame: Vec<u8>, mark: Mark) {
        self.outbox[direction.index()].push(Owed::Frame(Bytes::from(frame), mark));
    }

    /// Writes what the receiver of `direction` is owed, here (a frame boundary).
    fn flush_outbox(&mut self, direction: Direction, plan: &mut ChunkPlan) {
        let d = direction.index();
        if self.frames_seen[d] == 0 || self.outbox[d].is_empty() {
            return;
        }
        plan.flush(None);
        for owed in std::mem::take(&mut self.outbox[d]) {
            match owed {
                Owed::Frame(bytes, mark) => {
                    plan.insert_at(bytes, plan.arrival(), Some(mark));
                }
                Owed::Held(bytes, mark) => plan.insert_at(bytes, plan.arrival(), mark),
                Owed::Credit(credit, streams, per_stream) => {
                    let ids: Vec<String> = streams.iter().map(|s| s.0.to_string()).collect();
                    let mut note = format!(
                        "WINDOW_UPDATE +{credit} on the connection to the {}: credit for DATA of stream {} that faultline dropped",
                        peer(direction),
                        ids.join(", ")
                    );
                    let mut frames = build::window_updates(StreamId::CONNECTION, credit);
                    for (id, owed) in per_stream {
                        frames.extend(build::window_updates(id, owed));
                        note.push_str(&format!(
                            "; WINDOW_UPDATE +{owed} on stream {}: faultline reads the request's body before it answers",
                            id.0
                        ));
                    }
                    plan.insert_at(Bytes::from(frames), plan.arrival(), Some(Mark::proxy(note)));
                }
                Owed::Close(mark) => {
                    plan.stop(Step::End {
                        how: EndHow::Finish,
                        mark,
                    });
                    break;
                }
                Owed::Handoff(next) => self.outbox[other(direction).index()].extend(next),
            }
        }
    }
}

/// The dynamic table size updates a header block starts with, read from its first frame's bytes
/// (HEADERS or PUSH_PROMISE, padding and priority fields skipped): all a held block withheld
/// from the client owes it.
fn leading_size_updates(frame: &[u8]) -> Vec<usize> {
    let Some(&flags) = frame.get(4) else {
        return Vec::new();
    };
    let mut at = HEADER_LEN;
    if flags & crate::h2::frame::FLAG_PADDED != 0 {
        at += 1;
    }
    match frame.get(3).map(|&t| FrameType::from_u8(t)) {
        Some(FrameType::Headers) if flags & crate::h2::frame::FLAG_PRIORITY != 0 => at += 5,
        Some(FrameType::PushPromise) => at += 4,
        _ => {}
    }
    let mut updates = Vec::new();
    while let Some(rest) = frame.get(at..) {
        match rest.first() {
            Some(first) if first & 0xe0 == 0x20 => match crate::h2::hpack::integer(rest, 5) {
                Ok((size, used)) => {
                    updates.push(size);
                    at += used;
                }
                Err(_) => break,
            },
            _ => break,
        }
    }
    updates
}

/// Where a frame (or a whole header block) lies in the direction's byte stream.
#[derive(Debug, Clone, Copy)]
struct FrameSpan {
    id: StreamId,
    /// Absolute offsets of its first byte and just past its last.
    from: u64,
    to: u64,
    /// Connection-window credit it owes when dropped (0 for a header block).
    credit: u64,
    block: bool,
    /// A header block that changes the receiver's HPACK table.
    touches: bool,
}

impl FrameSpan {
    /// Its bytes, when they are all in `chunk` (which starts at absolute offset `start`).
    fn bytes_in(self, chunk: &[u8], start: u64) -> Option<&[u8]> {
        let from = self.from.checked_sub(start)?;
        let to = self.to.checked_sub(start)?;
        chunk.get(from as usize..to as usize)
    }

    /// The DATA frame `header` opens, from `from` to `to`: it owes its whole payload as credit
    /// when dropped.
    fn data(header: &FrameHeader, from: u64, to: u64) -> FrameSpan {
        FrameSpan {
            id: header.stream,
            from,
            to,
            credit: credit_for(header, 0),
            block: false,
            touches: false,
        }
    }
}

/// Where a header block being relayed ends, and the frames sent in its place, if any (see
/// [`H2Session::substitute`]).
#[derive(Debug, Clone)]
struct Head {
    end: u64,
    substitute: Option<(Bytes, Mark)>,
}

impl Head {
    /// Relays the block: its own bytes, or its substitute in their place.
    fn relay(self, plan: &mut ChunkPlan) {
        match self.substitute {
            Some((bytes, mark)) => {
                let arrival = plan.arrival();
                plan.push_steps(vec![Step::Insert {
                    bytes,
                    not_before: arrival,
                    mark: Some(mark),
                    role: Role::Head,
                }]);
                plan.skip(self.end);
            }
            None => plan.relay(self.end, Role::Head),
        }
    }

    /// The steps that relay the block, taken from the plan's batch (the caller flushed it) for
    /// a chain to apply.
    fn into_steps(self, plan: &mut ChunkPlan) -> Vec<Step> {
        match self.substitute {
            Some((bytes, mark)) => {
                plan.skip(self.end);
                let mut steps = vec![Step::Insert {
                    bytes,
                    not_before: plan.arrival(),
                    mark: Some(mark),
                    role: Role::Head,
                }];
                steps.extend(plan.take_batch());
                steps
            }
            None => {
                plan.relay(self.end, Role::Head);
                plan.take_batch()
            }
        }
    }
}

/// A header block that ends its stream (a GET, a trailers-only answer): with no DATA to hold,
/// a delay falls on the block itself.
#[derive(Debug, Clone, Copy)]
struct LoneBlock<'a> {
    span: FrameSpan,
    /// Its bytes, when they are all in the chunk and it may be held (not a PUSH_PROMISE).
    bytes: Option<&'a [u8]>,
}

/// SETTINGS awaiting acknowledgment kept per direction (a peer sends a handful; one that sends
/// SETTINGS and never acknowledges must not grow the session).
const MAX_SETTINGS_OWED: usize = 64;

/// How planning a DATA frame went.
enum DataPlan {
    /// Planned; continue at this piece.
    Done(usize),
    /// The frame (and everything after it) waits for more bytes.
    Hold,
}

/// When and how an `rst_stream.at` rule resets the stream labelled `label` that opened at
/// `opened` (`None` for `rst_stream.after`).
fn reset_timer(
    rule: &RuleId,
    fault: &RstStream,
    label: &str,
    opened: Instant,
) -> Option<(Instant, ErrorCode, Mark)> {
    let at = fault.at?;
    let note = format!(
        "reset the stream of {label} ({}) {:?} after it opened",
        fault.code.0, at.0
    );
    Some((opened + at.0, fault.code.0, Mark::rule(rule, note)))
}

/// The receiver of `direction`, as notes name it.
fn peer(direction: Direction) -> &'static str {
    match direction {
        Direction::ClientToUpstream => "upstream",
        Direction::UpstreamToClient => "client",
    }
}

/// `RST_STREAM(CODE) on stream N to the PEER`, for notes.
fn rst_note(id: StreamId, code: ErrorCode, toward: Direction) -> String {
    format!(
        "RST_STREAM({code}) on stream {} to the {}",
        id.0,
        peer(toward)
    )
}

/// The mark of a frame faultline writes because of the fault marked `because` (the other
/// peer's RST_STREAM, a rewritten DATA header): it comments the frame in the capture without
/// counting the rule a second time.
fn follow_up(because: &Mark, what: String) -> Mark {
    match &because.rule {
        Some(rule) => Mark::follow_up(rule, what),
        None => Mark::proxy(what),
    }
}

/// The note of the RST_STREAM(CANCEL) that withdraws a call faultline answered from the
/// upstream.
fn cancelled_upstream(id: StreamId, answer: &Mark) -> Mark {
    follow_up(
        answer,
        format!(
            "{}: faultline answered the call itself",
            rst_note(id, ErrorCode::CANCEL, Direction::ClientToUpstream)
        ),
    )
}

fn other(direction: Direction) -> Direction {
    match direction {
        Direction::ClientToUpstream => Direction::UpstreamToClient,
        Direction::UpstreamToClient => Direction::ClientToUpstream,
    }
}

/// The index of the last piece of the frame whose header is piece `i`, when all of it is here.
fn frame_extent(pieces: &[Labelled], i: usize, header: &FrameHeader) -> Option<usize> {
    let mut left = header.length as usize;
    if left == 0 {
        return Some(i);
    }
    for (j, labelled) in pieces.iter().enumerate().skip(i + 1) {
        if matches!(
            labelled.piece.kind,
            PieceKind::Header(_) | PieceKind::Preface
        ) {
            return None;
        }
        left = left.saturating_sub(labelled.piece.len);
        if left == 0 {
            return Some(j);
        }
    }
    None
}

/// Bytes of the frame whose header is piece `i` not yet in `pieces`.
fn frame_left(pieces: &[Labelled], i: usize, header: &FrameHeader) -> usize {
    let here: usize = pieces[i + 1..].iter().map(|l| l.piece.len).sum();
    (header.length as usize).saturating_sub(here)
}

/// Bytes still to come of the frame whose header is piece `i` (its header says how many).
fn frame_left_after(pieces: &[Labelled], i: usize) -> usize {
    match &pieces[i].piece.kind {
        PieceKind::Header(header) => frame_left(pieces, i, header),
        _ => 0,
    }
}

/// The index of the last piece of the header block that starts at piece `i`: its completing
/// fragment and the padding of that fragment's frame.
fn block_end(pieces: &[Labelled], i: usize) -> Option<usize> {
    let (mut last, _) = pieces
        .iter()
        .enumerate()
        .skip(i)
        .find(|(_, l)| matches!(&l.piece.kind, PieceKind::Fragment { block: Some(_), .. }))?;
    while pieces
        .get(last + 1)
        .is_some_and(|l| matches!(l.piece.kind, PieceKind::Padding))
    {
        last += 1;
    }
    Some(last)
}

/// Header, payload and padding bytes of the DATA frame in pieces `i..=last`.
fn layout_of(pieces: &[Labelled], i: usize, last: usize) -> FrameLayout {
    let mut layout = FrameLayout {
        head: 0,
        payload: 0,
        padding: 0,
    };
    for labelled in &pieces[i..=last] {
        match labelled.piece.kind {
            PieceKind::Header(_) | PieceKind::Fields => layout.head += labelled.piece.len,
            PieceKind::Data { .. } => layout.payload += labelled.piece.len,
            _ => layout.padding += labelled.piece.len,
        }
    }
    layout
}

/// `content-length` of a header list, for percentages.
fn content_length(headers: &HeaderList) -> Option<u64> {
    headers.get_str("content-length")?.trim().parse().ok()
}
