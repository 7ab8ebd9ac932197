//! The proxy: binds the listener, starts built-in upstreams, accepts clients and hands each one to
//! a connection task until shutdown.
//!
//! Like mini-redis's `server::run`, the accept loop takes an already-bound listener and a
//! cancellation token, so tests bind `127.0.0.1:0` and stop a run without signals.

pub mod connection;
mod ending;
pub mod events;
pub mod fd_limit;
pub mod forward;
mod interception;
pub mod leg_stream;
pub mod live_rules;
mod note_shapes;
#[cfg(target_os = "linux")]
pub mod pipe_pool;
pub mod pump;
pub mod record_tap;
pub mod rule_book;
pub mod socket;
pub mod splice;
pub mod stats;
pub mod status;
pub mod tap;
pub mod task_guard;
pub mod tls_alert;
pub mod warn_every;

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn, Instrument};

use crate::builtin;
use crate::capture::{CaptureError, CaptureMeta, CaptureSink, CaptureWriterHandle};
use crate::scenario::schema::{Mode, UpstreamSpec};
use crate::scenario::Scenario;
use crate::session::RunCounters;
use crate::tls::Interceptor;
use rule_book::RuleBook;
use stats::{RunStats, RunSummary};

/// Where upstream legs connect, once built-ins are started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Upstream {
    /// A resolved socket address (also what a built-in listens on).
    Socket(SocketAddr),
    /// A host name resolved at every connection, as a client would.
    HostPort { host: String, port: u16 },
    /// Forward-proxy mode: each client's first request names its target.
    PerRequest,
}

impl Upstream {
    /// Opens an upstream leg.
    pub async fn connect(&self) -> io::Result<TcpStream> {
        match self {
            Upstream::Socket(addr) => TcpStream::connect(addr).await,
            Upstream::HostPort { host, port } => TcpStream::connect((host.as_str(), *port)).await,
            Upstream::PerRequest => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "forward mode connects where each request says",
            )),
        }
    }
}

impl fmt::Display for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Upstream::Socket(addr) => write!(f, "{addr}"),
            Upstream::HostPort { host, port } => write!(f, "{host}:{port}"),
            Upstream::PerRequest => f.write_str("per request (forward proxy)"),
        }
    }
}

/// Everything connections of one run share. Immutable but for counters.
#[derive(Debug)]
pub struct RunShared {
    /// The rules in force (fixed for `faultline run`, swapped by the control API).
    pub rules: RuleBook,
    /// Whether `rules` may be replaced during the run: then every direction goes through the
    /// pump, which follows replacements, instead of splice(2), which cannot.
    pub rules_can_change: bool,
    /// The effective seed (flag > file > random).
    pub seed: u64,
    /// Where upstream legs go.
    pub upstream: Upstream,
    /// Counters for the summary.
    pub stats: RunStats,
    /// Cancelled to stop accepting and end every connection.
    pub shutdown: CancellationToken,
    /// Connections currently being served (tests check it returns to zero: no leaked tasks).
    pub active: AtomicU64,
    /// Where connections record what crossed their sockets, when capturing.
    pub capture: Option<CaptureSink>,
    /// Run-wide HTTP counters (attempts, request ordinals per rule).
    pub counters: RunCounters,
    /// TLS interception (`[proxy.tls] intercept = true`): the CA, leaves, both rustls configs.
    pub tls: Option<Interceptor>,
    /// Connections opened and closed, faults fired, for whoever listens (`faultline serve`).
    pub events: events::RunEvents,
    /// Upstream connects (and TLS handshakes) that fail are warned about at most once a second.
    pub upstream_warnings: warn_every::WarnEvery,
    /// So are clients whose TLS handshake with faultline fails (a client that does not trust
    /// faultline's CA fails every connection it retries).
    pub client_tls_warnings: warn_every::WarnEvery,
    /// Whether the run said, once, that HTTP rules cannot see inside a CONNECT tunnel it does
    /// not intercept (a trial's PUT rule fired 0 times on HTTPS with nothing said).
    pub opaque_tunnel_said: std::sync::atomic::AtomicBool,
    /// Whether a client whose upstream cannot be reached is closed (FIN), as Toxiproxy closes it,
    /// rather than reset, as a refused direct connection would be: `faultline serve`'s proxies
    /// follow Toxiproxy, so suites that expect a clean EOF from a dead backend keep working.
    pub unreachable_closes: bool,
}

impl RunShared {
    /// A run with an empty scenario, upstream `builtin:echo`'s placeholder address and no
    /// capture, for unit tests of what connections share.
    #[cfg(test)]
    pub fn for_tests() -> Arc<RunShared> {
        let scenario =
            Arc::new(Scenario::from_toml("", "test.toml", "test").expect("an empty scenario"));
        Arc::new(RunShared {
            stats: RunStats::new(),
            counters: RunCounters::new(),
            rules: RuleBook::new(scenario),
            rules_can_change: false,
            seed: 0,
            upstream: Upstream::Socket(SocketAddr::from(([127, 0, 0, 1], 9))),
            shutdown: CancellationToken::new(),
            active: AtomicU64::new(0),
            capture: None,
            tls: None,
            events: events::RunEvents::default(),
            upstream_warnings: warn_every::WarnEvery::new(UPSTREAM_WARN_EVERY),
            client_tls_warnings: warn_every::WarnEvery::new(UPSTREAM_WARN_EVERY),
            opaque_tunnel_said: std::sync::atomic::AtomicBool::new(false),
            unreachable_closes: false,
        })
    }
}

/// Why a run could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The listen address could not be bound (in use, not local, no permission).
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
    /// A built-in upstream could not start.
    #[error(transparent)]
    Builtin(#[from] builtin::BuiltinError),
    /// The upstream is the proxy itself: every connection would open another one.
    #[error("upstream {0} is faultline's own listen address; that would loop forever")]
    Loop(SocketAddr),
    /// The capture file cannot be written.
    #[error(transparent)]
    Capture(#[from] CaptureError),
    /// TLS interception cannot start (no CA, a CA key others can read, a bad upstream_ca…).
    #[error("TLS interception: {0}")]
    Tls(#[from] crate::tls::TlsError),
}

impl StartError {
    /// Whether the user must fix the setup before anything can run: no CA yet, a CA key others
    /// can read, a bad `upstream_ca` or key log path, a capture path that cannot be created, an
    /// upstream that is the proxy itself. Every `StartError` happens before the accept loop
    /// starts, so these are invalid input like a bad scenario (the binary exits 2 for them);
    /// the rest (the listen address in use, a built-in upstream that fails, a certificate rcgen
    /// or rustls cannot make, no runtime) are runtime failures (exit 1).
    pub fn is_setup(&self) -> bool {
        use crate::tls::TlsError;
        match self {
            StartError::Listen { .. } => false,
            StartError::Builtin(e) => e.setup,
            StartError::Loop(_) => true,
            StartError::Capture(e) => !matches!(e, CaptureError::NoRuntime { .. }),
            StartError::Tls(e) => !matches!(e, TlsError::Mint { .. } | TlsError::Config(_)),
        }
    }
}

/// What to run: the scenario plus the values flags may override.
#[derive(Debug, Clone)]
pub struct RunPlan {
    /// The scenario.
    pub scenario: Arc<Scenario>,
    /// Listen address.
    pub listen: SocketAddr,
    /// Upstream as written (built-ins are started by [`start`]).
    pub upstream: UpstreamSpec,
    /// Effective seed.
    pub seed: u64,
    /// Capture file to write, if any (placeholders already expanded).
    pub capture: Option<PathBuf>,
    /// The command line, for the capture's section comment.
    pub command_line: String,
    /// Whether the rule book may be replaced during the run (`faultline serve`).
    pub live_rules: bool,
}

/// A run in progress.
#[derive(Debug)]
pub struct Running {
    /// The address clients connect to (the real port when the plan said `:0`).
    pub local_addr: SocketAddr,
    /// State shared with the connections.
    pub shared: Arc<RunShared>,
    accept_loop: JoinHandle<()>,
    builtins: Vec<JoinHandle<()>>,
    capture_writer: Option<CaptureWriterHandle>,
}

impl Running {
    /// Asks the run to stop: no more accepts, every connection ends.
    pub fn shutdown(&self) {
        self.shared.shutdown.cancel();
    }

    /// Waits for the accept loop and every connection task to end, lets the capture drain and
    /// flush, then returns the summary.
    pub async fn wait(self) -> RunSummary {
        if let Err(e) = self.accept_loop.await {
            warn!(error = %e, "accept loop ended abnormally");
        }
        for builtin in self.builtins {
            let _ = builtin.await;
        }
        let mut summary = self
            .shared
            .stats
            .snapshot(&self.shared.rules.current(), &self.shared.counters);
        // Every connection has ended; the last sink clone goes with `shared`.
        let writer = self.capture_writer;
        drop(self.shared);
        if let Some(writer) = writer {
            summary.capture = Some(writer.finish().await);
        }
        summary
    }
}

/// Stops the built-in upstreams of a run that cannot start, and waits for them, so a fresh
/// `builtin:store` folder is removed again (a CI trial's failed `--capture` left one each time).
async fn abandon(
    builtins: Vec<JoinHandle<()>>,
    shutdown: &CancellationToken,
    error: StartError,
) -> StartError {
    shutdown.cancel();
    for builtin in builtins {
        let _ = builtin.await;
    }
    error
}

/// Binds the listener, starts any built-in upstream, and spawns the accept loop.
pub async fn start(plan: RunPlan) -> Result<Running, StartError> {
    let listener = TcpListener::bind(plan.listen)
        .await
        .map_err(|source| StartError::Listen {
            addr: plan.listen,
            source,
        })?;
    let shutdown = CancellationToken::new();
    start_on(listener, plan, shutdown).await
}

/// Like [`start`] on an already-bound listener, with the caller's shutdown token.
pub async fn start_on(
    listener: TcpListener,
    plan: RunPlan,
    shutdown: CancellationToken,
) -> Result<Running, StartError> {
    let local_addr = listener.local_addr().map_err(|source| StartError::Listen {
        addr: plan.listen,
        source,
    })?;
    let mut builtins = Vec::new();
    let upstream = match &plan.upstream {
        _ if plan.scenario.mode == Mode::Forward => Upstream::PerRequest,
        UpstreamSpec::PerRequest => Upstream::PerRequest,
        UpstreamSpec::Builtin(builtin) => {
            let dir = plan.scenario.store.as_ref().map(PathBuf::from);
            let started = builtin::start(*builtin, dir, shutdown.clone()).await?;
            builtins.push(started.task);
            Upstream::Socket(started.addr)
        }
        UpstreamSpec::Address { host, port } => match host.parse() {
            Ok(ip) => Upstream::Socket(SocketAddr::new(ip, *port)),
            Err(_) => Upstream::HostPort {
                host: host.clone(),
                port: *port,
            },
        },
    };
    if let Upstream::Socket(addr) = upstream {
        if addr == local_addr {
            return Err(StartError::Loop(addr));
        }
    }
    let tls = match plan.scenario.tls.as_ref().filter(|t| t.intercept) {
        Some(settings) => match interceptor(settings, plan.capture.as_deref()) {
            Ok(tls) => Some(tls),
            Err(e) => return Err(abandon(builtins, &shutdown, e.into()).await),
        },
        None => None,
    };
    let (capture, capture_writer) = match &plan.capture {
        Some(path) => {
            let meta = CaptureMeta {
                scenario: plan.scenario.name.clone(),
                seed: plan.seed,
                command_line: plan.command_line.clone(),
                scenario_text: Some(plan.scenario.source.clone()),
                scenario_origin: plan.scenario.origin.clone(),
                live_rules: plan.live_rules,
            };
            // capture_tls = "raw": the key log goes into the capture, ahead of the records.
            let secrets = tls
                .as_ref()
                .filter(|t| t.raw_capture())
                .map(|t| t.keylog().clone() as Arc<dyn crate::capture::SecretsSource>);
            let (sink, writer) = match CaptureSink::start_embedding(path, meta, secrets) {
                Ok(started) => started,
                Err(e) => return Err(abandon(builtins, &shutdown, e.into()).await),
            };
            (Some(sink), Some(writer))
        }
        None => (None, None),
    };
    let shared = Arc::new(RunShared {
        tls,
        stats: RunStats::new(),
        counters: RunCounters::new(),
        rules: RuleBook::new(plan.scenario),
        rules_can_change: plan.live_rules,
        seed: plan.seed,
        upstream,
        shutdown,
        active: AtomicU64::new(0),
        capture,
        events: events::RunEvents::default(),
        upstream_warnings: warn_every::WarnEvery::new(UPSTREAM_WARN_EVERY),
        client_tls_warnings: warn_every::WarnEvery::new(UPSTREAM_WARN_EVERY),
        opaque_tunnel_said: std::sync::atomic::AtomicBool::new(false),
        unreachable_closes: plan.live_rules,
    });
    info!(
        listen = %local_addr,
        upstream = %shared.upstream,
        scenario = %shared.rules.current().name,
        seed = shared.seed,
        rules = shared.rules.current().rules.len(),
        "proxy started"
    );
    // In the caller's span: `faultline serve` starts each proxy in one naming it, so every
    // line a connection logs says which proxy it belongs to.
    let accept_loop = tokio::spawn(accept_loop(listener, shared.clone()).in_current_span());
    Ok(Running {
        local_addr,
        shared,
        accept_loop,
        builtins,
        capture_writer,
    })
}

/// Loads the CA and builds what intercepted connections share; every failure here is the
/// user's to fix (run `faultline ca init`, `chmod 600` the key, fix `upstream_ca`).
fn interceptor(
    settings: &crate::tls::TlsSettings,
    capture: Option<&Path>,
) -> Result<Interceptor, crate::tls::TlsError> {
    use crate::tls::ca_dir::CaDir;
    use crate::tls::{keylog, CaptureTls, CertificateAuthority, LeafMinter, NssKeyLog};
    let dir = match &settings.ca_dir {
        Some(dir) => CaDir::new(dir.clone()),
        None => CaDir::from_env()?,
    };
    let ca = CertificateAuthority::load(&dir, time::OffsetDateTime::now_utc())?;
    let keylog_file = keylog::keylog_path(
        settings.keylog.as_deref(),
        std::env::var_os("SSLKEYLOGFILE"),
    );
    let for_capture = capture.is_some() && settings.capture_tls == CaptureTls::Raw;
    if let Some(path) = capture.filter(|_| for_capture) {
        if crate::capture::CaptureFormat::from_path(path) == crate::capture::CaptureFormat::Pcap {
            return Err(crate::tls::TlsError::RawNeedsPcapng {
                path: path.to_path_buf(),
            });
        }
    }
    let keylog = Arc::new(NssKeyLog::open(keylog_file.as_deref(), for_capture)?);
    let minter = LeafMinter::new(ca, &crate::tls::provider::provider())?;
    info!(
        ca = %dir.cert_path().display(),
        keylog = %keylog.path().map_or("none".into(), |p| p.display().to_string()),
        "intercepting TLS"
    );
    if settings.upstream_trust == crate::tls::UpstreamTrust::NoVerify {
        warn!("upstream_verify = false: upstream certificates are NOT verified");
    }
    Interceptor::new(minter, settings, keylog)
}

/// Longest pause after a failed accept. Failures (out of file descriptors, out of memory) clear when
/// connections end, so the loop retries soon but never spins.
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_millis(200);
/// First pause after a failed accept; doubles on each failure in a row up to the cap.
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(5);
/// At most one accept-failure warning per this interval; the rest are counted into the next one.
const ACCEPT_WARN_EVERY: Duration = Duration::from_secs(1);

/// The least time between two warnings about failed upstream connects.
const UPSTREAM_WARN_EVERY: Duration = Duration::from_secs(1);

/// Accepts clients until shutdown, one tracked task per connection, then waits for every task.
///
/// When another connection's two fds would not fit under the open-file limit, or an accept fails
/// (typically EMFILE), clients wait in the listen backlog: the loop backs off (5 ms doubling to
/// 200 ms, reset by the next success) instead of spinning, and warns at most once per second with
/// the number of failures since the last warning.
async fn accept_loop(listener: TcpListener, shared: Arc<RunShared>) {
    let tracker = TaskTracker::new();
    let mut ordinal = 0u64;
    let mut backoff = ACCEPT_BACKOFF_MIN;
    let warnings = warn_every::WarnEvery::new(ACCEPT_WARN_EVERY);
    fd_limit::note_baseline();
    loop {
        let accepted = if fd_limit::another_connection_fits() {
            tokio::select! {
                accepted = listener.accept() => accepted,
                () = shared.shutdown.cancelled() => break,
            }
        } else {
            Err(io::Error::other(format!(
                "open-file limit {} reached",
                fd_limit::soft_limit()
            )))
        };
        match accepted {
            Ok((stream, client_addr)) => {
                backoff = ACCEPT_BACKOFF_MIN;
                ordinal += 1;
                shared.stats.connections.fetch_add(1, Relaxed);
                shared.events.emit(|| events::RunEvent::Opened {
                    connection: ordinal,
                    client: client_addr,
                });
                // The client's socket and the upstream leg it will need, until the task ends.
                let claim = fd_limit::FdClaim::new(2);
                let serve = connection::serve(stream, client_addr, ordinal, shared.clone());
                // In the accept loop's span: `faultline serve` names the proxy there.
                tracker.spawn(
                    task_guard::guarded(ordinal, shared.clone(), async move {
                        serve.await;
                        drop(claim);
                    })
                    .in_current_span(),
                );
            }
            Err(e) => {
                if let Some(held_back) = warnings.failure(tokio::time::Instant::now()) {
                    warn!(
                        side = "client",
                        error = %e,
                        failures = held_back + 1,
                        active = shared.active.load(Relaxed),
                        retry_in = ?backoff,
                        "not accepting; clients wait in the listen backlog"
                    );
                }
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    () = shared.shutdown.cancelled() => break,
                }
                backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
            }
        }
    }
    drop(listener);
    tracker.close();
    tracker.wait().await;
    // Failures a limiter held back after its last warning: counted, not left unsaid (a trial's
    // burst of bad TLS handshakes logged one line and then nothing).
    for (limiter, what) in [
        (&warnings, "failed accepts"),
        (&shared.upstream_warnings, "failed upstream connections"),
        (&shared.client_tls_warnings, "failed client TLS handshakes"),
    ] {
        let held = limiter.take_held_back();
        if held > 0 {
            warn!(
                held,
                "{held} more {what} since the last warning about them were not logged one by one"
            );
        }
    }
}
