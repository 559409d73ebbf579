//! The native authenticator's accounts (`native_users`): one row per
//! signed-up name, with its Argon2 password hash, whether an admin
//! authorized it, and its failed-login count and lock.
//!
//! An account is not a hub user: the `users` row is made when the account
//! is authorized (or at its first login), as JupyterHub makes the user at
//! login. Once both exist they go together: deleting or renaming the user
//! deletes or renames the account (triggers in the migrations).

use sqlx::FromRow;

use super::{Db, DbError, UserRow, now};

/// A native account. Never `Debug`: it holds a password hash.
#[derive(Clone, FromRow)]
pub struct NativeUserRow {
    /// Row id.
    pub id: i64,
    /// The (normalized, validated) username.
    pub username: String,
    /// The password's Argon2 PHC string.
    pub password_hash: String,
    /// Whether an admin authorized the account (or signup was open).
    pub is_authorized: bool,
    /// The address given at signup, if asked for.
    pub email: Option<String>,
    /// Failed logins since the last successful one.
    pub login_failures: i64,
    /// Until when logins are refused (API timestamp form), if locked.
    pub locked_until: Option<String>,
}

impl std::fmt::Debug for NativeUserRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NativeUserRow")
            .field("id", &self.id)
            .field("username", &self.username)
            .field("is_authorized", &self.is_authorized)
            .field("login_failures", &self.login_failures)
            .field("locked_until", &self.locked_until)
            .finish_non_exhaustive()
    }
}

const NATIVE_COLUMNS: &str =
    "id, username, password_hash, is_authorized, email, login_failures, locked_until";

impl Db {
    /// The account called `username`.
    pub async fn find_native_user(&self, username: &str) -> Result<Option<NativeUserRow>, DbError> {
        Ok(sqlx::query_as(&format!(
            "SELECT {NATIVE_COLUMNS} FROM native_users WHERE username = $1"
        ))
        .bind(username)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Every account, in signup order.
    pub async fn list_native_users(&self) -> Result<Vec<NativeUserRow>, DbError> {
        Ok(sqlx::query_as(&format!(
            "SELECT {NATIVE_COLUMNS} FROM native_users ORDER BY id"
        ))
        .fetch_all(&self.pool)
        .await?)
    }

    /// Writes a new account; `None` when the name is taken (atomically, so
    /// two signups racing for one name cannot both succeed). An authorized
    /// account gets its hub user in the same transaction.
    pub async fn insert_native_user(
        &self,
        username: &str,
        password_hash: &str,
        authorized: bool,
        email: Option<&str>,
    ) -> Result<Option<NativeUserRow>, DbError> {
        let mut tx = super::sqlite::begin_write(&self.pool).await?;
        let row: Option<NativeUserRow> = sqlx::query_as(&format!(
            "INSERT INTO native_users (username, password_hash, is_authorized, email) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (username) DO NOTHING \
             RETURNING {NATIVE_COLUMNS}"
        ))
        .bind(username)
        .bind(password_hash)
        .bind(authorized)
        .bind(email)
        .fetch_optional(&mut *tx)
        .await?;
        if row.is_some() && authorized {
            ensure_user(&mut tx, username).await?;
        }
        tx.commit().await?;
        Ok(row)
    }

    /// Authorizes (or unauthorizes) an account; authorizing also makes its
    /// hub user if there is none. Returns the hub user when authorized,
    /// and `Ok(None)` as well when there is no such account: check
    /// [`Db::find_native_user`] first to tell the two apart.
    pub async fn set_native_authorized(
        &self,
        username: &str,
        authorized: bool,
    ) -> Result<Option<UserRow>, DbError> {
        let mut tx = super::sqlite::begin_write(&self.pool).await?;
        let changed = sqlx::query("UPDATE native_users SET is_authorized = $1 WHERE username = $2")
            .bind(authorized)
            .bind(username)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        let user = if changed > 0 && authorized {
            Some(ensure_user(&mut tx, username).await?)
        } else {
            None
        };
        tx.commit().await?;
        Ok(user)
    }

    /// Replaces an account's password hash; whether the account exists.
    pub async fn set_native_password(
        &self,
        username: &str,
        password_hash: &str,
    ) -> Result<bool, DbError> {
        let n = sqlx::query("UPDATE native_users SET password_hash = $1 WHERE username = $2")
            .bind(password_hash)
            .bind(username)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(n > 0)
    }

    /// Counts a failed login. When the count reaches `allowed` (and
    /// `allowed` is not 0) the account is locked until `lock_until`; as in
    /// NativeAuthenticator the count is kept when the lock ends, so the
    /// next failure locks it again at once.
    pub async fn record_native_login_failure(
        &self,
        username: &str,
        allowed: u32,
        lock_until: &str,
    ) -> Result<(), DbError> {
        sqlx::query(
            "UPDATE native_users SET login_failures = login_failures + 1, \
             locked_until = CASE WHEN $1 > 0 AND login_failures + 1 >= $1 THEN $2 \
             ELSE locked_until END WHERE username = $3",
        )
        .bind(i64::from(allowed))
        .bind(lock_until)
        .bind(username)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Moves an account's lock into the past, as if its time ran out.
    #[cfg(test)]
    pub(crate) async fn expire_native_lock(&self, username: &str) -> Result<(), DbError> {
        sqlx::query(
            "UPDATE native_users SET locked_until = '2000-01-01T00:00:00.000000Z' \
             WHERE username = $1 AND locked_until IS NOT NULL",
        )
        .bind(username)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Forgets failed logins and any lock (after a successful login).
    pub async fn reset_native_login_failures(&self, username: &str) -> Result<(), DbError> {
        sqlx::query(
            "UPDATE native_users SET login_failures = 0, locked_until = NULL \
             WHERE username = $1 AND (login_failures <> 0 OR locked_until IS NOT NULL)",
        )
        .bind(username)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Ends the browser sessions of the user called `username` (and the
    /// OAuth tokens issued in them), except the one stored as `keep`: an
    /// unauthorized account is logged out at once, and a password change
    /// logs out every other browser.
    pub async fn end_sessions_of(&self, username: &str, keep: Option<&str>) -> Result<(), DbError> {
        // '' is never a stored hash, so `None` keeps nothing.
        let keep = keep.unwrap_or("");
        let mut tx = super::sqlite::begin_write(&self.pool).await?;
        sqlx::query(
            "DELETE FROM api_tokens WHERE session_id IN (SELECT s.hashed FROM sessions s \
             JOIN users u ON u.id = s.user_id WHERE u.name = $1 AND s.hashed <> $2)",
        )
        .bind(username)
        .bind(keep)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "DELETE FROM sessions WHERE hashed <> $2 \
             AND user_id IN (SELECT id FROM users WHERE name = $1)",
        )
        .bind(username)
        .bind(keep)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Deletes an account and its hub user, if any, in one transaction;
    /// whether there was an account.
    pub async fn delete_native_user(&self, username: &str) -> Result<bool, DbError> {
        let mut tx = super::sqlite::begin_write(&self.pool).await?;
        let n = sqlx::query("DELETE FROM native_users WHERE username = $1")
            .bind(username)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n > 0 {
            sqlx::query("DELETE FROM users WHERE name = $1")
                .bind(username)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(n > 0)
    }
}

/// The hub user called `name`, made (with the `user` role) if missing.
async fn ensure_user(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    name: &str,
) -> Result<UserRow, DbError> {
    let created: Option<UserRow> = sqlx::query_as(
        "INSERT INTO users (name, admin, created) VALUES ($1, FALSE, $2) \
         ON CONFLICT (name) DO NOTHING RETURNING id, name, admin, created, last_activity",
    )
    .bind(name)
    .bind(now())
    .fetch_optional(&mut **tx)
    .await?;
    if let Some(row) = created {
        sqlx::query(
            "INSERT INTO user_role_map (user_id, role_id) \
             SELECT $1, id FROM roles WHERE name = 'user' ON CONFLICT DO NOTHING",
        )
        .bind(row.id)
        .execute(&mut **tx)
        .await?;
        tracing::info!(user.name = %name, "created the user of an authorized native account");
        return Ok(row);
    }
    Ok(
        sqlx::query_as("SELECT id, name, admin, created, last_activity FROM users WHERE name = $1")
            .bind(name)
            .fetch_one(&mut **tx)
            .await?,
    )
}
