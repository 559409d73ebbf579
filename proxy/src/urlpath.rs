//! Request-path handling with the reference's exact semantics:
//! WHATWG URL normalization of the request target (what a browser-style
//! URL parser makes of `/a/./b/../c`), `decodeURIComponent`-style strict
//! percent-decoding for route matching, and the path join used to build
//! the forwarded path from the target's path and the request's.
//!
//! The common case (a plain path) is checked byte by byte and passes
//! through without allocation; only unusual targets go through the full
//! URL parser.

use std::borrow::Cow;

/// The base the reference resolves request targets against.
const BASE: &str = "http://base.invalid";

/// Bytes that a WHATWG parser leaves untouched in a path or query.
const fn is_plain(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'_'
                | b'.'
                | b'~'
                | b'!'
                | b'$'
                | b'&'
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
                | b':'
                | b'@'
                | b'/'
                | b'%'
                | b'?'
        )
}

/// [`is_plain`] for every byte value.
static PLAIN: [bool; 256] = {
    let mut table = [false; 256];
    let mut i = 0;
    while i < 256 {
        table[i] = is_plain(i as u8);
        i += 1;
    }
    table
};

/// Whether `raw` is already in the form the URL parser would produce:
/// it starts with `/`, has only plain bytes, and its path part (before
/// the first `?`) has no dot segment to resolve (`/.`, or `%2e` in
/// either case). One pass over the bytes.
fn is_normal(raw: &str) -> bool {
    let b = raw.as_bytes();
    if b.first() != Some(&b'/') {
        return false;
    }
    let mut in_path = true;
    let mut prev = 0u8;
    for (i, &c) in b.iter().enumerate() {
        if !PLAIN[usize::from(c)] {
            return false;
        }
        if in_path {
            match c {
                b'?' => in_path = false,
                b'.' if prev == b'/' => return false,
                b'%' if b.get(i + 1) == Some(&b'2')
                    && matches!(b.get(i + 2), Some(b'e' | b'E')) =>
                {
                    return false;
                }
                _ => {}
            }
        }
        prev = c;
    }
    true
}

/// Normalizes a request target (`/path?query`) to `pathname + search`
/// as the WHATWG URL parser does (dot segments resolved, backslashes
/// turned into slashes, unsafe bytes percent-encoded).
pub fn normalize(raw: &str) -> Cow<'_, str> {
    if raw.is_empty() || raw.starts_with('?') {
        return Cow::Borrowed(raw);
    }
    if is_normal(raw) {
        return Cow::Borrowed(raw);
    }
    let parsed = if raw.starts_with('/') || raw.starts_with('\\') {
        // A leading `//` would be a network-path reference; the reference
        // keeps it as a path by prefixing its base explicitly.
        url::Url::parse(&format!("{BASE}{raw}"))
    } else {
        url::Url::parse(BASE).and_then(|b| b.join(raw))
    };
    match parsed {
        Ok(u) => {
            let mut out = u.path().to_owned();
            if let Some(q) = u.query() {
                out.push('?');
                out.push_str(q);
            }
            Cow::Owned(out)
        }
        Err(_) => Cow::Borrowed(raw),
    }
}

/// The pathname the reference routes on: the request target resolved
/// against a base URL, so that a target starting with `//` is read as a
/// network-path reference (`//host/path` routes on `/path`).
pub fn pathname(raw: &str) -> Cow<'_, str> {
    let b = raw.as_bytes();
    let network = b.len() >= 2 && matches!(b[0], b'/' | b'\\') && matches!(b[1], b'/' | b'\\');
    if !network {
        return match normalize(raw) {
            Cow::Borrowed(n) => Cow::Borrowed(path_part(n)),
            Cow::Owned(n) => Cow::Owned(path_part(&n).to_owned()),
        };
    }
    match url::Url::parse(BASE).and_then(|base| base.join(raw)) {
        Ok(u) => Cow::Owned(u.path().to_owned()),
        Err(_) => Cow::Borrowed(path_part(raw)),
    }
}

/// The path part (before `?`) of a normalized target.
pub fn path_part(normalized: &str) -> &str {
    match normalized.find('?') {
        Some(i) => &normalized[..i],
        None => normalized,
    }
}

/// A percent-escape that is not `%` followed by two hex digits, or that
/// decodes to invalid UTF-8: `decodeURIComponent` throws on both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MalformedUri;

impl std::fmt::Display for MalformedUri {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("URI malformed")
    }
}

impl std::error::Error for MalformedUri {}

/// Strict percent-decoding, as `decodeURIComponent`.
pub fn decode_component(s: &str) -> Result<Cow<'_, str>, MalformedUri> {
    if !s.contains('%') {
        return Ok(Cow::Borrowed(s));
    }
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let ok =
                b.len() > i + 2 && b[i + 1].is_ascii_hexdigit() && b[i + 2].is_ascii_hexdigit();
            if !ok {
                return Err(MalformedUri);
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .map(|c| Cow::Owned(c.into_owned()))
        .map_err(|_| MalformedUri)
}

/// Drops the first `prefix_len` UTF-16 units of `raw` (the reference
/// slices its request URL by the matched prefix's JS string length).
pub fn strip_prefix_units(raw: &str, prefix: &str) -> String {
    let units = prefix.encode_utf16().count();
    let mut seen = 0;
    for (i, ch) in raw.char_indices() {
        if seen >= units {
            return raw[i..].to_owned();
        }
        seen += ch.len_utf16();
    }
    String::new()
}

/// The forwarded path for `request` (already stripped of the prefix when
/// the prefix is not included): the reference's `getPath`.
pub fn get_path(request: &str) -> Cow<'_, str> {
    if request.is_empty() || request.starts_with('?') {
        return Cow::Borrowed(request);
    }
    normalize(request)
}

/// Joins a target path with the request path as the reference does:
/// segments are concatenated with a single `/` at each seam (inner
/// runs of slashes are kept), and the query strings of both parts are
/// joined with `&`.
pub fn url_join(target: &str, request: &str) -> String {
    let mut out = String::with_capacity(target.len() + request.len() + 1);
    let mut queries: [&str; 2] = ["", ""];
    for (n, part) in [target, request].into_iter().enumerate() {
        let (path, query) = match part.find('?') {
            Some(i) => (&part[..i], &part[i + 1..]),
            None => (part, ""),
        };
        queries[n] = query;
        if path.is_empty() {
            continue;
        }
        match (out.ends_with('/'), path.starts_with('/')) {
            (true, true) => out.push_str(&path[1..]),
            (false, false) => {
                out.push('/');
                out.push_str(path);
            }
            _ => out.push_str(path),
        }
    }
    let mut first = true;
    for q in queries.iter().filter(|q| !q.is_empty()) {
        out.push(if first { '?' } else { '&' });
        first = false;
        out.push_str(q);
    }
    out
}

/// Whether `url_join("/", request)` is `request` itself: it starts with
/// `/` and has no `?` with nothing after it (the join drops an empty
/// query).
pub fn joins_to_itself(request: &str) -> bool {
    request.starts_with('/')
        && match request.find('?') {
            Some(i) => i + 1 < request.len(),
            None => true,
        }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalization() {
        assert_eq!(normalize("/a/b?x=1"), "/a/b?x=1");
        assert!(matches!(normalize("/a/b?x=1"), Cow::Borrowed(_)));
        assert_eq!(normalize("/a/./b/../c"), "/a/c");
        assert_eq!(normalize("/a/%2e%2E/c"), "/c");
        assert_eq!(normalize("/a b"), "/a%20b");
        assert_eq!(normalize("//double//slash"), "//double//slash");
        assert_eq!(normalize("/a\\b"), "/a/b");
        assert_eq!(normalize("/.hidden"), "/.hidden");
        assert_eq!(pathname("/a/./b?x"), "/a/b");
        assert_eq!(pathname("//host/a/b?x"), "/a/b");
        assert_eq!(pathname("//host"), "/");
    }

    /// The plain-target check as first written, three scans and three
    /// substring searches, kept to check the one-pass version against.
    fn is_normal_by_search(raw: &str) -> bool {
        let b = raw.as_bytes();
        if b.first() != Some(&b'/') {
            return false;
        }
        if !b.iter().all(|&c| is_plain(c)) {
            return false;
        }
        let path_end = raw.find('?').unwrap_or(raw.len());
        let path = &raw[..path_end];
        !(path.contains("/.") || path.contains("%2e") || path.contains("%2E"))
    }

    #[test]
    fn one_pass_plain_check() {
        // Every string of up to four bytes over an alphabet with all the
        // characters that matter, after a leading `/` or not.
        let alphabet = [b'/', b'.', b'%', b'2', b'e', b'E', b'?', b'a', b' ', b'\\'];
        let mut strings = vec![String::new()];
        for _ in 0..4 {
            let mut longer = Vec::new();
            for s in &strings {
                for &c in &alphabet {
                    let mut t = s.clone();
                    t.push(char::from(c));
                    longer.push(t);
                }
            }
            strings.extend(longer);
        }
        strings.extend(["/caf\u{e9}", "/a/%2", "/a/%2e", "/a?/./%2E", "/x/.."].map(String::from));
        for s in &strings {
            assert_eq!(is_normal(s), is_normal_by_search(s), "{s:?}");
            let slashed = format!("/{s}");
            assert_eq!(
                is_normal(&slashed),
                is_normal_by_search(&slashed),
                "{slashed:?}"
            );
        }
    }

    #[test]
    fn decoding() {
        assert_eq!(decode_component("/a%20b").as_deref(), Ok("/a b"));
        assert_eq!(decode_component("/a%2Fb").as_deref(), Ok("/a/b"));
        assert_eq!(decode_component("/caf%C3%A9").as_deref(), Ok("/café"));
        assert_eq!(decode_component("/%zz"), Err(MalformedUri));
        assert_eq!(decode_component("/%f"), Err(MalformedUri));
        assert_eq!(decode_component("/%ff"), Err(MalformedUri));
    }

    #[test]
    fn joining() {
        assert_eq!(url_join("/", "/user/a/x?y=1"), "/user/a/x?y=1");
        assert_eq!(url_join("/base", "/user/a"), "/base/user/a");
        assert_eq!(url_join("/base/", "/user/a"), "/base/user/a");
        assert_eq!(url_join("/base?t=1", "/p?r=2"), "/base/p?t=1&r=2");
        assert_eq!(url_join("/", ""), "/");
        assert_eq!(url_join("/base", ""), "/base");
        assert_eq!(url_join("/", "?q"), "/?q");
        assert_eq!(url_join("/", "//x"), "//x");
        assert_eq!(url_join("/", "/x?"), "/x");
    }

    #[test]
    fn join_to_itself() {
        let cases = [
            "/",
            "/a",
            "/a/",
            "//a",
            "/a?b",
            "/a?",
            "/?",
            "/?x",
            "/a?b?c",
            "/a??",
            "?x",
            "",
            "a",
            "/a/%2e?q=1&r",
            "/x?&",
        ];
        for c in cases {
            assert_eq!(joins_to_itself(c), url_join("/", c) == c, "{c:?}");
        }
    }

    #[test]
    fn prefix_strip_and_get_path() {
        assert_eq!(strip_prefix_units("/user/a/tree?x", "/user/a"), "/tree?x");
        assert_eq!(strip_prefix_units("/user/a", "/user/a"), "");
        assert_eq!(get_path(&strip_prefix_units("/x/y", "/")), "/x/y");
        assert_eq!(get_path("?q=1"), "?q=1");
        assert_eq!(get_path(""), "");
    }
}
