//! Derivation of independent, reproducible random streams from one scenario seed.
//!
//! Every random decision takes its own stream, keyed by what it is about (connection ordinal, rule,
//! direction, purpose), so adding a rule or a connection does not shift the decisions of the others,
//! and the same seed with the same sequence of connections replays the same run.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// What a random stream is used for; part of its key so two purposes never share draws.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Whether a rule with `probability` matches a connection.
    RuleMatch = 1,
    /// Per-chunk randomness inside a fault (latency jitter).
    FaultTiming = 2,
}

/// One step of splitmix64: a cheap, well-mixed hash of a 64-bit state.
fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A stable 64-bit key for a piece of text (FNV-1a, the same on every platform and Rust
/// version, unlike std's hasher): rules are keyed by their own text, so inserting a rule
/// before another does not shift the other's random streams the way an index would.
pub fn key_of(text: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &byte in text {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// The largest seed faultline chooses: 2^53 - 1. Seeds appear as JSON numbers (`run --json`,
/// `inspect --json`, the control API), and jq, JavaScript and every reader that holds numbers as
/// doubles round integers above 2^53: a trial replayed a jq-read seed and got other faults.
pub const MAX_CHOSEN: u64 = (1 << 53) - 1;

/// A seed for a run that was given none: at most [`MAX_CHOSEN`], so the seed `run` prints
/// survives any JSON reader and fits a scenario file's `seed =` (`--seed` still takes any u64).
pub fn random() -> u64 {
    rand::random::<u64>() & MAX_CHOSEN
}

/// A ChaCha8 stream (portable across platforms and rand versions, unlike `StdRng`) for one
/// decision keyed by `(seed, purpose, parts…)`.
pub fn stream(seed: u64, purpose: Purpose, parts: &[u64]) -> ChaCha8Rng {
    let mut state = splitmix64(seed ^ (purpose as u64).rotate_left(56));
    for &part in parts {
        state = splitmix64(state ^ splitmix64(part));
    }
    ChaCha8Rng::seed_from_u64(state)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    #[test]
    fn same_key_same_stream_other_key_other_stream() {
        let a: u64 = stream(7, Purpose::RuleMatch, &[1, 2]).gen();
        let b: u64 = stream(7, Purpose::RuleMatch, &[1, 2]).gen();
        let c: u64 = stream(7, Purpose::RuleMatch, &[2, 1]).gen();
        let d: u64 = stream(7, Purpose::FaultTiming, &[1, 2]).gen();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(a, d);
    }

    /// A trial pasted a printed `--seed 10141591430360726759` into `seed =` and TOML refused it:
    /// half of all u64 seeds are beyond a TOML integer.
    #[test]
    fn random_seeds_fit_a_toml_integer() {
        for _ in 0..1000 {
            let seed = random();
            let text = format!("seed = {seed}");
            let table: toml::Table = text.parse().expect("fits a TOML integer");
            assert_eq!(table["seed"].as_integer(), Some(seed as i64));
            // And survives a reader that holds JSON numbers as doubles (jq, JavaScript).
            assert_eq!(seed as f64 as u64, seed);
        }
    }

    #[test]
    fn text_keys_are_stable() {
        assert_eq!(key_of(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(key_of(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_ne!(key_of(b"rule 1"), key_of(b"rule 2"));
    }
}
