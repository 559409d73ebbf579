//! API tokens: generation, hashing, lookup, and the scopes a token
//! carries.
//!
//! Tokens are 32 random bytes from the OS, hex-encoded. Only their SHA-256
//! is stored (a fast hash suits high-entropy secrets: there is nothing to
//! guess; passwords get a slow hash instead), with the first four
//! characters kept as JupyterHub keeps them, to tell tokens apart in
//! listings and logs. Tokens from the configuration (service `api_token`)
//! are hashed once at start, and requests look tokens up by hash.

use sha2::{Digest, Sha256};

use crate::db::{Db, DbError, TokenOwner, TokenRow};
use crate::scopes::{self, Owner, ScopeSet};
use crate::secret;

/// How many leading characters of a token are stored in clear.
pub const PREFIX_LEN: usize = 4;

/// The stored form of a token: SHA-256, hex.
pub fn hash(token: &str) -> String {
    secret::hex(&Sha256::digest(token.as_bytes()))
}

/// The token's stored prefix.
pub fn prefix(token: &str) -> &str {
    let end = token
        .char_indices()
        .nth(PREFIX_LEN)
        .map_or(token.len(), |(i, _)| i);
    &token[..end]
}

/// A new random token.
pub fn generate() -> Result<String, secret::SecretError> {
    secret::random_hex(32)
}

/// The `Authorization` header's token (`token X` or `bearer X`, any case),
/// as JupyterHub accepts it.
pub fn from_header(value: &str) -> Option<&str> {
    let (scheme, rest) = value.split_once(|c: char| c.is_ascii_whitespace())?;
    if !scheme.eq_ignore_ascii_case("token") && !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = rest.trim_start();
    if token.is_empty() || token.contains(|c: char| c.is_whitespace()) {
        return None;
    }
    Some(token)
}

/// Finds an unexpired token by value.
pub async fn find(db: &Db, token: &str) -> Result<Option<TokenRow>, DbError> {
    let row = db.token_by_hash(&hash(token)).await?;
    let now = crate::db::now();
    Ok(row.filter(|t| {
        t.expires_at
            .as_ref()
            .is_none_or(|e| e.as_str() >= now.as_str())
    }))
}

/// The owner of a token, as scopes see it.
pub fn owner_of(t: &TokenRow) -> Owner<'_> {
    match t.user_id {
        Some(_) => Owner::User(&t.owner_name),
        None => Owner::Service(&t.owner_name),
    }
}

/// The expanded scopes of a user or service from its roles (and, for a
/// user, its groups' roles).
pub async fn owner_scopes(db: &Db, owner: TokenOwner, name: &str) -> Result<ScopeSet, DbError> {
    let (raw, who) = match owner {
        TokenOwner::User(id) => (db.user_role_scopes(id).await?, Owner::User(name)),
        TokenOwner::Service(id) => (db.service_role_scopes(id).await?, Owner::Service(name)),
    };
    Ok(scopes::expand(raw.iter().map(String::as_str), Some(who)))
}

/// Intersects, resolving group membership of the users named on either
/// side from the database.
pub async fn intersect(db: &Db, a: &ScopeSet, b: &ScopeSet) -> Result<ScopeSet, DbError> {
    let needs_groups = a.iter().chain(b).any(|s| s.contains("!group="));
    if !needs_groups {
        return Ok(scopes::intersect(a, b, &scopes::NoGroups));
    }
    let users: Vec<String> = scopes::users_named([a, b]).into_iter().collect();
    let groups = db.groups_of_usernames(&users).await?;
    Ok(scopes::intersect(a, b, &groups))
}

fn row_owner(t: &TokenRow) -> TokenOwner {
    match (t.user_id, t.service_id) {
        (Some(id), _) => TokenOwner::User(id),
        (None, Some(id)) => TokenOwner::Service(id),
        // the schema's CHECK makes this unreachable; a service id of 0
        // owns nothing
        (None, None) => TokenOwner::Service(0),
    }
}

/// What a token may do: its scopes intersected with its owner's, plus
/// the scopes to identify the owner. `inherit` means the owner's scopes.
pub async fn token_scopes(db: &Db, t: &TokenRow) -> Result<ScopeSet, DbError> {
    let owner = owner_of(t);
    let owner_set = owner_scopes(db, row_owner(t), &t.owner_name).await?;
    let raw = t.scope_list();
    if raw.iter().any(|s| s == "inherit") {
        return Ok(owner_set);
    }
    let mut wanted = scopes::expand(raw.iter().map(String::as_str), Some(owner));
    wanted.extend(scopes::identify_scopes(owner));
    let wanted = scopes::reduce(&wanted);
    intersect(db, &wanted, &owner_set).await
}

/// Checks that `requested` raw scopes may be given to a token of `owner`:
/// they exist, and the owner holds everything they expand to. The error
/// is JupyterHub's message.
pub async fn check_token_scopes(
    db: &Db,
    requested: &[String],
    owner: TokenOwner,
    owner_name: &str,
) -> Result<Result<(), String>, DbError> {
    if let Err(m) = scopes::check_exist(requested.iter().map(String::as_str), "token") {
        return Ok(Err(m));
    }
    let rest: Vec<&str> = requested
        .iter()
        .map(String::as_str)
        .filter(|s| *s != "inherit")
        .collect();
    let who = match owner {
        TokenOwner::User(_) => Owner::User(owner_name),
        TokenOwner::Service(_) => Owner::Service(owner_name),
    };
    let wanted = scopes::expand(rest, Some(who));
    if wanted.is_empty() {
        return Ok(Ok(()));
    }
    let have = owner_scopes(db, owner, owner_name).await?;
    let granted = intersect(db, &wanted, &have).await?;
    let excess: Vec<&str> = wanted
        .iter()
        .filter(|s| !granted.contains(*s))
        .map(String::as_str)
        .collect();
    if excess.is_empty() {
        return Ok(Ok(()));
    }
    let kind = match owner {
        TokenOwner::User(_) => "User",
        TokenOwner::Service(_) => "Service",
    };
    Ok(Err(format!(
        "Not assigning requested scopes {} not held by {kind} {owner_name}",
        excess.join(",")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_forms() {
        assert_eq!(from_header("token abc"), Some("abc"));
        assert_eq!(from_header("Bearer abc"), Some("abc"));
        assert_eq!(from_header("TOKEN   abc"), Some("abc"));
        assert_eq!(from_header("Basic abc"), None);
        assert_eq!(from_header("token"), None);
        assert_eq!(from_header("token a b"), None);
    }

    #[test]
    fn hashing_and_prefix() {
        let t = generate().unwrap();
        assert_eq!(t.len(), 64);
        assert_ne!(t, generate().unwrap());
        assert_eq!(hash("abc").len(), 64);
        assert_eq!(
            hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(prefix("abcdef"), "abcd");
        assert_eq!(prefix("ab"), "ab");
        assert_eq!(prefix("ééééé"), "éééé");
    }
}
