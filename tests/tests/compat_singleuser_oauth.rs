//! The real, unmodified `jupyterhub-singleuser` (JupyterHub 6.1.1 and
//! JupyterLab, from the install's `/opt/jhub/venv`) logs browsers in
//! through jhub's OAuth2 provider: `HubOAuth`'s redirect to
//! `/hub/api/oauth2/authorize`, the login and confirmation pages, the
//! code exchange at `/hub/api/oauth2/token` and `HubAuth.check_scopes` on
//! `GET /hub/api/user`.
//!
//! The server runs as a hub service (`[[services]]` with a `url`, as
//! JupyterHub runs a shared notebook server), behind `jhub-proxy` with the
//! routes the hub sets; a user with a role granting the service's access
//! scope gets JupyterLab, another user gets 403 from the hub.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use jhub_tests::browser::{Browser, Page, xsrf_in};
use jhub_tests::hub::{DUMMY_PASSWORD, PROXY_TOKEN, Setup, TestHub};
use jhub_tests::privileged::patience;
use jhub_tests::proxy::{Impl, ProxyOptions, ProxyProcess, free_port};

/// The server command the install puts in its venv.
const SINGLEUSER: &str = "/opt/jhub/venv/bin/jupyterhub-singleuser";
const SERVICE: &str = "jhtest-notebook";
const SERVICE_TOKEN: &str = "jhtest-notebook-service-token";

/// The server process, stopped on drop.
struct Server {
    child: Child,
    log: std::path::PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        // Best effort: it may have exited already.
        let _gone = self.child.kill();
        let _status = self.child.wait();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            eprintln!("--- jupyterhub-singleuser ---\n{log}");
        }
    }
}

fn start_server(hub: &TestHub, port: u16, home: &Path) -> Server {
    let prefix = format!("/services/{SERVICE}/");
    let log = home.join("singleuser.log");
    let child = Command::new(SINGLEUSER)
        .args([
            "--ip",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--allow-root",
        ])
        .arg(format!("--ServerApp.root_dir={}", home.display()))
        .current_dir(home)
        .env("HOME", home)
        .env("JUPYTERHUB_API_TOKEN", SERVICE_TOKEN)
        .env("JUPYTERHUB_API_URL", format!("{}/hub/api", hub.url))
        .env("JUPYTERHUB_BASE_URL", "/")
        .env("JUPYTERHUB_HOST", "")
        .env("JUPYTERHUB_SERVICE_NAME", SERVICE)
        .env("JUPYTERHUB_CLIENT_ID", format!("service-{SERVICE}"))
        .env("JUPYTERHUB_SERVICE_PREFIX", &prefix)
        .env(
            "JUPYTERHUB_SERVICE_URL",
            format!("http://127.0.0.1:{port}{prefix}"),
        )
        .env(
            "JUPYTERHUB_OAUTH_CALLBACK_URL",
            format!("{prefix}oauth_callback"),
        )
        .env(
            "JUPYTERHUB_OAUTH_ACCESS_SCOPES",
            format!("[\"access:services!service={SERVICE}\"]"),
        )
        .env_remove("JUPYTERHUB_USER")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("start jupyterhub-singleuser");
    Server { child, log }
}

/// Follows redirects from `path` as a browser does, logging in as `user`
/// on the login page and confirming the "Authorize access" page; the
/// final answer.
fn browse(b: &mut Browser, user: &str, path: &str) -> Page {
    let mut path = path.to_owned();
    for _ in 0..12 {
        let page = b.get(&path);
        let next = if page.status == 200 && path.starts_with("/hub/login") {
            let xsrf = xsrf_in(&page.body).expect("login form");
            b.post_form(
                &path,
                &[
                    ("username", user),
                    ("password", DUMMY_PASSWORD),
                    ("_xsrf", &xsrf),
                ],
            )
        } else if page.status == 200 && page.body.contains("Authorize access") {
            let xsrf = xsrf_in(&page.body).expect("authorization form");
            let scopes: Vec<String> = page
                .body
                .split("name=\"scopes\" value=\"")
                .skip(1)
                .map(|rest| rest.split('"').next().unwrap_or_default().to_owned())
                .collect();
            let mut fields: Vec<(&str, &str)> =
                scopes.iter().map(|s| ("scopes", s.as_str())).collect();
            fields.push(("_xsrf", &xsrf));
            b.post_form(&path, &fields)
        } else {
            page
        };
        match (&next.location, next.status) {
            (Some(to), 300..=399) => {
                path = to
                    .strip_prefix("http://")
                    .and_then(|rest| rest.find('/').map(|i| rest[i..].to_owned()))
                    .unwrap_or_else(|| to.clone());
            }
            _ => return next,
        }
    }
    panic!("too many redirects from {path}");
}

#[test]
fn jupyterhub_singleuser_logs_browsers_in_through_jhub() {
    if !Path::new(SINGLEUSER).exists() {
        eprintln!(
            "SKIPPED (no {SINGLEUSER}; sudoers/install.sh installs it): \
             jupyterhub_singleuser_logs_browsers_in_through_jhub"
        );
        return;
    }
    let proxy = ProxyProcess::start_with(
        Impl::Jhub,
        &[],
        ProxyOptions {
            token: Some(PROXY_TOKEN.to_owned()),
            env: Vec::new(),
        },
    );
    let port = free_port();
    let hub = TestHub::start_with(&Setup {
        proxy_api_url: Some(format!("http://{}", proxy.api_addr())),
        extra: format!(
            r#"
[[services]]
name = "{SERVICE}"
api_token = "{SERVICE_TOKEN}"
url = "http://127.0.0.1:{port}"

[[roles]]
name = "jhtest-notebook-users"
scopes = ["access:services!service={SERVICE}"]
users = ["jhtest-alice"]
"#
        ),
        ..Setup::default()
    });
    let home = tempfile::tempdir().expect("tempdir");
    let _server = start_server(&hub, port, home.path());

    // the hub adds its routes, the service's among them
    let deadline = Instant::now() + patience();
    let lab = format!("/services/{SERVICE}/lab");
    let public = format!("http://{}", proxy.proxy_addr());
    loop {
        let mut probe = Browser::new(&public);
        let status = probe.get(&format!("/services/{SERVICE}/api")).status;
        if status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the server is not reachable through the proxy ({status}):\n{}",
            hub.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    let mut alice = Browser::new(&public);
    let first = alice.get(&lab);
    let to = first.location.clone().unwrap_or_default();
    assert!(
        to.starts_with("/hub/api/oauth2/authorize?") && to.contains("code_challenge="),
        "HubOAuth sends the browser to the hub: {first:?}"
    );
    let page = browse(&mut alice, "jhtest-alice", &lab);
    assert_eq!(page.status, 200, "{page:?}\n{}", hub.log());
    assert!(page.body.contains("JupyterLab"), "{}", page.body);

    // a user without the access scope is refused by the hub
    let mut bob = Browser::new(&public);
    let page = browse(&mut bob, "jhtest-bob", &lab);
    assert_eq!(page.status, 403, "{page:?}");
    assert!(
        page.body.contains("You do not have permission"),
        "{}",
        page.body
    );
}
