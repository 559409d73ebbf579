//! Websocket (HTTP/1.1 upgrade) proxying.
//!
//! Behaviour, as the reference's:
//! - no route: a bare `404` with `Content-Length: 0`, then the connection
//!   closes; target unreachable: the same with `503` (error pages and the
//!   error target are not used for websockets);
//! - a routed upgrade that is not `GET` with `Upgrade: websocket` is
//!   dropped without an answer;
//! - the handshake goes to the target with the client's headers plus
//!   `X-Forwarded-For/-Port/-Proto` (`ws`/`wss`, no `X-Forwarded-Host`);
//! - a `101` from the target is relayed with the target's headers, then
//!   bytes are copied both ways; any other answer is relayed and the
//!   connection closed;
//! - only client-to-target data counts as activity on the route.
//!
//! Closing: when either side ends (EOF or error), the other side's write
//! half is shut down so the close propagates; the remaining direction then
//! has [`CLOSE_GRACE`] to finish before both sockets are dropped, so a
//! dead or silent peer never keeps a tunnel (and its descriptors) alive.

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::body::{RequestBody, ResponseBody};
use crate::forward::{self, ClientInfo, Dropped};
use crate::routes::Route;
use crate::state::State;
use crate::urlpath;

/// How long the second direction of a tunnel may run after the first
/// one has closed.
pub const CLOSE_GRACE: Duration = Duration::from_secs(10);

/// Copy buffer per direction.
const BUF: usize = 8 * 1024;

/// A bare status answer that closes the connection.
fn bare(code: StatusCode) -> Response<ResponseBody> {
    let mut res = Response::new(ResponseBody::empty());
    *res.status_mut() = code;
    res.headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    res.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    res
}

/// Handles an upgrade request on the public listener.
pub async fn handle(
    state: Arc<State>,
    mut req: Request<Incoming>,
    client: ClientInfo,
    raw: &str,
) -> Result<Response<ResponseBody>, Dropped> {
    let m = match forward::match_path(&state, req.headers(), raw) {
        Ok(path) => forward::lookup(&state, &path),
        Err(e) => {
            tracing::error!("500 {} {} {e}", req.method(), urlpath::path_part(raw));
            state.metrics.requests_proxy.inc(500);
            return Ok(bare(StatusCode::INTERNAL_SERVER_ERROR));
        }
    };
    let Some(m) = m else {
        tracing::warn!("404 {} {}", req.method(), urlpath::path_part(raw));
        state.metrics.requests_proxy.inc(404);
        return Ok(bare(StatusCode::NOT_FOUND));
    };
    let is_ws = req
        .headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    if req.method() != Method::GET || !is_ws {
        return Err(Dropped::NotWebsocket);
    }
    let out = match forward::outgoing(&state, &m, raw, req.uri().path_and_query()) {
        Ok(o) => o,
        Err(e) => {
            tracing::error!("500 {} {} {e}", req.method(), urlpath::path_part(raw));
            state.metrics.requests_proxy.inc(500);
            return Ok(bare(StatusCode::INTERNAL_SERVER_ERROR));
        }
    };
    tracing::debug!(
        "PROXY WS {} to {}{}",
        urlpath::path_part(raw),
        out.origin,
        out.uri
    );
    let host = req.headers().get(http::header::HOST).cloned();
    forward::prepare_headers(
        &state,
        req.headers_mut(),
        host.as_ref(),
        &client,
        true,
        &out.origin,
    );
    let client_upgrade = hyper::upgrade::on(&mut req);
    let (mut parts, _empty) = req.into_parts();
    parts.uri = out.uri.clone();
    parts.version = http::Version::HTTP_11;
    let target_req = Request::from_parts(parts, RequestBody::empty());
    let mut res = match state.client.request_to(&out.origin, target_req).await {
        Ok(res) => res,
        Err(e) => {
            tracing::error!(
                "503 GET {} {}",
                urlpath::path_part(out.url(raw)),
                forward::error_chain(&e)
            );
            state.metrics.requests_proxy.inc(503);
            return Ok(bare(StatusCode::SERVICE_UNAVAILABLE));
        }
    };
    state.metrics.requests_proxy.inc(res.status().as_u16());
    if res.status() != StatusCode::SWITCHING_PROTOCOLS {
        let (mut parts, body) = res.into_parts();
        parts.headers.remove(header::TRANSFER_ENCODING);
        parts
            .headers
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        return Ok(Response::from_parts(
            parts,
            ResponseBody::upstream(body, None),
        ));
    }
    let target_upgrade = hyper::upgrade::on(&mut res);
    let activity = m.activity.clone();
    let prefix = Arc::clone(&m.prefix);
    tokio::spawn(async move {
        tunnel(client_upgrade, target_upgrade, activity).await;
        tracing::debug!(route.prefix = %prefix, "websocket closed");
    });
    let (parts, _empty) = res.into_parts();
    Ok(Response::from_parts(parts, ResponseBody::empty()))
}

/// Waits for both upgrades and copies bytes until the tunnel closes.
async fn tunnel(client: OnUpgrade, target: OnUpgrade, activity: Option<Arc<Route>>) {
    let (client, target) = match tokio::try_join!(client, target) {
        Ok(pair) => pair,
        Err(e) => {
            tracing::debug!(error = %e, "websocket upgrade failed");
            return;
        }
    };
    pump(TokioIo::new(client), TokioIo::new(target), activity).await;
}

/// Copies `from` into `to`, touching `activity` per read, then shuts
/// down `to`'s write half. Returns when `from` ends or either side fails.
async fn copy_half<R, W>(mut from: R, mut to: W, activity: Option<Arc<Route>>)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; BUF];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if let Some(route) = &activity {
            route.touch();
        }
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    // Best effort: the peer may already be gone.
    let _ = to.shutdown().await;
}

/// Runs both directions; once one ends the other gets [`CLOSE_GRACE`].
pub async fn pump<C, T>(client: C, target: T, activity: Option<Arc<Route>>)
where
    C: AsyncRead + AsyncWrite + Send,
    T: AsyncRead + AsyncWrite + Send,
{
    let (client_r, client_w) = tokio::io::split(client);
    let (target_r, target_w) = tokio::io::split(target);
    let up = copy_half(client_r, target_w, activity);
    let down = copy_half(target_r, client_w, None);
    tokio::pin!(up, down);
    tokio::select! {
        () = &mut up => {
            // Timing out just means the tunnel is dropped now.
            let _ = tokio::time::timeout(CLOSE_GRACE, down).await;
        }
        () = &mut down => {
            let _ = tokio::time::timeout(CLOSE_GRACE, up).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn close_propagates_both_ways() {
        // client <-> (c_near, c_far) ... pump ... (t_far, t_near) <-> target
        let (mut c_near, c_far) = tokio::io::duplex(1024);
        let (t_far, mut t_near) = tokio::io::duplex(1024);
        let task = tokio::spawn(pump(c_far, t_far, None));
        c_near.write_all(b"ping").await.expect("write");
        let mut buf = [0u8; 4];
        t_near.read_exact(&mut buf).await.expect("read");
        assert_eq!(&buf, b"ping");
        t_near.write_all(b"pong").await.expect("write");
        c_near.read_exact(&mut buf).await.expect("read");
        assert_eq!(&buf, b"pong");
        // The target goes away: the client sees EOF, and the tunnel ends
        // once the client closes too.
        drop(t_near);
        let mut rest = Vec::new();
        c_near.read_to_end(&mut rest).await.expect("eof");
        assert!(rest.is_empty());
        drop(c_near);
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("tunnel ended")
            .expect("no panic");
    }

    #[tokio::test(start_paused = true)]
    async fn silent_peer_is_dropped_after_grace() {
        let (_c_near, c_far) = tokio::io::duplex(1024);
        let (t_far, t_near) = tokio::io::duplex(1024);
        let task = tokio::spawn(pump(c_far, t_far, None));
        drop(t_near);
        // The client never closes; the tunnel still ends after the grace.
        tokio::time::timeout(CLOSE_GRACE * 2, task)
            .await
            .expect("tunnel ended")
            .expect("no panic");
    }
}
