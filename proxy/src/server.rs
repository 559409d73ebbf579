//! Listeners and connection serving: the public proxy port (optionally
//! TLS, with a connection cap), the API port, the metrics port, and the
//! HTTP-to-HTTPS redirect port.
//!
//! Sockets are bound with std before the runtime exists (so the seccomp
//! filter can go in right after), then handed to tokio. Every connection
//! is served by hyper's HTTP/1.1 server with bounded header and buffer
//! sizes, an idle keep-alive timeout, and upgrades enabled on the public
//! port only.

use std::convert::Infallible;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{HeaderValue, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

use crate::api;
use crate::body::ResponseBody;
use crate::cli::ListenAddr;
use crate::forward::{self, ClientInfo};
use crate::state::State;
use crate::timer::ConnTimer;

/// Largest request head accepted (the reference's runtime default is
/// 16 KiB); larger heads get 431.
const MAX_HEADER_SIZE: usize = 16 * 1024;
/// Most header lines in a request.
const MAX_HEADERS: usize = 100;
/// Per-connection read buffer cap.
const MAX_BUF: usize = 64 * 1024;
/// Pause after a failed accept (e.g. out of descriptors), so the loop
/// never spins.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);
/// TCP keepalive probe start, so dead peers of idle connections go away.
const TCP_KEEPALIVE: Duration = Duration::from_secs(60);

/// A bound socket, before the runtime starts.
#[derive(Debug)]
pub enum BoundListener {
    /// TCP.
    Tcp(std::net::TcpListener),
    /// UNIX domain socket.
    Unix(std::os::unix::net::UnixListener),
}

/// Binds `addr`. `[::]` is bound dual-stack (IPv4 too), falling back to
/// `0.0.0.0` when IPv6 is unavailable.
pub fn bind(addr: &ListenAddr) -> io::Result<BoundListener> {
    match addr {
        ListenAddr::Unix(path) => {
            let l = std::os::unix::net::UnixListener::bind(path)?;
            l.set_nonblocking(true)?;
            Ok(BoundListener::Unix(l))
        }
        ListenAddr::Tcp(sa) => {
            let bind_one = |sa: SocketAddr| -> io::Result<std::net::TcpListener> {
                use socket2::{Domain, Socket, Type};
                let socket = Socket::new(Domain::for_address(sa), Type::STREAM, None)?;
                if sa.is_ipv6() {
                    socket.set_only_v6(false)?;
                }
                socket.set_reuse_address(true)?;
                socket.bind(&sa.into())?;
                socket.listen(1024)?;
                socket.set_nonblocking(true)?;
                Ok(socket.into())
            };
            match bind_one(*sa) {
                Err(e) if sa.ip().is_unspecified() && sa.is_ipv6() => {
                    let v4 = SocketAddr::new(IpAddr::from([0, 0, 0, 0]), sa.port());
                    bind_one(v4).map(BoundListener::Tcp).map_err(|_| e)
                }
                other => other.map(BoundListener::Tcp),
            }
        }
    }
}

/// A listener inside the runtime.
#[derive(Debug)]
enum Listener {
    Tcp(tokio::net::TcpListener),
    Unix(tokio::net::UnixListener),
}

impl Listener {
    fn from_bound(b: BoundListener) -> io::Result<Self> {
        Ok(match b {
            BoundListener::Tcp(l) => Listener::Tcp(tokio::net::TcpListener::from_std(l)?),
            BoundListener::Unix(l) => Listener::Unix(tokio::net::UnixListener::from_std(l)?),
        })
    }

    async fn accept(&self) -> io::Result<(Conn, Option<IpAddr>)> {
        match self {
            Listener::Tcp(l) => {
                let (s, peer) = l.accept().await?;
                // Best effort: a socket that refuses these still works.
                let _ = s.set_nodelay(true);
                let keepalive = socket2::TcpKeepalive::new()
                    .with_time(TCP_KEEPALIVE)
                    .with_interval(Duration::from_secs(10));
                let _ = socket2::SockRef::from(&s).set_tcp_keepalive(&keepalive);
                Ok((Conn::Tcp(s), Some(peer.ip())))
            }
            Listener::Unix(l) => {
                let (s, _) = l.accept().await?;
                Ok((Conn::Unix(s), None))
            }
        }
    }
}

/// An accepted connection of either kind.
#[derive(Debug)]
pub enum Conn {
    /// TCP.
    Tcp(TcpStream),
    /// UNIX domain socket.
    Unix(UnixStream),
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Unix(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, b: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Tcp(s) => Pin::new(s).poll_write(cx, b),
            Conn::Unix(s) => Pin::new(s).poll_write(cx, b),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Conn::Unix(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Tcp(s) => Pin::new(s).poll_flush(cx),
            Conn::Unix(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Unix(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

/// Which service a listener runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The public proxy.
    Proxy,
    /// The REST API.
    Api,
    /// Prometheus metrics.
    Metrics,
    /// HTTP-to-HTTPS redirects to this port.
    Redirect(u16),
}

fn builder(state: &State) -> http1::Builder {
    let mut b = http1::Builder::new();
    b.timer(ConnTimer::new())
        .keep_alive(true)
        .header_read_timeout(state.config.keep_alive_timeout)
        .max_header_size(MAX_HEADER_SIZE)
        .max_headers(MAX_HEADERS)
        .max_buf_size(MAX_BUF);
    b
}

/// Serves one connection with the service for `role`.
async fn serve<I>(state: Arc<State>, io: I, role: Role, client: ClientInfo)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let io = TokioIo::new(io);
    let b = builder(&state);
    let result = match role {
        Role::Proxy => {
            let svc = service_fn(move |req: Request<Incoming>| {
                forward::handle(Arc::clone(&state), req, client.clone())
            });
            b.serve_connection(io, svc).with_upgrades().await
        }
        Role::Api => {
            let svc = service_fn(move |req: Request<Incoming>| {
                let state = Arc::clone(&state);
                async move { Ok::<_, Infallible>(api::handle(state, req).await) }
            });
            b.serve_connection(io, svc).await
        }
        Role::Metrics => {
            let svc = service_fn(move |req: Request<Incoming>| {
                let state = Arc::clone(&state);
                async move { Ok::<_, Infallible>(metrics_response(&state, &req)) }
            });
            b.serve_connection(io, svc).await
        }
        Role::Redirect(port) => {
            let svc = service_fn(move |req: Request<Incoming>| async move {
                Ok::<_, Infallible>(redirect_response(&req, port))
            });
            b.serve_connection(io, svc).await
        }
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

fn metrics_response(state: &State, req: &Request<Incoming>) -> Response<ResponseBody> {
    let raw = req.uri().path_and_query().map_or("/", |p| p.as_str());
    if raw != "/metrics" {
        let mut res = Response::new(ResponseBody::full("Not Found"));
        *res.status_mut() = StatusCode::NOT_FOUND;
        return res;
    }
    let mut res = Response::new(ResponseBody::full(state.metrics.render()));
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    res
}

fn redirect_response(req: &Request<Incoming>, port: u16) -> Response<ResponseBody> {
    let Some(host) = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
    else {
        let mut res = Response::new(ResponseBody::full(format!(
            "This server is HTTPS-only on port {port}, but an HTTP request was made and \
             the host could not be determined from the request."
        )));
        *res.status_mut() = StatusCode::BAD_REQUEST;
        return res;
    };
    let host = host.split(':').next().unwrap_or("");
    let raw = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let location = if port == 443 {
        format!("https://{host}{raw}")
    } else {
        format!("https://{host}:{port}{raw}")
    };
    let mut res = Response::new(ResponseBody::empty());
    *res.status_mut() = StatusCode::MOVED_PERMANENTLY;
    if let Ok(v) = HeaderValue::from_str(&location) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    res
}

/// Accepts connections forever on `bound` for `role`. On the proxy role,
/// at most `state.config.max_connections` are served at once; extra
/// connections are closed as soon as they are accepted.
pub async fn run(
    state: Arc<State>,
    bound: BoundListener,
    role: Role,
    tls: Option<TlsAcceptor>,
) -> io::Result<()> {
    let listener = Listener::from_bound(bound)?;
    let cap = match role {
        Role::Proxy => state.config.max_connections,
        // The other ports are internal; cap them too, but generously.
        _ => 1024,
    };
    let slots = Arc::new(Semaphore::new(cap));
    loop {
        let (conn, ip) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
            tracing::warn!(limit = cap, "too many connections; closing a new one");
            drop(conn);
            continue;
        };
        let state = Arc::clone(&state);
        let tls = tls.clone();
        tokio::spawn(async move {
            let client = ClientInfo::new(ip, tls.is_some());
            match tls {
                None => serve(state, conn, role, client).await,
                Some(acceptor) => {
                    let handshake = tokio::time::timeout(
                        state.config.keep_alive_timeout.max(Duration::from_secs(10)),
                        acceptor.accept(conn),
                    )
                    .await;
                    match handshake {
                        Ok(Ok(stream)) => serve(state, stream, role, client).await,
                        Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!("TLS handshake timed out"),
                    }
                }
            }
            drop(permit);
        });
    }
}

/// Saves the routes file whenever the table changes, coalescing bursts.
pub async fn routes_writer(state: Arc<State>) {
    let Some(path) = state.config.routes_file.clone() else {
        return;
    };
    let mut saved = 0;
    loop {
        state.changed.notified().await;
        let generation = state.generation.get();
        if generation == saved {
            continue;
        }
        let bytes = crate::routes::routes_file_bytes(&state.read());
        let path = path.clone();
        match tokio::task::spawn_blocking(move || crate::routes::save_routes_file(&path, &bytes))
            .await
        {
            Ok(Ok(())) => saved = generation,
            Ok(Err(e)) => tracing::error!("{e}"),
            Err(e) => tracing::error!(error = %e, "routes file writer failed"),
        }
    }
}
