//! Pairs each client-leg flow with its upstream-leg flow and names differences no fault explains.
//!
//! In faultline's own captures both legs name their connection (`connection_id`) and pair by
//! it; the rule below is for flows that do not (no SYN captured, another tool's capture).
//!
//! faultline relays bytes unchanged, so without a fault comment both legs of a connection must carry
//! the same requests, bodies and responses. Pairing rule: client-leg flows in order of opening each
//! take the earliest unpaired upstream-leg flow opened at or after them whose first request has the
//! same method and resource (absolute-form and origin-form targets of one request match, see
//! `target`), or that carries no request at all (faultline answered the client itself,
//! so nothing reached the upstream leg).

use serde::Serialize;

use super::attempts;
use super::exchange::Exchange;
use super::model::FlowSummary;
use crate::direction::Leg;

/// One proxied connection's two legs, compared exchange by exchange.
#[derive(Debug, Clone, Serialize)]
pub struct LegComparison {
    /// Flow id on the client leg.
    pub client_flow: u64,
    /// Flow id on the upstream leg.
    pub upstream_flow: u64,
    /// Exchanges compared pairwise.
    pub exchanges_compared: usize,
    /// True when a fault comment touched either flow (differences are then expected).
    pub faulted: bool,
    /// Each difference, one sentence; exchanges named by their report numbers.
    pub differences: Vec<String>,
    /// The same differences with the exchanges they are about, for scripts: one per entry of
    /// `differences`, in order.
    pub difference_details: Vec<LegDifference>,
    /// True when bytes differ although both sides completed and no fault acted: a faultline bug.
    pub faultline_bug: bool,
    /// True when the capture ended while either flow was open (a capture cut short, as after
    /// `kill -9`): their ends differ because the capture stops there, not because of a fault.
    pub capture_ended: bool,
}

/// One difference between the legs and the pair of exchanges it is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LegDifference {
    /// The sentence (as in `differences`).
    pub text: String,
    /// The client leg's exchange (its report number); `None` for a difference of the flows
    /// as a whole (how many requests each carried).
    pub client_exchange: Option<usize>,
    /// The upstream leg's exchange paired with it.
    pub upstream_exchange: Option<usize>,
}

/// Pairs flows and compares them; `exchanges` is indexed by exchange id.
pub fn compare_legs(flows: &[FlowSummary], exchanges: &mut [Exchange]) -> Vec<LegComparison> {
    let first_request = |f: &FlowSummary| {
        f.exchanges
            .first()
            .map(|&i| (exchanges[i].method.clone(), exchanges[i].resource()))
    };
    let mut upstream: Vec<(&FlowSummary, bool)> = flows
        .iter()
        .filter(|f| f.leg == Some(Leg::Upstream))
        .map(|f| (f, false))
        .collect();
    upstream.sort_by_key(|(u, _)| u.opened_ns);
    // A forward proxy answers CONNECT itself (the 200 opens the tunnel): that exchange never
    // reaches the upstream leg, by design, so the client leg is compared without it.
    let mut clients: Vec<FlowSummary> = flows
        .iter()
        .filter(|f| f.leg == Some(Leg::Client))
        .map(|f| {
            let mut relayed = f.clone();
            relayed
                .exchanges
                .retain(|&i| exchanges.get(i).is_none_or(|e| e.method != "CONNECT"));
            relayed
        })
        .collect();
    clients.sort_by_key(|c| c.opened_ns);
    let mut pairs = Vec::new();
    // faultline's own captures name each flow's connection: those legs pair exactly (a client
    // that faultline refused, with no upstream leg, then takes no other connection's).
    let mut by_connection = Vec::new();
    for c in clients {
        let Some(conn) = c.connection else {
            by_connection.push(c);
            continue;
        };
        // A forward proxy whose kept-alive client moved to another origin opened one upstream
        // leg per origin in turn: together, in order, they carry what the client leg did.
        let mut merged: Option<FlowSummary> = None;
        for (u, used) in upstream
            .iter_mut()
            .filter(|(u, used)| !used && u.connection == Some(conn))
        {
            *used = true;
            match &mut merged {
                None => merged = Some((*u).clone()),
                Some(m) => {
                    m.exchanges.extend_from_slice(&u.exchanges);
                    m.faults.extend(u.faults.iter().cloned());
                }
            }
        }
        if let Some(u) = merged {
            if !(c.exchanges.is_empty() && u.exchanges.is_empty()) {
                pairs.push((c, u));
            }
        }
    }
    for c in by_connection {
        let want = first_request(&c);
        let found = upstream
            .iter_mut()
            .filter(|(u, used)| !used && u.connection.is_none() && u.opened_ns >= c.opened_ns)
            .find(|(u, _)| {
                let got = first_request(u);
                got == want || got.is_none() || want.is_none()
            });
        if let Some((u, used)) = found {
            *used = true;
            if !(c.exchanges.is_empty() && u.exchanges.is_empty()) {
                pairs.push((c, (*u).clone()));
            }
        }
    }
    pairs
        .into_iter()
        .map(|(c, u)| compare_pair(&c, &u, exchanges))
        .collect()
}

/// How long after a flow's first request its upstream leg may open (faultline connects upstream
/// at accept, or after it read the first bytes it decides on; the slack covers a slow upstream
/// connect).
const UPSTREAM_CONNECT_SLACK_NS: u64 = 2_000_000_000;

/// Gives the flows of a capture that names no legs (classic pcap, which has no interfaces) the
/// legs faultline recorded them on, when the flows show them: faultline relays a connection's
/// bytes unchanged, so its client leg (client → listen address) is followed by an upstream leg
/// to another server, opened no earlier than the client leg and at latest
/// [`UPSTREAM_CONNECT_SLACK_NS`] after its first request, whose first request is the same
/// (method and resource, Host included). Each such pair names its servers' roles: the client
/// leg's server is a listen address, the upstream leg's an upstream. The inference is used only
/// when it is consistent: no server in both roles, and every flow with a request paired or sent
/// to a listen address (faultline answered it alone). Returns the warning that says what was
/// inferred or why not; `None` when a flow already has a leg (or there are no flows).
pub fn infer_legs(
    flows: &mut [FlowSummary],
    exchanges: &mut [Exchange],
    format: &str,
) -> Option<String> {
    if flows.is_empty() || flows.iter().any(|f| f.leg.is_some()) {
        return None;
    }
    // Why the capture names none, in the words of its format: a classic pcap cannot, a pcapng
    // another tool wrote (dumpcap, tcpdump) does not.
    let (none, keep) = if format == "pcap" {
        (
            "the capture names no legs (no faultline leg interfaces: a classic pcap has none)",
            "capture to .pcapng to keep them",
        )
    } else {
        (
            "the capture names no legs (no faultline leg interfaces: none of its interfaces is named \"client leg\" or \"upstream leg\", so faultline did not write it)",
            "faultline run --capture FILE.pcapng names them",
        )
    };
    let first = |f: &FlowSummary| {
        let e = &exchanges[*f.exchanges.first()?];
        Some((e.method.clone(), e.resource(), e.time_ns))
    };
    let mut order: Vec<usize> = (0..flows.len()).collect();
    order.sort_by_key(|&i| flows[i].opened_ns);
    let mut used = vec![false; flows.len()];
    let mut pairs = Vec::new();
    for &c in &order {
        if used[c] {
            continue;
        }
        let Some((method, resource, at)) = first(&flows[c]) else {
            continue;
        };
        let found = order.iter().copied().find(|&u| {
            let (cf, uf) = (&flows[c], &flows[u]);
            !used[u]
                && u != c
                && uf.server != cf.server
                && uf.opened_ns >= cf.opened_ns
                && uf.opened_ns <= at.saturating_add(UPSTREAM_CONNECT_SLACK_NS)
                && first(uf).is_some_and(|(m, r, t)| m == method && r == resource && t >= at)
        });
        if let Some(u) = found {
            used[c] = true;
            used[u] = true;
            pairs.push((c, u));
        }
    }
    if pairs.is_empty() {
        return Some(
            format!("{none} and they cannot be told from its flows: no HTTP request crossed two of them; every flow is on leg unknown ({keep})"),
        );
    }
    let listen: std::collections::BTreeSet<String> = pairs
        .iter()
        .map(|&(c, _)| flows[c].server.clone())
        .collect();
    let upstream: std::collections::BTreeSet<String> = pairs
        .iter()
        .map(|&(_, u)| flows[u].server.clone())
        .collect();
    let mut legs = vec![None; flows.len()];
    for &(c, u) in &pairs {
        legs[c] = Some(Leg::Client);
        legs[u] = Some(Leg::Upstream);
    }
    let mut unexplained = Vec::new();
    for (i, f) in flows.iter().enumerate() {
        if legs[i].is_some() {
            continue;
        }
        if listen.contains(&f.server) {
            legs[i] = Some(Leg::Client);
        } else if upstream.contains(&f.server) {
            legs[i] = Some(Leg::Upstream);
        } else if !f.exchanges.is_empty() {
            unexplained.push(f.id);
        }
    }
    if let Some(both) = listen.intersection(&upstream).next() {
        return Some(format!(
            "{none} and they cannot be told from its flows: {both} is the server of flows that look like client legs and of others that look like upstream legs; every flow is on leg unknown"
        ));
    }
    if !unexplained.is_empty() {
        return Some(format!(
            "{none} and they cannot be told from its flows: no pair of flows explains {}; every flow is on leg unknown",
            crate::plural::named("flow", &unexplained)
        ));
    }
    for (f, leg) in flows.iter_mut().zip(legs) {
        f.leg = leg;
        for &e in &f.exchanges {
            exchanges[e].leg = leg;
        }
    }
    Some(format!(
        "{none}; they were inferred from its flows: a flow to {} followed by one to {} carrying the same first request is a client leg and its upstream leg ({})",
        Vec::from_iter(listen).join(", "),
        Vec::from_iter(upstream).join(", "),
        crate::plural::count(pairs.len(), "pair")
    ))
}

fn compare_pair(c: &FlowSummary, u: &FlowSummary, exchanges: &mut [Exchange]) -> LegComparison {
    let mut differences = Vec::new();
    let mut bug = false;
    let n = c.exchanges.len().min(u.exchanges.len());
    if c.exchanges.len() != u.exchanges.len() {
        let requests = if c.exchanges.len() == 1 {
            "request"
        } else {
            "requests"
        };
        differences.push(format!(
            "{} {requests} on the client leg, {} on the upstream leg",
            c.exchanges.len(),
            u.exchanges.len()
        ));
    }
    // The exchanges each difference is about: those of the pair compared when it was found.
    let mut about: Vec<Option<(usize, usize)>> = vec![None; differences.len()];
    let mut pair = None;
    for k in 0..n {
        about.resize(differences.len(), pair);
        let (ci, ui) = (c.exchanges[k], u.exchanges[k]);
        pair = Some((ci, ui));
        let (a, b) = (&exchanges[ci], &exchanges[ui]);
        // The report's numbers, as every table of it shows them (not the place on the flow).
        let what = format!(
            "exchange {} / exchange {} ({} {})",
            a.id, b.id, a.method, a.target
        );
        if (&a.method, a.resource()) != (&b.method, b.resource()) {
            differences.push(format!(
                "{what}: upstream leg has {} {}",
                b.method, b.target
            ));
            bug = true;
            continue;
        }
        let (ra, rb) = (&a.request, &b.request);
        if ra.complete && rb.complete && (ra.length != rb.length || ra.sha256 != rb.sha256) {
            let mut s = format!(
                "{what}: request bodies differ ({} bytes sha256 {} on the client leg, {} bytes sha256 {} upstream)",
                ra.length, ra.sha256, rb.length, rb.sha256
            );
            if let Some(offset) = body_difference(exchanges, ci, ui) {
                s.push_str(&format!(", first difference at offset {offset}"));
            }
            differences.push(s);
            bug = true;
        } else if ra.complete != rb.complete || ra.length != rb.length {
            differences.push(format!(
                "{what}: request body {} bytes ({}) on the client leg, {} bytes ({}) upstream",
                ra.length,
                request_completeness(ra),
                rb.length,
                request_completeness(rb),
            ));
        }
        let (a, b) = (&exchanges[ci], &exchanges[ui]);
        match (a.response.status, b.response.status) {
            (Some(x), Some(y)) if x != y => {
                differences.push(format!(
                    "{what}: status {x} on the client leg, {y} upstream"
                ));
                bug = true;
            }
            (Some(_), Some(_))
                if a.response.complete
                    && b.response.complete
                    && a.response.body_length != b.response.body_length =>
            {
                differences.push(format!(
                    "{what}: response body {} bytes on the client leg, {} upstream",
                    a.response.body_length, b.response.body_length
                ));
                bug = true;
            }
            (Some(_), Some(_))
                if a.response.complete != b.response.complete
                    || a.response.body_length != b.response.body_length =>
            {
                // A cut (a truncate, a reset mid-body) on either leg: expected under a fault,
                // listed like a cut request body.
                differences.push(format!(
                    "{what}: response body {} bytes ({}) on the client leg, {} bytes ({}) upstream",
                    a.response.body_length,
                    completeness(a.response.complete),
                    b.response.body_length,
                    completeness(b.response.complete),
                ));
            }
            (Some(_), Some(_)) => {
                if let Some(offset) = response_difference(exchanges, ci, ui) {
                    differences.push(format!(
                        "{what}: response bodies of {} bytes differ, first at offset {offset}",
                        exchanges[ci].response.body_length
                    ));
                    bug = true;
                }
            }
            (x, y) if x != y => differences.push(format!(
                "{what}: response {} on the client leg, {} upstream",
                x.map_or("none".to_string(), |s| s.to_string()),
                y.map_or("none".to_string(), |s| s.to_string())
            )),
            _ => {}
        }
    }
    about.resize(differences.len(), pair);
    let difference_details = differences
        .iter()
        .zip(about)
        .map(|(text, pair)| LegDifference {
            text: text.clone(),
            client_exchange: pair.map(|(ci, _)| exchanges[ci].id),
            upstream_exchange: pair.map(|(_, ui)| exchanges[ui].id),
        })
        .collect();
    let faulted = !c.faults.is_empty() || !u.faults.is_empty();
    LegComparison {
        client_flow: c.id,
        upstream_flow: u.id,
        exchanges_compared: n,
        faulted,
        faultline_bug: bug && !faulted,
        capture_ended: false,
        differences,
        difference_details,
    }
}

/// A request body's end, "incomplete in the capture" when the capture, not the connection, lost
/// the rest (a trial's `tshark -i lo` capture dropped an upload's tail, and the legs line read
/// as if the upstream leg had been cut).
fn request_completeness(body: &super::exchange::RequestBody) -> &'static str {
    match body.cut_by.as_deref() {
        _ if body.complete => "complete",
        Some("capture gap" | "capture ended") => "incomplete in the capture",
        _ => "incomplete",
    }
}

fn completeness(complete: bool) -> &'static str {
    if complete {
        "complete"
    } else {
        "incomplete"
    }
}

/// Where two complete response bodies of one length first differ, when both were retained (the
/// downloads of content-addressed objects are).
fn response_difference(exchanges: &mut [Exchange], a: usize, b: usize) -> Option<u64> {
    let mut first = exchanges[a].response_body.take()?;
    let result = exchanges[b]
        .response_body
        .as_mut()
        .and_then(|other| attempts::compare(&mut first, other).ok());
    exchanges[a].response_body = Some(first);
    match result? {
        attempts::BodyComparison::Differs { offset, .. } => Some(offset),
        _ => None,
    }
}

fn body_difference(exchanges: &mut [Exchange], a: usize, b: usize) -> Option<u64> {
    let mut first = exchanges[a].body.take()?;
    let result = exchanges[b]
        .body
        .as_mut()
        .and_then(|other| attempts::compare(&mut first, other).ok());
    exchanges[a].body = Some(first);
    match result? {
        attempts::BodyComparison::Differs { offset, .. } => Some(offset),
        attempts::BodyComparison::PrefixOfFirst { len, .. }
        | attempts::BodyComparison::ExtendsFirst { first_len: len, .. } => Some(len),
        attempts::BodyComparison::Empty { .. } => Some(0),
        attempts::BodyComparison::Identical => None,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::inspect::exchange::{Outcome, RequestBody, ResponseInfo};

    /// A complete exchange with a 201 answer and a 3-byte body hashed as "h".
    pub(crate) fn exchange(
        id: usize,
        leg: Leg,
        flow: u64,
        method: &str,
        target: &str,
        host: Option<&str>,
    ) -> Exchange {
        Exchange {
            id,
            leg: Some(leg),
            flow,
            time_ns: id as u64,
            method: method.into(),
            target: target.into(),
            host: host.map(Into::into),
            request: RequestBody {
                length: 3,
                expected: Some(3),
                complete: true,
                md5: "h".into(),
                sha256: "h".into(),
                ..RequestBody::default()
            },
            response: ResponseInfo {
                outcome: Outcome::Status,
                status: Some(201),
                body_length: 0,
                complete: true,
                content_range: None,
                close_delimited: false,
                cut_by: None,
            },
            faults: Vec::new(),
            request_range: (0, None),
            response_range: None,
            body: None,
            response_body: None,
            request_headers: Vec::new(),
            response_headers: Vec::new(),
            response_text: Vec::new(),
            response_until_close: false,
            response_cut_by: None,
        }
    }

    fn flow(id: u64, leg: Leg, exchanges: Vec<usize>) -> FlowSummary {
        FlowSummary {
            id,
            leg: Some(leg),
            client: "127.0.0.1:1".into(),
            server: "127.0.0.1:2".into(),
            opened_ns: id,
            saw_syn: true,
            http: true,
            exchanges,
            faults: Vec::new(),
            h2: false,
            connection: None,
        }
    }

    /// A trial's forward proxy refused one client (no upstream leg); every later client leg
    /// was then compared with the next connection's upstream leg. faultline's captures name
    /// each flow's connection, and legs pair by it.
    #[test]
    fn a_body_the_capture_lost_the_end_of_is_incomplete_in_the_capture() {
        let body = |complete, cut_by: Option<&str>| RequestBody {
            complete,
            cut_by: cut_by.map(Into::into),
            ..RequestBody::default()
        };
        assert_eq!(request_completeness(&body(true, None)), "complete");
        assert_eq!(
            request_completeness(&body(false, Some("connection reset"))),
            "incomplete"
        );
        assert_eq!(
            request_completeness(&body(false, Some("capture gap"))),
            "incomplete in the capture"
        );
    }

    #[test]
    fn legs_pair_by_their_connection_when_the_capture_names_it() {
        let mut exchanges = vec![
            exchange(0, Leg::Client, 0, "GET", "/origin-form", Some("h:1")),
            exchange(1, Leg::Client, 1, "GET", "http://h:1/x", Some("h:1")),
            exchange(2, Leg::Upstream, 2, "GET", "/x", Some("h:1")),
            exchange(3, Leg::Client, 3, "GET", "http://h:1/x", Some("h:1")),
            exchange(4, Leg::Upstream, 4, "GET", "/x", Some("h:1")),
        ];
        let on = |id, leg, exchanges, conn| FlowSummary {
            connection: Some(conn),
            ..flow(id, leg, exchanges)
        };
        // The refused client's request was not parsed as one (it has no exchange), which let
        // it take any later upstream leg by the timing rule.
        let flows = [
            on(0, Leg::Client, vec![], 1),
            on(1, Leg::Client, vec![1], 2),
            on(2, Leg::Upstream, vec![2], 2),
            on(3, Leg::Client, vec![3], 3),
            on(4, Leg::Upstream, vec![4], 3),
        ];
        let compared = compare_legs(&flows, &mut exchanges);
        let pairs: Vec<(u64, u64)> = compared
            .iter()
            .map(|c| (c.client_flow, c.upstream_flow))
            .collect();
        assert_eq!(pairs, [(1, 2), (3, 4)], "{compared:?}");
        assert!(
            compared.iter().all(|c| c.differences.is_empty()),
            "{compared:?}"
        );
    }

    #[test]
    fn forward_mode_absolute_form_matches_origin_form_with_host() {
        let mut exchanges = vec![
            exchange(0, Leg::Client, 1, "PUT", "http://h:8080/x", Some("h:8080")),
            exchange(1, Leg::Upstream, 2, "PUT", "/x", Some("h:8080")),
        ];
        let flows = [
            flow(1, Leg::Client, vec![0]),
            flow(2, Leg::Upstream, vec![1]),
        ];
        let compared = compare_legs(&flows, &mut exchanges);
        assert_eq!(compared.len(), 1);
        assert!(compared[0].differences.is_empty(), "{compared:?}");
        assert!(!compared[0].faultline_bug);
    }

    #[test]
    fn another_authority_or_path_upstream_is_still_a_difference() {
        for (target, host) in [("/x", "other:8080"), ("/y", "h:8080")] {
            let mut exchanges = vec![
                exchange(0, Leg::Client, 1, "PUT", "http://h:8080/x", None),
                exchange(1, Leg::Upstream, 2, "PUT", target, Some(host)),
                exchange(2, Leg::Client, 1, "PUT", "http://h:8080/z", None),
                exchange(3, Leg::Upstream, 2, "PUT", "/z", Some("h:8080")),
            ];
            // the pair is made on a flow with no first request in common: force it by order
            let flows = [
                flow(1, Leg::Client, vec![2, 0]),
                flow(2, Leg::Upstream, vec![3, 1]),
            ];
            let compared = compare_legs(&flows, &mut exchanges);
            assert_eq!(compared.len(), 1, "{target} {host}");
            assert!(compared[0].faultline_bug, "{compared:?}");
            assert!(
                compared[0].differences[0].contains(&format!("upstream leg has PUT {target}")),
                "{compared:?}"
            );
        }
    }

    /// Forward mode through CONNECT: the client leg carries the CONNECT and then the tunnel's
    /// requests, the upstream leg only the tunnel's; the CONNECT is no difference.
    #[test]
    fn a_connect_answered_by_the_forward_proxy_is_no_difference() {
        let mut exchanges = vec![
            exchange(0, Leg::Client, 1, "CONNECT", "h:443", Some("h:443")),
            exchange(1, Leg::Client, 1, "PUT", "/x", Some("h")),
            exchange(2, Leg::Upstream, 2, "PUT", "/x", Some("h")),
        ];
        let flows = [
            flow(1, Leg::Client, vec![0, 1]),
            flow(2, Leg::Upstream, vec![2]),
        ];
        let compared = compare_legs(&flows, &mut exchanges);
        assert_eq!(compared.len(), 1, "{compared:?}");
        assert!(compared[0].differences.is_empty(), "{compared:?}");
        assert_eq!(compared[0].exchanges_compared, 1);
    }

    /// A truncated download: the client leg's response body cut at 102,122 of 3,000,000 bytes,
    /// the upstream leg's whole. Listed as a difference (a fault explains it), like a cut
    /// request body; a complete response of another length is still a faultline bug.
    #[test]
    fn a_cut_response_body_is_a_difference() {
        let mut exchanges = vec![
            exchange(0, Leg::Client, 1, "GET", "/x", Some("h")),
            exchange(1, Leg::Upstream, 2, "GET", "/x", Some("h")),
        ];
        exchanges[0].response.body_length = 102_122;
        exchanges[0].response.complete = false;
        exchanges[1].response.body_length = 3_000_000;
        let flows = [
            flow(1, Leg::Client, vec![0]),
            flow(2, Leg::Upstream, vec![1]),
        ];
        let compared = compare_legs(&flows, &mut exchanges);
        assert_eq!(
            compared[0].differences,
            ["exchange 0 / exchange 1 (GET /x): response body 102122 bytes (incomplete) on the client leg, 3000000 bytes (complete) upstream"],
        );
        assert!(!compared[0].faultline_bug, "a cut is no bug by itself");

        exchanges[0].response.complete = true;
        let compared = compare_legs(&flows, &mut exchanges);
        assert!(compared[0].faultline_bug, "{compared:?}");
    }

    /// Two whole responses of one length whose retained bytes differ.
    #[test]
    fn response_bytes_that_differ_are_a_difference() {
        use crate::inspect::body_store::RetainedBody;
        let mut exchanges = vec![
            exchange(0, Leg::Client, 1, "GET", "/x", Some("h")),
            exchange(1, Leg::Upstream, 2, "GET", "/x", Some("h")),
        ];
        for (ex, bytes) in exchanges.iter_mut().zip([b"abcd", b"abXd"]) {
            let mut kept = RetainedBody::new(Default::default());
            kept.append(bytes);
            ex.response_body = Some(kept);
            ex.response.body_length = 4;
        }
        let flows = [
            flow(1, Leg::Client, vec![0]),
            flow(2, Leg::Upstream, vec![1]),
        ];
        let compared = compare_legs(&flows, &mut exchanges);
        assert_eq!(
            compared[0].differences,
            ["exchange 0 / exchange 1 (GET /x): response bodies of 4 bytes differ, first at offset 2"],
        );
        assert_eq!(
            compared[0].difference_details,
            [LegDifference {
                text: compared[0].differences[0].clone(),
                client_exchange: Some(0),
                upstream_exchange: Some(1),
            }]
        );
        assert!(compared[0].faultline_bug);
    }

    fn unnamed(id: u64, client: &str, server: &str, exchanges: Vec<usize>) -> FlowSummary {
        FlowSummary {
            leg: None,
            client: client.into(),
            server: server.into(),
            ..flow(id, Leg::Client, exchanges)
        }
    }

    /// A classic pcap of plain TCP has nothing to tell its legs by: the report says so (the
    /// README promises it) instead of leaving every flow unknown in silence.
    #[test]
    fn a_classic_pcap_of_plain_tcp_says_its_legs_are_unknown() {
        let mut flows = [
            unnamed(0, "127.0.0.1:5000", "127.0.0.1:3030", vec![]),
            unnamed(1, "127.0.0.1:5001", "127.0.0.1:9000", vec![]),
        ];
        let note = infer_legs(&mut flows, &mut [], "pcap").expect("a warning");
        assert!(note.contains("every flow is on leg unknown"), "{note}");
        assert!(flows.iter().all(|f| f.leg.is_none()));
    }

    /// A pcapng another tool wrote (dumpcap) was told "a classic pcap has none ... capture to
    /// .pcapng to keep them": it is a pcapng, so the warning says its interfaces are not
    /// faultline's legs and how to get a capture that names them.
    #[test]
    fn a_pcapng_without_leg_interfaces_is_not_called_a_classic_pcap() {
        let mut flows = [unnamed(0, "127.0.0.1:5000", "127.0.0.1:3030", vec![])];
        let note = infer_legs(&mut flows, &mut [], "pcapng").expect("a warning");
        assert!(!note.contains("classic pcap"), "{note}");
        assert!(!note.contains("capture to .pcapng"), "{note}");
        assert!(
            note.contains("none of its interfaces is named \"client leg\" or \"upstream leg\""),
            "{note}"
        );
        assert!(
            note.contains("faultline run --capture FILE.pcapng names them"),
            "{note}"
        );
        let note = infer_legs(&mut flows, &mut [], "pcap").expect("a warning");
        assert!(note.contains("a classic pcap has none"), "{note}");
        assert!(note.contains("capture to .pcapng to keep them"), "{note}");
    }

    /// Classic pcap: a flow to the listen address followed by one to the upstream carrying the
    /// same request are a client leg and its upstream leg; a flow to the listen address that
    /// faultline answered alone is a client leg too.
    #[test]
    fn legs_of_a_capture_that_names_none_are_inferred_from_the_flows() {
        let mut exchanges: Vec<Exchange> = (0..5)
            .map(|i| {
                let mut e = exchange(i, Leg::Client, i as u64, "PUT", "/x", Some("h"));
                e.leg = None;
                e
            })
            .collect();
        let mut flows = vec![
            unnamed(0, "127.0.0.1:5000", "127.0.0.1:3030", vec![0]),
            unnamed(1, "127.0.0.1:6000", "127.0.0.1:8080", vec![1]),
            unnamed(2, "127.0.0.1:5001", "127.0.0.1:3030", vec![2]),
            unnamed(3, "127.0.0.1:6001", "127.0.0.1:8080", vec![3]),
            unnamed(4, "127.0.0.1:5002", "127.0.0.1:3030", vec![4]),
        ];
        let note = infer_legs(&mut flows, &mut exchanges, "pcap").expect("a note");
        assert!(note.contains("inferred"), "{note}");
        let legs: Vec<_> = flows.iter().map(|f| f.leg).collect();
        let (c, u) = (Some(Leg::Client), Some(Leg::Upstream));
        assert_eq!(legs, [c, u, c, u, c]);
        assert_eq!(exchanges[3].leg, u);
        assert_eq!(compare_legs(&flows, &mut exchanges).len(), 2);
    }

    /// A server that would be a listen address for one pair and an upstream for another: no
    /// sound answer, so every flow stays on leg unknown, and the warning says why.
    #[test]
    fn inconsistent_roles_leave_every_leg_unknown() {
        let mut exchanges: Vec<Exchange> = (0..4)
            .map(|i| {
                let mut e = exchange(i, Leg::Client, i as u64, "PUT", "/x", Some("h"));
                e.leg = None;
                e
            })
            .collect();
        let mut flows = vec![
            unnamed(0, "127.0.0.1:5000", "127.0.0.1:3030", vec![0]),
            unnamed(1, "127.0.0.1:6000", "127.0.0.1:8080", vec![1]),
            unnamed(2, "127.0.0.1:5001", "127.0.0.1:8080", vec![2]),
            unnamed(3, "127.0.0.1:6001", "127.0.0.1:9090", vec![3]),
        ];
        let note = infer_legs(&mut flows, &mut exchanges, "pcap").expect("a note");
        assert!(note.contains("cannot be told"), "{note}");
        assert!(flows.iter().all(|f| f.leg.is_none()));
        assert!(exchanges.iter().all(|e| e.leg.is_none()));
        // A capture that names its legs is left alone.
        let mut named = vec![flow(0, Leg::Client, vec![0])];
        assert_eq!(infer_legs(&mut named, &mut exchanges, "pcap"), None);
    }

    /// Issue 15 (summary wording): one request is not "1 requests".
    #[test]
    fn a_request_answered_by_faultline_alone_is_counted_in_words() {
        let mut exchanges = vec![exchange(0, Leg::Client, 0, "PUT", "/x", Some("h"))];
        let flows = [
            flow(0, Leg::Client, vec![0]),
            flow(1, Leg::Upstream, vec![]),
        ];
        let compared = compare_legs(&flows, &mut exchanges);
        assert_eq!(compared.len(), 1, "{compared:?}");
        assert_eq!(
            compared[0].differences[0],
            "1 request on the client leg, 0 on the upstream leg"
        );
    }
}
