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
///
/// The recorded command is shell-quoted (`main.rs` joins the arguments with `shlex`), so it is
/// split the same way; text that does not split (a capture from elsewhere) is split on spaces.
/// The subcommand is the first word that is neither a global flag nor a global flag's value, so
/// `faultline -v run s.toml` or `faultline --log-format json run s.toml` is a `run` too.
fn replay_command(command: &str, seed: u64) -> String {
    let words = shlex::split(command)
        .unwrap_or_else(|| command.split_whitespace().map(str::to_string).collect());
    let Some((program, args)) = words.split_first() else {
        return command.to_string();
    };
    // The arguments are replayed as recorded (their quoting untouched); only the program is
    // renamed, its recorded (possibly quoted) form cut off the front.
    let quoted = shlex::try_quote(program).map(|q| q.into_owned());
    let (typed_program, rest) = match quoted {
        Ok(q) if command.starts_with(&q) => command.split_at(q.len()),
        _ => command.split_at(command.find(' ').unwrap_or(command.len())),
    };
    let joined = match program.rsplit('/').next() {
        Some("faultline") => format!("faultline{rest}"),
        _ => format!("{typed_program}{rest}"),
    };
    let is_run = subcommand(args) == Some("run");
    let has_seed = args
        .iter()
        .take_while(|w| *w != "--")
        .any(|w| w == "--seed" || w.starts_with("--seed="));
    if is_run && !has_seed {
        format!("{joined} --seed {seed}")
    } else {
        joined
    }
}

/// The first word of `args` that is not a global flag (`-v`, `-qq`, `--verbose`, `--log-format
/// json`, `--log-format=json`): clap lets these come before the subcommand.
fn subcommand(args: &[String]) -> Option<&str> {
    /// Global flags that take their value as the next word.
    const TAKES_VALUE: &[&str] = &["--log-format"];
    let mut words = args.iter();
    while let Some(word) = words.next() {
        if TAKES_VALUE.contains(&word.as_str()) {
            words.next();
        } else if !word.starts_with('-') {
            return Some(word);
        }
    }
    None
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

    /// Global flags may come before the subcommand (`faultline -v run …`): it is still a `run`
    /// whose replay needs the seed, and a seed named after them is still kept.
    #[test]
    fn global_flags_before_the_subcommand_still_make_a_run() {
        for (typed, replay) in [
            (
                "faultline -v run s.toml",
                "faultline -v run s.toml --seed 5",
            ),
            (
                "faultline -vv run s.toml",
                "faultline -vv run s.toml --seed 5",
            ),
            (
                "faultline -q run s.toml",
                "faultline -q run s.toml --seed 5",
            ),
            (
                "faultline --verbose --quiet run s.toml",
                "faultline --verbose --quiet run s.toml --seed 5",
            ),
            (
                "faultline --log-format json run s.toml",
                "faultline --log-format json run s.toml --seed 5",
            ),
            (
                "faultline --log-format=json -v run s.toml",
                "faultline --log-format=json -v run s.toml --seed 5",
            ),
            (
                "/b/target/debug/faultline -v run s.toml --seed 3",
                "faultline -v run s.toml --seed 3",
            ),
            (
                "faultline -v inspect c.pcapng",
                "faultline -v inspect c.pcapng",
            ),
            ("faultline --log-format run", "faultline --log-format run"),
        ] {
            assert_eq!(replay_command(typed, 5), replay, "{typed}");
        }
    }

    /// Quoted words stay one word: a scenario path with a space is still the scenario, and a
    /// quoted program path is still faultline.
    #[test]
    fn quoted_words_stay_whole() {
        assert_eq!(
            replay_command("'/my dir/faultline' -v run 'my scenario.toml'", 2),
            "faultline -v run 'my scenario.toml' --seed 2"
        );
        assert_eq!(
            replay_command("faultline run 'a --seed b.toml'", 2),
            "faultline run 'a --seed b.toml' --seed 2"
        );
        // `main.rs` records `--seed=9` quoted, as shlex quotes `=`: still a named seed.
        assert_eq!(
            replay_command("faultline run s.toml '--seed=9'", 9),
            "faultline run s.toml '--seed=9'"
        );
        assert_eq!(replay_command("", 2), "");
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
