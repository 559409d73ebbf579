//! Hub-managed services: a `[[services]]` entry with a `command` is a
//! child process of the hub, run as the hub's own user as JupyterHub runs
//! its managed services.
//!
//! Each gets JupyterHub's service environment (its API token, the hub's
//! API URL, its prefix and, with an OAuth client, its client id and
//! callback). Its output goes to the hub's log, line by line. When it
//! exits it is started again after a pause that doubles from 1 s to 30 s
//! (and starts over once a run lasted 30 s). When the hub stops, each
//! gets SIGTERM, then SIGKILL after [`STOP_GRACE`]. Its pid is kept in the
//! `services` table for `GET /hub/api/services` while it runs.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::app::AppState;
use crate::auth::tokens;
use crate::config::{Secret, Secrets, ServiceConfig};
use crate::db::{NewToken, TokenOwner};

/// The note on the tokens the hub generates for managed services without
/// an `api_token` (JupyterHub's words). Replaced at every start.
pub const GENERATED_TOKEN_NOTE: &str = "generated at startup";

/// How long a stopping service has between SIGTERM and SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(5);

/// The first pause before a restart.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// The longest pause before a restart.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Variables of the hub's own environment a service inherits, as
/// JupyterHub's `Spawner.env_keep`.
const ENV_KEEP: &[&str] = &[
    "PATH",
    "PYTHONPATH",
    "CONDA_ROOT",
    "CONDA_DEFAULT_ENV",
    "VIRTUAL_ENV",
    "LANG",
    "LC_ALL",
];

/// The running managed services; [`Supervisor::shutdown`] stops them.
#[derive(Debug)]
pub struct Supervisor {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

/// Starts every service with a `command`. Those without an `api_token`
/// get a new token (the previous generated one is revoked) and, when they
/// have an OAuth client, that token as its secret.
pub async fn start(st: &AppState, secrets: &Secrets) -> Result<Supervisor, String> {
    let (stop, _) = watch::channel(false);
    let mut tasks = Vec::new();
    for s in st.config.services.iter().filter(|s| !s.command.is_empty()) {
        let token = match secrets.service_tokens.get(&s.name) {
            Some(t) => t.clone(),
            None => generate_token(st, s)
                .await
                .map_err(|e| format!("cannot make a token for service {}: {e}", s.name))?,
        };
        let env = service_env(st, s, &token);
        tasks.push(tokio::spawn(run(
            st.clone(),
            s.clone(),
            env,
            stop.subscribe(),
        )));
    }
    Ok(Supervisor { stop, tasks })
}

impl Supervisor {
    /// Stops every managed service and waits until each has exited.
    pub async fn shutdown(self) {
        self.stop.send_replace(true);
        for t in self.tasks {
            if let Err(e) = t.await {
                tracing::warn!(error = %e, "a service's supervisor failed");
            }
        }
    }
}

/// A fresh token for managed service `s`, registered with the `inherit`
/// scope (the service's roles); with an OAuth client, also its secret.
async fn generate_token(st: &AppState, s: &ServiceConfig) -> Result<Secret, String> {
    let err = |e: crate::db::DbError| e.to_string();
    let row = st
        .db
        .find_service(&s.name)
        .await
        .map_err(err)?
        .ok_or("not in the database")?;
    let token = tokens::generate().map_err(|e| e.to_string())?;
    st.db
        .delete_service_tokens_with_note(row.id, GENERATED_TOKEN_NOTE)
        .await
        .map_err(err)?;
    st.db
        .insert_token(&NewToken {
            hashed: &tokens::hash(&token),
            prefix: tokens::prefix(&token),
            owner: TokenOwner::Service(row.id),
            scopes: &["inherit".to_owned()],
            note: GENERATED_TOKEN_NOTE,
            expires_at: None,
        })
        .await
        .map_err(err)?;
    let secret = Secret::new(token);
    if crate::oauth::service_has_oauth(s) {
        crate::oauth::register_service_client(&st.db, s, row.id, &secret)
            .await
            .map_err(err)?;
    }
    Ok(secret)
}

/// The environment of service `s`: its `environment` table, then what
/// JupyterHub sets for a managed service, over the kept variables of the
/// hub's own environment.
pub fn service_env(st: &AppState, s: &ServiceConfig, token: &Secret) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    for k in ENV_KEEP {
        if let Ok(v) = std::env::var(k) {
            env.insert((*k).to_owned(), v);
        }
    }
    env.extend(s.environment.clone());
    let prefix = format!("/services/{}/", s.name);
    let public = st.config.hub.bind_url.trim_end_matches('/');
    let mut set = |k: &str, v: String| {
        env.insert(k.to_owned(), v);
    };
    set("JUPYTERHUB_SERVICE_NAME", s.name.clone());
    set("JUPYTERHUB_API_TOKEN", token.expose().to_owned());
    set("JPY_API_TOKEN", token.expose().to_owned());
    set("JUPYTERHUB_API_URL", format!("{}/hub/api", st.hub_url));
    set("JUPYTERHUB_BASE_URL", "/".to_owned());
    set("JUPYTERHUB_SERVICE_PREFIX", prefix.clone());
    set("JUPYTERHUB_HOST", String::new());
    set("JUPYTERHUB_PUBLIC_HUB_URL", format!("{public}/hub/"));
    if let Some(url) = &s.url {
        set("JUPYTERHUB_SERVICE_URL", url.clone());
        set("JUPYTERHUB_PUBLIC_URL", format!("{public}{prefix}"));
    }
    if crate::oauth::service_has_oauth(s) {
        if let Some(callback) = crate::oauth::service_redirect_uri(s) {
            let scopes = serde_json::to_string(&[
                "access:services".to_owned(),
                format!("access:services!service={}", s.name),
            ])
            .unwrap_or_default();
            set("JUPYTERHUB_CLIENT_ID", crate::oauth::service_client_id(s));
            set("JUPYTERHUB_OAUTH_CALLBACK_URL", callback);
            set("JUPYTERHUB_OAUTH_SCOPES", scopes.clone());
            set("JUPYTERHUB_OAUTH_ACCESS_SCOPES", scopes);
            let allowed = serde_json::to_string(&s.oauth_client_allowed_scopes).unwrap_or_default();
            set("JUPYTERHUB_OAUTH_CLIENT_ALLOWED_SCOPES", allowed);
        }
    }
    env
}

/// Runs service `s` until `stop`, restarting it when it exits.
async fn run(
    st: AppState,
    s: ServiceConfig,
    env: BTreeMap<String, String>,
    mut stop: watch::Receiver<bool>,
) {
    let name = s.name.clone();
    stop_stale(&st, &s).await;
    let mut backoff = FIRST_BACKOFF;
    loop {
        if *stop.borrow() {
            return;
        }
        tracing::info!(service = %name, command = ?s.command, "starting service");
        let began = Instant::now();
        match spawn(&s, &env) {
            Ok(mut child) => {
                let pid = child.id().map(i64::from);
                record_pid(&st, &name, pid).await;
                tracing::info!(service = %name, pid, "service started");
                let status = tokio::select! {
                    status = child.wait() => Some(status),
                    _ = stop.wait_for(|s| *s) => None,
                };
                match status {
                    None => {
                        terminate(&name, &mut child).await;
                        record_pid(&st, &name, None).await;
                        return;
                    }
                    Some(status) => {
                        record_pid(&st, &name, None).await;
                        let status = status
                            .map(|s| s.to_string())
                            .unwrap_or_else(|e| e.to_string());
                        tracing::error!(service = %name, pid, status = %status, "service exited");
                    }
                }
            }
            Err(e) => {
                tracing::error!(service = %name, error = %e, "cannot start service");
            }
        }
        if began.elapsed() >= MAX_BACKOFF {
            backoff = FIRST_BACKOFF;
        }
        tracing::info!(service = %name, seconds = backoff.as_secs(), "restarting service after a pause");
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Stops the process a previous hub left running for service `s` (a hub
/// killed with SIGKILL cannot stop its services): the pid recorded in the
/// database, if that process still runs this service's command (a pid the
/// kernel gave to another program is left alone). Its process group gets
/// SIGTERM, then SIGKILL after [`STOP_GRACE`]. The new hub then starts the
/// service afresh, with this hub's token.
async fn stop_stale(st: &AppState, s: &ServiceConfig) {
    let Ok(Some(pid)) = st.db.service_pid(&s.name).await else {
        return;
    };
    let Ok(raw) = i32::try_from(pid) else { return };
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return;
    };
    let argv: Vec<String> = cmdline
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    if argv != s.command {
        return;
    }
    tracing::warn!(service = %s.name, pid, "stopping the service a previous hub left running");
    let group = nix::unistd::Pid::from_raw(raw);
    let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGTERM);
    let deadline = Instant::now() + STOP_GRACE;
    while crate::spawner::process::liveness(pid, None) != crate::spawner::process::Liveness::Gone {
        if Instant::now() >= deadline {
            let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    record_pid(st, &s.name, None).await;
}

/// Starts the service's process in its own process group (so a Ctrl-C
/// at the hub's terminal reaches only the hub, which stops it in turn),
/// with its output copied to the hub's log.
fn spawn(s: &ServiceConfig, env: &BTreeMap<String, String>) -> std::io::Result<Child> {
    let (program, args) = s
        .command
        .split_first()
        .ok_or_else(|| std::io::Error::other("empty command"))?;
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env_clear()
        .envs(env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    if let Some(dir) = &s.cwd {
        cmd.current_dir(dir);
    }
    let mut child = cmd.spawn()?;
    if let Some(out) = child.stdout.take() {
        tokio::spawn(copy_lines(s.name.clone(), "stdout", out));
    }
    if let Some(err) = child.stderr.take() {
        tokio::spawn(copy_lines(s.name.clone(), "stderr", err));
    }
    Ok(child)
}

/// Copies a service's output to the hub's log, one event per line.
async fn copy_lines(service: String, stream: &'static str, from: impl AsyncRead + Unpin) {
    let mut lines = BufReader::new(from).lines();
    loop {
        match lines.next_line().await {
            Ok(Some(line)) => tracing::info!(service = %service, stream, "{line}"),
            Ok(None) => return,
            Err(e) => {
                tracing::debug!(service = %service, stream, error = %e, "output not readable");
                return;
            }
        }
    }
}

/// SIGTERM, then SIGKILL after [`STOP_GRACE`]; waits for the exit.
async fn terminate(name: &str, child: &mut Child) {
    if let Some(pid) = child.id() {
        tracing::info!(service = %name, pid, "stopping service");
        let pid = nix::unistd::Pid::from_raw(pid as i32);
        if let Err(e) = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM) {
            tracing::debug!(service = %name, error = %e, "SIGTERM failed");
        }
        if tokio::time::timeout(STOP_GRACE, child.wait()).await.is_ok() {
            tracing::info!(service = %name, "service stopped");
            return;
        }
        tracing::warn!(service = %name, "service ignored SIGTERM; killing it");
    }
    if let Err(e) = child.kill().await {
        tracing::warn!(service = %name, error = %e, "cannot kill the service");
    }
}

async fn record_pid(st: &AppState, name: &str, pid: Option<i64>) {
    if let Err(e) = st.db.set_service_pid(name, pid).await {
        tracing::warn!(service = %name, error = %e, "cannot record the service's pid");
    }
}
