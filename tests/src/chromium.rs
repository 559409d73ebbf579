//! A real browser on a hub's pages: `tests/browser/lab-flow.mjs`, run with
//! node, drives Debian's headless Chromium through playwright-core (both
//! installed by `tests/setup-reference.sh`) as a new user would: log in
//! with a password, start the server from the home page, land in
//! JupyterLab, make a Python 3 notebook, run `print(6*7)`, and see `42`.
//! It needs only the hub's public URL, so the same flow checks JupyterHub
//! and jhub.
//!
//! [`run_lab_flow`] runs it with a time limit and returns what the flow
//! saw (the JSON line it prints) or an error with everything it printed.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;

/// Where `tests/setup-reference.sh` installs playwright-core.
pub const PLAYWRIGHT_DIR: &str = "/opt/jhub-test/playwright";
/// The browser the flow drives.
pub const CHROMIUM: &str = "/usr/bin/chromium";

/// The flow's script in this tree.
pub fn lab_flow_script() -> PathBuf {
    crate::privileged::repo_root().join("tests/browser/lab-flow.mjs")
}

/// One run of the flow.
#[derive(Debug, Clone)]
pub struct LabFlow {
    /// The hub's public URL, `http://127.0.0.1:PORT` (plus its base URL).
    pub base: String,
    /// The user who logs in.
    pub user: String,
    /// Their password (handed to the script in its environment, not on
    /// its command line).
    pub password: String,
    /// Where the screenshot of the lab goes (`.failed.png` in place of
    /// `.png` when the flow fails).
    pub screenshot: PathBuf,
    /// The time the whole flow may take.
    pub timeout: Duration,
}

/// What the flow saw, from its JSON line.
#[derive(Debug, Clone)]
pub struct LabFlowResult {
    /// The page's URL at the end (in the user's JupyterLab).
    pub url: String,
    /// The text of the cell's output.
    pub output: String,
    /// The screenshot it saved.
    pub screenshot: PathBuf,
    /// The notebook it made, as its tab names it (`Untitled.ipynb`).
    pub notebook: String,
    /// Milliseconds per step, in the order they ran.
    pub timings_ms: Vec<(String, u64)>,
    /// The whole JSON line.
    pub json: Value,
}

/// Whether the flow can run here: node, Chromium and playwright-core are
/// installed. The error says what is missing and how to install it.
pub fn lab_flow_available() -> Result<(), String> {
    let missing: Vec<String> = [
        Path::new(CHROMIUM).to_path_buf(),
        Path::new(PLAYWRIGHT_DIR).join("node_modules/playwright-core/package.json"),
        lab_flow_script(),
    ]
    .into_iter()
    .filter(|p| !p.exists())
    .map(|p| p.display().to_string())
    .collect();
    let node = Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if missing.is_empty() && node {
        return Ok(());
    }
    let mut what = missing;
    if !node {
        what.push("node".to_owned());
    }
    Err(format!(
        "missing {}: run tests/setup-reference.sh as root (tests/run does)",
        what.join(", ")
    ))
}

/// Runs the flow. Waits at most `flow.timeout` plus a minute for the
/// script (which bounds itself by `flow.timeout`), then stops it (SIGTERM,
/// so that it closes its browser; SIGKILL 10 s later). Prints the
/// screenshot's path on stderr. The error carries the script's exit
/// status, stdout and stderr.
pub fn run_lab_flow(flow: &LabFlow) -> Result<LabFlowResult, String> {
    lab_flow_available()?;
    let timeout_ms = flow.timeout.as_millis().to_string();
    let mut child = Command::new("node")
        .arg(lab_flow_script())
        .args(["--base", &flow.base, "--user", &flow.user, "--screenshot"])
        .arg(&flow.screenshot)
        .args(["--timeout-ms", &timeout_ms])
        .env("LAB_FLOW_PASSWORD", &flow.password)
        .env("LAB_FLOW_PLAYWRIGHT_DIR", PLAYWRIGHT_DIR)
        .env("LAB_FLOW_CHROMIUM", CHROMIUM)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run node {}: {e}", lab_flow_script().display()))?;
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _partial = pipe.read_to_string(&mut text);
            text
        })
    };
    let stdout = drain(Box::new(child.stdout.take().expect("piped")));
    let stderr = drain(Box::new(child.stderr.take().expect("piped")));

    let limit = flow.timeout + Duration::from_secs(60);
    let start = Instant::now();
    let mut stopped = None;
    let status = loop {
        if let Some(status) = child
            .try_wait()
            .map_err(|e| format!("waiting for node: {e}"))?
        {
            break status;
        }
        let pid = Pid::from_raw(child.id() as i32);
        match stopped {
            None if start.elapsed() > limit => {
                // Best effort: it may be exiting by itself.
                let _sent = kill(pid, Signal::SIGTERM);
                stopped = Some(Instant::now());
            }
            Some(at) if at.elapsed() > Duration::from_secs(10) => {
                let _sent = kill(pid, Signal::SIGKILL);
            }
            _ => {}
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();
    let report = || {
        format!(
            "lab flow ({}) {status}{}\n--- stdout\n{stdout}--- stderr\n{stderr}",
            lab_flow_script().display(),
            if stopped.is_some() {
                format!(", stopped after {limit:?}")
            } else {
                String::new()
            }
        )
    };
    let json: Option<Value> = stdout
        .lines()
        .rev()
        .find_map(|line| serde_json::from_str(line).ok());
    let shown = json
        .as_ref()
        .and_then(|j| j["screenshot"].as_str())
        .map(str::to_owned);
    if let Some(shot) = &shown {
        // Straight to the stderr handle, so that it shows without
        // --nocapture too.
        let _best_effort = writeln!(std::io::stderr().lock(), "lab flow screenshot: {shot}");
    }
    let Some(json) = json.filter(|j| status.success() && j["ok"] == Value::Bool(true)) else {
        return Err(report());
    };
    let text = |key: &str| json[key].as_str().unwrap_or_default().to_owned();
    let timings_ms = json["steps"]
        .as_array()
        .map(|steps| {
            steps
                .iter()
                .map(|s| {
                    let name = s[0].as_str().unwrap_or_default().to_owned();
                    (name, s[1].as_u64().unwrap_or_default())
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(LabFlowResult {
        url: text("url"),
        output: text("output"),
        screenshot: PathBuf::from(text("screenshot")),
        notebook: text("notebook"),
        timings_ms,
        json,
    })
}
