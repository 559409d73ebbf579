//! The dummy authenticator (JupyterHub's `DummyAuthenticator`), for
//! tests only: any allowed name logs in with the one configured password.
//! The hub refuses to start with it unless a non-empty password is set
//! (`[authenticator] password` or `password_file`).

use hmac::{KeyInit, Mac};

use super::authenticator::{AuthError, Authenticated, Authenticator, BoxFuture, BuildError};
use crate::app::AppState;
use crate::config::Secret;

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// Compares passwords through a keyed MAC so the comparison takes the same
/// time wherever the guess differs.
const COMPARE_KEY: &[u8] = b"jhub dummy authenticator";

/// Any name, one shared password.
pub struct DummyAuthenticator {
    expected: Vec<u8>,
}

fn mac(password: &str) -> HmacSha256 {
    let mut m = <HmacSha256 as KeyInit>::new_from_slice(COMPARE_KEY)
        .expect("HMAC accepts keys of any length");
    m.update(password.as_bytes());
    m
}

impl DummyAuthenticator {
    /// The authenticator for `password`; refuses a missing or empty one.
    pub fn new(password: Option<Secret>) -> Result<Self, BuildError> {
        match password {
            Some(p) if !p.expose().is_empty() => Ok(Self {
                expected: mac(p.expose()).finalize().into_bytes().to_vec(),
            }),
            _ => Err(BuildError(
                "the dummy authenticator needs a password (authenticator.password or \
                 authenticator.password_file); it is for tests only"
                    .into(),
            )),
        }
    }

    /// Whether `given` is the configured password (constant-time).
    pub fn matches(&self, given: &str) -> bool {
        mac(given).verify_slice(&self.expected).is_ok()
    }
}

impl Authenticator for DummyAuthenticator {
    fn class_name(&self) -> &'static str {
        "jhub.auth.DummyAuthenticator"
    }

    fn authenticate<'a>(
        &'a self,
        _st: &'a AppState,
        _username: &'a str,
        password: &'a Secret,
    ) -> BoxFuture<'a, Result<Option<Authenticated>, AuthError>> {
        let ok = self.matches(password.expose());
        Box::pin(async move { Ok(ok.then(Authenticated::default)) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_checked() {
        assert!(DummyAuthenticator::new(None).is_err());
        assert!(DummyAuthenticator::new(Some(Secret::new(""))).is_err());
        let d = DummyAuthenticator::new(Some(Secret::new("pw"))).unwrap();
        assert!(d.matches("pw"));
        assert!(!d.matches("pw "));
        assert!(!d.matches(""));
        assert!(!d.matches("PW"));
    }
}
