//! Scenarios: loading, validating and matching the TOML files that say what goes wrong and when.
//!
//! A scenario is parsed and validated once, at load, with every error located at
//! `FILE:LINE:COL` and named by its key; afterwards it is immutable and shared as
//! `Arc<Scenario>` by every connection.

pub mod error;
pub mod glob;
pub mod preflight;
pub mod schema;

use std::net::SocketAddr;
use std::path::Path;

use rand::Rng;

pub use error::{Located, ScenarioError};
use glob::{Case, Glob};
use schema::{Builtin, ConnectionSet, Mode, Protocol, RuleSection, ScenarioFile, UpstreamSpec};

use crate::direction::DirectionMatch;
use crate::fault::plan::RuleId;
use crate::fault::Fault;
use crate::seed::{self, Purpose};
use crate::units::{Amount, Probability};

/// The listen address used when neither the file nor `--listen` gives one.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:3030";

/// A validated scenario.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// From the file, or the file stem.
    pub name: String,
    /// Free text for humans.
    pub description: Option<String>,
    /// Seed given by the file, if any (the run picks one when absent).
    pub seed: Option<u64>,
    /// Listen address from the file, if any.
    pub listen: Option<SocketAddr>,
    /// Upstream from the file, if any.
    pub upstream: Option<UpstreamSpec>,
    /// Capture file template from the file, if any.
    pub capture: Option<String>,
    /// How connections are read (auto-detected HTTP by default).
    pub protocol: Protocol,
    /// Reverse proxy (default) or forward HTTP proxy.
    pub mode: Mode,
    /// Folder for `builtin:store`, if given.
    pub store: Option<String>,
    /// `[proxy.tls]`, validated; `None` when absent.
    pub tls: Option<crate::tls::TlsSettings>,
    /// Rules in file order.
    pub rules: Vec<Rule>,
    /// What a rule stands for across rule book swaps, by rule key: a control-API toxic's identity,
    /// so the rule that replaces it when the toxic is updated takes over its state. Empty for
    /// scenario files (a rule whose text changed is a new rule).
    pub lineage: std::collections::HashMap<u64, u64>,
    /// The TOML text it was validated from: captures carry it (pcapng section comment), so a bug
    /// report holds the scenario itself and its replay command works without the original file.
    pub source: String,
    /// Where that text came from, as errors name it: the file as the command line gave it, or
    /// what stands for one (`proxy NAME` for `faultline serve`).
    pub origin: String,
}

/// One rule: when and what.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Human name, used in logs, the summary and capture comments.
    pub name: String,
    /// Identity of the rule in random streams and counters: a hash of its own text, `name`
    /// included (plus its rank among identical rules), so adding or moving another rule never
    /// changes this rule's draws; renaming it does, reformatting it does not.
    pub key: u64,
    /// The key of its random streams (probability draws, jitter, slicing): its [`key`](Self::key)
    /// for a scenario file's rule; for a control-API toxic, which is re-keyed per instance and
    /// update, the key of its text alone, so a toxic draws the same whatever toxics its proxy had
    /// before (a trial saw a toxic's draws move when another was added and deleted first).
    pub draws: u64,
    /// The key and name, as the marks of the faults it arms carry them.
    pub id: RuleId,
    /// When it applies.
    pub matcher: Match,
    /// Whether the file gave `direction` (HTTP rules pick a default from the other keys).
    pub explicit_direction: bool,
    /// What it does.
    pub fault: Fault,
    /// The hash of the rule's text alone, to rank identical rules.
    key_base: u64,
    /// Whether the file gave `name`.
    named: bool,
}

/// The connection-level conditions of a rule; all given keys must hold.
#[derive(Debug, Clone, Default)]
pub struct Match {
    /// 1-based ordinals; `None` means any.
    pub connections: Option<Vec<u64>>,
    /// Every nth connection.
    pub every: Option<u64>,
    /// Chance per connection.
    pub probability: Option<Probability>,
    /// Glob on the TLS server name (SNI) the client asked for.
    pub sni: Option<Glob>,
    /// Direction(s) stream faults act on.
    pub direction: DirectionMatch,
    /// HTTP conditions; `Some` makes the rule act on HTTP messages instead of whole directions.
    pub http: Option<HttpMatch>,
}

/// The HTTP conditions of a rule, checked for each request (and, with `status`, its response).
#[derive(Debug, Clone, Default)]
pub struct HttpMatch {
    /// Accepted methods (exact, case-sensitive); `None` means any.
    pub methods: Option<Vec<String>>,
    /// Glob on the path.
    pub path: Option<Glob>,
    /// Glob on the query string.
    pub query: Option<Glob>,
    /// Glob on the host.
    pub host: Option<Glob>,
    /// Header name (case-insensitive) and glob on its value.
    pub headers: Vec<(String, Glob)>,
    /// Ordinals among requests that matched the other keys, across the run.
    pub request: Option<Vec<u64>>,
    /// Attempt numbers of the same method + target.
    pub attempt: Option<Vec<u64>>,
    /// Response statuses.
    pub status: Option<Vec<u16>>,
}

/// What a request looks like to rule matching.
#[derive(Debug, Clone, Copy)]
pub struct RequestFacts<'a> {
    /// Method token.
    pub method: &'a str,
    /// Path without the query.
    pub path: &'a str,
    /// Query without `?`.
    pub query: Option<&'a str>,
    /// Host header or absolute-form authority.
    pub host: Option<&'a str>,
    /// Attempt number of this method + target in the run.
    pub attempt: u64,
}

impl HttpMatch {
    /// Whether the request-side keys hold (everything but `request`, which counts matches, and
    /// `status`, which waits for the response). `header` looks values up through `header`.
    pub fn matches_request<'h>(
        &self,
        facts: &RequestFacts<'_>,
        header: impl Fn(&str) -> Vec<&'h [u8]>,
    ) -> bool {
        if let Some(methods) = &self.methods {
            if !methods.iter().any(|m| m == facts.method) {
                return false;
            }
        }
        if let Some(glob) = &self.path {
            if !glob.matches(facts.path) {
                return false;
            }
        }
        if let Some(glob) = &self.query {
            if !glob.matches(facts.query.unwrap_or("")) {
                return false;
            }
        }
        if let Some(glob) = &self.host {
            if !facts.host.is_some_and(|h| host_matches(glob, h)) {
                return false;
            }
        }
        for (name, glob) in &self.headers {
            // A header sent on several field lines (X-Forwarded-For, Cookie) is one list
            // (RFC 9110 §5.3): the glob matches one line's value or all of them joined with ", ".
            // A trial's second `X-Multi: b` line was invisible to rules.
            let values: Vec<_> = header(name)
                .into_iter()
                .map(String::from_utf8_lossy)
                .collect();
            let joined = values.join(", ");
            let any = values.iter().any(|v| glob.matches(v)) || glob.matches(&joined);
            if values.is_empty() || !any {
                return false;
            }
        }
        if let Some(attempts) = &self.attempt {
            if !attempts.contains(&facts.attempt) {
                return false;
            }
        }
        true
    }

    /// Whether a response status satisfies `status` (always, without it).
    pub fn matches_status(&self, status: u16) -> bool {
        self.status.as_ref().is_none_or(|s| s.contains(&status))
    }
}

/// Each `[[rule]]` of `text` in one canonical spelling (keys sorted, values as toml writes them),
/// in file order; empty when the text does not parse as a table (validation reports why).
fn canonical_rules(text: &str) -> Vec<String> {
    let Ok(table) = text.parse::<toml::Table>() else {
        return Vec::new();
    };
    match table.get("rule") {
        Some(toml::Value::Array(rules)) => rules.iter().map(canonical_value).collect(),
        _ => Vec::new(),
    }
}

/// `value` written with sorted keys and no layout of its own.
fn canonical_value(value: &toml::Value) -> String {
    match value {
        toml::Value::Table(table) => {
            let mut keys: Vec<&String> = table.keys().collect();
            keys.sort();
            let fields: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{k:?}={}", canonical_value(&table[k])))
                .collect();
            format!("{{{}}}", fields.join(","))
        }
        toml::Value::Array(items) => {
            let items: Vec<String> = items.iter().map(canonical_value).collect();
            format!("[{}]", items.join(","))
        }
        other => other.to_string(),
    }
}

/// A `host` glob without a port (`"localhost"`, `"*.example"`, `"::1"`, `"[::1]"`) matches the
/// host name whatever the port, as a user writing it means; one with a port (`"localhost:*"`,
/// `"[::1]:8080"`) matches the whole `host:port`. (Host carries the port whenever it is not the
/// scheme's default, so `"localhost"` never matched a test server's `localhost:8080`.) An IPv6
/// literal is compared as an address (`"::1"` matches `[0:0:0:0:0:0:0:1]`), with or without
/// its brackets.
fn host_matches(glob: &Glob, host: &str) -> bool {
    if glob.matches(host) {
        return true;
    }
    let pattern = glob.as_str();
    let (bracketed, with_port) = match pattern.strip_prefix("\\[") {
        Some(rest) => (
            true,
            rest.split_once("\\]")
                .is_some_and(|(_, p)| p.starts_with(':')),
        ),
        // One colon separates a port; more are an IPv6 address's own.
        None => (false, pattern.matches(':').count() == 1),
    };
    if with_port {
        return false;
    }
    let Some((name, _)) = crate::http::authority::split_host_port(host, 0) else {
        return false;
    };
    if glob.matches(&name) || (bracketed && glob.matches(&format!("[{name}]"))) {
        return true;
    }
    let address = |text: &str| text.parse::<std::net::Ipv6Addr>().ok();
    let written = pattern
        .strip_prefix("\\[")
        .and_then(|rest| rest.strip_suffix("\\]"))
        .unwrap_or(pattern);
    address(written).is_some_and(|a| address(&name) == Some(a))
}

/// `"::1:18081"`: colons like an IPv6 address, but no address (a port written without the
/// brackets that would set it apart), so it can match no `Host` header. Says what to write.
fn unbracketed_ipv6_with_port(pattern: &str) -> Option<String> {
    let globbing = pattern.contains(['*', '?', '[', '{', '\\']);
    if globbing || pattern.matches(':').count() < 2 || pattern.parse::<std::net::Ipv6Addr>().is_ok()
    {
        return None;
    }
    let (address, port) = pattern.rsplit_once(':')?;
    let hint = if address.parse::<std::net::Ipv6Addr>().is_ok() && port.parse::<u16>().is_ok() {
        format!("; for that host and port write \"[{address}]:{port}\"")
    } else {
        String::new()
    };
    Some(format!(
        "{pattern:?} is no IPv6 address, so no Host header can match it{hint}"
    ))
}

/// The `host` pattern as globset reads it: the brackets of an IPv6 literal (`"[::1]"`,
/// `"[::1]:8080"`) are taken literally, not as a character class, which never matched.
fn host_pattern(pattern: &str) -> String {
    if let Some(rest) = pattern.strip_prefix('[') {
        if let Some((inside, after)) = rest.split_once(']') {
            if inside.contains(':') {
                return format!("\\[{inside}\\]{after}");
            }
        }
    }
    pattern.to_string()
}

impl Rule {
    /// Whether the scenario gave the rule a name (else it is called `rule N (FAULT)`).
    pub fn has_own_name(&self) -> bool {
        self.named
    }

    /// Whether the rule acts on HTTP messages (HTTP/1 messages, HTTP/2 streams) rather than on
    /// whole directions: a protocol session arms it.
    pub fn is_http(&self) -> bool {
        self.matcher.http.is_some() || self.fault.is_http_only() || self.fault.is_h2_only()
    }

    /// Which HTTP message(s) an HTTP rule acts on: the request (`client->upstream`, the default),
    /// the response (`upstream->client`, the default when `status` is given), or both.
    pub fn http_direction(&self, explicit: bool) -> DirectionMatch {
        if explicit {
            return self.matcher.direction;
        }
        match &self.matcher.http {
            Some(h) if h.status.is_some() => DirectionMatch::UpstreamToClient,
            _ => DirectionMatch::ClientToUpstream,
        }
    }
}

/// What connection-level keys look at: the connection's ordinal and, for TLS, the server name
/// the client asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectionFacts {
    /// 1-based ordinal among accepted connections.
    pub ordinal: u64,
    /// The ClientHello's server name (lowercase), when the connection is TLS and sent one.
    pub sni: Option<String>,
}

impl ConnectionFacts {
    /// Connection number `ordinal`, not known to be TLS.
    pub fn ordinal(ordinal: u64) -> Self {
        ConnectionFacts { ordinal, sni: None }
    }
}

impl Match {
    /// Whether the rule whose key is `rule` applies to connection number `ordinal` (1-based) in
    /// a run seeded with `seed`. Pure: the probability draw comes from the stream keyed by
    /// (seed, connection, rule), so the decision replays exactly.
    pub fn matches_connection(&self, ordinal: u64, seed: u64, rule: u64) -> bool {
        self.matches(&ConnectionFacts::ordinal(ordinal), seed, rule)
    }

    /// Like [`matches_connection`](Self::matches_connection), also checking `sni`.
    pub fn matches(&self, facts: &ConnectionFacts, seed: u64, rule: u64) -> bool {
        if let Some(glob) = &self.sni {
            if !facts.sni.as_deref().is_some_and(|sni| glob.matches(sni)) {
                return false;
            }
        }
        let ordinal = facts.ordinal;
        if let Some(set) = &self.connections {
            if !set.contains(&ordinal) {
                return false;
            }
        }
        if let Some(every) = self.every {
            if ordinal % every != 0 {
                return false;
            }
        }
        if let Some(p) = self.probability {
            let draw: f64 = seed::stream(seed, Purpose::RuleMatch, &[ordinal, rule]).gen();
            if draw >= p.value() {
                return false;
            }
        }
        true
    }
}

impl Scenario {
    /// Reads and validates a scenario file; relative `[proxy.tls]` paths (`ca_dir`,
    /// `upstream_ca`, `keylog`) become relative to the file's folder. `capture` and `store` stay
    /// relative to the working directory, like the `--capture` and `--store` flags.
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let bytes = std::fs::read(path).map_err(|source| ScenarioError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let text = String::from_utf8(bytes).map_err(|e| not_utf8(path, &e))?;
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "scenario".to_string());
        let mut scenario = Scenario::from_toml(&text, &path.display().to_string(), &stem)?;
        // Files the scenario names in [proxy.tls] sit next to it (its CA folder, its upstream's
        // CA): they are found whatever the working directory (scenarios/README.md, "Paths").
        if let (Some(tls), Some(folder)) = (scenario.tls.as_mut(), path.parent()) {
            tls.resolve_against(folder);
        }
        Ok(scenario)
    }

    /// Validates scenario text; `origin` names it in errors, `default_name` is used when the text
    /// has no `name`.
    pub fn from_toml(
        text: &str,
        origin: &str,
        default_name: &str,
    ) -> Result<Scenario, ScenarioError> {
        let invalid = |offset: usize, key: String, message: String| {
            ScenarioError::Invalid(Located::at(origin, text, offset, key, message))
        };
        let deserializer = toml::Deserializer::new(text);
        let file: ScenarioFile = serde_path_to_error::deserialize(deserializer).map_err(|e| {
            let key = key_path(e.path());
            let inner = e.into_inner();
            let offset = inner.span().map(|s| s.start).unwrap_or(0);
            // One error is one line: `FILE:LINE:COL: key: message`, whatever toml wrote.
            let message = one_line(inner.message(), text, offset);
            let key = match unknown_field(&message) {
                Some(field) if key.is_empty() => field.to_string(),
                Some(field) if !key.ends_with(field) => format!("{key}.{field}"),
                // A value toml itself refused (an integer beyond i64): name its key.
                None if key.is_empty() => full_key_of_value_at(text, offset)
                    .or_else(|| key_of_value_at(text, offset))
                    .unwrap_or_default(),
                _ => key,
            };
            let message = explain(&key, &message, text);
            invalid(offset, key, message)
        })?;

        if let Some(name) = &file.name {
            if name.get_ref().trim().is_empty() {
                // It names the capture (`cap/.pcapng`, a hidden file) and the summary.
                return Err(invalid(
                    name.span().start,
                    "name".to_string(),
                    "must not be empty; leave it out to use the file's name".to_string(),
                ));
            }
        }
        let protocol = file.proxy.protocol.unwrap_or_default();
        let tls = match &file.proxy.tls {
            Some(section) => Some(
                section
                    .validate()
                    .map_err(|e| invalid(e.span.start, e.key.to_string(), e.message.clone()))?,
            ),
            None => None,
        };
        let mut rules: Vec<Rule> = Vec::with_capacity(file.rules.len());
        // Rules with the same text seen so far, by text key: counted as they come, because a
        // scan of the earlier rules made loading quadratic (20,000 rules took 30 s).
        let mut seen: std::collections::HashMap<u64, u64> = std::collections::HashMap::new();
        let canonical = canonical_rules(text);
        for (index, section) in file.rules.into_iter().enumerate() {
            let span = section.span();
            let own_text = text.get(span.clone()).unwrap_or_default().trim();
            // A rule is identified by what it says, not how: the same rule written with inline
            // tables, dotted keys or sub-tables, with other comments or spacing (or as a capture
            // records it), draws the same.
            let identity = canonical.get(index).map_or(own_text, String::as_str);
            let base = seed::key_of(identity.as_bytes());
            let twins = {
                let count = seen.entry(base).or_default();
                *count += 1;
                *count - 1
            };
            let mut rule = rule_from(section, index, text, &invalid)?;
            rule.key_base = base;
            rule.key = seed::key_of(&[base.to_le_bytes(), twins.to_le_bytes()].concat());
            rule.draws = rule.key;
            rule.id = RuleId::new(rule.key, &rule.name);
            if matches!(rule.fault, Fault::TlsAlert(_))
                && !tls.as_ref().is_some_and(|t| t.intercept)
            {
                let offset = locate_within(text, span.start, "tls_alert").unwrap_or(span.start);
                return Err(invalid(
                    offset,
                    format!("rule[{}].fault.tls_alert", index + 1),
                    "tls_alert needs [proxy.tls] intercept = true: without interception there is no TLS session of faultline's to fail".to_string(),
                ));
            }
            if rule.is_http() && protocol == Protocol::Tcp {
                // Say which HTTP: following "needs HTTP" with protocol = "http" only moved an
                // HTTP/2 fault from this error to a warning that it never fires.
                let message = if rule.fault.is_h2_only() {
                    format!(
                        "{} acts on HTTP/2 streams, but [proxy] protocol = \"tcp\": use protocol = \"h2\" or \"auto\"",
                        rule.fault.name()
                    )
                } else {
                    "this rule needs HTTP, but [proxy] protocol = \"tcp\": use protocol = \"auto\", \"http\" or \"h2\"".to_string()
                };
                return Err(invalid(span.start, format!("rule[{}]", index + 1), message));
            }
            rules.push(rule);
        }
        Ok(Scenario {
            name: file
                .name
                .map(toml::Spanned::into_inner)
                .unwrap_or_else(|| default_name.to_string()),
            description: file.description,
            seed: file.seed,
            listen: file.proxy.listen.map(|l| l.0),
            upstream: file.proxy.upstream,
            capture: file.proxy.capture,
            protocol: file.proxy.protocol.unwrap_or_default(),
            mode: file.proxy.mode.unwrap_or_default(),
            store: file.proxy.store,
            tls,
            rules,
            lineage: std::collections::HashMap::new(),
            source: text.to_string(),
            origin: origin.to_string(),
        })
    }
}

impl Scenario {
    /// The rule keyed `key` and its place in this scenario.
    pub fn rule_by_key(&self, key: u64) -> Option<(usize, &Rule)> {
        self.rules.iter().enumerate().find(|(_, r)| r.key == key)
    }

    /// The rules whose connection-level keys (ordinal, every, seeded probability, sni) select
    /// the connection described by `facts` in a run seeded with `seed`, in rule order.
    pub fn rules_for_connection(&self, facts: &ConnectionFacts, seed: u64) -> Vec<usize> {
        self.rules
            .iter()
            .enumerate()
            .filter(|(_, rule)| rule.matcher.matches(facts, seed, rule.draws))
            .map(|(i, _)| i)
            .collect()
    }

    /// Whether a rule counts attempts (`attempt = N`): the nth time a method + target was seen
    /// in the run counts requests on every connection, also those no HTTP rule selects, so
    /// every connection is followed as HTTP (otherwise adding an unrelated rule, which makes
    /// more connections followed, would change which attempt is which).
    pub fn counts_attempts(&self) -> bool {
        self.rules
            .iter()
            .any(|r| r.matcher.http.as_ref().is_some_and(|h| h.attempt.is_some()))
    }

    /// Whether a connection's ClientHello must be read before rules decide (a rule with `sni`,
    /// or TLS interception).
    pub fn needs_client_hello(&self) -> bool {
        self.tls.as_ref().is_some_and(|t| t.intercept)
            || self.rules.iter().any(|r| r.matcher.sni.is_some())
    }

    /// The first two rules of one name, as `check` warns of them: `faultline serve` refuses
    /// them (each rule is one series in /metrics).
    pub fn rules_named_alike(&self) -> Option<String> {
        same_names(&self.rules)
            .first()
            .map(|&(earlier, n, name)| alike_message(earlier, n, name))
    }

    /// What `faultline run` will still need or what looks unintended, one sentence each: valid
    /// files `check` accepts with a warning (exit 0) instead of a bare `ok`.
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        if self.upstream.is_none() && self.mode != Mode::Forward {
            warnings.push(
                "no upstream: `run` will need [proxy] upstream = \"HOST:PORT\" (or builtin:echo, builtin:store) or --upstream HOST:PORT".to_string(),
            );
        }
        if self.rules.is_empty() {
            warnings.push("no rules: every connection will be relayed unchanged".to_string());
        }
        warnings.extend(self.ignored_settings());
        warnings.extend(self.rule_warnings());
        warnings
    }

    /// What `run` says once at start (warn level) of what `check` warns: the settings this
    /// combination ignores and the rules that never act. `upstream` is `--upstream` when given
    /// and `capture` the capture template the run uses (`--capture`, else the file's); "no
    /// upstream" and "no rules" are left to `check` (run refuses the first, and a rule-less relay
    /// is often the point).
    pub fn run_warnings(
        &self,
        upstream: Option<&UpstreamSpec>,
        capture: Option<&str>,
    ) -> Vec<String> {
        let mut effective = self.clone();
        if let Some(upstream) = upstream {
            effective.upstream = Some(upstream.clone());
        }
        let mut warnings = effective.ignored_settings();
        warnings.retain(|w| !w.starts_with("capture "));
        warnings.extend(capture.and_then(capture_placeholders));
        warnings.extend(self.rule_warnings());
        warnings
    }

    /// `[proxy]` settings this combination ignores, which a trial set expecting them to act.
    fn ignored_settings(&self) -> Vec<String> {
        let mut ignored = Vec::new();
        if self.mode == Mode::Forward {
            if matches!(
                self.upstream,
                Some(UpstreamSpec::Address { .. } | UpstreamSpec::Builtin(_))
            ) {
                ignored.push(
                    "mode = \"forward\": each request names its origin, so [proxy] upstream is ignored".to_string(),
                );
            }
            if matches!(self.protocol, Protocol::Tcp | Protocol::H2) {
                ignored.push(format!(
                    "mode = \"forward\" reads HTTP/1 requests (CONNECT tunnels pass as bytes), so protocol = \"{}\" is ignored",
                    if self.protocol == Protocol::Tcp { "tcp" } else { "h2" }
                ));
            }
        }
        if self.store.is_some()
            && !matches!(self.upstream, Some(UpstreamSpec::Builtin(Builtin::Store)))
        {
            ignored.push(
                "store is the folder of upstream = \"builtin:store\"; with another upstream it is ignored".to_string(),
            );
        }
        ignored.extend(self.capture.as_deref().and_then(capture_placeholders));
        ignored
    }

    /// The warnings of [`warnings`](Self::warnings) about rules (one never fires, a key of it
    /// is ignored): what `run` repeats at start, where the user is looking.
    pub fn rule_warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        for rule in &self.rules {
            let before = warnings.len();
            warnings.extend(self.never_acts(rule));
            warnings.extend(self.never_selected(rule));
            warnings.extend(lower_case_methods(rule));
            warnings.extend(body_fault_on_a_bodiless_request(rule));
            warnings.extend(body_fault_on_a_bodiless_response(rule));
            // Hints at how a rule counts matter only for a rule that can fire at all: one line
            // per rule that never fires, not that line and a hint.
            if warnings.len() == before {
                warnings.extend(grpc_request_counted(rule));
                warnings.extend(grpc_body_percentage(rule));
                warnings.extend(grpc_probability_per_connection(rule));
            }
        }
        warnings.extend(names_alike(&self.rules));
        warnings.extend(refused_everywhere(&self.rules));
        warnings
    }

    /// Why no connection or request can meet all of `rule`'s keys at once (cheap cases only):
    /// `check` warns as for a rule that never fires.
    fn never_selected(&self, rule: &Rule) -> Option<String> {
        let name = &rule.name;
        let m = &rule.matcher;
        if let (Some(set), Some(every)) = (&m.connections, m.every) {
            if set.iter().all(|c| c % every != 0) {
                let listed: Vec<String> = set.iter().map(u64::to_string).collect();
                return Some(format!(
                    "rule \"{name}\": no connection is both connection = {} and every = {every} (a multiple of {every}): it will never fire",
                    match listed.as_slice() {
                        [one] => one.clone(),
                        many => format!("[{}]", many.join(", ")),
                    }
                ));
            }
        }
        let methods = m.http.as_ref().and_then(|h| h.methods.as_ref());
        if self.mode == Mode::Forward
            && methods.is_some_and(|ms| !ms.is_empty() && ms.iter().all(|m| m == "CONNECT"))
        {
            // proxy/forward.rs answers the CONNECT head itself and relays the tunnel: the head
            // never reaches a protocol session, so no HTTP rule sees it.
            let inside = if self.tls.as_ref().is_some_and(|t| t.intercept) {
                "the requests inside the intercepted tunnel reach the rules with their own methods"
            } else {
                "the tunnel after it is relayed as raw bytes (TCP faults apply)"
            };
            return Some(format!(
                "rule \"{name}\": in mode = \"forward\" faultline answers a CONNECT itself, so no rule sees a CONNECT request, and {inside}: method = \"CONNECT\" never matches and it will never fire (choose tunnels with connection, every or probability and no HTTP keys)"
            ));
        }
        None
    }

    /// Why `rule` can never act (or a key of it never applies) under this scenario's protocol
    /// and mode, as one sentence: `check` warns instead of the rule silently firing 0 times.
    fn never_acts(&self, rule: &Rule) -> Option<String> {
        let fault = rule.fault.name();
        let name = &rule.name;
        let intercept = self.tls.as_ref().is_some_and(|t| t.intercept);
        if rule.fault.is_h2_only() {
            // Forward mode reads HTTP/1 from the client; HTTP/2 only reaches rules inside an
            // intercepted CONNECT tunnel (README), whatever `protocol` says.
            let reads = if self.mode == Mode::Forward && !intercept {
                Some("mode = \"forward\" reads HTTP/1 and passes CONNECT tunnels through unread: add [proxy.tls] intercept = true so the HTTP/2 inside CONNECT reaches the rules")
            } else if self.mode != Mode::Forward && self.protocol == Protocol::Http {
                Some("[proxy] protocol = \"http\" reads HTTP/1 only: use protocol = \"h2\" or \"auto\"")
            } else {
                None
            };
            if let Some(reads) = reads {
                return Some(format!(
                    "rule \"{name}\": {fault} acts on HTTP/2 streams, but {reads}; as written it will never fire"
                ));
            }
        }
        if rule.matcher.sni.is_some()
            && !intercept
            && self.mode != Mode::Forward
            && matches!(self.protocol, Protocol::H2 | Protocol::Http)
        {
            let protocol = if self.protocol == Protocol::H2 {
                "h2"
            } else {
                "http"
            };
            return Some(format!(
                "rule \"{name}\": sni matches the server name of a TLS ClientHello, but [proxy] protocol = \"{protocol}\" without [proxy.tls] intercept = true reads cleartext, which has none: it will never fire (add intercept = true, or use protocol = \"auto\" or \"tcp\" to select TLS connections passed through)"
            ));
        }
        if rule.matcher.probability.is_some_and(|p| p.value() == 0.0) {
            return Some(format!(
                "rule \"{name}\": probability = 0 selects no connection: it will never fire"
            ));
        }
        let http = rule.matcher.http.as_ref()?;
        if let Some(path) = &http.path {
            if !path.as_str().starts_with(['/', '*', '{', '[', '?']) {
                return Some(format!(
                    "rule \"{name}\": path {:?} never matches: request paths start with / (write \"/{}\")",
                    path.as_str(),
                    path.as_str()
                ));
            }
        }
        if http.status.is_some()
            && rule.explicit_direction
            && rule.matcher.direction == DirectionMatch::ClientToUpstream
        {
            return Some(format!(
                "rule \"{name}\": status is known only from the response, but direction = \"client->upstream\" acts on the request: it will never fire (use \"upstream->client\" or \"both\")"
            ));
        }
        if matches!(rule.fault, Fault::Goaway(_)) {
            return Some(format!(
                "rule \"{name}\": goaway acts on a whole HTTP/2 connection, so its HTTP keys never match and it will never fire: choose connections with connection, every or probability"
            ));
        }
        if rule.fault.is_http_only() && http.status.is_some() {
            return Some(format!(
                "rule \"{name}\": {fault} acts before any response exists, so `status` is ignored: it acts whatever the status"
            ));
        }
        None
    }
}

/// A `refuse` rule that selects every connection leaves no traffic for any other rule (a seed
/// trial's latency rule after `fault.refuse = {}` could never fire, and `check` said nothing).
fn refused_everywhere(rules: &[Rule]) -> Option<String> {
    let everywhere = rules.iter().find(|rule| {
        let m = &rule.matcher;
        matches!(rule.fault, Fault::Refuse(_))
            && m.connections.is_none()
            && m.every.is_none()
            && m.probability.is_none()
            && m.sni.is_none()
            && m.http.is_none()
    })?;
    let others: Vec<String> = rules
        .iter()
        // Other refusals act at the same moment, on the same connections.
        .filter(|rule| !matches!(rule.fault, Fault::Refuse(_)))
        .map(|rule| format!("\"{}\"", rule.name))
        .collect();
    let others = match others.as_slice() {
        [] => return None,
        [one] => format!("the other rule {one} never sees traffic"),
        many => format!(
            "the other {} rules ({}) never see traffic",
            many.len(),
            many.join(", ")
        ),
    };
    Some(format!(
        "rule \"{}\" refuses every connection, so {others} and will never fire (choose the connections to refuse with connection, every or probability)",
        everywhere.name
    ))
}

/// Every `{…}` of a capture template that is not a placeholder (they are lower case: `{TIME}`
/// is written as it is), in one sentence, or `None` when there is none.
pub fn capture_placeholders(template: &str) -> Option<String> {
    const PLACEHOLDERS: [&str; 3] = ["{name}", "{time}", "{pid}"];
    let mut unknown: Vec<&str> = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let after = &rest[open..];
        let Some(close) = after.find('}') else { break };
        let placeholder = &after[..=close];
        if !PLACEHOLDERS.contains(&placeholder) && !unknown.contains(&placeholder) {
            unknown.push(placeholder);
        }
        rest = &after[close + 1..];
    }
    if unknown.is_empty() {
        return None;
    }
    let (list, verb) = match unknown.as_slice() {
        [one] => (one.to_string(), "is not a placeholder"),
        many => (many.join(", "), "are not placeholders"),
    };
    let case = unknown
        .iter()
        .find(|u| PLACEHOLDERS.contains(&u.to_lowercase().as_str()))
        .map(|u| format!("; placeholders are lower case: write {}", u.to_lowercase()))
        .unwrap_or_default();
    Some(format!(
        "capture {template:?}: {list} {verb} ({{name}}, {{time}} or {{pid}}) and written as it is{case}"
    ))
}

/// `method = "put"` is valid (methods match exactly, and a server may define its own), but every
/// client sends standard methods in upper case, so such a rule silently fires 0 times: say so.
fn lower_case_methods(rule: &Rule) -> Option<String> {
    let methods = rule.matcher.http.as_ref()?.methods.as_ref()?;
    let lower = methods
        .iter()
        .find(|m| m.chars().any(|c| c.is_ascii_lowercase()))?;
    Some(format!(
        "rule \"{}\": method {lower:?} is matched exactly (case-sensitive), and clients send methods in upper case: write {:?} unless your client really sends {lower:?}",
        rule.name,
        lower.to_ascii_uppercase()
    ))
}

/// The `after` a body fault counts to (bytes or a percentage of the body), for faults that count.
fn counted_after(fault: &Fault) -> Option<Amount> {
    match fault {
        Fault::Reset(r) => r.after,
        Fault::Truncate(t) => Some(t.after),
        Fault::Stall(s) => s.after,
        Fault::RstStream(r) => r.after,
        _ => None,
    }
}

/// `match = { method = "GET" }` with `fault.truncate = { after = "100KiB" }` reads as "cut
/// downloads", but an HTTP rule acts on the request unless `status` or `direction` says
/// otherwise, and a GET or HEAD request has no body to count: the rule never fires. Say so.
fn body_fault_on_a_bodiless_request(rule: &Rule) -> Option<String> {
    let http = rule.matcher.http.as_ref()?;
    let methods = http.methods.as_ref()?;
    if !methods.iter().all(|m| m == "GET" || m == "HEAD") {
        return None;
    }
    if rule.http_direction(rule.explicit_direction) != DirectionMatch::ClientToUpstream {
        return None;
    }
    let after = counted_after(&rule.fault)?;
    if matches!(after, Amount::Bytes(0)) {
        return None;
    }
    Some(format!(
        "rule \"{}\": {} counts `after` in request body bytes here (an HTTP rule acts on the request unless `status` or `direction` says otherwise), and {} requests have no body: it will never fire. To act on the response add direction = \"upstream->client\" (or status = 200) to its match",
        rule.name,
        rule.fault.name(),
        methods.join("/")
    ))
}

/// A response rule that counts body bytes where the response can have none: the answer to a
/// HEAD, or a status 1xx, 204 or 304 (RFC 9110 §6.4.1). An HTTP/1 trial's truncate on HEAD
/// responses matched 4 times and fired 0, and `check` said ok.
fn body_fault_on_a_bodiless_response(rule: &Rule) -> Option<String> {
    let http = rule.matcher.http.as_ref()?;
    if rule.http_direction(rule.explicit_direction) != DirectionMatch::UpstreamToClient {
        return None;
    }
    let after = counted_after(&rule.fault)?;
    if matches!(after, Amount::Bytes(0)) {
        return None;
    }
    let why = if http
        .methods
        .as_ref()
        .is_some_and(|m| m.iter().all(|m| m == "HEAD"))
    {
        "the answer to a HEAD has no body".to_string()
    } else if let Some(statuses) = http.status.as_ref().filter(|s| {
        s.iter()
            .all(|&s| (100..200).contains(&s) || s == 204 || s == 304)
    }) {
        let listed: Vec<String> = statuses.iter().map(u16::to_string).collect();
        format!("a {} response has no body", listed.join("/"))
    } else {
        return None;
    };
    Some(format!(
        "rule \"{}\": {} counts `after` in response body bytes, and {why}: it will never fire",
        rule.name,
        rule.fault.name()
    ))
}

/// Whether a `path` glob names gRPC calls: `/package.Service/Method` (globs allowed), the shape
/// every gRPC path has.
fn grpc_path(rule: &Rule) -> Option<&str> {
    let path = rule.matcher.http.as_ref()?.path.as_ref()?.as_str();
    let mut segments = path.strip_prefix('/')?.split('/');
    let (service, _method) = (segments.next()?, segments.next()?);
    (segments.next().is_none() && service.contains('.')).then_some(path)
}

/// A trial's `match = { path = "/t.Svc/Stream" }` with `fault.rst_stream = { after = "1KiB" }`
/// fired 0 times: with no `direction` an HTTP rule counts the request's DATA, and the request of
/// a server-streaming call (a ByteStream Read) is one small message. `check` said `ok`. A
/// client-streaming call (a Write) is counted rightly, so this is a hint, not an error.
fn grpc_request_counted(rule: &Rule) -> Option<String> {
    let path = grpc_path(rule)?;
    if rule.explicit_direction || rule.matcher.http.as_ref()?.status.is_some() {
        return None;
    }
    let after = counted_after(&rule.fault)?;
    if matches!(after, Amount::Bytes(0)) {
        return None;
    }
    Some(format!(
        "rule \"{}\": {} counts `after` in the request's DATA of {path} (its match has no direction); a server-streaming call (a Read) sends one small request message, so for its responses add direction = \"upstream->client\"",
        rule.name,
        rule.fault.name()
    ))
}

/// `probability` is drawn per connection, and a gRPC channel is one connection: beside a gRPC
/// `path` it selects every call of the channel or none (a trial's `probability = 0.15` on
/// ByteStream Reads fired 0 times in 200 calls, and `check` said ok).
fn grpc_probability_per_connection(rule: &Rule) -> Option<String> {
    let path = grpc_path(rule)?;
    let p = rule.matcher.probability?;
    Some(format!(
        "rule \"{}\": probability = {} is drawn once per connection, and a gRPC channel sends every call of {path} on one connection: it selects all of them or none. To fault some calls, count them: request = N or attempt = N",
        rule.name,
        p.value()
    ))
}

/// gRPC messages carry no Content-Length, so `after = "50%"` on a gRPC call's body is never
/// known: a trial's truncate warned "has no Content-Length, rule skipped" on every stream.
fn grpc_body_percentage(rule: &Rule) -> Option<String> {
    let path = grpc_path(rule)?;
    let Some(Amount::Percent(p)) = counted_after(&rule.fault) else {
        return None;
    };
    Some(format!(
        "rule \"{}\": {} after = \"{p}%\" needs a Content-Length, which gRPC calls ({path}) never send: it will be skipped on every call; give a size (after = \"64KiB\")",
        rule.name,
        rule.fault.name()
    ))
}

fn rule_from(
    section: toml::Spanned<RuleSection>,
    index: usize,
    text: &str,
    invalid: &dyn Fn(usize, String, String) -> ScenarioError,
) -> Result<Rule, ScenarioError> {
    let number = index + 1;
    let fault_span = section.span();
    let section = section.into_inner();
    let fault = section.fault;
    let fault_key = format!("rule[{number}].fault.{}", fault.name());
    if let Err(e) = fault.validate() {
        let offset = locate_fault_key(text, fault_span.start, fault.name(), e.key);
        return Err(invalid(offset, format!("{fault_key}.{}", e.key), e.message));
    }
    let m = section.matcher;
    let explicit_direction = m.direction.is_some();
    let http = http_match(&m, number, invalid)?;
    let is_http = http.is_some() || fault.is_http_only();
    let at_fault = |message: String| {
        let offset =
            locate_within(text, fault_span.start, fault.name()).unwrap_or(fault_span.start);
        invalid(offset, fault_key.clone(), message)
    };
    if fault.uses_percentage() && !is_http {
        return Err(at_fault(
            "a percentage of the body needs an HTTP match (method, path, …) to know which body"
                .to_string(),
        ));
    }
    if is_http && fault.is_connection_wide() {
        return Err(at_fault(format!(
            "{} acts on the whole connection; it cannot be chosen by HTTP keys",
            fault.name()
        )));
    }
    if matches!(fault, Fault::Bandwidth(_)) && http.is_some() {
        return Err(at_fault(
            "bandwidth paces whole directions; remove the HTTP keys from this rule's match"
                .to_string(),
        ));
    }
    if matches!(fault, Fault::TlsAlert(_)) && http.is_some() {
        return Err(at_fault(
            "tls_alert fails a TLS leg as a whole; remove the HTTP keys from this rule's match"
                .to_string(),
        ));
    }
    if matches!(fault, Fault::Timeout(_)) && http.is_some() {
        return Err(at_fault(
            "timeout acts on whole directions; remove the HTTP keys from this rule's match"
                .to_string(),
        ));
    }
    if matches!(fault, Fault::SlowClose(_)) && http.is_some() {
        // A message's end is not a close: the FIN it delays belongs to the whole direction.
        return Err(at_fault(
            "slow_close delays the close of a whole direction; remove the HTTP keys from this rule's match"
                .to_string(),
        ));
    }
    if let Some(name) = &section.name {
        if name.chars().any(char::is_control) {
            // Names go into log lines, the summary and capture comments, one line each.
            let offset = locate_within(text, fault_span.start, "name").unwrap_or(fault_span.start);
            return Err(invalid(
                offset,
                format!("rule[{number}].name"),
                "a rule name is one line of text: no newlines, tabs or other control characters"
                    .to_string(),
            ));
        }
    }
    if let Some(direction) = &m.direction {
        if fault.is_http_only() {
            return Err(invalid(
                direction.span().start,
                format!("rule[{number}].match.direction"),
                format!(
                    "{} always acts on the request/response pair; remove `direction`",
                    fault.name()
                ),
            ));
        }
    }
    if let Some(direction) = &m.direction {
        if fault.is_connection_wide() && *direction.get_ref() != DirectionMatch::Both {
            return Err(invalid(
                direction.span().start,
                format!("rule[{number}].match.direction"),
                format!(
                    "this {} fault acts on the whole connection; remove `direction`",
                    fault.name()
                ),
            ));
        }
    }
    Ok(Rule {
        named: section.name.is_some(),
        name: section
            .name
            .unwrap_or_else(|| format!("rule {number} ({})", fault.name())),
        matcher: Match {
            connections: m.connection.map(|ConnectionSet(v)| v),
            every: m.every.map(|n| n.get()),
            probability: m.probability,
            sni: match &m.sni {
                Some(pattern) => Some(
                    Glob::new(&pattern.get_ref().to_ascii_lowercase(), Case::Insensitive).map_err(
                        |message| {
                            invalid(
                                pattern.span().start,
                                format!("rule[{number}].match.sni"),
                                message,
                            )
                        },
                    )?,
                ),
                None => None,
            },
            direction: m.direction.map(|d| d.into_inner()).unwrap_or_default(),
            http,
        },
        explicit_direction,
        fault,
        key: 0,
        draws: 0,
        key_base: 0,
        id: RuleId::new(0, ""),
    })
}

/// The HTTP half of a rule's `match`, or `None` when it has no HTTP key.
fn http_match(
    m: &schema::MatchSection,
    number: usize,
    invalid: &dyn Fn(usize, String, String) -> ScenarioError,
) -> Result<Option<HttpMatch>, ScenarioError> {
    let any = m.method.is_some()
        || m.path.is_some()
        || m.query.is_some()
        || m.host.is_some()
        || m.header.is_some()
        || m.request.is_some()
        || m.attempt.is_some()
        || m.status.is_some();
    if !any {
        return Ok(None);
    }
    let status = match &m.status {
        Some(spanned) => {
            let codes = &spanned.get_ref().0;
            if let Some(bad) = codes.iter().find(|c| !(100..=599).contains(*c)) {
                return Err(invalid(
                    spanned.span().start,
                    format!("rule[{number}].match.status"),
                    format!("{bad} is not an HTTP status (100-599)"),
                ));
            }
            Some(codes.iter().map(|&c| c as u16).collect())
        }
        None => None,
    };
    let glob = |key: &str, value: &toml::Spanned<String>, case: Case| {
        Glob::new(value.get_ref(), case).map_err(|message| {
            invalid(
                value.span().start,
                format!("rule[{number}].match.{key}"),
                message,
            )
        })
    };
    let optional = |key: &str, value: &Option<toml::Spanned<String>>, case: Case| {
        value.as_ref().map(|v| glob(key, v, case)).transpose()
    };
    let mut headers = Vec::new();
    for (schema::HeaderName(name), value) in m.header.iter().flatten() {
        let key = format!("header.{name}");
        headers.push((
            name.to_ascii_lowercase(),
            glob(&key, value, Case::Sensitive)?,
        ));
    }
    Ok(Some(HttpMatch {
        methods: m.method.as_ref().map(|l| l.0.clone()),
        path: optional("path", &m.path, Case::Sensitive)?,
        query: optional("query", &m.query, Case::Sensitive)?,
        host: m
            .host
            .as_ref()
            .map(|v| {
                let at = |message: String| {
                    invalid(
                        v.span().start,
                        format!("rule[{number}].match.host"),
                        message,
                    )
                };
                if let Some(message) = unbracketed_ipv6_with_port(v.get_ref()) {
                    return Err(at(message));
                }
                Glob::new(&host_pattern(v.get_ref()), Case::Insensitive).map_err(at)
            })
            .transpose()?,
        headers,
        request: m.request.as_ref().map(|s| s.0.clone()),
        attempt: m.attempt.as_ref().map(|s| s.0.clone()),
        status,
    }))
}

/// Formats a serde path as a dotted key with 1-based array indices (`rule[2].fault.reset.after`),
/// the way a user counts `[[rule]]` tables.
fn key_path(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => out.push_str(&format!("[{}]", index + 1)),
            Segment::Map { key } | Segment::Enum { variant: key }
                if key.starts_with("$__serde_spanned") => {}
            Segment::Map { key } | Segment::Enum { variant: key } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Segment::Unknown => {}
        }
    }
    out
}

/// The offset of the first `needle` after `start` and before the next `[[…]]` header (the
/// rule's own sub-tables, `[rule.fault.respond]`, are searched too), so a validation error of
/// a rule points at its fault rather than at its `[[rule]]` line.
fn locate_within(text: &str, start: usize, needle: &str) -> Option<usize> {
    let rest = text.get(start..)?;
    let body_start = rest.find('\n').map(|i| i + 1).unwrap_or(rest.len());
    let body = rest.get(body_start..)?;
    let end = body.find("\n[[").unwrap_or(body.len());
    body.get(..end)?
        .find(needle)
        .map(|i| start + body_start + i)
}

/// Where a parameter `key` of the rule's fault `fault` is written: the first `key` after the
/// fault's name (`fault.respond = { status = 99 }`, or `status = 99` under
/// `[rule.fault.respond]`), else the fault's name, else the rule's start.
fn locate_fault_key(text: &str, rule_start: usize, fault: &str, key: &str) -> usize {
    let Some(at_fault) = locate_within(text, rule_start, fault) else {
        return rule_start;
    };
    text.get(at_fault..)
        .and_then(|rest| {
            let end = rest.find("\n[[").unwrap_or(rest.len());
            rest.get(..end)?.find(key)
        })
        .map_or(at_fault, |i| at_fault + i)
}

/// The fault names a rule may use, for messages (a unit test keeps it equal to the schema's).
const FAULT_NAMES: &str = "reset, truncate, terminate, latency, bandwidth, stall, refuse, respond, drop_response, rst_stream, goaway, grpc_status, tls_alert, slow_close, timeout, reset_peer, slicer";

/// toml's message as one line: its lines joined with `: ` (`invalid table header: expected `.`
/// or `]]``; joined with a space they read as one run-on clause), its lists of expected tokens
/// said with "or", and words where it has none (a value missing after `=`). `offset` is where
/// it points in `text`.
fn one_line(message: &str, text: &str, offset: usize) -> String {
    let lines: Vec<String> = message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|line| match line.strip_prefix("expected ") {
            Some(list) => format!("expected {}", or_list(list)),
            None => line.to_string(),
        })
        .collect();
    if lines.is_empty() {
        let rest_of_line = text
            .get(offset..)
            .unwrap_or("")
            .lines()
            .next()
            .unwrap_or("");
        return if rest_of_line.trim().is_empty() {
            "a value is missing here (after `=`)".to_string()
        } else {
            "invalid TOML here".to_string()
        };
    }
    // `name = bad`: toml guessed a string; anything else a value can be is as likely.
    if lines.len() == 2 && lines[0] == "invalid string" && lines[1] == "expected `\"` or `'`" {
        return "invalid value: expected a string in quotes (`\"` or `'`), a number, true, false, an array `[…]` or an inline table `{…}`".to_string();
    }
    lines.join(": ")
}

/// toml's `` `a`, `b`, `c` `` (or `newline, `#``) list of alternatives as `` `a`, `b` or `c` ``;
/// any other text (a unit's own "expected a duration with a unit, like …, got …") as it is.
fn or_list(list: &str) -> String {
    let alternatives = list
        .split(", ")
        .all(|item| item.starts_with('`') || !item.contains(' '));
    match list.rsplit_once(", ") {
        Some((most, last)) if alternatives => format!("{most} or {last}"),
        _ => list.to_string(),
    }
}

/// Says what to write instead, where serde's own message only says what it wanted.
fn explain(key: &str, message: &str, text: &str) -> String {
    let is_rule_fault = key.starts_with("rule[") && key.ends_with("].fault");
    if key == "rule" && message.contains("expected a sequence") {
        return "each rule is a table in an array: write [[rule]] (double brackets), not [rule]"
            .to_string();
    }
    if is_rule_fault && message.contains("more than 1 element") {
        let names = rule_number(key)
            .and_then(|n| fault_names_of(text, n))
            .map(|names| format!(" (found {})", names.join(", ")))
            .unwrap_or_default();
        return format!(
            "a rule has exactly one fault{names}: give each fault its own [[rule]] table"
        );
    }
    if let Some(hint) = misplaced_rule_key(key, message) {
        return hint;
    }
    if let Some(hint) = known_elsewhere(key, message) {
        return hint;
    }
    if (is_rule_fault && message.contains("found 0 elements"))
        || (key.starts_with("rule[") && message == "missing field `fault`")
    {
        return format!(
            "a rule needs a fault: add fault.NAME = {{ … }} with NAME one of {FAULT_NAMES}"
        );
    }
    // `fault = "reset"`: serde reads a string as a variant without its table; `fault.refuse =
    // true` meets the fault's struct.
    if let Some((_, name)) = key.rsplit_once("].fault.") {
        let not_a_table = message.contains("unit variant")
            || (!name.contains('.') && message.contains("expected struct "));
        if key.starts_with("rule[") && not_a_table {
            return format!(
                "a fault is a table of its settings, not a single value: write fault.{name} = {{}} (or fault.{name} = {{ … }} with its keys)"
            );
        }
    }
    if message == "number too large to fit in target type" {
        // Only byte amounts take a bigger value as a string; a count or a status cannot.
        let field = key.rsplit('.').next().unwrap_or(key);
        let hint = match field {
            "seed" => " (write a smaller seed, or pass a larger one on the command line: --seed N)",
            "after" | "average_size" | "size_variation" => {
                " (write a size as a string, like \"16TiB\")"
            }
            _ => "",
        };
        return format!(
            "integer too large: TOML integers are at most {}{hint}",
            i64::MAX
        );
    }
    without_rust_types(key, message)
}

/// The keys of a rule's `match` table, for the hint when one is written on the rule itself.
const MATCH_KEYS: [&str; 13] = [
    "connection",
    "every",
    "probability",
    "sni",
    "direction",
    "method",
    "path",
    "query",
    "host",
    "header",
    "request",
    "attempt",
    "status",
];

/// `probability = 0.1` or `reset = {}` written on a rule, beside `match` and `fault` rather than
/// inside them: says which table the key belongs in (serde only lists `name`, `match`, `fault`).
fn misplaced_rule_key(key: &str, message: &str) -> Option<String> {
    let (_, field) = key.strip_prefix("rule[")?.split_once("].")?;
    if field.contains('.') || !message.starts_with("unknown field") {
        return None;
    }
    if MATCH_KEYS.contains(&field) {
        return Some(format!(
            "`{field}` belongs in the rule's match table: write match = {{ {field} = … }}"
        ));
    }
    if FAULT_NAMES.split(", ").any(|name| name == field) {
        return Some(format!(
            "`{field}` is a fault: write fault.{field} = {{ … }}"
        ));
    }
    None
}

/// An unknown key that is a known key in the wrong table, or Toxiproxy's word for one of ours:
/// says where it goes (a trial's `seed = 7` at the end of the file met only "expected one of
/// `name`, `match`, `fault`").
fn known_elsewhere(key: &str, message: &str) -> Option<String> {
    if !message.starts_with("unknown field") {
        return None;
    }
    let (table, field) = key.rsplit_once('.').unwrap_or(("", key));
    let hint = match field {
        "seed" if !table.is_empty() => format!(
            "`{field}` is a top-level key: write {field} = … at the top of the file, before [proxy] and the first [[rule]] (a key after a [table] header belongs to that table)"
        ),
        "name" | "description" if table.starts_with("proxy") => format!(
            "`{field}` is a top-level key: write {field} = … at the top of the file, before [proxy] and the first [[rule]] (a key after a [table] header belongs to that table)"
        ),
        "toxicity" | "probability" if !table.ends_with(".match") => {
            "the share of connections a rule acts on is `probability` in the rule's match table (Toxiproxy's `toxicity`): write match = { probability = 0.5 }".to_string()
        }
        "toxicity" => "Toxiproxy's `toxicity` is `probability` here: write match = { probability = 0.5 }".to_string(),
        "latency" if table.ends_with(".fault.latency") => {
            "the delay is `delay` here (Toxiproxy's `latency`): write fault.latency = { delay = \"100ms\", jitter = \"10ms\" }".to_string()
        }
        "stream" if table.starts_with("rule[") => {
            "Toxiproxy's `stream` is the match key `direction` here: write match = { direction = \"client->upstream\" } (upstream) or \"upstream->client\" (downstream)".to_string()
        }
        _ => return None,
    };
    Some(hint)
}

/// `message` with the Rust type names serde puts in it said in the scenario's terms
/// ("expected struct MatchSection", "expected a nonzero u64" meant nothing to a trial's user).
fn without_rust_types(key: &str, message: &str) -> String {
    let mut out = message
        .replace(
            "expected a nonzero u64",
            "expected a whole number of 1 or more",
        )
        .replace(
            "expected u64",
            "expected a whole number (0 or more, no quotes)",
        )
        .replace(
            "expected u32",
            "expected a whole number (0 or more, no quotes)",
        )
        .replace(
            "expected u16",
            "expected a whole number (0 or more, no quotes)",
        )
        .replace("expected f64", "expected a number (no quotes)")
        .replace("expected f32", "expected a number (no quotes)");
    if let Some(at) = out.find("expected struct ") {
        let name_end = out[at + "expected struct ".len()..]
            .find(|c: char| !c.is_ascii_alphanumeric())
            .map_or(out.len(), |n| at + "expected struct ".len() + n);
        let table = match key.rsplit('.').next().unwrap_or(key) {
            "match" => "expected a table, such as match = { method = \"PUT\" }",
            _ => "expected a table ({ … })",
        };
        out.replace_range(at..name_end, table);
    }
    out
}

/// A file that is not UTF-8, located at its first invalid byte (std's message, "stream did not
/// contain valid UTF-8", said neither where nor which byte).
fn not_utf8(path: &Path, error: &std::string::FromUtf8Error) -> ScenarioError {
    let bytes = error.as_bytes();
    let at = error.utf8_error().valid_up_to();
    let valid = std::str::from_utf8(&bytes[..at]).unwrap_or_default();
    ScenarioError::Invalid(Located::at(
        &path.display().to_string(),
        valid,
        at,
        String::new(),
        format!(
            "byte 0x{:02X} is not valid UTF-8: a scenario file is UTF-8 text",
            bytes.get(at).copied().unwrap_or(0)
        ),
    ))
}

/// The full dotted key (`rule[1].fault.reset.after`) of the value toml refused at byte
/// `offset`, found by putting a marker string of the same length in its place and reading the
/// file again; `None` when that still does not parse (another error follows), and the caller
/// falls back to the key written just before the value.
fn full_key_of_value_at(text: &str, offset: usize) -> Option<String> {
    let rest = text.get(offset..)?;
    let length = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '+' | '-' | '.')))
        .unwrap_or(rest.len());
    let marker = format!("\"{}\"", "~".repeat(length.checked_sub(2)?));
    let patched = format!("{}{marker}{}", &text[..offset], &rest[length..]);
    let table: toml::Table = patched.parse().ok()?;
    fn find(value: &toml::Value, marker: &str, path: &mut Vec<String>) -> bool {
        match value {
            toml::Value::String(s) => s == marker,
            toml::Value::Table(table) => table.iter().any(|(key, value)| {
                path.push(format!(".{key}"));
                let found = find(value, marker, path);
                if !found {
                    path.pop();
                }
                found
            }),
            toml::Value::Array(items) => items.iter().enumerate().any(|(i, value)| {
                path.push(format!("[{}]", i + 1));
                let found = find(value, marker, path);
                if !found {
                    path.pop();
                }
                found
            }),
            _ => false,
        }
    }
    let mut path = Vec::new();
    let marker = &marker[1..marker.len() - 1];
    find(&toml::Value::Table(table), marker, &mut path).then(|| {
        let joined = path.concat();
        joined.trim_start_matches('.').to_string()
    })
}

/// The key written just before the value at byte `offset` (`after = 1…` gives `after`), for
/// errors toml reports without a key path (it stops before serde sees the value).
fn key_of_value_at(text: &str, offset: usize) -> Option<String> {
    let before = text.get(..offset)?;
    let before = before.trim_end().strip_suffix('=')?.trim_end();
    let start = before
        .char_indices()
        .rev()
        .find(|&(_, c)| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '"')))
        .map(|(i, c)| i + c.len_utf8())
        .unwrap_or(0);
    let key = before[start..].trim_matches('"');
    (!key.is_empty()).then(|| key.to_string())
}

/// The 1-based rule number in a key like `rule[2].fault`.
fn rule_number(key: &str) -> Option<usize> {
    key.strip_prefix("rule[")?.split(']').next()?.parse().ok()
}

/// The `fault.NAME` keys of rule number `n` (1-based), read loosely from the text.
fn fault_names_of(text: &str, n: usize) -> Option<Vec<String>> {
    let table: toml::Table = toml::from_str(text).ok()?;
    let rule = table.get("rule")?.as_array()?.get(n.checked_sub(1)?)?;
    let faults = rule.get("fault")?.as_table()?;
    Some(faults.keys().map(|k| format!("fault.{k}")).collect())
}

/// The field named by serde's "unknown field `x`, expected …" message.
fn unknown_field(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("unknown field `")?;
    rest.split('`').next()
}

/// Rules logs, summaries and capture notes could not tell apart: one named with nothing, or two
/// with one name (see [`Scenario::rules_named_alike`]).
fn names_alike(rules: &[Rule]) -> Vec<String> {
    // In rule order: each warning at the rule it is about.
    let mut found: Vec<(usize, String)> = rules
        .iter()
        .enumerate()
        .filter(|(_, rule)| rule.name.trim().is_empty())
        .map(|(i, _)| (i + 1, format!(
            "rule {} has an empty name: logs, the summary and capture notes would show nothing for it; give it a name or leave name out",
            i + 1
        )))
        .collect();
    found.extend(
        same_names(rules)
            .into_iter()
            .map(|(earlier, n, name)| (n, alike_message(earlier, n, name))),
    );
    found.sort_by_key(|(n, _)| *n);
    found.into_iter().map(|(_, warning)| warning).collect()
}

/// The warning for rules `earlier` and `n` (1-based) both named `name`.
fn alike_message(earlier: usize, n: usize, name: &str) -> String {
    format!(
        "rules {earlier} and {n} are both named \"{name}\": logs, the summary and capture notes name rules by name, so they could not be told apart; give each its own"
    )
}

/// Each later rule named like an earlier one, as (earlier, later, name), 1-based; empty names
/// are not counted here.
fn same_names(rules: &[Rule]) -> Vec<(usize, usize, &str)> {
    let mut first: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    let mut alike = Vec::new();
    for (i, rule) in rules.iter().enumerate() {
        if rule.name.trim().is_empty() {
            continue;
        }
        match first.get(rule.name.as_str()) {
            Some(&earlier) => alike.push((earlier, i + 1, rule.name.as_str())),
            None => {
                first.insert(&rule.name, i + 1);
            }
        }
    }
    alike
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `check` warns about rules `text` (an upstream is given).
    fn warnings(text: &str) -> Vec<String> {
        Scenario::from_toml(
            &format!("[proxy]\nupstream = \"127.0.0.1:9\"\n{text}"),
            "w.toml",
            "w",
        )
        .expect("valid")
        .warnings()
    }

    fn error_of(text: &str) -> Located {
        match Scenario::from_toml(text, "s.toml", "s") {
            Err(ScenarioError::Invalid(located)) => located,
            other => panic!("expected an invalid scenario, got {other:?}"),
        }
    }

    /// A trial's `[[rule` said "invalid table header expected `.`, `]]`": toml's two lines
    /// run together. They are joined as a clause and its detail, alternatives with "or".
    #[test]
    fn toml_syntax_errors_read_as_one_sentence() {
        let message = |text: &str| error_of(text).to_string();
        assert_eq!(
            message("seed = 1\n[[rule"),
            "s.toml:2:7: invalid table header: expected `.` or `]]`"
        );
        assert_eq!(
            message("a = \"\\q\""),
            "s.toml:1:8: invalid escape sequence: expected `b`, `f`, `n`, `r`, `t`, `u`, `U`, `\\` or `\"`"
        );
        assert_eq!(
            message("seed = 1 2"),
            "s.toml:1:10: expected newline or `#`"
        );
        assert_eq!(
            message("[proxy]\n[proxy]"),
            "s.toml:2:1: invalid table header: duplicate key `proxy` in document root"
        );
        // toml says nothing at all of a missing value, and "invalid string" of a bare word.
        assert_eq!(
            message("seed = "),
            "s.toml:1:8: seed: a value is missing here (after `=`)"
        );
        assert!(
            message("[[rule]]\nname = bad\n").ends_with(
                "rule[1].name: invalid value: expected a string in quotes (`\"` or `'`), a number, true, false, an array `[…]` or an inline table `{…}`"
            ),
            "{}",
            message("[[rule]]\nname = bad\n")
        );
    }

    /// A gRPC rule counting a server-streaming call's request, or a percentage of a body gRPC
    /// never states the length of, fires 0 times: `check` hints at it; a Write counted on its
    /// request, a direction given, or a non-gRPC path say nothing.
    #[test]
    fn grpc_rules_that_count_the_wrong_body_are_hinted() {
        let counted = warnings(
            "[[rule]]\nmatch = { path = \"/t.Svc/Stream\" }\nfault.rst_stream = { after = \"1KiB\" }\n",
        );
        assert_eq!(counted.len(), 1, "{counted:?}");
        assert!(
            counted[0].contains("counts `after` in the request's DATA of /t.Svc/Stream")
                && counted[0].ends_with("add direction = \"upstream->client\""),
            "{counted:?}"
        );
        let percent = warnings(
            "[[rule]]\nmatch = { path = \"/t.Svc/*\", direction = \"upstream->client\" }\nfault.truncate = { after = \"50%\" }\n",
        );
        assert_eq!(percent.len(), 1, "{percent:?}");
        assert!(
            percent[0].contains("needs a Content-Length, which gRPC calls (/t.Svc/*) never send"),
            "{percent:?}"
        );
        for quiet in [
            "[[rule]]\nmatch = { path = \"/g.b.ByteStream/Write\", direction = \"client->upstream\" }\nfault.rst_stream = { after = \"1MiB\" }\n",
            "[[rule]]\nmatch = { path = \"/upload/x\" }\nfault.truncate = { after = \"1KiB\" }\n",
            "[[rule]]\nmatch = { path = \"/t.Svc/Stream\", status = 200 }\nfault.truncate = { after = \"1KiB\" }\n",
        ] {
            assert!(warnings(quiet).is_empty(), "{quiet}: {:?}", warnings(quiet));
        }
    }

    /// A trial met Rust's type names in errors: "expected struct Refuse", "expected struct
    /// MatchSection", "expected a nonzero u64", "expected u64". They are said in the file's terms.
    #[test]
    fn errors_say_no_rust_type_names() {
        for (text, says) in [
            (
                "[[rule]]\nfault.refuse = true\n",
                "a fault is a table of its settings, not a single value: write fault.refuse = {}",
            ),
            (
                "[[rule]]\nmatch = \"PUT\"\nfault.reset = {}\n",
                "expected a table, such as match = { method = \"PUT\" }",
            ),
            (
                "[[rule]]\nmatch = { every = 0 }\nfault.reset = {}\n",
                "expected a whole number of 1 or more",
            ),
            (
                "seed = \"7\"\n",
                "expected a whole number (0 or more, no quotes)",
            ),
        ] {
            let error = error_of(text).to_string();
            assert!(error.contains(says), "{text:?}: {error}");
            for rust in ["struct", "u64", "u32", "f64"] {
                assert!(!error.contains(rust), "{text:?}: {error}");
            }
        }
    }

    #[test]
    fn a_full_scenario_loads() {
        let s = Scenario::from_toml(
            r#"
name = "x"
seed = 7
[proxy]
listen = "127.0.0.1:0"
upstream = "builtin:echo"
[[rule]]
name = "second dies"
match = { connection = 2, direction = "client->upstream" }
fault.reset = { after = "64KiB" }
[[rule]]
match = { every = 3, probability = 0.5 }
fault.latency = { delay = "10ms", jitter = "5ms" }
[[rule]]
fault.refuse = {}
"#,
            "s.toml",
            "s",
        )
        .expect("valid");
        assert_eq!(s.name, "x");
        assert_eq!(s.rules.len(), 3);
        assert_eq!(s.rules[1].name, "rule 2 (latency)");
        assert_eq!(s.rules[0].matcher.connections, Some(vec![2]));
    }

    #[test]
    fn unknown_keys_are_located_and_named() {
        let e = error_of("[[rule]]\nmatch = { conection = 2 }\nfault.refuse = {}\n");
        assert_eq!((e.line, e.key.as_str()), (2, "rule[1].match.conection"));
        assert!(e.message.contains("unknown field"), "{}", e.message);
    }

    /// A new user wrote `probability = 0.1` and `reset = {}` on the rule itself and was told
    /// only that `name`, `match` and `fault` are expected.
    #[test]
    fn a_match_key_or_fault_written_on_the_rule_says_where_it_belongs() {
        let e = error_of("[[rule]]\nprobability = 0.1\nfault.reset = {}\n");
        assert_eq!((e.line, e.key.as_str()), (2, "rule[1].probability"));
        assert!(
            e.message.contains("write match = { probability = … }"),
            "{}",
            e.message
        );
        let e = error_of("[[rule]]\nreset = {}\n");
        assert!(e.message.contains("write fault.reset = {"), "{}", e.message);
        let e = error_of("[[rule]]\nnmae = \"x\"\nfault.reset = {}\n");
        assert!(e.message.contains("unknown field `nmae`"), "{}", e.message);
    }

    #[test]
    fn a_body_fault_on_a_response_that_has_no_body_is_warned_about() {
        let warnings = |rule: &str| {
            Scenario::from_toml(&format!("[[rule]]\nname = \"r\"\n{rule}"), "b.toml", "b")
                .expect("valid")
                .rule_warnings()
        };
        let head = warnings("match = { method = \"HEAD\", direction = \"upstream->client\" }\nfault.truncate = { after = 10 }\n");
        assert!(
            head.iter()
                .any(|w| w.contains("the answer to a HEAD has no body: it will never fire")),
            "{head:?}"
        );
        let empty = warnings("match = { status = [204, 304] }\nfault.truncate = { after = 10 }\n");
        assert!(
            empty
                .iter()
                .any(|w| w.contains("a 204/304 response has no body")),
            "{empty:?}"
        );
        let ok = warnings("match = { method = \"GET\", direction = \"upstream->client\" }\nfault.truncate = { after = 10 }\n");
        assert!(!ok.iter().any(|w| w.contains("has no body")), "{ok:?}");
    }

    #[test]
    fn probability_beside_a_grpc_path_is_said_to_act_per_channel() {
        let warnings = Scenario::from_toml(
            "[[rule]]\nname = \"some\"\nmatch = { path = \"/google.bytestream.ByteStream/Read\", probability = 0.15, direction = \"upstream->client\" }\nfault.rst_stream = { after = \"1KiB\" }\n",
            "g.toml",
            "g",
        )
        .expect("valid")
        .rule_warnings();
        assert!(
            warnings
                .iter()
                .any(|w| w
                    .starts_with("rule \"some\": probability = 0.15 is drawn once per connection")),
            "{warnings:?}"
        );
    }

    #[test]
    fn a_refusal_of_every_connection_warns_that_the_other_rules_never_fire() {
        let warnings = |rules: &str| {
            Scenario::from_toml(rules, "r.toml", "r")
                .expect("valid")
                .rule_warnings()
        };
        let all = warnings("[[rule]]\nname = \"no\"\nfault.refuse = {}\n[[rule]]\nname = \"slow\"\nfault.latency = { delay = \"1s\" }\n");
        assert!(
            all.iter().any(|w| w.starts_with("rule \"no\" refuses every connection, so the other rule \"slow\" never sees traffic")),
            "{all:?}"
        );
        let some = warnings("[[rule]]\nname = \"no\"\nmatch = { every = 2 }\nfault.refuse = {}\n[[rule]]\nname = \"slow\"\nfault.latency = { delay = \"1s\" }\n");
        assert!(
            !some.iter().any(|w| w.contains("refuses every")),
            "{some:?}"
        );
        let alone = warnings("[[rule]]\nfault.refuse = {}\n");
        assert!(
            !alone.iter().any(|w| w.contains("refuses every")),
            "{alone:?}"
        );
    }

    /// A seed-trial's `seed = 7` after `[proxy]` or at the end of the file, and Toxiproxy's words
    /// (`toxicity`, `latency`, `stream`), were met by a list of the keys the table takes.
    #[test]
    fn a_known_key_in_the_wrong_place_or_toxiproxys_word_says_what_to_write() {
        let says = |text: &str, key: &str, hint: &str| {
            let e = error_of(text);
            assert_eq!(e.key, key, "{}", e.message);
            assert!(e.message.contains(hint), "{}", e.message);
        };
        let top = "`seed` is a top-level key: write seed = … at the top of the file";
        says("[proxy]\nseed = 7\n", "proxy.seed", top);
        says(
            "[[rule]]\nfault.reset = {}\nseed = 7\n",
            "rule[1].seed",
            top,
        );
        says(
            "[proxy]\nname = \"x\"\n",
            "proxy.name",
            "`name` is a top-level key",
        );
        says(
            "[[rule]]\nmatch = { toxicity = 0.5 }\nfault.reset = {}\n",
            "rule[1].match.toxicity",
            "write match = { probability = 0.5 }",
        );
        says(
            "[[rule]]\nfault.latency = { delay = \"1s\", probability = 0.5 }\n",
            "rule[1].fault.latency.probability",
            "write match = { probability = 0.5 }",
        );
        says(
            "[[rule]]\nfault.latency = { latency = \"1s\" }\n",
            "rule[1].fault.latency.latency",
            "write fault.latency = { delay = ",
        );
        says(
            "[[rule]]\nstream = \"upstream\"\nfault.reset = {}\n",
            "rule[1].stream",
            "match = { direction = \"client->upstream\" }",
        );
        // A bare number for a duration names the unit it lacks; a negative amount says so.
        says(
            "[[rule]]\nfault.latency = { delay = 100 }\n",
            "rule[1].fault.latency.delay",
            "expected a duration with a unit, like \"250ms\", got the bare number 100: give it a unit in quotes, like \"100ms\"",
        );
        says(
            "[[rule]]\nfault.reset = { after = -5 }\n",
            "rule[1].fault.reset.after",
            "got the negative number -5: an amount cannot be below 0",
        );
    }

    /// A trial's `[rule.fault.respond]` with `status = 99` was located at `[[rule]]`, five lines
    /// above the key.
    #[test]
    fn a_fault_parameter_error_points_at_the_parameter_in_either_spelling() {
        let e = error_of("[[rule]]\n[rule.match]\nmethod = \"GET\"\n[rule.fault.respond]\nbody = \"x\"\nstatus = 99\n");
        assert_eq!(
            (e.key.as_str(), e.line, e.column),
            ("rule[1].fault.respond.status", 6, 1)
        );
        let e = error_of("[[rule]]\nfault.respond = { status = 99 }\n");
        assert_eq!((e.line, e.column), (2, 19));
    }

    #[test]
    fn settings_a_combination_ignores_are_warned_about() {
        let text = |proxy: &str| {
            Scenario::from_toml(&format!("[proxy]\n{proxy}\n"), "i.toml", "i")
                .expect("valid")
                .warnings()
        };
        for (proxy, says) in [
            (
                "mode = \"forward\"\nupstream = \"127.0.0.1:9\"",
                "upstream is ignored",
            ),
            (
                "mode = \"forward\"\nprotocol = \"tcp\"",
                "protocol = \"tcp\" is ignored",
            ),
            (
                "upstream = \"127.0.0.1:9\"\nstore = \"s\"",
                "store is the folder",
            ),
            (
                "upstream = \"builtin:echo\"\ncapture = \"caps/{nmae}-{time}.pcapng\"",
                "{nmae} is not a placeholder",
            ),
        ] {
            let found = text(proxy);
            assert!(found.iter().any(|w| w.contains(says)), "{proxy}: {found:?}");
        }
        // Every unknown placeholder is named, not only the first; case matters.
        let both = text("upstream = \"builtin:echo\"\ncapture = \"{nmae}-{TIME}.pcapng\"");
        assert!(
            both.iter()
                .any(|w| w.contains("{nmae}, {TIME} are not placeholders")
                    && w.contains("write {time}")),
            "{both:?}"
        );
        let upper = text("upstream = \"builtin:echo\"\ncapture = \"{name}-{TIME}.pcapng\"");
        assert!(
            upper
                .iter()
                .any(|w| w.contains("{TIME} is not a placeholder")),
            "{upper:?}"
        );
        let fine = text(
            "upstream = \"builtin:store\"\nstore = \"s\"\ncapture = \"{name}-{time}-{pid}.pcapng\"",
        );
        assert!(fine.iter().all(|w| w.starts_with("no rules")), "{fine:?}");
    }

    /// `run` says the settings warnings of what it really runs: `--upstream builtin:store` makes
    /// the file's `store` used, and `--capture` replaces the file's template.
    #[test]
    fn run_warns_of_the_settings_it_runs_with() {
        let s = Scenario::from_toml(
            "[proxy]\nupstream = \"127.0.0.1:9\"\nstore = \"s\"\ncapture = \"{TIME}.pcapng\"\n",
            "r.toml",
            "r",
        )
        .expect("valid");
        let from_file = s.run_warnings(None, s.capture.as_deref());
        assert_eq!(from_file.len(), 2, "{from_file:?}");
        let store = UpstreamSpec::Builtin(Builtin::Store);
        let flagged = s.run_warnings(Some(&store), Some("{name}-{Pid}.pcap"));
        assert_eq!(flagged.len(), 1, "{flagged:?}");
        assert!(
            flagged[0].contains("{Pid} is not a placeholder"),
            "{flagged:?}"
        );
        assert!(s.run_warnings(Some(&store), None).is_empty());
    }

    /// A trial's coin rule drew differently written three ways; a rule is its meaning.
    #[test]
    fn a_rules_key_does_not_depend_on_how_it_is_written() {
        let key = |text: &str| {
            Scenario::from_toml(text, "k.toml", "k")
                .expect("valid")
                .rules[0]
                .key
        };
        let plain =
            key("[[rule]]\nmatch = { probability = 0.5 }\nfault.truncate = { after = 5 }\n");
        for spelling in [
            "[[rule]]\nmatch.probability = 0.50\nfault.truncate = { after = 5 }\n",
            "[[rule]]\nmatch = { probability = 0.5 } # coin\nfault.truncate = { after = 5 }\n",
            "[[rule]]\n[rule.match]\nprobability = 0.5\n[rule.fault.truncate]\nafter = 5\n",
        ] {
            assert_eq!(key(spelling), plain, "{spelling}");
        }
        assert_ne!(
            key("[[rule]]\nmatch = { probability = 0.5 }\nfault.truncate = { after = 6 }\n"),
            plain
        );
    }

    /// Found by a trial: `check` accepted both, and the first did nothing at run time, the
    /// second broke the summary and the inspect table into two lines.
    #[test]
    fn a_slow_close_chosen_by_http_keys_and_a_multi_line_name_are_refused() {
        let e = error_of(
            "[[rule]]\nmatch = { method = \"GET\" }\nfault.slow_close = { delay = \"2s\" }\n",
        );
        assert_eq!(e.key, "rule[1].fault.slow_close");
        assert!(e.message.contains("whole direction"), "{}", e.message);
        let e = error_of("[[rule]]\nname = \"two\\nlines\"\nfault.refuse = {}\n");
        assert_eq!((e.line, e.key.as_str()), (2, "rule[1].name"));
    }

    /// Rules a trial wrote that never act, which `check` passed in silence.
    #[test]
    fn rules_that_can_never_act_are_warned_about() {
        let cases = [
            (
                "match = { probability = 0.0 }\nfault.refuse = {}",
                "probability = 0",
            ),
            (
                "match = { path = \"files/p1\" }\nfault.respond = { status = 503 }",
                "start with /",
            ),
            (
                "match = { status = 201, direction = \"client->upstream\" }\nfault.truncate = { after = 1 }",
                "never fire",
            ),
        ];
        for (rule, says) in cases {
            let found = warnings(&format!("[[rule]]\n{rule}\n"));
            assert!(found.iter().any(|w| w.contains(says)), "{rule}: {found:?}");
        }
        let quiet =
            warnings("[[rule]]\nmatch = { path = \"/**/x\" }\nfault.respond = { status = 503 }\n");
        assert!(quiet.is_empty(), "{quiet:?}");
    }

    /// A trial's rules that never act and passed `check` in silence: a CONNECT in forward mode
    /// (faultline answers it; no HTTP rule sees it) and `connection = 2, every = 3`.
    #[test]
    fn rules_no_connection_or_request_can_meet_are_warned_about() {
        let connect = "[[rule]]\nname = \"c\"\nmatch = { method = \"CONNECT\" }\nfault.respond = { status = 500 }\n";
        let forward = warnings(&format!("mode = \"forward\"\n{connect}"));
        let said: Vec<&String> = forward.iter().filter(|w| w.starts_with("rule ")).collect();
        assert_eq!(said.len(), 1, "{forward:?}");
        assert!(
            said[0].starts_with(
                "rule \"c\": in mode = \"forward\" faultline answers a CONNECT itself"
            ) && said[0].contains("raw bytes")
                && said[0].contains("never fire"),
            "{said:?}"
        );
        let intercepted = warnings(&format!(
            "mode = \"forward\"\n[proxy.tls]\nintercept = true\n{connect}"
        ));
        assert!(
            intercepted
                .iter()
                .any(|w| w.contains("inside the intercepted tunnel")),
            "{intercepted:?}"
        );
        // In reverse mode a CONNECT is a request like another, passed to the upstream.
        assert!(warnings(connect).is_empty(), "{:?}", warnings(connect));
        assert!(warnings(
            "mode = \"forward\"\n[[rule]]\nmatch = { method = [\"CONNECT\", \"PUT\"] }\nfault.respond = { status = 500 }\n"
        )
        .iter()
        .all(|w| !w.starts_with("rule ")));

        let never = warnings(
            "[[rule]]\nname = \"n\"\nmatch = { connection = 2, every = 3 }\nfault.refuse = {}\n",
        );
        assert_eq!(never.len(), 1, "{never:?}");
        assert!(
            never[0].starts_with("rule \"n\": no connection is both connection = 2 and every = 3"),
            "{never:?}"
        );
        let list =
            warnings("[[rule]]\nmatch = { connection = [2, 4], every = 3 }\nfault.refuse = {}\n");
        assert!(list[0].contains("connection = [2, 4]"), "{list:?}");
        for fine in [
            "connection = [2, 6], every = 3",
            "connection = 3, every = 3",
            "every = 1, connection = 5",
        ] {
            let text = format!("[[rule]]\nmatch = {{ {fine} }}\nfault.refuse = {{}}\n");
            assert!(warnings(&text).is_empty(), "{text}: {:?}", warnings(&text));
        }
    }

    /// RFC 9110 §15.3.6: a 205 has no content, like 204 and 304.
    #[test]
    fn a_205_answer_with_a_body_is_refused() {
        let e = error_of("[[rule]]\nmatch = { method = \"PUT\" }\nfault.respond = { status = 205, body = \"x\" }\n");
        assert_eq!((e.key.as_str(), e.line), ("rule[1].fault.respond.body", 3));
        assert!(
            e.message.contains("a 205 answer has no body"),
            "{}",
            e.message
        );
    }

    #[test]
    fn a_host_without_a_port_matches_whatever_the_port() {
        let glob = |p: &str| Glob::new(p, Case::Insensitive).expect("glob");
        assert!(host_matches(&glob("localhost"), "localhost:8080"));
        assert!(host_matches(&glob("localhost"), "LOCALHOST"));
        assert!(host_matches(&glob("*.example"), "a.example:443"));
        assert!(!host_matches(&glob("localhost:*"), "other:80"));
        assert!(host_matches(&glob("localhost:80*"), "localhost:8080"));
        assert!(!host_matches(&glob("localhost:9"), "localhost:8080"));
        assert!(!host_matches(&glob("other"), "localhost:8080"));
    }

    /// A trial's forward-mode `curl -x … 'http://[::1]:18081/5'`: `host = "::1"`, `"[::1]"` and
    /// `"[::1]:18081"` never matched (the brackets were read as a glob class, and `"::1"` has a
    /// `:` so it was taken for `host:port`); only `"\\[::1\\]:18081"` did.
    #[test]
    fn ipv6_literals_match_as_written() {
        let host_of = |pattern: &str| {
            let text = format!(
                "[[rule]]\nmatch = {{ host = {pattern:?} }}\nfault.respond = {{ status = 500 }}\n"
            );
            let s = Scenario::from_toml(&text, "h.toml", "h").expect("valid");
            s.rules[0]
                .matcher
                .http
                .clone()
                .expect("http")
                .host
                .expect("host")
        };
        for (pattern, host, expected) in [
            ("::1", "[::1]:18081", true),
            ("::1", "[::1]", true),
            ("[::1]", "[::1]:18081", true),
            ("[::1]", "[::1]", true),
            ("[::1]:18081", "[::1]:18081", true),
            ("[::1]:18082", "[::1]:18081", false),
            ("[::1]:*", "[::1]:18081", true),
            ("\\[::1\\]:18081", "[::1]:18081", true),
            ("*:18081", "[::1]:18081", true),
            ("::1", "[0:0:0:0:0:0:0:1]:80", true),
            ("[::1]", "[::2]:18081", false),
            ("::2", "[::1]:18081", false),
            ("[FE80::1]", "[fe80::1]:8080", true),
            ("fe80::*", "[fe80::1]:8080", true),
            ("::1", "localhost:18081", false),
            ("[ab]", "a", true),
        ] {
            assert_eq!(
                host_matches(&host_of(pattern), host),
                expected,
                "{pattern} against {host}"
            );
        }
        // A trial wrote the port without brackets: no Host header can match it, so say how.
        let e = error_of(
            "[[rule]]\nmatch = { host = \"::1:18081\" }\nfault.respond = { status = 500 }\n",
        );
        assert_eq!((e.key.as_str(), e.line), ("rule[1].match.host", 2));
        assert!(e.message.contains("write \"[::1]:18081\""), "{}", e.message);
        let e =
            error_of("[[rule]]\nmatch = { host = \"a:b:c\" }\nfault.respond = { status = 500 }\n");
        assert!(e.message.contains("is no IPv6 address"), "{}", e.message);
    }

    #[test]
    fn bad_units_point_at_the_value() {
        let e = error_of("[[rule]]\nfault.reset = { after = \"64 parsecs\" }\n");
        assert_eq!(e.key, "rule[1].fault.reset.after");
        assert_eq!((e.line, e.column), (2, 25));
    }

    /// `store = ""` made builtin:store write into the current directory.
    #[test]
    fn empty_store_and_capture_paths_are_errors() {
        for key in ["store", "capture"] {
            let e = error_of(&format!("[proxy]\n{key} = \"\"\n"));
            assert_eq!(e.key, format!("proxy.{key}"));
            assert_eq!((e.line, e.column), (2, key.len() + 4));
            assert!(e.message.contains("must name a path"), "{}", e.message);
        }
        let ok = Scenario::from_toml("[proxy]\nstore = \"s\"\n", "ok.toml", "ok").expect("valid");
        assert_eq!(ok.store.as_deref(), Some("s"));
    }

    /// `header = { "" = "x" }` or a method `"GET /"` were accepted and the rule never matched.
    #[test]
    fn header_and_method_names_must_be_tokens() {
        for (text, key) in [
            (
                "match = { header = { \"\" = \"x\" } }",
                "rule[1].match.header",
            ),
            (
                "match = { header = { \"content type\" = \"x\" } }",
                "rule[1].match.header",
            ),
            ("match = { method = \"GET /\" }", "rule[1].match.method"),
            (
                "match = { method = [\"PUT\", \"\"] }",
                "rule[1].match.method",
            ),
        ] {
            let e = error_of(&format!(
                "[[rule]]\n{text}\nfault.respond = {{ status = 500 }}\n"
            ));
            assert!(e.key.starts_with(key), "{text}: {e}");
            assert!(e.message.contains("never match"), "{text}: {e}");
            assert_eq!(e.line, 2, "{text}");
        }
        let ok = "[[rule]]\nmatch = { method = \"M-SEARCH\", header = { \"X-Amz-Date\" = \"*\" } }\nfault.respond = { status = 500 }\n";
        Scenario::from_toml(ok, "ok.toml", "ok").expect("tokens are accepted");
    }

    /// toml refuses an integer beyond i64 before serde sees it: the error named no key.
    #[test]
    fn an_integer_too_large_for_toml_names_its_key() {
        let e = error_of("[[rule]]\nfault.reset = { after = 18446744073709551615 }\n");
        assert_eq!(e.key, "rule[1].fault.reset.after");
        assert_eq!((e.line, e.column), (2, 25));
        assert!(e.message.contains("integer too large"), "{}", e.message);
        assert!(e.message.contains("like \"16TiB\""), "{}", e.message);
        // A count or a duration is no size: no size hint (a trial met it on every key).
        for text in [
            "[[rule]]\nmatch = { every = 99999999999999999999 }\nfault.refuse = {}\n",
            "[[rule]]\nfault.latency = { delay = 99999999999999999999 }\n",
        ] {
            let e = error_of(text);
            assert!(e.message.contains("integer too large"), "{}", e.message);
            assert!(!e.message.contains("TiB"), "{}: {}", e.key, e.message);
        }
        let e = error_of("seed = 18446744073709551616\n");
        assert_eq!(e.key, "seed");
        assert!(e.message.contains("--seed N"), "{}", e.message);
        let e = error_of("seed = 10141591430360726759\n");
        assert!(e.message.contains("--seed N"), "{}", e.message);
        let e = error_of("[[rule]]\nfault.refuse = {}\n[[rule]]\n[rule.fault.truncate]\nafter = 99999999999999999999\n");
        assert_eq!(
            (e.key.as_str(), e.line),
            ("rule[2].fault.truncate.after", 5)
        );
        let e = error_of(
            "[proxy]\nlisten = \"127.0.0.1:0\"\n\"upstream\" = 99999999999999999999 # x\n",
        );
        assert_eq!(e.key, "proxy.upstream");
        // A key after non-ASCII text is cut at a character boundary.
        let e = error_of("[[rule]]\nmatch = { header = { \"é\" = 99999999999999999999 } }\n");
        assert_eq!(e.line, 2);
    }

    /// A file that was not UTF-8 said "cannot read scenario: stream did not contain valid UTF-8"
    /// with no line or column.
    #[test]
    fn a_file_that_is_not_utf8_is_located_at_its_first_bad_byte() {
        let dir = std::env::temp_dir().join(format!("faultline-utf8-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let file = dir.join("bin.toml");
        std::fs::write(&file, b"seed = 1\nname = \"caf\xc3\xa9 \xff\"\n").expect("write");
        let error = Scenario::load(&file).expect_err("not UTF-8");
        let _ = std::fs::remove_dir_all(&dir);
        let ScenarioError::Invalid(e) = error else {
            panic!("located: {error}")
        };
        assert_eq!((e.line, e.column), (2, 14), "{e}");
        assert!(e.message.contains("0xFF is not valid UTF-8"), "{e}");
        assert!(
            e.to_string()
                .starts_with(&format!("{}:2:14: byte", file.display())),
            "{e}"
        );
    }

    /// `name = ""` gave the capture `cap/.pcapng`, a hidden file, and a scenario called "".
    #[test]
    fn an_empty_scenario_name_is_refused() {
        for empty in ["\"\"", "\"  \""] {
            let e = error_of(&format!("seed = 1\nname = {empty}\n"));
            assert_eq!((e.key.as_str(), e.line, e.column), ("name", 2, 8), "{e}");
            assert!(
                e.message.contains("must not be empty; leave it out"),
                "{}",
                e.message
            );
        }
        let named = Scenario::from_toml("name = \"n\"\n", "s.toml", "s").expect("valid");
        assert_eq!(named.name, "n");
    }

    #[test]
    fn out_of_range_probability_is_an_error() {
        let e = error_of("[[rule]]\nmatch = { probability = 1.5 }\nfault.refuse = {}\n");
        assert_eq!(e.key, "rule[1].match.probability");
    }

    #[test]
    fn impossible_combinations_are_errors() {
        let e = error_of("[[rule]]\nfault.reset = { after = \"1KiB\", at = \"1s\" }\n");
        assert_eq!(e.key, "rule[1].fault.reset.at");
        let e = error_of(
            "[[rule]]\nmatch = { direction = \"client->upstream\" }\nfault.terminate = { after = \"1s\" }\n",
        );
        assert_eq!(e.key, "rule[1].match.direction");
        assert_eq!(e.line, 2);
    }

    #[test]
    fn tls_alert_needs_interception_and_a_whole_direction() {
        let e = error_of("[[rule]]\nfault.tls_alert = { after = \"1KiB\" }\n");
        assert_eq!((e.key.as_str(), e.line), ("rule[1].fault.tls_alert", 2));
        assert!(e.message.contains("intercept = true"), "{}", e.message);
        let intercepting = "[proxy.tls]\nintercept = true\n";
        let e = error_of(&format!(
            "{intercepting}[[rule]]\nmatch = {{ path = \"/x\" }}\nfault.tls_alert = {{}}\n"
        ));
        assert_eq!(e.key, "rule[1].fault.tls_alert");
        assert!(e.message.contains("remove the HTTP keys"), "{}", e.message);
        let s = Scenario::from_toml(
            &format!("{intercepting}[[rule]]\nmatch = {{ direction = \"upstream->client\" }}\nfault.tls_alert = {{ after = \"1MiB\", alert = \"internal_error\" }}\n"),
            "s.toml",
            "s",
        )
        .expect("valid");
        assert_eq!(s.rules[0].name, "rule 1 (tls_alert)");
    }

    #[test]
    fn unknown_faults_and_two_faults_in_one_rule_are_errors() {
        let e = error_of("[[rule]]\nfault.explode = {}\n");
        assert!(e.key.starts_with("rule[1].fault"), "{}", e.key);
        let e = error_of("[[rule]]\nfault.refuse = {}\nfault.truncate = { after = 1 }\n");
        assert!(e.key.starts_with("rule[1].fault"), "{}", e.key);
    }

    #[test]
    fn bad_globs_point_at_the_pattern() {
        let e =
            error_of("[[rule]]\nmatch = { path = \"/a/[b\" }\nfault.respond = { status = 500 }\n");
        assert_eq!(e.key, "rule[1].match.path");
        assert_eq!((e.line, e.column), (2, 18));
        assert!(e.message.contains("/a/[b"), "{}", e.message);
    }

    #[test]
    fn messages_say_what_to_write_instead() {
        let e = error_of("[rule]\nfault.refuse = {}\n");
        assert!(e.message.contains("[[rule]]"), "{}", e.message);
        let e = error_of("[[rule]]\nfault.refuse = {}\nfault.truncate = { after = 1 }\n");
        assert!(
            e.message.contains("fault.refuse, fault.truncate")
                && e.message.contains("own [[rule]]"),
            "{}",
            e.message
        );
        let e = error_of("[[rule]]\nmatch = { connection = 1 }\n");
        assert!(e.message.contains("needs a fault"), "{}", e.message);
        let e = error_of("[[rule]]\nfault = {}\n");
        assert!(e.message.contains("needs a fault"), "{}", e.message);
    }

    /// `fault = "reset"` said `invalid type: unit variant, expected newtype variant`; a rule with
    /// no fault listed 9 of the faults; an HTTP/2 fault under protocol = "tcp" said "needs HTTP".
    #[test]
    fn fault_messages_say_what_to_write() {
        let e = error_of("[[rule]]\nfault = \"reset\"\n");
        assert_eq!(e.key, "rule[1].fault.reset");
        assert!(
            e.message.contains("write fault.reset = {}"),
            "{}",
            e.message
        );

        let unknown = error_of("[[rule]]\nfault.nope = {}\n").message;
        let schema: Vec<&str> = unknown
            .split("expected one of")
            .nth(1)
            .unwrap_or_else(|| panic!("serde lists the faults: {unknown}"))
            .split('`')
            .skip(1)
            .step_by(2)
            .collect();
        let listed: Vec<&str> = FAULT_NAMES.split(", ").collect();
        assert_eq!(listed, schema, "FAULT_NAMES is the schema's list");
        let e = error_of("[[rule]]\nmatch = { connection = 1 }\n");
        assert!(e.message.ends_with(FAULT_NAMES), "{}", e.message);

        for fault in ["rst_stream = { after = 1 }", "grpc_status = { code = 14 }"] {
            let e = error_of(&format!(
                "[proxy]\nprotocol = \"tcp\"\n[[rule]]\nmatch = {{ path = \"/x\" }}\nfault.{fault}\n"
            ));
            assert!(
                e.message.contains("HTTP/2") && e.message.contains("protocol = \"h2\""),
                "{fault}: {}",
                e.message
            );
        }
        let e = error_of("[proxy]\nprotocol = \"tcp\"\n[[rule]]\nmatch = { path = \"/x\" }\nfault.respond = { status = 500 }\n");
        assert!(e.message.contains("needs HTTP,"), "{}", e.message);
    }

    #[test]
    fn rules_that_can_never_act_under_the_protocol_are_warned_about_once_each() {
        let rst =
            "[[rule]]\nname = \"r\"\nmatch = { path = \"/x\" }\nfault.rst_stream = { after = 1 }\n";
        assert!(warnings(rst).is_empty(), "{:?}", warnings(rst));
        let http = warnings(&format!("protocol = \"http\"\n{rst}"));
        assert_eq!(http.len(), 1, "{http:?}");
        assert!(
            http[0].starts_with("rule \"r\": rst_stream acts on HTTP/2 streams")
                && http[0].contains("protocol = \"http\""),
            "{http:?}"
        );
        // (The helper's `upstream`, which forward mode ignores, is warned about on its own.)
        let about_rules = |all: Vec<String>| -> Vec<String> {
            all.into_iter().filter(|w| w.starts_with("rule ")).collect()
        };
        let forward = about_rules(warnings(&format!("mode = \"forward\"\n{rst}")));
        assert!(forward[0].contains("forward"), "{forward:?}");
        // Forward mode reads HTTP/1 whatever `protocol` says: no advice to set what is set.
        let forward_h2 = about_rules(warnings(&format!(
            "mode = \"forward\"\nprotocol = \"h2\"\n{rst}"
        )));
        assert_eq!(forward_h2.len(), 1, "{forward_h2:?}");
        assert!(
            forward_h2[0].contains("intercept = true") && !forward_h2[0].contains("use protocol"),
            "{forward_h2:?}"
        );
        // HTTP/2 inside an intercepted CONNECT reaches every rule (README): nothing to warn.
        let intercepted = about_rules(warnings(&format!(
            "mode = \"forward\"\n[proxy.tls]\nintercept = true\n{rst}"
        )));
        assert!(intercepted.is_empty(), "{intercepted:?}");
        let goaway =
            warnings("[[rule]]\nmatch = { path = \"/x\" }\nfault.goaway = { after_streams = 1 }\n");
        assert_eq!(goaway.len(), 1);
        assert!(goaway[0].contains("never fire"), "{goaway:?}");
        assert!(
            warnings("[[rule]]\nmatch = { connection = 1 }\nfault.goaway = { at = \"1s\" }\n")
                .is_empty()
        );
        let status =
            warnings("[[rule]]\nmatch = { status = 500 }\nfault.grpc_status = { code = 14 }\n");
        assert_eq!(status.len(), 1);
        assert!(status[0].contains("`status` is ignored"), "{status:?}");
        assert!(
            warnings("[[rule]]\nmatch = { status = 500 }\nfault.truncate = { after = 1 }\n")
                .is_empty()
        );
    }

    /// `sni` reads a TLS ClientHello: cleartext HTTP/2 (or HTTP/1) has none, so such a rule
    /// never fired under protocol = "h2" without interception, silently.
    #[test]
    fn sni_without_tls_under_an_http_protocol_is_warned_about() {
        let rule = "[[rule]]\nname = \"s\"\nmatch = { sni = \"*.example.com\" }\nfault.reset = { after = 1 }\n";
        for protocol in ["h2", "http"] {
            let got = warnings(&format!("protocol = \"{protocol}\"\n{rule}"));
            assert_eq!(got.len(), 1, "{protocol}: {got:?}");
            assert!(
                got[0].starts_with("rule \"s\": sni matches")
                    && got[0].contains(&format!("protocol = \"{protocol}\"")),
                "{got:?}"
            );
        }
        for fine in [
            String::new(),
            "protocol = \"tcp\"\n".to_string(),
            "protocol = \"h2\"\n[proxy.tls]\nintercept = true\n".to_string(),
        ] {
            let text = format!("{fine}{rule}");
            assert!(warnings(&text).is_empty(), "{text}: {:?}", warnings(&text));
        }
    }

    #[test]
    fn a_lower_case_method_is_warned_about() {
        let lower = warnings(
            "[[rule]]\nname = \"r\"\nmatch = { method = [\"PUT\", \"post\"] }\nfault.reset = { after = 1 }\n",
        );
        assert_eq!(lower.len(), 1, "{lower:?}");
        assert!(
            lower[0].starts_with("rule \"r\": method \"post\" is matched exactly")
                && lower[0].contains("write \"POST\""),
            "{lower:?}"
        );
        assert!(warnings(
            "[[rule]]\nmatch = { method = [\"PUT\", \"PROPFIND\"] }\nfault.reset = { after = 1 }\n"
        )
        .is_empty());
    }

    #[test]
    fn rules_that_share_a_name_or_have_none_are_warned_about() {
        let rule = |name: &str| {
            format!("[[rule]]\nname = \"{name}\"\nmatch = {{ every = 2 }}\nfault.refuse = {{}}\n")
        };
        let got = warnings(&[rule("a"), rule("b"), rule("a"), rule("")].concat());
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(
            got[0].starts_with("rules 1 and 3 are both named \"a\""),
            "{got:?}"
        );
        assert!(got[1].starts_with("rule 4 has an empty name"), "{got:?}");
        // Unnamed rules get names of their own (`rule N (FAULT)`).
        assert!(warnings("[[rule]]\nfault.refuse = {}\n[[rule]]\nfault.refuse = {}\n").is_empty());
    }

    #[test]
    fn a_body_fault_on_get_requests_is_warned_about() {
        let get = warnings(
            "[[rule]]\nname = \"g\"\nmatch = { method = \"GET\" }\nfault.truncate = { after = \"100KiB\" }\n",
        );
        assert_eq!(get.len(), 1, "{get:?}");
        assert!(
            get[0].starts_with("rule \"g\": truncate counts `after` in request body bytes")
                && get[0].contains("direction = \"upstream->client\""),
            "{get:?}"
        );
        // rst_stream counts `after` in the stream's DATA in the rule's direction: the request's.
        let rst = warnings(
            "[[rule]]\nname = \"r\"\nmatch = { method = \"GET\", path = \"/x\" }\nfault.rst_stream = { after = \"1KiB\" }\n",
        );
        assert_eq!(rst.len(), 1, "{rst:?}");
        assert!(
            rst[0].starts_with("rule \"r\": rst_stream counts `after`"),
            "{rst:?}"
        );
        for fine in [
            "match = { method = \"GET\", path = \"/x\" }\nfault.rst_stream = { at = \"1s\" }",
            "match = { method = \"GET\", direction = \"upstream->client\" }\nfault.rst_stream = { after = 1 }",
            "match = { method = \"GET\", direction = \"upstream->client\" }\nfault.truncate = { after = 1 }",
            "match = { method = \"GET\", status = 200 }\nfault.reset = { after = 1 }",
            "match = { method = \"GET\" }\nfault.stall = { duration = \"1s\" }",
            "match = { method = [\"GET\", \"PUT\"] }\nfault.truncate = { after = 1 }",
            "match = { method = \"PUT\" }\nfault.truncate = { after = 1 }",
        ] {
            let text = format!("[[rule]]\n{fine}\n");
            assert!(warnings(&text).is_empty(), "{text}: {:?}", warnings(&text));
        }
    }

    #[test]
    fn syntax_errors_have_a_position() {
        let e = error_of("name = \"x\"\n[proxy\n");
        assert_eq!(e.line, 2);
    }

    #[test]
    fn adding_a_rule_does_not_change_another_rules_draws() {
        let coin = "[[rule]]\nmatch = { probability = 0.5 }\nfault.refuse = {}\n";
        let other =
            "[[rule]]\nmatch = { probability = 0.5 }\nfault.latency = { delay = \"1ms\" }\n";
        let alone = Scenario::from_toml(coin, "a.toml", "a").expect("valid");
        let crowded =
            Scenario::from_toml(&format!("{other}{coin}{coin}"), "b.toml", "b").expect("valid");
        let draws = |rule: &Rule| {
            (1..=64)
                .map(|c| rule.matcher.matches_connection(c, 9, rule.key))
                .collect::<Vec<_>>()
        };
        assert_eq!(draws(&alone.rules[0]), draws(&crowded.rules[1]));
        assert_ne!(
            draws(&crowded.rules[1]),
            draws(&crowded.rules[2]),
            "identical rules still draw apart"
        );
        assert_ne!(draws(&crowded.rules[0]), draws(&crowded.rules[1]));
    }

    #[test]
    fn probability_decisions_replay_with_the_same_seed() {
        let m = Match {
            probability: Some(Probability::new(0.5).expect("valid")),
            ..Match::default()
        };
        let run = |seed| {
            (1..=200)
                .map(|c| m.matches_connection(c, seed, 0))
                .collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
        let hits = run(7).iter().filter(|&&b| b).count();
        assert!((60..140).contains(&hits), "{hits} of 200 at p=0.5");
    }
}
