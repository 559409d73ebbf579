//! Prometheus metrics under configurable-http-proxy's names, kept in
//! atomics so that counting never takes a lock.
//!
//! Counters: `api_route_get`, `api_route_add`, `api_route_delete`,
//! `requests_ws`, `requests_web`, `requests_proxy{status}`,
//! `requests_api{status}`. Summaries (`_sum` and `_count`):
//! `find_target_for_req`, `last_activity_updating`. Process metrics:
//! `process_cpu_seconds_total`, `process_resident_memory_bytes`,
//! `process_open_fds`, `process_start_time_seconds`.
//!
//! When no metrics server is configured the timers are skipped, so the
//! request path pays only for a few relaxed atomic increments.
//!
//! Rendering writes into a `String`, which cannot fail, so the results of
//! `writeln!` are ignored.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// Status codes are counted in a flat array indexed by `code - 100`.
const STATUS_SLOTS: usize = 500;

/// A counter with a `status` label.
#[derive(Debug)]
pub struct StatusCounter {
    slots: Box<[AtomicU64]>,
}

impl StatusCounter {
    fn new() -> Self {
        Self {
            slots: (0..STATUS_SLOTS).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// Counts one response with `status`.
    pub fn inc(&self, status: u16) {
        if let Some(slot) = usize::from(status)
            .checked_sub(100)
            .and_then(|i| self.slots.get(i))
        {
            slot.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        for (i, slot) in self.slots.iter().enumerate() {
            let n = slot.load(Ordering::Relaxed);
            if n > 0 {
                let _ = writeln!(out, "{name}{{status=\"{}\"}} {n}", i + 100);
            }
        }
        out.push('\n');
    }
}

/// A summary reduced to its sum (in seconds) and count.
#[derive(Debug, Default)]
pub struct Summary {
    nanos: AtomicU64,
    count: AtomicU64,
}

impl Summary {
    /// Records one observation that started at `start`.
    pub fn observe_since(&self, start: Instant) {
        let n = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.nanos.fetch_add(n, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let secs = self.nanos.load(Ordering::Relaxed) as f64 / 1e9;
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} summary\n{name}_sum {secs}\n{name}_count {}\n",
            self.count.load(Ordering::Relaxed)
        );
    }
}

/// A plain counter.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds one.
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}\n",
            self.0.load(Ordering::Relaxed)
        );
    }
}

/// All of the proxy's metrics.
#[derive(Debug)]
pub struct Metrics {
    /// Whether a metrics server runs (timers are skipped otherwise).
    pub enabled: bool,
    /// `GET /api/routes` listings.
    pub api_route_get: Counter,
    /// `POST /api/routes/...`.
    pub api_route_add: Counter,
    /// `DELETE /api/routes/...` (found or not).
    pub api_route_delete: Counter,
    /// Route lookups.
    pub find_target_for_req: Summary,
    /// Activity updates.
    pub last_activity_updating: Summary,
    /// Websocket upgrade requests.
    pub requests_ws: Counter,
    /// Plain HTTP requests.
    pub requests_web: Counter,
    /// Proxied responses and proxy errors by status.
    pub requests_proxy: StatusCounter,
    /// API responses by status.
    pub requests_api: StatusCounter,
    start_unix: f64,
}

impl Metrics {
    /// Fresh metrics; `enabled` turns the timers on.
    pub fn new(enabled: bool) -> Self {
        Self {
            enabled,
            api_route_get: Counter::default(),
            api_route_add: Counter::default(),
            api_route_delete: Counter::default(),
            find_target_for_req: Summary::default(),
            last_activity_updating: Summary::default(),
            requests_ws: Counter::default(),
            requests_web: Counter::default(),
            requests_proxy: StatusCounter::new(),
            requests_api: StatusCounter::new(),
            start_unix: crate::routes::now_ms() as f64 / 1000.0,
        }
    }

    /// A start time for a timer, when timers are on.
    pub fn timer(&self) -> Option<Instant> {
        self.enabled.then(Instant::now)
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        process_metrics(&mut out, self.start_unix);
        self.api_route_get
            .render(&mut out, "api_route_get", "Count of API route get requests");
        self.api_route_add
            .render(&mut out, "api_route_add", "Count of API route add requests");
        self.api_route_delete.render(
            &mut out,
            "api_route_delete",
            "Count of API route delete requests",
        );
        self.find_target_for_req.render(
            &mut out,
            "find_target_for_req",
            "Summary of find target requests",
        );
        self.last_activity_updating.render(
            &mut out,
            "last_activity_updating",
            "Summary of last activity updating requests",
        );
        self.requests_ws
            .render(&mut out, "requests_ws", "Count of websocket requests");
        self.requests_web
            .render(&mut out, "requests_web", "Count of web requests");
        self.requests_proxy
            .render(&mut out, "requests_proxy", "Count of proxy requests");
        self.requests_api
            .render(&mut out, "requests_api", "Count of API requests");
        out
    }
}

/// Standard process metrics from `/proc/self`.
fn process_metrics(out: &mut String, start_unix: f64) {
    // Clock ticks per second are 100 on every Linux configuration in use.
    const TICKS: f64 = 100.0;
    if let Ok(stat) = std::fs::read_to_string("/proc/self/stat") {
        // Fields after the parenthesized command name; utime and stime
        // are fields 14 and 15 (index 11 and 12 after the name).
        if let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) {
            let f: Vec<&str> = rest.split_whitespace().collect();
            let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
            let (user, sys) = (ticks(11) / TICKS, ticks(12) / TICKS);
            let _ = writeln!(
                out,
                "# HELP process_cpu_user_seconds_total Total user CPU time spent in seconds.\n\
                 # TYPE process_cpu_user_seconds_total counter\n\
                 process_cpu_user_seconds_total {user}\n\n\
                 # HELP process_cpu_system_seconds_total Total system CPU time spent in seconds.\n\
                 # TYPE process_cpu_system_seconds_total counter\n\
                 process_cpu_system_seconds_total {sys}\n\n\
                 # HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.\n\
                 # TYPE process_cpu_seconds_total counter\n\
                 process_cpu_seconds_total {}\n",
                user + sys
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP process_start_time_seconds Start time of the process since unix epoch in seconds.\n\
         # TYPE process_start_time_seconds gauge\n\
         process_start_time_seconds {}\n",
        start_unix.floor()
    );
    if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
        let kb = |key: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
                * 1024
        };
        let _ = writeln!(
            out,
            "# HELP process_resident_memory_bytes Resident memory size in bytes.\n\
             # TYPE process_resident_memory_bytes gauge\n\
             process_resident_memory_bytes {}\n\n\
             # HELP process_virtual_memory_bytes Virtual memory size in bytes.\n\
             # TYPE process_virtual_memory_bytes gauge\n\
             process_virtual_memory_bytes {}\n",
            kb("VmRSS:"),
            kb("VmSize:")
        );
    }
    if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
        let _ = writeln!(
            out,
            "# HELP process_open_fds Number of open file descriptors.\n\
             # TYPE process_open_fds gauge\n\
             process_open_fds {}\n",
            dir.count()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_chp_names() {
        let m = Metrics::new(true);
        m.requests_proxy.inc(200);
        m.requests_proxy.inc(200);
        m.requests_proxy.inc(503);
        m.requests_api.inc(201);
        m.requests_web.inc();
        m.find_target_for_req.observe_since(Instant::now());
        let text = m.render();
        for needle in [
            "requests_proxy{status=\"200\"} 2",
            "requests_proxy{status=\"503\"} 1",
            "requests_api{status=\"201\"} 1",
            "requests_web 1",
            "requests_ws 0",
            "api_route_get 0",
            "api_route_add 0",
            "api_route_delete 0",
            "find_target_for_req_count 1",
            "last_activity_updating_count 0",
            "process_resident_memory_bytes",
        ] {
            assert!(text.contains(needle), "missing {needle} in\n{text}");
        }
    }
}
