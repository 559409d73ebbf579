//! The native authenticator (`authenticator_class = "native"`) against the
//! built `jhub`, through its pages as a browser uses them (no root
//! needed): signup and admin approval, login refused until approved,
//! lock-out after failed logins and its end, password change, persistence
//! across a restart, unauthorize and delete, open signup, the password
//! rules, hostile names, and the XSRF checks of every form.

use std::time::{Duration, Instant};

use jhub_tests::browser::{Browser, Page, xsrf_in};
use jhub_tests::hub::{LOGIN_COOKIE, Setup, TestHub};
use jhub_tests::privileged::patience;

/// The account named in `admin_users`: authorized when it signs up.
const ADMIN: &str = "jhtest-admin";
const ADMIN_PASSWORD: &str = "jhtest-admin-pw-1";
/// An account that needs approval.
const USER: &str = "jhtest-user1";
const USER_PASSWORD: &str = "jhtest-user1-pw-1";

const AWAITING: &str = "has not been authorized by an administrator yet";
const INVALID: &str = "Invalid username or password.";

/// A hub with the native authenticator, `admin_users = [ADMIN]`, and
/// `extra` lines in `[authenticator]`.
fn native_hub(extra: &str) -> TestHub {
    TestHub::start_with(&Setup {
        authenticator_class: "native".into(),
        authenticator: format!("admin_users = [\"{ADMIN}\"]\n{extra}"),
        ..Setup::default()
    })
}

/// Posts the signup form from a fresh browser.
fn signup(hub: &TestHub, name: &str, password: &str, confirmation: &str) -> Page {
    signup_with(
        hub,
        &[
            ("username", name),
            ("signup_password", password),
            ("signup_password_confirmation", confirmation),
        ],
    )
}

/// Posts the signup form with `fields` (and the form's `_xsrf`).
fn signup_with(hub: &TestHub, fields: &[(&str, &str)]) -> Page {
    let mut b = hub.browser();
    let xsrf = b.xsrf("/hub/signup");
    let mut all = fields.to_vec();
    all.push(("_xsrf", &xsrf));
    b.post_form("/hub/signup", &all)
}

/// A login attempt from a fresh browser: the answer and the browser.
fn try_login(hub: &TestHub, name: &str, password: &str) -> (Page, Browser) {
    let mut b = hub.browser();
    let page = b.login(name, password);
    (page, b)
}

fn logged_in(page: &Page) -> bool {
    (300..400).contains(&page.status) && page.set_cookie(LOGIN_COOKIE).is_some()
}

/// Asserts a login is refused with 403 and `message`.
fn assert_refused(hub: &TestHub, name: &str, password: &str, message: &str) {
    let (page, _) = try_login(hub, name, password);
    assert_eq!(page.status, 403, "{name}: {page:?}\n{}", hub.log());
    assert!(page.set_cookie(LOGIN_COOKIE).is_none(), "{page:?}");
    assert!(
        page.body.contains(message),
        "{name}: expected {message:?} in {}",
        page.body
    );
}

/// An admin's action on `/hub/authorize/{name}`, with the page's XSRF
/// token.
fn admin_action(admin: &mut Browser, name: &str, action: &str) -> Page {
    let xsrf = admin.xsrf("/hub/authorize");
    admin.post_form(
        &format!("/hub/authorize/{name}"),
        &[("action", action), ("_xsrf", &xsrf)],
    )
}

/// The authorization page's row for `name`, if listed.
fn row_of(admin: &mut Browser, name: &str) -> Option<String> {
    let page = admin.get("/hub/authorize");
    assert_eq!(page.status, 200, "{page:?}");
    let start = page.body.find(&format!("<tr id=\"{name}\""))?;
    let end = start + page.body[start..].find("</tr>")?;
    Some(page.body[start..end].to_owned())
}

/// Signs the admin up and logs it in.
fn admin_browser(hub: &TestHub) -> Browser {
    let page = signup(hub, ADMIN, ADMIN_PASSWORD, ADMIN_PASSWORD);
    assert_eq!(page.status, 200, "{page:?}");
    assert!(
        page.body.contains("The signup was successful!"),
        "{}",
        page.body
    );
    hub.login(ADMIN, ADMIN_PASSWORD)
}

#[test]
fn signup_approval_lockout_password_change_restart_unauthorize_delete() {
    let mut hub = native_hub("allowed_failed_logins = 3\nseconds_before_next_try = 2\n");

    // the login page links to the signup page, which has the form
    let mut b = hub.browser();
    let login = b.get("/hub/login");
    assert!(
        login.body.contains("href=\"/hub/signup\""),
        "{}",
        login.body
    );
    let form = b.get("/hub/signup");
    assert_eq!(form.status, 200, "{form:?}");
    for field in [
        "username",
        "signup_password",
        "signup_password_confirmation",
    ] {
        assert!(
            form.body.contains(&format!("name=\"{field}\"")),
            "{field}: {}",
            form.body
        );
    }
    assert!(xsrf_in(&form.body).is_some());
    assert!(
        !form.body.contains("name=\"email\""),
        "no email unless asked"
    );

    // signup: the account waits for approval and cannot log in
    let page = signup(&hub, USER, USER_PASSWORD, USER_PASSWORD);
    assert_eq!(page.status, 200, "{page:?}");
    assert!(
        page.body
            .contains("Your information has been sent to the admin."),
        "{}",
        page.body
    );
    assert_refused(
        &hub,
        USER,
        USER_PASSWORD,
        &format!("User {USER} {AWAITING}"),
    );
    // the awaiting message only for the right password
    assert_refused(&hub, USER, "not-the-password", INVALID);
    assert!(
        !hub.usernames().contains(&USER.to_owned()),
        "no hub user before approval"
    );

    // the admin (admin_users) is authorized at signup and approves
    let mut admin = admin_browser(&hub);
    let row = row_of(&mut admin, USER).expect("the account is listed");
    assert!(
        row.contains("<td>No</td>") && row.contains("value=\"authorize\""),
        "{row}"
    );
    // without the XSRF token nothing happens
    let page = admin.post_form(
        &format!("/hub/authorize/{USER}"),
        &[("action", "authorize")],
    );
    assert_eq!(page.status, 403, "{page:?}");
    let page = admin.post_form(
        &format!("/hub/authorize/{USER}"),
        &[("action", "authorize"), ("_xsrf", "forged")],
    );
    assert_eq!(page.status, 403, "{page:?}");
    assert!(row_of(&mut admin, USER).unwrap().contains("<td>No</td>"));
    let page = admin_action(&mut admin, USER, "authorize");
    assert_eq!(
        (page.status, page.location.as_deref()),
        (303, Some("/hub/authorize")),
        "{page:?}"
    );
    assert!(row_of(&mut admin, USER).unwrap().contains("<td>Yes</td>"));
    assert!(
        hub.usernames().contains(&USER.to_owned()),
        "approval makes the hub user"
    );
    let page = admin_action(&mut admin, "jhtest-nobody", "authorize");
    assert_eq!(page.status, 404, "{page:?}");

    // login works now; a non-admin cannot use the authorization page
    let mut user = hub.login(USER, USER_PASSWORD);
    assert_eq!(user.get("/hub/authorize").status, 403);
    let xsrf = user.xsrf("/hub/change-password");
    let page = user.post_form(
        &format!("/hub/authorize/{USER}"),
        &[("action", "delete"), ("_xsrf", &xsrf)],
    );
    assert_eq!(page.status, 403, "{page:?}");

    // lock-out: three failures lock the account, even the right password
    // is refused while locked, and the lock ends after two seconds
    for _ in 0..3 {
        assert_refused(&hub, USER, "wrong-password", INVALID);
    }
    let locked_at = Instant::now();
    assert_refused(&hub, USER, USER_PASSWORD, INVALID);
    let deadline = Instant::now() + Duration::from_secs(2) + patience();
    let unlocked = loop {
        let (page, _) = try_login(&hub, USER, USER_PASSWORD);
        if logged_in(&page) {
            break locked_at.elapsed();
        }
        assert_eq!(page.status, 403, "{page:?}");
        assert!(
            Instant::now() < deadline,
            "the account stayed locked\n{}",
            hub.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        unlocked >= Duration::from_millis(1500),
        "unlocked after {unlocked:?}"
    );
    assert!(
        hub.log().contains("locked after failed logins"),
        "{}",
        hub.log()
    );

    // change password: wrong current password, mismatch, then success;
    // the user's other sessions end, this one stays
    let (_, mut other) = try_login(&hub, USER, USER_PASSWORD);
    assert_eq!(other.get("/hub/home").status, 200);
    let form = user.get("/hub/change-password");
    assert_eq!(form.status, 200, "{form:?}");
    let xsrf = xsrf_in(&form.body).expect("an _xsrf field");
    let new_password = "jhtest-user1-pw-2";
    let change = |b: &mut Browser, old: &str, new: &str, confirm: &str, xsrf: Option<&str>| {
        let mut fields = vec![
            ("old_password", old),
            ("new_password", new),
            ("new_password_confirmation", confirm),
        ];
        if let Some(x) = xsrf {
            fields.push(("_xsrf", x));
        }
        b.post_form("/hub/change-password", &fields)
    };
    let page = change(&mut user, USER_PASSWORD, new_password, new_password, None);
    assert_eq!(page.status, 403, "no XSRF: {page:?}");
    let page = change(&mut user, "not-it", new_password, new_password, Some(&xsrf));
    assert_eq!(page.status, 403, "{page:?}");
    assert!(
        page.body.contains("Your current password was incorrect."),
        "{}",
        page.body
    );
    let page = change(
        &mut user,
        USER_PASSWORD,
        new_password,
        "something-else",
        Some(&xsrf),
    );
    assert_eq!(page.status, 400, "{page:?}");
    assert!(
        page.body.contains("match the confirmation"),
        "{}",
        page.body
    );
    let page = change(
        &mut user,
        USER_PASSWORD,
        new_password,
        new_password,
        Some(&xsrf),
    );
    assert_eq!(page.status, 200, "{page:?}");
    assert!(
        page.body
            .contains("Your password has been changed successfully!"),
        "{}",
        page.body
    );
    assert_eq!(user.get("/hub/home").status, 200, "this session stays");
    assert!(
        (300..400).contains(&other.get("/hub/home").status),
        "the other session ended"
    );
    assert_refused(&hub, USER, USER_PASSWORD, INVALID);
    assert!(logged_in(&try_login(&hub, USER, new_password).0));
    // the change-password page needs a login
    let page = hub.browser().get("/hub/change-password");
    assert!((300..400).contains(&page.status), "{page:?}");

    // a restart on the same database keeps accounts, approval and password
    hub.restart();
    assert_refused(&hub, USER, USER_PASSWORD, INVALID);
    let mut user = hub.login(USER, new_password);
    let mut admin = hub.login(ADMIN, ADMIN_PASSWORD);
    assert!(row_of(&mut admin, USER).unwrap().contains("<td>Yes</td>"));

    // unauthorize: the session ends and login is refused again
    let page = admin_action(&mut admin, USER, "unauthorize");
    assert_eq!(page.status, 303, "{page:?}");
    assert!(row_of(&mut admin, USER).unwrap().contains("<td>No</td>"));
    assert!(
        (300..400).contains(&user.get("/hub/home").status),
        "logged out"
    );
    assert_refused(&hub, USER, new_password, AWAITING);
    // an admin cannot lock itself out
    let page = admin_action(&mut admin, ADMIN, "unauthorize");
    assert_eq!(page.status, 400, "{page:?}");
    let page = admin_action(&mut admin, ADMIN, "delete");
    assert_eq!(page.status, 400, "{page:?}");

    // delete: the account and its hub user are gone, the name is free
    let page = admin_action(&mut admin, USER, "delete");
    assert_eq!(page.status, 303, "{page:?}");
    assert!(row_of(&mut admin, USER).is_none());
    assert!(!hub.usernames().contains(&USER.to_owned()));
    assert_refused(&hub, USER, new_password, INVALID);
    let page = signup(&hub, USER, USER_PASSWORD, USER_PASSWORD);
    assert_eq!(page.status, 200, "{page:?}");
    assert!(row_of(&mut admin, USER).unwrap().contains("<td>No</td>"));

    // deleting the hub user through the REST API deletes the account
    let a = hub.api("DELETE", &format!("/users/{ADMIN}"), None);
    assert_eq!(a.status, 204, "{}", a.body);
    assert_refused(&hub, ADMIN, ADMIN_PASSWORD, INVALID);
}

#[test]
fn password_rules_hostile_names_and_xsrf_on_signup() {
    let hub = native_hub("minimum_password_length = 8\ncheck_common_password = true\n");
    let mut admin = admin_browser(&hub);
    let users_before = hub.usernames();

    let refused = |page: &Page, status: u16, message: &str| {
        assert_eq!(page.status, status, "{page:?}");
        assert!(
            page.body.contains(message),
            "expected {message:?} in {}",
            page.body
        );
        assert!(
            !page.body.contains("jhtest-secret"),
            "the password is never echoed"
        );
    };
    refused(
        &signup(&hub, USER, "short", "short"),
        400,
        "it must have at least 8 characters",
    );
    for common in ["password", "12345678", "baseball", "iloveyou"] {
        refused(
            &signup(&hub, USER, common, common),
            400,
            "Your password is too common",
        );
    }
    refused(
        &signup(&hub, USER, "jhtest-secret-1", "jhtest-secret-2"),
        400,
        "Your password did not match the confirmation.",
    );
    let long = "a".repeat(300);
    for name in [
        "-u root",
        "../etc/passwd",
        "a b",
        "a/b",
        "root;id",
        "$(id)",
        "jhtest-\u{430}lice",
        "\u{ff4a}htest",
        ".hidden",
        "x\ny",
        "",
        long.as_str(),
    ] {
        let page = signup(&hub, name, "jhtest-secret-1", "jhtest-secret-1");
        refused(&page, 400, "Invalid username");
        assert!(
            page.body.contains("usernames must be 1-32 characters"),
            "{}",
            page.body
        );
    }
    // no account, no hub user came of any of it
    let page = admin.get("/hub/authorize");
    assert_eq!(
        page.body.matches("<tr id=").count(),
        1,
        "only the admin: {}",
        page.body
    );
    assert_eq!(hub.usernames(), users_before);

    // XSRF: missing or forged, the signup is refused and nothing written
    let mut b = hub.browser();
    b.get("/hub/signup");
    let fields = [
        ("username", "jhtest-xsrf"),
        ("signup_password", "jhtest-secret-1"),
        ("signup_password_confirmation", "jhtest-secret-1"),
    ];
    assert_eq!(b.post_form("/hub/signup", &fields).status, 403);
    let mut forged = fields.to_vec();
    forged.push(("_xsrf", "forged"));
    assert_eq!(b.post_form("/hub/signup", &forged).status, 403);
    let mut fresh = hub.browser();
    assert_eq!(
        fresh.post_form("/hub/signup", &fields).status,
        403,
        "no cookie, no token"
    );
    assert!(row_of(&mut admin, "jhtest-xsrf").is_none());

    // names are normalized; a taken name says so
    let page = signup(
        &hub,
        "  JHTest-User1 ",
        "jhtest-secret-1",
        "jhtest-secret-1",
    );
    assert_eq!(page.status, 200, "{page:?}");
    assert!(row_of(&mut admin, USER).is_some());
    refused(
        &signup(&hub, USER, "jhtest-secret-9", "jhtest-secret-9"),
        409,
        "this username is already in use",
    );
    // the first password stands
    admin_action(&mut admin, USER, "authorize");
    assert!(logged_in(&try_login(&hub, USER, "jhtest-secret-1").0));
}

#[test]
fn open_signup_logs_in_without_approval_and_asks_email() {
    let hub = native_hub("open_signup = true\nask_email_on_signup = true\n");
    let form = hub.browser().get("/hub/signup");
    assert!(form.body.contains("name=\"email\""), "{}", form.body);
    let page = signup_with(
        &hub,
        &[
            ("username", USER),
            ("signup_password", USER_PASSWORD),
            ("signup_password_confirmation", USER_PASSWORD),
            ("email", "not-an-address"),
        ],
    );
    assert_eq!(page.status, 400, "{page:?}");
    assert!(page.body.contains("email address"), "{}", page.body);
    let page = signup_with(
        &hub,
        &[
            ("username", USER),
            ("signup_password", USER_PASSWORD),
            ("signup_password_confirmation", USER_PASSWORD),
            ("email", "user1@example.org"),
        ],
    );
    assert_eq!(page.status, 200, "{page:?}");
    assert!(
        page.body.contains("The signup was successful!"),
        "{}",
        page.body
    );
    let mut user = hub.login(USER, USER_PASSWORD);
    let home = user.get("/hub/home");
    assert_eq!(home.status, 200, "{home:?}");
    assert!(home.body.contains(USER));
    // the home page links to the account's pages; only admins get the
    // authorization page
    assert!(
        home.body.contains("href=\"/hub/change-password\""),
        "{}",
        home.body
    );
    assert!(
        !home.body.contains("href=\"/hub/authorize\""),
        "{}",
        home.body
    );
    // without lock-out (the default) failures never lock
    for _ in 0..5 {
        assert_refused(&hub, USER, "wrong-password", INVALID);
    }
    assert!(logged_in(&try_login(&hub, USER, USER_PASSWORD).0));
    let mut admin = admin_browser(&hub);
    let admin_home = admin.get("/hub/home");
    assert!(
        admin_home.body.contains("href=\"/hub/change-password\"")
            && admin_home.body.contains("href=\"/hub/authorize\""),
        "{}",
        admin_home.body
    );
    let row = row_of(&mut admin, USER).expect("listed");
    assert!(
        row.contains("user1@example.org") && row.contains("<td>Yes</td>"),
        "{row}"
    );
}

/// Approval is the native authenticator's allow list: no warning that
/// nobody can log in without `[authenticator]` allow rules (which PAM
/// gets, with the same configuration).
#[test]
fn no_allow_rules_warning_for_native_only() {
    let native = native_hub("allowed_groups = []");
    let pam = TestHub::start_with(&Setup {
        authenticator_class: "pam".into(),
        authenticator: "allowed_groups = []".into(),
        ..Setup::default()
    });
    // both have logged their start-up by the time they answer
    assert!(
        pam.log().contains("nobody can log in"),
        "pam without allow rules warns:\n{}",
        pam.log()
    );
    assert!(
        !native.log().contains("nobody can log in"),
        "native warned:\n{}",
        native.log()
    );
}

#[test]
fn signup_can_be_disabled() {
    let hub = native_hub("enable_signup = false\n");
    let mut b = hub.browser();
    assert!(!b.get("/hub/login").body.contains("/hub/signup"));
    assert_eq!(b.get("/hub/signup").status, 404);
    let xsrf = b.xsrf("/hub/login");
    let page = b.post_form(
        "/hub/signup",
        &[
            ("username", USER),
            ("signup_password", USER_PASSWORD),
            ("signup_password_confirmation", USER_PASSWORD),
            ("_xsrf", &xsrf),
        ],
    );
    assert_eq!(page.status, 404, "{page:?}");
    assert_refused(&hub, USER, USER_PASSWORD, INVALID);
}
