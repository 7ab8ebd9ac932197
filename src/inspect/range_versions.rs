//! Names a download resumed with `Range` whose pieces came from two versions of the resource (their ETags, else Last-Modified, differ).
//!
//! `curl -C -` resumes a cut download with `Range: bytes=N-` and no `If-Range`: when the file
//! changed on the server in between, the server answers 206 with the new version's bytes from N,
//! and the client's file is the old version's first N bytes followed by the new one's rest —
//! matching neither. A content address catches that only where the resource has one; the
//! validators every HTTP server sends show it for any resource. S3 GETs are left to `objects`
//! and `s3_download`, which compare their ETags already.
//!
//! Two different *strong* ETags mean different bytes (RFC 9110 §8.8.3): a finding. Weak ETags
//! or Last-Modified alone may differ over the same bytes, so those are a warning that the
//! stitched file was not checked.

use super::exchange::Exchange;
use super::leg;
use super::objects;
use super::s3_request::S3Request;

/// Adds a finding (strong ETags differ) or a warning (weak ETags, or Last-Modified, differ) for
/// every 206 that resumes an earlier download of the same resource on the same leg from another
/// version. `exchanges` is in time order.
pub fn check(exchanges: &[Exchange], findings: &mut Vec<String>, warnings: &mut Vec<String>) {
    for (i, resumed) in exchanges.iter().enumerate() {
        let Some(start) = resume_start(resumed) else {
            continue;
        };
        let resource = resumed.resource();
        // The piece it continues: the last earlier download on the leg that was cut with its
        // bytes reaching `start`, or a whole 206 piece that ends right there. A whole 200 was
        // the whole file: a later range of it (a seek) continues nothing.
        let Some(before) = exchanges[..i].iter().rev().find(|e| {
            e.leg == resumed.leg
                && is_download(e)
                && e.resource() == resource
                && piece_start(e).is_some_and(|s| {
                    let end = s.saturating_add(e.response.body_length);
                    match e.response.complete {
                        false => s < start && start <= end,
                        true => e.response.status == Some(206) && start == end,
                    }
                })
        }) else {
            continue;
        };
        let what = format!(
            "download of {} ({} leg, exchanges {}, {}) stitched from two versions",
            resumed.target,
            leg::name(resumed.leg),
            before.id,
            resumed.id
        );
        let if_range = match resumed.request_header("if-range") {
            Some(v) => format!("If-Range {v}"),
            None => "no If-Range".to_string(),
        };
        let validators = |name: &str| {
            before
                .response_header(name)
                .zip(resumed.response_header(name))
                .filter(|(a, b)| a.trim() != b.trim())
        };
        if let Some((a, b)) = validators("etag") {
            let weak = a.trim_start().starts_with("W/") || b.trim_start().starts_with("W/");
            let told = format!(
                "exchange {} answered ETag {a}, exchange {} (Range from byte {start}, {if_range}) answered ETag {b}",
                before.id, resumed.id
            );
            if weak {
                warnings.push(format!(
                    "{what}? not checked: {told}; weak ETags may differ over the same bytes"
                ));
            } else {
                findings.push(format!(
                    "CORRUPT: {what}: {told}: the resumed file is the first {start} bytes of one and the rest of the other, matching neither"
                ));
            }
        } else if before.response_header("etag").is_none()
            || resumed.response_header("etag").is_none()
        {
            if let Some((a, b)) = validators("last-modified") {
                warnings.push(format!(
                    "{what}? not checked: pieces from different versions: exchange {} answered Last-Modified {a}, exchange {} (Range from byte {start}, {if_range}) answered Last-Modified {b}",
                    before.id, resumed.id
                ));
            }
        }
    }
}

/// A GET answered with body bytes: 200, or 206 with a `Content-Range`; S3 GETs are `objects`'.
fn is_download(ex: &Exchange) -> bool {
    !ex.is_placeholder()
        && ex.method == "GET"
        && matches!(ex.response.status, Some(200 | 206))
        && S3Request::of(ex).is_none()
}

/// Where the body of a download starts in the resource: 0 for a 200, the `Content-Range`
/// start for a 206.
fn piece_start(ex: &Exchange) -> Option<u64> {
    match ex.response.status {
        Some(200) => Some(0),
        Some(206) => ex
            .response
            .content_range
            .as_deref()
            .and_then(objects::content_range)
            .map(|(start, _)| start),
        _ => None,
    }
}

/// The offset a 206 resumes from, when it is a download that starts past byte 0.
fn resume_start(ex: &Exchange) -> Option<u64> {
    (is_download(ex) && ex.response.status == Some(206))
        .then(|| piece_start(ex))
        .flatten()
        .filter(|&s| s > 0)
}

#[cfg(test)]
mod tests {
    use crate::direction::Leg;
    use crate::inspect::analysis::tests::report_of;
    use crate::inspect::legs::tests::exchange;
    use crate::inspect::model::Verdict;

    /// A GET on `leg` answered `status` with these response headers, `len` body bytes and,
    /// for a 206, `Content-Range: bytes START-…/TOTAL`.
    fn get(
        id: usize,
        status: u16,
        start: u64,
        len: u64,
        headers: &[(&str, &str)],
    ) -> crate::inspect::exchange::Exchange {
        let mut ex = exchange(id, Leg::Client, 1, "GET", "/data/file.bin", Some("h"));
        (ex.request.length, ex.request.expected) = (0, None);
        ex.response.status = Some(status);
        ex.response.body_length = len;
        ex.response.complete = status == 206;
        if status == 206 {
            ex.response.content_range = Some(format!("bytes {start}-{}/1000", start + len - 1));
            ex.request.range = Some(format!("bytes={start}-"));
        }
        ex.response_headers = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        ex
    }

    /// Black-box trial: `curl -C -` resumed a cut download after the file changed on the
    /// server (curl sends no If-Range); the 200 and the 206 carried different ETags, the file
    /// matched neither version, and inspect said OK with no note.
    #[test]
    fn a_resume_from_another_version_is_named_with_both_validators() {
        let cut = get(0, 200, 0, 400, &[("etag", "\"v1\"")]);
        let resumed = get(1, 206, 400, 600, &[("etag", "\"v2\"")]);
        let report = report_of("client leg", vec![cut, resumed]);
        assert_eq!(report.verdict, Verdict::Corrupt, "{}", report.verdict_line);
        assert_eq!(
            report.findings,
            ["CORRUPT: download of /data/file.bin (client leg, exchanges 0, 1) stitched from two versions: exchange 0 answered ETag \"v1\", exchange 1 (Range from byte 400, no If-Range) answered ETag \"v2\": the resumed file is the first 400 bytes of one and the rest of the other, matching neither"]
        );

        // The same ETag: one version, nothing said.
        let cut = get(0, 200, 0, 400, &[("etag", "\"v1\"")]);
        let resumed = get(1, 206, 400, 600, &[("etag", "\"v1\"")]);
        let report = report_of("client leg", vec![cut, resumed]);
        assert_eq!(report.verdict, Verdict::Clean, "{:?}", report.findings);
        assert!(report.warnings.is_empty(), "{:?}", report.warnings);

        // Weak ETags, or Last-Modified alone: a warning, not a finding.
        for (a, b, said) in [
            (("etag", "W/\"v1\""), ("etag", "W/\"v2\""), "answered ETag W/\"v1\""),
            (
                ("last-modified", "Mon, 02 Nov 2026 10:00:00 GMT"),
                ("last-modified", "Mon, 02 Nov 2026 10:05:00 GMT"),
                "not checked: pieces from different versions: exchange 0 answered Last-Modified Mon, 02 Nov 2026 10:00:00 GMT",
            ),
        ] {
            let cut = get(0, 200, 0, 400, &[a]);
            let resumed = get(1, 206, 400, 600, &[b]);
            let report = report_of("client leg", vec![cut, resumed]);
            assert!(report.findings.is_empty(), "{:?}", report.findings);
            assert!(
                report.warnings.iter().any(|w| w.contains(said)),
                "{:?}",
                report.warnings
            );
        }

        // A whole download, then a range of a new version (a seek): no resume, nothing said.
        let mut whole = get(0, 200, 0, 1000, &[("etag", "\"v1\"")]);
        whole.response.complete = true;
        let later = get(1, 206, 500, 100, &[("etag", "\"v2\"")]);
        let report = report_of("client leg", vec![whole, later]);
        assert!(report.findings.is_empty(), "{:?}", report.findings);
    }
}
