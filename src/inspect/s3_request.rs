//! Names the S3 operation an HTTP exchange performs: bucket, key, upload id and part, path-style or virtual-host.
//!
//! An exchange is S3 when its request carries an `x-amz-*` header (every SigV4 request has
//! `x-amz-date` and `x-amz-content-sha256`), a presigned URL (`X-Amz-Signature`, or SigV2's
//! `AWSAccessKeyId` + `Signature`), or its response an `x-amz-*`/`x-amzn-*` header (S3's request
//! ids). A plain HTTP store (DVC, faultline's built-in store) sends none of these.
//!
//! Virtual-host style is recognized by its host: `BUCKET.s3.…` / `BUCKET.s3-…` (AWS and
//! LocalStack) and `BUCKET.localhost` (moto); any other host is path-style (`/BUCKET/KEY`), which is
//! what S3-compatible servers on an IP address or a plain name get. Either way the object is named
//! `/BUCKET/KEY` (key percent-decoded), the name a manifest uses (see `manifest`).
//!
//! The operation follows from the method and the query's subresources, as S3's API reference
//! lays them out: `?uploads` (create a multipart upload), `?uploadId` (+ `partNumber`: a part),
//! `x-amz-copy-source` (copies); any other subresource (`?acl`, `?tagging`, …) is `Other`.

use serde::Serialize;

use super::content_address::percent_decode;
use super::exchange::Exchange;
use super::target;

/// The S3 operations `inspect` follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[allow(missing_docs)] // S3's own operation names
pub enum Operation {
    PutObject,
    CopyObject,
    GetObject,
    HeadObject,
    DeleteObject,
    CreateMultipartUpload,
    UploadPart,
    UploadPartCopy,
    CompleteMultipartUpload,
    AbortMultipartUpload,
    ListParts,
    DeleteObjects,
    CreateBucket,
    DeleteBucket,
    HeadBucket,
    ListObjects,
    /// Anything else (a subresource such as `?acl` or `?tagging`, a POST form upload).
    Other,
}

impl Operation {
    /// Every operation, for the schema's list of names.
    pub const ALL: [Operation; 17] = [
        Operation::PutObject,
        Operation::CopyObject,
        Operation::GetObject,
        Operation::HeadObject,
        Operation::DeleteObject,
        Operation::CreateMultipartUpload,
        Operation::UploadPart,
        Operation::UploadPartCopy,
        Operation::CompleteMultipartUpload,
        Operation::AbortMultipartUpload,
        Operation::ListParts,
        Operation::DeleteObjects,
        Operation::CreateBucket,
        Operation::DeleteBucket,
        Operation::HeadBucket,
        Operation::ListObjects,
        Operation::Other,
    ];

    /// S3's name for it (`PutObject`), as in JSON.
    pub fn name(self) -> &'static str {
        match self {
            Operation::PutObject => "PutObject",
            Operation::CopyObject => "CopyObject",
            Operation::GetObject => "GetObject",
            Operation::HeadObject => "HeadObject",
            Operation::DeleteObject => "DeleteObject",
            Operation::CreateMultipartUpload => "CreateMultipartUpload",
            Operation::UploadPart => "UploadPart",
            Operation::UploadPartCopy => "UploadPartCopy",
            Operation::CompleteMultipartUpload => "CompleteMultipartUpload",
            Operation::AbortMultipartUpload => "AbortMultipartUpload",
            Operation::ListParts => "ListParts",
            Operation::DeleteObjects => "DeleteObjects",
            Operation::CreateBucket => "CreateBucket",
            Operation::DeleteBucket => "DeleteBucket",
            Operation::HeadBucket => "HeadBucket",
            Operation::ListObjects => "ListObjects",
            Operation::Other => "Other",
        }
    }
}

/// How the request names its bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Style {
    /// `/BUCKET/KEY`.
    Path,
    /// `BUCKET.host/KEY`.
    VirtualHost,
}

/// One S3 request, as the report names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct S3Request {
    /// Exchange id.
    pub exchange: usize,
    /// S3's name of the operation.
    pub operation: Operation,
    /// Path-style or virtual-host.
    pub style: Style,
    /// The bucket, when the request names one.
    pub bucket: Option<String>,
    /// The object key (percent-decoded), when the request names one.
    pub key: Option<String>,
    /// `/BUCKET/KEY` (or `/BUCKET`): the name `--expect` manifests use, whatever the style.
    pub path: String,
    /// The multipart upload id (`uploadId`).
    pub upload_id: Option<String>,
    /// The part number of an `UploadPart`.
    pub part_number: Option<u32>,
    /// `x-amz-copy-source` of a copy (`BUCKET/KEY`), version dropped, percent-decoded.
    pub copy_source: Option<String>,
    /// The request's `Range` header.
    pub range: Option<String>,
    /// Final status, if any.
    pub status: Option<u16>,
    /// S3's error `<Code>` from the answer's XML (also for a 200 whose body is an `<Error>`, as
    /// CompleteMultipartUpload and CopyObject can answer).
    pub error: Option<String>,
    /// The answer's ETag, quotes removed.
    pub etag: Option<String>,
    /// The object size the answer reports: Content-Length of a HEAD or whole GET, the total of a
    /// 206's Content-Range.
    pub reported_size: Option<u64>,
}

impl S3Request {
    /// Recognizes `ex` as an S3 request and names it.
    pub fn of(ex: &Exchange) -> Option<S3Request> {
        if !is_s3(ex) {
            return None;
        }
        let origin = target::origin_form(&ex.target);
        let (raw_path, query) = origin.split_once('?').unwrap_or((origin, ""));
        let raw_path = raw_path.split('#').next().unwrap_or("");
        let host = authority(&ex.target, ex.host.as_deref());
        let (style, bucket, key) = match host.as_deref().and_then(virtual_host_bucket) {
            Some(bucket) => {
                let key = raw_path.trim_start_matches('/');
                (Style::VirtualHost, Some(bucket), key.to_string())
            }
            None => {
                let rest = raw_path.trim_start_matches('/');
                let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
                let bucket = (!bucket.is_empty()).then(|| percent_decode(bucket));
                (Style::Path, bucket, key.to_string())
            }
        };
        let key = (!key.is_empty()).then(|| percent_decode(&key));
        let params = query_names(query);
        let has = |name: &str| params.iter().any(|(n, _)| n == name);
        let value = |name: &str| {
            params
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| percent_decode(v))
        };
        let copy_source = ex
            .request_header("x-amz-copy-source")
            .map(|s| percent_decode(s.split('?').next().unwrap_or("").trim_start_matches('/')));
        let subresource = params
            .iter()
            .any(|(n, _)| !PLAIN_PARAMS.contains(&n.as_str()));
        let method = ex.method.as_str();
        let operation = match (method, key.is_some()) {
            ("POST", true) if has("uploads") => Operation::CreateMultipartUpload,
            ("PUT", true) if has("uploadId") && has("partNumber") => {
                if copy_source.is_some() {
                    Operation::UploadPartCopy
                } else {
                    Operation::UploadPart
                }
            }
            ("POST", true) if has("uploadId") => Operation::CompleteMultipartUpload,
            ("DELETE", true) if has("uploadId") => Operation::AbortMultipartUpload,
            ("GET", true) if has("uploadId") => Operation::ListParts,
            ("POST", false) if has("delete") => Operation::DeleteObjects,
            (_, _) if subresource => Operation::Other,
            ("PUT", true) if copy_source.is_some() => Operation::CopyObject,
            ("PUT", true) => Operation::PutObject,
            ("GET", true) => Operation::GetObject,
            ("HEAD", true) => Operation::HeadObject,
            ("DELETE", true) => Operation::DeleteObject,
            ("PUT", false) => Operation::CreateBucket,
            ("DELETE", false) => Operation::DeleteBucket,
            ("HEAD", false) => Operation::HeadBucket,
            ("GET", false) => Operation::ListObjects,
            _ => Operation::Other,
        };
        let path = match (&bucket, &key) {
            (Some(b), Some(k)) => format!("/{b}/{k}"),
            (Some(b), None) => format!("/{b}"),
            (None, _) => "/".to_string(),
        };
        // CompleteMultipartUpload and the copies answer their ETag in the XML body.
        let etag = ex.response_header("etag").map(unquote).or_else(|| {
            let text = String::from_utf8_lossy(&ex.response_text);
            let result = [
                "<CompleteMultipartUploadResult",
                "<CopyObjectResult",
                "<CopyPartResult",
            ]
            .iter()
            .find_map(|tag| text.find(tag))?;
            element(&text[result..], "ETag").map(|e| unquote(&unescape(e)))
        });
        let reported_size = match (operation, ex.response.status) {
            (Operation::HeadObject | Operation::GetObject, Some(200)) => ex
                .response_header("content-length")
                .and_then(|v| v.parse().ok()),
            (Operation::GetObject, Some(206)) => ex
                .response_header("content-range")
                .and_then(|v| v.rsplit_once('/'))
                .and_then(|(_, total)| total.trim().parse().ok()),
            _ => None,
        };
        Some(S3Request {
            exchange: ex.id,
            operation,
            style,
            bucket,
            key,
            path,
            upload_id: value("uploadId"),
            part_number: value("partNumber").and_then(|n| n.parse().ok()),
            copy_source,
            range: ex.request.range.clone(),
            status: ex.response.status,
            error: error_code(ex),
            etag,
            reported_size,
        })
    }

    /// True when S3 answered 2xx and the body is no `<Error>` (CompleteMultipartUpload and
    /// CopyObject may answer 200 and report a failure in the body).
    pub fn succeeded(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s)) && self.error.is_none()
    }
}

/// Query parameters that do not select a subresource: versions, presigning, response overrides,
/// the SDKs' `x-id` operation hint, a part of a GET, listing parameters.
const PLAIN_PARAMS: &[&str] = &[
    "versionId",
    "x-id",
    "partNumber",
    "uploadId",
    "uploads",
    "delete",
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Date",
    "X-Amz-Expires",
    "X-Amz-SignedHeaders",
    "X-Amz-Signature",
    "X-Amz-Security-Token",
    "X-Amz-Content-Sha256",
    "AWSAccessKeyId",
    "Signature",
    "Expires",
    "response-content-type",
    "response-content-language",
    "response-expires",
    "response-cache-control",
    "response-content-disposition",
    "response-content-encoding",
    "list-type",
    "prefix",
    "delimiter",
    "encoding-type",
    "max-keys",
    "marker",
    "continuation-token",
    "fetch-owner",
    "start-after",
];

/// True when the exchange speaks S3 (see the module documentation).
pub fn is_s3(ex: &Exchange) -> bool {
    let amz = |headers: &[(String, String)]| headers.iter().any(|(n, _)| n.starts_with("x-amz"));
    if amz(&ex.request_headers) || amz(&ex.response_headers) {
        return true;
    }
    let query = target::origin_form(&ex.target)
        .split_once('?')
        .map_or("", |(_, q)| q);
    let params = query_names(query);
    let has = |name: &str| params.iter().any(|(n, _)| n == name);
    has("X-Amz-Signature") || (has("AWSAccessKeyId") && has("Signature"))
}

/// The `name=value` pairs of a query, names as written, values still percent-encoded.
fn query_names(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (n, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(n), v.to_string())
        })
        .collect()
}

/// The authority the request was for: the absolute-form target's, else the Host header.
fn authority(target: &str, host: Option<&str>) -> Option<String> {
    if let Some((_, rest)) = target.split_once("://") {
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        return Some(rest[..end].rsplit('@').next().unwrap_or("").to_string());
    }
    host.map(str::to_string)
}

/// The bucket of a virtual-host style authority (`bkt.s3.us-east-1.amazonaws.com`,
/// `bkt.s3-us-west-2.amazonaws.com`, `bkt.localhost:5000`), or `None` for path-style.
fn virtual_host_bucket(authority: &str) -> Option<String> {
    let host = authority.to_ascii_lowercase();
    let host = match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) && !h.contains(':') => {
            h.to_string()
        }
        _ => host,
    };
    if host.starts_with('[') || host.parse::<std::net::Ipv4Addr>().is_ok() {
        return None;
    }
    if let Some(bucket) = host.strip_suffix(".localhost") {
        return (!bucket.is_empty()).then(|| bucket.to_string());
    }
    // Only S3's own endpoints (and LocalStack's): `x.s3-y.example.com` is some other service.
    if !["amazonaws.com", "amazonaws.com.cn", "localstack.cloud"]
        .iter()
        .any(|d| host.ends_with(&format!(".{d}")))
    {
        return None;
    }
    let mut search = 0;
    while let Some(i) = host[search..].find(".s3") {
        let at = search + i;
        let after = &host[at + 3..];
        if at > 0 && (after.starts_with('.') || after.starts_with('-')) {
            return Some(host[..at].to_string());
        }
        search = at + 3;
    }
    None
}

/// An ETag without its quotes (and a weak `W/` prefix).
pub fn unquote(etag: &str) -> String {
    etag.trim()
        .trim_start_matches("W/")
        .trim_matches('"')
        .to_string()
}

/// The text of the first `<name>…</name>` in `xml`.
pub fn element<'a>(xml: &'a str, name: &str) -> Option<&'a str> {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let start = xml.find(&open)? + open.len();
    let len = xml[start..].find(&close)?;
    Some(&xml[start..start + len])
}

/// XML's predefined entities and numeric quotes, as S3 escapes ETags (`&quot;`, `&#34;`).
pub fn unescape(text: &str) -> String {
    text.replace("&quot;", "\"")
        .replace("&#34;", "\"")
        .replace("&#x22;", "\"")
        .replace("&apos;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The `<Code>` of an S3 XML error answer, when the kept start of the body is one.
fn error_code(ex: &Exchange) -> Option<String> {
    if matches!(ex.method.as_str(), "GET" | "HEAD") && ex.succeeded() {
        return None; // object data, not an answer
    }
    let text = String::from_utf8_lossy(&ex.response_text);
    let error = text.find("<Error>")?;
    let rest = &text[error..];
    let code = rest
        .split_once("<Code>")
        .and_then(|(_, r)| r.split_once("</Code>"))
        .map(|(c, _)| c.trim().to_string());
    Some(code.unwrap_or_else(|| "Error".to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::direction::Leg;
    use crate::inspect::legs::tests::exchange;

    fn s3(method: &str, target: &str, host: &str) -> Exchange {
        let mut ex = exchange(0, Leg::Client, 1, method, target, Some(host));
        ex.request_headers
            .push(("x-amz-content-sha256".into(), "UNSIGNED-PAYLOAD".into()));
        ex
    }

    fn op(method: &str, target: &str, host: &str) -> S3Request {
        S3Request::of(&s3(method, target, host)).expect("an S3 request")
    }

    #[test]
    fn operations_follow_method_and_subresources() {
        let h = "127.0.0.1:9000";
        let cases = [
            ("PUT", "/bkt/a/b.bin", Operation::PutObject),
            ("GET", "/bkt/a/b.bin?x-id=GetObject", Operation::GetObject),
            ("HEAD", "/bkt/a/b.bin", Operation::HeadObject),
            ("DELETE", "/bkt/a/b.bin", Operation::DeleteObject),
            (
                "POST",
                "/bkt/a/b.bin?uploads",
                Operation::CreateMultipartUpload,
            ),
            (
                "PUT",
                "/bkt/a/b.bin?uploadId=U&partNumber=2",
                Operation::UploadPart,
            ),
            (
                "POST",
                "/bkt/a/b.bin?uploadId=U",
                Operation::CompleteMultipartUpload,
            ),
            (
                "DELETE",
                "/bkt/a/b.bin?uploadId=U",
                Operation::AbortMultipartUpload,
            ),
            ("GET", "/bkt/a/b.bin?uploadId=U", Operation::ListParts),
            ("POST", "/bkt?delete", Operation::DeleteObjects),
            ("PUT", "/bkt", Operation::CreateBucket),
            ("GET", "/bkt?list-type=2&prefix=a", Operation::ListObjects),
            ("PUT", "/bkt/a/b.bin?tagging", Operation::Other),
            ("GET", "/bkt?acl", Operation::Other),
        ];
        for (method, target, want) in cases {
            assert_eq!(op(method, target, h).operation, want, "{method} {target}");
        }
        let part = op("PUT", "/bkt/a/b.bin?uploadId=U%2Bx&partNumber=2", h);
        assert_eq!(part.upload_id.as_deref(), Some("U+x"));
        assert_eq!(part.part_number, Some(2));
        assert_eq!(part.path, "/bkt/a/b.bin");
        let mut copy = s3("PUT", "/bkt/dst", h);
        copy.request_headers
            .push(("x-amz-copy-source".into(), "/bkt/src%20file".into()));
        let copy = S3Request::of(&copy).expect("copy");
        assert_eq!(copy.operation, Operation::CopyObject);
        assert_eq!(copy.copy_source.as_deref(), Some("bkt/src file"));
    }

    #[test]
    fn path_style_and_virtual_host_name_the_same_object() {
        let path = op("PUT", "/bkt/dir/my%20file.txt", "127.0.0.1:9000");
        assert_eq!(path.style, Style::Path);
        assert_eq!(
            (path.bucket.as_deref(), path.key.as_deref()),
            (Some("bkt"), Some("dir/my file.txt"))
        );
        for host in [
            "bkt.s3.amazonaws.com",
            "bkt.s3.us-east-1.amazonaws.com",
            "bkt.s3-us-west-2.amazonaws.com",
            "bkt.localhost:5000",
        ] {
            let vh = op("PUT", "/dir/my%20file.txt", host);
            assert_eq!(vh.style, Style::VirtualHost, "{host}");
            assert_eq!(vh.path, path.path, "{host}");
        }
        let forward = op("PUT", "http://bkt.s3.amazonaws.com/dir/my%20file.txt", "x");
        assert_eq!(forward.path, path.path);
        for host in [
            "s3.amazonaws.com",
            "minio.example:9000",
            "localhost:5000",
            "my.s3-bucket.example.com",
        ] {
            assert_eq!(op("PUT", "/bkt/k", host).style, Style::Path, "{host}");
        }
    }

    #[test]
    fn only_requests_that_speak_s3_are_s3() {
        let plain = exchange(0, Leg::Client, 1, "PUT", "/files/md5/ab/cd", Some("h"));
        assert_eq!(S3Request::of(&plain), None);
        let presigned = exchange(
            0,
            Leg::Client,
            1,
            "GET",
            "/bkt/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=ab",
            Some("h"),
        );
        assert_eq!(
            S3Request::of(&presigned).map(|r| r.operation),
            Some(Operation::GetObject)
        );
        let mut answered = exchange(0, Leg::Client, 1, "HEAD", "/bkt/k", Some("h"));
        answered
            .response_headers
            .push(("x-amz-request-id".into(), "R".into()));
        assert!(is_s3(&answered));
    }

    #[test]
    fn an_error_in_a_200_body_is_a_failure() {
        let mut done = s3("POST", "/bkt/k?uploadId=U", "h");
        done.response.status = Some(200);
        done.response_text =
            b"\n\n<?xml version=\"1.0\"?><Error><Code>InternalError</Code></Error>".to_vec();
        let r = S3Request::of(&done).expect("complete");
        assert_eq!(r.error.as_deref(), Some("InternalError"));
        assert!(!r.succeeded());
        // A CompleteMultipartUpload answer, its quotes escaped as AWS sends them (moto 5.2.5
        // sends them bare).
        done.response_text = br#"<?xml version="1.0" encoding="UTF-8"?>
<CompleteMultipartUploadResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Location>http://bkt.s3.amazonaws.com/big.bin</Location><Bucket>bkt</Bucket><Key>big.bin</Key><ETag>&quot;b189c158f1ffa05522c807b56d98d7f4-3&quot;</ETag></CompleteMultipartUploadResult>"#.to_vec();
        let r = S3Request::of(&done).expect("complete");
        assert!(r.succeeded());
        assert_eq!(
            r.etag.as_deref(),
            Some("b189c158f1ffa05522c807b56d98d7f4-3")
        );
        assert_eq!(unquote("\"abc-3\""), "abc-3");
    }
}
