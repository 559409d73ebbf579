//! PAM logins against the built `jhub`, run as the unprivileged
//! `jupyterhub` account (in group `shadow`, as `sudoers/install.sh` sets
//! it up) with `authenticator_class = "pam"` and the system's `login` PAM
//! service, for real accounts made per test with `useradd` and `chpasswd`:
//! the right password logs in, a wrong one does not, nor does a locked or
//! expired account or one outside `allowed_groups`; `admin_users` get the
//! admin flag. Needs root (skips loudly otherwise).

use jhub_tests::hub::{LOGIN_COOKIE, Setup, TestHub};
use jhub_tests::privileged::{
    HUB_USER, TempGroup, TempUser, proc_status, require_root, run_ok, uid_of,
};

/// A hub run as the hub user, PAM-authenticated, allowing `group` and
/// making `admins` admins.
fn pam_hub(group: &str, admins: &[&str]) -> TestHub {
    let hub_user = nix::unistd::User::from_name(HUB_USER).ok().flatten();
    assert!(
        hub_user.is_some(),
        "the {HUB_USER} account is missing: run `sudo ./sudoers/install.sh` first (tests/run does)"
    );
    let admins: Vec<String> = admins.iter().map(|a| format!("{a:?}")).collect();
    TestHub::start_with(&Setup {
        authenticator_class: "pam".into(),
        authenticator: format!(
            "allowed_groups = [{group:?}]\nadmin_users = [{}]\n",
            admins.join(", ")
        ),
        run_as: Some(HUB_USER.into()),
        ..Setup::default()
    })
}

/// Logs in through the form; (status, whether a login cookie was set).
fn try_login(hub: &TestHub, name: &str, password: &str) -> (u16, bool) {
    let mut b = hub.browser();
    let page = b.login(name, password);
    (page.status, page.set_cookie(LOGIN_COOKIE).is_some())
}

fn assert_refused(hub: &TestHub, name: &str, password: &str, what: &str) {
    let mut b = hub.browser();
    let page = b.login(name, password);
    assert_eq!(page.status, 403, "{what}: {page:?}\n{}", hub.log());
    assert!(
        page.body.contains("Invalid username or password."),
        "{what}: {}",
        page.body
    );
    assert!(page.set_cookie(LOGIN_COOKIE).is_none(), "{what}: {page:?}");
}

#[test]
fn pam_right_password_logs_in_and_wrong_does_not() {
    if !require_root(
        "pam_right_password_logs_in_and_wrong_does_not",
        "PAM logins of real accounts through the hub run as jupyterhub",
    ) {
        return;
    }
    let group = TempGroup::create("jhtp-g");
    let user = TempUser::create("jhtp-ok", &[&group.name]);
    let hub = pam_hub(&group.name, &[]);
    assert_refused(&hub, &user.name, "wrong-password", "wrong password");
    assert_refused(&hub, &user.name, "", "empty password");
    assert!(
        !hub.usernames().contains(&user.name),
        "a refused login made a row"
    );
    let mut b = hub.browser();
    let page = b.login(&user.name, &user.password);
    assert!(
        page.status == 303 && page.set_cookie(LOGIN_COOKIE).is_some(),
        "right password: {page:?}\n{}",
        hub.log()
    );
    let home = b.get("/hub/home");
    assert_eq!(home.status, 200, "{home:?}");
    assert!(home.body.contains(&user.name), "{}", home.body);
    let row = hub.api("GET", &format!("/users/{}", user.name), None);
    assert_eq!(row.status, 200, "{}", row.body);
    assert_eq!(row.json()["admin"], false);
    // the hub really runs as the hub user, with its groups
    let pid = hub.pid().expect("the hub runs") as i32;
    let uid = proc_status(pid, "Uid").expect("the hub's /proc status");
    let expected = uid_of(HUB_USER).to_string();
    assert!(
        uid.split_whitespace().all(|u| u == expected),
        "hub uids {uid}, expected {expected}"
    );
    let log = hub.log();
    assert!(!log.contains(&user.password), "a password reached the log");
}

#[test]
fn pam_locked_account_is_refused() {
    if !require_root(
        "pam_locked_account_is_refused",
        "that usermod -L stops PAM logins",
    ) {
        return;
    }
    let group = TempGroup::create("jhtp-g");
    let user = TempUser::create("jhtp-lock", &[&group.name]);
    let hub = pam_hub(&group.name, &[]);
    assert_eq!(try_login(&hub, &user.name, &user.password), (303, true));
    run_ok(std::process::Command::new("usermod").args(["-L", &user.name]));
    assert_refused(&hub, &user.name, &user.password, "locked account");
}

#[test]
fn pam_expired_account_is_refused() {
    if !require_root(
        "pam_expired_account_is_refused",
        "that chage -E 0 stops PAM logins",
    ) {
        return;
    }
    let group = TempGroup::create("jhtp-g");
    let user = TempUser::create("jhtp-exp", &[&group.name]);
    run_ok(std::process::Command::new("chage").args(["-E", "0", &user.name]));
    let hub = pam_hub(&group.name, &[]);
    // the password is right: only the account check (pam_acct_mgmt) says no
    assert_refused(&hub, &user.name, &user.password, "expired account");
    assert!(!hub.usernames().contains(&user.name));
}

#[test]
fn pam_user_outside_allowed_groups_is_refused() {
    if !require_root(
        "pam_user_outside_allowed_groups_is_refused",
        "that allowed_groups limits PAM logins",
    ) {
        return;
    }
    let group = TempGroup::create("jhtp-g");
    let other = TempGroup::create("jhtp-o");
    let outsider = TempUser::create("jhtp-out", &[&other.name]);
    let hub = pam_hub(&group.name, &[]);
    assert_refused(
        &hub,
        &outsider.name,
        &outsider.password,
        "outside allowed_groups",
    );
    assert!(
        !hub.usernames().contains(&outsider.name),
        "no row for a refused user"
    );
    // primary-group membership counts as membership
    let primary = TempUser::create_with_primary("jhtp-pri", &group.name);
    assert_eq!(
        try_login(&hub, &primary.name, &primary.password),
        (303, true)
    );
}

#[test]
fn pam_admin_users_get_the_admin_flag() {
    if !require_root(
        "pam_admin_users_get_the_admin_flag",
        "that admin_users logging in through PAM become admins",
    ) {
        return;
    }
    let group = TempGroup::create("jhtp-g");
    let admin = TempUser::create("jhtp-adm", &[&group.name]);
    let plain = TempUser::create("jhtp-usr", &[&group.name]);
    let hub = pam_hub(&group.name, &[&admin.name]);
    let mut b = hub.browser();
    let page = b.login(&admin.name, &admin.password);
    assert_eq!(page.status, 303, "{page:?}\n{}", hub.log());
    let row = hub.api("GET", &format!("/users/{}", admin.name), None);
    assert_eq!(row.status, 200, "{}", row.body);
    assert_eq!(row.json()["admin"], true, "{}", row.body);
    assert!(b.get("/hub/home").body.contains("class=\"admin\""));
    assert_eq!(try_login(&hub, &plain.name, &plain.password), (303, true));
    let row = hub.api("GET", &format!("/users/{}", plain.name), None);
    assert_eq!(row.json()["admin"], false, "{}", row.body);
}
