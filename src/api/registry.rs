//! The proxies of `faultline serve` and every operation Toxiproxy's API performs on them, with
//! Toxiproxy's checks in Toxiproxy's order; a failed operation changes nothing it did not say.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::error::ApiError;
use super::proxy::{bind_listen, parse_upstream, resolve_listen, ManagedProxy, ServeContext};
use super::toxic::{check_name, json_kind, Toxic};
use crate::scenario::schema::{Mode, UpstreamSpec};
use crate::scenario::Scenario;

/// What a request gets back: a status and a JSON body (empty for 204).
pub type Answer = Result<(u16, String), ApiError>;

/// Every proxy, by name.
#[derive(Debug)]
pub struct Registry {
    proxies: BTreeMap<String, ManagedProxy>,
    ctx: ServeContext,
    /// `serve --seed`: each proxy's seed derives from it and the proxy's name; random without.
    seed: Option<u64>,
}

/// A proxy's fields in a create or populate body.
struct ProxyInput {
    name: String,
    listen: String,
    upstream: String,
    enabled: Option<bool>,
}

fn object_of(value: Value, what: &str) -> Result<Map<String, Value>, ApiError> {
    match value {
        Value::Object(object) => Ok(object),
        Value::Null => Ok(Map::new()),
        other => Err(ApiError::bad_body(format!(
            "{what} must be a JSON object, got {}",
            json_kind(&other)
        ))),
    }
}

fn string_of(object: &Map<String, Value>, key: &str) -> Result<Option<String>, ApiError> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(ApiError::bad_body(format!(
            "{key} must be a string, got {}",
            json_kind(other)
        ))),
    }
}

fn bool_of(object: &Map<String, Value>, key: &str) -> Result<Option<bool>, ApiError> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(other) => Err(ApiError::bad_body(format!(
            "{key} must be true or false, got {}",
            json_kind(other)
        ))),
    }
}

impl ProxyInput {
    fn parse(object: &Map<String, Value>) -> Result<ProxyInput, ApiError> {
        Ok(ProxyInput {
            name: string_of(object, "name")?.unwrap_or_default(),
            listen: string_of(object, "listen")?.unwrap_or_default(),
            upstream: string_of(object, "upstream")?.unwrap_or_default(),
            enabled: bool_of(object, "enabled")?,
        })
    }

    /// Toxiproxy's checks: a name and an upstream (`missing required field: name at proxy N`).
    fn required(&self, at: Option<usize>) -> Result<(), ApiError> {
        let suffix = at
            .map(|i| format!(" at proxy {}", i + 1))
            .unwrap_or_default();
        if self.name.is_empty() {
            return Err(ApiError::missing(format!("name{suffix}")));
        }
        if self.upstream.is_empty() {
            return Err(ApiError::missing(format!("upstream{suffix}")));
        }
        Ok(())
    }

    /// faultline's checks, beyond Toxiproxy's.
    async fn valid(&self) -> Result<(), ApiError> {
        check_name("proxy", &self.name)?;
        parse_upstream(&self.upstream)?;
        check_listen_text(&self.listen)?;
        resolve_listen(&self.listen).await?;
        Ok(())
    }
}

/// Refuses a listen address with blanks around it (`" localhost:0"`): Toxiproxy hands the text
/// to Go's `net.Listen`, which looks the blank up as part of the host and fails, while
/// faultline's resolver trimmed it and listened, so a client got 201 from faultline for an
/// address Toxiproxy refuses.
fn check_listen_text(listen: &str) -> Result<(), ApiError> {
    if listen.trim() == listen {
        return Ok(());
    }
    Err(ApiError::new(
        400,
        format!(
            "listen {}: blank space before or after the address (Toxiproxy cannot listen there either): write {}",
            super::toxic::json_string(listen),
            super::toxic::json_string(listen.trim())
        ),
    ))
}

fn parse_json(body: &[u8]) -> Result<Value, ApiError> {
    super::toxic::decode_json(body)
}

impl Registry {
    /// No proxies yet.
    pub fn new(ctx: ServeContext, seed: Option<u64>) -> Self {
        Registry {
            proxies: BTreeMap::new(),
            ctx,
            seed,
        }
    }

    /// A new proxy's seed: from `serve --seed` and the name, else random; at most 2^53 - 1
    /// either way, so it fits a TOML integer (the scenario a capture records always says
    /// `seed =`) and survives JSON readers that hold numbers as doubles (jq, JavaScript).
    fn seed_for(&self, name: &str) -> u64 {
        let seed = match self.seed {
            Some(base) => {
                crate::seed::key_of(&[base.to_le_bytes().as_slice(), name.as_bytes()].concat())
            }
            None => rand::random(),
        };
        seed & crate::seed::MAX_CHOSEN
    }

    fn get(&self, name: &str) -> Result<&ManagedProxy, ApiError> {
        self.proxies.get(name).ok_or_else(ApiError::proxy_not_found)
    }

    fn get_mut(&mut self, name: &str) -> Result<&mut ManagedProxy, ApiError> {
        self.proxies
            .get_mut(name)
            .ok_or_else(ApiError::proxy_not_found)
    }

    /// The proxies, by name.
    pub fn proxies(&self) -> impl Iterator<Item = &ManagedProxy> {
        self.proxies.values()
    }

    /// The proxy named `name`.
    pub fn proxy(&self, name: &str) -> Result<&ManagedProxy, ApiError> {
        self.get(name)
    }

    /// `GET /proxies`: an object keyed by name.
    pub fn index(&self) -> Answer {
        let entries: Vec<String> = self
            .proxies
            .values()
            .map(|p| format!("{}:{}", super::toxic::json_string(&p.name), p.to_json()))
            .collect();
        Ok((200, format!("{{{}}}", entries.join(","))))
    }

    /// `POST /proxies`.
    pub async fn create(&mut self, body: &[u8]) -> Answer {
        let object = object_of(parse_json(body)?, "the proxy")?;
        let input = ProxyInput::parse(&object)?;
        input.required(None)?;
        // Toxiproxy looks for the name before it tries the address: a taken name is 409 whatever
        // the rest says.
        if self.proxies.contains_key(&input.name) {
            return Err(ApiError::proxy_exists());
        }
        input.valid().await?;
        let proxy = self.add(input, String::new()).await?;
        Ok((201, proxy.to_json()))
    }

    /// Adds (and, unless `enabled` is false, starts) a proxy whose input was checked.
    async fn add(&mut self, input: ProxyInput, base: String) -> Result<&ManagedProxy, ApiError> {
        let spec = parse_upstream(&input.upstream)?;
        self.add_as(input, base, spec, None, None).await
    }

    /// [`add`](Self::add), forwarding to `spec` (what `input.upstream` says, or the
    /// per-request upstream of a forward proxy, which no upstream text names), listening on
    /// `listener` when the caller bound it already.
    async fn add_as(
        &mut self,
        input: ProxyInput,
        base: String,
        spec: UpstreamSpec,
        listener: Option<tokio::net::TcpListener>,
        folder: Option<&std::path::Path>,
    ) -> Result<&ManagedProxy, ApiError> {
        let seed = self.seed_for(&input.name);
        let mut proxy = ManagedProxy::new(
            input.name.clone(),
            input.listen,
            input.upstream,
            spec,
            base,
            seed,
        );
        if let Some(folder) = folder {
            proxy.read_from(folder);
        }
        if input.enabled.unwrap_or(true) {
            proxy.start_bound(&self.ctx, listener).await?;
        }
        let name = input.name;
        self.proxies.insert(name.clone(), proxy);
        self.get(&name)
    }

    /// A proxy made from a scenario file given to `serve`: named by the scenario, listening where
    /// it says (a free loopback port when it does not), its rules in force; relative
    /// `[proxy.tls]` paths are read from the file's `folder`. Every error names the file
    /// (`origin`) and, once the scenario loaded, the proxy; it is 409 only when the listen
    /// address is in use (serve exits 1 then, as `run` does; 2 for everything else).
    pub async fn add_scenario(
        &mut self,
        text: String,
        origin: &str,
        stem: &str,
        folder: &std::path::Path,
    ) -> Answer {
        let scenario = Scenario::from_toml(&text, origin, stem)
            .map_err(|e| ApiError::new(400, e.to_string()))?;
        // A forward proxy has no upstream of its own: each client names its target, as with
        // `faultline run` (and as a `PUT` of a forward scenario does on any proxy).
        let spec = match (&scenario.upstream, scenario.mode) {
            (Some(upstream), _) => upstream.clone(),
            (None, Mode::Forward) => UpstreamSpec::PerRequest,
            (None, Mode::Reverse) => {
                return Err(ApiError::new(
                    400,
                    format!(
                        "{origin}: no upstream: set [proxy] upstream, or mode = \"forward\" (serve has no --upstream)"
                    ),
                ))
            }
        };
        let input = ProxyInput {
            name: scenario.name.clone(),
            listen: scenario
                .listen
                .map(|a| a.to_string())
                .unwrap_or_else(|| "127.0.0.1:0".to_string()),
            upstream: spec.to_string(),
            enabled: Some(true),
        };
        let name = input.name.clone();
        let named = |e: ApiError| {
            ApiError::new(e.status, format!("{origin}: proxy {name:?}: {}", e.message))
        };
        check_name("proxy", &input.name).map_err(named)?;
        resolve_listen(&input.listen).await.map_err(named)?;
        if let Some(other) = self.proxies.get(&input.name) {
            return Err(ApiError::new(
                400,
                format!(
                    "{origin}: a proxy named {:?} already exists, from scenario {}: rename one of them",
                    input.name,
                    other.source().unwrap_or("(unknown)")
                ),
            ));
        }
        self.add_as(input, text, spec, None, Some(folder))
            .await
            .map_err(named)?;
        let proxy = self
            .proxies
            .get_mut(&name)
            .ok_or_else(ApiError::proxy_not_found)?;
        proxy.came_from(origin);
        Ok((201, proxy.to_json()))
    }

    /// `GET /proxies/{name}`.
    pub fn show(&self, name: &str) -> Answer {
        Ok((200, self.get(name)?.to_json()))
    }

    /// `POST|PATCH /proxies/{name}`: fields default to the proxy's; a new address restarts it;
    /// `enabled` starts or stops it. A start that fails puts the old address back.
    pub async fn update(&mut self, name: &str, body: &[u8]) -> Answer {
        let ctx = self.ctx.clone();
        let proxy = self.get_mut(name)?;
        let object = object_of(parse_json(body)?, "the proxy")?;
        let listen = string_of(&object, "listen")?.unwrap_or_else(|| proxy.listen().to_string());
        check_listen_text(&listen)?;
        let upstream = match string_of(&object, "upstream")? {
            // What GET showed of a forward proxy, given back: unchanged.
            Some(shown) if shown == proxy.shown_upstream() => proxy.upstream().to_string(),
            Some(upstream) => upstream,
            None => proxy.upstream().to_string(),
        };
        let enabled = bool_of(&object, "enabled")?.unwrap_or(proxy.enabled());
        if upstream != proxy.upstream() {
            if proxy.is_forward() {
                // A trial's 200 here reported the new upstream while the proxy stayed a forward
                // proxy (plain requests still got 400): one state, or a refusal.
                return Err(ApiError::bad_body(format!(
                    "proxy {name} is a forward proxy (mode = \"forward\" in its scenario): its clients name each upstream; PUT /faultline/proxies/{name}/scenario without mode = \"forward\" first"
                )));
            }
            // (The one a forward proxy shows, "per request", is no address to give.)
            parse_upstream(&upstream)?;
        }
        let was_enabled = proxy.enabled();
        if proxy.differs(&listen, &upstream).await? {
            // A new address is bound before the old run stops: when it is taken (409) the
            // proxy, its connections, counters and capture stay as they are.
            let listener = if enabled && !proxy.listens_on(&listen).await? {
                Some(bind_listen(&listen).await?.1)
            } else {
                None
            };
            let (old_listen, old_upstream) =
                (proxy.listen().to_string(), proxy.upstream().to_string());
            proxy.readdress(listen, upstream).await?;
            if enabled {
                if let Err(e) = proxy.start_bound(&ctx, listener).await {
                    // Put the old address (the port it had) back, as it was.
                    proxy.readdress(old_listen, old_upstream).await?;
                    if was_enabled {
                        proxy.start(&ctx).await?;
                    }
                    return Err(e);
                }
            }
        } else if enabled && !proxy.enabled() {
            proxy.start(&ctx).await?;
        } else if !enabled {
            proxy.stop().await;
        }
        Ok((200, proxy.to_json()))
    }

    /// `DELETE /proxies/{name}`: stops it (closing its connections) and forgets it.
    pub async fn delete(&mut self, name: &str) -> Answer {
        let proxy = self.get_mut(name)?;
        proxy.stop().await;
        self.proxies.remove(name);
        Ok((204, String::new()))
    }

    /// `POST /populate` (and `serve --config`): every entry is checked first; then each proxy is
    /// kept when it already exists with the same address, replaced otherwise, created when new.
    /// Answers `{"proxies":[…]}` (Toxiproxy's `null` for none), with the error's fields first
    /// when one stopped it half-way.
    pub async fn populate(&mut self, body: &[u8]) -> (u16, String) {
        let mut done: Vec<String> = Vec::new();
        let result = self.populate_inner(body, &mut done, &mut None).await;
        let proxies: Vec<String> = done
            .iter()
            .filter_map(|n| self.proxies.get(n))
            .map(|p| p.to_json())
            .collect();
        let list = if proxies.is_empty() {
            "null".to_string()
        } else {
            format!("[{}]", proxies.join(","))
        };
        match result {
            Ok(()) => (201, format!("{{\"proxies\":{list}}}")),
            Err(e) => (
                e.status,
                format!(
                    "{{\"error\":{},\"status\":{},\"proxies\":{list}}}",
                    super::toxic::json_string(&e.message),
                    e.status
                ),
            ),
        }
    }

    /// `serve --config FILE` (`origin`): [`populate`](Self::populate) at start. Unlike a
    /// `/populate` request, an entry may not take the name of a proxy a scenario file given to
    /// `serve` made: it would silently replace that proxy and its rules (two scenario files
    /// with one name are refused too). Errors name the file and, when a proxy cannot start,
    /// the proxy; 409 only when a listen address is in use (serve exits 1 then, 2 otherwise).
    pub async fn populate_file(&mut self, body: &[u8], origin: &str) -> Result<(), ApiError> {
        if let Ok(Value::Array(items)) = parse_json(body) {
            for (i, item) in items.iter().enumerate() {
                let Some(name) = item.get("name").and_then(Value::as_str) else {
                    continue;
                };
                if let Some(source) = self.proxies.get(name).and_then(|p| p.source()) {
                    return Err(ApiError::new(
                        400,
                        format!(
                            "{origin}: a proxy named {name:?} (at proxy {}) already exists, from scenario {source}: rename one of them",
                            i + 1
                        ),
                    ));
                }
            }
        }
        let mut done = Vec::new();
        let mut failing = None;
        self.populate_inner(body, &mut done, &mut failing)
            .await
            .map_err(|e| {
                let proxy = failing
                    .map(|name| format!("proxy {name:?}: "))
                    .unwrap_or_default();
                // A file is no request: Toxiproxy's "bad request body" read oddly for one.
                let message = match e.message.strip_prefix("bad request body: ") {
                    Some(why) => why.to_string(),
                    None => e.message,
                };
                ApiError::new(e.status, format!("{origin}: {proxy}{message}"))
            })
    }

    async fn populate_inner(
        &mut self,
        body: &[u8],
        done: &mut Vec<String>,
        failing: &mut Option<String>,
    ) -> Result<(), ApiError> {
        let inputs = match parse_json(body)? {
            Value::Array(items) => items,
            Value::Null => Vec::new(),
            other => {
                return Err(ApiError::bad_body(format!(
                    "expected an array of proxies, got {}",
                    json_kind(&other)
                )))
            }
        };
        // Every entry is checked before anything changes, in Toxiproxy's order: its required
        // fields, a name an earlier entry took, then faultline's checks (an addressable name, an
        // upstream that parses, a listen address that resolves).
        let mut parsed: Vec<ProxyInput> = Vec::with_capacity(inputs.len());
        for (i, item) in inputs.into_iter().enumerate() {
            let input = ProxyInput::parse(&object_of(item, "each proxy")?)?;
            input.required(Some(i))?;
            // Toxiproxy refuses a name given twice (`duplicate proxy name`); the second entry
            // silently replaced the first here.
            if let Some(first) = parsed.iter().position(|p| p.name == input.name) {
                return Err(ApiError::new(
                    400,
                    format!(
                    "duplicate proxy name {:?} at proxy {} (also at proxy {}): give each proxy once",
                    input.name,
                    i + 1,
                    first + 1
                ),
                ));
            }
            input.valid().await?;
            parsed.push(input);
        }
        for input in parsed {
            let name = input.name.clone();
            *failing = Some(name.clone());
            let spec = parse_upstream(&input.upstream)?;
            let mut replaced = None;
            let mut listener = None;
            if let Some(existing) = self.proxies.get_mut(&name) {
                if !existing.differs(&input.listen, &input.upstream).await? {
                    // Toxiproxy keeps it as it is: its toxics, and enabled or not.
                    done.push(name);
                    continue;
                }
                // A new address is bound before the proxy it replaces stops: when it is taken
                // (409) that proxy keeps its connections, counters and capture.
                if input.enabled.unwrap_or(true) && !existing.listens_on(&input.listen).await? {
                    listener = Some(bind_listen(&input.listen).await?.1);
                }
                let was_enabled = existing.enabled();
                existing.stop().await;
                replaced = self.proxies.remove(&name).map(|p| (p, was_enabled));
            }
            if let Err(e) = self
                .add_as(input, String::new(), spec, listener, None)
                .await
            {
                // The replacement cannot start (its address is taken): the proxy it was to
                // replace comes back as it was, toxics and all (Toxiproxy leaves it stopped).
                if let Some((mut old, was_enabled)) = replaced {
                    if was_enabled {
                        if let Err(again) = old.start(&self.ctx).await {
                            tracing::warn!(proxy = %name, error = %again.message, "populate: the proxy a failed replacement stopped cannot start again; it stays disabled");
                        }
                    }
                    self.proxies.insert(name, old);
                }
                return Err(e);
            }
            done.push(name);
        }
        *failing = None;
        Ok(())
    }

    /// `POST /reset`: every proxy without toxics or rules, and enabled. A proxy that cannot
    /// start again (another proxy took its address while it was disabled) does not stop the
    /// others: every proxy is reset, then the first failure is reported, with Toxiproxy's
    /// status for it (500: its `ResetState` passes the listen error on as it is), naming the
    /// proxies that stay disabled.
    pub async fn reset(&mut self) -> Answer {
        let mut failed: Vec<(String, ApiError)> = Vec::new();
        for proxy in self.proxies.values_mut() {
            if let Err(e) = proxy.reset(&self.ctx).await {
                tracing::warn!(proxy = %proxy.name, error = %e.message, "reset: the proxy cannot start again; it stays disabled");
                failed.push((proxy.name.clone(), e));
            }
        }
        let Some((_, first)) = failed.first() else {
            return Ok((204, String::new()));
        };
        let names: Vec<&str> = failed.iter().map(|(name, _)| name.as_str()).collect();
        Err(ApiError::new(
            500,
            format!(
                "{}: every proxy's toxics and rules are removed, but {} {} could not be enabled again",
                first.message,
                if names.len() == 1 { "proxy" } else { "proxies" },
                names.join(", "),
            ),
        ))
    }

    /// `GET /proxies/{name}/toxics`.
    pub fn toxics(&self, name: &str) -> Answer {
        let toxics: Vec<String> = self
            .get(name)?
            .toxics()
            .iter()
            .map(|t| t.to_json())
            .collect();
        Ok((200, format!("[{}]", toxics.join(","))))
    }

    /// `POST /proxies/{name}/toxics` (200, as Toxiproxy answers).
    pub fn add_toxic(&mut self, name: &str, body: &[u8]) -> Answer {
        let proxy = self.get_mut(name)?;
        // A toxic named like a rule of the base scenario would be a second rule of that name:
        // one series twice in /metrics, two rules no log line tells apart.
        let rules = proxy.base_rule_names();
        let mut toxic = Toxic::from_create_among(body, |name| {
            proxy.toxic(name).is_some() || rules.iter().any(|rule| rule == name)
        })?;
        toxic.instance = proxy.new_instance();
        let json = toxic.to_json();
        let mut toxics = proxy.toxics_in_order();
        toxics.push(toxic);
        proxy.set_toxics(toxics)?;
        Ok((200, json))
    }

    /// `GET /proxies/{name}/toxics/{toxic}`.
    pub fn toxic(&self, name: &str, toxic: &str) -> Answer {
        let toxic = self
            .get(name)?
            .toxic(toxic)
            .ok_or_else(ApiError::toxic_not_found)?;
        Ok((200, toxic.to_json()))
    }

    /// `POST|PATCH /proxies/{name}/toxics/{toxic}`.
    pub fn update_toxic(&mut self, name: &str, toxic: &str, body: &[u8]) -> Answer {
        let proxy = self.get_mut(name)?;
        let current = proxy.toxic(toxic).ok_or_else(ApiError::toxic_not_found)?;
        let mut next = current.updated(body)?;
        next.revision = proxy.new_instance();
        let json = next.to_json();
        let toxics = proxy
            .toxics_in_order()
            .into_iter()
            .map(|t| if t.name == toxic { next.clone() } else { t })
            .collect();
        proxy.set_toxics(toxics)?;
        Ok((200, json))
    }

    /// `DELETE /proxies/{name}/toxics/{toxic}`.
    pub fn remove_toxic(&mut self, name: &str, toxic: &str) -> Answer {
        let proxy = self.get_mut(name)?;
        proxy.toxic(toxic).ok_or_else(ApiError::toxic_not_found)?;
        let toxics = proxy
            .toxics_in_order()
            .into_iter()
            .filter(|t| t.name != toxic)
            .collect();
        proxy.set_toxics(toxics)?;
        Ok((204, String::new()))
    }

    /// `PUT /faultline/proxies/{name}/scenario`: validated exactly as `faultline check` does
    /// (errors name the line, column and key); `[proxy] listen`/`upstream`, when given, must
    /// be the proxy's own (they change through `POST /proxies/{name}`).
    pub async fn put_scenario(&mut self, name: &str, text: String) -> Answer {
        let ctx = self.ctx.clone();
        let proxy = self.get_mut(name)?;
        let scenario = Scenario::from_toml(&text, "scenario", name)
            .map_err(|e| ApiError::new(400, e.to_string()))?;
        // Rules are told apart by name (logs, capture notes, /metrics series): a scenario from
        // `GET …/scenario` carries the toxics as rules, and PUT back it would double them.
        if let Some((n, rule)) = scenario
            .rules
            .iter()
            .enumerate()
            .find(|(_, rule)| proxy.toxic(&rule.name).is_some())
        {
            return Err(ApiError::new(
                400,
                format!(
                    "rule {} is named \"{}\", as a toxic of proxy {name}: GET /faultline/proxies/{name}/scenario shows the toxics as rules, so PUT back only the base scenario's rules (or remove the toxic first)",
                    n + 1,
                    rule.name
                ),
            ));
        }
        if let Some(alike) = scenario.rules_named_alike() {
            return Err(ApiError::new(400, alike));
        }
        // What `run` would refuse on this machine (a capture folder it cannot write, no CA for
        // interception) is refused here, before the proxy is touched: a trial's bad capture
        // path took a running proxy offline, and a disabled one then failed every reset.
        let preflight = scenario.preflight_for(crate::scenario::preflight::Refuser::Serve);
        if let Some(error) = preflight.errors.first() {
            return Err(ApiError::new(400, error.to_string()));
        }
        if let Some(warning) = preflight.warnings.first() {
            return Err(ApiError::new(
                400,
                format!("proxy {name} cannot use this scenario: {warning}"),
            ));
        }
        if let Some(upstream) = &scenario.upstream {
            if parse_upstream(proxy.upstream())? != *upstream {
                return Err(ApiError::new(
                    400,
                    format!(
                        "[proxy] upstream = \"{upstream}\" is not this proxy's upstream ({}); change it with POST /proxies/{name}",
                        proxy.upstream()
                    ),
                ));
            }
        }
        if let Some(listen) = scenario.listen {
            let own = proxy.listen().parse().ok();
            let asked = resolve_listen(proxy.requested_listen()).await.ok();
            if Some(listen) != own && Some(listen) != asked {
                return Err(ApiError::new(
                    400,
                    format!(
                        "[proxy] listen = \"{listen}\" is not this proxy's listen address ({}); change it with POST /proxies/{name}",
                        proxy.listen()
                    ),
                ));
            }
        }
        let rules = scenario.rules.len();
        let restarted = proxy.set_base(text, &ctx).await?;
        Ok((
            200,
            format!(
                "{{\"proxy\":{},\"rules\":{rules},\"toxics\":{},\"restarted\":{restarted}}}",
                super::toxic::json_string(name),
                proxy.toxics().len()
            ),
        ))
    }

    /// Stops every proxy (when `serve` ends); each capture is flushed and closed.
    pub async fn stop_all(&mut self) {
        for proxy in self.proxies.values_mut() {
            proxy.shut_down().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry() -> Registry {
        let (events, _) = tokio::sync::broadcast::channel(16);
        Registry::new(
            ServeContext {
                events,
                default_capture: None,
                command_line: "faultline serve".to_string(),
            },
            Some(1),
        )
    }

    /// A `--config` file naming one proxy twice was taken silently, the last entry winning;
    /// Toxiproxy refuses a duplicate name before it changes anything, and so does faultline.
    #[tokio::test]
    async fn a_name_given_twice_in_a_populate_is_refused_before_anything_changes() {
        let mut registry = registry();
        let body =
            br#"[{"name":"a","listen":"127.0.0.1:0","upstream":"127.0.0.1:9","enabled":false},
            {"name":"b","listen":"127.0.0.1:0","upstream":"127.0.0.1:9","enabled":false},
            {"name":"a","listen":"127.0.0.1:0","upstream":"127.0.0.1:8","enabled":false}]"#;
        let (status, answer) = registry.populate(body).await;
        assert_eq!(status, 400, "{answer}");
        assert!(
            answer.contains(r#"duplicate proxy name \"a\" at proxy 3 (also at proxy 1)"#),
            "{answer}"
        );
        assert_eq!(registry.proxies().count(), 0);
        let error = registry
            .populate_file(body, "toxiproxy.json")
            .await
            .expect_err("duplicate");
        assert_eq!(error.status, 400);
        assert!(
            error
                .message
                .starts_with("toxiproxy.json: duplicate proxy name"),
            "{}",
            error.message
        );
        // A file's JSON error names the file, not a "bad request body" (a serve trial's words).
        let error = registry
            .populate_file(b"[{\"name\":\"a\",}]", "bad.json")
            .await
            .expect_err("not JSON");
        assert!(
            error.message.starts_with("bad.json: ") && !error.message.contains("request body"),
            "{}",
            error.message
        );
        // Missing fields still come first, as in Toxiproxy.
        let (status, answer) = registry
            .populate(br#"[{"name":"a","upstream":"x:1"},{"name":"a"}]"#)
            .await;
        assert_eq!(status, 400);
        assert!(answer.contains("upstream at proxy 2"), "{answer}");
    }

    /// `" localhost:0"` was trimmed and listened on; Go's net.Listen (Toxiproxy) refuses it.
    #[tokio::test]
    async fn a_listen_address_with_blanks_around_it_is_refused() {
        let mut registry = registry();
        for listen in [" localhost:0", "127.0.0.1:0 ", "\t127.0.0.1:0", "  "] {
            let body = format!(
                r#"{{"name":"p","listen":{},"upstream":"127.0.0.1:9","enabled":false}}"#,
                serde_json::to_string(listen).expect("json")
            );
            let error = registry.create(body.as_bytes()).await.expect_err(listen);
            assert_eq!(error.status, 400, "{listen:?}");
            assert!(
                error.message.starts_with(&format!(
                    "listen {}: blank space",
                    serde_json::to_string(listen).expect("json")
                )),
                "{}",
                error.message
            );
        }
        assert_eq!(registry.proxies().count(), 0);
        // An empty address stays the documented loopback default; an update is checked too.
        let (status, _) = registry
            .create(br#"{"name":"p","listen":"","upstream":"127.0.0.1:9","enabled":false}"#)
            .await
            .expect("empty listen");
        assert_eq!(status, 201);
        let error = registry
            .update("p", br#"{"listen":" 127.0.0.1:0"}"#)
            .await
            .expect_err("blank");
        assert_eq!(error.status, 400, "{}", error.message);
    }
}
