//! The proxy the hub starts itself (`proxy.should_start`): `jhub-proxy`
//! by default, or any program that takes configurable-http-proxy's flags
//! (the real `configurable-http-proxy` among them).
//!
//! The proxy outlives the hub on purpose: a hub that stops or crashes
//! leaves it routing users to their servers, and the next hub adopts it
//! through the pid file (if it still answers the API with the same
//! token) instead of starting another. A proxy that died is started again
//! by [`ProxyProcess::check`], and the route check that follows refills
//! its table.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::sync::Mutex;

use crate::config::{Config, Secret};
use crate::proxy_client::ProxyClient;
use crate::spawner::process;

/// How long a started proxy has to answer its API.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// The proxy process the hub looks after.
#[derive(Debug)]
pub struct ProxyProcess {
    program: String,
    args: Vec<String>,
    token: Secret,
    pid_file: PathBuf,
    running: Mutex<Option<Running>>,
}

#[derive(Debug)]
struct Running {
    pid: i64,
    start_time: Option<i64>,
    /// Set when this hub started it (it must also be reaped).
    child: Option<tokio::process::Child>,
}

/// Host and port of an `http://HOST:PORT[/...]` URL.
fn host_port(url: &str, default_port: u16) -> Option<(String, u16)> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split('/').next()?;
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || authority.starts_with('[') => {
            (h.to_owned(), p.parse().ok()?)
        }
        _ => (authority.to_owned(), default_port),
    };
    Some((host.trim_matches(['[', ']']).to_owned(), port))
}

impl ProxyProcess {
    /// The proxy `config` asks for, with API token `token`.
    pub fn from_config(config: &Config, token: Secret) -> Result<Self, String> {
        let (program, fixed) = config
            .proxy
            .command
            .split_first()
            .ok_or("proxy.command is empty")?;
        let (ip, port) = host_port(&config.hub.bind_url, 8000)
            .ok_or_else(|| format!("hub.bind_url {:?} is not a URL", config.hub.bind_url))?;
        let (api_ip, api_port) = host_port(&config.proxy.api_url, 8001)
            .ok_or_else(|| format!("proxy.api_url {:?} is not a URL", config.proxy.api_url))?;
        let hub_origin = crate::app::origin(
            config
                .hub
                .hub_connect_url
                .as_deref()
                .unwrap_or(&config.hub.hub_bind_url),
        );
        let mut args: Vec<String> = fixed.to_vec();
        args.extend([
            "--ip".into(),
            ip,
            "--port".into(),
            port.to_string(),
            "--api-ip".into(),
            api_ip,
            "--api-port".into(),
            api_port.to_string(),
            "--error-target".into(),
            format!("{hub_origin}/hub/error"),
        ]);
        let pid_file = config.proxy.pid_file.clone().unwrap_or_else(|| {
            config
                .hub
                .cookie_secret_file
                .parent()
                .unwrap_or_else(|| std::path::Path::new("."))
                .join("jhub-proxy.pid")
        });
        Ok(Self {
            program: program.clone(),
            args,
            token,
            pid_file,
            running: Mutex::new(None),
        })
    }

    /// Adopts the proxy a previous hub left running (its pid file names a
    /// live process that answers the API with this token), or starts one.
    pub async fn start_or_adopt(&self, client: &ProxyClient) -> Result<(), String> {
        let mut running = self.running.lock().await;
        if let Some(pid) = self.recorded_pid() {
            if let Some(info) = process::proc_info(pid).filter(|p| !p.exited) {
                if client.get_routes().await.is_ok() {
                    tracing::info!(pid, "adopting the running proxy");
                    *running = Some(Running {
                        pid,
                        start_time: Some(info.start_time),
                        child: None,
                    });
                    return Ok(());
                }
                if self.is_ours(pid) {
                    tracing::warn!(
                        pid,
                        "the proxy recorded in the pid file does not answer with this token; \
                         stopping it"
                    );
                    stop_pid(pid, info.start_time).await;
                }
            }
        }
        *running = Some(self.spawn(client).await?);
        Ok(())
    }

    fn recorded_pid(&self) -> Option<i64> {
        std::fs::read_to_string(&self.pid_file)
            .ok()?
            .trim()
            .parse()
            .ok()
            .filter(|p| *p > 1)
    }

    /// Whether process `pid` runs this proxy's program (a pid file may
    /// outlive its process, and the PID go to another program).
    fn is_ours(&self, pid: i64) -> bool {
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            return false;
        };
        let base = |s: &str| s.rsplit('/').next().unwrap_or(s).to_owned();
        let want = base(&self.program);
        cmdline
            .split(|b| *b == 0)
            .take(3)
            .any(|arg| base(&String::from_utf8_lossy(arg)) == want)
    }

    async fn spawn(&self, client: &ProxyClient) -> Result<Running, String> {
        tracing::info!(command = %self.program, args = ?self.args, "starting the proxy");
        let mut child = tokio::process::Command::new(&self.program)
            .args(&self.args)
            .env("CONFIGPROXY_AUTH_TOKEN", self.token.expose())
            .stdin(Stdio::null())
            // its log goes where the hub's goes
            .stdout(Stdio::inherit())
            .stderr(Stdio::inherit())
            // its own process group: a Ctrl-C meant for the hub leaves it
            .process_group(0)
            .spawn()
            .map_err(|e| format!("cannot start the proxy ({}): {e}", self.program))?;
        let pid = i64::from(child.id().unwrap_or(0));
        if let Err(e) = std::fs::write(&self.pid_file, format!("{pid}\n")) {
            tracing::warn!(path = %self.pid_file.display(), error = %e, "cannot write the proxy's pid file");
        }
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!("the proxy exited at start ({status})"));
            }
            if client.get_routes().await.is_ok() {
                break;
            }
            if Instant::now() >= deadline {
                let _ = child.start_kill();
                return Err(format!(
                    "the proxy did not answer its API within {}s",
                    START_TIMEOUT.as_secs()
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tracing::info!(pid, "the proxy is running");
        Ok(Running {
            pid,
            start_time: process::proc_info(pid).map(|p| p.start_time),
            child: Some(child),
        })
    }

    /// Stops the proxy (SIGTERM, then SIGKILL after 5 s) and forgets its
    /// pid file.
    pub async fn stop(&self) {
        let mut running = self.running.lock().await;
        if let Some(r) = running.take() {
            if let Some(t) = r.start_time {
                stop_pid(r.pid, t).await;
            }
            if let Some(mut child) = r.child {
                let _ = child.wait().await;
            }
            let _ = std::fs::remove_file(&self.pid_file);
            tracing::info!(pid = r.pid, "the proxy is stopped");
        }
    }

    /// Starts the proxy again if it died.
    pub async fn check(&self, client: &ProxyClient) {
        let mut running = self.running.lock().await;
        let alive = match running.as_mut() {
            Some(Running {
                child: Some(child), ..
            }) => matches!(child.try_wait(), Ok(None)),
            Some(Running {
                pid, start_time, ..
            }) => process::liveness(*pid, *start_time) != process::Liveness::Gone,
            None => false,
        };
        if alive {
            return;
        }
        tracing::warn!("the proxy is not running; starting it again");
        match self.spawn(client).await {
            Ok(r) => *running = Some(r),
            Err(e) => tracing::error!(error = %e, "cannot start the proxy"),
        }
    }
}

/// SIGTERM to a stray proxy (not a child), then waits for it to go.
async fn stop_pid(pid: i64, start_time: i64) {
    let Ok(raw) = i32::try_from(pid) else { return };
    let target = nix::unistd::Pid::from_raw(raw);
    let _ = nix::sys::signal::kill(target, nix::sys::signal::Signal::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(5);
    while process::liveness(pid, Some(start_time)) != process::Liveness::Gone {
        if Instant::now() >= deadline {
            let _ = nix::sys::signal::kill(target, nix::sys::signal::Signal::SIGKILL);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_and_port() {
        assert_eq!(
            host_port("http://127.0.0.1:8000", 1),
            Some(("127.0.0.1".into(), 8000))
        );
        assert_eq!(
            host_port("http://[::1]:8001/x", 1),
            Some(("::1".into(), 8001))
        );
        assert_eq!(
            host_port("http://example.org/", 80),
            Some(("example.org".into(), 80))
        );
        assert_eq!(host_port("nonsense", 80), None);
    }
}
