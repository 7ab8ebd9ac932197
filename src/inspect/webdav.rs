//! Follows WebDAV MOVE and COPY: the bytes an upload put at a temporary name become the object at `Destination`.
//!
//! git-annex's WebDAV special remote PUTs each object (or chunk) to `…/tmp/git-annex-webdav-tmp-KEY`
//! and then MOVEs it to its final name. The MOVE carries no body: what lands at the final name is
//! whatever the last upload to the source stored. A MOVE or COPY answered 2xx whose source was
//! uploaded incomplete (or never accepted) puts those bytes in place: a finding.

use serde::Serialize;

use super::content_address::{self, AddressCheck};
use super::digest::HashAlgo;
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

/// How many MOVE/COPY hops back [`upload_at`] follows (a chain longer than this is no
/// upload git-annex makes; the bound keeps a hostile capture from costing more).
const MAX_HOPS: usize = 16;

/// The upload whose bytes sit at `resource` just before exchange `before` on `leg`: the last
/// PUT to it, or, when a 2xx MOVE/COPY put something there since, the upload that one carried
/// (followed back through up to [`MAX_HOPS`] moves). `None` when nothing captured put bytes
/// there, or a 2xx MOVE took them away.
fn upload_at<'a>(
    exchanges: &'a [Exchange],
    before: usize,
    leg: Option<crate::direction::Leg>,
    resource: &str,
) -> Option<&'a Exchange> {
    let (mut before, mut resource) = (before, resource.to_string());
    for _ in 0..=MAX_HOPS {
        let (at, ex) = exchanges[..before]
            .iter()
            .enumerate()
            .rev()
            .filter(|(_, e)| e.leg == leg)
            .find(|(_, e)| match e.method.as_str() {
                "PUT" => e.resource() == resource,
                "MOVE" | "COPY" => {
                    e.succeeded()
                        && (destination(e).as_deref() == Some(resource.as_str())
                            || (e.method == "MOVE" && e.resource() == resource))
                }
                _ => false,
            })?;
        if ex.method == "PUT" {
            return Some(ex);
        }
        if destination(ex).as_deref() != Some(resource.as_str()) {
            return None; // moved away from here
        }
        (before, resource) = (at, ex.resource());
    }
    None
}

/// A MOVE/COPY's `Destination` as a resource (authority + path).
fn destination(ex: &Exchange) -> Option<String> {
    ex.request_header("destination")
        .map(|d| target::resource(d, ex.host.as_deref()))
}

/// Pairs every MOVE/COPY with the upload whose bytes it moved (the last PUT to its source, on
/// the same leg, followed back through earlier moves); adds a finding for a 2xx move of an
/// upload that did not arrive whole, and for a 2xx move that puts bytes at a destination whose
/// content address (a git-annex key in the final name) they do not match.
pub fn follow_moves(exchanges: &[Exchange], findings: &mut Vec<String>) -> Vec<Move> {
    let mut out = Vec::new();
    for (i, ex) in exchanges.iter().enumerate() {
        if ex.method != "MOVE" && ex.method != "COPY" {
            continue;
        }
        let (Some(dest), Some(destination)) = (ex.request_header("destination"), destination(ex))
        else {
            continue;
        };
        let source = ex.resource();
        let upload = upload_at(exchanges, i, ex.leg, &source);
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
        if let Some(u) = upload.filter(|_| ex.succeeded() && upload_complete == Some(true)) {
            findings.extend(destination_mismatch(ex, dest, u));
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

/// The bytes follow `Destination`: when its final name carries a content address other than the
/// one the upload was checked against, the upload's size (and digest, when its running MD5 or
/// SHA-256 is the address's algorithm) must match it.
fn destination_mismatch(ex: &Exchange, dest: &str, upload: &Exchange) -> Option<String> {
    let address = content_address::parse_target(dest)?;
    let source = content_address::parse_target(&upload.target);
    if source.is_some_and(|s| s.name() == address.name()) {
        return None; // the upload itself was checked against this very address
    }
    let digest = match address.algo {
        HashAlgo::Md5 => Some(upload.request.md5.as_str()),
        HashAlgo::Sha256 => Some(upload.request.sha256.as_str()),
        _ => None,
    }
    .filter(|d| !d.is_empty());
    let what = match address.check(upload.request.length, digest) {
        AddressCheck::DigestMismatch { expected, actual } => {
            format!("the destination says {expected}, the uploaded bytes hash to {actual}")
        }
        AddressCheck::SizeMismatch { expected, actual } => {
            format!("the destination says {expected} bytes, the upload had {actual}")
        }
        _ => return None,
    };
    Some(format!(
        "CORRUPT: {} {} → {} (exchange {}, status {}) put the bytes of PUT exchange {} at {}, which they do not match: {what}",
        ex.method,
        ex.target,
        dest,
        ex.id,
        ex.response.status.unwrap_or_default(),
        upload.id,
        address.name(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::direction::Leg;
    use crate::inspect::legs::tests::exchange;

    /// sha256 of "hello annex\n" (12 bytes).
    const SHA: &str = "f6bfd632e56d745c5b6ec8db52bf92b11c2666a1fe18d80cf4023bb32541f338";

    fn put(id: usize, path: &str, sent: u64, complete: bool, status: Option<u16>) -> Exchange {
        let mut ex = exchange(id, Leg::Client, 1, "PUT", path, Some("dav:80"));
        ex.request.length = sent;
        ex.request.expected = Some(12);
        ex.request.complete = complete;
        ex.request.sha256 = SHA.into();
        if !complete {
            ex.request.cut_by = Some("connection reset".into());
        }
        ex.response.status = status;
        ex
    }

    fn mv(id: usize, method: &str, from: &str, to: &str, status: u16) -> Exchange {
        let mut ex = exchange(id, Leg::Client, 1, method, from, Some("dav:80"));
        ex.request.length = 0;
        ex.request_headers.push(("destination".into(), to.into()));
        ex.response.status = Some(status);
        ex
    }

    fn tmp() -> String {
        format!("/dav/tmp/git-annex-webdav-tmp-SHA256E-s12--{SHA}.txt")
    }

    fn fin() -> String {
        format!("http://dav/dav/ab/cd/SHA256E-s12--{SHA}.txt")
    }

    #[test]
    fn a_move_of_a_whole_upload_follows_destination_without_finding() {
        let exchanges = [
            put(0, &tmp(), 12, true, Some(201)),
            mv(1, "MOVE", &tmp(), &fin(), 201),
        ];
        let mut findings = Vec::new();
        let moves = follow_moves(&exchanges, &mut findings);
        assert!(findings.is_empty(), "{findings:?}");
        assert_eq!(moves.len(), 1);
        assert_eq!(
            (moves[0].upload, moves[0].upload_complete),
            (Some(0), Some(true))
        );
        assert_eq!(
            moves[0].destination,
            format!("dav/dav/ab/cd/SHA256E-s12--{SHA}.txt")
        );
    }

    /// The "2xx answer to an upload whose body arrived short": the PUT's own 201 is
    /// `incomplete_accepted`'s; moving those bytes to the final name is this one.
    #[test]
    fn a_move_of_a_cut_upload_the_server_accepted_is_a_finding() {
        let exchanges = [
            put(0, &tmp(), 5, false, Some(201)),
            mv(1, "MOVE", &tmp(), &fin(), 201),
        ];
        let mut findings = Vec::new();
        follow_moves(&exchanges, &mut findings);
        assert_eq!(findings.len(), 1, "{findings:?}");
        assert!(
            findings[0]
                .contains("put an incomplete upload in place: PUT exchange 0 sent 5 of 12 bytes"),
            "{findings:?}"
        );
        // The same move refused by the server: nothing was put in place.
        let exchanges = [
            put(0, &tmp(), 5, false, Some(201)),
            mv(1, "MOVE", &tmp(), &fin(), 409),
        ];
        let mut findings = Vec::new();
        follow_moves(&exchanges, &mut findings);
        assert!(findings.is_empty(), "{findings:?}");
    }

    /// COPY then MOVE: the bytes at the last destination are still the first PUT's.
    #[test]
    fn chains_of_moves_and_copies_lead_back_to_the_upload() {
        let mid = "/dav/tmp/copy-of-it";
        let exchanges = [
            put(0, &tmp(), 5, false, Some(204)),
            mv(1, "COPY", &tmp(), mid, 201),
            mv(2, "MOVE", mid, &fin(), 201),
        ];
        let mut findings = Vec::new();
        let moves = follow_moves(&exchanges, &mut findings);
        assert_eq!(moves[1].upload, Some(0), "{moves:?}");
        assert_eq!(findings.len(), 2, "{findings:?}");
        // A source moved away holds nothing: a second MOVE of it has no upload.
        let exchanges = [
            put(0, &tmp(), 12, true, Some(201)),
            mv(1, "MOVE", &tmp(), &fin(), 201),
            mv(2, "MOVE", &tmp(), "/dav/elsewhere", 201),
        ];
        let moves = follow_moves(&exchanges, &mut Vec::new());
        assert_eq!(moves[1].upload, None, "{moves:?}");
    }

    /// The bytes follow `Destination`: moved under another key, they are checked against it.
    #[test]
    fn a_move_to_a_name_whose_key_the_bytes_do_not_match_is_a_finding() {
        let other = "0".repeat(64);
        let wrong_digest = format!("/dav/ab/cd/SHA256E-s12--{other}.txt");
        let wrong_size = format!("/dav/ab/cd/SHA256E-s13--{SHA}.txt");
        for (dest, what) in [
            (
                wrong_digest,
                format!("the destination says {other}, the uploaded bytes hash to {SHA}"),
            ),
            (
                wrong_size,
                "the destination says 13 bytes, the upload had 12".to_string(),
            ),
        ] {
            let exchanges = [
                put(0, &tmp(), 12, true, Some(201)),
                mv(1, "MOVE", &tmp(), &dest, 201),
            ];
            let mut findings = Vec::new();
            follow_moves(&exchanges, &mut findings);
            assert_eq!(findings.len(), 1, "{findings:?}");
            assert!(findings[0].contains(&what), "{findings:?}");
        }
    }
}

/// The whole report: a cut PUT answered 2xx and its MOVE are two findings.
#[cfg(test)]
mod report_tests {
    use crate::direction::Leg;
    use crate::inspect::analysis::tests::report_of;
    use crate::inspect::legs::tests::exchange;

    /// Black-box trial: a short PUT the WebDAV server accepted, then a complete retry and the
    /// MOVE: the finding did not say the short upload was replaced. It is still a finding (the
    /// server accepted an incomplete body), and its line says what replaced it.
    #[test]
    fn a_short_upload_replaced_by_a_whole_retry_says_so_in_its_finding() {
        let sha = "f6bfd632e56d745c5b6ec8db52bf92b11c2666a1fe18d80cf4023bb32541f338";
        let tmp = format!("/dav/tmp/git-annex-webdav-tmp-SHA256E-s12--{sha}.txt");
        let mut short = exchange(0, Leg::Upstream, 1, "PUT", &tmp, Some("dav"));
        (short.request.length, short.request.expected) = (5, Some(12));
        short.request.complete = false;
        short.request.cut_by = Some("connection closed".into());
        let mut whole = exchange(1, Leg::Upstream, 1, "PUT", &tmp, Some("dav"));
        (whole.request.length, whole.request.expected) = (12, Some(12));
        whole.request.sha256 = sha.into();
        let mut mv = exchange(2, Leg::Upstream, 1, "MOVE", &tmp, Some("dav"));
        let dest = format!("http://dav/dav/ab/cd/SHA256E-s12--{sha}.txt");
        mv.request_headers
            .push(("destination".into(), dest.clone()));
        let report = report_of("upstream leg", vec![short, whole, mv]);
        assert_eq!(report.findings.len(), 1, "{:?}", report.findings);
        assert!(
            report.findings[0].ends_with(&format!(
                "5 of 12 bytes arrived (cut by connection closed), status 201; later replaced: PUT exchange 1 sent all 12 bytes (they match their content address), status 201, then MOVE exchange 2 put it in place at {dest}"
            )),
            "{}",
            report.findings[0]
        );
    }

    #[test]
    fn a_cut_upload_answered_2xx_and_moved_in_place_are_two_findings() {
        let sha = "f6bfd632e56d745c5b6ec8db52bf92b11c2666a1fe18d80cf4023bb32541f338";
        let tmp = format!("/dav/tmp/git-annex-webdav-tmp-SHA256E-s12--{sha}.txt");
        let mut put = exchange(0, Leg::Upstream, 1, "PUT", &tmp, Some("dav"));
        (put.request.length, put.request.expected) = (5, Some(12));
        put.request.complete = false;
        put.request.cut_by = Some("connection closed".into());
        let mut mv = exchange(1, Leg::Upstream, 1, "MOVE", &tmp, Some("dav"));
        mv.request_headers.push((
            "destination".into(),
            format!("http://dav/dav/ab/cd/SHA256E-s12--{sha}.txt"),
        ));
        let report = report_of("upstream leg", vec![put, mv]);
        let findings = report.findings.join("\n");
        assert_eq!(report.findings.len(), 2, "{findings}");
        assert!(
            findings.contains("CORRUPT: server accepted an incomplete body: PUT")
                && findings
                    .contains("5 of 12 bytes arrived (cut by connection closed), status 201"),
            "{findings}"
        );
        assert!(
            findings
                .contains("put an incomplete upload in place: PUT exchange 0 sent 5 of 12 bytes"),
            "{findings}"
        );
    }
}
