//! A bounded leak soak for `jhub-proxy`: thousands of websocket connections
//! ended in every way (a close frame from either side, a cut from either
//! side), downloads cut by the backend or abandoned by the client, and
//! backends killed mid-stream. Afterwards the proxy must hold about the
//! file descriptors and memory it held after a warm-up: a leak of a socket,
//! a spawned future or a buffer per connection shows as growth.
//!
//! It runs in the ordinary `cargo test` (CI runs it) and takes well under
//! two minutes. CHP is not soaked: its memory is a garbage collector's, the
//! point is `jhub-proxy`'s own bookkeeping, and CHP leaves a client hanging
//! when a backend dies mid-response (see [`killed_mid_stream`]).

use std::net::{Shutdown, TcpStream};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use jhub_tests::proxy::backend::{Backend, WsBackend};
use jhub_tests::proxy::http::{Conn, Request};
use jhub_tests::proxy::{Impl, ProxyProcess, eventually, patience};
use tungstenite::{Message, WebSocket};

/// Concurrent clients.
const WORKERS: usize = 50;
/// Largest growth of open descriptors allowed after the soak.
const FD_MARGIN: usize = 8;
/// Largest growth of resident memory allowed between the two soak rounds
/// (where only a leak keeps growing) and since the warm-up, in KiB.
const RSS_ROUND_MARGIN_KIB: u64 = 4 * 1024;
const RSS_TOTAL_MARGIN_KIB: u64 = 16 * 1024;

#[test]
fn jhub_leak_soak() {
    leak_soak(Impl::Jhub);
}

fn leak_soak(imp: Impl) {
    let started = Instant::now();
    let ws_backend = WsBackend::start();
    let http_backend = Backend::start("http");
    let p = ProxyProcess::start(imp, &[]);
    p.add_target("/ws", &ws_backend.url());
    p.add_target("/http", &http_backend.url());

    round(&p, 200, 1);
    let (fd0, rss0) = settle(&p, &ws_backend, None);
    round(&p, 2000, 5);
    let (fd1, rss1) = settle(&p, &ws_backend, Some(fd0 + FD_MARGIN));
    round(&p, 2000, 5);
    let (fd2, rss2) = settle(&p, &ws_backend, Some(fd0 + FD_MARGIN));
    let report = format!(
        "fds {fd0} -> {fd1} -> {fd2}, VmRSS {rss0} -> {rss1} -> {rss2} KiB, in {:?}",
        started.elapsed()
    );
    eprintln!("{}: {report}", imp.name());
    assert!(
        fd1 <= fd0 + FD_MARGIN && fd2 <= fd0 + FD_MARGIN,
        "descriptors grew: {report}"
    );
    assert!(
        rss2 <= rss1 + RSS_ROUND_MARGIN_KIB,
        "memory kept growing between rounds: {report}"
    );
    assert!(rss2 <= rss0 + RSS_TOTAL_MARGIN_KIB, "memory grew: {report}");
    assert_eq!(p.get("/http/still-alive").status, 200, "{report}");
}

/// Waits until every websocket is gone from the backend, then (at most
/// [`patience`]) until the proxy holds at most `fd_limit` descriptors, or,
/// with no limit, until the count stops changing; returns the descriptor
/// count and VmRSS (KiB) then.
fn settle(p: &ProxyProcess, ws_backend: &WsBackend, fd_limit: Option<usize>) -> (usize, u64) {
    eventually("the websocket backend to hold no connection", || {
        (ws_backend.open_connections() == 0).then_some(())
    });
    ws_backend.drain_events();
    let deadline = Instant::now() + patience();
    let mut last = p.fd_count();
    loop {
        std::thread::sleep(Duration::from_millis(50));
        let now = p.fd_count();
        let settled = match fd_limit {
            Some(limit) => now <= limit,
            None => now == last,
        };
        if settled || Instant::now() > deadline {
            return (now, p.rss_kib());
        }
        last = now;
    }
}

/// One round: `connections` websockets ended in four ways, plus HTTP
/// downloads cut by either side and `killed` backends stopped mid-stream.
/// Panics listing the first problems (a connection that failed or never
/// ended).
fn round(p: &ProxyProcess, connections: usize, killed: usize) {
    let next = AtomicUsize::new(0);
    let problems = Mutex::new(Vec::new());
    let report = |problem: String| {
        let mut problems = problems.lock().unwrap_or_else(|e| e.into_inner());
        problems.push(problem);
    };
    std::thread::scope(|scope| {
        for _ in 0..WORKERS {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= connections {
                        break;
                    }
                    if let Err(problem) = one_websocket(p, i) {
                        report(format!("websocket {i}: {problem}"));
                    }
                    if i % 10 == 0
                        && let Err(problem) = one_http_cut(p, i)
                    {
                        report(format!("download {i}: {problem}"));
                    }
                }
            });
        }
        for k in 0..killed {
            let report = &report;
            scope.spawn(move || {
                if let Err(problem) = killed_mid_stream(p, k) {
                    report(format!("killed backend {k}: {problem}"));
                }
            });
        }
    });
    let problems = problems.into_inner().unwrap_or_else(|e| e.into_inner());
    assert!(
        problems.is_empty(),
        "{} problems, the first: {:#?}",
        problems.len(),
        &problems[..problems.len().min(10)]
    );
}

/// One websocket through the proxy, ended in the way `i` picks: a close
/// frame from the client, a client that vanishes, a close frame from the
/// backend, a backend that vanishes.
fn one_websocket(p: &ProxyProcess, i: usize) -> Result<(), String> {
    let stream = TcpStream::connect(p.proxy_addr()).map_err(|e| format!("connect: {e}"))?;
    stream
        .set_read_timeout(Some(patience()))
        .map_err(|e| e.to_string())?;
    let (mut ws, _) = tungstenite::client(format!("ws://{}/ws/{i}", p.proxy_addr()), stream)
        .map_err(|e| format!("handshake: {e}"))?;
    ws.send(Message::text(format!("m{i}")))
        .map_err(|e| format!("send: {e}"))?;
    match ws.read() {
        Ok(Message::Text(_)) => {}
        other => return Err(format!("expected the echo, got {other:?}")),
    }
    match i % 4 {
        0 => {
            ws.close(None).map_err(|e| format!("close: {e}"))?;
            read_to_end(&mut ws)
        }
        1 => {
            // Best effort: a client that vanishes, no close frame.
            let _cut = ws.get_ref().shutdown(Shutdown::Both);
            Ok(())
        }
        2 => {
            ws.send(Message::text("close:1000"))
                .map_err(|e| format!("send: {e}"))?;
            read_to_end(&mut ws)
        }
        _ => {
            ws.send(Message::text("drop"))
                .map_err(|e| format!("send: {e}"))?;
            read_to_end(&mut ws)
        }
    }
}

/// Reads until the connection ends; an error when it does not within
/// [`patience`].
fn read_to_end(ws: &mut WebSocket<TcpStream>) -> Result<(), String> {
    loop {
        match ws.read() {
            Ok(_) => continue,
            Err(tungstenite::Error::Io(e)) if is_timeout(&e) => {
                return Err("the connection never ended".into());
            }
            Err(_) => return Ok(()),
        }
    }
}

/// An HTTP download cut short, by the backend or by the client, as `i`
/// picks.
fn one_http_cut(p: &ProxyProcess, i: usize) -> Result<(), String> {
    let mut conn = Conn::open(p.proxy_addr()).map_err(|e| format!("connect: {e}"))?;
    if i % 20 == 10 {
        // The backend announces 2N bytes, sends N and cuts: the client's
        // read must end short, not hang.
        match conn.send(&Request::get("/http/_partial/100000")) {
            Ok(response) => Err(format!("a cut download completed: {}", response.status)),
            Err(e) if is_timeout(&e) => Err("the client was left hanging".into()),
            Err(_) => Ok(()),
        }
    } else {
        // The client reads a little of a large download and goes away.
        conn.send_head(&Request::get("/http/_stream/50000000"))
            .and_then(|()| conn.read_raw_at_least(256 * 1024))
            .map(|_| ())
            .map_err(|e| format!("the start of a download: {e}"))
    }
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}

/// A backend of its own, stopped while a large download from it is in
/// flight: the client's read must end (CHP fails this: it leaves the
/// client waiting for the missing bytes until the client gives up).
fn killed_mid_stream(p: &ProxyProcess, k: usize) -> Result<(), String> {
    let mut backend = Backend::start(&format!("doomed{k}"));
    let route = format!("/doomed{k}");
    p.add_target(&route, &backend.url());
    let mut conn = Conn::open(p.proxy_addr()).map_err(|e| format!("connect: {e}"))?;
    conn.send_head(&Request::get(&format!("{route}/_stream/1000000000")))
        .map_err(|e| format!("send: {e}"))?;
    let mut got = 0usize;
    let mut stopped = false;
    let result = conn.read_response("GET", &mut |chunk| {
        got += chunk.len();
        if !stopped && got > 1024 * 1024 {
            stopped = true;
            backend.stop();
        }
    });
    let outcome = match result {
        Ok(response) => Err(format!(
            "the download completed: status {}, {got} bytes",
            response.status
        )),
        Err(e) if is_timeout(&e) => Err(format!("the client was left hanging after {got} bytes")),
        Err(_) => Ok(()),
    };
    let status = p.api("DELETE", &format!("/api/routes{route}"), None).status;
    if status != 204 {
        return Err(format!("DELETE {route} answered {status}"));
    }
    outcome
}
