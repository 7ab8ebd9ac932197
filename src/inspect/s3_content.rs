//! Where an uploaded object's bytes lie in the capture (spans of retained request bodies), and reading, hashing and comparing them there.
//!
//! An object is never copied: a plain PUT is its whole body, an aws-chunked PUT the data
//! segments of its body, a multipart object its acknowledged parts' spans in
//! CompleteMultipartUpload order. Reading goes through the retained bodies (memory or spill file),
//! so a multi-gigabyte object costs no memory.

use super::attempts::BodySource;
use super::aws_chunked::{self, Decoded};
use super::digest::{HashAlgo, Hasher};
use super::exchange::Exchange;

/// Block size for reading retained bodies.
const BLOCK: usize = 256 * 1024;

/// `len` bytes of exchange `exchange`'s request body from `from`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// Exchange id (its request body).
    pub exchange: usize,
    /// Offset in that body.
    pub from: u64,
    /// Bytes.
    pub len: u64,
}

/// An object's bytes and what is known of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Content {
    /// Where its bytes are, in order (empty for a 0-byte object).
    pub spans: Vec<Span>,
    /// Its size.
    pub length: u64,
    /// MD5, lowercase hex, when the bytes could be read.
    pub md5: Option<String>,
    /// SHA-256, lowercase hex, when the bytes could be read.
    pub sha256: Option<String>,
    /// The ETag S3 gives these bytes: the MD5, or MD5-of-part-MD5s `-N` for a multipart object.
    pub etag: Option<String>,
    /// True when every span's bytes are retained (they can be read and compared).
    pub readable: bool,
}

/// The object bytes of an upload's request body: the aws-chunked data segments when the body is
/// aws-chunked (with what decoding found), else the whole body.
pub fn upload_content(exchanges: &mut [Exchange], id: usize) -> (Content, Option<Decoded>) {
    let ex = &mut exchanges[id];
    let chunked = aws_chunked::is_aws_chunked(
        ex.request_header("x-amz-content-sha256"),
        ex.request_header("content-encoding"),
    );
    let readable = ex
        .body
        .as_ref()
        .is_some_and(|b| b.incomplete_copy().is_none() && b.len() == ex.request.length);
    if !chunked {
        let spans = if ex.request.length > 0 {
            vec![Span {
                exchange: id,
                from: 0,
                len: ex.request.length,
            }]
        } else {
            Vec::new()
        };
        let content = Content {
            spans,
            length: ex.request.length,
            md5: Some(ex.request.md5.clone()),
            sha256: Some(ex.request.sha256.clone()),
            etag: Some(ex.request.md5.clone()),
            readable,
        };
        return (content, None);
    }
    let decoded = match ex.body.as_mut().filter(|_| readable) {
        Some(body) => aws_chunked::decode(body),
        None => Decoded {
            problem: Some("the aws-chunked body was not retained".into()),
            ..Decoded::default()
        },
    };
    let spans: Vec<Span> = decoded
        .segments
        .iter()
        .map(|&(from, len)| Span {
            exchange: id,
            from,
            len,
        })
        .collect();
    let mut content = Content {
        spans,
        length: decoded.length,
        md5: None,
        sha256: None,
        etag: None,
        readable,
    };
    if readable {
        if let Some([md5, sha256]) = hash(
            exchanges,
            &content.spans,
            &[HashAlgo::Md5, HashAlgo::Sha256],
        )
        .and_then(|v| <[String; 2]>::try_from(v).ok())
        {
            content.etag = Some(md5.clone());
            content.md5 = Some(md5);
            content.sha256 = Some(sha256);
        }
    }
    (content, Some(decoded))
}

/// Reads `buf.len()` object bytes from `at` out of `spans`.
pub fn read(exchanges: &mut [Exchange], spans: &[Span], at: u64, buf: &mut [u8]) -> Option<()> {
    let mut object_at = 0u64;
    let mut filled = 0usize;
    for span in spans {
        if filled == buf.len() {
            break;
        }
        let want = at + filled as u64;
        if want < object_at + span.len {
            let inside = want - object_at;
            let n = ((span.len - inside) as usize).min(buf.len() - filled);
            exchanges
                .get_mut(span.exchange)?
                .body
                .as_mut()?
                .read_at(span.from + inside, &mut buf[filled..filled + n])
                .ok()?;
            filled += n;
        }
        object_at += span.len;
    }
    (filled == buf.len()).then_some(())
}

/// The digests of the bytes `spans` make, one per algorithm, in one pass; `None` when a body is
/// not retained.
pub fn hash(exchanges: &mut [Exchange], spans: &[Span], algos: &[HashAlgo]) -> Option<Vec<String>> {
    let mut hashers: Vec<Hasher> = algos
        .iter()
        .map(|&a| Hasher::new(a))
        .collect::<Option<_>>()?;
    let mut buf = vec![0u8; BLOCK];
    for span in spans {
        let body = exchanges.get_mut(span.exchange)?.body.as_mut()?;
        if body.incomplete_copy().is_some() {
            return None;
        }
        let mut at = 0u64;
        while at < span.len {
            let n = ((span.len - at) as usize).min(BLOCK);
            body.read_at(span.from + at, &mut buf[..n]).ok()?;
            for h in &mut hashers {
                h.update(&buf[..n]);
            }
            at += n as u64;
        }
    }
    Some(hashers.into_iter().map(Hasher::finish_hex).collect())
}

/// The first offset where a downloaded body (`body`, object bytes from `start`) differs from
/// the object `spans` make; `Ok(None)` when they agree over the body's length (which must lie
/// inside the object); `Err` when the bytes cannot be read.
pub fn first_difference(
    exchanges: &mut [Exchange],
    spans: &[Span],
    download: usize,
    start: u64,
) -> Result<Option<u64>, ()> {
    let len = exchanges
        .get(download)
        .and_then(|e| e.response_body.as_ref())
        .map(|b| b.len())
        .ok_or(())?;
    let mut ours = vec![0u8; BLOCK];
    let mut theirs = vec![0u8; BLOCK];
    let mut at = 0u64;
    while at < len {
        let n = ((len - at) as usize).min(BLOCK);
        read(exchanges, spans, start + at, &mut ours[..n]).ok_or(())?;
        exchanges[download]
            .response_body
            .as_mut()
            .ok_or(())?
            .read_at(at, &mut theirs[..n])
            .map_err(|_| ())?;
        if let Some(i) = ours[..n].iter().zip(&theirs[..n]).position(|(a, b)| a != b) {
            return Ok(Some(start + at + i as u64));
        }
        at += n as u64;
    }
    Ok(None)
}

/// The digests of a retained response body, one per algorithm; `None` when not retained.
pub fn hash_download(
    exchanges: &mut [Exchange],
    id: usize,
    algos: &[HashAlgo],
) -> Option<Vec<String>> {
    let body = exchanges.get_mut(id)?.response_body.as_mut()?;
    if body.incomplete_copy().is_some() {
        return None;
    }
    let mut hashers: Vec<Hasher> = algos
        .iter()
        .map(|&a| Hasher::new(a))
        .collect::<Option<_>>()?;
    let mut buf = vec![0u8; BLOCK];
    let mut at = 0u64;
    while at < body.len() {
        let n = ((body.len() - at) as usize).min(BLOCK);
        body.read_at(at, &mut buf[..n]).ok()?;
        for h in &mut hashers {
            h.update(&buf[..n]);
        }
        at += n as u64;
    }
    Some(hashers.into_iter().map(Hasher::finish_hex).collect())
}
