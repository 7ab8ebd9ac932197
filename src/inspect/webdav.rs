//! Follows WebDAV MOVE and COPY: the bytes an upload put at a temporary name become the object at `Destination`.
//!
//! git-annex's WebDAV special remote PUTs each object (or chunk) to `…/tmp/git-annex-webdav-tmp-KEY`
//! and then MOVEs it to its final name. The MOVE carries no body: what lands at the final name is
//! whatever the last upload to the source stored. A MOVE or COPY answered 2xx whose source was
//! uploaded incomplete (or never accepted) puts those bytes in place: a finding.

use serde::Serialize;

use super::exchange::Exchange;
use super::target;

/// One MOVE or COPY and the upload whose bytes it moved.
#[derive(Debug, Clone, Serialize)]
pub struct Move {
    /// Exchange id of the MOVE/COPY.
    pub exchange: usize,
    /// `MOVE` or `COPY`.
    pub method: String,
    /// The source resource (authority + path).
    pub source: String,
    /// The `Destination` resource.
    pub destination: String,
    /// Its final status, if any.
    pub status: Option<u16>,
    /// The last upload to the source before it (exchange id), if the capture has one.
    pub upload: Option<usize>,
    /// Whether that upload's body arrived whole and was answered 2xx.
    pub upload_complete: Option<bool>,
}

/// Pairs every MOVE/COPY with the last upload to its source on the same leg; adds a finding
/// for a 2xx move of an upload that did not arrive whole.
pub fn follow_moves(exchanges: &[Exchange], findings: &mut Vec<String>) -> Vec<Move> {
    let mut out = Vec::new();
    for (i, ex) in exchanges.iter().enumerate() {
        if ex.method != "MOVE" && ex.method != "COPY" {
            continue;
        }
        let Some(dest) = ex.request_header("destination") else {
            continue;
        };
        let source = ex.resource();
        let destination = target::resource(dest, ex.host.as_deref());
        let upload = exchanges[..i]
            .iter()
            .rev()
            .find(|u| u.leg == ex.leg && u.method == "PUT" && u.resource() == source);
        let upload_complete = upload.map(|u| u.request.complete && u.succeeded());
        if ex.succeeded() && upload_complete == Some(false) {
            let u = upload.expect("upload_complete is Some only with an upload");
            findings.push(format!(
                "CORRUPT: {} {} → {} (exchange {}, status {}) put an incomplete upload in place: PUT exchange {} sent {} of {} bytes, {}",
                ex.method,
                ex.target,
                dest,
                ex.id,
                ex.response.status.unwrap_or_default(),
                u.id,
                u.request.length,
                u.request.expected.map_or("?".into(), |e| e.to_string()),
                u.response_text(),
            ));
        }
        out.push(Move {
            exchange: ex.id,
            method: ex.method.clone(),
            source,
            destination,
            status: ex.response.status,
            upload: upload.map(|u| u.id),
            upload_complete,
        });
    }
    out
}
