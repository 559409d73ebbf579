//! The PAM authenticator (JupyterHub's `PAMAuthenticator`): system
//! accounts, checked by the system's PAM stack under the service
//! `[authenticator] service` (default `login`).
//!
//! Each attempt runs `pam_authenticate` and then `pam_acct_mgmt` (the
//! `pam` crate's `Client::authenticate` does both), so a wrong password,
//! a locked account (`usermod -L`, `passwd -l`) and an expired one
//! (`chage -E 0`) are all refused. The hub runs as the unprivileged
//! `jupyterhub` account; for `pam_unix` to check other users' passwords
//! that account must be in the `shadow` group (the install script puts it
//! there).
//!
//! PAM calls block (and `pam_faildelay` makes failures slow on purpose),
//! so they run on tokio's blocking pool, at most [`MAX_CONCURRENT`] at a
//! time; further attempts wait for a slot. The group lookups of
//! `allowed_groups` (NSS, which may be remote) run there too.

use std::ffi::{CStr, CString};
use std::sync::Arc;

use tokio::sync::Semaphore;

use super::authenticator::{AuthError, Authenticated, Authenticator, BoxFuture};
use crate::app::AppState;
use crate::config::{AuthenticatorConfig, Secret};

/// How many PAM conversations may run at once.
pub const MAX_CONCURRENT: usize = 8;

/// System accounts through PAM, allowed by name or Unix group.
pub struct PamAuthenticator {
    service: String,
    allowed_groups: Vec<String>,
    slots: Arc<Semaphore>,
}

impl PamAuthenticator {
    /// The authenticator `[authenticator]` describes.
    pub fn new(config: &AuthenticatorConfig) -> Self {
        Self {
            service: config.service.clone(),
            allowed_groups: config.allowed_groups.clone(),
            slots: Arc::new(Semaphore::new(MAX_CONCURRENT)),
        }
    }

    /// The configured `allowed_groups`.
    pub fn allowed_groups(&self) -> &[String] {
        &self.allowed_groups
    }

    async fn blocking<T: Send + 'static>(
        &self,
        what: &'static str,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, AuthError> {
        let _slot = self
            .slots
            .acquire()
            .await
            .map_err(|_| AuthError::Internal("the PAM slots were closed".into()))?;
        tokio::task::spawn_blocking(f)
            .await
            .map_err(|e| AuthError::Internal(format!("{what} failed: {e}")))
    }
}

/// The PAM conversation: answers the username prompt and the password
/// prompt, and passes PAM's messages to the log (never the password).
struct Conversation {
    login: String,
    password: String,
}

impl pam::Converse for Conversation {
    fn prompt_echo(&mut self, _msg: &CStr) -> Result<CString, ()> {
        CString::new(self.login.clone()).map_err(|_| ())
    }

    fn prompt_blind(&mut self, _msg: &CStr) -> Result<CString, ()> {
        // A password with a NUL byte cannot be right: the conversation
        // fails and so does the login.
        CString::new(self.password.clone()).map_err(|_| ())
    }

    fn info(&mut self, msg: &CStr) {
        tracing::debug!(message = %msg.to_string_lossy(), "PAM info");
    }

    fn error(&mut self, msg: &CStr) {
        tracing::debug!(message = %msg.to_string_lossy(), "PAM error message");
    }

    fn username(&self) -> &str {
        &self.login
    }
}

/// What one PAM check said.
#[derive(Debug)]
enum Verdict {
    Accepted,
    Refused(String),
}

/// One blocking PAM authentication + account check.
fn check(service: &str, user: &str, password: &str) -> Result<Verdict, String> {
    let conversation = Conversation {
        login: user.to_owned(),
        password: password.to_owned(),
    };
    // No session is opened: the hub only checks credentials.
    let mut client = pam::Authenticator::with_handler(service, conversation)
        .map_err(|e| format!("cannot start PAM service {service:?}: {e}"))?;
    match client.authenticate() {
        Ok(()) => Ok(Verdict::Accepted),
        Err(e) => Ok(Verdict::Refused(e.to_string())),
    }
}

/// Whether `user` is in one of `groups` (primary or supplementary, as
/// `getgrouplist(3)` says, like JupyterHub's `check_allowed_groups`).
fn in_groups(user: &str, groups: &[String]) -> bool {
    use nix::unistd::{Group, User, getgrouplist};
    let Ok(Some(account)) = User::from_name(user) else {
        return false;
    };
    let Ok(cname) = CString::new(user) else {
        return false;
    };
    let Ok(gids) = getgrouplist(&cname, account.gid) else {
        tracing::warn!(user.name = %user, "cannot list the user's groups");
        return false;
    };
    for name in groups {
        match Group::from_name(name) {
            Ok(Some(g)) if gids.contains(&g.gid) => return true,
            Ok(Some(_)) => {}
            Ok(None) => tracing::error!(group = %name, "allowed_groups: no such group"),
            Err(e) => tracing::error!(group = %name, error = %e, "allowed_groups: lookup failed"),
        }
    }
    false
}

impl Authenticator for PamAuthenticator {
    fn class_name(&self) -> &'static str {
        "jhub.auth.PAMAuthenticator"
    }

    fn authenticate<'a>(
        &'a self,
        _st: &'a AppState,
        username: &'a str,
        password: &'a Secret,
    ) -> BoxFuture<'a, Result<Option<Authenticated>, AuthError>> {
        Box::pin(async move {
            let service = self.service.clone();
            let user = username.to_owned();
            let password = password.clone();
            let verdict = self
                .blocking("the PAM check", move || {
                    check(&service, &user, password.expose())
                })
                .await?
                .map_err(AuthError::Internal)?;
            match verdict {
                Verdict::Accepted => Ok(Some(Authenticated::default())),
                Verdict::Refused(why) => {
                    tracing::debug!(user.name = %username, pam.result = %why, "PAM refused");
                    Ok(None)
                }
            }
        })
    }

    fn check_allowed<'a>(
        &'a self,
        st: &'a AppState,
        username: &'a str,
    ) -> BoxFuture<'a, Result<bool, AuthError>> {
        Box::pin(async move {
            if !self.allowed_groups.is_empty() {
                let groups = self.allowed_groups.clone();
                let user = username.to_owned();
                if self
                    .blocking("the group lookup", move || in_groups(&user, &groups))
                    .await?
                {
                    return Ok(true);
                }
            }
            Ok(st.allow.check(&st.db, username).await?)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_membership() {
        // root's primary group is root on every Linux system
        assert!(in_groups("root", &["root".to_owned()]));
        assert!(!in_groups("root", &["jhub-no-such-group-x".to_owned()]));
        assert!(!in_groups("jhub-no-such-user-x", &["root".to_owned()]));
        assert!(!in_groups("root", &[]));
    }
}
