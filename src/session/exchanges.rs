//! The requests of one connection still waiting for their responses, in order, with what each
//! left for its response: rules to arm on it, a response to drop, or an answer faultline owes
//! the client in its place.

use std::collections::VecDeque;

use crate::fault::plan::Mark;

/// What a request left for its response.
#[derive(Debug, Default)]
pub struct Pending {
    /// How the request is named in notes: `PUT /x (attempt 1)`.
    pub label: String,
    /// Rules (keys) that act on the response, once its status is known.
    pub response_rules: Vec<u64>,
    /// Reset the client before the first byte of the response.
    pub drop_response: Option<Mark>,
    /// faultline answers this request itself (empty bytes: it only closes), once the responses
    /// before it are done; the upstream never sees it.
    pub answer: Option<(Vec<u8>, Mark)>,
    /// The request asked to switch to HTTP/2 (`Upgrade: h2c`): its headers, as stream 1 will
    /// carry them if the server agrees.
    pub h2c: Option<crate::h2::HeaderList>,
    /// Forward proxy: the request is for another origin (`host:port`); once the responses
    /// before it are done, the upstream leg is closed and one to this origin opened.
    pub reroute: Option<String>,
    /// An interim response faultline owes the client before its answer (`100 Continue`, for a
    /// request it answers after reading the body the client holds back until told to send it),
    /// once the responses before it are done.
    pub interim: Option<(Vec<u8>, Mark)>,
    /// The answer waits for the end of the request's body (`respond` after the body): not
    /// ready before, even when every response before it is done (pipelining).
    pub awaiting_body: bool,
}

/// Requests in the order they were sent; responses answer them front to back (HTTP/1
/// pipelining).
#[derive(Debug, Default)]
pub struct Exchanges {
    queue: VecDeque<Pending>,
    /// The origin the answer taken last hands the connection to (see [`Pending::reroute`]).
    reroute: Option<String>,
}

impl Exchanges {
    /// A request was sent (or will be answered by faultline).
    pub fn push(&mut self, pending: Pending) {
        self.queue.push_back(pending);
    }

    /// The request the next response answers.
    pub fn front_mut(&mut self) -> Option<&mut Pending> {
        self.queue.front_mut()
    }

    /// The response to the oldest request is complete.
    pub fn answered(&mut self) {
        self.queue.pop_front();
    }

    /// faultline answers the latest request itself after all: the upstream will not (it got
    /// the request's head and part of its body). A request whose answer waited for the end of
    /// its body (held for a `respond` rule) never gets that end: `answer` replaces it, ready
    /// once the responses before it are done (a trial's strict listener logged the 400 and
    /// sent nothing, the held request waiting forever for a body that could not end). A
    /// request already answered otherwise keeps its answer, and `answer` follows it.
    pub fn answer_latest(&mut self, answer: (Vec<u8>, Mark), label: String) {
        match self.queue.back_mut() {
            Some(latest) if latest.answer.is_none() || latest.awaiting_body => {
                latest.answer = Some(answer);
                latest.awaiting_body = false;
                latest.interim = None;
            }
            _ => self.push(Pending {
                label,
                answer: Some(answer),
                ..Pending::default()
            }),
        }
    }

    /// The latest request's body was read to its end: an answer that waited for it is ready
    /// once the responses before it are done.
    pub fn body_read(&mut self) {
        if let Some(latest) = self.queue.back_mut() {
            latest.awaiting_body = false;
        }
    }

    /// The answer faultline owes the client next, if every response before it is done (and
    /// the body it waits for was read).
    pub fn take_ready_answer(&mut self) -> Option<(Vec<u8>, Mark)> {
        if self
            .queue
            .front()
            .is_some_and(|p| p.answer.is_some() && !p.awaiting_body)
        {
            let pending = self.queue.pop_front()?;
            self.reroute = pending.reroute;
            return pending.answer;
        }
        None
    }

    /// The interim response faultline owes the client next, if every response before it is
    /// done; its request stays, waiting for its answer.
    pub fn take_ready_interim(&mut self) -> Option<(Vec<u8>, Mark)> {
        self.queue.front_mut()?.interim.take()
    }

    /// Whether [`Self::take_ready_interim`] has one.
    pub fn interim_ready(&self) -> bool {
        self.queue.front().is_some_and(|p| p.interim.is_some())
    }

    /// The origin the last answer taken hands the connection to, once.
    pub fn take_reroute(&mut self) -> Option<String> {
        self.reroute.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_waits_for_the_responses_before_it() {
        let mut exchanges = Exchanges::default();
        exchanges.push(Pending::default());
        exchanges.push(Pending {
            answer: Some((b"x".to_vec(), Mark::proxy("answered"))),
            ..Pending::default()
        });
        assert!(exchanges.take_ready_answer().is_none());
        exchanges.answered();
        assert_eq!(
            exchanges.take_ready_answer().map(|(bytes, _)| bytes),
            Some(b"x".to_vec())
        );
        assert!(exchanges.front_mut().is_none());
    }

    /// The body an answer waited for turned out malformed: it never ends, so the answer for
    /// the malformed request takes its place and is ready at once.
    #[test]
    fn an_answer_waiting_for_a_body_that_cannot_end_is_replaced() {
        let mut exchanges = Exchanges::default();
        exchanges.push(Pending {
            answer: Some((b"503".to_vec(), Mark::proxy("answered"))),
            awaiting_body: true,
            ..Pending::default()
        });
        assert!(exchanges.take_ready_answer().is_none());
        exchanges.answer_latest((b"400".to_vec(), Mark::proxy("400")), "bad".into());
        assert_eq!(
            exchanges.take_ready_answer().map(|(bytes, _)| bytes),
            Some(b"400".to_vec())
        );
        assert!(exchanges.front_mut().is_none(), "one answer");
    }
}
