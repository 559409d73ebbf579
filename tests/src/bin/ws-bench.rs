//! `ws-bench`: the websocket half of `bench/proxy.sh`.
//!
//! - `ws-bench serve`: runs the harness's websocket echo upstream on a free
//!   loopback port, prints `PORT` on one line, and serves until its stdin
//!   closes.
//! - `ws-bench run URL CONNECTIONS SECONDS [SIZE]`: opens `CONNECTIONS`
//!   websockets to `URL`; on each, sends a `SIZE`-byte text message
//!   (default 32) and waits for its echo, again and again for `SECONDS`;
//!   prints `round_trips_per_second p50_us p99_us` on one line.
#![forbid(unsafe_code)]

use std::io::Read;
use std::net::TcpStream;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use jhub_tests::proxy::backend::WsBackend;
use tungstenite::Message;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["serve"] => {
            let backend = WsBackend::start();
            println!("{}", backend.addr().port());
            // Serve until whoever started us closes our stdin.
            let mut sink = Vec::new();
            let _eof = std::io::stdin().read_to_end(&mut sink);
            ExitCode::SUCCESS
        }
        ["run", url, connections, seconds, rest @ ..] => {
            let (Ok(connections), Ok(seconds)) = (connections.parse(), seconds.parse()) else {
                return usage();
            };
            let size = match rest {
                [] => 32,
                [size] => match size.parse() {
                    Ok(size) => size,
                    Err(_) => return usage(),
                },
                _ => return usage(),
            };
            match run(url, connections, Duration::from_secs(seconds), size) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("ws-bench: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        _ => usage(),
    }
}

fn usage() -> ExitCode {
    eprintln!("usage: ws-bench serve | ws-bench run URL CONNECTIONS SECONDS [SIZE]");
    ExitCode::from(2)
}

fn run(url: &str, connections: usize, duration: Duration, size: usize) -> Result<(), String> {
    let authority = url
        .strip_prefix("ws://")
        .and_then(|rest| rest.split('/').next())
        .ok_or_else(|| format!("not a ws:// URL: {url}"))?;
    let payload = "x".repeat(size);
    let mut sockets = Vec::new();
    for _ in 0..connections {
        let stream = TcpStream::connect(authority).map_err(|e| format!("{authority}: {e}"))?;
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .map_err(|e| e.to_string())?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        let (ws, _) = tungstenite::client(url, stream).map_err(|e| format!("{url}: {e}"))?;
        sockets.push(ws);
    }
    let deadline = Instant::now() + duration;
    let started = Instant::now();
    let results: Vec<Result<Vec<u32>, String>> = std::thread::scope(|scope| {
        let workers: Vec<_> = sockets
            .into_iter()
            .map(|mut ws| {
                let payload = payload.as_str();
                scope.spawn(move || {
                    let mut latencies = Vec::new();
                    while Instant::now() < deadline {
                        let sent = Instant::now();
                        ws.send(Message::text(payload)).map_err(|e| e.to_string())?;
                        match ws.read().map_err(|e| e.to_string())? {
                            Message::Text(echo) if echo.len() == payload.len() => {}
                            other => return Err(format!("unexpected answer {other:?}")),
                        }
                        let micros = sent.elapsed().as_micros();
                        latencies.push(u32::try_from(micros).unwrap_or(u32::MAX));
                    }
                    // Best effort: the numbers are taken already.
                    let _closed = ws.close(None);
                    Ok(latencies)
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().unwrap_or_else(|_| Err("a worker panicked".into())))
            .collect()
    });
    let elapsed = started.elapsed().as_secs_f64();
    let mut all = Vec::new();
    for result in results {
        all.extend(result?);
    }
    if all.is_empty() {
        return Err("no round trip completed".into());
    }
    all.sort_unstable();
    let pick = |q: f64| all[((all.len() - 1) as f64 * q).round() as usize];
    println!(
        "{:.0} {} {}",
        all.len() as f64 / elapsed,
        pick(0.50),
        pick(0.99)
    );
    Ok(())
}
