//! Reads the integrity values S3 messages carry (Content-MD5, x-amz-content-sha256, x-amz-checksum-*, ETag) as digests a body can be checked against.
//!
//! Encodings differ: `Content-MD5` and `x-amz-checksum-*` are base64 of the big-endian digest
//! bytes, `x-amz-content-sha256` is lowercase hex (or a word: `UNSIGNED-PAYLOAD`, `STREAMING-…`,
//! which promise nothing about the bytes), an ETag is quoted hex. Everything here becomes
//! lowercase hex, so one comparison serves them all. A value that does not decode to its
//! algorithm's length is a problem to report, never a guess.
//!
//! An ETag is the MD5 of the object only for a single-part upload without SSE-KMS or SSE-C; a
//! multipart object's ETag is the MD5 of its parts' binary MD5s followed by `-<parts>`.

use base64::Engine;
use md5::{Digest, Md5};

use super::digest::HashAlgo;

/// One digest a message promises its body has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// The algorithm.
    pub algo: HashAlgo,
    /// The digest, lowercase hex.
    pub hex: String,
    /// Where it was said: `Content-MD5`, `x-amz-content-sha256`, `x-amz-checksum-crc32`,
    /// `x-amz-checksum-crc32 trailer`, `ETag`.
    pub source: String,
}

/// The algorithm an `x-amz-checksum-<name>` header or trailer carries.
pub fn checksum_algo(header: &str) -> Option<HashAlgo> {
    match header
        .to_ascii_lowercase()
        .strip_prefix("x-amz-checksum-")?
    {
        "crc32" => Some(HashAlgo::Crc32),
        "crc32c" => Some(HashAlgo::Crc32c),
        "crc64nvme" => Some(HashAlgo::Crc64nvme),
        "sha1" => Some(HashAlgo::Sha1),
        "sha256" => Some(HashAlgo::Sha256),
        "sha512" => Some(HashAlgo::Sha512),
        "md5" => Some(HashAlgo::Md5),
        "xxhash3" => Some(HashAlgo::Xxh3),
        "xxhash64" => Some(HashAlgo::Xxh64),
        "xxhash128" => Some(HashAlgo::Xxh128),
        _ => None,
    }
}

/// An `x-amz-checksum-*` name that carries a digest of an algorithm inspect does not know (one
/// S3 adds later): said in a warning, never silently left unchecked. `-algorithm`, `-type` and
/// `-mode` name things; they carry no digest.
fn unknown_checksum(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    name.strip_prefix("x-amz-checksum-").is_some_and(|algo| {
        checksum_algo(&name).is_none() && !matches!(algo, "algorithm" | "type" | "mode")
    })
}

/// Base64 of `algo`'s digest bytes → lowercase hex; `None` when it is not exactly that.
pub fn base64_digest(value: &str, algo: HashAlgo) -> Option<String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(value.trim())
        .ok()?;
    (bytes.len() * 2 == algo.hex_len()).then(|| hex::encode(bytes))
}

/// The claims of a request's headers and aws-chunked trailers; problems for values that do not
/// decode (reported, not checked).
pub fn request_claims(
    headers: &[(String, String)],
    trailers: &[(String, String)],
) -> (Vec<Claim>, Vec<String>) {
    let mut claims = Vec::new();
    let mut problems = Vec::new();
    for (name, value) in headers {
        if name == "content-md5" {
            match base64_digest(value, HashAlgo::Md5) {
                Some(hex) => claims.push(Claim {
                    algo: HashAlgo::Md5,
                    hex,
                    source: "Content-MD5".into(),
                }),
                None => problems.push(format!(
                    "Content-MD5 {value:?} is not base64 of a 16-byte MD5"
                )),
            }
        } else if name == "x-amz-content-sha256" {
            let v = value.trim();
            if v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()) {
                claims.push(Claim {
                    algo: HashAlgo::Sha256,
                    hex: v.to_ascii_lowercase(),
                    source: "x-amz-content-sha256".into(),
                });
            }
        } else if let Some(algo) = checksum_algo(name) {
            push_checksum(name, value, algo, "", &mut claims, &mut problems);
        } else if unknown_checksum(name) {
            problems.push(format!("{name} not checked: inspect does not compute it"));
        }
    }
    for (name, value) in trailers {
        if let Some(algo) = checksum_algo(name) {
            push_checksum(name, value, algo, " trailer", &mut claims, &mut problems);
        } else if unknown_checksum(name) {
            problems.push(format!(
                "{name} trailer not checked: inspect does not compute it"
            ));
        }
    }
    (claims, problems)
}

fn push_checksum(
    name: &str,
    value: &str,
    algo: HashAlgo,
    suffix: &str,
    claims: &mut Vec<Claim>,
    problems: &mut Vec<String>,
) {
    match base64_digest(value, algo) {
        Some(hex) => claims.push(Claim {
            algo,
            hex,
            source: format!("{name}{suffix}"),
        }),
        // A composite checksum of a multipart object (`…-3`) checks no single body.
        None if value.contains('-') => {}
        None => problems.push(format!(
            "{name}{suffix} {value:?} is not base64 of a {}-byte {}",
            algo.hex_len() / 2,
            algo.name()
        )),
    }
}

/// The MD5 an ETag names, when it names one (32 hex digits, not a multipart `…-N`).
pub fn etag_md5(etag: &str) -> Option<String> {
    (etag.len() == 32 && etag.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| etag.to_ascii_lowercase())
}

/// The ETag S3 gives an object assembled from parts whose MD5s (hex) are `parts`, in order:
/// MD5 of the concatenated binary MD5s, then `-` and the number of parts.
pub fn multipart_etag(parts: &[String]) -> Option<String> {
    let mut md5 = Md5::new();
    for part in parts {
        md5.update(hex::decode(part).ok()?);
    }
    Some(format!("{}-{}", hex::encode(md5.finalize()), parts.len()))
}

/// True when server-side encryption makes the ETag something else than the MD5 (SSE-KMS,
/// DSSE-KMS, SSE-C), judged from request and response headers.
pub fn etag_is_not_md5(request: &[(String, String)], response: &[(String, String)]) -> bool {
    request.iter().chain(response).any(|(n, v)| {
        (n == "x-amz-server-side-encryption" && v.contains("kms"))
            || n == "x-amz-server-side-encryption-customer-algorithm"
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn headers_and_trailers_become_hex_claims() {
        // Base64 of the big-endian CRC: `r58+jQ==` is 0xaf9f3e8d.
        let (claims, problems) = request_claims(
            &h(&[
                ("content-md5", "1B2M2Y8AsgTpgAmY7PhCfg=="),
                ("x-amz-content-sha256", "UNSIGNED-PAYLOAD"),
                ("x-amz-checksum-crc32", "r58+jQ=="),
                ("x-amz-checksum-algorithm", "CRC32"),
                ("x-amz-checksum-crc64nvme", "not base64!"),
                ("x-amz-checksum-type", "FULL_OBJECT"),
                ("x-amz-checksum-xxhash256", "AAAAAAAAAAA="),
            ]),
            &h(&[(
                "x-amz-checksum-sha256",
                "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=",
            )]),
        );
        let got: Vec<(HashAlgo, &str, &str)> = claims
            .iter()
            .map(|c| (c.algo, c.hex.as_str(), c.source.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    HashAlgo::Md5,
                    "d41d8cd98f00b204e9800998ecf8427e",
                    "Content-MD5"
                ),
                (HashAlgo::Crc32, "af9f3e8d", "x-amz-checksum-crc32"),
                (
                    HashAlgo::Sha256,
                    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
                    "x-amz-checksum-sha256 trailer"
                ),
            ]
        );
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].contains("x-amz-checksum-crc64nvme"));
        assert_eq!(
            problems[1],
            "x-amz-checksum-xxhash256 not checked: inspect does not compute it"
        );
        assert_eq!(
            checksum_algo("x-amz-checksum-SHA512"),
            Some(HashAlgo::Sha512)
        );
        assert_eq!(checksum_algo("x-amz-checksum-md5"), Some(HashAlgo::Md5));
        assert_eq!(
            checksum_algo("x-amz-checksum-xxhash3"),
            Some(HashAlgo::Xxh3)
        );
    }

    #[test]
    fn multipart_etags_are_md5_of_md5s() {
        // moto 5.2.5 answered these part ETags and this object ETag to boto3's upload_file of
        // 12 MiB in 5 MiB parts.
        let parts: Vec<String> = [
            "ce1717e2468046e3f7e083388b6ad21d",
            "572987c0d71f1e9c5dc155c4acf69825",
            "ce92ad7330cd7d03d3029ab14dff39fa",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(
            multipart_etag(&parts).as_deref(),
            Some("b189c158f1ffa05522c807b56d98d7f4-3")
        );
        assert_eq!(
            etag_md5("D41D8CD98F00B204E9800998ECF8427E").as_deref(),
            Some("d41d8cd98f00b204e9800998ecf8427e")
        );
        assert_eq!(etag_md5("b189c158f1ffa05522c807b56d98d7f4-3"), None);
        assert!(etag_is_not_md5(
            &h(&[("x-amz-server-side-encryption", "aws:kms")]),
            &[]
        ));
        assert!(!etag_is_not_md5(
            &h(&[("x-amz-server-side-encryption", "AES256")]),
            &[]
        ));
    }
}
