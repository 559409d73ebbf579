//! Websockets through configurable-http-proxy: the upgrade reaches the
//! right backend with the forwarded headers, messages go both ways
//! unchanged, a close or a cut on either side reaches the other, and
//! client traffic counts as activity. Every scenario runs against CHP 5.3.0
//! (`name::chp`) and `jhub-proxy` (`name::jhub`).
//!
//! Expected values come from CHP's `handleProxyWs`/`handleProxyError` and
//! `http-proxy-3`'s `ws-incoming.js`, checked against the running CHP.

use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};

use jhub_tests::both_impls;
use jhub_tests::proxy::backend::{Backend, WsBackend, WsEvent};
use jhub_tests::proxy::{Impl, ProxyProcess, eventually, patience, wait_clock_past};
use serde_json::Value;
use tungstenite::protocol::CloseFrame;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::{HandshakeError, Message, WebSocket};

both_impls!(
    echo_text_and_binary,
    upgrade_request_as_the_backend_sees_it,
    client_close_reaches_backend,
    backend_close_reaches_client,
    cuts_propagate_both_ways,
    upgrade_errors,
    upgrade_refused_by_backend,
    client_messages_are_activity,
);

type Ws = WebSocket<TcpStream>;

/// Opens a websocket to `path` through the proxy.
fn connect(p: &ProxyProcess, path: &str) -> Ws {
    try_connect(p.proxy_addr(), path).unwrap_or_else(|e| panic!("websocket to {path}: {e}"))
}

fn try_connect(addr: SocketAddr, path: &str) -> Result<Ws, String> {
    let stream = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(patience()))
        .and_then(|()| stream.set_write_timeout(Some(patience())))
        .map_err(|e| e.to_string())?;
    match tungstenite::client(format!("ws://{addr}{path}"), stream) {
        Ok((ws, _response)) => Ok(ws),
        Err(HandshakeError::Failure(tungstenite::Error::Http(response))) => {
            Err(format!("HTTP {}", response.status().as_u16()))
        }
        Err(e) => Err(e.to_string()),
    }
}

/// The next data message; panics on anything else.
fn next_message(ws: &mut Ws) -> Message {
    loop {
        match ws.read() {
            Ok(Message::Ping(_)) | Ok(Message::Pong(_)) => continue,
            Ok(message) => return message,
            Err(e) => panic!("reading from the proxy: {e}"),
        }
    }
}

/// A loopback port nothing listens on.
fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("address").port()
}

fn is_timeout(e: &tungstenite::Error) -> bool {
    matches!(e, tungstenite::Error::Io(io) if matches!(io.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut))
}

/// Text and binary messages, small and large, come back unchanged.
fn echo_text_and_binary(imp: Impl) {
    let backend = WsBackend::start();
    let p = ProxyProcess::start(imp, &[]);
    p.add_target("/user/a", &backend.url());
    let mut ws = connect(&p, "/user/a/api/kernels/k1/channels?x=1");
    ws.send(Message::text("hello")).unwrap();
    assert_eq!(next_message(&mut ws), Message::text("hello"));
    let bytes: Vec<u8> = (0..=255u8).cycle().take(200_000).collect();
    ws.send(Message::binary(bytes.clone())).unwrap();
    assert_eq!(next_message(&mut ws), Message::binary(bytes));
    let text = "é".repeat(100_000);
    ws.send(Message::text(text.clone())).unwrap();
    assert_eq!(next_message(&mut ws), Message::text(text));
    for i in 0..50 {
        ws.send(Message::text(format!("m{i}"))).unwrap();
    }
    for i in 0..50 {
        assert_eq!(next_message(&mut ws), Message::text(format!("m{i}")));
    }
}

/// The backend gets the upgrade with the request target (the target's
/// path prepended as for HTTP), `Host` unchanged, and `X-Forwarded-For`,
/// `-Port` and `-Proto` (`ws`, not `http`, for a websocket).
fn upgrade_request_as_the_backend_sees_it(imp: Impl) {
    let backend = WsBackend::start();
    let p = ProxyProcess::start(imp, &[]);
    p.add_target("/user/a", &backend.url());
    p.add_target("/user/b", &format!("{}/prefix", backend.url()));
    let target = "/user/a/api/kernels/k1/channels?x=1";
    let mut ws = connect(&p, target);
    let WsEvent::Open { path, headers } = backend.next_event("the upgrade") else {
        panic!("expected an open");
    };
    assert_eq!(path, target);
    let header = |name: &str| -> Vec<&str> {
        headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    };
    let host = p.proxy_addr().to_string();
    let port = p.proxy_addr().port().to_string();
    assert_eq!(header("host"), [host.as_str()]);
    assert_eq!(header("x-forwarded-for"), ["127.0.0.1"]);
    assert_eq!(header("x-forwarded-proto"), ["ws"]);
    assert_eq!(header("x-forwarded-port"), [port.as_str()]);
    assert!(
        header("upgrade")
            .iter()
            .any(|v| v.eq_ignore_ascii_case("websocket")),
        "{headers:?}"
    );
    ws.send(Message::text("headers")).unwrap();
    let Message::Text(described) = next_message(&mut ws) else {
        panic!("expected text");
    };
    let described: Value = serde_json::from_str(described.as_str()).unwrap();
    assert_eq!(described["path"], target);

    let _prefixed = connect(&p, "/user/b/x");
    let WsEvent::Open { path, .. } = backend.next_event("the second upgrade") else {
        panic!("expected an open");
    };
    assert_eq!(path, "/prefix/user/b/x");
}

/// A close frame from the client reaches the backend with its code, and
/// the backend's answer reaches the client, which then sees the end.
fn client_close_reaches_backend(imp: Impl) {
    let backend = WsBackend::start();
    let p = ProxyProcess::start(imp, &[]);
    p.add_target("/user/a", &backend.url());
    let mut ws = connect(&p, "/user/a/ws");
    assert!(matches!(backend.next_event("open"), WsEvent::Open { .. }));
    ws.close(Some(CloseFrame {
        code: CloseCode::Library(4001),
        reason: "client done".into(),
    }))
    .unwrap();
    assert_eq!(
        backend.next_event("the client's close frame"),
        WsEvent::ClientClose(Some(4001))
    );
    loop {
        match ws.read() {
            Ok(Message::Close(_)) | Ok(_) => continue,
            Err(tungstenite::Error::ConnectionClosed) => break,
            Err(e) => panic!("expected a clean end after the close handshake, got {e}"),
        }
    }
}

/// A close frame from the backend reaches the client with its code.
fn backend_close_reaches_client(imp: Impl) {
    let backend = WsBackend::start();
    let p = ProxyProcess::start(imp, &[]);
    p.add_target("/user/a", &backend.url());
    let mut ws = connect(&p, "/user/a/ws");
    ws.send(Message::text("close:4002")).unwrap();
    match next_message(&mut ws) {
        Message::Close(Some(frame)) => {
            assert_eq!(u16::from(frame.code), 4002);
            assert_eq!(frame.reason.as_str(), "backend closing");
        }
        other => panic!("expected the backend's close frame, got {other:?}"),
    }
    // The client answers the close; then the connection ends.
    loop {
        match ws.read() {
            Ok(_) => continue,
            Err(tungstenite::Error::ConnectionClosed) => break,
            Err(e) if is_timeout(&e) => panic!("the connection stayed open after the close"),
            // The proxy may cut the TCP connection right after the
            // backend's side ended; the close frame already arrived.
            Err(_) => break,
        }
    }
}

/// A client that vanishes without a close frame: the backend's connection
/// ends. A backend that vanishes: the client's connection ends.
fn cuts_propagate_both_ways(imp: Impl) {
    let backend = WsBackend::start();
    let p = ProxyProcess::start(imp, &[]);
    p.add_target("/user/a", &backend.url());

    let mut ws = connect(&p, "/user/a/ws");
    ws.send(Message::text("ping")).unwrap();
    assert_eq!(next_message(&mut ws), Message::text("ping"));
    assert!(matches!(backend.next_event("open"), WsEvent::Open { .. }));
    ws.get_ref().shutdown(Shutdown::Both).unwrap();
    drop(ws);
    assert_eq!(backend.next_event("the client's cut"), WsEvent::Cut);

    let mut ws = connect(&p, "/user/a/ws");
    assert!(matches!(backend.next_event("open"), WsEvent::Open { .. }));
    ws.send(Message::text("drop")).unwrap();
    match ws.read() {
        Ok(Message::Close(_)) | Err(tungstenite::Error::ConnectionClosed) => {}
        Err(e) if is_timeout(&e) => panic!("the client's connection stayed open"),
        Err(_) => {}
        Ok(other) => panic!("expected the end of the connection, got {other:?}"),
    }
    eventually("the backend to hold no connection", || {
        (backend.open_connections() == 0).then_some(())
    });
}

/// An upgrade with no route is refused with 404, one whose backend is down
/// with 503 (a bare status line, no error page, even with
/// `--error-target`).
fn upgrade_errors(imp: Impl) {
    let p = ProxyProcess::start(
        imp,
        &[
            "--error-target",
            &format!("http://127.0.0.1:{}", closed_port()),
        ],
    );
    p.add_target("/down", &format!("http://127.0.0.1:{}", closed_port()));
    assert_eq!(
        try_connect(p.proxy_addr(), "/nothing/ws").err().as_deref(),
        Some("HTTP 404")
    );
    assert_eq!(
        try_connect(p.proxy_addr(), "/down/ws").err().as_deref(),
        Some("HTTP 503")
    );
}

/// A backend that answers the upgrade with a plain HTTP status (a notebook
/// server refusing an unauthenticated websocket with 403): the client
/// gets that status.
fn upgrade_refused_by_backend(imp: Impl) {
    let b = Backend::start("http-only");
    let p = ProxyProcess::start(imp, &[]);
    p.add_target("/user/a", &b.url());
    for code in [403u16, 404, 400] {
        assert_eq!(
            try_connect(p.proxy_addr(), &format!("/user/a/_status/{code}")).err(),
            Some(format!("HTTP {code}"))
        );
    }
}

/// Messages from the client advance the route's `last_activity` while the
/// connection stays open.
fn client_messages_are_activity(imp: Impl) {
    let backend = WsBackend::start();
    let p = ProxyProcess::start(imp, &[]);
    p.add_target("/user/a", &backend.url());
    let mut ws = connect(&p, "/user/a/ws");
    ws.send(Message::text("first")).unwrap();
    assert_eq!(next_message(&mut ws), Message::text("first"));
    let start = eventually("a last_activity", || Some(p.last_activity("/user/a")));
    wait_clock_past(start);
    ws.send(Message::text("more")).unwrap();
    assert_eq!(next_message(&mut ws), Message::text("more"));
    eventually("activity from a websocket message", || {
        (p.last_activity("/user/a") > start).then_some(())
    });
}
