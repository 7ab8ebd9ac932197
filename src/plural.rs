//! Counted nouns in user-facing text: `1 upload`, `2 uploads`, `0 uploads`, never `1 uploads`.
//!
//! Every summary, verdict and report line that puts a count before a noun goes through here, so
//! the text reads right whatever the count (a one-upload run is the common case in bug reports).

use std::fmt::Display;

/// `n` and `noun`, with an `s` added unless `n` is exactly 1: `count(1, "upload")` is
/// `1 upload`, `count(3, "HTTP/2 stream")` is `3 HTTP/2 streams`. Any integer type works.
pub fn count(n: impl Display, noun: &str) -> String {
    let n = n.to_string();
    if n == "1" {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// `count` for a noun whose plural is not `+s`: `count_as(2, "retry", "retries")`.
pub fn count_as(n: impl Display, singular: &str, plural: &str) -> String {
    let n = n.to_string();
    if n == "1" {
        format!("1 {singular}")
    } else {
        format!("{n} {plural}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_is_singular_and_every_other_count_is_plural() {
        assert_eq!(count(1u64, "upload"), "1 upload");
        assert_eq!(count(0usize, "upload"), "0 uploads");
        assert_eq!(count(2u32, "HTTP/2 stream"), "2 HTTP/2 streams");
        assert_eq!(count(11u8, "blob"), "11 blobs");
        assert_eq!(count_as(1, "retry", "retries"), "1 retry");
        assert_eq!(count_as(21, "retry", "retries"), "21 retries");
    }
}
