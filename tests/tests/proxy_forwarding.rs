//! Forwarding through configurable-http-proxy, as a browser and an
//! upstream server see it: which backend gets a request, with which path
//! and headers, what comes back on errors, and what counts as activity.
//! Every scenario runs against CHP 5.3.0 (`name::chp`) and `jhub-proxy`
//! (`name::jhub`) with the same flags.
//!
//! Expected values come from CHP's code (`lib/configproxy.js`, and the
//! `http-proxy-3` passes it uses: `common.js` `setupOutgoing`/`urlJoin`,
//! `web-incoming.js` `XHeaders`) and were checked against the running CHP.

use std::net::TcpListener;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use jhub_tests::both_impls;
use jhub_tests::proxy::backend::{Backend, Echo, sha256_hex, stream_bytes, stream_sha256};
use jhub_tests::proxy::http::{Conn, Request, Response, chunked};
use jhub_tests::proxy::{Impl, ProxyProcess, eventually, now_ms, patience, wait_clock_past};
use serde_json::json;
use sha2::{Digest, Sha256};

both_impls!(
    longest_prefix_on_whole_segments,
    routing_matches_the_decoded_path,
    target_path_is_prepended,
    no_prepend_path,
    no_include_prefix,
    no_include_prefix_without_prepend,
    responses_pass_through,
    request_headers_pass_through,
    x_forwarded_headers,
    no_x_forward,
    custom_headers,
    no_route_is_404,
    backend_down_is_503,
    error_target,
    error_target_down_falls_back,
    error_path,
    health_check,
    host_routing,
    last_activity_follows_successful_requests,
    concurrent_keep_alive,
    keep_alive_timeout,
    large_streamed_response,
    uploads,
    expect_100_continue,
    proxy_timeout,
    client_timeout,
);

/// The echo in a 200 answer; panics with the answer otherwise.
fn echo(response: &Response) -> Echo {
    assert_eq!(
        response.status,
        200,
        "expected the backend's echo, got {} {:?}",
        response.status,
        response.text()
    );
    Echo::from_json(&response.json())
}

/// A loopback port nothing listens on.
fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("address").port()
}

/// Percent-decodes a query value the way a form decoder does (`+` is a
/// space).
fn form_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The value of query parameter `name` in a request target, decoded.
fn query_param(target: &str, name: &str) -> Option<String> {
    let query = target.split_once('?')?.1;
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (form_decode(k) == name).then(|| form_decode(v))
    })
}

/// The route is chosen by the longest matching prefix of whole path
/// segments (`/user/a` does not match `/user/ab`); anything else goes to
/// the default target. The backend sees the request target unchanged.
fn longest_prefix_on_whole_segments(imp: Impl) {
    let (a, ab, deep, default) = (
        Backend::start("a"),
        Backend::start("ab"),
        Backend::start("deep"),
        Backend::start("default"),
    );
    let p = ProxyProcess::start(imp, &["--default-target", &default.url()]);
    p.add_target("/user/a", &a.url());
    p.add_target("/user/ab", &ab.url());
    p.add_target("/user/a/deep", &deep.url());
    for (target, backend) in [
        ("/user/a/x?q=1&r=%20", "a"),
        ("/user/a", "a"),
        ("/user/a/", "a"),
        ("/user/a?x=1", "a"),
        ("/user/ab/x", "ab"),
        ("/user/ab", "ab"),
        ("/user/abc/x", "default"),
        ("/user/a/deep/er", "deep"),
        ("/user/a/deep", "deep"),
        ("/user/a/deeper", "a"),
        ("/user", "default"),
        ("/", "default"),
        ("/userx/a", "default"),
    ] {
        let seen = echo(&p.get(target));
        assert_eq!(seen.backend, backend, "GET {target}");
        assert_eq!(
            seen.path, target,
            "GET {target}: the backend sees the target unchanged"
        );
        assert_eq!(seen.method, "GET");
    }
    let seen = echo(&p.send(&Request::new("DELETE", "/user/ab/x")));
    assert_eq!(
        (seen.backend.as_str(), seen.method.as_str()),
        ("ab", "DELETE")
    );
}

/// Matching uses the percent-decoded path (CHP: `decodeURIComponent` of
/// the pathname), so a route key with a space matches `%20` in a request,
/// and `%2F` separates segments; the backend still gets the raw target.
fn routing_matches_the_decoded_path(imp: Impl) {
    let (a, b, default) = (
        Backend::start("a"),
        Backend::start("b"),
        Backend::start("default"),
    );
    let p = ProxyProcess::start(imp, &["--default-target", &default.url()]);
    p.add_target("/user/a%20b", &a.url());
    p.add_target("/user/c", &b.url());
    for (target, backend) in [
        ("/user/a%20b/tree", "a"),
        ("/user/a%20b", "a"),
        ("/user%2Fc/x", "b"),
        ("/user/%63/x", "b"),
        ("/user/a/b", "default"),
    ] {
        let seen = echo(&p.get(target));
        assert_eq!(seen.backend, backend, "GET {target}");
        assert_eq!(seen.path, target, "GET {target}: raw target forwarded");
    }
}

/// A target with a path is prepended to the request path, with the slashes
/// between them merged; the query string is kept.
fn target_path_is_prepended(imp: Impl) {
    let b = Backend::start("b");
    let p = ProxyProcess::start(imp, &["--default-target", &format!("{}/hub/", b.url())]);
    p.add_target("/user/b", &format!("{}/prefix", b.url()));
    p.add_target("/user/c", &format!("{}/prefix/", b.url()));
    for (target, path) in [
        ("/user/b/x?q=1", "/prefix/user/b/x?q=1"),
        ("/user/b", "/prefix/user/b"),
        ("/user/c/x", "/prefix/user/c/x"),
        ("/user/c/", "/prefix/user/c/"),
        ("/other/y?z", "/hub/other/y?z"),
        ("/", "/hub/"),
    ] {
        assert_eq!(echo(&p.get(target)).path, path, "GET {target}");
    }
}

/// `--no-prepend-path`: the target's path is ignored.
fn no_prepend_path(imp: Impl) {
    let b = Backend::start("b");
    let p = ProxyProcess::start(imp, &["--no-prepend-path"]);
    p.add_target("/user/b", &format!("{}/prefix", b.url()));
    for (target, path) in [("/user/b/x?q=1", "/user/b/x?q=1"), ("/user/b", "/user/b")] {
        assert_eq!(echo(&p.get(target)).path, path, "GET {target}");
    }
}

/// `--no-include-prefix`: the route's prefix is cut from the request
/// before the target's path is prepended.
fn no_include_prefix(imp: Impl) {
    let b = Backend::start("b");
    let p = ProxyProcess::start(imp, &["--no-include-prefix"]);
    p.add_target("/user/b", &format!("{}/prefix", b.url()));
    for (target, path) in [
        ("/user/b/x?q=1", "/prefix/x?q=1"),
        ("/user/b/", "/prefix/"),
        ("/user/b", "/prefix"),
        ("/user/b?x=1", "/prefix?x=1"),
    ] {
        assert_eq!(echo(&p.get(target)).path, path, "GET {target}");
    }
}

/// `--no-include-prefix --no-prepend-path`: only what follows the prefix,
/// and `/` when nothing does.
fn no_include_prefix_without_prepend(imp: Impl) {
    let b = Backend::start("b");
    let p = ProxyProcess::start(imp, &["--no-include-prefix", "--no-prepend-path"]);
    p.add_target("/user/b", &format!("{}/prefix", b.url()));
    for (target, path) in [
        ("/user/b/x?q=1", "/x?q=1"),
        ("/user/b", "/"),
        ("/user/b/", "/"),
        ("/user/b?x=1", "/?x=1"),
    ] {
        assert_eq!(echo(&p.get(target)).path, path, "GET {target}");
    }
}

/// The backend's answer reaches the client as it was: status codes with
/// their bodies, repeated `Set-Cookie` headers in order, other headers, a
/// redirect's absolute `Location` untouched (no `--auto-rewrite`), a
/// chunked body, and `HEAD` answers without a body.
fn responses_pass_through(imp: Impl) {
    let b = Backend::start("b");
    let p = ProxyProcess::start(imp, &[]);
    p.add_target("/b", &b.url());
    for code in [201u16, 400, 404, 418, 500, 502] {
        let response = p.get(&format!("/b/_status/{code}"));
        assert_eq!(response.status, code);
        assert_eq!(
            response.text(),
            format!("status {code}"),
            "the backend's own body"
        );
    }
    let response = p.get("/b/_cookies");
    assert_eq!(response.status, 200);
    assert_eq!(
        response.header_all("set-cookie"),
        ["first=1; Path=/; HttpOnly", "second=2; Path=/user"]
    );
    assert_eq!(response.header("x-backend"), Some("yes"));
    assert_eq!(response.text(), "cookies");

    let response = p.get("/b/_redirect");
    assert_eq!(response.status, 302);
    assert_eq!(
        response.header("location"),
        Some(format!("http://{}/elsewhere?x=1", b.addr()).as_str())
    );

    let mut conn = Conn::open(p.proxy_addr()).unwrap();
    let mut hasher = Sha256::new();
    let response = conn
        .send_to_sink(&Request::get("/b/_chunked/300000"), &mut |chunk| {
            hasher.update(chunk)
        })
        .unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(
        jhub_tests::proxy::backend::hex(&hasher.finalize()),
        stream_sha256(300_000)
    );
    let response = conn
        .send(&Request::new("HEAD", "/b/_stream/12345"))
        .unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-length"), Some("12345"));
    assert!(response.body.is_empty());
    // The keep-alive connection is still in step after the HEAD.
    assert_eq!(
        echo(&conn.send(&Request::get("/b/after-head")).unwrap()).path,
        "/b/after-head"
    );
}

/// The client's own headers reach the backend unchanged: credentials
/// (`Authorization`, an 8 KiB `Cookie`), content negotiation, custom
/// headers.
fn request_headers_pass_through(imp: Impl) {
    let b = Backend::start("b");
    let p = ProxyProcess::start(imp, &[]);
    p.add_target("/b", &b.url());
    let cookie = format!("jupyterhub-hub-login={}", "c".repeat(8 * 1024));
    let sent = [
        ("Authorization", "token abcdef"),
        ("Cookie", cookie.as_str()),
        ("Accept", "application/json"),
        ("Accept-Encoding", "gzip"),
        ("User-Agent", "conformance/1"),
        ("X-XSRFToken", "xsrf-value"),
        ("Referer", "http://example.org/hub/home"),
    ];
    let mut request = Request::get("/b/headers");
    for (name, value) in sent {
        request = request.header(name, value);
    }
    let seen = echo(&p.send(&request));
    for (name, value) in sent {
        assert_eq!(seen.header(name), Some(value), "{name}");
    }
}

/// `X-Forwarded-For/-Proto/-Port` get the client's address, `http` and the
/// port from the `Host` header (80 when it has none), appended with a bare
/// comma to what the client sent; `X-Forwarded-Host` is the client's own
/// when it sent one, else its `Host`. `Host` itself reaches the backend
/// unchanged, and each header comes once.
fn x_forwarded_headers(imp: Impl) {
    let b = Backend::start("b");
    let p = ProxyProcess::start(imp, &[]);
    p.add_target("/", &b.url());
    let port = p.proxy_addr().port().to_string();
    let host = p.proxy_addr().to_string();

    let seen = echo(&p.get("/plain"));
    assert_eq!(seen.header("host"), Some(host.as_str()));
    assert_eq!(seen.header("x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(seen.header("x-forwarded-proto"), Some("http"));
    assert_eq!(seen.header("x-forwarded-port"), Some(port.as_str()));
    assert_eq!(seen.header("x-forwarded-host"), Some(host.as_str()));

    let seen = echo(&p.send(&Request::get("/named").header("Host", "example.org:1234")));
    assert_eq!(
        seen.header("host"),
        Some("example.org:1234"),
        "Host is preserved"
    );
    assert_eq!(seen.header("x-forwarded-port"), Some("1234"));
    assert_eq!(seen.header("x-forwarded-host"), Some("example.org:1234"));

    let seen = echo(&p.send(&Request::get("/bare").header("Host", "example.org")));
    assert_eq!(seen.header("host"), Some("example.org"));
    assert_eq!(seen.header("x-forwarded-port"), Some("80"));

    let seen = echo(
        &p.send(
            &Request::get("/chained")
                .header("Host", "example.org")
                .header("X-Forwarded-For", "1.2.3.4")
                .header("X-Forwarded-Proto", "https")
                .header("X-Forwarded-Port", "443")
                .header("X-Forwarded-Host", "front.example"),
        ),
    );
    assert_eq!(seen.header("x-forwarded-for"), Some("1.2.3.4,127.0.0.1"));
    assert_eq!(seen.header("x-forwarded-proto"), Some("https,http"));
    assert_eq!(seen.header("x-forwarded-port"), Some("443,80"));
    assert_eq!(seen.header("x-forwarded-host"), Some("front.example"));
    assert_eq!(seen.header("host"), Some("example.org"));
}

/// `--no-x-forward`: nothing is added, and what the client sent passes.
fn no_x_forward(imp: Impl) {
    let b = Backend::start("b");
    let p = ProxyProcess::start(imp, &["--no-x-forward"]);
    p.add_target("/", &b.url());
    let seen = echo(&p.get("/plain"));
    for name in [
        "x-forwarded-for",
        "x-forwarded-proto",
        "x-forwarded-port",
        "x-forwarded-host",
    ] {
        assert_eq!(seen.header(name), None, "{name}");
    }
    let seen = echo(&p.send(&Request::get("/sent").header("X-Forwarded-For", "1.2.3.4")));
    assert_eq!(seen.header("x-forwarded-for"), Some("1.2.3.4"));
    assert_eq!(seen.header("x-forwarded-proto"), None);
}

/// `--custom-header NAME:VALUE` (repeatable; blanks around name and value
/// trimmed) is set on every proxied request, replacing the client's header
/// of the same name.
fn custom_headers(imp: Impl) {
    let b = Backend::start("b");
    let p = ProxyProcess::start(
        imp,
        &[
            "--custom-header",
            "X-One: 1",
            "--custom-header",
            " x-two : two words ",
        ],
    );
    p.add_target("/", &b.url());
    let seen = echo(&p.send(&Request::get("/h").header("X-One", "from the client")));
    assert_eq!(seen.header_all("x-one"), ["1"]);
    assert_eq!(seen.header("x-two"), Some("two words"));
}

/// No route and no default: 404 with an HTML page.
fn no_route_is_404(imp: Impl) {
    let b = Backend::start("b");
    let p = ProxyProcess::start(imp, &[]);
    p.add_target("/user/b", &b.url());
    for request in [
        Request::get("/nothing"),
        Request::get("/"),
        Request::get("/user/bb"),
        Request::new("POST", "/nothing").body("data"),
    ] {
        let response = p.send(&request);
        assert_eq!(
            response.status, 404,
            "{} {}",
            request.method, request.target
        );
        assert!(
            response
                .header("content-type")
                .is_some_and(|v| v.starts_with("text/html")),
            "content-type {:?}",
            response.header("content-type")
        );
        assert!(!response.body.is_empty(), "an error page");
    }
    assert_eq!(b.requests(), 0);
}

/// A route whose backend is down: 503 with an HTML page.
fn backend_down_is_503(imp: Impl) {
    let p = ProxyProcess::start(imp, &[]);
    p.add_target("/down", &format!("http://127.0.0.1:{}", closed_port()));
    let response = p.get("/down/x");
    assert_eq!(response.status, 503);
    assert!(
        response
            .header("content-type")
            .is_some_and(|v| v.starts_with("text/html")),
        "content-type {:?}",
        response.header("content-type")
    );
    assert!(!response.body.is_empty());

    // A backend that goes away between two requests on one client
    // connection.
    let mut b = Backend::start("b");
    p.add_target("/gone", &b.url());
    let mut conn = Conn::open(p.proxy_addr()).unwrap();
    assert_eq!(conn.send(&Request::get("/gone/1")).unwrap().status, 200);
    b.stop();
    let response = conn.send(&Request::get("/gone/2")).unwrap();
    assert_eq!(response.status, 503);
}

/// `--error-target URL`: on 404 and 503 the proxy fetches
/// `GET URL/CODE?url=<the request target, form-encoded>` (the target path
/// gets a `/` appended first) with no client headers, and answers with the
/// error code, the error server's body and its `Content-Type`.
fn error_target(imp: Impl) {
    let errors = Backend::start("errors");
    let p = ProxyProcess::start(
        imp,
        &["--error-target", &format!("{}/errors", errors.url())],
    );
    p.add_target("/down", &format!("http://127.0.0.1:{}", closed_port()));

    let target = "/nothing/x?a=b&c=%20d+e";
    let response = p.send(
        &Request::new("POST", target)
            .header("X-Client", "1")
            .body("body"),
    );
    assert_eq!(response.status, 404);
    assert_eq!(response.header("content-type"), Some("application/json"));
    let seen = Echo::from_json(&response.json());
    assert_eq!(seen.backend, "errors");
    assert_eq!(seen.method, "GET");
    assert!(seen.path.starts_with("/errors/404?"), "{}", seen.path);
    assert_eq!(
        query_param(&seen.path, "url").as_deref(),
        Some(target),
        "{}",
        seen.path
    );
    assert_eq!(
        seen.header("x-client"),
        None,
        "client headers are not passed"
    );
    assert_eq!(seen.body_len, 0);

    let response = p.get("/down/x");
    assert_eq!(response.status, 503);
    let seen = Echo::from_json(&response.json());
    assert!(seen.path.starts_with("/errors/503?"), "{}", seen.path);
    assert_eq!(query_param(&seen.path, "url").as_deref(), Some("/down/x"));
}

/// An `--error-target` that is itself down: the bare status, still 404 or
/// 503.
fn error_target_down_falls_back(imp: Impl) {
    let p = ProxyProcess::start(
        imp,
        &[
            "--error-target",
            &format!("http://127.0.0.1:{}", closed_port()),
        ],
    );
    p.add_target("/down", &format!("http://127.0.0.1:{}", closed_port()));
    assert_eq!(p.get("/nothing").status, 404);
    assert_eq!(p.get("/down/x").status, 503);
}

/// `--error-path DIR`: `DIR/CODE.html`, else `DIR/error.html`, served as
/// `text/html` with the error code.
fn error_path(imp: Impl) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("404.html"), "<p>custom 404 page</p>\n").unwrap();
    std::fs::write(dir.path().join("error.html"), "<p>generic error page</p>\n").unwrap();
    let p = ProxyProcess::start(imp, &["--error-path", dir.path().to_str().unwrap()]);
    p.add_target("/down", &format!("http://127.0.0.1:{}", closed_port()));
    let response = p.get("/nothing");
    assert_eq!(response.status, 404);
    assert!(
        response
            .header("content-type")
            .is_some_and(|v| v.starts_with("text/html"))
    );
    assert_eq!(response.text(), "<p>custom 404 page</p>\n");
    let response = p.get("/down/x");
    assert_eq!(response.status, 503);
    assert!(
        response
            .header("content-type")
            .is_some_and(|v| v.starts_with("text/html"))
    );
    assert_eq!(response.text(), "<p>generic error page</p>\n");
}

/// `GET /_chp_healthz` is answered by the proxy itself (200,
/// `{"status": "OK"}` as JSON), even when a default route would match.
fn health_check(imp: Impl) {
    let b = Backend::start("b");
    for args in [vec![], vec!["--default-target".to_owned(), b.url()]] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let p = ProxyProcess::start(imp, &args);
        let response = p.get("/_chp_healthz");
        assert_eq!(response.status, 200);
        assert!(
            response
                .header("content-type")
                .is_some_and(|v| v.starts_with("application/json"))
        );
        assert_eq!(response.json(), json!({"status": "OK"}));
    }
    assert_eq!(b.requests(), 0, "the health check is not forwarded");
}

/// `--host-routing`: the first segment of a route key is a host name
/// (matched against the `Host` header without its port); routes get a
/// `host` field; the backend sees the request target as sent.
fn host_routing(imp: Impl) {
    let (a, b, default) = (
        Backend::start("a"),
        Backend::start("b"),
        Backend::start("default"),
    );
    let p = ProxyProcess::start(imp, &["--host-routing", "--default-target", &default.url()]);
    p.add_target("/a.example.com", &a.url());
    p.add_target("/b.example.com/sub", &b.url());
    let routes = p.routes();
    assert_eq!(routes["/a.example.com"]["host"], "a.example.com");
    assert_eq!(routes["/b.example.com/sub"]["host"], "b.example.com");
    assert_eq!(
        routes["/"].get("host"),
        None,
        "the default route has no host"
    );
    for (host, target, backend) in [
        ("a.example.com:8000", "/x/y", "a"),
        ("a.example.com", "/", "a"),
        ("b.example.com", "/sub/z", "b"),
        ("b.example.com", "/other", "default"),
        ("c.example.com", "/x", "default"),
    ] {
        let seen = echo(&p.send(&Request::get(target).header("Host", host)));
        assert_eq!(seen.backend, backend, "Host {host} GET {target}");
        assert_eq!(seen.path, target, "Host {host} GET {target}");
        assert_eq!(seen.header("host"), Some(host));
    }
}

/// A proxied request whose answer is a success (status < 300) advances the
/// route's `last_activity`; a 404 or redirect from the backend, a 503 for a
/// dead backend, or a 404 with no route do not. Request body bytes count
/// as activity whatever the answer (CHP updates on every request `data`
/// event).
fn last_activity_follows_successful_requests(imp: Impl) {
    let b = Backend::start("b");
    let p = ProxyProcess::start(imp, &[]);
    p.add_target("/a", &b.url());
    p.add_target("/control", &b.url());
    p.add_target("/down", &format!("http://127.0.0.1:{}", closed_port()));
    let start = ["/a", "/control", "/down"].map(|r| p.last_activity(r));
    wait_clock_past(*start.iter().max().unwrap());

    assert_eq!(p.get("/a/_status/404").status, 404);
    assert_eq!(p.get("/a/_status/302").status, 302);
    assert_eq!(p.get("/down/x").status, 503);
    // An event to wait on: a successful request on another route; once it
    // shows, the earlier ones would have shown too.
    assert_eq!(p.get("/control/x").status, 200);
    eventually("the control route's activity", || {
        (p.last_activity("/control") > start[1]).then_some(())
    });
    assert_eq!(
        p.last_activity("/a"),
        start[0],
        "404 and 302 are not activity"
    );
    assert_eq!(p.last_activity("/down"), start[2], "a 503 is not activity");

    let before = now_ms();
    assert_eq!(p.get("/a/x").status, 200);
    let after = eventually("activity after a 200", || {
        let la = p.last_activity("/a");
        (la > start[0]).then_some(la)
    });
    assert!(
        after >= before - 1 && after <= now_ms(),
        "stamped at request time"
    );

    wait_clock_past(after);
    let response = p.send(&Request::new("POST", "/a/_status/404").body(vec![b'x'; 1000]));
    assert_eq!(response.status, 404);
    eventually("activity from request body bytes", || {
        (p.last_activity("/a") > after).then_some(())
    });
}

/// 100 client connections at once, each sending 5 keep-alive requests on
/// the same connection: every answer is the right one.
fn concurrent_keep_alive(imp: Impl) {
    const CLIENTS: usize = 100;
    const REQUESTS: usize = 5;
    let b = Backend::start("b");
    let p = ProxyProcess::start(imp, &[]);
    p.add_target("/user/b", &b.url());
    let ready = Barrier::new(CLIENTS);
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..CLIENTS)
            .map(|client| {
                let ready = &ready;
                let p = &p;
                scope.spawn(move || {
                    let mut conn = Conn::open(p.proxy_addr()).expect("connect to the proxy");
                    ready.wait();
                    for request in 0..REQUESTS {
                        let target = format!("/user/b/c{client}/r{request}");
                        let response = conn
                            .send(&Request::get(&target))
                            .unwrap_or_else(|e| panic!("client {client} request {request}: {e}"));
                        assert_eq!(echo(&response).path, target);
                    }
                })
            })
            .collect();
        for worker in workers {
            if let Err(panic) = worker.join() {
                std::panic::resume_unwind(panic);
            }
        }
    });
    assert_eq!(b.requests(), CLIENTS * REQUESTS);
}

/// `--keep-alive-timeout 1000`: a connection that sends a request every
/// 400 ms stays open well past a second (the timeout counts idle time, and
/// starts again at each request); once idle, it is closed about a second
/// after its last answer.
fn keep_alive_timeout(imp: Impl) {
    use std::io::Read;
    let b = Backend::start("b");
    let p = ProxyProcess::start(imp, &["--keep-alive-timeout", "1000"]);
    p.add_target("/k", &b.url());
    let mut conn = Conn::open(p.proxy_addr()).expect("connect to the proxy");
    let start = Instant::now();
    for i in 0..6 {
        let response = conn
            .send(&Request::get(&format!("/k/{i}")))
            .unwrap_or_else(|e| panic!("request {i} on the kept connection: {e}"));
        assert_eq!(response.status, 200);
        std::thread::sleep(Duration::from_millis(400));
    }
    assert!(start.elapsed() >= Duration::from_millis(2400));
    let response = conn.send(&Request::get("/k/last")).expect("last request");
    assert_eq!(response.status, 200);
    let idle_from = Instant::now();
    let mut stream = conn.stream().try_clone().expect("clone the socket");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("read timeout");
    let mut buf = [0u8; 64];
    let n = stream
        .read(&mut buf)
        .expect("the idle connection is closed, not left open");
    let idle = idle_from.elapsed();
    assert_eq!(n, 0, "unexpected bytes on an idle connection");
    assert!(
        idle >= Duration::from_millis(700) && idle <= Duration::from_secs(4),
        "an idle connection closed after {idle:?} (timeout 1 s)"
    );
    assert_eq!(b.requests(), 7);
}

/// A 50 MB response streamed through: the same length and sha256.
fn large_streamed_response(imp: Impl) {
    const SIZE: u64 = 50 * 1024 * 1024;
    let b = Backend::start("b");
    let p = ProxyProcess::start(imp, &[]);
    p.add_target("/big", &b.url());
    let mut conn = Conn::open(p.proxy_addr()).unwrap();
    let mut hasher = Sha256::new();
    let mut total = 0u64;
    let response = conn
        .send_to_sink(
            &Request::get(&format!("/big/_stream/{SIZE}")),
            &mut |chunk| {
                hasher.update(chunk);
                total += chunk.len() as u64;
            },
        )
        .expect("the whole stream");
    // The connection is still usable (at once: an idle connection may be
    // closed after the keep-alive timeout, 5 s by default).
    assert_eq!(conn.send(&Request::get("/big/after")).unwrap().status, 200);
    assert_eq!(response.status, 200);
    assert_eq!(total, SIZE);
    assert_eq!(
        response.header("content-length"),
        Some(SIZE.to_string().as_str())
    );
    assert_eq!(
        jhub_tests::proxy::backend::hex(&hasher.finalize()),
        stream_sha256(SIZE)
    );
}

/// A 1 MiB upload, with `Content-Length` and chunked: the backend gets the
/// same bytes.
fn uploads(imp: Impl) {
    let b = Backend::start("b");
    let p = ProxyProcess::start(imp, &[]);
    p.add_target("/up", &b.url());
    let mut body = vec![0u8; 1024 * 1024];
    stream_bytes(7, &mut body);
    let expected = sha256_hex(&body);

    let seen = echo(&p.send(&Request::new("POST", "/up/plain").body(body.clone())));
    assert_eq!(
        (seen.body_len, seen.body_sha256.as_str()),
        (body.len() as u64, expected.as_str())
    );
    assert_eq!(seen.header("content-length"), Some("1048576"));

    let seen = echo(
        &p.send(
            &Request::new("PUT", "/up/chunked")
                .header("Transfer-Encoding", "chunked")
                .body(chunked(&body, 100_000)),
        ),
    );
    assert_eq!(seen.method, "PUT");
    assert_eq!(
        (seen.body_len, seen.body_sha256.as_str()),
        (body.len() as u64, expected.as_str())
    );
}

/// `Expect: 100-continue`: the proxy sends `100 Continue` before the client
/// sends its body, then the final answer.
fn expect_100_continue(imp: Impl) {
    let b = Backend::start("b");
    let p = ProxyProcess::start(imp, &[]);
    p.add_target("/up", &b.url());
    let mut body = vec![0u8; 1024 * 1024];
    stream_bytes(11, &mut body);
    let request = Request::new("POST", "/up/expect")
        .header("Expect", "100-continue")
        .header("Content-Length", &body.len().to_string());
    let mut conn = Conn::open(p.proxy_addr()).unwrap();
    conn.send_head(&request).unwrap();
    let interim = conn
        .read_interim()
        .expect("an interim 100 Continue before the body is sent");
    assert_eq!(interim, 100);
    conn.write_raw(&body).unwrap();
    let mut answer = Vec::new();
    let response = conn
        .read_response("POST", &mut |chunk| answer.extend_from_slice(chunk))
        .unwrap();
    assert_eq!(response.status, 200);
    let seen = Echo::from_json(&serde_json::from_slice(&answer).unwrap());
    assert_eq!(seen.body_sha256, sha256_hex(&body));
    assert_eq!(seen.body_len, body.len() as u64);
}

/// `--proxy-timeout MS` and a backend that never answers: 503 after about
/// MS.
fn proxy_timeout(imp: Impl) {
    let b = Backend::start("b");
    let p = ProxyProcess::start(imp, &["--proxy-timeout", "1000"]);
    p.add_target("/slow", &b.url());
    let started = Instant::now();
    let response = p.get("/slow/_hang");
    let took = started.elapsed();
    assert_eq!(response.status, 503);
    assert!(
        took >= Duration::from_millis(900),
        "answered after {took:?}"
    );
    assert!(took < patience(), "answered after {took:?}");
    // A prompt backend is not affected.
    assert_eq!(p.get("/slow/fast").status, 200);
}

/// `--timeout MS` and a backend that never answers: the client connection
/// is closed after about MS of silence, with no response at all (CHP sets
/// an idle timeout on the client socket, and node destroys the socket).
fn client_timeout(imp: Impl) {
    let b = Backend::start("b");
    let p = ProxyProcess::start(imp, &["--timeout", "1000"]);
    p.add_target("/slow", &b.url());
    let mut conn = Conn::open(p.proxy_addr()).unwrap();
    let started = Instant::now();
    conn.send_head(&Request::get("/slow/_hang")).unwrap();
    let rest = conn
        .read_to_close()
        .expect("the proxy closes the connection");
    let took = started.elapsed();
    assert_eq!(String::from_utf8_lossy(&rest), "", "no response at all");
    assert!(took >= Duration::from_millis(900), "closed after {took:?}");
    assert_eq!(p.get("/slow/fast").status, 200);
}
