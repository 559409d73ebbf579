//! Who may log in once authenticated: JupyterHub 6's allow and block
//! rules, from `[authenticator]`.
//!
//! - `blocked_users` never log in (checked first, admins included);
//! - with `allow_all` everyone who authenticates may log in. Its default
//!   depends on the class, as in JupyterHub: `true` for the dummy
//!   authenticator when `allowed_users` is empty, else `false`;
//! - otherwise a user may log in when named in `allowed_users`, or (PAM)
//!   a member of one of `allowed_groups` (see [`super::pam`]), or already
//!   in the database when `allow_existing_users` is on (its default: on
//!   when `allowed_users` is non-empty);
//! - `admin_users` are added to `allowed_users` when that list is
//!   non-empty (JupyterHub does the same at start); with an empty
//!   `allowed_users` an admin needs another allow rule like everyone else.
//!
//! So with no allow configuration at all (no `allowed_users`, no
//! `allowed_groups`, no `allow_all`, no `allow_existing_users`), nobody
//! can log in through PAM, as in JupyterHub 5 and later; the hub warns at
//! start.

use std::collections::BTreeSet;

use crate::config::{AuthenticatorClass, Config};
use crate::db::{Db, DbError};
use crate::names;

/// The allow and block rules, normalized at start.
#[derive(Debug, Clone, Default)]
pub struct AllowRules {
    /// Everyone who authenticates may log in.
    pub allow_all: bool,
    /// Users already in the database may log in.
    pub allow_existing_users: bool,
    /// Allowed names (with `admin_users` when non-empty).
    pub allowed_users: BTreeSet<String>,
    /// Names that may never log in.
    pub blocked_users: BTreeSet<String>,
    /// Names made admins at login.
    pub admin_users: BTreeSet<String>,
}

impl AllowRules {
    /// The rules `config` sets, with JupyterHub's class-dependent
    /// defaults.
    pub fn from_config(config: &Config) -> Self {
        let a = &config.authenticator;
        let norm = |list: &[String]| -> BTreeSet<String> {
            list.iter().map(|n| names::normalize(n)).collect()
        };
        let admin_users = norm(&a.admin_users);
        let mut allowed_users = norm(&a.allowed_users);
        let allow_all = a.allow_all.unwrap_or(match config.hub.authenticator_class {
            AuthenticatorClass::Dummy => allowed_users.is_empty(),
            AuthenticatorClass::Pam | AuthenticatorClass::Native => false,
        });
        let allow_existing_users = a.allow_existing_users.unwrap_or(!allowed_users.is_empty());
        if !allowed_users.is_empty() {
            allowed_users.extend(admin_users.iter().cloned());
        }
        Self {
            allow_all,
            allow_existing_users,
            allowed_users,
            blocked_users: norm(&a.blocked_users),
            admin_users,
        }
    }

    /// Whether `name` is in `blocked_users`.
    pub fn blocked(&self, name: &str) -> bool {
        self.blocked_users.contains(name)
    }

    /// Whether `name` is an admin by configuration.
    pub fn is_admin(&self, name: &str) -> bool {
        self.admin_users.contains(name)
    }

    /// Whether there is any allow configuration besides what the
    /// authenticator adds (for the start-up warning).
    pub fn any_allow_config(&self) -> bool {
        self.allow_all || self.allow_existing_users || !self.allowed_users.is_empty()
    }

    /// JupyterHub's base `check_allowed`: `allow_all`, a name in
    /// `allowed_users`, or an existing user with `allow_existing_users`.
    pub async fn check(&self, db: &Db, name: &str) -> Result<bool, DbError> {
        if self.allow_all || self.allowed_users.contains(name) {
            return Ok(true);
        }
        if self.allow_existing_users {
            return Ok(db.find_user(name).await?.is_some());
        }
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn rules(class: AuthenticatorClass, toml_auth: &str) -> AllowRules {
        let mut c: Config = Config::default();
        c.hub.authenticator_class = class;
        c.authenticator = toml::from_str(toml_auth).unwrap();
        AllowRules::from_config(&c)
    }

    #[test]
    fn jupyterhub_defaults() {
        // PAM with no allow config: nobody (admins included)
        let r = rules(
            AuthenticatorClass::Pam,
            "allowed_groups = []\nadmin_users = [\"adm\"]",
        );
        assert!(!r.allow_all && !r.allow_existing_users);
        assert!(!r.allowed_users.contains("adm"));
        assert!(!r.any_allow_config());
        // dummy with no allowed_users: everyone
        let r = rules(AuthenticatorClass::Dummy, "");
        assert!(r.allow_all);
        // allowed_users: admins join them, existing users are allowed
        let r = rules(
            AuthenticatorClass::Dummy,
            "allowed_users = [\"Ann\"]\nadmin_users = [\"adm\"]",
        );
        assert!(!r.allow_all && r.allow_existing_users);
        assert!(r.allowed_users.contains("ann") && r.allowed_users.contains("adm"));
        // explicit settings win
        let r = rules(
            AuthenticatorClass::Pam,
            "allow_all = true\nallow_existing_users = false\nallowed_users = [\"x\"]\nblocked_users = [\"Bad\"]",
        );
        assert!(r.allow_all && !r.allow_existing_users && r.blocked("bad"));
    }
}
