//! Who is asking, and what they may do; and how browsers log in.
//!
//! Submodules: [`tokens`] (API tokens), [`authenticator`] (the
//! authenticator trait and the dispatch on `authenticator_class`),
//! [`login`] (one login attempt, the same for every class), [`allow`]
//! (JupyterHub's allow and block rules), and the classes [`pam`],
//! [`dummy`] and [`native`].
//!
//! API requests authenticate with a token (`Authorization: token X` or
//! `Bearer X`; JupyterHub 6 ignores `?token=` on the API and so does this
//! hub). [`Requester`] is the extractor: it finds the token, computes its
//! scopes, records activity, and answers 403 "Missing or invalid
//! credentials." when there is no valid token.
//!
//! A browser's login cookie ([`crate::session`]) is accepted too, as
//! JupyterHub accepts it: the request then has all of its user's scopes,
//! and a state-changing one (not GET, HEAD or OPTIONS) must also carry the
//! session's XSRF token in `X-XSRFToken`, else the cookie is ignored.
//! A token in `Authorization` wins over a cookie and needs no XSRF token.
//!
//! The access checks follow JupyterHub's `needs_scope`: a request needs
//! one of a handler's scopes on the resource named in the path; when the
//! requester holds one of those scopes only for *other* resources the
//! answer is 404 (the resource may as well not exist), otherwise 403.

pub mod allow;
pub mod authenticator;
pub mod dummy;
pub mod login;
pub mod native;
pub mod pam;
pub mod tokens;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use crate::app::AppState;
use crate::db::{TokenOwner, TokenRow};
use crate::error::{ApiError, ApiResult};
use crate::scopes::{self, Filter, Parsed, Resource, ScopeSet};

/// The message for requests without valid credentials.
pub const MISSING_CREDENTIALS: &str = "Missing or invalid credentials.";

/// Who made an API request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// A user.
    User {
        /// Row id.
        id: i64,
        /// Name.
        name: String,
        /// Admin flag.
        admin: bool,
    },
    /// A service.
    Service {
        /// Row id.
        id: i64,
        /// Name.
        name: String,
        /// Admin flag.
        admin: bool,
    },
}

impl Principal {
    /// The name.
    pub fn name(&self) -> &str {
        match self {
            Self::User { name, .. } | Self::Service { name, .. } => name,
        }
    }

    /// Whether the requester is an admin (only admins may make admins).
    pub fn is_admin(&self) -> bool {
        match self {
            Self::User { admin, .. } | Self::Service { admin, .. } => *admin,
        }
    }

    /// `user` or `service`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::User { .. } => "user",
            Self::Service { .. } => "service",
        }
    }
}

/// How an API request was authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// An API token in `Authorization`.
    Token,
    /// A browser's login cookie.
    Session,
}

/// An authenticated API request: who, with which token, and what it may
/// do.
#[derive(Debug, Clone)]
pub struct Requester {
    /// Who.
    pub principal: Principal,
    /// How the request was authenticated.
    pub via: Via,
    /// The token used; for a browser session, a stand-in with id 0 and
    /// the `inherit` scope (the user's own scopes), never stored.
    pub token: TokenRow,
    /// The token's expanded scopes.
    pub expanded: ScopeSet,
    /// The same, parsed.
    pub parsed: Parsed,
}

/// A per-request slot where authentication records who asked, for the
/// request log.
#[derive(Debug, Clone, Default)]
pub struct RequestUser(pub Arc<Mutex<Option<String>>>);

impl RequestUser {
    /// Records who asked.
    pub fn set(&self, name: &str) {
        if let Ok(mut slot) = self.0.lock() {
            *slot = Some(name.to_owned());
        }
    }

    /// Who asked, if known.
    pub fn get(&self) -> Option<String> {
        self.0.lock().ok().and_then(|s| s.clone())
    }
}

impl FromRequestParts<AppState> for Requester {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, st: &AppState) -> Result<Self, ApiError> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        let Some(token) = header.and_then(tokens::from_header) else {
            if let Some(requester) = Self::from_session(parts, st).await? {
                if let Some(slot) = parts.extensions.get::<RequestUser>() {
                    slot.set(requester.principal.name());
                }
                return Ok(requester);
            }
            return Err(ApiError::forbidden(MISSING_CREDENTIALS));
        };
        let Some(row) = tokens::find(&st.db, token).await? else {
            tracing::debug!(
                token.prefix = tokens::prefix(token),
                "unknown or expired token"
            );
            return Err(ApiError::forbidden(MISSING_CREDENTIALS));
        };
        let requester = Requester::for_token(st, row).await?;
        if let Some(slot) = parts.extensions.get::<RequestUser>() {
            slot.set(requester.principal.name());
        }
        requester.record_activity(st).await?;
        Ok(requester)
    }
}

impl Requester {
    /// The requester behind a browser's login cookie, if it has a live
    /// session (and, for a state-changing request, the session's XSRF
    /// token in `X-XSRFToken`).
    async fn from_session(parts: &Parts, st: &AppState) -> ApiResult<Option<Self>> {
        let Some(found) = crate::session::find(&st.sessions, &st.db, &parts.headers).await? else {
            return Ok(None);
        };
        if crate::pages::is_state_changing(&parts.method) {
            let binding = crate::session::XsrfBinding::Session(&found.id);
            let ok = crate::session::xsrf_from_headers(&parts.headers)
                .is_some_and(|t| binding.verify(&st.sessions, t));
            if !ok {
                tracing::debug!(user.name = %found.user.name, "login cookie without a valid XSRF token ignored");
                return Ok(None);
            }
        }
        let stand_in = TokenRow {
            id: 0,
            hashed: String::new(),
            user_id: Some(found.user.id),
            service_id: None,
            owner_name: found.user.name.clone(),
            owner_admin: found.user.admin,
            client_id: "jupyterhub".into(),
            client_description: "JupyterHub".into(),
            session_id: None,
            created: crate::db::now(),
            expires_at: None,
            last_activity: found.user.last_activity.clone(),
            note: "browser session".into(),
            scopes: r#"["inherit"]"#.into(),
        };
        let mut requester = Self::for_token(st, stand_in).await?;
        requester.via = Via::Session;
        crate::pages::record_activity(st, &found.user).await;
        Ok(Some(requester))
    }

    /// The requester behind a found token.
    pub async fn for_token(st: &AppState, token: TokenRow) -> ApiResult<Self> {
        let principal = match (token.user_id, token.service_id) {
            (Some(id), _) => Principal::User {
                id,
                name: token.owner_name.clone(),
                admin: token.owner_admin,
            },
            (None, Some(id)) => Principal::Service {
                id,
                name: token.owner_name.clone(),
                admin: token.owner_admin,
            },
            (None, None) => return Err(ApiError::forbidden(MISSING_CREDENTIALS)),
        };
        let expanded = tokens::token_scopes(&st.db, &token).await?;
        let parsed = scopes::parse(&expanded);
        Ok(Self {
            principal,
            via: Via::Token,
            token,
            expanded,
            parsed,
        })
    }

    /// Adds scopes (the identify scopes some endpoints always allow).
    pub fn add_scopes(&mut self, extra: &ScopeSet) {
        self.expanded.extend(extra.iter().cloned());
        self.parsed = scopes::parse(&self.expanded);
    }

    async fn record_activity(&self, st: &AppState) -> ApiResult<()> {
        let now = crate::db::now();
        let resolution = st.config.hub.activity_resolution;
        if !stale(self.token.last_activity.as_deref(), &now, resolution) {
            return Ok(());
        }
        st.db.touch_token(self.token.id, &now).await?;
        // a server's own API calls are not its user's activity
        if let Some(uid) = self.token.user_id {
            if !self.token.note.starts_with("Server at ") {
                st.db.touch_user(uid, &now).await?;
            }
        }
        Ok(())
    }

    /// The groups of `user`, when the scope's filter needs them.
    async fn groups_for(
        &self,
        st: &AppState,
        filter: &Filter,
        resource: Resource<'_>,
    ) -> ApiResult<std::collections::BTreeMap<String, BTreeSet<String>>> {
        let user = match resource {
            Resource::User(u) | Resource::Server(u, _) => u,
            _ => return Ok(Default::default()),
        };
        match filter {
            Filter::Some(map) if map.contains_key("group") => {
                Ok(st.db.groups_of_usernames(&[user.to_owned()]).await?)
            }
            _ => Ok(Default::default()),
        }
    }

    /// Whether the request has `scope` on `resource`.
    pub async fn allows(
        &self,
        st: &AppState,
        scope: &str,
        resource: Resource<'_>,
    ) -> ApiResult<bool> {
        let Some(filter) = self.parsed.get(scope) else {
            return Ok(false);
        };
        let groups = self.groups_for(st, filter, resource).await?;
        Ok(scopes::covers(filter, resource, &groups))
    }

    /// JupyterHub's `needs_scope`: passes if any of `needed` covers
    /// `resource` (or everything, when `None`); otherwise 404 if one of
    /// them is held for other resources, else 403.
    pub async fn need(
        &self,
        st: &AppState,
        needed: &[&str],
        resource: Option<Resource<'_>>,
    ) -> ApiResult<()> {
        for scope in needed {
            let ok = match resource {
                None => matches!(self.parsed.get(*scope), Some(Filter::All)),
                Some(r) => self.allows(st, scope, r).await?,
            };
            if ok {
                return Ok(());
            }
        }
        if resource.is_some() && needed.iter().any(|s| self.parsed.contains_key(*s)) {
            return Err(ApiError::not_found(
                "No access to resources or resources not found",
            ));
        }
        Err(forbidden_scopes(needed))
    }

    /// `needs_scope(..., post_filter=True)`: passes if the scope is held
    /// for anything; the handler then filters.
    pub fn need_some(&self, scope: &str) -> ApiResult<&Filter> {
        self.parsed
            .get(scope)
            .ok_or_else(|| forbidden_scopes(&[scope]))
    }

    /// The token's owner, for token operations.
    pub fn owner(&self) -> TokenOwner {
        match self.principal {
            Principal::User { id, .. } => TokenOwner::User(id),
            Principal::Service { id, .. } => TokenOwner::Service(id),
        }
    }
}

fn forbidden_scopes(needed: &[&str]) -> ApiError {
    ApiError::forbidden(format!(
        "Action is not authorized with current scopes; requires any of [{}]",
        needed.join(", ")
    ))
}

/// Whether activity last recorded at `last` is older than `resolution`
/// seconds at `now` (both in the API's timestamp form).
pub(crate) fn stale(last: Option<&str>, now: &str, resolution: u64) -> bool {
    let Some(last) = last else { return true };
    if resolution == 0 {
        return true;
    }
    let fmt = time::format_description::well_known::Rfc3339;
    match (
        time::OffsetDateTime::parse(last, &fmt),
        time::OffsetDateTime::parse(now, &fmt),
    ) {
        (Ok(l), Ok(n)) => (n - l).whole_seconds() >= resolution as i64,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::stale;

    #[test]
    fn activity_resolution() {
        let now = "2026-01-01T00:01:00.000000Z";
        assert!(stale(None, now, 30));
        assert!(stale(Some("2026-01-01T00:00:00.000000Z"), now, 30));
        assert!(!stale(Some("2026-01-01T00:00:45.000000Z"), now, 30));
        assert!(stale(Some("2026-01-01T00:00:45.000000Z"), now, 0));
    }
}
