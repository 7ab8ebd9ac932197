//! Scenario errors that point at the file, line, column and key, as compilers do.

use std::fmt;
use std::path::PathBuf;

/// Why a scenario could not be loaded. Every variant names the file; parse and validation errors
/// also name the position and the key so the user can fix the file without guessing.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The file could not be read at all.
    #[error("{path}: cannot read scenario: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file is not a valid scenario.
    #[error("{0}")]
    Invalid(Located),
}

/// A message located in a scenario file: `FILE:LINE:COL: key: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    /// The file as the user named it.
    pub origin: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    /// Dotted key path with 1-based rule numbers (`rule[2].fault.reset.after`); empty for syntax errors.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Located {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.origin, self.line, self.column)?;
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        f.write_str(&self.message)
    }
}

impl Located {
    /// Locates `message` at byte `offset` of `text`.
    pub fn at(origin: &str, text: &str, offset: usize, key: String, message: String) -> Self {
        let offset = offset.min(text.len());
        let before = text.get(..offset).unwrap_or(text);
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
        let column = before
            .get(line_start..)
            .map(|s| s.chars().count())
            .unwrap_or(0)
            + 1;
        Located {
            origin: origin.to_string(),
            line,
            column,
            key,
            message,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_become_one_based_lines_and_columns() {
        let text = "a = 1\nbb = 2\n";
        let at = Located::at("f.toml", text, 8, "bb".into(), "bad".into());
        assert_eq!((at.line, at.column), (2, 3));
        assert_eq!(at.to_string(), "f.toml:2:3: bb: bad");
    }
}
