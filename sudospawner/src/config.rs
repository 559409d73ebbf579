//! The helper's own configuration: `/etc/jhub/sudospawner.toml`.
//!
//! Only root decides what the helper runs, so the file, and every directory
//! above it, must be owned by root and not writable by group or others; the
//! helper refuses to act otherwise. A missing file means the built-in
//! defaults: the server is `sudospawner-singleuser`, else
//! `jupyterhub-singleuser`, beside the helper binary (as upstream), and the
//! hub user is `jupyterhub`.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use shared::helper::ErrorCode;

use crate::HelperError;

/// Where the configuration lives. Fixed at build time: the caller chooses
/// nothing about what the helper runs.
pub const CONFIG_PATH: &str = "/etc/jhub/sudospawner.toml";

/// The largest configuration file read.
const MAX_CONFIG_BYTES: u64 = 64 * 1024;

/// Names `env_allow` may never open up: each lets whoever sets it run code of
/// their choosing in the server, which would hand the hub's account more than
/// a notebook server.
const NEVER_ALLOWED: &[&str] = &[
    "LD_",
    "PYTHONPATH",
    "PYTHONHOME",
    "PYTHONSTARTUP",
    "PYTHONINSPECT",
    "BASH_ENV",
    "ENV",
    "PERL5LIB",
    "PERL5OPT",
    "NODE_OPTIONS",
    "IFS",
    "GCONV_PATH",
];

/// The parsed configuration.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HelperConfig {
    /// The only account allowed to run the helper through sudo.
    pub hub_user: String,
    /// The server command: an absolute program path, then fixed arguments
    /// that come before the caller's. Empty means the default beside the
    /// helper binary.
    pub command: Vec<String>,
    /// Environment names accepted beyond the built-in allow-list: exact
    /// names, or a prefix ending in `*`.
    pub env_allow: Vec<String>,
    /// Resource limits set on the server (soft and hard), each optional.
    pub limits: Limits,
}

impl Default for HelperConfig {
    fn default() -> Self {
        Self {
            hub_user: "jupyterhub".into(),
            command: Vec::new(),
            env_allow: Vec::new(),
            limits: Limits::default(),
        }
    }
}

/// Resource limits for the server process and everything it starts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// RLIMIT_AS in bytes; an integer or a string such as `"8G"`.
    pub address_space: Option<Size>,
    /// RLIMIT_NPROC: processes (threads included) of the user, counted by
    /// the kernel over all of the user's processes.
    pub processes: Option<u64>,
    /// RLIMIT_NOFILE: open file descriptors per process.
    pub open_files: Option<u64>,
}

/// A byte count, written as an integer or with a binary suffix K, M, G or T.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "SizeText")]
pub struct Size(pub u64);

#[derive(Deserialize)]
#[serde(untagged)]
enum SizeText {
    Bytes(u64),
    Text(String),
}

impl TryFrom<SizeText> for Size {
    type Error = String;

    fn try_from(value: SizeText) -> Result<Self, Self::Error> {
        let text = match value {
            SizeText::Bytes(n) => return Ok(Size(n)),
            SizeText::Text(t) => t,
        };
        let t = text.trim();
        let (digits, shift) = match t.as_bytes().last().map(u8::to_ascii_uppercase) {
            Some(b'K') => (&t[..t.len() - 1], 10),
            Some(b'M') => (&t[..t.len() - 1], 20),
            Some(b'G') => (&t[..t.len() - 1], 30),
            Some(b'T') => (&t[..t.len() - 1], 40),
            _ => (t, 0),
        };
        digits
            .trim()
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(1 << shift))
            .map(Size)
            .ok_or_else(|| {
                format!("expected a byte count such as 8589934592 or \"8G\", got {text:?}")
            })
    }
}

impl HelperConfig {
    /// Parses and validates the configuration text.
    pub fn parse(text: &str) -> Result<Self, HelperError> {
        let config: Self = toml::from_str(text)
            .map_err(|e| bad(format!("{CONFIG_PATH}: {}", e.to_string().trim_end())))?;
        if config.hub_user.is_empty() {
            return Err(bad(format!("{CONFIG_PATH}: hub_user must not be empty")));
        }
        if let Some(program) = config.command.first() {
            if !Path::new(program).is_absolute() {
                return Err(bad(format!(
                    "{CONFIG_PATH}: command must start with an absolute path, got {program:?}"
                )));
            }
        }
        for name in &config.env_allow {
            let stem = name.strip_suffix('*').unwrap_or(name);
            if stem.is_empty() || !stem.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                return Err(bad(format!(
                    "{CONFIG_PATH}: env_allow entry {name:?} is not a variable name or PREFIX*"
                )));
            }
            let is_pattern = name.ends_with('*');
            let opens = |danger: &&&str| {
                // A danger ending in '_' is a family (LD_*); the others are single names.
                let family = danger.ends_with('_');
                (family && stem.starts_with(**danger))
                    || (!family && !is_pattern && stem == **danger)
                    || (is_pattern && danger.starts_with(stem))
            };
            if let Some(danger) = NEVER_ALLOWED.iter().find(opens) {
                return Err(bad(format!(
                    "{CONFIG_PATH}: env_allow entry {name:?} would allow {danger}, which lets the caller run code of its choosing"
                )));
            }
        }
        Ok(config)
    }

    /// Whether `env_allow` admits `name`.
    pub fn allows_env(&self, name: &str) -> bool {
        self.env_allow.iter().any(|a| match a.strip_suffix('*') {
            Some(prefix) => name.starts_with(prefix),
            None => a == name,
        })
    }
}

/// Loads [`CONFIG_PATH`], refusing one that anyone but root could change.
pub fn load() -> Result<HelperConfig, HelperError> {
    load_from(Path::new(CONFIG_PATH))
}

fn load_from(path: &Path) -> Result<HelperConfig, HelperError> {
    if let Some(dir) = path.parent() {
        for ancestor in dir.ancestors() {
            match std::fs::symlink_metadata(ancestor) {
                Ok(meta) => check_owner(ancestor, &meta)?,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(bad(format!("cannot inspect {}: {e}", ancestor.display()))),
            }
        }
    }
    // O_NOFOLLOW: the file is checked as it is, not as what a link points at.
    let file = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(HelperConfig::default()),
        Err(e) => return Err(bad(format!("cannot open {}: {e}", path.display()))),
    };
    let meta = file
        .metadata()
        .map_err(|e| bad(format!("cannot inspect {}: {e}", path.display())))?;
    if !meta.is_file() {
        return Err(bad(format!("{} is not a regular file", path.display())));
    }
    check_owner(path, &meta)?;
    let text =
        read_bounded(file).map_err(|e| bad(format!("cannot read {}: {e}", path.display())))?;
    HelperConfig::parse(&text)
}

fn check_owner(path: &Path, meta: &std::fs::Metadata) -> Result<(), HelperError> {
    if meta.uid() != 0 {
        return Err(insecure(path, "is not owned by root"));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(insecure(path, "is writable by group or others"));
    }
    Ok(())
}

fn read_bounded(file: File) -> io::Result<String> {
    let mut text = String::new();
    file.take(MAX_CONFIG_BYTES + 1).read_to_string(&mut text)?;
    if text.len() as u64 > MAX_CONFIG_BYTES {
        return Err(io::Error::other(format!(
            "longer than {MAX_CONFIG_BYTES} bytes"
        )));
    }
    Ok(text)
}

/// The default server program when the configuration names none:
/// `sudospawner-singleuser` beside the helper if present, as upstream lets an
/// installation wrap the server, else `jupyterhub-singleuser` beside it.
pub fn default_program(helper_dir: &Path) -> PathBuf {
    let wrapper = helper_dir.join("sudospawner-singleuser");
    if wrapper.exists() {
        wrapper
    } else {
        helper_dir.join("jupyterhub-singleuser")
    }
}

fn bad(message: String) -> HelperError {
    HelperError::new(ErrorCode::BadConfig, message)
}

fn insecure(path: &Path, what: &str) -> HelperError {
    HelperError::new(
        ErrorCode::InsecureConfig,
        format!(
            "refusing to run: {} {what}; only root may decide what this helper runs",
            path.display()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_is_the_default() {
        assert_eq!(HelperConfig::parse("").unwrap(), HelperConfig::default());
    }

    #[test]
    fn full_file_parses() {
        let c = HelperConfig::parse(
            r#"
            hub_user = "hub"
            command = ["/opt/jhub/venv/bin/jupyterhub-singleuser", "--debug"]
            env_allow = ["JUPYTER_PREFER_ENV_PATH", "CONDA_*"]
            [limits]
            address_space = "8G"
            processes = 512
            open_files = 1024
            "#,
        )
        .unwrap();
        assert_eq!(c.hub_user, "hub");
        assert_eq!(c.limits.address_space, Some(Size(8 << 30)));
        assert_eq!(c.limits.processes, Some(512));
        assert!(c.allows_env("CONDA_PREFIX"));
        assert!(c.allows_env("JUPYTER_PREFER_ENV_PATH"));
        assert!(!c.allows_env("JUPYTER_PREFER_ENV_PATHX"));
        // Names that merely begin like a dangerous one are fine.
        assert!(HelperConfig::parse("env_allow = [\"ENVIRONMENT\", \"IFSX\"]").is_ok());
        assert_eq!(
            HelperConfig::parse("[limits]\naddress_space = 4096")
                .unwrap()
                .limits
                .address_space,
            Some(Size(4096))
        );
    }

    #[test]
    fn bad_files_name_the_problem() {
        for (text, needle) in [
            ("comand = []", "comand"),
            ("command = [\"jupyterhub-singleuser\"]", "absolute"),
            ("hub_user = \"\"", "hub_user"),
            ("env_allow = [\"LD_PRELOAD\"]", "LD_"),
            ("env_allow = [\"L*\"]", "LD_"),
            ("env_allow = [\"PYTHON*\"]", "PYTHON"),
            ("env_allow = [\"A-B\"]", "not a variable name"),
            ("env_allow = [\"ENV\"]", "ENV"),
            ("[limits]\naddress_space = \"lots\"", "byte count"),
            ("[limits]\nprocesses = -1", "processes"),
            ("[limits]\ncpu = 1", "cpu"),
        ] {
            let e = HelperConfig::parse(text).unwrap_err();
            assert_eq!(e.code, ErrorCode::BadConfig);
            assert!(e.message.contains(needle), "{text}: {}", e.message);
        }
    }

    #[test]
    fn missing_file_is_the_default() {
        let dir = Path::new("/nonexistent-jhub-test/sudospawner.toml");
        assert_eq!(load_from(dir).unwrap(), HelperConfig::default());
    }
}
