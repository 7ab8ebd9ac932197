//! Credentials a signed URL carries in its query, taken out of the reports meant to be pasted or
//! attached where others read them (`--markdown`, `--html`).
//!
//! A presigned S3 URL (`?X-Amz-Credential=…&X-Amz-Signature=…`, or the older
//! `?AWSAccessKeyId=…&Signature=…`) lets whoever holds it read or write the object until it
//! expires: an S3 trial's Markdown report, written for a public issue, held them in full.
//! `--json` and the text report keep the capture's bytes as they were (a local tool reads them).

/// Query parameters whose values are credentials, compared without regard to case.
const SECRET_PARAMETERS: [&str; 6] = [
    "x-amz-signature",
    "x-amz-credential",
    "x-amz-security-token",
    "signature",
    "awsaccesskeyid",
    "googleaccessid",
];

/// What a redacted value becomes.
const REDACTED: &str = "REDACTED";

/// `text` with the value of every [`SECRET_PARAMETERS`] query parameter replaced by
/// `REDACTED`. A parameter is one that follows `?`, `&` or `;` (the end of `&amp;` in HTML); its
/// value ends at the next `&`, blank, quote, `<`, `|`, `)`, `]`, `` ` `` or `#`.
pub fn signed_url_secrets(text: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut at = 0;
    while let Some(found) = lower[at..].find('=').map(|i| at + i) {
        at = found + 1;
        let Some(name) = SECRET_PARAMETERS
            .iter()
            .find(|name| lower[..found].ends_with(*name))
        else {
            continue;
        };
        let start = found - name.len();
        let after_separator = start > 0 && matches!(text.as_bytes()[start - 1], b'?' | b'&' | b';');
        if !after_separator {
            continue;
        }
        let value_end = text[at..]
            .find(|c: char| {
                c.is_whitespace()
                    || matches!(c, '&' | '"' | '\'' | '<' | '|' | ')' | ']' | '`' | '#')
            })
            .map_or(text.len(), |i| at + i);
        if value_end == at {
            continue;
        }
        out.push_str(&text[copied..at]);
        out.push_str(REDACTED);
        copied = value_end;
        at = value_end;
    }
    out.push_str(&text[copied..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_presigned_urls_credentials_are_redacted_and_the_rest_kept() {
        let url = "PUT /bkt/pre.bin?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIA%2F2026&X-Amz-Date=20261130T070000Z&X-Amz-Expires=3600&X-Amz-SignedHeaders=host&X-Amz-Signature=0123abcd exchange 1";
        assert_eq!(
            signed_url_secrets(url),
            "PUT /bkt/pre.bin?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=REDACTED&X-Amz-Date=20261130T070000Z&X-Amz-Expires=3600&X-Amz-SignedHeaders=host&X-Amz-Signature=REDACTED exchange 1"
        );
        // The older form, in HTML (`&amp;`), and in a Markdown table cell.
        assert_eq!(
            signed_url_secrets("/k?AWSAccessKeyId=AKIA&amp;Signature=abc%3D&amp;Expires=1"),
            "/k?AWSAccessKeyId=REDACTED&amp;Signature=REDACTED&amp;Expires=1"
        );
        assert_eq!(
            signed_url_secrets("| `/k?signature=s` |"),
            "| `/k?signature=REDACTED` |"
        );
        // Not a query parameter: a word that ends like one, and text with no secrets.
        let plain = "the Signature=ok said; mysignature=x; a = b";
        assert_eq!(signed_url_secrets(plain), plain);
        assert_eq!(
            signed_url_secrets("é?Signature=ü&x=1"),
            "é?Signature=REDACTED&x=1"
        );
    }
}
