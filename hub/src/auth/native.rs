//! The native authenticator (`authenticator_class = "native"`): the hub's
//! own accounts, as JupyterHub's NativeAuthenticator keeps them.
//!
//! - **Signup** (`/hub/signup`, unless `enable_signup = false`): the name
//!   is normalized and checked against [`crate::names`] before any row is
//!   written; the password must have `minimum_password_length` characters
//!   and, with `check_common_password`, must not be on the bundled list of
//!   common passwords. New accounts wait for an admin's approval, except
//!   with `open_signup` and for names in `admin_users` or `allowed_users`,
//!   which are authorized at once (so those accounts should sign up before
//!   anyone else can take their names).
//! - **Login**: the password is checked against its Argon2id hash. An
//!   account not yet authorized cannot log in and, when its password is
//!   right, is told it awaits approval. With `allowed_failed_logins` set,
//!   that many failures lock the account for `seconds_before_next_try`
//!   seconds, during which even the right password is refused with the
//!   same answer as a wrong one; a successful login forgets the failures.
//! - **Change password** for the logged-in account (old password, new one
//!   twice), and **authorize / unauthorize / delete** for admins.
//!
//! Passwords are hashed with Argon2id at the `argon2` crate's default
//! parameters (the parameters are stored in each hash, so raising them
//! later keeps old hashes valid). Hashing and verifying take tens of
//! milliseconds of CPU and run on the blocking pool, at most one per core
//! at once ([`HashLimit`]). Unknown names cost a hash too, so timing does
//! not tell which names have accounts (signup does tell, as
//! NativeAuthenticator's does, when a name is taken). Failure counts and
//! locks live in the database, so they survive restarts and are shared by
//! every request.

use std::sync::Arc;

use argon2::{Argon2, PasswordHasher, PasswordVerifier};
use axum::Router;
use axum::routing::{get, post};
use maud::Markup;
use tokio::sync::Semaphore;

use super::authenticator::{AuthError, Authenticated, Authenticator, BoxFuture};
use crate::app::AppState;
use crate::config::{AuthenticatorConfig, Secret};
use crate::db::native::NativeUserRow;
use crate::db::{Db, DbError, timestamp};
use crate::names::{self, InvalidName};

/// The bundled common passwords, one a line; lines starting with `#` are
/// comments. The file says where the list comes from and its license.
const COMMON_PASSWORDS: &str = include_str!("../../data/common-passwords.txt");

/// The longest email address accepted (RFC 5321's path limit).
const MAX_EMAIL_LEN: usize = 254;

/// Why a native-authenticator operation failed inside the hub (as opposed
/// to a refusal, which is an `Ok` outcome with a message for the user).
#[derive(Debug, thiserror::Error)]
pub enum NativeError {
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// Hashing failed (no randomness for the salt), or the blocking task
    /// died.
    #[error("password hashing failed: {0}")]
    Hash(String),
}

/// Why a password is not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Weakness {
    /// Shorter than `minimum_password_length` characters.
    TooShort {
        /// The configured minimum.
        minimum: u32,
    },
    /// On the list of common passwords.
    Common,
}

impl Weakness {
    /// What the user is told.
    pub fn message(self) -> String {
        match self {
            Self::TooShort { minimum } => {
                format!("Your password is too short: it must have at least {minimum} characters.")
            }
            Self::Common => {
                "Your password is too common: it is on a list of the most used passwords. \
                 Please choose another one."
                    .to_owned()
            }
        }
    }
}

/// Why a signup was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignupRefusal {
    /// `enable_signup = false`.
    Disabled,
    /// The username breaks the hub's rule.
    InvalidName(InvalidName),
    /// An account with this name exists.
    Taken,
    /// The password and its confirmation differ.
    ConfirmationMismatch,
    /// The password is too weak.
    Weak(Weakness),
    /// The email address is malformed.
    InvalidEmail,
}

impl SignupRefusal {
    /// What the user is told (NativeAuthenticator's wording where it has
    /// one).
    pub fn message(&self) -> String {
        match self {
            Self::Disabled => "Signup is not enabled on this hub.".to_owned(),
            Self::InvalidName(e) => format!("{e}."),
            Self::Taken => "Something went wrong! It appears that this username is already \
                            in use. Please try again with a different username."
                .to_owned(),
            Self::ConfirmationMismatch => {
                "Your password did not match the confirmation. Please try again.".to_owned()
            }
            Self::Weak(w) => w.message(),
            Self::InvalidEmail => "That does not look like an email address.".to_owned(),
        }
    }
}

/// What a signup did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signup {
    /// The account was written.
    Created {
        /// Its normalized name.
        username: String,
        /// Whether it may log in already.
        authorized: bool,
    },
    /// Nothing was written.
    Refused(SignupRefusal),
}

impl Signup {
    /// What the user is told.
    pub fn message(&self) -> String {
        match self {
            Self::Created {
                authorized: true, ..
            } => "The signup was successful! You can now go to the home page and log in to \
                  the system."
                .to_owned(),
            Self::Created { .. } => "Your information has been sent to the admin.".to_owned(),
            Self::Refused(r) => r.message(),
        }
    }
}

/// What a login attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Login {
    /// The password is right and the account authorized: the user's name.
    Success(String),
    /// Unknown name, wrong password, or a locked account.
    Invalid,
    /// The password is right but no admin has authorized the account.
    NotAuthorized(String),
}

impl Login {
    /// What the user is told when refused (NativeAuthenticator's wording).
    pub fn message(&self) -> String {
        match self {
            Self::Success(_) => String::new(),
            Self::Invalid => "Invalid username or password.".to_owned(),
            Self::NotAuthorized(name) => {
                format!("User {name} has not been authorized by an administrator yet.")
            }
        }
    }
}

/// What a password change came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordChange {
    /// The new password is in place.
    Changed,
    /// The current password given is wrong (or there is no account).
    WrongPassword,
    /// The new password and its confirmation differ.
    ConfirmationMismatch,
    /// The new password is too weak.
    Weak(Weakness),
}

impl PasswordChange {
    /// What the user is told (NativeAuthenticator's wording).
    pub fn message(self) -> String {
        match self {
            Self::Changed => "Your password has been changed successfully!".to_owned(),
            Self::WrongPassword => {
                "Your current password was incorrect. Please try again.".to_owned()
            }
            Self::ConfirmationMismatch => {
                "Your new password didn't match the confirmation. Please try again.".to_owned()
            }
            Self::Weak(w) => w.message(),
        }
    }
}

/// Whether `password` is on the bundled list of common passwords (exact,
/// case-sensitive match, as NativeAuthenticator checks).
pub fn is_common_password(password: &str) -> bool {
    COMMON_PASSWORDS
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .any(|l| l == password)
}

/// Hashes `password` with Argon2id (default parameters, random salt) into
/// a PHC string. CPU-heavy: call it off the async threads.
pub fn hash_password(password: &str) -> Result<String, NativeError> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| NativeError::Hash(e.to_string()))
}

/// Whether `password` matches the PHC string `hash` (with the parameters
/// stored in it). A malformed hash matches nothing. CPU-heavy.
pub fn verify_password(password: &str, hash: &str) -> bool {
    Argon2::default()
        .verify_password(password.as_bytes(), hash)
        .is_ok()
}

/// Bounds how many Argon2 computations run at once (each takes about
/// 19 MiB and tens of milliseconds of one core), so a flood of logins or
/// signups queues instead of exhausting memory and the blocking pool.
/// Cheap to clone; clones share the bound.
#[derive(Debug, Clone)]
pub struct HashLimit(Arc<Semaphore>);

impl HashLimit {
    /// At most `permits` hashes at once (at least one).
    pub fn new(permits: usize) -> Self {
        Self(Arc::new(Semaphore::new(permits.max(1))))
    }

    /// One hash per core.
    pub fn per_core() -> Self {
        Self::new(std::thread::available_parallelism().map_or(2, usize::from))
    }

    /// Runs `work` on the blocking pool once a permit is free.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, NativeError> {
        let _permit = self
            .0
            .acquire()
            .await
            .map_err(|e| NativeError::Hash(e.to_string()))?;
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| NativeError::Hash(e.to_string()))
    }

    async fn hash(&self, password: &str) -> Result<String, NativeError> {
        let password = password.to_owned();
        self.run(move || hash_password(&password)).await?
    }

    async fn verify(&self, password: &str, hash: &str) -> Result<bool, NativeError> {
        let (password, hash) = (password.to_owned(), hash.to_owned());
        self.run(move || verify_password(&password, &hash)).await
    }
}

/// NativeAuthenticator's email rule:
/// `^[A-Za-z0-9.+_-]+@[A-Za-z0-9._-]+\.[a-zA-Z]*$`.
fn valid_email(address: &str) -> bool {
    let Some((local, domain)) = address.split_once('@') else {
        return false;
    };
    let local_ok = !local.is_empty()
        && local
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".+_-".contains(&b));
    let domain_ok = domain
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        && domain.rfind('.').is_some_and(|dot| {
            dot > 0 && domain[dot + 1..].bytes().all(|b| b.is_ascii_alphabetic())
        });
    address.len() <= MAX_EMAIL_LEN && local_ok && domain_ok
}

/// The native authenticator over a database and its settings.
#[derive(Debug, Clone, Copy)]
pub struct NativeAuth<'a> {
    db: &'a Db,
    config: &'a AuthenticatorConfig,
    limit: &'a HashLimit,
}

impl<'a> NativeAuth<'a> {
    /// The authenticator for `db` with the `[authenticator]` settings,
    /// hashing within `limit`.
    pub fn new(db: &'a Db, config: &'a AuthenticatorConfig, limit: &'a HashLimit) -> Self {
        Self { db, config, limit }
    }

    /// The password rules: length in characters, then the common list.
    pub fn check_strength(&self, password: &str) -> Result<(), Weakness> {
        let minimum = self.config.minimum_password_length;
        if password.chars().count() < minimum as usize {
            return Err(Weakness::TooShort { minimum });
        }
        if self.config.check_common_password && is_common_password(password) {
            return Err(Weakness::Common);
        }
        Ok(())
    }

    /// Whether a new account called `name` is authorized at once.
    fn pre_authorized(&self, name: &str) -> bool {
        self.config.open_signup
            || self
                .config
                .admin_users
                .iter()
                .chain(&self.config.allowed_users)
                .any(|n| names::normalize(n) == name)
    }

    /// Signs an account up. `email` is ignored unless
    /// `ask_email_on_signup`; an empty one counts as none.
    #[tracing::instrument(skip_all)]
    pub async fn signup(
        &self,
        username: &str,
        password: &str,
        confirmation: &str,
        email: Option<&str>,
    ) -> Result<Signup, NativeError> {
        let refused = |r| Ok(Signup::Refused(r));
        if !self.config.enable_signup {
            return refused(SignupRefusal::Disabled);
        }
        let name = match names::username(username) {
            Ok(n) => n,
            Err(e) => return refused(SignupRefusal::InvalidName(e)),
        };
        if self.db.find_native_user(&name).await?.is_some() {
            return refused(SignupRefusal::Taken);
        }
        if password != confirmation {
            return refused(SignupRefusal::ConfirmationMismatch);
        }
        if let Err(w) = self.check_strength(password) {
            return refused(SignupRefusal::Weak(w));
        }
        let email = match email.map(str::trim).filter(|e| !e.is_empty()) {
            Some(e) if self.config.ask_email_on_signup => {
                if !valid_email(e) {
                    return refused(SignupRefusal::InvalidEmail);
                }
                Some(e)
            }
            _ => None,
        };
        let authorized = self.pre_authorized(&name);
        let hash = self.limit.hash(password).await?;
        match self
            .db
            .insert_native_user(&name, &hash, authorized, email)
            .await?
        {
            Some(_) => {
                tracing::info!(user.name = %name, authorized, "native account signed up");
                Ok(Signup::Created {
                    username: name,
                    authorized,
                })
            }
            // taken between the check and the insert
            None => refused(SignupRefusal::Taken),
        }
    }

    /// Checks a login. Unknown names cost one hash too, so the answer's
    /// timing does not tell which names have accounts.
    #[tracing::instrument(skip_all)]
    pub async fn login(&self, username: &str, password: &str) -> Result<Login, NativeError> {
        let Ok(name) = names::username(username) else {
            return Ok(Login::Invalid);
        };
        let Some(account) = self.db.find_native_user(&name).await? else {
            // Same work as a verify; the hash itself is not needed.
            let _equal_cost = self.limit.hash(password).await?;
            return Ok(Login::Invalid);
        };
        let valid = self.limit.verify(password, &account.password_hash).await?;
        let now = time::OffsetDateTime::now_utc();
        let allowed = self.config.allowed_failed_logins;
        let locked = allowed > 0
            && account
                .locked_until
                .as_deref()
                .is_some_and(|until| until > timestamp(now).as_str());
        if valid && !account.is_authorized {
            // NativeAuthenticator says so even to a locked account: only
            // the holder of the right password learns it.
            if !locked {
                self.failed(&account, now).await?;
            }
            return Ok(Login::NotAuthorized(name));
        }
        if locked {
            tracing::info!(user.name = %name, "login refused: account locked after failed logins");
            return Ok(Login::Invalid);
        }
        if valid {
            self.db.reset_native_login_failures(&name).await?;
            return Ok(Login::Success(name));
        }
        self.failed(&account, now).await?;
        Ok(Login::Invalid)
    }

    async fn failed(
        &self,
        account: &NativeUserRow,
        now: time::OffsetDateTime,
    ) -> Result<(), NativeError> {
        let allowed = self.config.allowed_failed_logins;
        let seconds = i64::try_from(self.config.seconds_before_next_try).unwrap_or(i64::MAX);
        let until = now
            .checked_add(time::Duration::seconds(seconds))
            .unwrap_or(now);
        self.db
            .record_native_login_failure(&account.username, allowed, &timestamp(until))
            .await?;
        let failures = account.login_failures + 1;
        if allowed > 0 && failures >= i64::from(allowed) {
            tracing::warn!(
                user.name = %account.username,
                failures,
                seconds = self.config.seconds_before_next_try,
                "native account locked after failed logins"
            );
        }
        Ok(())
    }

    /// Changes the password of `username` (the logged-in user), given the
    /// current one.
    #[tracing::instrument(skip_all, fields(user.name = %username))]
    pub async fn change_password(
        &self,
        username: &str,
        old: &str,
        new: &str,
        confirmation: &str,
    ) -> Result<PasswordChange, NativeError> {
        let Some(account) = self.db.find_native_user(username).await? else {
            return Ok(PasswordChange::WrongPassword);
        };
        if !self.limit.verify(old, &account.password_hash).await? {
            return Ok(PasswordChange::WrongPassword);
        }
        if new != confirmation {
            return Ok(PasswordChange::ConfirmationMismatch);
        }
        if let Err(w) = self.check_strength(new) {
            return Ok(PasswordChange::Weak(w));
        }
        let hash = self.limit.hash(new).await?;
        if !self.db.set_native_password(username, &hash).await? {
            return Ok(PasswordChange::WrongPassword);
        }
        tracing::info!("native account changed its password");
        Ok(PasswordChange::Changed)
    }

    /// Every account, in signup order.
    pub async fn accounts(&self) -> Result<Vec<NativeUserRow>, NativeError> {
        Ok(self.db.list_native_users().await?)
    }

    /// Authorizes or unauthorizes an account (authorizing makes its hub
    /// user); whether the account exists.
    #[tracing::instrument(skip_all, fields(user.name = %username))]
    pub async fn set_authorized(
        &self,
        username: &str,
        authorized: bool,
    ) -> Result<bool, NativeError> {
        if self.db.find_native_user(username).await?.is_none() {
            return Ok(false);
        }
        self.db.set_native_authorized(username, authorized).await?;
        tracing::info!(authorized, "native account authorization changed");
        Ok(true)
    }

    /// Deletes an account and its hub user; whether it existed.
    #[tracing::instrument(skip_all, fields(user.name = %username))]
    pub async fn delete(&self, username: &str) -> Result<bool, NativeError> {
        let existed = self.db.delete_native_user(username).await?;
        if existed {
            tracing::info!("native account and its user deleted");
        }
        Ok(existed)
    }
}

/// The native authenticator as the hub's login flow sees it
/// ([`Authenticator`]): logins through [`NativeAuth::login`], and the
/// signup, password and authorization pages ([`crate::pages::native`]).
#[derive(Debug, Clone)]
pub struct NativeAuthenticator {
    enable_signup: bool,
    limit: HashLimit,
}

impl NativeAuthenticator {
    /// The authenticator for the `[authenticator]` settings.
    pub fn new(config: &AuthenticatorConfig) -> Self {
        Self {
            enable_signup: config.enable_signup,
            limit: HashLimit::per_core(),
        }
    }
}

impl Authenticator for NativeAuthenticator {
    fn class_name(&self) -> &'static str {
        "jhub.auth.NativeAuthenticator"
    }

    /// Wrong password, unknown name, locked account: `Ok(None)`. The right
    /// password of an account still waiting for approval:
    /// [`AuthError::Denied`] with NativeAuthenticator's message.
    fn authenticate<'a>(
        &'a self,
        st: &'a AppState,
        username: &'a str,
        password: &'a Secret,
    ) -> BoxFuture<'a, Result<Option<Authenticated>, AuthError>> {
        Box::pin(async move {
            let auth = NativeAuth::new(&st.db, &st.config.authenticator, &self.limit);
            match auth.login(username, password.expose()).await {
                Ok(Login::Success(_)) => Ok(Some(Authenticated::default())),
                Ok(Login::Invalid) => Ok(None),
                Ok(refused @ Login::NotAuthorized(_)) => Err(AuthError::Denied(refused.message())),
                Err(NativeError::Db(e)) => Err(AuthError::Db(e)),
                Err(e) => Err(AuthError::Internal(e.to_string())),
            }
        })
    }

    /// An admin's approval (or open signup, or `admin_users` /
    /// `allowed_users` at signup) is this authenticator's allow list: an
    /// account that authenticated is authorized, so it is allowed.
    /// `blocked_users` still applies.
    fn check_allowed<'a>(
        &'a self,
        _st: &'a AppState,
        _username: &'a str,
    ) -> BoxFuture<'a, Result<bool, AuthError>> {
        Box::pin(async { Ok(true) })
    }

    fn routes(&self) -> Router<AppState> {
        use crate::pages::native as p;
        Router::new()
            .route(p::SIGNUP_URL, get(p::signup_form).post(p::signup_submit))
            .route(
                p::CHANGE_PASSWORD_URL,
                get(p::change_password_form).post(p::change_password_submit),
            )
            .route(p::AUTHORIZE_URL, get(p::authorize_list))
            .route(
                &format!("{}/{{username}}", p::AUTHORIZE_URL),
                post(p::authorize_action),
            )
            // the pages hash within the same bound as logins
            .layer(axum::Extension(self.limit.clone()))
    }

    fn login_footer(&self) -> Option<Markup> {
        self.enable_signup.then(crate::pages::native::login_footer)
    }

    fn home_links(&self, admin: bool) -> Vec<(&'static str, &'static str)> {
        use crate::pages::native as p;
        let mut links = vec![(p::CHANGE_PASSWORD_URL, "Change password")];
        if admin {
            links.push((p::AUTHORIZE_URL, "Authorize users"));
        }
        links
    }

    fn has_own_allow_list(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::open_for_test;

    fn config() -> AuthenticatorConfig {
        AuthenticatorConfig {
            admin_users: vec!["JHTest-Admin".into()],
            ..Default::default()
        }
    }

    #[test]
    fn argon2id_hashes_verify_and_differ() {
        let h1 = hash_password("correct horse").unwrap();
        let h2 = hash_password("correct horse").unwrap();
        assert!(h1.starts_with("$argon2id$v=19$"), "{h1}");
        assert_ne!(h1, h2, "salts are random");
        assert!(verify_password("correct horse", &h1));
        assert!(!verify_password("correct horsE", &h1));
        assert!(!verify_password("correct horse", "not a hash"));
        assert!(!verify_password("", ""));
    }

    #[test]
    fn common_list_and_emails() {
        assert!(is_common_password("123456"));
        assert!(is_common_password("password"));
        assert!(is_common_password("qwerty"));
        assert!(!is_common_password("Tr0ub4dor&3-jhtest"));
        assert!(!is_common_password(""));
        assert!(!is_common_password(
            "# The 500 most common passwords, most common first: the"
        ));
        for ok in [
            "a@b.c",
            "jhtest.user+x@example.org",
            "x@mail.example.",
            "x_y@a-b.c",
        ] {
            assert!(valid_email(ok), "{ok}");
        }
        for bad in [
            "", "a", "@b.c", "a@", "a@b", "a@.c", "a b@c.d", "a@b.c1", "a@@b.c", "<a>@b.c",
        ] {
            assert!(!valid_email(bad), "{bad}");
        }
    }

    #[tokio::test]
    async fn strength_rules() {
        let (_dir, db) = open_for_test().await;
        let limit = HashLimit::new(2);
        let mut c = config();
        let auth = NativeAuth::new(&db, &c, &limit);
        // NativeAuthenticator's defaults: one character, no list
        assert_eq!(
            auth.check_strength(""),
            Err(Weakness::TooShort { minimum: 1 })
        );
        assert_eq!(auth.check_strength("123456"), Ok(()));
        c.minimum_password_length = 8;
        c.check_common_password = true;
        let auth = NativeAuth::new(&db, &c, &limit);
        // characters, not bytes
        assert_eq!(auth.check_strength("ääääääää"), Ok(()));
        assert_eq!(
            auth.check_strength("äääääää"),
            Err(Weakness::TooShort { minimum: 8 })
        );
        assert_eq!(auth.check_strength("password"), Err(Weakness::Common));
        assert_eq!(auth.check_strength("12345678"), Err(Weakness::Common));
    }

    #[tokio::test]
    async fn signup_validates_before_writing() {
        let (_dir, db) = open_for_test().await;
        let limit = HashLimit::new(2);
        let mut c = config();
        c.minimum_password_length = 6;
        c.check_common_password = true;
        let auth = NativeAuth::new(&db, &c, &limit);
        for name in ["-u root", "../x", "a b", "jhtest-аlice", "", "root;id"] {
            let s = auth
                .signup(name, "pw-jhtest-1", "pw-jhtest-1", None)
                .await
                .unwrap();
            assert!(
                matches!(s, Signup::Refused(SignupRefusal::InvalidName(_))),
                "{name}: {s:?}"
            );
        }
        assert!(matches!(
            auth.signup("jhtest-a", "pw-jhtest-1", "pw-jhtest-2", None)
                .await
                .unwrap(),
            Signup::Refused(SignupRefusal::ConfirmationMismatch)
        ));
        assert_eq!(
            auth.signup("jhtest-a", "short", "short", None)
                .await
                .unwrap(),
            Signup::Refused(SignupRefusal::Weak(Weakness::TooShort { minimum: 6 }))
        );
        assert_eq!(
            auth.signup("jhtest-a", "qwerty", "qwerty", None)
                .await
                .unwrap(),
            Signup::Refused(SignupRefusal::Weak(Weakness::Common))
        );
        assert!(db.list_native_users().await.unwrap().is_empty());

        // normalized, waits for approval, no hub user yet
        let s = auth
            .signup("  JHTest-A ", "pw-jhtest-1", "pw-jhtest-1", None)
            .await
            .unwrap();
        assert_eq!(
            s,
            Signup::Created {
                username: "jhtest-a".into(),
                authorized: false
            }
        );
        assert_eq!(s.message(), "Your information has been sent to the admin.");
        assert!(db.find_user("jhtest-a").await.unwrap().is_none());
        let row = db.find_native_user("jhtest-a").await.unwrap().unwrap();
        assert!(row.password_hash.starts_with("$argon2id$"));
        assert!(!format!("{row:?}").contains("argon2"), "no hash in Debug");
        assert_eq!(
            auth.signup("jhtest-A", "other-pw-1", "other-pw-1", None)
                .await
                .unwrap(),
            Signup::Refused(SignupRefusal::Taken)
        );

        // admin_users are authorized at once, and get their hub user
        let s = auth
            .signup("jhtest-admin", "pw-jhtest-1", "pw-jhtest-1", None)
            .await
            .unwrap();
        assert!(
            matches!(
                s,
                Signup::Created {
                    authorized: true,
                    ..
                }
            ),
            "{s:?}"
        );
        assert!(db.find_user("jhtest-admin").await.unwrap().is_some());

        // email only when asked, and checked then
        auth.signup("jhtest-b", "pw-jhtest-1", "pw-jhtest-1", Some("x@y.z"))
            .await
            .unwrap();
        assert_eq!(
            db.find_native_user("jhtest-b")
                .await
                .unwrap()
                .unwrap()
                .email,
            None
        );
        c.ask_email_on_signup = true;
        let auth = NativeAuth::new(&db, &c, &limit);
        assert_eq!(
            auth.signup("jhtest-c", "pw-jhtest-1", "pw-jhtest-1", Some("nope"))
                .await
                .unwrap(),
            Signup::Refused(SignupRefusal::InvalidEmail)
        );
        auth.signup(
            "jhtest-c",
            "pw-jhtest-1",
            "pw-jhtest-1",
            Some(" c@example.org "),
        )
        .await
        .unwrap();
        assert_eq!(
            db.find_native_user("jhtest-c")
                .await
                .unwrap()
                .unwrap()
                .email
                .as_deref(),
            Some("c@example.org")
        );

        c.enable_signup = false;
        let auth = NativeAuth::new(&db, &c, &limit);
        assert_eq!(
            auth.signup("jhtest-d", "pw-jhtest-1", "pw-jhtest-1", None)
                .await
                .unwrap(),
            Signup::Refused(SignupRefusal::Disabled)
        );
    }

    #[tokio::test]
    async fn approval_login_and_lockout() {
        let (_dir, db) = open_for_test().await;
        let limit = HashLimit::new(2);
        let mut c = config();
        c.allowed_failed_logins = 2;
        c.seconds_before_next_try = 3600;
        let auth = NativeAuth::new(&db, &c, &limit);
        auth.signup("jhtest-a", "pw-right", "pw-right", None)
            .await
            .unwrap();

        assert_eq!(
            auth.login("jhtest-a", "pw-right").await.unwrap(),
            Login::NotAuthorized("jhtest-a".into())
        );
        assert_eq!(
            auth.login("jhtest-a", "pw-wrong").await.unwrap(),
            Login::Invalid
        );
        assert_eq!(
            auth.login("nobody", "pw-right").await.unwrap(),
            Login::Invalid
        );
        assert_eq!(
            auth.login("-u root", "pw-right").await.unwrap(),
            Login::Invalid
        );

        assert!(auth.set_authorized("jhtest-a", true).await.unwrap());
        assert!(!auth.set_authorized("nobody", true).await.unwrap());
        let user = db.find_user("jhtest-a").await.unwrap().unwrap();
        assert!(!user.admin);
        // the two refusals above were failures: the account is locked now
        assert_eq!(
            auth.login("jhtest-a", "pw-right").await.unwrap(),
            Login::Invalid
        );
        db.expire_native_lock("jhtest-a").await.unwrap();
        assert_eq!(
            auth.login(" JHTEST-A", "pw-right").await.unwrap(),
            Login::Success("jhtest-a".into())
        );
        let row = db.find_native_user("jhtest-a").await.unwrap().unwrap();
        assert_eq!((row.login_failures, row.locked_until), (0, None));

        // two failures lock; the right password is refused while locked
        assert_eq!(auth.login("jhtest-a", "x").await.unwrap(), Login::Invalid);
        assert_eq!(
            auth.login("jhtest-a", "pw-right").await.unwrap(),
            Login::Success("jhtest-a".into())
        );
        assert_eq!(auth.login("jhtest-a", "x").await.unwrap(), Login::Invalid);
        assert_eq!(auth.login("jhtest-a", "y").await.unwrap(), Login::Invalid);
        assert_eq!(
            auth.login("jhtest-a", "pw-right").await.unwrap(),
            Login::Invalid
        );
        let locked = db.find_native_user("jhtest-a").await.unwrap().unwrap();
        assert_eq!(locked.login_failures, 2, "locked attempts are not counted");
        // as in NativeAuthenticator, the count outlives the lock: one more
        // failure after it ends locks again at once
        db.expire_native_lock("jhtest-a").await.unwrap();
        assert_eq!(auth.login("jhtest-a", "z").await.unwrap(), Login::Invalid);
        assert_eq!(
            auth.login("jhtest-a", "pw-right").await.unwrap(),
            Login::Invalid
        );
        db.expire_native_lock("jhtest-a").await.unwrap();
        assert_eq!(
            auth.login("jhtest-a", "pw-right").await.unwrap(),
            Login::Success("jhtest-a".into())
        );

        // unauthorized again: refused; the hub user stays
        assert!(auth.set_authorized("jhtest-a", false).await.unwrap());
        assert_eq!(
            auth.login("jhtest-a", "pw-right").await.unwrap(),
            Login::NotAuthorized("jhtest-a".into())
        );
        assert!(db.find_user("jhtest-a").await.unwrap().is_some());

        // lock-out off (the default): failures never lock
        c.allowed_failed_logins = 0;
        let auth = NativeAuth::new(&db, &c, &limit);
        auth.set_authorized("jhtest-a", true).await.unwrap();
        for _ in 0..5 {
            assert_eq!(auth.login("jhtest-a", "x").await.unwrap(), Login::Invalid);
        }
        assert_eq!(
            auth.login("jhtest-a", "pw-right").await.unwrap(),
            Login::Success("jhtest-a".into())
        );
    }

    #[tokio::test]
    async fn password_change_delete_and_user_triggers() {
        let (_dir, db) = open_for_test().await;
        let limit = HashLimit::new(2);
        let mut c = config();
        c.open_signup = true;
        c.minimum_password_length = 4;
        let auth = NativeAuth::new(&db, &c, &limit);
        let s = auth
            .signup("jhtest-a", "pw-old", "pw-old", None)
            .await
            .unwrap();
        assert!(matches!(
            s,
            Signup::Created {
                authorized: true,
                ..
            }
        ));
        assert!(s.message().starts_with("The signup was successful!"));
        assert_eq!(
            auth.login("jhtest-a", "pw-old").await.unwrap(),
            Login::Success("jhtest-a".into())
        );

        assert_eq!(
            auth.change_password("jhtest-a", "wrong", "pw-new", "pw-new")
                .await
                .unwrap(),
            PasswordChange::WrongPassword
        );
        assert_eq!(
            auth.change_password("jhtest-a", "pw-old", "pw-new", "pw-neW")
                .await
                .unwrap(),
            PasswordChange::ConfirmationMismatch
        );
        assert_eq!(
            auth.change_password("jhtest-a", "pw-old", "pw", "pw")
                .await
                .unwrap(),
            PasswordChange::Weak(Weakness::TooShort { minimum: 4 })
        );
        assert_eq!(
            auth.change_password("nobody", "pw-old", "pw-new", "pw-new")
                .await
                .unwrap(),
            PasswordChange::WrongPassword
        );
        assert_eq!(
            auth.change_password("jhtest-a", "pw-old", "pw-new", "pw-new")
                .await
                .unwrap(),
            PasswordChange::Changed
        );
        assert_eq!(
            auth.login("jhtest-a", "pw-old").await.unwrap(),
            Login::Invalid
        );
        assert_eq!(
            auth.login("jhtest-a", "pw-new").await.unwrap(),
            Login::Success("jhtest-a".into())
        );

        // renaming the hub user renames the account; deleting deletes it
        let user = db.find_user("jhtest-a").await.unwrap().unwrap();
        db.update_user(user.id, Some("jhtest-r"), None)
            .await
            .unwrap();
        assert!(db.find_native_user("jhtest-a").await.unwrap().is_none());
        assert_eq!(
            auth.login("jhtest-r", "pw-new").await.unwrap(),
            Login::Success("jhtest-r".into())
        );
        db.delete_user(user.id).await.unwrap();
        assert!(db.find_native_user("jhtest-r").await.unwrap().is_none());

        // delete from the authorization page takes the hub user along
        auth.signup("jhtest-b", "pw-b-1", "pw-b-1", None)
            .await
            .unwrap();
        assert!(db.find_user("jhtest-b").await.unwrap().is_some());
        assert!(auth.delete("jhtest-b").await.unwrap());
        assert!(!auth.delete("jhtest-b").await.unwrap());
        assert!(db.find_user("jhtest-b").await.unwrap().is_none());
        assert!(auth.accounts().await.unwrap().is_empty());
        assert_eq!(
            auth.login("jhtest-b", "pw-b-1").await.unwrap(),
            Login::Invalid
        );
    }
}
