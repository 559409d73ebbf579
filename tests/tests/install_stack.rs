//! The README's first command: after `sudo ./sudoers/install.sh` (which
//! `tests/run` runs before the suite) a hub answers at
//! http://127.0.0.1:8000, and a new user added with
//! `sudoers/add-user.sh NAME --password-stdin` logs in with that password,
//! starts a server from the home page and gets JupyterLab. Needs root and
//! the installed, started stack.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use jhub_tests::browser::Browser;
use jhub_tests::privileged::{live_processes, repo_root, require_root, unique_suffix};
use jhub_tests::stack::{follow, redirect, start_from_home, stop_from_home, wait_until};

const PUBLIC: &str = "http://127.0.0.1:8000";

/// A user made by the install's own add-user.sh; deleted on drop.
struct AddedUser(String);

impl Drop for AddedUser {
    fn drop(&mut self) {
        let _killed = Command::new("pkill")
            .args(["-KILL", "-u", &self.0])
            .output();
        std::thread::sleep(Duration::from_millis(100));
        let _gone = Command::new("userdel").args(["-r", "-f", &self.0]).output();
    }
}

#[test]
fn installed_hub_serves_a_new_user_a_notebook_server() {
    if !require_root(
        "installed_hub_serves_a_new_user_a_notebook_server",
        "the installed stack at 127.0.0.1:8000 and a user made with add-user.sh",
    ) {
        return;
    }
    let mut b = Browser::new(PUBLIC);
    let login = b.get("/hub/login");
    assert_eq!(
        login.status, 200,
        "no hub at {PUBLIC}: run `sudo ./sudoers/install.sh` (the README's first command; \
         tests/run does), then `sudo jhubctl status`: {login:?}"
    );

    let name = format!("jhi-{}", unique_suffix());
    let password = format!("Pw-{}-{}", unique_suffix(), unique_suffix());
    let _user = AddedUser(name.clone());
    let mut add = Command::new(repo_root().join("sudoers/add-user.sh"))
        .args([name.as_str(), "--password-stdin"])
        .stdin(Stdio::piped())
        .spawn()
        .expect("run add-user.sh");
    add.stdin
        .take()
        .expect("piped")
        .write_all(format!("{password}\n").as_bytes())
        .expect("write the password");
    assert!(
        add.wait().expect("add-user.sh").success(),
        "add-user.sh failed"
    );

    let page = b.login(&name, &password);
    assert!(redirect(page.status), "login as the new user: {page:?}");
    let at = start_from_home(&mut b, &name, Duration::from_secs(120));
    assert_eq!(at, format!("/user/{name}/"));
    let (lab, visited) = follow(&mut b, PUBLIC, &at);
    assert_eq!(lab.status, 200, "{visited:?}: {lab:?}");
    assert!(lab.body.contains("JupyterLab"), "{visited:?}");

    stop_from_home(&mut b, &name);
    wait_until(
        "no process of the new user",
        Duration::from_secs(30),
        || live_processes(&name).is_empty(),
    );
}
