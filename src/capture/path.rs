//! Expands capture path templates such as `captures/{name}-{time}.pcapng`.

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

/// Expands `{name}`, `{time}` and `{pid}` in a capture path template, so every run gets its own file
/// and captures sort by start time in a directory listing.
///
/// `{time}` is UTC in the basic ISO 8601 form `20261122T110512Z` (no `:` so the name is valid on every
/// file system). Path separators in `name` become `_` so a scenario name cannot escape the directory.
/// Unknown `{...}` placeholders are left as written.
pub fn expand_path_template(template: &str, name: &str, start: SystemTime, pid: u32) -> PathBuf {
    let safe_name: String = name
        .chars()
        .map(|c| if c == '/' || c == '\\' { '_' } else { c })
        .collect();
    PathBuf::from(
        template
            .replace("{name}", &safe_name)
            .replace("{time}", &utc_stamp(start))
            .replace("{pid}", &pid.to_string()),
    )
}

/// `YYYYMMDDTHHMMSSZ` for `at`; times before 1970 are written as the epoch.
fn utc_stamp(at: SystemTime) -> String {
    let secs = at
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = crate::utc::civil_from_days(days as i64);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn expands_every_placeholder() {
        // 2026-11-22T11:05:12Z
        let at = UNIX_EPOCH + Duration::from_secs(1_795_345_512);
        let path =
            expand_path_template("captures/{name}-{time}-{pid}.pcapng", "dvc/upload", at, 42);
        assert_eq!(
            path,
            PathBuf::from("captures/dvc_upload-20261122T110512Z-42.pcapng")
        );
    }

    #[test]
    fn utc_stamp_handles_leap_days_and_the_epoch() {
        assert_eq!(utc_stamp(UNIX_EPOCH), "19700101T000000Z");
        let leap = UNIX_EPOCH + Duration::from_secs(1_709_164_799); // 2024-02-28T23:59:59Z
        assert_eq!(utc_stamp(leap + Duration::from_secs(1)), "20240229T000000Z");
        assert_eq!(
            expand_path_template("{nope}", "x", UNIX_EPOCH, 1),
            PathBuf::from("{nope}")
        );
    }
}
