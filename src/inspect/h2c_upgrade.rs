//! An HTTP/1.1 request with `Upgrade: h2c` followed to the server's 101: where HTTP/2 starts in each direction and the request stream 1 carries.

use crate::direction::Direction;
use crate::h2::HeaderList;
use crate::http::{FrameEvent, Http1Conversation};

/// What the exchange says so far.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Not decided yet.
    Wait,
    /// Not an h2c upgrade (another request, another answer, broken HTTP/1).
    NotH2c,
    /// Switched: HTTP/2 starts at these offsets (client->upstream, upstream->client), stream 1
    /// carries `request`, the 101 crossed at `switched_ns`.
    Switched {
        /// Tunnel start offsets per direction.
        starts: [u64; 2],
        /// Stream 1's request.
        request: HeaderList,
        /// When the 101 crossed.
        switched_ns: u64,
    },
}

/// Follows the HTTP/1.1 request that may switch the connection to h2c.
pub struct Upgrade {
    http: Http1Conversation,
    /// Stream 1's request, once the upgrade request's head was read.
    request: Option<HeaderList>,
    /// Where HTTP/2 starts in each direction (the tunnel offsets after the 101).
    starts: [Option<u64>; 2],
    /// When the 101 crossed.
    switched_ns: u64,
}

impl Upgrade {
    /// Before any byte.
    pub fn new() -> Upgrade {
        Upgrade {
            http: Http1Conversation::new(),
            request: None,
            starts: [None, None],
            switched_ns: 0,
        }
    }

    /// Feeds the next bytes of `direction`, crossed at `ts`.
    pub fn feed(&mut self, direction: Direction, bytes: &[u8], ts: u64) -> Step {
        let mut requests = Vec::new();
        let mut ok = true;
        match direction {
            Direction::ClientToUpstream => match self.http.feed_request(bytes) {
                Ok(events) => requests = events,
                Err(_) => ok = false,
            },
            Direction::UpstreamToClient => match self.http.feed_response(bytes) {
                Ok(events) => {
                    for event in events {
                        match event {
                            FrameEvent::Head { head, .. } if !head.is_interim() => {
                                ok &= head.status == 101;
                                self.switched_ns = ts;
                            }
                            FrameEvent::Tunnel { start } => self.starts[1] = Some(start),
                            _ => {}
                        }
                    }
                    // The request side's tunnel is settled by the answer.
                    match self.http.feed_request(&[]) {
                        Ok(events) => requests = events,
                        Err(_) => ok = false,
                    }
                }
                Err(_) => ok = false,
            },
        }
        for event in requests {
            match event {
                FrameEvent::Head { head, .. } => {
                    if self.request.is_some() || !head.has_token("upgrade", "h2c") {
                        ok = false;
                    } else {
                        self.request = Some(crate::h2::headers::upgraded_request(&head));
                    }
                }
                FrameEvent::Tunnel { start } => self.starts[0] = Some(start),
                _ => {}
            }
        }
        if !ok {
            return Step::NotH2c;
        }
        match (self.starts, &self.request) {
            ([Some(client), Some(server)], Some(request)) => Step::Switched {
                starts: [client, server],
                request: request.clone(),
                switched_ns: self.switched_ns,
            },
            _ => Step::Wait,
        }
    }
}
