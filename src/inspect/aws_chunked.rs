//! Decodes an `aws-chunked` request body (S3's streaming uploads) to where the object's bytes lie in it, with its chunk signatures and trailers.
//!
//! An SDK that streams an upload (`x-amz-content-sha256: STREAMING-…`, `Content-Encoding:
//! aws-chunked`) frames the object like HTTP/1 chunked coding, inside the HTTP body:
//!
//! ```text
//! 10000;chunk-signature=<64 hex>\r\n<65536 bytes>\r\n     (signed: STREAMING-AWS4-HMAC-SHA256-PAYLOAD…)
//! 10000\r\n<65536 bytes>\r\n                                (unsigned: STREAMING-UNSIGNED-PAYLOAD-TRAILER)
//! 0;chunk-signature=<64 hex>\r\n                           (the last chunk)
//! x-amz-checksum-crc32:AAAAAA==\r\n                        (trailers named by x-amz-trailer)
//! x-amz-trailer-signature:<64 hex>\r\n
//! \r\n
//! ```
//!
//! Decoding never copies the object: it lists the segments of the retained body that hold it, so
//! checks read the object where it lies (see `s3_content`). Chunk signatures are counted, not verified (that
//! needs the secret key); framing that breaks the rules is reported with its raw offset.

use std::io;

use super::attempts::BodySource;

/// Longest chunk header or trailer line accepted (a hex size and a 64-hex-digit signature, or
/// a trailer with a base64 SHA-256, fit several times over).
const MAX_LINE: usize = 1024;
/// Trailers kept at most.
const MAX_TRAILERS: usize = 32;

/// True when the request headers say the body is aws-chunked.
pub fn is_aws_chunked(content_sha256: Option<&str>, content_encoding: Option<&str>) -> bool {
    content_sha256.is_some_and(|v| v.trim().starts_with("STREAMING-"))
        || content_encoding.is_some_and(|v| {
            v.split(',')
                .any(|c| c.trim().eq_ignore_ascii_case("aws-chunked"))
        })
}

/// What the decoder found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decoded {
    /// `(raw offset, length)` of each chunk's data, in order.
    pub segments: Vec<(u64, u64)>,
    /// Object bytes (the sum of the segments).
    pub length: u64,
    /// Chunks read, the last (empty) one included.
    pub chunks: usize,
    /// Chunks that carried a `chunk-signature`.
    pub signed_chunks: usize,
    /// Trailers after the last chunk, names lowercase, values trimmed.
    pub trailers: Vec<(String, String)>,
    /// True when the last (0-size) chunk was read.
    pub complete: bool,
    /// Why decoding stopped early, naming the raw offset.
    pub problem: Option<String>,
}

/// Decodes `body` (see the module documentation).
pub fn decode(body: &mut dyn BodySource) -> Decoded {
    let mut out = Decoded::default();
    let total = body.len();
    let mut at = 0u64;
    loop {
        if at >= total {
            out.problem = Some(format!("body ended at {total} bytes before the last chunk"));
            return out;
        }
        let line = match read_line(body, at) {
            Ok(Some(line)) => line,
            Ok(None) => {
                out.problem = Some(format!("chunk header at offset {at} has no line end"));
                return out;
            }
            Err(e) => {
                out.problem = Some(format!("cannot read the retained body: {e}"));
                return out;
            }
        };
        let header = String::from_utf8_lossy(&line);
        let (size, extensions) = header.split_once(';').unwrap_or((&header, ""));
        let Ok(size) = u64::from_str_radix(size.trim(), 16) else {
            out.problem = Some(format!(
                "chunk header at offset {at} is not a hex size: {:?}",
                header.chars().take(40).collect::<String>()
            ));
            return out;
        };
        out.chunks += 1;
        if extensions.contains("chunk-signature=") {
            out.signed_chunks += 1;
        }
        let data = at + line.len() as u64 + 2;
        if size == 0 {
            out.complete = true;
            read_trailers(body, data, &mut out);
            return out;
        }
        let Some(end) = data.checked_add(size).filter(|&e| e <= total) else {
            let have = total.saturating_sub(data);
            out.problem = Some(format!(
                "chunk at offset {at} announces {size} bytes, {have} follow"
            ));
            if have > 0 {
                out.segments.push((data, have));
                out.length += have;
            }
            return out;
        };
        out.segments.push((data, size));
        out.length += size;
        let mut crlf = [0u8; 2];
        if end + 2 > total || body.read_at(end, &mut crlf).is_err() || &crlf != b"\r\n" {
            out.problem = Some(format!(
                "chunk data ending at offset {end} is not followed by CRLF"
            ));
            return out;
        }
        at = end + 2;
    }
}

/// The line at `at` without its CRLF; `None` when there is none within [`MAX_LINE`].
fn read_line(body: &mut dyn BodySource, at: u64) -> io::Result<Option<Vec<u8>>> {
    let n = (body.len() - at).min(MAX_LINE as u64) as usize;
    let mut buf = vec![0u8; n];
    body.read_at(at, &mut buf)?;
    Ok(buf.windows(2).position(|w| w == b"\r\n").map(|i| {
        buf.truncate(i);
        buf
    }))
}

fn read_trailers(body: &mut dyn BodySource, mut at: u64, out: &mut Decoded) {
    while at < body.len() && out.trailers.len() < MAX_TRAILERS {
        let Ok(Some(line)) = read_line(body, at) else {
            // Some SDKs end the last trailer without CRLF: take what remains.
            let n = (body.len() - at).min(MAX_LINE as u64) as usize;
            let mut rest = vec![0u8; n];
            if body.read_at(at, &mut rest).is_ok() {
                push_trailer(&rest, out);
            }
            return;
        };
        if line.is_empty() {
            return;
        }
        push_trailer(&line, out);
        at += line.len() as u64 + 2;
    }
}

fn push_trailer(line: &[u8], out: &mut Decoded) {
    let text = String::from_utf8_lossy(line);
    if let Some((name, value)) = text.split_once(':') {
        out.trailers
            .push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// `data` framed in `chunk`-byte chunks, signed or not, with `trailers`.
    pub(crate) fn encode(
        data: &[u8],
        chunk: usize,
        signed: bool,
        trailers: &[(&str, &str)],
    ) -> Vec<u8> {
        let sig = if signed {
            format!(";chunk-signature={}", "ab".repeat(32))
        } else {
            String::new()
        };
        let mut out = Vec::new();
        for piece in data.chunks(chunk) {
            out.extend_from_slice(format!("{:x}{sig}\r\n", piece.len()).as_bytes());
            out.extend_from_slice(piece);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(format!("0{sig}\r\n").as_bytes());
        for (n, v) in trailers {
            out.extend_from_slice(format!("{n}:{v}\r\n").as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        out
    }

    fn object(decoded: &Decoded, raw: &[u8]) -> Vec<u8> {
        decoded
            .segments
            .iter()
            .flat_map(|&(at, len)| &raw[at as usize..(at + len) as usize])
            .copied()
            .collect()
    }

    #[test]
    fn signed_and_unsigned_bodies_decode_to_the_object_and_trailers() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        for signed in [true, false] {
            let raw = encode(
                &data,
                65_536,
                signed,
                &[
                    ("x-amz-checksum-crc32", " AAAAAA=="),
                    ("X-Amz-Trailer-Signature", "cd"),
                ],
            );
            let decoded = decode(&mut raw.as_slice());
            assert_eq!(decoded.problem, None);
            assert!(decoded.complete);
            assert_eq!(decoded.length, 200_000);
            assert_eq!(decoded.chunks, 5);
            assert_eq!(decoded.signed_chunks, if signed { 5 } else { 0 });
            assert_eq!(
                decoded.trailers,
                vec![
                    ("x-amz-checksum-crc32".to_string(), "AAAAAA==".to_string()),
                    ("x-amz-trailer-signature".to_string(), "cd".to_string())
                ]
            );
            assert_eq!(object(&decoded, &raw), data);
        }
    }

    #[test]
    fn a_cut_or_broken_body_names_the_offset() {
        let data = vec![7u8; 100];
        let raw = encode(&data, 64, false, &[]);
        let cut = &raw[..50];
        let decoded = decode(&mut &cut[..]);
        assert!(!decoded.complete);
        assert_eq!(decoded.length, 46, "the bytes that did arrive");
        assert!(
            decoded
                .problem
                .as_deref()
                .is_some_and(|p| p.contains("announces 64 bytes")),
            "{decoded:?}"
        );
        let bad = b"zz\r\nabc".to_vec();
        let decoded = decode(&mut bad.as_slice());
        assert!(decoded
            .problem
            .as_deref()
            .is_some_and(|p| p.contains("offset 0 is not a hex size")));
        let no_crlf = b"3\r\nabcXY0\r\n\r\n".to_vec();
        let decoded = decode(&mut no_crlf.as_slice());
        assert!(decoded
            .problem
            .as_deref()
            .is_some_and(|p| p.contains("not followed by CRLF")));
        assert!(is_aws_chunked(
            Some("STREAMING-UNSIGNED-PAYLOAD-TRAILER"),
            None
        ));
        assert!(is_aws_chunked(None, Some("gzip, aws-chunked")));
        assert!(!is_aws_chunked(Some("UNSIGNED-PAYLOAD"), Some("gzip")));
    }
}
