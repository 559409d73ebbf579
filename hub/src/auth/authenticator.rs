//! The authenticator extension point: what checks a login's credentials,
//! chosen by `[hub] authenticator_class`.
//!
//! An authenticator implements [`Authenticator`]; [`build`] is the one
//! place that maps a class to its implementation (add an arm there for a
//! new class). The login flow around it ([`super::login`]) is the same for
//! every class, as JupyterHub's `get_authenticated_user`:
//!
//! 1. the username is normalized and validated ([`crate::names`]) before
//!    the authenticator sees it; a refused name never reaches it and never
//!    gets a database row;
//! 2. [`Authenticator::authenticate`] checks the credentials;
//! 3. [`Authenticator::check_allowed`] decides whether that user may use
//!    the hub (JupyterHub's `check_allowed`; the default is
//!    [`super::allow::AllowRules::check`]);
//! 4. the user row is created if missing, `admin_users` made admins, and
//!    the login recorded.
//!
//! A wrong password, an unknown user and a user who is not allowed all get
//! the same answer, so a login attempt never reveals whether an account
//! exists.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::Router;
use maud::Markup;

use super::{dummy, pam};
use crate::app::AppState;
use crate::config::{AuthenticatorClass, Config, Secret, Secrets};
use crate::db::{Db, DbError};

/// A boxed future, so that [`Authenticator`] can be used as a trait object.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a successful credentials check says beyond "yes".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Authenticated {
    /// `Some(true)` when the authenticator itself knows the user is an
    /// admin; `None` leaves it to `admin_users` (JupyterHub's
    /// `authentication["admin"]`). Never takes admin away.
    pub admin: Option<bool>,
}

/// An authenticator could not decide (as opposed to saying no).
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// Anything else inside the hub (a PAM set-up error, a failed blocking
    /// task). Logged; the client gets a generic 500.
    #[error("{0}")]
    Internal(String),
    /// The authenticator refuses the login with a message of its own for
    /// the user (answered 403 with it, as JupyterHub's
    /// `HTTPError(403, message)`), e.g. "awaiting approval". Only for
    /// answers that reveal nothing an attacker could use: prefer `Ok(None)`.
    #[error("{0}")]
    Denied(String),
}

/// Checks logins for one `authenticator_class`.
///
/// Implementations must not block the async runtime: blocking work (PAM,
/// password hashing, NSS lookups) goes through
/// `tokio::task::spawn_blocking`, with its concurrency bounded.
pub trait Authenticator: Send + Sync + 'static {
    /// The class name `/hub/api/info` reports, e.g.
    /// `jhub.auth.PAMAuthenticator`.
    fn class_name(&self) -> &'static str;

    /// Checks `password` for `username` (already normalized and valid).
    ///
    /// Called once per login attempt. `Ok(Some(_))`: the credentials are
    /// right; `Ok(None)`: they are wrong, or the account is unknown,
    /// locked or expired (all answered alike); `Err(_)`: the check itself
    /// failed (answered with 500 and logged).
    fn authenticate<'a>(
        &'a self,
        st: &'a AppState,
        username: &'a str,
        password: &'a Secret,
    ) -> BoxFuture<'a, Result<Option<Authenticated>, AuthError>>;

    /// Whether an authenticated `username` may use the hub (JupyterHub's
    /// `check_allowed`). Called after a successful
    /// [`authenticate`](Self::authenticate). The default applies the
    /// `[authenticator]` allow lists ([`super::allow::AllowRules::check`]).
    fn check_allowed<'a>(
        &'a self,
        st: &'a AppState,
        username: &'a str,
    ) -> BoxFuture<'a, Result<bool, AuthError>> {
        Box::pin(async move { Ok(st.allow.check(&st.db, username).await?) })
    }

    /// Extra page routes this authenticator serves (e.g. a signup page),
    /// merged into the hub's router at start, with the same session and
    /// XSRF handling as the login page. Paths are absolute (`/hub/...`).
    fn routes(&self) -> Router<AppState> {
        Router::new()
    }

    /// Extra HTML under the login form (e.g. a link to a signup page).
    fn login_footer(&self) -> Option<Markup> {
        None
    }

    /// Links to this authenticator's own pages for the home page, as
    /// (URL, label), for a user who is an admin or not.
    fn home_links(&self, _admin: bool) -> Vec<(&'static str, &'static str)> {
        Vec::new()
    }

    /// Whether the authenticator keeps its own list of who may log in
    /// (so that no `[authenticator]` allow configuration is needed).
    fn has_own_allow_list(&self) -> bool {
        false
    }
}

/// Why no authenticator could be made.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BuildError(pub String);

/// Makes the authenticator `config.hub.authenticator_class` names: the
/// dispatch point for authenticator classes.
pub fn build(
    config: &Config,
    secrets: &Secrets,
    _db: &Db,
) -> Result<Arc<dyn Authenticator>, BuildError> {
    match config.hub.authenticator_class {
        AuthenticatorClass::Dummy => Ok(Arc::new(dummy::DummyAuthenticator::new(
            secrets.dummy_password.clone(),
        )?)),
        AuthenticatorClass::Pam => Ok(Arc::new(pam::PamAuthenticator::new(&config.authenticator))),
        AuthenticatorClass::Native => Ok(Arc::new(super::native::NativeAuthenticator::new(
            &config.authenticator,
        ))),
    }
}

/// The hub's authenticator, as shared state holds it.
#[derive(Clone)]
pub struct AuthenticatorHandle(pub Arc<dyn Authenticator>);

impl std::ops::Deref for AuthenticatorHandle {
    type Target = dyn Authenticator;
    fn deref(&self) -> &Self::Target {
        &*self.0
    }
}

impl std::fmt::Debug for AuthenticatorHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Authenticator")
            .field(&self.0.class_name())
            .finish()
    }
}
