//! ByteStream resource names of the Remote Execution API: which blob a Read or Write is about, and its digest.
//!
//! Forms (REAPI `remote_execution.proto`, ByteStream section):
//! - `[{instance_name}/]blobs/[{digest_function}/]{hash}/{size}[/{filename}]` (Read)
//! - `[{instance_name}/]uploads/{uuid}/blobs/[{digest_function}/]{hash}/{size}[/{metadata}]` (Write)
//! - `[{instance_name}/][uploads/{uuid}/]compressed-blobs/{compressor}/[{digest_function}/]{uncompressed_hash}/{uncompressed_size}[/…]`
//!
//! The digest function is named in the path only for functions newer than the original set; it
//! is otherwise inferred from the hash length, and a 64-hex-digit hash may be SHA-256 or BLAKE3:
//! [`DigestGuess::Ambiguous`] says so rather than picking one. Compressed blobs carry the digest of
//! the *uncompressed* bytes, which `inspect` cannot check without the compressor: they are flagged.

use thiserror::Error;

/// A digest function a resource name can imply.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DigestFunction {
    /// 64 hex digits (the REAPI default).
    Sha256,
    /// 40 hex digits.
    Sha1,
    /// 32 hex digits.
    Md5,
    /// 96 hex digits.
    Sha384,
    /// 128 hex digits.
    Sha512,
    /// 64 hex digits, named in the path (`blake3`).
    Blake3,
    /// Any other function named in the path (`sha256tree`, `vso`, …), lower case as written.
    Other(String),
}

/// What the digest function of a resource is known to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DigestGuess {
    /// Named in the path, or the only function with this hash length.
    Known(DigestFunction),
    /// Several functions have this hash length (64 hex digits: SHA-256 or BLAKE3).
    Ambiguous(Vec<DigestFunction>),
    /// No function has this hash length.
    Unknown,
}

/// A parsed resource name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceName {
    /// Everything before `blobs`/`uploads`/`compressed-blobs` (may be empty or contain `/`).
    pub instance_name: String,
    /// The upload id of a Write (`uploads/{uuid}/…`).
    pub upload_id: Option<String>,
    /// The compressor of `compressed-blobs/{compressor}/…` (then the digest is of the
    /// uncompressed bytes and faultline does not check it).
    pub compressor: Option<String>,
    /// A digest function named in the path.
    pub digest_function: Option<String>,
    /// The hash, hex as written.
    pub hash: String,
    /// The size in bytes (uncompressed for compressed blobs).
    pub size: u64,
    /// What followed the size (a filename or upload metadata), without the leading `/`.
    pub rest: Option<String>,
}

/// Why a string is not a ByteStream blob resource name.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ResourceNameError {
    /// No `blobs` or `compressed-blobs` segment followed by a hash and a size.
    #[error("no blobs/{{hash}}/{{size}} in the resource name")]
    NoBlob,
    /// `uploads` not followed by an id and a blob.
    #[error("uploads/ without an upload id and a blob")]
    BadUpload,
}

/// Lower-case names the REAPI `DigestFunction` enum defines, as they appear in paths.
const NAMED_FUNCTIONS: [&str; 9] = [
    "sha256",
    "sha1",
    "md5",
    "vso",
    "sha384",
    "sha512",
    "murmur3",
    "sha256tree",
    "blake3",
];

fn is_hex(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_hexdigit())
}

fn parse_size(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Parses `[{digest_function}/]{hash}/{size}[/rest]` from `segments`.
fn blob_tail(segments: &[&str]) -> Option<(Option<String>, String, u64, Option<String>)> {
    let (function, at) = match segments.first() {
        Some(first) if NAMED_FUNCTIONS.contains(first) && segments.len() >= 3 => {
            (Some(first.to_string()), 1)
        }
        _ => (None, 0),
    };
    let hash = segments.get(at)?;
    let size = parse_size(segments.get(at + 1)?)?;
    if !is_hex(hash) {
        return None;
    }
    let rest = segments
        .get(at + 2..)
        .filter(|r| !r.is_empty())
        .map(|r| r.join("/"));
    Some((function, hash.to_string(), size, rest))
}

impl ResourceName {
    /// Parses a resource name; see the module docs for the forms.
    pub fn parse(name: &str) -> Result<ResourceName, ResourceNameError> {
        let segments: Vec<&str> = name.split('/').collect();
        for (i, segment) in segments.iter().enumerate() {
            let (compressor, tail_at) = match *segment {
                "blobs" => (None, i + 1),
                "compressed-blobs" => match segments.get(i + 1) {
                    Some(compressor) => (Some(compressor.to_string()), i + 2),
                    None => continue,
                },
                _ => continue,
            };
            let Some((digest_function, hash, size, rest)) = blob_tail(&segments[tail_at..]) else {
                continue;
            };
            let (instance_end, upload_id) = if i >= 2 && segments[i - 2] == "uploads" {
                (i - 2, Some(segments[i - 1].to_string()))
            } else {
                (i, None)
            };
            if upload_id.is_none() && segments[..i].contains(&"uploads") {
                return Err(ResourceNameError::BadUpload);
            }
            return Ok(ResourceName {
                instance_name: segments[..instance_end].join("/"),
                upload_id,
                compressor,
                digest_function,
                hash,
                size,
                rest,
            });
        }
        Err(ResourceNameError::NoBlob)
    }

    /// Whether `inspect` can check bytes against this name's digest (not for compressed blobs).
    pub fn is_checkable(&self) -> bool {
        self.compressor.is_none()
    }

    /// The digest function: named in the path, or inferred from the hash length.
    pub fn digest(&self) -> DigestGuess {
        if let Some(named) = &self.digest_function {
            return DigestGuess::Known(match named.as_str() {
                "sha256" => DigestFunction::Sha256,
                "sha1" => DigestFunction::Sha1,
                "md5" => DigestFunction::Md5,
                "sha384" => DigestFunction::Sha384,
                "sha512" => DigestFunction::Sha512,
                "blake3" => DigestFunction::Blake3,
                other => DigestFunction::Other(other.to_string()),
            });
        }
        match self.hash.len() {
            64 => DigestGuess::Ambiguous(vec![DigestFunction::Sha256, DigestFunction::Blake3]),
            40 => DigestGuess::Known(DigestFunction::Sha1),
            32 => DigestGuess::Known(DigestFunction::Md5),
            96 => DigestGuess::Known(DigestFunction::Sha384),
            128 => DigestGuess::Known(DigestFunction::Sha512),
            _ => DigestGuess::Unknown,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn reads_with_and_without_instance_names() {
        let plain = ResourceName::parse(&format!("blobs/{SHA256}/0")).expect("valid");
        assert_eq!(plain.instance_name, "");
        assert_eq!(plain.hash, SHA256);
        assert_eq!(plain.size, 0);
        assert!(plain.is_checkable());
        assert_eq!(
            plain.digest(),
            DigestGuess::Ambiguous(vec![DigestFunction::Sha256, DigestFunction::Blake3])
        );

        let nested =
            ResourceName::parse(&format!("main/ci/blobs/{SHA256}/42/out.o")).expect("valid");
        assert_eq!(nested.instance_name, "main/ci");
        assert_eq!(nested.size, 42);
        assert_eq!(nested.rest.as_deref(), Some("out.o"));
    }

    #[test]
    fn uploads_carry_their_id() {
        let name = format!("inst/uploads/3f2a-11/blobs/{SHA256}/1048576/meta/data");
        let parsed = ResourceName::parse(&name).expect("valid");
        assert_eq!(parsed.instance_name, "inst");
        assert_eq!(parsed.upload_id.as_deref(), Some("3f2a-11"));
        assert_eq!(parsed.size, 1_048_576);
        assert_eq!(parsed.rest.as_deref(), Some("meta/data"));
        assert_eq!(
            ResourceName::parse(&format!("uploads/blobs/{SHA256}/1")),
            Err(ResourceNameError::BadUpload)
        );
    }

    #[test]
    fn compressed_blobs_are_flagged_not_checked() {
        let parsed =
            ResourceName::parse(&format!("x/compressed-blobs/zstd/{SHA256}/123")).expect("valid");
        assert_eq!(parsed.compressor.as_deref(), Some("zstd"));
        assert_eq!(parsed.size, 123);
        assert!(!parsed.is_checkable());
        let upload = format!("uploads/u1/compressed-blobs/zstd/{SHA256}/5");
        let parsed = ResourceName::parse(&upload).expect("valid");
        assert_eq!(parsed.upload_id.as_deref(), Some("u1"));
    }

    #[test]
    fn digest_functions_come_from_the_path_or_the_length() {
        let named = ResourceName::parse(&format!("blobs/blake3/{SHA256}/9")).expect("valid");
        assert_eq!(named.digest(), DigestGuess::Known(DigestFunction::Blake3));
        assert_eq!(named.digest_function.as_deref(), Some("blake3"));
        let cases = [
            (40, DigestGuess::Known(DigestFunction::Sha1)),
            (32, DigestGuess::Known(DigestFunction::Md5)),
            (96, DigestGuess::Known(DigestFunction::Sha384)),
            (128, DigestGuess::Known(DigestFunction::Sha512)),
            (20, DigestGuess::Unknown),
        ];
        for (len, expected) in cases {
            let name = format!("blobs/{}/1", "a".repeat(len));
            assert_eq!(
                ResourceName::parse(&name).expect("valid").digest(),
                expected
            );
        }
    }

    #[test]
    fn non_blob_names_are_refused() {
        for name in [
            "",
            "blobs",
            "blobs/xyz/1",
            "blobs/abc/-1",
            "actions/abc/1",
            "blobs/abc",
        ] {
            assert_eq!(
                ResourceName::parse(name),
                Err(ResourceNameError::NoBlob),
                "{name}"
            );
        }
    }
}
