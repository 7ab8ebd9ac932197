//! Names git-annex p2phttp requests (API versions v0–v4): operation, key, offset, JSON answer.
//!
//! As git-annex 10.20261026 speaks it (seen on the wire): `POST /git-annex/<server uuid>/v4/<op>?
//! key=KEY&clientuuid=…` for `checkpresent`, `putoffset`, `put` (`offset=N`, the data in the body,
//! its length in `X-git-annex-data-length`), `remove`, `lockcontent` (answers a `lockid`) and
//! `keeplocked` (a streamed body that holds the lock until it sends `{"unlock":true}`), and
//! `GET …/v4/key/KEY?…&offset=N` for a download (`X-git-annex-data-length` in the answer).
//! Earlier API versions put the version right after `/git-annex/`; both shapes are accepted.
//! Answers are small JSON objects (`{"stored":true}`, `{"present":false}`, `{"locked":true,…}`).

use serde::Serialize;

use super::attempts::BodySource;
use super::content_address::query_param;
use super::exchange::Exchange;

/// One p2phttp request, as the report names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct P2pRequest {
    /// Exchange id.
    pub exchange: usize,
    /// API version (`v4` → 4).
    pub version: u32,
    /// `get`, `put`, `putoffset`, `checkpresent`, `lockcontent`, `keeplocked`, `remove`, … as in
    /// the URL.
    pub operation: String,
    /// The key the request is about, when it names one.
    pub key: Option<String>,
    /// The `offset` parameter (a resumed `get` or `put`), 0 when absent.
    pub offset: u64,
    /// The server's JSON answer, compacted (at most 200 characters), when it sent one.
    pub answer: Option<String>,
}

impl P2pRequest {
    /// Recognizes `ex` as a p2phttp request.
    pub fn of(ex: &Exchange) -> Option<P2pRequest> {
        let path = super::target::origin_form(&ex.target)
            .split(['?', '#'])
            .next()
            .unwrap_or("");
        let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let at = segments.iter().position(|s| *s == "git-annex")?;
        let versioned = (at + 1..=at + 2).find_map(|i| {
            let n = segments.get(i)?.strip_prefix('v')?.parse::<u32>().ok()?;
            Some((i, n))
        });
        // The unversioned `…/git-annex/[UUID/]key/KEY` is API v0's download.
        let (v, version) = match versioned {
            Some(found) => found,
            None => (at + 1..=at + 2)
                .find(|&i| segments.get(i) == Some(&"key") && segments.len() == i + 2)
                .map(|i| (i - 1, 0))?,
        };
        let op = *segments.get(v + 1)?;
        // The key as text, decoded from base64 when git-annex sent it so.
        let named = |raw: String| {
            super::annex_key::parse_p2phttp(&raw)
                .map(|k| k.text)
                .unwrap_or(raw)
        };
        let (operation, key) = if op == "key" {
            let key = segments
                .get(v + 2)
                .map(|k| named(super::content_address::percent_decode(k)));
            ("get".to_string(), key)
        } else {
            (op.to_string(), query_param(&ex.target, "key").map(named))
        };
        let offset = query_param(&ex.target, "offset")
            .and_then(|o| o.parse().ok())
            .unwrap_or(0);
        let answer = json_answer(ex).map(|v| {
            let text = v.to_string();
            text.chars().take(200).collect()
        });
        Some(P2pRequest {
            exchange: ex.id,
            version,
            operation,
            key,
            offset,
            answer,
        })
    }

    /// For a `put`: whether the server said it stored the content (`None`: no JSON answer).
    pub fn stored(&self, ex: &Exchange) -> Option<bool> {
        json_answer(ex)?.get("stored")?.as_bool()
    }

    /// The bytes the key still needs from this request's offset (its `-s` size, or its chunk's
    /// length, minus the offset): what a `put` or `get` must carry. `None` when the key names no
    /// size.
    pub fn key_remaining(&self) -> Option<u64> {
        let key = super::annex_key::parse(self.key.as_deref()?)?;
        let size = key.size?;
        let len = key.chunk.map_or(size, |c| c.len(size));
        Some(len.saturating_sub(self.offset))
    }
}

/// A `put` the server stored (`{"stored":true}`) whose DATA, as announced and as sent whole, is
/// shorter than what the key still needs from its offset: the server kept an object it cannot
/// have whole. (A body shorter than its own announced length is `incomplete_accepted`'s; this
/// is the case that one cannot see, a client announcing too little.)
pub fn short_put(ex: &Exchange) -> Option<String> {
    let p = P2pRequest::of(ex).filter(|p| p.operation == "put")?;
    if p.stored(ex) != Some(true) || !ex.request.complete {
        return None;
    }
    let sent = ex.request.length;
    let announced = data_length(ex, false).unwrap_or(sent);
    if sent < announced {
        return None; // the body arrived short of its own announcement: reported as such
    }
    let needed = p.key_remaining()?;
    if announced >= needed {
        return None;
    }
    Some(format!(
        "CORRUPT: p2phttp put of {} ({} leg, exchange {}, flow {}) carried DATA of {announced} bytes at offset {} but the key needs {needed} from there; the server answered {}",
        p.key.as_deref().unwrap_or("?"),
        super::leg::name(ex.leg),
        ex.id,
        ex.flow,
        p.offset,
        p.answer.as_deref().unwrap_or("?"),
    ))
}

/// Bytes of a `keeplocked` body read for its unlock requests (git-annex sends a few dozen).
const KEEPLOCKED_READ: u64 = 64 * 1024;

/// True when a `keeplocked` request body carried `{"unlock":true}`: the client said it no longer
/// relies on the lock. The body is a stream of JSON objects; a cut last object is ignored.
fn unlocked(ex: &mut Exchange) -> bool {
    let Some(body) = ex.body.as_mut() else {
        return false;
    };
    let mut bytes = vec![0; body.len().min(KEEPLOCKED_READ) as usize];
    if body.read_at(0, &mut bytes).is_err() {
        return false;
    }
    serde_json::Deserializer::from_slice(&bytes)
        .into_iter::<serde_json::Value>()
        .map_while(Result::ok)
        .any(|v| v.get("unlock").and_then(serde_json::Value::as_bool) == Some(true))
}

/// `keeplocked` requests that ended (their body cut by a reset or close, or the connection reset
/// before the answer; not the capture ending: see `ended`) before the client unlocked: the server
/// dropped the lock while the client relied on it. The client had unlocked when this request's
/// body, or that of a `keeplocked` of the same `lockid` that began no later on the same leg or on
/// the client leg, carried `{"unlock":true}`: an upstream leg cut after the client's unlock
/// crossed the client leg, or a retry of a request that had already unlocked (git-annex's HTTP
/// client resends a request whose reused connection died), drops nothing the client still needs.
/// The lock's key comes from the `lockcontent` that answered that `lockid` (on the same leg when
/// there is one). When `--leg upstream` hides the client leg (`client_hidden`), an upstream leg
/// cut before the server saw the unlock cannot be judged (the client may have unlocked on the
/// leg not shown): it is a warning that says so, not a finding, so the verdict is the same
/// whichever legs are shown.
pub fn dropped_locks(
    exchanges: &mut [Exchange],
    ended: impl Fn(&Exchange) -> bool,
    client_hidden: bool,
    warnings: &mut Vec<String>,
) -> Vec<String> {
    struct Keep {
        index: usize,
        lockid: String,
        unlocked: bool,
    }
    let mut keeps = Vec::new();
    for (index, ex) in exchanges.iter_mut().enumerate() {
        if P2pRequest::of(ex).is_some_and(|p| p.operation == "keeplocked") {
            let lockid = query_param(&ex.target, "lockid").unwrap_or_default();
            keeps.push(Keep {
                index,
                lockid,
                unlocked: unlocked(ex),
            });
        }
    }
    let mut findings = Vec::new();
    for k in &keeps {
        let ex = &exchanges[k.index];
        if k.unlocked || !ended(ex) {
            continue;
        }
        let unlocked_before = keeps.iter().any(|o| {
            let other = &exchanges[o.index];
            o.unlocked
                && o.lockid == k.lockid
                && other.time_ns <= ex.time_ns
                && (other.leg == ex.leg || other.leg != Some(crate::direction::Leg::Upstream))
        });
        if unlocked_before {
            continue;
        }
        let locks = |same_leg: bool| {
            exchanges
                .iter()
                .filter(move |l| !same_leg || l.leg == ex.leg)
                .filter_map(P2pRequest::of)
                .filter(|p| p.operation == "lockcontent")
                .find(|p| {
                    p.answer
                        .as_deref()
                        .and_then(|a| serde_json::from_str::<serde_json::Value>(a).ok())
                        .and_then(|v| v.get("lockid")?.as_str().map(str::to_owned))
                        .is_some_and(|id| id == k.lockid)
                })
        };
        let key = locks(true)
            .or_else(|| locks(false))
            .and_then(|p| p.key)
            .unwrap_or_else(|| format!("? (lockid {})", k.lockid));
        if client_hidden && ex.leg == Some(crate::direction::Leg::Upstream) {
            warnings.push(format!(
                "p2phttp lockcontent of {key}: keeplocked exchange {} (upstream leg, flow {}) ended ({}) before the server saw {{\"unlock\":true}}; whether the client had unlocked shows on the client leg, which --leg leaves out",
                ex.id,
                ex.flow,
                ex.request.cut_by.as_deref().unwrap_or("connection reset"),
            ));
            continue;
        }
        findings.push(format!(
            "CORRUPT: p2phttp lockcontent of {key} dropped mid-connection ({} leg, keeplocked exchange {}, flow {}): {} before the client unlocked; the content was not locked while the client relied on it",
            super::leg::name(ex.leg),
            ex.id,
            ex.flow,
            ex.request
                .cut_by
                .as_deref()
                .unwrap_or("the connection ended"),
        ));
    }
    findings
}

/// The response body as JSON, when it is a JSON object.
fn json_answer(ex: &Exchange) -> Option<serde_json::Value> {
    if ex.method == "GET" {
        return None; // object data, not an answer
    }
    let value: serde_json::Value = serde_json::from_slice(&ex.response_text).ok()?;
    value.is_object().then_some(value)
}

/// The number of content bytes a p2phttp message carries (`X-git-annex-data-length`), from the
/// request (a `put`) or the response (a `get`).
pub fn data_length(ex: &Exchange, response: bool) -> Option<u64> {
    let header = if response {
        ex.response_header("x-git-annex-data-length")
    } else {
        ex.request_header("x-git-annex-data-length")
    };
    header?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::direction::Leg;
    use crate::inspect::legs::tests::exchange;

    #[test]
    fn v4_operations_keys_offsets_and_answers() {
        let key =
            "SHA256E-s8--7f8b1dfc466b6249f06cbe55c9174df2578e7754da793fded244ef5cba2a38f1.txt";
        let mut put = exchange(
            0,
            Leg::Client,
            1,
            "POST",
            &format!(
                "/git-annex/d4b6/v4/put?key={key}&clientuuid=c&associatedfile=new.txt&offset=3"
            ),
            None,
        );
        put.response_text = br#"{"plusuuids":[],"stored":true}"#.to_vec();
        let p = P2pRequest::of(&put).expect("put");
        assert_eq!((p.version, p.operation.as_str(), p.offset), (4, "put", 3));
        assert_eq!(p.key.as_deref(), Some(key));
        assert_eq!(p.stored(&put), Some(true));
        assert_eq!(
            p.answer.as_deref(),
            Some(r#"{"plusuuids":[],"stored":true}"#)
        );
        let get = exchange(
            1,
            Leg::Client,
            1,
            "GET",
            &format!("http://h:1/git-annex/d4b6/v4/key/{key}?clientuuid=c&offset=102400"),
            None,
        );
        let g = P2pRequest::of(&get).expect("get");
        assert_eq!((g.operation.as_str(), g.offset), ("get", 102_400));
        assert_eq!(g.key.as_deref(), Some(key));
        let old = exchange(
            2,
            Leg::Client,
            1,
            "POST",
            "/git-annex/v2/checkpresent?key=x",
            None,
        );
        assert_eq!(P2pRequest::of(&old).map(|r| r.version), Some(2));
        let not = exchange(3, Leg::Client, 1, "GET", "/git-annex-stuff/v4/key/x", None);
        assert_eq!(P2pRequest::of(&not), None);
    }

    /// Every API version, with and without the server UUID, the unversioned v0 download, and
    /// the key percent-encoded in the query.
    #[test]
    fn every_api_version_and_shape_names_its_key() {
        let key =
            "SHA256E-s8--7f8b1dfc466b6249f06cbe55c9174df2578e7754da793fded244ef5cba2a38f1.t+t";
        let encoded = key.replace('+', "%2B");
        for v in 0..=4u32 {
            for prefix in ["/git-annex", "/git-annex/d4b6"] {
                let get = exchange(
                    0,
                    Leg::Client,
                    1,
                    "GET",
                    &format!("{prefix}/v{v}/key/{encoded}?clientuuid=c"),
                    None,
                );
                let g = P2pRequest::of(&get).expect("get");
                assert_eq!(
                    (g.version, g.operation.as_str()),
                    (v, "get"),
                    "{prefix} v{v}"
                );
                assert_eq!(g.key.as_deref(), Some(key), "{prefix} v{v}");
                let post = exchange(
                    1,
                    Leg::Client,
                    1,
                    "POST",
                    &format!("{prefix}/v{v}/lockcontent?key={encoded}&clientuuid=c"),
                    None,
                );
                let p = P2pRequest::of(&post).expect("lockcontent");
                assert_eq!((p.version, p.operation.as_str()), (v, "lockcontent"));
                assert_eq!(p.key.as_deref(), Some(key));
            }
        }
        for target in [
            format!("/git-annex/key/{key}"),
            format!("/git-annex/d4b6/key/{key}?offset=5"),
        ] {
            let get = exchange(0, Leg::Client, 1, "GET", &target, None);
            let g = P2pRequest::of(&get).expect("unversioned get");
            assert_eq!((g.version, g.operation.as_str()), (0, "get"), "{target}");
            assert_eq!(g.key.as_deref(), Some(key));
        }
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD.encode(key);
        let wrapped = exchange(
            0,
            Leg::Client,
            1,
            "POST",
            &format!("/git-annex/d4b6/v4/checkpresent?key=%5B{b64}%5D"),
            None,
        );
        let p = P2pRequest::of(&wrapped).expect("base64 key");
        assert_eq!(p.key.as_deref(), Some(key), "named decoded");
        let g = P2pRequest::of(&exchange(
            0,
            Leg::Client,
            1,
            "GET",
            "/git-annex/d4b6/key",
            None,
        ));
        assert_eq!(g, None, "no key segment");
    }

    fn put(offset: u64, announced: u64, sent: u64, answer: &str) -> Exchange {
        let key = "SHA256E-s10--f6bfd632e56d745c5b6ec8db52bf92b11c2666a1fe18d80cf4023bb32541f338";
        let mut ex = exchange(
            0,
            Leg::Upstream,
            1,
            "POST",
            &format!("/git-annex/u/v4/put?key={key}&offset={offset}"),
            None,
        );
        ex.request.length = sent;
        ex.request_headers
            .push(("x-git-annex-data-length".into(), announced.to_string()));
        ex.response_text = answer.as_bytes().to_vec();
        ex
    }

    /// The key's size minus the offset is what a put must carry; one the server stored with
    /// less is a finding, a refused one or a whole resume is not.
    #[test]
    fn a_stored_put_with_less_data_than_the_key_needs_is_a_finding() {
        let stored = r#"{"stored":true}"#;
        let finding = short_put(&put(0, 4, 4, stored)).expect("short put stored");
        assert!(
            finding.contains("carried DATA of 4 bytes at offset 0 but the key needs 10"),
            "{finding}"
        );
        assert!(
            short_put(&put(2, 6, 6, stored)).is_some(),
            "needs 8 from offset 2"
        );
        assert_eq!(short_put(&put(4, 6, 6, stored)), None, "a whole resume");
        assert_eq!(short_put(&put(0, 10, 10, stored)), None, "whole");
        assert_eq!(
            short_put(&put(0, 4, 4, r#"{"stored":false}"#)),
            None,
            "refused"
        );
        assert_eq!(
            short_put(&put(0, 10, 4, stored)),
            None,
            "short of its own announcement: incomplete_accepted names it"
        );
        let p = P2pRequest::of(&put(3, 7, 7, stored)).expect("put");
        assert_eq!(p.key_remaining(), Some(7));
    }

    /// A chunk key's put needs the chunk's length, the last chunk's included.
    #[test]
    fn a_chunk_key_needs_its_chunk_length() {
        let sha = "f6bfd632e56d745c5b6ec8db52bf92b11c2666a1fe18d80cf4023bb32541f338";
        let last = exchange(
            0,
            Leg::Upstream,
            1,
            "POST",
            &format!("/git-annex/u/v4/put?key=SHA256E-s250-S100-C3--{sha}"),
            None,
        );
        let p = P2pRequest::of(&last).expect("put");
        assert_eq!(p.key_remaining(), Some(50));
        let middle = exchange(
            0,
            Leg::Upstream,
            1,
            "POST",
            &format!("/git-annex/u/v4/put?key=SHA256E-s250-S100-C2--{sha}&offset=30"),
            None,
        );
        assert_eq!(
            P2pRequest::of(&middle).and_then(|p| p.key_remaining()),
            Some(70)
        );
    }
}

/// The report names a stored put with too little DATA (the hook in `analysis`).
#[cfg(test)]
mod report_tests {
    use crate::direction::Leg;
    use crate::inspect::analysis::tests::report_of;
    use crate::inspect::legs::tests::exchange;

    #[test]
    fn a_stored_put_with_too_little_data_is_a_finding_in_the_report() {
        let key = "SHA256E-s10--f6bfd632e56d745c5b6ec8db52bf92b11c2666a1fe18d80cf4023bb32541f338";
        let mut put = exchange(
            0,
            Leg::Client,
            1,
            "POST",
            &format!("/git-annex/u/v4/put?key={key}&offset=0"),
            Some("h"),
        );
        (put.request.length, put.request.expected) = (4, Some(4));
        put.request_headers
            .push(("x-git-annex-data-length".into(), "4".into()));
        put.response.status = Some(200);
        put.response_text = br#"{"plusuuids":[],"stored":true}"#.to_vec();
        let report = report_of("client leg", vec![put]);
        assert_eq!(report.findings.len(), 1, "{:?}", report.findings);
        assert!(
            report.findings[0].starts_with(&format!(
                "CORRUPT: p2phttp put of {key} (client leg, exchange 0, flow 1) carried DATA of 4 bytes at offset 0 but the key needs 10"
            )),
            "{:?}",
            report.findings
        );
    }
}
