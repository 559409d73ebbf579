//! Wire contracts between the jhub processes.
//!
//! This crate owns the shapes of the messages that cross a process boundary,
//! so that the hub, the proxy, the `sudospawner` helper and the integration
//! tests cannot drift apart:
//!
//! - [`helper`]: the JSON request and answer of the `sudospawner` helper, the
//!   same protocol as the Python `sudospawner` mediator, including its exact
//!   output bytes ([`helper::to_python_json`]).
//!
//! It depends on `serde` and `serde_json` only: the privileged helper links
//! it, so nothing async, HTTP or SQL may ever come in here.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod helper;
