//! Command-line flags: the configurable-http-proxy 5.3 flag set, with the
//! same spellings and defaults, plus a few flags of our own
//! (`--routes-file`, `--max-connections`, `--no-seccomp`).
//!
//! [`Cli`] is what clap parses; [`Cli::into_config`] validates it into a
//! [`Config`], refusing flags that cannot be honoured with a message that
//! names the flag (never ignoring them silently).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

/// An HTTP and websocket proxy with the configurable-http-proxy REST API.
#[derive(Debug, Parser)]
#[command(name = "jhub-proxy", version, about)]
pub struct Cli {
    /// Public-facing IP of the proxy (all interfaces when empty or `*`).
    #[arg(long, value_name = "ip-address")]
    pub ip: Option<String>,
    /// Public-facing port of the proxy.
    #[arg(long, value_name = "n", default_value_t = 8000)]
    pub port: u16,
    /// Path to a UNIX domain socket for the proxy to listen on.
    #[arg(long, value_name = "path", conflicts_with_all = ["ip"])]
    pub socket: Option<PathBuf>,
    /// TLS key (PEM) for the public side.
    #[arg(long, value_name = "keyfile")]
    pub ssl_key: Option<PathBuf>,
    /// TLS certificate chain (PEM) for the public side.
    #[arg(long, value_name = "certfile")]
    pub ssl_cert: Option<PathBuf>,
    /// CA (PEM) used to verify client certificates on the public side.
    #[arg(long, value_name = "ca-file")]
    pub ssl_ca: Option<PathBuf>,
    /// Request client certificates on the public side.
    #[arg(long)]
    pub ssl_request_cert: bool,
    /// Reject clients without a valid certificate (with --ssl-request-cert).
    #[arg(long)]
    pub ssl_reject_unauthorized: bool,
    /// Restrict TLS to one protocol version: TLSv1_2 or TLSv1_3 (TLS and
    /// SSLv23 mean both).
    #[arg(long, value_name = "ssl-protocol")]
    pub ssl_protocol: Option<String>,
    /// OpenSSL cipher list (not supported: rustls has a fixed safe list).
    #[arg(long, value_name = "ciphers")]
    pub ssl_ciphers: Option<String>,
    /// Allow RC4 (not supported).
    #[arg(long)]
    pub ssl_allow_rc4: bool,
    /// Diffie-Hellman parameters file (not supported: no finite-field DH).
    #[arg(long, value_name = "dhparam-file")]
    pub ssl_dhparam: Option<PathBuf>,
    /// Inward-facing IP for API requests.
    #[arg(long, value_name = "ip", default_value = "localhost")]
    pub api_ip: String,
    /// Inward-facing port for API requests (defaults to --port + 1).
    #[arg(long, value_name = "n")]
    pub api_port: Option<u16>,
    /// Path to a UNIX domain socket for the API.
    #[arg(long, value_name = "path")]
    pub api_socket: Option<PathBuf>,
    /// TLS key (PEM) for the API.
    #[arg(long, value_name = "keyfile")]
    pub api_ssl_key: Option<PathBuf>,
    /// TLS certificate (PEM) for the API.
    #[arg(long, value_name = "certfile")]
    pub api_ssl_cert: Option<PathBuf>,
    /// CA (PEM) used to verify API client certificates.
    #[arg(long, value_name = "ca-file")]
    pub api_ssl_ca: Option<PathBuf>,
    /// Request client certificates on the API.
    #[arg(long)]
    pub api_ssl_request_cert: bool,
    /// Reject API clients without a valid certificate.
    #[arg(long)]
    pub api_ssl_reject_unauthorized: bool,
    /// Client key (PEM) presented to https targets.
    #[arg(long, value_name = "keyfile")]
    pub client_ssl_key: Option<PathBuf>,
    /// Client certificate (PEM) presented to https targets.
    #[arg(long, value_name = "certfile")]
    pub client_ssl_cert: Option<PathBuf>,
    /// CA (PEM) trusted for https targets (instead of the built-in roots).
    #[arg(long, value_name = "ca-file")]
    pub client_ssl_ca: Option<PathBuf>,
    /// Accepted for compatibility; it has no effect on outgoing
    /// connections (nor does it in configurable-http-proxy).
    #[arg(long)]
    pub client_ssl_request_cert: bool,
    /// Accepted for compatibility; targets' certificates are always
    /// verified unless --insecure (as in configurable-http-proxy).
    #[arg(long)]
    pub client_ssl_reject_unauthorized: bool,
    /// Default proxy target (proto://host[:port]), the route `/`.
    #[arg(long, value_name = "host")]
    pub default_target: Option<String>,
    /// Server asked for error pages: GET {target}/{code}?url={path}.
    #[arg(long, value_name = "host")]
    pub error_target: Option<String>,
    /// Directory of error pages: {code}.html, else error.html.
    #[arg(long, value_name = "path")]
    pub error_path: Option<PathBuf>,
    /// Redirect HTTP requests on this port to the HTTPS proxy.
    #[arg(long, value_name = "redirect-port")]
    pub redirect_port: Option<u16>,
    /// The port HTTP requests are redirected to (defaults to --port).
    #[arg(long, value_name = "port")]
    pub redirect_to: Option<u16>,
    /// Write our PID to this file (removed at exit).
    #[arg(long, value_name = "pid-file")]
    pub pid_file: Option<PathBuf>,
    /// Don't add X-Forwarded-* headers to proxied requests.
    #[arg(long)]
    pub no_x_forward: bool,
    /// Don't prepend the target's path to proxied requests.
    #[arg(long)]
    pub no_prepend_path: bool,
    /// Don't include the routing prefix in proxied requests.
    #[arg(long)]
    pub no_include_prefix: bool,
    /// Rewrite the Location host/port in redirect responses.
    #[arg(long)]
    pub auto_rewrite: bool,
    /// Set the Host header of proxied requests to the target's.
    #[arg(long)]
    pub change_origin: bool,
    /// Rewrite the Location protocol in redirect responses.
    #[arg(long, value_name = "proto")]
    pub protocol_rewrite: Option<String>,
    /// Header added to proxied requests, `Name: value` (repeatable).
    #[arg(long, value_name = "header")]
    pub custom_header: Vec<String>,
    /// Don't verify the certificates of https targets.
    #[arg(long)]
    pub insecure: bool,
    /// Use the Host as the first level of the routing path.
    #[arg(long)]
    pub host_routing: bool,
    /// IP of the metrics server (all interfaces when empty).
    #[arg(long, value_name = "ip", default_value = "")]
    pub metrics_ip: String,
    /// Port of the metrics server; no metrics server without it.
    #[arg(long, value_name = "n")]
    pub metrics_port: Option<u16>,
    /// Path to a UNIX domain socket for the metrics server.
    #[arg(long, value_name = "path")]
    pub metrics_socket: Option<PathBuf>,
    /// Log level: debug, info, warn or error.
    #[arg(long, value_name = "loglevel", default_value = "info")]
    pub log_level: String,
    /// Milliseconds a proxied request may stay idle before the client
    /// connection is dropped.
    #[arg(long, value_name = "n")]
    pub timeout: Option<u64>,
    /// Milliseconds to wait for a target's response before answering 503.
    #[arg(long, value_name = "n")]
    pub proxy_timeout: Option<u64>,
    /// External storage class (only the in-memory store exists here; see
    /// --routes-file for persistence).
    #[arg(long, value_name = "storage-class")]
    pub storage_backend: Option<String>,
    /// Milliseconds an idle keep-alive client connection is kept open.
    #[arg(long, value_name = "timeout")]
    pub keep_alive_timeout: Option<u64>,
    /// Save the routing table to this file on every change (atomically)
    /// and load it at start.
    #[arg(long, value_name = "path")]
    pub routes_file: Option<PathBuf>,
    /// Most client connections open at once on the public port; more are
    /// closed as soon as they are accepted.
    #[arg(long, value_name = "n", default_value_t = 10_000)]
    pub max_connections: usize,
    /// Don't install the seccomp filter (for debugging).
    #[arg(long)]
    pub no_seccomp: bool,
    /// Threads serving connections (default: half the CPUs, 1 to 4).
    #[arg(long, value_name = "n")]
    pub worker_threads: Option<usize>,
}

/// Where a server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenAddr {
    /// A TCP address.
    Tcp(SocketAddr),
    /// A UNIX domain socket path.
    Unix(PathBuf),
}

impl std::fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ListenAddr::Tcp(a) => write!(f, "{a}"),
            ListenAddr::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// PEM files for one TLS server.
#[derive(Debug, Clone, Default)]
pub struct TlsFiles {
    /// Private key.
    pub key: Option<PathBuf>,
    /// Certificate chain.
    pub cert: Option<PathBuf>,
    /// CA for client certificates.
    pub ca: Option<PathBuf>,
    /// Ask clients for a certificate.
    pub request_cert: bool,
    /// Refuse clients without a valid one.
    pub reject_unauthorized: bool,
    /// Allowed protocol versions (`None`: 1.2 and 1.3).
    pub protocol: Option<TlsVersion>,
}

/// A single allowed TLS version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsVersion {
    /// TLS 1.2 only.
    Tls12,
    /// TLS 1.3 only.
    Tls13,
}

/// Log verbosity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    /// Everything.
    Debug,
    /// The default.
    Info,
    /// Warnings and errors.
    Warn,
    /// Errors only.
    Error,
}

/// The validated configuration the proxy runs with.
#[derive(Debug, Clone)]
pub struct Config {
    /// Public listener.
    pub listen: ListenAddr,
    /// API listener.
    pub api_listen: ListenAddr,
    /// Metrics listener, when metrics are on.
    pub metrics_listen: Option<ListenAddr>,
    /// HTTP-to-HTTPS redirect listener and the port it redirects to.
    pub redirect: Option<(SocketAddr, u16)>,
    /// Public TLS, when on.
    pub tls: Option<TlsFiles>,
    /// API TLS, when on.
    pub api_tls: Option<TlsFiles>,
    /// Client certificate and CA for https targets.
    pub client_tls: TlsFiles,
    /// Skip verifying https targets.
    pub insecure: bool,
    /// The default target (route `/`).
    pub default_target: Option<String>,
    /// Error page server, with a trailing `/`.
    pub error_target: Option<String>,
    /// Error page directory (`None`: the built-in pages).
    pub error_path: Option<PathBuf>,
    /// PID file.
    pub pid_file: Option<PathBuf>,
    /// Add X-Forwarded-*.
    pub x_forward: bool,
    /// Prepend the target path.
    pub prepend_path: bool,
    /// Keep the route prefix in the forwarded path.
    pub include_prefix: bool,
    /// Rewrite redirect Location hosts.
    pub auto_rewrite: bool,
    /// Host header from the target.
    pub change_origin: bool,
    /// Rewrite redirect Location protocols to this (e.g. `https`).
    pub protocol_rewrite: Option<String>,
    /// Headers added to every proxied request, in flag order.
    pub custom_headers: Vec<(String, String)>,
    /// Host routing.
    pub host_routing: bool,
    /// Log level.
    pub log_level: LogLevel,
    /// See [`Cli::timeout`].
    pub timeout: Option<Duration>,
    /// See [`Cli::proxy_timeout`].
    pub proxy_timeout: Option<Duration>,
    /// Idle keep-alive timeout for client connections.
    pub keep_alive_timeout: Duration,
    /// Routes file.
    pub routes_file: Option<PathBuf>,
    /// Connection cap on the public listener.
    pub max_connections: usize,
    /// Install the seccomp filter.
    pub seccomp: bool,
    /// Runtime worker threads.
    pub worker_threads: usize,
}

/// A flag that cannot be used, with the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

fn err<T>(msg: impl Into<String>) -> Result<T, ConfigError> {
    Err(ConfigError(msg.into()))
}

/// Resolves a listen IP as the reference's server does: empty or `*`
/// means every interface (IPv6 and IPv4), names are resolved, IPv4
/// preferred.
fn resolve_ip(flag: &str, ip: &str, port: u16) -> Result<SocketAddr, ConfigError> {
    let ip = ip.trim();
    if ip.is_empty() || ip == "*" {
        return Ok(SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port));
    }
    let bare = ip.trim_start_matches('[').trim_end_matches(']');
    if let Ok(addr) = bare.parse::<IpAddr>() {
        return Ok(SocketAddr::new(addr, port));
    }
    if ip == "localhost" {
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
    }
    let addrs: Vec<SocketAddr> = (ip, port)
        .to_socket_addrs()
        .map_err(|e| ConfigError(format!("--{flag} {ip}: cannot resolve: {e}")))?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or_else(|| addrs.first())
        .copied()
        .ok_or_else(|| ConfigError(format!("--{flag} {ip}: no address")))
}

/// Parses one `--custom-header` value: `Name: value`, both trimmed.
pub fn parse_custom_header(text: &str) -> Result<(String, String), ConfigError> {
    let text = text.trim();
    match text.find(':') {
        Some(colon) if colon > 0 => {
            let name = text[..colon].trim().to_owned();
            let value = text[colon + 1..].trim().to_owned();
            if http::HeaderName::from_bytes(name.as_bytes()).is_err()
                || http::HeaderValue::from_str(&value).is_err()
            {
                return err(format!("invalid custom header: {text}"));
            }
            Ok((name, value))
        }
        _ => err(format!("A colon was expected in custom header: {text}")),
    }
}

fn parse_log_level(text: &str) -> Result<LogLevel, ConfigError> {
    match text.to_ascii_lowercase().as_str() {
        "debug" | "silly" | "verbose" | "trace" => Ok(LogLevel::Debug),
        "info" | "http" => Ok(LogLevel::Info),
        "warn" | "warning" => Ok(LogLevel::Warn),
        "error" | "critical" => Ok(LogLevel::Error),
        other => err(format!(
            "--log-level {other}: expected debug, info, warn or error"
        )),
    }
}

fn parse_tls_protocol(text: &str) -> Result<Option<TlsVersion>, ConfigError> {
    match text {
        "TLS" | "SSLv23" | "TLS_method" => Ok(None),
        "TLSv1_2" => Ok(Some(TlsVersion::Tls12)),
        "TLSv1_3" => Ok(Some(TlsVersion::Tls13)),
        other => err(format!(
            "--ssl-protocol {other} is not supported: only TLSv1_2, TLSv1_3 \
             (or TLS / SSLv23 for both) are available"
        )),
    }
}

/// Checks that a `--default-target` or `--error-target` is an http(s) URL.
fn check_target_url(flag: &str, text: &str) -> Result<(), ConfigError> {
    match url::Url::parse(text) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => Ok(()),
        Ok(u) => err(format!(
            "--{flag} {text}: unsupported protocol {}: (http and https are supported)",
            u.scheme()
        )),
        Err(e) => err(format!("--{flag} {text}: {e}")),
    }
}

impl Cli {
    /// Validates the flags into a [`Config`].
    pub fn into_config(self) -> Result<Config, ConfigError> {
        if let Some(backend) = &self.storage_backend {
            return err(format!(
                "--storage-backend {backend} is not supported: routes are kept in memory; \
                 use --routes-file PATH to keep them across restarts"
            ));
        }
        if self.ssl_ciphers.is_some() {
            return err(
                "--ssl-ciphers is not supported: TLS uses rustls's built-in list of \
                 modern AEAD cipher suites",
            );
        }
        if self.ssl_allow_rc4 {
            return err("--ssl-allow-rc4 is not supported: RC4 is never offered");
        }
        if self.ssl_dhparam.is_some() {
            return err(
                "--ssl-dhparam is not supported: only elliptic-curve key exchange is offered",
            );
        }
        if self.error_target.is_some() && self.error_path.is_some() {
            return err("Cannot specify both error-target and error-path. Pick one.");
        }
        if self.max_connections == 0 {
            return err("--max-connections must be at least 1");
        }
        let protocol = self
            .ssl_protocol
            .as_deref()
            .map(parse_tls_protocol)
            .transpose()?
            .flatten();
        let listen = match (&self.socket, &self.ip) {
            (Some(path), _) => ListenAddr::Unix(path.clone()),
            (None, ip) => {
                ListenAddr::Tcp(resolve_ip("ip", ip.as_deref().unwrap_or(""), self.port)?)
            }
        };
        let api_listen = match &self.api_socket {
            Some(path) => ListenAddr::Unix(path.clone()),
            None => {
                let port = match self.api_port {
                    Some(p) => p,
                    None if self.socket.is_some() => 8001,
                    None => self.port.checked_add(1).ok_or_else(|| {
                        ConfigError("--api-port: --port + 1 is out of range".to_owned())
                    })?,
                };
                ListenAddr::Tcp(resolve_ip("api-ip", &self.api_ip, port)?)
            }
        };
        let metrics_listen = match (&self.metrics_socket, self.metrics_port) {
            (Some(path), _) => Some(ListenAddr::Unix(path.clone())),
            (None, Some(port)) => Some(ListenAddr::Tcp(resolve_ip(
                "metrics-ip",
                &self.metrics_ip,
                port,
            )?)),
            (None, None) => None,
        };
        let tls = if self.ssl_key.is_some() || self.ssl_cert.is_some() {
            if self.ssl_key.is_none() || self.ssl_cert.is_none() {
                return err("--ssl-key and --ssl-cert must be given together");
            }
            Some(TlsFiles {
                key: self.ssl_key.clone(),
                cert: self.ssl_cert.clone(),
                ca: self.ssl_ca.clone(),
                request_cert: self.ssl_request_cert,
                reject_unauthorized: self.ssl_reject_unauthorized,
                protocol,
            })
        } else {
            None
        };
        let api_tls = if self.api_ssl_key.is_some() || self.api_ssl_cert.is_some() {
            if self.api_ssl_key.is_none() || self.api_ssl_cert.is_none() {
                return err("--api-ssl-key and --api-ssl-cert must be given together");
            }
            Some(TlsFiles {
                key: self.api_ssl_key.clone(),
                cert: self.api_ssl_cert.clone(),
                ca: self.api_ssl_ca.clone(),
                request_cert: self.api_ssl_request_cert,
                reject_unauthorized: self.api_ssl_reject_unauthorized,
                protocol,
            })
        } else {
            None
        };
        if self.client_ssl_key.is_some() != self.client_ssl_cert.is_some() {
            return err("--client-ssl-key and --client-ssl-cert must be given together");
        }
        let client_tls = TlsFiles {
            key: self.client_ssl_key.clone(),
            cert: self.client_ssl_cert.clone(),
            ca: self.client_ssl_ca.clone(),
            request_cert: self.client_ssl_request_cert,
            reject_unauthorized: self.client_ssl_reject_unauthorized,
            protocol,
        };
        let redirect = match self.redirect_port {
            None => None,
            Some(_) if tls.is_none() => {
                return err("HTTPS redirection specified but certificates not provided.");
            }
            Some(rport) => {
                let to = self.redirect_to.unwrap_or(self.port);
                let ip = match &listen {
                    ListenAddr::Tcp(a) => a.ip(),
                    ListenAddr::Unix(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
                };
                Some((SocketAddr::new(ip, rport), to))
            }
        };
        if let Some(t) = &self.default_target {
            check_target_url("default-target", t)?;
        }
        let error_target = match &self.error_target {
            Some(t) => {
                check_target_url("error-target", t)?;
                Some(if t.ends_with('/') {
                    t.clone()
                } else {
                    format!("{t}/")
                })
            }
            None => None,
        };
        let custom_headers = self
            .custom_header
            .iter()
            .map(|h| parse_custom_header(h))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Config {
            listen,
            api_listen,
            metrics_listen,
            redirect,
            tls,
            api_tls,
            client_tls,
            insecure: self.insecure,
            default_target: self.default_target.clone(),
            error_target,
            error_path: self.error_path.clone(),
            pid_file: self.pid_file.clone(),
            x_forward: !self.no_x_forward,
            prepend_path: !self.no_prepend_path,
            include_prefix: !self.no_include_prefix,
            auto_rewrite: self.auto_rewrite,
            change_origin: self.change_origin,
            protocol_rewrite: self.protocol_rewrite.clone(),
            custom_headers,
            host_routing: self.host_routing,
            log_level: parse_log_level(&self.log_level)?,
            timeout: self.timeout.filter(|t| *t > 0).map(Duration::from_millis),
            proxy_timeout: self
                .proxy_timeout
                .filter(|t| *t > 0)
                .map(Duration::from_millis),
            keep_alive_timeout: Duration::from_millis(
                self.keep_alive_timeout.filter(|t| *t > 0).unwrap_or(5000),
            ),
            routes_file: self.routes_file.clone(),
            max_connections: self.max_connections,
            seccomp: !self.no_seccomp,
            worker_threads: match self.worker_threads {
                Some(0) => return err("--worker-threads must be at least 1"),
                Some(n) => n.min(64),
                // Half the CPUs: the proxy shares its machine with the hub,
                // the users' servers and (in benchmarks) the load generator;
                // measured on 2 CPUs, one thread beats two on both
                // throughput and tail latency.
                None => std::thread::available_parallelism()
                    .map(|n| n.get().div_ceil(2).clamp(1, 4))
                    .unwrap_or(1),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Config, String> {
        let cli = Cli::try_parse_from(std::iter::once("jhub-proxy").chain(args.iter().copied()))
            .map_err(|e| e.to_string())?;
        cli.into_config().map_err(|e| e.to_string())
    }

    #[test]
    fn jupyterhub_flag_set() {
        // Exactly what JupyterHub 6's ConfigurableHTTPProxy.start passes.
        let c = parse(&[
            "--ip",
            "127.0.0.1",
            "--port",
            "8000",
            "--api-ip",
            "127.0.0.1",
            "--api-port",
            "8001",
            "--error-target",
            "http://127.0.0.1:8081/hub/error",
            "--log-level",
            "info",
        ])
        .expect("parses");
        assert_eq!(
            c.listen,
            ListenAddr::Tcp("127.0.0.1:8000".parse().expect("addr"))
        );
        assert_eq!(
            c.api_listen,
            ListenAddr::Tcp("127.0.0.1:8001".parse().expect("addr"))
        );
        assert_eq!(
            c.error_target.as_deref(),
            Some("http://127.0.0.1:8081/hub/error/")
        );
        assert_eq!(c.log_level, LogLevel::Info);
        assert!(c.x_forward && c.prepend_path && c.include_prefix);
        assert!(c.metrics_listen.is_none());
        assert_eq!(c.keep_alive_timeout, Duration::from_millis(5000));
    }

    #[test]
    fn jupyterhub_optional_flags() {
        let c = parse(&[
            "--ip",
            "",
            "--port",
            "8000",
            "--api-ip",
            "127.0.0.1",
            "--api-port",
            "8001",
            "--error-target",
            "http://127.0.0.1:8081/hub/error",
            "--log-level",
            "debug",
            "--host-routing",
            "--api-ssl-key",
            "k.pem",
            "--api-ssl-cert",
            "c.pem",
            "--api-ssl-ca",
            "ca.pem",
            "--api-ssl-request-cert",
            "--api-ssl-reject-unauthorized",
            "--client-ssl-key",
            "ck.pem",
            "--client-ssl-cert",
            "cc.pem",
            "--client-ssl-ca",
            "cca.pem",
            "--client-ssl-request-cert",
            "--client-ssl-reject-unauthorized",
        ])
        .expect("parses");
        assert_eq!(
            c.listen,
            ListenAddr::Tcp("[::]:8000".parse().expect("addr"))
        );
        assert!(c.host_routing);
        assert_eq!(c.log_level, LogLevel::Debug);
        let api = c.api_tls.expect("api tls");
        assert!(api.request_cert && api.reject_unauthorized);
        assert_eq!(c.client_tls.ca, Some(PathBuf::from("cca.pem")));
    }

    #[test]
    fn defaults_and_equals_syntax() {
        let c = parse(&["--port=9000", "--default-target=http://127.0.0.1:8081"]).expect("ok");
        assert_eq!(
            c.listen,
            ListenAddr::Tcp("[::]:9000".parse().expect("addr"))
        );
        assert_eq!(
            c.api_listen,
            ListenAddr::Tcp("127.0.0.1:9001".parse().expect("addr"))
        );
        assert_eq!(c.default_target.as_deref(), Some("http://127.0.0.1:8081"));
    }

    #[test]
    fn negated_and_repeated_flags() {
        let c = parse(&[
            "--no-x-forward",
            "--no-prepend-path",
            "--no-include-prefix",
            "--custom-header",
            "X-One: 1",
            "--custom-header",
            " X-Two :two:2 ",
            "--timeout",
            "1500",
            "--proxy-timeout",
            "250",
            "--keep-alive-timeout",
            "100",
            "--metrics-port",
            "9100",
        ])
        .expect("ok");
        assert!(!c.x_forward && !c.prepend_path && !c.include_prefix);
        assert_eq!(
            c.custom_headers,
            vec![
                ("X-One".to_owned(), "1".to_owned()),
                ("X-Two".to_owned(), "two:2".to_owned())
            ]
        );
        assert_eq!(c.timeout, Some(Duration::from_millis(1500)));
        assert_eq!(c.proxy_timeout, Some(Duration::from_millis(250)));
        assert_eq!(c.keep_alive_timeout, Duration::from_millis(100));
        assert_eq!(
            c.metrics_listen,
            Some(ListenAddr::Tcp("[::]:9100".parse().expect("addr")))
        );
    }

    #[test]
    fn refuses_what_cannot_be_honoured() {
        for args in [
            &["--storage-backend", "x"][..],
            &["--ssl-allow-rc4"],
            &["--ssl-ciphers", "HIGH"],
            &["--ssl-dhparam", "dh.pem"],
            &["--error-target", "http://a", "--error-path", "/tmp"],
            &["--redirect-port", "80"],
            &["--custom-header", "nocolon"],
            &["--log-level", "loud"],
            &["--default-target", "ftp://x"],
            &[
                "--ssl-key",
                "k.pem",
                "--ssl-cert",
                "c.pem",
                "--ssl-protocol",
                "SSLv3",
            ],
        ] {
            assert!(parse(args).is_err(), "{args:?} should be refused");
        }
        let e = parse(&["--custom-header", "nocolon"]).expect_err("refused");
        assert!(e.contains("A colon was expected in custom header"), "{e}");
    }
}
