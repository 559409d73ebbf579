//! Running the built `jhub` as a real process for the REST API scenarios:
//! a private temp dir with its config, database and cookie secret, free
//! loopback ports, the dummy authenticator, and a service `jhtest-svc`
//! whose token has the scopes the test chose (through `[[services]]` and
//! `[[roles]]`). No root needed: the hub runs as the test's user.
//!
//! [`TestHub::start`] waits for `/hub/health` (patience from
//! `JHUB_TEST_PATIENCE_MS`); dropping the hub kills it, and a failing test
//! gets the hub's stderr printed.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::jupyterhub::{Answer, free_port};
use crate::privileged::patience;

/// The service whose token the harness holds.
pub const SERVICE: &str = "jhtest-svc";

/// The proxy API token the generated config gives the hub.
pub const PROXY_TOKEN: &str = "jhtest-proxy-token";

/// The built `jhub`: `$JHUB_BIN_DIR/jhub`, else beside the test
/// executable's directory (`target/debug/jhub`).
pub fn jhub_bin() -> PathBuf {
    let dir = match std::env::var_os("JHUB_BIN_DIR") {
        Some(d) => PathBuf::from(d),
        None => {
            let exe = std::env::current_exe().expect("current_exe");
            exe.parent()
                .and_then(Path::parent)
                .expect("test executables live in target/<profile>/deps")
                .to_path_buf()
        }
    };
    let bin = dir.join("jhub");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build -p jhub` (or `cargo build --workspace --bins`) first",
        bin.display()
    );
    bin
}

/// How to set the hub up.
#[derive(Debug, Clone)]
pub struct Setup {
    /// Scopes of the harness's service token.
    pub service_scopes: Vec<String>,
    /// More TOML, appended to the generated config.
    pub extra: String,
    /// The proxy API the hub talks to (token `jhtest-proxy-token`); `None`
    /// points it at a free port where nothing listens.
    pub proxy_api_url: Option<String>,
    /// `[hub] authenticator_class` (default `dummy`).
    pub authenticator_class: String,
    /// The lines of the `[authenticator]` section (default: the dummy
    /// password [`DUMMY_PASSWORD`]).
    pub authenticator: String,
    /// Run the hub as this account (with its groups, through `setpriv`)
    /// rather than as the test's user; needs root. The hub's directory is
    /// given to the account and the binary copied into it.
    pub run_as: Option<String>,
    /// More lines for the `[hub]` section.
    pub hub_extra: String,
    /// The whole `[proxy]` section's lines, instead of the default
    /// (an external proxy at `proxy_api_url`, not started by the hub).
    pub proxy_section: Option<String>,
}

/// The hub's login cookie.
pub const LOGIN_COOKIE: &str = "jupyterhub-hub-login";

/// The dummy authenticator's password in the default setup.
pub const DUMMY_PASSWORD: &str = "jhtest-password";

impl Default for Setup {
    fn default() -> Self {
        Self {
            service_scopes: [
                "admin:users",
                "admin:groups",
                "tokens",
                "read:hub",
                "proxy",
                "list:services",
                "read:services",
                "shutdown",
                "read:metrics",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
            extra: String::new(),
            proxy_api_url: None,
            authenticator_class: "dummy".into(),
            authenticator: format!("password = \"{DUMMY_PASSWORD}\"\n"),
            run_as: None,
            hub_extra: String::new(),
            proxy_section: None,
        }
    }
}

/// A running hub.
pub struct TestHub {
    child: Option<Child>,
    /// Its private directory (config, database, cookie secret, log).
    pub dir: tempfile::TempDir,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// The service token.
    pub token: String,
    http: ureq::Agent,
    run_as: Option<String>,
}

impl std::fmt::Debug for TestHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestHub")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

fn random_token() -> String {
    use std::io::Read;
    let mut b = [0u8; 24];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .expect("/dev/urandom");
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Writes the config for a hub in `dir` on `port`; returns its path.
pub fn write_config(dir: &Path, port: u16, token: &str, setup: &Setup) -> PathBuf {
    let scopes: Vec<String> = setup
        .service_scopes
        .iter()
        .map(|s| format!("{s:?}"))
        .collect();
    let text = format!(
        r#"[hub]
hub_bind_url = "http://127.0.0.1:{port}"
db_url = "sqlite://{dir}/jhub.sqlite"
cookie_secret_file = "{dir}/cookie_secret"
authenticator_class = "{authenticator_class}"
{hub_extra}

[authenticator]
{authenticator}

[proxy]
{proxy}

[[services]]
name = "{SERVICE}"
api_token = "{token}"

[[roles]]
name = "jhtest-svc-role"
scopes = [{scopes}]
services = ["{SERVICE}"]

{extra}
"#,
        dir = dir.display(),
        hub_extra = setup.hub_extra,
        proxy = setup.proxy_section.clone().unwrap_or_else(|| format!(
            "api_url = \"{}\"\nshould_start = false\nauth_token = \"{PROXY_TOKEN}\"\n",
            setup
                .proxy_api_url
                .clone()
                .unwrap_or_else(|| format!("http://127.0.0.1:{}", free_port()))
        )),
        scopes = scopes.join(", "),
        extra = setup.extra,
        authenticator_class = setup.authenticator_class,
        authenticator = setup.authenticator,
    );
    let path = dir.join("jhub.toml");
    fs::write(&path, text).expect("write config");
    path
}

/// Runs `jhub` with `args` to completion: (exit code, stdout, stderr).
pub fn run_jhub(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(jhub_bin())
        .args(args)
        .env_remove("JPY_COOKIE_SECRET")
        .env_remove("CONFIGPROXY_AUTH_TOKEN")
        .stdin(Stdio::null())
        .output()
        .expect("run jhub");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

impl TestHub {
    /// Starts a hub with the default setup.
    pub fn start() -> Self {
        Self::start_with(&Setup::default())
    }

    /// Starts a hub with `setup` and waits until it is healthy.
    pub fn start_with(setup: &Setup) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let token = random_token();
        write_config(dir.path(), port, &token, setup);
        let http = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into();
        let mut hub = Self {
            child: None,
            dir,
            url: format!("http://127.0.0.1:{port}"),
            token,
            http,
            run_as: setup.run_as.clone(),
        };
        if let Some(user) = &setup.run_as {
            hub.give_to(user);
        }
        hub.launch();
        hub
    }

    /// Makes the hub's directory `user`'s (mode 0700) with a copy of the
    /// binary in it that `user` may run (the build's target directory may
    /// not be reachable for other accounts).
    fn give_to(&self, user: &str) {
        use std::os::unix::fs::PermissionsExt;
        let account = nix::unistd::User::from_name(user)
            .ok()
            .flatten()
            .unwrap_or_else(|| panic!("no user {user}"));
        let bin = self.dir.path().join("jhub");
        // A hard link when the target directory is on the same file
        // system (the built binary is 0755 already), else a copy.
        if fs::hard_link(jhub_bin(), &bin).is_err() {
            fs::copy(jhub_bin(), &bin).expect("copy jhub");
        }
        fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).expect("chmod jhub");
        for entry in [
            self.dir.path().to_path_buf(),
            self.dir.path().join("jhub.toml"),
        ] {
            std::os::unix::fs::chown(
                &entry,
                Some(account.uid.as_raw()),
                Some(account.gid.as_raw()),
            )
            .expect("chown the hub's files");
        }
        fs::set_permissions(self.dir.path(), fs::Permissions::from_mode(0o700))
            .expect("chmod the hub's directory");
    }

    /// Kills the hub with SIGKILL (as a crash would) and waits for it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _already_gone = child.kill();
            let _status = child.wait();
        }
    }

    /// Starts the hub again on the same directory (after [`Self::stop`]
    /// or [`Self::kill`]) and waits until it is healthy.
    pub fn start_again(&mut self) {
        self.launch();
    }

    fn launch(&mut self) {
        let log = fs::File::create(self.dir.path().join("jhub.log")).expect("log file");
        let mut command = match &self.run_as {
            None => Command::new(jhub_bin()),
            Some(user) => {
                // setpriv execs (no process in between to signal) and
                // --init-groups gives the account its supplementary groups
                // (the hub user needs `shadow` for PAM).
                let mut c = Command::new("setpriv");
                c.args(["--reuid", user, "--regid", user, "--init-groups", "--"])
                    .arg(self.dir.path().join("jhub"))
                    .current_dir(self.dir.path());
                c
            }
        };
        let child = command
            .arg("--config")
            .arg(self.dir.path().join("jhub.toml"))
            .env_remove("JPY_COOKIE_SECRET")
            .env_remove("CONFIGPROXY_AUTH_TOKEN")
            .env("JHUB_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start jhub");
        self.child = Some(child);
        let deadline = Instant::now() + patience();
        loop {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                panic!("jhub exited ({status}) while starting:\n{}", self.log());
            }
            if self.get_raw("/hub/health").is_ok_and(|a| a.status == 200) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "jhub did not become healthy in {:?}:\n{}",
                patience(),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the hub (SIGTERM, then waits) and starts it again on the same
    /// directory.
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }

    /// Stops the hub with SIGTERM and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = nix::unistd::Pid::from_raw(child.id() as i32);
            // The hub may already have exited (e.g. after /shutdown).
            let _already_gone = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let _status = child.wait();
        }
    }

    /// Waits for the hub to exit by itself; its exit status.
    pub fn wait_exit(&mut self) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + patience();
        let child = self.child.as_mut()?;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The running hub's process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The hub's stderr so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("jhub.log")).unwrap_or_default()
    }

    fn get_raw(&self, path: &str) -> Result<Answer, ureq::Error> {
        self.send("GET", path, None, &[], None)
    }

    /// Sends a request: `body` as is, `token` in `Authorization: token X`,
    /// plus `headers`.
    pub fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Result<Answer, ureq::Error> {
        let mut req = ureq::http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.url));
        if let Some(t) = token {
            req = req.header("Authorization", format!("token {t}"));
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.body(body.unwrap_or_default()).expect("request");
        let mut resp = self.http.run(req)?;
        let status = resp.status().as_u16();
        let body = resp.body_mut().read_to_string().unwrap_or_default();
        Ok(Answer { status, body })
    }

    /// `method /hub/api{path}` with `token` and a JSON body; panics (with
    /// the log) if the request cannot be made.
    pub fn api_as(
        &self,
        token: Option<&str>,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Answer {
        let bytes = body.map(|b| b.to_string().into_bytes());
        self.send(method, &format!("/hub/api{path}"), token, &[], bytes)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}\n{}", self.log()))
    }

    /// `method /hub/api{path}` with the service token.
    pub fn api(&self, method: &str, path: &str, body: Option<&Value>) -> Answer {
        self.api_as(Some(&self.token.clone()), method, path, body)
    }

    /// A browser (cookie-keeping client) on this hub, with no cookies.
    pub fn browser(&self) -> crate::browser::Browser {
        crate::browser::Browser::new(&self.url)
    }

    /// A browser logged in as `username` with `password`; panics (with
    /// the log) unless the login form answers with a redirect and a login
    /// cookie.
    pub fn login(&self, username: &str, password: &str) -> crate::browser::Browser {
        let mut b = self.browser();
        let page = b.login(username, password);
        assert!(
            (300..400).contains(&page.status) && page.set_cookie(LOGIN_COOKIE).is_some(),
            "login as {username} failed: {page:?}\n{}",
            self.log()
        );
        b
    }

    /// The names of all users, via the API.
    pub fn usernames(&self) -> Vec<String> {
        let a = self.api("GET", "/users", None);
        assert_eq!(a.status, 200, "{}", a.body);
        a.json()
            .as_array()
            .expect("a list")
            .iter()
            .map(|u| u["name"].as_str().expect("name").to_owned())
            .collect()
    }

    /// Creates users (as the service); panics unless 201.
    pub fn create_users(&self, names: &[&str]) {
        let a = self.api(
            "POST",
            "/users",
            Some(&serde_json::json!({"usernames": names})),
        );
        assert_eq!(a.status, 201, "{}", a.body);
    }

    /// A new token for `user` with `scopes` (None: inherit).
    pub fn user_token(&self, user: &str, scopes: Option<&[&str]>) -> String {
        let body = match scopes {
            Some(s) => serde_json::json!({"scopes": s}),
            None => serde_json::json!({}),
        };
        let a = self.api("POST", &format!("/users/{user}/tokens"), Some(&body));
        assert_eq!(a.status, 201, "{}", a.body);
        a.json()["token"].as_str().expect("token").to_owned()
    }
}

impl Drop for TestHub {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Best effort: the hub may have exited already.
            let _gone = child.kill();
            let _status = child.wait();
        }
        if std::thread::panicking() {
            eprintln!("--- jhub stderr ---\n{}", self.log());
        }
    }
}
