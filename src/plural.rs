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

/// `noun` and the items it names, the noun plural unless there is exactly one item:
/// `named("exchange", &[2])` is `exchange 2`, `named("exchange", &[3, 4])` is `exchanges 3, 4`.
pub fn named(noun: &str, items: &[impl Display]) -> String {
    let list: Vec<String> = items.iter().map(ToString::to_string).collect();
    let noun = if items.len() == 1 {
        noun.to_string()
    } else {
        format!("{noun}s")
    };
    format!("{noun} {}", list.join(", "))
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

    #[test]
    fn one_named_item_takes_the_singular() {
        assert_eq!(named("exchange", &[2usize]), "exchange 2");
        assert_eq!(named("exchange", &[3u64, 4]), "exchanges 3, 4");
    }
}
