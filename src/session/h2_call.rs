//! What rules see of an HTTP/2 request: the facts HTTP keys match on (`:method`, `:path`,
//! `:authority`, headers) and the identity `attempt` counts — the method and path of a plain
//! request; for a gRPC call its path and first message; for `google.bytestream` the blob its
//! resource name names, so a resumed Read (new `read_offset`) or a resumed Write (new upload id)
//! is attempt 2 of the same blob.

use sha2::{Digest, Sha256};

use crate::h2::bytestream::{Method, QueryWriteStatusRequest, ReadRequest, WriteRequest};
use crate::h2::protobuf;
use crate::h2::resource_name::ResourceName;
use crate::h2::HeaderList;

/// The most of a first request message kept to identify a gRPC call.
pub const FIRST_MESSAGE_LIMIT: usize = 64 * 1024;

/// A request's pseudo-headers as text.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CallHead {
    /// `:method`.
    pub method: String,
    /// `:path`, query included.
    pub target: String,
    /// `:authority` (or `host`).
    pub authority: Option<String>,
    /// Whether the request is a gRPC call (`content-type: application/grpc…`).
    pub grpc: bool,
}

impl CallHead {
    /// The head of a request header list.
    pub fn of(headers: &HeaderList) -> CallHead {
        CallHead {
            method: headers.method().unwrap_or_default(),
            target: headers.path().unwrap_or_default(),
            authority: headers.authority().or_else(|| headers.get_str("host")),
            grpc: headers.is_grpc(),
        }
    }

    /// The path without its query.
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or_default()
    }

    /// The query, without `?`.
    pub fn query(&self) -> Option<&str> {
        self.target.split_once('?').map(|(_, q)| q)
    }

    /// How notes name the call: `POST /pkg.Svc/Method`.
    pub fn label(&self) -> String {
        format!("{} {}", self.method, self.target)
    }
}

/// The identity `attempt` counts for a call whose first request message is `first` (`None`
/// when there is none, or the call is not gRPC).
pub fn attempt_key(head: &CallHead, first: Option<&[u8]>) -> String {
    let Some(body) = first.filter(|_| head.grpc) else {
        return format!("{} {}", head.method, head.target);
    };
    if let Some(blob) = bytestream_blob(head.path(), body) {
        // Per method: a Write and a Read of the same blob are different calls.
        return format!("{} {blob}", head.path());
    }
    let digest = Sha256::digest(&body[..body.len().min(FIRST_MESSAGE_LIMIT)]);
    format!("grpc {} {}", head.target, hex::encode(&digest[..16]))
}

/// `instance hash size` of the blob a ByteStream request names, when it names one. `first` may
/// be cut at [`FIRST_MESSAGE_LIMIT`] (a Write's first request carries up to a chunk of data
/// after the name): then the name is read from the fields before the cut.
pub fn bytestream_blob(path: &str, first: &[u8]) -> Option<String> {
    let parsed = match Method::from_path(path)? {
        Method::Read => ReadRequest::parse(first).map(|r| r.resource_name),
        Method::Write => WriteRequest::parse(first).map(|r| r.resource_name),
        Method::QueryWriteStatus => QueryWriteStatusRequest::parse(first).map(|r| r.resource_name),
    };
    let name = parsed.ok().or_else(|| leading_resource_name(first))?;
    let resource = ResourceName::parse(&name).ok()?;
    Some(format!(
        "{} {} {}",
        resource.instance_name, resource.hash, resource.size
    ))
}

/// `resource_name` (field 1) from the complete fields at the front of a message cut short:
/// protobuf encoders write fields in number order, so the name comes before the data.
fn leading_resource_name(message: &[u8]) -> Option<String> {
    protobuf::fields(message)
        .map_while(Result::ok)
        .find_map(|(number, value)| match (number, value) {
            (1, protobuf::Value::Bytes { bytes, .. }) => {
                Some(String::from_utf8_lossy(bytes).into_owned())
            }
            _ => None,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grpc_head(path: &str) -> CallHead {
        CallHead {
            method: "POST".into(),
            target: path.into(),
            authority: Some("h".into()),
            grpc: true,
        }
    }

    #[test]
    fn a_resumed_read_is_the_same_blob() {
        let name = |offset| ReadRequest {
            resource_name:
                "main/blobs/9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08/4"
                    .into(),
            read_offset: offset,
            read_limit: 0,
        };
        let head = grpc_head("/google.bytestream.ByteStream/Read");
        let first = attempt_key(&head, Some(&name(0).encode()));
        let resumed = attempt_key(&head, Some(&name(2).encode()));
        assert_eq!(first, resumed);
        assert!(
            first.starts_with("/google.bytestream.ByteStream/Read main 9f86"),
            "{first}"
        );
    }

    #[test]
    fn a_resumed_write_is_the_same_blob_even_when_its_first_message_is_cut() {
        let head = grpc_head("/google.bytestream.ByteStream/Write");
        let digest = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
        let first = |upload: &str| {
            let request = WriteRequest {
                resource_name: format!("main/uploads/{upload}/blobs/{digest}/1048576"),
                write_offset: 0,
                finish_write: false,
                data: 0..0,
            };
            // 64 KiB of data after the name: the session keeps only FIRST_MESSAGE_LIMIT bytes.
            let mut body = request.encode(&[7u8; 64 * 1024]);
            body.truncate(FIRST_MESSAGE_LIMIT);
            body
        };
        let one = attempt_key(&head, Some(&first("0b6e4c1a-one")));
        let two = attempt_key(&head, Some(&first("77aa0e3c-two")));
        assert_eq!(one, two, "a new upload id is attempt 2 of the same blob");
        assert!(one.contains(digest), "{one}");
    }

    #[test]
    fn other_grpc_calls_count_by_path_and_first_message() {
        let head = grpc_head("/pkg.Svc/Get");
        assert_eq!(
            attempt_key(&head, Some(b"a")),
            attempt_key(&head, Some(b"a"))
        );
        assert_ne!(
            attempt_key(&head, Some(b"a")),
            attempt_key(&head, Some(b"b"))
        );
        let plain = CallHead {
            grpc: false,
            ..grpc_head("/x?y")
        };
        assert_eq!(attempt_key(&plain, Some(b"ignored")), "POST /x?y");
        assert_eq!(plain.path(), "/x");
        assert_eq!(plain.query(), Some("y"));
    }
}
