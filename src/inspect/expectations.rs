//! The audit behind `--expect`: compares what each manifest path should hold with what the capture shows was stored there.
//!
//! For each path, the leg closest to the server is read (upstream, else an unlabelled capture's,
//! else the client leg) and its last write answered 2xx is what the server holds (see `stored`):
//! a plain upload's body as it arrived, an S3 upload's decoded object bytes, a multipart object
//! assembled from its acknowledged parts, a copy's source, nothing after a delete. Its size is
//! compared first (it says the most), then the digest when the manifest gives one. A path never
//! written with success, deleted, or holding other bytes is CORRUPT. When a later write got no
//! answer, the server may hold it instead: if every candidate matches the path is fine, if none
//! does it is corrupt, and otherwise the audit says it cannot tell (`unconfirmed`).

use std::collections::HashMap;

use serde::Serialize;

use super::digest::HashAlgo;
use super::leg;
use super::manifest::{Entry, Manifest};
use super::model::{Report, Verdict};
use super::stored::{Holding, PathState};
use crate::direction::Leg;

/// How a path compares with its manifest line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ExpectationResult {
    /// Size (and digest, if given) as expected.
    Matches,
    /// Another size was stored.
    SizeMismatch,
    /// The size is right, the bytes are not.
    DigestMismatch,
    /// No write of the path was answered 2xx in the capture.
    NeverStored,
    /// The last acknowledged write deleted it.
    Deleted,
    /// A write got no answer and the candidates disagree: the capture cannot tell.
    Unconfirmed,
    /// Stored, but its bytes are not in the capture (not retained, a copy of an unknown source).
    NotChecked,
}

/// One manifest line against the capture.
#[derive(Debug, Clone, Serialize)]
pub struct Expectation {
    /// The path (percent-decoded).
    pub path: String,
    /// Its manifest line.
    pub line: usize,
    /// The size the manifest expects.
    pub expected_size: u64,
    /// The digest the manifest expects, lowercase hex.
    pub expected_digest: Option<String>,
    /// `md5` or `sha256` (by the digest's length), when a digest is given.
    pub digest_algo: Option<HashAlgo>,
    /// The comparison.
    pub result: ExpectationResult,
    /// The leg read.
    #[serde(serialize_with = "leg::serialize")]
    pub leg: Option<Leg>,
    /// The stored size, when known.
    pub stored_size: Option<u64>,
    /// The stored bytes' digest with `digest_algo`, when known.
    pub stored_digest: Option<String>,
    /// The write that stored it (or the last write tried).
    pub exchange: Option<usize>,
    /// That write: `PutObject`, `CompleteMultipartUpload`, `CopyObject`, `DeleteObject`, `PUT`, `POST`, `DELETE`.
    pub how: Option<String>,
    /// True for a size or digest mismatch, a path never stored or deleted.
    pub corrupt: bool,
    /// One sentence.
    pub description: String,
}

impl Report {
    /// `--expect`: audits what the capture shows was stored against `manifest`. Fills
    /// `expectations`, adds a finding for each corrupt path and updates the verdict.
    pub fn audit(&mut self, manifest: &Manifest) {
        audit(self, manifest);
    }
}

fn audit(report: &mut Report, manifest: &Manifest) {
    let mut findings = Vec::new();
    let states = states_by_path(&report.paths);
    let mut expectations = Vec::with_capacity(manifest.entries.len());
    // A capture that misses payload (cut by `kill -9`, gaps) may miss the write too.
    let capture_incomplete = report.verdict == Verdict::Inconclusive;
    // Paths a read showed wrong, on any leg.
    let read_back_wrong: std::collections::HashSet<&str> = report
        .paths
        .iter()
        .filter(|s| s.read_back_wrong)
        .map(|s| s.path.as_str())
        .collect();
    for entry in &manifest.entries {
        let mut e = expect(report, states.get(entry.path.as_str()).copied(), entry);
        if capture_incomplete && e.result == ExpectationResult::NeverStored {
            e.corrupt = false;
            e.description.push_str(
                "; the capture misses payload, so this is no evidence that it was never stored",
            );
        }
        // The upload was right, but the server later served other bytes or another size for
        // the path (`stored` made that finding): "as expected" alone read as all well.
        if e.result == ExpectationResult::Matches && read_back_wrong.contains(e.path.as_str()) {
            e.description
                .push_str("; but a later read of it returned other bytes (see that finding)");
        }
        if e.corrupt {
            findings.push(format!("CORRUPT: {}: {}", e.path, e.description));
        }
        expectations.push(e);
    }
    report.expectations.extend(expectations);
    report.findings.extend(findings);
    report.warnings.extend(unlisted(&states, manifest));
    report.warnings.extend(manifest.warnings());
    if report.findings.is_empty() {
        let matched = report
            .expectations
            .iter()
            .filter(|e| e.result == ExpectationResult::Matches)
            .count();
        report.verdict_line.push_str(&format!(
            ", {matched} of {} expected objects stored as listed",
            report.expectations.len()
        ));
        // An audit that could not check a listed object passed nothing for it: a trial's
        // object built by UploadPartCopy ("bytes not in the capture") exited 0 whatever its
        // size. Unchecked is INCONCLUSIVE, as bytes the capture missed are.
        let unchecked: Vec<&Expectation> = report
            .expectations
            .iter()
            .filter(|e| {
                matches!(
                    e.result,
                    ExpectationResult::NotChecked | ExpectationResult::Unconfirmed
                )
            })
            .collect();
        if let (Verdict::Clean, Some(first)) = (report.verdict, unchecked.first()) {
            let line = format!(
                "INCONCLUSIVE: {} could not be checked against the manifest ({}: {}); nothing corrupt in what the capture holds: {}",
                crate::plural::count(unchecked.len(), "expected object"),
                first.path,
                first.description,
                report
                    .verdict_line
                    .strip_prefix("OK: ")
                    .unwrap_or(&report.verdict_line)
            );
            report.verdict = Verdict::Inconclusive;
            report.verdict_line = line;
        }
    } else {
        report.verdict = Verdict::Corrupt;
        report.verdict_line = match report.findings.len() {
            1 => report.findings[0].clone(),
            n => format!("{} (and {} more)", report.findings[0], n - 1),
        };
    }
}

/// At most this many paths stored but not listed are named one by one; the rest are counted.
const UNLISTED_NAMED: usize = 20;

/// Paths the capture shows were stored (an acknowledged write that was not a delete) that the
/// manifest does not list: not wrong in themselves, but an upload that landed under the wrong
/// path (a proxy's absolute-form target stored as a folder, a key built wrongly) shows up only
/// here. Sorted by path, so the lines are the same on every run.
fn unlisted(states: &HashMap<&str, &PathState>, manifest: &Manifest) -> Vec<String> {
    let listed: std::collections::HashSet<&str> =
        manifest.entries.iter().map(|e| e.path.as_str()).collect();
    let mut stored: Vec<(&str, Option<u64>, usize)> = states
        .iter()
        .filter(|(path, _)| !listed.contains(*path))
        .filter_map(|(path, state)| {
            let held = state.confirmed.as_ref().filter(|h| !h.deleted)?;
            Some((
                *path,
                held.content.as_ref().map(|c| c.length),
                held.exchange,
            ))
        })
        .collect();
    stored.sort_unstable();
    let mut lines: Vec<String> = stored
        .iter()
        .take(UNLISTED_NAMED)
        .map(|(path, length, exchange)| {
            let size = length.map_or("bytes not in the capture".to_string(), |n| {
                format!("{n} bytes")
            });
            format!(
                "--expect: {path} was stored ({size}, exchange {exchange}) but {} does not list it",
                manifest.file
            )
        })
        .collect();
    if stored.len() > UNLISTED_NAMED {
        lines.push(format!(
            "--expect: {} stored but not listed in {}",
            crate::plural::count(stored.len() - UNLISTED_NAMED, "more path"),
            manifest.file
        ));
    }
    lines
}

/// The state of each path on the leg closest to the server (one pass: a manifest and a capture
/// can each name millions of paths).
fn states_by_path(paths: &[PathState]) -> HashMap<&str, &PathState> {
    let rank = |l: Option<Leg>| match l {
        Some(Leg::Upstream) => 0,
        None => 1,
        Some(Leg::Client) => 2,
    };
    let mut closest: HashMap<&str, &PathState> = HashMap::new();
    for state in paths {
        let slot = closest.entry(state.path.as_str()).or_insert(state);
        if rank(state.leg) < rank(slot.leg) {
            *slot = state;
        }
    }
    closest
}

/// One candidate against the entry: the result and the stored size/digest.
fn compare(h: &Holding, entry: &Entry) -> (ExpectationResult, Option<u64>, Option<String>) {
    if h.deleted {
        return (ExpectationResult::Deleted, None, None);
    }
    let Some(c) = &h.content else {
        return (ExpectationResult::NotChecked, None, None);
    };
    let digest = entry.digest.as_ref().and_then(|(algo, _)| match algo {
        HashAlgo::Md5 => c.md5.clone(),
        _ => c.sha256.clone(),
    });
    if c.length != entry.size {
        return (ExpectationResult::SizeMismatch, Some(c.length), digest);
    }
    let result = match (&entry.digest, &digest) {
        (None, _) => ExpectationResult::Matches,
        (Some((_, want)), Some(got)) if want == got => ExpectationResult::Matches,
        (Some(_), Some(_)) => ExpectationResult::DigestMismatch,
        (Some(_), None) => ExpectationResult::NotChecked,
    };
    (result, Some(c.length), digest)
}

fn expect(report: &Report, state: Option<&PathState>, entry: &Entry) -> Expectation {
    let mut e = Expectation {
        path: entry.path.clone(),
        line: entry.line,
        expected_size: entry.size,
        expected_digest: entry.digest.as_ref().map(|d| d.1.clone()),
        digest_algo: entry.digest.as_ref().map(|d| d.0),
        result: ExpectationResult::NeverStored,
        leg: None,
        stored_size: None,
        stored_digest: None,
        exchange: None,
        how: None,
        corrupt: true,
        description: String::new(),
    };
    let answer = |id: usize| {
        report
            .exchange(id)
            .map_or("?".to_string(), |x| x.response_text())
    };
    let Some(state) = state else {
        e.description = format!(
            "never stored, expected {} bytes: no write of this path in the capture",
            entry.size
        );
        return e;
    };
    e.leg = state.leg;
    let candidates: Vec<&Holding> = state.confirmed.iter().chain(&state.unconfirmed).collect();
    if candidates.is_empty() {
        let last = state.writes.last().copied();
        e.exchange = last;
        e.description = format!(
            "never stored, expected {} bytes: {} write{} in the capture ({} leg), none answered 2xx (the last, exchange {}: {})",
            entry.size,
            state.writes.len(),
            if state.writes.len() == 1 { "" } else { "s" },
            leg::name(state.leg),
            last.map_or("?".into(), |l| l.to_string()),
            last.map_or("?".into(), answer),
        );
        return e;
    }
    let results: Vec<_> = candidates.iter().map(|h| compare(h, entry)).collect();
    let shown = 0; // the confirmed write, or the first unanswered one
    let (result, size, digest) = results[shown].clone();
    let holding = candidates[shown];
    e.stored_size = size;
    e.stored_digest = digest;
    e.exchange = Some(holding.exchange);
    e.how = Some(holding.how.to_string());
    let all_match = results.iter().all(|r| r.0 == ExpectationResult::Matches);
    let none_match = results.iter().all(|r| {
        !matches!(
            r.0,
            ExpectationResult::Matches | ExpectationResult::NotChecked
        )
    });
    let unanswered = candidates.len() - usize::from(state.confirmed.is_some());
    e.result = if all_match {
        ExpectationResult::Matches
    } else if none_match {
        result
    } else if unanswered > 0 {
        ExpectationResult::Unconfirmed
    } else {
        ExpectationResult::NotChecked
    };
    e.corrupt = matches!(
        e.result,
        ExpectationResult::SizeMismatch
            | ExpectationResult::DigestMismatch
            | ExpectationResult::Deleted
    );
    let by = format!(
        "{} exchange {}, {} leg, {}",
        holding.how,
        holding.exchange,
        leg::name(state.leg),
        answer(holding.exchange)
    );
    let algo = entry.digest.as_ref().map_or("", |d| d.0.name());
    e.description = match e.result {
        ExpectationResult::Matches => format!("{} bytes as expected ({by})", entry.size),
        ExpectationResult::SizeMismatch => format!(
            "stored {} bytes, expected {} ({by})",
            e.stored_size.unwrap_or_default(),
            entry.size
        ),
        ExpectationResult::DigestMismatch => format!(
            "stored {} bytes hashing to {} ({algo}), expected {} ({by})",
            entry.size,
            e.stored_digest.as_deref().unwrap_or("?"),
            e.expected_digest.as_deref().unwrap_or("?")
        ),
        ExpectationResult::Deleted => format!("deleted, expected {} bytes ({by})", entry.size),
        ExpectationResult::Unconfirmed => format!(
            "cannot tell: {unanswered} later write{} got no answer and what each would leave differs ({by})",
            if unanswered == 1 { "" } else { "s" }
        ),
        ExpectationResult::NotChecked => format!(
            "stored, but its bytes are not in the capture ({by})"
        ),
        ExpectationResult::NeverStored => String::new(),
    };
    if unanswered > 0 && e.result != ExpectationResult::Unconfirmed {
        // With no acknowledged write, the write shown is the first unanswered one: the others
        // are the later ones (a trial read "6 later writes" of 6 writes in all).
        let later = unanswered - usize::from(state.confirmed.is_none());
        let plural = if later == 1 { "" } else { "s" };
        e.description
            .push_str(&match (state.confirmed.is_some(), later) {
                (true, n) => format!("; {n} later write{plural} got no answer"),
                (false, 0) => "; it got no answer".to_string(),
                (false, n) => format!("; it got no answer, nor did {n} later write{plural}"),
            });
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inspect::exchange::Exchange;
    use crate::inspect::s3::tests::s3_exchange;

    fn report(exchanges: Vec<Exchange>) -> Report {
        crate::inspect::analysis::tests::report_of("upstream leg", exchanges)
    }

    fn plain(id: usize, method: &str, target: &str, body: &[u8], status: Option<u16>) -> Exchange {
        let mut ex = s3_exchange(id, method, target, body, &[], status, None);
        ex.request_headers.clear(); // not S3: a DVC remote or the built-in store
        ex
    }

    #[test]
    fn each_line_is_compared_with_the_last_acknowledged_write() {
        let five = vec![5u8; 5];
        let mut r = report(vec![
            plain(0, "PUT", "/files/md5/ab/c", &five, Some(201)),
            plain(1, "PUT", "/store/zero.bin", b"", Some(201)),
            plain(2, "PUT", "/store/gone.bin", &five, Some(201)),
            plain(3, "DELETE", "/store/gone.bin", b"", Some(204)),
            plain(4, "PUT", "/store/refused.bin", &five, Some(500)),
            s3_exchange(5, "PUT", "/bkt/my%20key", &five, &[], Some(200), None),
            s3_exchange(6, "PUT", "/bkt/maybe", &five, &[], Some(200), None),
            s3_exchange(7, "PUT", "/bkt/maybe", b"12345678", &[], None, None),
        ]);
        let md5_five = hex::encode(<md5::Md5 as md5::Digest>::digest(&five));
        let text = format!(
            "/files/md5/ab/c 5 {md5_five}\n/store/zero.bin 5000000\n/store/gone.bin 5\n\
             /store/refused.bin 5\n/store/never.bin 1\n/bkt/my%20key 5 {}\n/bkt/maybe 5\n",
            "0".repeat(64)
        );
        let manifest = Manifest::parse("m", text.as_bytes()).expect("manifest");
        r.audit(&manifest);
        let results: Vec<(&str, ExpectationResult, bool)> = r
            .expectations
            .iter()
            .map(|e| (e.path.as_str(), e.result, e.corrupt))
            .collect();
        use ExpectationResult::*;
        assert_eq!(
            results,
            vec![
                ("/files/md5/ab/c", Matches, false),
                ("/store/zero.bin", SizeMismatch, true),
                ("/store/gone.bin", Deleted, true),
                ("/store/refused.bin", NeverStored, true),
                ("/store/never.bin", NeverStored, true),
                ("/bkt/my key", DigestMismatch, true),
                ("/bkt/maybe", Unconfirmed, false),
            ]
        );
        assert_eq!(r.verdict, Verdict::Corrupt);
        let f = &r.findings;
        assert!(
            f.contains(&"CORRUPT: /store/zero.bin: stored 0 bytes, expected 5000000 (PUT exchange 1, upstream leg, status 201)".to_string()),
            "{f:#?}"
        );
        assert!(
            f.iter().any(|l| l.starts_with("CORRUPT: /store/refused.bin: never stored, expected 5 bytes: 1 write in the capture (upstream leg), none answered 2xx (the last, exchange 4: status 500)")),
            "{f:#?}"
        );
        assert_eq!(
            r.verdict_line,
            format!("{} (and {} more)", f[0], f.len() - 1)
        );
    }

    /// A trial's PutObject reset after 64 KiB on every attempt was audited as "stored 65536
    /// bytes": a body cut before its end was never stored, answered or not.
    #[test]
    fn a_put_object_cut_mid_body_was_never_stored() {
        let mut cut = s3_exchange(0, "PUT", "/bkt/b.bin", &[7u8; 64], &[], None, None);
        cut.request.complete = false;
        cut.request.expected = Some(3_000_000);
        cut.request.cut_by = Some("connection reset".into());
        cut.response.outcome = crate::inspect::exchange::Outcome::ConnectionReset;
        let mut r = report(vec![cut]);
        r.audit(&Manifest::parse("m", b"/bkt/b.bin 3000000\n").expect("manifest"));
        let e = &r.expectations[0];
        assert_eq!(
            e.result,
            ExpectationResult::NeverStored,
            "{}",
            e.description
        );
        assert_eq!(e.stored_size, None);
    }

    /// With no write acknowledged, the write shown is itself unanswered: the others are the
    /// later ones (a trial read "6 later writes got no answer" of 6 writes in all).
    #[test]
    fn unanswered_writes_are_counted_without_the_one_shown() {
        let mut r = report(vec![
            plain(0, "PUT", "/u", b"abc", None),
            plain(1, "PUT", "/u", b"abc", None),
        ]);
        r.audit(&Manifest::parse("m", b"/u 5\n").expect("manifest"));
        let e = &r.expectations[0];
        assert!(
            e.description
                .ends_with("; it got no answer, nor did 1 later write"),
            "{}",
            e.description
        );
    }

    /// In a capture that misses payload (a kill -9 cut it) a path never written is no evidence:
    /// said, not a finding, and the verdict stays INCONCLUSIVE.
    #[test]
    fn a_path_a_damaged_capture_never_shows_is_no_finding() {
        let mut r = report(vec![plain(0, "PUT", "/a", b"abc", Some(201))]);
        r.verdict = Verdict::Inconclusive;
        r.audit(&Manifest::parse("m", b"/a 3\n/b 5\n").expect("manifest"));
        assert!(r.findings.is_empty(), "{:?}", r.findings);
        assert_eq!(r.verdict, Verdict::Inconclusive);
        let b = &r.expectations[1];
        assert_eq!(
            (b.result, b.corrupt),
            (ExpectationResult::NeverStored, false)
        );
        assert!(
            b.description.ends_with(
                "the capture misses payload, so this is no evidence that it was never stored"
            ),
            "{}",
            b.description
        );
    }

    #[test]
    fn a_clean_audit_says_so_in_the_verdict() {
        let mut r = report(vec![plain(0, "PUT", "/a", b"abc", Some(201))]);
        r.audit(&Manifest::parse("m", b"/a 3\n").expect("manifest"));
        assert_eq!(r.verdict, Verdict::Clean);
        assert!(
            r.verdict_line
                .ends_with(", 1 of 1 expected objects stored as listed"),
            "{}",
            r.verdict_line
        );
    }

    /// git-annex's WebDAV remote PUTs to a temporary name and MOVEs it: the final path holds
    /// the upload's bytes and the temporary one nothing (a trial's audit called the final path
    /// "never stored" and the gone temporary one stored).
    #[test]
    fn a_webdav_move_carries_the_bytes_to_its_destination() {
        let put = plain(0, "PUT", "/dav/tmp-k", b"abc", Some(201));
        let mut moved = plain(1, "MOVE", "/dav/tmp-k", b"", Some(201));
        moved
            .request_headers
            .push(("destination".into(), "http://h:9000/dav/final%20k".into()));
        let mut r = report(vec![put, moved]);
        r.audit(&Manifest::parse("m", b"/dav/final%20k 3\n/dav/tmp-k 3\n").expect("manifest"));
        let results: Vec<_> = r.expectations.iter().map(|e| e.result).collect();
        assert_eq!(
            results,
            [ExpectationResult::Matches, ExpectationResult::Deleted],
            "{:?}",
            r.expectations
        );
        assert_eq!(r.expectations[0].how.as_deref(), Some("MOVE"));
    }

    /// The audit compares the upload; a later HEAD that reports another size is its own
    /// finding, and the expectation line says so too (a trial read "as expected" beside it).
    #[test]
    fn an_object_read_back_wrong_is_said_beside_its_expectation() {
        use md5::{Digest, Md5};
        let md5 = hex::encode(Md5::digest(b"abc"));
        let put = s3_exchange(0, "PUT", "/bkt/k", b"abc", &[], Some(200), Some(&md5));
        let mut head = s3_exchange(1, "HEAD", "/bkt/k", b"", &[], Some(200), Some(&md5));
        head.response_headers
            .push(("content-length".into(), "7".into()));
        let mut r = report(vec![put, head]);
        assert!(
            r.findings
                .iter()
                .any(|f| f.contains("s3 returned size 7 for /bkt/k")),
            "{:?}",
            r.findings
        );
        r.audit(&Manifest::parse("m", b"/bkt/k 3\n").expect("manifest"));
        let e = &r.expectations[0];
        assert_eq!(e.result, ExpectationResult::Matches);
        assert!(
            e.description
                .ends_with("; but a later read of it returned other bytes (see that finding)"),
            "{}",
            e.description
        );
    }

    /// A listed object the capture cannot check (a copy of a source it never saw) passes
    /// nothing: INCONCLUSIVE, not clean (a trial's UploadPartCopy object exited 0 whatever
    /// size the manifest gave it).
    #[test]
    fn an_object_the_capture_cannot_check_makes_the_audit_inconclusive() {
        let copy = s3_exchange(
            0,
            "PUT",
            "/bkt/c.bin",
            b"",
            &[("x-amz-copy-source", "/bkt/never-seen.bin")],
            Some(200),
            None,
        );
        let mut r = report(vec![copy]);
        r.audit(&Manifest::parse("m", b"/bkt/c.bin 12\n").expect("manifest"));
        assert_eq!(
            r.expectations[0].result,
            ExpectationResult::NotChecked,
            "{r:?}"
        );
        assert_eq!(r.verdict, Verdict::Inconclusive, "{}", r.verdict_line);
        assert!(
            r.verdict_line
                .starts_with("INCONCLUSIVE: 1 expected object could not be checked against the manifest (/bkt/c.bin: stored, but"),
            "{}",
            r.verdict_line
        );
    }

    /// Auditing a whole bucket: each manifest line finds its path at once (it once scanned
    /// every path the capture wrote, for each line: minutes here).
    /// An upload stored under a path the manifest does not list (say, a key built wrongly) is
    /// named, not a finding: deleted and refused writes are not "stored".
    #[test]
    fn paths_stored_but_not_listed_are_named_as_warnings() {
        let mut r = report(vec![
            plain(0, "PUT", "/a", b"abc", Some(201)),
            plain(1, "PUT", "/bkt/tmp/up.bin.part", b"abc", Some(201)),
            plain(2, "PUT", "/gone", b"abc", Some(201)),
            plain(3, "DELETE", "/gone", b"", Some(204)),
            plain(4, "PUT", "/refused", b"abc", Some(500)),
        ]);
        r.audit(&Manifest::parse("m.txt", b"/a 3\n").expect("manifest"));
        assert_eq!(r.verdict, Verdict::Clean);
        assert_eq!(
            r.warnings,
            ["--expect: /bkt/tmp/up.bin.part was stored (3 bytes, exchange 1) but m.txt does not list it"]
        );
    }

    #[test]
    fn an_audit_of_many_paths_stays_linear() {
        let mut r = report(vec![plain(0, "PUT", "/bkt/0", b"abc", Some(201))]);
        let template = r.paths[0].clone();
        let n = 150_000;
        r.paths.extend((1..n).map(|i| PathState {
            path: format!("/bkt/{i}"),
            leg: if i % 2 == 0 { Some(Leg::Client) } else { None },
            ..template.clone()
        }));
        let text: String = (0..n).map(|i| format!("/bkt/{i} 3\n")).collect();
        let manifest = Manifest::parse("m", text.as_bytes()).expect("manifest");
        let started = std::time::Instant::now();
        r.audit(&manifest);
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "{:?} for {n} paths",
            started.elapsed()
        );
        assert_eq!(r.expectations.len(), n);
        assert!(
            r.expectations
                .iter()
                .all(|e| e.result == ExpectationResult::Matches),
            "{:?}",
            r.expectations
                .iter()
                .find(|e| e.result != ExpectationResult::Matches)
        );
        assert_eq!(r.expectations[2].leg, Some(Leg::Client));
    }
}
