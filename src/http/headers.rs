//! Lookups over a head's header fields: case-insensitive names and comma-separated list values.

/// Header fields as received: name (as spelled on the wire) and raw value bytes, in wire order.
pub type HeaderFields = Vec<(String, Vec<u8>)>;

/// The first value of header `name` (ASCII case-insensitive), as raw bytes.
pub fn first_value<'a>(headers: &'a [(String, Vec<u8>)], name: &str) -> Option<&'a [u8]> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_slice())
}

/// Every value of header `name` (ASCII case-insensitive), in wire order.
pub fn values<'a>(
    headers: &'a [(String, Vec<u8>)],
    name: &'a str,
) -> impl Iterator<Item = &'a [u8]> + 'a {
    headers
        .iter()
        .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_slice())
}

/// The elements of a comma-separated list header across all its field lines, trimmed of optional
/// whitespace, empty elements skipped (RFC 9110 §5.6.1 asks recipients to tolerate them).
pub fn list_elements<'a>(
    headers: &'a [(String, Vec<u8>)],
    name: &'a str,
) -> impl Iterator<Item = &'a [u8]> + 'a {
    values(headers, name)
        .flat_map(|v| v.split(|b| *b == b','))
        .map(trim_ows)
        .filter(|e| !e.is_empty())
}

/// True when list header `name` has an element equal to `token` (ASCII case-insensitive),
/// e.g. `Connection: keep-alive, Upgrade` has token `upgrade`.
pub fn has_token(headers: &[(String, Vec<u8>)], name: &str, token: &str) -> bool {
    list_elements(headers, name).any(|e| e.eq_ignore_ascii_case(token.as_bytes()))
}

/// Strips leading and trailing spaces and tabs (the "OWS" of RFC 9110).
pub fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> HeaderFields {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
            .collect()
    }

    #[test]
    fn names_are_case_insensitive_and_lists_span_lines() {
        let headers = h(&[("connection", "keep-alive, ,"), ("Connection", " Upgrade ")]);
        assert_eq!(
            first_value(&headers, "CONNECTION"),
            Some(&b"keep-alive, ,"[..])
        );
        let elems: Vec<_> = list_elements(&headers, "connection").collect();
        assert_eq!(elems, vec![&b"keep-alive"[..], &b"Upgrade"[..]]);
        assert!(has_token(&headers, "Connection", "upgrade"));
        assert!(!has_token(&headers, "Connection", "close"));
        assert_eq!(trim_ows(b" \t x y\t "), b"x y");
        assert_eq!(trim_ows(b"  "), b"");
    }
}
