//! The faultline binary: parse the command line, set up logging, run, map the outcome to an exit
//! status (0 ok, 1 runtime failure, 2 invalid input). All logic lives in the library.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::SystemTime;

mod cli;

use anyhow::{Context, Result};
use clap::Parser;
use tracing_subscriber::EnvFilter;

use cli::{CaCommand, Cli, Command, RunArgs};
use faultline::capture::expand_path_template;
use faultline::demo::Story;
use faultline::inspect::{inspect_path, InspectOptions, LegFilter, Manifest};
use faultline::proxy::status::{LogWriter, Status, StatusShown};
use faultline::proxy::{self, RunPlan};
use faultline::scenario::schema::{Mode, UpstreamSpec};
use faultline::scenario::{Scenario, ScenarioError, DEFAULT_LISTEN};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let default_level = format!("faultline={}", cli.log_level());
    let status_shown = StatusShown::default();
    let log_writer = LogWriter::new(status_shown.clone());
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level)),
        )
        .with_writer(move || log_writer.clone())
        .init();
    match cli.command {
        Command::Check { files } => check(&files),
        Command::Completions { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut command, "faultline", &mut std::io::stdout());
            ExitCode::SUCCESS
        }
        Command::Man => {
            let command = <Cli as clap::CommandFactory>::command();
            match clap_mangen::Man::new(command).render(&mut std::io::stdout()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
                Err(e) => report(anyhow::Error::from(e).context("cannot write the man page")),
            }
        }
        Command::Run(args) => runtime()
            .and_then(|rt| rt.block_on(run(args, status_shown)))
            .unwrap_or_else(report),
        Command::Inspect(args) => {
            inspect_expecting(&args.capture, args.json, args.leg, args.expect.as_deref())
        }
        Command::ServeStore { dir, listen } => runtime()
            .and_then(|rt| rt.block_on(serve_store(dir, listen)))
            .unwrap_or_else(report),
        Command::Ca { command } => ca(command),
        Command::Demo { tcp } => {
            let story = if tcp { Story::Tcp } else { Story::Http };
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

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn report(error: anyhow::Error) -> ExitCode {
    eprintln!("faultline: error: {error:#}");
    ExitCode::from(1)
}

fn check(files: &[PathBuf]) -> ExitCode {
    let mut bad = 0;
    for file in files {
        match Scenario::load(file) {
            Ok(scenario) => {
                let n = scenario.rules.len();
                let rules = if n == 1 { "rule" } else { "rules" };
                faultline::say!("{}: ok ({n} {rules})", file.display());
                for warning in scenario.warnings() {
                    eprintln!("{}: warning: {warning}", file.display());
                }
            }
            Err(e) => {
                bad += 1;
                eprintln!("{e}");
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
    let mut scenario = match Scenario::load(&args.scenario) {
        Ok(s) => s,
        Err(e @ ScenarioError::Invalid(_)) => {
            eprintln!("{e}");
            return Ok(ExitCode::from(2));
        }
        Err(e) => return Err(e.into()),
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
        eprintln!(
            "{}: no upstream: set [proxy] upstream in the file or pass --upstream HOST:PORT",
            args.scenario.display()
        );
        return Ok(ExitCode::from(2));
    };
    if let Some(store) = &args.store {
        scenario.store = Some(store.display().to_string());
    }
    let seed = args.seed.or(scenario.seed).unwrap_or_else(rand::random);
    let capture = match (
        args.no_capture,
        args.capture.or_else(|| scenario.capture.clone()),
    ) {
        (true, _) | (false, None) => None,
        (false, Some(template)) => Some(expand_path_template(
            &template,
            &scenario.name,
            SystemTime::now(),
            std::process::id(),
        )),
    };
    let capture_path = capture.clone();
    let scenario = Arc::new(scenario);
    let running = proxy::start(RunPlan {
        scenario: scenario.clone(),
        listen,
        upstream,
        seed,
        capture,
        command_line: std::env::args().collect::<Vec<_>>().join(" "),
        live_rules: false,
    })
    .await?;
    eprintln!(
        "faultline: listening on {}, upstream {}, scenario \"{}\", --seed {} (Ctrl-C to stop)",
        running.local_addr, running.shared.upstream, scenario.name, seed
    );
    // A live status line on a terminal, redrawn at most 4 times a second; none otherwise.
    let status_task = std::io::stderr().is_terminal().then(|| {
        let shared = running.shared.clone();
        let shown = status_shown.clone();
        let capture = capture_path.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_millis(250));
            loop {
                tick.tick().await;
                let size = capture
                    .as_ref()
                    .and_then(|p| std::fs::metadata(p).ok())
                    .map(|m| m.len());
                shown.draw(&Status::of(&shared, size));
            }
        })
    });
    let stopped = wait_for_signal().await;
    if let Some(task) = status_task {
        task.abort();
        status_shown.clear();
    }
    stopped?;
    running.shutdown();
    let summary = running.wait().await;
    faultline::say!(
        "faultline: scenario \"{}\", --seed {seed} (replays this run)",
        scenario.name
    );
    faultline::say_raw!("{summary}");
    let capture_failed = summary
        .capture
        .as_ref()
        .is_some_and(|c| c.write_error.is_some());
    if capture_failed {
        return Ok(ExitCode::from(1));
    }
    match (&summary.capture, args.inspect) {
        (Some(capture), true) => {
            faultline::say!();
            Ok(inspect(&capture.path, false, LegFilter::Both))
        }
        (None, true) => {
            eprintln!("faultline: --inspect needs a capture (--capture PATH or [proxy] capture)");
            Ok(ExitCode::from(2))
        }
        _ => Ok(ExitCode::SUCCESS),
    }
}

fn inspect(capture: &std::path::Path, json: bool, leg: LegFilter) -> ExitCode {
    inspect_expecting(capture, json, leg, None)
}

/// `faultline inspect`, with `--expect MANIFEST` read first (a bad manifest exits 2 before the
/// capture is read: `MANIFEST:LINE: message`).
fn inspect_expecting(
    capture: &std::path::Path,
    json: bool,
    leg: LegFilter,
    expect: Option<&std::path::Path>,
) -> ExitCode {
    let expect = match expect.map(Manifest::load).transpose() {
        Ok(manifest) => manifest,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    match inspect_path(capture, &InspectOptions { leg }) {
        Ok(mut report) => {
            if let Some(manifest) = &expect {
                report.audit(manifest);
            }
            if json {
                faultline::say!("{}", report.to_json());
            } else {
                faultline::say_raw!("{}", report.render_text());
            }
            ExitCode::from(report.exit_code())
        }
        Err(e) => {
            eprintln!("faultline: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

fn ca(command: CaCommand) -> ExitCode {
    use faultline::tls::ca::CaCertificate;
    use faultline::tls::ca_dir::CaDir;
    use faultline::tls::{ca_report, CertificateAuthority};
    let dir = match CaDir::from_env() {
        Ok(dir) => dir,
        Err(e) => {
            eprintln!("faultline: {e}");
            return ExitCode::from(2);
        }
    };
    match command {
        CaCommand::Init => {
            match CertificateAuthority::init(&dir, time::OffsetDateTime::now_utc()) {
                Ok((ca, created)) => {
                    faultline::say_raw!(
                        "{}",
                        ca_report::init_report(&dir, ca.certificate(), created)
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("faultline: {e}");
                    ExitCode::from(1)
                }
            }
        }
        CaCommand::Show => {
            if !dir.cert_path().exists() {
                eprintln!(
                    "faultline: no CA in {}: run `faultline ca init` first",
                    dir.dir().display()
                );
                return ExitCode::from(2);
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
                Err(e) => {
                    eprintln!("faultline: {e}");
                    ExitCode::from(1)
                }
            }
        }
    }
}

async fn serve_store(dir: PathBuf, listen: std::net::SocketAddr) -> Result<ExitCode> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let addr = listener.local_addr().context("listener address")?;
    eprintln!(
        "faultline store: listening on {addr}, storing under {} (Ctrl-C to stop)",
        dir.display()
    );
    let shutdown = tokio_util::sync::CancellationToken::new();
    let mut server = tokio::spawn(faultline::store::serve(
        listener,
        faultline::store::StoreConfig { dir },
        shutdown.clone(),
    ));
    tokio::select! {
        signal = wait_for_signal() => {
            signal?;
            shutdown.cancel();
            server.await.context("store task")??;
        }
        ended = &mut server => ended.context("store task")??,
    }
    Ok(ExitCode::SUCCESS)
}

async fn wait_for_signal() -> Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.context("cannot watch Ctrl-C")?,
        _ = term.recv() => {}
    }
    Ok(())
}
