//! A Toxiproxy toxic: its JSON (as Toxiproxy's clients send and read it), its checks, and the
//! faultline rule it becomes.
//!
//! Each toxic is one `[[rule]]` of the proxy's scenario, written as TOML text and loaded like any
//! scenario, so a toxic is validated and keyed (counters, random streams, state kept across rule
//! book swaps) exactly as a rule in a file would be.

use serde_json::{Map, Value};

use super::error::ApiError;
use crate::direction::Direction;

/// Longest duration a toxic may ask for, in milliseconds (a year, as scenario files allow).
const MAX_MS: i64 = 365 * 24 * 3600 * 1000;

/// What a toxic does, with Toxiproxy's attributes (integers, in Toxiproxy's units).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToxicKind {
    /// `latency` ms, `jitter` ms: each chunk waits latency ± jitter.
    Latency { latency: i64, jitter: i64 },
    /// `rate` KB/s (1 KB = 1000 bytes); 0 stops the stream.
    Bandwidth { rate: i64 },
    /// `delay` ms between the source's close and the destination's.
    SlowClose { delay: i64 },
    /// `timeout` ms until the connection closes, dropping data meanwhile; 0: never closes.
    Timeout { timeout: i64 },
    /// `timeout` ms between the first data and a reset.
    ResetPeer { timeout: i64 },
    /// Pieces of `average_size` ± `size_variation` bytes, `delay` µs apart.
    Slicer {
        average_size: i64,
        size_variation: i64,
        delay: i64,
    },
    /// Close after `bytes` bytes.
    LimitData { bytes: i64 },
    /// Passes everything through (Toxiproxy registers it as a type clients may create too).
    Noop,
}

impl ToxicKind {
    /// Every type name Toxiproxy knows, for messages.
    pub const TYPES: [&'static str; 8] = [
        "latency",
        "bandwidth",
        "slow_close",
        "timeout",
        "reset_peer",
        "slicer",
        "limit_data",
        "noop",
    ];

    /// The zero-valued toxic of a type name (Toxiproxy starts from zeroes too), or `None` for a
    /// type it does not know.
    pub fn of_type(name: &str) -> Option<ToxicKind> {
        Some(match name {
            "latency" => ToxicKind::Latency {
                latency: 0,
                jitter: 0,
            },
            "bandwidth" => ToxicKind::Bandwidth { rate: 0 },
            "slow_close" => ToxicKind::SlowClose { delay: 0 },
            "timeout" => ToxicKind::Timeout { timeout: 0 },
            "reset_peer" => ToxicKind::ResetPeer { timeout: 0 },
            "slicer" => ToxicKind::Slicer {
                average_size: 0,
                size_variation: 0,
                delay: 0,
            },
            "limit_data" => ToxicKind::LimitData { bytes: 0 },
            "noop" => ToxicKind::Noop,
            _ => return None,
        })
    }

    /// The type name.
    pub fn type_name(&self) -> &'static str {
        match self {
            ToxicKind::Latency { .. } => "latency",
            ToxicKind::Bandwidth { .. } => "bandwidth",
            ToxicKind::SlowClose { .. } => "slow_close",
            ToxicKind::Timeout { .. } => "timeout",
            ToxicKind::ResetPeer { .. } => "reset_peer",
            ToxicKind::Slicer { .. } => "slicer",
            ToxicKind::LimitData { .. } => "limit_data",
            ToxicKind::Noop => "noop",
        }
    }

    /// The attributes in Toxiproxy's field order, with a mutable slot each.
    fn fields_mut(&mut self) -> Vec<(&'static str, &mut i64)> {
        match self {
            ToxicKind::Latency { latency, jitter } => {
                vec![("latency", latency), ("jitter", jitter)]
            }
            ToxicKind::Bandwidth { rate } => vec![("rate", rate)],
            ToxicKind::SlowClose { delay } => vec![("delay", delay)],
            ToxicKind::Timeout { timeout } | ToxicKind::ResetPeer { timeout } => {
                vec![("timeout", timeout)]
            }
            ToxicKind::Slicer {
                average_size,
                size_variation,
                delay,
            } => vec![
                ("average_size", average_size),
                ("size_variation", size_variation),
                ("delay", delay),
            ],
            ToxicKind::LimitData { bytes } => vec![("bytes", bytes)],
            ToxicKind::Noop => Vec::new(),
        }
    }

    /// The attributes in Toxiproxy's field order.
    pub fn fields(&self) -> Vec<(&'static str, i64)> {
        let mut copy = self.clone();
        copy.fields_mut()
            .into_iter()
            .map(|(name, value)| (name, *value))
            .collect()
    }

    /// Sets the attributes `value` gives (a JSON object; other keys are ignored and absent ones
    /// keep their value, as Toxiproxy decodes into the toxic it has), then checks the result.
    /// `body` is the request body whose `attributes` member `value` is, so a refused number is
    /// quoted as the client wrote it (`1e2`, not serde_json's `100.0`).
    pub fn set_attributes(&mut self, value: &Value, body: Option<&str>) -> Result<(), ApiError> {
        let object = match value {
            Value::Null => return self.check(),
            Value::Object(object) => object,
            other => {
                return Err(ApiError::bad_body(format!(
                    "attributes must be an object, got {}",
                    json_kind(other)
                )))
            }
        };
        let kind = self.type_name();
        let maxima: Vec<i64> = self
            .fields()
            .into_iter()
            .map(|(name, _)| self.max_of(name))
            .collect();
        for ((name, slot), max) in self.fields_mut().into_iter().zip(maxima) {
            let Some(given) = object.get(name) else {
                continue;
            };
            *slot = match given {
                // `-0` is read as a float; Go's decoder takes it as 0, and so does faultline.
                Value::Number(n) if n.as_f64() == Some(0.0) => 0,
                Value::Number(n) => match n.as_i64() {
                    Some(i) => i,
                    None => {
                        return Err(not_an_int64(
                            n,
                            written(n, body, &format!("attributes.{name}")),
                            &format!("attributes.{name} of a {kind} toxic"),
                            max,
                        ))
                    }
                },
                Value::Null => *slot,
                other => {
                    return Err(ApiError::bad_body(format!(
                        "attributes.{name} of a {kind} toxic must be a number, got {}",
                        json_kind(other)
                    )))
                }
            };
        }
        self.check()
    }

    /// The largest value the attribute `name` may take.
    fn max_of(&self, name: &str) -> i64 {
        match (self, name) {
            (ToxicKind::Slicer { .. }, "delay") => MAX_MS.saturating_mul(1000),
            (ToxicKind::Slicer { .. }, _) | (ToxicKind::LimitData { .. }, _) => i64::MAX,
            (ToxicKind::Bandwidth { .. }, _) => i64::MAX / 1000,
            _ => MAX_MS,
        }
    }

    /// Rejects values Toxiproxy would take but that mean nothing (negative times and sizes) or
    /// that it would choke on (a slicer without a size never stops cutting).
    fn check(&self) -> Result<(), ApiError> {
        let kind = self.type_name();
        for (name, value) in self.fields() {
            let max = self.max_of(name);
            if value < 0 {
                return Err(ApiError::bad_body(format!(
                    "attributes.{name} of a {kind} toxic must not be negative, got {value}"
                )));
            }
            if value > max {
                return Err(ApiError::bad_body(format!(
                    "attributes.{name} of a {kind} toxic is too large: {value} (at most {max})"
                )));
            }
        }
        // Each value fits, but the rule's range reaches latency + jitter: that must fit too (it
        // was refused later, as a 500, when the rule did not load).
        if let ToxicKind::Latency { latency, jitter } = self {
            let high = latency.saturating_add(*jitter);
            if high > MAX_MS {
                return Err(ApiError::bad_body(format!(
                    "attributes.latency + attributes.jitter of a latency toxic is too large: {high} (at most {MAX_MS})"
                )));
            }
        }
        if let ToxicKind::Slicer { average_size, .. } = self {
            if *average_size < 1 {
                return Err(ApiError::bad_body(
                    "attributes.average_size of a slicer toxic must be at least 1 (pieces of 0 bytes never end)",
                ));
            }
        }
        Ok(())
    }

    /// The `fault.NAME = { … }` line of the rule this toxic becomes (`None`: it becomes no rule).
    fn fault_toml(&self) -> Option<String> {
        Some(match *self {
            ToxicKind::Latency { latency, jitter } => {
                // Toxiproxy draws latency ± jitter; faultline draws delay + U(0, jitter).
                let low = (latency - jitter).max(0);
                let high = latency + jitter;
                if high > low {
                    format!(
                        "fault.latency = {{ delay = \"{low}ms\", jitter = \"{}ms\" }}",
                        high - low
                    )
                } else {
                    format!("fault.latency = {{ delay = \"{low}ms\" }}")
                }
            }
            // Toxiproxy's rate 0 never lets a byte through.
            ToxicKind::Bandwidth { rate: 0 } => "fault.stall = {}".to_string(),
            ToxicKind::Bandwidth { rate } => {
                format!("fault.bandwidth = {{ rate = \"{rate}KB/s\" }}")
            }
            ToxicKind::SlowClose { delay } => {
                format!("fault.slow_close = {{ delay = \"{delay}ms\" }}")
            }
            ToxicKind::Timeout { timeout: 0 } => "fault.timeout = {}".to_string(),
            ToxicKind::Timeout { timeout } => {
                format!("fault.timeout = {{ after = \"{timeout}ms\" }}")
            }
            ToxicKind::ResetPeer { timeout } => {
                format!("fault.reset_peer = {{ timeout = \"{timeout}ms\" }}")
            }
            ToxicKind::Slicer {
                average_size,
                size_variation,
                delay,
            } => format!(
                "fault.slicer = {{ average_size = {average_size}, size_variation = {size_variation}, delay = \"{delay}us\" }}"
            ),
            ToxicKind::LimitData { bytes } => format!("fault.truncate = {{ after = {bytes} }}"),
            ToxicKind::Noop => return None,
        })
    }
}

/// One toxic of a proxy.
#[derive(Debug, Clone, PartialEq)]
pub struct Toxic {
    /// Unique within its proxy; defaults to `{type}_{stream}`.
    pub name: String,
    /// The stream as the client wrote it (`upstream`, `downstream`, any case).
    pub stream: String,
    /// The direction `stream` names: `upstream` is client->upstream.
    pub direction: Direction,
    /// Share of connections it acts on, drawn per connection from the proxy's seed.
    pub toxicity: f32,
    /// What it does.
    pub kind: ToxicKind,
    /// Which toxic of its proxy this is (set when it is added, kept by updates): its rules'
    /// lineage, so an update keeps the toxic's state and a toxic removed and added again starts
    /// afresh, as in Toxiproxy.
    pub instance: u64,
    /// Which update of the toxic this is (0 until its first update; then a number its proxy
    /// never gave before): part of its rule's key, so every update, even one that changes no
    /// value, restarts the toxic on open connections (its timers count from the update), as
    /// Toxiproxy restarts a toxic it updates. The counters carry over (see `set_toxics`).
    pub revision: u64,
}

/// Longest toxic or proxy name accepted: names are path segments of the API.
pub const MAX_NAME: usize = 256;

/// Rejects names the API could not address (a `/`, control characters, empty, too long).
pub fn check_name(what: &str, name: &str) -> Result<(), ApiError> {
    if name.len() > MAX_NAME {
        return Err(ApiError::bad_body(format!(
            "{what} name is {} bytes long; at most {MAX_NAME}",
            name.len()
        )));
    }
    if name.contains('/') {
        return Err(ApiError::bad_body(format!(
            "{what} name {} contains '/': it could not be addressed in a URL path",
            json_string(name)
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(ApiError::bad_body(format!(
            "{what} name {} contains control characters",
            json_string(name)
        )));
    }
    if name == "." || name == ".." {
        return Err(ApiError::bad_body(format!(
            "{what} name {} is a dot segment, which clients remove from URL paths: it could not be addressed",
            json_string(name)
        )));
    }
    Ok(())
}

impl Toxic {
    /// A toxic from the body of `POST /proxies/{proxy}/toxics` for a proxy without toxics (see
    /// [`from_create_among`](Self::from_create_among)).
    pub fn from_create(body: &[u8]) -> Result<Toxic, ApiError> {
        Self::from_create_among(body, |_| false)
    }

    /// A toxic from the body of `POST /proxies/{proxy}/toxics`, checked in Toxiproxy's order:
    /// the body, the stream, the type, whether the name is taken (`taken`: 409), then the
    /// attributes.
    pub fn from_create_among(body: &[u8], taken: impl Fn(&str) -> bool) -> Result<Toxic, ApiError> {
        let value = decode_json(body)?;
        let object = match value {
            Value::Object(object) => object,
            Value::Null => Map::new(),
            other => {
                return Err(ApiError::bad_body(format!(
                    "expected a JSON object, got {}",
                    json_kind(&other)
                )))
            }
        };
        let kind_name = string_field(&object, "type")?.unwrap_or_default();
        let stream = string_field(&object, "stream")?.unwrap_or_else(|| "downstream".to_string());
        let toxicity = match object.get("toxicity") {
            None | Some(Value::Null) => 1.0,
            Some(value) => toxicity_of(value)?,
        };
        let direction = match stream.to_ascii_lowercase().as_str() {
            "upstream" => Direction::ClientToUpstream,
            "downstream" => Direction::UpstreamToClient,
            _ => return Err(ApiError::invalid_stream()),
        };
        let name = match string_field(&object, "name")? {
            Some(name) if !name.is_empty() => name,
            _ => format!("{kind_name}_{stream}"),
        };
        let mut kind = ToxicKind::of_type(&kind_name).ok_or_else(ApiError::invalid_toxic_type)?;
        check_name("toxic", &name)?;
        if taken(&name) {
            return Err(ApiError::toxic_exists());
        }
        kind.set_attributes(
            object.get("attributes").unwrap_or(&Value::Null),
            std::str::from_utf8(body).ok(),
        )?;
        Ok(Toxic {
            name,
            stream,
            direction,
            toxicity,
            kind,
            instance: 0,
            revision: 0,
        })
    }

    /// This toxic updated by the body of `POST|PATCH /proxies/{proxy}/toxics/{toxic}`: only
    /// `attributes` and `toxicity` change, as in Toxiproxy.
    pub fn updated(&self, body: &[u8]) -> Result<Toxic, ApiError> {
        let value = decode_json(body)?;
        let mut next = self.clone();
        let object = match value {
            Value::Object(object) => object,
            Value::Null => return Ok(next),
            other => {
                return Err(ApiError::bad_body(format!(
                    "expected a JSON object, got {}",
                    json_kind(&other)
                )))
            }
        };
        if let Some(value) = object.get("toxicity") {
            if !value.is_null() {
                next.toxicity = toxicity_of(value)?;
            }
        }
        next.kind.set_attributes(
            object.get("attributes").unwrap_or(&Value::Null),
            std::str::from_utf8(body).ok(),
        )?;
        Ok(next)
    }

    /// Toxiproxy's JSON of the toxic, byte for byte:
    /// `{"attributes":{…},"name":…,"type":…,"stream":…,"toxicity":…}`.
    pub fn to_json(&self) -> String {
        let attributes: Vec<String> = self
            .kind
            .fields()
            .into_iter()
            .map(|(name, value)| format!("\"{name}\":{value}"))
            .collect();
        format!(
            "{{\"attributes\":{{{}}},\"name\":{},\"type\":\"{}\",\"stream\":{},\"toxicity\":{}}}",
            attributes.join(","),
            json_string(&self.name),
            self.kind.type_name(),
            json_string(&self.stream),
            go_float32(self.toxicity)
        )
    }

    /// The `[[rule]]` this toxic becomes in the proxy's scenario (empty for a `noop` toxic,
    /// which changes nothing).
    pub fn rule_toml(&self) -> String {
        let Some(fault) = self.kind.fault_toml() else {
            return String::new();
        };
        let name = toml::Value::String(self.name.clone());
        let mut matcher = format!("direction = \"{}\"", self.direction);
        if self.toxicity < 1.0 {
            // As the client wrote it (0.3), not its f32 widened (0.30000001192092896).
            matcher.push_str(&format!(", probability = {:?}", self.toxicity));
        }
        format!("[[rule]]\nname = {name}\nmatch = {{ {matcher} }}\n{fault}\n")
    }
}

/// A string field of the body, or `None` when absent or null.
fn string_field(object: &Map<String, Value>, key: &str) -> Result<Option<String>, ApiError> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(ApiError::bad_body(format!(
            "{key} must be a string, got {}",
            json_kind(other)
        ))),
    }
}

/// `toxicity`: a number in 0..=1.
fn toxicity_of(value: &Value) -> Result<f32, ApiError> {
    let Some(number) = value.as_f64() else {
        return Err(ApiError::bad_body(format!(
            "toxicity must be a number, got {}",
            json_kind(value)
        )));
    };
    if !(0.0..=1.0).contains(&number) {
        return Err(ApiError::bad_body(format!(
            "toxicity must be between 0 and 1 (the share of connections), got {number}"
        )));
    }
    Ok(number as f32)
}

/// The field names of Toxiproxy's proxy and toxic bodies; a toxic's attribute names come from
/// [`ToxicKind`] itself (see [`field_named`]).
const BODY_FIELDS: &[&str] = &[
    "name",
    "listen",
    "upstream",
    "enabled",
    "toxics",
    "type",
    "stream",
    "toxicity",
    "attributes",
];

/// The field `key` names in another case, if any: a body field or an attribute of any toxic.
fn field_named(key: &str) -> Option<&'static str> {
    let attributes = ToxicKind::TYPES
        .iter()
        .filter_map(|t| ToxicKind::of_type(t))
        .flat_map(|kind| kind.fields().into_iter().map(|(name, _)| name));
    BODY_FIELDS
        .iter()
        .copied()
        .chain(attributes)
        .find(|field| field.eq_ignore_ascii_case(key))
}

/// Renames keys that name a field in another case (`"Latency"`, `"Enabled"`) to the field's
/// name, as Go's decoder matches them (an exact key wins over another case of it). A suite
/// sending `{"Enabled": false}` got 200 and a proxy left up; Toxiproxy takes it.
fn fold_field_names(value: &mut Value) {
    match value {
        Value::Object(object) => {
            let folded: Vec<(String, &str)> = object
                .keys()
                .filter_map(|key| Some((key.clone(), field_named(key)?)))
                .filter(|(key, field)| key != field)
                .collect();
            for (key, field) in folded {
                if let Some(v) = object.remove(&key) {
                    object.entry(field).or_insert(v);
                }
            }
            object.values_mut().for_each(fold_field_names);
        }
        Value::Array(items) => items.iter_mut().for_each(fold_field_names),
        _ => {}
    }
}

/// A request body as Toxiproxy decodes it (Go's `json.Decoder`): the first JSON value, anything
/// after it ignored, field names in any case, a lone surrogate escape read as U+FFFD; nothing
/// at all is `bad request body: EOF`, a value cut short `unexpected EOF`.
pub fn decode_json(body: &[u8]) -> Result<Value, ApiError> {
    let body = lone_surrogates_replaced(body);
    match serde_json::Deserializer::from_slice(&body)
        .into_iter::<Value>()
        .next()
    {
        None => Err(ApiError::bad_body("EOF")),
        Some(Ok(mut value)) => {
            fold_field_names(&mut value);
            Ok(value)
        }
        Some(Err(e)) if e.is_eof() => Err(ApiError::bad_body(format!("unexpected EOF ({e})"))),
        Some(Err(e)) => Err(ApiError::bad_body(e)),
    }
}

/// The error for a number that is no int64 (what Toxiproxy's Go decoder reads attributes into):
/// past the bounds (said with faultline's own `max`), or written with a fraction or an exponent,
/// which Go refuses too (`1.0`, `1e2`), quoted as the client wrote it when `raw` has that.
fn not_an_int64(n: &serde_json::Number, raw: Option<String>, what: &str, max: i64) -> ApiError {
    let integer = |text: &str| {
        let digits = text.strip_prefix('-').unwrap_or(text);
        !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
    };
    let message = match raw {
        _ if n.is_u64() => format!("{what} is too large: {n} (at most {max})"),
        Some(raw) if integer(&raw) && raw.starts_with('-') => {
            format!("{what} must not be negative, got {raw}")
        }
        Some(raw) if integer(&raw) => format!("{what} is too large: {raw} (at most {max})"),
        Some(raw) => format!(
            "{what} must be an integer written without a fraction or an exponent (as Toxiproxy reads it), got {raw}"
        ),
        None => match n.as_f64() {
            Some(f) if f.fract() == 0.0 => format!(
                "{what} must be an integer written without a fraction or an exponent (as Toxiproxy reads it), got a number written with one"
            ),
            _ => format!("{what} must be an integer (as Toxiproxy reads it), got {n}"),
        },
    };
    ApiError::bad_body(message)
}

/// A number of a request body as the client wrote it: its text at `key` in `body`, when that is
/// there and reads back as `n` (a key in another case, which the decoder folded, is not found).
fn written(n: &serde_json::Number, body: Option<&str>, key: &str) -> Option<String> {
    let body = body?;
    let rest = body.get(super::json_locate::locate(body, key)..)?;
    let len = rest
        .find(|c: char| !matches!(c, '0'..='9' | '-' | '+' | '.' | 'e' | 'E'))
        .unwrap_or(rest.len());
    let raw = &rest[..len];
    let back = raw.parse::<serde_json::Number>().ok()?;
    (back.as_f64() == n.as_f64()).then(|| raw.to_string())
}

/// `body` with every `\uXXXX` escape of a lone UTF-16 surrogate (a high one not followed by an
/// escaped low one, or a low one alone) written `\ufffd`, which Go's decoder makes of it;
/// serde_json refuses them ("unexpected end of hex escape" for a complete `"\ud800"`). The
/// replacement has the same length, so positions in the body stay right.
pub fn lone_surrogates_replaced(body: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    /// The surrogate a `\uXXXX` escape at `at` (its backslash) names, if it is one.
    fn surrogate_at(body: &[u8], at: usize) -> Option<u16> {
        let escape = body.get(at..at + 6)?;
        if escape[0] != b'\\' || escape[1] != b'u' {
            return None;
        }
        let hex = std::str::from_utf8(&escape[2..]).ok()?;
        let unit = u16::from_str_radix(hex, 16).ok()?;
        (0xD800..=0xDFFF).contains(&unit).then_some(unit)
    }
    if !body.windows(2).any(|w| w == b"\\u") {
        return std::borrow::Cow::Borrowed(body);
    }
    let mut out = body.to_vec();
    let mut in_string = false;
    let mut i = 0;
    while i < body.len() {
        match body[i] {
            b'"' => in_string = !in_string,
            b'\\' if in_string => {
                match surrogate_at(body, i) {
                    Some(0xD800..=0xDBFF)
                        if surrogate_at(body, i + 6).is_some_and(|low| low >= 0xDC00) =>
                    {
                        i += 12;
                        continue;
                    }
                    Some(_) => {
                        out[i..i + 6].copy_from_slice(b"\\ufffd");
                        i += 6;
                        continue;
                    }
                    // Any other escape: skip the escaped character (`\"` ends no string).
                    None => i += 1,
                }
            }
            _ => {}
        }
        i += 1;
    }
    std::borrow::Cow::Owned(out)
}

/// What kind of JSON value it is, for messages.
pub fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A JSON string literal as Go's encoding/json writes it: `<`, `>`, `&`, U+2028 and U+2029
/// escaped as `\u003c` and so on (its HTML-safe default), so bodies match toxiproxy-server's
/// byte for byte.
pub fn json_string(text: &str) -> String {
    let plain = serde_json::to_string(text).unwrap_or_else(|_| "\"\"".to_string());
    if !plain.contains(['<', '>', '&', '\u{2028}', '\u{2029}']) {
        return plain;
    }
    let mut out = String::with_capacity(plain.len() + 16);
    for c in plain.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

/// A float32 as Go's encoding/json writes it: shortest form, no `.0` on whole numbers, an
/// exponent below 1e-6.
pub fn go_float32(value: f32) -> String {
    if value == value.trunc() && value.abs() < 1e21 {
        return format!("{}", value as i64);
    }
    if value.abs() < 1e-6 {
        let text = format!("{value:e}");
        // Go writes at least two exponent digits: 1e-07.
        return match text.split_once("e-") {
            Some((mantissa, exp)) if exp.len() < 2 => format!("{mantissa}e-0{exp}"),
            _ => text,
        };
    }
    format!("{value}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_a_url_path_cannot_hold_are_refused() {
        for bad in [".", "..", "a/b", "a\nb"] {
            let error = super::check_name("proxy", bad).expect_err(bad);
            assert_eq!(error.status, 400, "{bad:?}");
        }
        // Said as JSON writes the name (a trial met Rust's `\u{1}`).
        let error = super::check_name("proxy", "x\u{1}").expect_err("control");
        assert!(
            error.message.contains(r#"name "x\u0001" contains"#),
            "{}",
            error.message
        );
        for good in ["...", ".hidden", "a..b", "a\\b"] {
            assert!(super::check_name("proxy", good).is_ok(), "{good:?}");
        }
    }

    use super::*;
    use crate::scenario::Scenario;

    fn create(body: &str) -> Result<Toxic, ApiError> {
        Toxic::from_create(body.as_bytes())
    }

    #[test]
    fn defaults_are_toxiproxys() {
        let toxic = create(r#"{"type":"latency","attributes":{"latency":100}}"#).expect("valid");
        assert_eq!(toxic.name, "latency_downstream");
        assert_eq!(toxic.direction, Direction::UpstreamToClient);
        assert_eq!(
            toxic.to_json(),
            r#"{"attributes":{"latency":100,"jitter":0},"name":"latency_downstream","type":"latency","stream":"downstream","toxicity":1}"#
        );
        let up =
            create(r#"{"type":"limit_data","stream":"UpStream","toxicity":0.5}"#).expect("valid");
        assert_eq!(up.name, "limit_data_UpStream");
        assert_eq!(up.direction, Direction::ClientToUpstream);
        assert!(up
            .to_json()
            .ends_with(r#""stream":"UpStream","toxicity":0.5}"#));
    }

    #[test]
    fn errors_come_in_toxiproxys_order() {
        assert_eq!(create("{").map_err(|e| e.status), Err(400));
        assert_eq!(
            create(r#"{"type":"nope","stream":"sideways"}"#),
            Err(ApiError::invalid_stream())
        );
        assert_eq!(
            create(r#"{"type":"nope"}"#),
            Err(ApiError::invalid_toxic_type())
        );
        let negative = create(r#"{"type":"latency","attributes":{"latency":-5}}"#);
        assert!(negative.is_err_and(|e| e.status == 400 && e.message.contains("negative")));
        // Each value fits a year, their range does not: a 400 naming both (a trial got a 500).
        let wide = create(
            r#"{"type":"latency","attributes":{"latency":31536000000,"jitter":31536000000}}"#,
        );
        assert!(wide
            .is_err_and(|e| e.status == 400 && e.message.contains("latency + attributes.jitter")));
        let zero = create(r#"{"type":"latency","attributes":{"latency":-0}}"#).expect("-0 is 0");
        assert!(
            zero.to_json().contains(r#""latency":0"#),
            "{}",
            zero.to_json()
        );
        let absurd = create(r#"{"type":"timeout","attributes":{"timeout":1e300}}"#);
        assert!(absurd.is_err_and(|e| e.status == 400));
        let text = create(r#"{"type":"latency","attributes":{"latency":"fast"}}"#);
        assert!(text.is_err_and(|e| e.message.contains("must be a number")));
        assert!(create(r#"{"type":"latency","toxicity":2}"#).is_err());
        assert!(create(r#"{"type":"latency","name":"a/b"}"#).is_err());
        assert!(create(r#"{"type":"slicer","attributes":{"average_size":0}}"#).is_err());
        // A taken name is 409 before the attributes are looked at, as in Toxiproxy.
        let taken = Toxic::from_create_among(
            br#"{"type":"latency","attributes":{"latency":"fast"}}"#,
            |name| name == "latency_downstream",
        );
        assert_eq!(taken, Err(ApiError::toxic_exists()));
    }

    /// A trial was told 18446744073709551615 does not fit 64 bits (it fits unsigned ones) and
    /// that it sent `100.0` for `1e2`: the bound is said, and a number quoted as it was written.
    #[test]
    fn refused_numbers_are_quoted_as_written_with_the_real_bound() {
        let message = |body: &str| create(body).expect_err(body).message;
        let huge = message(r#"{"type":"bandwidth","attributes":{"rate":18446744073709551615}}"#);
        assert_eq!(
            huge,
            format!(
                "bad request body: attributes.rate of a bandwidth toxic is too large: 18446744073709551615 (at most {})",
                i64::MAX / 1000
            )
        );
        let past_u64 =
            message(r#"{"type":"limit_data","attributes":{"bytes":99999999999999999999}}"#);
        assert!(
            past_u64.ends_with(&format!(
                "is too large: 99999999999999999999 (at most {})",
                i64::MAX
            )),
            "{past_u64}"
        );
        let very_negative =
            message(r#"{"type":"limit_data","attributes":{"bytes":-99999999999999999999}}"#);
        assert!(
            very_negative.ends_with("must not be negative, got -99999999999999999999"),
            "{very_negative}"
        );
        for (written, value) in [
            ("1.0", "1.0"),
            ("1e2", "1e2"),
            ("1.5", "1.5"),
            ("2E+1", "2E+1"),
        ] {
            let body = format!(
                r#"{{"type":"latency","attributes":{{"jitter":0, "latency": {written} }}}}"#
            );
            let refused = message(&body);
            assert!(
                refused.ends_with(&format!(
                    "attributes.latency of a latency toxic must be an integer written without a fraction or an exponent (as Toxiproxy reads it), got {value}"
                )),
                "{refused}"
            );
        }
        // The same on an update; and a key in another case, which cannot be quoted, is not
        // rewritten either.
        let toxic = create(r#"{"type":"latency"}"#).expect("valid");
        let update = toxic
            .updated(br#"{"attributes":{"latency":1e2}}"#)
            .expect_err("1e2");
        assert!(update.message.ends_with("got 1e2"), "{}", update.message);
        let folded = message(r#"{"type":"latency","attributes":{"Latency":1e2}}"#);
        assert!(
            folded.ends_with("got a number written with one") && !folded.contains("100"),
            "{folded}"
        );
    }

    #[test]
    fn a_noop_toxic_is_toxiproxys_and_does_nothing() {
        let toxic = create(r#"{"type":"noop","stream":"upstream"}"#).expect("valid");
        assert_eq!(
            toxic.to_json(),
            r#"{"attributes":{},"name":"noop_upstream","type":"noop","stream":"upstream","toxicity":1}"#
        );
        assert_eq!(toxic.rule_toml(), "");
    }

    #[test]
    fn updates_change_attributes_and_toxicity_only() {
        let toxic =
            create(r#"{"type":"latency","attributes":{"latency":100,"jitter":5}}"#).expect("valid");
        let next = toxic
            .updated(br#"{"attributes":{"jitter":7},"toxicity":0.25,"name":"x"}"#)
            .expect("valid");
        assert_eq!(next.name, toxic.name);
        assert_eq!(
            next.kind,
            ToxicKind::Latency {
                latency: 100,
                jitter: 7
            }
        );
        assert_eq!(next.toxicity, 0.25);
    }

    #[test]
    fn every_type_becomes_a_valid_rule() {
        for kind in ToxicKind::TYPES {
            for attributes in [
                "{}",
                r#"{"latency":10,"jitter":20,"rate":0,"delay":5,"timeout":0,"average_size":3,"size_variation":1,"bytes":0}"#,
                r#"{"latency":30,"jitter":20,"rate":100,"delay":5,"timeout":100,"average_size":3,"bytes":10}"#,
            ] {
                let body = format!(
                    r#"{{"type":"{kind}","stream":"upstream","toxicity":0.3,"attributes":{attributes}}}"#
                );
                let Ok(toxic) = create(&body) else {
                    assert_eq!(kind, "slicer", "{body}");
                    continue;
                };
                let text = toxic.rule_toml();
                if kind == "noop" {
                    assert_eq!(text, "", "a noop toxic is no rule");
                    continue;
                }
                let scenario = Scenario::from_toml(&text, "t", "t")
                    .unwrap_or_else(|e| panic!("{kind}: {e}\n{text}"));
                assert_eq!(scenario.rules[0].name, toxic.name);
            }
        }
    }

    #[test]
    fn latency_keeps_toxiproxys_range() {
        let toxic = create(r#"{"type":"latency","attributes":{"latency":100,"jitter":20}}"#)
            .expect("valid");
        assert!(
            toxic
                .rule_toml()
                .contains("fault.latency = { delay = \"80ms\", jitter = \"40ms\" }"),
            "{}",
            toxic.rule_toml()
        );
    }

    #[test]
    fn bodies_are_decoded_as_gos_json_decoder_does() {
        assert_eq!(decode_json(b""), Err(ApiError::bad_body("EOF")));
        assert_eq!(decode_json(b"  \n"), Err(ApiError::bad_body("EOF")));
        assert!(decode_json(b"{\"a\":")
            .is_err_and(|e| e.message.starts_with("bad request body: unexpected EOF")));
        assert_eq!(
            decode_json(b"{\"a\":1} trailing").expect("the first value"),
            serde_json::json!({"a": 1})
        );
        assert!(decode_json(b"{nope").is_err_and(|e| e.status == 400));
        // Field names in any case, as Go's decoder matches them; an exact one wins.
        assert_eq!(
            decode_json(br#"{"Type":"latency","ATTRIBUTES":{"Latency":5},"Enabled":false}"#)
                .expect("valid"),
            serde_json::json!({"type":"latency","attributes":{"latency":5},"enabled":false})
        );
        assert_eq!(
            decode_json(br#"[{"Name":"a","name":"b","Other":1}]"#).expect("valid"),
            serde_json::json!([{"name":"b","Other":1}])
        );
    }

    /// A trial's `"\ud800"` was refused as "unexpected end of hex escape"; Go reads U+FFFD.
    #[test]
    fn lone_surrogate_escapes_are_read_as_go_reads_them() {
        let name = |body: &[u8]| match decode_json(body).expect("decoded") {
            Value::Object(object) => object["name"].as_str().expect("a string").to_string(),
            other => panic!("{other}"),
        };
        assert_eq!(name(br#"{"name":"\ud800"}"#), "\u{fffd}");
        assert_eq!(name(br#"{"name":"a\udc00b\uD800"}"#), "a\u{fffd}b\u{fffd}");
        // A pair stays one character; a high surrogate before another escape is replaced alone.
        assert_eq!(name(br#"{"name":"\ud83d\ude00"}"#), "\u{1f600}");
        assert_eq!(name(br#"{"name":"\ud800\u0041"}"#), "\u{fffd}A");
        // An escaped backslash before `u` is no escape; text outside strings is left alone.
        assert_eq!(name(br#"{"name":"\\ud800"}"#), "\\ud800");
        assert_eq!(
            &*lone_surrogates_replaced(br#"{"a\"":1,"name":"\ud800"}"#),
            br#"{"a\"":1,"name":"\ufffd"}"#
        );
        let toxic = create(r#"{"type":"noop","name":"x\udfff"}"#).expect("valid");
        assert_eq!(toxic.name, "x\u{fffd}");
        // Cut short inside an escape: still an error, never a panic.
        assert!(decode_json(br#"{"name":"\ud8"#).is_err());
    }

    #[test]
    fn strings_are_escaped_as_go_escapes_them() {
        assert_eq!(json_string("a<b>&c"), r#""a\u003cb\u003e\u0026c""#);
        assert_eq!(json_string("q\"\n\u{2028}"), r#""q\"\n\u2028""#);
        assert_eq!(json_string("plain"), r#""plain""#);
        let back: String = serde_json::from_str(&json_string("<&>")).expect("JSON");
        assert_eq!(back, "<&>");
    }

    #[test]
    fn floats_are_written_as_go_writes_them() {
        assert_eq!(go_float32(1.0), "1");
        assert_eq!(go_float32(0.0), "0");
        assert_eq!(go_float32(0.1), "0.1");
        assert_eq!(go_float32(0.5), "0.5");
        assert_eq!(go_float32(1e-7), "1e-07");
    }
}
