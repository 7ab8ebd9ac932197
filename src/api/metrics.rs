//! `GET /metrics`: Toxiproxy's proxy byte counters in the Prometheus text format, plus
//! faultline's own (connections, rules matched and fired).

use std::fmt::Write as _;
use std::sync::atomic::Ordering::Relaxed;

use super::registry::Registry;
use crate::direction::Direction;

/// A label value with Prometheus' escapes (`\`, `"`, newline).
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Toxiproxy's name of a direction.
fn stream(direction: Direction) -> &'static str {
    match direction {
        Direction::ClientToUpstream => "upstream",
        Direction::UpstreamToClient => "downstream",
    }
}

/// The exposition of every enabled proxy's counters (they restart at zero when a proxy is
/// re-enabled, which Prometheus reads as a counter reset).
pub fn render(registry: &Registry) -> String {
    let mut received = String::new();
    let mut sent = String::new();
    let mut connections = String::new();
    let mut active = String::new();
    let mut upstream_failures = String::new();
    let mut matched = String::new();
    let mut fired = String::new();
    for proxy in registry.proxies() {
        let Some(running) = proxy.running() else {
            continue;
        };
        let stats = &running.shared.stats;
        let name = label(&proxy.name);
        for direction in Direction::ALL {
            let labels = format!(
                "direction=\"{}\",listener=\"{}\",proxy=\"{name}\",upstream=\"{}\"",
                stream(direction),
                label(proxy.listen()),
                label(proxy.upstream())
            );
            let _ = writeln!(
                received,
                "toxiproxy_proxy_received_bytes_total{{{labels}}} {}",
                stats.received[direction.index()].load(Relaxed)
            );
            let _ = writeln!(
                sent,
                "toxiproxy_proxy_sent_bytes_total{{{labels}}} {}",
                stats.bytes[direction.index()].load(Relaxed)
            );
        }
        let _ = writeln!(
            connections,
            "faultline_proxy_connections_total{{proxy=\"{name}\"}} {}",
            stats.connections.load(Relaxed)
        );
        let _ = writeln!(
            active,
            "faultline_proxy_active_connections{{proxy=\"{name}\"}} {}",
            running.shared.active.load(Relaxed)
        );
        let _ = writeln!(
            upstream_failures,
            "faultline_proxy_upstream_failures_total{{proxy=\"{name}\"}} {}",
            stats.upstream_failures.load(Relaxed)
        );
        for rule in &running.shared.rules.current().rules {
            let counters = stats.rule(rule.key);
            let labels = format!("proxy=\"{name}\",rule=\"{}\"", label(&rule.name));
            let _ = writeln!(
                matched,
                "faultline_rule_matched_connections_total{{{labels}}} {}",
                counters.matched.load(Relaxed)
            );
            let _ = writeln!(
                fired,
                "faultline_rule_fired_total{{{labels}}} {}",
                counters.fired.load(Relaxed)
            );
        }
    }
    let mut out = String::new();
    for (name, help, kind, lines) in [
        (
            "toxiproxy_proxy_received_bytes_total",
            "Bytes read from the source of each direction (upstream: from clients).",
            "counter",
            received,
        ),
        (
            "toxiproxy_proxy_sent_bytes_total",
            "Bytes written to the destination of each direction.",
            "counter",
            sent,
        ),
        (
            "faultline_proxy_connections_total",
            "Client connections accepted by the proxy's current run.",
            "counter",
            connections,
        ),
        (
            "faultline_proxy_active_connections",
            "Client connections open now.",
            "gauge",
            active,
        ),
        (
            "faultline_proxy_upstream_failures_total",
            "Client connections whose upstream could not be reached (the client leg is reset).",
            "counter",
            upstream_failures,
        ),
        (
            "faultline_rule_matched_connections_total",
            "Connections each rule (toxic) selected.",
            "counter",
            matched,
        ),
        (
            "faultline_rule_fired_total",
            "Times each rule (toxic) took effect on traffic.",
            "counter",
            fired,
        ),
    ] {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        out.push_str(&lines);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_escaped() {
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
