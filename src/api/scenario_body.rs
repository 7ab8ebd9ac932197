//! The body of `PUT /faultline/proxies/{name}/scenario`: a scenario as TOML (as in a file) or as
//! JSON (the same keys), turned into the TOML text the scenario loader validates.

use super::error::ApiError;
use crate::scenario::{Located, Scenario, ScenarioError};

/// The scenario text of a body. JSON is recognised by its leading `{` (unless the content type
/// says TOML). A JSON body is validated here, as the TOML it becomes, and every error names the
/// line and column in the JSON the client sent (`scenario (JSON):2:31: rule[1].fault.reset.after:
/// …`): its syntax errors as serde_json finds them, the others at the value their key names
/// ([`json_locate`](super::json_locate)).
pub fn scenario_text(body: &[u8], content_type: Option<&str>) -> Result<String, ApiError> {
    let text = std::str::from_utf8(body)
        .map_err(|e| ApiError::new(400, format!("the scenario is not UTF-8 text: {e}")))?;
    // A TOML document never starts with `{`; an explicit TOML content type wins anyway.
    let json =
        !content_type.is_some_and(|t| t.contains("toml")) && text.trim_start().starts_with('{');
    if !json {
        return Ok(text.to_string());
    }
    // A lone surrogate escape is U+FFFD, as Go and Toxiproxy's other bodies read it (the
    // replacement keeps every position, so errors still point into the client's text).
    let replaced = super::toxic::lone_surrogates_replaced(body);
    let value: serde_json::Value = serde_json::from_slice(&replaced).map_err(|e| {
        ApiError::new(
            400,
            format!("{JSON_ORIGIN}:{}:{}: {e}", e.line(), e.column()),
        )
    })?;
    let at = |key: String, message: String| {
        let offset = super::json_locate::locate(text, &key);
        ApiError::new(
            400,
            Located::at(JSON_ORIGIN, text, offset, key, message).to_string(),
        )
    };
    if let Some((key, why)) = untranslatable(&value, String::new()) {
        return Err(at(key, why));
    }
    let table = toml::Value::try_from(&value)
        .map_err(|e| at(String::new(), format!("cannot be a scenario: {e}")))?;
    if !table.is_table() {
        return Err(at(String::new(), "expected an object".to_string()));
    }
    let toml = toml::to_string(&table)
        .map_err(|e| at(String::new(), format!("cannot be a scenario: {e}")))?;
    match Scenario::from_toml(&toml, JSON_ORIGIN, "scenario") {
        Err(ScenarioError::Invalid(e)) => Err(at(e.key, e.message)),
        _ => Ok(toml),
    }
}

/// How errors name a JSON body.
const JSON_ORIGIN: &str = "scenario (JSON)";

/// The first value JSON has and TOML has not (`null`, an integer beyond i64), with its key
/// (`rule[1].fault.reset.after`, rules counted from 1 as in scenario errors) and why.
fn untranslatable(value: &serde_json::Value, key: String) -> Option<(String, String)> {
    use serde_json::Value;
    match value {
        Value::Null => Some((
            key,
            "null has no TOML equivalent: leave the key out".to_string(),
        )),
        Value::Number(n) if n.is_u64() && n.as_i64().is_none() => Some((
            key,
            format!(
                "{n} is too large: integers are at most {} (write a size as a string, like \"16TiB\")",
                i64::MAX
            ),
        )),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| untranslatable(item, format!("{key}[{}]", i + 1))),
        Value::Object(fields) => fields.iter().find_map(|(name, item)| {
            let key = if key.is_empty() {
                name.clone()
            } else {
                format!("{key}.{name}")
            };
            untranslatable(item, key)
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Scenario;

    #[test]
    fn json_becomes_the_same_scenario_as_toml() {
        let json = br#"{"seed": 3, "rule": [{"match": {"direction": "client->upstream"}, "fault": {"truncate": {"after": 10}}}]}"#;
        let text = scenario_text(json, Some("application/json")).expect("converts");
        let scenario = Scenario::from_toml(&text, "scenario", "p").expect("valid");
        assert_eq!(scenario.seed, Some(3));
        assert_eq!(scenario.rules[0].fault.name(), "truncate");
    }

    #[test]
    fn json_syntax_errors_are_located_and_toml_passes_through() {
        let e = scenario_text(b"{\n  \"seed\": ,\n}", None).expect_err("bad JSON");
        assert!(e.message.starts_with("scenario (JSON):2:"), "{}", e.message);
        assert_eq!(
            scenario_text(b"seed = 1\n", None).ok().as_deref(),
            Some("seed = 1\n")
        );
        assert!(scenario_text(&[0xff, 0xfe], None).is_err());
    }

    /// A lone surrogate escape is U+FFFD, as Go reads it (serde_json said "unexpected end of
    /// hex escape" of a complete `\ud800`).
    #[test]
    fn a_lone_surrogate_escape_is_the_replacement_character() {
        let body = br#"{"rule": [{"name": "x\ud800", "fault": {"reset": {"after": 1}}}]}"#;
        let text = scenario_text(body, None).expect("converts");
        let scenario = Scenario::from_toml(&text, "scenario", "p").expect("valid");
        assert_eq!(scenario.rules[0].name, "x\u{fffd}");
    }

    /// An integer beyond i64 was "u64 value was too large (null has no TOML equivalent: …)":
    /// no key, and a hint about null that did not apply.
    #[test]
    fn values_toml_cannot_hold_name_their_key() {
        let body = br#"{"rule": [{"fault": {"reset": {"after": 18446744073709551615}}}]}"#;
        let e = scenario_text(body, None).expect_err("beyond i64");
        assert!(
            e.message.starts_with(
                "scenario (JSON):1:41: rule[1].fault.reset.after: 18446744073709551615 is too large"
            ),
            "{}",
            e.message
        );
        assert!(!e.message.contains("null"), "{}", e.message);
        let body = br#"{"seed": 1, "proxy": {"capture": null}}"#;
        let e = scenario_text(body, None).expect_err("null");
        assert_eq!(
            e.message,
            "scenario (JSON):1:34: proxy.capture: null has no TOML equivalent: leave the key out"
        );
    }

    /// Issue 14: a 4-line JSON body said `scenario:5:9: rule[1].fault.latency.delay: …`, a place
    /// in the TOML faultline made of it. The error names the line and column in the JSON.
    #[test]
    fn validation_errors_name_the_place_in_the_json_body() {
        let body = "{\"rule\": [\n  {\"name\": \"slow\",\n   \"fault\": {\"latency\": {\"delay\": \"fast\"}}}\n]}";
        let e = scenario_text(body.as_bytes(), Some("application/json")).expect_err("bad delay");
        assert!(
            e.message
                .starts_with("scenario (JSON):3:35: rule[1].fault.latency.delay: "),
            "{}",
            e.message
        );
        // An unknown field: its object. A second rule: counted from 1 as in the key.
        let body = "{\"seed\": 2,\n \"rule\": [{\"fault\": {\"reset\": {}}},\n  {\"fault\": {\"reset\": {\"aftr\": 1}}}]}";
        let e = scenario_text(body.as_bytes(), None).expect_err("unknown field");
        assert!(e.message.starts_with("scenario (JSON):3:"), "{}", e.message);
        assert!(e.message.contains("rule[2].fault"), "{}", e.message);
        // Not an object a scenario can be: the top of the body.
        let e = scenario_text(b"  {\"rule\": 3}", None).expect_err("rule not a list");
        assert!(e.message.starts_with("scenario (JSON):1:"), "{}", e.message);
        // A valid body still becomes its TOML, and TOML bodies are left to the caller.
        assert!(scenario_text(br#"{"seed": 5}"#, None).is_ok());
        assert_eq!(
            scenario_text(b"seed = \"x\"\n", None).ok().as_deref(),
            Some("seed = \"x\"\n")
        );
    }
}
