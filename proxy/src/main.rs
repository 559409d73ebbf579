//! `jhub-proxy`: routes browser traffic to the hub and to users' servers,
//! controlled by a REST API compatible with configurable-http-proxy.
//!
//! For now it answers `--help` and `--version`; the proxy is built on this
//! crate.
#![forbid(unsafe_code)]

use clap::Parser;

/// An HTTP and websocket proxy with the configurable-http-proxy REST API.
#[derive(Debug, Parser)]
#[command(name = "jhub-proxy", version, about)]
struct Cli {}

fn main() {
    let _cli = Cli::parse();
    eprintln!("jhub-proxy: the proxy is not built yet; only --help and --version work");
    std::process::exit(2);
}
