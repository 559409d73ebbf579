//! The integration-test harness: what every scenario in `tests/tests/` needs
//! to drive the real, installed binaries on this machine.
//!
//! - [`privileged`]: root checks that skip loudly, the test accounts, and
//!   running the installed `sudospawner` through real sudo as the hub user.
//! - [`hub`]: the built `jhub` run as the test's user in a temp dir,
//!   with a service token of chosen scopes, for the REST API scenarios.
//! - [`browser`]: a cookie-keeping client for the hub's pages (login,
//!   XSRF tokens, logout).
//! - [`chromium`]: a real headless browser through a hub's pages into
//!   JupyterLab, running a notebook cell (`tests/browser/lab-flow.mjs`).
//! - [`jupyterhub`]: the real JupyterHub 6 from PyPI, run as the hub user,
//!   for the checks that jhub's parts are drop-ins for JupyterHub's.
//! - [`proxy`]: the conformance harness that runs the same scenario against
//!   the reference configurable-http-proxy and against `jhub-proxy`, with
//!   in-process HTTP and websocket upstreams; needs no root.
//!
//! The privileged scenarios assume `sudoers/install.sh` ran first (the
//! README's test command, `tests/run`, does that); they check that the
//! installed helper is the one built from this tree.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod browser;
pub mod browser_flow;
pub mod chromium;
pub mod hub;
pub mod jupyterhub;
pub mod privileged;
pub mod proxy;
pub mod stack;
