//! The faultline binary: parse the command line, set up logging, run, map the outcome to an exit
//! status (0 ok, 1 runtime failure, 2 invalid input). All logic lives in the library.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::SystemTime;

mod cli;
mod wrapped;

use anyhow::{Context, Result};
use clap::Parser;
use tracing_subscriber::fmt::time::FormatTime;
use tracing_subscriber::EnvFilter;

use cli::{CaCommand, Cli, Command, LogFormat, RunArgs, ServeArgs};
use faultline::capture::expand_path_template;
use faultline::capture::path::claim_for_run;
use faultline::demo::Story;
use faultline::inspect::{inspect_path, InspectOptions, LegFilter, Manifest};
use faultline::proxy::status::{LogWriter, Status, StatusShown};
use faultline::proxy::{self, RunPlan};
use faultline::scenario::schema::{Builtin, Mode, UpstreamSpec};
use faultline::scenario::{Scenario, ScenarioError, DEFAULT_LISTEN};

fn main() -> ExitCode {
    let code = run_command();
    // A report cut short on stdout (a full disk, a closed file) must not pass for a good one.
    if let Some(e) = faultline::stdout_error() {
        return fail(
            &format!("faultline: cannot write the output to stdout: {e}"),
            2,
        );
    }
    code
}

fn run_command() -> ExitCode {
    let cli = Cli::try_parse().unwrap_or_else(several_captures);
    JSON_ERRORS.store(matches!(cli.log_format, LogFormat::Json), Relaxed);
    let default_level = format!("faultline={}", cli.log_level());
    let status_shown = StatusShown::default();
    // -qq hides `check`'s warnings as it hides `run`'s warn-level logs.
    let warnings_shown = cli.log_level() != "error";
    init_logging(
        cli.log_format,
        &default_level,
        LogWriter::new(status_shown.clone()),
    );
    match cli.command {
        Command::Check { files, strict } => check(&files, warnings_shown, strict),
        Command::Completions { shell } => {
            // clap_complete panics on a failed write, so the script is made in memory first and
            // written like the man page: a closed pipe (`| head`) is not an error.
            let mut command = <Cli as clap::CommandFactory>::command();
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut command, "faultline", &mut script);
            write_stdout(&script, "cannot write the completion script")
        }
        Command::Man { subcommand } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            // Built, so each subcommand knows its page name (`faultline-run`) and usage line.
            command.build();
            let mut found = Some(&command);
            for name in &subcommand {
                found = found.and_then(|c| c.find_subcommand(name));
            }
            let Some(page_of) = found else {
                eprintln!(
                    "faultline: no subcommand `{}`: `faultline man` lists them under SUBCOMMANDS",
                    subcommand.join(" ")
                );
                return ExitCode::from(2);
            };
            let mut page = Vec::new();
            let see_also = see_also(&command, &subcommand);
            let page_of = page_of.clone().version(env!("CARGO_PKG_VERSION"));
            // The footer names the program, not the subcommand ("run 0.1.0").
            let man = clap_mangen::Man::new(page_of)
                .source(format!("faultline {}", env!("CARGO_PKG_VERSION")));
            match man.render(&mut page) {
                Ok(()) => {
                    // SEE ALSO goes before VERSION, where man-pages(7) puts it.
                    let page = String::from_utf8_lossy(&page);
                    let page = match page.find(".SH VERSION") {
                        Some(at) => format!("{}{see_also}{}", &page[..at], &page[at..]),
                        None => format!("{page}{see_also}"),
                    };
                    write_stdout(page.as_bytes(), "cannot write the man page")
                }
                Err(e) => report(anyhow::Error::from(e).context("cannot render the man page")),
            }
        }
        Command::Run(args) => runtime()
            .and_then(|rt| rt.block_on(run(args, status_shown)))
            .unwrap_or_else(report),
        Command::Inspect(args) => inspect_to(&args),
        Command::ServeStore { dir, listen } => runtime()
            .and_then(|rt| rt.block_on(serve_store(dir, listen)))
            .unwrap_or_else(report),
        Command::Ca { command } => ca(command),
        Command::Serve(args) => runtime()
            .and_then(|rt| rt.block_on(serve(args)))
            .unwrap_or_else(report),
        Command::Demo { tcp, grpc } => {
            let story = match (tcp, grpc) {
                (true, _) => Story::Tcp,
                (_, true) => Story::Grpc,
                _ => Story::Http,
            };
            runtime()
                .and_then(|rt| {
                    rt.block_on(faultline::demo::run(story))
                        .map_err(anyhow::Error::from)
                })
                .map(|showed| {
                    if showed {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::from(1)
                    }
                })
                .unwrap_or_else(report)
        }
    }
}

/// Logs go to stderr: colored text only when stderr is a terminal and `NO_COLOR` is unset or
/// empty (no escape codes in files, pipes and journald), or JSON lines for machines.
/// Log lines clear the live status line first (`writer`), so the two never share a line.
fn init_logging(format: LogFormat, default_level: &str, writer: LogWriter) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let ansi = std::io::stderr().is_terminal() && !no_color;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(move || writer.clone());
    match format {
        LogFormat::Text => builder.with_ansi(ansi).init(),
        LogFormat::Json => builder.json().with_ansi(false).init(),
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Prints the error and its causes once each: a cause whose text the message before it already
/// quotes (e.g. "cannot listen on ADDR: Address in use" and then "Address in use") is not repeated.
fn report(error: anyhow::Error) -> ExitCode {
    report_as(error, 1)
}

/// [`report`] with another exit status (2 for a setup the user must fix). With
/// `--log-format json` the error is one JSON line shaped like the log lines before it (a machine
/// reading stderr must not meet one line of text at the very end), whatever the log filter says.
fn report_as(error: anyhow::Error, code: u8) -> ExitCode {
    fail(&format!("faultline: error: {}", error_chain(&error)), code)
}

/// Writes `text` to stderr in one write(2), as a JSON line shaped like the log's under
/// `--log-format json` (a machine reading stderr meets no line of plain text), whatever the
/// log filter says; `exit_code` goes with a fatal error.
fn stderr_line(level: &str, text: &str, exit_code: Option<serde_json::Value>) {
    use std::io::Write as _;
    let line = if JSON_ERRORS.load(Relaxed) {
        let mut timestamp = String::new();
        let _ = tracing_subscriber::fmt::time::SystemTime.format_time(
            &mut tracing_subscriber::fmt::format::Writer::new(&mut timestamp),
        );
        let mut fields = serde_json::json!({ "message": text });
        if let Some(code) = exit_code {
            fields["exit_code"] = code;
        }
        serde_json::json!({
            "timestamp": timestamp,
            "level": level,
            "fields": fields,
            "target": "faultline",
        })
        .to_string()
    } else {
        text.to_string()
    };
    let _ = std::io::stderr().write_all(format!("{line}\n").as_bytes());
}

/// Bad input `run` refuses before it starts (exit 2): `text` as it is, or one JSON line under
/// `--log-format json` like every other line a log collector reads from stderr.
fn refuse(text: &str) -> ExitCode {
    fail(text, 2)
}

/// A fatal error of `inspect`, `ca` and the other commands: `text` on stderr (one JSON line under
/// `--log-format json`, as `run`'s errors are; a trial's script met plain text from `inspect`),
/// exiting `code`.
fn fail(text: &str, code: u8) -> ExitCode {
    stderr_line("ERROR", text, Some(serde_json::json!(code)));
    ExitCode::from(code)
}

/// Whether fatal errors are reported as JSON lines (`--log-format json`).
static JSON_ERRORS: AtomicBool = AtomicBool::new(false);

/// Writes a whole document (completion script, man page) to stdout; a reader that stopped early
/// (`| head`) is not an error.
fn write_stdout(bytes: &[u8], what: &str) -> ExitCode {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => report(anyhow::Error::from(e).context(what.to_string())),
    }
}

fn error_chain(error: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in error.chain() {
        let cause = cause.to_string();
        if text.contains(&cause) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&cause);
    }
    text
}

fn check(files: &[PathBuf], warnings_shown: bool, strict: bool) -> ExitCode {
    let mut bad = 0;
    for file in files {
        // `-` is the scenario on stdin (a CI step that generates it); named `-` in messages.
        let loaded = match file.as_os_str() == "-" {
            true => {
                let mut text = String::new();
                match std::io::Read::read_to_string(&mut std::io::stdin(), &mut text) {
                    Ok(_) => Scenario::from_toml(&text, "-", "stdin"),
                    Err(e) => {
                        stderr_line(
                            "ERROR",
                            &format!("-: cannot read the scenario from stdin: {e}"),
                            None,
                        );
                        bad += 1;
                        continue;
                    }
                }
            }
            false => Scenario::load(file),
        };
        match loaded {
            Ok(scenario) => {
                // What `run` refuses at start fails the file here too (a missing upstream_ca, a
                // .pcap capture with capture_tls = "raw").
                let preflight = scenario.preflight();
                if !preflight.errors.is_empty() {
                    bad += 1;
                    for error in &preflight.errors {
                        stderr_line("ERROR", &error.to_string(), None);
                    }
                    continue;
                }
                let warnings: Vec<String> = scenario
                    .warnings()
                    .into_iter()
                    .chain(preflight.warnings)
                    .collect();
                // --strict: a warning fails the file, for CI steps that want none.
                let failed = strict && !warnings.is_empty();
                for warning in warnings.iter().filter(|_| warnings_shown || failed) {
                    let (level, said) = match failed {
                        true => ("ERROR", "warning, an error under --strict"),
                        false => ("WARN", "warning"),
                    };
                    stderr_line(
                        level,
                        &format!("{}: {said}: {warning}", file.display()),
                        None,
                    );
                }
                if failed {
                    bad += 1;
                    continue;
                }
                let n = scenario.rules.len();
                let rules = if n == 1 { "rule" } else { "rules" };
                faultline::say!("{}: ok ({n} {rules})", file.display());
            }
            Err(e) => {
                bad += 1;
                stderr_line("ERROR", &e.to_string(), None);
            }
        }
    }
    if bad == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    }
}

async fn run(args: RunArgs, status_shown: StatusShown) -> Result<ExitCode> {
    // clap gives an empty COMMAND for a trailing `--`: the user meant to wrap something, and a
    // run without a command would wait for Ctrl-C instead of ending when the command does.
    if args.command.is_empty() && std::env::args_os().any(|arg| arg == "--") {
        return Ok(refuse(
            "faultline: nothing follows `--`: name the command to run through the proxy (e.g. `-- sh -c 'curl $FAULTLINE_URL'`), or leave out `--` to run until Ctrl-C",
        ));
    }
    faultline::proxy::fd_limit::raise();
    let mut scenario = match Scenario::load(&args.scenario) {
        Ok(s) => s,
        // A missing or unreadable file is bad input, as `check` says (exit 2, same message).
        Err(e @ (ScenarioError::Invalid(_) | ScenarioError::Read { .. })) => {
            return Ok(refuse(&e.to_string()));
        }
    };
    // What `check` warns about a rule (it will never fire, a key is ignored) or a setting (ignored,
    // a capture placeholder that is none) is said once here too: the user who skipped `check`
    // sees it before wondering why nothing happened.
    let capture_template = match args.no_capture {
        true => None,
        false => args.capture.clone().or_else(|| scenario.capture.clone()),
    };
    for warning in scenario.run_warnings(args.upstream.as_ref(), capture_template.as_deref()) {
        tracing::warn!("{}: {warning}", args.scenario.display());
    }
    // A bad manifest is said before the run, not after it.
    if let Some(Err(e)) = args.expect.as_deref().map(Manifest::load) {
        return Ok(refuse(&e.to_string()));
    }
    // Where the listen address came from, for the message when it cannot be bound.
    let listen_from = match (args.listen, scenario.listen) {
        (Some(_), _) => "--listen".to_string(),
        (None, Some(_)) => format!("[proxy] listen in {}", args.scenario.display()),
        (None, None) => "the default listen address".to_string(),
    };
    let listen = match args.listen.or(scenario.listen) {
        Some(addr) => addr,
        None => DEFAULT_LISTEN.parse().context("default listen address")?,
    };
    let forward = scenario.mode == Mode::Forward;
    let upstream = args.upstream.or_else(|| scenario.upstream.clone());
    let upstream = if forward {
        upstream.or(Some(UpstreamSpec::PerRequest))
    } else {
        upstream
    };
    let Some(upstream) = upstream else {
        return Ok(refuse(&format!(
            "{}: no upstream: set [proxy] upstream = \"HOST:PORT\" (or builtin:echo, builtin:store) in the file or pass --upstream HOST:PORT",
            args.scenario.display()
        )));
    };
    if let Some(store) = &args.store {
        scenario.store = Some(store.display().to_string());
    }
    let seed = args
        .seed
        .or(scenario.seed)
        .unwrap_or_else(faultline::seed::random);
    let capture = capture_template.as_ref().map(|template| {
        expand_path_template(
            template,
            &scenario.name,
            SystemTime::now(),
            std::process::id(),
        )
    });
    // --inspect reads the capture this run writes: without one, say so now, not after the run.
    if args.inspect && capture.is_none() {
        return Ok(refuse(&format!(
            "faultline: --inspect needs a capture: {}",
            if args.no_capture {
                "drop --no-capture"
            } else {
                "pass --capture PATH or set [proxy] capture in the scenario"
            }
        )));
    }
    // What the inspection would refuse about its outputs is said now, not after the command ran
    // (a CI trial's `--html` naming the capture was refused once its whole test had run).
    if let (true, Some(path)) = (args.inspect, &capture) {
        if args.html.as_deref() == Some(std::path::Path::new("-")) && !args.json {
            return Ok(refuse(
                "faultline: --html - would write the page to stdout after the run's summary: give --html a file name (or add --json, whose document then goes to stdout alone)",
            ));
        }
        // The capture does not exist yet, so the inspection's same-file check cannot see it.
        let absolute =
            |p: &std::path::Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
        if let Some(html) = args
            .html
            .as_deref()
            .filter(|h| absolute(h) == absolute(path))
        {
            return Ok(refuse(&format!(
                "faultline: --html {} is the run's capture: give the report its own file",
                html.display()
            )));
        }
        if let Some(exit) = inspect_output_problem(&run_inspect_args(
            args.json,
            &args.html,
            &args.expect,
            path.clone(),
        )) {
            return Ok(exit);
        }
    }
    // A new file per run for a template with {time} or {pid}; a fixed name may replace an
    // earlier capture, never another file (the scenario, the manifest).
    let (capture, replaces) = match (capture_template.as_deref(), capture) {
        (Some(template), Some(path)) => match claim_for_run(template, &path) {
            Ok((path, replaces)) => (Some(path), replaces),
            Err(e) => return Ok(refuse(&format!("faultline: {e}"))),
        },
        _ => (None, false),
    };
    if let (Some(path), true) = (&capture, replaces) {
        tracing::warn!(
            "capture {} replaces an earlier capture of that name",
            path.display()
        );
    }
    // The empty file claimed for this run, removed again if the run cannot start.
    let claimed = capture.clone().filter(|_| !replaces);
    let capture_path = capture.clone();
    // A built-in upstream is named with where it keeps its files, not by its ephemeral port.
    let store_dir = scenario
        .store
        .as_ref()
        .map(PathBuf::from)
        .unwrap_or_else(faultline::builtin::store::default_dir);
    let builtin = match &upstream {
        UpstreamSpec::Builtin(Builtin::Store) => {
            Some(format!("builtin:store, files in {}", store_dir.display()))
        }
        UpstreamSpec::Builtin(Builtin::Echo) => Some("builtin:echo".to_string()),
        _ => None,
    };
    let scenario = Arc::new(scenario);
    let started = proxy::start(RunPlan {
        scenario: scenario.clone(),
        listen,
        upstream,
        seed,
        capture,
        command_line: command_line(),
        live_rules: false,
    })
    .await;
    if started.is_err() {
        // Only an empty regular file: `--capture /dev/full` (a device has length 0) that failed
        // its header was removed, as root, and a later write made /dev/full a regular file.
        let empty_file =
            |p: &PathBuf| std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.len() == 0);
        if let Some(path) = claimed.filter(empty_file) {
            let _ = std::fs::remove_file(path);
        }
    }
    let running = match started {
        Ok(running) => running,
        // No CA, an exposed CA key, an uncreatable capture folder: the user's to fix before
        // anything runs, like a bad scenario (exit 2); nothing was announced or accepted.
        Err(e) if e.is_setup() => return Ok(report_as(e.into(), 2)),
        Err(proxy::StartError::Listen { addr, source }) => {
            let hint = if source.kind() == std::io::ErrorKind::AddrInUse {
                "; another process holds it: pass --listen 127.0.0.1:0 for a free port (faultline prints the one it got)"
            } else {
                ""
            };
            let said = anyhow::anyhow!("cannot listen on {addr} ({listen_from}): {source}{hint}");
            return Ok(report_as(said, 1));
        }
        Err(e) => return Err(e.into()),
    };
    // Watch for SIGTERM before saying we listen: a supervisor may stop us right after.
    let mut signals = stop_signals()?;
    let upstream_said = match &builtin {
        Some(name) => format!("{} ({name})", running.shared.upstream),
        None => running.shared.upstream.to_string(),
    };
    let until = match args.command.is_empty() {
        true => "Ctrl-C to stop".to_string(),
        false => format!("until `{}` exits", wrapped::shown(&args.command)),
    };
    announce(format!(
        "faultline: listening on {}, upstream {upstream_said}, scenario \"{}\", --seed {} ({until})",
        running.local_addr, scenario.name, seed
    ));
    let wrapped = match args.command.is_empty() {
        true => None,
        false => match wrapped::Wrapped::spawn(&args.command, running.local_addr, args.json) {
            Ok(wrapped) => Some(wrapped),
            Err(e) => {
                running.shutdown();
                running.wait().await;
                let code = match e.kind() {
                    std::io::ErrorKind::NotFound => 127,
                    _ => 126,
                };
                return Ok(fail(
                    &format!(
                        "faultline: cannot run `{}`: {e}",
                        args.command[0].to_string_lossy()
                    ),
                    code,
                ));
            }
        },
    };
    // A live status line on a terminal, redrawn at most 4 times a second; none otherwise, and
    // none over the output of a wrapped command.
    let status_task = (std::io::stderr().is_terminal() && wrapped.is_none()).then(|| {
        let shared = running.shared.clone();
        let shown = status_shown.clone();
        let capture = capture_path.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_millis(250));
            // An idle run's line is not redrawn 4 times a second for nothing: only when it
            // changed, or a log line cleared it.
            let mut last = None;
            loop {
                tick.tick().await;
                let size = capture
                    .as_ref()
                    .and_then(|p| std::fs::metadata(p).ok())
                    .map(|m| m.len());
                let status = Status::of(&shared, size);
                if last != Some(status) || !shown.is_shown() {
                    shown.draw(&status);
                    last = Some(status);
                }
            }
        })
    });
    let ended = match wrapped {
        None => {
            let _ = signals.changed().await;
            None
        }
        Some(wrapped) => {
            let shown = wrapped.shown.clone();
            match wrapped.wait_or_stop(signals).await {
                Ok(ended) => Some((shown, ended)),
                Err(e) => {
                    tracing::error!(command = %shown, "cannot wait for the command: {e}");
                    None
                }
            }
        }
    };
    if let Some(task) = status_task {
        task.abort();
        status_shown.clear();
    }
    running.shutdown();
    let summary = running.wait().await;
    // `--json`: one document, printed once the inspection (if any) is done.
    let mut run_json = None;
    if args.json {
        let command = ended.as_ref().map(|(shown, ended)| {
            use std::os::unix::process::ExitStatusExt;
            serde_json::json!({
                "line": shown,
                "status": ended.status.code(),
                "signal": ended.status.signal(),
                "stopped": ended.stopped,
            })
        });
        run_json = Some(serde_json::json!({
            "scenario": scenario.name,
            "seed": seed,
            "summary": summary.to_json(),
            "command": command,
        }));
    } else {
        faultline::say!(
            "faultline: scenario \"{}\", --seed {seed} (replays this run)",
            scenario.name
        );
        faultline::say_raw!("{summary}");
        if let Some((shown, ended)) = &ended {
            faultline::say!("command: `{shown}` {}", ended.describe());
        }
    }
    let capture_failed = summary
        .capture
        .as_ref()
        .is_some_and(|c| c.write_error.is_some());
    // A capture that failed mid-run (a full disk) is still inspected: what it holds may show
    // corruption already; otherwise its verdict cannot be clean (below).
    if let (Some(capture), true) = (&summary.capture, args.inspect) {
        if !args.json {
            faultline::say!();
        }
        let inspected = run_inspect_args(args.json, &args.html, &args.expect, capture.path.clone());
        let verdict = match inspect_verdict(&inspected, run_json) {
            Ok(code) => code,
            Err(exit) => return Ok(exit),
        };
        // A run stopped (CI's timeout, Ctrl-C) before its command ended tested less than it
        // meant to: a clean verdict of half a test must not pass for a passing test (a CI
        // trial's SIGTERM-ed run exited 0). Findings still say 1, a capture missing payload 3.
        if capture_failed && verdict == 0 {
            tracing::warn!("the capture failed during the run, so it misses traffic: exiting 3 (inconclusive), not with the clean verdict of what it holds");
            return Ok(ExitCode::from(3));
        }
        // A clean verdict of no traffic judged nothing: no client came, or no connection
        // reached the upstream (a CI trial's wrong --upstream passed as "OK: no HTTP").
        let untested = match (summary.connections, summary.upstream_failures) {
            (0, _) => Some("no client connected".to_string()),
            (n, failed) if failed == n => Some(format!(
                "the upstream was unreachable on every connection ({n})"
            )),
            _ => None,
        };
        return Ok(match (&ended, untested) {
            (Some((_, ended)), _) if ended.stopped && verdict == 0 => {
                tracing::warn!(
                    "the run was stopped before its command ended: exiting with the command's status ({}), not the clean verdict of the traffic so far",
                    ended.code()
                );
                ExitCode::from(ended.code())
            }
            (_, Some(why)) if verdict == 0 => {
                tracing::warn!(
                    "{why}: the clean verdict judged no traffic; exiting 3 (inconclusive)"
                );
                ExitCode::from(3)
            }
            _ => ExitCode::from(verdict),
        });
    }
    if let Some(run) = run_json {
        faultline::say!("{}", serde_json::json!({ "run": run, "inspect": null }));
    }
    if capture_failed {
        return Ok(ExitCode::from(1));
    }
    Ok(match (ended, args.inspect) {
        (_, true) => {
            refuse("faultline: --inspect needs a capture (--capture PATH or [proxy] capture)")
        }
        (Some((_, ended)), false) => ExitCode::from(ended.code()),
        (None, false) if !args.command.is_empty() => ExitCode::from(1),
        (None, false) => ExitCode::SUCCESS,
    })
}

/// The inspection `run --inspect` makes of `capture`, the run's own.
fn run_inspect_args(
    json: bool,
    html: &Option<PathBuf>,
    expect: &Option<PathBuf>,
    capture: PathBuf,
) -> cli::InspectArgs {
    cli::InspectArgs {
        capture,
        json,
        leg: LegFilter::Both,
        markdown: false,
        html: html.clone(),
        expect: expect.clone(),
        // The run's capture holds plaintext or embeds its secrets.
        keylog: None,
    }
}

/// Exits on a command-line error: clap's own message, except for `inspect` given more than one
/// capture (a glob such as `captures/NAME-*.pcapng` that matches two runs' captures), where
/// "unexpected argument" says neither what happened nor what to do: the captures are named and
/// the newest suggested, exit 2 as for any usage error.
fn several_captures(e: clap::Error) -> Cli {
    if e.kind() != clap::error::ErrorKind::UnknownArgument {
        e.exit()
    }
    let args: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let Some(at) = args.iter().position(|a| a == "inspect") else {
        e.exit()
    };
    let mut captures = Vec::new();
    let mut words = args[at + 1..].iter();
    while let Some(word) = words.next() {
        if matches!(
            word.as_str(),
            "--leg" | "--html" | "--expect" | "--log-format"
        ) {
            words.next();
        } else if !word.starts_with('-') || word == "-" {
            captures.push(word.as_str());
        }
    }
    let newest = captures
        .iter()
        .filter_map(|c| Some((std::fs::metadata(c).ok()?.modified().ok()?, *c)))
        .max()
        .map(|(_, c)| c);
    let (true, Some(newest)) = (captures.len() > 1, newest) else {
        e.exit()
    };
    eprintln!(
        "faultline: inspect reads one capture at a time, and was given {}: {}\n  the newest is {newest}: faultline inspect {newest}\n  (a glob like captures/NAME-*.pcapng matches every run's capture; `ls -t captures/NAME-*.pcapng | head -1` picks the newest)",
        captures.len(),
        captures.join(", ")
    );
    std::process::exit(2)
}

/// `faultline inspect`: the text, JSON or Markdown report on stdout, and the HTML page when asked.
/// `--expect MANIFEST` is read first: a bad manifest exits 2 (`MANIFEST:LINE: message`) before
/// the capture is read.
fn inspect_to(args: &cli::InspectArgs) -> ExitCode {
    inspect_with(args, None)
}

/// `inspect_to`, its `--json` report printed as the `inspect` member of one object whose `run`
/// member is `run` (`faultline run --inspect --json`: one JSON document for the whole run).
fn inspect_with(args: &cli::InspectArgs, run: Option<serde_json::Value>) -> ExitCode {
    match inspect_verdict(args, run) {
        Ok(code) => ExitCode::from(code),
        Err(exit) => exit,
    }
}

/// What `--html` and the report formats would refuse (the page and the JSON both on stdout, an
/// output that is an input), checked by `run --inspect` before the run, not after its command.
fn inspect_output_problem(args: &cli::InspectArgs) -> Option<ExitCode> {
    // `--html -` writes the page to stdout, in place of the text report (never a file named `-`).
    let html_to_stdout = args.html.as_deref() == Some(std::path::Path::new("-"));
    if html_to_stdout && (args.json || args.markdown) {
        let other = if args.json { "json" } else { "markdown" };
        return Some(refuse(&format!(
            "faultline: --html - writes the page to stdout, where --{other} writes too: give --html a file name, or leave out --{other}"
        )));
    }
    let html_file = args.html.as_ref().filter(|_| !html_to_stdout);
    if let Some(html) = html_file {
        let mut inputs = vec![("capture", args.capture.as_path())];
        inputs.extend(args.expect.as_deref().map(|m| ("manifest", m)));
        if let Err(e) = faultline::inspect::refuse_overwriting_inputs(html, "--html", &inputs) {
            return Some(fail(&format!("faultline: {e}"), e.exit_code()));
        }
    }
    None
}

/// The inspection's exit code (0 clean, 1 findings, 3 inconclusive), or the exit of an error.
fn inspect_verdict(
    args: &cli::InspectArgs,
    run: Option<serde_json::Value>,
) -> Result<u8, ExitCode> {
    if let Some(exit) = inspect_output_problem(args) {
        return Err(exit);
    }
    let html_to_stdout = args.html.as_deref() == Some(std::path::Path::new("-"));
    let html_file = args.html.as_ref().filter(|_| !html_to_stdout);
    let expect = match args.expect.as_deref().map(Manifest::load).transpose() {
        Ok(manifest) => manifest,
        Err(e) => return Err(refuse(&e.to_string())),
    };
    let key_log = match &args.keylog {
        Some(path) => match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) => {
                return Err(refuse(&format!(
                    "faultline: --keylog {}: {e}",
                    path.display()
                )))
            }
        },
        None => Vec::new(),
    };
    let mut report = match inspect_path(
        &args.capture,
        &InspectOptions {
            leg: args.leg,
            key_log,
        },
    ) {
        Ok(report) => report,
        Err(e) => return Err(fail(&format!("faultline: {e}"), e.exit_code())),
    };
    if let Some(manifest) = &expect {
        report.audit(manifest);
    }
    if let Some(path) = html_file {
        if let Err(e) = faultline::inspect::write_output(path, &report.render_html()) {
            return Err(refuse(&format!(
                "faultline: cannot write the HTML report {}: {e}",
                path.display()
            )));
        }
    }
    if html_to_stdout {
        faultline::say_raw!("{}", report.render_html());
    } else if args.json {
        match run {
            Some(run) => {
                let inspect: serde_json::Value =
                    serde_json::from_str(&report.to_json()).unwrap_or(serde_json::Value::Null);
                faultline::say!("{}", serde_json::json!({ "run": run, "inspect": inspect }));
            }
            None => faultline::say!("{}", report.to_json()),
        }
    } else if args.markdown {
        faultline::say_raw!("{}", report.render_markdown());
    } else {
        faultline::say_raw!("{}", report.render_text());
    }
    if let Some(path) = html_file {
        eprintln!("faultline: HTML report written to {}", path.display());
    }
    Ok(report.exit_code())
}

fn ca(command: CaCommand) -> ExitCode {
    use faultline::tls::ca::CaCertificate;
    use faultline::tls::ca_dir::CaDir;
    use faultline::tls::{ca_report, CertificateAuthority};
    let (CaCommand::Init { dir } | CaCommand::Show { dir }) = &command;
    // Paths printed for `export` lines must hold in any folder: made absolute either way.
    let dir = match dir {
        Some(dir) => Ok(CaDir::new(dir).absolute()),
        None => CaDir::from_env(),
    };
    let dir = match dir {
        Ok(dir) => dir,
        Err(e) => return refuse(&format!("faultline: {e}")),
    };
    // A CA the user must fix (an exposed key, half a CA, an unwritable folder) exits 2, as the
    // top-level help says of every setup error; only a failure to make a certificate exits 1.
    let failed = |e: faultline::tls::TlsError| {
        fail(&format!("faultline: {e}"), if e.is_setup() { 2 } else { 1 })
    };
    match command {
        CaCommand::Init { .. } => {
            match CertificateAuthority::init(&dir, time::OffsetDateTime::now_utc()) {
                Ok((ca, created)) => {
                    let tightened = match faultline::tls::ca::tighten_folder(&dir) {
                        Ok(tightened) => tightened,
                        Err(e) => return failed(e),
                    };
                    let bundle = dir.bundle_path();
                    let roots = match faultline::tls::trust_vars::write_bundle(
                        &bundle,
                        &ca.certificate().der,
                    ) {
                        Ok(roots) => roots,
                        Err(e) => {
                            eprintln!("faultline: cannot write {}: {e}", bundle.display());
                            return ExitCode::from(2);
                        }
                    };
                    faultline::say_raw!(
                        "{}",
                        ca_report::init_report(&dir, ca.certificate(), created, tightened, roots)
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => failed(e),
            }
        }
        CaCommand::Show { .. } => {
            if !dir.cert_path().exists() {
                return failed(faultline::tls::TlsError::CaMissing {
                    dir: dir.dir().to_path_buf(),
                });
            }
            match CaCertificate::read(&dir.cert_path()) {
                Ok(cert) => {
                    faultline::say_raw!("{}", ca_report::show_report(&dir, &cert));
                    // Interception will refuse this CA; say so now rather than at `run`.
                    if let Err(e) = faultline::tls::ca::check_key_private(&dir.key_path()) {
                        eprintln!("faultline: warning: {e}");
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => failed(e),
            }
        }
    }
}

async fn serve_store(dir: PathBuf, listen: std::net::SocketAddr) -> Result<ExitCode> {
    // The folder first: "listening on …, storing under DIR" must not be printed for a DIR that
    // cannot exist (the store creates it too, as a library entry point).
    if let Err(e) = tokio::fs::create_dir_all(&dir).await {
        eprintln!(
            "faultline: store: cannot create directory {}: {e}",
            dir.display()
        );
        return Ok(ExitCode::from(2));
    }
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let addr = listener.local_addr().context("listener address")?;
    announce(format!(
        "faultline store: listening on {addr}, storing under {} (Ctrl-C to stop)",
        dir.display()
    ));
    let shutdown = tokio_util::sync::CancellationToken::new();
    let mut server = tokio::spawn(faultline::store::serve(
        listener,
        faultline::store::StoreConfig { dir },
        shutdown.clone(),
    ));
    let stop = stop_signal()?;
    tokio::select! {
        () = stop => {
            shutdown.cancel();
            server.await.context("store task")??;
        }
        ended = &mut server => ended.context("store task")??,
    }
    Ok(ExitCode::SUCCESS)
}

/// SIGINT, SIGTERM or SIGHUP, registered now (not at the first poll), as a future to await
/// later. SIGHUP (the terminal `run` was started from closed) stops it as cleanly as the others:
/// a trial's run died of it with exit 129, no summary and its capture unfinished.
fn stop_signal() -> Result<impl std::future::Future<Output = ()>> {
    let mut signals = stop_signals()?;
    Ok(async move {
        // The sender lives as long as the runtime: an error here cannot happen before a signal.
        let _ = signals.changed().await;
    })
}

/// The stop signals (SIGINT, SIGTERM, SIGHUP), registered now and counted as they arrive: the
/// first stops a run, a second one (the impatient Ctrl-C) ends a wrapped command's grace period.
fn stop_signals() -> Result<tokio::sync::watch::Receiver<u32>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot watch Ctrl-C")?;
    let mut hup = signal(SignalKind::hangup()).context("cannot watch SIGHUP")?;
    let (count, signals) = tokio::sync::watch::channel(0u32);
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
                _ = hup.recv() => {}
            }
            count.send_modify(|n| *n = n.saturating_add(1));
        }
    });
    Ok(signals)
}

async fn serve(args: ServeArgs) -> Result<ExitCode> {
    use faultline::api::{server, Api};
    let api = Arc::new(Api::new(args.capture.clone(), args.seed, command_line()));
    // Bad input (an --api that is no address, a file that cannot be read or is not valid)
    // exits 2, as `check` and `run` do; an address in use exits 1, as in `run`.
    let listeners = match server::bind(&args.api).await {
        Ok(listeners) => listeners,
        Err(e @ server::BindError::Invalid(_)) => return Ok(report_as(e.into(), 2)),
        Err(e) => return Err(e.into()),
    };
    // A misspelled placeholder (`{nme}`) names every proxy's capture alike: said at start, as
    // `run` says it.
    if let Some(warning) = args
        .capture
        .as_deref()
        .and_then(faultline::scenario::capture_placeholders)
    {
        tracing::warn!("--capture: {warning}");
    }
    // A capture folder that cannot be made fails every proxy's start: say so now, not at the
    // first POST /proxies (a trial's `--capture afile/{name}.pcapng`, afile a file).
    if let Some(template) = &args.capture {
        if let Err(e) = faultline::capture::prepare_template_folder(template) {
            eprintln!("faultline: --capture {template}: {e}");
            api.shutdown().await;
            return Ok(ExitCode::from(2));
        }
    }
    let exit_for =
        |e: &faultline::api::ApiError| ExitCode::from(if e.status == 409 { 1 } else { 2 });
    for path in &args.scenarios {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(source) => {
                let path = path.clone();
                eprintln!("faultline: {}", ScenarioError::Read { path, source });
                api.shutdown().await;
                return Ok(ExitCode::from(2));
            }
        };
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "scenario".to_string());
        let added = api
            .registry
            .lock()
            .await
            .add_scenario(
                text,
                &path.display().to_string(),
                &stem,
                path.parent().unwrap_or(std::path::Path::new("")),
            )
            .await;
        if let Err(e) = added {
            eprintln!("faultline: {}", e.message);
            api.shutdown().await;
            return Ok(exit_for(&e));
        }
    }
    if let Some(config) = &args.config {
        let populated = match std::fs::read(config) {
            Ok(body) => {
                let origin = config.display().to_string();
                let mut registry = api.registry.lock().await;
                registry.populate_file(&body, &origin).await
            }
            Err(e) => Err(faultline::api::ApiError::new(
                400,
                format!("{}: cannot read config: {e}", config.display()),
            )),
        };
        if let Err(e) = populated {
            eprintln!("faultline: {}", e.message);
            api.shutdown().await;
            return Ok(exit_for(&e));
        }
    }
    // Watch the signals before saying where the API is: a SIGTERM right after must stop us.
    let stop = stop_signal()?;
    let addrs: Vec<String> = listeners
        .iter()
        .filter_map(|l| l.local_addr().ok())
        .map(|a| a.to_string())
        .collect();
    announce(format!(
        "faultline serve: listening on {} (Toxiproxy API and /faultline/; Ctrl-C to stop)",
        addrs.join(", ")
    ));
    for proxy in api.registry.lock().await.proxies() {
        announce(format!(
            "faultline serve: proxy {:?} on {} -> {}{}",
            proxy.name,
            proxy.listen(),
            proxy.upstream(),
            if proxy.enabled() { "" } else { " (disabled)" }
        ));
    }
    let shutdown = tokio_util::sync::CancellationToken::new();
    let server = tokio::spawn(server::serve(listeners, api.clone(), shutdown.clone()));
    stop.await;
    shutdown.cancel();
    api.shutdown().await;
    if let Err(e) = server.await {
        eprintln!("faultline: API task ended abnormally: {e}");
    }
    for proxy in api.registry.lock().await.proxies() {
        // One JSON object a line, as docs/api.md promises (it names its proxy): `jq` reads it.
        faultline::say!("{}", proxy.summary_json());
    }
    Ok(ExitCode::SUCCESS)
}

/// The command line as typed, shell-quoted (a path with a space stays one word), for the capture's
/// section comment and the replay command `faultline inspect` prints.
fn command_line() -> String {
    faultline::shell::line(std::env::args_os().map(|a| a.to_string_lossy().into_owned()))
}

/// Prints a `listening on ADDR` line in one write(2): `eprintln!` writes an address piece by
/// piece (`127`, `.`, `0`, …), so a script polling the log between two pieces read half of it.
/// Under `--log-format json` it is a JSON line like the log's.
fn announce(line: String) {
    stderr_line("INFO", &line, None);
}

/// The SEE ALSO section of the page of `path` (`["ca", "init"]`; empty for faultline itself):
/// its parent's page and its subcommands' pages, each shown by `faultline man NAME…`.
fn see_also(root: &clap::Command, path: &[String]) -> String {
    let mut pages = Vec::new();
    let mut parent = Some(root);
    let mut found = Some(root);
    for (i, name) in path.iter().enumerate() {
        if i + 1 == path.len() {
            parent = found;
        }
        found = found.and_then(|c| c.find_subcommand(name));
    }
    let Some(page_of) = found else {
        return String::new();
    };
    if !path.is_empty() {
        if let Some(parent) = parent {
            pages.push(page_name(parent));
        }
    }
    pages.extend(
        page_of
            .get_subcommands()
            .filter(|c| c.get_name() != "help")
            .map(page_name),
    );
    if pages.is_empty() {
        return String::new();
    }
    let names: Vec<String> = pages
        .iter()
        .map(|p| format!("\\fB{}\\fR(1)", p.replace('-', "\\-")))
        .collect();
    format!(
        ".SH \"SEE ALSO\"\n{}\n.PP\nEach page is printed by \\fBfaultline man\\fR and the command words, e.g. \\fBfaultline man run | man \\-l \\-\\fR.\n",
        names.join(", ")
    )
}

/// The man page name of a built command: `faultline-ca-init`.
fn page_name(command: &clap::Command) -> String {
    command
        .get_display_name()
        .unwrap_or(command.get_name())
        .to_string()
}
