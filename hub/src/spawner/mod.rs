//! Users' servers: starting, stopping and watching them through the sudo
//! helper, their proxy routes, and finding them again after a restart.
//!
//! The database is the record of what runs (pid, its start time, port,
//! URL, the pending operation); [`Servers`] holds what only this process
//! needs: which operation is under way on which server, its progress
//! events, and the way to cancel a start.
//!
//! A server is `running` only as long as its process is the one the hub
//! started: the helper's signal 0 (as upstream polls) says a process with
//! that PID exists, and the start time in /proc/PID/stat, recorded at spawn,
//! says it is the same process and not a later one that got its PID.

pub mod helper;
pub mod process;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};
use shared::helper::HelperRequest;
use tokio::sync::watch;

use crate::app::AppState;
use crate::auth::tokens;
use crate::db::servers::{OwnedServer, ServerRow, Started};
use crate::db::{self, DbError, NewToken, TokenOwner, UserRow};
use crate::spawner::helper::{Helper, HelperError};
use crate::spawner::process::Liveness;

/// How long the API waits for a start before answering 202.
pub const SLOW_SPAWN: Duration = Duration::from_secs(10);
/// How long the API waits for a stop before answering 202.
pub const SLOW_STOP: Duration = Duration::from_secs(10);
/// How long a server has to exit after SIGTERM before SIGKILL (ten
/// servers stopping at once on a busy machine take several seconds to
/// shut their kernels down).
const TERM_TIMEOUT: Duration = Duration::from_secs(10);
/// How long after SIGKILL before giving up on the process.
const KILL_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a kill or poll through the helper may take.
const HELPER_TIMEOUT: Duration = Duration::from_secs(20);
/// How often readiness is tried while a server starts: a refused
/// connection on loopback costs microseconds, so no back-off.
const READY_INTERVAL: Duration = Duration::from_millis(10);

/// The longest server name.
pub const MAX_SERVER_NAME: usize = 64;

/// Whether `name` is an acceptable server name: 1 to 64 of ASCII letters,
/// digits, `_`, `-`, `.`, not starting with `.` or `-` (it becomes a path
/// segment of the server's URL and part of its OAuth client id).
pub fn valid_server_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_SERVER_NAME
        && !name.starts_with(['.', '-'])
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// The operation under way on a server, as this process knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Nothing under way.
    Idle,
    /// Starting.
    Spawning,
    /// Stopping.
    Stopping,
}

/// A start's progress: the events so far, and whether it ended.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    /// The events, as JupyterHub's progress API sends them.
    pub events: Vec<Value>,
    /// Whether the last event is final (ready or failed).
    pub finished: bool,
}

/// One server's in-process state.
#[derive(Debug)]
struct Slot {
    phase: Mutex<Phase>,
    progress: watch::Sender<Progress>,
    cancel: watch::Sender<bool>,
    /// Changes when an operation ends.
    ended: watch::Sender<u64>,
}

impl Slot {
    fn new() -> Self {
        Self {
            phase: Mutex::new(Phase::Idle),
            progress: watch::Sender::new(Progress::default()),
            cancel: watch::Sender::new(false),
            ended: watch::Sender::new(0),
        }
    }

    fn phase(&self) -> Phase {
        *self
            .phase
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn set_phase(&self, p: Phase) {
        *self
            .phase
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = p;
        if p == Phase::Idle {
            self.ended.send_modify(|n| *n += 1);
        }
    }

    /// Moves from `from` to `to`; false if the phase was not `from`.
    fn transition(&self, from: Phase, to: Phase) -> bool {
        let mut p = self
            .phase
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if *p != from {
            return false;
        }
        *p = to;
        true
    }

    fn event(&self, event: Value, finished: bool) {
        self.progress.send_modify(|p| {
            p.events.push(event);
            p.finished = finished;
        });
    }
}

/// The servers' in-process state and the helper that acts on them.
#[derive(Debug)]
pub struct Servers {
    slots: Mutex<HashMap<i64, Arc<Slot>>>,
    spawning: AtomicU32,
    helper: Helper,
}

impl Servers {
    /// State for a hub whose helper is `helper`.
    pub fn new(helper: Helper) -> Self {
        Self {
            slots: Mutex::new(HashMap::new()),
            spawning: AtomicU32::new(0),
            helper,
        }
    }

    fn slot(&self, id: i64) -> Arc<Slot> {
        self.slots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(id)
            .or_insert_with(|| Arc::new(Slot::new()))
            .clone()
    }

    /// The operation under way on server row `id`.
    pub fn phase(&self, id: i64) -> Phase {
        let slots = self
            .slots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        slots.get(&id).map_or(Phase::Idle, |s| s.phase())
    }

    /// The progress of the latest start of server row `id`, if it
    /// started since this hub did.
    pub fn progress(&self, id: i64) -> Option<watch::Receiver<Progress>> {
        let slots = self
            .slots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        slots.get(&id).map(|s| s.progress.subscribe())
    }

    /// How many starts are under way.
    pub fn spawning(&self) -> u32 {
        self.spawning.load(Ordering::Relaxed)
    }
}

/// Why a start or stop was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The request conflicts with the server's state (400).
    #[error("{0}")]
    Conflict(String),
    /// A limit was reached (429).
    #[error("{0}")]
    Limit(String),
    /// The start failed (500).
    #[error("{0}")]
    Failed(String),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

/// How a start request ended for the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartOutcome {
    /// The server is ready.
    Ready,
    /// It is still starting (the caller gets 202 and follows progress).
    Pending,
}

/// How a stop request ended for the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopOutcome {
    /// The server is stopped.
    Stopped,
    /// It is still stopping.
    Pending,
}

/// The URL path of `user`'s server `server` (`/user/NAME/` or
/// `/user/NAME/SERVER/`).
pub fn server_path(user: &str, server: &str) -> String {
    if server.is_empty() {
        format!("/user/{user}/")
    } else {
        format!("/user/{user}/{server}/")
    }
}

/// The progress URL of `user`'s server `server`.
pub fn progress_path(user: &str, server: &str) -> String {
    if server.is_empty() {
        format!("/hub/api/users/{user}/server/progress")
    } else {
        format!("/hub/api/users/{user}/servers/{server}/progress")
    }
}

/// The OAuth client id of `user`'s server `server`, as JupyterHub names
/// it.
pub fn oauth_client_id(user: &str, server: &str) -> String {
    crate::oauth::client_id_for(user, server)
}

/// The scopes that let someone use `user`'s server `server`, as
/// JupyterHub's default `oauth_access_scopes`.
pub fn access_scopes(user: &str, server: &str) -> Vec<String> {
    vec![
        format!("access:servers!server={user}/{server}"),
        format!("access:servers!user={user}"),
    ]
}

/// The scopes of a server's own API token (JupyterHub's `server` role,
/// for this server).
fn server_token_scopes(user: &str, server: &str) -> Vec<String> {
    vec![
        format!("users:activity!user={user}"),
        format!("access:servers!server={user}/{server}"),
    ]
}

/// Whether server row `s` has a live process as far as the database says
/// (it may have died since; see [`poll`]).
pub fn is_running(s: &ServerRow) -> bool {
    s.pid.is_some() && s.url.is_some()
}

/// Whether server row `s` runs with no start or stop under way.
pub fn is_ready(s: &ServerRow) -> bool {
    is_running(s) && s.pending.is_none()
}

/// Whether server row `s` neither runs nor has an operation under way.
pub fn is_stopped(s: &ServerRow) -> bool {
    !is_running(s) && s.pending.is_none()
}

/// The final progress event of a start that ended with the server ready
/// at `user`'s `server` URL.
pub fn ready_event(user: &str, server: &str) -> Value {
    let url = server_path(user, server);
    json!({
        "progress": 100,
        "ready": true,
        "message": format!("Server ready at {url}"),
        "html_message": format!("Server ready at <a href=\"{url}\">{url}</a>"),
        "url": url,
    })
}

/// Starts `user`'s server `server` (created if missing) with
/// `user_options`, waiting up to [`SLOW_SPAWN`] for it to be ready.
pub async fn start(
    st: &AppState,
    user: &UserRow,
    server: &str,
    display_name: Option<&str>,
    user_options: Option<Value>,
) -> Result<StartOutcome, ServerError> {
    let row = st.db.ensure_server(user.id, server, display_name).await?;
    let slot = st.servers.slot(row.id);
    match slot.phase() {
        Phase::Spawning => return Ok(StartOutcome::Pending),
        Phase::Stopping => {
            return Err(ServerError::Conflict(format!(
                "{} is pending stop",
                log_name(&user.name, server)
            )));
        }
        Phase::Idle => {}
    }
    // (a server that died is cleaned up by the poll and may start again)
    if is_running(&row) && poll(st, &user.name, &row).await? {
        return Err(ServerError::Conflict(format!(
            "{} is already running",
            log_name(&user.name, server)
        )));
    }
    let limits = &st.config.hub;
    if limits.active_server_limit > 0
        && st.db.count_active_servers().await? >= i64::from(limits.active_server_limit)
    {
        tracing::info!(user = %user.name, "active server limit reached");
        return Err(ServerError::Limit(
            "Active user limit exceeded. Try again in a few minutes.".into(),
        ));
    }
    if limits.concurrent_spawn_limit > 0 && st.servers.spawning() >= limits.concurrent_spawn_limit {
        tracing::info!(user = %user.name, "concurrent spawn limit reached");
        return Err(ServerError::Limit(
            "Too many users trying to log in right now. Try again in a minute.".into(),
        ));
    }
    if !slot.transition(Phase::Idle, Phase::Spawning) {
        return Ok(StartOutcome::Pending);
    }
    st.servers.spawning.fetch_add(1, Ordering::Relaxed);
    let mut ended = slot.ended.subscribe();
    ended.mark_unchanged();
    slot.cancel.send_replace(false);
    slot.progress.send_replace(Progress::default());
    slot.event(json!({"progress": 0, "message": "Server requested"}), false);

    let prepared = prepare(st, user, &row, user_options).await;
    let (token, options) = match prepared {
        Ok(t) => t,
        Err(e) => {
            st.servers.spawning.fetch_sub(1, Ordering::Relaxed);
            fail_event(&slot, &e.to_string());
            slot.set_phase(Phase::Idle);
            return Err(e);
        }
    };
    let task = SpawnTask {
        st: st.clone(),
        slot: slot.clone(),
        user: user.name.clone(),
        server: server.to_owned(),
        row_id: row.id,
        token,
        user_options: options,
    };
    tokio::spawn(task.run());

    // Wait a little for the start to end, as JupyterHub does, so that
    // fast servers answer 201 at once.
    let _ = tokio::time::timeout(SLOW_SPAWN, ended.changed()).await;
    let row = st.db.find_server(user.id, server).await?;
    match row {
        Some(r) if is_ready(&r) => Ok(StartOutcome::Ready),
        Some(r) if slot.phase() == Phase::Idle => Err(ServerError::Failed(
            r.failure
                .unwrap_or_else(|| "the server did not start".to_owned()),
        )),
        _ => Ok(StartOutcome::Pending),
    }
}

/// Creates the server's API token and marks the server pending; returns
/// the token and the options it starts with.
async fn prepare(
    st: &AppState,
    user: &UserRow,
    row: &ServerRow,
    user_options: Option<Value>,
) -> Result<(String, Value), ServerError> {
    let options = match user_options {
        Some(Value::Object(m)) => Value::Object(m),
        Some(Value::Null) | None => {
            serde_json::from_str(&row.user_options).unwrap_or_else(|_| json!({}))
        }
        Some(_) => {
            return Err(ServerError::Conflict(
                "user_options must be an object or null".into(),
            ));
        }
    };
    let token = tokens::generate().map_err(|e| ServerError::Failed(e.to_string()))?;
    let hashed = tokens::hash(&token);
    let scopes = server_token_scopes(&user.name, &row.name);
    let note = format!("Server at {}", server_path(&user.name, &row.name));
    let token_id = st
        .db
        .insert_token(&NewToken {
            hashed: &hashed,
            prefix: tokens::prefix(&token),
            owner: TokenOwner::User(user.id),
            scopes: &scopes,
            note: &note,
            expires_at: None,
        })
        .await?;
    st.db
        .server_spawn_pending(row.id, &options.to_string(), token_id)
        .await?;
    Ok((token, options))
}

fn fail_event(slot: &Slot, message: &str) {
    slot.event(
        json!({
            "progress": 100,
            "failed": true,
            "message": format!("Spawn failed: {message}"),
        }),
        true,
    );
}

/// `NAME's server` or `NAME's server SERVER`, for messages.
pub fn log_name(user: &str, server: &str) -> String {
    if server.is_empty() {
        format!("{user}'s server")
    } else {
        format!("{user}'s server {server}")
    }
}

struct SpawnTask {
    st: AppState,
    slot: Arc<Slot>,
    user: String,
    server: String,
    row_id: i64,
    token: String,
    user_options: Value,
}

impl SpawnTask {
    async fn run(self) {
        let began = Instant::now();
        let mut started_pid = None;
        let result = self.spawn(&mut started_pid).await;
        let st = &self.st;
        match result {
            Ok(()) => {
                tracing::info!(
                    user = %self.user, server = %self.server,
                    seconds = began.elapsed().as_secs_f64(),
                    "server ready"
                );
                self.slot.event(ready_event(&self.user, &self.server), true);
            }
            Err(message) => {
                tracing::warn!(
                    user = %self.user, server = %self.server, error = %message,
                    "server failed to start"
                );
                if let Some(pid) = started_pid {
                    let _ = terminate(st, &self.user, pid, None).await;
                }
                remove_route(st, &self.user, &self.server).await;
                crate::spawner::forget_oauth_client(st, &self.user, &self.server).await;
                if let Err(e) = st.db.server_stopped(self.row_id, Some(&message)).await {
                    tracing::error!(error = %e, "cannot record the failed start");
                }
                fail_event(&self.slot, &message);
            }
        }
        st.servers.spawning.fetch_sub(1, Ordering::Relaxed);
        self.slot.set_phase(Phase::Idle);
    }

    async fn spawn(&self, started_pid: &mut Option<i64>) -> Result<(), String> {
        let st = &self.st;
        let cfg = &st.config.spawner;
        let mut cancel = self.slot.cancel.subscribe();
        let cancelled = || "Spawn cancelled".to_owned();

        let port = process::free_port().map_err(|e| format!("no free port: {e}"))?;
        let prefix = server_path(&self.user, &self.server);
        register_oauth_client(st, &self.user, &self.server, &self.token, self.row_id)
            .await
            .map_err(|e| e.to_string())?;
        let env = server_env(st, &self.user, &self.server, port, &self.token);
        let mut args = cfg.args.clone();
        args.extend(options_args(&self.user_options));
        self.slot.event(
            json!({"progress": 10, "message": format!("Starting the server as the user {}", self.user)}),
            false,
        );
        let start_timeout = Duration::from_secs(cfg.start_timeout);
        let request = HelperRequest::Spawn { args, env };
        // Not cancellable while the helper runs: it may have started the
        // server before it answers, and only its answer names the pid to
        // clean up. A cancel is seen right after.
        let answer = st
            .servers
            .helper
            .call(&self.user, &request, start_timeout)
            .await;
        let pid = match answer {
            Ok(a) => a.pid.ok_or("the spawner helper answered no pid")?,
            Err(HelperError::Timeout(_)) => {
                return Err(format!(
                    "Spawner failed to start within {} seconds (spawner.start_timeout)",
                    cfg.start_timeout
                ));
            }
            Err(e) => return Err(e.to_string()),
        };
        *started_pid = Some(pid);
        if *cancel.borrow() {
            return Err(cancelled());
        }
        let start_time = process::proc_info(pid).map(|p| p.start_time);
        let url = format!("http://127.0.0.1:{port}");
        let state = json!({"pid": pid}).to_string();
        st.db
            .server_process(
                self.row_id,
                &Started {
                    pid,
                    start_time,
                    port: i64::from(port),
                    url: &url,
                    state: &state,
                },
            )
            .await
            .map_err(|e| e.to_string())?;
        self.slot.event(
            json!({"progress": 50, "message": format!("Server process {pid} started; waiting for it to answer at {prefix}")}),
            false,
        );

        let http_timeout = Duration::from_secs(cfg.http_timeout);
        let probe = format!("{url}{prefix}api");
        let wait = wait_up(st, pid, start_time, &probe, http_timeout);
        tokio::select! {
            r = wait => r?,
            _ = cancel.wait_for(|c| *c) => return Err(cancelled()),
        }
        let data = route_data(&self.user, &self.server);
        st.proxy
            .add_route(&prefix, &url, data)
            .await
            .map_err(|e| format!("cannot add the route to the proxy: {e}"))?;
        st.db
            .server_ready(self.row_id, &db::now())
            .await
            .map_err(|e| e.to_string())?;
        Ok(())
    }
}

/// `user_options` from an options form become no flags by default: they
/// are kept for the server's model (JupyterHub's Spawner does the same
/// unless a subclass uses them). `args` entries are the exception: a
/// list of strings the admin's form offers as flags.
fn options_args(_options: &Value) -> Vec<String> {
    Vec::new()
}

/// The route data JupyterHub gives a user's server.
fn route_data(user: &str, server: &str) -> Map<String, Value> {
    let mut data = Map::new();
    data.insert("user".into(), json!(user));
    data.insert("server_name".into(), json!(server));
    data
}

/// Waits until the server answers HTTP at `probe` (any status), its
/// process dies, or `timeout` passes.
async fn wait_up(
    st: &AppState,
    pid: i64,
    start_time: Option<i64>,
    probe: &str,
    timeout: Duration,
) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    loop {
        if process::liveness(pid, start_time) == Liveness::Gone {
            return Err(format!(
                "the server process {pid} exited before answering; its log file in the \
                 user's home may say why"
            ));
        }
        if st.probe.get(probe).send().await.is_ok() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "Server at {probe} didn't respond in {} seconds (spawner.http_timeout)",
                timeout.as_secs()
            ));
        }
        tokio::time::sleep(READY_INTERVAL).await;
    }
}

/// The environment the real `jupyterhub-singleuser` expects.
fn server_env(
    st: &AppState,
    user: &str,
    server: &str,
    port: u16,
    token: &str,
) -> BTreeMap<String, String> {
    let cfg = &st.config;
    let prefix = server_path(user, server);
    let api_url = format!("{}/hub/api", st.hub_url);
    let public = cfg.hub.bind_url.trim_end_matches('/');
    let scopes = serde_json::to_string(&access_scopes(user, server)).unwrap_or_default();
    let mut env = BTreeMap::new();
    let mut set = |k: &str, v: String| {
        env.insert(k.to_owned(), v);
    };
    set("JUPYTERHUB_API_TOKEN", token.to_owned());
    set("JPY_API_TOKEN", token.to_owned());
    set("JUPYTERHUB_CLIENT_ID", oauth_client_id(user, server));
    set("JUPYTERHUB_COOKIE_HOST_PREFIX_ENABLED", "0".into());
    set("JUPYTERHUB_HOST", String::new());
    set(
        "JUPYTERHUB_OAUTH_CALLBACK_URL",
        format!("{prefix}oauth_callback"),
    );
    set("JUPYTERHUB_OAUTH_SCOPES", scopes.clone());
    set("JUPYTERHUB_OAUTH_ACCESS_SCOPES", scopes);
    set("JUPYTERHUB_OAUTH_CLIENT_ALLOWED_SCOPES", "[]".to_owned());
    set("JUPYTERHUB_USER", user.to_owned());
    set("JUPYTERHUB_SERVER_NAME", server.to_owned());
    set("JUPYTERHUB_API_URL", api_url.clone());
    set(
        "JUPYTERHUB_ACTIVITY_URL",
        format!("{api_url}/users/{user}/activity"),
    );
    set("JUPYTERHUB_BASE_URL", "/".into());
    set("JUPYTERHUB_SERVICE_PREFIX", prefix.clone());
    set(
        "JUPYTERHUB_SERVICE_URL",
        format!("http://127.0.0.1:{port}{prefix}"),
    );
    set("JUPYTERHUB_PUBLIC_URL", format!("{public}{prefix}"));
    set("JUPYTERHUB_PUBLIC_HUB_URL", format!("{public}/hub/"));
    if !cfg.spawner.default_url.is_empty() {
        set("JUPYTERHUB_DEFAULT_URL", cfg.spawner.default_url.clone());
    }
    if let Ok(lang) = std::env::var("LANG") {
        set("LANG", lang);
    }
    env
}

/// Registers the server's OAuth client (its secret is the server's API
/// token); it belongs to server row `row_id`.
async fn register_oauth_client(
    st: &AppState,
    user: &str,
    server: &str,
    token: &str,
    row_id: i64,
) -> Result<(), DbError> {
    st.db
        .upsert_oauth_client(&crate::db::oauth::NewOAuthClient {
            identifier: &oauth_client_id(user, server),
            description: &crate::oauth::description_for(user, server),
            secret: token,
            redirect_uri: &crate::oauth::redirect_uri_for(user, server),
            allowed_scopes: &crate::oauth::allowed_scopes_for(user, server),
            spawner_id: Some(row_id),
        })
        .await
}

/// Deletes the server's OAuth client and the tokens issued to it.
pub async fn forget_oauth_client(st: &AppState, user: &str, server: &str) {
    if let Err(e) = st
        .db
        .delete_oauth_client(&oauth_client_id(user, server))
        .await
    {
        tracing::warn!(error = %e, "cannot delete the server's OAuth client");
    }
}

async fn remove_route(st: &AppState, user: &str, server: &str) {
    let prefix = server_path(user, server);
    if let Err(e) = st.proxy.delete_route(&prefix).await {
        tracing::warn!(route = %prefix, error = %e, "cannot remove the route from the proxy");
    }
}

/// Whether `user`'s server row `s` still runs; if it died, it is recorded
/// as stopped and its route removed.
pub async fn poll(st: &AppState, user: &str, s: &ServerRow) -> Result<bool, DbError> {
    let Some(pid) = s.pid else {
        return Ok(false);
    };
    let alive = process_alive(st, user, pid, s.start_time).await;
    if !alive {
        tracing::info!(user = %user, server = %s.name, pid, "server process is gone");
        remove_route(st, user, &s.name).await;
        forget_oauth_client(st, user, &s.name).await;
        st.db.server_stopped(s.id, None).await?;
    }
    Ok(alive)
}

/// Signal 0 through the helper (as upstream polls), and the start time
/// recorded at spawn against /proc.
async fn process_alive(st: &AppState, user: &str, pid: i64, start_time: Option<i64>) -> bool {
    match process::liveness(pid, start_time) {
        Liveness::Gone => false,
        Liveness::Running | Liveness::Unknown => {
            let request = HelperRequest::Kill { pid, signal: 0 };
            match st.servers.helper.call(user, &request, HELPER_TIMEOUT).await {
                Ok(a) => {
                    a.alive.unwrap_or(false)
                    // a PID reused after the helper answered
                    && process::liveness(pid, start_time) != Liveness::Gone
                }
                Err(e) => {
                    // The helper could not answer: trust /proc.
                    tracing::warn!(user = %user, pid, error = %e, "cannot poll through the helper");
                    process::liveness(pid, start_time) == Liveness::Running
                }
            }
        }
    }
}

/// Sends `signal` through the helper; whether the process was alive.
async fn signal(st: &AppState, user: &str, pid: i64, signal: i64) -> Result<bool, HelperError> {
    let request = HelperRequest::Kill { pid, signal };
    let a = st
        .servers
        .helper
        .call(user, &request, HELPER_TIMEOUT)
        .await?;
    Ok(a.alive.unwrap_or(false))
}

/// SIGTERM, then SIGKILL after [`TERM_TIMEOUT`]; waits until /proc shows
/// the process gone.
async fn terminate(
    st: &AppState,
    user: &str,
    pid: i64,
    start_time: Option<i64>,
) -> Result<(), String> {
    if process::liveness(pid, start_time) == Liveness::Gone {
        return Ok(());
    }
    match signal(st, user, pid, 15).await {
        Ok(false) => return Ok(()),
        Ok(true) => {}
        Err(e) => return Err(e.to_string()),
    }
    if gone_within(pid, start_time, TERM_TIMEOUT).await {
        return Ok(());
    }
    tracing::warn!(user = %user, pid, "server did not exit after SIGTERM; sending SIGKILL");
    match signal(st, user, pid, 9).await {
        Ok(false) => return Ok(()),
        Ok(true) => {}
        Err(e) => return Err(e.to_string()),
    }
    if gone_within(pid, start_time, KILL_TIMEOUT).await {
        Ok(())
    } else {
        Err(format!("process {pid} is still there after SIGKILL"))
    }
}

async fn gone_within(pid: i64, start_time: Option<i64>, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        match process::liveness(pid, start_time) {
            Liveness::Gone => return true,
            // without /proc only the helper could tell; assume the signal
            // worked when the time is up
            Liveness::Unknown if Instant::now() >= deadline => return true,
            _ => {}
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Stops `user`'s server `server`, waiting up to [`SLOW_STOP`]. A start
/// under way is cancelled.
pub async fn stop(st: &AppState, user: &UserRow, server: &str) -> Result<StopOutcome, ServerError> {
    let Some(row) = st.db.find_server(user.id, server).await? else {
        return Ok(StopOutcome::Stopped);
    };
    let slot = st.servers.slot(row.id);
    let mut ended = slot.ended.subscribe();
    ended.mark_unchanged();
    match slot.phase() {
        Phase::Stopping => return Ok(StopOutcome::Pending),
        Phase::Spawning => {
            tracing::warn!(user = %user.name, server, "cancelling a start under way");
            slot.cancel.send_replace(true);
            let _ = tokio::time::timeout(SLOW_STOP, ended.changed()).await;
            return Ok(if slot.phase() == Phase::Idle {
                StopOutcome::Stopped
            } else {
                StopOutcome::Pending
            });
        }
        Phase::Idle => {}
    }
    if !is_running(&row) {
        return Ok(StopOutcome::Stopped);
    }
    if !slot.transition(Phase::Idle, Phase::Stopping) {
        return Ok(StopOutcome::Pending);
    }
    st.db.server_pending(row.id, Some("stop")).await?;
    let st2 = st.clone();
    let name = user.name.clone();
    let slot2 = slot.clone();
    tokio::spawn(async move {
        let began = Instant::now();
        remove_route(&st2, &name, &row.name).await;
        let result = match row.pid {
            Some(pid) => terminate(&st2, &name, pid, row.start_time).await,
            None => Ok(()),
        };
        match result {
            Ok(()) => {
                forget_oauth_client(&st2, &name, &row.name).await;
                if let Err(e) = st2.db.server_stopped(row.id, None).await {
                    tracing::error!(error = %e, "cannot record the stop");
                }
                tracing::info!(
                    user = %name, server = %row.name,
                    seconds = began.elapsed().as_secs_f64(),
                    "server stopped"
                );
            }
            Err(e) => {
                tracing::error!(user = %name, server = %row.name, error = %e, "cannot stop the server");
                let _ = st2.db.server_pending(row.id, None).await;
            }
        }
        slot2.set_phase(Phase::Idle);
    });
    let _ = tokio::time::timeout(SLOW_STOP, ended.changed()).await;
    Ok(if slot.phase() == Phase::Idle {
        StopOutcome::Stopped
    } else {
        StopOutcome::Pending
    })
}

/// Stops every server (for a shutdown that asks for it), at most eight at
/// a time, waiting for each.
pub async fn stop_all(st: &AppState) {
    let servers = match st.db.active_servers().await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot list the servers to stop");
            return;
        }
    };
    let limit = Arc::new(tokio::sync::Semaphore::new(8));
    let mut tasks = Vec::new();
    for OwnedServer { server, user_name } in servers {
        let st = st.clone();
        let limit = limit.clone();
        tasks.push(tokio::spawn(async move {
            let _permit = limit.acquire().await;
            let Ok(Some(user)) = st.db.find_user(&user_name).await else {
                return;
            };
            match stop(&st, &user, &server.name).await {
                Ok(StopOutcome::Stopped) => {}
                Ok(StopOutcome::Pending) => {
                    // wait for the stop under way
                    for _ in 0..200 {
                        if st.servers.phase(server.id) == Phase::Idle {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
                Err(e) => tracing::warn!(user = %user_name, error = %e, "cannot stop the server"),
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
}

/// At start-up: every server the database says runs is polled; live ones
/// are kept (their routes come back with [`reconcile_routes`]), dead ones
/// are recorded as stopped. Starts and stops that a previous hub left
/// half done are finished: a started process is kept if it lives, and
/// a pending stop is done again.
pub async fn adopt(st: &AppState) -> Result<(), DbError> {
    let servers = st.db.active_servers().await?;
    for OwnedServer { server, user_name } in servers {
        match (server.pid, server.pending.as_deref()) {
            (None, _) => {
                tracing::info!(user = %user_name, server = %server.name, "clearing a start that never got a process");
                st.db
                    .server_stopped(server.id, Some("the hub stopped during the start"))
                    .await?;
            }
            (Some(pid), pending) => {
                if poll(st, &user_name, &server).await? {
                    if pending == Some("stop") {
                        tracing::info!(user = %user_name, server = %server.name, "finishing a stop");
                        if let Err(e) = terminate(st, &user_name, pid, server.start_time).await {
                            tracing::warn!(error = %e, "cannot finish the stop");
                        } else {
                            forget_oauth_client(st, &user_name, &server.name).await;
                            st.db.server_stopped(server.id, None).await?;
                        }
                        continue;
                    }
                    tracing::info!(user = %user_name, server = %server.name, pid, "adopting a running server");
                    if pending.is_some() {
                        st.db.server_ready(server.id, &db::now()).await?;
                    }
                }
            }
        }
    }
    Ok(())
}

/// The routes the hub wants: `/` to itself, each service with a URL, each
/// ready server.
pub async fn wanted_routes(
    st: &AppState,
) -> Result<Vec<(String, String, Map<String, Value>)>, DbError> {
    let mut out = crate::api::proxy::static_routes(st);
    for OwnedServer { server, user_name } in st.db.active_servers().await? {
        if server.pending.is_some() {
            continue;
        }
        if let (Some(url), Some(_)) = (&server.url, server.pid) {
            out.push((
                server_path(&user_name, &server.name),
                url.clone(),
                route_data(&user_name, &server.name),
            ));
        }
    }
    Ok(out)
}

/// Makes the proxy's table match what the hub wants: missing or wrong
/// routes are added, routes the hub added for servers that no longer run
/// are removed. Routes other programs added are left alone.
pub async fn reconcile_routes(st: &AppState) -> Result<usize, crate::proxy_client::ProxyError> {
    let current = st.proxy.get_routes().await?;
    let wanted =
        wanted_routes(st)
            .await
            .map_err(|e| crate::proxy_client::ProxyError::Unreachable {
                url: "database".into(),
                reason: e.to_string(),
            })?;
    let mut changed = 0;
    for (spec, target, data) in &wanted {
        let ok = current
            .get(spec)
            .and_then(|r| r.get("target"))
            .and_then(|t| t.as_str())
            .is_some_and(|t| t == target);
        if !ok {
            tracing::info!(route = %spec, target = %target, "adding proxy route");
            st.proxy.add_route(spec, target, data.clone()).await?;
            changed += 1;
        }
    }
    for (spec, route) in &current {
        let is_server = route.get("data").and_then(|d| d.get("user")).is_some();
        if is_server && !wanted.iter().any(|(w, _, _)| w == spec) {
            // a server that is starting gets its route when ready
            tracing::info!(route = %spec, "removing the route of a server that is not running");
            st.proxy.delete_route(spec).await?;
            changed += 1;
        }
    }
    Ok(changed)
}

/// Polls every running server (every `spawner.poll_interval`) and keeps
/// the proxy's table right (every `proxy.check_running_interval`), for as
/// long as the hub runs.
pub fn watch(st: AppState) {
    let poller = st.clone();
    tokio::spawn(async move {
        let every = Duration::from_secs(poller.config.spawner.poll_interval.max(1));
        let mut tick = tokio::time::interval(every);
        tick.tick().await;
        loop {
            tick.tick().await;
            let servers = match poller.db.active_servers().await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot list running servers");
                    continue;
                }
            };
            for OwnedServer { server, user_name } in servers {
                if server.pending.is_some() || poller.servers.phase(server.id) != Phase::Idle {
                    continue;
                }
                if let Err(e) = poll(&poller, &user_name, &server).await {
                    tracing::warn!(error = %e, "cannot poll a server");
                }
            }
        }
    });
    tokio::spawn(async move {
        let every = Duration::from_secs(st.config.proxy.check_running_interval.max(1));
        let mut tick = tokio::time::interval(every);
        let mut was_ok = true;
        loop {
            tick.tick().await;
            if let Some(child) = &st.proxy_process {
                child.check(&st.proxy).await;
            }
            match reconcile_routes(&st).await {
                Ok(n) => {
                    if n > 0 {
                        tracing::info!(changed = n, "proxy routes repaired");
                    }
                    if !was_ok {
                        tracing::info!("proxy reachable again");
                    }
                    was_ok = true;
                }
                Err(e) => {
                    if was_ok {
                        tracing::warn!(error = %e, "cannot check the proxy's routes");
                    }
                    was_ok = false;
                }
            }
        }
    });
}

/// The model of server row `s` of `user`, as JupyterHub's API shows it
/// (`state` only when `with_state`).
pub fn server_model(st: &AppState, user: &str, s: &ServerRow, with_state: bool) -> Value {
    let phase = st.servers.phase(s.id);
    let pending = match phase {
        Phase::Spawning => Some("spawn"),
        Phase::Stopping => Some("stop"),
        Phase::Idle => s.pending.as_deref(),
    };
    let running = is_running(s);
    let ready = running && pending.is_none();
    let public = st.config.hub.bind_url.trim_end_matches('/');
    let url = server_path(user, &s.name);
    let progress_url = progress_path(user, &s.name);
    let mut m = json!({
        "name": s.name,
        "display_name": s.display_name.clone().unwrap_or_else(|| s.name.clone()),
        "full_name": format!("{user}/{}", s.name),
        "last_activity": s.last_activity,
        "started": s.started,
        "pending": pending,
        "ready": ready,
        "stopped": !running && pending.is_none(),
        "url": url,
        "user_options": serde_json::from_str::<Value>(&s.user_options).unwrap_or_else(|_| json!({})),
        "progress_url": progress_url,
        "full_url": format!("{public}{url}"),
        "full_progress_url": format!("{public}{progress_url}"),
    });
    if with_state {
        m["state"] = serde_json::from_str::<Value>(&s.state).unwrap_or_else(|_| json!({}));
    }
    m
}
