//! The scenario file schema as serde types: what a user may write, with `deny_unknown_fields`
//! everywhere so a typo is an error, not a silently ignored key.

use std::fmt;
use std::net::SocketAddr;
use std::num::NonZeroU64;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::Deserialize;
use toml::Spanned;

use crate::direction::DirectionMatch;
use crate::fault::Fault;
use crate::units::Probability;

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioFile {
    /// Defaults to the file stem; spanned so an empty name is refused where it is written.
    pub name: Option<toml::Spanned<String>>,
    /// Free text for humans.
    pub description: Option<String>,
    /// Seed of every random decision; chosen at random (and logged) when absent.
    pub seed: Option<u64>,
    /// Where to listen and where to forward.
    #[serde(default)]
    pub proxy: ProxySection,
    /// Rules in file order.
    #[serde(default, rename = "rule")]
    pub rules: Vec<Spanned<RuleSection>>,
}

/// `[proxy]`: the wiring of a run. Command-line flags override each key.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProxySection {
    /// Listen address; defaults to `127.0.0.1:3030`.
    pub listen: Option<ListenAddr>,
    /// The remote; may also come from `--upstream`.
    pub upstream: Option<UpstreamSpec>,
    /// Capture file template (`{name}`, `{time}`, `{pid}`); `.pcap` writes classic libpcap,
    /// anything else pcapng. Absent: no capture unless `--capture` asks.
    #[serde(default, deserialize_with = "non_empty_path")]
    pub capture: Option<String>,
    /// How to read the traffic: `auto` (default), `http`, `h2` or `tcp`.
    pub protocol: Option<Protocol>,
    /// `reverse` (default: every connection goes to `upstream`) or `forward` (an HTTP proxy:
    /// clients say where to go with absolute-form requests or CONNECT).
    pub mode: Option<Mode>,
    /// Directory `builtin:store` keeps uploads in (default: a fresh folder under the system
    /// temp dir, printed at start).
    #[serde(default, deserialize_with = "non_empty_path")]
    pub store: Option<String>,
    /// `[proxy.tls]`: TLS interception.
    pub tls: Option<crate::tls::TlsSection>,
}

/// A path key that, when written, names something: `store = ""` served uploads into the
/// current directory and `capture = ""` failed only at start.
fn non_empty_path<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let path = String::deserialize(d)?;
    if path.trim().is_empty() {
        return Err(de::Error::custom(
            "must name a path (leave the key out for the default)",
        ));
    }
    Ok(Some(path))
}

/// How faultline reads a connection's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// Detect HTTP/1.x or HTTP/2 (the client preface) from the first bytes; anything else (or a
    /// peer breaking the protocol) is relayed as TCP.
    #[default]
    Auto,
    /// HTTP/1.x only: malformed requests get `400 Bad Request`.
    Http,
    /// HTTP/2 with prior knowledge (h2c, gRPC without TLS): a client that does not start with the
    /// preface is relayed as TCP.
    H2,
    /// Bytes only: HTTP rules never apply.
    Tcp,
}

/// Where connections go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Every connection goes to `upstream`.
    #[default]
    Reverse,
    /// Clients use faultline as `HTTP_PROXY`.
    Forward,
}

/// A socket address to listen on, checked at load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenAddr(pub SocketAddr);

impl std::str::FromStr for ListenAddr {
    type Err = String;

    /// `IP:PORT`, or `HOST:PORT` for a name that resolves (`localhost:3030`), taking its first
    /// IPv4 address when it has one, as `--upstream` accepts names too.
    fn from_str(text: &str) -> Result<Self, String> {
        if let Ok(addr) = text.parse() {
            return Ok(ListenAddr(addr));
        }
        let bad = |why: String| {
            format!("invalid listen address {text:?}: {why}; expected IP:PORT or HOST:PORT such as \"127.0.0.1:3030\", \"[::1]:3030\" or \"localhost:3030\"")
        };
        use std::net::ToSocketAddrs;
        let addrs: Vec<SocketAddr> = text
            .to_socket_addrs()
            .map_err(|e| bad(e.to_string()))?
            .collect();
        addrs
            .iter()
            .find(|a| a.is_ipv4())
            .or_else(|| addrs.first())
            .copied()
            .map(ListenAddr)
            .ok_or_else(|| bad("the name has no address".to_string()))
    }
}

impl<'de> Deserialize<'de> for ListenAddr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(de::Error::custom)
    }
}

/// Upstreams faultline can start by itself, so a scenario runs with nothing else installed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Builtin {
    /// A TCP echo server that keeps half-close semantics.
    Echo,
    /// An HTTP store (PUT/POST store, GET/HEAD serve): a valid DVC HTTP remote.
    Store,
}

impl Builtin {
    /// Every built-in, for error messages and `--help`.
    pub const ALL: [(&'static str, Builtin); 2] =
        [("echo", Builtin::Echo), ("store", Builtin::Store)];
}

/// Where the upstream leg connects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamSpec {
    /// `host:port`; the host is resolved at each connection.
    Address { host: String, port: u16 },
    /// `builtin:NAME`.
    Builtin(Builtin),
    /// Forward-proxy mode: each client names its target (absolute-form request or CONNECT).
    /// Never written in a file; chosen by `mode = "forward"`.
    PerRequest,
}

impl fmt::Display for UpstreamSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UpstreamSpec::Address { host, port } if host.contains(':') => {
                write!(f, "[{host}]:{port}")
            }
            UpstreamSpec::Address { host, port } => write!(f, "{host}:{port}"),
            UpstreamSpec::PerRequest => write!(f, "per request (forward proxy)"),
            UpstreamSpec::Builtin(b) => {
                let name = Builtin::ALL
                    .iter()
                    .find(|(_, v)| v == b)
                    .map(|(n, _)| *n)
                    .unwrap_or("?");
                write!(f, "builtin:{name}")
            }
        }
    }
}

impl std::str::FromStr for UpstreamSpec {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        if let Some(name) = text.strip_prefix("builtin:") {
            return Builtin::ALL
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, b)| UpstreamSpec::Builtin(*b))
                .ok_or_else(|| {
                    let known: Vec<String> = Builtin::ALL
                        .iter()
                        .map(|(n, _)| format!("builtin:{n}"))
                        .collect();
                    format!(
                        "unknown built-in upstream {text:?}: known are {}",
                        known.join(", ")
                    )
                });
        }
        let bad = || {
            format!("invalid upstream {text:?}: expected HOST:PORT (e.g. \"127.0.0.1:8080\", \"[::1]:8080\", \"localhost:8080\"), builtin:echo or builtin:store")
        };
        if let Some((scheme, rest)) = text.split_once("://") {
            // A URL: every connection would fail to resolve "http://127.0.0.1" later.
            let authority = rest.split('/').next().unwrap_or(rest);
            // Without a port, the scheme's (a trial got "write \"example.com\"", refused next).
            let authority = match (authority.rsplit_once(':'), scheme) {
                (Some((_, port)), _) if port.parse::<u16>().is_ok() => authority.to_string(),
                (_, "https") => format!("{authority}:443"),
                _ => format!("{authority}:80"),
            };
            return Err(format!(
                "invalid upstream {text:?}: an upstream is HOST:PORT, not a URL (faultline relays the connection; the {scheme}:// is the client's): write {authority:?}"
            ));
        }
        let (host, port) = text.rsplit_once(':').ok_or_else(bad)?;
        let port: u16 = port.parse().map_err(|_| bad())?;
        let bracketed = host.starts_with('[') && host.ends_with(']');
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(bad());
        }
        if port == 0 {
            // A listener's "any free port"; nothing can be connected to on it.
            return Err(format!(
                "invalid upstream {text:?}: port 0 cannot be connected to (it means \"any free port\" only when listening): give the port the upstream listens on"
            ));
        }
        // An IP address (IPv6 in brackets or bare) or a DNS name: anything else ("my host",
        // "a/b") could only fail to resolve on every connection.
        let ip = host.parse::<std::net::IpAddr>().is_ok();
        let name = !bracketed
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
            && !host.starts_with(['-', '.']);
        if !ip && !name {
            return Err(format!(
                "{}; {host:?} is neither an IP address nor a host name (letters, digits, '-', '.')",
                bad()
            ));
        }
        Ok(UpstreamSpec::Address {
            host: host.to_string(),
            port,
        })
    }
}

impl<'de> Deserialize<'de> for UpstreamSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(de::Error::custom)
    }
}

/// `[[rule]]`: when (`match`) and what (`fault`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSection {
    /// Shown in logs, the summary and capture comments; defaults to `rule N (FAULT)`.
    pub name: Option<String>,
    /// When the rule applies; empty matches every connection.
    #[serde(default, rename = "match")]
    pub matcher: MatchSection,
    /// What the rule does: exactly one `fault.NAME` table.
    pub fault: Fault,
}

/// The `match` table of a rule.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchSection {
    /// 1-based ordinals of accepted connections.
    pub connection: Option<ConnectionSet>,
    /// Every nth connection (n, 2n, 3n, …).
    pub every: Option<NonZeroU64>,
    /// Chance per connection, drawn from the seeded stream of (connection, rule).
    pub probability: Option<Probability>,
    /// Glob on the TLS server name (SNI) of the ClientHello, with or without interception.
    pub sni: Option<Spanned<String>>,
    /// Which direction stream faults act on; `both` when absent.
    pub direction: Option<Spanned<DirectionMatch>>,
    /// HTTP request method(s), e.g. `"PUT"` or `["POST", "PUT"]`.
    pub method: Option<StringList>,
    /// Glob on the request path (`/files/**`).
    pub path: Option<Spanned<String>>,
    /// Glob on the query string (without `?`).
    pub query: Option<Spanned<String>>,
    /// Glob on the Host header (or the absolute-form authority).
    pub host: Option<Spanned<String>>,
    /// Header name → glob on its value; every listed header must match.
    pub header: Option<std::collections::BTreeMap<HeaderName, Spanned<String>>>,
    /// 1-based ordinal(s) among the requests of the run that matched the other keys.
    pub request: Option<ConnectionSet>,
    /// The nth time this method + target was seen in the run (`attempt = 1`: first tries).
    pub attempt: Option<ConnectionSet>,
    /// Response status code(s), for faults on responses.
    pub status: Option<Spanned<ConnectionSet>>,
}

/// A method name or a list of them (HTTP tokens).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StringList(pub Vec<String>);

/// A header name in `match.header`: an HTTP token, so a typo such as `"content type"` or `""`
/// is an error at load instead of a rule that silently never matches.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct HeaderName(pub String);

impl<'de> Deserialize<'de> for HeaderName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        token("header", &name).map_err(de::Error::custom)?;
        Ok(HeaderName(name))
    }
}

/// Checks that `value` is an HTTP token (RFC 9110 section 5.6.2), which every method and header
/// name on the wire is: anything else could never match.
fn token(kind: &str, value: &str) -> Result<(), String> {
    let tchar = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if !value.is_empty() && value.bytes().all(tchar) {
        Ok(())
    } else {
        Err(format!(
            "{value:?} is not an HTTP {kind} name: it would never match (a name is letters, digits and !#$%&'*+-.^_`|~, with no spaces or colon)"
        ))
    }
}

impl<'de> Deserialize<'de> for StringList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ListVisitor;
        impl<'de> Visitor<'de> for ListVisitor {
            type Value = StringList;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or a list of strings")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<StringList, E> {
                token("method", v).map_err(E::custom)?;
                Ok(StringList(vec![v.to_string()]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<StringList, A::Error> {
                let mut all = Vec::new();
                while let Some(v) = seq.next_element::<String>()? {
                    token("method", &v).map_err(de::Error::custom)?;
                    all.push(v);
                }
                if all.is_empty() {
                    return Err(de::Error::custom("an empty list matches nothing"));
                }
                Ok(StringList(all))
            }
        }
        d.deserialize_any(ListVisitor)
    }
}

/// `connection = 2` or `connection = [1, 3]`: 1-based ordinals (also used for `request`,
/// `attempt` and `status`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionSet(pub Vec<u64>);

impl<'de> Deserialize<'de> for ConnectionSet {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct SetVisitor;
        fn ordinal<E: de::Error>(v: i64) -> Result<u64, E> {
            if v >= 1 {
                Ok(v as u64)
            } else {
                Err(E::custom(format!("ordinals start at 1, got {v}")))
            }
        }
        impl<'de> Visitor<'de> for SetVisitor {
            type Value = ConnectionSet;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a positive integer (1, 2, …) or a list of them")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ConnectionSet, E> {
                Ok(ConnectionSet(vec![ordinal(v)?]))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ConnectionSet, E> {
                self.visit_i64(i64::try_from(v).unwrap_or(i64::MAX))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ConnectionSet, A::Error> {
                let mut all = Vec::new();
                while let Some(v) = seq.next_element::<i64>()? {
                    all.push(ordinal(v)?);
                }
                if all.is_empty() {
                    return Err(de::Error::custom(
                        "an empty list matches no connection: remove the rule or list ordinals",
                    ));
                }
                Ok(ConnectionSet(all))
            }
        }
        d.deserialize_any(SetVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A trial's `upstream = "http://127.0.0.1:8080"` was accepted by `check`, `run` and the
    /// API, then every connection failed to resolve "http://127.0.0.1". A URL, or a host no
    /// connection could resolve, is refused where it is written.
    #[test]
    fn an_upstream_is_host_port_and_a_url_is_refused_with_the_authority() {
        for (text, host, port) in [
            ("127.0.0.1:8080", "127.0.0.1", 8080),
            ("[::1]:8080", "::1", 8080),
            ("localhost:6379", "localhost", 6379),
            ("s3.eu-west_1.example:443", "s3.eu-west_1.example", 443),
        ] {
            match text.parse::<UpstreamSpec>() {
                Ok(UpstreamSpec::Address { host: h, port: p }) => {
                    assert_eq!((h.as_str(), p), (host, port), "{text}")
                }
                other => panic!("{text}: {other:?}"),
            }
        }
        let url = "http://127.0.0.1:8080/dvc"
            .parse::<UpstreamSpec>()
            .unwrap_err();
        assert!(url.contains("not a URL"), "{url}");
        assert!(url.contains(r#"write "127.0.0.1:8080""#), "{url}");
        // Without a port, the scheme's: what it suggests parses.
        for (url, write) in [
            ("https://example.com", "example.com:443"),
            ("http://h/x", "h:80"),
        ] {
            let error = url.parse::<UpstreamSpec>().unwrap_err();
            assert!(error.contains(&format!("write {write:?}")), "{error}");
            assert!(write.parse::<UpstreamSpec>().is_ok(), "{write}");
        }
        let spaced = "my host:80".parse::<UpstreamSpec>().unwrap_err();
        assert!(spaced.contains(r#""my host" is neither"#), "{spaced}");
        for bad in ["my host:80", "a/b:80", "[host]:80", "-x:80", ":80", "x"] {
            let error = bad.parse::<UpstreamSpec>().unwrap_err();
            assert!(error.contains("expected HOST:PORT"), "{bad}: {error}");
        }
        // A trial's 127.0.0.1:0 was told "expected HOST:PORT", which it is: port 0 is the
        // trouble, and the message says so.
        for zero in ["127.0.0.1:0", "localhost:0", "[::1]:0"] {
            let error = zero.parse::<UpstreamSpec>().unwrap_err();
            assert!(
                error.contains("port 0 cannot be connected to")
                    && !error.contains("expected HOST:PORT"),
                "{zero}: {error}"
            );
        }
    }
}
