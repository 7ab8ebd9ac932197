//! Which faultline run produced a capture, read back from the pcapng section comments, and the command that replays it.
//!
//! `capture::sink::CaptureMeta::section_comment` writes `faultline VERSION; scenario NAME; seed N;
//! command: COMMAND LINE`, and `scenario_comment` a second comment with the scenario's TOML text.
//! A bug report names these so a maintainer can rerun the same faults with the same random draws,
//! from anywhere: the replay command reads the scenario from the file the report tells them to
//! save it as. The comments are capture-derived text: they are parsed leniently (a capture from
//! another tool simply has no run) and never trusted for anything but display.

use serde::Serialize;

use crate::capture::SCENARIO_COMMENT_TAG;
use crate::shell;

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
    /// `--seed N` added to a `run` that did not name its seed, and the scenario read from
    /// [`scenario_file`](Self::scenario_file) when the capture carries its text.
    pub replay: String,
    /// The scenario's TOML text the capture carries; `None` for captures of faultline versions
    /// that recorded only its name.
    pub scenario_toml: Option<String>,
    /// Whether that text is only the scenario's beginning (the capture keeps 60 KiB).
    pub scenario_cut: bool,
    /// Where the scenario came from: the file as the command line named it, or `proxy NAME`
    /// for `faultline serve`.
    pub scenario_origin: Option<String>,
    /// The file name `replay` reads the scenario from: save `scenario_toml` under it first.
    /// `None` when `replay` needs no such file (it is the recorded command).
    pub scenario_file: Option<String>,
    /// What `replay` does not reproduce, when it cannot reproduce everything (rules changed over
    /// `faultline serve`'s control API), or what it changes and why (a fresh `builtin:store`
    /// folder instead of the first run's, which holds what that run stored).
    pub replay_note: Option<String>,
}

/// A replay note cut into plain text and code spans (the parts its backticks enclose, `false`
/// then `true` in turn), for each format to render its own way; a note with an odd number of
/// backticks (capture text in it holding one) is all plain text.
pub fn note_parts(note: &str) -> Vec<(bool, &str)> {
    if note.matches('`').count() % 2 == 1 {
        return vec![(false, note)];
    }
    note.split('`')
        .enumerate()
        .map(|(i, part)| (i % 2 == 1, part))
        .filter(|(_, part)| !part.is_empty())
        .collect()
}

/// What mergecap adds to the first section comment, before the files it merged.
const MERGED: &str = "File created by merging:";

/// What `replay_note` says for a `faultline serve` capture with its scenario.
pub const LIVE_RULES_NOTE: &str = "This run was a faultline serve proxy: the scenario is its rule \
set when the capture started (its base scenario and the toxics then in force, with its address, \
upstream and seed). Toxics and rules added, changed or removed over the control API after that \
are not in it, so this command does not reproduce them. `run` replays those rules with the same \
random draws (toxicity, jitter, slicer sizes) for the same sequence of connections. Every fault in \
the capture names the rule that fired it.";

/// What `replay_note` says for a `faultline serve` capture of a version that recorded no scenario.
pub const UNRECORDED_RULES_NOTE: &str = "This run was a faultline serve proxy whose rules came \
from its control API, and this capture does not record them (it predates scenario recording): \
this command starts the server again but does not reproduce the toxics or rules.";

/// The scenario comment, parsed.
struct RecordedScenario {
    text: String,
    origin: Option<String>,
    live: bool,
    cut: bool,
}

impl RecordedScenario {
    fn parse(comment: &str) -> Option<RecordedScenario> {
        let rest = comment
            .strip_prefix(SCENARIO_COMMENT_TAG)?
            .strip_prefix('\n')?;
        // Header lines up to the first empty one (there may be none), then the text as written.
        let mut head = Vec::new();
        let mut text = "";
        let mut left = rest;
        while let Some((line, after)) = left.split_once('\n') {
            if line.is_empty() {
                text = after;
                break;
            }
            head.push(line);
            left = after;
        }
        let mut scenario = RecordedScenario {
            text: text.to_string(),
            origin: None,
            live: false,
            cut: false,
        };
        for line in head {
            if let Some(origin) = line.strip_prefix("origin: ") {
                scenario.origin = Some(origin.to_string());
            } else if line == "rules: live" {
                scenario.live = true;
            } else if line.starts_with("cut: ") {
                scenario.cut = true;
            }
        }
        Some(scenario)
    }
}

impl RunInfo {
    /// What the reports call the recorded scenario (the name to save it as) and how much of it
    /// they show: `(name, ", its first 60 KiB only")` when the capture holds only its start.
    pub fn scenario_label(&self) -> (&str, &'static str) {
        let name = self
            .scenario_file
            .as_deref()
            .or(self.scenario_origin.as_deref())
            .unwrap_or("scenario");
        let cut = if self.scenario_cut {
            ", its first 60 KiB only"
        } else {
            ""
        };
        (name, cut)
    }

    /// The run named by the first faultline section comment among `comments`, with the scenario
    /// of the first scenario comment, if any.
    pub fn from_section_comments(comments: &[String]) -> Option<RunInfo> {
        RunInfo::runs_from_section_comments(comments)
            .into_iter()
            .next()
    }

    /// Every distinct run the section comments name, in file order, each with the scenario
    /// comment that follows it (a concatenated capture holds one section per run; the same run
    /// twice, as `cat a a` makes, is one).
    pub fn runs_from_section_comments(comments: &[String]) -> Vec<RunInfo> {
        let mut runs: Vec<RunInfo> = Vec::new();
        // Whether the last run read has its scenario yet; a scenario comment before any run
        // waits for the run.
        let mut open: Option<RunInfo> = None;
        let mut early: Option<RecordedScenario> = None;
        let close = |run: Option<RunInfo>, runs: &mut Vec<RunInfo>| {
            if let Some(mut run) = run {
                // Older `serve` captures recorded `COMMAND (proxy NAME)`: not a shell command.
                if run.scenario_toml.is_none() && run.replay_note.is_none() {
                    if let Some(serve) = old_serve_command(&run.command) {
                        run.replay = replay_command(serve, run.seed);
                        run.replay_note = Some(UNRECORDED_RULES_NOTE.to_string());
                    }
                }
                if !runs.contains(&run) {
                    runs.push(run);
                }
            }
        };
        for comment in comments {
            if let Some(mut run) = RunInfo::parse(comment) {
                close(open.take(), &mut runs);
                if let Some(scenario) = early.take() {
                    run.attach(scenario);
                }
                open = Some(run);
            } else if let Some(scenario) = RecordedScenario::parse(comment) {
                match open.as_mut() {
                    Some(run) if run.scenario_toml.is_none() => run.attach(scenario),
                    Some(_) => {}
                    None => early = early.or(Some(scenario)),
                }
            }
        }
        close(open, &mut runs);
        runs
    }

    /// The input files mergecap names in the comment it adds ("File created by merging:
    /// File1: a.pcapng ..."): it keeps only the first file's section comments, so the runs of
    /// the others are not in the capture. Empty when no such comment.
    pub fn merged_files(comments: &[String]) -> Vec<String> {
        let Some(list) = comments
            .iter()
            .find_map(|c| c.split_once(MERGED).map(|(_, list)| list))
        else {
            return Vec::new();
        };
        list.lines()
            .filter_map(|line| {
                let (label, file) = line.split_once(": ")?;
                let n = label.strip_prefix("File")?;
                n.parse::<u32>().ok()?;
                Some(file.trim().to_string())
            })
            .collect()
    }

    /// Parses one section comment; `None` when it is not faultline's.
    pub fn parse(comment: &str) -> Option<RunInfo> {
        // mergecap appends its list of inputs to the first comment: not part of the command.
        let comment = comment
            .split_once(MERGED)
            .map_or(comment, |(c, _)| c.trim_end());
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
            replay_note: recorded_store(&command)
                .filter(|_| uses_builtin_store(&command, None))
                .map(|dir| store_left_out_note(&dir)),
            command,
            scenario_toml: None,
            scenario_cut: false,
            scenario_origin: None,
            scenario_file: None,
        })
    }

    /// Adds the recorded scenario, and makes the replay read it from the file the reader saves
    /// it as: for `serve`, `faultline run FILE` (the text holds address, upstream and seed); for
    /// `run`, the recorded command with the scenario's path swapped for FILE. Other commands
    /// (`demo`) replay as recorded.
    fn attach(&mut self, scenario: RecordedScenario) {
        if scenario.live {
            let file = save_as(None, &self.scenario);
            self.replay = format!("faultline run {} --seed {}", shell::word(&file), self.seed);
            self.scenario_file = Some(file);
            self.replay_note = Some(LIVE_RULES_NOTE.to_string());
        } else if let Some(origin) = scenario.origin.as_deref() {
            let file = save_as(Some(origin), &self.scenario);
            if let Some(command) = with_scenario_file(&self.command, origin, &file) {
                self.replay = replay_command_with(
                    &command,
                    self.seed,
                    scenario_capture(&scenario.text).as_deref(),
                );
                self.scenario_file = Some(file);
                // The scenario names its store folder: the replay gives the store a fresh one
                // (with `--store DIR` left out, the scenario's folder would be used).
                // With `--store DIR` on the command line, that folder was the store (and the
                // note about it stands); with another upstream there was none.
                // Left out, the command's `--store DIR` falls back to that folder too: the
                // replay names a fresh one either way, and the note the folder really used.
                let store_used = uses_builtin_store(&self.command, Some(&scenario.text));
                if let Some(dir) = scenario_store(&scenario.text).filter(|_| store_used) {
                    self.replay = with_fresh_store(&self.replay);
                    if recorded_store(&self.command).is_none() {
                        self.replay_note = Some(format!(
                            "The store folder {} holds what the first run stored, so a replay into it would upload nothing (the clients find their objects there): `--store \"$(mktemp -d)\"` gives builtin:store a fresh, empty one.",
                            shell::word(&dir)
                        ));
                    }
                }
            }
        }
        if recorded_store(&self.command).is_some()
            && !uses_builtin_store(&self.command, Some(&scenario.text))
        {
            // `--store` given to a run whose upstream was no store: nothing to keep apart.
            self.replay_note = None;
        }
        if self.scenario_file.is_some() && !scenario.live {
            let inputs = inputs_not_recorded(&self.command, &scenario.text);
            if !inputs.is_empty() {
                let needs = format!(
                    "the replay reads what the capture does not hold: {}; run it where those paths lead, or copy the files there",
                    inputs.join(", ")
                );
                self.replay_note = Some(match self.replay_note.take() {
                    Some(note) => format!("{note} Also, {needs}."),
                    None => format!("{}{}.", needs[..1].to_uppercase(), &needs[1..]),
                });
            }
        }
        if scenario.cut && self.scenario_file.is_some() {
            let cut = format!(
                "the capture keeps only the scenario's first {} KiB: replay with the whole of it",
                crate::capture::SCENARIO_TEXT_LIMIT >> 10
            );
            self.replay_note = Some(match self.replay_note.take() {
                Some(note) => format!("{note} Also, {cut}."),
                None => format!("{}{}.", cut[..1].to_uppercase(), &cut[1..]),
            });
        }
        self.scenario_toml = Some(scenario.text);
        self.scenario_cut = scenario.cut;
        self.scenario_origin = scenario.origin;
    }
}

/// The name to save the scenario as: the recorded file's own name (`../x/s2.toml` → `s2.toml`),
/// else the scenario's name made a file name (`proxy up` → `up.toml`), else `scenario.toml`.
fn save_as(origin: Option<&str>, name: &str) -> String {
    if let Some(file) = origin
        .and_then(|o| std::path::Path::new(o).file_name())
        .and_then(|f| f.to_str())
        .filter(|f| !f.is_empty() && !f.starts_with('.'))
    {
        return file.to_string();
    }
    let stem: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let stem = stem.trim_matches('-');
    if stem.is_empty() {
        "scenario.toml".to_string()
    } else {
        format!("{stem}.toml")
    }
}

/// `command` (a `faultline run`) with its scenario argument `origin` replaced by `file`; `None`
/// when the command is no `run` or names no such argument.
fn with_scenario_file(command: &str, origin: &str, file: &str) -> Option<String> {
    let mut words = shlex::split(command)?;
    let args = words.get(1..)?;
    if subcommand(args) != Some("run") {
        return None;
    }
    let run_at = 1 + args.iter().position(|w| w == "run")?;
    let at = run_at + 1 + words.get(run_at + 1..)?.iter().position(|w| w == origin)?;
    words[at] = file.to_string();
    shlex::try_join(words.iter().map(String::as_str)).ok()
}

/// The `faultline serve …` part of an older serve capture's `… (proxy NAME)` command.
fn old_serve_command(command: &str) -> Option<&str> {
    let (serve, proxy) = command.rsplit_once(" (proxy ")?;
    proxy.strip_suffix(')')?;
    let words = shlex::split(serve)?;
    (subcommand(words.get(1..)?) == Some("serve")).then_some(serve)
}

/// `command` with the program named `faultline` (the recorded one may be a build path) and, for
/// `faultline run` without `--seed`, the seed added so the same random draws happen again.
///
/// The recorded command is shell-quoted (`main.rs` joins the arguments with [`shell::line`]), so it is
/// split the same way; text that does not split (a capture from elsewhere) is split on spaces.
/// The subcommand is the first word that is neither a global flag nor a global flag's value, so
/// `faultline -v run s.toml` or `faultline --log-format json run s.toml` is a `run` too.
fn replay_command(command: &str, seed: u64) -> String {
    replay_command_with(command, seed, None)
}

/// [`replay_command`] for a run whose scenario names `scenario_capture` (its `[proxy] capture`):
/// without `--capture` on the command line, the replay's capture goes to that folder.
fn replay_command_with(command: &str, seed: u64, scenario_capture: Option<&str>) -> String {
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
    if !is_run {
        return joined;
    }
    let has_seed = args
        .iter()
        .take_while(|w| *w != "--")
        .any(|w| w == "--seed" || w.starts_with("--seed="));
    let joined = match replay_capture(args, scenario_capture) {
        Some(args) => {
            let program = match program.rsplit('/').next() {
                Some("faultline") => "faultline".to_string(),
                _ => typed_program.to_string(),
            };
            let quoted: Vec<String> = args.iter().map(|w| shell::word(w)).collect();
            format!("{program} {}", quoted.join(" "))
        }
        None => joined,
    };
    if has_seed {
        return joined;
    }
    // After `--` every word is a file: the seed goes before it.
    match args
        .iter()
        .any(|w| w == "--")
        .then(|| joined.find(" -- "))
        .flatten()
    {
        Some(at) => format!("{} --seed {seed}{}", &joined[..at], &joined[at..]),
        None => format!("{joined} --seed {seed}"),
    }
}

/// The arguments of a `run` with `--store DIR` left out and its capture moved to a new file, so
/// that replaying never overwrites the capture the command came from (with `--capture X`, or the scenario's own
/// `capture` key when the command names none): `{name}-replay-{time}.pcapng`, in X's folder and
/// with X's format when there was one. `None` for a run without a capture (`--no-capture`).
///
/// `--html FILE` (with `--inspect`) is moved the same way, to `FILE-replay.html` beside it:
/// replaying next to the report received would overwrite it.
fn replay_capture(args: &[String], scenario_capture: Option<&str>) -> Option<Vec<String>> {
    let options_end = args.iter().position(|w| w == "--").unwrap_or(args.len());
    if args[..options_end].iter().any(|w| w == "--no-capture") {
        return None;
    }
    let replay_name = |given: &str| {
        let path = std::path::Path::new(given);
        let ext = path
            .extension()
            .map_or("pcapng".to_string(), |e| e.to_string_lossy().into_owned());
        path.with_file_name(format!("{{name}}-replay-{{time}}.{ext}"))
            .to_string_lossy()
            .into_owned()
    };
    let mut out = Vec::with_capacity(args.len() + 2);
    let mut replaced = false;
    let mut words = args.iter().enumerate();
    while let Some((i, word)) = words.next() {
        // The first run's store holds what it stored: the replay starts with an empty one
        // (see `store_left_out_note`).
        if i < options_end && word == "--store" {
            words.next();
            continue;
        }
        if i < options_end && word.starts_with("--store=") {
            continue;
        }
        if i < options_end && word == "--capture" {
            if let Some((_, given)) = words.next() {
                out.push(word.clone());
                out.push(replay_name(given));
                replaced = true;
                continue;
            }
        } else if let Some(given) = word.strip_prefix("--capture=").filter(|_| i < options_end) {
            out.push(format!("--capture={}", replay_name(given)));
            replaced = true;
            continue;
        }
        if i < options_end && word == "--html" {
            if let Some((_, given)) = words.next() {
                out.push(word.clone());
                out.push(replay_html(given));
                continue;
            }
        } else if let Some(given) = word.strip_prefix("--html=").filter(|_| i < options_end) {
            out.push(format!("--html={}", replay_html(given)));
            continue;
        }
        out.push(word.clone());
    }
    if !replaced {
        let options_end = out.iter().position(|w| w == "--").unwrap_or(out.len());
        out.insert(options_end, "--capture".to_string());
        out.insert(
            options_end + 1,
            scenario_capture.map_or("{name}-replay-{time}.pcapng".to_string(), replay_name),
        );
    }
    Some(out)
}

/// The replay's name for an HTML report `given`: `run4.html` → `run4-replay.html`, beside it.
fn replay_html(given: &str) -> String {
    let path = std::path::Path::new(given);
    let stem = path
        .file_stem()
        .map_or("report".into(), |s| s.to_string_lossy());
    let name = match path.extension() {
        Some(ext) => format!("{stem}-replay.{}", ext.to_string_lossy()),
        None => format!("{stem}-replay"),
    };
    path.with_file_name(name).to_string_lossy().into_owned()
}

/// The `[proxy] capture` path a recorded scenario's text names, if it parses and names one.
fn scenario_capture(text: &str) -> Option<String> {
    let value: toml::Table = text.parse().ok()?;
    value
        .get("proxy")
        .and_then(|p| p.get("capture"))
        .or_else(|| value.get("capture"))?
        .as_str()
        .map(str::to_string)
}

/// The `--store DIR` of a recorded `run` command, if it named one.
fn recorded_store(command: &str) -> Option<String> {
    recorded_option(command, "--store")
}

/// The value of option `name` (`--store DIR`, `--store=DIR`) of a recorded `run`, if given.
fn recorded_option(command: &str, name: &str) -> Option<String> {
    let words = shlex::split(command)?;
    let args = words.get(1..)?;
    if subcommand(args) != Some("run") {
        return None;
    }
    let options_end = args.iter().position(|w| w == "--").unwrap_or(args.len());
    let mut words = args[..options_end].iter();
    let joined = format!("{name}=");
    while let Some(word) = words.next() {
        if word == name {
            return words.next().cloned();
        }
        if let Some(value) = word.strip_prefix(&joined) {
            return Some(value.to_string());
        }
    }
    None
}

/// What a replay reads that the capture does not hold, where a relative path would miss it
/// from another folder: the `--expect` manifest, and the files `[proxy.tls]` reads (relative to
/// the scenario's folder, so to the saved copy's). A trial's replay from a fresh folder failed
/// on `../manifest.txt` and on `upstream_ca = "srv.pem"` with no word of either.
fn inputs_not_recorded(command: &str, scenario: &str) -> Vec<String> {
    let relative = |path: &str| std::path::Path::new(path).is_relative();
    let mut inputs: Vec<String> = recorded_option(command, "--expect")
        .filter(|m| relative(m))
        .map(|m| format!("the manifest `--expect {}`", shell::word(&m)))
        .into_iter()
        .collect();
    let tls = scenario
        .parse::<toml::Table>()
        .ok()
        .and_then(|t| t.get("proxy")?.get("tls")?.as_table().cloned());
    for key in ["upstream_ca", "ca_dir"] {
        if let Some(path) = tls
            .as_ref()
            .and_then(|t| t.get(key)?.as_str().map(str::to_string))
        {
            if relative(&path) {
                inputs.push(format!("`{key} = \"{path}\"` beside the scenario"));
            }
        }
    }
    inputs
}

/// Why the replay of a `run --store DIR` leaves `--store` out, in one sentence: replayed into
/// the same folder, the clients find what the first run stored (dvc says "Everything is up to
/// date"), upload nothing, and no rule fires.
fn store_left_out_note(dir: &str) -> String {
    format!(
        "`--store {}` is left out: that folder holds what the first run stored, so a replay into it would upload nothing (the clients find their objects there); builtin:store starts in a fresh, empty folder.",
        shell::word(dir)
    )
}

/// The `[proxy] store` folder a recorded scenario's text names, if it parses and names one.
fn scenario_store(text: &str) -> Option<String> {
    let value: toml::Table = text.parse().ok()?;
    value
        .get("proxy")?
        .get("store")?
        .as_str()
        .map(str::to_string)
}

/// `replay` (a `run` command) with a fresh, empty store folder: among faultline's options,
/// before a wrapped command's `--` (after it, a trial's replay handed `--store` to curl).
fn with_fresh_store(replay: &str) -> String {
    let fresh = " --store \"$(mktemp -d)\"";
    match replay.find(" -- ") {
        Some(at) => format!("{}{fresh}{}", &replay[..at], &replay[at..]),
        None => format!("{replay}{fresh}"),
    }
}

/// Whether a recorded `run` used `builtin:store`: its `--upstream`, else its scenario's (when
/// known). A run with another upstream has no store a replay must keep apart.
fn uses_builtin_store(command: &str, scenario: Option<&str>) -> bool {
    if let Some(upstream) = recorded_option(command, "--upstream") {
        return upstream == "builtin:store";
    }
    let Some(text) = scenario else {
        return true;
    };
    // A scenario that names no upstream (or does not parse) cannot say: as if it were a store.
    let upstream = text.parse::<toml::Table>().ok().and_then(|t| {
        t.get("proxy")?
            .get("upstream")?
            .as_str()
            .map(str::to_string)
    });
    upstream.is_none_or(|u| u == "builtin:store")
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
            ..CaptureMeta::default()
        };
        let run = RunInfo::parse(&meta.section_comment()).expect("a faultline comment");
        assert_eq!(run.faultline_version, env!("CARGO_PKG_VERSION"));
        assert_eq!(run.scenario, "dvc; first upload fails");
        assert_eq!(run.seed, 42);
        assert_eq!(run.command, meta.command_line);
        assert_eq!(
            run.replay,
            "faultline run s.toml --capture '{name}-replay-{time}.pcapng' --seed 42"
        );
    }

    #[test]
    fn a_named_seed_is_kept_and_other_commands_are_replayed_as_typed() {
        assert_eq!(
            replay_command("faultline run s.toml --seed 9", 9),
            "faultline run s.toml --seed 9 --capture '{name}-replay-{time}.pcapng'"
        );
        assert_eq!(
            replay_command("faultline run s.toml --seed=9", 9),
            "faultline run s.toml --seed=9 --capture '{name}-replay-{time}.pcapng'"
        );
        assert_eq!(replay_command("faultline demo", 7), "faultline demo");
        // After `--` every word is a file: the seed goes before it, as the capture does.
        assert_eq!(
            replay_command("faultline run -- s.toml", 4),
            "faultline run --capture '{name}-replay-{time}.pcapng' --seed 4 -- s.toml"
        );
        assert_eq!(
            replay_command("./fl run a.toml", 1),
            "./fl run a.toml --capture '{name}-replay-{time}.pcapng' --seed 1"
        );
    }

    /// Global flags may come before the subcommand (`faultline -v run …`): it is still a `run`
    /// whose replay needs the seed, and a seed named after them is still kept.
    #[test]
    fn global_flags_before_the_subcommand_still_make_a_run() {
        for (typed, replay) in [
            (
                "faultline -v run s.toml",
                "faultline -v run s.toml --capture '{name}-replay-{time}.pcapng' --seed 5",
            ),
            (
                "faultline -vv run s.toml",
                "faultline -vv run s.toml --capture '{name}-replay-{time}.pcapng' --seed 5",
            ),
            (
                "faultline -q run s.toml",
                "faultline -q run s.toml --capture '{name}-replay-{time}.pcapng' --seed 5",
            ),
            (
                "faultline --verbose --quiet run s.toml",
                "faultline --verbose --quiet run s.toml --capture '{name}-replay-{time}.pcapng' --seed 5",
            ),
            (
                "faultline --log-format json run s.toml",
                "faultline --log-format json run s.toml --capture '{name}-replay-{time}.pcapng' --seed 5",
            ),
            (
                "faultline --log-format=json -v run s.toml",
                "faultline --log-format=json -v run s.toml --capture '{name}-replay-{time}.pcapng' --seed 5",
            ),
            (
                "/b/target/debug/faultline -v run s.toml --seed 3",
                "faultline -v run s.toml --seed 3 --capture '{name}-replay-{time}.pcapng'",
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
            "faultline -v run 'my scenario.toml' --capture '{name}-replay-{time}.pcapng' --seed 2"
        );
        assert_eq!(
            replay_command("faultline run 'a --seed b.toml'", 2),
            "faultline run 'a --seed b.toml' --capture '{name}-replay-{time}.pcapng' --seed 2"
        );
        // `main.rs` records `--seed=9` quoted, as shlex quotes `=`: still a named seed.
        assert_eq!(
            replay_command("faultline run s.toml '--seed=9'", 9),
            "faultline run s.toml --seed=9 --capture '{name}-replay-{time}.pcapng'"
        );
        assert_eq!(replay_command("", 2), "");
    }

    /// The comments a capture of `meta` carries, read back.
    fn read_back(meta: &CaptureMeta) -> RunInfo {
        let mut comments = vec![meta.section_comment()];
        comments.extend(meta.scenario_comment());
        RunInfo::from_section_comments(&comments).expect("a faultline run")
    }

    const TEXT: &str = "name = \"s2\"\n\n[[rule]]\nfault.refuse = {}\n";

    /// Black-box trial: the replay of a `builtin:store` run with `--store DIR` replayed nothing
    /// (dvc found its objects in DIR: "Everything is up to date", no rule fired). The replay
    /// leaves `--store` out, or gives a fresh folder when the scenario names one, and says why.
    #[test]
    fn a_replay_starts_with_an_empty_store() {
        for (command, replay) in [
            (
                "faultline run s2.toml --store /tmp/st --capture c.pcapng",
                "faultline run s2.toml --capture '{name}-replay-{time}.pcapng' --seed 42",
            ),
            (
                "faultline run s2.toml --store=/tmp/st",
                "faultline run s2.toml --capture '{name}-replay-{time}.pcapng' --seed 42",
            ),
        ] {
            let meta = CaptureMeta {
                scenario: "s2".into(),
                seed: 42,
                command_line: command.into(),
                scenario_text: Some(TEXT.into()),
                scenario_origin: "s2.toml".into(),
                live_rules: false,
            };
            let run = read_back(&meta);
            assert_eq!(run.replay, replay, "{command}");
            let note = run.replay_note.expect("a note saying why");
            assert!(
                note.starts_with(
                    "`--store /tmp/st` is left out: that folder holds what the first run stored"
                ),
                "{note}"
            );
        }
        // The scenario's own `[proxy] store`: a fresh folder.
        let meta = CaptureMeta {
            scenario: "s2".into(),
            seed: 42,
            command_line: "faultline run s2.toml --store /tmp/st".into(),
            scenario_text: Some(format!("[proxy]\nstore = \"/tmp/st\"\n{TEXT}")),
            scenario_origin: "s2.toml".into(),
            live_rules: false,
        };
        let run = read_back(&meta);
        assert_eq!(
            run.replay,
            "faultline run s2.toml --capture '{name}-replay-{time}.pcapng' --seed 42 --store \"$(mktemp -d)\""
        );
        let note = run.replay_note.expect("a note saying why");
        assert!(note.starts_with("`--store /tmp/st` is left out"), "{note}");
    }

    /// Newcomer trial: the replay kept `--html run4.html` (replayed beside the report received,
    /// it overwrote it), and with the scenario's own `capture = "captures/…"` (no --capture)
    /// the replay's capture left that folder.
    #[test]
    fn a_replay_writes_its_report_and_capture_beside_the_first_runs() {
        let meta = CaptureMeta {
            scenario: "s2".into(),
            seed: 42,
            command_line: "faultline run s2.toml --inspect --html out/run4.html".into(),
            scenario_text: Some(format!(
                "{TEXT}\n[proxy]\ncapture = \"captures/{{name}}-{{time}}.pcapng\"\n"
            )),
            scenario_origin: "s2.toml".into(),
            live_rules: false,
        };
        let run = read_back(&meta);
        assert_eq!(
            run.replay,
            "faultline run s2.toml --inspect --html out/run4-replay.html --capture 'captures/{name}-replay-{time}.pcapng' --seed 42"
        );
        let meta = CaptureMeta {
            command_line: "faultline run s2.toml --inspect --html=run4.html --capture c/x.pcap"
                .into(),
            ..meta
        };
        assert_eq!(
            read_back(&meta).replay,
            "faultline run s2.toml --inspect --html=run4-replay.html --capture 'c/{name}-replay-{time}.pcap' --seed 42"
        );
        assert_eq!(replay_html("report"), "report-replay");
    }

    /// Issue 15: the report gave `faultline run s2.toml --seed N` without s2.toml, and a
    /// relative path without its directory. The capture carries the text, and the replay reads
    /// it from the file the report says to save it as, wherever that is.
    #[test]
    fn a_run_replays_from_the_scenario_the_capture_carries() {
        let meta = CaptureMeta {
            scenario: "s2".into(),
            seed: 42,
            command_line: "/b/target/debug/faultline -v run ../x/s2.toml --capture ../x/c.pcapng"
                .into(),
            scenario_text: Some(TEXT.into()),
            scenario_origin: "../x/s2.toml".into(),
            live_rules: false,
        };
        let run = read_back(&meta);
        assert_eq!(run.scenario_toml.as_deref(), Some(TEXT));
        assert_eq!(run.scenario_file.as_deref(), Some("s2.toml"));
        assert_eq!(run.scenario_origin.as_deref(), Some("../x/s2.toml"));
        assert_eq!(
            run.replay,
            "faultline -v run s2.toml --capture '../x/{name}-replay-{time}.pcapng' --seed 42"
        );
        assert_eq!(run.command, meta.command_line);
        assert_eq!((run.scenario_cut, run.replay_note), (false, None));
        // A name with a space is saved as typed and quoted in the command.
        let meta = CaptureMeta {
            command_line: "faultline run '/my dir/a b.toml' --seed 3".into(),
            scenario_origin: "/my dir/a b.toml".into(),
            ..meta
        };
        let run = read_back(&meta);
        assert_eq!(run.scenario_file.as_deref(), Some("a b.toml"));
        assert_eq!(
            run.replay,
            "faultline run 'a b.toml' --seed 3 --capture '{name}-replay-{time}.pcapng'"
        );
    }

    /// `faultline serve` recorded `COMMAND (proxy up)`: a shell syntax error when pasted, and
    /// the rules that came over the API nowhere. Now the capture carries the rule set and the
    /// replay is a `faultline run` of it, with the note saying what it cannot reproduce.
    /// A wrapped run's replay keeps faultline's options before `--` (a trial's replay handed
    /// `--store` to curl), names the store folder really used, and has no store note for a run
    /// whose upstream was no store.
    #[test]
    fn a_wrapped_runs_replay_keeps_the_store_among_faultlines_options() {
        let text = format!("[proxy]\nupstream = \"builtin:store\"\nstore = \"store\"\n{TEXT}");
        let meta = CaptureMeta {
            scenario: "s2".into(),
            seed: 42,
            command_line: "faultline run s2.toml --store st3 -- curl -T f http://h/x".into(),
            scenario_text: Some(text.clone()),
            scenario_origin: "s2.toml".into(),
            live_rules: false,
        };
        let run = read_back(&meta);
        assert_eq!(
            run.replay,
            "faultline run s2.toml --capture '{name}-replay-{time}.pcapng' --seed 42 --store \"$(mktemp -d)\" -- curl -T f http://h/x"
        );
        let note = run.replay_note.expect("a note");
        assert!(note.starts_with("`--store st3` is left out"), "{note}");
        let echo = CaptureMeta {
            command_line: "faultline run s2.toml --upstream builtin:echo --store st2".into(),
            scenario_text: Some(TEXT.into()),
            ..meta
        };
        let run = read_back(&echo);
        assert_eq!(run.replay_note, None, "{}", run.replay);
        assert!(!run.replay.contains("--store"), "{}", run.replay);
    }

    /// The manifest and the TLS files a scenario reads by relative paths are not in the
    /// capture: the note names them (a trial's replay from a fresh folder failed on both).
    #[test]
    fn a_replay_names_the_inputs_the_capture_does_not_hold() {
        let meta = CaptureMeta {
            scenario: "s2".into(),
            seed: 42,
            command_line: "faultline run s2.toml --inspect --expect ../manifest.txt".into(),
            scenario_text: Some(format!(
                "[proxy.tls]\nintercept = true\nupstream_ca = \"srv.pem\"\nca_dir = \"/srv/ca\"\n{TEXT}"
            )),
            scenario_origin: "s2.toml".into(),
            live_rules: false,
        };
        let note = read_back(&meta).replay_note.expect("a note");
        assert!(
            note.contains("the manifest `--expect ../manifest.txt`")
                && note.contains("`upstream_ca = \"srv.pem\"` beside the scenario")
                && !note.contains("ca_dir"),
            "absolute paths work from anywhere: {note}"
        );
        let plain = CaptureMeta {
            command_line: "faultline run s2.toml --inspect --expect /abs/m.txt".into(),
            scenario_text: Some(TEXT.into()),
            ..meta
        };
        assert_eq!(read_back(&plain).replay_note, None);
    }

    #[test]
    fn a_serve_proxy_replays_its_recorded_rules_with_a_note() {
        let serve = "faultline serve --api 127.0.0.1:0 --capture '/tmp/c/{name}.pcapng'";
        let meta = CaptureMeta {
            scenario: "up".into(),
            seed: 5,
            command_line: serve.into(),
            scenario_text: Some(TEXT.into()),
            scenario_origin: "proxy up".into(),
            live_rules: true,
        };
        let run = read_back(&meta);
        assert_eq!(run.replay, "faultline run up.toml --seed 5");
        assert_eq!(run.scenario_file.as_deref(), Some("up.toml"));
        assert_eq!(run.replay_note.as_deref(), Some(LIVE_RULES_NOTE));
        // A toxic draws from its name and values, as a scenario rule from its text: `run`
        // replays its draws (no hedging "may differ", which a newcomer trial questioned).
        assert!(
            LIVE_RULES_NOTE.contains("`run` replays those rules with the same random draws"),
            "{LIVE_RULES_NOTE}"
        );
        assert!(!LIVE_RULES_NOTE.contains("may differ"), "{LIVE_RULES_NOTE}");
        assert_eq!(run.command, serve);
        // An older capture's `(proxy up)` is cut off, and the note says the rules are missing.
        let old = CaptureMeta {
            command_line: format!("{serve} (proxy up)"),
            scenario_text: None,
            ..meta
        };
        let run = read_back(&old);
        assert_eq!(run.replay, serve);
        assert!(shlex::split(&run.replay).is_some());
        assert_eq!(run.replay_note.as_deref(), Some(UNRECORDED_RULES_NOTE));
        assert_eq!(run.scenario_toml, None);
    }

    /// Past 60 KiB the text is cut at a character, the comment still fits one pcapng option, and
    /// the report says the replay needs the whole file. A demo replays as recorded.
    #[test]
    fn long_scenarios_are_cut_and_say_so_and_other_commands_replay_as_recorded() {
        let long = format!("{TEXT}# {}\n", "é".repeat(40_000));
        let meta = CaptureMeta {
            scenario: "s2".into(),
            seed: 1,
            command_line: "faultline run s2.toml".into(),
            scenario_text: Some(long.clone()),
            scenario_origin: "s2.toml".into(),
            live_rules: false,
        };
        let comment = meta.scenario_comment().expect("a comment");
        assert!(
            comment.len() < usize::from(u16::MAX) - 3,
            "{}",
            comment.len()
        );
        let run = read_back(&meta);
        assert!(run.scenario_cut);
        let kept = run.scenario_toml.expect("text");
        assert!(long.starts_with(&kept) && kept.len() <= crate::capture::SCENARIO_TEXT_LIMIT);
        assert!(
            run.replay_note
                .as_deref()
                .is_some_and(|n| n.contains("60 KiB")),
            "{:?}",
            run.replay_note
        );
        let demo = CaptureMeta {
            command_line: "faultline demo".into(),
            scenario_text: Some(TEXT.into()),
            scenario_origin: "scenarios/demo-http.toml".into(),
            ..meta
        };
        let run = read_back(&demo);
        assert_eq!(run.replay, "faultline demo");
        assert_eq!(run.scenario_file, None);
        assert_eq!(run.scenario_toml.as_deref(), Some(TEXT));
        assert_eq!(CaptureMeta::default().scenario_comment(), None);
    }

    #[test]
    fn a_scenario_comment_without_header_lines_keeps_its_whole_text() {
        let text = "name = \"s\"\n\n[[rule]]\nfault.reset = {}\n";
        let comment = format!("{SCENARIO_COMMENT_TAG}\n\n{text}");
        let parsed = RecordedScenario::parse(&comment).expect("a scenario comment");
        assert_eq!(
            parsed.text, text,
            "the blank line inside the TOML is not the header's end"
        );
        assert_eq!(parsed.origin, None);
        let comment = format!("{SCENARIO_COMMENT_TAG}\norigin: s.toml\nrules: live\n\n{text}");
        let parsed = RecordedScenario::parse(&comment).expect("a scenario comment");
        assert_eq!(parsed.text, text);
        assert_eq!(parsed.origin.as_deref(), Some("s.toml"));
        assert!(parsed.live);
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

    /// `cat a.pcapng b.pcapng` of two runs showed only the first run's scenario and seed: every
    /// run is read, each with its own scenario text, the same run twice once.
    #[test]
    fn every_run_of_a_concatenated_capture_is_read_with_its_own_scenario() {
        let meta = |name: &str, seed: u64| CaptureMeta {
            scenario: name.into(),
            seed,
            command_line: format!("faultline run {name}.toml --capture x.pcapng"),
            scenario_text: Some(format!("name = {name:?}\n")),
            scenario_origin: format!("{name}.toml"),
            ..CaptureMeta::default()
        };
        let mut comments = Vec::new();
        for m in [meta("a", 1), meta("b", 2), meta("a", 1)] {
            comments.push(m.section_comment());
            comments.extend(m.scenario_comment());
        }
        let runs = RunInfo::runs_from_section_comments(&comments);
        let named: Vec<(&str, u64, Option<&str>)> = runs
            .iter()
            .map(|r| (r.scenario.as_str(), r.seed, r.scenario_toml.as_deref()))
            .collect();
        assert_eq!(
            named,
            [
                ("a", 1, Some("name = \"a\"\n")),
                ("b", 2, Some("name = \"b\"\n"))
            ]
        );
        assert_eq!(
            RunInfo::from_section_comments(&comments),
            Some(runs[0].clone())
        );
        assert!(RunInfo::merged_files(&comments).is_empty());
    }

    /// mergecap keeps the first file's section comments and appends its list of inputs to the
    /// first: the command stays the recorded one, and the inputs are named.
    #[test]
    fn a_mergecap_capture_names_its_inputs_and_keeps_the_command_clean() {
        let mut first = meta_comment();
        first.push_str(" \nFile created by merging: \nFile1: a.pcapng \nFile2: b b.pcapng \n");
        let comments = vec![first];
        let run = RunInfo::from_section_comments(&comments).expect("the first run");
        assert_eq!(run.command, "faultline run s.toml --capture a.pcapng");
        assert_eq!(RunInfo::merged_files(&comments), ["a.pcapng", "b b.pcapng"]);
    }

    fn meta_comment() -> String {
        CaptureMeta {
            scenario: "s".into(),
            seed: 3,
            command_line: "faultline run s.toml --capture a.pcapng".into(),
            ..CaptureMeta::default()
        }
        .section_comment()
    }
}
