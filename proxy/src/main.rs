//! `jhub-proxy`: routes browser traffic to the hub and to users' servers,
//! controlled by a REST API compatible with configurable-http-proxy 5.3,
//! whose command-line flags it accepts.
//!
//! Start-up order matters: parse and validate flags, load TLS material and
//! the routes file, bind every socket, write the pid file, raise the
//! descriptor limit, install the seccomp filter, and only then start the
//! tokio runtime, whose threads inherit the filter.
#![forbid(unsafe_code)]

mod api;
mod body;
mod cli;
mod errors;
mod forward;
mod metrics;
mod routes;
mod seccomp;
mod server;
mod state;
mod timer;
mod tls;
mod upstream;
mod urlpath;
mod websocket;

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use indexmap::IndexMap;
use serde_json::Value;
use tokio_rustls::TlsAcceptor;

use crate::cli::{Cli, Config, ListenAddr, LogLevel};
use crate::routes::{RoutePath, RouteTable, now_ms};
use crate::server::{BoundListener, Role};
use crate::state::{AuthToken, State};

/// Exit status after SIGINT or SIGTERM, as the reference uses.
const SIGNAL_EXIT: u8 = 2;

fn init_logging(level: LogLevel) {
    let max = match level {
        LogLevel::Debug => tracing::Level::DEBUG,
        LogLevel::Info => tracing::Level::INFO,
        LogLevel::Warn => tracing::Level::WARN,
        LogLevel::Error => tracing::Level::ERROR,
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(max)
        .with_target(false)
        .with_ansi(false)
        .init();
}

/// Everything prepared before the runtime starts.
struct Prepared {
    state: Arc<State>,
    listeners: Vec<(BoundListener, Role, Option<TlsAcceptor>)>,
}

fn bind(addr: &ListenAddr, what: &str) -> Result<BoundListener, String> {
    server::bind(addr).map_err(|e| format!("cannot listen on {addr} ({what}): {e}"))
}

fn prepare(config: Config) -> Result<Prepared, String> {
    let token = AuthToken::new(std::env::var("CONFIGPROXY_AUTH_TOKEN").ok());
    if !token.is_set() {
        tracing::warn!("REST API is not authenticated.");
    }
    let mut table = RouteTable::new();
    if let Some(path) = &config.routes_file {
        let n = routes::load_routes_file(path, &mut table).map_err(|e| e.to_string())?;
        tracing::info!("Loaded {n} routes from {}", path.display());
        check_writable_dir(path)?;
    }
    if let Some(target) = &config.default_target {
        let mut data = IndexMap::new();
        data.insert("target".to_owned(), Value::String(target.clone()));
        tracing::info!("Adding route / -> {target}");
        table.insert(RoutePath::new("/"), data, now_ms());
    }
    let public_tls = config
        .tls
        .as_ref()
        .map(|t| tls::server_config(t, "--ssl-key/--ssl-cert"))
        .transpose()
        .map_err(|e| e.to_string())?
        .map(TlsAcceptor::from);
    let api_tls = config
        .api_tls
        .as_ref()
        .map(|t| tls::server_config(t, "--api-ssl-key/--api-ssl-cert"))
        .transpose()
        .map_err(|e| e.to_string())?
        .map(TlsAcceptor::from);
    let client = state::build_client(&config).map_err(|e| e.to_string())?;

    let mut listeners = vec![
        (
            bind(&config.listen, "proxy")?,
            Role::Proxy,
            public_tls.clone(),
        ),
        (bind(&config.api_listen, "API")?, Role::Api, api_tls),
    ];
    if let Some(addr) = &config.metrics_listen {
        listeners.push((bind(addr, "metrics")?, Role::Metrics, None));
    }
    if let Some((addr, to)) = config.redirect {
        listeners.push((
            bind(&ListenAddr::Tcp(addr), "redirect")?,
            Role::Redirect(to),
            None,
        ));
    }
    tracing::info!(
        "Proxying {}://{} to {}",
        if config.tls.is_some() {
            "https"
        } else {
            "http"
        },
        config.listen,
        config.default_target.as_deref().unwrap_or("(no default)")
    );
    tracing::info!(
        "Proxy API at {}://{}/api/routes",
        if config.api_tls.is_some() {
            "https"
        } else {
            "http"
        },
        config.api_listen
    );
    if let Some(addr) = &config.metrics_listen {
        tracing::info!("Serve metrics at http://{addr}/metrics");
    }
    if let Some(pid_file) = &config.pid_file {
        tracing::info!(
            "Writing pid {} to {}",
            std::process::id(),
            pid_file.display()
        );
        std::fs::write(pid_file, std::process::id().to_string())
            .map_err(|e| format!("cannot write pid file {}: {e}", pid_file.display()))?;
    }
    Ok(Prepared {
        state: State::new(config, table, client, token),
        listeners,
    })
}

/// Fails early when the routes file's directory cannot take the
/// temporary file used for atomic saves.
fn check_writable_dir(path: &Path) -> Result<(), String> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let probe = dir.join(format!(".jhub-proxy-probe-{}", std::process::id()));
    std::fs::write(&probe, b"")
        .and_then(|()| std::fs::remove_file(&probe))
        .map_err(|e| {
            format!(
                "routes file directory {} is not writable: {e}",
                dir.display()
            )
        })
}

/// Raises the soft descriptor limit to the hard one, so the connection
/// cap, not the default limit of 1024, is what bounds connections.
fn raise_fd_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        let want = hard.min(1 << 20);
        if want > soft {
            if let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, want, hard) {
                tracing::debug!(error = %e, "could not raise the descriptor limit");
            }
        }
    }
}

/// Removes the pid file and saves the routes file, at exit.
fn cleanup(state: &State) {
    if let Some(path) = &state.config.routes_file {
        let bytes = routes::routes_file_bytes(&state.read());
        if let Err(e) = routes::save_routes_file(path, &bytes) {
            tracing::error!("{e}");
        }
    }
    if let Some(pid_file) = &state.config.pid_file {
        tracing::debug!("Removing {}", pid_file.display());
        if let Err(e) = std::fs::remove_file(pid_file) {
            tracing::warn!("cannot remove {}: {e}", pid_file.display());
        }
    }
}

async fn run(prepared: Prepared) -> Result<(), String> {
    use tokio::signal::unix::{SignalKind, signal};
    let Prepared { state, listeners } = prepared;
    let mut tasks = tokio::task::JoinSet::new();
    for (bound, role, tls) in listeners {
        let state = Arc::clone(&state);
        tasks.spawn(async move { server::run(state, bound, role, tls).await });
    }
    tokio::spawn(server::routes_writer(Arc::clone(&state)));
    let mut term = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| e.to_string())?;
    let outcome = tokio::select! {
        _ = term.recv() => { tracing::warn!("Terminated"); Ok(()) }
        _ = int.recv() => { tracing::warn!("Interrupted"); Ok(()) }
        Some(done) = tasks.join_next() => match done {
            Ok(Err(e)) => Err(format!("listener failed: {e}")),
            Ok(Ok(())) => Err("listener stopped".to_owned()),
            Err(e) => Err(format!("listener failed: {e}")),
        },
    };
    cleanup(&state);
    outcome
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match cli.into_config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("jhub-proxy: {e}");
            return ExitCode::from(1);
        }
    };
    init_logging(config.log_level);
    let seccomp = config.seccomp;
    let workers = config.worker_threads;
    let prepared = match prepare(config) {
        Ok(p) => p,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::from(1);
        }
    };
    raise_fd_limit();
    if seccomp {
        if let Err(e) = seccomp::install() {
            tracing::error!("{e} (run with --no-seccomp to start without the filter)");
            cleanup(&prepared.state);
            return ExitCode::from(1);
        }
        tracing::debug!("seccomp filter installed");
    }
    // One worker is the runtime on this thread: tasks then hand each other
    // work through a plain local queue, without the cross-thread wake-ups
    // and atomics a one-worker thread pool still pays for.
    let mut builder = if workers == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(workers);
        b
    };
    let runtime = match builder
        .max_blocking_threads(16)
        .thread_name("jhub-proxy")
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            tracing::error!("cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let outcome = runtime.block_on(run(prepared));
    // Connections still open are simply dropped, as at any process exit.
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    match outcome {
        Ok(()) => ExitCode::from(SIGNAL_EXIT),
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::from(1)
        }
    }
}
