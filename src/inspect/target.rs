//! Names the resource a request acts on, so the absolute-form and origin-form of one request match.
//!
//! In forward mode the client leg carries `PUT http://h:p/x HTTP/1.1` while faultline sends
//! `PUT /x HTTP/1.1` + `Host: h:p` upstream: both are the request for `h:p/x`. Leg comparison and
//! attempt grouping compare these names, never the raw targets.

/// `authority + path-and-query` for an absolute-form target (`http://H:P/x?q` → `h:p/x?q`), or
/// `host + target` for an origin-form one (the authority from the Host header, when there is one).
/// The host is lowercased and a default port (`:80` for http, `:443` for https) dropped. Anything
/// else (`*`, authority-form) is returned as it is.
pub fn resource(target: &str, host: Option<&str>) -> String {
    if let Some((scheme, rest)) = target.split_once("://") {
        if !scheme.is_empty()
            && scheme
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'+')
        {
            let split = rest.find(['/', '?']).unwrap_or(rest.len());
            let (authority, path) = rest.split_at(split);
            let path = if path.starts_with('/') {
                path.to_string()
            } else {
                format!("/{path}")
            };
            return format!("{}{path}", authority_name(authority, scheme));
        }
    }
    match host {
        Some(host) if target.starts_with('/') => {
            format!("{}{target}", authority_name(host.trim(), "http"))
        }
        _ => target.to_string(),
    }
}

/// The path-and-query part of a target in either form (`http://h/x?q` → `/x?q`).
pub fn origin_form(target: &str) -> &str {
    match target.split_once("://") {
        Some((_, rest)) => match rest.find(['/', '?']) {
            Some(i) => &rest[i..],
            None => "/",
        },
        None => target,
    }
}

fn authority_name(authority: &str, scheme: &str) -> String {
    // userinfo never names the resource
    let authority = authority.rsplit('@').next().unwrap_or(authority);
    let lower = authority.to_ascii_lowercase();
    let default = match scheme.to_ascii_lowercase().as_str() {
        "https" => ":443",
        _ => ":80",
    };
    match lower.strip_suffix(default) {
        Some(bare) => bare.to_string(),
        None => lower,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absolute_and_origin_form_name_the_same_resource() {
        let client = resource("http://127.0.0.1:8080/files/md5/ab/cd?x=1", None);
        let upstream = resource("/files/md5/ab/cd?x=1", Some("127.0.0.1:8080"));
        assert_eq!(client, "127.0.0.1:8080/files/md5/ab/cd?x=1");
        assert_eq!(client, upstream);
        assert_eq!(
            resource("http://Store.Example:80/a", None),
            resource("/a", Some("store.example"))
        );
        assert_eq!(resource("http://h", None), "h/");
        assert_eq!(resource("http://h?q", None), "h/?q");
        assert_eq!(resource("http://u:p@h:1/a", None), "h:1/a");
        assert_ne!(resource("/a", Some("h:1")), resource("/a", Some("h:2")));
        assert_eq!(resource("/a", None), "/a");
        assert_eq!(resource("*", Some("h")), "*");
        assert_eq!(resource("h:443", Some("h")), "h:443", "CONNECT target");
        assert_eq!(origin_form("http://h:1/x?y"), "/x?y");
        assert_eq!(origin_form("http://h:1"), "/");
        assert_eq!(origin_form("/x"), "/x");
    }
}
