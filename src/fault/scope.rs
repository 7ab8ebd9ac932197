//! Where one instance of a fault acts: a whole direction of a connection, or one message of it.
//!
//! The same fault code serves both: a scope only changes what `after = SIZE` counts (every byte,
//! or the message's payload), how percentages resolve, and how the fault's note names what it did.

use crate::direction::Direction;
use crate::units::Amount;

/// The payload stream a fault instance acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    /// The direction whose bytes the stream is made of.
    pub direction: Direction,
    /// `None` for a whole direction; the message otherwise.
    pub message: Option<MessageScope>,
}

/// One message (an HTTP/1 request or response, an HTTP/2 stream's half) as faults name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageScope {
    /// The message in notes: `PUT /x (attempt 1)`, `the response to PUT /x (attempt 1) (status 200)`.
    pub name: String,
    /// Its payload in notes: `the body of PUT /x (attempt 1)`.
    pub body: String,
    /// Payload length when the framing announces it (Content-Length), for percentages.
    pub body_len: Option<u64>,
}

/// A byte amount that cannot be resolved in its scope: a percentage of a body whose length is not
/// announced. The rule is skipped for that message (and says so), never guessed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Unresolved(pub Amount);

impl Scope {
    /// A whole direction of a connection.
    pub fn direction(direction: Direction) -> Scope {
        Scope {
            direction,
            message: None,
        }
    }

    /// One message travelling in `direction`.
    pub fn message(direction: Direction, message: MessageScope) -> Scope {
        Scope {
            direction,
            message: Some(message),
        }
    }

    /// The byte count `amount` means here.
    pub fn resolve(&self, amount: Amount) -> Result<u64, Unresolved> {
        let total = self.message.as_ref().and_then(|m| m.body_len);
        amount.of(total).ok_or(Unresolved(amount))
    }

    /// What counted bytes are called in notes: `` (whole direction) or ` of the body of PUT /x`.
    pub fn counted_suffix(&self) -> String {
        match &self.message {
            Some(m) => format!(" of {}", m.body),
            None => String::new(),
        }
    }

    /// What a timing fault acts on in notes: `client->upstream` or `PUT /x (attempt 1)`.
    pub fn subject(&self) -> String {
        match &self.message {
            Some(m) => m.name.clone(),
            None => self.direction.to_string(),
        }
    }
}
