//! Everything SQLite-specific: opening the file (WAL, foreign keys, busy
//! timeout), and the backup `jhub upgrade-db` takes before migrating. The
//! rest of [`crate::db`] uses SQL that PostgreSQL accepts too.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use super::DbError;

/// The connection pool type of this back end.
pub type Pool = sqlx::SqlitePool;

/// How many rows a query's worker thread may send ahead of the task that
/// reads them. sqlx's default (50) is smaller than a page of users (up to
/// `api_page_max_limit`, 200), and a full channel makes the worker and the
/// task wake each other for every further row; with room for a whole page
/// the worker runs through the query without waiting.
const ROW_BUFFER: usize = 1024;

/// Opens (creating if needed) the SQLite database at `path`.
pub async fn connect(path: &Path) -> Result<Pool, DbError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| DbError::Open(format!("{}: {e}", dir.display())))?;
    }
    let options = SqliteConnectOptions::from_str("sqlite:")
        .map_err(DbError::Sqlx)?
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(10))
        .row_buffer_size(ROW_BUFFER);
    SqlitePoolOptions::new()
        .max_connections(8)
        // sqlx pings a connection when it goes back to the pool (to finish
        // what a cancelled query left behind) and, by default, once more
        // when it is taken out, for connections a server may have closed
        // meanwhile; a SQLite file cannot hang up, so the second ping would
        // only add a round trip to the connection's thread to every query
        .test_before_acquire(false)
        .connect_with(options)
        .await
        .map_err(|e| DbError::Open(format!("{}: {e}", path.display())))
}

/// Copies the database to `<file>.bak-<UTC timestamp>` (a consistent copy,
/// WAL included) and returns the copy's path.
pub async fn backup(pool: &Pool, path: &Path) -> Result<PathBuf, DbError> {
    let stamp = time::OffsetDateTime::now_utc()
        .format(time::macros::format_description!(
            "[year]-[month]-[day]-[hour][minute][second]"
        ))
        .map_err(|e| DbError::Open(e.to_string()))?;
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".bak-{stamp}"));
    let target = PathBuf::from(name);
    sqlx::query("VACUUM INTO $1")
        .bind(target.to_string_lossy().into_owned())
        .execute(pool)
        .await?;
    Ok(target)
}

/// Whether the database has any tables (a new file has none).
pub async fn has_tables(pool: &Pool) -> Result<bool, DbError> {
    let n: (i64,) = sqlx::query_as("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table'")
        .fetch_one(pool)
        .await?;
    Ok(n.0 > 0)
}

/// Begins a transaction that writes: SQLite's `BEGIN IMMEDIATE` takes the
/// write lock at once (waiting up to the busy timeout for it), so that
/// concurrent writers queue. A plain (deferred) transaction that reads
/// first and writes later cannot wait when another writer got in between:
/// its write fails at once with "database is locked" (SQLITE_BUSY_SNAPSHOT
/// in WAL mode).
pub async fn begin_write(
    pool: &Pool,
) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, sqlx::Error> {
    pool.begin_with("BEGIN IMMEDIATE").await
}
