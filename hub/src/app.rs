//! The hub's shared state, its router, and what it sets up at start
//! (roles, configured users, services and their tokens).

use std::ops::Deref;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::sync::watch;

use crate::api;
use crate::auth::allow::AllowRules;
use crate::auth::authenticator::{self, AuthenticatorHandle, BuildError};
use crate::auth::{RequestUser, Requester, tokens};
use crate::config::{Config, Secrets};
use crate::db::{Bearer, Db, DbError, NewToken, TokenOwner};
use crate::error::{ApiError, error_response};
use crate::metrics::Metrics;
use crate::names;
use crate::proxy_client::{ProxyClient, ProxyError};
use crate::scopes::BUILTIN_ROLES;
use crate::session::SessionKeys;

/// The note on tokens that come from the configuration.
pub const CONFIG_TOKEN_NOTE: &str = "from config";

/// What every request handler can reach.
#[derive(Debug)]
pub struct Inner {
    /// The database.
    pub db: Db,
    /// The configuration.
    pub config: Arc<Config>,
    /// The proxy's API.
    pub proxy: ProxyClient,
    /// Request counters.
    pub metrics: Metrics,
    /// The hub's URL as the proxy should reach it.
    pub hub_url: String,
    /// The authenticator `hub.authenticator_class` chose.
    pub authenticator: AuthenticatorHandle,
    /// The allow and block rules of `[authenticator]`.
    pub allow: AllowRules,
    /// The keys of browser sessions (from the cookie secret).
    pub sessions: SessionKeys,
    /// Users' servers under way.
    pub servers: crate::spawner::Servers,
    /// The client that asks starting servers whether they answer.
    pub probe: reqwest::Client,
    /// The proxy process, when the hub starts it.
    pub proxy_process: Option<crate::proxy_process::ProxyProcess>,
    shutdown: watch::Sender<bool>,
}

/// Shared state (cheap to clone).
#[derive(Debug, Clone)]
pub struct AppState(Arc<Inner>);

impl Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    /// State over an opened database, with the authenticator the
    /// configuration names and session keys from `cookie_secret`.
    pub fn new(
        db: Db,
        config: Config,
        secrets: &Secrets,
        cookie_secret: &[u8],
    ) -> Result<(Self, watch::Receiver<bool>), BuildError> {
        let (tx, rx) = watch::channel(false);
        let authenticator = AuthenticatorHandle(authenticator::build(&config, secrets, &db)?);
        let allow = AllowRules::from_config(&config);
        let secure = config.hub.bind_url.starts_with("https://");
        // days to seconds; validated to (0, 3650] at load
        let max_age = (config.hub.cookie_max_age_days * 86_400.0) as i64;
        let sessions = SessionKeys::new(cookie_secret, secure, max_age);
        let hub_url = origin(
            config
                .hub
                .hub_connect_url
                .as_deref()
                .unwrap_or(&config.hub.hub_bind_url),
        );
        let proxy = ProxyClient::new(&config.proxy.api_url, secrets.proxy_auth_token.clone());
        let proxy_process = match (&secrets.proxy_auth_token, config.proxy.should_start) {
            (Some(token), true) => Some(
                crate::proxy_process::ProxyProcess::from_config(&config, token.clone())
                    .map_err(BuildError)?,
            ),
            _ => None,
        };
        let helper = crate::spawner::helper::Helper::new(config.spawner.sudospawner_path.clone());
        let probe = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(1))
            .timeout(std::time::Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()
            .unwrap_or_default();
        let inner = Inner {
            db,
            config: Arc::new(config),
            proxy,
            metrics: Metrics::default(),
            hub_url,
            authenticator,
            allow,
            sessions,
            servers: crate::spawner::Servers::new(helper),
            probe,
            proxy_process,
            shutdown: tx,
        };
        Ok((Self(Arc::new(inner)), rx))
    }

    /// Asks the hub to stop (after answering in-flight requests).
    pub fn request_shutdown(&self) {
        self.shutdown.send_replace(true);
    }

    /// Makes sure the proxy routes `/` to the hub, each service's prefix
    /// to the service and each running server's prefix to the server, and
    /// nothing to servers that stopped.
    pub async fn sync_proxy(&self) -> Result<(), ProxyError> {
        crate::spawner::reconcile_routes(self).await.map(|_| ())
    }
}

/// `scheme://host:port` of a URL.
pub(crate) fn origin(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            format!("{scheme}://{}", rest.split('/').next().unwrap_or_default())
        }
        None => url.to_owned(),
    }
}

/// Why start-up failed.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The configuration is inconsistent with the database.
    #[error("{0}")]
    Conflict(String),
}

/// Applies the configuration to the database, as JupyterHub does at
/// start: built-in and configured roles, admin and allowed users,
/// services, service tokens and role assignments. Touches only the rows
/// the configuration names, so start-up time does not grow with the
/// number of users.
pub async fn init_from_config(
    db: &Db,
    config: &Config,
    secrets: &Secrets,
) -> Result<(), InitError> {
    for r in BUILTIN_ROLES {
        let scopes: Vec<String> = r.scopes.iter().map(|s| s.to_string()).collect();
        db.upsert_role(r.name, Some(r.description), &scopes).await?;
    }
    let mut keep: Vec<String> = BUILTIN_ROLES.iter().map(|r| r.name.to_owned()).collect();
    for r in config.roles.iter().filter(|r| r.name != "admin") {
        db.upsert_role(&r.name, r.description.as_deref(), &r.scopes)
            .await?;
        keep.push(r.name.clone());
    }
    let removed = db.delete_roles_except(&keep).await?;
    if removed > 0 {
        tracing::info!(
            count = removed,
            "deleted roles no longer in the configuration"
        );
    }

    // users named in the configuration
    for (list, admin) in [
        (&config.authenticator.admin_users, true),
        (&config.authenticator.allowed_users, false),
    ] {
        for raw in list {
            let name = names::normalize(raw);
            let user = get_or_create_user(db, &name).await?;
            if admin && !user.admin {
                db.update_user(user.id, None, Some(true)).await?;
            }
        }
    }

    // services and their tokens
    let mut service_names = Vec::new();
    let mut kept_tokens = Vec::new();
    for s in &config.services {
        let id = db
            .upsert_service(&s.name, s.admin, s.url.as_deref())
            .await?;
        db.set_role(Bearer::Service, id, "admin", s.admin).await?;
        service_names.push(s.name.clone());
        if let Some(token) = secrets.service_tokens.get(&s.name) {
            let hashed = tokens::hash(token.expose());
            match db.token_by_hash(&hashed).await? {
                Some(existing) if existing.service_id == Some(id) => {}
                Some(_) => {
                    return Err(InitError::Conflict(format!(
                        "the api_token of service {} is already used by another user or service",
                        s.name
                    )));
                }
                None => {
                    db.insert_token(&NewToken {
                        hashed: &hashed,
                        prefix: tokens::prefix(token.expose()),
                        owner: TokenOwner::Service(id),
                        scopes: &["inherit".to_owned()],
                        note: CONFIG_TOKEN_NOTE,
                        expires_at: None,
                    })
                    .await?;
                }
            }
            kept_tokens.push(hashed);
        }
    }
    db.delete_services_except(&service_names).await?;
    db.delete_service_tokens_except(CONFIG_TOKEN_NOTE, &kept_tokens)
        .await?;
    crate::oauth::sync_service_clients(db, config, secrets).await?;

    // role assignments: a list given in the config is the exact list
    for r in &config.roles {
        let role_id = db.upsert_role_id(&r.name).await?;
        if let Some(users) = &r.users {
            let mut ids = Vec::new();
            for raw in users {
                let user = get_or_create_user(db, &names::normalize(raw)).await?;
                if r.name == "admin" && !user.admin {
                    db.set_admin_flag(user.id, true).await?;
                }
                ids.push(user.id);
            }
            db.set_role_bearers(role_id, Bearer::User, &ids).await?;
        }
        if let Some(groups) = &r.groups {
            let mut ids = Vec::new();
            for g in groups {
                ids.push(db.ensure_group(g).await?);
            }
            db.set_role_bearers(role_id, Bearer::Group, &ids).await?;
        }
        if let Some(services) = &r.services {
            let mut ids = Vec::new();
            for name in services {
                let s = db.find_service(name).await?.ok_or_else(|| {
                    InitError::Conflict(format!("role {} names undefined service {name}", r.name))
                })?;
                ids.push(s.id);
            }
            db.set_role_bearers(role_id, Bearer::Service, &ids).await?;
        }
    }
    Ok(())
}

async fn get_or_create_user(db: &Db, name: &str) -> Result<crate::db::UserRow, DbError> {
    if let Some(u) = db.find_user(name).await? {
        return Ok(u);
    }
    tracing::info!(user.name = %name, "creating user named in the configuration");
    Ok(db.create_users(&[name.to_owned()], false).await?.remove(0))
}

/// The hub's router.
pub fn router(st: AppState) -> Router {
    use axum::routing::{post, put};
    let api = Router::new()
        .route("/", get(api::info::root))
        .route("/info", get(api::info::info))
        .route("/user", get(api::users::whoami))
        .route(
            "/users",
            get(api::users::list).post(api::users::create_many),
        )
        .route(
            "/users/{name}",
            get(api::users::get_one)
                .post(api::users::create_one)
                .patch(api::users::patch)
                .delete(api::users::delete),
        )
        .route(
            "/users/{name}/server",
            get(api::servers::get_default)
                .post(api::servers::start_default)
                .delete(api::servers::stop_default),
        )
        .route(
            "/users/{name}/servers/{server}",
            get(api::servers::get_named)
                .post(api::servers::start_named)
                .delete(api::servers::stop_named),
        )
        .route(
            "/users/{name}/server/progress",
            get(api::servers::progress_default),
        )
        .route(
            "/users/{name}/servers/{server}/progress",
            get(api::servers::progress_named),
        )
        .route("/users/{name}/activity", post(api::servers::activity))
        .route(
            "/users/{name}/tokens",
            get(api::tokens::list).post(api::tokens::create),
        )
        .route(
            "/users/{name}/tokens/{token_id}",
            get(api::tokens::get_one).delete(api::tokens::delete),
        )
        .route(
            "/groups",
            get(api::groups::list).post(api::groups::create_many),
        )
        .route(
            "/groups/{name}",
            get(api::groups::get_one)
                .post(api::groups::create_one)
                .delete(api::groups::delete),
        )
        .route(
            "/groups/{name}/users",
            post(api::groups::add_users).delete(api::groups::remove_users),
        )
        .route(
            "/groups/{name}/properties",
            put(api::groups::set_properties),
        )
        .route("/services", get(api::services::list))
        .route("/services/{name}", get(api::services::get_one))
        .route(
            "/authorizations/token/{token}",
            get(api::tokens::authorization),
        )
        .route(
            "/authorizations/token",
            post(api::tokens::removed_token_request),
        )
        .route("/proxy", get(api::proxy::get).post(api::proxy::sync))
        .route("/shutdown", post(api::info::shutdown))
        .fallback(|| async { ApiError::not_found_plain() })
        .method_not_allowed_fallback(|| async {
            error_response(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed")
        })
        .layer(axum::middleware::from_fn(api::buffer_body))
        .layer(axum::middleware::map_response(crate::error::json_errors));
    let pages = crate::pages::router(&st);
    Router::new()
        .route("/hub/api/", get(api::info::root))
        .merge(crate::oauth::api_routes())
        .nest("/hub/api", api)
        .merge(pages)
        .route("/hub/health", get(health))
        .route("/hub/metrics", get(metrics))
        .layer(axum::middleware::from_fn_with_state(
            st.clone(),
            log_request,
        ))
        .with_state(st)
}

async fn health() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        r#"{"status": "ok"}"#,
    )
        .into_response()
}

async fn metrics(State(st): State<AppState>, req: Request) -> Result<Response, ApiError> {
    if st.config.hub.authenticate_prometheus {
        let (mut parts, _) = req.into_parts();
        let r = <Requester as axum::extract::FromRequestParts<AppState>>::from_request_parts(
            &mut parts, &st,
        )
        .await?;
        r.need(&st, &["read:metrics"], None).await?;
    }
    let users = st.db.count_users().await?;
    let running = st.db.count_running_servers().await?;
    Ok((
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        st.metrics.render(users, running),
    )
        .into_response())
}

/// One log line per request: who, method, path, status, duration.
async fn log_request(State(st): State<AppState>, mut req: Request, next: Next) -> Response {
    let start = Instant::now();
    let slot = RequestUser::default();
    req.extensions_mut().insert(slot.clone());
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned());
    // the deprecated token lookup carries a token in its path
    let path = match &route {
        Some(r) if r.contains("{token}") => r.clone(),
        _ => req.uri().path().to_owned(),
    };
    let mut response = next.run(req).await;
    // as JupyterHub does on every answer: jupyterhub-singleuser compares
    // it with its own version
    response.headers_mut().insert(
        "x-jupyterhub-version",
        axum::http::HeaderValue::from_static(api::info::API_VERSION),
    );
    let took = start.elapsed();
    let status = response.status().as_u16();
    st.metrics.observe(method.as_str(), status, took);
    let user = slot.get().unwrap_or_else(|| "-".into());
    let ms = took.as_secs_f64() * 1000.0;
    if path == "/hub/health" {
        tracing::debug!(user = %user, method = %method, path = %path, status, duration_ms = ms, "request");
    } else {
        tracing::info!(user = %user, method = %method, path = %path, status, duration_ms = ms, "request");
    }
    response
}
