//! Finds a content address (digest, size) in a request target and checks a body against it.
//!
//! Recognized layouts, first match wins:
//! - git-annex keys anywhere in the target (see `annex_key`): a `key=` query parameter (p2phttp),
//!   a whole path segment (`…/SHA256E-s1234--<hex>.ext`, p2phttp `…/v4/key/KEY`), or the tail of a
//!   segment (WebDAV `git-annex-webdav-tmp-KEY`). Every backend git-annex lists; the `-s` size is
//!   checked too. A chunk key (`-S<size>-C<n>`) addresses a slice of its object: its own length is
//!   checked here, its bytes with the whole object (`objects`).
//! - CAS: `blobs/<64hex>/<size>` (sha256 and size, the Bazel remote cache layout).
//! - DVC: the hex digest split after two characters over two path segments
//!   (`/files/md5/99/4e368ae5a22a6db1943a397e7c4308`, `/99/4e36…`), or whole in one segment;
//!   32 hex digits are md5, 64 are sha256; a `.dir` suffix (DVC directory manifests) is allowed.

use serde::Serialize;

use super::annex_key::{self, Chunk};
pub use super::digest::HashAlgo;

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
    /// S3's own integrity data (Content-MD5, x-amz-checksum-*, ETag): `key` is `/BUCKET/KEY`,
    /// `backend` the header (or trailer) that said it.
    S3,
}

/// A digest (and maybe a size) the target promises the body has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContentAddress {
    /// Digest algorithm (`none` for git-annex keys without a digest, e.g. WORM).
    pub algo: HashAlgo,
    /// Expected digest, lowercase hex (empty when `algo` is `none`).
    pub digest: String,
    /// Expected size of the whole object in bytes, when the scheme carries one.
    pub size: Option<u64>,
    /// Naming scheme.
    pub scheme: Scheme,
    /// The git-annex key as written in the target.
    pub key: Option<String>,
    /// The git-annex backend (`SHA256E`).
    pub backend: Option<String>,
    /// For a git-annex chunk key: which slice of the object this is.
    pub chunk: Option<Chunk>,
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
    /// The size matches (or is not given) but the digest could not be recomputed.
    NotChecked {
        /// Why (an algorithm no crate implements, a key without a digest).
        reason: String,
    },
}

impl AddressCheck {
    /// True for a size or digest mismatch.
    pub fn is_mismatch(&self) -> bool {
        matches!(
            self,
            AddressCheck::DigestMismatch { .. } | AddressCheck::SizeMismatch { .. }
        )
    }

    /// One phrase: "matches", "MISMATCH: …", "not checked: …".
    pub fn describe(&self) -> String {
        match self {
            AddressCheck::Matches => "matches".into(),
            AddressCheck::DigestMismatch { expected, actual } => {
                format!("MISMATCH: expected {expected}, actual {actual}")
            }
            AddressCheck::SizeMismatch { expected, actual } => {
                format!("MISMATCH: expected {expected} bytes, actual {actual}")
            }
            AddressCheck::NotChecked { reason } => format!("not checked: {reason}"),
        }
    }
}

impl ContentAddress {
    /// True when the client named this address before sending (a digest in its path, as DVC and
    /// git-annex do, Content-MD5, x-amz-checksum-*, a hex x-amz-content-sha256): a body that
    /// matches it is the body the client meant. An S3 ETag is the server's MD5 of what it
    /// received: a match proves the bytes crossed unchanged, never that they were the right ones
    /// (a client that retried without rewinding its file sent an empty body that its ETag
    /// "verified").
    pub fn is_clients(&self) -> bool {
        !(self.scheme == Scheme::S3
            && self
                .backend
                .as_deref()
                .is_some_and(|b| b.starts_with("ETag")))
    }

    /// The length a body with this address must have: the chunk's for a chunk key, else the
    /// object's size.
    pub fn expected_len(&self) -> Option<u64> {
        match (self.chunk, self.size) {
            (Some(chunk), Some(size)) => Some(chunk.len(size)),
            (Some(_), None) => None,
            (None, size) => size,
        }
    }

    /// The address with its chunk fields dropped: the whole object its chunks make up.
    pub fn object(&self) -> ContentAddress {
        let key = self
            .key
            .as_deref()
            .and_then(annex_key::parse)
            .map(|k| k.object_key());
        ContentAddress {
            chunk: None,
            key: key.or_else(|| self.key.clone()),
            ..self.clone()
        }
    }

    /// How this address names itself in findings: the git-annex key, or the algorithm and digest.
    pub fn name(&self) -> String {
        match &self.key {
            Some(key) => key.clone(),
            None => format!("{} {}", self.algo.name(), self.digest),
        }
    }

    /// Compares a body of `len` bytes whose digest with [`Self::algo`] is `actual` (`None` when it
    /// cannot be computed). Size is checked first: when it is wrong the digest is necessarily
    /// wrong too, and the size says more. A chunk's digest is the whole object's: only its
    /// length is checked here.
    pub fn check(&self, len: u64, actual: Option<&str>) -> AddressCheck {
        if let Some(expected) = self.expected_len().filter(|&s| s != len) {
            return AddressCheck::SizeMismatch {
                expected,
                actual: len,
            };
        }
        if let Some(chunk) = self.chunk {
            return AddressCheck::NotChecked {
                reason: format!(
                    "chunk {} of {}: its bytes are checked with the whole object",
                    chunk.number,
                    self.object().name()
                ),
            };
        }
        if let Some(reason) = self.algo.not_checked() {
            return AddressCheck::NotChecked {
                reason: format!("{}: {reason}", self.backend.as_deref().unwrap_or("address")),
            };
        }
        match actual {
            Some(actual) if actual.eq_ignore_ascii_case(&self.digest) => AddressCheck::Matches,
            Some(actual) => AddressCheck::DigestMismatch {
                expected: self.digest.clone(),
                actual: actual.to_ascii_lowercase(),
            },
            None => AddressCheck::NotChecked {
                reason: "the body was not kept".into(),
            },
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

/// `%XX` escapes decoded (invalid escapes kept as they are); `+` kept.
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("");
            if let Ok(v) = u8::from_str_radix(hex, 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The first value of query parameter `name`, percent-decoded.
pub fn query_param(target: &str, name: &str) -> Option<String> {
    let query = target.split_once('?')?.1.split('#').next()?;
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then(|| percent_decode(v))
    })
}

fn annex(key: annex_key::AnnexKey) -> ContentAddress {
    ContentAddress {
        algo: key.algo,
        digest: key.digest,
        size: key.size,
        scheme: Scheme::GitAnnex,
        key: Some(key.text),
        backend: Some(key.backend),
        chunk: key.chunk,
    }
}

/// Finds the content address in a request target, if it has one (see the module docs for layouts).
pub fn parse_target(target: &str) -> Option<ContentAddress> {
    if let Some(key) = query_param(target, "key").and_then(|k| annex_key::parse_p2phttp(&k)) {
        return Some(annex(key));
    }
    let segments: Vec<String> = path_of(target)
        .split('/')
        .filter(|s| !s.is_empty())
        .map(percent_decode)
        .collect();
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    // A p2phttp download: `…/git-annex/…/key/KEY`, the key possibly base64 encoded.
    if segments.contains(&"git-annex") {
        if let [.., "key", key] = segments.as_slice() {
            if let Some(key) = annex_key::parse_p2phttp(key) {
                return Some(annex(key));
            }
        }
    }
    if let Some(key) = segments.iter().rev().find_map(|s| annex_key::find_in(s)) {
        return Some(annex(key));
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

fn plain(algo: HashAlgo, digest: String, size: Option<u64>, scheme: Scheme) -> ContentAddress {
    ContentAddress {
        algo,
        digest: digest.to_ascii_lowercase(),
        size,
        scheme,
        key: None,
        backend: None,
        chunk: None,
    }
}

fn dvc(algo: HashAlgo, digest: String) -> ContentAddress {
    plain(algo, digest, None, Scheme::Dvc)
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
    Some(plain(
        HashAlgo::Sha256,
        digest.to_string(),
        Some(size),
        Scheme::Cas,
    ))
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
        let chunk = parse_target(&format!("/SHA256E-s10-S5-C2--{SHA}")).expect("chunk key");
        assert_eq!(chunk.expected_len(), Some(5));
        assert!(matches!(
            chunk.check(5, None),
            AddressCheck::NotChecked { .. }
        ));
        assert!(chunk.check(4, None).is_mismatch());
        assert_eq!(chunk.object().key, Some(format!("SHA256E-s10--{SHA}")));
        let worm = parse_target("/WORM-s10-m1--name.txt").expect("worm");
        assert_eq!(worm.algo, HashAlgo::None);
        assert!(matches!(
            worm.check(10, None),
            AddressCheck::NotChecked { .. }
        ));
        let p2p = parse_target(&format!(
            "/git-annex/u/v4/put?key=SHA256E-s4--{SHA}.t%78t&clientuuid=c&offset=0"
        ))
        .expect("key= parameter");
        assert_eq!(p2p.key, Some(format!("SHA256E-s4--{SHA}.txt")));
        let b64 = "U0hBMjU2RS1zNC0tOWY4NmQwODE4ODRjN2Q2NTlhMmZlYWEwYzU1YWQwMTVhM2JmNGYxYjJiMGI4MjJjZDE1ZDZjMTViMGYwMGEwOC50eHQ=";
        for target in [
            format!("/git-annex/u/v4/put?key=%5B{}%5D", b64.replace('=', "%3D")),
            format!("/git-annex/u/v4/key/[{b64}]?clientuuid=c"),
        ] {
            let a = parse_target(&target).expect("base64 p2phttp key");
            assert_eq!(a.key, Some(format!("SHA256E-s4--{SHA}.txt")), "{target}");
        }
        let tmp = parse_target(&format!("/dav/tmp/git-annex-webdav-tmp-SHA256E-s4--{SHA}"))
            .expect("webdav temporary name");
        assert_eq!(tmp.size, Some(4));
        assert_eq!(percent_decode("a%2Fb%zz%4"), "a/b%zz%4");
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
        assert_eq!(a.check(4, Some(SHA)), AddressCheck::Matches);
        assert_eq!(
            a.check(5, Some(SHA)),
            AddressCheck::SizeMismatch {
                expected: 4,
                actual: 5
            }
        );
        let bad = "00".repeat(32);
        assert!(matches!(
            a.check(4, Some(&bad)),
            AddressCheck::DigestMismatch { .. }
        ));
        assert!(a.check(4, Some(&bad)).is_mismatch());
    }
}
