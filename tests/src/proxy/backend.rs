//! In-process upstream servers for the proxy scenarios, on loopback ports
//! chosen by the kernel: an HTTP server whose behaviour the request path
//! chooses, and a websocket echo server that reports what happened to each
//! connection.
//!
//! The HTTP server ([`Backend`]) looks for a marker segment anywhere in the
//! path, so the same backend works whatever prefix the proxy adds or
//! strips:
//!
//! | path contains | answer |
//! |---|---|
//! | `/_stream/N` | `200`, `Content-Length: N`, the bytes of [`stream_bytes`] |
//! | `/_chunked/N` | the same bytes, chunked, in chunks of varying size |
//! | `/_cookies` | `200` with two `Set-Cookie` headers and `X-Backend: yes` |
//! | `/_redirect` | `302` to an absolute URL on the backend's own address |
//! | `/_partial/N` | headers announcing `2N` bytes, `N` bytes, then the connection is cut |
//! | `/_status/CODE` | status `CODE`, a short text body |
//! | `/_hang` | never answers; holds the connection until the peer or [`Backend::stop`] ends it |
//! | anything else | `200` and an [`Echo`] of the request as JSON |
//!
//! Every request body is read (by `Content-Length` or chunked) and hashed;
//! `Expect: 100-continue` gets an interim `100 Continue` first; a `HEAD`
//! gets the headers of the `GET` answer and no body. Each
//! connection is a thread; all of them are cut when the backend stops or
//! is dropped, which looks to the proxy like the process dying.

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::json;
use sha2::{Digest, Sha256};
use tungstenite::Message;
use tungstenite::handshake::server::{Request as WsRequest, Response as WsResponse};
use tungstenite::protocol::CloseFrame;
use tungstenite::protocol::frame::coding::CloseCode;

use crate::privileged::patience;

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The sha256 of `bytes`, as lower-case hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Fills `buf` with the bytes at `offset..offset + buf.len()` of the
/// deterministic, non-repeating-looking stream that `/_stream/N` serves.
pub fn stream_bytes(offset: u64, buf: &mut [u8]) {
    for (i, b) in buf.iter_mut().enumerate() {
        let x = offset + i as u64;
        let mixed = (x ^ (x >> 11)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        *b = (mixed >> 56) as u8;
    }
}

/// The sha256 (hex) of the first `n` bytes of [`stream_bytes`].
pub fn stream_sha256(n: u64) -> String {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut offset = 0;
    while offset < n {
        let len = buf
            .len()
            .min(usize::try_from(n - offset).unwrap_or(usize::MAX));
        stream_bytes(offset, &mut buf[..len]);
        hasher.update(&buf[..len]);
        offset += len as u64;
    }
    hex(&hasher.finalize())
}

/// What the echo backend saw of one request, as it returns it.
#[derive(Debug, Clone)]
pub struct Echo {
    /// The backend's name.
    pub backend: String,
    /// The request method.
    pub method: String,
    /// The request target exactly as received (`/path?query`).
    pub path: String,
    /// The headers in the order received, names as sent.
    pub headers: Vec<(String, String)>,
    /// The length of the request body.
    pub body_len: u64,
    /// The sha256 (hex) of the request body.
    pub body_sha256: String,
}

impl Echo {
    /// Parses the JSON an echo answer carries; panics with the JSON when it
    /// is not one.
    pub fn from_json(value: &serde_json::Value) -> Echo {
        let parse = || -> Option<Echo> {
            Some(Echo {
                backend: value["backend"].as_str()?.to_owned(),
                method: value["method"].as_str()?.to_owned(),
                path: value["path"].as_str()?.to_owned(),
                headers: value["headers"]
                    .as_array()?
                    .iter()
                    .map(|pair| Some((pair[0].as_str()?.to_owned(), pair[1].as_str()?.to_owned())))
                    .collect::<Option<_>>()?,
                body_len: value["body_len"].as_u64()?,
                body_sha256: value["body_sha256"].as_str()?.to_owned(),
            })
        };
        parse().unwrap_or_else(|| panic!("not an echo answer: {value}"))
    }

    /// Every value of header `name` (case-insensitive), in order.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The only value of header `name`: `None` when absent, and a panic
    /// naming the values when the header came more than once.
    pub fn header(&self, name: &str) -> Option<&str> {
        match self.header_all(name).as_slice() {
            [] => None,
            [one] => Some(one),
            many => panic!("header {name} came {} times: {many:?}", many.len()),
        }
    }
}

// === The listener shared by both kinds of backend ===

struct Shared {
    stop: AtomicBool,
    next_id: AtomicU64,
    /// A clone of every open connection, to cut them all on stop.
    conns: Mutex<HashMap<u64, TcpStream>>,
    requests: AtomicUsize,
}

/// What a server does with each accepted connection, on its own thread.
type Handler = Arc<dyn Fn(TcpStream, &Shared) + Send + Sync>;

struct Server {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

impl Server {
    fn start(handler: Handler) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let addr = listener
            .local_addr()
            .expect("a bound listener has an address");
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            next_id: AtomicU64::new(0),
            conns: Mutex::new(HashMap::new()),
            requests: AtomicUsize::new(0),
        });
        let accept_shared = Arc::clone(&shared);
        let accept = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if accept_shared.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let id = accept_shared.next_id.fetch_add(1, Ordering::SeqCst);
                if let Ok(clone) = stream.try_clone() {
                    lock(&accept_shared.conns).insert(id, clone);
                }
                let shared = Arc::clone(&accept_shared);
                let handler = Arc::clone(&handler);
                std::thread::spawn(move || {
                    handler(stream, &shared);
                    lock(&shared.conns).remove(&id);
                });
            }
        });
        Server {
            addr,
            shared,
            accept: Some(accept),
        }
    }

    fn stop(&mut self) {
        let Some(accept) = self.accept.take() else {
            return;
        };
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so that it sees the flag; it may already be
        // gone, which is what we want anyway.
        let _wake = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        // A panicking accept thread has nothing more to report.
        let _joined = accept.join();
        for (_, conn) in lock(&self.shared.conns).drain() {
            // Best effort: the peer may have closed it already.
            let _cut = conn.shutdown(Shutdown::Both);
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

// === HTTP ===

/// An HTTP/1.1 upstream; see the module docs for what each path does.
pub struct Backend {
    name: String,
    server: Server,
}

impl Backend {
    /// Starts a backend that names itself `name` in its echoes.
    pub fn start(name: &str) -> Backend {
        let owned = name.to_owned();
        let server = Server::start(Arc::new(move |stream, shared| {
            // A connection that fails mid-way is the scenario's business
            // (a cut stream, a killed proxy); the backend just lets it go.
            let _ended = serve_http(&owned, stream, shared);
        }));
        Backend {
            name: name.to_owned(),
            server,
        }
    }

    /// The backend's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its address.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.server.addr)
    }

    /// How many request heads it has read so far.
    pub fn requests(&self) -> usize {
        self.server.shared.requests.load(Ordering::SeqCst)
    }

    /// How many connections are open right now.
    pub fn open_connections(&self) -> usize {
        lock(&self.server.shared.conns).len()
    }

    /// Stops listening and cuts every open connection, as if the process
    /// had died. Also done on drop.
    pub fn stop(&mut self) {
        self.server.stop();
    }
}

struct Head {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
}

impl Head {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn read_head(reader: &mut impl BufRead) -> io::Result<Option<Head>> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let mut parts = line.split_whitespace();
    let (Some(method), Some(target)) = (parts.next(), parts.next()) else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "bad request line",
        ));
    };
    let (method, target) = (method.to_owned(), target.to_owned());
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.push((name.to_owned(), value.trim().to_owned()));
        }
    }
    Ok(Some(Head {
        method,
        target,
        headers,
    }))
}

/// Reads the request body, returning its length and sha256.
fn read_body(reader: &mut impl BufRead, head: &Head) -> io::Result<(u64, String)> {
    let mut hasher = Sha256::new();
    let mut total = 0u64;
    let chunked = head
        .header("transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    let mut buf = vec![0u8; 64 * 1024];
    let mut take = |reader: &mut dyn BufRead, mut len: u64| -> io::Result<()> {
        while len > 0 {
            let want = buf.len().min(usize::try_from(len).unwrap_or(usize::MAX));
            let n = reader.read(&mut buf[..want])?;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            hasher.update(&buf[..n]);
            total += n as u64;
            len -= n as u64;
        }
        Ok(())
    };
    if chunked {
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line)? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            let size = line.trim().split(';').next().unwrap_or_default();
            let size = u64::from_str_radix(size, 16)
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad chunk size"))?;
            if size == 0 {
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
                        break;
                    }
                }
                break;
            }
            take(reader, size)?;
            let mut crlf = [0u8; 2];
            reader.read_exact(&mut crlf)?;
        }
    } else if let Some(len) = head.header("content-length") {
        let len = len
            .trim()
            .parse()
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad content-length"))?;
        take(reader, len)?;
    }
    Ok((total, hex(&hasher.finalize())))
}

/// The number after `/marker/` in `path`, if the marker is there.
fn marker_arg(path: &str, marker: &str) -> Option<u64> {
    let at = path.find(marker)?;
    let rest = &path[at + marker.len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

fn serve_http(name: &str, stream: TcpStream, shared: &Shared) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    loop {
        let Some(head) = read_head(&mut reader)? else {
            return Ok(());
        };
        shared.requests.fetch_add(1, Ordering::SeqCst);
        let path = head.target.split('?').next().unwrap_or_default().to_owned();
        if path.contains("/_hang") {
            // Never answer: wait for the peer (or stop) to end the
            // connection.
            let mut sink = [0u8; 4096];
            while reader.read(&mut sink)? > 0 {}
            return Ok(());
        }
        if head
            .header("expect")
            .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"))
        {
            writer.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
        }
        let (body_len, body_sha256) = read_body(&mut reader, &head)?;
        let close = head
            .header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        let connection = if close { "close" } else { "keep-alive" };
        let head_only = head.method.eq_ignore_ascii_case("HEAD");
        let mut out = format!("Connection: {connection}\r\n");
        if let Some(n) = marker_arg(&path, "/_partial/") {
            write!(
                writer,
                "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
                2 * n
            )?;
            write_stream(&mut writer, n)?;
            writer.flush()?;
            writer.shutdown(Shutdown::Both)?;
            return Ok(());
        } else if let Some(n) = marker_arg(&path, "/_stream/") {
            write!(
                writer,
                "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {n}\r\n{out}\r\n"
            )?;
            if !head_only {
                write_stream(&mut writer, n)?;
            }
        } else if let Some(n) = marker_arg(&path, "/_chunked/") {
            write!(
                writer,
                "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n{out}\r\n"
            )?;
            if !head_only {
                write_chunked_stream(&mut writer, n)?;
            }
        } else {
            let (status, content_type, body) = if let Some(code) = marker_arg(&path, "/_status/") {
                (
                    format!("{code} Whatever"),
                    "text/plain",
                    format!("status {code}"),
                )
            } else if path.contains("/_cookies") {
                out.push_str("Set-Cookie: first=1; Path=/; HttpOnly\r\n");
                out.push_str("Set-Cookie: second=2; Path=/user\r\n");
                out.push_str("X-Backend: yes\r\n");
                ("200 OK".to_owned(), "text/plain", "cookies".to_owned())
            } else if path.contains("/_redirect") {
                let addr = writer.local_addr()?;
                out.push_str(&format!("Location: http://{addr}/elsewhere?x=1\r\n"));
                ("302 Found".to_owned(), "text/plain", "moved".to_owned())
            } else {
                let echo = json!({
                    "backend": name,
                    "method": head.method,
                    "path": head.target,
                    "headers": head.headers.iter().map(|(k, v)| json!([k, v])).collect::<Vec<_>>(),
                    "body_len": body_len,
                    "body_sha256": body_sha256,
                });
                ("200 OK".to_owned(), "application/json", echo.to_string())
            };
            write!(
                writer,
                "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n{out}\r\n",
                body.len()
            )?;
            if !head_only {
                writer.write_all(body.as_bytes())?;
            }
        }
        writer.flush()?;
        if close {
            return Ok(());
        }
    }
}

/// The first `n` bytes of [`stream_bytes`], chunk-encoded in pieces of
/// varying size, then the last chunk.
fn write_chunked_stream(writer: &mut impl Write, n: u64) -> io::Result<()> {
    let mut buf = vec![0u8; 40_000];
    let mut offset = 0;
    let mut size = 1;
    while offset < n {
        let len = size.min(usize::try_from(n - offset).unwrap_or(usize::MAX));
        stream_bytes(offset, &mut buf[..len]);
        write!(writer, "{len:x}\r\n")?;
        writer.write_all(&buf[..len])?;
        writer.write_all(b"\r\n")?;
        offset += len as u64;
        size = (size * 7 + 3) % buf.len() + 1;
    }
    writer.write_all(b"0\r\n\r\n")
}

fn write_stream(writer: &mut impl Write, n: u64) -> io::Result<()> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut offset = 0;
    while offset < n {
        let len = buf
            .len()
            .min(usize::try_from(n - offset).unwrap_or(usize::MAX));
        stream_bytes(offset, &mut buf[..len]);
        writer.write_all(&buf[..len])?;
        offset += len as u64;
    }
    Ok(())
}

// === Websocket ===

/// What happened on one websocket connection, as the backend saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WsEvent {
    /// A handshake was accepted, for this request target, with these
    /// headers.
    Open {
        /// The request target of the upgrade request.
        path: String,
        /// Its headers (lower-case names), in order.
        headers: Vec<(String, String)>,
    },
    /// The client sent a close frame with this code (`None`: no code).
    ClientClose(Option<u16>),
    /// The connection ended without a close frame from the client (EOF or
    /// reset).
    Cut,
}

/// A websocket echo upstream. Text and binary messages come back as they
/// went; some text messages are commands:
///
/// - `headers`: answers with JSON `{"path": ..., "headers": [[k, v], ...]}`
///   describing the upgrade request it got;
/// - `close:CODE`: the backend starts a close handshake with `CODE`;
/// - `drop`: the backend cuts the TCP connection without a close frame.
///
/// Each connection reports [`WsEvent`]s on [`WsBackend::events`].
pub struct WsBackend {
    server: Server,
    events: Mutex<Receiver<WsEvent>>,
}

impl WsBackend {
    /// Starts the echo server.
    pub fn start() -> WsBackend {
        let (tx, rx) = channel();
        let tx = Mutex::new(tx);
        let server = Server::start(Arc::new(move |stream, shared| {
            let events = lock(&tx).clone();
            shared.requests.fetch_add(1, Ordering::SeqCst);
            serve_ws(stream, &events);
        }));
        WsBackend {
            server,
            events: Mutex::new(rx),
        }
    }

    /// Its address.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr
    }

    /// `http://127.0.0.1:PORT` (the proxy's route target).
    pub fn url(&self) -> String {
        format!("http://{}", self.server.addr)
    }

    /// The next event, waiting at most [`patience`]; panics naming `what`
    /// when none comes.
    pub fn next_event(&self, what: &str) -> WsEvent {
        lock(&self.events)
            .recv_timeout(patience())
            .unwrap_or_else(|_| panic!("the websocket backend saw no event for: {what}"))
    }

    /// Drops every event received so far.
    pub fn drain_events(&self) {
        while lock(&self.events).try_recv().is_ok() {}
    }

    /// How many connections are open right now.
    pub fn open_connections(&self) -> usize {
        lock(&self.server.shared.conns).len()
    }

    /// Stops listening and cuts every open connection.
    pub fn stop(&mut self) {
        self.server.stop();
    }
}

fn serve_ws(stream: TcpStream, events: &Sender<WsEvent>) {
    // Bounded: a proxy that stops talking mid-handshake or mid-message
    // cannot keep the thread forever.
    if stream.set_read_timeout(Some(patience() * 3)).is_err() {
        return;
    }
    let raw = match stream.try_clone() {
        Ok(raw) => raw,
        Err(_) => return,
    };
    let mut opened = None;
    let mut backend_closing = false;
    // The error type is tungstenite's, which this callback never returns.
    #[allow(clippy::result_large_err)]
    let callback = |request: &WsRequest, response: WsResponse| {
        let headers: Vec<(String, String)> = request
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let path = request
            .uri()
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_default();
        opened = Some((path, headers));
        Ok(response)
    };
    let Ok(mut ws) = tungstenite::accept_hdr(stream, callback) else {
        return;
    };
    let Some((path, headers)) = opened else {
        return;
    };
    // The receiver may be gone when the test has finished; nothing to do.
    let _sent = events.send(WsEvent::Open {
        path: path.clone(),
        headers: headers.clone(),
    });
    loop {
        match ws.read() {
            Ok(Message::Text(text)) => {
                let text = text.as_str();
                let reply = if text == "headers" {
                    Some(Message::text(
                        json!({
                            "path": path,
                            "headers": headers.iter().map(|(k, v)| json!([k, v])).collect::<Vec<_>>(),
                        })
                        .to_string(),
                    ))
                } else if let Some(code) = text.strip_prefix("close:") {
                    let code: u16 = code.parse().unwrap_or(1000);
                    let frame = CloseFrame {
                        code: CloseCode::from(code),
                        reason: "backend closing".into(),
                    };
                    if ws.close(Some(frame)).is_err() {
                        return;
                    }
                    backend_closing = true;
                    None
                } else if text == "drop" {
                    // Best effort: cut both directions with no close frame.
                    let _cut = raw.shutdown(Shutdown::Both);
                    return;
                } else {
                    Some(Message::text(text))
                };
                if let Some(reply) = reply
                    && ws.send(reply).is_err()
                {
                    let _sent = events.send(WsEvent::Cut);
                    return;
                }
            }
            Ok(Message::Binary(bytes)) => {
                if ws.send(Message::Binary(bytes)).is_err() {
                    let _sent = events.send(WsEvent::Cut);
                    return;
                }
            }
            Ok(Message::Close(_)) if backend_closing => {}
            Ok(Message::Close(frame)) => {
                let _sent = events.send(WsEvent::ClientClose(frame.map(|f| u16::from(f.code))));
                // Keep reading: tungstenite answers the close and then
                // reports the connection as closed.
            }
            Ok(_) => {}
            Err(tungstenite::Error::ConnectionClosed) | Err(tungstenite::Error::AlreadyClosed) => {
                return;
            }
            Err(_) => {
                let _sent = events.send(WsEvent::Cut);
                return;
            }
        }
    }
}
