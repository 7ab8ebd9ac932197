//! The wording of evidence every rendering shares (a content check's object, a p2phttp row), so the text, HTML and Markdown reports carry the same facts.

use super::content_address::Scheme;
use super::leg;
use super::model::{ContentCheck, Report};

/// One git-annex p2phttp request as the reports list it.
pub struct P2pRow {
    /// The exchange the request is.
    pub exchange: usize,
    /// Its leg's name.
    pub leg: &'static str,
    /// `v4 get offset 102400 KEY`: version, operation, offset when not 0, key.
    pub request: String,
    /// What the server answered.
    pub answer: String,
}

impl Report {
    /// The object a content check is about: for S3 the operation and the object (`UploadPart
    /// /bucket/big.bin part 1`), not the long signed target; otherwise method and target.
    pub(crate) fn check_subject(&self, cc: &ContentCheck) -> Option<String> {
        let ex = self.exchange(cc.exchange)?;
        Some(match self.s3.iter().find(|r| r.exchange == cc.exchange) {
            Some(r) if cc.address.scheme == Scheme::S3 => format!(
                "{} {}{}",
                r.operation.name(),
                r.path,
                r.part_number
                    .map_or(String::new(), |n| format!(" part {n}"))
            ),
            _ => format!("{} {}", ex.method, ex.target),
        })
    }

    /// The algorithm a content check used, with the S3 header it came from.
    pub(crate) fn check_algorithm(cc: &ContentCheck) -> String {
        match (cc.address.scheme, &cc.address.backend) {
            (Scheme::S3, Some(source)) => format!("{}, {source}", cc.address.algo.name()),
            _ => cc.address.algo.name().to_string(),
        }
    }

    /// Every git-annex p2phttp request whose exchange is in the report.
    pub(crate) fn p2phttp_rows(&self) -> Vec<P2pRow> {
        self.p2phttp
            .iter()
            .filter_map(|p| {
                let ex = self.exchange(p.exchange)?;
                let offset = if p.offset > 0 {
                    format!(" offset {}", p.offset)
                } else {
                    String::new()
                };
                Some(P2pRow {
                    exchange: p.exchange,
                    leg: leg::name(ex.leg),
                    request: format!(
                        "v{} {}{offset} {}",
                        p.version,
                        p.operation,
                        p.key.as_deref().unwrap_or("-")
                    ),
                    answer: p.answer.clone().unwrap_or_else(|| ex.response_text()),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use crate::direction::Leg;
    use crate::inspect::analysis::tests::report_of;
    use crate::inspect::legs::tests::exchange;

    /// User trials: the text report said `UploadPart /bkt/obj part 1` and listed `v4 get offset
    /// 102400 KEY` while the HTML and Markdown pages showed the raw signed target and no
    /// p2phttp section at all. The three renderings now carry the same evidence.
    #[test]
    fn text_html_and_markdown_carry_the_same_evidence() {
        let (mut exchanges, _, etag) = crate::inspect::s3::tests::multipart_run("placeholder");
        exchanges[4].response_text = String::from_utf8_lossy(&exchanges[4].response_text)
            .replace("placeholder", &etag)
            .into_bytes();
        let key =
            "SHA256E-s8--7f8b1dfc466b6249f06cbe55c9174df2578e7754da793fded244ef5cba2a38f1.txt";
        let mut get = exchange(
            5,
            Leg::Upstream,
            5,
            "GET",
            &format!("/git-annex/d4b6/v4/key/{key}?clientuuid=c&offset=102400"),
            Some("h"),
        );
        get.response.status = Some(200);
        exchanges.push(get);
        let report = report_of("upstream leg", exchanges);
        let text = report.render_text();
        let html = report.render_html();
        let md = report.render_markdown();
        let p2p = format!("v4 get offset 102400 {key}");
        for (format, page, part, p2p) in [
            (
                "text",
                &text,
                "UploadPart /bkt/obj part 1".to_string(),
                p2p.clone(),
            ),
            (
                "html",
                &html,
                crate::inspect::html::escape("UploadPart /bkt/obj part 1"),
                crate::inspect::html::escape(&p2p),
            ),
            (
                "markdown",
                &md,
                crate::inspect::markdown::escape("UploadPart /bkt/obj part 1"),
                crate::inspect::markdown::escape(&p2p),
            ),
        ] {
            assert!(page.contains(&part), "{format}: no {part:?} in:\n{page}");
            assert!(page.contains(&p2p), "{format}: no {p2p:?} in:\n{page}");
        }
        // User trials at 1280 px: a long object squeezed the result to "matche / s". The result
        // cell breaks only between words; the object cell takes the squeeze.
        assert!(
            html.contains(r#"<td class="object">UploadPart /bkt/obj part 1 <small>(md5"#),
            "{html}"
        );
        assert!(
            html.contains(r#"<td class="result">matches</td>"#),
            "{html}"
        );
        assert!(html.contains("td.result{overflow-wrap:normal;"), "{html}");
        for (format, page) in [("html", &html), ("markdown", &md)] {
            assert!(
                !page.contains("partNumber=1 (md5"),
                "{format} names the operation, not the signed target:\n{page}"
            );
        }
    }
}
