//! HTTP/1 awareness over raw byte streams: protocol detection, incremental head parsing and body framing.
//!
//! faultline relays bytes unchanged; this module only *observes* them. [`Http1Conversation`] is fed
//! each direction's chunks as they cross and reports [`FrameEvent`]s with absolute stream offsets,
//! so faults can act on raw offsets ("reset after half the body") and captures can be read back
//! message by message. It does no I/O, keeps no clock, and never copies body bytes.

pub mod answer;
pub mod authority;
mod body;
mod chunked;
mod conversation;
mod detect;
mod error;
mod event;
mod framing;
mod head_buffer;
mod headers;
mod limits;
pub mod origin_form;
mod request;
mod response;
mod stream;

pub use body::{BodyKind, BodyPiece};
pub use conversation::Http1Conversation;
pub use detect::{looks_like_http1_request, Detection};
pub use error::{Direction, HttpError, HttpErrorKind};
pub use event::FrameEvent;
pub use headers::HeaderFields;
pub use limits::Limits;
pub use request::RequestHead;
pub use response::ResponseHead;
