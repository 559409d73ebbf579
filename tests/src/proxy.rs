//! The proxy conformance harness: one scenario, run against the reference
//! configurable-http-proxy (CHP) and against `jhub-proxy`, with the same
//! command-line flags, so that whatever a client of CHP sees is what a
//! client of `jhub-proxy` must see.
//!
//! - [`Impl`] names the implementation; [`both_impls!`](crate::both_impls)
//!   turns a scenario `fn name(imp: Impl)` into the tests `name::chp` and
//!   `name::jhub`, so a failure says which one broke.
//! - [`ProxyProcess`] runs one proxy on free loopback ports with
//!   `CONFIGPROXY_AUTH_TOKEN` set, waits for its API, talks to both of its
//!   ports, and on drop kills it (printing its output if the test failed).
//! - [`backend`]: in-process upstreams (HTTP echo, streams, uploads, a
//!   server that never answers, a websocket echo).
//! - [`http`]: the raw HTTP/1.1 client every request goes through.
//!
//! Nothing here needs root. The CHP variants need `tests/setup-reference.sh`
//! to have installed CHP; without it they fail and name the missing path.
//! Waits are bounded by [`patience`] (`JHUB_TEST_PATIENCE_MS`).

pub mod backend;
pub mod http;

use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

pub use crate::privileged::{eventually, patience};
use http::{Request, Response};

/// Where `tests/setup-reference.sh` installs CHP 5.3.0.
pub const CHP_PATH: &str = "/opt/jhub-test/chp/node_modules/.bin/configurable-http-proxy";

/// The implementation under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Impl {
    /// The reference, configurable-http-proxy 5.3.0 (node).
    Chp,
    /// This workspace's `jhub-proxy`.
    Jhub,
}

impl Impl {
    /// A short name for messages.
    pub fn name(self) -> &'static str {
        match self {
            Impl::Chp => "configurable-http-proxy",
            Impl::Jhub => "jhub-proxy",
        }
    }

    /// The executable; panics, naming the path and how to get it, when it
    /// is missing (a missing reference must fail the test, never pass it).
    pub fn binary(self) -> PathBuf {
        let (path, hint) = match self {
            Impl::Chp => (
                PathBuf::from(CHP_PATH),
                "run `sudo ./tests/setup-reference.sh` (tests/run does) to install CHP 5.3.0",
            ),
            Impl::Jhub => (
                jhub_proxy_path(),
                "run `cargo build -p jhub-proxy` (or `cargo build --workspace --bins`) first",
            ),
        };
        assert!(
            path.is_file(),
            "{} not found at {}: {hint}",
            self.name(),
            path.display()
        );
        path
    }
}

/// The built `jhub-proxy`: `$JHUB_BIN_DIR/jhub-proxy` when that is set,
/// else beside the test executable's directory (`target/<profile>/deps/..`),
/// which is where `cargo test --workspace` has just built it.
pub fn jhub_proxy_path() -> PathBuf {
    if let Some(dir) = std::env::var_os("JHUB_BIN_DIR") {
        return PathBuf::from(dir).join("jhub-proxy");
    }
    let exe = std::env::current_exe().expect("the test executable has a path");
    exe.parent()
        .and_then(|deps| deps.parent())
        .expect("test executables live in target/<profile>/deps")
        .join("jhub-proxy")
}

/// Turns scenarios `fn name(imp: Impl)` into two tests each, `name::chp`
/// and `name::jhub`.
#[macro_export]
macro_rules! both_impls {
    ($($scenario:ident),* $(,)?) => {
        $(
            mod $scenario {
                #[test]
                fn chp() {
                    super::$scenario($crate::proxy::Impl::Chp)
                }
                #[test]
                fn jhub() {
                    super::$scenario($crate::proxy::Impl::Jhub)
                }
            }
        )*
    };
}

/// A loopback port that was free a moment ago (bound to port 0, then
/// released). [`ProxyProcess`] retries when a port is taken in between.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind a loopback port")
        .port()
}

/// A random token (hex), from the kernel's generator.
pub fn random_token() -> String {
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .expect("read /dev/urandom");
    backend::hex(&bytes)
}

/// The most output kept per proxy process (the tail is kept).
const OUTPUT_CAP: usize = 512 * 1024;

/// How to start a proxy beyond its flags.
#[derive(Debug, Clone)]
pub struct ProxyOptions {
    /// `CONFIGPROXY_AUTH_TOKEN`; `None` leaves it unset (an open API).
    pub token: Option<String>,
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
}

impl Default for ProxyOptions {
    fn default() -> Self {
        ProxyOptions {
            token: Some(random_token()),
            env: Vec::new(),
        }
    }
}

/// One running proxy, killed on drop.
pub struct ProxyProcess {
    imp: Impl,
    child: Child,
    proxy: SocketAddr,
    api: SocketAddr,
    token: Option<String>,
    output: Arc<Mutex<Vec<u8>>>,
    command_line: String,
}

impl ProxyProcess {
    /// Starts `imp` with CHP-syntax `args` (besides the listening flags,
    /// which the harness adds) and a random API token.
    pub fn start(imp: Impl, args: &[&str]) -> ProxyProcess {
        ProxyProcess::start_with(imp, args, ProxyOptions::default())
    }

    /// Starts `imp` with `args` and `options`: `--ip 127.0.0.1 --port P
    /// --api-ip 127.0.0.1 --api-port A` on free ports come first, then
    /// `args`. Returns once the API answers with the token and the proxy
    /// port accepts connections; retries with other ports when one was
    /// taken meanwhile; panics with the process's output otherwise.
    pub fn start_with(imp: Impl, args: &[&str], options: ProxyOptions) -> ProxyProcess {
        let binary = imp.binary();
        let mut last_failure = String::new();
        for _attempt in 0..4 {
            let proxy_port = free_port();
            let mut api_port = free_port();
            while api_port == proxy_port {
                api_port = free_port();
            }
            let mut command = Command::new(&binary);
            command
                .args(["--ip", "127.0.0.1", "--port", &proxy_port.to_string()])
                .args(["--api-ip", "127.0.0.1", "--api-port", &api_port.to_string()])
                .args(args)
                .env_remove("CONFIGPROXY_AUTH_TOKEN")
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            if let Some(token) = &options.token {
                command.env("CONFIGPROXY_AUTH_TOKEN", token);
            }
            for (k, v) in &options.env {
                command.env(k, v);
            }
            let command_line = format!("{command:?}");
            let mut child = command
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
            let output = Arc::new(Mutex::new(Vec::new()));
            for pipe in [
                child
                    .stdout
                    .take()
                    .map(|p| Box::new(p) as Box<dyn Read + Send>),
                child
                    .stderr
                    .take()
                    .map(|p| Box::new(p) as Box<dyn Read + Send>),
            ]
            .into_iter()
            .flatten()
            {
                let output = Arc::clone(&output);
                std::thread::spawn(move || collect_output(pipe, &output));
            }
            let mut process = ProxyProcess {
                imp,
                child,
                proxy: SocketAddr::from(([127, 0, 0, 1], proxy_port)),
                api: SocketAddr::from(([127, 0, 0, 1], api_port)),
                token: options.token.clone(),
                output,
                command_line,
            };
            match process.wait_ready() {
                Ok(()) => return process,
                Err(Retry(failure)) => {
                    last_failure = failure;
                    process.kill();
                }
            }
        }
        panic!("{} did not start: {last_failure}", imp.name());
    }

    /// Waits until the API answers `GET /api/routes` with 200 and the proxy
    /// port accepts a connection.
    fn wait_ready(&mut self) -> Result<(), Retry> {
        let deadline = Instant::now() + patience();
        loop {
            let output = self.output();
            let port_taken =
                output.contains("EADDRINUSE") || output.contains("ddress already in use");
            if let Ok(Some(status)) = self.child.try_wait() {
                if port_taken {
                    return Err(Retry(format!(
                        "{} exited with {status}: a port was taken:\n{output}",
                        self.imp.name()
                    )));
                }
                // Drop prints the output while this unwinds.
                panic!(
                    "{} exited with {status} before its API answered",
                    self.imp.name()
                );
            }
            if port_taken {
                // CHP logs the listen error and keeps running.
                return Err(Retry(format!("a port was taken:\n{output}")));
            }
            let api_ok = http::Conn::open_with_timeout(self.api, Duration::from_secs(2))
                .and_then(|mut c| c.send(&self.authorized(Request::get("/api/routes"))))
                .is_ok_and(|r| r.status == 200);
            if api_ok && TcpStream::connect_timeout(&self.proxy, Duration::from_secs(2)).is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                panic!(
                    "{} did not answer on its API within {:?}",
                    self.imp.name(),
                    patience()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The implementation.
    pub fn imp(&self) -> Impl {
        self.imp
    }

    /// The public (proxy) address.
    pub fn proxy_addr(&self) -> SocketAddr {
        self.proxy
    }

    /// The API address.
    pub fn api_addr(&self) -> SocketAddr {
        self.api
    }

    /// The API token, if one was set.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the process wrote so far (stdout and stderr, interleaved;
    /// the tail when it wrote a lot).
    pub fn output(&self) -> String {
        String::from_utf8_lossy(&lock(&self.output)).into_owned()
    }

    /// Kills the process (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        // It may have exited already; either way it is gone afterwards.
        let _killed = self.child.kill();
        let _reaped = self.child.wait();
    }

    /// Sends SIGTERM and waits (at most [`patience`]) for the process to
    /// exit; panics if it does not.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.pid()).expect("a pid fits i32"));
        // It may have exited already; try_wait below tells.
        let _sent = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + patience();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not exit within {:?} of SIGTERM",
                self.imp.name(),
                patience()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// True while the process runs.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    // --- The API ---------------------------------------------------------

    /// `request` with `Authorization: token <token>` added.
    pub fn authorized(&self, request: Request) -> Request {
        match &self.token {
            Some(token) => request.header("Authorization", &format!("token {token}")),
            None => request,
        }
    }

    /// Sends `request` to the API as is (no token added).
    pub fn api_raw(&self, request: &Request) -> Response {
        http::send(self.api, request)
    }

    /// Sends `method target` to the API with the token and an optional
    /// JSON body.
    pub fn api(&self, method: &str, target: &str, body: Option<&Value>) -> Response {
        let mut request = self.authorized(Request::new(method, target));
        if let Some(body) = body {
            request = request
                .header("Content-Type", "application/json")
                .body(body.to_string());
        }
        self.api_raw(&request)
    }

    /// `POST /api/routes{path}` with `data`; asserts 201.
    pub fn add_route(&self, path: &str, data: Value) {
        let response = self.api("POST", &format!("/api/routes{path}"), Some(&data));
        assert_eq!(
            response.status,
            201,
            "{}: POST /api/routes{path} {data}: {}",
            self.imp.name(),
            response.text()
        );
    }

    /// `POST /api/routes{path}` with `{"target": target}`.
    pub fn add_target(&self, path: &str, target: &str) {
        self.add_route(path, serde_json::json!({ "target": target }));
    }

    /// `GET /api/routes`, asserting 200 and a JSON object.
    pub fn routes(&self) -> serde_json::Map<String, Value> {
        let response = self.api("GET", "/api/routes", None);
        assert_eq!(response.status, 200, "GET /api/routes: {}", response.text());
        match response.json() {
            Value::Object(map) => map,
            other => panic!("GET /api/routes is not an object: {other}"),
        }
    }

    /// `GET /api/routes{path}`: `Some` on 200, `None` on 404.
    pub fn route(&self, path: &str) -> Option<Value> {
        let response = self.api("GET", &format!("/api/routes{path}"), None);
        match response.status {
            200 => Some(response.json()),
            404 => None,
            other => panic!("GET /api/routes{path}: {other} {}", response.text()),
        }
    }

    /// The `last_activity` of route `key` in the full table, in ms since
    /// the epoch; panics when the route or the field is missing or not in
    /// the reference format.
    pub fn last_activity(&self, key: &str) -> i64 {
        let routes = self.routes();
        let route = routes
            .get(key)
            .unwrap_or_else(|| panic!("no route {key} in {routes:?}"));
        let stamp = route["last_activity"]
            .as_str()
            .unwrap_or_else(|| panic!("route {key} has no last_activity string: {route}"));
        parse_iso_ms(stamp)
            .unwrap_or_else(|| panic!("last_activity {stamp:?} is not YYYY-MM-DDTHH:MM:SS.mmmZ"))
    }

    // --- The proxy -------------------------------------------------------

    /// Sends `request` to the proxy port on a new connection.
    pub fn send(&self, request: &Request) -> Response {
        http::send(self.proxy, request)
    }

    /// `GET target` through the proxy.
    pub fn get(&self, target: &str) -> Response {
        http::get(self.proxy, target)
    }

    /// `http://127.0.0.1:PORT` of the proxy port.
    pub fn url(&self) -> String {
        format!("http://{}", self.proxy)
    }

    // --- Resources -------------------------------------------------------

    /// Resident memory (`VmRSS` in `/proc/PID/status`), in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("read /proc/PID/status of a running proxy");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/PID/status")
    }

    /// Open file descriptors (entries of `/proc/PID/fd`).
    pub fn fd_count(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .expect("read /proc/PID/fd of a proxy this user started")
            .count()
    }
}

impl Drop for ProxyProcess {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!(
                "--- {} ({}) output:\n{}--- end of output",
                self.imp.name(),
                self.command_line,
                self.output()
            );
        }
    }
}

struct Retry(String);

fn collect_output(mut pipe: Box<dyn Read + Send>, output: &Mutex<Vec<u8>>) {
    let mut buf = [0u8; 8192];
    while let Ok(n) = pipe.read(&mut buf) {
        if n == 0 {
            break;
        }
        let mut out = lock(output);
        out.extend_from_slice(&buf[..n]);
        if out.len() > OUTPUT_CAP {
            let cut = out.len() - OUTPUT_CAP / 2;
            out.drain(..cut);
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

// --- Time ------------------------------------------------------------------

/// Milliseconds since the epoch, now.
pub fn now_ms() -> i64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970");
    i64::try_from(since.as_millis()).expect("a sane clock")
}

/// Waits until the wall clock is past `ms` (at most a few milliseconds for
/// a time just read from the proxy), so that a later timestamp must differ.
pub fn wait_clock_past(ms: i64) {
    let deadline = Instant::now() + patience();
    while now_ms() <= ms {
        assert!(Instant::now() < deadline, "the clock does not reach {ms}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Parses the timestamp format of JavaScript's `Date.toISOString`, which is
/// what CHP writes for `last_activity`: `YYYY-MM-DDTHH:MM:SS.mmmZ`, exactly.
pub fn parse_iso_ms(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 24 {
        return None;
    }
    let shape_ok = b.iter().enumerate().all(|(i, c)| match i {
        4 | 7 => *c == b'-',
        10 => *c == b'T',
        13 | 16 => *c == b':',
        19 => *c == b'.',
        23 => *c == b'Z',
        _ => c.is_ascii_digit(),
    });
    if !shape_ok {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> i64 { s[r].parse().unwrap_or(0) };
    let (year, month, day) = (num(0..4), num(5..7), num(8..10));
    let (hour, minute, second, milli) = (num(11..13), num(14..16), num(17..19), num(20..23));
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    let days = days_from_civil(year, month, day);
    Some(((days * 24 + hour) * 60 + minute) * 60_000 + second * 1000 + milli)
}

/// Formats `ms` since the epoch as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub fn format_iso_ms(ms: i64) -> String {
    let days = ms.div_euclid(86_400_000);
    let rest = ms.rem_euclid(86_400_000);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rest / 3_600_000,
        rest / 60_000 % 60,
        rest / 1000 % 60,
        rest % 1000
    )
}

// Howard Hinnant's civil calendar algorithms (public domain).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_round_trip() {
        let stamp = "2026-11-23T00:44:30.898Z";
        let ms = parse_iso_ms(stamp).unwrap();
        assert_eq!(ms, 1_795_394_670_898);
        assert_eq!(format_iso_ms(ms), stamp);
        assert_eq!(parse_iso_ms("1970-01-01T00:00:00.000Z"), Some(0));
        assert_eq!(
            parse_iso_ms("2024-02-29T12:00:00.000Z")
                .map(format_iso_ms)
                .as_deref(),
            Some("2024-02-29T12:00:00.000Z")
        );
        assert_eq!(parse_iso_ms("2026-11-23T00:44:30.898+00:00"), None);
        assert_eq!(parse_iso_ms("2026-11-23T00:44:30Z"), None);
    }
}
