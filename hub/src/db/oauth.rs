//! The OAuth2 provider's tables ([`crate::oauth`]): clients, the
//! single-use authorization codes, and the access tokens issued for
//! codes (rows of `api_tokens` whose `client_id` is the client).
//!
//! Secrets are stored only as SHA-256 hashes ([`crate::auth::tokens::hash`]):
//! a client's secret (for a user's server, the server's API token), each
//! code and each access token. Deleting a client deletes its codes and
//! tokens (`ON DELETE CASCADE` on both tables); the built-in `jupyterhub`
//! client, which owns every ordinary API token, is never deleted.

use sqlx::FromRow;

use super::{Db, DbError, now};
use crate::auth::tokens;

/// The client every token that did not come from OAuth belongs to.
pub const HUB_CLIENT: &str = "jupyterhub";

/// A client to register (or update) with [`Db::upsert_oauth_client`].
/// Holds a secret: its `Debug` does not show it.
#[derive(Clone)]
pub struct NewOAuthClient<'a> {
    /// The client id (`jupyterhub-user-NAME`, `service-NAME`, ...).
    pub identifier: &'a str,
    /// What the authorization page calls the client.
    pub description: &'a str,
    /// The client secret in clear; only its hash is stored.
    pub secret: &'a str,
    /// The one redirect URI codes may be sent to.
    pub redirect_uri: &'a str,
    /// The raw scopes tokens of this client may carry at most.
    pub allowed_scopes: &'a [String],
    /// The server (row of `spawners`) the client stands for, if any.
    pub spawner_id: Option<i64>,
}

impl std::fmt::Debug for NewOAuthClient<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewOAuthClient")
            .field("identifier", &self.identifier)
            .field("description", &self.description)
            .field("redirect_uri", &self.redirect_uri)
            .field("allowed_scopes", &self.allowed_scopes)
            .field("spawner_id", &self.spawner_id)
            .finish_non_exhaustive()
    }
}

/// A registered client.
#[derive(Debug, Clone, FromRow)]
pub struct OAuthClientRow {
    /// Row id.
    pub id: i64,
    /// The client id.
    pub identifier: String,
    /// Its description, if any.
    pub description: Option<String>,
    /// SHA-256 of its secret, hex (none for the built-in client).
    pub secret_hash: Option<String>,
    /// Its registered redirect URI.
    pub redirect_uri: Option<String>,
    /// Its allowed raw scopes, JSON list.
    pub allowed_scopes: String,
    /// The service it belongs to, if any.
    pub service_id: Option<i64>,
    /// The server it belongs to, if any.
    pub spawner_id: Option<i64>,
}

impl OAuthClientRow {
    /// The allowed raw scopes.
    pub fn allowed_scope_list(&self) -> Vec<String> {
        serde_json::from_str(&self.allowed_scopes).unwrap_or_default()
    }

    /// The description, or the identifier when there is none.
    pub fn display_name(&self) -> &str {
        self.description
            .as_deref()
            .filter(|d| !d.is_empty())
            .unwrap_or(&self.identifier)
    }
}

/// A code to store.
#[derive(Debug, Clone)]
pub struct NewOAuthCode<'a> {
    /// SHA-256 of the code, hex.
    pub code_hash: &'a str,
    /// The client it was issued to.
    pub client_id: &'a str,
    /// When it stops being accepted (the API's timestamp form).
    pub expires_at: &'a str,
    /// The redirect URI it was sent to.
    pub redirect_uri: &'a str,
    /// The browser session it was issued in (the session's stored hash).
    pub session_id: Option<&'a str>,
    /// The user who authorized it.
    pub user_id: i64,
    /// The raw scopes granted.
    pub scopes: &'a [String],
    /// The PKCE challenge, if the client sent one.
    pub code_challenge: Option<&'a str>,
    /// Its method (`plain` or `S256`).
    pub code_challenge_method: Option<&'a str>,
}

/// A stored code.
#[derive(Debug, Clone, FromRow)]
pub struct OAuthCodeRow {
    /// Row id.
    pub id: i64,
    /// The client it was issued to.
    pub client_id: String,
    /// When it stops being accepted.
    pub expires_at: String,
    /// The redirect URI it was sent to.
    pub redirect_uri: Option<String>,
    /// The browser session it was issued in.
    pub session_id: Option<String>,
    /// The user who authorized it.
    pub user_id: i64,
    /// The raw scopes granted, JSON list.
    pub scopes: String,
    /// The PKCE challenge.
    pub code_challenge: Option<String>,
    /// Its method.
    pub code_challenge_method: Option<String>,
}

impl OAuthCodeRow {
    /// The raw scopes granted.
    pub fn scope_list(&self) -> Vec<String> {
        serde_json::from_str(&self.scopes).unwrap_or_default()
    }
}

/// An access token to issue for a code.
#[derive(Debug, Clone)]
pub struct NewOAuthToken<'a> {
    /// SHA-256 of the token, hex.
    pub hashed: &'a str,
    /// The token's first characters.
    pub prefix: &'a str,
    /// Its expiry.
    pub expires_at: &'a str,
}

const CLIENT_COLUMNS: &str = "id, identifier, description, secret_hash, redirect_uri, \
    allowed_scopes, service_id, spawner_id";

impl Db {
    /// Registers a client, or updates the one with the same identifier
    /// (its tokens stay valid). Only the hash of `c.secret` is stored.
    pub async fn upsert_oauth_client(&self, c: &NewOAuthClient<'_>) -> Result<(), DbError> {
        self.upsert_client(c, None).await
    }

    /// [`Db::upsert_oauth_client`] for a service's client.
    pub(crate) async fn upsert_service_oauth_client(
        &self,
        c: &NewOAuthClient<'_>,
        service_id: i64,
    ) -> Result<(), DbError> {
        self.upsert_client(c, Some(service_id)).await
    }

    async fn upsert_client(
        &self,
        c: &NewOAuthClient<'_>,
        service_id: Option<i64>,
    ) -> Result<(), DbError> {
        let scopes = serde_json::to_string(c.allowed_scopes).unwrap_or_else(|_| "[]".into());
        // ON CONFLICT updates in place: a delete and insert would take the
        // client's tokens with it.
        sqlx::query(
            "INSERT INTO oauth_clients (identifier, description, secret_hash, redirect_uri, \
             allowed_scopes, service_id, spawner_id) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (identifier) DO UPDATE SET description = excluded.description, \
             secret_hash = excluded.secret_hash, redirect_uri = excluded.redirect_uri, \
             allowed_scopes = excluded.allowed_scopes, service_id = excluded.service_id, \
             spawner_id = excluded.spawner_id",
        )
        .bind(c.identifier)
        .bind(c.description)
        .bind(tokens::hash(c.secret))
        .bind(c.redirect_uri)
        .bind(scopes)
        .bind(service_id)
        .bind(c.spawner_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Deletes a client with its codes and the tokens issued to it;
    /// whether it existed. The built-in `jupyterhub` client is never
    /// deleted (it owns every ordinary API token): `Ok(false)`.
    pub async fn delete_oauth_client(&self, identifier: &str) -> Result<bool, DbError> {
        if identifier == HUB_CLIENT {
            tracing::warn!("refusing to delete the built-in OAuth client");
            return Ok(false);
        }
        let done = sqlx::query("DELETE FROM oauth_clients WHERE identifier = $1")
            .bind(identifier)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Deletes the clients whose identifier starts with `prefix` and is
    /// not in `keep` (with their codes and tokens); how many.
    pub(crate) async fn delete_oauth_clients_except(
        &self,
        prefix: &str,
        keep: &[String],
    ) -> Result<u64, DbError> {
        let mut q = sqlx::QueryBuilder::new("DELETE FROM oauth_clients WHERE identifier <> ");
        q.push_bind(HUB_CLIENT)
            .push(" AND substr(identifier, 1, ")
            .push_bind(prefix.len() as i64)
            .push(") = ")
            .push_bind(prefix.to_owned())
            .push(" AND identifier NOT IN (");
        let mut sep = q.separated(", ");
        sep.push_bind("");
        for k in keep {
            sep.push_bind(k.clone());
        }
        q.push(")");
        Ok(q.build().execute(&self.pool).await?.rows_affected())
    }

    /// The client called `identifier`.
    pub async fn oauth_client(&self, identifier: &str) -> Result<Option<OAuthClientRow>, DbError> {
        Ok(sqlx::query_as(&format!(
            "SELECT {CLIENT_COLUMNS} FROM oauth_clients WHERE identifier = $1"
        ))
        .bind(identifier)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// The user's name and the server's name of the server (row of
    /// `spawners`) `spawner_id`.
    pub async fn spawner_names(
        &self,
        spawner_id: i64,
    ) -> Result<Option<(String, String)>, DbError> {
        Ok(sqlx::query_as(
            "SELECT u.name, s.name FROM spawners s JOIN users u ON u.id = s.user_id \
             WHERE s.id = $1",
        )
        .bind(spawner_id)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// The name of the service with row id `id`.
    pub async fn service_name(&self, id: i64) -> Result<Option<String>, DbError> {
        let row: Option<(String,)> = sqlx::query_as("SELECT name FROM services WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.0))
    }

    /// The raw scopes of the user's unexpired tokens from `client_id`
    /// (what the user has authorized the client for so far).
    pub async fn user_client_token_scopes(
        &self,
        user_id: i64,
        client_id: &str,
    ) -> Result<Vec<String>, DbError> {
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT scopes FROM api_tokens WHERE user_id = $1 AND client_id = $2 \
             AND (expires_at IS NULL OR expires_at >= $3)",
        )
        .bind(user_id)
        .bind(client_id)
        .bind(now())
        .fetch_all(&self.pool)
        .await?;
        Ok(super::flatten_scopes(rows))
    }

    /// Stores a code (and drops the codes that have expired).
    pub async fn insert_oauth_code(&self, c: &NewOAuthCode<'_>) -> Result<(), DbError> {
        let mut tx = super::sqlite::begin_write(&self.pool).await?;
        sqlx::query("DELETE FROM oauth_codes WHERE expires_at < $1")
            .bind(now())
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO oauth_codes (client_id, code_hash, expires_at, redirect_uri, session_id, \
             user_id, scopes, code_challenge, code_challenge_method) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(c.client_id)
        .bind(c.code_hash)
        .bind(c.expires_at)
        .bind(c.redirect_uri)
        .bind(c.session_id)
        .bind(c.user_id)
        .bind(serde_json::to_string(c.scopes).unwrap_or_else(|_| "[]".into()))
        .bind(c.code_challenge)
        .bind(c.code_challenge_method)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The code stored as `code_hash`, expired or not.
    pub async fn oauth_code(&self, code_hash: &str) -> Result<Option<OAuthCodeRow>, DbError> {
        Ok(sqlx::query_as(
            "SELECT id, client_id, expires_at, redirect_uri, session_id, user_id, scopes, \
             code_challenge, code_challenge_method FROM oauth_codes WHERE code_hash = $1",
        )
        .bind(code_hash)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Deletes a code (an expired one, say).
    pub async fn delete_oauth_code(&self, id: i64) -> Result<(), DbError> {
        sqlx::query("DELETE FROM oauth_codes WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Uses up `code` and stores the access token issued for it, owned by
    /// the code's user, from the code's client, in the code's session,
    /// with the code's scopes, in one transaction. `None` when the code
    /// was used up meanwhile (each code yields one token at most).
    pub async fn exchange_oauth_code(
        &self,
        code: &OAuthCodeRow,
        token: &NewOAuthToken<'_>,
    ) -> Result<Option<i64>, DbError> {
        let mut tx = super::sqlite::begin_write(&self.pool).await?;
        let used = sqlx::query("DELETE FROM oauth_codes WHERE id = $1")
            .bind(code.id)
            .execute(&mut *tx)
            .await?;
        if used.rows_affected() != 1 {
            return Ok(None);
        }
        let id: (i64,) = sqlx::query_as(
            "INSERT INTO api_tokens (hashed, prefix, user_id, client_id, session_id, created, \
             expires_at, note, scopes) VALUES ($1, $2, $3, $4, $5, $6, $7, '', $8) RETURNING id",
        )
        .bind(token.hashed)
        .bind(token.prefix)
        .bind(code.user_id)
        .bind(&code.client_id)
        .bind(&code.session_id)
        .bind(now())
        .bind(token.expires_at)
        .bind(&code.scopes)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(id.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::open_for_test as open;

    fn client<'a>(id: &'a str, secret: &'a str, scopes: &'a [String]) -> NewOAuthClient<'a> {
        NewOAuthClient {
            identifier: id,
            description: "Server at /user/jhtest-a/",
            secret,
            redirect_uri: "/user/jhtest-a/oauth_callback",
            allowed_scopes: scopes,
            spawner_id: None,
        }
    }

    fn code<'a>(hash: &'a str, client: &'a str, user: i64, exp: &'a str) -> NewOAuthCode<'a> {
        NewOAuthCode {
            code_hash: hash,
            client_id: client,
            expires_at: exp,
            redirect_uri: "/user/jhtest-a/oauth_callback",
            session_id: Some("s1"),
            user_id: user,
            scopes: &[],
            code_challenge: None,
            code_challenge_method: None,
        }
    }

    #[tokio::test]
    async fn clients_codes_and_tokens() {
        let (_dir, db) = open().await;
        let user = db
            .create_users(&["jhtest-a".into()], false)
            .await
            .unwrap()
            .remove(0);
        let scopes = vec!["access:servers!server=jhtest-a/".to_owned()];
        db.upsert_oauth_client(&client("jupyterhub-user-jhtest-a", "first", &scopes))
            .await
            .unwrap();
        let c = db
            .oauth_client("jupyterhub-user-jhtest-a")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            c.secret_hash.as_deref(),
            Some(tokens::hash("first").as_str())
        );
        assert_eq!(c.allowed_scope_list(), scopes);
        assert!(
            !format!("{:?}", client("x", "first", &scopes)).contains("first"),
            "Debug shows no secret"
        );

        // a code becomes a token once
        let later =
            crate::db::timestamp(time::OffsetDateTime::now_utc() + time::Duration::minutes(5));
        db.insert_oauth_code(&code("h1", "jupyterhub-user-jhtest-a", user.id, &later))
            .await
            .unwrap();
        let row = db.oauth_code("h1").await.unwrap().unwrap();
        let token = NewOAuthToken {
            hashed: "t1",
            prefix: "t1",
            expires_at: &later,
        };
        let id = db.exchange_oauth_code(&row, &token).await.unwrap().unwrap();
        assert!(db.oauth_code("h1").await.unwrap().is_none());
        let again = NewOAuthToken {
            hashed: "t2",
            ..token.clone()
        };
        assert_eq!(db.exchange_oauth_code(&row, &again).await.unwrap(), None);
        let t = db.token_by_id(id).await.unwrap().unwrap();
        assert_eq!(
            (t.client_id.as_str(), t.session_id.as_deref(), t.user_id),
            ("jupyterhub-user-jhtest-a", Some("s1"), Some(user.id))
        );

        // an update keeps the tokens; a delete takes them along
        db.upsert_oauth_client(&client("jupyterhub-user-jhtest-a", "second", &scopes))
            .await
            .unwrap();
        assert!(db.token_by_id(id).await.unwrap().is_some());
        let ordinary = db
            .insert_token(&crate::db::NewToken {
                hashed: "t3",
                prefix: "t3",
                owner: crate::db::TokenOwner::User(user.id),
                scopes: &[],
                note: "",
                expires_at: None,
            })
            .await
            .unwrap();
        assert!(
            db.delete_oauth_client("jupyterhub-user-jhtest-a")
                .await
                .unwrap()
        );
        assert!(db.token_by_id(id).await.unwrap().is_none());
        assert!(
            !db.delete_oauth_client("jupyterhub-user-jhtest-a")
                .await
                .unwrap()
        );
        // the built-in client and its tokens stay
        assert!(!db.delete_oauth_client(HUB_CLIENT).await.unwrap());
        assert!(db.oauth_client(HUB_CLIENT).await.unwrap().is_some());
        assert!(db.token_by_id(ordinary).await.unwrap().is_some());
    }

    #[tokio::test]
    async fn pruning_service_clients() {
        let (_dir, db) = open().await;
        for id in ["service-a", "service-b", "jupyterhub-user-x"] {
            db.upsert_oauth_client(&client(id, "secret", &[]))
                .await
                .unwrap();
        }
        let gone = db
            .delete_oauth_clients_except("service-", &["service-a".into()])
            .await
            .unwrap();
        assert_eq!(gone, 1);
        assert!(db.oauth_client("service-a").await.unwrap().is_some());
        assert!(db.oauth_client("service-b").await.unwrap().is_none());
        assert!(
            db.oauth_client("jupyterhub-user-x")
                .await
                .unwrap()
                .is_some()
        );
        assert!(db.oauth_client(HUB_CLIENT).await.unwrap().is_some());
    }
}
