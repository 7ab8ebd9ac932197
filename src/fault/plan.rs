//! The plan vocabulary: what a pump must do with the bytes it just read, decided by pure faults.
//!
//! A plan is a list of [`Step`]s over one chunk of one payload stream (a TCP direction, an HTTP/1
//! message, an HTTP/2 stream): send the next `len` bytes not before an instant, skip them, write
//! bytes faultline made, close the connection (FIN or RST), or hold the direction. Faults rewrite
//! plans; only the pump executes them, which keeps every fault testable without sockets or clocks.

use std::sync::Arc;

use bytes::Bytes;
use tokio::time::Instant;

/// The rule a mark names: its stable key (the hash of its own text, see `scenario::Rule::key`)
/// and its name. A rule set can change while a connection runs (`faultline serve`), so marks
/// carry who made them rather than an index into whichever rule set is current.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RuleId {
    /// Stable identity: counters are kept per key.
    pub key: u64,
    /// Shown in logs, the summary and capture comments.
    pub name: Arc<str>,
}

impl RuleId {
    /// The rule keyed `key` named `name`.
    pub fn new(key: u64, name: &str) -> RuleId {
        RuleId {
            key,
            name: Arc::from(name),
        }
    }
}

/// Why a step exists: the rule that acted (or faultline itself) and a sentence saying what it
/// did. It becomes a log line, a rule counter in the exit summary and (with captures) a packet
/// comment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mark {
    /// The rule that acted; `None` when faultline acted on its own (a strict-mode `400`, a
    /// forward-proxy request for another origin).
    pub rule: Option<RuleId>,
    /// What happened, e.g. `reset client->upstream after 65536 bytes`.
    pub note: String,
    /// On the `End` step of a `tls_alert` fault: the alert the destination leg's TLS record
    /// layer fails with before the connection ends. The plan vocabulary has no TLS (sessions
    /// never see it: the fault acts on whole directions only), so the mark carries it to the
    /// pump, the one place that holds the leg's TLS session.
    pub tls_alert: Option<super::tls_alert::AlertName>,
    /// A follow-up's rule key ([`Mark::follow_up`]): the rule whose firing it continues, which
    /// it does not count again. A hold lasts only while that rule is in force.
    pub follows: Option<u64>,
    /// The rule counts as fired once per connection, however many of its marks say it acted
    /// (a `timeout` drops bytes, then closes the connection: one firing).
    pub once_per_connection: bool,
}

impl Mark {
    /// The key of the rule this mark stems from: its own rule, or the one it follows up.
    pub fn rule_key(&self) -> Option<u64> {
        self.rule.as_ref().map(|r| r.key).or(self.follows)
    }

    /// A mark left by `rule`.
    pub fn rule(rule: &RuleId, note: impl Into<String>) -> Mark {
        Mark {
            rule: Some(rule.clone()),
            note: note.into(),
            tls_alert: None,
            follows: None,
            once_per_connection: false,
        }
    }

    /// A mark left by faultline itself, not by any rule.
    pub fn proxy(note: impl Into<String>) -> Mark {
        Mark {
            rule: None,
            note: note.into(),
            tls_alert: None,
            follows: None,
            once_per_connection: false,
        }
    }

    /// The mark of something faultline does because `rule` fired already (a frame it writes in
    /// consequence, the end of a stream a fault swallows): it names the rule in the capture
    /// without counting it a second time.
    pub fn follow_up(rule: &RuleId, what: impl Into<String>) -> Mark {
        Mark {
            follows: Some(rule.key),
            ..Mark::proxy(format!("{} (rule \"{}\")", what.into(), rule.name))
        }
    }

    /// The same mark, counted once per connection with the rule's other such marks.
    pub fn once_per_connection(mut self) -> Mark {
        self.once_per_connection = true;
        self
    }

    /// The same mark, asking the pump to fail the destination leg with `alert`.
    pub fn with_tls_alert(mut self, alert: super::tls_alert::AlertName) -> Mark {
        self.tls_alert = Some(alert);
        self
    }
}

/// How a fault ends what it acts on: the connection, or (inside an HTTP/2 session) one stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndHow {
    /// Abort both legs with a TCP RST (SO_LINGER 0); on an HTTP/2 stream, RST_STREAM(CANCEL)
    /// to both peers.
    Reset,
    /// Close both legs cleanly with a FIN; on an HTTP/2 stream, END_STREAM at the cut.
    Finish,
    /// End only the HTTP/2 stream, with RST_STREAM carrying this RFC 9113 error code to both
    /// peers. Outside an HTTP/2 session there is no stream to end: it resets the connection.
    ResetStream {
        /// The error code.
        code: u32,
    },
}

/// What a byte of a payload stream is to the faults that count bytes (`after = SIZE`).
///
/// A plain TCP direction is all payload. Inside a message, the protocol session tells the faults
/// which bytes are the message's payload, so "reset after 1 MiB of the body" counts body bytes
/// only, and a limit of zero acts right after the head.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Role {
    /// Counted by byte limits. Every byte of a plain TCP direction.
    #[default]
    Payload,
    /// A message head (HTTP/1 head, HTTP/2 HEADERS): it comes before payload offset 0, so it is
    /// relayed even when a limit of 0 acts.
    Head,
    /// Framing inside a message (chunk-size lines, CRLFs, trailers, frame headers, padding):
    /// relayed along with the payload around it, never counted.
    Framing,
}

/// One instruction for the pump.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Write the next `len` bytes of the chunk, not before `not_before`.
    Send {
        len: usize,
        not_before: Instant,
        mark: Option<Mark>,
        role: Role,
    },
    /// Write bytes faultline made (a rewritten request line, an injected HTTP/2 frame) at this
    /// point of the stream, not before `not_before`. They take the place of no chunk bytes.
    Insert {
        bytes: Bytes,
        not_before: Instant,
        mark: Option<Mark>,
        role: Role,
    },
    /// Consume the next `len` bytes of the chunk without relaying them (a request faultline
    /// answers itself never reaches the upstream).
    Skip { len: usize },
    /// End the whole connection now, after everything before this step was written.
    End { how: EndHow, mark: Mark },
    /// Stop relaying this direction for good while keeping both sockets open.
    Hold { mark: Mark },
    /// Write these bytes (an answer from faultline itself) to the destination, then close the
    /// connection.
    Answer { bytes: Vec<u8>, mark: Mark },
    /// Stop relaying this direction and wake the other one: faultline owes the client an answer
    /// (or a close) once the responses before it are done.
    Park,
}

impl Step {
    /// The mark this step carries, if a fault marked it.
    pub fn mark(&self) -> Option<&Mark> {
        match self {
            Step::Send { mark, .. } | Step::Insert { mark, .. } => mark.as_ref(),
            Step::End { mark, .. } | Step::Hold { mark } | Step::Answer { mark, .. } => Some(mark),
            _ => None,
        }
    }

    /// A plain send of `len` payload bytes that may go out at `at`.
    pub fn send(len: usize, at: Instant) -> Step {
        Step::Send {
            len,
            not_before: at,
            mark: None,
            role: Role::Payload,
        }
    }

    /// A send of `len` bytes playing `role` in their message.
    pub fn send_as(len: usize, at: Instant, role: Role) -> Step {
        Step::Send {
            len,
            not_before: at,
            mark: None,
            role,
        }
    }

    /// The instant a step that writes bytes may go out; `None` for steps that write nothing of
    /// the stream. Timing faults (latency, stall, bandwidth) move it, never earlier.
    pub fn not_before_mut(&mut self) -> Option<&mut Instant> {
        match self {
            Step::Send { not_before, .. } | Step::Insert { not_before, .. } => Some(not_before),
            _ => None,
        }
    }

    /// The instant a step that writes bytes may go out (see [`Step::not_before_mut`]).
    pub fn not_before(&self) -> Option<Instant> {
        match self {
            Step::Send { not_before, .. } | Step::Insert { not_before, .. } => Some(*not_before),
            _ => None,
        }
    }

    /// The mark slot of a step that writes bytes, so a fault can ride its note on the first
    /// bytes it shaped.
    pub fn mark_mut(&mut self) -> Option<&mut Option<Mark>> {
        match self {
            Step::Send { mark, .. } | Step::Insert { mark, .. } => Some(mark),
            _ => None,
        }
    }

    /// A note of its own (no bytes) carrying `mark`, due at `not_before`.
    pub fn note(mark: Mark, not_before: Instant) -> Step {
        Step::Insert {
            bytes: Bytes::new(),
            not_before,
            mark: Some(mark),
            role: Role::Framing,
        }
    }

    /// Whether the pump stops relaying this direction after the step.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            Step::End { .. } | Step::Hold { .. } | Step::Answer { .. } | Step::Park
        )
    }

    /// Bytes of the chunk this step accounts for (sent or skipped).
    pub fn chunk_len(&self) -> usize {
        match self {
            Step::Send { len, .. } | Step::Skip { len } => *len,
            _ => 0,
        }
    }
}

/// A step that writes nothing and holds the steps after it until `at` (a delayed close or
/// reset); a `mark` rides on it as a note.
pub fn pause_until(at: Instant, mark: Option<Mark>) -> Step {
    Step::Insert {
        bytes: Bytes::new(),
        not_before: at,
        mark,
        role: Role::Payload,
    }
}

/// Bytes of the chunk the Send steps of a plan will write.
pub fn sent_len(steps: &[Step]) -> usize {
    steps
        .iter()
        .map(|s| match s {
            Step::Send { len, .. } => *len,
            _ => 0,
        })
        .sum()
}

/// Gives every byte-writing step the payload role: a fault on a whole TCP direction counts every
/// byte, whatever the protocol session said about it.
pub fn all_payload(mut steps: Vec<Step>) -> Vec<Step> {
    for step in &mut steps {
        if let Step::Send { role, .. } | Step::Insert { role, .. } = step {
            *role = Role::Payload;
        }
    }
    steps
}

/// Splits a plan where a counter of payload bytes reaches `limit`.
///
/// `counted` is how many payload bytes this fault has already seen pass in earlier plans; it is
/// advanced by the payload bytes kept. Returns the steps up to and including payload byte number
/// `limit`, and `Some(rest)` when the limit was reached inside (or exactly at the end of) this
/// plan; `rest` holds the steps after the limit, with a Send split in two when the limit falls
/// inside it. Head bytes always come before the limit (a limit of 0 acts right after the head);
/// framing bytes count for nothing and fall on the side where they stand. Other steps are kept
/// in order on the side where they stand.
pub fn split_at_limit(
    steps: Vec<Step>,
    counted: &mut u64,
    limit: u64,
) -> (Vec<Step>, Option<Vec<Step>>) {
    let mut before = Vec::with_capacity(steps.len() + 1);
    let mut iter = steps.into_iter();
    while let Some(step) = iter.next() {
        let reached = *counted >= limit;
        match step {
            Step::Send {
                role: Role::Head, ..
            }
            | Step::Insert {
                role: Role::Head, ..
            } => before.push(step),
            // A rule's note (see `place_mark`) has no bytes to count or cut: the bytes after it
            // decide where the limit falls.
            Step::Insert { ref bytes, .. } if bytes.is_empty() => before.push(step),
            Step::Send { .. } | Step::Insert { .. } if reached => {
                let mut rest = vec![step];
                rest.extend(iter);
                return (before, Some(rest));
            }
            Step::Send {
                len,
                not_before,
                mark,
                role: Role::Payload,
            } => {
                let room = limit - *counted;
                if (len as u64) < room {
                    *counted += len as u64;
                    before.push(Step::Send {
                        len,
                        not_before,
                        mark,
                        role: Role::Payload,
                    });
                    continue;
                }
                // The limit falls inside or at the end of this send.
                let head = room as usize;
                *counted = limit;
                before.push(Step::Send {
                    len: head,
                    not_before,
                    mark: mark.clone(),
                    role: Role::Payload,
                });
                let mut rest = Vec::new();
                if len > head {
                    rest.push(Step::Send {
                        len: len - head,
                        not_before,
                        mark: None,
                        role: Role::Payload,
                    });
                }
                rest.extend(iter);
                return (before, Some(rest));
            }
            other => before.push(other),
        }
    }
    if *counted >= limit {
        (before, Some(Vec::new()))
    } else {
        (before, None)
    }
}

/// Puts a fault's `mark` (taken, so it is placed once) on the first step of `steps` that
/// writes bytes: on that step when it carries no mark yet, else on a note of its own just
/// before it, due with it. Two rules shaping the same bytes are then both recorded in the
/// capture and both counted as fired; one slot per step would keep only the first rule's.
pub fn place_mark(steps: &mut Vec<Step>, mark: &mut Option<Mark>) {
    if mark.is_none() {
        return;
    }
    let Some(index) = steps.iter().position(|s| s.not_before().is_some()) else {
        return;
    };
    let Some(at) = steps[index].not_before() else {
        return;
    };
    match steps[index].mark_mut() {
        Some(slot) if slot.is_none() => *slot = mark.take(),
        _ => {
            if let Some(mark) = mark.take() {
                steps.insert(index, Step::note(mark, at));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lens(steps: &[Step]) -> Vec<usize> {
        steps
            .iter()
            .filter_map(|s| match s {
                Step::Send { len, .. } => Some(*len),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_limit_inside_a_send_splits_it() {
        let now = Instant::now();
        let mut counted = 0;
        let (before, rest) = split_at_limit(vec![Step::send(100, now)], &mut counted, 30);
        assert_eq!(lens(&before), vec![30]);
        assert_eq!(lens(&rest.expect("limit reached")), vec![70]);
        assert_eq!(counted, 30);
    }

    #[test]
    fn a_limit_at_the_end_of_a_plan_is_reached_with_nothing_left() {
        let now = Instant::now();
        let mut counted = 10;
        let (before, rest) = split_at_limit(vec![Step::send(20, now)], &mut counted, 30);
        assert_eq!(lens(&before), vec![20]);
        assert_eq!(rest, Some(Vec::new()));
    }

    #[test]
    fn a_limit_not_reached_keeps_everything_and_counts() {
        let now = Instant::now();
        let mut counted = 0;
        let (before, rest) = split_at_limit(
            vec![Step::send(5, now), Step::send(6, now)],
            &mut counted,
            30,
        );
        assert_eq!(lens(&before), vec![5, 6]);
        assert!(rest.is_none());
        assert_eq!(counted, 11);
    }

    #[test]
    fn a_zero_limit_is_reached_before_the_first_byte() {
        let now = Instant::now();
        let mut counted = 0;
        let (before, rest) = split_at_limit(vec![Step::send(5, now)], &mut counted, 0);
        assert!(before.is_empty());
        assert_eq!(lens(&rest.expect("reached")), vec![5]);
    }

    #[test]
    fn a_zero_limit_in_a_message_acts_right_after_the_head() {
        let now = Instant::now();
        let mut counted = 0;
        let plan = vec![
            Step::send_as(100, now, Role::Head),
            Step::send_as(5, now, Role::Framing),
            Step::send_as(10, now, Role::Payload),
        ];
        let (before, rest) = split_at_limit(plan, &mut counted, 0);
        assert_eq!(lens(&before), vec![100]);
        assert_eq!(lens(&rest.expect("reached")), vec![5, 10]);
        let mut counted = 0;
        let (before, rest) =
            split_at_limit(vec![Step::send_as(100, now, Role::Head)], &mut counted, 0);
        assert_eq!(lens(&before), vec![100]);
        assert_eq!(
            rest,
            Some(Vec::new()),
            "a body-less message ends at its head"
        );
    }

    #[test]
    fn framing_is_not_counted_and_the_cut_follows_the_last_payload_byte() {
        let now = Instant::now();
        let mut counted = 0;
        let plan = vec![
            Step::send_as(3, now, Role::Framing),
            Step::send_as(4, now, Role::Payload),
            Step::send_as(2, now, Role::Framing),
            Step::send_as(3, now, Role::Framing),
            Step::send_as(4, now, Role::Payload),
        ];
        let (before, rest) = split_at_limit(plan, &mut counted, 6);
        assert_eq!(lens(&before), vec![3, 4, 2, 3, 2]);
        assert_eq!(lens(&rest.expect("reached")), vec![2]);
        assert_eq!(counted, 6);
    }

    #[test]
    fn all_payload_forgets_message_roles() {
        let now = Instant::now();
        let steps = all_payload(vec![Step::send_as(3, now, Role::Head)]);
        assert_eq!(steps, vec![Step::send(3, now)]);
    }
}
