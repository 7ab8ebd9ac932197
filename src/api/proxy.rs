//! One proxy of `faultline serve`: Toxiproxy's fields (name, listen, upstream, enabled), its
//! toxics and faultline scenario, its seed, and the run that serves it while it is enabled.
//!
//! The proxy's rules are one scenario: the base scenario (a file given to `serve`, or one `PUT`
//! through `/faultline/`) followed by one `[[rule]]` per toxic. Changing toxics or rules swaps the
//! run's rule book (open connections follow at their next chunk); changing what a rule book
//! cannot carry (seed, capture, protocol, listen, upstream) restarts the run.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use tokio::net::TcpListener;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn, Instrument};

use super::error::ApiError;
use super::events::ApiEvent;
use super::toxic::{json_string, Toxic};
use crate::capture::expand_path_template;
use crate::capture::path::claim_unused;
use crate::direction::Direction;
use crate::fault::plan::RuleId;
use crate::proxy::stats::RunSummary;
use crate::proxy::{self, RunPlan, Running, StartError};
use crate::scenario::schema::UpstreamSpec;
use crate::scenario::Scenario;

/// What every proxy of one `faultline serve` shares.
#[derive(Debug, Clone)]
pub struct ServeContext {
    /// Where runs' events go (the `/faultline/events` stream).
    pub events: broadcast::Sender<ApiEvent>,
    /// Capture template for proxies whose scenario names none (`serve --capture`).
    pub default_capture: Option<String>,
    /// The command line, for captures' section comments.
    pub command_line: String,
}

/// A proxy's run while it is enabled.
#[derive(Debug)]
struct ProxyRun {
    running: Running,
    capture: Option<PathBuf>,
    seed: u64,
}

/// One proxy.
#[derive(Debug)]
pub struct ManagedProxy {
    /// Unique name.
    pub name: String,
    /// The listen address as reported: the bound address once started.
    listen: String,
    /// The listen address as the client gave it (`localhost:0`).
    requested_listen: String,
    /// The upstream as the client gave it.
    upstream: String,
    upstream_spec: UpstreamSpec,
    /// Toxics in the order they were added.
    toxics: Vec<Toxic>,
    /// The base scenario's TOML text (may be empty): rules and settings from a file or a PUT.
    base: String,
    /// What the API needs of the base scenario, read once each time it changes.
    base_facts: BaseFacts,
    /// The folder of the scenario file `serve` was given, while that file is the base:
    /// relative `[proxy.tls]` paths are read from there, as `run` and `check` read them.
    folder: Option<std::path::PathBuf>,
    /// The seed used when the base scenario gives none.
    default_seed: u64,
    run: Option<ProxyRun>,
    /// The last run that ended, for `/summary` while disabled and for the lines `serve` prints
    /// when it stops.
    ended: Option<EndedRun>,
    /// Toxics added so far: the next one's instance number.
    instances: u64,
    /// The scenario file given to `serve` that made the proxy, for messages.
    source: Option<String>,
}

/// What the API needs of a proxy's base scenario (`GET /proxies` shows a forward proxy's
/// upstream as per request; a toxic may not take a base rule's name), read when it is set.
#[derive(Debug, Default)]
struct BaseFacts {
    forward: bool,
    rule_names: Vec<String>,
}

impl BaseFacts {
    /// The facts of `base` (a validated scenario text, or empty) for the proxy `name`.
    fn of(base: &str, name: &str) -> BaseFacts {
        if base.trim().is_empty() {
            return BaseFacts::default();
        }
        match Scenario::from_toml(base, "base", name) {
            Ok(scenario) => BaseFacts {
                forward: scenario.mode == crate::scenario::schema::Mode::Forward,
                rule_names: scenario.rules.into_iter().map(|rule| rule.name).collect(),
            },
            Err(_) => BaseFacts::default(),
        }
    }
}

/// A run that ended: what `/summary` and `serve`'s last lines report about it.
#[derive(Debug)]
struct EndedRun {
    summary: RunSummary,
    capture: Option<PathBuf>,
    seed: u64,
    /// Ended because `serve` stopped, not because the proxy was disabled.
    by_shutdown: bool,
}

/// Parses an upstream as Toxiproxy's clients write it (`host:port`; faultline's built-ins too).
pub fn parse_upstream(text: &str) -> Result<UpstreamSpec, ApiError> {
    text.parse::<UpstreamSpec>().map_err(ApiError::bad_body)
}

/// Resolves a listen address: `IP:PORT`, `HOST:PORT` (first IPv4 address of the name) or
/// `:PORT`/empty, which faultline binds on loopback (Toxiproxy would bind every interface).
pub async fn resolve_listen(text: &str) -> Result<SocketAddr, ApiError> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(SocketAddr::from(([127, 0, 0, 1], 0)));
    }
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let bad = |why: &str| {
        ApiError::bad_body(format!(
            "listen {text:?}: {why}; expected HOST:PORT such as \"127.0.0.1:0\" or \"localhost:8080\""
        ))
    };
    let (host, port) = text.rsplit_once(':').ok_or_else(|| bad("missing port"))?;
    let port: u16 = port.parse().map_err(|_| bad("invalid port"))?;
    if host.is_empty() {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<SocketAddr> = match tokio::net::lookup_host((host, port)).await {
        Ok(addrs) => addrs.collect(),
        // The resolver fails with a stray errno (EBUSY, EINVAL) when the process has no fd left:
        // that is the server's trouble, not a malformed body.
        Err(_) if out_of_fds() => return Err(no_fds(text)),
        Err(e) => return Err(bad(&e.to_string())),
    };
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or_else(|| addrs.first())
        .copied()
        .ok_or_else(|| bad("the name has no address"))
}

/// A listen address that cannot be bound, in Go's words (`listen tcp 127.0.0.1:8080: bind:
/// address already in use`, as toxiproxy-server reports it). In use is 409 (Toxiproxy answers 500,
/// which its Python client takes for success); any other failure is the request's, 400.
/// Binds `listen` (resolved as [`resolve_listen`] does); a taken address is a 409, as
/// Toxiproxy's answer.
pub async fn bind_listen(listen: &str) -> Result<(SocketAddr, TcpListener), ApiError> {
    let addr = resolve_listen(listen).await?;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| listen_error(addr, &e))?;
    Ok((addr, listener))
}

fn listen_error(addr: SocketAddr, e: &std::io::Error) -> ApiError {
    if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) {
        return no_fds(&addr.to_string());
    }
    let status = if e.kind() == std::io::ErrorKind::AddrInUse {
        409
    } else {
        400
    };
    ApiError::new(status, format!("listen tcp {addr}: bind: {}", go_errno(e)))
}

/// Whether the process is out of file descriptors (opening one more fails with EMFILE/ENFILE).
fn out_of_fds() -> bool {
    std::fs::File::open("/dev/null")
        .is_err_and(|e| matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)))
}

/// 503 for a listener the server has no file descriptor for: a trial's proxies past the fd
/// limit were refused as "bad request body", with a different errno each time.
fn no_fds(listen: &str) -> ApiError {
    ApiError::new(
        503,
        format!("listen tcp {listen}: too many open files: faultline serve is out of file descriptors (its open-file limit); delete proxies or raise the limit (ulimit -n)"),
    )
}

/// An OS error as Go writes it: the C library's text, lower case first, without Rust's
/// ` (os error N)`.
fn go_errno(e: &std::io::Error) -> String {
    let text = e.to_string();
    let text = match e.raw_os_error() {
        Some(code) => text
            .strip_suffix(&format!(" (os error {code})"))
            .unwrap_or(&text)
            .to_string(),
        None => text,
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => text,
    }
}

/// The text of the scenario made of `base` and one rule per toxic, in order.
fn compose_text(base: &str, toxics: &[Toxic]) -> String {
    let mut text = base.to_string();
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    for toxic in toxics {
        text.push_str(&toxic.rule_toml());
    }
    text
}

/// `text` (a proxy's composed scenario) with the proxy's own listen address, upstream and seed
/// set, as one scenario file that `faultline run` replays alone; `text` unchanged when it does
/// not parse (it always does: it was just validated). A seed beyond TOML's integers (half of
/// all random seeds) stays out of the file: the replay command's `--seed` carries it.
fn replayable(text: &str, listen: SocketAddr, upstream: &str, seed: u64) -> String {
    let Ok(mut table) = text.parse::<toml::Table>() else {
        return text.to_string();
    };
    match i64::try_from(seed) {
        Ok(seed) => table.insert("seed".into(), toml::Value::Integer(seed)),
        Err(_) => table.remove("seed"),
    };
    let proxy = table
        .entry("proxy")
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    if let toml::Value::Table(proxy) = proxy {
        proxy.insert("listen".into(), toml::Value::String(listen.to_string()));
        // A forward proxy's "per request" is no upstream a file can name: `mode` says it.
        if upstream.parse::<UpstreamSpec>().is_ok() {
            proxy.insert("upstream".into(), toml::Value::String(upstream.to_string()));
        }
    }
    toml::to_string(&table).unwrap_or_else(|_| text.to_string())
}

/// The settings of a base scenario that a rule book swap cannot change, as they take effect:
/// the seed and capture template in force (the scenario's, else the proxy's), protocol, mode,
/// store and TLS. `[proxy] listen`/`upstream` are not among them: a scenario may only restate
/// the proxy's own (checked before), which changes nothing. So a body that spells a setting
/// another way, or restates a default, does not restart the proxy.
#[derive(Debug, PartialEq)]
struct Settings {
    seed: u64,
    capture: Option<String>,
    protocol: crate::scenario::schema::Protocol,
    mode: crate::scenario::schema::Mode,
    store: Option<String>,
    tls: Option<crate::tls::TlsSettings>,
}

/// The [`Settings`] of base scenario `text`, with the proxy's `seed` and capture template
/// `capture` where it names none; `None` when it does not load (a base always did, when set).
fn settings_of(text: &str, seed: u64, capture: Option<&str>) -> Option<Settings> {
    let scenario = Scenario::from_toml(text, "scenario", "settings").ok()?;
    Some(Settings {
        seed: scenario.seed.unwrap_or(seed),
        capture: scenario.capture.or_else(|| capture.map(str::to_string)),
        protocol: scenario.protocol,
        mode: scenario.mode,
        store: scenario.store,
        tls: scenario.tls,
    })
}

/// Makes each rule of `next` that replaces a rule of `current` of the same lineage (the same
/// toxic, updated) count on from that rule's counters.
fn carry_counters(current: &Scenario, next: &Scenario, stats: &crate::proxy::stats::RunStats) {
    for (key, lineage) in &next.lineage {
        if let Some((old, _)) = current
            .lineage
            .iter()
            .find(|(old, of)| *of == lineage && *old != key)
        {
            stats.carry(*old, *key);
        }
    }
}

/// The base text without its rules (what `POST /reset` keeps).
fn without_rules(text: &str) -> String {
    match text.parse::<toml::Table>() {
        Ok(mut table) => {
            table.remove("rule");
            toml::to_string(&table).unwrap_or_default()
        }
        Err(_) => String::new(),
    }
}

impl ManagedProxy {
    /// A stopped proxy (start it with [`start`](Self::start)).
    pub fn new(
        name: String,
        listen: String,
        upstream: String,
        upstream_spec: UpstreamSpec,
        base: String,
        default_seed: u64,
    ) -> Self {
        let base_facts = BaseFacts::of(&base, &name);
        ManagedProxy {
            name,
            requested_listen: listen.clone(),
            listen,
            upstream,
            upstream_spec,
            toxics: Vec::new(),
            base_facts,
            base,
            folder: None,
            default_seed,
            run: None,
            ended: None,
            instances: 0,
            source: None,
        }
    }

    /// The base came from a scenario file in `folder` (see the field).
    pub fn read_from(&mut self, folder: &std::path::Path) {
        self.folder = Some(folder.to_path_buf());
    }

    /// The proxy was made from the scenario file `origin` given to `serve`.
    pub fn came_from(&mut self, origin: &str) {
        self.source = Some(origin.to_string());
    }

    /// The scenario file given to `serve` that made the proxy, if one did.
    pub fn source(&self) -> Option<&str> {
        self.source.as_deref()
    }

    /// A number for a toxic being added or updated, never given before on this proxy.
    pub fn new_instance(&mut self) -> u64 {
        self.instances += 1;
        self.instances
    }

    /// Whether it is listening.
    pub fn enabled(&self) -> bool {
        self.run.is_some()
    }

    /// The listen address as Toxiproxy reports it.
    pub fn listen(&self) -> &str {
        &self.listen
    }

    /// The upstream as given.
    pub fn upstream(&self) -> &str {
        &self.upstream
    }

    /// The toxics, as Toxiproxy lists them: upstream ones first, then downstream ones.
    pub fn toxics(&self) -> Vec<&Toxic> {
        let mut listed: Vec<&Toxic> = self
            .toxics
            .iter()
            .filter(|t| t.direction == Direction::ClientToUpstream)
            .collect();
        listed.extend(
            self.toxics
                .iter()
                .filter(|t| t.direction == Direction::UpstreamToClient),
        );
        listed
    }

    /// The toxic named `name`.
    pub fn toxic(&self, name: &str) -> Option<&Toxic> {
        self.toxics.iter().find(|t| t.name == name)
    }

    /// Toxiproxy's JSON of the proxy with its toxics.
    pub fn to_json(&self) -> String {
        let toxics: Vec<String> = self.toxics().iter().map(|t| t.to_json()).collect();
        format!(
            "{{\"name\":{},\"listen\":{},\"upstream\":{},\"enabled\":{},\"Logger\":{{}},\"toxics\":[{}]}}",
            json_string(&self.name),
            json_string(&self.listen),
            json_string(&self.shown_upstream()),
            self.enabled(),
            toxics.join(",")
        )
    }

    /// The scenario in force with `base` and `toxics`: base rules first, then one rule per toxic
    /// (a `noop` has none). A toxic's rule is keyed by its text, its instance and its revision,
    /// and has the instance as lineage: an updated toxic's new rule (a new key, even when no
    /// value changed: an update restarts the toxic's timers) takes over the old one's state on
    /// open connections, and one removed and added again (even with the very same values) is
    /// new.
    fn compose(&self, base: &str, toxics: &[Toxic]) -> Result<Scenario, ApiError> {
        let text = compose_text(base, toxics);
        let mut scenario = Scenario::from_toml(&text, &format!("proxy {}", self.name), &self.name)
            .map_err(|e| {
                ApiError::new(
                    500,
                    format!(
                        "internal error: the rules of proxy {} do not load: {e}",
                        self.name
                    ),
                )
            })?;
        let with_rules: Vec<&Toxic> = toxics
            .iter()
            .filter(|t| !t.rule_toml().is_empty())
            .collect();
        let first = scenario.rules.len().saturating_sub(with_rules.len());
        for (rule, toxic) in scenario.rules[first..].iter_mut().zip(with_rules) {
            let key = crate::seed::key_of(
                &[
                    b"toxic".as_slice(),
                    &toxic.instance.to_le_bytes(),
                    &toxic.revision.to_le_bytes(),
                    &rule.key.to_le_bytes(),
                ]
                .concat(),
            );
            rule.key = key;
            rule.id = RuleId::new(key, &rule.name);
            scenario.lineage.insert(key, toxic.instance);
        }
        if let (Some(tls), Some(folder)) = (scenario.tls.as_mut(), &self.folder) {
            tls.resolve_against(folder);
        }
        Ok(scenario)
    }

    /// Puts `toxics` in force (on open connections too); nothing changes when they do not load.
    /// An updated toxic's rule has a new key; its counters (matched, fired) carry over to it, so
    /// the summary and `/metrics` go on counting (Prometheus sees no counter reset).
    pub fn set_toxics(&mut self, toxics: Vec<Toxic>) -> Result<(), ApiError> {
        let scenario = self.compose(&self.base, &toxics)?;
        self.toxics = toxics;
        if let Some(run) = &self.run {
            let shared = &run.running.shared;
            // Before the new book is out, so no connection counts under a new key first.
            carry_counters(&shared.rules.current(), &scenario, &shared.stats);
            shared.rules.replace(Arc::new(scenario));
        }
        Ok(())
    }

    /// The toxics, for a caller that edits a copy and puts it back with `set_toxics`.
    pub fn toxics_in_order(&self) -> Vec<Toxic> {
        self.toxics.clone()
    }

    /// Replaces the base scenario (already validated by the caller). Rules are swapped live; a
    /// change of settings (seed, capture, protocol, …) restarts the run. Returns whether it did.
    pub async fn set_base(&mut self, base: String, ctx: &ServeContext) -> Result<bool, ApiError> {
        // A body sent over the API has no folder of its own.
        let folder = self.folder.take();
        let scenario = match self.compose(&base, &self.toxics) {
            Ok(scenario) => scenario,
            Err(e) => {
                self.folder = folder;
                return Err(e);
            }
        };
        let settings =
            |text: &str| settings_of(text, self.default_seed, ctx.default_capture.as_deref());
        let restart = self.run.is_some() && settings(&base) != settings(&self.base);
        let facts = BaseFacts::of(&base, &self.name);
        let old_facts = std::mem::replace(&mut self.base_facts, facts);
        let old_base = std::mem::replace(&mut self.base, base);
        if restart {
            self.stop().await;
            if let Err(e) = self.start(ctx).await {
                // Bad input changes nothing: the proxy comes back as it was (a trial's capture
                // path that could not be opened left a running proxy disabled).
                self.base_facts = old_facts;
                self.base = old_base;
                self.folder = folder;
                if let Err(again) = self.start(ctx).await {
                    tracing::warn!(proxy = %self.name, error = %again.message, "the proxy a refused scenario stopped cannot start again; it stays disabled");
                }
                return Err(e);
            }
        } else if let Some(run) = &self.run {
            run.running.shared.rules.replace(Arc::new(scenario));
        }
        Ok(restart)
    }

    /// `POST /reset` for this proxy: no toxics, no rules (settings stay), enabled.
    pub async fn reset(&mut self, ctx: &ServeContext) -> Result<(), ApiError> {
        self.toxics.clear();
        let base = without_rules(&self.base);
        self.set_base(base, ctx).await?;
        if self.run.is_none() {
            self.start(ctx).await?;
        }
        Ok(())
    }

    /// Whether `listen`/`upstream` name another address than the proxy's (then an update
    /// restarts it, as Toxiproxy's does).
    pub async fn differs(&self, listen: &str, upstream: &str) -> Result<bool, ApiError> {
        if upstream != self.upstream {
            return Ok(true);
        }
        Ok(!self.listens_on(listen).await?)
    }

    /// Whether `listen` names the address the proxy listens on (as asked, as reported, or
    /// once resolved).
    pub async fn listens_on(&self, listen: &str) -> Result<bool, ApiError> {
        if listen == self.requested_listen || listen == self.listen {
            return Ok(true);
        }
        let wanted = resolve_listen(listen).await?;
        Ok(self.listen.parse::<SocketAddr>().ok() == Some(wanted))
    }

    /// Moves the proxy to `listen` and `upstream` (stopping it first if it runs).
    pub async fn readdress(&mut self, listen: String, upstream: String) -> Result<(), ApiError> {
        let spec = if upstream == self.upstream {
            self.upstream_spec.clone()
        } else {
            parse_upstream(&upstream)?
        };
        resolve_listen(&listen).await?;
        self.stop().await;
        self.requested_listen = listen.clone();
        self.listen = listen;
        self.upstream = upstream;
        self.upstream_spec = spec;
        Ok(())
    }

    /// Starts listening (a no-op when it already does). The listen address is the one last
    /// reported, so a re-enabled proxy comes back on the same port.
    pub async fn start(&mut self, ctx: &ServeContext) -> Result<(), ApiError> {
        self.start_bound(ctx, None).await
    }

    /// [`start`](Self::start) on `listener` when the caller bound it already: a move to another
    /// address binds it before the old run stops, so a taken address (409) changes nothing.
    pub async fn start_bound(
        &mut self,
        ctx: &ServeContext,
        listener: Option<TcpListener>,
    ) -> Result<(), ApiError> {
        if self.run.is_some() {
            return Ok(());
        }
        let mut scenario = self.compose(&self.base, &self.toxics)?;
        let (addr, listener) = match listener {
            Some(listener) => {
                let addr = listener
                    .local_addr()
                    .map_err(|e| ApiError::bad_body(format!("listen: {e}")))?;
                (addr, listener)
            }
            None => bind_listen(&self.listen).await?,
        };
        let seed = scenario.seed.unwrap_or(self.default_seed);
        // The capture carries this text: with the proxy's address, upstream and seed in it,
        // `faultline run` on the saved text alone replays the rules in force now.
        let bound = listener.local_addr().unwrap_or(addr);
        scenario.source = replayable(&scenario.source, bound, &self.upstream, seed);
        let capture = scenario
            .capture
            .clone()
            .or_else(|| ctx.default_capture.clone())
            .map(|template| {
                expand_path_template(
                    &template,
                    &scenario.name,
                    SystemTime::now(),
                    std::process::id(),
                )
            })
            // "A new file per run": a restart within the same second, or another proxy whose
            // name comes out alike in a file name, gets a numbered file.
            .map(|path| claim_unused(&path))
            .transpose()
            .map_err(ApiError::bad_body)?;
        let plan = RunPlan {
            listen: addr,
            upstream: self.upstream_spec.clone(),
            seed,
            capture: capture.clone(),
            // As typed, so it pastes into a shell; the proxy is named by the scenario's origin.
            command_line: ctx.command_line.clone(),
            live_rules: true,
            scenario: Arc::new(scenario),
        };
        let span = tracing::info_span!("proxy", name = %self.name);
        let running = match proxy::start_on(listener, plan, CancellationToken::new())
            .instrument(span)
            .await
        {
            Ok(running) => running,
            Err(e) => {
                // The run never started: the empty file claimed for it goes too.
                if let Some(path) = &capture {
                    if std::fs::metadata(path).is_ok_and(|m| m.len() == 0) {
                        let _ = std::fs::remove_file(path);
                    }
                }
                return Err(match e {
                    StartError::Listen { addr, source } => listen_error(addr, &source),
                    // Not the request's fault: say what failed on the server's side.
                    e @ StartError::Capture(_) => {
                        ApiError::new(400, format!("proxy {} cannot start: {e}", self.name))
                    }
                    other => ApiError::bad_body(other),
                });
            }
        };
        self.listen = running.local_addr.to_string();
        info!(proxy = %self.name, listen = %self.listen, upstream = %self.upstream, seed, "proxy enabled");
        super::events::forward(self.name.clone(), &running.shared, ctx.events.clone());
        self.run = Some(ProxyRun {
            running,
            capture,
            seed,
        });
        Ok(())
    }

    /// Stops listening and ends every connection (a no-op when stopped); waits until the
    /// listener is closed, the connections are gone and the capture is flushed.
    pub async fn stop(&mut self) {
        self.stop_run(false).await;
    }

    /// Stops the proxy because `serve` ends: its summary still says it was enabled (the user
    /// never disabled it), with the run's capture and seed.
    pub async fn shut_down(&mut self) {
        self.stop_run(true).await;
    }

    async fn stop_run(&mut self, by_shutdown: bool) {
        let Some(run) = self.run.take() else {
            return;
        };
        run.running.shutdown();
        let summary = run.running.wait().await;
        if let Some(error) = summary
            .capture
            .as_ref()
            .and_then(|c| c.write_error.as_ref())
        {
            warn!(proxy = %self.name, %error, "the capture of this proxy is incomplete");
        }
        info!(proxy = %self.name, "proxy disabled");
        self.ended = Some(EndedRun {
            summary,
            capture: run.capture,
            seed: run.seed,
            by_shutdown,
        });
    }

    /// The run serving the proxy, if enabled.
    pub fn running(&self) -> Option<&Running> {
        self.run.as_ref().map(|r| &r.running)
    }

    /// The capture file of the current run (or `None` when not capturing).
    pub fn capture_path(&self) -> Option<&PathBuf> {
        self.run.as_ref().and_then(|r| r.capture.as_ref())
    }

    /// The capture `GET /faultline/proxies/{name}/capture` hands out: the current run's while
    /// enabled; while disabled, the last run's (complete: it was flushed when the run ended),
    /// the file the summary names. Otherwise why there is none, as the 404's message.
    pub fn capture_to_serve(&self) -> Result<&PathBuf, String> {
        let name = &self.name;
        let hint = "give its scenario [proxy] capture, or start serve with --capture";
        match (&self.run, &self.ended) {
            (Some(run), _) => run
                .capture
                .as_ref()
                .ok_or_else(|| format!("proxy {name} is not capturing: {hint}")),
            (None, Some(ended)) => ended.capture.as_ref().ok_or_else(|| {
                format!("proxy {name} is disabled, and its last run was not capturing: {hint}")
            }),
            (None, None) => Err(format!(
                "proxy {name} is disabled and has not run yet, so it has no capture: enable it with POST /proxies/{name} {{\"enabled\":true}}"
            )),
        }
    }

    /// `GET /faultline/proxies/{name}/summary`: the counters `faultline run` prints, as JSON
    /// (the current run's, or the last one's while disabled) plus the text `run` would print.
    pub fn summary_json(&self) -> String {
        let (summary, seed, capture, enabled) = match (&self.run, &self.ended) {
            (Some(run), _) => {
                let shared = &run.running.shared;
                (
                    Some(
                        shared
                            .stats
                            .snapshot(&shared.rules.current(), &shared.counters),
                    ),
                    Some(run.seed),
                    run.capture.as_ref(),
                    true,
                )
            }
            (None, Some(ended)) => (
                Some(ended.summary.clone()),
                Some(ended.seed),
                ended.capture.as_ref(),
                ended.by_shutdown,
            ),
            (None, None) => (None, None, None, false),
        };
        let seed = seed.unwrap_or_else(|| {
            Scenario::from_toml(&self.base, "base", &self.name)
                .ok()
                .and_then(|s| s.seed)
                .unwrap_or(self.default_seed)
        });
        let capture = capture
            .map(|p| json_string(&p.display().to_string()))
            .unwrap_or_else(|| "null".to_string());
        let Some(summary) = summary else {
            // Never ran: the text says so as a run's summary would (a trial read "text":"").
            return format!(
                "{{\"proxy\":{},\"enabled\":false,\"seed\":{seed},\"capture\":null,\"connections\":0,\"active\":0,\"upstream_failures\":0,\"panics\":0,\"bytes\":{{\"client->upstream\":0,\"upstream->client\":0}},\"rules\":[],\"text\":{}}}",
                json_string(&self.name),
                json_string(&RunSummary::default().to_string())
            );
        };
        let active = self
            .running()
            .map(|r| r.shared.active.load(std::sync::atomic::Ordering::Relaxed))
            .unwrap_or(0);
        let rules: Vec<String> = summary
            .rules
            .iter()
            .map(|r| {
                format!(
                    "{{\"name\":{},\"fault\":\"{}\",\"matched\":{},\"fired\":{},\"requests\":{}}}",
                    json_string(&r.name),
                    r.fault,
                    r.matched,
                    r.fired,
                    r.requests
                        .map(|n| n.to_string())
                        .unwrap_or_else(|| "null".to_string())
                )
            })
            .collect();
        format!(
            "{{\"proxy\":{},\"enabled\":{},\"seed\":{seed},\"capture\":{capture},\"connections\":{},\"active\":{active},\"upstream_failures\":{},\"panics\":{},\"bytes\":{{\"client->upstream\":{},\"upstream->client\":{}}},\"rules\":[{}],\"text\":{}}}",
            json_string(&self.name),
            enabled,
            summary.connections,
            summary.upstream_failures,
            summary.panics,
            summary.client_to_upstream,
            summary.upstream_to_client,
            rules.join(","),
            json_string(&summary.to_string())
        )
    }

    /// The scenario in force, as TOML: the base scenario, then one rule per toxic.
    pub fn scenario_text(&self) -> String {
        compose_text(&self.base, &self.toxics)
    }

    /// The upstream as the API shows it: a forward proxy's clients name theirs.
    pub fn shown_upstream(&self) -> String {
        if self.is_forward() {
            UpstreamSpec::PerRequest.to_string()
        } else {
            self.upstream.clone()
        }
    }

    /// Whether the base scenario makes the proxy a forward proxy (`mode = "forward"`): its
    /// clients name each upstream, so it has none of its own.
    pub fn is_forward(&self) -> bool {
        self.base_facts.forward
    }

    /// The names of the base scenario's rules.
    pub fn base_rule_names(&self) -> &[String] {
        &self.base_facts.rule_names
    }

    /// The base scenario's text.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The listen address as the client asked for it.
    pub fn requested_listen(&self) -> &str {
        &self.requested_listen
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_ignore_rules_and_names() {
        let a = "name = \"a\"\nseed = 1\n[[rule]]\nfault.refuse = {}\n";
        let b = "name = \"b\"\nseed = 1\n";
        let settings = |text| settings_of(text, 1, None);
        assert_eq!(settings(a), settings(b));
        assert_ne!(settings(a), settings("seed = 2\n"));
        // Effective values: the proxy's own seed restated, its own address restated, a
        // default spelled out.
        assert_eq!(settings(""), settings("seed = 1\n"));
        assert_eq!(
            settings(""),
            settings("[proxy]\nlisten = \"127.0.0.1:9\"\nupstream = \"127.0.0.1:8\"\n")
        );
        assert_eq!(settings(""), settings("[proxy]\nmode = \"reverse\"\n"));
        assert_ne!(settings(""), settings("[proxy]\ncapture = \"c.pcapng\"\n"));
        assert_eq!(without_rules(a).trim(), "name = \"a\"\nseed = 1");
    }

    /// A serve capture's scenario replays with `faultline run` alone: the proxy's address,
    /// upstream and seed are in it, and its rules (toxics included) load as they are.
    #[test]
    fn the_recorded_scenario_is_a_whole_scenario_file() {
        let toxic = Toxic::from_create(
            br#"{"name":"slow","type":"latency","stream":"downstream","attributes":{"latency":50}}"#,
        )
        .expect("a toxic");
        let base = "name = \"up\"\n[proxy]\ncapture = \"c.pcapng\"\n[[rule]]\nfault.refuse = {}\n";
        let text = compose_text(base, &[toxic]);
        let listen: SocketAddr = "127.0.0.1:4567".parse().expect("addr");
        let saved = replayable(&text, listen, "localhost:6379", 99);
        let scenario = Scenario::from_toml(&saved, "saved.toml", "saved").expect("loads");
        assert_eq!(scenario.seed, Some(99));
        assert_eq!(scenario.listen, Some(listen));
        assert_eq!(
            scenario.upstream,
            Some(parse_upstream("localhost:6379").expect("upstream"))
        );
        assert_eq!(scenario.capture.as_deref(), Some("c.pcapng"));
        assert_eq!(scenario.rules.len(), 2);
        assert_eq!(scenario.rules[1].fault.name(), "latency");
        // Text that does not parse stays as it was.
        assert_eq!(replayable("[[", listen, "x:1", 1), "[[");
        // A seed TOML cannot hold stays out (`--seed` carries it); listen and upstream do not.
        let saved = replayable(&format!("seed = 5\n{base}"), listen, "x:1", u64::MAX);
        let scenario = Scenario::from_toml(&saved, "saved.toml", "saved").expect("loads");
        assert_eq!(scenario.seed, None);
        assert_eq!(scenario.listen, Some(listen));
        assert_eq!(
            scenario.upstream,
            Some(parse_upstream("x:1").expect("upstream"))
        );
    }

    /// A toxic's draws (toxicity, jitter) are its own: the same toxic draws the same whether
    /// other toxics were added (and removed) before it, which moves its instance number, or it
    /// was updated. Its state key stays per instance, so a re-added toxic starts afresh.
    #[test]
    fn a_toxics_draws_do_not_depend_on_the_toxics_before_it() {
        let toxic = |body: &[u8]| Toxic::from_create(body).expect("a toxic");
        let flaky = br#"{"name":"flaky","type":"reset_peer","stream":"upstream","toxicity":0.3}"#;
        let mut proxy = ManagedProxy::new(
            "p".to_string(),
            "127.0.0.1:0".to_string(),
            "127.0.0.1:9".to_string(),
            parse_upstream("127.0.0.1:9").expect("upstream"),
            String::new(),
            11,
        );
        let mut alone = toxic(flaky);
        alone.instance = proxy.new_instance();
        let first = proxy.compose("", &[alone]).expect("composes");
        // Another toxic came and went first: this flaky is instance 2, not 1.
        let _ = proxy.new_instance();
        let mut later = toxic(flaky);
        later.instance = proxy.new_instance();
        let second = proxy.compose("", &[later]).expect("composes");
        let (a, b) = (&first.rules[0], &second.rules[0]);
        assert_ne!(a.key, b.key, "a re-added toxic is a new instance");
        assert_eq!(a.draws, b.draws, "but it draws the same");
        let picked = |rule: &crate::scenario::Rule| -> Vec<u64> {
            (1..=40)
                .filter(|&c| rule.matcher.matches_connection(c, 11, rule.draws))
                .collect()
        };
        assert_eq!(picked(a), picked(b));
        assert!(
            !picked(a).is_empty() && picked(a).len() < 40,
            "{:?}",
            picked(a)
        );
        // The scenario a capture records draws the same under `faultline run`.
        let text = compose_text("", &[toxic(flaky)]);
        let replayed = Scenario::from_toml(&text, "saved.toml", "saved").expect("loads");
        assert_eq!(replayed.rules[0].draws, a.draws);
    }

    #[test]
    fn an_address_in_use_is_reported_in_gos_words() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = taken.local_addr().expect("addr");
        let e = std::net::TcpListener::bind(addr).expect_err("in use");
        let error = listen_error(addr, &e);
        assert_eq!(error.status, 409);
        assert_eq!(
            error.message,
            format!("listen tcp {addr}: bind: address already in use")
        );
    }

    #[tokio::test]
    async fn listen_addresses_resolve_on_loopback() {
        assert_eq!(
            resolve_listen("localhost:0").await.expect("resolves").ip(),
            std::net::IpAddr::from([127, 0, 0, 1])
        );
        assert_eq!(
            resolve_listen(":8080").await.expect("loopback").to_string(),
            "127.0.0.1:8080"
        );
        assert!(resolve_listen("localhost").await.is_err());
        assert!(resolve_listen("localhost:99999").await.is_err());
    }
}
