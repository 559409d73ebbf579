//! `jhub`: a multi-user Jupyter hub, JupyterHub-compatible, that runs as
//! an unprivileged account and starts users' servers only through the
//! `sudospawner` helper.
//!
//! This crate holds the hub; `src/main.rs` is only the command line.
//! Modules by concept:
//!
//! - [`config`]: the TOML configuration (JupyterHub's traitlet names) and
//!   its command-line overrides;
//! - [`secret`]: the cookie secret;
//! - [`names`]: the username rule;
//! - [`scopes`]: roles and scopes, as JupyterHub 6 defines them;
//! - [`db`]: the database (SQLite now, PostgreSQL through the same SQL
//!   later);
//! - [`auth`]: API tokens, access checks, authenticators and the login
//!   flow;
//! - [`session`]: browser sessions (signed cookies) and XSRF tokens;
//! - [`api`]: the REST API under `/hub/api`;
//! - [`pages`]: the server-rendered pages (login, logout, home);
//! - [`oauth`]: the OAuth2 provider that logs browsers in to servers and
//!   services;
//! - [`app`]: shared state, the router, and start-up from configuration;
//! - [`services`]: hub-managed services (child processes of the hub);
//! - [`culler`]: the built-in idle culler;
//! - [`proxy_client`], [`metrics`], [`error`].
#![forbid(unsafe_code)]

pub mod api;
pub mod app;
pub mod auth;
pub mod config;
pub mod culler;
pub mod db;
pub mod error;
pub mod metrics;
pub mod names;
pub mod oauth;
pub mod pages;
pub mod proxy_client;
pub mod proxy_process;
pub mod scopes;
pub mod secret;
pub mod services;
pub mod session;
pub mod spawner;

use std::future::Future;

use tokio::net::TcpListener;

use crate::app::AppState;
use crate::config::Loaded;
use crate::db::{Db, DbUrl};

/// Why the hub stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    /// Start-up failed.
    #[error("{0}")]
    Startup(String),
    /// Serving failed.
    #[error("server error: {0}")]
    Serve(#[from] std::io::Error),
}

/// Opens the database and applies the configuration to it.
pub async fn open_database(loaded: &Loaded, upgrade: bool) -> Result<Db, HubError> {
    let url = DbUrl::parse(&loaded.config.hub.db_url).map_err(HubError::Startup)?;
    let db = Db::open(&url, upgrade)
        .await
        .map_err(|e| HubError::Startup(e.to_string()))?;
    app::init_from_config(&db, &loaded.config, &loaded.secrets)
        .await
        .map_err(|e| HubError::Startup(e.to_string()))?;
    Ok(db)
}

/// Runs the hub on `hub.hub_bind_url` until SIGINT, SIGTERM or
/// `POST /hub/api/shutdown`.
pub async fn run(loaded: Loaded) -> Result<(), HubError> {
    let addr = config::bind_addr(&loaded.config.hub.hub_bind_url).map_err(HubError::Startup)?;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| HubError::Startup(format!("cannot listen on {addr}: {e}")))?;
    run_with_listener(loaded, listener, shutdown_signal()).await
}

/// Runs the hub on `listener` until `shutdown` completes or the API asks
/// it to stop.
pub async fn run_with_listener(
    loaded: Loaded,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), HubError> {
    let cookie_secret = secret::load_cookie_secret(
        loaded.secrets.cookie_secret_env.as_ref(),
        &loaded.config.hub.cookie_secret_file,
    )
    .map_err(|e| HubError::Startup(e.to_string()))?;
    let db = open_database(&loaded, false).await?;
    let mut secrets = loaded.secrets.clone();
    if secrets.proxy_auth_token.is_none() && loaded.config.proxy.should_start {
        // The proxy the hub starts gets a token kept beside the cookie
        // secret (0600), so that the next hub can adopt the proxy.
        let path = proxy_token_path(&loaded.config);
        let bytes = secret::load_secret_file("proxy token", &path)
            .map_err(|e| HubError::Startup(e.to_string()))?;
        secrets.proxy_auth_token = Some(config::Secret::new(secret::hex(&bytes)));
    }
    let (state, mut stop) =
        AppState::new(db.clone(), loaded.config.clone(), &secrets, &cookie_secret)
            .map_err(|e| HubError::Startup(e.to_string()))?;
    drop(cookie_secret);
    if !state.allow.any_allow_config()
        && loaded.config.authenticator.allowed_groups.is_empty()
        && !state.authenticator.has_own_allow_list()
    {
        tracing::warn!(
            "no allow configuration (allowed_users, allowed_groups, allow_all, \
             allow_existing_users): nobody can log in"
        );
    }
    let sweeper = state.clone();
    tokio::spawn(async move {
        // Expired sessions are refused on sight; this only keeps the
        // table small.
        let mut every = tokio::time::interval(std::time::Duration::from_secs(3600));
        loop {
            every.tick().await;
            if let Err(e) = sweeper.db.delete_expired_sessions(&crate::db::now()).await {
                tracing::warn!(error = %e, "cannot delete expired sessions");
            }
        }
    });

    if let Some(proxy) = &state.proxy_process {
        proxy
            .start_or_adopt(&state.proxy)
            .await
            .map_err(HubError::Startup)?;
    }
    spawner::adopt(&state)
        .await
        .map_err(|e| HubError::Startup(format!("cannot check the servers: {e}")))?;
    let proxy_state = state.clone();
    tokio::spawn(async move {
        match proxy_state.sync_proxy().await {
            Ok(()) => tracing::info!("proxy routes are in place"),
            Err(e) => {
                tracing::warn!(error = %e, "proxy not reachable; its routes are checked every {}s", proxy_state.config.proxy.check_running_interval);
            }
        }
        spawner::watch(proxy_state);
    });
    culler::start(&state);
    let managed = services::start(&state, &secrets)
        .await
        .map_err(HubError::Startup)?;

    let local = listener.local_addr()?;
    tracing::info!(address = %local, "hub is running; API at http://{local}/hub/api");
    let app = app::router(state);
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            tokio::select! {
                () = shutdown => {},
                _ = stop.wait_for(|s| *s) => {},
            }
            tracing::info!("shutting down");
        })
        .await?;
    managed.shutdown().await;
    db.close().await;
    Ok(())
}

/// Where the generated proxy token is kept: beside the cookie secret.
fn proxy_token_path(config: &config::Config) -> std::path::PathBuf {
    config
        .hub
        .cookie_secret_file
        .parent()
        .unwrap_or_else(|| std::path::Path::new("."))
        .join("proxy_auth_token")
}

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
