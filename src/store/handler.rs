//! Answers one HTTP request to the store: dispatches on the method to a read, a write or a refusal.
//!
//! The status codes are what a DVC HTTP remote expects: 404 means "absent" (so `dvc push` uploads),
//! 201/204 mean stored. Refusals carry a one-line `text/plain` reason so a human reading a capture
//! or a curl transcript sees why.

use std::error::Error as StdError;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Body;
use hyper::header::{HeaderValue, ALLOW, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};

use super::atomic_write;
use super::confine::{self, ConfineError, Existing};
use super::file_body::FileBody;
use super::paths::{self, PathError, StorePath};

/// The response body type of every store answer: a streamed file or a short message.
pub type StoreBody = UnsyncBoxBody<Bytes, io::Error>;

/// Methods the store implements, as sent in `Allow` with a 405.
const ALLOWED: &str = "GET, HEAD, PUT, POST";

/// Serves requests against one store directory; shared by all connections.
#[derive(Debug, Clone)]
pub struct Handler {
    root: PathBuf,
    body_idle: Duration,
}

impl Handler {
    /// A handler for `root`; an upload that sends nothing for `body_idle` is abandoned.
    pub fn new(root: PathBuf, body_idle: Duration) -> Self {
        Self { root, body_idle }
    }

    /// Answers `req`. Never fails: every problem becomes a status code, and is logged here.
    pub async fn handle<B>(&self, req: Request<B>) -> Response<StoreBody>
    where
        B: Body<Data = Bytes> + Unpin,
        B::Error: Into<Box<dyn StdError + Send + Sync>>,
    {
        let method = req.method().clone();
        let response = match method {
            Method::GET => self.read(req.uri().path(), true).await,
            Method::HEAD => self.read(req.uri().path(), false).await,
            Method::PUT | Method::POST => self.write(req).await,
            _ => {
                let mut response = text(
                    StatusCode::METHOD_NOT_ALLOWED,
                    format!("method {method} not allowed; the store accepts {ALLOWED}"),
                );
                response
                    .headers_mut()
                    .insert(ALLOW, HeaderValue::from_static(ALLOWED));
                response
            }
        };
        tracing::debug!(%method, status = response.status().as_u16(), "store request answered");
        response
    }

    async fn read(&self, raw_path: &str, with_body: bool) -> Response<StoreBody> {
        let path = match paths::parse(raw_path) {
            Ok(path) => path,
            Err(PathError::Directory) => return not_found(raw_path),
            Err(e) => return refuse_path(raw_path, &e),
        };
        match confine::inspect(&self.root, &path).await {
            Ok(Existing::File { .. }) => {}
            Ok(Existing::Absent | Existing::Directory | Existing::BlockedByFile) => {
                return not_found(raw_path)
            }
            Ok(Existing::Special) => return special(&path),
            Err(e) => return confine_failed(&path, e),
        }
        let full = self.root.join(path.relative());
        let opened = match tokio::fs::File::open(&full).await {
            Ok(file) => file.metadata().await.map(|meta| (file, meta.len())),
            Err(e) => Err(e),
        };
        let (file, len) = match opened {
            Ok(opened) => opened,
            // Deleted between the check and the open: still just absent.
            Err(e) if e.kind() == io::ErrorKind::NotFound => return not_found(raw_path),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "store cannot open file");
                return text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("cannot read {}: {e}", path.display()),
                );
            }
        };
        let body = if with_body {
            FileBody::new(file, len).boxed_unsync()
        } else {
            empty()
        };
        let mut response = Response::new(body);
        let headers = response.headers_mut();
        headers.insert(CONTENT_LENGTH, HeaderValue::from(len));
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        response
    }

    async fn write<B>(&self, req: Request<B>) -> Response<StoreBody>
    where
        B: Body<Data = Bytes> + Unpin,
        B::Error: Into<Box<dyn StdError + Send + Sync>>,
    {
        let raw_path = req.uri().path().to_owned();
        let path = match paths::parse(&raw_path) {
            Ok(path) => path,
            Err(e) => return refuse_path(&raw_path, &e),
        };
        match confine::inspect(&self.root, &path).await {
            Ok(Existing::Absent | Existing::File { .. }) => {}
            Ok(Existing::Directory) => {
                return conflict(&path, "is a directory and cannot be replaced by a file")
            }
            Ok(Existing::BlockedByFile) => {
                return conflict(&path, "has a file where a parent directory should be")
            }
            Ok(Existing::Special) => return special(&path),
            Err(e) => return confine_failed(&path, e),
        }
        let expected_len = content_length(&req);
        let full = self.root.join(path.relative());
        match atomic_write::write(&full, req.into_body(), expected_len, self.body_idle).await {
            Ok(stored) => {
                tracing::info!(
                    path = %path.display(),
                    len = stored.len,
                    md5 = %stored.md5,
                    sha256 = %stored.sha256,
                    replaced = stored.replaced,
                    "store stored upload"
                );
                if stored.replaced {
                    status_only(StatusCode::NO_CONTENT)
                } else {
                    status_only(StatusCode::CREATED)
                }
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "store discarded upload");
                let status = if e.is_name_too_long() {
                    StatusCode::URI_TOO_LONG
                } else if e.is_client_fault() {
                    StatusCode::BAD_REQUEST
                } else {
                    StatusCode::INTERNAL_SERVER_ERROR
                };
                text(status, format!("{} not stored: {e}", path.display()))
            }
        }
    }
}

/// Content-Length as announced by the client. hyper already refuses malformed values with a 400,
/// so an unparsable one cannot reach here; it is treated as absent rather than trusted.
fn content_length<B>(req: &Request<B>) -> Option<u64> {
    req.headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

fn not_found(raw_path: &str) -> Response<StoreBody> {
    text(StatusCode::NOT_FOUND, format!("{raw_path} not found"))
}

fn refuse_path(raw_path: &str, e: &PathError) -> Response<StoreBody> {
    tracing::warn!(path = raw_path, reason = %e, "store refused request path");
    text(
        StatusCode::BAD_REQUEST,
        format!("bad path {raw_path:?}: {e}"),
    )
}

fn special(path: &StorePath) -> Response<StoreBody> {
    tracing::warn!(path = %path.display(), "store refused a path that is not a regular file");
    text(
        StatusCode::FORBIDDEN,
        format!("{} is not a regular file", path.display()),
    )
}

fn conflict(path: &StorePath, why: &str) -> Response<StoreBody> {
    tracing::warn!(path = %path.display(), why, "store refused upload");
    text(StatusCode::CONFLICT, format!("{} {why}", path.display()))
}

fn confine_failed(path: &StorePath, e: ConfineError) -> Response<StoreBody> {
    let status = confine_status(&e);
    tracing::warn!(path = %path.display(), error = %e, "store refused request");
    text(status, e.to_string())
}

/// A path longer than the filesystem takes (PATH_MAX; each segment is already at most 255 bytes)
/// is the client's doing: 414, not a 500 from the OS.
fn confine_status(e: &ConfineError) -> StatusCode {
    match e {
        ConfineError::Symlink(_) => StatusCode::FORBIDDEN,
        ConfineError::Io { source, .. } if source.raw_os_error() == Some(libc::ENAMETOOLONG) => {
            StatusCode::URI_TOO_LONG
        }
        ConfineError::Io { .. } => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn text(status: StatusCode, message: String) -> Response<StoreBody> {
    let body = Full::new(Bytes::from(message + "\n"))
        .map_err(|never| match never {})
        .boxed_unsync();
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

fn status_only(status: StatusCode) -> Response<StoreBody> {
    let mut response = Response::new(empty());
    *response.status_mut() = status;
    response
}

fn empty() -> StoreBody {
    http_body_util::Empty::new()
        .map_err(|never| match never {})
        .boxed_unsync()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `PUT /q/q/…/f` (3000 segments) was a 500 "File name too long" from the OS.
    #[test]
    fn a_path_too_long_for_the_filesystem_is_the_clients_fault() {
        let io = |errno| ConfineError::Io {
            path: PathBuf::from("q/q"),
            source: io::Error::from_raw_os_error(errno),
        };
        assert_eq!(
            confine_status(&io(libc::ENAMETOOLONG)),
            StatusCode::URI_TOO_LONG
        );
        assert_eq!(
            confine_status(&io(libc::EIO)),
            StatusCode::INTERNAL_SERVER_ERROR
        );
        assert_eq!(
            confine_status(&ConfineError::Symlink("/l".into())),
            StatusCode::FORBIDDEN
        );
    }
}
