//! Parses git-annex keys (`SHA256E-s1234--<hex>.ext`, chunk keys `-S<size>-C<n>`, every backend git-annex lists).
//!
//! A key is `BACKEND[-sSIZE][-mMTIME][-SCHUNKSIZE-CCHUNK]--NAME`. For hashing backends NAME is the
//! hex digest (plus the file's extension for the `…E` variants); WORM, URL, VURL, GITBUNDLE,
//! GITMANIFEST and external (`X…`) backends name content without a digest we could recompute.

use serde::Serialize;

use super::digest::HashAlgo;

/// A chunk key: one piece of a larger object (git-annex `chunk=` special remotes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Chunk {
    /// Chunk size `S`: every chunk but the last has this many bytes.
    pub size: u64,
    /// 1-based chunk number `C`: the chunk starts at `(number - 1) * size`.
    pub number: u64,
}

impl Chunk {
    /// Where this chunk starts in the object.
    pub fn offset(&self) -> u64 {
        self.number.saturating_sub(1).saturating_mul(self.size)
    }

    /// This chunk's length, when the object's size is known.
    pub fn len(&self, object_size: u64) -> u64 {
        object_size.saturating_sub(self.offset()).min(self.size)
    }
}

/// A parsed key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnexKey {
    /// The key as written, chunk fields included.
    pub text: String,
    /// The backend (`SHA256E`).
    pub backend: String,
    /// Its digest algorithm ([`HashAlgo::None`] for backends without one).
    pub algo: HashAlgo,
    /// The digest, lowercase hex; empty for [`HashAlgo::None`].
    pub digest: String,
    /// The whole object's size (`-s`), when given.
    pub size: Option<u64>,
    /// The chunk, for a chunk key.
    pub chunk: Option<Chunk>,
}

impl AnnexKey {
    /// The key of the whole object (chunk fields removed): what chunks of one object share.
    pub fn object_key(&self) -> String {
        let Some((fields, name)) = self.text.split_once("--") else {
            return self.text.clone();
        };
        let mut parts = fields.split('-');
        let mut kept: Vec<&str> = parts.next().into_iter().collect();
        kept.extend(parts.filter(|f| !f.starts_with('S') && !f.starts_with('C')));
        format!("{}--{name}", kept.join("-"))
    }
}

/// The digest algorithm of a hashing backend (the `E` variant included), or `None` for a
/// backend that names content without a digest; `Err` for a name that is no backend.
fn backend_algo(backend: &str) -> Result<HashAlgo, ()> {
    let base = backend.strip_suffix('E').unwrap_or(backend);
    Ok(match base {
        "MD5" => HashAlgo::Md5,
        "SHA1" => HashAlgo::Sha1,
        "SHA224" => HashAlgo::Sha224,
        "SHA256" => HashAlgo::Sha256,
        "SHA384" => HashAlgo::Sha384,
        "SHA512" => HashAlgo::Sha512,
        "SHA3_224" => HashAlgo::Sha3_224,
        "SHA3_256" => HashAlgo::Sha3_256,
        "SHA3_384" => HashAlgo::Sha3_384,
        "SHA3_512" => HashAlgo::Sha3_512,
        "SKEIN256" => HashAlgo::Skein256,
        "SKEIN512" => HashAlgo::Skein512,
        "BLAKE2B160" => HashAlgo::Blake2b160,
        "BLAKE2B224" => HashAlgo::Blake2b224,
        "BLAKE2B256" => HashAlgo::Blake2b256,
        "BLAKE2B384" => HashAlgo::Blake2b384,
        "BLAKE2B512" => HashAlgo::Blake2b512,
        "BLAKE2BP512" => HashAlgo::Blake2bp512,
        "BLAKE2S160" => HashAlgo::Blake2s160,
        "BLAKE2S224" => HashAlgo::Blake2s224,
        "BLAKE2S256" => HashAlgo::Blake2s256,
        "BLAKE2SP224" => HashAlgo::Blake2sp224,
        "BLAKE2SP256" => HashAlgo::Blake2sp256,
        "BLAKE3_256" => HashAlgo::Blake3_256,
        "XXH3" => HashAlgo::Xxh3,
        _ if matches!(
            backend,
            "WORM" | "URL" | "VURL" | "GITBUNDLE" | "GITMANIFEST"
        ) =>
        {
            HashAlgo::None
        }
        // External backends: git-annex-backend-XFOO computes what we cannot.
        _ if backend.len() > 1
            && backend.starts_with('X')
            && backend
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()) =>
        {
            HashAlgo::None
        }
        _ => return Err(()),
    })
}

/// Parses `text` as a whole key; `None` when it is not one.
pub fn parse(text: &str) -> Option<AnnexKey> {
    let (fields, name) = text.split_once("--")?;
    let mut parts = fields.split('-');
    let backend = parts.next()?;
    let algo = backend_algo(backend).ok()?;
    let (mut size, mut chunk_size, mut chunk_number) = (None, None, None);
    for field in parts {
        let value = field.get(1..)?;
        match field.as_bytes().first()? {
            b's' => size = Some(value.parse().ok()?),
            b'm' => {
                value.parse::<f64>().ok()?;
            }
            b'S' => chunk_size = Some(value.parse::<u64>().ok().filter(|&s| s > 0)?),
            b'C' => chunk_number = Some(value.parse::<u64>().ok().filter(|&n| n > 0)?),
            _ => return None,
        }
    }
    let chunk = match (chunk_size, chunk_number) {
        (Some(size), Some(number)) => Some(Chunk { size, number }),
        (None, None) => None,
        _ => return None,
    };
    let digest = match algo {
        HashAlgo::None => {
            if name.is_empty() {
                return None;
            }
            String::new()
        }
        _ => {
            let len = algo.hex_len();
            let digest = name.get(..len)?;
            let rest = &name[len..];
            let with_ext = backend.ends_with('E');
            if !digest.bytes().all(|b| b.is_ascii_hexdigit())
                || !(rest.is_empty() || (with_ext && rest.starts_with('.')))
            {
                return None;
            }
            digest.to_ascii_lowercase()
        }
    };
    Some(AnnexKey {
        text: text.to_string(),
        backend: backend.to_string(),
        algo,
        digest,
        size,
        chunk,
    })
}

/// Parses a key as p2phttp carries it (`key=` and the `…/key/KEY` segment): as written, or
/// base64 encoded as git-annex's servant API does for keys that are not UTF-8 text (wrapped in
/// `[…]`; development versions of the API encoded every key, unwrapped).
pub fn parse_p2phttp(text: &str) -> Option<AnnexKey> {
    use base64::Engine;
    if let Some(key) = parse(text) {
        return Some(key);
    }
    if text.len() > 8192 {
        return None;
    }
    let b64 = text
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .unwrap_or(text);
    let bytes = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    parse(&String::from_utf8_lossy(&bytes))
}

/// Finds a key inside `segment`: the whole of it, or its tail after a `-` or `_` (WebDAV
/// temporary names `git-annex-webdav-tmp-KEY`, prefixes some servers add).
pub fn find_in(segment: &str) -> Option<AnnexKey> {
    if segment.len() > 4096 {
        return None;
    }
    if let Some(key) = parse(segment) {
        return Some(key);
    }
    segment
        .char_indices()
        .filter(|&(_, c)| c == '-' || c == '_')
        .find_map(|(i, _)| parse(&segment[i + 1..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "f6bfd632e56d745c5b6ec8db52bf92b11c2666a1fe18d80cf4023bb32541f338";

    #[test]
    fn hashing_backends_sizes_and_extensions() {
        let k = parse(&format!("SHA256E-s12--{SHA}.tar.gz")).expect("key");
        assert_eq!(
            (k.algo, k.size, k.chunk),
            (HashAlgo::Sha256, Some(12), None)
        );
        assert_eq!(k.digest, SHA);
        assert!(
            parse(&format!("SHA256-s12--{SHA}.txt")).is_none(),
            "no ext without E"
        );
        assert!(
            parse(&format!("SHA256-s12--{}", &SHA[1..])).is_none(),
            "short digest"
        );
        let k = parse("XXH3-s12--4203304699520a93").expect("xxh3");
        assert_eq!(k.algo, HashAlgo::Xxh3);
        let k = parse("BLAKE2B160E-s12-m1700000000--fafc9b82089bbd5187e5effff036790d53644d49.x")
            .expect("blake2b160e with mtime");
        assert_eq!(k.algo, HashAlgo::Blake2b160);
        assert!(parse("NOPE-s1--00").is_none());
        assert!(parse("SHA256E-q1--00").is_none(), "unknown field");
    }

    #[test]
    fn keys_without_digests_and_chunks() {
        let k = parse("WORM-s12-m1795909316--f.txt").expect("worm");
        assert_eq!(
            (k.algo, k.digest.as_str(), k.size),
            (HashAlgo::None, "", Some(12))
        );
        assert_eq!(
            parse("URL--http&c%%example.com").map(|k| k.algo),
            Some(HashAlgo::None)
        );
        assert_eq!(parse("XFOO-s3--abc").map(|k| k.algo), Some(HashAlgo::None));
        let k = parse(&format!("SHA256E-s300000-S100000-C3--{SHA}.bin")).expect("chunk");
        let chunk = k.chunk.expect("chunk");
        assert_eq!((chunk.offset(), chunk.len(300_000)), (200_000, 100_000));
        assert_eq!(
            Chunk {
                size: 100_000,
                number: 4
            }
            .len(350_000),
            50_000
        );
        assert_eq!(k.object_key(), format!("SHA256E-s300000--{SHA}.bin"));
        assert!(
            parse(&format!("SHA256E-s3-S1--{SHA}")).is_none(),
            "S without C"
        );
    }

    /// `git annex version` of the pinned git-annex 10.20261026, its "key/value backends" line.
    const BACKENDS: &str = "SHA256E SHA256 SHA512E SHA512 SHA224E SHA224 SHA384E SHA384 \
        SHA3_256E SHA3_256 SHA3_512E SHA3_512 SHA3_224E SHA3_224 SHA3_384E SHA3_384 SKEIN256E \
        SKEIN256 SKEIN512E SKEIN512 BLAKE2B256E BLAKE2B256 BLAKE2B512E BLAKE2B512 BLAKE2B160E \
        BLAKE2B160 BLAKE2B224E BLAKE2B224 BLAKE2B384E BLAKE2B384 BLAKE2BP512E BLAKE2BP512 \
        BLAKE2S256E BLAKE2S256 BLAKE2S160E BLAKE2S160 BLAKE2S224E BLAKE2S224 BLAKE2SP256E \
        BLAKE2SP256 BLAKE2SP224E BLAKE2SP224 BLAKE3_256E BLAKE3_256 XXH3E XXH3 SHA1E SHA1 MD5E \
        MD5 WORM URL GITBUNDLE GITMANIFEST VURL X*";

    /// Every backend git-annex lists parses, and is either checked (a hasher exists) or
    /// reported "not checked" with its name in the reason: none is silently ignored.
    #[test]
    fn every_backend_git_annex_lists_is_checked_or_named_not_checked() {
        use crate::inspect::content_address::{parse_target, AddressCheck};
        use crate::inspect::digest::Hasher;
        let mut not_checked = Vec::new();
        for backend in BACKENDS.split_whitespace() {
            let backend = backend.replace('*', "FOO"); // external: git-annex-backend-XFOO
            let probe = parse(&format!("{backend}-s3--x")).or_else(|| {
                // A hashing backend: find its digest length.
                (8..=128)
                    .step_by(8)
                    .find_map(|n| parse(&format!("{backend}-s3--{}", "a".repeat(n))))
            });
            let key = probe.unwrap_or_else(|| panic!("{backend} does not parse"));
            assert_eq!(key.backend, backend);
            let address = parse_target(&format!("/annex/objects/{}", key.text))
                .unwrap_or_else(|| panic!("{backend}: no address"));
            let check = address.check(3, Some("0"));
            match Hasher::new(key.algo) {
                Some(_) => assert!(
                    matches!(check, AddressCheck::DigestMismatch { .. }),
                    "{backend}: {check:?}"
                ),
                None => {
                    let AddressCheck::NotChecked { reason } = &check else {
                        panic!("{backend} has no hasher but is not reported: {check:?}");
                    };
                    assert!(reason.contains(&backend), "{backend}: {reason}");
                    not_checked.push(backend);
                }
            }
        }
        assert_eq!(
            not_checked,
            [
                "BLAKE2BP512E",
                "BLAKE2BP512",
                "BLAKE2SP256E",
                "BLAKE2SP256",
                "BLAKE2SP224E",
                "BLAKE2SP224",
                "WORM",
                "URL",
                "GITBUNDLE",
                "GITMANIFEST",
                "VURL",
                "XFOO"
            ]
        );
    }

    #[test]
    fn p2phttp_keys_plain_or_base64() {
        use base64::Engine;
        let key = format!("SHA256E-s12--{SHA}.txt");
        let b64 = base64::engine::general_purpose::STANDARD.encode(&key);
        for text in [key.clone(), b64.clone(), format!("[{b64}]")] {
            assert_eq!(
                parse_p2phttp(&text).map(|k| k.text),
                Some(key.clone()),
                "{text}"
            );
        }
        assert!(
            parse_p2phttp("[bm90IGEga2V5]").is_none(),
            "base64 of no key"
        );
        assert!(parse_p2phttp("[%%%]").is_none());
    }

    #[test]
    fn keys_inside_segments() {
        let k = find_in(&format!("git-annex-webdav-tmp-SHA256E-s12--{SHA}.txt")).expect("tmp");
        assert_eq!(k.text, format!("SHA256E-s12--{SHA}.txt"));
        assert!(find_in("plain-file.txt").is_none());
        assert!(find_in(&format!("x_MD5-s1--{}", &SHA[..32])).is_some());
    }
}
