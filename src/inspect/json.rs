//! Renders the report as the JSON `faultline inspect --json` prints (documented in [`super::schema`]).

use super::model::Report;

impl Report {
    /// Pretty JSON following the documented schema ([`super::schema`]).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }
}
