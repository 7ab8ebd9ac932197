//! Glob patterns for HTTP paths, hosts and header values: `*` matches within one `/` segment,
//! `**` matches across segments, `?` matches one character. Small enough that a dependency (and
//! its regex engine) would cost more than it saves.

/// A compiled glob. Matching is byte-wise and case-sensitive, like paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    pattern: String,
}

impl Glob {
    /// Any pattern is valid; literal text matches itself.
    pub fn new(pattern: &str) -> Self {
        Glob {
            pattern: pattern.to_string(),
        }
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.pattern
    }

    /// Whether `text` matches the whole pattern.
    pub fn matches(&self, text: &str) -> bool {
        matches_at(self.pattern.as_bytes(), text.as_bytes())
    }
}

fn matches_at(pattern: &[u8], text: &[u8]) -> bool {
    match pattern {
        [] => text.is_empty(),
        [b'*', b'*', rest @ ..] => {
            // `/**/` may also match a single `/`.
            let rest_after_slash = rest.strip_prefix(b"/").unwrap_or(rest);
            (0..=text.len())
                .any(|i| matches_at(rest, &text[i..]) || matches_at(rest_after_slash, &text[i..]))
        }
        [b'*', rest @ ..] => {
            let segment_end = text.iter().position(|&c| c == b'/').unwrap_or(text.len());
            (0..=segment_end).any(|i| matches_at(rest, &text[i..]))
        }
        [b'?', rest @ ..] => !text.is_empty() && text[0] != b'/' && matches_at(rest, &text[1..]),
        [c, rest @ ..] => text.first() == Some(c) && matches_at(rest, &text[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn star_stays_in_a_segment_and_double_star_crosses() {
        assert!(Glob::new("/files/*").matches("/files/a"));
        assert!(!Glob::new("/files/*").matches("/files/md5/ab"));
        assert!(Glob::new("/files/**").matches("/files/md5/ab/cdef"));
        assert!(Glob::new("/files/**/cdef").matches("/files/cdef"));
        assert!(Glob::new("/files/**/cdef").matches("/files/md5/ab/cdef"));
        assert!(Glob::new("*.bin").matches("x.bin"));
        assert!(Glob::new("/a?c").matches("/abc"));
        assert!(!Glob::new("/a?c").matches("/a/c"));
        assert!(Glob::new("/exact").matches("/exact"));
        assert!(!Glob::new("/exact").matches("/exact/more"));
        assert!(Glob::new("**").matches(""));
    }
}
