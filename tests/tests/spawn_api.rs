//! Users' servers through the REST API, with the whole stack: the built
//! hub as `jupyterhub`, the proxy it starts, real users, sudo, the
//! installed helper and the real `jupyterhub-singleuser` from the server
//! venv. Needs root (skips loudly otherwise).

use std::io::{BufRead, BufReader};
use std::time::{Duration, Instant};

use jhub_tests::privileged::{proc_status, require_root, uid_of};
use jhub_tests::stack::{
    HomeUser, ProxyKind, Stack, StackOptions, follow, past_progress, redirect, start_from_home,
    wait_until,
};
use serde_json::{Value, json};

/// Reads `user`'s progress events (server-sent events) until the final
/// one, for at most `limit`.
fn progress_events(stack: &Stack, user: &str, limit: Duration) -> Vec<Value> {
    let url = format!("{}/hub/api/users/{user}/server/progress", stack.hub.url);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(limit))
        .build()
        .into();
    let deadline = Instant::now() + limit;
    loop {
        let mut resp = agent
            .get(&url)
            .header("Authorization", format!("token {}", stack.hub.token))
            .call()
            .expect("progress request");
        if (resp.status() == 400 || resp.status() == 404) && Instant::now() < deadline {
            // not started yet (no server row yet: 404; not starting: 400)
            std::thread::sleep(Duration::from_millis(20));
            continue;
        }
        assert_eq!(resp.status(), 200, "progress: {}", resp.status());
        let ctype = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        assert_eq!(ctype, "text/event-stream");
        let reader = BufReader::new(resp.body_mut().as_reader());
        let mut events = Vec::new();
        for line in reader.lines() {
            let line = line.expect("read the event stream");
            if let Some(data) = line.strip_prefix("data: ") {
                let e: Value = serde_json::from_str(data).expect("an event is JSON");
                let last = e["ready"] == json!(true) || e["failed"] == json!(true);
                events.push(e);
                if last {
                    break;
                }
            }
        }
        return events;
    }
}

/// Sends `POST /hub/api/users/{user}/server` from another thread; the
/// answer's status and how long it took.
fn start_in_background(stack: &Stack, user: &str) -> std::thread::JoinHandle<(u16, Duration)> {
    let url = format!("{}/hub/api/users/{user}/server", stack.hub.url);
    let token = stack.hub.token.clone();
    std::thread::spawn(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(120)))
            .build()
            .into();
        let began = Instant::now();
        let r = agent
            .post(url)
            .header("Authorization", format!("token {token}"))
            .send_empty()
            .expect("start request");
        (r.status().as_u16(), began.elapsed())
    })
}

#[test]
fn spawn_progress_access_and_stop() {
    if !require_root(
        "spawn_progress_access_and_stop",
        "a real server started through sudo for a real user",
    ) {
        return;
    }
    let alice = HomeUser::create("jhs-a");
    let bob = HomeUser::create("jhs-b");
    let stack = Stack::start(&StackOptions::default());
    stack.add_user(&alice.name);
    stack.add_user(&bob.name);

    // Start, and follow the progress events while it starts.
    let starter = start_in_background(&stack, &alice.name);
    let events = progress_events(&stack, &alice.name, Duration::from_secs(120));
    let (status, took) = starter.join().expect("starter");
    assert!(status == 201 || status == 202, "start answered {status}");
    let last = events.last().expect("at least one event");
    assert_eq!(
        last["ready"],
        json!(true),
        "events: {events:?}\n{}",
        stack.hub.log()
    );
    assert_eq!(last["progress"], json!(100));
    let prefix = format!("/user/{}/", alice.name);
    assert_eq!(last["url"], json!(prefix));
    if events.len() > 1 {
        assert_eq!(events[0]["progress"], json!(0), "{events:?}");
    }
    eprintln!(
        "start answered {status} after {took:?}; {} progress events",
        events.len()
    );

    // The model says ready, with the URLs JupyterHub gives.
    let model = stack.wait_ready(&alice.name);
    assert_eq!(model["url"], json!(prefix));
    assert_eq!(model["pending"], Value::Null);
    assert_eq!(model["stopped"], json!(false));
    assert_eq!(
        model["progress_url"],
        json!(format!("/hub/api/users/{}/server/progress", alice.name))
    );
    let user = stack
        .hub
        .api("GET", &format!("/users/{}", alice.name), None)
        .json();
    assert_eq!(user["server"], json!(prefix), "{user}");
    assert_eq!(user["servers"][""]["ready"], json!(true), "{user}");

    // The process runs as alice.
    let pid = stack.server_pid(&alice.name);
    let uid = proc_status(pid, "Uid").expect("the server's /proc status");
    assert_eq!(
        uid.split_whitespace().next(),
        Some(uid_of(&alice.name).to_string().as_str()),
        "the server must run as its user"
    );

    // Through the proxy: alice's token gets in, bob's does not.
    let alice_token = stack.token(&alice.name, None);
    let bob_token = stack.token(&bob.name, None);
    let status = stack.public_get(&format!("{prefix}api/status"), Some(&alice_token));
    assert_eq!(status.status, 200, "{}", status.body);
    assert!(status.body.contains("\"started\""), "{}", status.body);
    let refused = stack.public_get(&format!("{prefix}api/status"), Some(&bob_token));
    assert_eq!(
        refused.status, 403,
        "bob must not reach alice's server: {}",
        refused.body
    );
    let anonymous = stack.public_get(&format!("{prefix}api/status"), None);
    assert!(
        anonymous.status == 403 || anonymous.status == 401,
        "no token: {} {}",
        anonymous.status,
        anonymous.body
    );

    // A second start is refused while it runs.
    let again = stack
        .hub
        .api("POST", &format!("/users/{}/server", alice.name), None);
    assert_eq!(again.status, 400, "{}", again.body);
    assert!(
        again.json()["message"]
            .as_str()
            .unwrap_or_default()
            .contains("already running")
    );

    // Stop: 204 (or 202 then stopped), the route and every process of
    // alice gone, her server token revoked.
    let began = Instant::now();
    let stopped = stack.stop_server(&alice.name);
    assert!(stopped == 204 || stopped == 202, "stop answered {stopped}");
    wait_until("alice's server stopped", Duration::from_secs(30), || {
        stack.server(&alice.name)["stopped"] == json!(true)
    });
    eprintln!("stop took {:?}", began.elapsed());
    wait_until("no process of alice", Duration::from_secs(15), || {
        alice.processes().is_empty()
    });
    let routes = stack.routes();
    assert!(
        routes.get(format!("/user/{}", alice.name)).is_none(),
        "the route must go with the server: {routes}"
    );
    let after = stack.public_get(&format!("{prefix}api/status"), Some(&alice_token));
    assert_ne!(after.status, 200, "the server is gone: {}", after.body);
    let user = stack
        .hub
        .api("GET", &format!("/users/{}", alice.name), None)
        .json();
    assert_eq!(user["server"], Value::Null, "{user}");
    assert_eq!(user["servers"], json!({}), "{user}");
}

#[test]
fn failed_start_is_reported_and_cleaned_up() {
    if !require_root(
        "failed_start_is_reported_and_cleaned_up",
        "a server that cannot start, through sudo for a real user",
    ) {
        return;
    }
    let carol = HomeUser::create("jhs-c");
    // A flag jupyterhub-singleuser refuses: the server exits at once.
    let stack = Stack::start(&StackOptions {
        spawner_extra: "args = [\"--no-such-flag-for-this-test\"]\nhttp_timeout = 20\n".into(),
        ..StackOptions::default()
    });
    stack.add_user(&carol.name);
    let a = stack
        .hub
        .api("POST", &format!("/users/{}/server", carol.name), None);
    // fails within the 10 s the API waits (500 with the reason), or
    // later (202, then the model shows it stopped)
    assert!(
        a.status == 500 || a.status == 202,
        "{} {}",
        a.status,
        a.body
    );
    if a.status == 500 {
        let message = a.json()["message"].as_str().unwrap_or_default().to_owned();
        assert!(!message.is_empty(), "{}", a.body);
    }
    wait_until(
        "the failed server is stopped",
        Duration::from_secs(60),
        || stack.server(&carol.name)["stopped"] == json!(true),
    );
    wait_until("no process of carol", Duration::from_secs(15), || {
        carol.processes().is_empty()
    });
    assert!(
        stack
            .routes()
            .get(format!("/user/{}", carol.name))
            .is_none()
    );
    // The progress stream ends with the failure and its reason.
    let events = progress_events(&stack, &carol.name, Duration::from_secs(10));
    let last = events.last().expect("an event");
    assert_eq!(last["failed"], json!(true), "{events:?}");
    assert!(
        last["message"]
            .as_str()
            .unwrap_or_default()
            .starts_with("Spawn failed: "),
        "{last}"
    );
    // No token of the server is left.
    let tokens = stack
        .hub
        .api("GET", &format!("/users/{}/tokens", carol.name), None)
        .json();
    let server_tokens: Vec<&Value> = tokens["api_tokens"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|t| {
                    t["note"]
                        .as_str()
                        .unwrap_or_default()
                        .starts_with("Server at")
                })
                .collect()
        })
        .unwrap_or_default();
    assert!(server_tokens.is_empty(), "{tokens}");
}

#[test]
fn limits_and_named_servers() {
    if !require_root(
        "limits_and_named_servers",
        "named servers and limits for a real user",
    ) {
        return;
    }
    let dave = HomeUser::create("jhs-d");
    let erin = HomeUser::create("jhs-e");
    let stack = Stack::start(&StackOptions {
        hub_extra: "allow_named_servers = true\nnamed_server_limit_per_user = 1\n\
                    active_server_limit = 1\n"
            .into(),
        ..StackOptions::default()
    });
    stack.add_user(&dave.name);
    stack.add_user(&erin.name);

    // A named server, with its own prefix.
    let a = stack.hub.api(
        "POST",
        &format!("/users/{}/servers/lab1", dave.name),
        Some(&json!({})),
    );
    assert!(
        a.status == 201 || a.status == 202,
        "{} {}",
        a.status,
        a.body
    );
    wait_until("lab1 ready", Duration::from_secs(90), || {
        stack
            .hub
            .api("GET", &format!("/users/{}/servers/lab1", dave.name), None)
            .json()["ready"]
            == json!(true)
    });
    let token = stack.token(&dave.name, None);
    let status = stack.public_get(
        &format!("/user/{}/lab1/api/status", dave.name),
        Some(&token),
    );
    assert_eq!(status.status, 200, "{}", status.body);

    // The per-user limit on named servers.
    let second = stack
        .hub
        .api("POST", &format!("/users/{}/servers/lab2", dave.name), None);
    assert_eq!(second.status, 400, "{}", second.body);
    assert!(
        second.body.contains("maximum of 1 named servers"),
        "{}",
        second.body
    );

    // The active server limit: a second user's start is refused.
    let busy = stack
        .hub
        .api("POST", &format!("/users/{}/server", erin.name), None);
    assert_eq!(busy.status, 429, "{}", busy.body);
    assert!(busy.body.contains("Active user limit"), "{}", busy.body);

    // Bad names are refused.
    let bad = stack.hub.api(
        "POST",
        &format!("/users/{}/servers/.hidden", dave.name),
        None,
    );
    assert_eq!(bad.status, 400, "{}", bad.body);

    // Stop and remove the named server.
    let gone = stack.hub.api(
        "DELETE",
        &format!("/users/{}/servers/lab1", dave.name),
        Some(&json!({"remove": true})),
    );
    assert!(gone.status == 204 || gone.status == 202, "{}", gone.body);
    wait_until("lab1 removed", Duration::from_secs(30), || {
        stack
            .hub
            .api("GET", &format!("/users/{}/servers/lab1", dave.name), None)
            .status
            == 404
    });
    wait_until("no process of dave", Duration::from_secs(15), || {
        dave.processes().is_empty()
    });
    // With the slot free, erin's server starts.
    let ok = stack
        .hub
        .api("POST", &format!("/users/{}/server", erin.name), None);
    assert!(ok.status == 201 || ok.status == 202, "{}", ok.body);
    stack.wait_ready(&erin.name);
    assert_eq!(stack.stop_server(&erin.name), 204);
}

#[test]
fn activity_reports_move_last_activity_forward() {
    if !require_root(
        "activity_reports_move_last_activity_forward",
        "the whole stack",
    ) {
        return;
    }
    let frank = HomeUser::create("jhs-f");
    let stack = Stack::start(&StackOptions {
        proxy: ProxyKind::Jhub,
        ..StackOptions::default()
    });
    stack.add_user(&frank.name);
    stack.start_server(&frank.name);
    let path = format!("/users/{}/activity", frank.name);
    let t = "2030-01-02T03:04:05.000000Z";
    let a = stack.hub.api(
        "POST",
        &path,
        Some(&json!({"last_activity": t, "servers": {"": {"last_activity": t}}})),
    );
    assert_eq!(a.status, 200, "{}", a.body);
    let user = stack
        .hub
        .api("GET", &format!("/users/{}", frank.name), None)
        .json();
    assert_eq!(user["last_activity"], json!(t), "{user}");
    assert_eq!(user["servers"][""]["last_activity"], json!(t), "{user}");
    // an older report does not move it back
    let old = "2020-01-01T00:00:00Z";
    let a = stack
        .hub
        .api("POST", &path, Some(&json!({"last_activity": old})));
    assert_eq!(a.status, 200, "{}", a.body);
    let user = stack
        .hub
        .api("GET", &format!("/users/{}", frank.name), None)
        .json();
    assert_eq!(user["last_activity"], json!(t), "{user}");
    // bad input
    for bad in [
        json!({"last_activity": "yesterday"}),
        json!({"servers": {"nope": {"last_activity": t}}}),
        json!({"servers": []}),
        json!([]),
    ] {
        let a = stack.hub.api("POST", &path, Some(&bad));
        assert_eq!(a.status, 400, "{bad}: {}", a.body);
    }
    // another user's token may not report for frank
    let other = HomeUser::create("jhs-g");
    stack.add_user(&other.name);
    let token = stack.token(&other.name, None);
    let a = stack.hub.api_as(
        Some(&token),
        "POST",
        &path,
        Some(&json!({"last_activity": t})),
    );
    assert!(a.status == 403 || a.status == 404, "{}", a.body);
    assert_eq!(stack.stop_server(&frank.name), 204);
}

#[test]
fn browser_login_start_open_lab_and_come_back() {
    if !require_root(
        "browser_login_start_open_lab_and_come_back",
        "a PAM login, a start from the home page, the OAuth login of the real server",
    ) {
        return;
    }
    let alice = HomeUser::create("jhs-h");
    let bob = HomeUser::create("jhs-i");
    let stack = Stack::start(&StackOptions::default());
    let origin = stack.public.clone();
    let mut b = jhub_tests::browser::Browser::new(&origin);
    let login = b.login(&alice.name, &alice.password);
    assert!(redirect(login.status), "{login:?}\n{}", stack.hub.log());
    let home = b.get("/hub/home");
    assert!(home.body.contains("Start My Server"), "{}", home.body);
    let at = start_from_home(&mut b, &alice.name, Duration::from_secs(90));
    assert_eq!(at, format!("/user/{}/", alice.name));
    let (lab, visited) = follow(&mut b, &origin, &at);
    assert_eq!(lab.status, 200, "{visited:?}: {lab:?}\n{}", stack.hub.log());
    assert!(lab.body.contains("JupyterLab"), "{visited:?}: {}", lab.body);
    assert!(
        visited
            .iter()
            .any(|v| v.starts_with("/hub/api/oauth2/authorize")),
        "the server logs the browser in through the hub: {visited:?}"
    );
    assert!(
        visited
            .last()
            .is_some_and(|v| v.starts_with(&format!("/user/{}/lab", alice.name))),
        "{visited:?}"
    );

    // Another logged-in user is refused by the hub at the OAuth step.
    let mut other = jhub_tests::browser::Browser::new(&origin);
    assert!(redirect(other.login(&bob.name, &bob.password).status));
    let (refused, visited) = follow(&mut other, &origin, &format!("/user/{}/lab", alice.name));
    assert_eq!(refused.status, 403, "{visited:?}: {refused:?}");
    assert!(!refused.body.contains("JupyterLab"), "{}", refused.body);

    // Stopped: the server's URL lands on the hub's offer to start it,
    // which comes back to the same URL.
    let xsrf = jhub_tests::browser::xsrf_in(&b.get("/hub/home").body).expect("_xsrf");
    let stopped = b.post_form(&format!("/hub/stop/{}", alice.name), &[("_xsrf", &xsrf)]);
    assert!(redirect(stopped.status), "{stopped:?}");
    wait_until("alice's server stopped", Duration::from_secs(30), || {
        stack.server(&alice.name)["stopped"] == json!(true)
    });
    let wanted = format!("/user/{}/lab/tree/notes.ipynb", alice.name);
    let (offer, visited) = follow(&mut b, &origin, &wanted);
    assert_eq!(offer.status, 424, "{visited:?}: {offer:?}");
    assert!(offer.body.contains("not running"), "{}", offer.body);
    let form_action = format!("/hub/spawn/{}?next=", alice.name);
    let at = offer
        .body
        .find(&form_action)
        .expect("the offer's start form");
    let action: String = offer.body[at..].chars().take_while(|c| *c != '"').collect();
    let action = action.replace("&amp;", "&");
    let xsrf = jhub_tests::browser::xsrf_in(&offer.body).expect("_xsrf");
    let restarted = b.post_form(&action, &[("_xsrf", &xsrf)]);
    assert!(redirect(restarted.status), "{restarted:?}");
    let at = past_progress(
        &mut b,
        restarted.location.expect("a redirect"),
        Duration::from_secs(90),
    );
    assert_eq!(at, wanted, "back to the URL first asked for");
    assert_eq!(stack.stop_server(&alice.name), 204);
}

#[test]
fn concurrent_spawn_limit_answers_429() {
    if !require_root(
        "concurrent_spawn_limit_answers_429",
        "two real users' starts at once",
    ) {
        return;
    }
    let a = HomeUser::create("jhs-j");
    let b = HomeUser::create("jhs-k");
    let stack = Stack::start(&StackOptions {
        hub_extra: "concurrent_spawn_limit = 1\n".into(),
        ..StackOptions::default()
    });
    stack.add_user(&a.name);
    stack.add_user(&b.name);
    // a's start holds the only slot for at least the helper's first
    // second; b's start meanwhile is refused
    let first = start_in_background(&stack, &a.name);
    wait_until("a's start is under way", Duration::from_secs(10), || {
        stack.server(&a.name)["pending"] == json!("spawn")
    });
    let busy = stack
        .hub
        .api("POST", &format!("/users/{}/server", b.name), None);
    assert_eq!(busy.status, 429, "{}", busy.body);
    assert!(busy.body.contains("Too many users"), "{}", busy.body);
    assert!(matches!(first.join().expect("first start").0, 201 | 202));
    stack.wait_ready(&a.name);
    // the slot is free again
    let ok = stack
        .hub
        .api("POST", &format!("/users/{}/server", b.name), None);
    assert!(matches!(ok.status, 201 | 202), "{}", ok.body);
    stack.wait_ready(&b.name);
    for u in [&a, &b] {
        assert_eq!(stack.stop_server(&u.name), 204);
    }
}

#[test]
fn shutdown_with_servers_and_proxy_stops_everything() {
    if !require_root(
        "shutdown_with_servers_and_proxy_stops_everything",
        "the whole stack",
    ) {
        return;
    }
    let u = HomeUser::create("jhs-l");
    let mut stack = Stack::start(&StackOptions::default());
    stack.add_user(&u.name);
    stack.start_server(&u.name);
    let proxy = stack.proxy_pid().expect("the proxy's pid");
    let a = stack.hub.api(
        "POST",
        "/shutdown",
        Some(&json!({"servers": true, "proxy": true})),
    );
    assert_eq!(a.status, 202, "{}", a.body);
    assert!(stack.hub.wait_exit().is_some(), "the hub did not exit");
    assert!(u.processes().is_empty(), "a server outlived the shutdown");
    assert!(
        jhub_tests::privileged::proc_stat(proxy).is_none_or(|s| s.state == 'Z'),
        "the proxy outlived the shutdown"
    );
}

#[test]
fn cancelled_start_and_deleted_user_leave_nothing() {
    if !require_root(
        "cancelled_start_and_deleted_user_leave_nothing",
        "the whole stack",
    ) {
        return;
    }
    let a = HomeUser::create("jhs-m");
    let b = HomeUser::create("jhs-n");
    let stack = Stack::start(&StackOptions::default());
    stack.add_user(&a.name);
    stack.add_user(&b.name);

    // A stop while the start is under way cancels it.
    let starter = start_in_background(&stack, &a.name);
    wait_until("a's start is under way", Duration::from_secs(10), || {
        stack.server(&a.name)["pending"] == json!("spawn")
    });
    let stop = stack.stop_server(&a.name);
    assert!(matches!(stop, 202 | 204), "stop during the start: {stop}");
    let started = starter.join().expect("starter").0;
    assert!(
        matches!(started, 202 | 500),
        "the cancelled start answered {started}"
    );
    wait_until("a's server stopped", Duration::from_secs(30), || {
        stack.server(&a.name)["stopped"] == json!(true)
    });
    wait_until("no process of a", Duration::from_secs(15), || {
        a.processes().is_empty()
    });
    assert!(stack.routes().get(format!("/user/{}", a.name)).is_none());

    // Deleting a user stops their server first.
    stack.start_server(&b.name);
    let d = stack.hub.api("DELETE", &format!("/users/{}", b.name), None);
    assert_eq!(d.status, 204, "{}", d.body);
    wait_until("no process of b", Duration::from_secs(15), || {
        b.processes().is_empty()
    });
    assert!(
        stack.routes().get(format!("/user/{}", b.name)).is_none(),
        "{}",
        stack.routes()
    );
}

#[test]
fn http_timeout_stops_a_server_that_never_answers() {
    if !require_root(
        "http_timeout_stops_a_server_that_never_answers",
        "a real server listening elsewhere than the hub expects",
    ) {
        return;
    }
    let u = HomeUser::create("jhs-o");
    // The server runs but listens on another port than the one the hub
    // gave it, so the hub never gets an answer.
    let elsewhere = jhub_tests::jupyterhub::free_port();
    let stack = Stack::start(&StackOptions {
        spawner_extra: format!("args = [\"--ServerApp.port={elsewhere}\"]\nhttp_timeout = 4\n"),
        ..StackOptions::default()
    });
    stack.add_user(&u.name);
    let began = Instant::now();
    let a = stack
        .hub
        .api("POST", &format!("/users/{}/server", u.name), None);
    assert_eq!(a.status, 500, "{}", a.body);
    let message = a.json()["message"].as_str().unwrap_or_default().to_owned();
    assert!(
        message.contains("didn't respond in 4 seconds") && message.contains("http_timeout"),
        "{message}"
    );
    assert!(
        began.elapsed() < Duration::from_secs(30),
        "{:?}",
        began.elapsed()
    );
    wait_until("no process of the user", Duration::from_secs(15), || {
        u.processes().is_empty()
    });
    let m = stack.server(&u.name);
    assert_eq!(m["stopped"], json!(true), "{m}");
    assert!(stack.routes().get(format!("/user/{}", u.name)).is_none());
}
