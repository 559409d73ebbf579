//! Reading and checking the one request, into a typed plan.
//!
//! Everything is checked here, before any side effect: the size of stdin, the
//! JSON, every field's type, each argument, each environment name and value,
//! the pid and the signal. A request that fails any check starts nothing.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use shared::helper::{
    ALLOWED_SIGNALS, ENV_ALLOWED_NAMES, ENV_ALLOWED_PREFIXES, ENV_REPLACED_NAMES, ErrorCode,
    HelperRequest, MAX_REQUEST_BYTES,
};

use crate::HelperError;
use crate::config::{HelperConfig, Limits, default_program};

/// The most arguments a spawn may pass.
const MAX_ARGS: usize = 256;

/// The search path every server gets. The server program's own directory
/// comes first, so the tools of its environment (`jupyter`, `pip`) are found
/// in the user's terminals.
const SYSTEM_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// The account the helper runs as: sudo's target user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// The login name.
    pub name: String,
    /// The home directory from the passwd entry.
    pub home: PathBuf,
    /// The login shell from the passwd entry.
    pub shell: PathBuf,
}

/// What the helper will do, fully checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Start the server.
    Spawn(SpawnPlan),
    /// Signal a process; `signal` 0 only polls.
    Kill {
        /// A pid above 1.
        pid: i32,
        /// One of [`ALLOWED_SIGNALS`].
        signal: i32,
    },
}

/// A checked spawn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpawnPlan {
    /// The server program, an absolute path from the configuration.
    pub program: PathBuf,
    /// Its arguments: the configured ones, then the caller's flags.
    pub args: Vec<String>,
    /// The server's complete environment.
    pub env: BTreeMap<String, String>,
    /// The working directory: the user's home.
    pub home: PathBuf,
    /// The file the server's output is appended to.
    pub log_path: PathBuf,
    /// Limits for the server.
    pub limits: Limits,
}

/// Reads one request from `input`, refusing more than [`MAX_REQUEST_BYTES`].
pub fn read(input: impl Read) -> Result<HelperRequest, HelperError> {
    let mut bytes = Vec::new();
    input
        .take(MAX_REQUEST_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| {
            HelperError::new(
                ErrorCode::InvalidJson,
                format!("cannot read the request: {e}"),
            )
        })?;
    if bytes.len() > MAX_REQUEST_BYTES {
        return Err(HelperError::new(
            ErrorCode::InputTooLarge,
            format!("request larger than {MAX_REQUEST_BYTES} bytes"),
        ));
    }
    parse(&bytes)
}

/// Parses one JSON document (whitespace around it only) into a request.
pub fn parse(bytes: &[u8]) -> Result<HelperRequest, HelperError> {
    // Tell a document that is not JSON at all from one that is JSON of the
    // wrong shape: the first is the caller's transport, the second its logic.
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| {
        HelperError::new(
            ErrorCode::InvalidJson,
            format!("expected one JSON object on stdin: {e}"),
        )
    })?;
    if !value.is_object() {
        return Err(HelperError::new(
            ErrorCode::InvalidRequest,
            "the request must be a JSON object",
        ));
    }
    serde_json::from_slice(bytes)
        .map_err(|e| HelperError::new(ErrorCode::InvalidRequest, format!("invalid request: {e}")))
}

/// Checks `request` against the configuration and the account, and decides
/// exactly what to run. `helper_dir` is where the helper binary lives (for
/// the default program).
pub fn plan(
    request: HelperRequest,
    config: &HelperConfig,
    account: &Account,
    helper_dir: &Path,
) -> Result<Plan, HelperError> {
    match request {
        HelperRequest::Kill { pid, signal } => {
            let pid = i32::try_from(pid)
                .ok()
                .filter(|p| *p > 1)
                .ok_or_else(|| invalid(format!("pid must be a process id above 1, got {pid}")))?;
            if !ALLOWED_SIGNALS.contains(&signal) {
                return Err(invalid(format!(
                    "signal must be one of {ALLOWED_SIGNALS:?}, got {signal}"
                )));
            }
            Ok(Plan::Kill {
                pid,
                signal: signal as i32,
            })
        }
        HelperRequest::Spawn { args, env } => plan_spawn(args, env, config, account, helper_dir),
    }
}

fn plan_spawn(
    args: Vec<String>,
    env: BTreeMap<String, String>,
    config: &HelperConfig,
    account: &Account,
    helper_dir: &Path,
) -> Result<Plan, HelperError> {
    if args.len() > MAX_ARGS {
        return Err(invalid(format!(
            "at most {MAX_ARGS} arguments, got {}",
            args.len()
        )));
    }
    for arg in &args {
        if !arg.starts_with("--") || arg.len() < 3 || arg.contains('\0') {
            return Err(invalid(format!(
                "arguments must be flags (--name or --name=value), got {arg:?}"
            )));
        }
    }

    let mut refused: Vec<&str> = Vec::new();
    let mut server_env = BTreeMap::new();
    for (name, value) in &env {
        if !is_env_name(name) {
            return Err(invalid(format!(
                "{name:?} is not an environment variable name"
            )));
        }
        if value.contains('\0') {
            return Err(invalid(format!("the value of {name} contains a NUL byte")));
        }
        if ENV_REPLACED_NAMES.contains(&name.as_str()) {
            continue;
        }
        let allowed = ENV_ALLOWED_PREFIXES.iter().any(|p| name.starts_with(p))
            || ENV_ALLOWED_NAMES.contains(&name.as_str())
            || config.allows_env(name);
        if allowed {
            server_env.insert(name.clone(), value.clone());
        } else {
            refused.push(name);
        }
    }
    if !refused.is_empty() {
        return Err(HelperError::new(
            ErrorCode::EnvNotAllowed,
            format!("environment variables not allowed: {}", refused.join(", ")),
        ));
    }
    if let Some(user) = env.get("JUPYTERHUB_USER") {
        if *user != account.name {
            return Err(HelperError::new(
                ErrorCode::UserMismatch,
                format!(
                    "JUPYTERHUB_USER is {user:?} but this helper runs as {:?}",
                    account.name
                ),
            ));
        }
    }

    let (program, mut full_args) = match config.command.split_first() {
        Some((program, fixed)) => (PathBuf::from(program), fixed.to_vec()),
        None => (default_program(helper_dir), Vec::new()),
    };
    full_args.extend(args);

    let program_dir = program.parent().unwrap_or(Path::new("/"));
    server_env.insert(
        "PATH".into(),
        format!("{}:{SYSTEM_PATH}", program_dir.display()),
    );
    server_env.insert("HOME".into(), account.home.display().to_string());
    server_env.insert("USER".into(), account.name.clone());
    server_env.insert("LOGNAME".into(), account.name.clone());
    server_env.insert("SHELL".into(), account.shell.display().to_string());

    let server_name = env
        .get("JUPYTERHUB_SERVER_NAME")
        .map(String::as_str)
        .unwrap_or("");
    let log_path = account
        .home
        .join(".jhub/logs")
        .join(log_file_name(server_name));

    Ok(Plan::Spawn(SpawnPlan {
        program,
        args: full_args,
        env: server_env,
        home: account.home.clone(),
        log_path,
        limits: config.limits,
    }))
}

/// `server.log` for the default server, `server-NAME.log` for a named one,
/// with anything but `[A-Za-z0-9._-]` in the name replaced by `_`.
fn log_file_name(server_name: &str) -> String {
    if server_name.is_empty() {
        return "server.log".into();
    }
    let safe: String = server_name
        .chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("server-{safe}.log")
}

fn is_env_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && name.len() <= 256
}

fn invalid(message: String) -> HelperError {
    HelperError::new(ErrorCode::InvalidRequest, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice() -> Account {
        Account {
            name: "alice".into(),
            home: "/home/alice".into(),
            shell: "/bin/bash".into(),
        }
    }

    fn spawn(args: &[&str], env: &[(&str, &str)]) -> Result<Plan, HelperError> {
        let request = HelperRequest::Spawn {
            args: args.iter().map(|s| s.to_string()).collect(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        plan(
            request,
            &HelperConfig::default(),
            &alice(),
            Path::new("/usr/local/bin"),
        )
    }

    #[test]
    fn a_jupyterhub_spawn_is_planned() {
        let Plan::Spawn(p) = spawn(
            &["--debug", "--SingleUserNotebookApp.default_url=/lab"],
            &[
                ("JUPYTERHUB_API_TOKEN", "secret"),
                ("JPY_API_TOKEN", "secret"),
                ("LANG", "C.UTF-8"),
                ("LC_ALL", "C.UTF-8"),
                ("PATH", "/hub/evil/bin"),
                ("HOME", "/tmp"),
                ("USER", "root"),
                ("SHELL", "/tmp/sh"),
                ("JUPYTERHUB_USER", "alice"),
                ("JUPYTERHUB_SERVER_NAME", "gpu box"),
            ],
        )
        .unwrap() else {
            panic!("not a spawn")
        };
        assert_eq!(p.program, Path::new("/usr/local/bin/jupyterhub-singleuser"));
        assert_eq!(
            p.args,
            ["--debug", "--SingleUserNotebookApp.default_url=/lab"]
        );
        assert_eq!(p.env["PATH"], "/usr/local/bin:/usr/local/bin:/usr/bin:/bin");
        assert_eq!(p.env["HOME"], "/home/alice");
        assert_eq!(p.env["USER"], "alice");
        assert_eq!(p.env["LOGNAME"], "alice");
        assert_eq!(p.env["SHELL"], "/bin/bash");
        assert_eq!(p.env["JUPYTERHUB_API_TOKEN"], "secret");
        assert_eq!(p.env["LC_ALL"], "C.UTF-8");
        assert_eq!(p.home, Path::new("/home/alice"));
        assert_eq!(
            p.log_path,
            Path::new("/home/alice/.jhub/logs/server-gpu_box.log")
        );
    }

    #[test]
    fn disallowed_env_is_refused_and_named() {
        let e = spawn(
            &[],
            &[
                ("LD_PRELOAD", "/tmp/x.so"),
                ("PYTHONPATH", "/tmp"),
                ("LANG", "C"),
            ],
        )
        .unwrap_err();
        assert_eq!(e.code, ErrorCode::EnvNotAllowed);
        assert_eq!(
            e.message,
            "environment variables not allowed: LD_PRELOAD, PYTHONPATH"
        );
        for name in [
            "BASH_ENV",
            "JUPYTER_CONFIG_DIR",
            "CONFIGPROXY_AUTH_TOKEN",
            "jupyterhub_x",
        ] {
            assert_eq!(
                spawn(&[], &[(name, "x")]).unwrap_err().code,
                ErrorCode::EnvNotAllowed,
                "{name}"
            );
        }
    }

    #[test]
    fn configured_env_names_pass() {
        let config = HelperConfig {
            env_allow: vec!["CONDA_*".into()],
            ..HelperConfig::default()
        };
        let request = HelperRequest::Spawn {
            args: vec![],
            env: [("CONDA_PREFIX".to_string(), "/opt".to_string())].into(),
        };
        let Plan::Spawn(p) = plan(request, &config, &alice(), Path::new("/x")).unwrap() else {
            panic!()
        };
        assert_eq!(p.env["CONDA_PREFIX"], "/opt");
    }

    #[test]
    fn arguments_must_be_flags() {
        for bad in ["/bin/sh", "-c", "--", "notebook.ipynb", "--x=\0"] {
            let e = spawn(&[bad], &[]).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidRequest, "{bad:?}");
        }
        let many: Vec<&str> = std::iter::repeat_n("--x", MAX_ARGS + 1).collect();
        assert_eq!(
            spawn(&many, &[]).unwrap_err().code,
            ErrorCode::InvalidRequest
        );
    }

    #[test]
    fn bad_env_names_and_values_are_refused() {
        for (k, v) in [
            ("A=B", "x"),
            ("1A", "x"),
            ("", "x"),
            ("A B", "x"),
            ("JUPYTERHUB_X", "a\0b"),
        ] {
            assert_eq!(
                spawn(&[], &[(k, v)]).unwrap_err().code,
                ErrorCode::InvalidRequest,
                "{k:?}"
            );
        }
    }

    #[test]
    fn another_users_spawn_is_refused() {
        let e = spawn(&[], &[("JUPYTERHUB_USER", "bob")]).unwrap_err();
        assert_eq!(e.code, ErrorCode::UserMismatch);
    }

    #[test]
    fn configured_command_comes_first() {
        let config = HelperConfig {
            command: vec![
                "/opt/venv/bin/jupyterhub-singleuser".into(),
                "--allow-root-never".into(),
            ],
            ..HelperConfig::default()
        };
        let request = HelperRequest::Spawn {
            args: vec!["--port=9".into()],
            env: BTreeMap::new(),
        };
        let Plan::Spawn(p) = plan(request, &config, &alice(), Path::new("/x")).unwrap() else {
            panic!()
        };
        assert_eq!(p.program, Path::new("/opt/venv/bin/jupyterhub-singleuser"));
        assert_eq!(p.args, ["--allow-root-never", "--port=9"]);
        assert!(p.env["PATH"].starts_with("/opt/venv/bin:"));
    }

    #[test]
    fn kill_checks_pid_and_signal() {
        let kill = |pid, signal| {
            plan(
                HelperRequest::Kill { pid, signal },
                &HelperConfig::default(),
                &alice(),
                Path::new("/x"),
            )
        };
        assert_eq!(
            kill(1234, 15).unwrap(),
            Plan::Kill {
                pid: 1234,
                signal: 15
            }
        );
        assert_eq!(
            kill(1234, 0).unwrap(),
            Plan::Kill {
                pid: 1234,
                signal: 0
            }
        );
        for (pid, signal) in [
            (1, 0),
            (0, 9),
            (-1, 9),
            (-1234, 15),
            (1 << 40, 0),
            (1234, 19),
            (1234, -1),
            (1234, 64),
        ] {
            assert_eq!(
                kill(pid, signal).unwrap_err().code,
                ErrorCode::InvalidRequest,
                "{pid} {signal}"
            );
        }
    }

    #[test]
    fn input_is_bounded_and_must_be_one_object() {
        let big = vec![b' '; MAX_REQUEST_BYTES + 1];
        assert_eq!(read(&big[..]).unwrap_err().code, ErrorCode::InputTooLarge);
        assert_eq!(
            read(&b"{\"action\": \"kill\""[..]).unwrap_err().code,
            ErrorCode::InvalidJson
        );
        assert_eq!(read(&b""[..]).unwrap_err().code, ErrorCode::InvalidJson);
        assert_eq!(
            read(&b"{} {}"[..]).unwrap_err().code,
            ErrorCode::InvalidJson
        );
        assert_eq!(
            read(&b"[1]"[..]).unwrap_err().code,
            ErrorCode::InvalidRequest
        );
        assert_eq!(
            read(&b"{\"action\": \"exec\"}"[..]).unwrap_err().code,
            ErrorCode::InvalidRequest
        );
        let ok = br#" {"action": "kill", "pid": 77, "signal": 0}
"#;
        assert_eq!(
            read(&ok[..]).unwrap(),
            HelperRequest::Kill { pid: 77, signal: 0 }
        );
    }
}
