//! Running the `sudospawner` helper as a user: `sudo -nH -u NAME HELPER
//! --logging=LEVEL`, one JSON request on its stdin, one JSON answer on its
//! stdout, its stderr copied into the hub's log. The same protocol as the
//! Python sudospawner mediator, so either helper works.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use shared::helper::{HelperRequest, HelperResponse};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;

/// The largest answer read from the helper.
const MAX_ANSWER: u64 = 64 * 1024;

/// Why a helper call failed.
#[derive(Debug, thiserror::Error)]
pub enum HelperError {
    /// sudo or the helper could not be started.
    #[error("cannot run {program}: {reason}")]
    Exec {
        /// What was run.
        program: String,
        /// Why it failed.
        reason: String,
    },
    /// It did not answer in time (it was killed).
    #[error("the spawner helper did not answer within {0:?}")]
    Timeout(Duration),
    /// It answered something that is not the protocol's JSON (sudo's own
    /// refusals land here, with what sudo said).
    #[error("the spawner helper failed (exit status {status}): {detail}")]
    BadAnswer {
        /// Its exit status.
        status: String,
        /// What it wrote (or, when stdout was empty, the end of stderr).
        detail: String,
    },
    /// It answered `ok: false`.
    #[error("{0}")]
    Refused(String),
}

/// How to run the helper.
#[derive(Debug, Clone)]
pub struct Helper {
    /// `sudo`.
    pub sudo: PathBuf,
    /// The helper's path (`spawner.sudospawner_path`).
    pub path: PathBuf,
    /// The `--logging` level passed to it.
    pub logging: String,
}

impl Helper {
    /// A helper at `path`, run through `sudo` from PATH.
    pub fn new(path: PathBuf) -> Self {
        Self {
            sudo: "sudo".into(),
            path,
            logging: "info".into(),
        }
    }

    /// Runs one request as `user`, waiting at most `timeout`.
    pub async fn call(
        &self,
        user: &str,
        request: &HelperRequest,
        timeout: Duration,
    ) -> Result<HelperResponse, HelperError> {
        let body = serde_json::to_vec(request).map_err(|e| HelperError::Exec {
            program: self.path.display().to_string(),
            reason: e.to_string(),
        })?;
        let mut child = Command::new(&self.sudo)
            .arg("-nH")
            .arg("-u")
            .arg(user)
            .arg(&self.path)
            .arg(format!("--logging={}", self.logging))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| HelperError::Exec {
                program: format!(
                    "{} -nH -u {user} {}",
                    self.sudo.display(),
                    self.path.display()
                ),
                reason: e.to_string(),
            })?;
        let (Some(mut stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(HelperError::Exec {
                program: self.path.display().to_string(),
                reason: "no pipes".into(),
            });
        };
        let user_log = user.to_owned();
        let log = tokio::spawn(async move {
            // The helper's log lines go to the hub's log; the last few are
            // kept for the error message.
            let mut lines = BufReader::new(stderr.take(MAX_ANSWER)).lines();
            let mut tail: Vec<String> = Vec::new();
            while let Ok(Some(line)) = lines.next_line().await {
                tracing::info!(target: "jhub::helper", user = %user_log, "{line}");
                tail.push(line);
                if tail.len() > 5 {
                    tail.remove(0);
                }
            }
            tail.join(" | ")
        });
        let work = async {
            // A helper that refuses early closes stdin; its answer says why.
            let _ = stdin.write_all(&body).await;
            let _ = stdin.shutdown().await;
            drop(stdin);
            let mut out = Vec::new();
            stdout.take(MAX_ANSWER).read_to_end(&mut out).await.ok();
            let status = child.wait().await;
            (out, status)
        };
        let (out, status) = match tokio::time::timeout(timeout, work).await {
            Ok(r) => r,
            Err(_) => {
                log.abort();
                return Err(HelperError::Timeout(timeout));
            }
        };
        let tail = log.await.unwrap_or_default();
        let status = status
            .map(|s| s.to_string())
            .unwrap_or_else(|e| e.to_string());
        let text = String::from_utf8_lossy(&out);
        let answer = text.trim();
        match serde_json::from_str::<HelperResponse>(answer) {
            Ok(r) if r.ok => Ok(r),
            Ok(r) => Err(HelperError::Refused(
                r.error
                    .unwrap_or_else(|| "the spawner helper refused".into()),
            )),
            Err(_) => Err(HelperError::BadAnswer {
                status,
                detail: if answer.is_empty() {
                    tail
                } else {
                    answer.chars().take(500).collect()
                },
            }),
        }
    }
}
