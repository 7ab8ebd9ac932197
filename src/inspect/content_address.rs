//! Finds a content address (md5/sha256 digest, optional size) in a request target and checks a body against it.
//!
//! Recognized layouts (the last match in the path wins):
//! - DVC: the hex digest split after two characters over two path segments
//!   (`/files/md5/99/4e368ae5a22a6db1943a397e7c4308`, `/99/4e36…`), or whole in one segment;
//!   32 hex digits are md5, 64 are sha256; a `.dir` suffix (DVC directory manifests) is allowed.
//! - git-annex keys: `SHA256E-s1234--<64hex>.ext`, `SHA256-s1234--<64hex>`, `MD5E-s1234--<32hex>.ext`,
//!   `MD5-…`; the `-sN` size is checked too. Chunked keys (`-S…-C…`) address a chunk, not the body.
//! - CAS: `blobs/<64hex>/<size>` (sha256 and size, the Bazel remote cache layout).

use serde::Serialize;

/// Digest algorithm of a content address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HashAlgo {
    /// 128-bit MD5, 32 hex digits.
    Md5,
    /// SHA-256, 64 hex digits.
    Sha256,
}

/// Which naming scheme the address was found in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scheme {
    /// DVC cache/remote layout.
    Dvc,
    /// git-annex key.
    GitAnnex,
    /// `blobs/<sha256>/<size>`.
    Cas,
}

/// A digest (and maybe a size) the target promises the body has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContentAddress {
    /// Digest algorithm.
    pub algo: HashAlgo,
    /// Expected digest, lowercase hex.
    pub digest: String,
    /// Expected size in bytes, when the scheme carries one.
    pub size: Option<u64>,
    /// Naming scheme.
    pub scheme: Scheme,
}

/// Result of checking a body against its address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum AddressCheck {
    /// Digest (and size, if given) match.
    Matches,
    /// The body's digest differs from the address.
    DigestMismatch {
        /// Digest in the target.
        expected: String,
        /// Digest of the bytes sent.
        actual: String,
    },
    /// The body's length differs from the size in the address.
    SizeMismatch {
        /// Size in the target.
        expected: u64,
        /// Bytes sent.
        actual: u64,
    },
}

impl AddressCheck {
    /// True for any mismatch.
    pub fn is_mismatch(&self) -> bool {
        !matches!(self, AddressCheck::Matches)
    }
}

impl ContentAddress {
    /// Compares a body's length and digests (lowercase hex) with the address. Size is checked first:
    /// when it is wrong the digest is necessarily wrong too, and the size says more.
    pub fn check(&self, len: u64, md5_hex: &str, sha256_hex: &str) -> AddressCheck {
        if let Some(expected) = self.size.filter(|&s| s != len) {
            return AddressCheck::SizeMismatch {
                expected,
                actual: len,
            };
        }
        let actual = match self.algo {
            HashAlgo::Md5 => md5_hex,
            HashAlgo::Sha256 => sha256_hex,
        };
        if actual.eq_ignore_ascii_case(&self.digest) {
            AddressCheck::Matches
        } else {
            AddressCheck::DigestMismatch {
                expected: self.digest.clone(),
                actual: actual.to_ascii_lowercase(),
            }
        }
    }
}

fn is_hex(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn algo_for(len: usize) -> Option<HashAlgo> {
    match len {
        32 => Some(HashAlgo::Md5),
        64 => Some(HashAlgo::Sha256),
        _ => None,
    }
}

/// The path of a request target: query and fragment dropped, scheme and authority of an
/// absolute-form target dropped.
fn path_of(target: &str) -> &str {
    super::target::origin_form(target)
        .split(['?', '#'])
        .next()
        .unwrap_or("")
}

/// Finds the content address in a request target, if it has one (see the module docs for layouts).
pub fn parse_target(target: &str) -> Option<ContentAddress> {
    let segments: Vec<&str> = path_of(target)
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    if let Some(last) = segments.last() {
        if let Some(a) = git_annex_key(last) {
            return Some(a);
        }
    }
    for i in (0..segments.len()).rev() {
        if let Some(a) = cas(&segments, i) {
            return Some(a);
        }
    }
    for i in (0..segments.len()).rev() {
        let seg = segments[i].strip_suffix(".dir").unwrap_or(segments[i]);
        if let Some(algo) = algo_for(seg.len()).filter(|_| is_hex(seg)) {
            // A whole digest in one segment; if it is the tail of a split digest, prefer the split form.
            if i == 0 || !(segments[i - 1].len() == 2 && is_hex(segments[i - 1])) {
                return Some(dvc(algo, seg.to_string()));
            }
        }
        if i > 0 && segments[i - 1].len() == 2 && is_hex(segments[i - 1]) && is_hex(seg) {
            if let Some(algo) = algo_for(seg.len() + 2) {
                return Some(dvc(algo, format!("{}{}", segments[i - 1], seg)));
            }
        }
    }
    None
}

fn dvc(algo: HashAlgo, digest: String) -> ContentAddress {
    ContentAddress {
        algo,
        digest: digest.to_ascii_lowercase(),
        size: None,
        scheme: Scheme::Dvc,
    }
}

fn cas(segments: &[&str], i: usize) -> Option<ContentAddress> {
    if segments[i] != "blobs" {
        return None;
    }
    let digest = segments.get(i + 1)?;
    let digest = digest.strip_prefix("sha256:").unwrap_or(digest);
    if digest.len() != 64 || !is_hex(digest) {
        return None;
    }
    let size = segments.get(i + 2)?.parse().ok()?;
    Some(ContentAddress {
        algo: HashAlgo::Sha256,
        digest: digest.to_ascii_lowercase(),
        size: Some(size),
        scheme: Scheme::Cas,
    })
}

/// Parses `BACKEND-sSIZE[-mMTIME]--NAME`, where NAME is the hex digest (plus an extension for `E` backends).
fn git_annex_key(segment: &str) -> Option<ContentAddress> {
    let (fields, name) = segment.split_once("--")?;
    let mut parts = fields.split('-');
    let backend = parts.next()?;
    let (algo, with_ext) = match backend {
        "SHA256" => (HashAlgo::Sha256, false),
        "SHA256E" => (HashAlgo::Sha256, true),
        "MD5" => (HashAlgo::Md5, false),
        "MD5E" => (HashAlgo::Md5, true),
        _ => return None,
    };
    let mut size = None;
    for field in parts {
        match field.as_bytes().first()? {
            b's' => size = Some(field[1..].parse().ok()?),
            b'm' => {}
            // A chunk of a larger object (S = chunk size, C = chunk number): not this body's address.
            b'S' | b'C' => return None,
            _ => return None,
        }
    }
    let hex_len = match algo {
        HashAlgo::Md5 => 32,
        HashAlgo::Sha256 => 64,
    };
    let digest = name.get(..hex_len)?;
    let rest = &name[hex_len..];
    if !is_hex(digest) || !(rest.is_empty() || (with_ext && rest.starts_with('.'))) {
        return None;
    }
    Some(ContentAddress {
        algo,
        digest: digest.to_ascii_lowercase(),
        size,
        scheme: Scheme::GitAnnex,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MD5: &str = "994e368ae5a22a6db1943a397e7c4308";
    const SHA: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    #[test]
    fn dvc_layouts() {
        let a = parse_target("/files/md5/99/4e368ae5a22a6db1943a397e7c4308").expect("dvc");
        assert_eq!(
            (a.algo, a.digest.as_str(), a.scheme),
            (HashAlgo::Md5, MD5, Scheme::Dvc)
        );
        let a = parse_target("/99/4E368AE5A22A6DB1943A397E7C4308?x=1").expect("dvc");
        assert_eq!(a.digest, MD5);
        let a = parse_target("http://remote:8080/cache/99/4e368ae5a22a6db1943a397e7c4308.dir")
            .expect("dir");
        assert_eq!(a.digest, MD5);
        let a = parse_target(&format!("/store/{SHA}")).expect("whole sha");
        assert_eq!(a.algo, HashAlgo::Sha256);
        let split = format!("/{}/{}", &SHA[..2], &SHA[2..]);
        assert_eq!(
            parse_target(&split).map(|a| a.digest),
            Some(SHA.to_string())
        );
    }

    #[test]
    fn git_annex_keys() {
        let a = parse_target(&format!("/annex/objects/ab/cd/SHA256E-s1234--{SHA}.tar.gz"))
            .expect("key");
        assert_eq!((a.size, a.scheme), (Some(1234), Scheme::GitAnnex));
        let a = parse_target(&format!("/x/MD5E-s5-m1700000000--{MD5}.txt")).expect("md5e");
        assert_eq!((a.algo, a.size), (HashAlgo::Md5, Some(5)));
        assert!(parse_target(&format!("/SHA256-s10--{SHA}")).is_some());
        assert!(
            parse_target(&format!("/SHA256-s10--{SHA}.ext")).is_none(),
            "no ext without E"
        );
        assert!(
            parse_target(&format!("/SHA256E-s10-S5-C1--{SHA}")).is_none(),
            "chunk key"
        );
        assert!(parse_target(&format!("/WORM-s10--{MD5}")).is_none());
    }

    #[test]
    fn cas_blobs_and_non_addresses() {
        let a = parse_target(&format!("/uploads/u-1/blobs/{SHA}/42")).expect("cas");
        assert_eq!((a.scheme, a.size), (Scheme::Cas, Some(42)));
        assert_eq!(parse_target("/upload/file.bin"), None);
        assert_eq!(parse_target("/99/4e368ae5"), None);
        assert_eq!(parse_target("*"), None);
        assert_eq!(parse_target(""), None);
        assert_eq!(parse_target("/zz/4e368ae5a22a6db1943a397e7c4308"), None);
    }

    #[test]
    fn check_reports_size_then_digest() {
        let a = parse_target(&format!("/SHA256E-s4--{SHA}.txt")).expect("key");
        assert_eq!(a.check(4, "", SHA), AddressCheck::Matches);
        assert_eq!(
            a.check(5, "", SHA),
            AddressCheck::SizeMismatch {
                expected: 4,
                actual: 5
            }
        );
        let bad = "00".repeat(32);
        assert!(matches!(
            a.check(4, "", &bad),
            AddressCheck::DigestMismatch { .. }
        ));
        assert!(a.check(4, "", &bad).is_mismatch());
    }
}
