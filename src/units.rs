//! Typed units for scenario and fault values (sizes, durations, rates, probabilities), parsed once at load.
//!
//! Units live in types so that a rule can never confuse "64" bytes with "64" milliseconds: every
//! value in a scenario file carries its unit in the string (`"64KiB"`, `"250ms"`, `"1MiB/s"`), and
//! a missing or unknown unit is an error at load, pointing at the value.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

/// A number of bytes, written `"64KiB"`, `"1MB"`, `"512B"` or as a plain integer of bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ByteSize(pub u64);

/// A span of time, written with a unit: `"500us"`, `"250ms"`, `"30s"`, `"2m"`, `"1h"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Span(pub Duration);

/// A transfer rate in bytes per second, written `"256KiB/s"`; always greater than zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Rate(pub u64);

/// How far into a message body a fault acts: a size (`"1MiB"`) or a share of the body (`"50%"`,
/// which needs a Content-Length to be known).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Amount {
    /// This many bytes.
    Bytes(u64),
    /// This percentage (0–100) of the message body.
    Percent(f64),
}

impl Amount {
    /// The byte count for a body of `total` bytes, when it can be known.
    pub fn of(self, total: Option<u64>) -> Option<u64> {
        match self {
            Amount::Bytes(n) => Some(n),
            Amount::Percent(p) => total.map(|t| ((t as f64) * p / 100.0).floor() as u64),
        }
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Amount::Bytes(n) => write!(f, "{n} bytes"),
            Amount::Percent(p) => write!(f, "{p}% of the body"),
        }
    }
}

/// Parses `"50%"` or a size.
pub fn parse_amount(text: &str) -> Result<Amount, String> {
    if let Some(number) = text.trim().strip_suffix('%') {
        let p: f64 = number.trim().parse().map_err(|_| {
            format!("invalid percentage {text:?}: expected a number followed by %, like \"50%\"")
        })?;
        if !(0.0..=100.0).contains(&p) {
            return Err(format!(
                "invalid percentage {text:?}: must be between 0% and 100%"
            ));
        }
        return Ok(Amount::Percent(p));
    }
    parse_size(text).map(|s| Amount::Bytes(s.0))
}

impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(UnitVisitor {
            expecting: "a size like \"64KiB\" or a share of the body like \"50%\"",
            example_unit: "B",
            parse: parse_amount,
            accepts_integer: true,
        })
    }
}

/// A probability in `0.0..=1.0`; values outside are rejected at load rather than clamped.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct Probability(f64);

impl Probability {
    /// Checks the range so a typo like `probability = 5` (meaning 5 %) is caught at load.
    pub fn new(value: f64) -> Result<Self, String> {
        if value.is_finite() && (0.0..=1.0).contains(&value) {
            Ok(Probability(value))
        } else {
            Err(format!(
                "probability must be between 0 and 1 (write 0.05 for 5 %), got {value}"
            ))
        }
    }

    /// The checked value, for comparing against a uniform draw in `[0, 1)`.
    pub fn value(self) -> f64 {
        self.0
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} bytes", self.0)
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} bytes/s", self.0)
    }
}

/// Splits `"64KiB"` into `("64", "KiB")`, underscores removed; the number may have a fraction
/// (`"1.5MiB"`).
fn split_digits(text: &str) -> (String, &str) {
    let text = text.trim();
    let end = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '_'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(end);
    let number: String = number.chars().filter(|&c| c != '_').collect();
    (number, unit.trim())
}

/// Why a decimal number of units is not a count of whole bytes (or bits).
#[derive(Debug, PartialEq)]
enum Scaled {
    /// Not a decimal number at all.
    Invalid,
    /// More than fits in 64 bits.
    TooLarge,
}

/// `number` (decimal digits with at most one `.`) times `multiplier`, computed exactly: f64
/// arithmetic would silently turn `"9007199254740993B"` into 9007199254740992 bytes and
/// `"18446744073709551616"` (2^64) into u64::MAX. Returns the whole part and whether the product
/// was whole.
fn scaled(number: &str, multiplier: u64) -> Result<(u64, bool), Scaled> {
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (whole.is_empty() && fraction.is_empty()) || !all_digits(whole) || !all_digits(fraction) {
        return Err(Scaled::Invalid);
    }
    let fraction = fraction.trim_end_matches('0');
    let whole_value: u128 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| Scaled::TooLarge)?
    };
    if whole_value > u128::from(u64::MAX) {
        return Err(Scaled::TooLarge);
    }
    let product = whole_value * u128::from(multiplier);
    // The fraction's contribution, exactly, while it fits (2^64 × 10^12 < 2^128 above).
    let (extra, exact) = if fraction.is_empty() {
        (0, true)
    } else {
        match (
            fraction.parse::<u128>().ok(),
            10u128.checked_pow(fraction.len() as u32),
        ) {
            (Some(digits), Some(scale)) => match digits.checked_mul(u128::from(multiplier)) {
                Some(n) => (n / scale, n % scale == 0),
                None => (0, false),
            },
            // More significant digits than any unit can make whole: keep the whole part.
            _ => (0, false),
        }
    };
    let total = u64::try_from(product + extra).map_err(|_| Scaled::TooLarge)?;
    Ok((total, exact))
}

/// The size units faultline accepts, for error messages.
const SIZE_UNITS: &str =
    "B, KB, KiB, MB, MiB, GB, GiB, TB, TiB (any case: KB = 1000 bytes, KiB = 1024)";

/// Bytes per unit of a size unit, in any case (`mb`, `MB`, `Mb` are all megabytes: sizes in
/// scenario files are never bits).
fn size_multiplier(unit: &str) -> Option<u64> {
    Some(match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" | "byte" | "bytes" => 1,
        "k" | "kb" => 1_000,
        "ki" | "kib" => 1 << 10,
        "m" | "mb" => 1_000_000,
        "mi" | "mib" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gi" | "gib" => 1 << 30,
        "t" | "tb" => 1_000_000_000_000,
        "ti" | "tib" => 1 << 40,
        _ => return None,
    })
}

/// A whole number of bytes from `number` units of `multiplier` bytes, or why not.
fn whole_bytes(text: &str, number: &str, multiplier: u64, per: &str) -> Result<u64, String> {
    match scaled(number, multiplier) {
        Ok((bytes, true)) => Ok(bytes),
        Ok((_, false)) => Err(format!(
            "invalid {per} {text:?}: not a whole number of bytes{}",
            if per == "rate" { " per second" } else { "" }
        )),
        Err(Scaled::TooLarge) => Err(format!(
            "invalid {per} {text:?}: too large (at most {} bytes)",
            u64::MAX
        )),
        Err(Scaled::Invalid) => Err(format!("invalid {per} {text:?}: not a number")),
    }
}

/// Refuses a prefix without `B` or `iB` (`64K`: 65536 to curl and dd, 64000 to SI) rather than
/// guess, naming both spellings and what each means; `per` follows them (`/s` in a rate).
fn bare_prefix(text: &str, number: &str, unit: &str, per: &str) -> Result<(), String> {
    if !matches!(unit.to_ascii_lowercase().as_str(), "k" | "m" | "g" | "t") {
        return Ok(());
    }
    let prefix = unit.to_ascii_uppercase();
    let spelled = |suffix: &str| {
        let spelling = format!("{number}{prefix}{suffix}");
        let bytes = size_multiplier(suffix_unit(&prefix, suffix))
            .and_then(|m| scaled(number, m).ok())
            .map_or(String::new(), |(b, _)| format!(" ({b} bytes{per})"));
        format!("\"{spelling}{per}\"{bytes}")
    };
    Err(format!(
        "invalid {} {text:?}: {unit} alone is ambiguous (curl and dd read it as 1024, SI as 1000): write {} or {}",
        if per.is_empty() { "size" } else { "rate" },
        spelled("iB"),
        spelled("B")
    ))
}

/// The unit `prefix` and `suffix` spell (`K` and `iB`: `KiB`).
fn suffix_unit(prefix: &str, suffix: &str) -> &'static str {
    match (prefix, suffix) {
        ("K", "iB") => "kib",
        ("M", "iB") => "mib",
        ("G", "iB") => "gib",
        ("T", "iB") => "tib",
        ("K", _) => "kb",
        ("M", _) => "mb",
        ("G", _) => "gb",
        _ => "tb",
    }
}

/// Parses a size such as `"64KiB"`; decimal (`KB`) and binary (`KiB`) prefixes both exist in the
/// wild, so both are accepted, in any case, and mean what they say.
pub fn parse_size(text: &str) -> Result<ByteSize, String> {
    let bad = || {
        // A rate where a size belongs (`after = "1mbit/s"`) is a mix-up worth naming.
        let rate = if text.contains('/') || text.to_ascii_lowercase().trim_end().ends_with("bps") {
            "that is a rate (per second), not a size; "
        } else {
            ""
        };
        format!("invalid size {text:?}: {rate}expected a number with a unit: {SIZE_UNITS}")
    };
    let (number, unit) = split_digits(text);
    let multiplier = size_multiplier(unit).ok_or_else(bad)?;
    if scaled(&number, 1) == Err(Scaled::Invalid) {
        return Err(bad());
    }
    bare_prefix(text, &number, unit, "")?;
    whole_bytes(text, &number, multiplier, "size").map(ByteSize)
}

/// The duration units faultline accepts, for error messages.
const DURATION_UNITS: &str = "ns, us (µs), ms, s, m (minutes), h, in any case, or spelled out (nsec, usec, msec, sec, secs, second(s), min, mins, minute(s), hr, hour(s)), or a sum like \"1h30m\"; a whole number of nanoseconds, like \"250ms\" or \"1.5s\"";

/// Nanoseconds per duration unit, in any case (`M` is minutes, as `m`: sizes are parsed apart,
/// so no duration unit is confused with mega), short or spelled out.
fn duration_nanos(unit: &str) -> Option<u64> {
    Some(match unit.to_lowercase().as_str() {
        "ns" | "nsec" | "nsecs" | "nanosecond" | "nanoseconds" => 1,
        "us" | "µs" | "μs" | "usec" | "usecs" | "microsecond" | "microseconds" => 1_000,
        "ms" | "msec" | "msecs" | "millisecond" | "milliseconds" => 1_000_000,
        "s" | "sec" | "secs" | "second" | "seconds" => 1_000_000_000,
        "m" | "min" | "mins" | "minute" | "minutes" => 60_000_000_000,
        "h" | "hr" | "hrs" | "hour" | "hours" => 3_600_000_000_000,
        _ => return None,
    })
}

/// The longest duration a scenario may give (a year): longer is surely a typo.
const MAX_DURATION_NANOS: u64 = 365 * 86_400 * 1_000_000_000;

/// Parses a duration such as `"250ms"`, `"5 seconds"` or `"1h30m"`; a bare number is rejected
/// because its unit would be a guess, and a value that is not a whole number of nanoseconds
/// (`"1.5ns"`) is rejected rather than rounded, as sizes refuse fractions of a byte.
pub fn parse_duration(text: &str) -> Result<Span, String> {
    let bad =
        || format!("invalid duration {text:?}: expected a number with a unit: {DURATION_UNITS}");
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total: u64 = 0;
    while !rest.is_empty() {
        let number_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '_'))
            .unwrap_or(rest.len());
        let number: String = rest[..number_end].chars().filter(|&c| c != '_').collect();
        let after = rest[number_end..].trim_start();
        let unit_end = after
            .find(|c: char| !c.is_alphabetic())
            .unwrap_or(after.len());
        let unit = &after[..unit_end];
        let nanos = duration_nanos(unit).ok_or_else(bad)?;
        let part = match scaled(&number, nanos) {
            Ok((n, true)) => n,
            Ok((_, false)) => {
                return Err(format!(
                    "invalid duration {text:?}: not a whole number of nanoseconds"
                ))
            }
            Err(Scaled::TooLarge) => u64::MAX,
            Err(Scaled::Invalid) => return Err(bad()),
        };
        total = total.saturating_add(part);
        rest = after[unit_end..].trim_start();
    }
    if total > MAX_DURATION_NANOS {
        return Err(format!(
            "invalid duration {text:?}: too long (at most 365 days)"
        ));
    }
    Ok(Span(Duration::from_nanos(total)))
}

/// Parses a rate: a size per second (`"256KiB/s"`, `"1MB/s"`) or a bit rate as networks write it
/// (`"8mbit/s"`, `"100Mbps"`, decimal prefixes); zero is rejected (use `stall` to stop traffic).
pub fn parse_rate(text: &str) -> Result<Rate, String> {
    let bad = || {
        // A size where a rate belongs (`rate = "64kb"`): say what to add (with a capital B:
        // `64kb/s` is refused as bits-or-bytes).
        let hint = if parse_size(text).is_ok() {
            let size = text.trim();
            let size = match size.strip_suffix('b') {
                Some(prefix) if !prefix.ends_with(|c: char| c.is_ascii_digit()) => {
                    format!("{prefix}B")
                }
                _ => size.to_string(),
            };
            format!("that is a size; a rate is per second, like \"{size}/s\"; ")
        } else {
            String::new()
        };
        format!("invalid rate {text:?}: {hint}expected a size per second (\"256KiB/s\", \"1MB/s\") or bits per second (\"8mbit/s\", \"100Mbps\")")
    };
    let trimmed = text.trim();
    // `Bps` with a capital B is bytes per second (`1MBps`, as `B` is a byte everywhere else);
    // `bps` with a small one is bits (`100Mbps`, `1mbps`), as networks write it.
    if let Some(size) = trimmed.strip_suffix("Bps") {
        return parse_rate(&format!("{size}B/s")).map_err(|_| bad());
    }
    let lower = trimmed.to_ascii_lowercase();
    let bytes = if let Some(bits) = lower
        .strip_suffix("bits/s")
        .or_else(|| lower.strip_suffix("bit/s"))
        .or_else(|| lower.strip_suffix("bps"))
    {
        let (number, prefix) = split_digits(bits);
        let per_second: u64 = match prefix {
            "" => 1,
            "k" => 1_000,
            "m" => 1_000_000,
            "g" => 1_000_000_000,
            _ => return Err(bad()),
        };
        match scaled(&number, per_second) {
            // Partial bits and bytes round down (then zero is refused below).
            Ok((bits, _)) => bits / 8,
            Err(Scaled::TooLarge) => {
                return Err(format!(
                    "invalid rate {text:?}: too large (at most {} bits per second)",
                    u64::MAX
                ))
            }
            Err(Scaled::Invalid) => return Err(bad()),
        }
    } else {
        let size = ["/s", "/S", "/sec", "/second"]
            .iter()
            .find_map(|per| trimmed.strip_suffix(per))
            .ok_or_else(bad)?;
        let (number, unit) = split_digits(size);
        // `1Mb/s` and `100mb/s` are megabits where networks write them and megabytes in
        // faultline's any-case sizes: 8 times apart, so neither is guessed.
        let unit_text = unit.trim();
        if unit_text.len() > 1 && unit_text.ends_with('b') {
            let prefix = &unit_text[..unit_text.len() - 1];
            // Bits take decimal prefixes only (`Mib/s` offers `Mbit/s`).
            let bits = &prefix[..1];
            let bytes = prefix[..1].to_ascii_uppercase() + &prefix[1..];
            return Err(format!(
                "invalid rate {text:?}: {unit_text}/s is bits to networks but bytes in faultline's any-case sizes, 8 times apart: write \"{number}{bits}bit/s\" for bits or \"{number}{bytes}B/s\" for bytes per second"
            ));
        }
        let multiplier = size_multiplier(unit).ok_or_else(bad)?;
        if scaled(&number, 1) == Err(Scaled::Invalid) {
            return Err(bad());
        }
        bare_prefix(text, &number, unit, "/s")?;
        whole_bytes(text, &number, multiplier, "rate")?
    };
    if bytes == 0 {
        return Err(format!(
            "invalid rate {text:?}: must be at least one byte per second (use the stall fault to stop traffic)"
        ));
    }
    Ok(Rate(bytes))
}

struct UnitVisitor<F> {
    expecting: &'static str,
    /// The unit a bare number most likely lacks, for the hint (`ms`, `B`, `B/s`).
    example_unit: &'static str,
    parse: F,
    accepts_integer: bool,
}

impl<'de, T, F> Visitor<'de> for UnitVisitor<F>
where
    F: Fn(&str) -> Result<T, String>,
{
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.expecting)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        (self.parse)(v).map_err(E::custom)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
        if self.accepts_integer && v >= 0 {
            (self.parse)(&v.to_string()).map_err(E::custom)
        } else if v < 0 {
            Err(E::custom(format!(
                "expected {}, got the negative number {v}: an amount cannot be below 0",
                self.expecting
            )))
        } else {
            // The number the user meant, with the unit they most likely left out.
            Err(E::custom(format!(
                "expected {}, got the bare number {v}: give it a unit in quotes, like \"{v}{}\"",
                self.expecting, self.example_unit
            )))
        }
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
        match i64::try_from(v) {
            Ok(v) => self.visit_i64(v),
            // Above i64::MAX: still a count of bytes, not "-1" in the message.
            Err(_) if self.accepts_integer => (self.parse)(&v.to_string()).map_err(E::custom),
            Err(_) => Err(E::custom(format!(
                "expected {}, got the bare number {v}",
                self.expecting
            ))),
        }
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(UnitVisitor {
            expecting: "a size like \"64KiB\" or an integer number of bytes",
            example_unit: "B",
            parse: parse_size,
            accepts_integer: true,
        })
    }
}

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(UnitVisitor {
            expecting: "a duration with a unit, like \"250ms\"",
            example_unit: "ms",
            parse: parse_duration,
            accepts_integer: false,
        })
    }
}

impl<'de> Deserialize<'de> for Rate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(UnitVisitor {
            expecting: "a rate like \"256KiB/s\"",
            example_unit: "KiB/s",
            parse: parse_rate,
            accepts_integer: false,
        })
    }
}

impl<'de> Deserialize<'de> for Probability {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ProbabilityVisitor;
        impl Visitor<'_> for ProbabilityVisitor {
            type Value = Probability;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number between 0 and 1")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Probability, E> {
                Probability::new(v).map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Probability, E> {
                Probability::new(v as f64).map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Probability, E> {
                Probability::new(v as f64).map_err(E::custom)
            }
        }
        d.deserialize_any(ProbabilityVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A trial's `after = "64K"` reset at 64000 bytes, where curl and dd mean 65536: a prefix
    /// without B or iB is refused with both spellings and what each means.
    #[test]
    fn a_bare_prefix_is_refused_with_both_meanings() {
        let error = parse_size("64K").unwrap_err();
        assert!(
            error.contains(r#"write "64KiB" (65536 bytes) or "64KB" (64000 bytes)"#),
            "{error}"
        );
        assert!(parse_size("1m")
            .unwrap_err()
            .contains(r#""1MiB" (1048576 bytes)"#));
        assert!(parse_rate("256K/s").is_err());
        assert_eq!(parse_size("64Ki").map(|b| b.0), Ok(65_536));
        assert_eq!(parse_size("64KB").map(|b| b.0), Ok(64_000));
    }

    /// Issue 15: `1mbit/s` where a size belongs was only "an invalid size"; `64kb` where a rate
    /// belongs did not say that `/s` was missing.
    #[test]
    fn a_rate_for_a_size_and_a_size_for_a_rate_are_named() {
        let size = parse_size("1mbit/s").expect_err("a rate is no size");
        assert!(
            size.contains("that is a rate (per second), not a size"),
            "{size}"
        );
        let rate = parse_rate("64kb").expect_err("a size is no rate");
        assert!(rate.contains(r#"like "64kB/s""#), "{rate}");
        assert_eq!(parse_size("1mb").map(|b| b.0), Ok(1_000_000));
        assert_eq!(parse_size("64kib").map(|b| b.0), Ok(65_536));
        let plain = parse_size("12 apples").expect_err("no unit");
        assert!(!plain.contains("rate"), "{plain}");
    }

    #[test]
    fn sizes_accept_decimal_and_binary_prefixes() {
        assert_eq!(parse_size("64KiB"), Ok(ByteSize(65_536)));
        assert_eq!(parse_size("1MB"), Ok(ByteSize(1_000_000)));
        assert_eq!(parse_size("1.5MiB"), Ok(ByteSize(1_572_864)));
        assert_eq!(parse_size("512"), Ok(ByteSize(512)));
        assert_eq!(parse_size("0B"), Ok(ByteSize(0)));
        assert_eq!(parse_size("1_000"), Ok(ByteSize(1000)));
    }

    #[test]
    fn size_units_are_read_in_any_case() {
        assert_eq!(parse_size("64kb"), Ok(ByteSize(64_000)));
        assert_eq!(parse_size("1mb"), Ok(ByteSize(1_000_000)));
        assert_eq!(parse_size("64kib"), Ok(ByteSize(65_536)));
        assert_eq!(parse_size("2GIB"), Ok(ByteSize(2 << 30)));
        let e = parse_size("3 furlongs").expect_err("unknown unit");
        assert!(e.contains("KiB") && e.contains("any case"), "{e}");
    }

    #[test]
    fn sizes_reject_unknown_units_and_fractions_of_bytes() {
        assert!(parse_size("64 parsecs").is_err());
        assert!(parse_size("KiB").is_err());
        assert!(parse_size("1.5").is_err());
        assert!(parse_size("-3KiB").is_err());
    }

    /// Sizes were computed in f64: `"9007199254740993B"` silently lost a byte, and 2^64 bytes
    /// (`"18446744073709551616"`, `"16777216TiB"`) became u64::MAX instead of an error.
    #[test]
    fn sizes_are_exact_and_never_saturate() {
        assert_eq!(
            parse_size("9007199254740993B"),
            Ok(ByteSize(9_007_199_254_740_993))
        );
        assert_eq!(parse_size("18446744073709551615"), Ok(ByteSize(u64::MAX)));
        for huge in [
            "18446744073709551616",
            "16777216TiB",
            "17179869184GiB",
            "99999999999999999999999999999999999999999999B",
        ] {
            let e = parse_size(huge).expect_err(huge);
            assert!(e.contains("too large"), "{e}");
        }
        assert_eq!(parse_size("0.5KiB"), Ok(ByteSize(512)));
        assert_eq!(parse_size(".5KiB"), Ok(ByteSize(512)));
        assert_eq!(parse_size("1.000KB"), Ok(ByteSize(1000)));
        assert!(parse_size("1.0001KB").is_err());
        assert!(parse_size("1.2.3KB").is_err());
        assert!(parse_size(".").is_err());
        assert_eq!(parse_rate("18446744073709551615B/s"), Ok(Rate(u64::MAX)));
        let e = parse_rate("99999999999999999999999Gbit/s").expect_err("2^64 bits/s and more");
        assert!(e.contains("too large"), "{e}");
        assert_eq!(parse_rate("1.5kbit/s"), Ok(Rate(187)));
        assert!(parse_rate("7bps").is_err());
    }

    #[test]
    fn durations_need_a_unit() {
        assert_eq!(
            parse_duration("250ms"),
            Ok(Span(Duration::from_millis(250)))
        );
        assert_eq!(parse_duration("2m"), Ok(Span(Duration::from_secs(120))));
        assert_eq!(
            parse_duration("500us"),
            Ok(Span(Duration::from_micros(500)))
        );
        assert!(parse_duration("250").is_err());
        assert!(parse_duration("fast").is_err());
    }

    /// A trial: `"5sec"`, `"5 s"` and `"5min"` were accepted but `"5secs"`, `"5minutes"`,
    /// `"1h30m"`, `"5S"` and `"5MS"` refused, the error listed none of the long forms, and
    /// `"0.0001ns"` and `"1.5ns"` were silently rounded.
    #[test]
    fn durations_are_spelled_as_people_write_them_and_exact() {
        let secs = |s: u64| Ok(Span(Duration::from_secs(s)));
        for five_seconds in [
            "5s",
            "5S",
            "5 s",
            "5sec",
            "5secs",
            "5 seconds",
            "5Second",
            "5_000ms",
        ] {
            assert_eq!(parse_duration(five_seconds), secs(5), "{five_seconds}");
        }
        for five_minutes in ["5m", "5M", "5min", "5mins", "5 minutes", "5MINUTE"] {
            assert_eq!(parse_duration(five_minutes), secs(300), "{five_minutes}");
        }
        assert_eq!(parse_duration("2h"), secs(7200));
        assert_eq!(parse_duration("2 hours"), secs(7200));
        assert_eq!(parse_duration("1h30m"), secs(5400));
        assert_eq!(parse_duration("1h 30m 15s"), secs(5415));
        assert_eq!(
            parse_duration("1m30.5s"),
            Ok(Span(Duration::from_millis(90_500)))
        );
        assert_eq!(parse_duration("5MS"), Ok(Span(Duration::from_millis(5))));
        assert_eq!(parse_duration("5msec"), Ok(Span(Duration::from_millis(5))));
        for micros in ["7us", "7µs", "7μs", "7usec", "7US", "7 microseconds"] {
            assert_eq!(
                parse_duration(micros),
                Ok(Span(Duration::from_micros(7))),
                "{micros}"
            );
        }
        assert_eq!(parse_duration("3ns"), Ok(Span(Duration::from_nanos(3))));
        assert_eq!(
            parse_duration("1.5us"),
            Ok(Span(Duration::from_nanos(1500)))
        );
        for fraction in ["0.0001ns", "1.5ns", "0.0000000001s"] {
            let e = parse_duration(fraction).expect_err(fraction);
            assert!(e.contains("not a whole number of nanoseconds"), "{e}");
        }
        for wrong in [
            "",
            "s",
            "1h30",
            "5 parsecs",
            "-5s",
            "5s5",
            "1.2.3s",
            "5ss",
            "0.005ks",
        ] {
            let e = parse_duration(wrong).expect_err(wrong);
            assert!(
                e.contains("seconds") && e.contains("1h30m") && e.contains("any case"),
                "{wrong}: {e}"
            );
        }
        assert!(parse_duration("366 days").is_err());
        let e = parse_duration("9000h").expect_err("over a year");
        assert!(e.contains("too long"), "{e}");
        let e = parse_duration("99999999999999999999999h").expect_err("huge");
        assert!(e.contains("too long"), "{e}");
        assert_eq!(parse_duration("8760h"), secs(365 * 86_400));
    }

    #[test]
    fn rates_are_sizes_per_second_and_positive() {
        assert_eq!(parse_rate("256KiB/s"), Ok(Rate(262_144)));
        assert_eq!(parse_rate("1MB/S"), Ok(Rate(1_000_000)));
        assert_eq!(parse_rate("1MB/sec"), Ok(Rate(1_000_000)));
        assert_eq!(parse_rate("8mbit/s"), Ok(Rate(1_000_000)));
        assert_eq!(parse_rate("100Mbps"), Ok(Rate(12_500_000)));
        let e = parse_rate("256KiB").expect_err("not a rate");
        assert!(e.starts_with("invalid rate"), "{e}");
        assert!(e.starts_with("invalid rate"), "{e}");
        let e = parse_rate("1 parsec/s").expect_err("not a rate");
        assert!(e.starts_with("invalid rate"), "{e}");
        assert!(parse_rate("0B/s").is_err());
    }

    /// A trial found `1MBps` taken as megabits (125,000 bytes/s) and `1Mb/s` as megabytes: `B`
    /// is a byte and `b` a bit wherever the case tells them apart, and `Mb/s` or `100kb/s`
    /// (bytes in the any-case sizes, bits to networks) is refused with both spellings offered.
    #[test]
    fn a_capital_b_is_a_byte_and_a_small_one_a_bit_or_refused() {
        assert_eq!(parse_rate("1MBps"), Ok(Rate(1_000_000)));
        assert_eq!(parse_rate("1MiBps"), Ok(Rate(1 << 20)));
        assert_eq!(parse_rate("1Bps"), Ok(Rate(1)));
        assert_eq!(parse_rate("1mbps"), Ok(Rate(125_000)));
        assert_eq!(parse_rate("1Mbps"), Ok(Rate(125_000)));
        assert_eq!(parse_rate("16 kbits/s"), Ok(Rate(2_000)));
        assert_eq!(parse_rate("1MB/s"), Ok(Rate(1_000_000)));
        for ambiguous in [
            "1Mb/s",
            "1Kb/s",
            "1Gb/s",
            "1MiB/s".replace('B', "b").as_str(),
        ] {
            let e = parse_rate(ambiguous).expect_err(ambiguous);
            assert!(
                e.contains("bit/s\" for bits") && e.contains("B/s\" for bytes"),
                "{e}"
            );
        }
        let e = parse_rate("1Mb/s").expect_err("ambiguous");
        assert!(
            e.contains(r#"write "1Mbit/s" for bits or "1MB/s" for bytes"#),
            "{e}"
        );
    }

    #[test]
    fn amounts_are_sizes_or_percentages() {
        assert_eq!(parse_amount("50%"), Ok(Amount::Percent(50.0)));
        assert_eq!(parse_amount("1KiB"), Ok(Amount::Bytes(1024)));
        assert!(parse_amount("150%").is_err());
        assert_eq!(Amount::Percent(50.0).of(Some(101)), Some(50));
        assert_eq!(Amount::Percent(50.0).of(None), None);
    }

    #[test]
    fn probabilities_are_range_checked() {
        assert!(Probability::new(0.0).is_ok());
        assert!(Probability::new(1.0).is_ok());
        assert!(Probability::new(1.01).is_err());
        assert!(Probability::new(f64::NAN).is_err());
    }
}
