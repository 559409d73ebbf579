//! The hub's client for the proxy's REST API (configurable-http-proxy's
//! `/api/routes`), with a timeout on every call.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::config::Secret;

/// Why a proxy API call failed.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The proxy could not be reached or did not answer in time.
    #[error("proxy API at {url} is not reachable: {reason}")]
    Unreachable {
        /// The API URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// The proxy answered with an error status.
    #[error("proxy API at {url} answered {status}")]
    Status {
        /// The API URL.
        url: String,
        /// The HTTP status.
        status: u16,
    },
}

/// The key JupyterHub puts in the data of every route it adds, and by
/// which it tells its routes from others in the proxy's table.
pub const HUB_MARK: &str = "jupyterhub";

/// A route as the hub's API shows it.
pub type Routes = BTreeMap<String, Value>;

/// A client for one proxy.
#[derive(Clone)]
pub struct ProxyClient {
    http: reqwest::Client,
    api_url: String,
    token: Option<Secret>,
}

impl std::fmt::Debug for ProxyClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyClient")
            .field("api_url", &self.api_url)
            .finish_non_exhaustive()
    }
}

impl ProxyClient {
    /// A client for the API at `api_url`.
    pub fn new(api_url: &str, token: Option<Secret>) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .connect_timeout(Duration::from_secs(3))
            .build()
            .unwrap_or_default();
        Self {
            http,
            api_url: api_url.trim_end_matches('/').to_owned(),
            token,
        }
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let mut r = self
            .http
            .request(method, format!("{}/api/routes{path}", self.api_url));
        if let Some(t) = &self.token {
            r = r.header("Authorization", format!("token {}", t.expose()));
        }
        r
    }

    async fn send(&self, r: reqwest::RequestBuilder) -> Result<reqwest::Response, ProxyError> {
        let resp = r.send().await.map_err(|e| ProxyError::Unreachable {
            url: self.api_url.clone(),
            reason: e.to_string(),
        })?;
        if !resp.status().is_success() {
            return Err(ProxyError::Status {
                url: self.api_url.clone(),
                status: resp.status().as_u16(),
            });
        }
        Ok(resp)
    }

    /// All routes, in JupyterHub's form:
    /// `{routespec: {"routespec", "target", "data"}}`.
    pub async fn get_routes(&self) -> Result<Routes, ProxyError> {
        let resp = self.send(self.request(reqwest::Method::GET, "")).await?;
        let raw: Map<String, Value> = resp.json().await.map_err(|e| ProxyError::Unreachable {
            url: self.api_url.clone(),
            reason: format!("bad answer: {e}"),
        })?;
        let mut routes = Routes::new();
        for (path, value) in raw {
            let mut data = match value {
                Value::Object(m) => m,
                _ => Map::new(),
            };
            // as JupyterHub: only the routes the hub added (marked
            // `jupyterhub`), keyed by their routespec, which ends in '/'
            // (the proxy strips it)
            if data.remove(HUB_MARK).is_none() {
                continue;
            }
            let target = data.remove("target").unwrap_or(Value::Null);
            let spec = if path.ends_with('/') {
                path
            } else {
                format!("{path}/")
            };
            routes.insert(
                spec.clone(),
                serde_json::json!({"routespec": spec, "target": target, "data": data}),
            );
        }
        Ok(routes)
    }

    /// Adds (or replaces) a route.
    pub async fn add_route(
        &self,
        spec: &str,
        target: &str,
        data: Map<String, Value>,
    ) -> Result<(), ProxyError> {
        let mut body = data;
        body.insert("target".into(), Value::String(target.to_owned()));
        body.insert(HUB_MARK.into(), Value::Bool(true));
        let path = if spec.starts_with('/') {
            spec.to_owned()
        } else {
            format!("/{spec}")
        };
        self.send(self.request(reqwest::Method::POST, &path).json(&body))
            .await
            .map(|_| ())
    }

    /// Deletes a route; a missing route is not an error.
    pub async fn delete_route(&self, spec: &str) -> Result<(), ProxyError> {
        let path = spec.trim_end_matches('/');
        let path = if path.starts_with('/') {
            path.to_owned()
        } else {
            format!("/{path}")
        };
        match self
            .send(self.request(reqwest::Method::DELETE, &path))
            .await
        {
            Ok(_) | Err(ProxyError::Status { status: 404, .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }
}
