//! Users' servers (the `spawners` table): one row per default or named
//! server, with the process the hub started for it while it runs.

use sqlx::{FromRow, QueryBuilder, Sqlite};

use super::{Db, DbError, push_ids};

/// One server row.
#[derive(Debug, Clone, FromRow, PartialEq, Eq)]
pub struct ServerRow {
    /// Row id.
    pub id: i64,
    /// The owner's row id.
    pub user_id: i64,
    /// The server's name (`""` for the default server).
    pub name: String,
    /// The name shown to people.
    pub display_name: Option<String>,
    /// The server's process, while it runs.
    pub pid: Option<i64>,
    /// Its port on 127.0.0.1, while it runs.
    pub port: Option<i64>,
    /// `http://127.0.0.1:PORT`, while it runs.
    pub url: Option<String>,
    /// When it was started, while it runs.
    pub started: Option<String>,
    /// Last activity seen.
    pub last_activity: Option<String>,
    /// The spawner's state (JSON).
    pub state: String,
    /// The options it was (or will be) started with (JSON).
    pub user_options: String,
    /// `spawn` or `stop` while one is under way.
    pub pending: Option<String>,
    /// The process's start time (clock ticks after boot).
    pub start_time: Option<i64>,
    /// The server's API token.
    pub api_token_id: Option<i64>,
    /// Why its last start failed.
    pub failure: Option<String>,
}

/// A server and its owner's name.
#[derive(Debug, Clone, FromRow, PartialEq, Eq)]
pub struct OwnedServer {
    /// The server.
    #[sqlx(flatten)]
    pub server: ServerRow,
    /// The owner's name.
    pub user_name: String,
}

/// Where a started process is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Started<'a> {
    /// Its process id.
    pub pid: i64,
    /// Its start time (clock ticks after boot).
    pub start_time: Option<i64>,
    /// Its port on 127.0.0.1.
    pub port: i64,
    /// `http://127.0.0.1:PORT`.
    pub url: &'a str,
    /// The spawner state to keep (JSON).
    pub state: &'a str,
}

const COLUMNS: &str = "s.id, s.user_id, s.name, s.display_name, s.pid, s.port, s.url, \
     s.started, s.last_activity, s.state, s.user_options, s.pending, s.start_time, \
     s.api_token_id, s.failure";

/// Every server of the users `user_ids`, by user then name.
pub(super) async fn servers_of_users(
    conn: &mut sqlx::SqliteConnection,
    user_ids: &[i64],
) -> Result<Vec<ServerRow>, DbError> {
    let mut out = Vec::new();
    // within SQLite's limit on bound parameters
    for ids in user_ids.chunks(10_000) {
        let mut q: QueryBuilder<'_, Sqlite> = QueryBuilder::new(format!(
            "SELECT {COLUMNS} FROM spawners s WHERE s.user_id IN "
        ));
        push_ids(&mut q, ids);
        q.push(" ORDER BY s.user_id, s.name");
        out.extend(
            q.build_query_as::<ServerRow>()
                .fetch_all(&mut *conn)
                .await?,
        );
    }
    Ok(out)
}

impl Db {
    /// The server `name` of user `user_id`, if it exists.
    pub async fn find_server(
        &self,
        user_id: i64,
        name: &str,
    ) -> Result<Option<ServerRow>, DbError> {
        Ok(sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM spawners s WHERE s.user_id = $1 AND s.name = $2"
        ))
        .bind(user_id)
        .bind(name)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// The server `name` of user `user_id`, created (stopped) if missing.
    pub async fn ensure_server(
        &self,
        user_id: i64,
        name: &str,
        display_name: Option<&str>,
    ) -> Result<ServerRow, DbError> {
        sqlx::query(
            "INSERT INTO spawners (user_id, name, display_name) VALUES ($1, $2, $3) \
             ON CONFLICT (user_id, name) DO NOTHING",
        )
        .bind(user_id)
        .bind(name)
        .bind(display_name)
        .execute(&self.pool)
        .await?;
        self.find_server(user_id, name)
            .await?
            .ok_or(DbError::Sqlx(sqlx::Error::RowNotFound))
    }

    /// Every server of user `user_id`, by name.
    pub async fn servers_of_user(&self, user_id: i64) -> Result<Vec<ServerRow>, DbError> {
        Ok(sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM spawners s WHERE s.user_id = $1 ORDER BY s.name"
        ))
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Every server with a process or an operation under way, with its
    /// owner's name.
    pub async fn active_servers(&self) -> Result<Vec<OwnedServer>, DbError> {
        Ok(sqlx::query_as(&format!(
            "SELECT {COLUMNS}, u.name AS user_name FROM spawners s \
             JOIN users u ON u.id = s.user_id \
             WHERE s.pid IS NOT NULL OR s.pending IS NOT NULL ORDER BY s.id"
        ))
        .fetch_all(&self.pool)
        .await?)
    }

    /// How many servers run or are starting.
    pub async fn count_active_servers(&self) -> Result<i64, DbError> {
        let n: (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM spawners WHERE pid IS NOT NULL OR pending = 'spawn'",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(n.0)
    }

    /// How many named servers user `user_id` has.
    pub async fn count_named_servers(&self, user_id: i64) -> Result<i64, DbError> {
        let n: (i64,) =
            sqlx::query_as("SELECT COUNT(*) FROM spawners WHERE user_id = $1 AND name <> ''")
                .bind(user_id)
                .fetch_one(&self.pool)
                .await?;
        Ok(n.0)
    }

    /// Marks server `id` as starting with `user_options` and its new API
    /// token; clears the last failure.
    pub async fn server_spawn_pending(
        &self,
        id: i64,
        user_options: &str,
        api_token_id: i64,
    ) -> Result<(), DbError> {
        sqlx::query(
            "UPDATE spawners SET pending = 'spawn', user_options = $2, api_token_id = $3, \
             failure = NULL WHERE id = $1",
        )
        .bind(id)
        .bind(user_options)
        .bind(api_token_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records the process the helper started for server `id`.
    pub async fn server_process(&self, id: i64, p: &Started<'_>) -> Result<(), DbError> {
        sqlx::query(
            "UPDATE spawners SET pid = $2, start_time = $3, port = $4, url = $5, state = $6 \
             WHERE id = $1",
        )
        .bind(id)
        .bind(p.pid)
        .bind(p.start_time)
        .bind(p.port)
        .bind(p.url)
        .bind(p.state)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Marks server `id` ready (started `at`).
    pub async fn server_ready(&self, id: i64, at: &str) -> Result<(), DbError> {
        sqlx::query(
            "UPDATE spawners SET pending = NULL, started = $2, \
             last_activity = COALESCE(MAX(last_activity, $2), $2) WHERE id = $1",
        )
        .bind(id)
        .bind(at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Sets or clears the operation under way on server `id`.
    pub async fn server_pending(&self, id: i64, pending: Option<&str>) -> Result<(), DbError> {
        sqlx::query("UPDATE spawners SET pending = $2 WHERE id = $1")
            .bind(id)
            .bind(pending)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Marks server `id` stopped (with why its start failed, if it did)
    /// and deletes its API token.
    pub async fn server_stopped(&self, id: i64, failure: Option<&str>) -> Result<(), DbError> {
        let mut tx = super::sqlite::begin_write(&self.pool).await?;
        let token: Option<(Option<i64>,)> =
            sqlx::query_as("SELECT api_token_id FROM spawners WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
        sqlx::query(
            "UPDATE spawners SET pid = NULL, start_time = NULL, port = NULL, url = NULL, \
             started = NULL, pending = NULL, state = '{}', api_token_id = NULL, failure = $2 \
             WHERE id = $1",
        )
        .bind(id)
        .bind(failure)
        .execute(&mut *tx)
        .await?;
        if let Some((Some(token),)) = token {
            sqlx::query("DELETE FROM api_tokens WHERE id = $1")
                .bind(token)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Deletes server `id` (a stopped named server).
    pub async fn delete_server(&self, id: i64) -> Result<(), DbError> {
        sqlx::query("DELETE FROM spawners WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Advances server `id`'s last activity to `at` (never back).
    pub async fn touch_server(&self, id: i64, at: &str) -> Result<(), DbError> {
        sqlx::query(
            "UPDATE spawners SET last_activity = $2 \
             WHERE id = $1 AND (last_activity IS NULL OR last_activity < $2)",
        )
        .bind(id)
        .bind(at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{NewToken, TokenOwner};

    /// Ten servers recorded as stopped at the same moment (ten users'
    /// stops ending together): every one must be saved. Transactions that
    /// read before they write could not wait for each other and failed
    /// with "database is locked".
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_stops_are_all_recorded() {
        let (_dir, db) = crate::db::open_for_test().await;
        let names: Vec<String> = (0..10).map(|i| format!("jhtest-{i}")).collect();
        let users = db.create_users(&names, false).await.unwrap();
        let mut ids = Vec::new();
        for (i, u) in users.iter().enumerate() {
            let s = db.ensure_server(u.id, "", None).await.unwrap();
            let hashed = format!("{i:064x}");
            let token = db
                .insert_token(&NewToken {
                    hashed: &hashed,
                    prefix: "abcd",
                    owner: TokenOwner::User(u.id),
                    scopes: &[],
                    note: "Server at /user/x/",
                    expires_at: None,
                })
                .await
                .unwrap();
            db.server_spawn_pending(s.id, "{}", token).await.unwrap();
            let url = format!("http://127.0.0.1:{}", 20000 + i);
            db.server_process(
                s.id,
                &Started {
                    pid: 1000 + i as i64,
                    start_time: Some(1),
                    port: 20000 + i as i64,
                    url: &url,
                    state: "{}",
                },
            )
            .await
            .unwrap();
            db.server_ready(s.id, "2026-01-01T00:00:00.000000Z")
                .await
                .unwrap();
            ids.push(s.id);
        }
        let mut tasks = Vec::new();
        for id in ids.clone() {
            let db = db.clone();
            tasks.push(tokio::spawn(
                async move { db.server_stopped(id, None).await },
            ));
        }
        for t in tasks {
            t.await.unwrap().expect("every stop is recorded");
        }
        assert_eq!(db.active_servers().await.unwrap(), Vec::new());
        for u in &users {
            assert!(db.user_tokens(u.id).await.unwrap().is_empty());
        }
    }
}
