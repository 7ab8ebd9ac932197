//! One gRPC message whose compressed flag is set, decompressed as its stream's `grpc-encoding` says (gzip, deflate), bounded.
//!
//! A server that compresses (`grpc-encoding: gzip` on its response headers) sets the message
//! prefix's compressed flag; the bytes on the wire are then the gzip member, not the protobuf.
//! `inspect` reads them the way the receiving gRPC library does. An encoding it cannot read
//! (snappy, zstd, none named at all) or a message that does not decompress is reported as a
//! reason the call is not checked, never as something the peer did wrong: the capture shows the
//! bytes, not the library's view of them.

use std::io::Read;

use flate2::read::{GzDecoder, ZlibDecoder};

/// Decompresses `body` as `encoding` (the stream's `grpc-encoding` value, `None` when the
/// stream named none); a result over `limit` bytes is refused. `Err` says why the message
/// cannot be read, as a clause (`grpc-encoding zstd is not read here`).
pub fn decompress(encoding: Option<&str>, body: &[u8], limit: usize) -> Result<Vec<u8>, String> {
    let name = encoding.map(|e| e.trim().to_ascii_lowercase());
    let reader: Box<dyn Read + '_> = match name.as_deref() {
        Some("gzip") => Box::new(GzDecoder::new(body)),
        Some("deflate") => Box::new(ZlibDecoder::new(body)),
        Some("identity") | Some("") | None => {
            return Err(format!(
                "it is marked compressed but the stream's grpc-encoding is {}",
                name.filter(|n| !n.is_empty())
                    .map_or("absent".to_string(), |n| format!("{n:?}"))
            ))
        }
        Some(other) => return Err(format!("grpc-encoding {other:?} is not read here")),
    };
    let mut out = Vec::new();
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    if let Err(e) = reader.take(cap).read_to_end(&mut out) {
        return Err(format!(
            "it does not decompress as {}: {e}",
            name.unwrap_or_default()
        ));
    }
    if out.len() > limit {
        return Err(format!(
            "it decompresses to more than {limit} bytes: not read"
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use flate2::write::{GzEncoder, ZlibEncoder};
    use flate2::Compression;

    use super::decompress;

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Compression::default());
        e.write_all(bytes).expect("gzip");
        e.finish().expect("gzip")
    }

    #[test]
    fn gzip_and_deflate_are_read_back() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        assert_eq!(
            decompress(Some("gzip"), &gzip(&data), 1 << 20),
            Ok(data.clone())
        );
        assert_eq!(
            decompress(Some(" GZIP "), &gzip(&data), 1 << 20),
            Ok(data.clone())
        );
        let mut z = ZlibEncoder::new(Vec::new(), Compression::default());
        z.write_all(&data).expect("zlib");
        let z = z.finish().expect("zlib");
        assert_eq!(decompress(Some("deflate"), &z, 1 << 20), Ok(data));
    }

    #[test]
    fn what_cannot_be_read_says_why() {
        let small = gzip(b"hello");
        let e = decompress(Some("zstd"), &small, 100).expect_err("zstd");
        assert!(e.contains("\"zstd\" is not read here"), "{e}");
        let e = decompress(None, &small, 100).expect_err("absent");
        assert!(e.contains("grpc-encoding is absent"), "{e}");
        let e = decompress(Some("identity"), &small, 100).expect_err("identity");
        assert!(e.contains("\"identity\""), "{e}");
        let e = decompress(Some("gzip"), b"not gzip at all", 100).expect_err("broken");
        assert!(e.contains("does not decompress as gzip"), "{e}");
        let mut cut = small.clone();
        cut.truncate(small.len() - 4);
        assert!(decompress(Some("gzip"), &cut, 100).is_err());
        // A bomb stops at the limit, never allocating what it claims.
        let bomb = gzip(&vec![0u8; 1 << 20]);
        let e = decompress(Some("gzip"), &bomb, 1000).expect_err("too large");
        assert!(e.contains("more than 1000 bytes"), "{e}");
        assert_eq!(
            decompress(Some("gzip"), &gzip(&[7; 1000]), 1000),
            Ok(vec![7; 1000])
        );
    }
}
