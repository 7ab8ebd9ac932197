//! Which faultline run produced a capture, read back from the pcapng section comment, and the command that replays it.
//!
//! `capture::sink::CaptureMeta::section_comment` writes `faultline VERSION; scenario NAME; seed N;
//! command: COMMAND LINE`. A bug report names these so a maintainer can rerun the same faults
//! with the same random draws. The comment is capture-derived text: it is parsed leniently (a
//! capture from another tool simply has no run) and never trusted for anything but display.

use serde::Serialize;

/// The run recorded in a faultline capture.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunInfo {
    /// The faultline version that wrote the capture.
    pub faultline_version: String,
    /// The scenario's name.
    pub scenario: String,
    /// The seed every random decision derived from.
    pub seed: u64,
    /// The command line as it was typed.
    pub command: String,
    /// The command that replays the run: the recorded one, `faultline` as the program, with
    /// `--seed N` added to a `run` that did not name its seed.
    pub replay: String,
}

impl RunInfo {
    /// The run named by the first faultline section comment among `comments`, if any.
    pub fn from_section_comments(comments: &[String]) -> Option<RunInfo> {
        comments.iter().find_map(|c| RunInfo::parse(c))
    }

    /// Parses one section comment; `None` when it is not faultline's.
    pub fn parse(comment: &str) -> Option<RunInfo> {
        let rest = comment.strip_prefix("faultline ")?;
        let (head, command) = rest.split_once("; command: ")?;
        let (version, named) = head.split_once("; scenario ")?;
        let (scenario, seed) = named.rsplit_once("; seed ")?;
        let seed: u64 = seed.trim().parse().ok()?;
        let command = command.to_string();
        Some(RunInfo {
            faultline_version: version.to_string(),
            scenario: scenario.to_string(),
            seed,
            replay: replay_command(&command, seed),
            command,
        })
    }
}

/// `command` with the program named `faultline` (the recorded one may be a build path) and, for
/// `faultline run` without `--seed`, the seed added so the same random draws happen again.
fn replay_command(command: &str, seed: u64) -> String {
    let (program, args) = command.split_once(' ').unwrap_or((command, ""));
    let program = match program.rsplit('/').next() {
        Some("faultline") => "faultline",
        _ => program,
    };
    let mut replay = if args.is_empty() {
        program.to_string()
    } else {
        format!("{program} {args}")
    };
    let words: Vec<&str> = args.split_whitespace().collect();
    let is_run = words.first() == Some(&"run");
    let has_seed = words
        .iter()
        .any(|w| *w == "--seed" || w.starts_with("--seed="));
    if is_run && !has_seed {
        replay.push_str(&format!(" --seed {seed}"));
    }
    replay
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::sink::CaptureMeta;

    #[test]
    fn reads_back_what_the_capture_sink_writes() {
        let meta = CaptureMeta {
            scenario: "dvc; first upload fails".into(),
            seed: 42,
            command_line: "/home/me/faultline/target/debug/faultline run s.toml --capture x.pcapng"
                .into(),
        };
        let run = RunInfo::parse(&meta.section_comment()).expect("a faultline comment");
        assert_eq!(run.faultline_version, env!("CARGO_PKG_VERSION"));
        assert_eq!(run.scenario, "dvc; first upload fails");
        assert_eq!(run.seed, 42);
        assert_eq!(run.command, meta.command_line);
        assert_eq!(
            run.replay,
            "faultline run s.toml --capture x.pcapng --seed 42"
        );
    }

    #[test]
    fn a_named_seed_is_kept_and_other_commands_are_replayed_as_typed() {
        assert_eq!(
            replay_command("faultline run s.toml --seed 9", 9),
            "faultline run s.toml --seed 9"
        );
        assert_eq!(
            replay_command("faultline run s.toml --seed=9", 9),
            "faultline run s.toml --seed=9"
        );
        assert_eq!(replay_command("faultline demo", 7), "faultline demo");
        assert_eq!(
            replay_command("./fl run a.toml", 1),
            "./fl run a.toml --seed 1"
        );
    }

    #[test]
    fn other_comments_are_no_run() {
        assert_eq!(RunInfo::parse("Dumpcap (Wireshark) 4.0"), None);
        assert_eq!(
            RunInfo::parse("faultline 1; scenario x; seed y; command: z"),
            None
        );
        let comments = vec![
            "other".to_string(),
            CaptureMeta::default().section_comment(),
        ];
        assert_eq!(
            RunInfo::from_section_comments(&comments).map(|r| r.seed),
            Some(0)
        );
    }
}
