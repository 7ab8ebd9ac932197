//! Glob patterns for HTTP paths, hosts, queries and header values, matched in linear time by
//! `globset` (they run on network-controlled text, so a backtracking matcher would let a peer
//! choose how long matching takes).
//!
//! `*` matches within one `/` segment, `**` as a whole segment (`/a/**`, `/**/b`, `a/**/b`)
//! matches across segments, `?` one character other than `/`, `[ab]` a class, `{a,b}` either.

use globset::{GlobBuilder, GlobMatcher};

/// A compiled glob.
#[derive(Debug, Clone)]
pub struct Glob {
    pattern: String,
    case: Case,
    matcher: Matcher,
}

/// How a pattern is matched: a pattern with no glob syntax is plain text, compared as such;
/// compiling it (a regex each) made a file of 20,000 `path = "/files/rN"` rules take 20 s to load.
#[derive(Debug, Clone)]
enum Matcher {
    Literal,
    Compiled(GlobMatcher),
}

impl PartialEq for Glob {
    fn eq(&self, other: &Self) -> bool {
        self.pattern == other.pattern && self.case == other.case
    }
}

impl Eq for Glob {}

/// How a glob compares letters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Case {
    /// Paths, queries and header values: byte for byte.
    Sensitive,
    /// Host names, which DNS compares without case.
    Insensitive,
}

impl Glob {
    /// Compiles `pattern`; the error says what is wrong with it (an unclosed `[`, a `**` that is
    /// not a whole segment, …).
    pub fn new(pattern: &str, case: Case) -> Result<Self, String> {
        if !pattern.contains(['*', '?', '[', ']', '{', '}', '\\']) {
            return Ok(Glob {
                pattern: pattern.to_string(),
                case,
                matcher: Matcher::Literal,
            });
        }
        if let Some(at) = partial_double_star(pattern) {
            return Err(format!(
                "invalid glob {pattern:?}: the `**` at byte {at} is not a whole segment, so it would match within one segment like `*`; `**` crosses segments only as `/**/`, a leading `**/` or a trailing `/**` (`/**/*.bin`, not `/**.bin`)"
            ));
        }
        let glob = GlobBuilder::new(pattern)
            .literal_separator(true)
            .backslash_escape(true)
            .case_insensitive(case == Case::Insensitive)
            .empty_alternates(true)
            .build()
            .map_err(|e| format!("invalid glob {pattern:?}: {}", e.kind()))?;
        Ok(Glob {
            pattern: pattern.to_string(),
            case,
            matcher: Matcher::Compiled(glob.compile_matcher()),
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.pattern
    }

    /// Whether `text` matches the whole pattern.
    pub fn matches(&self, text: &str) -> bool {
        match &self.matcher {
            Matcher::Literal => match self.case {
                Case::Sensitive => self.pattern == text,
                Case::Insensitive => self.pattern.to_lowercase() == text.to_lowercase(),
            },
            Matcher::Compiled(matcher) => matcher.is_match(text),
        }
    }
}

/// Where a `**` stands that is not a whole `/` segment (globset reads it as `*` there, so a
/// trial's `/**-C2--*` never matched a path two segments deep, with no word).
fn partial_double_star(pattern: &str) -> Option<usize> {
    let bytes = pattern.as_bytes();
    let mut at = 0;
    while let Some(found) = pattern[at..].find("**") {
        let start = at + found;
        let mut end = start + 2;
        while end < bytes.len() && bytes[end] == b'*' {
            end += 1;
        }
        let escaped = start > 0 && bytes[start - 1] == b'\\';
        let whole =
            (start == 0 || bytes[start - 1] == b'/') && (end == bytes.len() || bytes[end] == b'/');
        if !(escaped || whole) {
            return Some(start);
        }
        at = end;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn glob(pattern: &str) -> Glob {
        Glob::new(pattern, Case::Sensitive).expect("valid glob")
    }

    #[test]
    fn star_stays_in_a_segment_and_double_star_crosses() {
        assert!(glob("/files/*").matches("/files/a"));
        assert!(!glob("/files/*").matches("/files/md5/ab"));
        assert!(glob("/files/**").matches("/files/md5/ab/cdef"));
        assert!(glob("/files/**/cdef").matches("/files/cdef"));
        assert!(glob("/files/**/cdef").matches("/files/md5/ab/cdef"));
        assert!(glob("/**/files/md5/**").matches("/files/md5/ab/cd"));
        assert!(glob("/**/files/md5/**").matches("/remote/x/files/md5/ab/cd"));
        assert!(glob("*.bin").matches("x.bin"));
        assert!(glob("/a?c").matches("/abc"));
        assert!(!glob("/a?c").matches("/a/c"));
        assert!(glob("/exact").matches("/exact"));
        assert!(!glob("/exact").matches("/exact/more"));
        assert!(glob("application/*").matches("application/json"));
        assert!(glob("/{a,b}/x").matches("/b/x"));
    }

    #[test]
    fn hosts_compare_without_case() {
        let host = Glob::new("*.Example", Case::Insensitive).expect("valid");
        assert!(host.matches("store.example"));
        assert!(!glob("*.Example").matches("store.example"));
    }

    #[test]
    fn bad_patterns_are_errors() {
        let e = Glob::new("/a/[b", Case::Sensitive).expect_err("unclosed class");
        assert!(e.contains("/a/[b"), "{e}");
        for partial in ["/**-C2--*", "/a**/b", "/a/**b", "**x"] {
            let e = Glob::new(partial, Case::Sensitive).expect_err(partial);
            assert!(e.contains("is not a whole segment"), "{e}");
        }
        for whole in ["**", "/**", "**/x", "/a/**/b", "/a/\\**x"] {
            assert!(Glob::new(whole, Case::Sensitive).is_ok(), "{whole}");
        }
    }

    #[test]
    fn hostile_text_matches_in_linear_time() {
        let pattern = glob("/**/a*a*a*a*a*a*a*a*a*b");
        let text = format!("/{}", "a".repeat(20_000));
        let started = std::time::Instant::now();
        assert!(!pattern.matches(&text));
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "took {:?}",
            started.elapsed()
        );
    }

    /// Plain text is compared as text, with the same answers the compiled glob gave.
    #[test]
    fn a_pattern_without_glob_syntax_matches_exactly() {
        let exact = glob("/files/r1");
        assert!(matches!(exact.matcher, Matcher::Literal));
        assert!(exact.matches("/files/r1"));
        assert!(!exact.matches("/files/r10") && !exact.matches("/files/R1"));
        let host = Glob::new("Example.COM", Case::Insensitive).expect("valid");
        assert!(host.matches("example.com") && !host.matches("example.org"));
        assert!(matches!(glob("/a/*").matcher, Matcher::Compiled(_)));
    }
}
