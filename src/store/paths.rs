//! Turns an HTTP request path into a relative file path that cannot leave the store directory.
//!
//! This is pure string work, no filesystem access: the request path is percent-decoded once, split on
//! `/`, and every segment is checked on its own. Anything that could name a place outside the store
//! (`..`, `.`, empty segments, backslashes, NUL) is refused rather than normalised, so a client that
//! tries a trick gets a clear 400 instead of a silently different file. Symlinks are a filesystem
//! question and are handled by [`super::confine`].

use std::path::PathBuf;

/// Longest segment we accept; longer names fail on common filesystems anyway, and refusing them here
/// gives the client a 400 with a reason instead of a 500 from the OS.
const MAX_SEGMENT_BYTES: usize = 255;

/// Marker inside the names of in-progress uploads (see [`super::atomic_write`]); clients may neither
/// read nor write such names, so a half-written upload is never served.
pub const TEMP_MARKER: &str = ".tmp-";

/// A request path that has been checked and is safe to join onto the store directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorePath {
    segments: Vec<String>,
}

impl StorePath {
    /// The path relative to the store directory, e.g. `files/md5/ab/cdef`.
    pub fn relative(&self) -> PathBuf {
        self.segments.iter().collect()
    }

    /// The checked segments, in order; used to walk the directory tree one component at a time.
    pub fn segments(&self) -> &[String] {
        &self.segments
    }

    /// The path as the client should see it in logs and messages: `/` joined decoded segments.
    pub fn display(&self) -> String {
        format!("/{}", self.segments.join("/"))
    }
}

/// Why a request path was refused; each variant names what the client did wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// Origin-form targets start with `/`; anything else (`*`, a bare name) names no file.
    #[error("request path must start with '/'")]
    NotAbsolute,
    /// The path names the store root or ends with `/`: a directory, never a file.
    #[error("request path names a directory, not a file")]
    Directory,
    /// `%` not followed by two hex digits.
    #[error("malformed percent-escape in request path")]
    BadEscape,
    /// The decoded path is not UTF-8; store names are text (hex digests, keys).
    #[error("request path is not valid UTF-8 after percent-decoding")]
    NotUtf8,
    /// A NUL byte would truncate the path at the OS boundary.
    #[error("request path contains a NUL byte")]
    Nul,
    /// A backslash is a separator on some systems; refusing it keeps paths unambiguous everywhere.
    #[error("request path contains a backslash")]
    Backslash,
    /// `//` in the middle of a path: refused rather than collapsed, so one file has one name.
    #[error("request path contains an empty segment ('//')")]
    EmptySegment,
    /// `.` or `..` as a segment, including percent-encoded forms.
    #[error("request path contains a '.' or '..' segment")]
    DotSegment,
    /// A segment longer than filesystems accept.
    #[error("request path segment longer than {MAX_SEGMENT_BYTES} bytes")]
    SegmentTooLong,
    /// A name reserved for in-progress uploads.
    #[error("request path names a reserved temporary file")]
    Reserved,
}

/// Checks `raw` (the path part of the request target, without the query) and returns the file it
/// names relative to the store directory.
///
/// Errors: any [`PathError`]; nothing is normalised, so `/a/./b` is refused, not turned into `/a/b`.
pub fn parse(raw: &str) -> Result<StorePath, PathError> {
    let rest = raw.strip_prefix('/').ok_or(PathError::NotAbsolute)?;
    // Decoding before splitting means `%2f` acts as a separator, so `..%2f` is seen as `..`.
    let decoded = percent_decode(rest)?;
    if decoded.is_empty() || decoded.ends_with('/') {
        return Err(PathError::Directory);
    }
    if decoded.contains('\0') {
        return Err(PathError::Nul);
    }
    if decoded.contains('\\') {
        return Err(PathError::Backslash);
    }
    if decoded.starts_with('/') {
        // `//etc/passwd` (or `/%2fetc`): an absolute path smuggled in after the leading slash.
        return Err(PathError::EmptySegment);
    }
    let mut segments = Vec::new();
    for segment in decoded.split('/') {
        match segment {
            "" => return Err(PathError::EmptySegment),
            "." | ".." => return Err(PathError::DotSegment),
            s if s.len() > MAX_SEGMENT_BYTES => return Err(PathError::SegmentTooLong),
            s if s.starts_with('.') && s.contains(TEMP_MARKER) => return Err(PathError::Reserved),
            s => segments.push(s.to_owned()),
        }
    }
    Ok(StorePath { segments })
}

fn percent_decode(input: &str) -> Result<String, PathError> {
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hi = bytes.get(i + 1).and_then(|b| hex_value(*b));
            let lo = bytes.get(i + 2).and_then(|b| hex_value(*b));
            match (hi, lo) {
                (Some(hi), Some(lo)) => out.push((hi << 4) | lo),
                _ => return Err(PathError::BadEscape),
            }
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| PathError::NotUtf8)
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn ok(raw: &str) -> PathBuf {
        match parse(raw) {
            Ok(p) => p.relative(),
            Err(e) => panic!("{raw:?} refused: {e}"),
        }
    }

    fn err(raw: &str) -> PathError {
        match parse(raw) {
            Ok(p) => panic!("{raw:?} accepted as {p:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn dvc_paths_are_accepted() {
        assert_eq!(
            ok("/files/md5/ab/cdef0123456789"),
            Path::new("files/md5/ab/cdef0123456789")
        );
        assert_eq!(ok("/files/md5/ab/cd.dir"), Path::new("files/md5/ab/cd.dir"));
        assert_eq!(ok("/x"), Path::new("x"));
    }

    #[test]
    fn percent_escapes_are_decoded() {
        assert_eq!(ok("/a%20b/c"), Path::new("a b/c"));
        assert_eq!(ok("/a%2Fb"), Path::new("a/b"));
        assert_eq!(ok("/%C3%A9"), Path::new("é"));
        assert_eq!(ok("/a+b"), Path::new("a+b"));
    }

    #[test]
    fn display_shows_decoded_path() {
        let p = parse("/a%20b/c").expect("valid");
        assert_eq!(p.display(), "/a b/c");
        assert_eq!(p.segments(), ["a b", "c"]);
    }

    #[test]
    fn dot_segments_are_refused() {
        for raw in [
            "/../x",
            "/a/../x",
            "/a/..",
            "/./x",
            "/a/.",
            "/%2e%2e/x",
            "/%2E%2E/x",
            "/.%2e/x",
            "/a/..%2fb",
            "/a/..%2Fb",
            "/a%2f..%2f..%2fb",
            "/%2e/x",
        ] {
            assert_eq!(err(raw), PathError::DotSegment, "{raw}");
        }
    }

    #[test]
    fn names_that_merely_contain_dots_are_fine() {
        assert_eq!(ok("/..a"), Path::new("..a"));
        assert_eq!(ok("/a.."), Path::new("a.."));
        assert_eq!(ok("/.hidden"), Path::new(".hidden"));
        assert_eq!(ok("/.../x"), Path::new(".../x"));
    }

    #[test]
    fn absolute_and_empty_tricks_are_refused() {
        assert_eq!(err("//etc/passwd"), PathError::EmptySegment);
        assert_eq!(err("/%2fetc/passwd"), PathError::EmptySegment);
        assert_eq!(err("/a//b"), PathError::EmptySegment);
        assert_eq!(err("/a%2f%2fb"), PathError::EmptySegment);
        assert_eq!(err("etc/passwd"), PathError::NotAbsolute);
        assert_eq!(err("*"), PathError::NotAbsolute);
        assert_eq!(err(""), PathError::NotAbsolute);
    }

    #[test]
    fn directories_are_refused() {
        assert_eq!(err("/"), PathError::Directory);
        assert_eq!(err("/files/"), PathError::Directory);
        assert_eq!(err("/files%2f"), PathError::Directory);
    }

    #[test]
    fn backslash_and_nul_are_refused() {
        assert_eq!(err("/a\\..\\b"), PathError::Backslash);
        assert_eq!(err("/a%5c..%5cb"), PathError::Backslash);
        assert_eq!(err("/a%5Cb"), PathError::Backslash);
        assert_eq!(err("/a%00b"), PathError::Nul);
    }

    #[test]
    fn bad_escapes_are_refused() {
        assert_eq!(err("/a%"), PathError::BadEscape);
        assert_eq!(err("/a%2"), PathError::BadEscape);
        assert_eq!(err("/a%zz"), PathError::BadEscape);
        assert_eq!(err("/a%%41"), PathError::BadEscape);
        assert_eq!(err("/%ff"), PathError::NotUtf8);
    }

    #[test]
    fn long_segments_are_refused() {
        let long = format!("/{}", "a".repeat(256));
        assert_eq!(err(&long), PathError::SegmentTooLong);
        let fits = format!("/{}", "a".repeat(255));
        assert!(parse(&fits).is_ok());
    }

    #[test]
    fn temp_names_are_reserved() {
        assert_eq!(err("/a/.b.tmp-1234"), PathError::Reserved);
        assert_eq!(err("/a/%2eb.tmp-1"), PathError::Reserved);
        assert_eq!(ok("/a/b.tmp-1"), Path::new("a/b.tmp-1"));
    }
}
