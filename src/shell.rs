//! Words and command lines as a POSIX shell reads them back: the replay commands, hints and
//! wrapped commands faultline prints are meant to be pasted into one.

/// `word` as one shell word: as it is when it holds only characters no shell treats specially,
/// else quoted (`shlex` alone would quote `--seed=9` for its `=`).
pub fn word(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:=,@%+".contains(&b));
    if plain {
        return word.to_string();
    }
    // `try_quote` refuses only a word holding a NUL byte, which no argument or path can.
    shlex::try_quote(word).map_or_else(|_| word.to_string(), std::borrow::Cow::into_owned)
}

/// `words` as one command line, each quoted as [`word`] does.
pub fn line<S: AsRef<str>>(words: impl IntoIterator<Item = S>) -> String {
    words
        .into_iter()
        .map(|w| word(w.as_ref()))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_words_stay_and_others_are_quoted_so_a_shell_splits_them_back() {
        assert_eq!(word("--seed=9"), "--seed=9");
        assert_eq!(
            word("captures/a-{time}.pcapng"),
            "'captures/a-{time}.pcapng'"
        );
        assert_eq!(word(""), "''");
        let text = line(["sh", "-c", "echo \"$X\" it's", "a b"]);
        assert_eq!(
            shlex::split(&text).expect("splits"),
            ["sh", "-c", "echo \"$X\" it's", "a b"]
        );
    }
}
