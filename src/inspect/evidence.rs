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
