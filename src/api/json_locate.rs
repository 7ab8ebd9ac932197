//! Where a scenario key path (`rule[1].fault.latency.delay`) is in the JSON text a client sent.
//!
//! A JSON scenario body is validated as the TOML it becomes, so a validation error carries the
//! key but a position in text the client never saw. serde_json keeps no spans, so this small
//! scanner walks the client's own text (objects and arrays, tracking the path) to the value the
//! key names. It never panics and never recurses past [`MAX_DEPTH`]: on text it cannot follow it
//! answers the deepest value it reached, or the start of the text.

/// Nesting the scanner follows; deeper values are answered by the deepest one it reached (serde_json
/// refuses more than 128 levels anyway).
const MAX_DEPTH: usize = 256;

/// The byte offset in `json` of the value `key` names, in the scenario errors' notation: members
/// joined by `.`, array elements as `[N]` counted from 1 (`rule[2].match.method[1]`). When the
/// whole path is not there (an unknown field's parent, a key from elsewhere), the offset of the
/// deepest value on the path that is; the first non-blank byte when not even the top is an object.
/// A member named twice counts as its last occurrence, as serde_json keeps it.
pub fn locate(json: &str, key: &str) -> usize {
    let mut scanner = Scanner {
        bytes: json.as_bytes(),
        json,
        pos: 0,
        best: None,
    };
    scanner.skip_ws();
    let start = scanner.pos;
    let _ = scanner.value(Some(key), 0);
    scanner.best.unwrap_or(start).min(json.len())
}

/// A cursor over the JSON text; `best` is the deepest value on the key path found so far.
struct Scanner<'a> {
    bytes: &'a [u8],
    json: &'a str,
    pos: usize,
    best: Option<usize>,
}

impl Scanner<'_> {
    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.bytes.get(self.pos) {
            self.pos += 1;
        }
    }

    fn eat(&mut self, byte: u8) -> Option<()> {
        self.skip_ws();
        (self.bytes.get(self.pos) == Some(&byte)).then(|| self.pos += 1)
    }

    /// Reads the value at the cursor. With `key` (the rest of the path, `""` when this value is
    /// the one named) it records where the path leads; with `None` it only skips the value.
    /// `None` back means text it cannot follow.
    fn value(&mut self, key: Option<&str>, depth: usize) -> Option<()> {
        self.skip_ws();
        let start = self.pos;
        if key.is_some() {
            self.best = Some(start);
        }
        let key = key.filter(|k| !k.is_empty());
        if depth > MAX_DEPTH {
            return None;
        }
        match *self.bytes.get(self.pos)? {
            b'{' => self.object(key, depth),
            b'[' => self.array(key, depth),
            b'"' => self.string().map(drop),
            _ => {
                let len = self.bytes[self.pos..]
                    .iter()
                    .position(|b| matches!(b, b',' | b']' | b'}' | b' ' | b'\t' | b'\n' | b'\r'))
                    .unwrap_or(self.bytes.len() - self.pos);
                (len > 0).then(|| self.pos += len)
            }
        }
    }

    fn object(&mut self, key: Option<&str>, depth: usize) -> Option<()> {
        self.pos += 1;
        if self.eat(b'}').is_some() {
            return Some(());
        }
        // Where the best member on the path led, and how long its name was: "a.b" beats "a" for
        // the path `a.b.c`, and a later duplicate beats an earlier one.
        let mut chosen: Option<(usize, Option<usize>)> = None;
        loop {
            self.skip_ws();
            let name = self.string()?;
            self.eat(b':')?;
            let rest = key.and_then(|k| rest_after(k, &name));
            match rest {
                Some(rest) if chosen.is_none_or(|(len, _)| name.len() >= len) => {
                    self.value(Some(rest), depth + 1)?;
                    chosen = Some((name.len(), self.best));
                }
                _ => self.value(None, depth + 1)?,
            }
            if let Some((_, best)) = chosen {
                self.best = best;
            }
            if self.eat(b',').is_none() {
                return self.eat(b'}');
            }
        }
    }

    fn array(&mut self, key: Option<&str>, depth: usize) -> Option<()> {
        self.pos += 1;
        if self.eat(b']').is_some() {
            return Some(());
        }
        let wanted = key.and_then(element);
        let mut index = 1usize;
        loop {
            match wanted {
                Some((n, rest)) if n == index => self.value(Some(rest), depth + 1)?,
                _ => self.value(None, depth + 1)?,
            }
            if self.eat(b',').is_none() {
                return self.eat(b']');
            }
            index = index.saturating_add(1);
        }
    }

    /// The string at the cursor, decoded as serde_json decodes it (escapes included).
    fn string(&mut self) -> Option<String> {
        let start = self.pos;
        if self.bytes.get(start) != Some(&b'"') {
            return None;
        }
        let mut i = start + 1;
        loop {
            match self.bytes.get(i)? {
                b'\\' => i += 2,
                b'"' => break,
                _ => i += 1,
            }
        }
        self.pos = i + 1;
        let raw = self.json.get(start..=i)?;
        Some(serde_json::from_str::<String>(raw).unwrap_or_else(|_| raw.to_string()))
    }
}

/// The rest of `key` after the member `name`: `""` when `key` is the member itself, what follows
/// the `.` or from the `[` when it goes deeper, `None` when it names another member.
fn rest_after<'k>(key: &'k str, name: &str) -> Option<&'k str> {
    let rest = key.strip_prefix(name)?;
    if rest.is_empty() || rest.starts_with('[') {
        Some(rest)
    } else {
        rest.strip_prefix('.')
    }
}

/// The element number and the rest of `key` when it starts with `[N]`.
fn element(key: &str) -> Option<(usize, &str)> {
    let (n, rest) = key.strip_prefix('[')?.split_once(']')?;
    let n = n.parse().ok()?;
    Some((n, rest.strip_prefix('.').unwrap_or(rest)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The line and column (1-based, in characters) of `key` in `json`.
    fn at(json: &str, key: &str) -> (usize, usize) {
        let offset = locate(json, key);
        let before = &json[..offset];
        let line = before.matches('\n').count() + 1;
        let column = before[before.rfind('\n').map_or(0, |i| i + 1)..]
            .chars()
            .count()
            + 1;
        (line, column)
    }

    const BODY: &str = r#"{"seed": 1,
 "rule": [{"fault": {"reset": {}}},
          {"name": "slow", "fault": {"latency": {"delay": "fast"}}}],
 "proxy": {"capture": "x.pcapng"}}"#;

    #[test]
    fn a_key_path_leads_to_its_value() {
        assert_eq!(at(BODY, "rule[2].fault.latency.delay"), (3, 59));
        assert_eq!(at(BODY, "rule[1].fault.reset"), (2, 31));
        assert_eq!(at(BODY, "seed"), (1, 10));
        assert_eq!(at(BODY, "proxy.capture"), (4, 23));
        assert_eq!(at(BODY, "rule[2]"), (3, 11));
    }

    /// An unknown field's key or a rule that is not there: the deepest value that is.
    #[test]
    fn a_missing_key_stops_at_the_deepest_value_found() {
        assert_eq!(
            at(BODY, "rule[2].fault.latency.delya"),
            at(BODY, "rule[2].fault.latency")
        );
        assert_eq!(at(BODY, "rule[7].fault"), at(BODY, "rule"));
        assert_eq!(at(BODY, "nothing"), (1, 1));
        assert_eq!(at(BODY, ""), (1, 1));
        assert_eq!(at("  \n [1, 2]", "rule[1]"), (2, 2));
    }

    #[test]
    fn escapes_dotted_names_and_duplicates_are_read_as_serde_json_reads_them() {
        let json = r#"{"r\u0075le": [{"a": 1, "a": 2}], "x.y": {"z": true}, "x": {"y": 0}}"#;
        assert_eq!(locate(json, "rule[1].a"), json.find("2}").unwrap());
        assert_eq!(locate(json, "x.y.z"), json.find("true").unwrap());
        assert_eq!(locate(json, "x.y"), json.find("{\"z\"").unwrap());
        let json = r#"{"s": "a \" } ] , b", "t": [ "q", {"u": null} ]}"#;
        assert_eq!(locate(json, "t[2].u"), json.find("null").unwrap());
    }

    /// Text that is not JSON, cut JSON, deep nesting: an offset inside the text, never a panic.
    #[test]
    fn no_input_panics_and_every_answer_is_inside_the_text() {
        let deep = "[".repeat(100_000);
        let cases = [
            "",
            "{",
            "{\"",
            "{\"a\"",
            "{\"a\":",
            "{\"a\":[",
            "[[[",
            "\"\\",
            "{\"a\\",
            "}",
            "]]",
            "{\"é\": {\"ü\": 1}}",
            "{,}",
            "{\"a\" 1}",
            "[1 2]",
            "nul",
            &deep,
        ];
        for json in cases {
            for key in [
                "",
                "a",
                "a.b",
                "[1]",
                "a[1]",
                "é.ü",
                "[",
                "a[99999999999999999999]",
            ] {
                let offset = locate(json, key);
                assert!(offset <= json.len(), "{json:?} {key:?}");
                assert!(json.is_char_boundary(offset), "{json:?} {key:?}");
            }
        }
        assert_eq!(locate("{\"é\": {\"ü\": 1}}", "é.ü"), 14);
    }

    /// Many short texts of JSON's punctuation, seeded: every answer is a character boundary.
    #[test]
    fn random_json_like_text_never_panics() {
        use rand::{Rng, SeedableRng};
        use rand_chacha::ChaCha8Rng;
        const PIECES: &[&str] = &[
            "{", "}", "[", "]", "\"", "\\", ":", ",", " ", "\n", "a", "b", ".", "1", "é", "null",
        ];
        let mut rng = ChaCha8Rng::seed_from_u64(14);
        for _ in 0..20_000 {
            let len = rng.gen_range(0..24);
            let json: String = (0..len)
                .map(|_| PIECES[rng.gen_range(0..PIECES.len())])
                .collect();
            for key in ["a", "a.b", "a[1]", "[2].a", "b[1].a"] {
                let offset = locate(&json, key);
                assert!(json.is_char_boundary(offset), "{json:?} {key:?} {offset}");
            }
        }
    }
}
