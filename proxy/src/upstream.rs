//! The pooled HTTP/1.1 client for targets and the error target.
//!
//! It keeps the behaviour of hyper-util's legacy client as the proxy
//! configured it (keep-alive pool, 60 s idle timeout, at most 1024 idle
//! connections per target, HTTP/1.1 only, http and https targets through
//! the same connector), at a fraction of its cost per request:
//! - idle connections are kept per [`Origin`] (scheme and authority,
//!   hashed once when a route's target is parsed, so a request's pool
//!   lookup hashes nothing); the most recently returned one is used first, and closed or expired ones are
//!   dropped on the way; with none left a new connection is made (its
//!   connection task is spawned, upgrades enabled, and it is used once it
//!   reports ready);
//! - a request that a reused connection closed before sending is sent
//!   again, on another connection (targets close idle keep-alive
//!   connections whenever they like);
//! - the request goes out in origin form (authority form for `CONNECT`),
//!   with a `Host` header made from the target when it has none;
//! - after the response head, the connection goes back to the pool as soon
//!   as it can take another request (at once when the body has already
//!   been read, else when it has, from a spawned task);
//! - a task started with the first idle connection drops expired and
//!   closed idle connections every idle timeout;
//! - a request that finds no idle connection makes one and uses it (the
//!   former client also watched for a connection coming back meanwhile
//!   and took whichever came first: a difference in timing only);
//! - errors read `client error (Kind)` with the cause as their source, and
//!   the debug and warning lines are the former client's, so logs keep
//!   their text.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use http::uri::{Authority, Parts, Scheme};
use http::{HeaderValue, Method, Request, Response, Uri, Version, header};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use tower_service::Service;

use crate::body::RequestBody;

/// The connector: TCP (no Nagle, keepalive, connect timeout), plus TLS
/// for https targets.
pub type Connector = HttpsConnector<HttpConnector>;

type Sender = http1::SendRequest<RequestBody>;
type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What went wrong, named as the former client named it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A request a connection closed before sending it, on a new
    /// connection (so it was not retried).
    Canceled,
    /// The connector failed.
    Connect,
    /// The request's version cannot go over HTTP/1.
    UserUnsupportedVersion,
    /// The request URI has no scheme or authority.
    UserAbsoluteUriRequired,
    /// The connection failed while sending or receiving.
    SendRequest,
}

/// A failed request to a target.
#[derive(Debug)]
pub struct Error {
    kind: Kind,
    source: Option<BoxError>,
}

impl Error {
    fn new(kind: Kind, source: impl Into<BoxError>) -> Self {
        Error {
            kind,
            source: Some(source.into()),
        }
    }

    fn bare(kind: Kind) -> Self {
        Error { kind, source: None }
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "client error ({:?})", self.kind)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_ref().map(|e| &**e as _)
    }
}

/// FNV-1a over an origin's lowercased bytes: origins are targets set
/// through the API, not chosen by clients.
fn fnv(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for &b in part.as_bytes() {
            h = (h ^ u64::from(b.to_ascii_lowercase())).wrapping_mul(0x0100_0000_01b3);
        }
        h = (h ^ 0xff).wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Where connections go: a scheme and an authority, compared (and
/// hashed) without regard to case. The hash is computed once, when the
/// origin is made (for a route's target, when the route is added), so
/// that finding a pooled connection costs no hashing per request.
#[derive(Debug, Clone)]
pub struct Origin {
    scheme: Scheme,
    authority: Authority,
    hash: u64,
}

impl Origin {
    /// The origin `scheme://authority`.
    pub fn new(scheme: Scheme, authority: Authority) -> Self {
        let hash = fnv(&[scheme.as_str(), authority.as_str()]);
        Origin {
            scheme,
            authority,
            hash,
        }
    }

    /// `host[:port]`.
    pub fn authority(&self) -> &Authority {
        &self.authority
    }

    /// The key as the former client's pool printed it in debug lines.
    fn as_tuple(&self) -> (&Scheme, &Authority) {
        (&self.scheme, &self.authority)
    }
}

impl PartialEq for Origin {
    fn eq(&self, other: &Self) -> bool {
        // Clones of one origin (a route's, and the pool's key made from
        // it) share their authority's bytes: equal without comparing them.
        let same_bytes = std::ptr::eq(self.authority.as_str(), other.authority.as_str());
        self.hash == other.hash
            && self.scheme == other.scheme
            && (same_bytes || self.authority == other.authority)
    }
}

impl Eq for Origin {}

impl Hash for Origin {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}://{}", self.scheme, self.authority)
    }
}

/// The pool map's hasher: an origin's hash is already made.
#[derive(Default)]
struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only origins are hashed with it, through `write_u64`.
        for &b in bytes {
            self.0 = (self.0 << 8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type IdleMap = HashMap<Origin, Vec<Idle>, BuildHasherDefault<Prehashed>>;

/// An idle connection and when it became idle.
struct Idle {
    tx: Sender,
    since: Instant,
}

/// The idle connections.
struct Pool {
    idle: Mutex<IdleMap>,
    timeout: Duration,
    max_per_host: usize,
    reaper_started: AtomicBool,
}

impl Pool {
    fn lock(&self) -> MutexGuard<'_, IdleMap> {
        // A panic elsewhere cannot leave the map inconsistent.
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The most recently returned connection to `key` that is open and
    /// has not expired; closed or expired ones met on the way are dropped.
    fn checkout(&self, key: &Origin) -> Option<Sender> {
        let now = Instant::now();
        let mut idle = self.lock();
        let list = idle.get_mut(key)?;
        while let Some(entry) = list.pop() {
            if entry.tx.is_ready() && now.saturating_duration_since(entry.since) <= self.timeout {
                tracing::debug!("reuse idle connection for {:?}", key.as_tuple());
                return Some(entry.tx);
            }
        }
        None
    }

    /// Keeps `tx` for reuse if it is open and the per-target cap allows.
    fn put(self: &Arc<Self>, key: &Origin, tx: Sender) {
        if !tx.is_ready() {
            return;
        }
        let idle = Idle {
            tx,
            since: Instant::now(),
        };
        {
            let mut map = self.lock();
            match map.get_mut(key) {
                Some(list) if list.len() >= self.max_per_host => return,
                Some(list) => {
                    tracing::debug!("pooling idle connection for {:?}", key.as_tuple());
                    list.push(idle);
                }
                None => {
                    tracing::debug!("pooling idle connection for {:?}", key.as_tuple());
                    map.insert(key.clone(), vec![idle]);
                }
            }
        }
        if !self.reaper_started.swap(true, Ordering::Relaxed) {
            tokio::spawn(reap(Arc::downgrade(self), self.timeout));
        }
    }

    /// Drops closed and expired idle connections, and empty lists.
    fn clear_expired(&self) {
        let now = Instant::now();
        self.lock().retain(|_, list| {
            list.retain(|e| {
                e.tx.is_ready() && now.saturating_duration_since(e.since) <= self.timeout
            });
            !list.is_empty()
        });
    }
}

/// Clears expired connections every `timeout` (at least every 90 ms)
/// for as long as the pool exists.
async fn reap(pool: Weak<Pool>, timeout: Duration) {
    let period = timeout.max(Duration::from_millis(90));
    loop {
        tokio::time::sleep(period).await;
        match pool.upgrade() {
            Some(pool) => pool.clear_expired(),
            None => return,
        }
    }
}

/// The client: a connector and a pool of idle connections.
pub struct Client {
    connector: Connector,
    pool: Arc<Pool>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("idle_timeout", &self.pool.timeout)
            .field("max_idle_per_host", &self.pool.max_per_host)
            .finish_non_exhaustive()
    }
}

/// The port to name in a made-up `Host` header: none when it is the
/// scheme's default.
fn non_default_port(origin: &Origin) -> Option<http::uri::Port<&str>> {
    let secure = matches!(origin.scheme.as_str(), "https" | "wss");
    let port = origin.authority.port();
    match (port.as_ref().map(http::uri::Port::as_u16), secure) {
        (Some(443), true) | (Some(80), false) => None,
        _ => port,
    }
}

/// Rewrites a URI to the form sent on the wire: the authority alone for
/// `CONNECT`, else the path and query (`/` when empty). A URI that is
/// already a path (no scheme) is kept as it is.
fn wire_form(connect: bool, origin: &Origin, uri: &mut Uri) {
    if connect {
        *uri = Uri::from(origin.authority.clone());
        return;
    }
    if uri.scheme().is_none() {
        return;
    }
    *uri = match uri.path_and_query() {
        Some(p) if p.as_str() != "/" => Uri::from(p.clone()),
        _ => Uri::default(),
    };
}

impl Client {
    /// A client connecting through `connector`, keeping idle connections
    /// for `idle_timeout`, at most `max_idle_per_host` per target.
    pub fn new(connector: Connector, idle_timeout: Duration, max_idle_per_host: usize) -> Self {
        Client {
            connector,
            pool: Arc::new(Pool {
                idle: Mutex::new(HashMap::default()),
                timeout: idle_timeout,
                max_per_host: max_idle_per_host,
                reaper_started: AtomicBool::new(false),
            }),
        }
    }

    /// Sends `req` (with an absolute URI) to its target and returns the
    /// response head; the body streams from the connection.
    pub async fn request(&self, req: Request<RequestBody>) -> Result<Response<Incoming>, Error> {
        let origin = match (req.uri().scheme(), req.uri().authority()) {
            (Some(scheme), Some(authority)) => Origin::new(scheme.clone(), authority.clone()),
            _ => {
                tracing::debug!(
                    "Client requires absolute-form URIs, received: {:?}",
                    req.uri()
                );
                return Err(Error::bare(Kind::UserAbsoluteUriRequired));
            }
        };
        self.request_to(&origin, req).await
    }

    /// Sends `req` to `origin` (its URI absolute, or already the path and
    /// query to send) and returns the response head; the body streams
    /// from the connection.
    pub async fn request_to(
        &self,
        origin: &Origin,
        mut req: Request<RequestBody>,
    ) -> Result<Response<Incoming>, Error> {
        let connect = req.method() == Method::CONNECT;
        match req.version() {
            Version::HTTP_11 => {}
            Version::HTTP_10 if !connect => {}
            Version::HTTP_10 => {
                tracing::warn!("CONNECT is not allowed for HTTP/1.0");
                return Err(Error::bare(Kind::UserUnsupportedVersion));
            }
            Version::HTTP_2 => {
                tracing::warn!("Connection is HTTP/1, but request requires HTTP/2");
                return Err(Error::bare(Kind::UserUnsupportedVersion));
            }
            other => {
                tracing::warn!("Request has unsupported version \"{:?}\"", other);
                return Err(Error::bare(Kind::UserUnsupportedVersion));
            }
        }
        if !req.headers().contains_key(header::HOST) {
            let host = origin.authority.host();
            let value = match non_default_port(origin) {
                Some(port) => HeaderValue::from_str(&format!("{host}:{port}")),
                None => HeaderValue::from_str(host),
            };
            if let Ok(v) = value {
                req.headers_mut().insert(header::HOST, v);
            }
        }
        // The path a CONNECT request loses, warned about on every attempt.
        let stripped = req
            .uri()
            .path_and_query()
            .filter(|p| connect && p.as_str() != "/")
            .cloned();
        wire_form(connect, origin, req.uri_mut());
        loop {
            let (mut tx, reused) = match self.pool.checkout(origin) {
                Some(tx) => (tx, true),
                None => (self.connect(origin).await?, false),
            };
            if let Some(path) = &stripped {
                tracing::warn!("HTTP/1.1 CONNECT request stripping path: {:?}", path);
            }
            match tx.try_send_request(req).await {
                Ok(res) => {
                    self.give_back(origin, tx);
                    return Ok(res);
                }
                Err(mut e) => match e.take_message() {
                    // Not sent: a reused connection was closed under us.
                    Some(unsent) if reused => req = unsent,
                    Some(_) => return Err(Error::new(Kind::Canceled, e.into_error())),
                    None => return Err(Error::new(Kind::SendRequest, e.into_error())),
                },
            }
        }
    }

    /// Returns `tx` to the pool once it can take another request.
    fn give_back(&self, key: &Origin, mut tx: Sender) {
        if tx.is_ready() {
            self.pool.put(key, tx);
            return;
        }
        let pool = Arc::clone(&self.pool);
        let key = key.clone();
        tokio::spawn(async move {
            if tx.ready().await.is_ok() {
                pool.put(&key, tx);
            }
        });
    }

    /// A new connection to `key`, ready for a request.
    async fn connect(&self, key: &Origin) -> Result<Sender, Error> {
        let mut dst = Parts::default();
        dst.scheme = Some(key.scheme.clone());
        dst.authority = Some(key.authority.clone());
        dst.path_and_query = Some(http::uri::PathAndQuery::from_static("/"));
        let dst = Uri::from_parts(dst).map_err(|e| Error::new(Kind::Connect, e))?;
        let io = self
            .connector
            .clone()
            .call(dst)
            .await
            .map_err(|e| Error::new(Kind::Connect, e))?;
        let (mut tx, conn) = http1::Builder::new()
            .handshake(io)
            .await
            .map_err(|e| Error::new(Kind::SendRequest, e))?;
        let (err_tx, err_rx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!("client connection error: {:?}", e);
                let _ = err_tx.send(e);
            }
        });
        match tx.ready().await {
            Ok(()) => Ok(tx),
            // The connection ended: its own error says why.
            Err(e) if e.is_closed() => match err_rx.await {
                Ok(conn_error) => Err(Error::new(Kind::SendRequest, conn_error)),
                Err(_) => Err(Error::new(Kind::SendRequest, e)),
            },
            Err(e) => Err(Error::new(Kind::SendRequest, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(s: &str) -> Origin {
        let u: Uri = s.parse().unwrap();
        Origin::new(u.scheme().unwrap().clone(), u.authority().unwrap().clone())
    }

    #[test]
    fn wire_forms() {
        let o = origin("http://example.com:8000");
        let mut u: Uri = "http://example.com:8000/a/b?c=1".parse().unwrap();
        wire_form(false, &o, &mut u);
        assert_eq!(u, "/a/b?c=1");
        let mut u: Uri = "http://example.com/".parse().unwrap();
        wire_form(false, &o, &mut u);
        assert_eq!(u, "/");
        // Already a path: kept.
        let mut u: Uri = "/x/y?z".parse().unwrap();
        wire_form(false, &o, &mut u);
        assert_eq!(u, "/x/y?z");
        let mut u: Uri = "http://example.com:8000/x".parse().unwrap();
        wire_form(true, &o, &mut u);
        assert_eq!(u, "example.com:8000");
    }

    #[test]
    fn host_port() {
        assert!(non_default_port(&origin("http://example.com:80")).is_none());
        assert!(non_default_port(&origin("http://example.com")).is_none());
        assert!(non_default_port(&origin("https://example.com:443")).is_none());
        let o = origin("https://example.com:80");
        assert_eq!(non_default_port(&o).unwrap().as_str(), "80");
        let o = origin("http://example.com:8000");
        assert_eq!(non_default_port(&o).unwrap().as_str(), "8000");
    }

    #[test]
    fn origins_ignore_case() {
        use std::hash::BuildHasher;
        let a = origin("http://Example.COM:80");
        let b = origin("HTTP://example.com:80");
        assert_eq!(a, b);
        let h = BuildHasherDefault::<Prehashed>::default();
        assert_eq!(h.hash_one(&a), h.hash_one(&b));
        assert_ne!(a, origin("https://example.com:80"));
        assert_ne!(a, origin("http://example.com:81"));
    }

    #[test]
    fn error_text() {
        let e = Error::new(Kind::Connect, "tcp connect error");
        assert_eq!(e.to_string(), "client error (Connect)");
        assert_eq!(
            std::error::Error::source(&e).unwrap().to_string(),
            "tcp connect error"
        );
    }
}
