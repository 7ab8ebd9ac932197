//! Pairs the request and response streams of one HTTP/1 connection, so responses are framed by the
//! requests they answer.

use std::collections::VecDeque;
use std::mem;

use crate::http::error::{Direction, HttpError, HttpErrorKind};
use crate::http::event::FrameEvent;
use crate::http::framing::{self, RequestContext};
use crate::http::limits::Limits;
use crate::http::request::RequestHead;
use crate::http::response::ResponseHead;
use crate::http::stream::{AfterMessage, Decision, MessageStream};
use crate::http::BodyKind;

/// Tracks message framing in both directions of one HTTP/1 connection, without I/O or copying bodies.
///
/// Feed each direction's bytes as they cross, in any chunking; events carry absolute stream offsets
/// per direction. Request bytes must be fed before the response bytes that answer them (feed a
/// request chunk before forwarding it): responses are framed by the oldest unanswered request
/// (HEAD → no body, CONNECT 2xx → tunnel), kept in a FIFO so pipelining works. A response with no
/// request pending is framed as if it answered a GET.
///
/// After the first error every call returns that error again: framing is lost for good and the
/// proxy should keep relaying raw bytes without HTTP awareness.
#[derive(Debug)]
pub struct Http1Conversation {
    requests: MessageStream<RequestHead>,
    responses: MessageStream<ResponseHead>,
    unanswered: VecDeque<RequestContext>,
    deferred_request_events: Vec<FrameEvent<RequestHead>>,
    failure: Option<HttpError>,
    /// The first response-side failure, which stops response framing for good.
    response_failure: Option<HttpError>,
}

impl Default for Http1Conversation {
    fn default() -> Self {
        Self::new()
    }
}

impl Http1Conversation {
    /// A conversation with the default [`Limits`] (64 KiB heads, 100 headers).
    pub fn new() -> Self {
        Self::with_limits(Limits::default())
    }

    /// A conversation with explicit limits, e.g. smaller ones for fuzzing.
    pub fn with_limits(limits: Limits) -> Self {
        Http1Conversation {
            requests: MessageStream::new(Direction::ClientToUpstream, limits),
            responses: MessageStream::new(Direction::UpstreamToClient, limits),
            unanswered: VecDeque::new(),
            deferred_request_events: Vec::new(),
            failure: None,
            response_failure: None,
        }
    }

    /// Feeds the next client->upstream bytes. Also returns request events that became known while
    /// feeding responses (the request side's `Tunnel` after a 101/CONNECT 2xx, or requests held back
    /// during an undecided upgrade); `feed_request(&[])` collects those without new bytes.
    pub fn feed_request(
        &mut self,
        chunk: &[u8],
    ) -> Result<Vec<FrameEvent<RequestHead>>, HttpError> {
        self.check()?;
        let mut events = mem::take(&mut self.deferred_request_events);
        let unanswered = &mut self.unanswered;
        let result = self.requests.feed(
            chunk,
            &mut |head| decide_request(head, unanswered),
            &mut events,
        );
        self.settle(result.map(|()| events))
    }

    /// Like [`feed_request`](Self::feed_request), but also returns the events found before an
    /// error in the same chunk, so a proxy can still relay (and answer) the good requests that
    /// shared a read with the bad bytes after them. After a request-side error, responses to the
    /// requests already framed can still be fed.
    pub fn feed_request_partial(
        &mut self,
        chunk: &[u8],
    ) -> (Vec<FrameEvent<RequestHead>>, Option<HttpError>) {
        if let Err(e) = self.check() {
            return (Vec::new(), Some(e));
        }
        let mut events = mem::take(&mut self.deferred_request_events);
        let unanswered = &mut self.unanswered;
        let result = self.requests.feed(
            chunk,
            &mut |head| decide_request(head, unanswered),
            &mut events,
        );
        match self.settle(result) {
            Ok(()) => (events, None),
            Err(e) => (events, Some(e)),
        }
    }

    /// The client closed its sending half. Errors when it stopped inside a head or a body.
    pub fn request_eof(&mut self) -> Result<Vec<FrameEvent<RequestHead>>, HttpError> {
        self.check()?;
        let mut events = mem::take(&mut self.deferred_request_events);
        let result = self.requests.eof(&mut events);
        self.settle(result.map(|()| events))
    }

    /// Feeds the next upstream->client bytes. The final answer to a CONNECT/Upgrade request also settles
    /// the client->upstream bytes held meanwhile, so this may return a client->upstream error.
    pub fn feed_response(
        &mut self,
        chunk: &[u8],
    ) -> Result<Vec<FrameEvent<ResponseHead>>, HttpError> {
        self.check_responses()?;
        let mut events = Vec::new();
        let Self {
            requests,
            responses,
            unanswered,
            deferred_request_events,
            ..
        } = self;
        let mut request_failure = None;
        let result = responses.feed(
            chunk,
            &mut |head| {
                let request = unanswered.front().copied();
                let framing = framing::response_body(head, request)?;
                if framing.interim {
                    return Ok(Decision {
                        body: BodyKind::None,
                        after: AfterMessage::Continue,
                    });
                }
                unanswered.pop_front();
                if request.is_some_and(|r| r.wants_switch) {
                    let resolved = requests.resolve_switch(
                        framing.switches,
                        &mut |h| decide_request(h, unanswered),
                        deferred_request_events,
                    );
                    if let Err(e) = resolved {
                        request_failure.get_or_insert(e);
                    }
                }
                Ok(Decision {
                    body: framing.body,
                    after: if framing.switches {
                        AfterMessage::Tunnel
                    } else {
                        AfterMessage::Continue
                    },
                })
            },
            &mut events,
        );
        let result = match request_failure {
            Some(e) => Err(e),
            None => result.map(|()| events),
        };
        self.settle(result)
    }

    /// The upstream closed its sending half: ends a close-delimited body with `MessageEnd`, and
    /// errors when a Content-Length or chunked body (or a head) was cut short, saying how much was missing.
    pub fn response_eof(&mut self) -> Result<Vec<FrameEvent<ResponseHead>>, HttpError> {
        self.check_responses()?;
        let mut events = Vec::new();
        let result = self.responses.eof(&mut events);
        self.settle(result.map(|()| events))
    }

    /// Bytes fed so far client->upstream: the stream offset the next request chunk starts at.
    pub fn request_offset(&self) -> u64 {
        self.requests.offset()
    }

    /// Bytes fed so far upstream->client: the stream offset the next response chunk starts at.
    pub fn response_offset(&self) -> u64 {
        self.responses.offset()
    }

    /// Bytes of an incomplete request head at the end of what was fed (0 outside a head): a
    /// proxy that wants to decide on whole heads holds them back until the head completes.
    pub fn request_head_pending(&self) -> usize {
        self.requests.pending_head_bytes()
    }

    /// Bytes of an incomplete response head at the end of what was fed (0 outside a head).
    pub fn response_head_pending(&self) -> usize {
        self.responses.pending_head_bytes()
    }

    /// Requests whose final response has not started yet (pipelining depth).
    pub fn unanswered_requests(&self) -> usize {
        self.unanswered.len()
    }

    /// True once the connection switched protocols (both directions are then raw tunnels).
    pub fn is_tunnel(&self) -> bool {
        self.responses.is_tunnel()
    }

    /// The error that stopped tracking, if any.
    pub fn failure(&self) -> Option<&HttpError> {
        self.failure.as_ref()
    }

    /// Refuses input after a failure.
    fn check(&self) -> Result<(), HttpError> {
        match &self.failure {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }

    /// Responses stay readable after a request-side error: the requests framed before it are
    /// still owed their answers.
    fn check_responses(&self) -> Result<(), HttpError> {
        match (&self.response_failure, &self.failure) {
            (Some(e), _) => Err(e.clone()),
            (None, Some(e)) if e.direction == Direction::UpstreamToClient => Err(e.clone()),
            _ => Ok(()),
        }
    }

    /// Remembers an error so later calls return it again.
    fn settle<T>(&mut self, result: Result<T, HttpError>) -> Result<T, HttpError> {
        if let Err(e) = &result {
            tracing::debug!(direction = %e.direction, offset = e.offset, error = %e.kind, "HTTP/1 framing lost");
            if self.failure.is_none() {
                self.failure = Some(e.clone());
            }
            if e.direction == Direction::UpstreamToClient && self.response_failure.is_none() {
                self.response_failure = Some(e.clone());
            }
        }
        result
    }
}

/// Frames a request and queues what its response needs to know.
fn decide_request(
    head: &RequestHead,
    unanswered: &mut VecDeque<RequestContext>,
) -> Result<Decision, HttpErrorKind> {
    let body = framing::request_body(head)?;
    let context = RequestContext::of(head);
    unanswered.push_back(context);
    Ok(Decision {
        body,
        after: if context.wants_switch {
            AfterMessage::AwaitSwitch
        } else {
            AfterMessage::Continue
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::BodyPiece;

    /// Everything one run of a conversation produced, with body pieces merged where contiguous so
    /// runs over different splits of the same bytes compare equal.
    #[derive(Debug, PartialEq, Eq)]
    struct Outcome {
        requests: Vec<String>,
        responses: Vec<String>,
        error: Option<HttpError>,
    }

    fn describe<H>(events: &[FrameEvent<H>], head: impl Fn(&H) -> String) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let mut last_piece: Option<BodyPiece> = None;
        for event in events {
            if let FrameEvent::Body(p) = event {
                last_piece = Some(match last_piece.take() {
                    Some(prev)
                        if prev.raw.end == p.raw.start
                            && prev.payload_offset + prev.len() == p.payload_offset =>
                    {
                        BodyPiece {
                            raw: prev.raw.start..p.raw.end,
                            payload_offset: prev.payload_offset,
                        }
                    }
                    Some(prev) => {
                        out.push(format!("B {:?} @{}", prev.raw, prev.payload_offset));
                        p.clone()
                    }
                    None => p.clone(),
                });
                continue;
            }
            if let Some(prev) = last_piece.take() {
                out.push(format!("B {:?} @{}", prev.raw, prev.payload_offset));
            }
            out.push(match event {
                FrameEvent::Head {
                    head: h,
                    start,
                    end,
                    body,
                } => format!("H {} {start}..{end} {body:?}", head(h)),
                FrameEvent::MessageEnd { end } => format!("E {end}"),
                FrameEvent::Tunnel { start } => format!("T {start}"),
                FrameEvent::Body(_) => unreachable!(),
            });
        }
        if let Some(prev) = last_piece {
            out.push(format!("B {:?} @{}", prev.raw, prev.payload_offset));
        }
        out
    }

    /// Checks that events tile the stream: heads start where the previous message ended, head
    /// ranges match `head_len`, and body pieces lie between head end and message end.
    fn check_tiling<H>(events: &[FrameEvent<H>], head_len: impl Fn(&H) -> usize) {
        let mut boundary = 0u64;
        let mut body_from = None;
        for event in events {
            match event {
                FrameEvent::Head {
                    head, start, end, ..
                } => {
                    assert_eq!(
                        *start, boundary,
                        "head must start at the previous message end"
                    );
                    assert_eq!(end - start, head_len(head) as u64);
                    body_from = Some(*end);
                }
                FrameEvent::Body(p) => {
                    let from = body_from.expect("body inside a message");
                    assert!(p.raw.start >= from && !p.is_empty());
                    body_from = Some(p.raw.end);
                }
                FrameEvent::MessageEnd { end } => {
                    assert!(*end >= body_from.take().expect("end after a head"));
                    boundary = *end;
                }
                FrameEvent::Tunnel { start } => assert_eq!(*start, boundary),
            }
        }
    }

    fn pieces(len: usize, splits: &[usize]) -> Vec<(usize, usize)> {
        let mut cuts = vec![0];
        cuts.extend(splits.iter().copied().filter(|&s| s > 0 && s < len));
        cuts.push(len);
        cuts.windows(2).map(|w| (w[0], w[1])).collect()
    }

    /// Feeds all request bytes (cut at `rq_cuts`), then all response bytes (cut at `rs_cuts`), then
    /// collects deferred request events and, if `eof`, ends both directions.
    fn run_with(
        limits: Limits,
        rq: &[u8],
        rq_cuts: &[usize],
        rs: &[u8],
        rs_cuts: &[usize],
        eof: bool,
    ) -> Outcome {
        let mut conv = Http1Conversation::with_limits(limits);
        let mut req_events = Vec::new();
        let mut res_events = Vec::new();
        let mut step = || -> Result<(), HttpError> {
            for (a, b) in pieces(rq.len(), rq_cuts) {
                req_events.extend(conv.feed_request(&rq[a..b])?);
            }
            for (a, b) in pieces(rs.len(), rs_cuts) {
                res_events.extend(conv.feed_response(&rs[a..b])?);
            }
            req_events.extend(conv.feed_request(&[])?);
            if eof {
                req_events.extend(conv.request_eof()?);
                res_events.extend(conv.response_eof()?);
            }
            Ok(())
        };
        let error = step().err();
        if let Some(e) = &error {
            assert_eq!(
                conv.feed_request(b"x").as_ref().err(),
                Some(e),
                "error repeats"
            );
            if e.direction == Direction::UpstreamToClient {
                assert_eq!(conv.response_eof().as_ref().err(), Some(e), "error repeats");
            }
            return Outcome {
                requests: vec![],
                responses: vec![],
                error,
            };
        }
        check_tiling(&req_events, |h| h.head_len);
        check_tiling(&res_events, |h| h.head_len);
        Outcome {
            requests: describe(&req_events, |h| format!("{} {}", h.method, h.target)),
            responses: describe(&res_events, |h| h.status.to_string()),
            error,
        }
    }

    /// Runs whole, byte by byte and at every 2-way split of each direction; all must agree.
    fn run_all_splits_with(limits: Limits, rq: &str, rs: &str, eof: bool) -> Outcome {
        let (rq, rs) = (rq.as_bytes(), rs.as_bytes());
        let whole = run_with(limits, rq, &[], rs, &[], eof);
        let every_rq: Vec<usize> = (1..rq.len()).collect();
        let every_rs: Vec<usize> = (1..rs.len()).collect();
        assert_eq!(
            run_with(limits, rq, &every_rq, rs, &[], eof),
            whole,
            "request byte by byte"
        );
        assert_eq!(
            run_with(limits, rq, &[], rs, &every_rs, eof),
            whole,
            "response byte by byte"
        );
        for k in 1..rq.len() {
            assert_eq!(
                run_with(limits, rq, &[k], rs, &[], eof),
                whole,
                "request split at {k}"
            );
        }
        for k in 1..rs.len() {
            assert_eq!(
                run_with(limits, rq, &[], rs, &[k], eof),
                whole,
                "response split at {k}"
            );
        }
        whole
    }

    fn run_all_splits(rq: &str, rs: &str, eof: bool) -> Outcome {
        run_all_splits_with(Limits::default(), rq, rs, eof)
    }

    fn lines(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn error_kind(o: &Outcome) -> Option<(Direction, u64, HttpErrorKind)> {
        o.error.clone().map(|e| (e.direction, e.offset, e.kind))
    }

    #[test]
    fn keep_alive_pipelined_cl_and_chunked_with_extensions_and_trailers() {
        let rq = concat!(
            "GET /a HTTP/1.1\r\nHost: x\r\n\r\n",
            "POST /b HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello",
            // A stray CRLF before a request line is tolerated and counted in that head.
            "\r\nPUT /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            "3;x=\"a;b\"\r\nabc\r\n2\r\nde\r\n0;end\r\nX-Sum: 9\r\n\r\n",
        );
        let rs = concat!(
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
            "HTTP/1.1 204 No Content\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nwxyz\r\n0\r\n\r\n",
        );
        let o = run_all_splits(rq, rs, true);
        assert_eq!(o.error, None);
        assert_eq!(
            o.requests,
            lines(&[
                "H GET /a 0..28 None",
                "E 28",
                "H POST /b 28..67 Length(5)",
                "B 67..72 @0",
                "E 72",
                "H PUT /c 72..121 Chunked",
                "B 132..135 @0",
                "B 140..142 @3",
                "E 163",
            ])
        );
        assert_eq!(
            o.responses,
            lines(&[
                "H 200 0..38 Length(2)",
                "B 38..40 @0",
                "E 40",
                "H 204 40..67 None",
                "E 67",
                "H 200 67..114 Chunked",
                "B 117..121 @0",
                "E 128",
            ])
        );
    }

    #[test]
    fn expect_100_continue_sees_interim_then_final() {
        let rq = "PUT /up HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc";
        let rs = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n";
        let o = run_all_splits(rq, rs, true);
        assert_eq!(o.requests[0], "H PUT /up 0..61 Length(3)");
        assert_eq!(
            o.responses,
            lines(&["H 100 0..25 None", "E 25", "H 201 25..68 Length(0)", "E 68"])
        );

        // The realistic interleaving: head, 100, body, final response.
        let mut conv = Http1Conversation::new();
        let head_end = rq.len() - 3;
        let ev = conv.feed_request(&rq.as_bytes()[..head_end]).expect("head");
        assert!(matches!(&ev[..], [FrameEvent::Head { head, .. }] if head.expects_continue()));
        let ev = conv.feed_response(&rs.as_bytes()[..25]).expect("100");
        assert_eq!(ev.len(), 2);
        assert_eq!(
            conv.unanswered_requests(),
            1,
            "interim responses keep the request pending"
        );
        conv.feed_request(b"abc").expect("body");
        conv.feed_response(&rs.as_bytes()[25..]).expect("final");
        assert_eq!(conv.unanswered_requests(), 0);
    }

    #[test]
    fn head_response_has_no_body_whatever_its_headers_say() {
        let rq = "HEAD /f HTTP/1.1\r\n\r\nGET /f HTTP/1.1\r\n\r\n";
        let rs = concat!(
            "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            "HTTP/1.1 408 Timeout\r\nContent-Length: 1\r\n\r\nZ",
        );
        // The second response answers GET; the third is unsolicited and framed as for GET.
        let o = run_all_splits(rq, rs, false);
        assert_eq!(o.responses[..2], lines(&["H 200 0..40 None", "E 40"])[..]);
        assert_eq!(
            o.responses[2..4],
            lines(&["H 200 40..87 Chunked", "E 92"])[..]
        );
        assert_eq!(o.responses[4], "H 408 92..135 Length(1)");
    }

    #[test]
    fn no_body_statuses_and_informational() {
        let rq = "GET / HTTP/1.1\r\n\r\n".repeat(3);
        let rs = concat!(
            "HTTP/1.1 103 Early Hints\r\nLink: </s>\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
            "HTTP/1.1 204 No Content\r\nContent-Length: 9\r\n\r\n",
            "HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n",
        );
        let o = run_all_splits(&rq, rs, true);
        assert_eq!(o.error, None);
        let heads: Vec<_> = o.responses.iter().filter(|l| l.starts_with('H')).collect();
        assert_eq!(heads.len(), 4);
        assert!(heads
            .iter()
            .all(|l| l.ends_with("None") || l.ends_with("Length(0)")));
        assert_eq!(o.responses.last().map(String::as_str), Some("E 181"));
    }

    #[test]
    fn close_delimited_response_ends_at_eof() {
        let rq = "GET / HTTP/1.0\r\n\r\n";
        let rs = "HTTP/1.0 200 OK\r\nServer: old\r\n\r\nall of this\r\n\r\nHTTP/1.1 is body";
        let o = run_all_splits(rq, rs, true);
        assert_eq!(
            o.responses,
            lines(&["H 200 0..32 UntilClose", "B 32..63 @0", "E 63"])
        );
        let without_eof = run_all_splits(rq, rs, false);
        assert_eq!(without_eof.responses.len(), 2, "no MessageEnd before EOF");
    }

    #[test]
    fn connect_2xx_turns_both_directions_into_a_tunnel() {
        let rq = "CONNECT db.test:5432 HTTP/1.1\r\nHost: db.test:5432\r\n\r\n\x16\x03\x01 optimistic GET / HTTP/1.1\r\n\r\n";
        let rs = "HTTP/1.1 200 Connection established\r\n\r\n\x16\x03\x03 server bytes";
        let o = run_all_splits(rq, rs, true);
        assert_eq!(o.error, None);
        assert_eq!(
            o.requests,
            lines(&["H CONNECT db.test:5432 0..53 None", "E 53", "T 53"])
        );
        assert_eq!(o.responses, lines(&["H 200 0..39 None", "E 39", "T 39"]));
    }

    #[test]
    fn refused_connect_and_upgrade_resume_http_with_held_bytes() {
        let rq = "CONNECT x:443 HTTP/1.1\r\n\r\nGET /next HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi";
        let rs = "HTTP/1.1 407 Proxy Auth\r\nContent-Length: 0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
        let o = run_all_splits(rq, rs, true);
        assert_eq!(
            o.requests,
            lines(&[
                "H CONNECT x:443 0..26 None",
                "E 26",
                "H GET /next 26..67 Length(2)",
                "B 67..69 @0",
                "E 69"
            ])
        );
        assert_eq!(o.responses.len(), 4);

        let rq = "GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nGET /b HTTP/1.1\r\n\r\n";
        let rs = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\nHTTP/1.1 204 No\r\n\r\n";
        let o = run_all_splits(rq, rs, false);
        assert_eq!(o.requests.len(), 4);
        assert_eq!(o.responses.len(), 4);
    }

    #[test]
    fn upgrade_101_tunnels_after_the_switching_head() {
        let rq = "GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\x7f\x05hello";
        let rs = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\x7f\x02hi";
        let o = run_all_splits(rq, rs, true);
        assert_eq!(o.error, None);
        assert_eq!(
            o.requests,
            lines(&["H GET /chat 0..72 None", "E 72", "T 72"])
        );
        assert_eq!(o.responses, lines(&["H 101 0..77 None", "E 77", "T 77"]));

        // The 101 may arrive before the request side saw the end of the upgrade request's body.
        let mut conv = Http1Conversation::new();
        conv.feed_request(b"POST /u HTTP/1.1\r\nUpgrade: h2c\r\nContent-Length: 4\r\n\r\nab")
            .expect("head");
        conv.feed_response(b"HTTP/1.1 101 Switching\r\n\r\nraw")
            .expect("101");
        assert!(conv.is_tunnel());
        let ev = conv.feed_request(b"cdRAW").expect("rest");
        assert!(matches!(
            &ev[..],
            [
                FrameEvent::Body(_),
                FrameEvent::MessageEnd { end: 57 },
                FrameEvent::Tunnel { start: 57 }
            ]
        ));
    }

    #[test]
    fn request_without_length_has_empty_body() {
        let o = run_all_splits("POST /x HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\n\r\n", "", true);
        assert_eq!(
            o.requests,
            lines(&[
                "H POST /x 0..20 None",
                "E 20",
                "H GET / 20..38 None",
                "E 38"
            ])
        );
    }

    #[test]
    fn malformed_inputs_are_errors_at_the_right_offset() {
        use Direction::{ClientToUpstream as Rq, UpstreamToClient as Rs};
        use HttpErrorKind as K;
        let ok = "GET / HTTP/1.1\r\n\r\n";
        let cases: Vec<(String, &str, (Direction, u64, HttpErrorKind))> = vec![
            (
                format!("{ok}POST / HTTP/1.1\r\nContent-Length: 1x\r\n\r\n"),
                "",
                (Rq, 18, K::InvalidContentLength),
            ),
            (
                format!("{ok}POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"),
                "",
                (Rq, 18, K::ConflictingContentLength),
            ),
            (
                "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n".into(),
                "",
                (
                    Rq,
                    0,
                    K::InvalidTransferEncoding {
                        value: "gzip".into(),
                    },
                ),
            ),
            (
                "\x00\x01garbage\r\n\r\n".into(),
                "",
                (
                    Rq,
                    0,
                    K::InvalidHead {
                        reason: "byte 0x00 at 0 where the request method belongs".into(),
                    },
                ),
            ),
            (
                "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n".into(),
                "",
                (Rq, 47, K::InvalidChunkSize),
            ),
            (
                "POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc".into(),
                "",
                (Rq, 42, K::TruncatedBody { missing: 7 }),
            ),
            (
                "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab".into(),
                "",
                (
                    Rq,
                    52,
                    K::TruncatedChunkedBody {
                        missing_in_chunk: 3,
                    },
                ),
            ),
            (
                format!("{ok}GET / HT"),
                "",
                (Rq, 18, K::TruncatedHead { buffered: 8 }),
            ),
            (
                ok.into(),
                "HTTP/1.1 101 Switching\r\n\r\n",
                (Rs, 0, K::UnexpectedSwitch),
            ),
            (
                ok.into(),
                "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab",
                (Rs, 40, K::TruncatedBody { missing: 3 }),
            ),
            (
                ok.into(),
                "HTTP/1.1 200 OK\r\nContent-Length: 1, 2\r\n\r\n",
                (Rs, 0, K::ConflictingContentLength),
            ),
        ];
        for (rq, rs, expected) in cases {
            let o = run_all_splits(&rq, rs, true);
            assert_eq!(error_kind(&o), Some(expected), "{rq:?} / {rs:?}");
        }
    }

    #[test]
    fn oversized_heads_and_too_many_headers_are_errors() {
        let limits = Limits {
            max_head_bytes: 64,
            max_headers: 3,
            max_chunk_line: 16,
        };
        let big = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(60));
        let o = run_all_splits_with(limits, &big, "", false);
        assert_eq!(
            error_kind(&o),
            Some((
                Direction::ClientToUpstream,
                0,
                HttpErrorKind::HeadTooLarge { limit: 64 }
            ))
        );
        let many = "GET / HTTP/1.1\r\na: 1\r\nb: 2\r\nc: 3\r\nd: 4\r\n\r\n";
        let o = run_all_splits_with(limits, many, "", false);
        assert_eq!(
            error_kind(&o),
            Some((
                Direction::ClientToUpstream,
                0,
                HttpErrorKind::TooManyHeaders { limit: 3 }
            ))
        );
        // The default limit is 64 KiB: a 70 KB head fails without the tracker buffering more.
        let mut conv = Http1Conversation::new();
        let huge = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "v".repeat(70_000));
        let err = conv.feed_request(huge.as_bytes()).expect_err("too large");
        assert_eq!(err.kind, HttpErrorKind::HeadTooLarge { limit: 65536 });
    }

    #[test]
    fn input_after_eof_is_refused() {
        let mut conv = Http1Conversation::new();
        conv.feed_request(b"GET / HTTP/1.1\r\n\r\n")
            .expect("request");
        assert_eq!(conv.request_eof(), Ok(vec![]));
        assert_eq!(conv.request_eof(), Ok(vec![]), "EOF twice is harmless");
        let err = conv.feed_request(b"x").expect_err("after eof");
        assert_eq!(
            (err.offset, err.kind.clone()),
            (18, HttpErrorKind::FedAfterEof)
        );
        assert_eq!(conv.failure(), Some(&err));
    }

    /// xorshift64: a deterministic generator so the property test needs no extra crates.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }

        fn bytes(&mut self, len: usize) -> Vec<u8> {
            let alphabet = b"ab\r\n0;:x";
            (0..len).map(|_| alphabet[self.below(8) as usize]).collect()
        }
    }

    /// Serializes a body with random framing; returns the header lines and the framed bytes.
    fn frame_body(rng: &mut Rng, body: &[u8], may_omit: bool) -> (String, Vec<u8>) {
        match rng.below(3) {
            0 if may_omit && body.is_empty() => (String::new(), Vec::new()),
            0 | 1 => (format!("Content-Length: {}\r\n", body.len()), body.to_vec()),
            _ => {
                let mut out = Vec::new();
                let mut rest = body;
                while !rest.is_empty() {
                    let n = (1 + rng.below(40) as usize).min(rest.len());
                    let size = match rng.below(3) {
                        0 => format!("{n:X}"),
                        1 => format!("00{n:x}"),
                        _ => format!("{n:x}"),
                    };
                    let ext = ["", ";a=b", ";q=\"x;y\"", " ; e"][rng.below(4) as usize];
                    out.extend_from_slice(format!("{size}{ext}\r\n").as_bytes());
                    out.extend_from_slice(&rest[..n]);
                    out.extend_from_slice(b"\r\n");
                    rest = &rest[n..];
                }
                let trailers = ["", "X-T: 1\r\n", "A: b\r\nC: d\r\n"][rng.below(3) as usize];
                out.extend_from_slice(format!("0\r\n{trailers}\r\n").as_bytes());
                ("Transfer-Encoding: chunked\r\n".into(), out)
            }
        }
    }

    /// One of the conversation's feed methods.
    type Feed<H> = fn(&mut Http1Conversation, &[u8]) -> Result<Vec<FrameEvent<H>>, HttpError>;

    /// Feeds `stream` in random pieces through `feed`, returning each message's payload as
    /// reassembled from `BodyPiece::bytes_in` on the fed pieces only.
    fn payloads<H>(
        rng: &mut Rng,
        conv: &mut Http1Conversation,
        stream: &[u8],
        offset: fn(&Http1Conversation) -> u64,
        feed: Feed<H>,
    ) -> Vec<Vec<u8>> {
        let mut out: Vec<Vec<u8>> = Vec::new();
        let mut at = 0;
        while at < stream.len() {
            let end = (at + 1 + rng.below(64) as usize).min(stream.len());
            let chunk = &stream[at..end];
            let chunk_start = offset(conv);
            assert_eq!(chunk_start, at as u64);
            for event in feed(conv, chunk).expect("valid stream") {
                match event {
                    FrameEvent::Head { .. } => out.push(Vec::new()),
                    FrameEvent::Body(p) => {
                        let bytes = p.bytes_in(chunk, chunk_start).expect("piece in chunk");
                        let current = out.last_mut().expect("body after head");
                        assert_eq!(p.payload_offset, current.len() as u64);
                        current.extend_from_slice(bytes);
                    }
                    FrameEvent::MessageEnd { .. } | FrameEvent::Tunnel { .. } => {}
                }
            }
            at = end;
        }
        out
    }

    #[test]
    fn random_keep_alive_sequences_reassemble_payloads_under_random_splits() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for _ in 0..300 {
            let (mut rq, mut rs) = (Vec::new(), Vec::new());
            let (mut rq_bodies, mut rs_bodies) = (Vec::new(), Vec::new());
            for _ in 0..1 + rng.below(6) {
                let method = ["GET", "POST", "PUT", "HEAD"][rng.below(4) as usize];
                let len = rng.below(120) as usize;
                let body = rng.bytes(len);
                let (headers, framed) = frame_body(&mut rng, &body, true);
                if rng.below(5) == 0 {
                    rq.extend_from_slice(b"\r\n");
                }
                let head = format!(
                    "{method} /o/{} HTTP/1.1\r\nHost: h\r\n{headers}\r\n",
                    rng.below(99)
                );
                rq.extend_from_slice(head.as_bytes());
                rq.extend_from_slice(&framed);
                rq_bodies.push(body);

                let len = rng.below(120) as usize;
                let body = rng.bytes(len);
                let (headers, framed) = frame_body(&mut rng, &body, false);
                rs.extend_from_slice(format!("HTTP/1.1 200 OK\r\n{headers}\r\n").as_bytes());
                if method == "HEAD" {
                    rs_bodies.push(Vec::new());
                } else {
                    rs.extend_from_slice(&framed);
                    rs_bodies.push(body);
                }
            }
            let mut conv = Http1Conversation::new();
            let got = payloads(
                &mut rng,
                &mut conv,
                &rq,
                Http1Conversation::request_offset,
                Http1Conversation::feed_request,
            );
            assert_eq!(got, rq_bodies);
            let got = payloads(
                &mut rng,
                &mut conv,
                &rs,
                Http1Conversation::response_offset,
                Http1Conversation::feed_response,
            );
            assert_eq!(got, rs_bodies);
            assert_eq!(conv.unanswered_requests(), 0);
            assert_eq!(conv.request_eof(), Ok(vec![]));
            assert_eq!(conv.response_eof(), Ok(vec![]));
        }
    }

    #[test]
    fn random_garbage_never_panics_and_errors_stick() {
        let mut rng = Rng(42);
        let pieces: [&[u8]; 10] = [
            b"GET / HTTP/1.1\r\n",
            b"HTTP/1.1 200 OK\r\n",
            b"Content-Length: 3\r\n",
            b"Transfer-Encoding: chunked\r\n",
            b"\r\n",
            b"5;x\r\nhello\r\n",
            b"0\r\n\r\n",
            b"Upgrade: x\r\n",
            b"CONNECT a:1 HTTP/1.1\r\n",
            b"\x00\xff",
        ];
        for _ in 0..2000 {
            let mut conv = Http1Conversation::with_limits(Limits {
                max_head_bytes: 200,
                max_headers: 4,
                max_chunk_line: 16,
            });
            // The first failure sticks for requests; responses keep going after a request-side
            // failure (the requests framed before it are still owed answers) until they fail
            // themselves, and then that failure sticks for them.
            let mut failed: Option<HttpError> = None;
            let mut response_failed: Option<HttpError> = None;
            for _ in 0..rng.below(30) {
                let piece = pieces[rng.below(10) as usize];
                let op = rng.below(7);
                let request_side = matches!(op, 0..=2) || (op == 6 && rng.below(2) == 0);
                let result = match op {
                    0..=2 => conv.feed_request(piece).err(),
                    3..=5 => conv.feed_response(piece).err(),
                    _ if request_side => conv.request_eof().err(),
                    _ => conv.response_eof().err(),
                };
                if request_side {
                    if let Some(first) = &failed {
                        assert_eq!(result.as_ref(), Some(first), "a failure is permanent");
                    }
                } else {
                    let sticky = response_failed.clone().or_else(|| {
                        failed
                            .clone()
                            .filter(|e| e.direction == Direction::UpstreamToClient)
                    });
                    if let Some(first) = &sticky {
                        assert_eq!(
                            result.as_ref(),
                            Some(first),
                            "a response failure is permanent"
                        );
                    }
                    if let Some(e) = &result {
                        if e.direction == Direction::UpstreamToClient {
                            response_failed = response_failed.or(Some(e.clone()));
                        }
                    }
                }
                failed = failed.or(result);
            }
        }
    }
}
