//! HTTP/2 awareness over raw byte streams: frames, read-only HPACK, streams, and the gRPC/ByteStream messages inside.
//!
//! Like [`crate::http`] for HTTP/1, this module only *observes*: it labels every raw byte of a
//! direction (frame header, DATA payload of stream N at offset K, padding, header block…), decodes
//! header blocks with one HPACK decoder per direction, and tracks stream state and flow control,
//! so the proxy can turn rule decisions into steps at raw offsets and `inspect` can read captures
//! back stream by stream. It does no I/O, keeps no clock and never re-serializes a frame it read;
//! the frames faultline writes itself come from [`build`] and use HPACK literals without indexing.
//!
//! Layers, bottom up: [`frame`] and [`reader`] (bytes → pieces), [`hpack`] (header blocks →
//! header lists), [`tracker`] (frames of both directions → stream states), [`conversation`] (all of
//! it for one connection), then gRPC ([`grpc`], [`grpc_status`]) and `google.bytestream`
//! ([`protobuf`], [`bytestream`], [`resource_name`]).

pub mod build;
pub mod bytestream;
pub mod control;
pub mod conversation;
pub mod error;
pub mod error_code;
pub mod flow;
pub mod frame;
pub mod grpc;
pub mod grpc_status;
pub mod headers;
pub mod hpack;
#[cfg(test)]
pub(crate) mod hpack_bomb;
pub mod hpack_encode;
pub mod hpack_table;
mod huffman;
pub mod own_body;
pub mod protobuf;
pub mod reader;
#[cfg(test)]
mod real_traffic_tests;
pub mod refusing_server;
pub mod resource_name;
pub mod settings;
pub mod stream;
pub mod tracker;

pub use control::Control;
pub use conversation::{Conversation, DecodedBlock, Fed};
pub use error::{FrameError, H2Error};
pub use error_code::ErrorCode;
pub use frame::{FrameHeader, FrameType, StreamId};
pub use headers::{HeaderField, HeaderList};
pub use reader::{BlockKind, FrameReader, HeaderBlock, Piece, PieceKind};
pub use stream::{Stream, StreamState};
pub use tracker::{BlockRole, Tracker};
