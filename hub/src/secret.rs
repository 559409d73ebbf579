//! The cookie secret: the key that signs browser sessions.
//!
//! It comes from `JPY_COOKIE_SECRET` (hex) when set, as in JupyterHub;
//! otherwise from `hub.cookie_secret_file`, which is generated on first
//! start (32 random bytes from the OS, hex, mode 0600). An existing file
//! that other users could read is refused: anyone holding the key can
//! forge any user's session.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use crate::config::Secret;

/// Why the cookie secret could not be had.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The file is readable by group or others.
    #[error(
        "{what} file {path} has mode {mode:04o}: it must not be readable by group or \
         others (chmod 600 {path})"
    )]
    Permissions {
        /// What the file holds ("cookie secret", "proxy token").
        what: &'static str,
        /// The file.
        path: String,
        /// Its permission bits.
        mode: u32,
    },
    /// The secret is not hex, or too short.
    #[error("{what} from {from} is not valid: {why}")]
    Invalid {
        /// What the secret is.
        what: &'static str,
        /// The file or variable.
        from: String,
        /// What is wrong.
        why: &'static str,
    },
    /// Reading or writing the file failed.
    #[error("{what} file {path}: {source}")]
    Io {
        /// What the file holds.
        what: &'static str,
        /// The file.
        path: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The OS random source failed.
    #[error("no random bytes from the OS: {0}")]
    Random(String),
}

/// Random bytes from the OS, hex-encoded: `bytes` bytes of entropy.
pub fn random_hex(bytes: usize) -> Result<String, SecretError> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).map_err(|e| SecretError::Random(e.to_string()))?;
    Ok(hex(&buf))
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        // Writing to a String cannot fail.
        let _infallible = write!(s, "{b:02x}");
    }
    s
}

fn decode_hex(what: &'static str, text: &str, from: &str) -> Result<Vec<u8>, SecretError> {
    let invalid = |why| SecretError::Invalid {
        what,
        from: from.to_owned(),
        why,
    };
    let text = text.trim();
    if text.len() % 2 != 0 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(invalid("expected hex digits"));
    }
    let bytes: Vec<u8> = (0..text.len())
        .step_by(2)
        .filter_map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect();
    if bytes.len() < 16 {
        return Err(invalid("expected at least 16 bytes (32 hex digits)"));
    }
    Ok(bytes)
}

/// Loads the cookie secret: from `env_value` if given, else from `path`,
/// creating the file when it does not exist.
pub fn load_cookie_secret(env_value: Option<&Secret>, path: &Path) -> Result<Vec<u8>, SecretError> {
    const WHAT: &str = "cookie secret";
    match env_value {
        Some(value) => decode_hex(WHAT, value.expose(), "JPY_COOKIE_SECRET"),
        None => load_secret_file(WHAT, path),
    }
}

/// Loads the secret `what` (for messages: "cookie secret", "proxy token")
/// from `path`, which must be private to its owner, creating it (32
/// random bytes, hex, mode 0600) when it does not exist.
pub fn load_secret_file(what: &'static str, path: &Path) -> Result<Vec<u8>, SecretError> {
    let shown = path.display().to_string();
    let io = |source| SecretError::Io {
        what,
        path: shown.clone(),
        source,
    };
    match std::fs::metadata(path) {
        Ok(meta) => {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(SecretError::Permissions {
                    what,
                    path: shown,
                    mode,
                });
            }
            let text = std::fs::read_to_string(path).map_err(io)?;
            decode_hex(what, &text, &shown)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let secret = random_hex(32)?;
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(io)?;
            }
            let mut file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(io)?;
            file.write_all(secret.as_bytes()).map_err(io)?;
            file.write_all(b"\n").map_err(io)?;
            tracing::info!(path = %shown, "generated a new {what}");
            decode_hex(what, &secret, &shown)
        }
        Err(e) => Err(io(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_then_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/cookie_secret");
        let a = load_cookie_secret(None, &path).unwrap();
        assert_eq!(a.len(), 32);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(load_cookie_secret(None, &path).unwrap(), a);
    }

    #[test]
    fn readable_file_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cookie_secret");
        std::fs::write(&path, "ab".repeat(32)).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = load_cookie_secret(None, &path).unwrap_err().to_string();
        assert!(e.contains("0644") && e.contains("chmod 600"), "{e}");
        assert!(e.starts_with("cookie secret file "), "{e}");
    }

    #[test]
    fn messages_name_the_secret() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("proxy_auth_token");
        let a = load_secret_file("proxy token", &path).unwrap();
        assert_eq!(load_secret_file("proxy token", &path).unwrap(), a);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        let e = load_secret_file("proxy token", &path)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("proxy token file ") && e.contains("0640"),
            "{e}"
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::write(&path, "not hex\n").unwrap();
        let e = load_secret_file("proxy token", &path)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("proxy token from "), "{e}");
    }

    #[test]
    fn env_wins_and_is_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("never-created");
        let s = Secret::new("00".repeat(32));
        assert_eq!(load_cookie_secret(Some(&s), &path).unwrap(), vec![0; 32]);
        assert!(!path.exists());
        assert!(load_cookie_secret(Some(&Secret::new("zz")), &path).is_err());
    }
}
