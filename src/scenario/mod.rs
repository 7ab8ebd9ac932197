//! Scenarios: loading, validating and matching the TOML files that say what goes wrong and when.
//!
//! A scenario is parsed and validated once, at load, with every error located at
//! `FILE:LINE:COL` and named by its key; afterwards it is immutable and shared as
//! `Arc<Scenario>` by every connection.

pub mod error;
pub mod schema;
pub mod units;

use std::net::SocketAddr;
use std::path::Path;

use rand::Rng;

pub use error::{Located, ScenarioError};
use schema::{ConnectionSet, RuleSection, ScenarioFile, UpstreamSpec};

use crate::direction::DirectionMatch;
use crate::fault::Fault;
use crate::seed::{self, Purpose};
use units::Probability;

/// The listen address used when neither the file nor `--listen` gives one.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:3030";

/// A validated scenario.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// From the file, or the file stem.
    pub name: String,
    /// Free text for humans.
    pub description: Option<String>,
    /// Seed given by the file, if any (the run picks one when absent).
    pub seed: Option<u64>,
    /// Listen address from the file, if any.
    pub listen: Option<SocketAddr>,
    /// Upstream from the file, if any.
    pub upstream: Option<UpstreamSpec>,
    /// Capture file template from the file, if any.
    pub capture: Option<String>,
    /// Rules in file order.
    pub rules: Vec<Rule>,
}

/// One rule: when and what.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Human name, used in logs, the summary and capture comments.
    pub name: String,
    /// When it applies.
    pub matcher: Match,
    /// What it does.
    pub fault: Fault,
}

/// The connection-level conditions of a rule; all given keys must hold.
#[derive(Debug, Clone, Default)]
pub struct Match {
    /// 1-based ordinals; `None` means any.
    pub connections: Option<Vec<u64>>,
    /// Every nth connection.
    pub every: Option<u64>,
    /// Chance per connection.
    pub probability: Option<Probability>,
    /// Direction(s) stream faults act on.
    pub direction: DirectionMatch,
}

impl Match {
    /// Whether the rule numbered `rule` (0-based) applies to connection number `ordinal`
    /// (1-based) in a run seeded with `seed`. Pure: the probability draw comes from the stream
    /// keyed by (seed, connection, rule), so the decision replays exactly.
    pub fn matches_connection(&self, ordinal: u64, seed: u64, rule: usize) -> bool {
        if let Some(set) = &self.connections {
            if !set.contains(&ordinal) {
                return false;
            }
        }
        if let Some(every) = self.every {
            if ordinal % every != 0 {
                return false;
            }
        }
        if let Some(p) = self.probability {
            let draw: f64 = seed::stream(seed, Purpose::RuleMatch, &[ordinal, rule as u64]).gen();
            if draw >= p.value() {
                return false;
            }
        }
        true
    }
}

impl Scenario {
    /// Reads and validates a scenario file.
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "scenario".to_string());
        Scenario::from_toml(&text, &path.display().to_string(), &stem)
    }

    /// Validates scenario text; `origin` names it in errors, `default_name` is used when the text
    /// has no `name`.
    pub fn from_toml(
        text: &str,
        origin: &str,
        default_name: &str,
    ) -> Result<Scenario, ScenarioError> {
        let invalid = |offset: usize, key: String, message: String| {
            ScenarioError::Invalid(Located::at(origin, text, offset, key, message))
        };
        let deserializer = toml::Deserializer::new(text);
        let file: ScenarioFile = serde_path_to_error::deserialize(deserializer).map_err(|e| {
            let key = key_path(e.path());
            let inner = e.into_inner();
            let offset = inner.span().map(|s| s.start).unwrap_or(0);
            let message = inner.message().trim().to_string();
            let key = match unknown_field(&message) {
                Some(field) if key.is_empty() => field.to_string(),
                Some(field) if !key.ends_with(field) => format!("{key}.{field}"),
                _ => key,
            };
            invalid(offset, key, message)
        })?;

        let mut rules = Vec::with_capacity(file.rules.len());
        for (index, section) in file.rules.into_iter().enumerate() {
            rules.push(rule_from(section, index, text, &invalid)?);
        }
        Ok(Scenario {
            name: file.name.unwrap_or_else(|| default_name.to_string()),
            description: file.description,
            seed: file.seed,
            listen: file.proxy.listen.map(|l| l.0),
            upstream: file.proxy.upstream,
            capture: file.proxy.capture,
            rules,
        })
    }
}

fn rule_from(
    section: toml::Spanned<RuleSection>,
    index: usize,
    text: &str,
    invalid: &dyn Fn(usize, String, String) -> ScenarioError,
) -> Result<Rule, ScenarioError> {
    let number = index + 1;
    let fault_span = section.span();
    let section = section.into_inner();
    let fault = section.fault;
    let fault_key = format!("rule[{number}].fault.{}", fault.name());
    if let Err(e) = fault.validate() {
        let offset =
            locate_within(text, fault_span.start, fault.name()).unwrap_or(fault_span.start);
        return Err(invalid(offset, format!("{fault_key}.{}", e.key), e.message));
    }
    let m = section.matcher;
    if let Some(direction) = &m.direction {
        if fault.is_connection_wide() && *direction.get_ref() != DirectionMatch::Both {
            return Err(invalid(
                direction.span().start,
                format!("rule[{number}].match.direction"),
                format!(
                    "this {} fault acts on the whole connection; remove `direction`",
                    fault.name()
                ),
            ));
        }
    }
    Ok(Rule {
        name: section
            .name
            .unwrap_or_else(|| format!("rule {number} ({})", fault.name())),
        matcher: Match {
            connections: m.connection.map(|ConnectionSet(v)| v),
            every: m.every.map(|n| n.get()),
            probability: m.probability,
            direction: m.direction.map(|d| d.into_inner()).unwrap_or_default(),
        },
        fault,
    })
}

/// Formats a serde path as a dotted key with 1-based array indices (`rule[2].fault.reset.after`),
/// the way a user counts `[[rule]]` tables.
fn key_path(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => out.push_str(&format!("[{}]", index + 1)),
            Segment::Map { key } | Segment::Enum { variant: key }
                if key.starts_with("$__serde_spanned") => {}
            Segment::Map { key } | Segment::Enum { variant: key } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Segment::Unknown => {}
        }
    }
    out
}

/// The offset of the first `needle` after `start` and before the next table header, so a
/// validation error of a rule points at its fault rather than at its `[[rule]]` line.
fn locate_within(text: &str, start: usize, needle: &str) -> Option<usize> {
    let rest = text.get(start..)?;
    let body_start = rest.find('\n').map(|i| i + 1).unwrap_or(rest.len());
    let body = rest.get(body_start..)?;
    let end = body.find("\n[").unwrap_or(body.len());
    body.get(..end)?
        .find(needle)
        .map(|i| start + body_start + i)
}

/// The field named by serde's "unknown field `x`, expected …" message.
fn unknown_field(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("unknown field `")?;
    rest.split('`').next()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_of(text: &str) -> Located {
        match Scenario::from_toml(text, "s.toml", "s") {
            Err(ScenarioError::Invalid(located)) => located,
            other => panic!("expected an invalid scenario, got {other:?}"),
        }
    }

    #[test]
    fn a_full_scenario_loads() {
        let s = Scenario::from_toml(
            r#"
name = "x"
seed = 7
[proxy]
listen = "127.0.0.1:0"
upstream = "builtin:echo"
[[rule]]
name = "second dies"
match = { connection = 2, direction = "client->upstream" }
fault.reset = { after = "64KiB" }
[[rule]]
match = { every = 3, probability = 0.5 }
fault.latency = { delay = "10ms", jitter = "5ms" }
[[rule]]
fault.refuse = {}
"#,
            "s.toml",
            "s",
        )
        .expect("valid");
        assert_eq!(s.name, "x");
        assert_eq!(s.rules.len(), 3);
        assert_eq!(s.rules[1].name, "rule 2 (latency)");
        assert_eq!(s.rules[0].matcher.connections, Some(vec![2]));
    }

    #[test]
    fn unknown_keys_are_located_and_named() {
        let e = error_of("[[rule]]\nmatch = { conection = 2 }\nfault.refuse = {}\n");
        assert_eq!((e.line, e.key.as_str()), (2, "rule[1].match.conection"));
        assert!(e.message.contains("unknown field"), "{}", e.message);
    }

    #[test]
    fn bad_units_point_at_the_value() {
        let e = error_of("[[rule]]\nfault.reset = { after = \"64 parsecs\" }\n");
        assert_eq!(e.key, "rule[1].fault.reset.after");
        assert_eq!((e.line, e.column), (2, 25));
    }

    #[test]
    fn out_of_range_probability_is_an_error() {
        let e = error_of("[[rule]]\nmatch = { probability = 1.5 }\nfault.refuse = {}\n");
        assert_eq!(e.key, "rule[1].match.probability");
    }

    #[test]
    fn impossible_combinations_are_errors() {
        let e = error_of("[[rule]]\nfault.reset = { after = \"1KiB\", at = \"1s\" }\n");
        assert_eq!(e.key, "rule[1].fault.reset.at");
        let e = error_of(
            "[[rule]]\nmatch = { direction = \"client->upstream\" }\nfault.terminate = { after = \"1s\" }\n",
        );
        assert_eq!(e.key, "rule[1].match.direction");
        assert_eq!(e.line, 2);
    }

    #[test]
    fn unknown_faults_and_two_faults_in_one_rule_are_errors() {
        let e = error_of("[[rule]]\nfault.explode = {}\n");
        assert!(e.key.starts_with("rule[1].fault"), "{}", e.key);
        let e = error_of("[[rule]]\nfault.refuse = {}\nfault.truncate = { after = 1 }\n");
        assert!(e.key.starts_with("rule[1].fault"), "{}", e.key);
    }

    #[test]
    fn syntax_errors_have_a_position() {
        let e = error_of("name = \"x\"\n[proxy\n");
        assert_eq!(e.line, 2);
    }

    #[test]
    fn probability_decisions_replay_with_the_same_seed() {
        let m = Match {
            probability: Some(Probability::new(0.5).expect("valid")),
            ..Match::default()
        };
        let run = |seed| {
            (1..=200)
                .map(|c| m.matches_connection(c, seed, 0))
                .collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
        let hits = run(7).iter().filter(|&&b| b).count();
        assert!((60..140).contains(&hits), "{hits} of 200 at p=0.5");
    }
}
