//! Browser sessions ([`crate::session`]): one row per login, keyed by the
//! SHA-256 of the session id the login cookie carries.

use sqlx::FromRow;

use super::{Db, DbError};

/// The user behind a live session.
#[derive(Debug, Clone, FromRow, PartialEq, Eq)]
pub struct SessionUserRow {
    /// The session's row id.
    pub session_row: i64,
    /// The user's row id.
    pub id: i64,
    /// The username.
    pub name: String,
    /// Whether the user is an admin.
    pub admin: bool,
    /// The session's last recorded activity.
    pub last_activity: Option<String>,
}

impl Db {
    /// Stores a new session of `user_id`.
    pub async fn insert_session(
        &self,
        hashed: &str,
        user_id: i64,
        created: &str,
        expires_at: &str,
    ) -> Result<(), DbError> {
        sqlx::query(
            "INSERT INTO sessions (hashed, user_id, created, expires_at, last_activity) \
             VALUES ($1, $2, $3, $4, $3)",
        )
        .bind(hashed)
        .bind(user_id)
        .bind(created)
        .bind(expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The user of the session stored as `hashed`, unless it expired
    /// before `now`.
    pub async fn session_user(
        &self,
        hashed: &str,
        now: &str,
    ) -> Result<Option<SessionUserRow>, DbError> {
        Ok(sqlx::query_as(
            "SELECT s.id AS session_row, u.id, u.name, u.admin, s.last_activity \
             FROM sessions s JOIN users u ON u.id = s.user_id \
             WHERE s.hashed = $1 AND s.expires_at > $2",
        )
        .bind(hashed)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Records activity on a session.
    pub async fn touch_session(&self, session_row: i64, at: &str) -> Result<(), DbError> {
        sqlx::query("UPDATE sessions SET last_activity = $1 WHERE id = $2")
            .bind(at)
            .bind(session_row)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Ends the session stored as `hashed`, with the OAuth tokens issued
    /// in it and the codes not yet exchanged (their `session_id` is the
    /// session's stored hash), in one transaction.
    pub async fn delete_session(&self, hashed: &str) -> Result<(), DbError> {
        let mut tx = super::sqlite::begin_write(&self.pool).await?;
        sqlx::query("DELETE FROM api_tokens WHERE session_id = $1")
            .bind(hashed)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM oauth_codes WHERE session_id = $1")
            .bind(hashed)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM sessions WHERE hashed = $1")
            .bind(hashed)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Deletes sessions that expired before `now`; how many.
    pub async fn delete_expired_sessions(&self, now: &str) -> Result<u64, DbError> {
        Ok(sqlx::query("DELETE FROM sessions WHERE expires_at <= $1")
            .bind(now)
            .execute(&self.pool)
            .await?
            .rows_affected())
    }
}
