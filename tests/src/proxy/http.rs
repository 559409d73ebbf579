//! A small HTTP/1.1 client over a plain `TcpStream`, so that the scenarios
//! control every byte a client sends (the exact `Host`, `Expect`,
//! hand-written `X-Forwarded-*` headers, keep-alive reuse, a body sent only
//! after an interim `100 Continue`) and see every header the proxy answers
//! with, unchanged.
//!
//! Every read and write is bounded by [`patience`](crate::privileged::patience):
//! a proxy that never answers fails the test instead of hanging it.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::privileged::patience;

/// One request: method, request target (`/path?query`, sent as is), headers
/// in order, and an optional body.
#[derive(Debug, Clone)]
pub struct Request {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The request target, byte for byte (no encoding is applied).
    pub target: String,
    /// Headers in the order they are sent. A `Host` header is added from the
    /// address when none is given; `Content-Length` is added for a body
    /// unless a `Content-Length` or `Transfer-Encoding` header is given.
    pub headers: Vec<(String, String)>,
    /// The body, sent as is (already chunk-encoded when the headers say so).
    pub body: Option<Vec<u8>>,
}

impl Request {
    /// A request with no headers and no body.
    pub fn new(method: &str, target: &str) -> Self {
        Request {
            method: method.to_owned(),
            target: target.to_owned(),
            headers: Vec::new(),
            body: None,
        }
    }

    /// A `GET` of `target`.
    pub fn get(target: &str) -> Self {
        Request::new("GET", target)
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = Some(body.into());
        self
    }

    /// The request head as it goes on the wire, for `addr`.
    fn head(&self, addr: SocketAddr) -> Vec<u8> {
        let has = |name: &str| {
            self.headers
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case(name))
        };
        let mut head = format!("{} {} HTTP/1.1\r\n", self.method, self.target);
        if !has("host") {
            head.push_str(&format!("Host: {addr}\r\n"));
        }
        for (name, value) in &self.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        if let Some(body) = &self.body
            && !has("content-length")
            && !has("transfer-encoding")
        {
            head.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        head.push_str("\r\n");
        head.into_bytes()
    }
}

/// A response as the client saw it.
#[derive(Debug, Clone)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Headers in the order received, names as sent.
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked (empty when it was streamed to a sink).
    pub body: Vec<u8>,
    /// Interim (1xx) responses received before this one, by status.
    pub interim: Vec<u16>,
}

impl Response {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of header `name` (case-insensitive), in order.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The body as UTF-8 (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON; panics with the body when it is not JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "expected a JSON body ({e}), got status {} and body {:?}",
                self.status,
                self.text()
            )
        })
    }
}

/// One client connection, reusable for keep-alive requests.
pub struct Conn {
    addr: SocketAddr,
    reader: BufReader<TcpStream>,
}

impl Conn {
    /// Connects to `addr`, with read and write timeouts of
    /// [`patience`](crate::privileged::patience).
    pub fn open(addr: SocketAddr) -> io::Result<Self> {
        Conn::open_with_timeout(addr, patience())
    }

    /// Connects to `addr` with the given read and write timeout.
    pub fn open_with_timeout(addr: SocketAddr, timeout: Duration) -> io::Result<Self> {
        let stream = TcpStream::connect_timeout(&addr, timeout)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            addr,
            reader: BufReader::new(stream),
        })
    }

    /// The underlying stream.
    pub fn stream(&self) -> &TcpStream {
        self.reader.get_ref()
    }

    /// Sends `request` and reads the whole response.
    pub fn send(&mut self, request: &Request) -> io::Result<Response> {
        self.send_head(request)?;
        if let Some(body) = &request.body {
            self.reader.get_mut().write_all(body)?;
        }
        let mut body = Vec::new();
        let mut response =
            self.read_response(&request.method, &mut |chunk| body.extend_from_slice(chunk))?;
        response.body = body;
        Ok(response)
    }

    /// Sends `request` and hands the response body to `sink` chunk by
    /// chunk instead of keeping it (for large downloads).
    pub fn send_to_sink(
        &mut self,
        request: &Request,
        sink: &mut dyn FnMut(&[u8]),
    ) -> io::Result<Response> {
        self.send_head(request)?;
        if let Some(body) = &request.body {
            self.reader.get_mut().write_all(body)?;
        }
        self.read_response(&request.method, sink)
    }

    /// Writes only the request head (for `Expect: 100-continue`: the
    /// caller then waits with [`Conn::read_interim`] before the body).
    pub fn send_head(&mut self, request: &Request) -> io::Result<()> {
        let head = request.head(self.addr);
        self.reader.get_mut().write_all(&head)
    }

    /// Writes raw bytes (a body after an interim response).
    pub fn write_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.reader.get_mut().write_all(bytes)
    }

    /// Reads one status line and its headers, which must be an interim
    /// (1xx) response; returns its status.
    pub fn read_interim(&mut self) -> io::Result<u16> {
        let (status, _) = self.read_head()?;
        if (100..200).contains(&status) {
            Ok(status)
        } else {
            Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("expected an interim response, got status {status}"),
            ))
        }
    }

    /// Reads a response to a request with `method`, skipping (and
    /// recording) interim responses, passing the body to `sink`.
    pub fn read_response(
        &mut self,
        method: &str,
        sink: &mut dyn FnMut(&[u8]),
    ) -> io::Result<Response> {
        let mut interim = Vec::new();
        let (status, headers) = loop {
            let (status, headers) = self.read_head()?;
            if (100..200).contains(&status) && status != 101 {
                interim.push(status);
                continue;
            }
            break (status, headers);
        };
        let response = Response {
            status,
            headers,
            body: Vec::new(),
            interim,
        };
        let no_body = method.eq_ignore_ascii_case("HEAD")
            || status == 204
            || status == 304
            || status == 101
            || (100..200).contains(&status);
        if no_body {
            return Ok(response);
        }
        let chunked = response
            .header("transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
        if chunked {
            self.read_chunked(sink)?;
        } else if let Some(len) = response.header("content-length") {
            let len: u64 = len.trim().parse().map_err(|_| bad("bad content-length"))?;
            self.read_exact_to(len, sink)?;
        } else {
            // No length: the body runs to the end of the connection.
            let mut buf = [0u8; 64 * 1024];
            loop {
                let n = self.reader.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                sink(&buf[..n]);
            }
        }
        Ok(response)
    }

    fn read_head(&mut self) -> io::Result<(u16, Vec<(String, String)>)> {
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed before a response",
            ));
        }
        let mut parts = line.trim_end().splitn(3, ' ');
        let version = parts.next().unwrap_or_default();
        if !version.starts_with("HTTP/1.") {
            return Err(bad(&format!("not an HTTP/1 status line: {line:?}")));
        }
        let status: u16 = parts
            .next()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad(&format!("bad status line {line:?}")))?;
        let mut headers = Vec::new();
        loop {
            let mut line = String::new();
            if self.reader.read_line(&mut line)? == 0 {
                return Err(bad("connection closed inside the headers"));
            }
            let line = line.trim_end_matches(['\r', '\n']);
            if line.is_empty() {
                break;
            }
            let (name, value) = line
                .split_once(':')
                .ok_or_else(|| bad(&format!("bad header line {line:?}")))?;
            headers.push((name.to_owned(), value.trim().to_owned()));
        }
        Ok((status, headers))
    }

    fn read_exact_to(&mut self, mut len: u64, sink: &mut dyn FnMut(&[u8])) -> io::Result<()> {
        let mut buf = [0u8; 64 * 1024];
        while len > 0 {
            let want = buf.len().min(usize::try_from(len).unwrap_or(usize::MAX));
            let n = self.reader.read(&mut buf[..want])?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("connection closed with {len} body bytes missing"),
                ));
            }
            sink(&buf[..n]);
            len -= n as u64;
        }
        Ok(())
    }

    fn read_chunked(&mut self, sink: &mut dyn FnMut(&[u8])) -> io::Result<()> {
        loop {
            let mut line = String::new();
            if self.reader.read_line(&mut line)? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed inside a chunked body",
                ));
            }
            let size = line.trim().split(';').next().unwrap_or_default();
            let size = u64::from_str_radix(size, 16)
                .map_err(|_| bad(&format!("bad chunk size line {line:?}")))?;
            if size == 0 {
                // Trailers, up to the empty line.
                loop {
                    let mut line = String::new();
                    if self.reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
                        return Ok(());
                    }
                }
            }
            self.read_exact_to(size, sink)?;
            let mut crlf = [0u8; 2];
            self.reader.read_exact(&mut crlf)?;
        }
    }

    /// Reads at least `n` raw bytes (head and body alike), for a client
    /// that reads the start of a response and then goes away.
    pub fn read_raw_at_least(&mut self, n: usize) -> io::Result<usize> {
        let mut buf = [0u8; 64 * 1024];
        let mut total = 0;
        while total < n {
            let got = self.reader.read(&mut buf)?;
            if got == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            total += got;
        }
        Ok(total)
    }

    /// Waits until the peer closes the connection (EOF or reset) and
    /// returns whatever bytes arrived before that.
    pub fn read_to_close(&mut self) -> io::Result<Vec<u8>> {
        let mut rest = Vec::new();
        match self.reader.read_to_end(&mut rest) {
            Ok(_) => Ok(rest),
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => Ok(rest),
            Err(e) => Err(e),
        }
    }
}

fn bad(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_owned())
}

/// Sends `request` on a new connection to `addr`; panics on I/O errors
/// with `addr` and the request in the message.
pub fn send(addr: SocketAddr, request: &Request) -> Response {
    Conn::open(addr)
        .and_then(|mut conn| conn.send(request))
        .unwrap_or_else(|e| panic!("{} {} to {addr}: {e}", request.method, request.target))
}

/// `GET target` on a new connection to `addr`.
pub fn get(addr: SocketAddr, target: &str) -> Response {
    send(addr, &Request::get(target))
}

/// Encodes `body` in chunks of `chunk` bytes plus the last (empty) chunk,
/// for requests sent with `Transfer-Encoding: chunked`.
pub fn chunked(body: &[u8], chunk: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + body.len() / chunk.max(1) * 8 + 8);
    for part in body.chunks(chunk.max(1)) {
        out.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
        out.extend_from_slice(part);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}
