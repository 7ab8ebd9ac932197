//! Authorities (`host:port`) as HTTP/1 requests name them: in absolute-form targets, in Host
//! headers and in CONNECT, compared the way origins compare.

/// The same origin written two ways (`Host` vs `host:80`) compares equal.
pub fn same_origin(a: &str, b: &str) -> bool {
    match (split_host_port(a, 80), split_host_port(b, 80)) {
        (Some((ha, pa)), Some((hb, pb))) => ha.eq_ignore_ascii_case(&hb) && pa == pb,
        _ => a.eq_ignore_ascii_case(b),
    }
}

/// `host:port` of an absolute-form `http://host:port/path` target (credentials dropped).
pub fn authority_of(target: &str) -> Option<String> {
    let rest = target.strip_prefix("http://").or_else(|| {
        target
            .get(..7)
            .filter(|p| p.eq_ignore_ascii_case("http://"))
            .and_then(|_| target.get(7..))
    })?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    let authority = authority.rsplit('@').next().unwrap_or(authority);
    (!authority.is_empty()).then(|| authority.to_string())
}

/// The origin-form of an absolute-form target: `/path?query` of `http://host/path?query`, `/`
/// when it has no path. `None` for targets that are not absolute-form.
pub fn origin_form_of(target: &str) -> Option<String> {
    let scheme = target.find("://")?;
    if !target[..scheme]
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
    {
        return None;
    }
    let rest = &target[scheme + 3..];
    let path = rest.find(['/', '?']).map_or("", |i| &rest[i..]);
    let path = path.split('#').next().unwrap_or(path);
    Some(if path.starts_with('/') {
        path.to_string()
    } else {
        format!("/{path}")
    })
}

/// Splits `host:port`, `[v6]:port` or `host` (default port).
pub fn split_host_port(authority: &str, default_port: u16) -> Option<(String, u16)> {
    if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None if after.is_empty() => default_port,
            None => return None,
        };
        return Some((host.to_string(), port));
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => Some((host.to_string(), port.parse().ok()?)),
        Some(_) => None,
        None => Some((authority.to_string(), default_port)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absolute_form_targets_give_their_authority_and_origin_form() {
        assert_eq!(
            authority_of("http://127.0.0.1:8080/files/x"),
            Some("127.0.0.1:8080".into())
        );
        assert_eq!(authority_of("http://user:pw@host/x?y"), Some("host".into()));
        assert_eq!(authority_of("/origin/form"), None);
        assert_eq!(authority_of("https://host/x"), None);
        assert_eq!(authority_of("http:"), None);
        assert_eq!(
            origin_form_of("http://h:1/a/b?c=d").as_deref(),
            Some("/a/b?c=d")
        );
        assert_eq!(origin_form_of("http://h:1").as_deref(), Some("/"));
        assert_eq!(origin_form_of("http://h?q").as_deref(), Some("/?q"));
        assert_eq!(origin_form_of("http://h/x#frag").as_deref(), Some("/x"));
        assert_eq!(origin_form_of("/a"), None);
    }

    #[test]
    fn host_and_port_split_with_defaults_and_v6() {
        assert_eq!(split_host_port("h:81", 80), Some(("h".into(), 81)));
        assert_eq!(split_host_port("h", 80), Some(("h".into(), 80)));
        assert_eq!(split_host_port("[::1]:9", 80), Some(("::1".into(), 9)));
        assert_eq!(split_host_port("h:x", 80), None);
        assert!(same_origin("H:80", "h"));
        assert!(!same_origin("h:81", "h"));
    }
}
