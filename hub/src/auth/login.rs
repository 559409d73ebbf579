//! One login attempt, the same for every authenticator class (JupyterHub's
//! `get_authenticated_user` followed by `auth_to_user`): normalize and
//! validate the name, check the credentials, apply the block and allow
//! rules, then create or update the user row. Every attempt logs one line
//! `login attempt` with `user.name` and `outcome`; passwords are never
//! logged.

use crate::app::AppState;
use crate::config::Secret;
use crate::db::{DbError, UserRow};
use crate::names::{self, InvalidName};

use super::authenticator::AuthError;

/// The message for every refused login, whatever the reason (JupyterHub's).
pub const INVALID_CREDENTIALS: &str = "Invalid username or password.";

/// Why a login did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// The name breaks the username rule (answered 400 with the rule;
    /// nothing was checked or stored).
    #[error("{0}")]
    InvalidName(#[from] InvalidName),
    /// Wrong credentials, unknown, blocked or not allowed: all answered
    /// alike, 403 [`INVALID_CREDENTIALS`].
    #[error("{INVALID_CREDENTIALS}")]
    Refused,
    /// The authenticator refused with its own message (403 with it).
    #[error("{0}")]
    Denied(String),
    /// The check itself failed (answered 500, logged).
    #[error(transparent)]
    Internal(#[from] AuthError),
}

impl From<DbError> for LoginError {
    fn from(e: DbError) -> Self {
        Self::Internal(AuthError::Db(e))
    }
}

/// Runs one login attempt for `raw_name` with `password`; the user row on
/// success.
pub async fn login(
    st: &AppState,
    raw_name: &str,
    password: &Secret,
) -> Result<UserRow, LoginError> {
    let name = match names::username(raw_name) {
        Ok(n) => n,
        Err(e) => {
            tracing::info!(user.name = %e.shown(), outcome = "invalid_name", "login attempt");
            return Err(e.into());
        }
    };
    let outcome = attempt(st, &name, password).await;
    let label = match &outcome {
        Ok(_) => "success",
        Err(Refusal::Credentials) => "invalid_credentials",
        Err(Refusal::Blocked) => "blocked",
        Err(Refusal::NotAllowed) => "not_allowed",
        Err(Refusal::Failed(AuthError::Denied(_))) => "denied",
        Err(Refusal::Failed(_)) => "error",
    };
    match &outcome {
        Err(Refusal::Failed(AuthError::Denied(_))) => {
            tracing::info!(user.name = %name, outcome = label, "login attempt");
        }
        Err(Refusal::Failed(e)) => {
            tracing::error!(user.name = %name, outcome = label, error = %e, "login attempt");
        }
        Ok(user) => {
            tracing::info!(user.name = %name, outcome = label, admin = user.admin, "login attempt");
        }
        Err(_) => tracing::info!(user.name = %name, outcome = label, "login attempt"),
    }
    outcome.map_err(|r| match r {
        Refusal::Failed(AuthError::Denied(m)) => LoginError::Denied(m),
        Refusal::Failed(e) => LoginError::Internal(e),
        _ => LoginError::Refused,
    })
}

enum Refusal {
    Credentials,
    Blocked,
    NotAllowed,
    Failed(AuthError),
}

impl From<AuthError> for Refusal {
    fn from(e: AuthError) -> Self {
        Self::Failed(e)
    }
}

impl From<DbError> for Refusal {
    fn from(e: DbError) -> Self {
        Self::Failed(AuthError::Db(e))
    }
}

async fn attempt(st: &AppState, name: &str, password: &Secret) -> Result<UserRow, Refusal> {
    let Some(authenticated) = st.authenticator.authenticate(st, name, password).await? else {
        return Err(Refusal::Credentials);
    };
    if st.allow.blocked(name) {
        return Err(Refusal::Blocked);
    }
    if !st.allow.allow_all && !st.authenticator.check_allowed(st, name).await? {
        return Err(Refusal::NotAllowed);
    }
    let admin = authenticated.admin == Some(true) || st.allow.is_admin(name);
    let user = user_row(st, name, admin).await?;
    let now = crate::db::now();
    st.db.touch_user(user.id, &now).await?;
    Ok(UserRow {
        last_activity: Some(now),
        ..user
    })
}

/// The user row for `name`, created if missing (as JupyterHub creates
/// users at their first login) and made admin when `admin`.
async fn user_row(st: &AppState, name: &str, admin: bool) -> Result<UserRow, DbError> {
    let existing = match st.db.find_user(name).await? {
        Some(u) => u,
        None => match st.db.create_users(&[name.to_owned()], admin).await {
            Ok(mut rows) => {
                tracing::info!(user.name = %name, admin, "creating user at first login");
                return Ok(rows.remove(0));
            }
            // a concurrent login of the same name created it first
            Err(e) => st.db.find_user(name).await?.ok_or(e)?,
        },
    };
    if admin && !existing.admin {
        return st.db.update_user(existing.id, None, Some(true)).await;
    }
    Ok(existing)
}
