//! Other web services in a user's server: `jupyter-server-proxy` (PyPI,
//! in the server venv that sudoers/install.sh makes) runs processes the
//! user configured and serves them under `/user/NAME/...` through our
//! proxy, websockets included, to the server's owner only. Needs root.

use std::net::TcpStream;
use std::os::unix::fs::{PermissionsExt, chown};
use std::path::Path;
use std::time::Duration;

use jhub_tests::privileged::{require_root, uid_of};
use jhub_tests::stack::{HomeUser, Stack, StackOptions};
use serde_json::json;
use tungstenite::Message;
use tungstenite::client::IntoClientRequest;

/// A websocket echo server (tornado, from the server venv).
const WS_ECHO: &str = r#"import sys
import tornado.ioloop, tornado.web, tornado.websocket

class Echo(tornado.websocket.WebSocketHandler):
    def on_message(self, message):
        self.write_message(message)

tornado.web.Application([(r"/.*", Echo)]).listen(int(sys.argv[1]), "127.0.0.1")
tornado.ioloop.IOLoop.current().start()
"#;

/// Writes `text` to `path` in `user`'s home, owned by them.
fn write_owned(user: &HomeUser, path: &Path, text: &str) {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).expect("mkdir");
        chown(dir, Some(uid_of(&user.name)), None).expect("chown");
    }
    std::fs::write(path, text).expect("write");
    chown(path, Some(uid_of(&user.name)), None).expect("chown");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
}

#[test]
fn configured_processes_are_served_to_their_owner_only() {
    if !require_root(
        "configured_processes_are_served_to_their_owner_only",
        "jupyter-server-proxy in a real user's server",
    ) {
        return;
    }
    assert!(
        Path::new("/opt/jhub/venv/bin/python3").exists(),
        "no server venv: run `sudo ./sudoers/install.sh`"
    );
    let alice = HomeUser::create("jhp-a");
    let bob = HomeUser::create("jhp-b");
    let home = alice.home();
    write_owned(
        &alice,
        &home.join("greeting.txt"),
        "hello from alice's process\n",
    );
    write_owned(&alice, &home.join("ws_echo.py"), WS_ECHO);
    let config = json!({
        "ServerProxy": {
            "servers": {
                "hello": {
                    "command": ["/usr/bin/python3", "-m", "http.server", "--bind", "127.0.0.1", "{port}"],
                    "timeout": 30,
                },
                "echo": {
                    "command": ["/opt/jhub/venv/bin/python3", home.join("ws_echo.py").display().to_string(), "{port}"],
                    "timeout": 30,
                },
            }
        }
    });
    write_owned(
        &alice,
        &home.join(".jupyter/jupyter_server_config.json"),
        &config.to_string(),
    );

    let stack = Stack::start(&StackOptions::default());
    stack.add_user(&alice.name);
    stack.add_user(&bob.name);
    stack.start_server(&alice.name);
    let alice_token = stack.token(&alice.name, None);
    let bob_token = stack.token(&bob.name, None);

    // The configured HTTP server, started on first use, through our proxy.
    let path = format!("/user/{}/hello/greeting.txt", alice.name);
    let mut got = stack.public_get(&path, Some(&alice_token));
    for _ in 0..50 {
        if got.status == 200 {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
        got = stack.public_get(&path, Some(&alice_token));
    }
    assert_eq!(got.status, 200, "{}\n{}", got.body, stack.hub.log());
    assert_eq!(got.body, "hello from alice's process\n");
    let refused = stack.public_get(&path, Some(&bob_token));
    assert_eq!(
        refused.status, 403,
        "bob reached alice's process: {}",
        refused.body
    );
    assert!(!refused.body.contains("hello from alice"));

    // A websocket to the configured echo process, through our proxy.
    let addr = stack.public.trim_start_matches("http://").to_owned();
    let ws_path = format!("/user/{}/echo/ws", alice.name);
    let connect = |token: &str| {
        let mut request = format!("ws://{addr}{ws_path}")
            .into_client_request()
            .expect("websocket request");
        request.headers_mut().insert(
            "Authorization",
            format!("token {token}").parse().expect("header"),
        );
        let stream = TcpStream::connect(&addr).expect("connect to the proxy");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        tungstenite::client(request, stream)
            .map(|(socket, _)| socket)
            .map_err(|e| match e {
                tungstenite::HandshakeError::Failure(tungstenite::Error::Http(r)) => {
                    format!("HTTP {}", r.status().as_u16())
                }
                other => other.to_string(),
            })
    };
    let mut ws = None;
    for _ in 0..50 {
        match connect(&alice_token) {
            Ok(socket) => {
                ws = Some(socket);
                break;
            }
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
    let mut ws = ws.unwrap_or_else(|| panic!("no websocket to {ws_path}\n{}", stack.hub.log()));
    for text in ["ping", "a second message"] {
        ws.send(Message::text(text)).expect("send");
        match ws.read().expect("read the echo") {
            Message::Text(t) => assert_eq!(t.as_str(), text),
            other => panic!("unexpected {other:?}"),
        }
    }
    let _closed = ws.close(None);
    match connect(&bob_token) {
        Ok(_) => panic!("bob opened a websocket to alice's process"),
        Err(e) => assert_eq!(e, "HTTP 403", "bob's websocket"),
    }
    assert_eq!(stack.stop_server(&alice.name), 204);
}
