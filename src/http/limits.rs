//! Size limits that bound how much the HTTP/1 tracker buffers or scans for one head or framing line.

/// Bounds applied while tracking, so a hostile or broken peer cannot make the tracker buffer without end.
///
/// Exceeding a limit is a framing error (see [`crate::http::HttpErrorKind`]); the bytes themselves are
/// still relayed by the proxy, only HTTP awareness stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest head (request/status line + header fields + blank line) accepted, in bytes.
    /// Also bounds chunked trailer sections and bytes held while an upgrade or CONNECT is undecided.
    pub max_head_bytes: usize,
    /// Largest number of header fields in one head.
    pub max_headers: usize,
    /// Longest chunk-size line (size, extensions and CRLF) accepted, in bytes.
    pub max_chunk_line: usize,
}

impl Default for Limits {
    /// 64 KiB heads, 100 header fields, 4 KiB chunk-size lines: generous for real traffic.
    fn default() -> Self {
        Limits {
            max_head_bytes: 64 * 1024,
            max_headers: 100,
            max_chunk_line: 4096,
        }
    }
}
