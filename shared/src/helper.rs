//! The `sudospawner` helper protocol.
//!
//! The hub runs `sudo -nH -u NAME /usr/local/bin/sudospawner [--logging=LEVEL]`,
//! writes one JSON object ([`HelperRequest`]) on the helper's stdin, closes it,
//! and reads one JSON object ([`HelperResponse`]) from its stdout. This is the
//! protocol of the Python `sudospawner` mediator (PyPI `sudospawner` 1.0), so
//! JupyterHub's `sudospawner.SudoSpawner` can drive jhub's helper and jhub can
//! drive the Python mediator:
//!
//! | request | answer |
//! | --- | --- |
//! | `{"action": "spawn", "args": [...], "env": {...}}` | `{"ok": true, "pid": N}` |
//! | `{"action": "kill", "pid": N, "signal": S}` | `{"ok": true, "alive": B}` |
//! | anything the helper refuses | `{"ok": false, "error": "...", "code": "..."}` and a non-zero exit |
//!
//! The answer is written byte for byte as Python's `json.dump` writes it
//! (see [`to_python_json`]); the `code` key is jhub's addition, a stable
//! machine-readable [`ErrorCode`] beside the upstream `error` text.

use std::collections::BTreeMap;
use std::io;

use serde::{Deserialize, Serialize};

/// The largest request the helper reads, in bytes. A longer stdin is refused
/// with [`ErrorCode::InputTooLarge`] before anything is parsed.
pub const MAX_REQUEST_BYTES: usize = 1 << 20;

/// Environment names the helper always accepts from the caller, by prefix.
pub const ENV_ALLOWED_PREFIXES: &[&str] = &["JUPYTERHUB_", "JPY_", "LC_"];

/// Environment names the helper always accepts from the caller, exactly.
pub const ENV_ALLOWED_NAMES: &[&str] = &["LANG"];

/// Environment names that the real JupyterHub sends with every spawn and that
/// the helper accepts but never passes on: it sets them itself from the target
/// user's passwd entry and its own fixed search path.
pub const ENV_REPLACED_NAMES: &[&str] = &["PATH", "HOME", "USER", "SHELL", "LOGNAME"];

/// Signals the helper sends on request: 0 (the liveness poll), SIGHUP,
/// SIGINT, SIGKILL and SIGTERM, as JupyterHub's local spawners use them.
pub const ALLOWED_SIGNALS: &[i64] = &[0, 1, 2, 9, 15];

/// One request to the helper, as the JSON object on its stdin.
///
/// Unknown keys, missing keys and wrong types are errors: the helper acts on
/// nothing it did not fully understand.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "lowercase", deny_unknown_fields)]
pub enum HelperRequest {
    /// Start the user's notebook server. The program is never part of the
    /// request: the helper takes it from its root-owned configuration.
    Spawn {
        /// Command-line flags for the server (`--key=value`), not a program.
        args: Vec<String>,
        /// Environment for the server; names outside the allow-list refuse
        /// the whole request.
        env: BTreeMap<String, String>,
    },
    /// Send `signal` to `pid` and report whether it was alive.
    Kill {
        /// The server's process id, as answered by `spawn`. Must be above 1.
        pid: i64,
        /// A signal number from [`ALLOWED_SIGNALS`]; 0 only polls.
        signal: i64,
    },
}

/// Stable, machine-readable reasons for a refused or failed request.
///
/// Each maps to the helper's exit code through [`ErrorCode::exit_code`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The command line of the helper itself was not understood.
    Usage,
    /// Stdin did not hold one JSON document.
    InvalidJson,
    /// The JSON was well formed but is not a valid request (unknown action,
    /// unknown or missing keys, wrong types, bad values).
    InvalidRequest,
    /// Stdin was longer than [`MAX_REQUEST_BYTES`].
    InputTooLarge,
    /// The environment named variables outside the allow-list.
    EnvNotAllowed,
    /// The request is for a different user than the one the helper runs as.
    UserMismatch,
    /// The helper was run as root, which it never acts as.
    RefusedRoot,
    /// The helper was not run through sudo by the configured hub user.
    WrongCaller,
    /// The helper configuration could be changed by someone other than root.
    InsecureConfig,
    /// The helper configuration could not be read or is invalid.
    BadConfig,
    /// The server could not be started at all (missing program, no home, ...).
    SpawnFailed,
    /// The server started but exited within its first second.
    ServerExited,
    /// Anything else; the message says what.
    Internal,
    /// A code this version does not know (sent by a newer helper).
    #[serde(other)]
    Unknown,
}

impl ErrorCode {
    /// The process exit code the helper ends with for this error:
    /// 2 for a request it refuses, 3 for a caller or configuration it refuses,
    /// 4 for a server that failed to start, 1 for anything else.
    pub fn exit_code(self) -> i32 {
        match self {
            Self::Usage
            | Self::InvalidJson
            | Self::InvalidRequest
            | Self::InputTooLarge
            | Self::EnvNotAllowed
            | Self::UserMismatch => 2,
            Self::RefusedRoot | Self::WrongCaller | Self::InsecureConfig | Self::BadConfig => 3,
            Self::SpawnFailed | Self::ServerExited => 4,
            Self::Internal | Self::Unknown => 1,
        }
    }
}

/// The helper's answer, the one JSON object on its stdout.
///
/// Absent fields are not written, so the three shapes are exactly
/// `{"ok": true, "pid": N}`, `{"ok": true, "alive": B}` and
/// `{"ok": false, "error": "...", "code": "..."}`. Unknown fields are ignored
/// when reading, so the Python mediator's answers parse too.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HelperResponse {
    /// Whether the request was carried out.
    pub ok: bool,
    /// For `spawn`: the process id of the running server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<i64>,
    /// For `kill`: whether the process existed and could be signalled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alive: Option<bool>,
    /// For failures: what went wrong, for a person to read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// For failures: the stable reason (absent in the Python mediator's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<ErrorCode>,
}

impl HelperResponse {
    /// The answer to a successful `spawn`.
    pub fn spawned(pid: i64) -> Self {
        Self {
            ok: true,
            pid: Some(pid),
            alive: None,
            error: None,
            code: None,
        }
    }

    /// The answer to a `kill`.
    pub fn signalled(alive: bool) -> Self {
        Self {
            ok: true,
            pid: None,
            alive: Some(alive),
            error: None,
            code: None,
        }
    }

    /// The answer to a refused or failed request.
    pub fn failure(code: ErrorCode, error: impl Into<String>) -> Self {
        Self {
            ok: false,
            pid: None,
            alive: None,
            error: Some(error.into()),
            code: Some(code),
        }
    }
}

/// Serializes `value` exactly as Python's `json.dumps` does with its
/// defaults: `", "` and `": "` as separators, and every character outside
/// printable ASCII escaped as `\uXXXX` (UTF-16, as `ensure_ascii=True`).
///
/// The Python mediator's answers look like this, and the helper's must be
/// indistinguishable from them.
pub fn to_python_json<T: Serialize + ?Sized>(value: &T) -> serde_json::Result<String> {
    let mut out = Vec::with_capacity(128);
    let mut ser = serde_json::Serializer::with_formatter(&mut out, PythonFormatter);
    value.serialize(&mut ser)?;
    // The formatter writes ASCII only.
    String::from_utf8(out).map_err(|e| serde_json::Error::io(io::Error::other(e)))
}

/// A `serde_json` formatter that reproduces `json.dumps` defaults.
struct PythonFormatter;

impl serde_json::ser::Formatter for PythonFormatter {
    fn begin_array_value<W: io::Write + ?Sized>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if first { Ok(()) } else { w.write_all(b", ") }
    }

    fn begin_object_key<W: io::Write + ?Sized>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if first { Ok(()) } else { w.write_all(b", ") }
    }

    fn begin_object_value<W: io::Write + ?Sized>(&mut self, w: &mut W) -> io::Result<()> {
        w.write_all(b": ")
    }

    fn write_string_fragment<W: io::Write + ?Sized>(
        &mut self,
        w: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        // serde_json escapes quotes, backslashes and C0 controls itself and
        // hands us the runs between them; Python also escapes DEL and every
        // non-ASCII character.
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            if c.is_ascii() && c != '\x7f' {
                continue;
            }
            w.write_all(&fragment.as_bytes()[start..i])?;
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                write!(w, "\\u{unit:04x}")?;
            }
            start = i + c.len_utf8();
        }
        w.write_all(&fragment.as_bytes()[start..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_written_as_python_writes_them() {
        assert_eq!(
            to_python_json(&HelperResponse::spawned(4242)).unwrap(),
            r#"{"ok": true, "pid": 4242}"#
        );
        assert_eq!(
            to_python_json(&HelperResponse::signalled(false)).unwrap(),
            r#"{"ok": true, "alive": false}"#
        );
        assert_eq!(
            to_python_json(&HelperResponse::failure(
                ErrorCode::EnvNotAllowed,
                "env not allowed: LD_PRELOAD"
            ))
            .unwrap(),
            r#"{"ok": false, "error": "env not allowed: LD_PRELOAD", "code": "env_not_allowed"}"#
        );
    }

    #[test]
    fn non_ascii_is_escaped_like_ensure_ascii() {
        // json.dumps("é\x7f😀\n\"") == '"\\u00e9\\u007f\\ud83d\\ude00\\n\\""'
        assert_eq!(
            to_python_json("é\x7f😀\n\"").unwrap(),
            r#""\u00e9\u007f\ud83d\ude00\n\"""#
        );
        assert_eq!(to_python_json(&["a", "b"]).unwrap(), r#"["a", "b"]"#);
    }

    #[test]
    fn requests_parse_in_any_key_order() {
        let r: HelperRequest =
            serde_json::from_str(r#"{"pid": 12, "signal": 0, "action": "kill"}"#).unwrap();
        assert_eq!(r, HelperRequest::Kill { pid: 12, signal: 0 });
    }

    #[test]
    fn unknown_keys_and_actions_are_refused() {
        for bad in [
            r#"{"action": "kill", "pid": 12, "signal": 0, "extra": 1}"#,
            r#"{"action": "spawn", "args": [], "env": {}, "cmd": ["/bin/sh"]}"#,
            r#"{"action": "exec", "args": []}"#,
            r#"{"pid": 12, "signal": 0}"#,
            r#"{"action": "kill", "pid": "12", "signal": 0}"#,
            r#"{"action": "kill", "pid": 12.5, "signal": 0}"#,
            r#"{"action": "spawn", "args": "--x", "env": {}}"#,
            r#"{"action": "spawn", "args": [], "env": {"A": 1}}"#,
            r#"{"action": "spawn", "args": []}"#,
            r#"{"action": "kill", "pid": 1, "pid": 2, "signal": 0}"#,
        ] {
            assert!(
                serde_json::from_str::<HelperRequest>(bad).is_err(),
                "accepted {bad}"
            );
        }
    }

    #[test]
    fn python_mediator_answers_parse() {
        let r: HelperResponse =
            serde_json::from_str(r#"{"ok": false, "error": "Exited with status: 1"}"#).unwrap();
        assert!(!r.ok);
        assert_eq!(r.code, None);
        let r: HelperResponse =
            serde_json::from_str(r#"{"ok": false, "error": "x", "code": "from_the_future"}"#)
                .unwrap();
        assert_eq!(r.code, Some(ErrorCode::Unknown));
    }
}
