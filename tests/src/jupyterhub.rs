//! The real JupyterHub 6 (PyPI, in `/opt/jhub-test/venv`, installed by
//! `tests/setup-reference.sh`), run as the `jupyterhub` account on loopback
//! ports, for the scenarios that check jhub's parts are drop-ins for
//! JupyterHub's: its `sudospawner.SudoSpawner` driving our helper, and its
//! `ConfigurableHTTPProxy` running our proxy.
//!
//! [`RealHub::start`] writes a `jupyterhub_config.py` into a private
//! directory of the hub account's, starts the hub with a clean environment
//! (nothing from the test's own, so no `PYTHONPATH` or `VIRTUAL_ENV` that
//! the hub would forward to its spawner), and waits until its REST API
//! answers through the proxy. A service `jhtest` holds a token with the
//! scopes to create users, start and stop their servers and reach them.
//! Logins use the dummy authenticator, or PAM with real passwords for the
//! browser scenarios ([`HubAuthenticator`]).
//! Dropping the hub stops it, and with it the proxy it started and the
//! servers it still runs.

use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::Read;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::{Pid, User};
use serde_json::Value;

use crate::privileged::{HUB_USER, patience};

/// The reference venv with JupyterHub 6.1.1 and the Python sudospawner.
pub const REFERENCE_VENV: &str = "/opt/jhub-test/venv";
/// configurable-http-proxy 5.3.0 from npm.
pub const CHP_COMMAND: &str = "/opt/jhub-test/chp/node_modules/.bin/configurable-http-proxy";

/// How the hub is set up.
#[derive(Debug, Clone)]
pub struct HubOptions {
    /// `c.ConfigurableHTTPProxy.command`.
    pub proxy_command: Vec<String>,
    /// `c.SudoSpawner.sudospawner_path`.
    pub sudospawner_path: String,
    /// `c.JupyterHub.authenticator_class` and its settings.
    pub authenticator: HubAuthenticator,
}

impl Default for HubOptions {
    fn default() -> Self {
        Self {
            proxy_command: vec![CHP_COMMAND.to_owned()],
            sudospawner_path: crate::privileged::HELPER_PATH.to_owned(),
            authenticator: HubAuthenticator::Dummy,
        }
    }
}

/// Who may log in to the hub's pages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HubAuthenticator {
    /// `"dummy"`: any name with any password (the API-only scenarios log
    /// nobody in).
    Dummy,
    /// `"pam"` with the system's `login` service: real Unix passwords,
    /// checked by the hub account (in group `shadow`), for these users
    /// only (`c.Authenticator.allowed_users`).
    Pam {
        /// The users allowed to log in.
        allowed_users: Vec<String>,
    },
}

impl HubAuthenticator {
    /// The lines of `jupyterhub_config.py` that set it up.
    fn config(&self) -> String {
        match self {
            Self::Dummy => "c.JupyterHub.authenticator_class = \"dummy\"\n".to_owned(),
            Self::Pam { allowed_users } => {
                let users: Vec<String> = allowed_users.iter().map(|u| py(u)).collect();
                format!(
                    "c.JupyterHub.authenticator_class = \"pam\"\n\
                     c.PAMAuthenticator.service = \"login\"\n\
                     c.Authenticator.allowed_users = [{}]\n",
                    users.join(", ")
                )
            }
        }
    }
}

/// A running JupyterHub (see the module docs).
pub struct RealHub {
    child: Child,
    dir: PathBuf,
    /// The public URL, served by the proxy: `http://127.0.0.1:PORT`.
    pub public_url: String,
    /// The service token (admin:users, admin:servers, access:servers).
    pub token: String,
    http: ureq::Agent,
}

/// An HTTP answer: its status and body.
#[derive(Debug)]
pub struct Answer {
    /// The status code.
    pub status: u16,
    /// The body, as text.
    pub body: String,
}

impl Answer {
    /// The body parsed as JSON; panics with the body when it is not.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// A loopback port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("cannot bind a loopback port")
}

fn random_hex() -> String {
    let mut bytes = [0u8; 16];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .expect("cannot read /dev/urandom");
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// A Python string literal for `s` (JSON strings are valid Python).
fn py(s: &str) -> String {
    Value::from(s).to_string()
}

impl RealHub {
    /// Starts JupyterHub as the hub account with `options`, and waits until
    /// `GET /hub/api/` answers through its proxy. Panics, with the hub's
    /// log, if it does not within a minute (or `JHUB_TEST_PATIENCE_MS`).
    pub fn start(options: &HubOptions) -> Self {
        let jupyterhub = Path::new(REFERENCE_VENV).join("bin/jupyterhub");
        assert!(
            jupyterhub.exists(),
            "{} is missing: run tests/setup-reference.sh (tests/run does) first",
            jupyterhub.display()
        );
        let hub = User::from_name(HUB_USER)
            .ok()
            .flatten()
            .expect("no hub account: run sudoers/install.sh first");
        let dir = tempfile::Builder::new()
            .prefix("jhub-jupyterhub-")
            .tempdir()
            .expect("cannot make a directory for the hub")
            .keep();
        let chown = |p: &Path| {
            std::os::unix::fs::chown(p, Some(hub.uid.as_raw()), Some(hub.gid.as_raw()))
                .unwrap_or_else(|e| panic!("cannot chown {}: {e}", p.display()))
        };
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).expect("chmod");
        chown(&dir);

        let public_port = free_port();
        let hub_port = free_port();
        let api_port = free_port();
        let token = random_hex();
        let proxy_token = random_hex();
        let proxy_command = options
            .proxy_command
            .iter()
            .map(|s| py(s))
            .collect::<Vec<_>>()
            .join(", ");
        let config = format!(
            r#"c = get_config()  # noqa
c.JupyterHub.bind_url = "http://127.0.0.1:{public_port}/"
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = {hub_port}
c.JupyterHub.db_url = "sqlite:///{dir}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = "{dir}/cookie_secret"
{authenticator}c.JupyterHub.spawner_class = "sudospawner.SudoSpawner"
c.SudoSpawner.sudospawner_path = {helper}
c.SudoSpawner.mediator_log_level = "DEBUG"
c.Spawner.start_timeout = 120
c.Spawner.http_timeout = 120
c.ConfigurableHTTPProxy.command = [{proxy_command}]
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{api_port}"
c.ConfigurableHTTPProxy.auth_token = {proxy_token}
c.ConfigurableHTTPProxy.pid_file = "{dir}/proxy.pid"
c.JupyterHub.pid_file = "{dir}/jupyterhub.pid"
c.JupyterHub.services = [{{"name": "jhtest", "api_token": {token}}}]
c.JupyterHub.load_roles = [
    {{
        "name": "jhtest",
        "scopes": ["admin:users", "admin:servers", "access:servers"],
        "services": ["jhtest"],
    }}
]
"#,
            dir = dir.display(),
            authenticator = options.authenticator.config(),
            helper = py(&options.sudospawner_path),
            proxy_token = py(&proxy_token),
            token = py(&token),
        );
        let config_path = dir.join("jupyterhub_config.py");
        fs::write(&config_path, config).expect("cannot write the hub config");
        chown(&config_path);
        let log_path = dir.join("jupyterhub.log");
        let log = File::create(&log_path).expect("cannot create the hub log");
        chown(&log_path);

        // setpriv execs (the hub is the child the test signals) and
        // --init-groups gives the hub account its supplementary groups, as
        // a service manager would: PAM logins need `shadow`.
        let child = Command::new("/usr/bin/setpriv")
            .args([
                "--reuid",
                HUB_USER,
                "--regid",
                HUB_USER,
                "--init-groups",
                "--",
            ])
            .arg(&jupyterhub)
            .args(["-f", "jupyterhub_config.py"])
            .env_clear()
            .env("USER", HUB_USER)
            .env("LANG", "C.UTF-8")
            .env("HOME", &dir)
            .env(
                "PATH",
                format!("{REFERENCE_VENV}/bin:/usr/local/bin:/usr/bin:/bin"),
            )
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", jupyterhub.display()));

        let http = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into();
        let mut hub = Self {
            child,
            dir,
            public_url: format!("http://127.0.0.1:{public_port}"),
            token,
            http,
        };
        let deadline = Instant::now() + patience().max(Duration::from_secs(60));
        loop {
            if let Ok(Some(status)) = hub.child.try_wait() {
                panic!(
                    "JupyterHub exited ({status}) while starting:\n{}",
                    hub.log()
                );
            }
            if hub.try_get("/hub/api/").is_some_and(|a| a.status == 200) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "JupyterHub did not answer on {}/hub/api/ in time:\n{}",
                hub.public_url,
                hub.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        hub
    }

    /// The pid the proxy wrote to its `--pid-file`, once it has.
    pub fn proxy_pid(&self) -> Option<i32> {
        fs::read_to_string(self.dir.join("proxy.pid"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
    }

    /// The hub's log (its stdout and stderr, with the proxy's and the
    /// helper's stderr, which it relays).
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("jupyterhub.log")).unwrap_or_default()
    }

    fn try_get(&self, path: &str) -> Option<Answer> {
        self.request("GET", path, None).ok()
    }

    fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Answer, ureq::Error> {
        let url = format!("{}{path}", self.public_url);
        let auth = format!("token {}", self.token);
        let mut response = match (method, body) {
            ("GET", _) => self.http.get(&url).header("Authorization", &auth).call()?,
            ("DELETE", _) => self
                .http
                .delete(&url)
                .header("Authorization", &auth)
                .call()?,
            ("POST", Some(body)) => self
                .http
                .post(&url)
                .header("Authorization", &auth)
                .send_json(body)?,
            ("POST", None) => self
                .http
                .post(&url)
                .header("Authorization", &auth)
                .send_empty()?,
            _ => panic!("method {method} is not used by these tests"),
        };
        let status = response.status().as_u16();
        let body = response.body_mut().read_to_string()?;
        Ok(Answer { status, body })
    }

    /// `method path` with the service token, through the proxy; panics
    /// (with the hub's log) when the request cannot be made at all.
    pub fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Answer {
        self.request(method, path, body).unwrap_or_else(|e| {
            panic!(
                "{method} {}{path} failed: {e}\n{}",
                self.public_url,
                self.log()
            )
        })
    }

    /// Polls `GET /hub/api/users/NAME` until `check` accepts the model, for
    /// at most `limit`; panics with the last model and the log otherwise.
    pub fn wait_for_user(
        &self,
        name: &str,
        what: &str,
        limit: Duration,
        check: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + limit.max(patience());
        loop {
            let answer = self.call("GET", &format!("/hub/api/users/{name}"), None);
            let model = answer.json();
            if answer.status == 200 && check(&model) {
                return model;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: not reached in time; last answer {}: {}\n{}",
                answer.status,
                answer.body,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

impl Drop for RealHub {
    /// Stops the hub with SIGTERM, as an admin would; JupyterHub then stops
    /// the servers it runs and its proxy. SIGKILL after 30 s.
    fn drop(&mut self) {
        let pid = Pid::from_raw(self.child.id() as i32);
        let _ = kill(pid, Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
            // The proxy a killed hub could not stop.
            if let Some(pid) = fs::read_to_string(self.dir.join("proxy.pid"))
                .ok()
                .and_then(|s| s.trim().parse::<i32>().ok())
            {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
        if std::thread::panicking() {
            eprintln!(
                "---- JupyterHub log ({})\n{}",
                self.dir.display(),
                self.log()
            );
        } else {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}
