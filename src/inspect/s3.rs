//! Checks S3 traffic with S3's own integrity data: each upload's object bytes against its Content-MD5, x-amz-content-sha256, x-amz-checksum-* and answered ETag, each whole download against its ETag and checksums; then multipart assembly and what each path holds.
//!
//! Uploads are checked once their body arrived whole (a cut attempt is an attempt, compared in
//! `attempt_groups`), on the object bytes: an aws-chunked body is decoded first (see
//! `aws_chunked`), and its `x-amz-decoded-content-length` must match what it decodes to. A
//! request's own checksum that does not match its bytes is corrupt unless S3 refused the request
//! (`400 BadDigest` is S3 doing its job); an answered ETag that does not match is corrupt (S3 says
//! it stored other bytes). A whole GET (200) whose bytes do not match its ETag or its
//! `x-amz-checksum-*` (with checksum mode) is a corrupt download.

use super::aws_chunked::Decoded;
use super::content_address::{ContentAddress, Scheme};
use super::digest::HashAlgo;
use super::exchange::Exchange;
use super::leg;
use super::model::ContentCheck;
use super::objects::ObjectCheck;
use super::s3_checksum::{self, Claim};
use super::s3_content::{self, Content};
use super::s3_download;
use super::s3_multipart;
use super::s3_request::{Operation, S3Request};
use super::stored::{self, PathState};

/// What the S3 pass adds to the report.
pub struct S3Analysis {
    /// Every S3 request, named.
    pub requests: Vec<S3Request>,
    /// Uploads and downloads checked against S3's integrity data.
    pub checks: Vec<ContentCheck>,
    /// Multipart objects assembled from their parts.
    pub objects: Vec<ObjectCheck>,
    /// What each path holds at the end (S3 objects and plain HTTP uploads alike), for `--expect`.
    pub paths: Vec<PathState>,
    /// Integrity values that could not be read (not corruption, worth a line).
    pub warnings: Vec<String>,
}

/// Runs the S3 pass over every exchange (bodies still retained).
pub fn analyse(exchanges: &mut [Exchange], findings: &mut Vec<String>) -> S3Analysis {
    let requests: Vec<Option<S3Request>> = exchanges.iter().map(S3Request::of).collect();
    let mut uploads: Vec<Option<Content>> = vec![None; exchanges.len()];
    let mut checks = Vec::new();
    let mut warnings = Vec::new();
    for id in 0..exchanges.len() {
        let Some(r) = &requests[id] else { continue };
        match r.operation {
            Operation::PutObject | Operation::UploadPart => {
                let (content, decoded) = s3_content::upload_content(exchanges, id);
                upload_checks(
                    exchanges,
                    r,
                    &content,
                    decoded.as_ref(),
                    &mut checks,
                    &mut warnings,
                    findings,
                );
                uploads[id] = Some(content);
            }
            Operation::GetObject => download_checks(exchanges, r, &mut checks, findings),
            _ => {}
        }
    }
    let assembled = s3_multipart::assemble(exchanges, &requests, &uploads, findings);
    let (paths, reads) = stored::follow(exchanges, &requests, &uploads, &assembled, findings);
    let mut objects: Vec<ObjectCheck> = assembled
        .iter()
        .filter(|a| !answered_later(exchanges, &requests, a.complete))
        .map(|a| a.check.clone())
        .collect();
    objects.extend(s3_download::downloads(
        exchanges,
        &requests,
        &reads,
        super::objects::is_s3_download_piece,
        findings,
    ));
    S3Analysis {
        requests: requests.into_iter().flatten().collect(),
        checks,
        objects,
        paths,
        warnings,
    }
}

/// True when CompleteMultipartUpload `id` got no answer and a later one of the same upload (path
/// and upload id) on the same leg was answered: the client retried it, and that answer says what
/// S3 assembled, so the unanswered one's "whether S3 assembled the object is unknown" would
/// contradict it.
///
/// A Complete answered 2xx and completed again with a 2xx later (the client did not get the
/// first answer; the upstream leg saw both succeed) is the same object: listed once, as the later.
fn answered_later(exchanges: &[Exchange], requests: &[Option<S3Request>], id: usize) -> bool {
    let Some(first) = requests[id].as_ref() else {
        return false;
    };
    let unanswered = first.status.is_none();
    requests.iter().enumerate().skip(id + 1).any(|(j, r)| {
        r.as_ref().is_some_and(|r| {
            r.operation == Operation::CompleteMultipartUpload
                && if unanswered {
                    r.status.is_some()
                } else {
                    first.succeeded() && r.succeeded()
                }
                && r.path == first.path
                && r.upload_id == first.upload_id
                && exchanges[j].leg == exchanges[id].leg
        })
    })
}

fn address(claim: &Claim, path: &str) -> ContentAddress {
    ContentAddress {
        algo: claim.algo,
        digest: claim.hex.clone(),
        size: None,
        scheme: Scheme::S3,
        key: Some(path.to_string()),
        backend: Some(claim.source.clone()),
        chunk: None,
    }
}

/// The digest of `content` with each claim's algorithm (md5/sha256 known, others read again).
fn actual_digests(
    exchanges: &mut [Exchange],
    content: &Content,
    claims: &[Claim],
) -> Vec<Option<String>> {
    let mut others: Vec<HashAlgo> = claims
        .iter()
        .map(|c| c.algo)
        .filter(|a| !matches!(a, HashAlgo::Md5 | HashAlgo::Sha256))
        .collect();
    others.sort_unstable();
    others.dedup();
    let computed = if others.is_empty() || !content.readable {
        None
    } else {
        s3_content::hash(exchanges, &content.spans, &others)
    };
    claims
        .iter()
        .map(|c| match c.algo {
            HashAlgo::Md5 => content.md5.clone(),
            HashAlgo::Sha256 => content.sha256.clone(),
            algo => {
                let i = others.iter().position(|&a| a == algo)?;
                computed.as_ref().map(|v| v[i].clone())
            }
        })
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn upload_checks(
    exchanges: &mut [Exchange],
    r: &S3Request,
    content: &Content,
    decoded: Option<&Decoded>,
    checks: &mut Vec<ContentCheck>,
    warnings: &mut Vec<String>,
    findings: &mut Vec<String>,
) {
    let id = r.exchange;
    let ex = &exchanges[id];
    if !ex.request.complete {
        return;
    }
    let name = format!(
        "s3 {} {} ({} leg, exchange {id}, {})",
        r.operation.name(),
        r.path,
        leg::name(ex.leg),
        ex.response_text()
    );
    let rejected = r.status.is_some() && !r.succeeded();
    let trailers = decoded.map_or(&[][..], |d| d.trailers.as_slice());
    let (mut claims, problems) = s3_checksum::request_claims(&ex.request_headers, trailers);
    if decoded.is_some() {
        // The payload hash of an aws-chunked body is the word STREAMING-…, never a digest.
        claims.retain(|c| c.source != "x-amz-content-sha256");
    }
    for p in problems {
        warnings.push(format!("{name}: {p}"));
    }
    if let Some(d) = decoded {
        let declared = ex
            .request_header("x-amz-decoded-content-length")
            .and_then(|v| v.trim().parse::<u64>().ok());
        let mut wrong = Vec::new();
        if let Some(p) = &d.problem {
            wrong.push(format!("aws-chunked body: {p}"));
        }
        if let Some(n) = declared.filter(|&n| n != d.length) {
            wrong.push(format!(
                "aws-chunked body decodes to {} bytes, x-amz-decoded-content-length says {n}",
                d.length
            ));
        }
        if !wrong.is_empty() {
            if rejected {
                warnings.push(format!("{name}: {}", wrong.join("; ")));
            } else {
                findings.push(format!("CORRUPT: {name}: {}", wrong.join("; ")));
            }
        }
    }
    if r.succeeded() && !s3_checksum::etag_is_not_md5(&ex.request_headers, &ex.response_headers) {
        if let Some(md5) = r.etag.as_deref().and_then(s3_checksum::etag_md5) {
            claims.push(Claim {
                algo: HashAlgo::Md5,
                hex: md5,
                source: "ETag".into(),
            });
        }
    }
    let actual = actual_digests(exchanges, content, &claims);
    for (claim, actual) in claims.iter().zip(actual) {
        let address = address(claim, &r.path);
        let check = address.check(content.length, actual.as_deref());
        let corrupt = check.is_mismatch() && !rejected;
        if corrupt {
            let said = if claim.source == "ETag" {
                format!("S3 answered ETag {}", claim.hex)
            } else {
                format!("{} says {}", claim.source, claim.hex)
            };
            findings.push(format!(
                "CORRUPT: {name}: {said}, the {} bytes sent hash to {} ({})",
                content.length,
                actual.as_deref().unwrap_or("?"),
                claim.algo.name()
            ));
        }
        checks.push(ContentCheck {
            exchange: id,
            address,
            check,
            corrupt,
        });
    }
}

/// A whole GET (200, complete, retained) against its ETag and full-object checksums.
fn download_checks(
    exchanges: &mut [Exchange],
    r: &S3Request,
    checks: &mut Vec<ContentCheck>,
    findings: &mut Vec<String>,
) {
    let id = r.exchange;
    let ex = &exchanges[id];
    if r.status != Some(200) || !ex.response.complete || ex.response_body.is_none() {
        return;
    }
    if r.part_number.is_some() {
        return; // one part of a multipart object: its ETag is the object's
    }
    let mut claims: Vec<Claim> = Vec::new();
    if !s3_checksum::etag_is_not_md5(&ex.request_headers, &ex.response_headers) {
        if let Some(md5) = r.etag.as_deref().and_then(s3_checksum::etag_md5) {
            claims.push(Claim {
                algo: HashAlgo::Md5,
                hex: md5,
                source: "ETag".into(),
            });
        }
    }
    let checksums: Vec<(String, String)> = ex
        .response_headers
        .iter()
        .filter(|(n, _)| s3_checksum::checksum_algo(n).is_some())
        .cloned()
        .collect();
    claims.extend(s3_checksum::request_claims(&checksums, &[]).0);
    if claims.is_empty() {
        return;
    }
    let algos: Vec<HashAlgo> = claims.iter().map(|c| c.algo).collect();
    let length = ex.response.body_length;
    let leg_name = leg::name(ex.leg);
    let digests = s3_content::hash_download(exchanges, id, &algos);
    for (i, claim) in claims.iter().enumerate() {
        let address = address(claim, &r.path);
        let actual = digests.as_ref().map(|d| d[i].clone());
        let check = address.check(length, actual.as_deref());
        let corrupt = check.is_mismatch();
        if corrupt {
            findings.push(format!(
                "CORRUPT: s3 GetObject {} ({leg_name} leg, exchange {id}, status 200): {} says {}, the {length} bytes received hash to {} ({})",
                r.path,
                claim.source,
                claim.hex,
                actual.as_deref().unwrap_or("?"),
                claim.algo.name()
            ));
        }
        checks.push(ContentCheck {
            exchange: id,
            address,
            check,
            corrupt,
        });
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::direction::Leg;
    use crate::inspect::aws_chunked::tests::encode;
    use crate::inspect::body_store::{MemoryUse, RetainedBody};
    use crate::inspect::legs::tests::exchange;
    use base64::Engine;
    use md5::{Digest, Md5};
    use sha2::Sha256;

    pub(crate) fn b64(bytes: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    pub(crate) fn crc32(bytes: &[u8]) -> String {
        let mut h = crate::inspect::digest::Hasher::new(HashAlgo::Crc32).expect("crc32");
        h.update(bytes);
        b64(&hex::decode(h.finish_hex()).expect("hex"))
    }

    /// An S3 request on the upstream leg whose body (`body`) arrived whole, answered `status`
    /// (`None`: no answer) with `etag`.
    pub(crate) fn s3_exchange(
        id: usize,
        method: &str,
        target: &str,
        body: &[u8],
        headers: &[(&str, &str)],
        status: Option<u16>,
        etag: Option<&str>,
    ) -> Exchange {
        let mut ex = exchange(id, Leg::Upstream, id as u64, method, target, Some("h:9000"));
        ex.request.length = body.len() as u64;
        ex.request.expected = Some(body.len() as u64);
        ex.request.md5 = hex::encode(Md5::digest(body));
        ex.request.sha256 = hex::encode(Sha256::digest(body));
        let mut retained = RetainedBody::new(MemoryUse::default());
        retained.append(body);
        ex.body = Some(retained);
        ex.request_headers = headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        if !headers.iter().any(|(n, _)| *n == "x-amz-content-sha256") {
            ex.request_headers
                .push(("x-amz-content-sha256".into(), "UNSIGNED-PAYLOAD".into()));
        }
        ex.response.status = status;
        if status.is_none() {
            ex.response.outcome = crate::inspect::Outcome::ConnectionReset;
        }
        if let Some(e) = etag {
            ex.response_headers
                .push(("etag".into(), format!("\"{e}\"")));
        }
        ex
    }

    fn md5_hex(bytes: &[u8]) -> String {
        hex::encode(Md5::digest(bytes))
    }

    #[test]
    fn a_checksum_that_does_not_match_is_corrupt_unless_s3_refused_it() {
        let body = b"hello s3".to_vec();
        let crc_of_other = crc32(b"hello S3");
        let md5 = b64(&Md5::digest(&body));
        let headers = [
            ("x-amz-checksum-crc32", crc_of_other.as_str()),
            ("content-md5", md5.as_str()),
        ];
        let mut exchanges = vec![
            s3_exchange(
                0,
                "PUT",
                "/bkt/a",
                &body,
                &headers,
                Some(200),
                Some(&md5_hex(&body)),
            ),
            s3_exchange(1, "PUT", "/bkt/b", &body, &headers, Some(400), None),
        ];
        let mut findings = Vec::new();
        let s3 = analyse(&mut exchanges, &mut findings);
        assert_eq!(findings.len(), 1, "{findings:?}");
        assert!(
            findings[0].starts_with("CORRUPT: s3 PutObject /bkt/a (upstream leg, exchange 0, status 200): x-amz-checksum-crc32 says"),
            "{findings:?}"
        );
        let refused: Vec<&ContentCheck> = s3.checks.iter().filter(|c| c.exchange == 1).collect();
        assert_eq!(refused.len(), 2, "{refused:#?}");
        assert!(refused[0].check.is_mismatch() && !refused[0].corrupt);
        assert_eq!(refused[1].address.backend.as_deref(), Some("Content-MD5"));
        assert_eq!(refused[1].check, crate::inspect::AddressCheck::Matches);
        let etag = s3
            .checks
            .iter()
            .find(|c| c.address.backend.as_deref() == Some("ETag"))
            .expect("the answered ETag is checked");
        assert_eq!(etag.check, crate::inspect::AddressCheck::Matches);
    }

    #[test]
    fn an_answered_etag_other_than_the_bytes_is_corrupt() {
        let body = vec![7u8; 1000];
        let mut exchanges = vec![s3_exchange(
            0,
            "PUT",
            "/bkt/a",
            &body,
            &[],
            Some(200),
            Some(&md5_hex(b"other")),
        )];
        let mut findings = Vec::new();
        analyse(&mut exchanges, &mut findings);
        assert_eq!(findings.len(), 1, "{findings:?}");
        assert!(findings[0].contains("S3 answered ETag"), "{findings:?}");
    }

    #[test]
    fn aws_chunked_bodies_are_decoded_and_their_trailers_checked() {
        let data: Vec<u8> = (0..150_000u32).map(|i| (i % 253) as u8).collect();
        let crc = crc32(&data);
        let raw = encode(&data, 65_536, true, &[("x-amz-checksum-crc32", &crc)]);
        let len = data.len().to_string();
        let headers = [
            (
                "x-amz-content-sha256",
                "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER",
            ),
            ("content-encoding", "aws-chunked"),
            ("x-amz-decoded-content-length", len.as_str()),
            ("x-amz-trailer", "x-amz-checksum-crc32"),
        ];
        let mut exchanges = vec![s3_exchange(
            0,
            "PUT",
            "/bkt/streamed",
            &raw,
            &headers,
            Some(200),
            Some(&md5_hex(&data)),
        )];
        let mut findings = Vec::new();
        let s3 = analyse(&mut exchanges, &mut findings);
        assert!(findings.is_empty(), "{findings:?}");
        let sources: Vec<(&str, bool)> = s3
            .checks
            .iter()
            .map(|c| {
                (
                    c.address.backend.as_deref().unwrap_or(""),
                    c.check == crate::inspect::AddressCheck::Matches,
                )
            })
            .collect();
        assert_eq!(
            sources,
            vec![("x-amz-checksum-crc32 trailer", true), ("ETag", true)]
        );
        let state = &s3.paths[0];
        let stored = state
            .confirmed
            .as_ref()
            .and_then(|h| h.content.as_ref())
            .expect("stored");
        assert_eq!(stored.length, 150_000);
        assert_eq!(stored.md5.as_deref(), Some(md5_hex(&data).as_str()));

        // The same body announcing another decoded length: S3 stored something it should not have.
        let headers = [
            ("x-amz-content-sha256", "STREAMING-UNSIGNED-PAYLOAD-TRAILER"),
            ("x-amz-decoded-content-length", "200000"),
        ];
        let mut exchanges = vec![s3_exchange(
            0,
            "PUT",
            "/bkt/s",
            &raw,
            &headers,
            Some(200),
            None,
        )];
        let mut findings = Vec::new();
        analyse(&mut exchanges, &mut findings);
        assert!(
            findings.iter().any(|f| {
                f.contains(
                "aws-chunked body decodes to 150000 bytes, x-amz-decoded-content-length says 200000"
            )
            }),
            "{findings:?}"
        );
    }

    /// Part 1 sent twice (the first answered 500 with other bytes), part 2 once; the Complete
    /// lists both: the object is the acknowledged parts, in listing order.
    pub(crate) fn multipart_run(answered: &str) -> (Vec<Exchange>, Vec<u8>, String) {
        let p1: Vec<u8> = vec![1u8; 5_000];
        let p2: Vec<u8> = vec![2u8; 3_000];
        let q = |n: u32| format!("/bkt/obj?uploadId=U1&partNumber={n}");
        let listing = format!(
            "<CompleteMultipartUpload><Part><ETag>\"{}\"</ETag><PartNumber>1</PartNumber></Part><Part><ETag>\"{}\"</ETag><PartNumber>2</PartNumber></Part></CompleteMultipartUpload>",
            md5_hex(&p1),
            md5_hex(&p2)
        );
        let mut complete = s3_exchange(
            4,
            "POST",
            "/bkt/obj?uploadId=U1",
            listing.as_bytes(),
            &[],
            Some(200),
            None,
        );
        complete.response_text = format!(
            "<CompleteMultipartUploadResult><Bucket>bkt</Bucket><Key>obj</Key><ETag>&quot;{answered}&quot;</ETag></CompleteMultipartUploadResult>"
        )
        .into_bytes();
        let exchanges = vec![
            s3_exchange(0, "POST", "/bkt/obj?uploads", b"", &[], Some(200), None),
            s3_exchange(1, "PUT", &q(1), &[9u8; 5_000], &[], Some(500), None),
            s3_exchange(2, "PUT", &q(2), &p2, &[], Some(200), Some(&md5_hex(&p2))),
            s3_exchange(3, "PUT", &q(1), &p1, &[], Some(200), Some(&md5_hex(&p1))),
            complete,
        ];
        let parts = [md5_hex(&p1), md5_hex(&p2)];
        let etag = crate::inspect::s3_checksum::multipart_etag(&parts).expect("etag");
        let mut whole = p1;
        whole.extend(p2);
        (exchanges, whole, etag)
    }

    #[test]
    fn multipart_objects_are_the_acknowledged_parts_in_listing_order() {
        let (mut exchanges, whole, etag) = multipart_run("placeholder");
        exchanges[4].response_text = String::from_utf8_lossy(&exchanges[4].response_text)
            .replace("placeholder", &etag)
            .into_bytes();
        let mut findings = Vec::new();
        let s3 = analyse(&mut exchanges, &mut findings);
        assert!(findings.is_empty(), "{findings:?}");
        assert_eq!(s3.objects.len(), 1);
        let o = &s3.objects[0];
        assert_eq!(
            o.check,
            Some(crate::inspect::AddressCheck::Matches),
            "{o:?}"
        );
        let pieces: Vec<(usize, u64, u64)> = o
            .pieces
            .iter()
            .map(|p| (p.exchange, p.offset, p.length))
            .collect();
        assert_eq!(pieces, vec![(3, 0, 5_000), (2, 5_000, 3_000)]);
        let stored = s3
            .paths
            .iter()
            .find(|p| p.path == "/bkt/obj")
            .expect("the object");
        let content = stored
            .confirmed
            .as_ref()
            .and_then(|h| h.content.as_ref())
            .expect("bytes");
        assert_eq!(content.length, 8_000);
        assert_eq!(content.md5.as_deref(), Some(md5_hex(&whole).as_str()));
    }

    /// The first CompleteMultipartUpload's answer dropped, the client's retry of it answered
    /// 200: the object is checked by the answered one, not also called "not checked: got no
    /// answer" (which the retry's answer contradicts).
    #[test]
    fn a_complete_retried_and_answered_is_one_checked_object() {
        use crate::inspect::attempts::BodySource;
        let (mut exchanges, _, etag) = multipart_run("placeholder");
        exchanges[4].response_text = String::from_utf8_lossy(&exchanges[4].response_text)
            .replace("placeholder", &etag)
            .into_bytes();
        let mut dropped = s3_exchange(4, "POST", "/bkt/obj?uploadId=U1", b"", &[], None, None);
        dropped.body = exchanges[4].body.take();
        (dropped.request.length, dropped.request.expected) =
            (exchanges[4].request.length, exchanges[4].request.expected);
        let mut answered = std::mem::replace(&mut exchanges[4], dropped);
        answered.id = 5;
        answered.time_ns = 5;
        let mut again = RetainedBody::new(MemoryUse::default());
        let listing = {
            let body = exchanges[4].body.as_mut().expect("listing");
            let mut buf = vec![0; BodySource::len(body) as usize];
            body.read_at(0, &mut buf).expect("read");
            buf
        };
        again.append(&listing);
        answered.body = Some(again);
        exchanges.push(answered);
        let mut findings = Vec::new();
        let s3 = analyse(&mut exchanges, &mut findings);
        assert!(findings.is_empty(), "{findings:?}");
        assert_eq!(s3.objects.len(), 1, "{:?}", s3.objects);
        assert_eq!(
            s3.objects[0].check,
            Some(crate::inspect::AddressCheck::Matches)
        );
    }

    #[test]
    fn a_multipart_etag_other_than_the_parts_make_is_corrupt() {
        let (mut exchanges, _, etag) = multipart_run("0123456789abcdef0123456789abcdef-2");
        let mut findings = Vec::new();
        analyse(&mut exchanges, &mut findings);
        assert_eq!(findings.len(), 1, "{findings:?}");
        assert!(
            findings[0].starts_with("CORRUPT: s3 multipart upload of /bkt/obj (upstream leg, CompleteMultipartUpload exchange 4, status 200): S3 answered ETag 0123456789abcdef0123456789abcdef-2, the acknowledged parts (exchanges 3, 2) make")
                && findings[0].contains(&etag),
            "{findings:?}"
        );
    }

    #[test]
    fn an_unanswered_write_that_a_head_shows_is_what_the_path_holds() {
        let a = vec![1u8; 100];
        let b = vec![2u8; 200];
        let mut head = s3_exchange(2, "HEAD", "/bkt/k", b"", &[], Some(200), Some(&md5_hex(&b)));
        head.response_headers
            .push(("content-length".into(), "200".into()));
        let mut exchanges = vec![
            s3_exchange(0, "PUT", "/bkt/k", &a, &[], Some(200), Some(&md5_hex(&a))),
            s3_exchange(1, "PUT", "/bkt/k", &b, &[], None, None),
            head,
        ];
        let mut findings = Vec::new();
        let s3 = analyse(&mut exchanges, &mut findings);
        assert!(findings.is_empty(), "{findings:?}");
        let state = &s3.paths[0];
        assert_eq!(state.confirmed.as_ref().map(|h| h.exchange), Some(1));
        assert!(state.unconfirmed.is_empty());
        // A HEAD reporting neither candidate is a finding.
        exchanges[2].response_headers = vec![
            ("content-length".into(), "50".into()),
            ("etag".into(), format!("\"{}\"", md5_hex(b"x"))),
        ];
        let mut findings = Vec::new();
        analyse(&mut exchanges, &mut findings);
        assert_eq!(findings.len(), 1, "{findings:?}");
        assert!(
            findings[0].starts_with("CORRUPT: s3 returned size 50 for /bkt/k, uploaded 100 (HEAD exchange 2, upstream leg; PutObject exchange 0, and 1 unanswered later writes)"),
            "{findings:?}"
        );
    }

    #[test]
    fn copies_carry_their_source_and_deletes_empty_a_path() {
        let a = vec![3u8; 700];
        let copy_etag = md5_hex(&a);
        let mut copy = s3_exchange(
            1,
            "PUT",
            "/bkt/dst",
            b"",
            &[("x-amz-copy-source", "/bkt/src%20x")],
            Some(200),
            None,
        );
        copy.response_text =
            format!("<CopyObjectResult><ETag>&quot;{copy_etag}&quot;</ETag></CopyObjectResult>")
                .into_bytes();
        let mut head = s3_exchange(2, "HEAD", "/bkt/dst", b"", &[], Some(200), Some(&copy_etag));
        head.response_headers
            .push(("content-length".into(), "700".into()));
        let mut exchanges = vec![
            s3_exchange(
                0,
                "PUT",
                "/bkt/src%20x",
                &a,
                &[],
                Some(200),
                Some(&md5_hex(&a)),
            ),
            copy,
            head,
            s3_exchange(3, "DELETE", "/bkt/src%20x", b"", &[], Some(204), None),
        ];
        let mut findings = Vec::new();
        let s3 = analyse(&mut exchanges, &mut findings);
        assert!(findings.is_empty(), "{findings:?}");
        assert_eq!(s3.requests[1].operation, Operation::CopyObject);
        let of = |path: &str| {
            s3.paths
                .iter()
                .find(|p| p.path == path)
                .and_then(|p| p.confirmed.clone())
                .expect(path)
        };
        let dst = of("/bkt/dst");
        assert_eq!(dst.how, "CopyObject");
        assert_eq!(dst.content.map(|c| c.length), Some(700));
        assert!(of("/bkt/src x").deleted);
    }

    /// A GET of `/bkt/k` answered 206 with `bytes` from `at` of a `total`-byte object whose ETag
    /// is `etag`; `complete = false`: the connection was cut after them.
    fn ranged_get(
        id: usize,
        at: u64,
        total: u64,
        bytes: &[u8],
        etag: &str,
        complete: bool,
    ) -> Exchange {
        let mut ex = s3_exchange(id, "GET", "/bkt/k", b"", &[], Some(206), Some(etag));
        let end = at + bytes.len() as u64 - 1;
        ex.response_headers
            .push(("content-range".into(), format!("bytes {at}-{end}/{total}")));
        ex.response.body_length = bytes.len() as u64;
        ex.response.complete = complete;
        let mut body = RetainedBody::new(MemoryUse::default());
        body.append(bytes);
        ex.response_body = Some(body);
        ex
    }

    #[test]
    fn a_download_stitched_across_attempts_is_one_finding_per_leg() {
        // Uploaded A; the server now serves B (one byte other at 2,000) with B's ETag. The
        // client fetched it in two ranges, the first cut at 5,000 bytes and fetched again.
        let a: Vec<u8> = (0..20_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut b = a.clone();
        b[2_000] ^= 0xff;
        let etag = md5_hex(&b);
        // The upload of `put` and the reads, on `leg`.
        let run = |put: &[u8], leg: Leg| {
            let mut run = vec![
                s3_exchange(0, "PUT", "/bkt/k", put, &[], Some(200), Some(&md5_hex(put))),
                ranged_get(0, 0, 20_000, &b[..5_000], &etag, false),
                ranged_get(0, 0, 20_000, &b[..10_000], &etag, true),
                ranged_get(0, 10_000, 20_000, &b[10_000..], &etag, true),
            ];
            for ex in &mut run {
                ex.leg = Some(leg);
            }
            run
        };
        let numbered = |mut exchanges: Vec<Exchange>| {
            for (i, ex) in exchanges.iter_mut().enumerate() {
                ex.id = i;
            }
            exchanges
        };
        let mut exchanges = numbered(
            run(&a, Leg::Upstream)
                .into_iter()
                .chain(run(&a, Leg::Client))
                .collect(),
        );
        let mut findings = Vec::new();
        analyse(&mut exchanges, &mut findings);
        assert_eq!(findings.len(), 2, "{findings:#?}");
        let reads = [
            "GET exchanges 1, 2, 3, upstream leg; PutObject exchange 0)",
            "GET exchanges 5, 6, 7, client leg; PutObject exchange 4)",
        ];
        for (finding, reads) in findings.iter().zip(reads) {
            assert!(
                finding.starts_with("CORRUPT: s3 returned other bytes for /bkt/k than were uploaded: they differ at offset 2000 (ETag ")
                    && finding.ends_with(reads),
                "{findings:#?}"
            );
        }
        // B uploaded on the client leg: its reads agree.
        let mut exchanges = numbered(
            run(&a, Leg::Upstream)
                .into_iter()
                .chain(run(&b, Leg::Client))
                .collect(),
        );
        let mut findings = Vec::new();
        analyse(&mut exchanges, &mut findings);
        assert_eq!(
            findings.len(),
            1,
            "the upstream leg's reads only: {findings:#?}"
        );
    }

    /// The multipart object of [`multipart_run`] (its Complete answered with the right ETag),
    /// then `gets` (object offset, bytes, whole) on the same leg, numbered after it.
    fn multipart_downloads(gets: &[(u64, Vec<u8>, bool)], upload: bool) -> Vec<Exchange> {
        let (mut exchanges, whole, etag) = multipart_run("placeholder");
        exchanges[4].response_text = String::from_utf8_lossy(&exchanges[4].response_text)
            .replace("placeholder", &etag)
            .into_bytes();
        if !upload {
            exchanges.clear();
        }
        for (at, bytes, complete) in gets {
            let mut get = ranged_get(0, *at, whole.len() as u64, bytes, &etag, *complete);
            get.target = "/bkt/obj".into();
            exchanges.push(get);
        }
        for (i, ex) in exchanges.iter_mut().enumerate() {
            ex.id = i;
            ex.time_ns = i as u64;
        }
        exchanges
    }

    /// The black-box repro: boto3's `download_file` of a multipart object in ranges (one cut and
    /// fetched again) was compared with the upload, but only a difference was ever reported:
    /// the download was in no `objects` entry, no count, no "matches". Now it is one download
    /// object that matches (the ranges stitched, compared with the upload), one that differs
    /// at the byte that does, or, with its upload not in the capture, one "not checked: …".
    #[test]
    fn a_ranged_download_of_a_multipart_object_is_one_download_object() {
        let (_, whole, etag) = multipart_run("placeholder");
        let gets = |object: &[u8]| {
            vec![
                (0, object[..2_000].to_vec(), false),
                (0, object[..5_000].to_vec(), true),
                (5_000, object[5_000..].to_vec(), true),
            ]
        };
        let mut exchanges = multipart_downloads(&gets(&whole), true);
        let mut findings = Vec::new();
        let s3 = analyse(&mut exchanges, &mut findings);
        assert!(findings.is_empty(), "{findings:?}");
        let downloads: Vec<&ObjectCheck> = s3
            .objects
            .iter()
            .filter(|o| o.transfer == crate::inspect::Transfer::Download)
            .collect();
        assert_eq!(downloads.len(), 1, "{:#?}", s3.objects);
        let d = downloads[0];
        assert_eq!(
            d.check,
            Some(crate::inspect::AddressCheck::Matches),
            "{d:#?}"
        );
        assert!(d.complete && !d.corrupt, "{d:#?}");
        assert_eq!(d.length, 8_000);
        assert_eq!(d.address.digest, etag);
        assert_eq!(
            d.address.backend.as_deref(),
            Some("ETag (multipart), compared with the upload (exchange 4)")
        );
        let pieces: Vec<(usize, u64, u64, bool)> = d
            .pieces
            .iter()
            .map(|p| (p.exchange, p.offset, p.length, p.complete))
            .collect();
        assert_eq!(
            pieces,
            vec![
                (5, 0, 2_000, false),
                (6, 0, 5_000, true),
                (7, 5_000, 3_000, true)
            ]
        );

        // One byte other in the second range: CORRUPT at that offset, and the object says so.
        let mut flipped = whole.clone();
        flipped[6_000] ^= 1;
        let mut exchanges = multipart_downloads(&gets(&flipped), true);
        let mut findings = Vec::new();
        let s3 = analyse(&mut exchanges, &mut findings);
        assert_eq!(findings.len(), 1, "{findings:?}");
        assert!(
            findings[0].contains("differ at offset 6000"),
            "{findings:?}"
        );
        let d = s3
            .objects
            .iter()
            .find(|o| o.transfer == crate::inspect::Transfer::Download)
            .expect("the download");
        assert!(d.corrupt, "{d:#?}");
        assert!(
            matches!(&d.check, Some(crate::inspect::AddressCheck::DigestMismatch { actual, .. }) if actual.contains("from offset 6000")),
            "{d:#?}"
        );

        // No upload in the capture: nothing to compare with, and it says so.
        let mut exchanges = multipart_downloads(&gets(&whole), false);
        let mut findings = Vec::new();
        let s3 = analyse(&mut exchanges, &mut findings);
        assert!(findings.is_empty(), "{findings:?}");
        assert_eq!(s3.objects.len(), 1, "{:#?}", s3.objects);
        assert_eq!(
            s3.objects[0].check,
            Some(crate::inspect::AddressCheck::NotChecked {
                reason: "no upload of it is in the capture, and a multipart ETag is no digest of the bytes".into()
            })
        );
    }

    /// The upstream leg saw two CompleteMultipartUploads of one upload both answered 200 (the
    /// client never got the first answer): `objects` listed the upload twice. It is one object.
    #[test]
    fn two_completes_answered_200_are_one_object() {
        let (mut exchanges, _, etag) = multipart_run("placeholder");
        exchanges[4].response_text = String::from_utf8_lossy(&exchanges[4].response_text)
            .replace("placeholder", &etag)
            .into_bytes();
        let mut again = s3_exchange(5, "POST", "/bkt/obj?uploadId=U1", b"", &[], Some(200), None);
        let listing = {
            use crate::inspect::attempts::BodySource;
            let body = exchanges[4].body.as_mut().expect("listing");
            let mut buf = vec![0; BodySource::len(body) as usize];
            body.read_at(0, &mut buf).expect("read");
            buf
        };
        let mut retained = RetainedBody::new(MemoryUse::default());
        retained.append(&listing);
        again.body = Some(retained);
        (again.request.length, again.request.expected) =
            (listing.len() as u64, Some(listing.len() as u64));
        again.response_text = exchanges[4].response_text.clone();
        exchanges.push(again);
        let mut findings = Vec::new();
        let s3 = analyse(&mut exchanges, &mut findings);
        assert!(findings.is_empty(), "{findings:?}");
        assert_eq!(s3.objects.len(), 1, "{:#?}", s3.objects);
        assert_eq!(
            s3.objects[0].check,
            Some(crate::inspect::AddressCheck::Matches)
        );
    }
}
