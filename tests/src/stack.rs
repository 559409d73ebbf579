//! The whole stack as an admin runs it, for the spawning scenarios: the
//! built `jhub` run as the `jupyterhub` account with PAM logins, the proxy
//! it starts itself (the built `jhub-proxy`, or the real
//! configurable-http-proxy), real users made with `useradd -m` in
//! `jupyterhub-users`, and their real `jupyterhub-singleuser` servers
//! started through sudo and the installed helper. Needs root.
//!
//! Dropping a [`Stack`] kills the proxy the hub started (it outlives the
//! hub by design); dropping a [`HomeUser`] kills whatever the user still
//! runs and deletes the account with its home.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::hub::{Setup, TestHub};
use crate::jupyterhub::{Answer, free_port};
use crate::privileged::{HUB_USER, live_processes, patience, unique_suffix};
use crate::proxy::{Impl, jhub_proxy_path};

/// The group whose members may get a server.
pub const USERS_GROUP: &str = "jupyterhub-users";

/// A local account with a home directory and a password, in
/// [`USERS_GROUP`]; deleted (with its home and processes) on drop.
#[derive(Debug)]
pub struct HomeUser {
    /// Its name.
    pub name: String,
    /// Its password.
    pub password: String,
}

impl HomeUser {
    /// Creates `PREFIX-XXXXXXXX` with a home, a random password and
    /// [`USERS_GROUP`], with the install's own `sudoers/add-user.sh`, as an
    /// admin would.
    pub fn create(prefix: &str) -> Self {
        let name = format!("{prefix}-{}", unique_suffix());
        let password = format!("Pw-{}-{}", unique_suffix(), unique_suffix());
        let mut add = Command::new(crate::privileged::repo_root().join("sudoers/add-user.sh"))
            .args([name.as_str(), "--password-stdin"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("run sudoers/add-user.sh");
        std::io::Write::write_all(
            add.stdin.as_mut().expect("piped"),
            format!("{password}\n").as_bytes(),
        )
        .expect("write the password");
        drop(add.stdin.take());
        assert!(
            add.wait().expect("add-user.sh").success(),
            "add-user.sh {name} failed"
        );
        Self { name, password }
    }

    /// Its home directory.
    pub fn home(&self) -> PathBuf {
        Path::new("/home").join(&self.name)
    }

    /// Its live processes.
    pub fn processes(&self) -> std::collections::BTreeSet<i32> {
        live_processes(&self.name)
    }
}

impl Drop for HomeUser {
    fn drop(&mut self) {
        // Best effort in Drop: it may run during a panic.
        let _killed = Command::new("pkill")
            .args(["-KILL", "-u", &self.name])
            .output();
        std::thread::sleep(Duration::from_millis(100));
        let _gone = Command::new("userdel")
            .args(["-r", "-f", &self.name])
            .output();
    }
}

/// Which proxy routes the stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyKind {
    /// The built `jhub-proxy`, started by the hub.
    Jhub,
    /// The real configurable-http-proxy 5.3.0 (npm), started by the hub.
    Chp,
    /// A proxy the test starts itself (`should_start = false`).
    External(Impl),
}

/// How to set the stack up.
#[derive(Debug, Clone)]
pub struct StackOptions {
    /// The proxy the hub starts.
    pub proxy: ProxyKind,
    /// More lines for `[hub]`.
    pub hub_extra: String,
    /// More lines for `[spawner]`.
    pub spawner_extra: String,
    /// Users made admins.
    pub admins: Vec<String>,
    /// Seconds between the hub's proxy checks.
    pub check_interval: u64,
    /// More TOML at the end of the config (`[culler]`, `[[services]]`,
    /// `[[roles]]`).
    pub extra: String,
}

impl Default for StackOptions {
    fn default() -> Self {
        Self {
            proxy: ProxyKind::Jhub,
            hub_extra: String::new(),
            spawner_extra: String::new(),
            admins: Vec::new(),
            check_interval: 1,
            extra: String::new(),
        }
    }
}

/// A running hub with its proxy.
pub struct Stack {
    /// The hub.
    pub hub: TestHub,
    /// The public URL (the proxy): `http://127.0.0.1:PORT`.
    pub public: String,
    /// The proxy's API URL.
    pub proxy_api: String,
    http: ureq::Agent,
    /// The external proxy's token, when the test runs the proxy.
    external_token: Option<String>,
    external: Option<(Impl, std::process::Child)>,
    _bin: tempfile::TempDir,
}

impl std::fmt::Debug for Stack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stack")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

impl Stack {
    /// Starts the hub (as `jupyterhub`, PAM, allowed group
    /// [`USERS_GROUP`]), which starts its proxy.
    pub fn start(opts: &StackOptions) -> Self {
        assert!(
            nix::unistd::User::from_name(HUB_USER)
                .ok()
                .flatten()
                .is_some(),
            "the {HUB_USER} account is missing: run `sudo ./sudoers/install.sh` first"
        );
        // A copy of the proxy binary the hub user can run.
        let bin = tempfile::tempdir().expect("tempdir");
        std::fs::set_permissions(
            bin.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .expect("chmod");
        let command = match opts.proxy {
            ProxyKind::Jhub => {
                let copy = bin.path().join("jhub-proxy");
                std::fs::copy(jhub_proxy_path(), &copy).expect("copy jhub-proxy");
                copy.display().to_string()
            }
            ProxyKind::Chp => Impl::Chp.binary().display().to_string(),
            ProxyKind::External(_) => String::new(),
        };
        let public_port = free_port();
        let api_port = free_port();
        let public = format!("http://127.0.0.1:{public_port}");
        let proxy_api = format!("http://127.0.0.1:{api_port}");
        let mut external = None;
        let mut external_token = None;
        let proxy_section = if let ProxyKind::External(imp) = opts.proxy {
            let token = crate::proxy::random_token();
            external = Some((imp, start_external(imp, public_port, api_port, &token)));
            let section = format!(
                "api_url = \"{proxy_api}\"\nshould_start = false\nauth_token = \"{token}\"\n\
                 check_running_interval = {}\n",
                opts.check_interval
            );
            external_token = Some(token);
            section
        } else {
            format!(
                "api_url = \"{proxy_api}\"\nshould_start = true\ncommand = [{command:?}]\n\
                 check_running_interval = {}\n",
                opts.check_interval
            )
        };
        let admins: Vec<String> = opts.admins.iter().map(|a| format!("{a:?}")).collect();
        let setup = Setup {
            authenticator_class: "pam".into(),
            authenticator: format!(
                "allowed_groups = [{USERS_GROUP:?}]\nadmin_users = [{}]\n",
                admins.join(", ")
            ),
            run_as: Some(HUB_USER.into()),
            hub_extra: format!("bind_url = \"{public}\"\n{}", opts.hub_extra),
            proxy_section: Some(proxy_section),
            extra: format!("[spawner]\n{}\n\n{}\n", opts.spawner_extra, opts.extra),
            service_scopes: [
                "admin:users",
                "admin:servers",
                "tokens",
                "read:hub",
                "proxy",
                "read:metrics",
                "shutdown",
                "list:services",
                "read:services",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
            ..Setup::default()
        };
        let hub = TestHub::start_with(&setup);
        let http = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into();
        let stack = Self {
            hub,
            public,
            proxy_api,
            http,
            external_token,
            external,
            _bin: bin,
        };
        stack.wait_for_route("/", Duration::from_secs(30));
        stack
    }

    /// The pid of the proxy the hub started.
    pub fn proxy_pid(&self) -> Option<i32> {
        std::fs::read_to_string(self.hub.dir.path().join("jhub-proxy.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// `GET` through the proxy with `token`.
    pub fn public_get(&self, path: &str, token: Option<&str>) -> Answer {
        let mut req = ureq::http::Request::builder()
            .method("GET")
            .uri(format!("{}{path}", self.public));
        if let Some(t) = token {
            req = req.header("Authorization", format!("token {t}"));
        }
        let req = req.body(Vec::new()).expect("request");
        match self.http.run(req) {
            Ok(mut r) => Answer {
                status: r.status().as_u16(),
                body: r.body_mut().read_to_string().unwrap_or_default(),
            },
            Err(e) => Answer {
                status: 0,
                body: e.to_string(),
            },
        }
    }

    /// Kills the external proxy and starts a new one on the same ports,
    /// with an empty table.
    pub fn restart_external_proxy(&mut self) {
        let (imp, mut child) = self.external.take().expect("an external proxy");
        let _killed = child.kill();
        let _status = child.wait();
        let port = |url: &str| -> u16 {
            url.rsplit(':')
                .next()
                .and_then(|p| p.parse().ok())
                .expect("a port")
        };
        let token = self.external_token.clone().expect("its token");
        let child = start_external(imp, port(&self.public), port(&self.proxy_api), &token);
        self.external = Some((imp, child));
    }

    /// The proxy's routing table (from its own API, with the hub's token).
    pub fn routes(&self) -> Value {
        let token = match &self.external_token {
            Some(t) => t.clone(),
            None => std::fs::read_to_string(self.hub.dir.path().join("proxy_auth_token"))
                .expect("the hub's generated proxy token"),
        };
        let req = ureq::http::Request::builder()
            .method("GET")
            .uri(format!("{}/api/routes", self.proxy_api))
            .header("Authorization", format!("token {}", token.trim()))
            .body(Vec::new())
            .expect("request");
        match self.http.run(req) {
            Ok(mut r) if r.status() == 200 => {
                serde_json::from_str(&r.body_mut().read_to_string().unwrap_or_default())
                    .unwrap_or(Value::Null)
            }
            _ => Value::Null,
        }
    }

    /// Waits until the proxy routes `spec` (without its trailing slash,
    /// as the proxy keys it).
    pub fn wait_for_route(&self, spec: &str, limit: Duration) {
        let key = if spec == "/" {
            "/"
        } else {
            spec.trim_end_matches('/')
        };
        let deadline = Instant::now() + limit;
        loop {
            if self.routes().get(key).is_some() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "no route {key} after {limit:?}: {}\n{}",
                self.routes(),
                self.hub.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Adds `name` to the hub.
    pub fn add_user(&self, name: &str) {
        let a = self.hub.api("POST", &format!("/users/{name}"), None);
        assert!(a.status == 201 || a.status == 409, "{}", a.body);
    }

    /// Starts `user`'s default server and waits until it is ready.
    pub fn start_server(&self, user: &str) -> Value {
        let a = self
            .hub
            .api("POST", &format!("/users/{user}/server"), Some(&json!({})));
        assert!(
            a.status == 201 || a.status == 202,
            "start {user}: {} {}\n{}",
            a.status,
            a.body,
            self.hub.log()
        );
        self.wait_ready(user)
    }

    /// Waits until `user`'s default server is ready; its model.
    pub fn wait_ready(&self, user: &str) -> Value {
        let deadline = Instant::now() + patience().max(Duration::from_secs(90));
        loop {
            let m = self.server(user);
            if m["ready"] == json!(true) {
                return m;
            }
            assert!(
                m["pending"] == json!("spawn") && Instant::now() < deadline,
                "{user}'s server is not starting: {m}\n{}",
                self.hub.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `user`'s default server's model (`null` when the user has none).
    pub fn server(&self, user: &str) -> Value {
        let a = self.hub.api("GET", &format!("/users/{user}/server"), None);
        if a.status == 404 {
            return Value::Null;
        }
        assert_eq!(a.status, 200, "{}", a.body);
        a.json()
    }

    /// The pid of `user`'s default server (from its state).
    pub fn server_pid(&self, user: &str) -> i32 {
        let m = self.server(user);
        m["state"]["pid"]
            .as_i64()
            .unwrap_or_else(|| panic!("no pid in {m}")) as i32
    }

    /// Stops `user`'s default server; the status.
    pub fn stop_server(&self, user: &str) -> u16 {
        self.hub
            .api("DELETE", &format!("/users/{user}/server"), None)
            .status
    }

    /// A token of `user` with `scopes` (None: all of the user's).
    pub fn token(&self, user: &str, scopes: Option<&[&str]>) -> String {
        self.hub.user_token(user, scopes)
    }
}

/// Starts `imp` on the given ports with `token`; returns once its API
/// answers.
fn start_external(imp: Impl, port: u16, api_port: u16, token: &str) -> std::process::Child {
    let mut child = Command::new(imp.binary())
        .args(["--ip", "127.0.0.1", "--port", &port.to_string()])
        .args(["--api-ip", "127.0.0.1", "--api-port", &api_port.to_string()])
        .env("CONFIGPROXY_AUTH_TOKEN", token)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start the proxy");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if std::net::TcpStream::connect(("127.0.0.1", api_port)).is_ok() {
            return child;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{} exited at start: {status}", imp.name());
        }
        assert!(Instant::now() < deadline, "{} did not listen", imp.name());
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.hub.kill();
        if let Some((_, mut child)) = self.external.take() {
            let _killed = child.kill();
            let _status = child.wait();
        }
        if let Some(pid) = self.proxy_pid() {
            // Best effort: it may have exited.
            let _gone = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// Waits until `check` holds (at most `limit`); panics with `what`.
pub fn wait_until(what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !check() {
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?}: {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Whether `status` is a redirect.
pub fn redirect(status: u16) -> bool {
    (301..=308).contains(&status)
}

/// Follows redirects from `path` (at most 20) as a browser would, on the
/// site at `origin`; the last page and every path visited.
pub fn follow(
    b: &mut crate::browser::Browser,
    origin: &str,
    path: &str,
) -> (crate::browser::Page, Vec<String>) {
    let mut visited = vec![path.to_owned()];
    let mut page = b.get(path);
    for _ in 0..20 {
        let Some(next) = page.location.clone() else {
            break;
        };
        let next = next.strip_prefix(origin).map(str::to_owned).unwrap_or(next);
        assert!(next.starts_with('/'), "redirect off the site: {next}");
        visited.push(next.clone());
        page = b.get(&next);
    }
    (page, visited)
}

/// Starts the logged-in user's default server with the home page's start
/// button, waits on the progress page, and returns where it sends the
/// browser once the server is ready.
pub fn start_from_home(b: &mut crate::browser::Browser, user: &str, limit: Duration) -> String {
    let home = b.get("/hub/home");
    assert!(
        home.body.contains("id=\"start\""),
        "no start button: {}",
        home.body
    );
    let xsrf = crate::browser::xsrf_in(&home.body).expect("the home page's forms carry _xsrf");
    let started = b.post_form(&format!("/hub/spawn/{user}"), &[("_xsrf", &xsrf)]);
    assert!(redirect(started.status), "start: {started:?}");
    past_progress(b, started.location.expect("a redirect"), limit)
}

/// From `at`, reloads the start's progress page (`/hub/spawn-pending/...`)
/// until it sends the browser on, as its no-JavaScript refresh does (at
/// most `limit`); where it sends it.
pub fn past_progress(b: &mut crate::browser::Browser, mut at: String, limit: Duration) -> String {
    let deadline = Instant::now() + limit;
    while at.starts_with("/hub/spawn-pending/") {
        let p = b.get(&at);
        if redirect(p.status) {
            at = p.location.expect("a redirect");
            break;
        }
        assert_eq!(p.status, 200, "progress page: {p:?}");
        assert!(p.body.contains("progress"), "{}", p.body);
        assert!(
            Instant::now() < deadline,
            "the start did not end within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    at
}

/// Stops the logged-in user's default server with the home page's stop
/// button.
pub fn stop_from_home(b: &mut crate::browser::Browser, user: &str) {
    let home = b.get("/hub/home");
    let xsrf = crate::browser::xsrf_in(&home.body).expect("_xsrf");
    let stopped = b.post_form(&format!("/hub/stop/{user}"), &[("_xsrf", &xsrf)]);
    assert!(redirect(stopped.status), "stop: {stopped:?}");
}
