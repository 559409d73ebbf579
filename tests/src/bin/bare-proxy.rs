//! The least an HTTP/1 proxy built on hyper and tokio can do, as a
//! yardstick for bench/proxy.sh: every client connection gets its own
//! backend connection, and each request goes there unchanged (no routing,
//! no X-Forwarded-* headers, no pool, no timeouts, no activity clocks), on
//! tokio's current-thread runtime as jhub-proxy uses with one worker.
//!
//! Usage: bare-proxy LISTEN_PORT BACKEND_HOST:PORT. Loopback only; prints
//! the port once listening. Not a proxy to use: errors are only logged.

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::client::conn::http1 as client;
use hyper::server::conn::http1 as server;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(port), Some(backend)) = (args.next(), args.next()) else {
        eprintln!("usage: bare-proxy LISTEN_PORT BACKEND_HOST:PORT");
        std::process::exit(2);
    };
    let Ok(port) = port.parse::<u16>() else {
        eprintln!("bare-proxy: bad port {port:?}");
        std::process::exit(2);
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .unwrap_or_else(|e| {
            eprintln!("bare-proxy: {e}");
            std::process::exit(1);
        });
    if let Err(e) = runtime.block_on(serve(port, backend)) {
        eprintln!("bare-proxy: {e}");
        std::process::exit(1);
    }
}

async fn serve(port: u16, backend: String) -> std::io::Result<()> {
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    println!("{}", listener.local_addr()?.port());
    let backend: Arc<str> = backend.into();
    loop {
        let (stream, _) = listener.accept().await?;
        let backend = backend.clone();
        tokio::spawn(async move {
            if let Err(e) = relay(stream, &backend).await {
                eprintln!("bare-proxy: {e}");
            }
        });
    }
}

/// Serves one client connection through its own backend connection.
async fn relay(stream: TcpStream, backend: &str) -> Result<(), Box<dyn std::error::Error>> {
    stream.set_nodelay(true)?;
    let upstream = TcpStream::connect(backend).await?;
    upstream.set_nodelay(true)?;
    let (sender, conn) = client::handshake(TokioIo::new(upstream)).await?;
    tokio::spawn(conn);
    // hyper's HTTP/1 server calls the service for one request at a time;
    // the lock only satisfies its shared-service signature.
    let sender = Arc::new(Mutex::new(sender));
    let service = service_fn(move |req: Request<Incoming>| {
        let sender = sender.clone();
        async move {
            let mut sender = sender.lock().await;
            sender.ready().await?;
            let res: Result<Response<Incoming>, hyper::Error> = sender.send_request(req).await;
            res
        }
    });
    server::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .await?;
    Ok(())
}
