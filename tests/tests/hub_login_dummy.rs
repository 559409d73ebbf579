//! Browser sessions and the login, logout and home pages against the
//! built `jhub` with the dummy authenticator (no root needed): signed
//! cookies, XSRF checks, logout and secret rotation invalidating sessions,
//! `next=` without open redirects, and hostile names and bodies refused
//! before any user row exists.

use jhub_tests::browser::{Browser, xsrf_in};
use jhub_tests::hub::{DUMMY_PASSWORD, LOGIN_COOKIE, Setup, TestHub};

/// A hub whose `[authenticator]` has the dummy password plus `extra`.
fn hub_with(extra: &str) -> TestHub {
    TestHub::start_with(&Setup {
        authenticator: format!("password = \"{DUMMY_PASSWORD}\"\n{extra}"),
        ..Setup::default()
    })
}

/// Asserts the answer is a redirect to `to`.
fn assert_redirect(page: &jhub_tests::browser::Page, to: &str) {
    assert!(
        (300..400).contains(&page.status) && page.location.as_deref() == Some(to),
        "expected a redirect to {to}: {page:?}"
    );
}

#[test]
fn login_page_is_served_and_pages_redirect() {
    let hub = TestHub::start();
    let mut b = hub.browser();
    let page = b.get("/hub/login");
    assert_eq!(page.status, 200, "{page:?}");
    assert!(page.body.contains("<form method=\"post\""), "{}", page.body);
    assert!(page.body.contains("name=\"username\""));
    assert!(page.body.contains("name=\"password\""));
    assert!(xsrf_in(&page.body).is_some(), "{}", page.body);
    let xsrf_cookie = page.set_cookie("_xsrf").expect("an _xsrf cookie");
    for attr in ["HttpOnly", "SameSite=Lax", "Path=/hub/"] {
        assert!(xsrf_cookie.contains(attr), "{attr}: {xsrf_cookie}");
    }
    // Nobody logged in: /, /hub/ and /hub/home lead to the login page.
    assert_redirect(&b.get("/hub/"), "/hub/login");
    assert_redirect(&b.get("/"), "/hub/login");
    assert_redirect(&b.get("/hub/home"), "/hub/login?next=%2Fhub%2Fhome");
}

#[test]
fn wrong_password_is_403_without_cookie_or_row() {
    let hub = TestHub::start();
    let before = hub.usernames();
    let mut b = hub.browser();
    for (name, password) in [
        ("jhtest-user1", "not-the-password"),
        ("jhtest-user1", ""),
        ("jhtest-nobody", "not-the-password"),
    ] {
        let page = b.login(name, password);
        assert_eq!(page.status, 403, "{page:?}");
        assert!(
            page.body.contains("Invalid username or password."),
            "{}",
            page.body
        );
        assert!(page.set_cookie(LOGIN_COOKIE).is_none(), "{page:?}");
        assert!(!b.cookies.contains_key(LOGIN_COOKIE));
    }
    // the same answer whether or not the name exists, and no row made
    assert_eq!(hub.usernames(), before);
    let log = hub.log();
    assert!(log.contains("login attempt"), "{log}");
    assert!(log.contains("invalid_credentials"), "{log}");
    assert!(
        !log.contains("not-the-password"),
        "a password reached the log"
    );
}

#[test]
fn right_password_logs_in_and_the_cookie_works_on_the_api() {
    let hub = hub_with("admin_users = [\"jhtest-admin\"]\n");
    let mut b = hub.browser();
    let page = b.login("JHTest-User1", DUMMY_PASSWORD);
    assert_redirect(&page, "/hub/home");
    let cookie = page.set_cookie(LOGIN_COOKIE).expect("a login cookie");
    for attr in ["HttpOnly", "SameSite=Lax", "Path=/hub/", "Max-Age="] {
        assert!(cookie.contains(attr), "{attr}: {cookie}");
    }
    assert!(!cookie.contains("Secure"), "http public URL: {cookie}");
    // the name was normalized; the home page shows it, no admin marker
    let home = b.get("/hub/home");
    assert_eq!(home.status, 200, "{home:?}");
    assert!(home.body.contains("jhtest-user1"), "{}", home.body);
    assert!(home.body.contains("/hub/logout"), "{}", home.body);
    assert!(!home.body.contains("class=\"admin\""), "{}", home.body);
    assert_redirect(&b.get("/hub/"), "/hub/home");
    // logged in, the login page sends the browser on
    assert_redirect(&b.get("/hub/login"), "/hub/home");
    // the row exists, with activity recorded
    let user = hub.api("GET", "/users/jhtest-user1", None);
    assert_eq!(user.status, 200, "{}", user.body);
    assert!(user.json()["last_activity"].is_string(), "{}", user.body);
    assert_eq!(user.json()["admin"], false);

    // the cookie authenticates GET on the API, as in JupyterHub
    let me = b.get("/hub/api/user");
    assert_eq!(me.status, 200, "{me:?}");
    let me: serde_json::Value = serde_json::from_str(&me.body).unwrap();
    assert_eq!(me["name"], "jhtest-user1");
    assert_eq!(me["kind"], "user");

    // an admin: marker on the home page, and the cookie may change state
    // through the API only with the session's XSRF token in a header
    let mut a = hub.login("jhtest-admin", DUMMY_PASSWORD);
    let home = a.get("/hub/home");
    assert!(home.body.contains("class=\"admin\""), "{}", home.body);
    let xsrf = xsrf_in(&home.body).expect("the logout form's token");
    let refused = a.request("POST", "/hub/api/users/jhtest-made", &[], None);
    assert_eq!(refused.status, 403, "{refused:?}");
    let refused = a.request(
        "POST",
        "/hub/api/users/jhtest-made",
        &[("X-XSRFToken", "0".repeat(64).as_str())],
        None,
    );
    assert_eq!(refused.status, 403, "{refused:?}");
    let made = a.request(
        "POST",
        "/hub/api/users/jhtest-made",
        &[("X-XSRFToken", &xsrf)],
        None,
    );
    assert_eq!(made.status, 201, "{made:?}");
    // another session's token does not work
    let other = xsrf_in(&b.get("/hub/home").body).unwrap();
    let refused = a.request(
        "POST",
        "/hub/api/users/jhtest-made2",
        &[("X-XSRFToken", &other)],
        None,
    );
    assert_eq!(refused.status, 403, "{refused:?}");
    let log = hub.log();
    assert!(
        log.contains("login attempt") && log.contains("\"success\""),
        "{log}"
    );
}

#[test]
fn missing_or_wrong_xsrf_is_403() {
    let hub = TestHub::start();
    let mut b = hub.browser();
    let token = b.xsrf("/hub/login");
    let mut other = hub.browser();
    let foreign = other.xsrf("/hub/login");
    assert_ne!(token, foreign);
    for fields in [
        vec![("username", "jhtest-user1"), ("password", DUMMY_PASSWORD)],
        vec![
            ("username", "jhtest-user1"),
            ("password", DUMMY_PASSWORD),
            ("_xsrf", ""),
        ],
        vec![
            ("username", "jhtest-user1"),
            ("password", DUMMY_PASSWORD),
            (
                "_xsrf",
                "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            ),
        ],
        // a token from another browser
        vec![
            ("username", "jhtest-user1"),
            ("password", DUMMY_PASSWORD),
            ("_xsrf", &foreign),
        ],
    ] {
        let page = b.post_form("/hub/login", &fields);
        assert_eq!(page.status, 403, "{fields:?}: {page:?}");
        assert!(
            page.body.contains("_xsrf") || page.body.contains("XSRF"),
            "{}",
            page.body
        );
        assert!(page.set_cookie(LOGIN_COOKIE).is_none(), "{page:?}");
    }
    // without the browser's _xsrf cookie its token is worthless too
    let mut bare = hub.browser();
    let page = bare.post_form(
        "/hub/login",
        &[
            ("username", "jhtest-user1"),
            ("password", DUMMY_PASSWORD),
            ("_xsrf", &token),
        ],
    );
    assert_eq!(page.status, 403, "{page:?}");
    // a logged-in browser: POST logout without the token does nothing
    let mut c = hub.login("jhtest-user1", DUMMY_PASSWORD);
    let page = c.post_form("/hub/logout", &[]);
    assert_eq!(page.status, 403, "{page:?}");
    assert_eq!(c.get("/hub/home").status, 200);
    // with it, it logs out
    let xsrf = xsrf_in(&c.get("/hub/home").body).unwrap();
    assert_redirect(
        &c.post_form("/hub/logout", &[("_xsrf", &xsrf)]),
        "/hub/login",
    );
    assert_redirect(&c.get("/hub/home"), "/hub/login?next=%2Fhub%2Fhome");
    // and no user rows came from the refused attempts
    assert_eq!(hub.usernames(), ["jhtest-user1"]);
}

#[test]
fn logout_invalidates_the_cookie() {
    let hub = TestHub::start();
    let mut b = hub.login("jhtest-user1", DUMMY_PASSWORD);
    let saved = b.cookies.clone();
    assert!(saved.contains_key(LOGIN_COOKIE));
    let page = b.get("/hub/logout");
    assert_redirect(&page, "/hub/login");
    let cleared = page
        .set_cookie(LOGIN_COOKIE)
        .expect("the cookie is cleared");
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    assert!(!b.cookies.contains_key(LOGIN_COOKIE));
    // a replay of the old cookie is refused: the session is gone
    let mut replay = Browser::new(&hub.url);
    replay.cookies = saved;
    assert_redirect(&replay.get("/hub/home"), "/hub/login?next=%2Fhub%2Fhome");
    assert_eq!(replay.get("/hub/api/user").status, 403);
    // logging in again gives a new, working session
    let mut again = hub.login("jhtest-user1", DUMMY_PASSWORD);
    assert_ne!(
        again.cookies.get(LOGIN_COOKIE),
        replay.cookies.get(LOGIN_COOKIE)
    );
    assert_eq!(again.get("/hub/home").status, 200);
}

#[test]
fn rotating_the_cookie_secret_logs_everyone_out() {
    let mut hub = TestHub::start();
    let mut b = hub.login("jhtest-user1", DUMMY_PASSWORD);
    // a restart with the same secret keeps the session
    hub.restart();
    assert_eq!(b.get("/hub/home").status, 200, "{}", hub.log());
    // a new secret: the old cookie no longer verifies
    hub.stop();
    let path = hub.dir.path().join("cookie_secret");
    let old = std::fs::read_to_string(&path).unwrap();
    let new = "ab".repeat(32);
    assert_ne!(old.trim(), new);
    std::fs::write(&path, format!("{new}\n")).unwrap();
    hub.restart();
    assert_redirect(&b.get("/hub/home"), "/hub/login?next=%2Fhub%2Fhome");
    assert_eq!(b.get("/hub/api/user").status, 403);
    // the old XSRF token is void too; a fresh login works
    let page = b.login("jhtest-user1", DUMMY_PASSWORD);
    assert_redirect(&page, "/hub/home");
    assert_eq!(b.get("/hub/home").status, 200);
}

#[test]
fn next_is_followed_only_to_local_paths() {
    let hub = TestHub::start();
    let cases = [
        ("%2F%2Fevil.example", "/hub/home"),
        ("//evil.example/hub/home", "/hub/home"),
        ("https%3A%2F%2Fevil.example%2F", "/hub/home"),
        ("%2F%5Cevil.example", "/hub/home"),
        ("javascript:alert(1)", "/hub/home"),
        ("%2Fhub%2Fapi%2Fuser%3Fa%3D1", "/hub/api/user?a=1"),
    ];
    for (next, expected) in cases {
        let mut b = hub.browser();
        let xsrf = b.xsrf(&format!("/hub/login?next={next}"));
        let page = b.post_form(
            &format!("/hub/login?next={next}"),
            &[
                ("username", "jhtest-user1"),
                ("password", DUMMY_PASSWORD),
                ("_xsrf", &xsrf),
            ],
        );
        assert_redirect(&page, expected);
        // already logged in, GET /hub/login?next= does the same
        assert_redirect(&b.get(&format!("/hub/login?next={next}")), expected);
    }
    // the login page does not carry an unsafe next into its form
    let mut b = hub.browser();
    let page = b.get("/hub/login?next=%2F%2Fevil.example");
    assert!(!page.body.contains("evil.example"), "{}", page.body);
}

#[test]
fn hostile_usernames_are_refused_without_a_row() {
    let hub = hub_with("allowed_users = [\"jhtest-user1\"]\n");
    let before = hub.usernames();
    assert_eq!(before, ["jhtest-user1"]);
    let long = "a".repeat(300);
    let mut b = hub.browser();
    for name in [
        "-u root",
        "../x",
        "a b",
        "аdmin", // Cyrillic а
        long.as_str(),
        "",
        "a\nb",
        "<script>alert(1)</script>",
    ] {
        let page = b.login(name, DUMMY_PASSWORD);
        assert_eq!(page.status, 400, "{name:?}: {page:?}");
        assert!(
            page.body.contains("Invalid username"),
            "{name:?}: {}",
            page.body
        );
        assert!(page.body.contains("usernames must be"), "{}", page.body);
        assert!(
            !page.body.contains("<script>alert"),
            "unescaped: {}",
            page.body
        );
        assert!(page.set_cookie(LOGIN_COOKIE).is_none());
    }
    // ALL is lowercased (it can never be sudoers' ALL keyword); here it
    // is not an allowed user, so it is refused like any other
    let page = b.login("ALL", DUMMY_PASSWORD);
    assert_eq!(page.status, 403, "{page:?}");
    assert!(page.body.contains("Invalid username or password."));
    assert_eq!(hub.usernames(), before);
    let log = hub.log();
    assert!(log.contains("invalid_name"), "{log}");
}

#[test]
fn oversized_form_is_413_without_a_row() {
    let hub = TestHub::start();
    let mut b = hub.browser();
    let xsrf = b.xsrf("/hub/login");
    let filler = "x".repeat(40 * 1024);
    let page = b.post_form(
        "/hub/login",
        &[
            ("username", "jhtest-big"),
            ("password", DUMMY_PASSWORD),
            ("_xsrf", &xsrf),
            ("filler", &filler),
        ],
    );
    assert_eq!(page.status, 413, "{page:?}");
    assert!(page.set_cookie(LOGIN_COOKIE).is_none());
    assert!(hub.usernames().is_empty(), "{:?}", hub.usernames());
}

#[test]
fn parallel_requests_without_cookies_keep_the_login_forms_xsrf_binding() {
    // A browser loads the login page and, in parallel and before it has
    // the page's cookie, /favicon.ico: only answers that hand out an XSRF
    // token may set the browser-id cookie, or the favicon's answer would
    // replace the one the form's token is bound to.
    let hub = TestHub::start();
    let mut b = Browser::new(&hub.url);
    let form = b.get("/hub/login");
    assert!(form.set_cookie("_xsrf").is_some(), "{form:?}");
    let mut other = Browser::new(&hub.url);
    for path in ["/favicon.ico", "/hub/nothing-here", "/hub/health"] {
        let p = other.get(path);
        assert!(
            p.set_cookie("_xsrf").is_none(),
            "{path} set the browser-id cookie: {p:?}"
        );
    }
    let token = xsrf_in(&form.body).expect("the form's _xsrf");
    let page = b.post_form(
        "/hub/login",
        &[
            ("username", "a-new-user"),
            ("password", DUMMY_PASSWORD),
            ("_xsrf", &token),
        ],
    );
    assert!(page.set_cookie(LOGIN_COOKIE).is_some(), "{page:?}");
}
