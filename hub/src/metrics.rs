//! Prometheus metrics, in the text exposition format: request counts and
//! durations (kept here), and gauges read from the database at scrape
//! time.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

/// Request counters.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, u16), (u64, f64)>>,
}

impl Metrics {
    /// Counts one request.
    pub fn observe(&self, method: &str, status: u16, took: Duration) {
        if let Ok(mut m) = self.requests.lock() {
            let e = m.entry((method.to_owned(), status)).or_default();
            e.0 += 1;
            e.1 += took.as_secs_f64();
        }
    }

    /// The exposition text, with the given gauges.
    pub fn render(&self, total_users: i64, running_servers: i64) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = writeln!(out, "# HELP jupyterhub_total_users Total number of users");
        let _ = writeln!(out, "# TYPE jupyterhub_total_users gauge");
        let _ = writeln!(out, "jupyterhub_total_users {total_users}");
        let _ = writeln!(
            out,
            "# HELP jupyterhub_running_servers The number of user servers currently running"
        );
        let _ = writeln!(out, "# TYPE jupyterhub_running_servers gauge");
        let _ = writeln!(out, "jupyterhub_running_servers {running_servers}");
        let _ = writeln!(
            out,
            "# HELP jhub_http_requests_total HTTP requests answered by the hub"
        );
        let _ = writeln!(out, "# TYPE jhub_http_requests_total counter");
        let snapshot = self.requests.lock().map(|m| m.clone()).unwrap_or_default();
        for ((method, code), (n, _)) in &snapshot {
            let _ = writeln!(
                out,
                "jhub_http_requests_total{{method=\"{method}\",code=\"{code}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP jhub_http_request_duration_seconds Time spent answering HTTP requests"
        );
        let _ = writeln!(out, "# TYPE jhub_http_request_duration_seconds summary");
        for ((method, code), (n, secs)) in &snapshot {
            let _ = writeln!(
                out,
                "jhub_http_request_duration_seconds_sum{{method=\"{method}\",code=\"{code}\"}} {secs}"
            );
            let _ = writeln!(
                out,
                "jhub_http_request_duration_seconds_count{{method=\"{method}\",code=\"{code}\"}} {n}"
            );
        }
        out
    }
}
