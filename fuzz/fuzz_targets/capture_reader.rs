//! Fuzzes the whole inspection pipeline (reader, decoder, reassembly, HTTP, objects, report and
//! its text, Markdown and HTML renderings) on arbitrary bytes.
#![no_main]

use std::collections::BTreeSet;

use faultline::inspect::{inspect_bytes, schema, InspectOptions};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(report) = inspect_bytes(data, &InspectOptions::default()) {
        let _ = report.render_text();
        let _ = report.render_markdown();
        let html = report.render_html();
        // Capture bytes never become markup: the page has the one script faultline writes.
        assert_eq!(html.matches("<script").count(), 1, "{html}");
        // 0 clean, 1 findings, 3 inconclusive (the capture misses payload); 2 is for unreadable input.
        assert!(matches!(report.exit_code(), 0 | 1 | 3));
        // Whatever the input, the JSON keeps to the documented schema.
        let json: serde_json::Value =
            serde_json::from_str(&report.to_json()).expect("to_json is valid JSON");
        let problems = schema::violations(&json, &mut BTreeSet::new());
        assert!(problems.is_empty(), "{problems:?}");
    }
});
