//! `jhub`: the hub process. It runs as the unprivileged `jupyterhub` user and
//! starts users' servers only through the `sudospawner` helper.
//!
//! For now it answers `--help` and `--version`; the hub itself is built on
//! this crate as the configuration, database and REST API land.
#![forbid(unsafe_code)]

use clap::Parser;

/// A multi-user Jupyter hub with a privilege-separated spawner.
#[derive(Debug, Parser)]
#[command(name = "jhub", version, about)]
struct Cli {}

fn main() {
    let _cli = Cli::parse();
    eprintln!("jhub: the hub is not built yet; only --help and --version work");
    std::process::exit(2);
}
