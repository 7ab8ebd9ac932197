//! Reads an `--expect` manifest: what should be stored, one object a line, `PATH SIZE [DIGEST]`.
//!
//! Fields are separated by whitespace; a field starting with `#` begins a comment (so does a
//! line whose first field does). PATH is the request path (`/bucket/key` for S3 whatever the
//! addressing style, the path a DVC remote or the built-in store was sent), percent-decoded, so a
//! key with a space is written `%20`. SIZE is a decimal byte count. DIGEST, optional, is hex:
//! 32 digits are an MD5, 64 a SHA-256 (what `md5sum`/`sha256sum` print). Every malformed line is
//! an error naming the file and the line (`MANIFEST:LINE: message`, exit status 2): an audit that
//! skipped a line it could not read would report a clean bucket it never looked at.

use std::collections::HashMap;
use std::path::Path;

use thiserror::Error;

use super::content_address::percent_decode;
use super::digest::HashAlgo;

/// One object the manifest expects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// 1-based line number.
    pub line: usize,
    /// The path, percent-decoded.
    pub path: String,
    /// Expected size in bytes.
    pub size: u64,
    /// Expected digest: algorithm and lowercase hex.
    pub digest: Option<(HashAlgo, String)>,
}

/// A parsed manifest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Manifest {
    /// The file as given (for messages).
    pub file: String,
    /// Its entries, in file order.
    pub entries: Vec<Entry>,
}

/// Why a manifest cannot be used (exit status 2).
#[derive(Debug, Error)]
pub enum ManifestError {
    /// The file could not be read.
    #[error("{file}: cannot read: {source}")]
    Read {
        /// The manifest path.
        file: String,
        /// Why.
        source: std::io::Error,
    },
    /// A line is malformed.
    #[error("{file}:{line}: {message}")]
    Line {
        /// The manifest path.
        file: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        message: String,
    },
}

impl Manifest {
    /// Reads and parses the manifest at `path`.
    pub fn load(path: &Path) -> Result<Manifest, ManifestError> {
        let file = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|source| ManifestError::Read {
            file: file.clone(),
            source,
        })?;
        Manifest::parse(&file, &bytes)
    }

    /// Parses manifest text; `file` names it in errors. A UTF-8 byte order mark at the start
    /// (what Notepad and other Windows editors write) is skipped: it would otherwise glue
    /// itself to the first PATH, which then "does not start with /".
    pub fn parse(file: &str, bytes: &[u8]) -> Result<Manifest, ManifestError> {
        let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
        let mut entries: Vec<Entry> = Vec::new();
        // PATH → its line: a bucket's manifest can hold millions of lines.
        let mut seen: HashMap<String, usize> = HashMap::new();
        for (i, raw) in bytes.split(|&b| b == b'\n').enumerate() {
            let line = i + 1;
            let error = |message: String| ManifestError::Line {
                file: file.to_string(),
                line,
                message,
            };
            let text = std::str::from_utf8(raw)
                .map_err(|e| error(format!("not UTF-8 (byte {})", e.valid_up_to() + 1)))?;
            let fields: Vec<&str> = text
                .split_whitespace()
                .take_while(|f| !f.starts_with('#'))
                .collect();
            let (path, size, digest) = match fields.as_slice() {
                [] => continue,
                [path, size] => (*path, *size, None),
                [path, size, digest] => (*path, *size, Some(*digest)),
                [_] => return Err(error("expected PATH SIZE [DIGEST], found only PATH".into())),
                more => {
                    return Err(error(format!(
                    "expected PATH SIZE [DIGEST], found {} fields (write a space in PATH as %20)",
                    more.len()
                )))
                }
            };
            if !path.starts_with('/') {
                return Err(error(format!(
                    "PATH {path:?} is not a request path: it must start with / (for S3: /BUCKET/KEY)"
                )));
            }
            let size = match size.parse::<u64>() {
                Ok(n) if size.bytes().all(|b| b.is_ascii_digit()) => n,
                Err(_) if size.bytes().all(|b| b.is_ascii_digit()) => {
                    return Err(error(format!(
                        "SIZE {size} is too large: at most {} bytes",
                        u64::MAX
                    )))
                }
                _ => {
                    // `/bkt/a b.bin 100`: the space split PATH, so its second half is read as
                    // SIZE.
                    let hint = if fields.len() == 3 {
                        " (if PATH has a space, write it as %20)"
                    } else {
                        ""
                    };
                    return Err(error(format!(
                        "SIZE {size:?} is not a number of bytes (decimal digits only){hint}"
                    )));
                }
            };
            let digest = match digest {
                None => None,
                Some(d) if !d.bytes().all(|b| b.is_ascii_hexdigit()) => {
                    return Err(error(format!("DIGEST {d:?} is not hexadecimal")))
                }
                Some(d) => match d.len() {
                    32 => Some((HashAlgo::Md5, d.to_ascii_lowercase())),
                    64 => Some((HashAlgo::Sha256, d.to_ascii_lowercase())),
                    n => {
                        return Err(error(format!(
                            "DIGEST has {n} hex digits: an MD5 has 32, a SHA-256 64"
                        )))
                    }
                },
            };
            let path = percent_decode(path);
            if let Some(first) = seen.insert(path.clone(), line) {
                return Err(error(format!(
                    "PATH {path} is already listed on line {first}"
                )));
            }
            entries.push(Entry {
                line,
                path,
                size,
                digest,
            });
        }
        Ok(Manifest {
            file: file.to_string(),
            entries,
        })
    }

    /// What the report must say about the manifest itself: one that lists nothing (empty, or
    /// only comments) checks nothing, and an audit that passed it in silence would call a
    /// bucket clean that it never looked at.
    pub fn warnings(&self) -> Vec<String> {
        if self.entries.is_empty() {
            vec![format!(
                "manifest {} lists no object (it is empty or holds only comments): nothing was checked against it",
                self.file
            )]
        } else {
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `/bkt/a b.bin 100`: a space in PATH makes "b.bin" the SIZE; the error says how to write
    /// the space, as the four-field case does.
    #[test]
    fn a_space_in_path_read_as_size_gets_the_percent_hint() {
        let e = Manifest::parse("m", b"/bkt/a b.bin 100\n").expect_err("bad size");
        assert_eq!(
            e.to_string(),
            r#"m:1: SIZE "b.bin" is not a number of bytes (decimal digits only) (if PATH has a space, write it as %20)"#
        );
        let e = Manifest::parse("m", b"/bkt/a b.bin\n").expect_err("bad size");
        assert!(!e.to_string().contains("%20"), "{e}");
    }

    /// An empty or comment-only manifest parses (nothing in it is malformed) but checks
    /// nothing: the report is told.
    #[test]
    fn a_manifest_listing_nothing_is_a_warning() {
        for text in ["", "# only a comment\n\n   # another\n"] {
            let m = Manifest::parse("m.txt", text.as_bytes()).expect("parses");
            let w = m.warnings();
            assert_eq!(w.len(), 1, "{text:?}");
            assert!(w[0].starts_with("manifest m.txt lists no object"), "{w:?}");
        }
        let m = Manifest::parse("m.txt", b"/a 1\n").expect("parses");
        assert!(m.warnings().is_empty());
    }

    #[test]
    fn entries_comments_and_digests() {
        let text = "# what the bucket must hold\n\
                    /bkt/zero.bin 5000000  # the one that went missing\n\
                    \n\
                    \t/bkt/big.bin\t12582912 D41D8CD98F00B204E9800998ECF8427E\n\
                    /files/md5/ab/cdef 3 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n\
                    /bkt/my%20file 0\n";
        let m = Manifest::parse("m.txt", text.as_bytes()).expect("parses");
        let got: Vec<(usize, &str, u64, Option<HashAlgo>)> = m
            .entries
            .iter()
            .map(|e| {
                (
                    e.line,
                    e.path.as_str(),
                    e.size,
                    e.digest.as_ref().map(|d| d.0),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (2, "/bkt/zero.bin", 5_000_000, None),
                (4, "/bkt/big.bin", 12_582_912, Some(HashAlgo::Md5)),
                (5, "/files/md5/ab/cdef", 3, Some(HashAlgo::Sha256)),
                (6, "/bkt/my file", 0, None),
            ]
        );
        assert_eq!(
            m.entries[1].digest.as_ref().map(|d| d.1.as_str()),
            Some("d41d8cd98f00b204e9800998ecf8427e")
        );
    }

    #[test]
    fn a_byte_order_mark_at_the_start_is_skipped() {
        let manifest =
            Manifest::parse("m.txt", "\u{FEFF}/a 1\r\n/b 2\r\n".as_bytes()).expect("a BOM is fine");
        let paths: Vec<&str> = manifest.entries.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["/a", "/b"]);
        // Only at the start: anywhere else it is part of a PATH, which then is no request path.
        let err =
            Manifest::parse("m.txt", "/a 1\n\u{FEFF}/b 2\n".as_bytes()).expect_err("inner BOM");
        assert!(err.to_string().starts_with("m.txt:2: "), "{err}");
    }

    #[test]
    fn malformed_lines_name_file_and_line() {
        let cases = [
            ("/a 1\n/b\n", 2, "found only PATH"),
            ("/a 1 2 3\n", 1, "found 4 fields"),
            ("a/b 1\n", 1, "must start with /"),
            ("/a 12KB\n", 1, "SIZE \"12KB\" is not a number"),
            ("/a -1\n", 1, "SIZE \"-1\""),
            ("/a +1\n", 1, "SIZE \"+1\""),
            // Digits only, yet it said "decimal digits only".
            (
                "/a 18446744073709551616\n",
                1,
                "SIZE 18446744073709551616 is too large",
            ),
            ("/a 1 abc\n", 1, "DIGEST has 3 hex digits"),
            ("/a 1 xyz\n", 1, "not hexadecimal"),
            ("/a 1\n#\n/a 2\n", 3, "already listed on line 1"),
        ];
        for (text, line, message) in cases {
            let err = Manifest::parse("m.txt", text.as_bytes()).expect_err(text);
            let shown = err.to_string();
            assert!(
                shown.starts_with(&format!("m.txt:{line}: ")) && shown.contains(message),
                "{text:?}: {shown}"
            );
        }
        let err = Manifest::parse("m.txt", b"/a 1\n/\xff 2\n").expect_err("bad utf-8");
        assert!(err.to_string().starts_with("m.txt:2: not UTF-8"), "{err}");
    }

    /// A bucket's manifest has hundreds of thousands of lines: parsing stays linear (it once
    /// compared each PATH with every line before it, minutes for this one).
    #[test]
    fn a_manifest_of_a_whole_bucket_parses_in_linear_time() {
        let lines = 200_000;
        let text: String = (0..lines)
            .map(|i| format!("/bkt/data/part-{i:08}.parquet {i}\n"))
            .collect();
        let started = std::time::Instant::now();
        let m = Manifest::parse("m.txt", text.as_bytes()).expect("parses");
        assert_eq!(m.entries.len(), lines);
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "{:?} for {lines} lines",
            started.elapsed()
        );
        let dup = format!("{text}/bkt/data/part-00000007.parquet 7\n");
        let err = Manifest::parse("m.txt", dup.as_bytes()).expect_err("duplicate");
        assert!(
            err.to_string().starts_with(&format!(
                "m.txt:{}: PATH /bkt/data/part-00000007.parquet is already listed on line 8",
                lines + 1
            )),
            "{err}"
        );
    }
}
