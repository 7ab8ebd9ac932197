//! Fuzzes what `faultline serve` accepts from a client: a toxic's JSON body (create, then an
//! update with the same bytes) and a scenario body. None may panic, and every toxic the API
//! accepts must become a rule the scenario loader accepts (an accepted toxic never breaks the
//! proxy's scenario). The JSON locator that places scenario errors in a JSON body answers an
//! offset inside any text, for any key.
#![no_main]

use faultline::api::json_locate::locate;
use faultline::api::scenario_body::scenario_text;
use faultline::api::toxic::Toxic;
use faultline::scenario::Scenario;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(toxic) = Toxic::from_create(data) {
        let text = toxic.rule_toml();
        if let Err(e) = Scenario::from_toml(&text, "toxic.toml", "toxic") {
            panic!("accepted toxic became an invalid rule: {e}\n{text}");
        }
        let _ = toxic.to_json();
        let _ = toxic.updated(data);
    }
    for content_type in [None, Some("application/json"), Some("application/toml")] {
        if let Ok(text) = scenario_text(data, content_type) {
            let _ = Scenario::from_toml(&text, "body.toml", "body");
        }
    }
    // The first line is a key path, the rest the JSON text it is looked for in.
    if let Ok(text) = std::str::from_utf8(data) {
        let (key, json) = text.split_once('\n').unwrap_or(("rule[1].fault", text));
        let offset = locate(json, key);
        assert!(json.is_char_boundary(offset), "{offset} outside {json:?}");
    }
});
