//! The built-in idle culler (`[culler]`), the hub-side equivalent of
//! running `jupyterhub-idle-culler` as a service.
//!
//! Every `cull_every` seconds it first brings activity up to date from
//! the proxy, as JupyterHub's `update_last_activity` does: the
//! `last_activity` the proxy keeps for each server's route advances the
//! server's and its owner's `last_activity` (never backwards). Then it
//! stops servers idle longer than `timeout`, or older than `max_age` when
//! that is set, at most `concurrency` at a time, through
//! [`crate::spawner::stop`]; with `remove_named_servers` a culled named
//! server is deleted; with `cull_users`, users idle longer than `timeout`
//! who have no running server are deleted (admins only with
//! `cull_admin_users`).

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::app::AppState;
use crate::db::{self, servers::OwnedServer};
use crate::spawner::{self, StopOutcome};

/// Starts the culler when `[culler] enabled`; it runs as long as the hub.
pub fn start(st: &AppState) {
    let cfg = &st.config.culler;
    if !cfg.enabled {
        return;
    }
    tracing::info!(
        timeout = cfg.timeout,
        cull_every = cfg.cull_every,
        max_age = cfg.max_age,
        cull_users = cfg.cull_users,
        "idle culler enabled"
    );
    let st = st.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(st.config.culler.cull_every));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            cull_once(&st).await;
        }
    });
}

/// One round: activity from the proxy, then servers, then users.
pub async fn cull_once(st: &AppState) {
    if let Err(e) = update_last_activity(st).await {
        tracing::warn!(error = %e, "cannot update activity from the proxy");
    }
    cull_servers(st).await;
    if st.config.culler.cull_users {
        cull_users(st).await;
    }
}

/// Parses a timestamp as the proxy or the API writes it.
fn parse(t: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(t, &Rfc3339).ok()
}

/// Advances servers' and users' `last_activity` from the proxy's routes.
pub async fn update_last_activity(st: &AppState) -> Result<(), String> {
    let routes = st.proxy.get_routes().await.map_err(|e| e.to_string())?;
    for route in routes.values() {
        let data = &route["data"];
        let (Some(user), Some(server), Some(at)) = (
            data.get("user").and_then(Value::as_str),
            data.get("server_name").and_then(Value::as_str),
            data.get("last_activity")
                .and_then(Value::as_str)
                .and_then(parse),
        ) else {
            continue;
        };
        let at = db::timestamp(at);
        let Some(u) = st.db.find_user(user).await.map_err(|e| e.to_string())? else {
            continue;
        };
        if let Some(row) = st
            .db
            .find_server(u.id, server)
            .await
            .map_err(|e| e.to_string())?
        {
            st.db
                .touch_server(row.id, &at)
                .await
                .map_err(|e| e.to_string())?;
        }
        st.db
            .advance_user_activity(u.id, &at)
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Why a server is culled, if it is.
fn cull_reason(
    server: &db::servers::ServerRow,
    now: OffsetDateTime,
    timeout: u64,
    max_age: u64,
) -> Option<String> {
    let started = server.started.as_deref().and_then(parse);
    let last = server
        .last_activity
        .as_deref()
        .and_then(parse)
        .or(started)?;
    let idle = (now - last).whole_seconds();
    if let Some(started) = started {
        let age = (now - started).whole_seconds();
        if max_age > 0 && age >= max_age as i64 {
            return Some(format!("age {age}s >= max_age {max_age}s"));
        }
    }
    (idle > timeout as i64).then(|| format!("inactive {idle}s > timeout {timeout}s"))
}

async fn cull_servers(st: &AppState) {
    let cfg = &st.config.culler;
    let servers = match st.db.active_servers().await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "culler: cannot list the servers");
            return;
        }
    };
    let now = OffsetDateTime::now_utc();
    let limit = Arc::new(tokio::sync::Semaphore::new(cfg.concurrency as usize));
    let mut tasks = Vec::new();
    for OwnedServer { server, user_name } in servers {
        // only ready servers: none starting or stopping
        if server.pending.is_some()
            || st.servers.phase(server.id) != spawner::Phase::Idle
            || !spawner::is_running(&server)
        {
            continue;
        }
        let Some(reason) = cull_reason(&server, now, cfg.timeout, cfg.max_age) else {
            continue;
        };
        let st = st.clone();
        let limit = limit.clone();
        tasks.push(tokio::spawn(async move {
            let _permit = limit.acquire().await;
            cull_server(&st, &user_name, &server, &reason).await;
        }));
    }
    for t in tasks {
        if let Err(e) = t.await {
            tracing::warn!(error = %e, "culler: a stop failed");
        }
    }
}

async fn cull_server(st: &AppState, user_name: &str, server: &db::servers::ServerRow, why: &str) {
    let Ok(Some(user)) = st.db.find_user(user_name).await else {
        return;
    };
    tracing::info!(user = %user_name, server = %server.name, reason = %why, "culling server");
    match spawner::stop(st, &user, &server.name).await {
        Ok(StopOutcome::Stopped) => {}
        Ok(StopOutcome::Pending) => {
            // a slow stop: wait for it, then the removal below applies
            for _ in 0..600 {
                if st.servers.phase(server.id) == spawner::Phase::Idle {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Err(e) => {
            tracing::warn!(user = %user_name, server = %server.name, error = %e, "culler: cannot stop the server");
            return;
        }
    }
    if !server.name.is_empty() && st.config.culler.remove_named_servers {
        match st.db.find_server(user.id, &server.name).await {
            Ok(Some(row)) if spawner::is_stopped(&row) => match st.db.delete_server(row.id).await {
                Ok(()) => {
                    tracing::info!(user = %user_name, server = %server.name, "culler removed the named server");
                }
                Err(e) => tracing::warn!(error = %e, "culler: cannot remove the server"),
            },
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "culler: cannot find the server"),
        }
    }
}

async fn cull_users(st: &AppState) {
    let cfg = &st.config.culler;
    let before = db::timestamp(OffsetDateTime::now_utc() - Duration::from_secs(cfg.timeout));
    let users = match st.db.idle_users_without_servers(&before).await {
        Ok(u) => u,
        Err(e) => {
            tracing::warn!(error = %e, "culler: cannot list idle users");
            return;
        }
    };
    for user in users {
        if user.admin && !cfg.cull_admin_users {
            continue;
        }
        tracing::info!(user = %user.name, last_activity = ?user.last_activity, "culling user");
        if let Err(e) = st.db.delete_user(user.id).await {
            tracing::warn!(user = %user.name, error = %e, "culler: cannot delete the user");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(started: Option<&str>, last: Option<&str>) -> db::servers::ServerRow {
        db::servers::ServerRow {
            id: 1,
            user_id: 1,
            name: String::new(),
            display_name: None,
            pid: Some(10),
            port: Some(1),
            url: Some("http://127.0.0.1:1".into()),
            started: started.map(str::to_owned),
            last_activity: last.map(str::to_owned),
            state: "{}".into(),
            user_options: "{}".into(),
            pending: None,
            start_time: None,
            api_token_id: None,
            failure: None,
        }
    }

    #[test]
    fn idle_and_old_servers_are_culled_active_ones_kept() {
        let now = parse("2026-01-01T01:00:00Z").expect("a time");
        let started = Some("2026-01-01T00:00:00.000000Z");
        // active 10 s ago
        let active = row(started, Some("2026-01-01T00:59:50.000000Z"));
        assert_eq!(cull_reason(&active, now, 60, 0), None);
        // idle for 100 s
        let idle = row(started, Some("2026-01-01T00:58:20.000000Z"));
        assert!(cull_reason(&idle, now, 60, 0).is_some());
        // active, but older than max_age
        assert!(cull_reason(&active, now, 60, 1800).is_some());
        // never active: its start counts
        assert!(cull_reason(&row(started, None), now, 60, 0).is_some());
        assert_eq!(cull_reason(&row(None, None), now, 60, 0), None);
    }

    #[test]
    fn proxy_timestamps_parse_in_either_precision() {
        // configurable-http-proxy writes milliseconds, the hub microseconds
        let a = parse("2026-01-01T00:00:00.123Z").expect("milliseconds");
        let b = parse("2026-01-01T00:00:00.123000Z").expect("microseconds");
        assert_eq!(a, b);
        assert_eq!(db::timestamp(a), "2026-01-01T00:00:00.123000Z");
    }
}
