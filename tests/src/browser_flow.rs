//! Runs a browser flow script of `tests/browser/` (on
//! `flow-common.mjs`: one JSON object per stdout line, the last one the
//! result) with node, handing each earlier line (an event such as
//! `{"event":"running"}`) to the caller while the script runs, so the test
//! can check the system at that point before the script goes on.

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;

use crate::chromium::{CHROMIUM, PLAYWRIGHT_DIR, lab_flow_available};

/// A script of `tests/browser/`.
pub fn script(name: &str) -> PathBuf {
    crate::privileged::repo_root()
        .join("tests/browser")
        .join(name)
}

/// Runs `node SCRIPT ARGS` with `env`, calling `on_event` for every JSON
/// line but the result; returns the result line when it says `"ok":
/// true`, else everything the script printed. Bounded by `timeout` plus a
/// minute (then SIGTERM, and SIGKILL 10 s later). A panic in `on_event`
/// stops the script before it goes on.
pub fn run_flow(
    name: &str,
    args: &[String],
    env: &[(&str, &str)],
    timeout: Duration,
    mut on_event: impl FnMut(&Value),
) -> Result<Value, String> {
    lab_flow_available()?;
    let path = script(name);
    let mut child = Command::new("node")
        .arg(&path)
        .args(args)
        .args(["--timeout-ms", &timeout.as_millis().to_string()])
        .envs(env.iter().copied())
        .env("FLOW_PLAYWRIGHT_DIR", PLAYWRIGHT_DIR)
        .env("FLOW_CHROMIUM", CHROMIUM)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run node {}: {e}", path.display()))?;
    let (tx, rx) = mpsc::channel::<String>();
    let stdout = child.stdout.take().expect("piped");
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut stderr_pipe = child.stderr.take().expect("piped");
    let stderr = std::thread::spawn(move || {
        let mut text = String::new();
        let _partial = stderr_pipe.read_to_string(&mut text);
        text
    });
    let limit = timeout + Duration::from_secs(60);
    let start = Instant::now();
    let mut lines = Vec::new();
    let mut stopped = None;
    let pid = Pid::from_raw(child.id() as i32);
    let status = loop {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(line) => {
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    if v.get("event").is_some() {
                        let checked =
                            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| on_event(&v)));
                        if let Err(panic) = checked {
                            // the script waits for a go-ahead that will
                            // not come: stop it (and its browser) first
                            let _sent = kill(pid, Signal::SIGTERM);
                            let _status = child.wait();
                            std::panic::resume_unwind(panic);
                        }
                    }
                }
                lines.push(line);
                continue;
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {}
        }
        if let Some(status) = child.try_wait().map_err(|e| format!("waiting: {e}"))? {
            break status;
        }
        match stopped {
            None if start.elapsed() > limit => {
                let _sent = kill(pid, Signal::SIGTERM);
                stopped = Some(Instant::now());
            }
            Some(at) if at.elapsed() > Duration::from_secs(10) => {
                let _sent = kill(pid, Signal::SIGKILL);
            }
            _ => {}
        }
    };
    let _done = reader.join();
    lines.extend(rx.try_iter());
    let stderr = stderr.join().unwrap_or_default();
    let result = lines
        .iter()
        .rev()
        .find_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v.get("event").is_none());
    match result {
        Some(v) if status.success() && v["ok"] == Value::Bool(true) => Ok(v),
        _ => Err(format!(
            "{} {status}\n--- stdout\n{}\n--- stderr\n{stderr}",
            path.display(),
            lines.join("\n")
        )),
    }
}
