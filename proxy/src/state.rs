//! The state shared by every connection: configuration, the route table,
//! metrics, the pooled client for targets, and the API token.
//!
//! The route table sits behind a std `RwLock` that is only ever held for
//! a lookup or an update, never across an `.await`.

use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use http::{HeaderName, HeaderValue};
use hyper_util::client::legacy::connect::HttpConnector;
use tokio::sync::Notify;

use crate::cli::Config;
use crate::metrics::Metrics;
use crate::routes::{Generation, RouteTable};

/// The pooled HTTP/1.1 client used for targets and the error target.
pub type HttpClient = crate::upstream::Client;

/// The API token from `CONFIGPROXY_AUTH_TOKEN`; `Debug` never shows it.
pub struct AuthToken(Option<String>);

impl AuthToken {
    /// A token; empty means the API is open, as in the reference.
    pub fn new(token: Option<String>) -> Self {
        AuthToken(token.filter(|t| !t.is_empty()))
    }

    /// Whether a token is required.
    pub fn is_set(&self) -> bool {
        self.0.is_some()
    }

    /// Checks a presented token in constant time.
    pub fn matches(&self, presented: &str) -> bool {
        match &self.0 {
            None => true,
            Some(t) => {
                let (a, b) = (t.as_bytes(), presented.as_bytes());
                a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
            }
        }
    }
}

impl std::fmt::Debug for AuthToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "AuthToken(<redacted>)"
        } else {
            "AuthToken(none)"
        })
    }
}

/// Everything a request handler needs.
#[derive(Debug)]
pub struct State {
    /// The validated configuration.
    pub config: Config,
    /// Custom headers, parsed once.
    pub custom_headers: Vec<(HeaderName, HeaderValue)>,
    /// The routing table.
    table: RwLock<RouteTable>,
    /// Bumped on every table change; the routes-file writer watches it.
    pub generation: Generation,
    /// Wakes the routes-file writer.
    pub changed: Notify,
    /// Metrics.
    pub metrics: Metrics,
    /// Client for targets.
    pub client: HttpClient,
    /// API token.
    pub token: AuthToken,
}

impl State {
    /// Builds the state around a loaded table.
    pub fn new(
        config: Config,
        table: RouteTable,
        client: HttpClient,
        token: AuthToken,
    ) -> Arc<Self> {
        let custom_headers = config
            .custom_headers
            .iter()
            .filter_map(|(k, v)| {
                Some((
                    HeaderName::from_bytes(k.as_bytes()).ok()?,
                    HeaderValue::from_str(v).ok()?,
                ))
            })
            .collect();
        let metrics = Metrics::new(config.metrics_listen.is_some());
        Arc::new(State {
            config,
            custom_headers,
            table: RwLock::new(table),
            generation: Generation::default(),
            changed: Notify::new(),
            metrics,
            client,
            token,
        })
    }

    /// Read access to the table (a poisoned lock is still usable: the
    /// table has no invariant a panicking reader could break).
    pub fn read(&self) -> RwLockReadGuard<'_, RouteTable> {
        self.table.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Write access to the table.
    pub fn write(&self) -> RwLockWriteGuard<'_, RouteTable> {
        self.table.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a change for the routes-file writer.
    pub fn mark_changed(&self) {
        self.generation.bump();
        self.changed.notify_one();
    }
}

/// Builds the pooled target client: keep-alive, no Nagle, TCP keepalive,
/// http and https targets (see [`crate::tls::client_config`]).
pub fn build_client(config: &Config) -> Result<HttpClient, crate::tls::TlsError> {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_keepalive(Some(Duration::from_secs(60)));
    http.set_connect_timeout(Some(
        config.proxy_timeout.unwrap_or(Duration::from_secs(30)),
    ));
    let tls = crate::tls::client_config(config)?;
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Ok(HttpClient::new(connector, Duration::from_secs(60), 1024))
}
