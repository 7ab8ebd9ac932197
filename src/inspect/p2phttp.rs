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
        let (v, version) = (at + 1..=at + 2).find_map(|i| {
            let n = segments.get(i)?.strip_prefix('v')?.parse::<u32>().ok()?;
            Some((i, n))
        })?;
        let op = *segments.get(v + 1)?;
        let (operation, key) = if op == "key" {
            let key = segments
                .get(v + 2)
                .map(|k| super::content_address::percent_decode(k));
            ("get".to_string(), key)
        } else {
            (op.to_string(), query_param(&ex.target, "key"))
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
}
