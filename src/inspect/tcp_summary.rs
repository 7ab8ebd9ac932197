//! What a capture without HTTP holds, in one phrase for the verdict line: its connections and the faults marked on them.
//!
//! A TCP-only capture (`faultline demo --tcp`, a scenario with `protocol = "tcp"`) has no uploads
//! to count, so "OK: 0 uploads, none retried" said nothing about it. The phrase counts
//! connections (both legs of one proxied connection are one: they share faultline's connection
//! ordinal) and the rule faults their packet comments mark, a fault on both legs once, named by
//! the word its comment starts with (`reset`, `truncated`, `latency`, …).

use super::model::FlowSummary;
use super::text::is_rule_fault;
use crate::direction::Leg;
use crate::plural::count;

/// `no HTTP; 4 connections, 3 faults marked (reset, truncated, latency)`.
pub fn phrase(flows: &[FlowSummary]) -> String {
    let any_client = flows.iter().any(|f| f.leg == Some(Leg::Client));
    // A connection: faultline's ordinal when the flow carries one, else the flow itself (its
    // upstream leg, unpaired, only when no client leg is in the capture).
    let mut connections: Vec<(bool, u64)> = flows
        .iter()
        .filter_map(|f| match f.connection {
            Some(c) => Some((true, c)),
            None if f.leg == Some(Leg::Upstream) && any_client => None,
            None => Some((false, f.id)),
        })
        .collect();
    connections.sort_unstable();
    connections.dedup();
    // One fault per (connection, comment): the same mark on both legs is one fault.
    let mut faults: Vec<((bool, u64), &str)> = Vec::new();
    let mut kinds: Vec<&str> = Vec::new();
    for f in flows {
        let connection = f.connection.map_or((false, f.id), |c| (true, c));
        for comment in f.faults.iter().filter(|c| is_rule_fault(c)) {
            if faults.contains(&(connection, comment.as_str())) {
                continue;
            }
            faults.push((connection, comment.as_str()));
            if let Some(kind) = kind_of(comment).filter(|k| !kinds.contains(k)) {
                kinds.push(kind);
            }
        }
    }
    let marked = match faults.len() {
        0 => "no faults marked".to_string(),
        n => format!("{} marked ({})", count(n, "fault"), kinds.join(", ")),
    };
    format!(
        "no HTTP; {}, {marked}",
        count(connections.len(), "connection")
    )
}

/// The first word after the rule's name: `faultline: rule "NAME" reset …` → `reset`.
fn kind_of(comment: &str) -> Option<&str> {
    let rest = comment
        .trim_start_matches("faultline: ")
        .strip_prefix("rule \"")?;
    let (_, after) = rest.split_once("\" ")?;
    // `timeout: bytes of … dropped`: the word, not its colon (a trial read "timeout:").
    after
        .split_whitespace()
        .next()
        .map(|word| word.trim_end_matches(':'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow(id: u64, leg: Leg, connection: Option<u64>, faults: &[&str]) -> FlowSummary {
        FlowSummary {
            id,
            leg: Some(leg),
            client: "127.0.0.1:1".into(),
            server: "127.0.0.1:2".into(),
            opened_ns: id,
            saw_syn: true,
            http: false,
            exchanges: Vec::new(),
            faults: faults.iter().map(|f| f.to_string()).collect(),
            h2: false,
            connection,
        }
    }

    /// The TCP demo's capture said "OK: 0 uploads, none retried". Its four connections (two
    /// legs each) and three rule faults (one marked on both legs) are what it holds.
    #[test]
    fn a_tcp_capture_is_its_connections_and_faults() {
        let reset = "faultline: rule \"2nd\" reset client->upstream after 65536 bytes";
        let cut = "faultline: rule \"3rd\" truncated upstream->client after 102400 bytes";
        let slow = "faultline: rule \"4th\" timeout: bytes of client->upstream dropped";
        let flows = [
            flow(0, Leg::Client, Some(1), &[]),
            flow(1, Leg::Upstream, Some(1), &[]),
            flow(2, Leg::Client, Some(2), &[reset]),
            flow(3, Leg::Upstream, Some(2), &[reset]),
            flow(4, Leg::Client, Some(3), &[cut]),
            flow(5, Leg::Upstream, Some(3), &[cut, "faultline: run stopped"]),
            flow(6, Leg::Client, Some(4), &[slow]),
            flow(7, Leg::Upstream, Some(4), &[]),
        ];
        assert_eq!(
            phrase(&flows),
            "no HTTP; 4 connections, 3 faults marked (reset, truncated, timeout)"
        );
        assert_eq!(
            phrase(&flows[..2]),
            "no HTTP; 1 connection, no faults marked"
        );
        // Flows without faultline's ordinal (another tool's capture): the client legs count.
        let plain = [
            flow(0, Leg::Client, None, &[reset]),
            flow(1, Leg::Upstream, None, &[reset]),
        ];
        assert_eq!(
            phrase(&plain),
            "no HTTP; 1 connection, 2 faults marked (reset)"
        );
    }
}
