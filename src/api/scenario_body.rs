//! The body of `PUT /faultline/proxies/{name}/scenario`: a scenario as TOML (as in a file) or as
//! JSON (the same keys), turned into the TOML text the scenario loader validates.

use super::error::ApiError;

/// The scenario text of a body. JSON is recognised by its leading `{` (unless the content type
/// says TOML);
/// its syntax errors name the line and column, and the TOML it becomes is validated (and
/// located) like a file.
pub fn scenario_text(body: &[u8], content_type: Option<&str>) -> Result<String, ApiError> {
    let text = std::str::from_utf8(body)
        .map_err(|e| ApiError::new(400, format!("the scenario is not UTF-8 text: {e}")))?;
    // A TOML document never starts with `{`; an explicit TOML content type wins anyway.
    let json =
        !content_type.is_some_and(|t| t.contains("toml")) && text.trim_start().starts_with('{');
    if !json {
        return Ok(text.to_string());
    }
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| {
        ApiError::new(
            400,
            format!("scenario (JSON):{}:{}: {e}", e.line(), e.column()),
        )
    })?;
    let table = toml::Value::try_from(&value).map_err(|e| {
        ApiError::new(
            400,
            format!("scenario (JSON): cannot be a scenario: {e} (null has no TOML equivalent: leave the key out)"),
        )
    })?;
    if !table.is_table() {
        return Err(ApiError::new(400, "scenario (JSON): expected an object"));
    }
    toml::to_string(&table)
        .map_err(|e| ApiError::new(400, format!("scenario (JSON): cannot be a scenario: {e}")))
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
}
