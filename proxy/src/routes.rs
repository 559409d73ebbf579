//! The routing table: route keys, the prefix trie used to match requests,
//! per-route activity timestamps, and the optional routes file.
//!
//! Invariants, kept as configurable-http-proxy keeps them:
//! - A route key ([`RoutePath`]) starts with `/` and has no trailing `/`
//!   (except the root key `/`); only one trailing slash is removed.
//! - Matching walks whole path *segments*: the path is stripped of all
//!   leading and trailing slashes and split on `/`, so `/user/ab` never
//!   matches the route `/user/a`. The deepest node that holds a route wins.
//! - The trie position of a key is its segment list, so `//a` and `/a` share
//!   a node; the node keeps the route added last, and removing either key
//!   clears it (the same as the reference store).
//! - Each route's `last_activity` is an atomic millisecond timestamp, so
//!   requests record activity under the read lock without serializing.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use indexmap::IndexMap;
use serde_json::Value;

use crate::upstream::Origin;

/// A normalized route key: leading `/`, no trailing `/` unless it is `/`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RoutePath(String);

impl RoutePath {
    /// Normalizes a key the way the reference does: prepend `/` when it is
    /// missing, then drop one trailing `/` (unless the key is exactly `/`).
    pub fn new(raw: &str) -> Self {
        let mut s = String::with_capacity(raw.len() + 1);
        if !raw.starts_with('/') {
            s.push('/');
        }
        s.push_str(raw);
        if s.len() > 1 && s.ends_with('/') {
            s.pop();
        }
        RoutePath(s)
    }

    /// The key as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first segment of the key, which is the host name when host
    /// routing is on (`/example.com/path` gives `example.com`).
    pub fn first_segment(&self) -> &str {
        self.0.split('/').nth(1).unwrap_or("")
    }
}

impl std::fmt::Display for RoutePath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The current time in milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Formats a millisecond timestamp as the reference serializes dates:
/// `2026-11-23T10:00:00.000Z`.
pub fn format_ms(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    match time::OffsetDateTime::from_unix_timestamp(secs) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            millis
        ),
        Err(_) => "1970-01-01T00:00:00.000Z".to_owned(),
    }
}

/// Parses the timestamps the API accepts for `inactive_since` and the
/// routes file: RFC 3339 (with `Z` or an offset, any fraction), a date and
/// time without a zone (taken as UTC), or a bare date (midnight UTC).
pub fn parse_timestamp_ms(text: &str) -> Option<i64> {
    use time::format_description::well_known::Rfc3339;
    use time::macros::format_description;
    let text = text.trim();
    let to_ms = |t: time::OffsetDateTime| {
        i64::try_from(t.unix_timestamp_nanos().div_euclid(1_000_000)).ok()
    };
    if let Ok(t) = time::OffsetDateTime::parse(text, &Rfc3339) {
        return to_ms(t);
    }
    let with_frac = format_description!(
        version = 2,
        "[year]-[month]-[day]T[hour]:[minute]:[second][optional [.[subsecond]]]"
    );
    if let Ok(t) = time::PrimitiveDateTime::parse(text, &with_frac) {
        return to_ms(t.assume_utc());
    }
    let minutes = format_description!(version = 2, "[year]-[month]-[day]T[hour]:[minute]");
    if let Ok(t) = time::PrimitiveDateTime::parse(text, &minutes) {
        return to_ms(t.assume_utc());
    }
    let date = format_description!(version = 2, "[year]-[month]-[day]");
    if let Ok(d) = time::Date::parse(text, &date) {
        return to_ms(d.midnight().assume_utc());
    }
    None
}

/// Where a route sends traffic: the target URL as posted, parsed once
/// into the parts every forwarded request needs.
#[derive(Debug)]
pub enum Target {
    /// An `http` or `https` URL.
    Http(HttpTarget),
    /// The target could not be used; requests to the route fail with 500,
    /// as the reference's do (it only checks that `target` is a string).
    Invalid(String),
}

/// A usable target.
#[derive(Debug)]
pub struct HttpTarget {
    /// `http` or `https` and `host[:port]`: where its connections go.
    pub origin: Origin,
    /// The target's path plus `?query` when it has one (prepended to
    /// forwarded paths).
    pub path_and_query: String,
}

impl Target {
    /// Parses a posted target; anything but `http:`/`https:` is kept as
    /// [`Target::Invalid`] with the reason.
    pub fn parse(text: &str) -> Self {
        let u = match url::Url::parse(text) {
            Ok(u) => u,
            Err(e) => return Target::Invalid(format!("invalid URL {text:?}: {e}")),
        };
        let scheme = match u.scheme() {
            "http" => http::uri::Scheme::HTTP,
            "https" => http::uri::Scheme::HTTPS,
            other => return Target::Invalid(format!("unsupported protocol {other}:")),
        };
        if u.host_str().is_none() {
            return Target::Invalid(format!("no host in {text:?}"));
        }
        let authority = match u[url::Position::BeforeHost..url::Position::AfterPort].parse() {
            Ok(a) => a,
            Err(e) => return Target::Invalid(format!("bad host in {text:?}: {e}")),
        };
        let mut path_and_query = u.path().to_owned();
        if let Some(q) = u.query() {
            path_and_query.push('?');
            path_and_query.push_str(q);
        }
        Target::Http(HttpTarget {
            origin: Origin::new(scheme, authority),
            path_and_query,
        })
    }
}

/// One route: its key, the data posted for it, and its activity clock.
#[derive(Debug)]
pub struct Route {
    /// The normalized key.
    pub key: RoutePath,
    /// The posted JSON object (it includes `target`), in posted order.
    pub data: IndexMap<String, Value>,
    /// The parsed `target`.
    pub target: Target,
    /// Milliseconds since the epoch of the last recorded activity.
    last_activity: AtomicI64,
    /// Insertion order, so listings keep the order routes were first added.
    seq: u64,
}

impl Route {
    /// Records activity now.
    pub fn touch(&self) {
        self.last_activity.store(now_ms(), Ordering::Relaxed);
    }

    /// The last activity in milliseconds since the epoch.
    pub fn last_activity_ms(&self) -> i64 {
        self.last_activity.load(Ordering::Relaxed)
    }

    /// Serializes the route as a JSON object keeping the posted key order.
    pub fn write_json(&self, buf: &mut Vec<u8>) {
        buf.push(b'{');
        let mut first = true;
        let mut wrote_activity = false;
        let activity = Value::String(format_ms(self.last_activity_ms()));
        for (k, v) in &self.data {
            if !first {
                buf.push(b',');
            }
            first = false;
            write_json_value(buf, &Value::String(k.clone()));
            buf.push(b':');
            if k == "last_activity" {
                write_json_value(buf, &activity);
                wrote_activity = true;
            } else {
                write_json_value(buf, v);
            }
        }
        if !wrote_activity {
            if !first {
                buf.push(b',');
            }
            buf.extend_from_slice(b"\"last_activity\":");
            write_json_value(buf, &activity);
        }
        buf.push(b'}');
    }
}

/// Appends the compact JSON text of `v` to `buf`.
pub fn write_json_value(buf: &mut Vec<u8>, v: &Value) {
    // Writing a `Value` to a Vec cannot fail.
    if serde_json::to_writer(&mut *buf, v).is_err() {
        buf.extend_from_slice(b"null");
    }
}

/// The result of matching a request path.
#[derive(Debug, Clone)]
pub struct Match {
    /// The matched prefix, rebuilt from the matched segments (`/a/b`).
    pub prefix: Arc<str>,
    /// The route found.
    pub route: Arc<Route>,
    /// The route whose activity this request counts towards: the route
    /// stored under `prefix` (normally `route` itself).
    pub activity: Option<Arc<Route>>,
}

/// One trie node: children by segment, and the route stored here.
#[derive(Debug, Default)]
struct Node {
    children: HashMap<Box<str>, Node>,
    /// The prefix of this node and the route stored at it.
    data: Option<(Arc<str>, Arc<Route>)>,
}

/// Splits a path into segments the way the reference trie does: all
/// leading and trailing slashes dropped, then split on `/`.
fn segments(path: &str) -> impl Iterator<Item = &str> {
    let trimmed = path.trim_matches('/');
    let mut it = trimmed.split('/');
    if trimmed.is_empty() {
        // An empty path has no segments (`"".split` would yield one).
        it.next();
    }
    it
}

/// The segment trie for longest-prefix matching.
#[derive(Debug, Default)]
struct Trie {
    root: Node,
}

impl Trie {
    fn insert(&mut self, key: &RoutePath, route: Arc<Route>) {
        let mut node = &mut self.root;
        let mut prefix = String::from("/");
        for seg in segments(key.as_str()) {
            if prefix.len() > 1 {
                prefix.push('/');
            }
            prefix.push_str(seg);
            node = node.children.entry(seg.into()).or_default();
        }
        node.data = Some((Arc::from(prefix), route));
    }

    fn remove(&mut self, key: &RoutePath) {
        let segs: Vec<&str> = segments(key.as_str()).collect();
        Self::remove_at(&mut self.root, &segs);
    }

    /// Removes the data at `segs` below `node`, pruning empty branches.
    fn remove_at(node: &mut Node, segs: &[&str]) {
        let Some((first, rest)) = segs.split_first() else {
            node.data = None;
            return;
        };
        let prune = match node.children.get_mut(*first) {
            Some(child) => {
                Self::remove_at(child, rest);
                child.children.is_empty() && child.data.is_none()
            }
            None => false,
        };
        if prune {
            node.children.remove(*first);
        }
    }

    fn lookup(&self, path: &str) -> Option<&(Arc<str>, Arc<Route>)> {
        let mut node = &self.root;
        let mut best = node.data.as_ref();
        for seg in segments(path) {
            match node.children.get(seg) {
                Some(child) => {
                    node = child;
                    if node.data.is_some() {
                        best = node.data.as_ref();
                    }
                }
                None => break,
            }
        }
        best
    }
}

/// The whole routing table: routes by key plus the trie over them.
#[derive(Debug, Default)]
pub struct RouteTable {
    routes: HashMap<RoutePath, Arc<Route>>,
    trie: Trie,
    next_seq: u64,
}

impl RouteTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of routes.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// Adds or replaces the route at `key` with `data` (which must hold a
    /// string `target`), stamping its activity with `last_activity_ms`.
    /// A replaced route keeps its place in listings.
    pub fn insert(
        &mut self,
        key: RoutePath,
        data: IndexMap<String, Value>,
        last_activity_ms: i64,
    ) -> Arc<Route> {
        let target = match data.get("target") {
            Some(Value::String(t)) => Target::parse(t),
            _ => Target::Invalid("no target".to_owned()),
        };
        let seq = match self.routes.get(&key) {
            Some(old) => old.seq,
            None => {
                self.next_seq += 1;
                self.next_seq
            }
        };
        let route = Arc::new(Route {
            key: key.clone(),
            data,
            target,
            last_activity: AtomicI64::new(last_activity_ms),
            seq,
        });
        self.trie.insert(&key, Arc::clone(&route));
        self.routes.insert(key, Arc::clone(&route));
        route
    }

    /// Removes the route at `key`; returns it if it existed.
    pub fn remove(&mut self, key: &RoutePath) -> Option<Arc<Route>> {
        let old = self.routes.remove(key)?;
        self.trie.remove(key);
        Some(old)
    }

    /// The route stored at exactly `key`.
    pub fn get(&self, key: &RoutePath) -> Option<&Arc<Route>> {
        self.routes.get(key)
    }

    /// All routes in the order they were first added.
    pub fn all(&self) -> Vec<Arc<Route>> {
        let mut v: Vec<Arc<Route>> = self.routes.values().cloned().collect();
        v.sort_by_key(|r| r.seq);
        v
    }

    /// Longest-prefix match of an already decoded request path (with the
    /// host prepended under host routing).
    pub fn lookup(&self, path: &str) -> Option<Match> {
        let (prefix, route) = self.trie.lookup(path)?;
        let activity = if route.key.as_str() == &**prefix {
            Some(Arc::clone(route))
        } else {
            self.routes.get(&RoutePath::new(prefix)).cloned()
        };
        Some(Match {
            prefix: Arc::clone(prefix),
            route: Arc::clone(route),
            activity,
        })
    }

    /// The table as the API lists it: `{key: {data..., last_activity}}`.
    pub fn write_json(&self, buf: &mut Vec<u8>, filter: impl Fn(&Route) -> bool) {
        buf.push(b'{');
        let mut first = true;
        for route in self.all() {
            if !filter(&route) {
                continue;
            }
            if !first {
                buf.push(b',');
            }
            first = false;
            write_json_value(buf, &Value::String(route.key.as_str().to_owned()));
            buf.push(b':');
            route.write_json(buf);
        }
        buf.push(b'}');
    }
}

/// Errors reading or writing the routes file.
#[derive(Debug)]
pub enum RoutesFileError {
    /// The file could not be read or written.
    Io(PathBuf, std::io::Error),
    /// The file is not a JSON object of routes.
    Format(PathBuf, String),
}

impl std::fmt::Display for RoutesFileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RoutesFileError::Io(p, e) => write!(f, "routes file {}: {e}", p.display()),
            RoutesFileError::Format(p, e) => {
                write!(f, "routes file {} is not a routes table: {e}", p.display())
            }
        }
    }
}

impl std::error::Error for RoutesFileError {}

/// Loads routes saved by [`save_routes_file`] into `table`. A missing
/// file is an empty table; a malformed one is an error (never silently
/// dropped). Routes keep their saved `last_activity` when it parses.
pub fn load_routes_file(path: &Path, table: &mut RouteTable) -> Result<usize, RoutesFileError> {
    let text = match std::fs::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(RoutesFileError::Io(path.to_owned(), e)),
    };
    let parsed: IndexMap<String, IndexMap<String, Value>> = serde_json::from_slice(&text)
        .map_err(|e| RoutesFileError::Format(path.to_owned(), e.to_string()))?;
    let now = now_ms();
    let mut n = 0;
    for (key, data) in parsed {
        if !matches!(data.get("target"), Some(Value::String(_))) {
            return Err(RoutesFileError::Format(
                path.to_owned(),
                format!("route {key:?} has no string target"),
            ));
        }
        let activity = data
            .get("last_activity")
            .and_then(Value::as_str)
            .and_then(parse_timestamp_ms)
            .unwrap_or(now);
        table.insert(RoutePath::new(&key), data, activity);
        n += 1;
    }
    Ok(n)
}

/// Serializes the table for the routes file.
pub fn routes_file_bytes(table: &RouteTable) -> Vec<u8> {
    let mut buf = Vec::with_capacity(64 + table.len() * 128);
    table.write_json(&mut buf, |_| true);
    buf.push(b'\n');
    buf
}

/// Writes `bytes` to `path` atomically: a temporary file in the same
/// directory, flushed, then renamed over the old file.
pub fn save_routes_file(path: &Path, bytes: &[u8]) -> Result<(), RoutesFileError> {
    use std::io::Write;
    let io_err = |e| RoutesFileError::Io(path.to_owned(), e);
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty());
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "routes".to_owned());
    let tmp = match dir {
        Some(d) => d.join(format!(".{name}.tmp")),
        None => PathBuf::from(format!(".{name}.tmp")),
    };
    let mut f = std::fs::File::create(&tmp).map_err(io_err)?;
    f.write_all(bytes).map_err(io_err)?;
    f.sync_all().map_err(io_err)?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(io_err)
}

/// Counts changes to the table so a writer can coalesce saves.
#[derive(Debug, Default)]
pub struct Generation(AtomicU64);

impl Generation {
    /// Marks a change and returns the new generation.
    pub fn bump(&self) -> u64 {
        self.0.fetch_add(1, Ordering::AcqRel) + 1
    }

    /// The current generation.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn data(target: &str) -> IndexMap<String, Value> {
        let mut m = IndexMap::new();
        m.insert("target".to_owned(), json!(target));
        m
    }

    fn table(keys: &[&str]) -> RouteTable {
        let mut t = RouteTable::new();
        for k in keys {
            t.insert(
                RoutePath::new(k),
                data(&format!("http://127.0.0.1:1{k}")),
                0,
            );
        }
        t
    }

    fn matched(t: &RouteTable, path: &str) -> Option<String> {
        t.lookup(path).map(|m| m.route.key.as_str().to_owned())
    }

    #[test]
    fn normalizes_keys() {
        assert_eq!(RoutePath::new("").as_str(), "/");
        assert_eq!(RoutePath::new("/").as_str(), "/");
        assert_eq!(RoutePath::new("a/b").as_str(), "/a/b");
        assert_eq!(RoutePath::new("/a/b/").as_str(), "/a/b");
        // only one trailing slash goes
        assert_eq!(RoutePath::new("/a/b//").as_str(), "/a/b/");
        assert_eq!(RoutePath::new("//a").as_str(), "//a");
        assert_eq!(
            RoutePath::new("/host.example/x").first_segment(),
            "host.example"
        );
    }

    #[test]
    fn longest_prefix_on_segment_boundaries() {
        let t = table(&["/", "/user/a", "/user/a/lab", "/hub"]);
        assert_eq!(matched(&t, "/user/a").as_deref(), Some("/user/a"));
        assert_eq!(matched(&t, "/user/a/").as_deref(), Some("/user/a"));
        assert_eq!(matched(&t, "/user/a/tree/x").as_deref(), Some("/user/a"));
        assert_eq!(matched(&t, "/user/a/lab/x").as_deref(), Some("/user/a/lab"));
        assert_eq!(matched(&t, "/user/ab").as_deref(), Some("/"));
        assert_eq!(matched(&t, "/user").as_deref(), Some("/"));
        assert_eq!(matched(&t, "/hubx").as_deref(), Some("/"));
        assert_eq!(matched(&t, "").as_deref(), Some("/"));
        let m = t.lookup("/user/a/lab/x/y").expect("match");
        assert_eq!(&*m.prefix, "/user/a/lab");
    }

    #[test]
    fn no_root_means_no_match() {
        let t = table(&["/user/a"]);
        assert!(t.lookup("/user/b").is_none());
        assert!(t.lookup("/").is_none());
        assert!(t.lookup("/user").is_none());
    }

    #[test]
    fn inner_nodes_without_data_fall_back() {
        let t = table(&["/a", "/a/b/c"]);
        assert_eq!(matched(&t, "/a/b").as_deref(), Some("/a"));
        assert_eq!(matched(&t, "/a/b/d").as_deref(), Some("/a"));
        assert_eq!(matched(&t, "/a/b/c/d").as_deref(), Some("/a/b/c"));
    }

    #[test]
    fn remove_prunes_and_keeps_others() {
        let mut t = table(&["/a", "/a/b/c"]);
        assert!(t.remove(&RoutePath::new("/a/b/c")).is_some());
        assert!(t.remove(&RoutePath::new("/a/b/c")).is_none());
        assert_eq!(matched(&t, "/a/b/c").as_deref(), Some("/a"));
        assert!(t.trie.root.children["a"].children.is_empty());
        t.remove(&RoutePath::new("/a"));
        assert!(t.lookup("/a").is_none());
        assert!(t.trie.root.children.is_empty());
    }

    #[test]
    fn replace_keeps_order_and_updates_target() {
        let mut t = table(&["/b", "/a"]);
        t.insert(RoutePath::new("/b"), data("http://127.0.0.1:9"), 5);
        let keys: Vec<String> = t.all().iter().map(|r| r.key.to_string()).collect();
        assert_eq!(keys, ["/b", "/a"]);
        let m = t.lookup("/b/x").expect("match");
        assert!(
            matches!(&m.route.target, Target::Http(t) if t.origin.authority().as_str() == "127.0.0.1:9")
        );
    }

    #[test]
    fn ten_thousand_routes() {
        let mut t = RouteTable::new();
        for i in 0..10_000 {
            t.insert(
                RoutePath::new(&format!("/user/u{i}")),
                data("http://127.0.0.1:1"),
                0,
            );
        }
        assert_eq!(t.len(), 10_000);
        let start = std::time::Instant::now();
        for i in 0..10_000 {
            let p = format!("/user/u{i}/api/kernels");
            let m = t.lookup(&p).expect("match");
            assert_eq!(m.route.key.as_str(), &p[..p.len() - "/api/kernels".len()]);
        }
        // Generous bound: a lookup is a few hash probes.
        assert!(start.elapsed() < std::time::Duration::from_secs(2));
        assert!(t.lookup("/user/nobody").is_none());
    }

    #[test]
    fn json_keeps_posted_order_and_activity() {
        let mut d = IndexMap::new();
        d.insert("zeta".to_owned(), json!(1));
        d.insert("target".to_owned(), json!("http://127.0.0.1:1"));
        let mut t = RouteTable::new();
        t.insert(RoutePath::new("/x"), d, 1_795_000_000_123);
        let mut buf = Vec::new();
        t.write_json(&mut buf, |_| true);
        let text = String::from_utf8(buf).expect("utf8");
        assert_eq!(
            text,
            r#"{"/x":{"zeta":1,"target":"http://127.0.0.1:1","last_activity":"2026-11-18T11:06:40.123Z"}}"#
        );
    }

    #[test]
    fn timestamps() {
        assert_eq!(format_ms(0), "1970-01-01T00:00:00.000Z");
        let ms = parse_timestamp_ms("2026-11-23T10:00:00.000Z").expect("parse");
        assert_eq!(format_ms(ms), "2026-11-23T10:00:00.000Z");
        assert_eq!(parse_timestamp_ms("2026-11-23T10:00:00Z"), Some(ms));
        assert_eq!(parse_timestamp_ms("2026-11-23T10:00:00"), Some(ms));
        assert_eq!(parse_timestamp_ms("2026-11-23T11:00:00+01:00"), Some(ms));
        assert_eq!(
            parse_timestamp_ms("2026-11-23"),
            Some(ms - 10 * 3600 * 1000)
        );
        assert_eq!(parse_timestamp_ms("yesterday"), None);
    }

    #[test]
    fn routes_file_round_trip() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("routes.json");
        let t = table(&["/", "/user/a"]);
        save_routes_file(&path, &routes_file_bytes(&t)).expect("save");
        let mut back = RouteTable::new();
        assert_eq!(load_routes_file(&path, &mut back).expect("load"), 2);
        assert_eq!(matched(&back, "/user/a/x").as_deref(), Some("/user/a"));
        assert_eq!(
            back.get(&RoutePath::new("/")).map(|r| r.last_activity_ms()),
            Some(0)
        );
        let mut none = RouteTable::new();
        let missing = dir.path().join("missing.json");
        assert_eq!(load_routes_file(&missing, &mut none).expect("missing"), 0);
        std::fs::write(&missing, "[1]").expect("write");
        assert!(load_routes_file(&missing, &mut none).is_err());
    }
}
