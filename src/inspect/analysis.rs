//! Turns finished flows into the report: attempt groups and their byte comparisons, content-address checks, leg comparisons, findings and the verdict.

use super::attempts::{self, BodyComparison, BodySource};
use super::blobs::{self, BlobCheck};
use super::content_address::{self, AddressCheck, HashAlgo};
use super::digest::Hasher;
use super::exchange::{Exchange, FlowOutcome, Outcome};
use super::h2_flow::H2Outcome;
use super::h2_model::{H2Connection, H2Stream};
use super::leg;
use super::model::{
    Attempt, AttemptGroup, CaptureInfo, ContentCheck, FlowSummary, Report, Summary, Verdict,
    SCHEMA_VERSION,
};
use super::objects;
use super::p2phttp::{self, P2pRequest};
use super::reassembly::FlowInfo;
use super::s3;
use super::webdav;
use super::LegFilter;

/// Assembles a report of HTTP/1 flows only (tests).
#[cfg(test)]
pub(crate) fn build(
    capture: CaptureInfo,
    leg_filter: LegFilter,
    finished: Vec<(FlowInfo, FlowOutcome)>,
) -> Report {
    build_with_h2(capture, leg_filter, finished, Vec::new(), Vec::new())
}

/// Assembles the report; compares retained bodies, then drops them. `hidden` holds the
/// placeholders of the exchanges on legs `leg_filter` leaves out ([`Exchange::placeholder`]):
/// numbered with the rest, so an exchange has the same number whichever legs are shown, and
/// then dropped.
pub(crate) fn build_with_h2(
    capture: CaptureInfo,
    leg_filter: LegFilter,
    finished: Vec<(FlowInfo, FlowOutcome)>,
    hidden: Vec<Exchange>,
    h2_flows: Vec<H2Outcome>,
) -> Report {
    let mut warnings = Vec::new();
    if let Some(d) = &capture.damage {
        warnings.push(format!("capture incomplete, reading stopped: {d}"));
    }
    if capture.truncated_packets > 0 {
        warnings.push(format!(
            "{} captured shorter than {} crossed the wire (a snap length cut {}): their payload is missing, so bodies cannot be checked; capture without a snap length (tcpdump -s 0, or faultline's own --capture)",
            crate::plural::count(capture.truncated_packets, "packet"),
            if capture.truncated_packets == 1 { "it" } else { "they" },
            if capture.truncated_packets == 1 { "it" } else { "them" },
        ));
    }
    // Flows whose HTTP the capture missed bytes of: nothing found there is no evidence of clean.
    let mut missed: Vec<u64> = h2_flows
        .iter()
        .filter(|h| h.capture_missed)
        .map(|h| h.connection.flow)
        .collect();
    let mut flows = Vec::new();
    let mut exchanges = Vec::new();
    // Flows the capture ended inside: their last exchange has no known end.
    let mut open_at_end: Vec<u64> = Vec::new();
    // TLS flows no key decrypted: nothing in them was checked.
    let mut undecrypted: Vec<u64> = Vec::new();
    let ids = super::connection_id::ConnectionIds::up_to(finished.len() as u64 + 64);
    for (info, outcome) in finished {
        warnings.extend(outcome.warnings);
        if outcome.capture_missed {
            missed.push(info.id);
        }
        if outcome.open_at_end {
            open_at_end.push(info.id);
        }
        if outcome.undecrypted {
            undecrypted.push(info.id);
        }
        let on = leg::of_interface(info.interface.as_deref());
        flows.push(FlowSummary {
            id: info.id,
            leg: on,
            connection: ids.of(info.client_isn, on),
            client: info.client.to_string(),
            server: info.server.to_string(),
            opened_ns: info.opened_ns,
            saw_syn: info.saw_syn,
            http: outcome.http,
            exchanges: Vec::new(),
            faults: outcome.faults,
            h2: h2_flows.iter().any(|h| h.connection.flow == info.id),
        });
        exchanges.extend(outcome.exchanges);
    }
    flows.sort_by_key(|f| f.id);
    // Numbered over every leg: a flow is on one leg and the sort is stable, so exchanges tied
    // on (time, flow) keep their order within their flow whether or not placeholders are mixed
    // in. Until the report is built, an exchange's number is also its index here: the analyses
    // below look exchanges up by number, and placeholders give them nothing to act on.
    exchanges.extend(hidden);
    exchanges.sort_by_key(|e| (e.time_ns, e.flow));
    for (id, ex) in exchanges.iter_mut().enumerate() {
        ex.id = id;
        if let Ok(i) = flows.binary_search_by_key(&ex.flow, |f| f.id) {
            flows[i].exchanges.push(id);
        }
    }
    warnings.extend(super::legs::infer_legs(
        &mut flows,
        &mut exchanges,
        capture.format,
    ));
    let mut findings = Vec::new();
    let (mut attempt_groups, differing) = compare_attempts(&mut exchanges);
    let mut content_checks = check_addresses(&mut exchanges, &mut findings);
    let mut objects = objects::check_objects(&mut exchanges, &mut findings);
    let s3 = s3::analyse(&mut exchanges, &mut findings);
    content_checks.extend(s3.checks);
    // Said before the content checks' findings, as they are listed.
    let differing = settle_differing_attempts(&mut attempt_groups, differing, &content_checks);
    findings.splice(0..0, differing);
    objects.extend(s3.objects);
    warnings.extend(s3.warnings);
    warnings.extend(misplaced_refused_pieces(&objects));
    incomplete_accepted(&exchanges, &content_checks, &mut findings);
    super::range_versions::check(&exchanges, &mut findings, &mut warnings);
    let p2phttp = p2phttp_requests(&exchanges, &mut findings);
    let client_hidden = exchanges
        .iter()
        .any(|e| e.is_placeholder() && e.leg == Some(crate::direction::Leg::Client));
    findings.extend(p2phttp::dropped_locks(
        &mut exchanges,
        |ex| cut_for_real(ex) || ex.response.outcome == Outcome::ConnectionReset,
        client_hidden,
        &mut warnings,
    ));
    let webdav_moves = webdav::follow_moves(&exchanges, &mut findings);
    let (h2_connections, h2_streams, mut bytestream) =
        h2_evidence(h2_flows, &mut warnings, &mut findings);
    let mut leg_comparisons = super::legs::compare_legs(&flows, &mut exchanges);
    open_at_end.sort_unstable();
    for lc in &mut leg_comparisons {
        lc.capture_ended = [lc.client_flow, lc.upstream_flow]
            .iter()
            .any(|f| open_at_end.binary_search(f).is_ok());
    }
    if capture.format == "pcap" {
        // Classic pcap carries no packet comments: no fault is recorded, so a difference between
        // the legs cannot be told from a faultline bug.
        let unexplained: Vec<u64> = leg_comparisons
            .iter_mut()
            .filter_map(|l| std::mem::take(&mut l.faultline_bug).then_some(l.client_flow))
            .collect();
        if !unexplained.is_empty() {
            warnings.push(format!(
                "the legs of client {} differ, and a classic pcap records no faults to explain it (a pcapng capture would say whether a fault did)",
                crate::plural::named("flow", &unexplained)
            ));
        }
    }
    for lc in leg_comparisons.iter().filter(|l| l.faultline_bug) {
        findings.push(format!(
            "CORRUPT: faultline bug: client leg flow {} and upstream leg flow {} differ with no fault acting: {}",
            lc.client_flow,
            lc.upstream_flow,
            lc.differences.join("; ")
        ));
    }
    for ex in &mut exchanges {
        ex.body = None;
        ex.response_body = None;
    }
    let mut upload_keys: Vec<(&str, String)> = exchanges
        .iter()
        .filter(|e| e.is_upload())
        .filter(|e| P2pRequest::of(e).is_none_or(|p| p.operation == "put"))
        .map(upload_identity)
        .collect();
    upload_keys.sort_unstable();
    upload_keys.dedup();
    // An upload no attempt of which was accepted failed where the client could see it: not
    // corruption, but the verdict says so beside the count (a trial read "OK: 1 upload" of a PUT
    // that a TLS alert cut).
    let mut accepted_keys: Vec<(&str, String)> = exchanges
        .iter()
        .filter(|e| e.is_upload() && objects::accepted(e))
        .map(upload_identity)
        .collect();
    accepted_keys.sort_unstable();
    accepted_keys.dedup();
    // An upload whose answer the capture ended before (the capture cut short, or read while the
    // run went on) was neither accepted nor refused as far as the capture shows.
    let mut in_flight_keys: Vec<(&str, String)> = exchanges
        .iter()
        .filter(|e| e.is_upload() && e.response.status.is_none())
        .filter(|e| open_at_end.binary_search(&e.flow).is_ok())
        .map(upload_identity)
        .collect();
    in_flight_keys.sort_unstable();
    in_flight_keys.dedup();
    let (in_flight, not_accepted) = upload_keys
        .iter()
        .filter(|k| accepted_keys.binary_search(k).is_err())
        .fold((0, 0), |(f, n), k| {
            if in_flight_keys.binary_search(k).is_ok() {
                (f + 1, n)
            } else {
                (f, n + 1)
            }
        });
    // Retried uploads and those with a differing retry, in the unit `uploads` counts: one per
    // upload (`upload_identity`), whichever legs show it, and only uploads (a p2phttp
    // `putoffset` POST sent twice is no retried upload).
    fn upload_of<'g>(
        g: &'g AttemptGroup,
        exchanges: &[Exchange],
        upload_keys: &[(&str, String)],
    ) -> Option<(&'g str, String)> {
        let key = (
            g.method.as_str(),
            upload_identity(&exchanges[g.attempts[0].exchange]).1,
        );
        upload_keys.binary_search(&key).is_ok().then_some(key)
    }
    let differs = |g: &AttemptGroup| {
        g.attempts
            .iter()
            .any(|a| a.comparison.as_ref().is_some_and(|c| c.is_difference()))
    };
    let mut retried: Vec<(&str, String)> = attempt_groups
        .iter()
        .filter_map(|g| upload_of(g, &exchanges, &upload_keys))
        .collect();
    retried.sort_unstable();
    retried.dedup();
    let mut differing: Vec<(&str, String)> = attempt_groups
        .iter()
        .filter(|g| differs(g))
        .filter_map(|g| upload_of(g, &exchanges, &upload_keys))
        .collect();
    differing.sort_unstable();
    differing.dedup();
    let summary = Summary {
        exchanges: exchanges.iter().filter(|e| !e.is_placeholder()).count(),
        uploads: upload_keys.len(),
        retried: retried.len(),
        retries_differing: differing.len(),
        downloads: distinct_downloads(&objects, |o| {
            !matches!(o.check, Some(AddressCheck::NotChecked { .. }))
        }),
        h2_streams: h2_streams.len(),
        blobs: bytestream.len(),
    };
    // Attempts left uncompared because the capture ended inside their body count too.
    missed.extend(
        attempt_groups
            .iter()
            .flat_map(|g| &g.attempts)
            .filter(|a| a.comparison.is_none() && a.number > 1)
            .filter(|a| {
                exchanges[a.exchange]
                    .request
                    .cut_by
                    .as_deref()
                    .is_some_and(capture_missed)
            })
            .map(|a| exchanges[a.exchange].flow),
    );
    // A capture cut short (damage): what the flows open there carried after the cut is missing.
    if capture.damage.is_some() {
        missed.extend(&open_at_end);
    }
    missed.sort_unstable();
    missed.dedup();
    for object in objects.iter_mut().filter(|o| !o.complete) {
        let on_missed = object.pieces.iter().any(|p| {
            exchanges
                .get(p.exchange)
                .is_some_and(|e| missed.binary_search(&e.flow).is_ok())
        });
        if on_missed {
            objects::capture_missed(&mut object.problems);
        }
    }
    for blob in bytestream.iter_mut().filter(|b| !b.complete) {
        if blob
            .calls
            .iter()
            .any(|c| missed.binary_search(&c.flow).is_ok())
        {
            objects::capture_missed(&mut blob.problems);
        }
    }
    let missing = missing_payload(
        capture.damage.as_deref(),
        capture.truncated_packets,
        &missed,
        &undecrypted,
    );
    let verdict = match (findings.is_empty(), &missing) {
        (false, _) => Verdict::Corrupt,
        (true, Some(_)) => Verdict::Inconclusive,
        (true, None) => Verdict::Clean,
    };
    let verdict_line = match findings.first() {
        Some(first) if findings.len() == 1 => first.clone(),
        Some(first) => format!("{first} (and {} more)", findings.len() - 1),
        None => {
            let retries = match (summary.retried, summary.retries_differing) {
                (0, _) => "none retried".to_string(),
                (n, 0) => retries_without_difference(&attempt_groups, n),
                (n, _) => differing_retries(&attempt_groups, &exchanges, n),
            };
            let unchecked = distinct_downloads(&objects, |o| {
                matches!(o.check, Some(AddressCheck::NotChecked { .. }))
            });
            // A download the fault cut is checked as far as it went, but did not arrive: say so
            // where the count is, not only in its row (a trial read "4 downloads checked" of a
            // get that failed).
            let incomplete = distinct_downloads(&objects, |o| {
                !o.complete && !matches!(o.check, Some(AddressCheck::NotChecked { .. }))
            });
            let checked = match incomplete {
                0 => format!(
                    "{} checked",
                    crate::plural::count(summary.downloads, "download")
                ),
                i => format!(
                    "{} checked ({i} incomplete)",
                    crate::plural::count(summary.downloads, "download")
                ),
            };
            let downloads = match (summary.downloads, unchecked) {
                (0, 0) => String::new(),
                (_, 0) => format!(", {checked}"),
                (0, u) => format!(", {} not checked", crate::plural::count(u, "download")),
                (_, u) => format!(", {checked}, {u} not checked"),
            };
            let downloads = format!("{downloads}{}", cut_downloads(&exchanges, &objects));
            let h2 = h2_phrase(&summary, &bytestream);
            let counts = if summary.exchanges == 0 && !h2.is_empty() {
                // HTTP/2 only: nothing to say about HTTP/1 uploads.
                h2.trim_start_matches(", ").to_string()
            } else if summary.exchanges == 0 && summary.downloads == 0 && unchecked == 0 {
                // No HTTP at all (a TCP capture): what it holds, not "0 uploads".
                super::tcp_summary::phrase(&flows)
            } else if summary.uploads == 0 {
                // Downloads or other requests only: what there was, not "0 uploads, none retried".
                format!(
                    "{}, no uploads{downloads}{h2}",
                    crate::plural::count(summary.exchanges, "HTTP exchange")
                )
            } else {
                let mut unanswered = Vec::new();
                if not_accepted > 0 {
                    unanswered.push(format!("{not_accepted} not accepted"));
                }
                if in_flight > 0 {
                    unanswered.push(format!("{in_flight} cut by the end of the capture"));
                }
                let uploads = match unanswered.is_empty() {
                    true => crate::plural::count(summary.uploads, "upload"),
                    false => format!(
                        "{} ({})",
                        crate::plural::count(summary.uploads, "upload"),
                        unanswered.join(", ")
                    ),
                };
                format!("{uploads}, {retries}{downloads}{h2}")
            };
            match &missing {
                Some(why) => format!(
                    "INCONCLUSIVE: {why}, so it cannot show the transfers clean; nothing corrupt in what it holds: {counts}"
                ),
                None => format!("OK: {counts}"),
            }
        }
    };
    // From here on an exchange is found by its number (`id`), no longer by its index.
    exchanges.retain(|e| !e.is_placeholder());
    Report {
        schema_version: SCHEMA_VERSION,
        verdict,
        verdict_line,
        findings,
        summary,
        capture,
        leg_filter: leg_filter.as_str(),
        warnings,
        flows,
        exchanges,
        attempt_groups,
        content_checks,
        leg_comparisons,
        objects,
        p2phttp,
        webdav_moves,
        h2_connections,
        h2_streams,
        bytestream,
        run: None,
        other_runs: Vec::new(),
        timelines: Vec::new(),
        s3: s3.requests,
        expectations: Vec::new(),
        paths: s3.paths,
    }
}

/// Why the capture cannot show its transfers clean, if it cannot: the file cut short or damaged
/// (`damage`: reading stopped there, so whatever followed is missing), `truncated` packets cut
/// by a snap length, the flows whose HTTP it missed bytes of, and TLS flows no key decrypted.
fn missing_payload(
    damage: Option<&str>,
    truncated: u64,
    missed: &[u64],
    undecrypted: &[u64],
) -> Option<String> {
    let mut why = Vec::new();
    if let Some(damage) = damage {
        why.push(format!("reading stopped: {damage}"));
    }
    if truncated > 0 {
        why.push(format!(
            "{} cut by a snap length",
            crate::plural::count(truncated, "packet")
        ));
    }
    const NAMED: usize = 10;
    if !missed.is_empty() {
        let mut flows = crate::plural::named("flow", &missed[..missed.len().min(NAMED)]);
        if missed.len() > NAMED {
            flows.push_str(&format!(" and {} more", missed.len() - NAMED));
        }
        why.push(format!("bytes missing on {flows}"));
    }
    if !undecrypted.is_empty() {
        let mut undecrypted = undecrypted.to_vec();
        undecrypted.sort_unstable();
        let mut flows = crate::plural::named("flow", &undecrypted[..undecrypted.len().min(NAMED)]);
        if undecrypted.len() > NAMED {
            flows.push_str(&format!(" and {} more", undecrypted.len() - NAMED));
        }
        why.push(format!(
            "TLS not decrypted on {flows}: pass a key log with --keylog FILE, the run's [proxy.tls] keylog or, without interception, the client's SSLKEYLOGFILE"
        ));
    }
    (!why.is_empty()).then(|| format!("the capture is missing payload ({})", why.join("; ")))
}

/// HTTP/2 connections and streams in time order, and the ByteStream blobs their calls make up.
fn h2_evidence(
    h2_flows: Vec<H2Outcome>,
    warnings: &mut Vec<String>,
    findings: &mut Vec<String>,
) -> (Vec<H2Connection>, Vec<H2Stream>, Vec<BlobCheck>) {
    let mut connections = Vec::new();
    let mut streams = Vec::new();
    let mut calls = Vec::new();
    for flow in h2_flows {
        warnings.extend(flow.warnings);
        connections.push(flow.connection);
        streams.extend(flow.streams);
        calls.extend(flow.calls);
    }
    connections.sort_by_key(|c| c.flow);
    streams.sort_by_key(|s| (s.opened_ns, s.flow, s.stream));
    let blobs = blobs::check_blobs(calls, findings);
    (connections, streams, blobs)
}

/// `, 5 HTTP/2 streams, 2 ByteStream blobs verified` for the verdict line (empty without HTTP/2).
fn h2_phrase(summary: &Summary, blobs: &[BlobCheck]) -> String {
    if summary.h2_streams == 0 {
        return String::new();
    }
    let verified = blobs
        .iter()
        .filter(|b| b.check == Some(AddressCheck::Matches))
        .count();
    let blobs = match (blobs.len(), verified) {
        (0, _) => String::new(),
        (n, v) => format!(
            ", {} ({v} verified whole)",
            crate::plural::count(n, "ByteStream blob")
        ),
    };
    format!(
        ", {}{blobs}",
        crate::plural::count(summary.h2_streams, "HTTP/2 stream")
    )
}

/// Writes of one resource in time order, split after each write that went whole and was
/// accepted: what follows it is a new write of the resource (an S3 key overwritten, an index
/// rewritten), not a retry of it. A trial's two `aws s3 cp` of other contents to one key read
/// CORRUPT "attempt 2 was accepted but differs from attempt 1".
fn split_at_overwrites(group: Vec<usize>, exchanges: &[Exchange]) -> Vec<Vec<usize>> {
    let mut out: Vec<Vec<usize>> = vec![Vec::new()];
    for id in group {
        let current = out.last_mut().expect("out starts with one group");
        current.push(id);
        let ex = &exchanges[id];
        if ex.request.complete && objects::accepted(ex) {
            out.push(Vec::new());
        }
    }
    out.retain(|g| !g.is_empty());
    out
}

/// Pieces of an object that carried its bytes from another offset (a client resending the rest
/// of a consumed body as offset 0) where the server refused them, so the object is intact: no
/// finding, but a client bug worth a line. A maintainer's trial read "OK" of a git-annex put
/// whose retry sent the tail of the file labelled offset 0, said only in a content-check row.
/// Once per object, from the leg nearest the client.
fn misplaced_refused_pieces(objects: &[objects::ObjectCheck]) -> Vec<String> {
    let mut said: Vec<String> = Vec::new();
    let mut out = Vec::new();
    let mut ordered: Vec<&objects::ObjectCheck> = objects.iter().filter(|o| !o.corrupt).collect();
    ordered.sort_by_key(|o| o.leg != Some(crate::direction::Leg::Client));
    for object in ordered {
        let name = object.address.name();
        if said.contains(&name) {
            continue;
        }
        let misplaced: Vec<&String> = object
            .problems
            .iter()
            .filter(|p| p.contains(objects::SENT_AS_OFFSET))
            .collect();
        if misplaced.is_empty() {
            continue;
        }
        for problem in misplaced {
            out.push(format!(
                "{name} ({} leg): {problem}; the server refused them and the object verifies, but the client sent bytes from the wrong offset",
                leg::name(object.leg)
            ));
        }
        said.push(name);
    }
    out
}

/// An accepted attempt whose body differs from attempt 1's: where it is (group, attempt) and
/// the finding it makes unless its own content check says its bytes are the right ones.
struct DifferingAttempt {
    group: usize,
    attempt: usize,
    exchange: usize,
    finding: String,
}

/// The findings of accepted attempts that differ from attempt 1, except those whose bytes an
/// address the client named verifies (see [`content_address::ContentAddress::is_clients`]): then attempt 1 held
/// the wrong bytes and the server kept the right ones. A trial's client sent a corrupted body
/// once, was refused with 500, retried with the right bytes, and read CORRUPT blaming the good
/// retry. An S3 ETag vouches for nothing here: it is the MD5 of whatever arrived, so a retry
/// that sent an empty body (a client that did not rewind its file) "matched" it and read OK.
fn settle_differing_attempts(
    groups: &mut [AttemptGroup],
    differing: Vec<DifferingAttempt>,
    content_checks: &[ContentCheck],
) -> Vec<String> {
    let mut findings = Vec::new();
    for d in differing {
        let matched = |clients: bool| {
            content_checks.iter().any(|c| {
                c.exchange == d.exchange
                    && c.check == AddressCheck::Matches
                    && c.address.is_clients() == clients
            })
        };
        if !matched(true) {
            let mut finding = d.finding;
            if matched(false) {
                finding.push_str(
                    "; the ETag S3 answered matches the bytes it received, which shows only that they crossed unchanged: nothing the client sent (Content-MD5, x-amz-checksum-*, a digest in its path) says they are the object's",
                );
            }
            findings.push(finding);
            continue;
        }
        let attempt = &mut groups[d.group].attempts[d.attempt];
        attempt.corrupt = false;
        // Before the trailing ` [exchange …]`, as the other notes on the comparison are.
        let at = attempt
            .description
            .rfind(" [")
            .unwrap_or(attempt.description.len());
        let note = format!(
            "; attempt {} matches its content address: attempt 1 held the wrong bytes",
            attempt.number
        );
        attempt.description.insert_str(at, &note);
    }
    findings
}

fn compare_attempts(exchanges: &mut [Exchange]) -> (Vec<AttemptGroup>, Vec<DifferingAttempt>) {
    let mut differing = Vec::new();
    let keys = exchanges
        .iter()
        .filter(|e| e.is_upload())
        .map(|e| ((e.leg, e.method.clone(), e.resource()), e.time_ns, e.id));
    let mut out = Vec::new();
    let groups = attempts::group_by_key(keys.collect::<Vec<_>>())
        .into_iter()
        .flat_map(|g| split_at_overwrites(g, exchanges))
        .collect::<Vec<_>>();
    for group in groups {
        if group.len() < 2 {
            continue;
        }
        let first_id = group[0];
        let mut first_body = exchanges[first_id].body.take();
        let (first_len, first_expected, first_complete, first_status, first_cut_by) = {
            let f = &exchanges[first_id];
            (
                f.request.length,
                f.request.expected,
                f.request.complete,
                f.response.status,
                f.request.cut_by.clone(),
            )
        };
        let mut list = Vec::new();
        for (n, &id) in group.iter().enumerate() {
            let number = n + 1;
            let ex = &mut exchanges[id];
            let mut attempt = Attempt {
                number,
                exchange: id,
                status: ex.response.status,
                length: ex.request.length,
                complete: ex.request.complete,
                comparison: None,
                description: String::new(),
                not_compared: None,
                corrupt: false,
            };
            if number == 1 {
                attempt.description = format!("attempt 1: {}", describe_exchange(ex));
                list.push(attempt);
                continue;
            }
            let why_not = match (&mut first_body, &mut ex.body) {
                (Some(a), Some(b)) => match a.incomplete_copy().or(b.incomplete_copy()) {
                    Some(why) => Some(why),
                    None => match attempts::compare_after(a, b, !first_complete) {
                        Ok(c) => {
                            attempt.comparison = Some(c);
                            None
                        }
                        Err(e) => Some(format!("cannot read retained body: {e}")),
                    },
                },
                _ => Some("body not retained".to_string()),
            };
            // A body the capture missed part of (a gap, or the capture ended) was not seen whole:
            // only bytes that differ where both bodies were captured are evidence; a shorter or
            // longer body is the capture's doing, not the client's.
            let missed = [first_cut_by.as_deref(), ex.request.cut_by.as_deref()]
                .into_iter()
                .flatten()
                .find(|c| capture_missed(c));
            if let Some(missed) = missed {
                if !matches!(attempt.comparison, Some(BodyComparison::Differs { .. })) {
                    let held = match attempt.comparison.take() {
                        Some(BodyComparison::Identical | BodyComparison::PrefixOfFirst { .. })
                        | Some(BodyComparison::ExtendsFirst { .. }) => format!(
                            " (the capture missed part of a body; the {} bytes both attempts hold are the same)",
                            first_len.min(ex.request.length)
                        ),
                        _ => " (the capture missed part of a body)".to_string(),
                    };
                    attempt.not_compared = Some(format!("{missed}{held}"));
                }
            }
            if why_not.is_some() {
                attempt.not_compared = why_not;
            }
            let mut description = match (&attempt.comparison, &attempt.not_compared) {
                (Some(c), _) if !first_complete && !c.is_difference() => cut_then(
                    &unfinished(first_status, first_len),
                    number,
                    ex.request.complete,
                    ex.request.length,
                ),
                (Some(c), _) => c.describe(number),
                (None, Some(why)) => format!("attempt {number} not compared: {why}"),
                (None, None) => String::new(),
            };
            if let Some(BodyComparison::Differs {
                shifted_from: None, ..
            }) = &attempt.comparison
            {
                if let Some(cut) =
                    attempts::resumed_from_cut(first_len, first_expected, ex.request.length)
                {
                    description.push_str(&format!(
                        "; its length is exactly what attempt 1 never sent (attempt 1 was cut at {cut} of {} bytes): the retry likely resumed from offset {cut} instead of starting over",
                        first_expected.unwrap_or_default()
                    ));
                }
            }
            attempt.corrupt = objects::accepted(ex)
                && attempt
                    .comparison
                    .as_ref()
                    .is_some_and(|c| c.is_difference());
            attempt.description = format!("{description} [{}]", describe_exchange(ex));
            if attempt.corrupt {
                // "attempt 2 (…) was accepted but differs", not "… but attempt 2 differs".
                let prefix = format!("attempt {number} ");
                let mut said = description
                    .strip_prefix(&prefix)
                    .unwrap_or(&description)
                    .to_string();
                // A retry short of what attempt 1 declared: the object the server kept is short.
                if let Some(declared) = first_expected.filter(|&d| ex.request.length < d) {
                    said.push_str(&format!(
                        "; attempt 1 declared {declared} bytes, attempt {number} sent {}",
                        ex.request.length
                    ));
                }
                differing.push(DifferingAttempt {
                    group: out.len(),
                    attempt: list.len(),
                    exchange: id,
                    finding: format!(
                    "CORRUPT: {} {} ({} leg): attempt {number} (exchange {id}, flow {}, status {}) was accepted but {}",
                    ex.method,
                    ex.target,
                    leg::name(ex.leg),
                    ex.flow,
                    ex.response.status.unwrap_or_default(),
                    said
                    ),
                });
            }
            list.push(attempt);
        }
        exchanges[first_id].body = first_body;
        let f = &exchanges[first_id];
        out.push(AttemptGroup {
            leg: f.leg,
            method: f.method.clone(),
            target: f.target.clone(),
            attempts: list,
        });
    }
    (out, differing)
}

/// What happened to an attempt whose body never went whole: answered before it was all sent (a
/// 503 to `Expect: 100-continue`, a 413), or cut.
fn unfinished(status: Option<u16>, len: u64) -> String {
    match status {
        Some(s) if len == 0 => format!("answered {s} before its body was sent"),
        Some(s) => format!("answered {s} after {len} bytes of its body"),
        None => format!("cut after {len} bytes"),
    }
}

/// The verdict's words for `n` retried uploads some of whose retries differed from attempt 1
/// and made no finding: refused (what they were told: an error status, a reset, or a 200 that
/// refused them, p2phttp `{"stored":false}`), or accepted with bytes their content address
/// verifies (attempt 1 held the wrong ones).
fn differing_retries(groups: &[AttemptGroup], exchanges: &[Exchange], n: usize) -> String {
    let differs = |a: &&Attempt| a.comparison.as_ref().is_some_and(|c| c.is_difference());
    let accepted = |a: &&Attempt| objects::accepted(&exchanges[a.exchange]);
    let refused: Vec<&Attempt> = groups
        .iter()
        .flat_map(|g| &g.attempts)
        .filter(differs)
        .filter(|a| !accepted(a))
        .collect();
    // Uploads, not groups: one upload shows on both legs.
    let with = |keep: &dyn Fn(&&Attempt) -> bool| {
        let mut uploads: Vec<(&str, String)> = groups
            .iter()
            .filter(|g| g.attempts.iter().filter(differs).any(|a| keep(&a)))
            .map(|g| {
                let identity = upload_identity(&exchanges[g.attempts[0].exchange]).1;
                (g.method.as_str(), identity)
            })
            .collect();
        uploads.sort_unstable();
        uploads.dedup();
        uploads.len()
    };
    let (n_refused, n_verified) = (with(&|a| !accepted(a)), with(&|a| accepted(a)));
    let mut parts = Vec::new();
    if n_refused > 0 {
        let mut answers: Vec<String> = refused
            .iter()
            .map(|a| {
                let ex = &exchanges[a.exchange];
                match P2pRequest::of(ex).and_then(|p| p.answer) {
                    Some(json) => format!("{} {json}", ex.response_text()),
                    None => ex.response_text(),
                }
            })
            .collect();
        answers.sort();
        answers.dedup();
        parts.push(format!(
            "{n_refused} of them with a retry that differed and was not accepted (answered {})",
            answers.join("; ")
        ));
    }
    if n_verified > 0 {
        parts.push(format!(
            "{n_verified} of them with an accepted retry that differed from attempt 1 and matches its content address"
        ));
    }
    format!("{n} retried, {}", parts.join(", "))
}

/// A retry after an unfinished attempt 1 that sent the same bytes: said as what happened, not as
/// "identical" (attempt 1 never sent them all).
fn cut_then(first: &str, number: usize, complete: bool, len: u64) -> String {
    if complete {
        format!(
            "attempt 1 was {first}; attempt {number} complete ({len} bytes, the same bytes up to there)"
        )
    } else {
        format!(
            "attempt 1 was {first}; attempt {number} was cut after {len} bytes (the same bytes up to there)"
        )
    }
}

/// The verdict's words for `n` retried uploads none of whose retries differed: identical
/// retries, or retries after an unfinished attempt 1 (named as the leg closest to the server saw
/// them).
fn retries_without_difference(groups: &[AttemptGroup], n: usize) -> String {
    let rank = |g: &AttemptGroup| match g.leg {
        Some(crate::direction::Leg::Upstream) => 0,
        None => 1,
        Some(crate::direction::Leg::Client) => 2,
    };
    let mut by_request: Vec<&AttemptGroup> = Vec::new();
    for g in groups {
        match by_request.iter_mut().find(|o| {
            o.method == g.method
                && super::target::origin_form(&o.target) == super::target::origin_form(&g.target)
        }) {
            Some(o) if rank(g) < rank(o) => *o = g,
            Some(_) => {}
            None => by_request.push(g),
        }
    }
    // A retry left uncompared (the capture missed part of a body, a copy was not kept) is
    // neither identical nor a resend after a cut: said apart.
    let uncompared = |g: &AttemptGroup| g.attempts.iter().skip(1).any(|a| a.comparison.is_none());
    let skipped = by_request.iter().filter(|g| uncompared(g)).count();
    if skipped > 0 {
        let rest = n.saturating_sub(skipped);
        by_request.retain(|g| !uncompared(g));
        return if by_request.is_empty() || rest == 0 {
            format!("{n} retried, not compared")
        } else {
            format!(
                "{}; {skipped} more retried, not compared",
                compared_retries(by_request, rest)
            )
        };
    }
    compared_retries(by_request, n)
}

/// [`retries_without_difference`] of the requests whose retries were all compared.
fn compared_retries(by_request: Vec<&AttemptGroup>, n: usize) -> String {
    let cut: Vec<&AttemptGroup> = by_request
        .iter()
        .copied()
        .filter(|g| g.attempts.first().is_some_and(|a| !a.complete))
        .collect();
    let first = |g: &AttemptGroup| unfinished(g.attempts[0].status, g.attempts[0].length);
    match cut.as_slice() {
        [] => {
            // Attempt 1 was whole, so a longer attempt that starts with its bytes is another
            // body (a file that grew), not the same one again.
            let extended: Vec<&AttemptGroup> = by_request
                .iter()
                .copied()
                .filter(|g| {
                    g.attempts
                        .iter()
                        .any(|a| matches!(a.comparison, Some(BodyComparison::ExtendsFirst { .. })))
                })
                .collect();
            match extended.as_slice() {
                [] => format!("{n} retried, all retries identical"),
                [g] if n == 1 => {
                    let longest = g
                        .attempts
                        .iter()
                        .max_by_key(|a| a.length)
                        .expect("a group has attempts");
                    format!(
                        "1 retried: attempt {} ({} bytes) extends the whole attempt 1 ({} bytes)",
                        longest.number, longest.length, g.attempts[0].length
                    )
                }
                ext => format!(
                    "{n} retried: {} extended the whole attempt 1 with more bytes, {} identical",
                    ext.len(),
                    n.saturating_sub(ext.len())
                ),
            }
        }
        [g] if n == 1 => {
            let last = g.attempts.last().expect("a group has attempts");
            format!(
                "1 retried: {}",
                cut_then(&first(g), last.number, last.complete, last.length)
            )
        }
        cut => {
            let whole = cut
                .iter()
                .filter(|g| g.attempts.last().is_some_and(|a| a.complete))
                .count();
            let phrase = first(cut[0]);
            let what = if cut.iter().all(|g| first(g) == phrase) {
                phrase
            } else {
                let (lo, hi) = cut
                    .iter()
                    .map(|g| g.attempts[0].length)
                    .fold((u64::MAX, 0), |(lo, hi), l| (lo.min(l), hi.max(l)));
                format!("cut after {lo} to {hi} bytes")
            };
            let mut s = if whole == n {
                format!("{n} retried: attempt 1 of each was {what}, then sent complete")
            } else {
                format!(
                    "{n} retried: attempt 1 of {} was {what}, {whole} of them then sent complete",
                    cut.len()
                )
            };
            if cut.len() < n {
                s.push_str(&format!(", {} retried identical", n - cut.len()));
            }
            s
        }
    }
}

/// The verdict's words for answers cut short that no object counts already (a plain GET, not
/// content-addressed): ", 1 download cut by a fault (the client got 1048576 of 3000000 bytes)".
/// A trial read "OK: 4 HTTP exchanges, no uploads" of a run whose GET the fault cut.
/// Counted per exchange on the client leg when it was read (the client is who got the short
/// body; the upstream leg carried it whole), so a cut is not counted twice.
///
/// Only an answer a fault that ends connections marked was "cut by a fault": a trial's upstream
/// that sent 5 of its stated 100 bytes read "1 download cut by a fault" because a latency rule
/// also touched it, and nothing at all with no rules. An answer the connection's end cut with no
/// such mark was cut short by the upstream, and is said so. A close-delimited body a fault ended
/// is said as what it is to the client: a body it cannot tell from a whole one.
fn cut_downloads(exchanges: &[Exchange], objects: &[objects::ObjectCheck]) -> String {
    use super::exchange::ResponseCut;
    let in_objects: Vec<usize> = objects
        .iter()
        .flat_map(|o| o.pieces.iter().map(|p| p.exchange))
        .collect();
    let short: Vec<(usize, &Exchange)> = exchanges
        .iter()
        .enumerate()
        .filter(|(_, e)| !e.is_placeholder())
        .filter(|(_, e)| e.response.outcome == Outcome::Status && !e.response.complete)
        .filter(|(i, _)| !in_objects.contains(i))
        .collect();
    let by_fault = |e: &Exchange| {
        matches!(e.response_cut_by, Some(ResponseCut::Fault(_)))
            || e.faults
                .iter()
                .any(|f| super::exchange::ends_connection(&f.text))
    };
    // The upstream's own end of the connection: no fault that ends connections, and no note of
    // faultline's own (a GET the user stopped mid-download, `run stopped`, was cut by neither).
    let by_upstream = |e: &Exchange| {
        !by_fault(e)
            && matches!(
                e.response_cut_by,
                Some(ResponseCut::Closed | ResponseCut::Reset)
            )
            && e.faults
                .iter()
                .all(super::exchange::FaultNote::is_rule_fault)
    };
    let mut out = String::new();
    for fault in [true, false] {
        let cut: Vec<&(usize, &Exchange)> = short
            .iter()
            .filter(|(_, e)| if fault { by_fault(e) } else { by_upstream(e) })
            .collect();
        let on_client: Vec<&Exchange> = cut
            .iter()
            .filter(|(_, e)| e.leg == Some(crate::direction::Leg::Client))
            .map(|(_, e)| *e)
            .collect();
        let (cut, who): (Vec<&Exchange>, _) = match on_client.is_empty() {
            true => (cut.iter().map(|(_, e)| *e).collect(), "faultline got"),
            false => (on_client, "the client got"),
        };
        // A GET's answer is a download; any other answer cut (a dropped
        // CompleteMultipartUpload answer, a trial read as "1 download cut") is said as a
        // response.
        let (downloads, responses): (Vec<&Exchange>, Vec<&Exchange>) =
            cut.into_iter().partition(|e| e.method == "GET");
        for (cut, noun) in [(downloads, "download"), (responses, "response")] {
            if cut.is_empty() {
                continue;
            }
            const SHOWN: usize = 3;
            let n = |e: &Exchange| e.response.body_length;
            let mut got: Vec<String> = cut
                .iter()
                .take(SHOWN)
                .map(|e| match (fault, objects::stated_response_length(e)) {
                    (true, Some(total)) => format!("{} of {total} bytes", n(e)),
                    (true, None) if e.response_until_close => format!(
                        "{} bytes ended by a close it cannot tell from a whole body: no length to compare",
                        n(e)
                    ),
                    (true, None) => format!("{} bytes of an unstated length", n(e)),
                    (false, Some(total)) if e.response_header("content-length").is_some() => {
                        format!("its Content-Length said {total}, {} arrived", n(e))
                    }
                    (false, Some(total)) => format!("{} of {total} bytes arrived", n(e)),
                    (false, None) => format!("{} bytes of an unstated length arrived", n(e)),
                })
                .collect();
            if cut.len() > SHOWN {
                got.push(format!("{} more", cut.len() - SHOWN));
            }
            let count = crate::plural::count(cut.len(), noun);
            out.push_str(&match fault {
                true => format!(", {count} cut by a fault ({who} {})", got.join(", ")),
                false => format!(", {count} cut short by the upstream ({})", got.join("; ")),
            });
        }
    }
    out
}

/// Downloaded objects that `keep` keeps, one per object whichever legs show it (its address),
/// as uploads are counted: a trial read "1 upload, 2 downloads checked" of one GET seen on both
/// legs.
fn distinct_downloads(
    objects: &[objects::ObjectCheck],
    keep: impl Fn(&objects::ObjectCheck) -> bool,
) -> usize {
    let mut keys: Vec<(String, &str)> = objects
        .iter()
        .filter(|o| o.transfer == objects::Transfer::Download && keep(o))
        .map(|o| (o.address.name(), o.address.digest.as_str()))
        .collect();
    keys.sort_unstable();
    keys.dedup();
    keys.len()
}

fn describe_exchange(ex: &Exchange) -> String {
    let answer = ex.response_text();
    let body = if ex.request.complete {
        format!("{} bytes", ex.request.length)
    } else if ex.request.cut_by.as_deref() == Some(answer.as_str()) {
        // The reset that cut the body is the answer too: said once (a trial read "cut by
        // connection reset, connection reset").
        return format!(
            "exchange {}, flow {}, {}, cut by {answer}",
            ex.id,
            ex.flow,
            ex.request.bytes_text(" bytes")
        );
    } else {
        format!(
            "{}, cut by {}",
            ex.request.bytes_text(" bytes"),
            ex.request.cut_text()
        )
    };
    format!("exchange {}, flow {}, {body}, {answer}", ex.id, ex.flow)
}

/// The digest of a complete request body with `algo`: the running md5/sha256, or the retained body
/// read again for any other algorithm.
fn request_digest(ex: &mut Exchange, algo: HashAlgo) -> Option<String> {
    match algo {
        HashAlgo::Md5 => return Some(ex.request.md5.clone()),
        HashAlgo::Sha256 => return Some(ex.request.sha256.clone()),
        _ => {}
    }
    let body = ex.body.as_mut().filter(|b| b.incomplete_copy().is_none())?;
    let mut hasher = Hasher::new(algo)?;
    let mut buf = vec![0u8; 256 * 1024];
    let mut at = 0u64;
    while at < body.len() {
        let n = ((body.len() - at) as usize).min(buf.len());
        body.read_at(at, &mut buf[..n]).ok()?;
        hasher.update(&buf[..n]);
        at += n as u64;
    }
    Some(hasher.finish_hex())
}

/// Plain uploads sent whole (PUT/POST, complete) against the address in their target. p2phttp
/// `put`s and chunk keys are objects (see `objects`), checked with their other pieces.
fn check_addresses(exchanges: &mut [Exchange], findings: &mut Vec<String>) -> Vec<ContentCheck> {
    let mut out = Vec::new();
    for ex in exchanges.iter_mut() {
        if !matches!(ex.method.as_str(), "PUT" | "POST") || !ex.request.complete {
            continue;
        }
        let Some(address) = content_address::parse_target(&ex.target) else {
            continue;
        };
        if address.chunk.is_some() || P2pRequest::of(ex).is_some() {
            continue;
        }
        let digest = request_digest(ex, address.algo);
        let check = address.check(ex.request.length, digest.as_deref());
        let rejected = ex.response.status.is_some() && !ex.succeeded();
        let corrupt = check.is_mismatch() && !rejected;
        if corrupt {
            let what = match &check {
                AddressCheck::DigestMismatch { expected, actual } => {
                    format!("content MISMATCH: target says {expected}, body hashes to {actual}")
                }
                AddressCheck::SizeMismatch { expected, actual } => {
                    format!("size MISMATCH: target says {expected} bytes, body has {actual}")
                }
                _ => String::new(),
            };
            findings.push(format!(
                "CORRUPT: {} {} ({} leg, exchange {}, {}): {what}",
                ex.method,
                ex.target,
                leg::name(ex.leg),
                ex.id,
                ex.response_text()
            ));
        }
        out.push(ContentCheck {
            exchange: ex.id,
            address,
            check,
            corrupt,
        });
    }
    out
}

/// What makes exchanges one upload in the summary: method and resource, except for a p2phttp
/// `put`, which is one upload of its key whatever offset it resumes at (`offset=0` cut, then
/// `offset=65536` stored, is one upload, accepted).
fn upload_identity(ex: &Exchange) -> (&str, String) {
    match P2pRequest::of(ex)
        .filter(|p| p.operation == "put")
        .and_then(|p| p.key)
    {
        Some(key) => {
            let resource = ex.resource();
            let path = resource.split('?').next().unwrap_or_default();
            (ex.method.as_str(), format!("{path} {key}"))
        }
        None => (ex.method.as_str(), ex.resource()),
    }
}

/// Why a cut counts as evidence that the body really arrived short (not that the capture ended).
fn cut_for_real(ex: &Exchange) -> bool {
    !ex.request.complete
        && ex
            .request
            .cut_by
            .as_deref()
            .is_some_and(|c| !capture_missed(c))
}

/// True when `cut_by` says the capture, not the connection, lost the rest of a body: a gap in
/// the captured bytes, or the capture ending.
fn capture_missed(cut_by: &str) -> bool {
    cut_by == "capture gap" || cut_by == "capture ended"
}

/// Uploads that arrived short (cut by a reset or close, or a p2phttp `put` with less data than it
/// announced) and were accepted anyway (2xx, p2phttp `stored`): the server kept a truncated object.
fn incomplete_accepted(
    exchanges: &[Exchange],
    content_checks: &[ContentCheck],
    findings: &mut Vec<String>,
) {
    for ex in exchanges.iter().filter(|e| e.is_upload()) {
        let p2p_put = P2pRequest::of(ex).filter(|p| p.operation == "put");
        let announced = p2p_put
            .as_ref()
            .and_then(|_| p2phttp::data_length(ex, false))
            .or(ex.request.expected);
        let short = cut_for_real(ex)
            || (ex.request.complete && announced.is_some_and(|n| ex.request.length < n));
        if !short || !objects::accepted(ex) {
            continue;
        }
        let answer = match &p2p_put {
            Some(p) => format!("answered {}", p.answer.as_deref().unwrap_or("?")),
            None => ex.response_text(),
        };
        findings.push(format!(
            "CORRUPT: server accepted an incomplete body: {} {} ({} leg, exchange {}, flow {}): {} of {} bytes arrived{}, {answer}{}",
            ex.method,
            ex.target,
            leg::name(ex.leg),
            ex.id,
            ex.flow,
            ex.request.length,
            announced.map_or("?".into(), |n| n.to_string()),
            ex.request
                .cut_by
                .as_deref()
                .map_or(String::new(), |c| format!(" (cut by {c})")),
            replaced_later(exchanges, content_checks, ex),
        ));
    }
}

/// `; later replaced: …` when a complete upload to the same resource on the same leg was
/// accepted after `short` (a client that retried whole, as git-annex's WebDAV remote does before
/// its MOVE): the short body was stored for a while, not for good. Empty otherwise.
fn replaced_later(
    exchanges: &[Exchange],
    content_checks: &[ContentCheck],
    short: &Exchange,
) -> String {
    let resource = short.resource();
    let same = |e: &&Exchange| e.leg == short.leg && e.resource() == resource;
    let Some(whole) = exchanges
        .iter()
        .filter(|e| e.time_ns > short.time_ns && e.method == short.method)
        .filter(same)
        .find(|e| e.request.complete && objects::accepted(e) && !cut_for_real(e))
    else {
        return String::new();
    };
    let moved = exchanges
        .iter()
        .filter(|e| e.time_ns > whole.time_ns && e.method == "MOVE" && e.succeeded())
        .find(same)
        .map_or(String::new(), |m| {
            format!(
                ", then MOVE exchange {} put it in place at {}",
                m.id,
                m.request_header("destination").unwrap_or("?")
            )
        });
    // Whether the bytes that replaced it are the right ones: a trial's reader could not tell
    // from the headline that the object in place verifies.
    let verified = content_checks
        .iter()
        .any(|c| c.exchange == whole.id && c.check == AddressCheck::Matches);
    format!(
        "; later replaced: {} exchange {} sent all {} bytes{}, {}{moved}",
        whole.method,
        whole.id,
        whole.request.length,
        if verified {
            " (they match their content address)"
        } else {
            ""
        },
        whole.response_text()
    )
}

/// p2phttp requests named in the report (a `put` the server stored short is a finding).
fn p2phttp_requests(exchanges: &[Exchange], findings: &mut Vec<String>) -> Vec<P2pRequest> {
    let mut out = Vec::new();
    for ex in exchanges {
        let Some(request) = P2pRequest::of(ex) else {
            continue;
        };
        findings.extend(p2phttp::short_put(ex));
        out.push(request);
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::direction::Leg;
    use crate::inspect::legs::tests::exchange;

    /// The report of one capture holding one flow on `leg` ("client leg", "upstream leg") with
    /// `exchanges`: for tests of analyses that need the whole report.
    pub(crate) fn report_of(leg: &str, exchanges: Vec<Exchange>) -> Report {
        build(
            CaptureInfo::for_tests(),
            LegFilter::Both,
            vec![finished(1, leg, exchanges)],
        )
    }

    fn finished(flow: u64, leg: &str, exchanges: Vec<Exchange>) -> (FlowInfo, FlowOutcome) {
        (
            FlowInfo {
                id: flow,
                interface: Some(leg.into()),
                client: "127.0.0.1:1".parse().expect("addr"),
                server: "127.0.0.1:2".parse().expect("addr"),
                opened_ns: flow,
                saw_syn: true,
                client_isn: None,
            },
            FlowOutcome {
                exchanges,
                http: true,
                warnings: Vec::new(),
                faults: Vec::new(),
                capture_missed: false,
                open_at_end: false,
                undecrypted: false,
            },
        )
    }

    /// Issue 15: `--leg client` numbers each client exchange as a report of both legs does. The
    /// upstream exchange, a placeholder there, takes its number and nothing else: no content
    /// check, no attempt, no finding, not counted, not listed.
    #[test]
    fn a_leg_left_out_keeps_every_number_and_adds_nothing() {
        const TARGET: &str = "/files/md5/d4/1d8cd98f00b204e9800998ecf8427e";
        // Attempt 1 got no answer, so attempt 2 is its retry (not a new write of the file).
        let client = |id, flow| {
            let ex = exchange(id, Leg::Client, flow, "PUT", TARGET, None);
            if id == 0 {
                unanswered(ex)
            } else {
                ex
            }
        };
        let both = build(
            CaptureInfo::for_tests(),
            LegFilter::Both,
            vec![
                finished(1, "client leg", vec![client(0, 1)]),
                finished(
                    2,
                    "upstream leg",
                    vec![exchange(1, Leg::Upstream, 2, "PUT", TARGET, None)],
                ),
                finished(3, "client leg", vec![client(2, 3)]),
            ],
        );
        let placeholder = exchange(1, Leg::Upstream, 2, "PUT", TARGET, None).placeholder();
        let only_client = build_with_h2(
            CaptureInfo::for_tests(),
            LegFilter::Client,
            vec![
                finished(1, "client leg", vec![client(0, 1)]),
                finished(3, "client leg", vec![client(2, 3)]),
            ],
            vec![placeholder],
            Vec::new(),
        );
        let ids = |r: &Report| r.exchanges.iter().map(|e| e.id).collect::<Vec<_>>();
        assert_eq!(ids(&both), [0, 1, 2]);
        assert_eq!(ids(&only_client), [0, 2], "numbered as with both legs");
        assert_eq!(only_client.summary.exchanges, 2);
        assert_eq!(only_client.summary.uploads, 1);
        let checked = |r: &Report| {
            r.content_checks
                .iter()
                .map(|c| c.exchange)
                .collect::<Vec<_>>()
        };
        assert_eq!(checked(&both), [0, 1, 2]);
        assert_eq!(checked(&only_client), [0, 2]);
        let attempts = |r: &Report| {
            r.attempt_groups
                .iter()
                .map(|g| g.attempts.iter().map(|a| a.exchange).collect::<Vec<_>>())
                .collect::<Vec<_>>()
        };
        assert_eq!(attempts(&only_client), [[0, 2]]);
        assert_eq!(attempts(&only_client), attempts(&both));
        let client_findings: Vec<&String> = both
            .findings
            .iter()
            .filter(|f| f.contains("(client leg"))
            .collect();
        assert_eq!(client_findings.len(), 2, "{:#?}", both.findings);
        assert_eq!(
            only_client.findings.iter().collect::<Vec<_>>(),
            client_findings,
            "the same findings, numbers included"
        );
        assert_eq!(only_client.exchange(2).map(|e| e.flow), Some(3));
        assert!(only_client.exchange(1).is_none());
    }

    #[test]
    fn attempts_group_by_resource_whatever_the_target_form() {
        // Two attempts on the upstream leg, one sent in each form (a client that switched from a
        // proxy to a direct connection, or faultline's origin-form forwarding next to a replay).
        let report = build(
            CaptureInfo::for_tests(),
            LegFilter::Both,
            vec![
                finished(
                    1,
                    "upstream leg",
                    vec![unanswered(exchange(
                        0,
                        Leg::Upstream,
                        1,
                        "PUT",
                        "http://h:8080/x",
                        None,
                    ))],
                ),
                finished(
                    2,
                    "upstream leg",
                    vec![exchange(1, Leg::Upstream, 2, "PUT", "/x", Some("H:8080"))],
                ),
                finished(
                    3,
                    "upstream leg",
                    vec![exchange(
                        2,
                        Leg::Upstream,
                        3,
                        "PUT",
                        "/x",
                        Some("other:8080"),
                    )],
                ),
            ],
        );
        assert_eq!(
            report.attempt_groups.len(),
            1,
            "{:?}",
            report.attempt_groups
        );
        assert_eq!(report.attempt_groups[0].attempts.len(), 2);
        assert_eq!(report.summary.uploads, 2, "h:8080/x and other:8080/x");
        assert_eq!(report.summary.retried, 1);
    }

    const KEY: &str =
        "SHA256E-s10--f6bfd632e56d745c5b6ec8db52bf92b11c2666a1fe18d80cf4023bb32541f338.bin";

    /// `ex` with its answer lost (the connection reset under it): retried, it is retried.
    fn unanswered(mut ex: Exchange) -> Exchange {
        ex.response.outcome = Outcome::ConnectionReset;
        ex.response.status = None;
        ex.response.complete = false;
        ex
    }

    fn p2p(id: usize, op: &str, answer: &str) -> Exchange {
        let target = format!("/git-annex/u/v4/{op}?key={KEY}&clientuuid=c");
        let mut ex = exchange(id, Leg::Upstream, 1, "POST", &target, Some("h"));
        ex.request.length = 0;
        ex.response_text = answer.as_bytes().to_vec();
        ex
    }

    #[test]
    fn a_short_put_the_server_stored_and_a_dropped_lock_are_findings() {
        let mut put = p2p(0, "put", r#"{"stored":true}"#);
        put.request.length = 4;
        put.request_headers
            .push(("x-git-annex-data-length".into(), "10".into()));
        let lock = p2p(1, "lockcontent", r#"{"locked":true,"lockid":"l"}"#);
        let mut keep = exchange(
            2,
            Leg::Upstream,
            1,
            "POST",
            "/git-annex/u/v4/keeplocked?lockid=l",
            None,
        );
        keep.request.complete = false;
        keep.request.cut_by = Some("connection reset".into());
        keep.response.status = None;
        let report = build(
            CaptureInfo::for_tests(),
            LegFilter::Both,
            vec![finished(1, "upstream leg", vec![put, lock, keep])],
        );
        let findings = report.findings.join("\n");
        assert!(
            findings.contains("server accepted an incomplete body")
                && findings.contains("4 of 10 bytes arrived"),
            "{findings}"
        );
        assert!(
            findings.contains(&format!(
                "p2phttp lockcontent of {KEY} dropped mid-connection"
            )),
            "{findings}"
        );
        assert_eq!(report.p2phttp.len(), 3);
        assert_eq!(report.p2phttp[0].operation, "put");
    }

    /// A keeplocked request: `body` as it crossed, cut by a reset unless `complete` (then only
    /// its answer was lost to the reset).
    fn keeplocked(
        id: usize,
        leg: Leg,
        flow: u64,
        lockid: &str,
        body: &[u8],
        complete: bool,
    ) -> Exchange {
        let target = format!("/git-annex/u/v4/keeplocked?lockid={lockid}&clientuuid=c");
        let mut ex = exchange(id, leg, flow, "POST", &target, Some("h"));
        let mut kept = crate::inspect::body_store::RetainedBody::new(Default::default());
        kept.append(body);
        ex.body = Some(kept);
        ex.request.length = body.len() as u64;
        ex.request.expected = None;
        ex.request.complete = complete;
        ex.request.cut_by = (!complete).then(|| "connection reset".into());
        ex.response.outcome = Outcome::ConnectionReset;
        ex.response.status = None;
        ex
    }

    fn lock(id: usize, leg: Leg, flow: u64, key: &str, lockid: &str) -> Exchange {
        let target = format!("/git-annex/u/v4/lockcontent?key={key}&clientuuid=c");
        let mut ex = exchange(id, leg, flow, "POST", &target, Some("h"));
        ex.response_text = format!(r#"{{"locked":true,"lockid":"{lockid}"}}"#).into_bytes();
        ex
    }

    /// The shape of `git annex drop` with every keeplocked reset after 8 bytes of its body
    /// (git-annex 10.20261026): the client sent `{"unlock":false}`, `{"unlock":true}` and the
    /// last chunk in one segment before faultline's reset, so the upstream leg was cut after the
    /// client unlocked; git-annex's HTTP client then resent the request (same lockid) on a new
    /// connection, cut again. The client relied on no lock that was gone: no finding.
    #[test]
    fn a_keeplocked_reset_after_the_client_unlocked_is_no_finding() {
        let both = br#"{"unlock":false}
{"unlock":true}
"#;
        let report = build(
            CaptureInfo::for_tests(),
            LegFilter::Both,
            vec![
                finished(
                    1,
                    "client leg",
                    vec![
                        lock(0, Leg::Client, 1, KEY, "L"),
                        keeplocked(2, Leg::Client, 1, "L", both, true),
                    ],
                ),
                finished(
                    2,
                    "upstream leg",
                    vec![
                        lock(1, Leg::Upstream, 2, KEY, "L"),
                        keeplocked(3, Leg::Upstream, 2, "L", b"{\"unlock", false),
                    ],
                ),
                finished(
                    3,
                    "client leg",
                    vec![keeplocked(
                        4,
                        Leg::Client,
                        3,
                        "L",
                        b"{\"unlock\":false}\n",
                        false,
                    )],
                ),
                finished(
                    4,
                    "upstream leg",
                    vec![keeplocked(5, Leg::Upstream, 4, "L", b"{\"unlock", false)],
                ),
            ],
        );
        assert!(report.findings.is_empty(), "{:?}", report.findings);
    }

    /// `--leg upstream` on the capture of the test above: the upstream leg alone cannot show
    /// that the client had unlocked, so its cut keeplocked is a warning, not a CORRUPT that the
    /// report of both legs does not make.
    #[test]
    fn a_keeplocked_cut_upstream_with_the_client_leg_left_out_is_a_warning() {
        let hidden = [
            lock(0, Leg::Client, 1, KEY, "L"),
            keeplocked(2, Leg::Client, 1, "L", b"{\"unlock\":true}\n", true),
        ]
        .map(Exchange::placeholder);
        let report = build_with_h2(
            CaptureInfo::for_tests(),
            LegFilter::Upstream,
            vec![finished(
                2,
                "upstream leg",
                vec![
                    lock(1, Leg::Upstream, 2, KEY, "L"),
                    keeplocked(3, Leg::Upstream, 2, "L", b"{\"unlock", false),
                ],
            )],
            hidden.into(),
            Vec::new(),
        );
        assert!(report.findings.is_empty(), "{:?}", report.findings);
        assert!(
            report.warnings.iter().any(|w| w.starts_with(&format!(
                "p2phttp lockcontent of {KEY}: keeplocked exchange 3 (upstream leg, flow 2) ended (connection reset) before the server saw"
            ))),
            "{:?}",
            report.warnings
        );
    }

    /// A keeplocked cut before `{"unlock":true}` crossed is a finding on both legs, and names the
    /// key of the lockcontent that answered its lockid, not of a later lock of another key.
    #[test]
    fn a_keeplocked_cut_before_the_unlock_names_the_key_of_its_lockid() {
        let other = KEY.replace("s10--f6", "s10--a6");
        let report = build(
            CaptureInfo::for_tests(),
            LegFilter::Both,
            vec![
                finished(
                    1,
                    "client leg",
                    vec![
                        lock(0, Leg::Client, 1, KEY, "L"),
                        lock(2, Leg::Client, 1, &other, "M"),
                        keeplocked(4, Leg::Client, 1, "L", b"{\"unlock\":false}\n", false),
                    ],
                ),
                finished(
                    2,
                    "upstream leg",
                    vec![
                        lock(1, Leg::Upstream, 2, KEY, "L"),
                        lock(3, Leg::Upstream, 2, &other, "M"),
                        keeplocked(5, Leg::Upstream, 2, "L", b"{\"unlock", false),
                    ],
                ),
            ],
        );
        assert_eq!(report.findings.len(), 2, "{:?}", report.findings);
        for (f, leg) in report.findings.iter().zip(["client leg", "upstream leg"]) {
            assert!(
                f.starts_with(&format!(
                    "CORRUPT: p2phttp lockcontent of {KEY} dropped mid-connection ({leg}"
                )),
                "{f}"
            );
        }
    }

    /// Two whole PUTs to one path, 100 then 200 bytes, the first a prefix of the second: not
    /// "all retries identical", which the detail line (attempt 1 is a prefix of attempt 2)
    /// contradicted.
    #[test]
    fn a_retry_longer_than_a_whole_first_attempt_is_not_called_identical() {
        let bodies: [Vec<u8>; 2] = [vec![5; 100], vec![5; 200]];
        let puts = bodies
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let mut ex = exchange(i, Leg::Client, 1, "PUT", "/x", Some("h"));
                let mut kept = crate::inspect::body_store::RetainedBody::new(Default::default());
                kept.append(b);
                ex.body = Some(kept);
                (ex.request.length, ex.request.expected) = (b.len() as u64, Some(b.len() as u64));
                // Refused, so attempt 2 is its retry, not a new write of the file.
                if i == 0 {
                    ex.response.status = Some(500);
                }
                ex
            })
            .collect();
        let report = report_of("client leg", puts);
        assert_eq!(
            report.verdict_line,
            "OK: 1 upload, 1 retried: attempt 2 (200 bytes) extends the whole attempt 1 (100 bytes)"
        );
    }

    /// A p2phttp put reset mid-body, then retried with other bytes the server refused with
    /// `200 {"stored":false}`: the verdict said "none was accepted with 2xx" of a 200; it says
    /// what the differing retry was answered.
    #[test]
    fn a_differing_retry_refused_with_a_200_says_what_it_was_answered() {
        let bodies: [&[u8]; 2] = [b"abcd", b"wxyz0123"];
        let puts = bodies
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let mut ex = p2p(i, "put", r#"{"stored":false}"#);
                let mut kept = crate::inspect::body_store::RetainedBody::new(Default::default());
                kept.append(b);
                ex.body = Some(kept);
                ex.request.length = b.len();
                ex.response.status = Some(200);
                ex
            })
            .collect::<Vec<_>>();
        let mut puts = puts;
        puts[0].request.complete = false;
        puts[0].request.cut_by = Some("connection reset".into());
        puts[0].response.outcome = Outcome::ConnectionReset;
        puts[0].response.status = None;
        puts[0].response_text.clear();
        let report = report_of("upstream leg", puts);
        assert!(report.findings.is_empty(), "{:?}", report.findings);
        assert_eq!(
            report.verdict_line,
            r#"OK: 1 upload (1 not accepted), 1 retried, 1 of them with a retry that differed and was not accepted (answered status 200 {"stored":false})"#
        );
    }

    /// Black-box trial: "3 uploads (2 retried, 4 retries differing)": `retried` counted uploads
    /// once across legs, `retries_differing` attempts once per leg (doubled with both legs), and
    /// git-annex p2phttp's empty `putoffset` POST sent twice counted as a retried upload. Both
    /// now count uploads as `uploads` does: one per upload, whichever legs show it.
    #[test]
    fn retried_and_differing_count_uploads_once_across_legs() {
        let put = |id: usize, leg: Leg, flow: u64, body: &[u8]| {
            let mut ex = exchange(id, leg, flow, "PUT", "/x", Some("h"));
            let mut kept = crate::inspect::body_store::RetainedBody::new(Default::default());
            kept.append(body);
            ex.body = Some(kept);
            (ex.request.length, ex.request.expected) = (body.len() as u64, Some(body.len() as u64));
            ex.response.status = Some(500);
            ex
        };
        let mut client = vec![
            put(0, Leg::Client, 1, b"abcd"),
            put(2, Leg::Client, 1, b"wxyz"),
        ];
        let mut upstream = vec![
            put(1, Leg::Upstream, 2, b"abcd"),
            put(3, Leg::Upstream, 2, b"wxyz"),
        ];
        for id in [4, 5] {
            let mut offset = p2p(id, "putoffset", r#"{"offset":0}"#);
            offset.flow = 2;
            offset.request.expected = Some(0);
            offset.response.status = Some(200);
            offset.body = Some(crate::inspect::body_store::RetainedBody::new(
                Default::default(),
            ));
            upstream.push(offset);
        }
        client.sort_by_key(|e| e.id);
        let report = build(
            CaptureInfo::for_tests(),
            LegFilter::Both,
            vec![
                finished(1, "client leg", client),
                finished(2, "upstream leg", upstream),
            ],
        );
        assert!(report.findings.is_empty(), "{:?}", report.findings);
        let sum = &report.summary;
        assert_eq!(
            (sum.uploads, sum.retried, sum.retries_differing),
            (1, 1, 1),
            "{}",
            report.verdict_line
        );
        assert!(
            report
                .verdict_line
                .contains("1 retried, 1 of them with a retry that differed"),
            "{}",
            report.verdict_line
        );
        assert!(
            report
                .render_markdown()
                .contains("1 upload (1 retried, 1 with a differing retry)"),
            "{}",
            report.render_markdown()
        );
    }

    /// A real `git annex copy` with its first put reset: `put …&offset=0` cut, then
    /// `put …&offset=65536` stored. The verdict said "2 uploads (1 not accepted)" of one object;
    /// a p2phttp put is one upload of its key, accepted once a piece was stored.
    #[test]
    fn a_p2phttp_put_resumed_at_an_offset_is_one_upload() {
        let mut cut = p2p(0, "put", "");
        cut.target.push_str("&offset=0");
        cut.request.complete = false;
        cut.request.cut_by = Some("connection reset".into());
        cut.response.outcome = Outcome::ConnectionReset;
        cut.response.status = None;
        let mut rest = p2p(1, "put", r#"{"stored":true}"#);
        rest.target.push_str("&offset=65536");
        (rest.request.length, rest.request.expected) = (3, Some(3));
        rest.response.status = Some(200);
        let report = report_of("upstream leg", vec![cut, rest]);
        assert_eq!(report.summary.uploads, 1, "{}", report.verdict_line);
        assert!(
            report.verdict_line.starts_with("OK: 1 upload, "),
            "{}",
            report.verdict_line
        );
    }

    /// A trial read "OK: 1 upload" of a PUT a TLS alert cut before any answer: the verdict
    /// counts the uploads no attempt of which was accepted, beside the uploads, and only those.
    #[test]
    fn an_upload_never_accepted_is_counted_in_the_verdict() {
        let mut cut = exchange(0, Leg::Client, 1, "PUT", "/up/a", None);
        cut.request.complete = false;
        cut.response = crate::inspect::exchange::ResponseInfo::none();
        let mut refused = exchange(1, Leg::Client, 1, "PUT", "/up/b", None);
        refused.response.status = Some(503);
        let stored = exchange(2, Leg::Client, 1, "PUT", "/up/c", None);
        let report = report_of("client leg", vec![cut, refused, stored]);
        assert!(report.findings.is_empty(), "{:?}", report.findings);
        assert_eq!(
            report.verdict_line,
            "OK: 3 uploads (2 not accepted), none retried"
        );
        let stored = report_of(
            "client leg",
            vec![exchange(0, Leg::Client, 1, "PUT", "/up/a", None)],
        );
        assert_eq!(stored.verdict_line, "OK: 1 upload, none retried");
        // Without uploads the count says what there was, not "0 uploads, none retried".
        let gets = report_of(
            "client leg",
            vec![
                exchange(0, Leg::Client, 1, "GET", "/a", None),
                exchange(1, Leg::Client, 1, "GET", "/b", None),
            ],
        );
        assert_eq!(gets.verdict_line, "OK: 2 HTTP exchanges, no uploads");
    }

    /// A refused piece that carried the object's bytes from another offset is said once per
    /// object (client leg first) as a warning; a corrupt object's problems are findings already.
    #[test]
    fn a_refused_piece_sent_from_the_wrong_offset_is_one_warning_per_object() {
        let address = content_address::parse_target(
            "/annex/SHA256E-s10--0000000000000000000000000000000000000000000000000000000000000000.bin",
        )
        .expect("a key");
        let problem = "the retry from offset 0 (exchange 6) carried other bytes than the object's: they differ at offset 0; they are the object's bytes from offset 4, sent as offset 0";
        let object = |leg, corrupt| objects::ObjectCheck {
            leg: Some(leg),
            transfer: objects::Transfer::Upload,
            address: address.clone(),
            pieces: Vec::new(),
            length: 10,
            complete: true,
            check: Some(AddressCheck::Matches),
            problems: vec![problem.to_string(), "another problem".to_string()],
            corrupt,
        };
        let warnings =
            misplaced_refused_pieces(&[object(Leg::Upstream, false), object(Leg::Client, false)]);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].contains("(client leg): the retry from offset 0 (exchange 6)")
                && warnings[0].ends_with("but the client sent bytes from the wrong offset"),
            "{}",
            warnings[0]
        );
        assert!(misplaced_refused_pieces(&[object(Leg::Client, true)]).is_empty());
    }

    /// Two PUTs to `target` in a row, `answers` their statuses, `bodies` their bytes and
    /// `md5s` what those bytes hash to.
    fn two_puts(target: &str, answers: [u16; 2], bodies: [&[u8]; 2], md5s: [&str; 2]) -> Report {
        let puts = (0..2)
            .map(|i| {
                let mut ex = exchange(i, Leg::Client, 1, "PUT", target, Some("h"));
                let mut kept = crate::inspect::body_store::RetainedBody::new(Default::default());
                kept.append(bodies[i]);
                ex.body = Some(kept);
                let len = bodies[i].len() as u64;
                (ex.request.length, ex.request.expected) = (len, Some(len));
                ex.request.md5 = md5s[i].into();
                ex.response.status = Some(answers[i]);
                ex
            })
            .collect();
        report_of("client leg", puts)
    }

    const MD5_A: &str = "0cc175b9c0f1b6a831c399e269772661";
    const MD5_B: &str = "92eb5ffee6ae2fec3ad71c777531578f";
    /// A DVC-style target whose md5 is [`MD5_B`]'s.
    const ADDRESSED_B: &str = "/files/md5/92/eb5ffee6ae2fec3ad71c777531578f";

    /// A presigned PutObject (no Content-MD5, no checksum) whose client retried without
    /// rewinding its file: attempt 2 sent an empty body, moto stored 0 bytes and answered the
    /// empty body's MD5 as its ETag. inspect said OK, "attempt 2 matches its content address:
    /// attempt 1 held the wrong bytes". The ETag is the server's MD5 of what it got; only an
    /// address the client named vouches for a retry.
    #[test]
    fn an_s3_etag_matching_a_differing_retry_vouches_for_nothing_but_a_client_checksum_does() {
        let attempt = |number: usize, corrupt| Attempt {
            number,
            exchange: number,
            status: Some(200),
            length: 0,
            complete: true,
            comparison: None,
            description: format!("attempt {number} has an empty body [exchange {number}]"),
            not_compared: None,
            corrupt,
        };
        let groups = || {
            vec![AttemptGroup {
                leg: Some(Leg::Client),
                method: "PUT".into(),
                target: "/bkt/pre.bin".into(),
                attempts: vec![attempt(1, false), attempt(2, true)],
            }]
        };
        let differing = || {
            vec![DifferingAttempt {
                group: 0,
                attempt: 1,
                exchange: 2,
                finding: "CORRUPT: PUT /bkt/pre.bin (client leg): attempt 2 was accepted but has an empty body".into(),
            }]
        };
        let check = |source: &str| ContentCheck {
            exchange: 2,
            address: content_address::ContentAddress {
                algo: HashAlgo::Md5,
                digest: "d41d8cd98f00b204e9800998ecf8427e".into(),
                size: None,
                scheme: content_address::Scheme::S3,
                key: Some("/bkt/pre.bin".into()),
                backend: Some(source.into()),
                chunk: None,
            },
            check: AddressCheck::Matches,
            corrupt: false,
        };
        let mut etag_only = groups();
        let findings = settle_differing_attempts(&mut etag_only, differing(), &[check("ETag")]);
        assert_eq!(findings.len(), 1, "{findings:?}");
        assert!(
            findings[0].contains("the ETag S3 answered matches the bytes it received"),
            "{}",
            findings[0]
        );
        let retry = &etag_only[0].attempts[1];
        assert!(retry.corrupt);
        assert!(!retry.description.contains("held the wrong bytes"));
        let mut checked = groups();
        let findings = settle_differing_attempts(
            &mut checked,
            differing(),
            &[check("ETag"), check("Content-MD5")],
        );
        assert!(findings.is_empty(), "{findings:?}");
        assert!(checked[0].attempts[1]
            .description
            .contains("attempt 2 matches its content address: attempt 1 held the wrong bytes"));
    }

    /// A trial's client sent a damaged body, was refused with 500, and retried with the right
    /// bytes: the report blamed the good retry ("attempt 2 was accepted but differs from attempt
    /// 1"). The retry's content address says its bytes are the right ones.
    #[test]
    fn an_accepted_retry_its_content_address_verifies_is_not_corrupt() {
        let report = two_puts(ADDRESSED_B, [500, 201], [b"a", b"b"], [MD5_A, MD5_B]);
        assert!(report.findings.is_empty(), "{:?}", report.findings);
        assert_eq!(
            report.verdict_line,
            "OK: 1 upload, 1 retried, 1 of them with an accepted retry that differed from attempt 1 and matches its content address"
        );
        let attempt = &report.attempt_groups[0].attempts[1];
        assert!(!attempt.corrupt);
        assert!(
            attempt.description.contains(
                "; attempt 2 matches its content address: attempt 1 held the wrong bytes ["
            ),
            "{}",
            attempt.description
        );
        // The same retry of a resource without an address stays a finding.
        let report = two_puts("/x", [500, 201], [b"a", b"b"], [MD5_A, MD5_B]);
        assert!(
            report.findings[0].contains("was accepted but differs from attempt 1"),
            "{:?}",
            report.findings
        );
    }

    /// A trial's `aws s3 cp` of new contents to a key it had written before read CORRUPT
    /// ("attempt 2 was accepted but differs"): a write after an accepted whole write is a new
    /// write of the resource, not a retry of it.
    #[test]
    fn a_write_after_an_accepted_one_is_an_overwrite_not_a_retry() {
        let report = two_puts("/x", [201, 201], [b"b", b"a"], [MD5_B, MD5_A]);
        assert!(report.findings.is_empty(), "{:?}", report.findings);
        assert!(
            report.attempt_groups.is_empty(),
            "{:?}",
            report.attempt_groups
        );
        assert_eq!(report.summary.retried, 0);
        // Refused first, it is retried.
        let report = two_puts("/x", [503, 201], [b"b", b"a"], [MD5_B, MD5_A]);
        assert_eq!(report.attempt_groups.len(), 1);
        assert_eq!(report.summary.retried, 1);
    }

    /// Two PUTs of one body, the second accepted: `bodies` are what the capture holds of each,
    /// the second cut by a capture gap.
    fn retry_cut_by_a_gap(bodies: [Vec<u8>; 2]) -> Report {
        let puts = bodies
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let mut ex = exchange(i, Leg::Client, 1, "PUT", "/x", Some("h"));
                let mut kept = crate::inspect::body_store::RetainedBody::new(Default::default());
                kept.append(b);
                ex.body = Some(kept);
                (ex.request.length, ex.request.expected) = (b.len() as u64, Some(400));
                ex
            })
            .collect::<Vec<_>>();
        let mut puts = puts;
        puts[0].response.outcome = Outcome::ConnectionReset;
        (puts[0].response.status, puts[0].response.complete) = (None, false);
        puts[1].request.complete = false;
        puts[1].request.cut_by = Some("capture gap".into());
        report_of("client leg", puts)
    }

    /// An identical retry whose client leg lost a packet to the capture: it was called CORRUPT
    /// ("attempt 2 is attempt 1's first 100 of 400 bytes ... body ends early") though the
    /// exchange itself said "cut by capture gap". The capture, not the client, cut it short.
    #[test]
    fn a_retry_the_capture_missed_bytes_of_is_not_compared() {
        let report = retry_cut_by_a_gap([vec![5; 400], vec![5; 100]]);
        assert!(report.findings.is_empty(), "{:?}", report.findings);
        // Not clean either: the capture missed bytes of the retry.
        assert_eq!(report.verdict, Verdict::Inconclusive);
        assert_eq!(
            report.verdict_line,
            "INCONCLUSIVE: the capture is missing payload (bytes missing on flow 1), so it cannot show the transfers clean; nothing corrupt in what it holds: 1 upload, 1 retried, not compared"
        );
        let attempt = &report.attempt_groups[0].attempts[1];
        assert!(!attempt.corrupt);
        assert_eq!(attempt.comparison, None);
        let why = attempt.not_compared.as_deref().unwrap_or_default();
        assert!(why.starts_with("capture gap"), "{why}");
        assert!(
            attempt
                .description
                .starts_with("attempt 2 not compared: capture gap"),
            "{}",
            attempt.description
        );
        assert_eq!(report.summary.retries_differing, 0);
    }

    /// Bytes that differ before the gap were captured on both attempts: still corruption.
    #[test]
    fn a_retry_differing_before_a_capture_gap_is_still_corrupt() {
        let mut second = vec![5; 100];
        second[50] = 6;
        let report = retry_cut_by_a_gap([vec![5; 400], second]);
        assert_eq!(report.verdict, Verdict::Corrupt, "{:?}", report.findings);
        assert!(
            report.findings[0].contains("differs from attempt 1 at offset 50"),
            "{:?}",
            report.findings
        );
    }

    #[test]
    fn a_short_put_the_server_refused_is_no_finding() {
        let mut put = p2p(0, "put", r#"{"stored":false}"#);
        put.request.length = 4;
        put.request_headers
            .push(("x-git-annex-data-length".into(), "10".into()));
        let report = build(
            CaptureInfo::for_tests(),
            LegFilter::Both,
            vec![finished(1, "upstream leg", vec![put])],
        );
        assert!(report.findings.is_empty(), "{:?}", report.findings);
    }

    /// A GET of `target` on `leg` answered 200 with `bytes`.
    fn get(id: usize, leg: Leg, flow: u64, target: &str, bytes: &[u8]) -> Exchange {
        use crate::inspect::body_store::{MemoryUse, RetainedBody};
        let mut ex = exchange(id, leg, flow, "GET", target, Some("h"));
        ex.request.length = 0;
        ex.request.expected = None;
        ex.response.status = Some(200);
        ex.response.body_length = bytes.len() as u64;
        let mut body = RetainedBody::new(MemoryUse::default());
        body.append(bytes);
        ex.response_body = Some(body);
        ex
    }

    /// Newcomer trial: one curl GET of a DVC file through faultline read "1 upload, none
    /// retried, 2 downloads checked" with both legs and "1 download checked" with the client
    /// leg: downloads are counted once per object, as uploads are.
    #[test]
    fn a_download_seen_on_both_legs_is_counted_once() {
        let bytes = b"hello dvc".to_vec();
        let md5 = hex::encode(<md5::Md5 as md5::Digest>::digest(&bytes));
        let target = format!("/files/md5/{}/{}", &md5[..2], &md5[2..]);
        let put = |id, leg, flow| exchange(id, leg, flow, "PUT", "/up/a", None);
        let both = build(
            CaptureInfo::for_tests(),
            LegFilter::Both,
            vec![
                finished(
                    1,
                    "client leg",
                    vec![
                        put(0, Leg::Client, 1),
                        get(1, Leg::Client, 1, &target, &bytes),
                    ],
                ),
                finished(
                    2,
                    "upstream leg",
                    vec![
                        put(2, Leg::Upstream, 2),
                        get(3, Leg::Upstream, 2, &target, &bytes),
                    ],
                ),
            ],
        );
        assert!(both.findings.is_empty(), "{:?}", both.findings);
        assert_eq!(both.summary.downloads, 1, "{:?}", both.objects);
        assert_eq!(
            both.verdict_line,
            "OK: 1 upload, none retried, 1 download checked"
        );
        let md = both.render_markdown();
        assert!(md.contains(", 1 download, "), "{md}");
    }

    /// Newcomer trial: "attempt 1: exchange 0, flow 0, 160768 of 300000 bytes, cut by
    /// connection reset, connection reset" said the reason twice, and a chunked body read
    /// "1310306 of ? bytes".
    #[test]
    fn a_cut_attempt_says_its_reason_once_and_an_unknown_length_in_words() {
        let mut cut = exchange(0, Leg::Client, 0, "PUT", "/up/a", None);
        cut.request.length = 160_768;
        cut.request.expected = Some(300_000);
        cut.request.complete = false;
        cut.request.cut_by = Some("connection reset".into());
        cut.response = crate::inspect::exchange::ResponseInfo::none();
        cut.response.outcome = Outcome::ConnectionReset;
        assert_eq!(
            describe_exchange(&cut),
            "exchange 0, flow 0, 160768 of 300000 bytes, cut by connection reset"
        );
        cut.request.expected = None;
        cut.request.chunked = true;
        cut.request.length = 1_310_306;
        assert_eq!(
            describe_exchange(&cut),
            "exchange 0, flow 0, 1310306 bytes (length unknown: chunked), cut by connection reset"
        );
        cut.request.cut_by = Some("capture gap".into());
        assert_eq!(
            describe_exchange(&cut),
            "exchange 0, flow 0, 1310306 bytes (length unknown: chunked), cut by capture gap, connection reset"
        );
        let report = report_of("client leg", vec![cut]);
        let md = report.render_markdown();
        assert!(
            md.contains("| 1310306 (length unknown: chunked) (cut by capture gap) |"),
            "{md}"
        );
        assert!(!md.contains("of ?"), "{md}");
        // The text table keeps its compact `N/? CUT` cell and says once what `?` is.
        let text = report.render_text();
        assert!(text.contains("1310306/? CUT"), "{text}");
        assert_eq!(
            text.matches("N/? CUT: N bytes arrived of a body whose length was never stated")
                .count(),
            1,
            "{text}"
        );
        let html = report.render_html();
        assert!(
            html.contains("1310306 (length unknown: chunked) (cut by capture gap)"),
            "{html}"
        );
    }

    /// Newcomer trial: http-truncate-download.toml with curl getting 1048576 of 3000000 bytes
    /// ended "OK: 4 HTTP exchanges, no uploads". The verdict stays OK and names the cut, once
    /// (the client leg's) though both legs show the exchange.
    #[test]
    fn a_download_a_fault_cut_is_named_in_the_verdict_once() {
        let cut_get = |id, leg, flow, complete: bool| {
            let mut e = get(id, leg, flow, "/files/big.bin", &[0u8; 16]);
            e.response_body = None;
            e.response.body_length = if complete { 3_000_000 } else { 1_048_576 };
            e.response.complete = complete;
            e.response_headers
                .push(("content-length".into(), "3000000".into()));
            if leg == Leg::Client {
                e.faults.push(crate::inspect::exchange::FaultNote {
                    text: "faultline: rule \"short downloads\" truncate".into(),
                    direction: "upstream->client".into(),
                    offset: 1_048_576,
                    scope: "message",
                });
            }
            e
        };
        let both = build(
            CaptureInfo::for_tests(),
            LegFilter::Both,
            vec![
                finished(1, "client leg", vec![cut_get(0, Leg::Client, 1, false)]),
                finished(2, "upstream leg", vec![cut_get(1, Leg::Upstream, 2, true)]),
            ],
        );
        assert_eq!(both.verdict, Verdict::Clean);
        assert_eq!(
            both.verdict_line,
            "OK: 2 HTTP exchanges, no uploads, 1 download cut by a fault (the client got 1048576 of 3000000 bytes)"
        );
        let whole = report_of("client leg", vec![cut_get(0, Leg::Client, 1, true)]);
        assert_eq!(whole.verdict_line, "OK: 1 HTTP exchange, no uploads");
        // A download the user stopped (`run stopped`) was cut by no rule: not named.
        let mut stopped = cut_get(0, Leg::Client, 1, false);
        stopped.faults[0].text = "faultline: run stopped".into();
        let stopped = report_of("client leg", vec![stopped]);
        assert_eq!(stopped.verdict_line, "OK: 1 HTTP exchange, no uploads");
    }

    /// Trial: an upstream that sent 5 of its stated 100 bytes then closed, no rule acting on it,
    /// read "1 download cut by a fault (the client got 5 of 100 bytes)" when a latency rule
    /// touched the GET, and had no word in the verdict with no rules. Only a fault that ends
    /// connections cuts; the rest the upstream cut short, and the verdict says so either way.
    #[test]
    fn a_body_the_upstream_sent_short_is_not_cut_by_a_fault() {
        use crate::inspect::exchange::{FaultNote, ResponseCut};
        let short = |id, leg, flow, latency: bool| {
            let mut e = get(id, leg, flow, "/short", b"hello");
            e.response_body = None;
            e.response.body_length = 5;
            e.response.complete = false;
            e.response_cut_by = Some(ResponseCut::Closed);
            e.response_headers
                .push(("content-length".into(), "100".into()));
            if latency && leg == Leg::Client {
                e.faults.push(FaultNote {
                    text: r#"faultline: rule "lat" latency 10ms on the response to GET /short (attempt 1) (status 200)"#.into(),
                    direction: "upstream->client".into(),
                    offset: 0,
                    scope: "message",
                });
            }
            e
        };
        for latency in [true, false] {
            let both = build(
                CaptureInfo::for_tests(),
                LegFilter::Both,
                vec![
                    finished(1, "client leg", vec![short(0, Leg::Client, 1, latency)]),
                    finished(2, "upstream leg", vec![short(1, Leg::Upstream, 2, latency)]),
                ],
            );
            assert_eq!(both.verdict, Verdict::Clean);
            assert_eq!(
                both.verdict_line,
                "OK: 2 HTTP exchanges, no uploads, 1 download cut short by the upstream (its Content-Length said 100, 5 arrived)",
                "latency rule: {latency}"
            );
        }
    }

    /// Trial: a truncate cut three downloads (Content-Length, chunked, close-delimited) and the
    /// verdict counted two; the close-delimited one, the cut curl cannot detect, is counted and
    /// said as a body the client cannot tell from a whole one.
    #[test]
    fn a_close_delimited_download_a_fault_cut_is_counted_and_said_undetectable() {
        use crate::inspect::exchange::{FaultNote, ResponseCut};
        let mark = r#"faultline: rule "cut" truncated upstream->client after 100000 bytes of the response body to GET /close (attempt 1) (status 200)"#;
        let mut e = get(0, Leg::Client, 1, "/close", b"x");
        e.response_body = None;
        e.response.body_length = 100_000;
        e.response.complete = false;
        e.response_until_close = true;
        e.response_cut_by = Some(ResponseCut::Fault(mark.into()));
        e.faults.push(FaultNote {
            text: mark.into(),
            direction: "upstream->client".into(),
            offset: 100_111,
            scope: "message",
        });
        let report = report_of("client leg", vec![e]);
        assert_eq!(report.verdict, Verdict::Clean);
        assert_eq!(
            report.verdict_line,
            "OK: 1 HTTP exchange, no uploads, 1 download cut by a fault (the client got 100000 bytes ended by a close it cannot tell from a whole body: no length to compare)"
        );
        let text = report.render_text();
        assert!(text.contains("100000/? CUT"), "{text}");
        let json = serde_json::to_value(&report).expect("json");
        assert_eq!(json["exchanges"][0]["response"]["complete"], false);
    }
}
