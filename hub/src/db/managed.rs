//! What hub-managed services and the idle culler keep in the database:
//! a managed service's pid and generated token, activity that only moves
//! forward, and the users the culler may delete.

use super::{Db, DbError, UserRow};

impl Db {
    /// Records the process of service `name` (`None` once it exited).
    pub async fn set_service_pid(&self, name: &str, pid: Option<i64>) -> Result<(), DbError> {
        sqlx::query("UPDATE services SET pid = $2 WHERE name = $1")
            .bind(name)
            .bind(pid)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The process of service `name`, while the hub runs it.
    pub async fn service_pid(&self, name: &str) -> Result<Option<i64>, DbError> {
        let row: Option<(Option<i64>,)> =
            sqlx::query_as("SELECT pid FROM services WHERE name = $1")
                .bind(name)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.and_then(|r| r.0))
    }

    /// Deletes the tokens of service `service_id` that carry `note`;
    /// how many.
    pub async fn delete_service_tokens_with_note(
        &self,
        service_id: i64,
        note: &str,
    ) -> Result<u64, DbError> {
        Ok(
            sqlx::query("DELETE FROM api_tokens WHERE service_id = $1 AND note = $2")
                .bind(service_id)
                .bind(note)
                .execute(&self.pool)
                .await?
                .rows_affected(),
        )
    }

    /// Advances user `id`'s last activity to `at` (never back).
    pub async fn advance_user_activity(&self, id: i64, at: &str) -> Result<(), DbError> {
        sqlx::query(
            "UPDATE users SET last_activity = $2 \
             WHERE id = $1 AND (last_activity IS NULL OR last_activity < $2)",
        )
        .bind(id)
        .bind(at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Users without a running or pending server whose last activity (or,
    /// never active, whose creation) is before `before`.
    pub async fn idle_users_without_servers(&self, before: &str) -> Result<Vec<UserRow>, DbError> {
        Ok(sqlx::query_as(
            "SELECT u.id, u.name, u.admin, u.created, u.last_activity FROM users u \
             WHERE COALESCE(u.last_activity, u.created) < $1 AND NOT EXISTS ( \
               SELECT 1 FROM spawners s WHERE s.user_id = u.id \
               AND (s.pid IS NOT NULL OR s.pending IS NOT NULL)) \
             ORDER BY u.id",
        )
        .bind(before)
        .fetch_all(&self.pool)
        .await?)
    }
}
