//! The `google.bytestream.ByteStream` messages (Read, Write, QueryWriteStatus) that remote build caches speak over gRPC.
//!
//! Field numbers are those of `google/bytestream/bytestream.proto`. Parsing follows proto3:
//! unknown fields are skipped, the last occurrence of a scalar wins, absent fields are zero. The
//! `data` of ReadResponse and WriteRequest is given as a range of the message body, not copied.

use std::ops::Range;

use thiserror::Error;

use super::protobuf::{fields, write_bytes_field, write_varint_field, ProtobufError, Value};

/// The three ByteStream methods, by their gRPC `:path`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// Server-streaming download.
    Read,
    /// Client-streaming upload.
    Write,
    /// Where an interrupted upload may resume.
    QueryWriteStatus,
}

impl Method {
    /// The method a gRPC `:path` calls, if it is a ByteStream method.
    pub fn from_path(path: &str) -> Option<Method> {
        match path {
            "/google.bytestream.ByteStream/Read" => Some(Method::Read),
            "/google.bytestream.ByteStream/Write" => Some(Method::Write),
            "/google.bytestream.ByteStream/QueryWriteStatus" => Some(Method::QueryWriteStatus),
            _ => None,
        }
    }

    /// The `:path` of the method.
    pub fn path(self) -> &'static str {
        match self {
            Method::Read => "/google.bytestream.ByteStream/Read",
            Method::Write => "/google.bytestream.ByteStream/Write",
            Method::QueryWriteStatus => "/google.bytestream.ByteStream/QueryWriteStatus",
        }
    }
}

/// Why a message body is not the expected ByteStream message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum BytestreamError {
    /// Not protobuf at all.
    #[error("{0}")]
    Wire(#[from] ProtobufError),
    /// A known field has the wrong wire type.
    #[error("field {field} has the wrong wire type")]
    WrongType {
        /// Field number.
        field: u32,
    },
}

fn string(field: u32, value: Value<'_>) -> Result<String, BytestreamError> {
    match value {
        Value::Bytes { bytes, .. } => Ok(String::from_utf8_lossy(bytes).into_owned()),
        _ => Err(BytestreamError::WrongType { field }),
    }
}

fn int(field: u32, value: Value<'_>) -> Result<i64, BytestreamError> {
    match value {
        Value::Varint(v) => Ok(v as i64),
        _ => Err(BytestreamError::WrongType { field }),
    }
}

fn bytes_range(field: u32, value: Value<'_>) -> Result<Range<usize>, BytestreamError> {
    match value {
        Value::Bytes { bytes, at } => Ok(at..at + bytes.len()),
        _ => Err(BytestreamError::WrongType { field }),
    }
}

/// `ReadRequest { resource_name = 1; read_offset = 2; read_limit = 3; }`
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReadRequest {
    /// What to read (see [`super::resource_name`]).
    pub resource_name: String,
    /// First byte wanted (a resumed read starts where the last one stopped).
    pub read_offset: i64,
    /// At most this many bytes; 0 = no limit.
    pub read_limit: i64,
}

impl ReadRequest {
    /// Parses a message body.
    pub fn parse(body: &[u8]) -> Result<ReadRequest, BytestreamError> {
        let mut out = ReadRequest::default();
        for field in fields(body) {
            match field? {
                (1, v) => out.resource_name = string(1, v)?,
                (2, v) => out.read_offset = int(2, v)?,
                (3, v) => out.read_limit = int(3, v)?,
                _ => {}
            }
        }
        Ok(out)
    }

    /// The message body.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        write_bytes_field(1, self.resource_name.as_bytes(), &mut out);
        write_varint_field(2, self.read_offset as u64, &mut out);
        write_varint_field(3, self.read_limit as u64, &mut out);
        out
    }
}

/// `ReadResponse { data = 10; }`
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReadResponse {
    /// Where the data bytes are in the message body (empty range when absent).
    pub data: Range<usize>,
}

impl ReadResponse {
    /// Parses a message body.
    pub fn parse(body: &[u8]) -> Result<ReadResponse, BytestreamError> {
        let mut out = ReadResponse::default();
        for field in fields(body) {
            if let (10, v) = field? {
                out.data = bytes_range(10, v)?;
            }
        }
        Ok(out)
    }

    /// A message body carrying `data`.
    pub fn encode(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(data.len() + 6);
        write_bytes_field(10, data, &mut out);
        out
    }
}

/// `WriteRequest { resource_name = 1; write_offset = 2; finish_write = 3; data = 10; }`
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WriteRequest {
    /// What is written (only required on the first request of a call).
    pub resource_name: String,
    /// Offset of `data` in the resource.
    pub write_offset: i64,
    /// Whether this is the last request of the upload.
    pub finish_write: bool,
    /// Where the data bytes are in the message body.
    pub data: Range<usize>,
}

impl WriteRequest {
    /// Parses a message body.
    pub fn parse(body: &[u8]) -> Result<WriteRequest, BytestreamError> {
        let mut out = WriteRequest::default();
        for field in fields(body) {
            match field? {
                (1, v) => out.resource_name = string(1, v)?,
                (2, v) => out.write_offset = int(2, v)?,
                (3, v) => out.finish_write = int(3, v)? != 0,
                (10, v) => out.data = bytes_range(10, v)?,
                _ => {}
            }
        }
        Ok(out)
    }

    /// A message body with these fields and `data`.
    pub fn encode(&self, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(data.len() + self.resource_name.len() + 16);
        write_bytes_field(1, self.resource_name.as_bytes(), &mut out);
        write_varint_field(2, self.write_offset as u64, &mut out);
        write_varint_field(3, u64::from(self.finish_write), &mut out);
        write_bytes_field(10, data, &mut out);
        out
    }
}

/// `WriteResponse { committed_size = 1; }`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WriteResponse {
    /// Bytes the server committed.
    pub committed_size: i64,
}

impl WriteResponse {
    /// Parses a message body.
    pub fn parse(body: &[u8]) -> Result<WriteResponse, BytestreamError> {
        let mut out = WriteResponse::default();
        for field in fields(body) {
            if let (1, v) = field? {
                out.committed_size = int(1, v)?;
            }
        }
        Ok(out)
    }

    /// The message body.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        write_varint_field(1, self.committed_size as u64, &mut out);
        out
    }
}

/// `QueryWriteStatusRequest { resource_name = 1; }`
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct QueryWriteStatusRequest {
    /// The upload asked about.
    pub resource_name: String,
}

impl QueryWriteStatusRequest {
    /// Parses a message body.
    pub fn parse(body: &[u8]) -> Result<QueryWriteStatusRequest, BytestreamError> {
        let mut out = QueryWriteStatusRequest::default();
        for field in fields(body) {
            if let (1, v) = field? {
                out.resource_name = string(1, v)?;
            }
        }
        Ok(out)
    }

    /// The message body.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        write_bytes_field(1, self.resource_name.as_bytes(), &mut out);
        out
    }
}

/// `QueryWriteStatusResponse { committed_size = 1; complete = 2; }`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueryWriteStatusResponse {
    /// Bytes committed so far: where a resumed Write must start.
    pub committed_size: i64,
    /// Whether the upload finished.
    pub complete: bool,
}

impl QueryWriteStatusResponse {
    /// Parses a message body.
    pub fn parse(body: &[u8]) -> Result<QueryWriteStatusResponse, BytestreamError> {
        let mut out = QueryWriteStatusResponse::default();
        for field in fields(body) {
            match field? {
                (1, v) => out.committed_size = int(1, v)?,
                (2, v) => out.complete = int(2, v)? != 0,
                _ => {}
            }
        }
        Ok(out)
    }

    /// The message body.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        write_varint_field(1, self.committed_size as u64, &mut out);
        write_varint_field(2, u64::from(self.complete), &mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_map_to_paths() {
        for method in [Method::Read, Method::Write, Method::QueryWriteStatus] {
            assert_eq!(Method::from_path(method.path()), Some(method));
        }
        assert_eq!(
            Method::from_path("/google.bytestream.ByteStream/Nope"),
            None
        );
    }

    #[test]
    fn every_message_round_trips() {
        let read = ReadRequest {
            resource_name: "main/blobs/abc/3".into(),
            read_offset: 1 << 20,
            read_limit: 0,
        };
        assert_eq!(ReadRequest::parse(&read.encode()), Ok(read));

        let body = ReadResponse::encode(b"payload");
        let parsed = ReadResponse::parse(&body).expect("valid");
        assert_eq!(&body[parsed.data], b"payload");

        let write = WriteRequest {
            resource_name: "uploads/u/blobs/abc/3".into(),
            write_offset: 7,
            finish_write: true,
            data: 0..0,
        };
        let body = write.encode(b"xyz");
        let parsed = WriteRequest::parse(&body).expect("valid");
        assert_eq!(&body[parsed.data.clone()], b"xyz");
        assert_eq!(parsed.write_offset, 7);
        assert!(parsed.finish_write);
        assert_eq!(parsed.resource_name, "uploads/u/blobs/abc/3");

        let response = WriteResponse { committed_size: 3 };
        assert_eq!(WriteResponse::parse(&response.encode()), Ok(response));
        let query = QueryWriteStatusRequest {
            resource_name: "uploads/u/blobs/abc/3".into(),
        };
        assert_eq!(QueryWriteStatusRequest::parse(&query.encode()), Ok(query));
        let status = QueryWriteStatusResponse {
            committed_size: 2,
            complete: false,
        };
        assert_eq!(
            QueryWriteStatusResponse::parse(&status.encode()),
            Ok(status)
        );
    }

    #[test]
    fn unknown_fields_are_skipped_and_wrong_types_refused() {
        // Field 99 (varint) before resource_name.
        let mut body = vec![0x98, 0x06, 0x01];
        body.extend(
            ReadRequest {
                resource_name: "r".into(),
                ..Default::default()
            }
            .encode(),
        );
        assert_eq!(ReadRequest::parse(&body).expect("valid").resource_name, "r");
        // read_offset sent as bytes.
        let wrong = [0x12, 0x01, 0x00];
        assert_eq!(
            ReadRequest::parse(&wrong),
            Err(BytestreamError::WrongType { field: 2 })
        );
    }
}
