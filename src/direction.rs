//! Which way bytes flow through the proxy and which TCP connection they cross, named the same in
//! code, logs, captures and scenario files.

use std::fmt;

use serde::Deserialize;

/// One direction of a proxied connection. "Upstream" names a peer, so directions are always
/// spelled from one peer to the other, never "downstream".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Requests and uploads: read from the client leg, written to the upstream leg.
    ClientToUpstream,
    /// Responses and downloads: read from the upstream leg, written to the client leg.
    UpstreamToClient,
}

impl Direction {
    /// Both directions, in a fixed order so per-direction decisions are reproducible.
    pub const ALL: [Direction; 2] = [Direction::ClientToUpstream, Direction::UpstreamToClient];

    /// A small stable number for deriving per-direction random streams.
    pub fn index(self) -> usize {
        match self {
            Direction::ClientToUpstream => 0,
            Direction::UpstreamToClient => 1,
        }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Direction::ClientToUpstream => "client->upstream",
            Direction::UpstreamToClient => "upstream->client",
        })
    }
}

/// The `direction` key of a rule's `match`: one direction or both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum DirectionMatch {
    /// Only requests and uploads.
    #[serde(rename = "client->upstream")]
    ClientToUpstream,
    /// Only responses and downloads.
    #[serde(rename = "upstream->client")]
    UpstreamToClient,
    /// Each direction gets its own instance of the fault.
    #[default]
    #[serde(rename = "both")]
    Both,
}

impl DirectionMatch {
    /// Whether a fault of this rule applies to traffic flowing in `direction`.
    pub fn includes(self, direction: Direction) -> bool {
        match self {
            DirectionMatch::Both => true,
            DirectionMatch::ClientToUpstream => direction == Direction::ClientToUpstream,
            DirectionMatch::UpstreamToClient => direction == Direction::UpstreamToClient,
        }
    }
}

/// Which of the two TCP connections of a proxied connection something happened on.
///
/// Every proxied connection has two legs; the capture keeps them as two separate TCP flows (and two
/// pcapng interfaces) so each can be followed on its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Leg {
    /// client↔proxy.
    Client,
    /// proxy↔upstream.
    Upstream,
}

impl Leg {
    /// The other leg of the same connection.
    pub fn other(self) -> Leg {
        match self {
            Leg::Client => Leg::Upstream,
            Leg::Upstream => Leg::Client,
        }
    }

    /// A small stable number for per-leg arrays.
    pub fn index(self) -> usize {
        match self {
            Leg::Client => 0,
            Leg::Upstream => 1,
        }
    }

    /// `client` or `upstream`, as JSON and command-line flags spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Leg::Client => "client",
            Leg::Upstream => "upstream",
        }
    }

    /// The leg `direction` reads from.
    pub fn source_of(direction: Direction) -> Leg {
        match direction {
            Direction::ClientToUpstream => Leg::Client,
            Direction::UpstreamToClient => Leg::Upstream,
        }
    }

    /// The leg `direction` writes to.
    pub fn destination_of(direction: Direction) -> Leg {
        Leg::source_of(direction).other()
    }
}

impl fmt::Display for Leg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Leg::Client => "client leg",
            Leg::Upstream => "upstream leg",
        })
    }
}
