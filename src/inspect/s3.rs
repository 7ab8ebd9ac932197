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
    let paths = stored::follow(exchanges, &requests, &uploads, &assembled, findings);
    S3Analysis {
        requests: requests.into_iter().flatten().collect(),
        checks,
        objects: assembled.into_iter().map(|a| a.check).collect(),
        paths,
        warnings,
    }
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
