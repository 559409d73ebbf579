//! The hub's database: users, groups, roles, services and API tokens.
//!
//! All SQL lives under this module, and all of it outside [`sqlite`] is
//! written to run on PostgreSQL as well (`$N` parameters, `RETURNING`,
//! `ON CONFLICT`, no SQLite functions). Timestamps are stored as text in
//! the API's form ([`now`]), so they compare as strings.
//!
//! Operations that change several rows run in one transaction: a request
//! that fails half-way leaves the database as it was.

pub mod managed;
pub mod native;
pub mod oauth;
pub mod servers;
pub mod sessions;
pub mod sqlite;

pub use sessions::SessionUserRow;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sqlx::{FromRow, QueryBuilder, Sqlite};

/// The current time in the API's form: `2026-01-02T03:04:05.123456Z`.
pub fn now() -> String {
    timestamp(time::OffsetDateTime::now_utc())
}

/// `t` in the API's form.
pub fn timestamp(t: time::OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    t.format(time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
    ))
    .unwrap_or_default()
}

/// What went wrong in the database.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The database could not be opened or created.
    #[error("cannot open the database: {0}")]
    Open(String),
    /// The schema is older than this version of the hub.
    #[error(
        "the database schema is out of date ({applied} of {known} migrations applied): back it \
         up and run `jhub upgrade-db`"
    )]
    NeedsUpgrade {
        /// Migrations applied.
        applied: usize,
        /// Migrations this hub knows.
        known: usize,
    },
    /// A migration failed.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A query failed.
    #[error(transparent)]
    Sqlx(#[from] sqlx::Error),
}

/// A parsed `hub.db_url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DbUrl {
    /// A SQLite file.
    Sqlite(PathBuf),
}

impl DbUrl {
    /// Parses JupyterHub's forms: `sqlite:///abs/path` and
    /// `sqlite://relative/path` (relative to the working directory).
    pub fn parse(url: &str) -> Result<Self, String> {
        if let Some(rest) = url.strip_prefix("sqlite://") {
            if rest.is_empty() || rest == "/" {
                return Err(format!("{url:?}: expected sqlite:///absolute/path"));
            }
            if rest == ":memory:" {
                return Err("an in-memory database would lose everything at exit".into());
            }
            return Ok(Self::Sqlite(PathBuf::from(rest)));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Err("PostgreSQL is not supported by this version of the hub yet".into());
        }
        Err(format!(
            "{url:?}: expected sqlite:///absolute/path or sqlite://relative/path"
        ))
    }
}

/// The migrations of the SQLite schema.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// A handle on the database (cheap to clone).
#[derive(Debug, Clone)]
pub struct Db {
    pool: sqlite::Pool,
    path: PathBuf,
}

/// A user.
#[derive(Debug, Clone, FromRow, PartialEq, Eq)]
pub struct UserRow {
    /// Row id.
    pub id: i64,
    /// The username.
    pub name: String,
    /// Whether the user is an admin.
    pub admin: bool,
    /// When the user was created.
    pub created: String,
    /// Last activity, if any.
    pub last_activity: Option<String>,
}

/// A user with the names of its roles and groups: what its model shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserDetail {
    /// The user.
    pub user: UserRow,
    /// Its roles' names, in role order.
    pub roles: Vec<String>,
    /// Its groups' names, in group order.
    pub groups: Vec<String>,
    /// Its servers (default and named), by name.
    pub servers: Vec<servers::ServerRow>,
}

/// A group.
#[derive(Debug, Clone, FromRow)]
pub struct GroupRow {
    /// Row id.
    pub id: i64,
    /// The group's name.
    pub name: String,
    /// Its properties, JSON text.
    pub properties: String,
}

/// A service known to the database.
#[derive(Debug, Clone, FromRow)]
pub struct ServiceRow {
    /// Row id.
    pub id: i64,
    /// The service's name.
    pub name: String,
    /// Whether it is an admin.
    pub admin: bool,
}

/// An API token, with its owner's name.
#[derive(Debug, Clone, FromRow)]
pub struct TokenRow {
    /// Row id (the API's id is `a<id>`).
    pub id: i64,
    /// SHA-256 of the token, hex.
    pub hashed: String,
    /// The owning user.
    pub user_id: Option<i64>,
    /// The owning service.
    pub service_id: Option<i64>,
    /// The owner's name.
    pub owner_name: String,
    /// Whether the owner is an admin.
    pub owner_admin: bool,
    /// The issuing OAuth client's identifier.
    pub client_id: String,
    /// The client's description (or identifier).
    pub client_description: String,
    /// Browser session, for OAuth tokens.
    pub session_id: Option<String>,
    /// Creation time.
    pub created: String,
    /// Expiry, if any.
    pub expires_at: Option<String>,
    /// Last use.
    pub last_activity: Option<String>,
    /// Free text.
    pub note: String,
    /// Raw scopes, JSON list.
    pub scopes: String,
}

impl TokenRow {
    /// The token's raw scopes.
    pub fn scope_list(&self) -> Vec<String> {
        serde_json::from_str(&self.scopes).unwrap_or_default()
    }
}

/// A new token to store.
#[derive(Debug, Clone)]
pub struct NewToken<'a> {
    /// SHA-256 of the token, hex.
    pub hashed: &'a str,
    /// The token's first characters.
    pub prefix: &'a str,
    /// The owner.
    pub owner: TokenOwner,
    /// Raw scopes.
    pub scopes: &'a [String],
    /// Free text.
    pub note: &'a str,
    /// Expiry, if any.
    pub expires_at: Option<String>,
}

/// Who owns a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenOwner {
    /// A user, by row id.
    User(i64),
    /// A service, by row id.
    Service(i64),
}

/// Which users a listing returns.
#[derive(Debug, Clone, Default)]
pub struct UserQuery {
    /// Skip this many.
    pub offset: i64,
    /// Return at most this many.
    pub limit: i64,
    /// Only names containing this.
    pub name_filter: Option<String>,
    /// Only these users or members of these groups (None: everyone).
    pub only: Option<(Vec<String>, Vec<String>)>,
    /// `active` (with a server running or under way), `inactive`
    /// (without), or none.
    pub active: Option<bool>,
    /// With `active`: only users with a server that is ready.
    pub ready_only: bool,
    /// Sort column and direction.
    pub sort: UserSort,
    /// Descending order.
    pub descending: bool,
}

/// Sort orders for user listings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum UserSort {
    /// Creation order.
    #[default]
    Id,
    /// By name.
    Name,
    /// By last activity (never-active users last when ascending).
    LastActivity,
}

/// Role bearer kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bearer {
    /// Users.
    User,
    /// Groups.
    Group,
    /// Services.
    Service,
}

impl Bearer {
    fn table(self) -> (&'static str, &'static str) {
        match self {
            Bearer::User => ("user_role_map", "user_id"),
            Bearer::Group => ("group_role_map", "group_id"),
            Bearer::Service => ("service_role_map", "service_id"),
        }
    }
}

const TOKEN_SELECT: &str = "SELECT t.id, t.hashed, t.user_id, t.service_id, \
    COALESCE(u.name, s.name) AS owner_name, COALESCE(u.admin, s.admin) AS owner_admin, \
    t.client_id, COALESCE(c.description, c.identifier) AS client_description, \
    t.session_id, t.created, t.expires_at, t.last_activity, t.note, t.scopes \
    FROM api_tokens t LEFT JOIN users u ON u.id = t.user_id \
    LEFT JOIN services s ON s.id = t.service_id \
    JOIN oauth_clients c ON c.identifier = t.client_id";

fn push_ids(q: &mut QueryBuilder<'_, Sqlite>, ids: &[i64]) {
    q.push("(");
    let mut sep = q.separated(", ");
    for id in ids {
        sep.push_bind(*id);
    }
    sep.push_unseparated(")");
}

fn escape_like(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('%');
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

impl Db {
    /// Opens the database named by `url`. A new database gets the current
    /// schema; an existing one with pending migrations is refused
    /// ([`DbError::NeedsUpgrade`]) unless `upgrade` is set.
    pub async fn open(url: &DbUrl, upgrade: bool) -> Result<Self, DbError> {
        let DbUrl::Sqlite(path) = url;
        let pool = sqlite::connect(path).await?;
        let db = Self {
            pool,
            path: path.clone(),
        };
        let applied: Vec<(i64,)> = sqlx::query_as(
            "SELECT version FROM _sqlx_migrations WHERE success = TRUE ORDER BY version",
        )
        .fetch_all(&db.pool)
        .await
        .unwrap_or_default();
        let known = MIGRATOR
            .iter()
            .filter(|m| m.migration_type.is_up_migration())
            .count();
        let fresh = applied.is_empty() && !sqlite::has_tables(&db.pool).await?;
        if !fresh && applied.len() < known && !upgrade {
            return Err(DbError::NeedsUpgrade {
                applied: applied.len(),
                known,
            });
        }
        MIGRATOR.run(&db.pool).await?;
        Ok(db)
    }

    /// Backs the database file up next to itself; returns the copy.
    pub async fn backup(url: &DbUrl) -> Result<Option<PathBuf>, DbError> {
        let DbUrl::Sqlite(path) = url;
        if !path.exists() {
            return Ok(None);
        }
        let pool = sqlite::connect(path).await?;
        let copy = sqlite::backup(&pool, path).await?;
        pool.close().await;
        Ok(Some(copy))
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Closes the pool (at shutdown).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    // --- users -----------------------------------------------------------

    /// The user called `name`.
    pub async fn find_user(&self, name: &str) -> Result<Option<UserRow>, DbError> {
        Ok(sqlx::query_as(
            "SELECT id, name, admin, created, last_activity FROM users WHERE name = $1",
        )
        .bind(name)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// The user with row id `id`.
    pub async fn user_by_id(&self, id: i64) -> Result<Option<UserRow>, DbError> {
        Ok(sqlx::query_as(
            "SELECT id, name, admin, created, last_activity FROM users WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// How many users there are.
    pub async fn count_users(&self) -> Result<i64, DbError> {
        let n: (i64,) = sqlx::query_as("SELECT COUNT(*) FROM users")
            .fetch_one(&self.pool)
            .await?;
        Ok(n.0)
    }

    fn user_filter(q: &mut QueryBuilder<'_, Sqlite>, query: &UserQuery) {
        q.push(" WHERE 1 = 1");
        if let Some(f) = &query.name_filter {
            q.push(" AND u.name LIKE ")
                .push_bind(escape_like(&f.to_lowercase()))
                .push(" ESCAPE '\\'");
        }
        if let Some((users, groups)) = &query.only {
            q.push(" AND (u.name IN (");
            let mut sep = q.separated(", ");
            sep.push_bind(""); // never a name; keeps the list non-empty
            for u in users {
                sep.push_bind(u.clone());
            }
            q.push(
                ") OR u.id IN (SELECT m.user_id FROM user_group_map m \
                    JOIN groups g ON g.id = m.group_id WHERE g.name IN (",
            );
            let mut sep = q.separated(", ");
            sep.push_bind("");
            for g in groups {
                sep.push_bind(g.clone());
            }
            q.push(")))");
        }
        const ACTIVE: &str = "(sp.pid IS NOT NULL OR sp.pending IS NOT NULL)";
        const READY: &str = "(sp.url IS NOT NULL AND sp.pending IS NULL)";
        match query.active {
            Some(true) => {
                let which = if query.ready_only { READY } else { ACTIVE };
                q.push(format!(
                    " AND EXISTS (SELECT 1 FROM spawners sp WHERE sp.user_id = u.id AND {which})"
                ));
            }
            Some(false) => {
                q.push(format!(
                    " AND NOT EXISTS (SELECT 1 FROM spawners sp WHERE sp.user_id = u.id AND {ACTIVE})"
                ));
            }
            None => {}
        }
    }

    /// One page of users, with their roles and groups: three queries on
    /// one connection, however long the page.
    pub async fn list_users(&self, query: &UserQuery) -> Result<Vec<UserDetail>, DbError> {
        let mut q = QueryBuilder::new(
            "SELECT u.id, u.name, u.admin, u.created, u.last_activity FROM users u",
        );
        Self::user_filter(&mut q, query);
        let dir = if query.descending { "DESC" } else { "ASC" };
        match query.sort {
            UserSort::Id => q.push(format_args!(" ORDER BY u.id {dir}")),
            UserSort::Name => q.push(format_args!(" ORDER BY u.name {dir}")),
            UserSort::LastActivity => q.push(format_args!(
                " ORDER BY (u.last_activity IS NULL) {}, u.last_activity {dir}, u.id {dir}",
                if query.descending { "DESC" } else { "ASC" }
            )),
        };
        q.push(" LIMIT ")
            .push_bind(query.limit)
            .push(" OFFSET ")
            .push_bind(query.offset);
        let mut conn = self.pool.acquire().await?;
        let rows = q.build_query_as::<UserRow>().fetch_all(&mut *conn).await?;
        details(&mut conn, rows).await
    }

    /// How many users match a listing's filters (whatever its page).
    pub async fn count_listed_users(&self, query: &UserQuery) -> Result<i64, DbError> {
        let mut c = QueryBuilder::new("SELECT COUNT(*) FROM users u");
        Self::user_filter(&mut c, query);
        let total: (i64,) = c.build_query_as().fetch_one(&self.pool).await?;
        Ok(total.0)
    }

    /// The roles and groups of each of `users`: two queries on one
    /// connection.
    pub async fn user_details(&self, users: Vec<UserRow>) -> Result<Vec<UserDetail>, DbError> {
        if users.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.pool.acquire().await?;
        details(&mut conn, users).await
    }

    /// Which of `names` are users already.
    pub async fn existing_users(
        &self,
        names: &[String],
    ) -> Result<std::collections::BTreeSet<String>, DbError> {
        let mut out = std::collections::BTreeSet::new();
        // well under SQLite's limit on bound parameters per statement
        for chunk in names.chunks(5000) {
            let mut q = QueryBuilder::new("SELECT name FROM users WHERE name IN (");
            let mut sep = q.separated(", ");
            for n in chunk {
                sep.push_bind(n.clone());
            }
            q.push(")");
            let rows: Vec<(String,)> = q.build_query_as().fetch_all(&self.pool).await?;
            out.extend(rows.into_iter().map(|r| r.0));
        }
        Ok(out)
    }

    /// How many servers are running (have a URL).
    pub async fn count_running_servers(&self) -> Result<i64, DbError> {
        let n: (i64,) = sqlx::query_as("SELECT COUNT(*) FROM spawners WHERE url IS NOT NULL")
            .fetch_one(&self.pool)
            .await?;
        Ok(n.0)
    }

    /// Creates users (all or none), with the `user` role and, for admins,
    /// the `admin` role. Names must be validated and not exist yet.
    pub async fn create_users(
        &self,
        names: &[String],
        admin: bool,
    ) -> Result<Vec<UserRow>, DbError> {
        let mut tx = sqlite::begin_write(&self.pool).await?;
        let mut out = Vec::with_capacity(names.len());
        for name in names {
            let row: UserRow = sqlx::query_as(
                "INSERT INTO users (name, admin, created) VALUES ($1, $2, $3) \
                 RETURNING id, name, admin, created, last_activity",
            )
            .bind(name)
            .bind(admin)
            .bind(now())
            .fetch_one(&mut *tx)
            .await?;
            out.push(row);
        }
        // the roles of all of them in one statement per few thousand
        let roles: &[&str] = if admin { &["user", "admin"] } else { &["user"] };
        let ids: Vec<i64> = out.iter().map(|u| u.id).collect();
        for chunk in ids.chunks(5000) {
            let mut q = QueryBuilder::new(
                "INSERT INTO user_role_map (user_id, role_id) SELECT u.id, r.id \
                 FROM users u, roles r WHERE u.id IN ",
            );
            push_ids(&mut q, chunk);
            q.push(" AND r.name IN (");
            let mut sep = q.separated(", ");
            for role in roles {
                sep.push_bind(*role);
            }
            q.push(") ON CONFLICT DO NOTHING");
            q.build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(out)
    }

    /// Applies a user edit: a new name and/or admin flag (with the admin
    /// role granted or stripped to match), in one transaction.
    pub async fn update_user(
        &self,
        id: i64,
        new_name: Option<&str>,
        admin: Option<bool>,
    ) -> Result<UserRow, DbError> {
        let mut tx = sqlite::begin_write(&self.pool).await?;
        if let Some(name) = new_name {
            sqlx::query("UPDATE users SET name = $1 WHERE id = $2")
                .bind(name)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        if let Some(admin) = admin {
            sqlx::query("UPDATE users SET admin = $1 WHERE id = $2")
                .bind(admin)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            if admin {
                sqlx::query(
                    "INSERT INTO user_role_map (user_id, role_id) \
                     SELECT $1, id FROM roles WHERE name = 'admin' ON CONFLICT DO NOTHING",
                )
                .bind(id)
                .execute(&mut *tx)
                .await?;
            } else {
                sqlx::query(
                    "DELETE FROM user_role_map WHERE user_id = $1 \
                     AND role_id IN (SELECT id FROM roles WHERE name = 'admin')",
                )
                .bind(id)
                .execute(&mut *tx)
                .await?;
            }
        }
        let row = sqlx::query_as(
            "SELECT id, name, admin, created, last_activity FROM users WHERE id = $1",
        )
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(row)
    }

    /// Deletes a user (tokens, memberships and role assignments go too).
    pub async fn delete_user(&self, id: i64) -> Result<(), DbError> {
        sqlx::query("DELETE FROM users WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Records activity for a user.
    pub async fn touch_user(&self, id: i64, at: &str) -> Result<(), DbError> {
        sqlx::query("UPDATE users SET last_activity = $1 WHERE id = $2")
            .bind(at)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Group names of each of the users (by user id).
    pub async fn groups_of_users(
        &self,
        ids: &[i64],
    ) -> Result<BTreeMap<i64, Vec<String>>, DbError> {
        groups_of_users(&self.pool, ids).await
    }

    /// Group names of the users called `names`, by username.
    pub async fn groups_of_usernames(
        &self,
        names: &[String],
    ) -> Result<BTreeMap<String, std::collections::BTreeSet<String>>, DbError> {
        let mut out: BTreeMap<String, std::collections::BTreeSet<String>> = BTreeMap::new();
        if names.is_empty() {
            return Ok(out);
        }
        let mut q = QueryBuilder::new(
            "SELECT u.name, g.name FROM user_group_map m JOIN groups g ON g.id = m.group_id \
             JOIN users u ON u.id = m.user_id WHERE u.name IN (",
        );
        let mut sep = q.separated(", ");
        for n in names {
            sep.push_bind(n.clone());
        }
        q.push(")");
        let rows: Vec<(String, String)> = q.build_query_as().fetch_all(&self.pool).await?;
        for (u, g) in rows {
            out.entry(u).or_default().insert(g);
        }
        Ok(out)
    }

    /// Role names held directly by each of the bearers (by id).
    pub async fn roles_of(
        &self,
        bearer: Bearer,
        ids: &[i64],
    ) -> Result<BTreeMap<i64, Vec<String>>, DbError> {
        roles_of(&self.pool, bearer, ids).await
    }

    /// The raw scopes of every role a user has, directly or through a
    /// group.
    pub async fn user_role_scopes(&self, user_id: i64) -> Result<Vec<String>, DbError> {
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT r.scopes FROM roles r JOIN user_role_map m ON m.role_id = r.id \
             WHERE m.user_id = $1 \
             UNION ALL SELECT r.scopes FROM roles r JOIN group_role_map gm ON gm.role_id = r.id \
             JOIN user_group_map ug ON ug.group_id = gm.group_id WHERE ug.user_id = $1",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(flatten_scopes(rows))
    }

    /// The raw scopes of every role a service has.
    pub async fn service_role_scopes(&self, service_id: i64) -> Result<Vec<String>, DbError> {
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT r.scopes FROM roles r JOIN service_role_map m ON m.role_id = r.id \
             WHERE m.service_id = $1",
        )
        .bind(service_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(flatten_scopes(rows))
    }

    // --- roles -----------------------------------------------------------

    /// Creates or updates a role.
    pub async fn upsert_role(
        &self,
        name: &str,
        description: Option<&str>,
        scopes: &[String],
    ) -> Result<i64, DbError> {
        let scopes = serde_json::to_string(scopes).unwrap_or_else(|_| "[]".into());
        let id: (i64,) = sqlx::query_as(
            "INSERT INTO roles (name, description, scopes) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET description = excluded.description, \
             scopes = excluded.scopes RETURNING id",
        )
        .bind(name)
        .bind(description)
        .bind(scopes)
        .fetch_one(&self.pool)
        .await?;
        Ok(id.0)
    }

    /// The raw scopes of the role called `name`, if there is one.
    pub async fn role_scopes(&self, name: &str) -> Result<Option<Vec<String>>, DbError> {
        let row: Option<(String,)> = sqlx::query_as("SELECT scopes FROM roles WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| flatten_scopes(vec![r])))
    }

    /// The id of the role called `name` (which must exist).
    pub async fn upsert_role_id(&self, name: &str) -> Result<i64, DbError> {
        let id: (i64,) = sqlx::query_as("SELECT id FROM roles WHERE name = $1")
            .bind(name)
            .fetch_one(&self.pool)
            .await?;
        Ok(id.0)
    }

    /// Deletes roles whose names are not in `keep`.
    pub async fn delete_roles_except(&self, keep: &[String]) -> Result<u64, DbError> {
        let mut q = QueryBuilder::new("DELETE FROM roles WHERE name NOT IN (");
        let mut sep = q.separated(", ");
        sep.push_bind("");
        for k in keep {
            sep.push_bind(k.clone());
        }
        q.push(")");
        Ok(q.build().execute(&self.pool).await?.rows_affected())
    }

    /// Makes `ids` exactly the role's bearers of that kind.
    pub async fn set_role_bearers(
        &self,
        role_id: i64,
        bearer: Bearer,
        ids: &[i64],
    ) -> Result<(), DbError> {
        let (table, column) = bearer.table();
        let mut tx = sqlite::begin_write(&self.pool).await?;
        sqlx::query(&format!("DELETE FROM {table} WHERE role_id = $1"))
            .bind(role_id)
            .execute(&mut *tx)
            .await?;
        for id in ids {
            sqlx::query(&format!(
                "INSERT INTO {table} ({column}, role_id) VALUES ($1, $2) ON CONFLICT DO NOTHING"
            ))
            .bind(id)
            .bind(role_id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Grants (or strips) the role called `role` to one bearer.
    pub async fn set_role(
        &self,
        bearer: Bearer,
        id: i64,
        role: &str,
        granted: bool,
    ) -> Result<(), DbError> {
        let (table, column) = bearer.table();
        let sql = if granted {
            format!(
                "INSERT INTO {table} ({column}, role_id) SELECT $1, id FROM roles WHERE name = $2 \
                 ON CONFLICT DO NOTHING"
            )
        } else {
            format!(
                "DELETE FROM {table} WHERE {column} = $1 \
                 AND role_id IN (SELECT id FROM roles WHERE name = $2)"
            )
        };
        sqlx::query(&sql)
            .bind(id)
            .bind(role)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Users' admin flag, as config sets it.
    pub async fn set_admin_flag(&self, id: i64, admin: bool) -> Result<(), DbError> {
        sqlx::query("UPDATE users SET admin = $1 WHERE id = $2")
            .bind(admin)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    // --- groups ----------------------------------------------------------

    /// The group called `name`.
    pub async fn find_group(&self, name: &str) -> Result<Option<GroupRow>, DbError> {
        Ok(
            sqlx::query_as("SELECT id, name, properties FROM groups WHERE name = $1")
                .bind(name)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// One page of groups (only those named in `only`, if given), and the
    /// total.
    pub async fn list_groups(
        &self,
        offset: i64,
        limit: i64,
        only: Option<&[String]>,
    ) -> Result<(Vec<GroupRow>, i64), DbError> {
        let filter = |q: &mut QueryBuilder<'_, Sqlite>| {
            if let Some(names) = only {
                q.push(" WHERE name IN (");
                let mut sep = q.separated(", ");
                sep.push_bind("");
                for n in names {
                    sep.push_bind(n.clone());
                }
                q.push(")");
            }
        };
        let mut q = QueryBuilder::new("SELECT id, name, properties FROM groups");
        filter(&mut q);
        q.push(" ORDER BY id LIMIT ")
            .push_bind(limit)
            .push(" OFFSET ")
            .push_bind(offset);
        let rows = q.build_query_as::<GroupRow>().fetch_all(&self.pool).await?;
        let mut c = QueryBuilder::new("SELECT COUNT(*) FROM groups");
        filter(&mut c);
        let total: (i64,) = c.build_query_as().fetch_one(&self.pool).await?;
        Ok((rows, total.0))
    }

    /// Creates groups with the given members (all or none).
    pub async fn create_groups(
        &self,
        names: &[String],
        members: &[i64],
    ) -> Result<Vec<GroupRow>, DbError> {
        let mut tx = sqlite::begin_write(&self.pool).await?;
        let mut out = Vec::new();
        for name in names {
            let row: GroupRow = sqlx::query_as(
                "INSERT INTO groups (name) VALUES ($1) RETURNING id, name, properties",
            )
            .bind(name)
            .fetch_one(&mut *tx)
            .await?;
            for uid in members {
                sqlx::query(
                    "INSERT INTO user_group_map (user_id, group_id) VALUES ($1, $2) \
                     ON CONFLICT DO NOTHING",
                )
                .bind(uid)
                .bind(row.id)
                .execute(&mut *tx)
                .await?;
            }
            out.push(row);
        }
        tx.commit().await?;
        Ok(out)
    }

    /// Creates the group if it does not exist; returns its id.
    pub async fn ensure_group(&self, name: &str) -> Result<i64, DbError> {
        sqlx::query("INSERT INTO groups (name) VALUES ($1) ON CONFLICT DO NOTHING")
            .bind(name)
            .execute(&self.pool)
            .await?;
        let id: (i64,) = sqlx::query_as("SELECT id FROM groups WHERE name = $1")
            .bind(name)
            .fetch_one(&self.pool)
            .await?;
        Ok(id.0)
    }

    /// Deletes a group.
    pub async fn delete_group(&self, id: i64) -> Result<(), DbError> {
        sqlx::query("DELETE FROM groups WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Adds (or removes) members, in one transaction.
    pub async fn change_members(
        &self,
        group_id: i64,
        users: &[i64],
        add: bool,
    ) -> Result<(), DbError> {
        let mut tx = sqlite::begin_write(&self.pool).await?;
        for uid in users {
            let sql = if add {
                "INSERT INTO user_group_map (user_id, group_id) VALUES ($1, $2) ON CONFLICT DO NOTHING"
            } else {
                "DELETE FROM user_group_map WHERE user_id = $1 AND group_id = $2"
            };
            sqlx::query(sql)
                .bind(uid)
                .bind(group_id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Replaces a group's properties (JSON text).
    pub async fn set_group_properties(&self, id: i64, properties: &str) -> Result<(), DbError> {
        sqlx::query("UPDATE groups SET properties = $1 WHERE id = $2")
            .bind(properties)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Member names of each group (by group id), in membership order.
    pub async fn members_of_groups(
        &self,
        ids: &[i64],
    ) -> Result<BTreeMap<i64, Vec<String>>, DbError> {
        names_by_id(
            &self.pool,
            "SELECT m.group_id, u.name FROM user_group_map m JOIN users u ON u.id = m.user_id \
             WHERE m.group_id IN ",
            ids,
            " ORDER BY u.id",
        )
        .await
    }

    // --- services --------------------------------------------------------

    /// Creates or updates a service from the configuration; returns its id.
    pub async fn upsert_service(
        &self,
        name: &str,
        admin: bool,
        url: Option<&str>,
    ) -> Result<i64, DbError> {
        let id: (i64,) = sqlx::query_as(
            "INSERT INTO services (name, admin, url, from_config) VALUES ($1, $2, $3, TRUE) \
             ON CONFLICT (name) DO UPDATE SET admin = excluded.admin, url = excluded.url \
             RETURNING id",
        )
        .bind(name)
        .bind(admin)
        .bind(url)
        .fetch_one(&self.pool)
        .await?;
        Ok(id.0)
    }

    /// Deletes configured services no longer configured.
    pub async fn delete_services_except(&self, keep: &[String]) -> Result<u64, DbError> {
        let mut q =
            QueryBuilder::new("DELETE FROM services WHERE from_config = TRUE AND name NOT IN (");
        let mut sep = q.separated(", ");
        sep.push_bind("");
        for k in keep {
            sep.push_bind(k.clone());
        }
        q.push(")");
        Ok(q.build().execute(&self.pool).await?.rows_affected())
    }

    /// The service called `name`.
    pub async fn find_service(&self, name: &str) -> Result<Option<ServiceRow>, DbError> {
        Ok(
            sqlx::query_as("SELECT id, name, admin FROM services WHERE name = $1")
                .bind(name)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    // --- tokens ----------------------------------------------------------

    /// Stores a new token; returns its row id.
    pub async fn insert_token(&self, t: &NewToken<'_>) -> Result<i64, DbError> {
        let (user, service) = match t.owner {
            TokenOwner::User(id) => (Some(id), None),
            TokenOwner::Service(id) => (None, Some(id)),
        };
        let id: (i64,) = sqlx::query_as(
            "INSERT INTO api_tokens (hashed, prefix, user_id, service_id, created, expires_at, \
             note, scopes) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
        )
        .bind(t.hashed)
        .bind(t.prefix)
        .bind(user)
        .bind(service)
        .bind(now())
        .bind(&t.expires_at)
        .bind(t.note)
        .bind(serde_json::to_string(t.scopes).unwrap_or_else(|_| "[]".into()))
        .fetch_one(&self.pool)
        .await?;
        Ok(id.0)
    }

    /// Unexpired tokens whose prefix is `prefix`.
    pub async fn tokens_by_prefix(&self, prefix: &str) -> Result<Vec<TokenRow>, DbError> {
        Ok(sqlx::query_as(&format!(
            "{TOKEN_SELECT} WHERE t.prefix = $1 AND (t.expires_at IS NULL OR t.expires_at >= $2)"
        ))
        .bind(prefix)
        .bind(now())
        .fetch_all(&self.pool)
        .await?)
    }

    /// The token with hash `hashed`, expired or not.
    pub async fn token_by_hash(&self, hashed: &str) -> Result<Option<TokenRow>, DbError> {
        Ok(
            sqlx::query_as(&format!("{TOKEN_SELECT} WHERE t.hashed = $1"))
                .bind(hashed)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// The token with row id `id`.
    pub async fn token_by_id(&self, id: i64) -> Result<Option<TokenRow>, DbError> {
        Ok(sqlx::query_as(&format!("{TOKEN_SELECT} WHERE t.id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// A user's tokens after deleting the expired ones, oldest activity
    /// first.
    pub async fn user_tokens(&self, user_id: i64) -> Result<Vec<TokenRow>, DbError> {
        sqlx::query("DELETE FROM api_tokens WHERE user_id = $1 AND expires_at < $2")
            .bind(user_id)
            .bind(now())
            .execute(&self.pool)
            .await?;
        Ok(sqlx::query_as(&format!(
            "{TOKEN_SELECT} WHERE t.user_id = $1 ORDER BY COALESCE(t.last_activity, t.created), t.id"
        ))
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Deletes tokens by row id.
    pub async fn delete_tokens(&self, ids: &[i64]) -> Result<(), DbError> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut q = QueryBuilder::new("DELETE FROM api_tokens WHERE id IN ");
        push_ids(&mut q, ids);
        q.build().execute(&self.pool).await?;
        Ok(())
    }

    /// Ids of a user's tokens issued by `client_id`.
    pub async fn user_client_tokens(
        &self,
        user_id: i64,
        client_id: &str,
    ) -> Result<Vec<i64>, DbError> {
        let rows: Vec<(i64,)> =
            sqlx::query_as("SELECT id FROM api_tokens WHERE user_id = $1 AND client_id = $2")
                .bind(user_id)
                .bind(client_id)
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.into_iter().map(|r| r.0).collect())
    }

    /// Records a token's use.
    pub async fn touch_token(&self, id: i64, at: &str) -> Result<(), DbError> {
        sqlx::query("UPDATE api_tokens SET last_activity = $1 WHERE id = $2")
            .bind(at)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Service tokens noted `note` whose hash is not in `keep`: removes
    /// them (configuration tokens that were taken out of the config).
    pub async fn delete_service_tokens_except(
        &self,
        note: &str,
        keep: &[String],
    ) -> Result<u64, DbError> {
        let mut q =
            QueryBuilder::new("DELETE FROM api_tokens WHERE service_id IS NOT NULL AND note = ");
        q.push_bind(note.to_owned()).push(" AND hashed NOT IN (");
        let mut sep = q.separated(", ");
        sep.push_bind("");
        for k in keep {
            sep.push_bind(k.clone());
        }
        q.push(")");
        Ok(q.build().execute(&self.pool).await?.rows_affected())
    }
}

/// The roles and groups of `users`, on one connection.
async fn details(
    conn: &mut sqlx::SqliteConnection,
    users: Vec<UserRow>,
) -> Result<Vec<UserDetail>, DbError> {
    let ids: Vec<i64> = users.iter().map(|u| u.id).collect();
    let mut groups = groups_of_users(&mut *conn, &ids).await?;
    let mut roles = roles_of(&mut *conn, Bearer::User, &ids).await?;
    let mut servers: BTreeMap<i64, Vec<servers::ServerRow>> = BTreeMap::new();
    for s in servers::servers_of_users(&mut *conn, &ids).await? {
        servers.entry(s.user_id).or_default().push(s);
    }
    Ok(users
        .into_iter()
        .map(|user| UserDetail {
            roles: roles.remove(&user.id).unwrap_or_default(),
            groups: groups.remove(&user.id).unwrap_or_default(),
            servers: servers.remove(&user.id).unwrap_or_default(),
            user,
        })
        .collect())
}

/// [`Db::groups_of_users`] on any connection.
async fn groups_of_users<'e>(
    db: impl sqlx::Executor<'e, Database = Sqlite>,
    ids: &[i64],
) -> Result<BTreeMap<i64, Vec<String>>, DbError> {
    names_by_id(
        db,
        "SELECT m.user_id, g.name FROM user_group_map m JOIN groups g ON g.id = m.group_id \
         WHERE m.user_id IN ",
        ids,
        " ORDER BY g.id",
    )
    .await
}

/// Runs `select` (which yields `(id, name)` rows and ends in `IN `) over
/// `ids`, then `order`, and groups the names by id, in row order.
async fn names_by_id<'e>(
    db: impl sqlx::Executor<'e, Database = Sqlite>,
    select: &str,
    ids: &[i64],
    order: &str,
) -> Result<BTreeMap<i64, Vec<String>>, DbError> {
    let mut out: BTreeMap<i64, Vec<String>> = BTreeMap::new();
    if ids.is_empty() {
        return Ok(out);
    }
    let mut q = QueryBuilder::new(select);
    push_ids(&mut q, ids);
    q.push(order);
    let rows: Vec<(i64, String)> = q.build_query_as().fetch_all(db).await?;
    for (id, name) in rows {
        out.entry(id).or_default().push(name);
    }
    Ok(out)
}

/// [`Db::roles_of`] on any connection.
async fn roles_of<'e>(
    db: impl sqlx::Executor<'e, Database = Sqlite>,
    bearer: Bearer,
    ids: &[i64],
) -> Result<BTreeMap<i64, Vec<String>>, DbError> {
    let (table, column) = bearer.table();
    let select = format!(
        "SELECT m.{column}, r.name FROM {table} m JOIN roles r ON r.id = m.role_id \
         WHERE m.{column} IN "
    );
    names_by_id(db, &select, ids, " ORDER BY r.id").await
}

fn flatten_scopes(rows: Vec<(String,)>) -> Vec<String> {
    let mut out = Vec::new();
    for (json,) in rows {
        let list: Vec<String> = serde_json::from_str(&json).unwrap_or_default();
        out.extend(list);
    }
    out
}

/// A database in a temporary directory with the `user` role, for unit
/// tests; the directory goes when the returned guard is dropped.
#[cfg(test)]
pub(crate) async fn open_for_test() -> (tempfile::TempDir, Db) {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(&DbUrl::Sqlite(dir.path().join("t.sqlite")), false)
        .await
        .unwrap();
    db.upsert_role("user", None, &["self".into()])
        .await
        .unwrap();
    (dir, db)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn db_urls() {
        assert_eq!(
            DbUrl::parse("sqlite:///var/lib/jhub/jhub.sqlite").unwrap(),
            DbUrl::Sqlite("/var/lib/jhub/jhub.sqlite".into())
        );
        assert_eq!(
            DbUrl::parse("sqlite://jhub.sqlite").unwrap(),
            DbUrl::Sqlite("jhub.sqlite".into())
        );
        assert!(DbUrl::parse("mysql://x").is_err());
        assert!(DbUrl::parse("sqlite://").is_err());
    }

    #[test]
    fn timestamps_sort_as_text() {
        let a = timestamp(time::macros::datetime!(2026-01-02 03:04:05.000001 UTC));
        assert_eq!(a, "2026-01-02T03:04:05.000001Z");
        let b = timestamp(time::macros::datetime!(2026-01-02 03:04:05.1 UTC));
        assert!(a < b);
    }

    #[tokio::test]
    async fn users_round_trip_and_upgrade_check() {
        let dir = tempfile::tempdir().unwrap();
        let url = DbUrl::Sqlite(dir.path().join("t.sqlite"));
        let db = Db::open(&url, false).await.unwrap();
        db.upsert_role("user", None, &["self".into()])
            .await
            .unwrap();
        let users = db
            .create_users(&["jhtest-a".into(), "jhtest-b".into()], false)
            .await
            .unwrap();
        assert_eq!(users.len(), 2);
        // a duplicate fails the whole transaction
        assert!(
            db.create_users(&["jhtest-c".into(), "jhtest-a".into()], false)
                .await
                .is_err()
        );
        assert_eq!(db.count_users().await.unwrap(), 2);
        let query = UserQuery {
            limit: 1,
            name_filter: Some("B".into()),
            ..Default::default()
        };
        let page = db.list_users(&query).await.unwrap();
        let total = db.count_listed_users(&query).await.unwrap();
        assert_eq!((page[0].user.name.as_str(), total), ("jhtest-b", 1));
        // roles in role order, groups only for those in one
        db.upsert_role("admin", None, &["admin:users".into()])
            .await
            .unwrap();
        db.create_users(&["jhtest-c".into()], true).await.unwrap();
        let g = db.ensure_group("jhtest-g").await.unwrap();
        let c = db.find_user("jhtest-c").await.unwrap().unwrap();
        db.change_members(g, &[c.id], true).await.unwrap();
        let all = UserQuery {
            limit: 10,
            descending: true,
            ..Default::default()
        };
        let page = db.list_users(&all).await.unwrap();
        let summary: Vec<(&str, Vec<String>, Vec<String>)> = page
            .iter()
            .map(|d| (d.user.name.as_str(), d.roles.clone(), d.groups.clone()))
            .collect();
        assert_eq!(
            summary,
            [
                (
                    "jhtest-c",
                    vec!["user".into(), "admin".into()],
                    vec!["jhtest-g".into()]
                ),
                ("jhtest-b", vec!["user".into()], vec![]),
                ("jhtest-a", vec!["user".into()], vec![]),
            ]
        );
        let details = db.user_details(vec![c]).await.unwrap();
        assert_eq!(details[0], page[0]);
        let known = db
            .existing_users(&["jhtest-a".into(), "jhtest-x".into()])
            .await
            .unwrap();
        assert_eq!(known.into_iter().collect::<Vec<_>>(), ["jhtest-a"]);
        db.close().await;
        let backup = Db::backup(&url).await.unwrap().unwrap();
        assert!(backup.exists());
        let again = Db::open(&url, false).await.unwrap();
        assert!(again.find_user("jhtest-a").await.unwrap().is_some());
    }
}
