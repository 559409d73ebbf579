//! The hub's configuration: JupyterHub's traitlets in TOML.
//!
//! Sections stand for JupyterHub's configurable classes and keys keep the
//! traitlet names, so `c.JupyterHub.hub_bind_url = ...` becomes
//! `[hub] hub_bind_url = ...`. The sources, later ones winning:
//! built-in defaults, the file (`--config`, default
//! [`DEFAULT_CONFIG_PATH`]), then `--section.key=value` flags. Secrets come
//! from the file, a `*_file` key or JupyterHub's environment variables
//! (`CONFIGPROXY_AUTH_TOKEN`, `JPY_COOKIE_SECRET`), never from flags,
//! which other local users can read in `ps`.
//!
//! Loading is a pure function of the file's text, the environment (as a
//! lookup function) and the flags, so tests never touch the process
//! environment. Unknown keys and ill-typed values are errors that name the
//! key and say what was expected.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::names;
use crate::scopes;

/// Where the hub looks for its configuration when `--config` is not given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/jhub/jhub.toml";

/// The documented default configuration, every key commented out; printed
/// by `jhub --generate-config`.
pub const EXAMPLE: &str = include_str!("../jhub.example.toml");

/// A secret string: never shown by `Debug`.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself; only for the code that uses it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(\"…\")")
    }
}

/// The whole configuration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// `c.JupyterHub.*`.
    pub hub: HubConfig,
    /// `c.Authenticator.*` and the chosen authenticator's own keys.
    pub authenticator: AuthenticatorConfig,
    /// `c.Spawner.*` and `c.SudoSpawner.*`.
    pub spawner: SpawnerConfig,
    /// `c.ConfigurableHTTPProxy.*`.
    pub proxy: ProxyConfig,
    /// `c.JupyterHub.services`.
    pub services: Vec<ServiceConfig>,
    /// `c.JupyterHub.load_roles`.
    pub roles: Vec<RoleConfig>,
    /// The built-in idle culler.
    pub culler: CullerConfig,
}

/// Which authenticator checks logins.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthenticatorClass {
    /// System accounts through PAM.
    #[default]
    Pam,
    /// The hub's own accounts, with signup and approval.
    Native,
    /// Any name, one shared password: for tests only.
    Dummy,
}

/// Which spawner starts servers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SpawnerClass {
    /// Local processes as the user, through the `sudospawner` helper.
    #[default]
    Sudo,
}

/// `[hub]`: JupyterHub's own traitlets.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HubConfig {
    /// The public URL, served by the proxy.
    pub bind_url: String,
    /// Where the hub itself listens.
    pub hub_bind_url: String,
    /// How the proxy and servers reach the hub, if not `hub_bind_url`.
    pub hub_connect_url: Option<String>,
    /// The database: `sqlite:///abs/path`, `sqlite://relative/path`.
    pub db_url: String,
    /// Where the cookie secret is kept (generated on first start, 0600).
    pub cookie_secret_file: PathBuf,
    /// `pam`, `native` or `dummy`.
    pub authenticator_class: AuthenticatorClass,
    /// `sudo`.
    pub spawner_class: SpawnerClass,
    /// How many servers may be starting at once (0: no limit).
    pub concurrent_spawn_limit: u32,
    /// How many servers may run at once (0: no limit).
    pub active_server_limit: u32,
    /// Whether users may have named servers.
    pub allow_named_servers: bool,
    /// How many named servers a user may have (0: no limit).
    pub named_server_limit_per_user: u32,
    /// Page size of paginated API answers when the client gives none.
    pub api_page_default_limit: u32,
    /// The largest page an API client may ask for.
    pub api_page_max_limit: u32,
    /// The longest lifetime of an API-created token, in seconds (0: no
    /// limit).
    pub token_expires_in_max_seconds: u64,
    /// Activity of users and tokens is written at most this often, in
    /// seconds.
    pub activity_resolution: u64,
    /// Whether `/hub/metrics` needs a token with `read:metrics`.
    pub authenticate_prometheus: bool,
    /// How long a browser login lasts, in days.
    pub cookie_max_age_days: f64,
    /// Lifetime of the OAuth access tokens servers and services get for
    /// a browser, in seconds (unset: the login's, `cookie_max_age_days`).
    pub oauth_token_expires_in: Option<u64>,
}

impl Default for HubConfig {
    fn default() -> Self {
        Self {
            bind_url: "http://127.0.0.1:8000".into(),
            hub_bind_url: "http://127.0.0.1:8081".into(),
            hub_connect_url: None,
            db_url: "sqlite:///var/lib/jhub/jhub.sqlite".into(),
            cookie_secret_file: "/var/lib/jhub/cookie_secret".into(),
            authenticator_class: AuthenticatorClass::Pam,
            spawner_class: SpawnerClass::Sudo,
            concurrent_spawn_limit: 100,
            active_server_limit: 0,
            allow_named_servers: false,
            named_server_limit_per_user: 0,
            api_page_default_limit: 50,
            api_page_max_limit: 200,
            token_expires_in_max_seconds: 0,
            activity_resolution: 30,
            authenticate_prometheus: true,
            cookie_max_age_days: 14.0,
            oauth_token_expires_in: None,
        }
    }
}

/// `[authenticator]`: `c.Authenticator.*`, the dummy authenticator's
/// password, and `c.NativeAuthenticator.*` (same names and defaults).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthenticatorConfig {
    /// Users who are hub admins (created at start).
    pub admin_users: Vec<String>,
    /// Users allowed to log in (created at start).
    pub allowed_users: Vec<String>,
    /// Unix groups whose members may log in.
    pub allowed_groups: Vec<String>,
    /// The dummy authenticator's shared password.
    pub password: Option<Secret>,
    /// A file holding the dummy authenticator's password.
    pub password_file: Option<PathBuf>,
    /// Whether everyone who authenticates may log in (unset: JupyterHub's
    /// default for the class; see [`crate::auth::allow`]).
    pub allow_all: Option<bool>,
    /// Whether users already in the database may log in (unset: on when
    /// `allowed_users` is non-empty).
    pub allow_existing_users: Option<bool>,
    /// Users who may never log in.
    pub blocked_users: Vec<String>,
    /// PAM: the service name, i.e. the file under `/etc/pam.d/` that
    /// configures logins (`c.PAMAuthenticator.service`).
    pub service: String,
    /// Native: whether `/hub/signup` accepts new accounts.
    pub enable_signup: bool,
    /// Native: whether new accounts may log in without an admin's approval.
    pub open_signup: bool,
    /// Native: the fewest characters a password may have.
    pub minimum_password_length: u32,
    /// Native: whether passwords on the bundled list of common passwords
    /// are refused.
    pub check_common_password: bool,
    /// Native: failed logins after which an account is locked (0: never).
    pub allowed_failed_logins: u32,
    /// Native: how long a locked account stays locked, in seconds.
    pub seconds_before_next_try: u64,
    /// Native: whether the signup form asks for an email address.
    pub ask_email_on_signup: bool,
}

impl Default for AuthenticatorConfig {
    fn default() -> Self {
        Self {
            admin_users: Vec::new(),
            allowed_users: Vec::new(),
            allowed_groups: vec!["jupyterhub-users".into()],
            password: None,
            password_file: None,
            allow_all: None,
            allow_existing_users: None,
            blocked_users: Vec::new(),
            service: "login".into(),
            enable_signup: true,
            open_signup: false,
            minimum_password_length: 1,
            check_common_password: false,
            allowed_failed_logins: 0,
            seconds_before_next_try: 600,
            ask_email_on_signup: false,
        }
    }
}

/// `[spawner]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SpawnerConfig {
    /// The installed helper.
    pub sudospawner_path: PathBuf,
    /// The URL a server opens on.
    pub default_url: String,
    /// Seconds a server may take to start.
    pub start_timeout: u64,
    /// Seconds a started server may take to answer HTTP.
    pub http_timeout: u64,
    /// Extra flags for the server.
    pub args: Vec<String>,
    /// Seconds between polls of each running server.
    pub poll_interval: u64,
    /// An HTML form shown before a start; its fields become
    /// `user_options` (empty: no form).
    pub options_form: String,
}

impl Default for SpawnerConfig {
    fn default() -> Self {
        Self {
            sudospawner_path: "/usr/local/bin/sudospawner".into(),
            default_url: "/lab".into(),
            start_timeout: 60,
            http_timeout: 30,
            args: Vec::new(),
            poll_interval: 30,
            options_form: String::new(),
        }
    }
}

/// `[proxy]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProxyConfig {
    /// The proxy's REST API.
    pub api_url: String,
    /// Whether the hub starts the proxy.
    pub should_start: bool,
    /// The proxy's command line, when the hub starts it.
    pub command: Vec<String>,
    /// The proxy API token (else `auth_token_file`, else the
    /// `CONFIGPROXY_AUTH_TOKEN` environment variable).
    pub auth_token: Option<Secret>,
    /// A file holding the proxy API token.
    pub auth_token_file: Option<PathBuf>,
    /// Seconds between checks that the proxy runs and has every route.
    pub check_running_interval: u64,
    /// Where the hub keeps the pid of the proxy it started (default:
    /// `jhub-proxy.pid` beside the cookie secret).
    pub pid_file: Option<PathBuf>,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        Self {
            api_url: "http://127.0.0.1:8001".into(),
            should_start: true,
            command: vec!["jhub-proxy".into()],
            auth_token: None,
            auth_token_file: None,
            check_running_interval: 5,
            pid_file: None,
        }
    }
}

/// One `[[services]]` entry.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServiceConfig {
    /// The service's name.
    pub name: String,
    /// Its API token (or `api_token_file`).
    pub api_token: Option<Secret>,
    /// A file holding its API token.
    pub api_token_file: Option<PathBuf>,
    /// Where it listens, for services behind the proxy.
    pub url: Option<String>,
    /// Whether it has the admin role.
    pub admin: bool,
    /// Whether the home page lists it.
    pub display: Option<bool>,
    /// Free-form information shown in its model.
    pub info: serde_json::Map<String, serde_json::Value>,
    /// The command of a hub-managed service: the hub starts it (as its
    /// own user), restarts it when it dies and stops it when it stops.
    pub command: Vec<String>,
    /// More environment variables for a hub-managed service.
    pub environment: BTreeMap<String, String>,
    /// The working directory of a hub-managed service (default: the
    /// hub's).
    pub cwd: Option<PathBuf>,
    /// Its OAuth client id (default `service-NAME`; must start with
    /// `service-`).
    pub oauth_client_id: Option<String>,
    /// Where the hub sends its OAuth codes (default, with a `url`:
    /// `/services/NAME/oauth_callback`).
    pub oauth_redirect_uri: Option<String>,
    /// Whether users log in to it without the "Authorize access" page.
    pub oauth_no_confirm: bool,
    /// The most its OAuth tokens may carry, besides identifying the user
    /// and accessing the service.
    pub oauth_client_allowed_scopes: Vec<String>,
}

/// One `[[roles]]` entry. A member list that is given replaces the role's
/// members of that kind at start; one that is absent leaves them alone.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RoleConfig {
    /// The role's name.
    pub name: String,
    /// What it is for.
    pub description: Option<String>,
    /// Its raw scopes.
    pub scopes: Vec<String>,
    /// Users who have it.
    pub users: Option<Vec<String>>,
    /// Groups whose members have it.
    pub groups: Option<Vec<String>>,
    /// Services that have it.
    pub services: Option<Vec<String>>,
}

/// `[culler]`: the built-in idle culler.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CullerConfig {
    /// Whether it runs.
    pub enabled: bool,
    /// Seconds of inactivity after which a server is stopped.
    pub timeout: u64,
    /// Seconds between checks.
    pub cull_every: u64,
    /// Seconds after which a server is stopped even if active (0: never).
    pub max_age: u64,
    /// Whether idle users without a running server are deleted too.
    pub cull_users: bool,
    /// Whether `cull_users` deletes admins too.
    pub cull_admin_users: bool,
    /// Whether stopped named servers are removed.
    pub remove_named_servers: bool,
    /// How many servers are stopped at once.
    pub concurrency: u32,
}

impl Default for CullerConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            timeout: 3600,
            cull_every: 600,
            max_age: 0,
            cull_users: false,
            cull_admin_users: true,
            remove_named_servers: false,
            concurrency: 10,
        }
    }
}

/// Why the configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The explicitly named file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not TOML.
    #[error("config file {path}: {message}")]
    Syntax {
        /// The file.
        path: String,
        /// The parser's message.
        message: String,
    },
    /// A key is unknown or its value has the wrong form.
    #[error("config key {key}: {message}")]
    Key {
        /// `section.key`, or the section.
        key: String,
        /// What was wrong and what is expected.
        message: String,
    },
    /// A command-line override is malformed.
    #[error("flag {flag}: {message}")]
    Flag {
        /// The flag as given.
        flag: String,
        /// What was wrong.
        message: String,
    },
}

fn key_error(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Key {
        key: key.into(),
        message: message.into(),
    }
}

/// The sections that are tables of keys (and so may be set by flags).
const TABLE_SECTIONS: &[&str] = &["hub", "authenticator", "spawner", "proxy", "culler"];
/// Keys holding secrets, refused as flags.
const SECRET_KEYS: &[&str] = &["authenticator.password", "proxy.auth_token"];

/// One `--section.key=value` flag, split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Override {
    /// `section.key`.
    pub key: String,
    /// The value as written: a TOML value, or a bare string.
    pub value: String,
}

/// Splits `--section.key=value` and `--section.key value` flags out of
/// `args`; returns them and the remaining arguments.
pub fn split_overrides(args: Vec<String>) -> (Vec<Override>, Vec<String>) {
    let mut overrides = Vec::new();
    let mut rest = Vec::new();
    let mut iter = args.into_iter();
    while let Some(arg) = iter.next() {
        let Some(flag) = arg.strip_prefix("--") else {
            rest.push(arg);
            continue;
        };
        let (name, value) = match flag.split_once('=') {
            Some((n, v)) => (n.to_owned(), Some(v.to_owned())),
            None => (flag.to_owned(), None),
        };
        let is_key = name
            .split_once('.')
            .is_some_and(|(s, k)| !s.is_empty() && !k.is_empty());
        if !is_key {
            rest.push(arg);
            continue;
        }
        let value = match value {
            Some(v) => v,
            None => iter.next().unwrap_or_default(),
        };
        overrides.push(Override { key: name, value });
    }
    (overrides, rest)
}

fn parse_flag_value(value: &str) -> toml::Value {
    match toml::from_str::<toml::Table>(&format!("v = {value}")) {
        Ok(mut t) => t.remove("v").unwrap_or_else(|| value.into()),
        Err(_) => toml::Value::String(value.to_owned()),
    }
}

/// Environment lookup, so tests can pass a map instead of the process
/// environment.
pub trait Env {
    /// The variable's value, if set.
    fn var(&self, name: &str) -> Option<String>;
}

/// The process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl Env for BTreeMap<String, String> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).cloned()
    }
}

/// The secrets the hub resolved at start.
#[derive(Debug, Clone, Default)]
pub struct Secrets {
    /// The proxy API token, if any.
    pub proxy_auth_token: Option<Secret>,
    /// The cookie secret from `JPY_COOKIE_SECRET`, if set (hex).
    pub cookie_secret_env: Option<Secret>,
    /// The dummy authenticator's password.
    pub dummy_password: Option<Secret>,
    /// Each service's API token, by service name.
    pub service_tokens: BTreeMap<String, Secret>,
}

/// A loaded, validated configuration and its secrets.
#[derive(Debug, Clone, Default)]
pub struct Loaded {
    /// The configuration.
    pub config: Config,
    /// Secrets from keys, files and the environment.
    pub secrets: Secrets,
}

impl Config {
    /// Reads the configuration from `path` (the default path when `None`;
    /// a missing default file means all defaults), applies `overrides`,
    /// resolves secrets from `env` and validates the result.
    pub fn load(
        path: Option<&Path>,
        overrides: &[Override],
        env: &dyn Env,
    ) -> Result<Loaded, ConfigError> {
        let (text, shown) = match path {
            Some(p) => (
                std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                    path: p.to_owned(),
                    source,
                })?,
                p.display().to_string(),
            ),
            None => match std::fs::read_to_string(DEFAULT_CONFIG_PATH) {
                Ok(t) => (t, DEFAULT_CONFIG_PATH.to_owned()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    (String::new(), DEFAULT_CONFIG_PATH.to_owned())
                }
                Err(source) => {
                    return Err(ConfigError::Read {
                        path: DEFAULT_CONFIG_PATH.into(),
                        source,
                    });
                }
            },
        };
        Self::from_text(&text, &shown, overrides, env)
    }

    /// [`Config::load`] on the file's text.
    pub fn from_text(
        text: &str,
        shown: &str,
        overrides: &[Override],
        env: &dyn Env,
    ) -> Result<Loaded, ConfigError> {
        let mut table: toml::Table = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            path: shown.to_owned(),
            message: e.to_string(),
        })?;
        for o in overrides {
            let flag = format!("--{}={}", o.key, o.value);
            let (section, key) = o.key.split_once('.').unwrap_or((&o.key, ""));
            if !TABLE_SECTIONS.contains(&section) {
                return Err(ConfigError::Flag {
                    flag,
                    message: format!(
                        "unknown section `{section}`; flags set keys of {}",
                        TABLE_SECTIONS.join(", ")
                    ),
                });
            }
            if SECRET_KEYS.contains(&o.key.as_str()) {
                return Err(ConfigError::Flag {
                    flag: format!("--{}", o.key),
                    message: "secrets are not accepted on the command line (other users can \
                              read it); set them in the file, a *_file key or the environment"
                        .into(),
                });
            }
            let entry = table
                .entry(section.to_owned())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            let toml::Value::Table(t) = entry else {
                return Err(key_error(section, "must be a table"));
            };
            t.insert(key.to_owned(), parse_flag_value(&o.value));
        }
        let config = Self::from_table(table)?;
        let secrets = config.resolve_secrets(env)?;
        config.validate(&secrets)?;
        Ok(Loaded { config, secrets })
    }

    /// Deserializes section by section, so errors name the section and
    /// key.
    fn from_table(table: toml::Table) -> Result<Config, ConfigError> {
        fn section<T: for<'de> Deserialize<'de>>(
            name: &str,
            value: toml::Value,
        ) -> Result<T, ConfigError> {
            T::deserialize(value).map_err(|e| describe(name, &e.to_string()))
        }
        let mut config = Config::default();
        for (name, value) in table {
            match name.as_str() {
                "hub" => config.hub = section(&name, value)?,
                "authenticator" => config.authenticator = section(&name, value)?,
                "spawner" => config.spawner = section(&name, value)?,
                "proxy" => config.proxy = section(&name, value)?,
                "culler" => config.culler = section(&name, value)?,
                "services" | "roles" => {
                    let toml::Value::Array(items) = value else {
                        return Err(key_error(
                            &name,
                            format!("expected an array of tables ([[{name}]])"),
                        ));
                    };
                    for (i, item) in items.into_iter().enumerate() {
                        let at = format!("{name}[{i}]");
                        if name == "services" {
                            config.services.push(section(&at, item)?);
                        } else {
                            config.roles.push(section(&at, item)?);
                        }
                    }
                }
                other => {
                    return Err(key_error(
                        other,
                        "unknown section; expected one of hub, authenticator, spawner, proxy, \
                         services, roles, culler",
                    ));
                }
            }
        }
        Ok(config)
    }

    fn resolve_secrets(&self, env: &dyn Env) -> Result<Secrets, ConfigError> {
        let read = |key: &str, path: &Path| -> Result<Secret, ConfigError> {
            let text = std::fs::read_to_string(path)
                .map_err(|e| key_error(key, format!("cannot read {}: {e}", path.display())))?;
            Ok(Secret::new(text.trim()))
        };
        let proxy_auth_token = match (&self.proxy.auth_token, &self.proxy.auth_token_file) {
            (Some(t), _) => Some(t.clone()),
            (None, Some(p)) => Some(read("proxy.auth_token_file", p)?),
            (None, None) => env.var("CONFIGPROXY_AUTH_TOKEN").map(Secret::new),
        };
        let dummy_password = match (
            &self.authenticator.password,
            &self.authenticator.password_file,
        ) {
            (Some(p), _) => Some(p.clone()),
            (None, Some(f)) => Some(read("authenticator.password_file", f)?),
            (None, None) => None,
        };
        let mut service_tokens = BTreeMap::new();
        for (i, s) in self.services.iter().enumerate() {
            let token = match (&s.api_token, &s.api_token_file) {
                (Some(t), _) => Some(t.clone()),
                (None, Some(p)) => Some(read(&format!("services[{i}].api_token_file"), p)?),
                (None, None) => None,
            };
            if let Some(t) = token {
                service_tokens.insert(s.name.clone(), t);
            }
        }
        Ok(Secrets {
            proxy_auth_token,
            cookie_secret_env: env
                .var("JPY_COOKIE_SECRET")
                .filter(|s| !s.is_empty())
                .map(Secret::new),
            dummy_password,
            service_tokens,
        })
    }

    fn validate(&self, secrets: &Secrets) -> Result<(), ConfigError> {
        crate::db::DbUrl::parse(&self.hub.db_url).map_err(|m| key_error("hub.db_url", m))?;
        bind_addr(&self.hub.hub_bind_url).map_err(|m| key_error("hub.hub_bind_url", m))?;
        if self.hub.api_page_max_limit == 0 || self.hub.api_page_default_limit == 0 {
            return Err(key_error(
                "hub.api_page_max_limit",
                "page limits must be at least 1",
            ));
        }
        if self.hub.authenticator_class == AuthenticatorClass::Dummy
            && secrets
                .dummy_password
                .as_ref()
                .is_none_or(|p| p.0.is_empty())
        {
            return Err(key_error(
                "authenticator.password",
                "the dummy authenticator needs a password (authenticator.password or \
                 authenticator.password_file); it is for tests only",
            ));
        }
        let max_age = self.hub.cookie_max_age_days;
        if !max_age.is_finite() || max_age <= 0.0 || max_age > 3650.0 {
            return Err(key_error(
                "hub.cookie_max_age_days",
                "expected a number of days greater than 0 and at most 3650",
            ));
        }
        let service = &self.authenticator.service;
        if service.is_empty()
            || !service
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            || service.starts_with('.')
        {
            return Err(key_error(
                "authenticator.service",
                "expected a PAM service name (a file name under /etc/pam.d: ASCII letters, \
                 digits, '-', '_' and '.')",
            ));
        }
        for (key, list) in [
            ("authenticator.admin_users", &self.authenticator.admin_users),
            (
                "authenticator.allowed_users",
                &self.authenticator.allowed_users,
            ),
            (
                "authenticator.blocked_users",
                &self.authenticator.blocked_users,
            ),
        ] {
            for name in list {
                names::username(name).map_err(|e| key_error(key, e.to_string()))?;
            }
        }
        let mut service_names = std::collections::BTreeSet::new();
        for (i, s) in self.services.iter().enumerate() {
            let key = format!("services[{i}].name");
            if s.name.is_empty() {
                return Err(key_error(key, "every service needs a name"));
            }
            if !s
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            {
                return Err(key_error(
                    key,
                    "service names are ASCII letters, digits, '-', '_' and '.'",
                ));
            }
            if !service_names.insert(s.name.as_str()) {
                return Err(key_error(key, format!("service {} defined twice", s.name)));
            }
            if let Some(t) = secrets.service_tokens.get(&s.name) {
                if t.0.len() < 8 {
                    return Err(key_error(
                        format!("services[{i}].api_token"),
                        "tokens must be at least 8 characters",
                    ));
                }
            }
            // a hub-managed service without a token gets one at start
            let has_token = secrets.service_tokens.contains_key(&s.name) || !s.command.is_empty();
            crate::oauth::check_service_config(s, has_token)
                .map_err(|(k, m)| key_error(format!("services[{i}].{k}"), m))?;
            if s.command.first().is_some_and(|c| c.is_empty()) {
                return Err(key_error(
                    format!("services[{i}].command"),
                    "the first item is the program to run",
                ));
            }
            for (k, v) in &s.environment {
                if k.is_empty() || k.contains('=') || k.contains('\0') || v.contains('\0') {
                    return Err(key_error(
                        format!("services[{i}].environment"),
                        format!("{k:?} is not an environment variable name"),
                    ));
                }
            }
        }
        for (key, value) in [
            ("culler.timeout", self.culler.timeout),
            ("culler.cull_every", self.culler.cull_every),
            ("culler.concurrency", u64::from(self.culler.concurrency)),
        ] {
            if value == 0 {
                return Err(key_error(key, "expected a number above 0"));
            }
        }
        if self
            .hub
            .oauth_token_expires_in
            .is_some_and(|s| s == 0 || s > MAX_OAUTH_TOKEN_SECS)
        {
            return Err(key_error(
                "hub.oauth_token_expires_in",
                format!("expected a number of seconds from 1 to {MAX_OAUTH_TOKEN_SECS}"),
            ));
        }
        for (i, r) in self.roles.iter().enumerate() {
            let key = format!("roles[{i}]");
            validate_role_name(&r.name).map_err(|m| key_error(format!("{key}.name"), m))?;
            if r.name == "admin" && (r.description.is_some() || !r.scopes.is_empty()) {
                return Err(key_error(
                    format!("{key}.scopes"),
                    "the admin role's scopes and description cannot be changed",
                ));
            }
            scopes::check_exist(
                r.scopes.iter().map(String::as_str),
                &format!("role {}", r.name),
            )
            .map_err(|m| key_error(format!("{key}.scopes"), m))?;
            for svc in r.services.iter().flatten() {
                if !service_names.contains(svc.as_str()) {
                    return Err(key_error(
                        format!("{key}.services"),
                        format!("undefined service {svc}: define it first in [[services]]"),
                    ));
                }
            }
            for u in r.users.iter().flatten() {
                names::username(u).map_err(|e| key_error(format!("{key}.users"), e.to_string()))?;
            }
        }
        Ok(())
    }
}

/// The longest `hub.oauth_token_expires_in`: ten years.
const MAX_OAUTH_TOKEN_SECS: u64 = 10 * 365 * 86_400;

/// Role names as JupyterHub allows them: 3-255 characters, lowercase ASCII
/// letters, digits and `-._~`, starting with a letter and ending with a
/// letter or digit.
pub fn validate_role_name(name: &str) -> Result<(), String> {
    let b = name.as_bytes();
    let ok = (3..=255).contains(&b.len())
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"-_~.".contains(c))
        && b.last()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid role name {name:?}: role names are 3-255 characters of lowercase ASCII \
             letters, digits and '-._~', starting with a letter, ending with a letter or digit"
        ))
    }
}

/// The socket address in an `http://HOST:PORT` URL.
pub fn bind_addr(url: &str) -> Result<std::net::SocketAddr, String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{url:?}: expected http://HOST:PORT"))?;
    let hostport = rest.split('/').next().unwrap_or_default();
    use std::net::ToSocketAddrs;
    hostport
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| format!("{url:?}: expected http://HOST:PORT with an IP address and port"))
}

/// Rewords serde's messages to name the key.
fn describe(section: &str, message: &str) -> ConfigError {
    let message = message.trim().replace('\n', " ");
    // serde: "unknown field `x`, expected one of `a`, `b`"
    if let Some(rest) = message.strip_prefix("unknown field `") {
        if let Some((field, expected)) = rest.split_once('`') {
            return key_error(
                format!("{section}.{field}"),
                format!("unknown key{expected}"),
            );
        }
    }
    key_error(section, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str, flags: &[&str]) -> Result<Loaded, ConfigError> {
        let (overrides, rest) = split_overrides(flags.iter().map(|s| s.to_string()).collect());
        assert!(rest.is_empty(), "{rest:?}");
        Config::from_text(text, "test.toml", &overrides, &BTreeMap::new())
    }

    #[test]
    fn defaults() {
        let c = load("", &[]).unwrap().config;
        assert_eq!(c.hub.hub_bind_url, "http://127.0.0.1:8081");
        assert_eq!(c.hub.db_url, "sqlite:///var/lib/jhub/jhub.sqlite");
        assert_eq!(c.hub.authenticator_class, AuthenticatorClass::Pam);
        assert_eq!(c.authenticator.allowed_groups, ["jupyterhub-users"]);
        assert_eq!(c.proxy.api_url, "http://127.0.0.1:8001");
    }

    #[test]
    fn example_parses_with_every_key_uncommented() {
        assert!(load(EXAMPLE, &[]).is_ok());
        // Uncomment every `# key = value` line (and `# [[...]]` headers):
        // each documented key must be a real key.
        let mut text = String::new();
        for line in EXAMPLE.lines() {
            let t = line.trim_start();
            match t.strip_prefix("# ") {
                Some(rest)
                    if rest.starts_with("[[")
                        || rest.split_once(" = ").is_some_and(|(k, _)| {
                            // files named by *_file keys need not exist here
                            !k.ends_with("_file")
                                && k.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
                        }) =>
                {
                    text.push_str(rest)
                }
                _ => text.push_str(line),
            }
            text.push('\n');
        }
        let c = load(&text, &[])
            .unwrap_or_else(|e| panic!("{e}\n{text}"))
            .config;
        assert_eq!(c.hub.hub_bind_url, "http://127.0.0.1:8081");
        assert_eq!(c.services.len(), 1);
        assert_eq!(c.roles.len(), 1);
    }

    #[test]
    fn unknown_key_is_named() {
        let e = load("[hub]\nbogus_key = 1\n", &[]).unwrap_err().to_string();
        assert!(e.contains("hub.bogus_key"), "{e}");
        assert!(e.contains("hub_bind_url"), "{e}");
        let e = load("[nope]\nx = 1\n", &[]).unwrap_err().to_string();
        assert!(e.contains("nope"), "{e}");
        let e = load("[[services]]\nname = \"s\"\ntoken = \"x\"\n", &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("services[0].token"), "{e}");
    }

    #[test]
    fn bad_value_is_explained() {
        let e = load("[hub]\nconcurrent_spawn_limit = \"many\"\n", &[])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("concurrent_spawn_limit") || e.contains("hub"),
            "{e}"
        );
        assert!(e.contains("integer") || e.contains("u32"), "{e}");
        let e = load("[hub]\nauthenticator_class = \"ldap\"\n", &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("pam") && e.contains("dummy"), "{e}");
        let e = load("[hub]\nhub_bind_url = \"nowhere\"\n", &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("hub.hub_bind_url"), "{e}");
    }

    #[test]
    fn flags_override_file() {
        let c = load(
            "[hub]\nconcurrent_spawn_limit = 5\n",
            &[
                "--hub.concurrent_spawn_limit=7",
                "--hub.hub_bind_url=http://127.0.0.1:9999",
                "--hub.allow_named_servers",
                "true",
                "--authenticator.admin_users=[\"jhtest-admin\"]",
            ],
        )
        .unwrap()
        .config;
        assert_eq!(c.hub.concurrent_spawn_limit, 7);
        assert_eq!(c.hub.hub_bind_url, "http://127.0.0.1:9999");
        assert!(c.hub.allow_named_servers);
        assert_eq!(c.authenticator.admin_users, ["jhtest-admin"]);
        let e = load("", &["--hub.nope=1"]).unwrap_err().to_string();
        assert!(e.contains("hub.nope"), "{e}");
        let e = load("", &["--proxy.auth_token=x"]).unwrap_err().to_string();
        assert!(e.contains("secrets"), "{e}");
    }

    #[test]
    fn native_keys_have_nativeauthenticator_defaults_and_flags() {
        let a = load("", &[]).unwrap().config.authenticator;
        assert!(a.enable_signup && !a.open_signup && !a.check_common_password);
        assert!(!a.ask_email_on_signup);
        assert_eq!(a.minimum_password_length, 1);
        assert_eq!(a.allowed_failed_logins, 0);
        assert_eq!(a.seconds_before_next_try, 600);
        let a = load(
            "[authenticator]\nopen_signup = true\nminimum_password_length = 8\n",
            &[
                "--authenticator.allowed_failed_logins=3",
                "--authenticator.seconds_before_next_try=2",
                "--authenticator.check_common_password=true",
                "--authenticator.enable_signup=false",
                "--authenticator.ask_email_on_signup=true",
                "--authenticator.minimum_password_length=10",
            ],
        )
        .unwrap()
        .config
        .authenticator;
        assert!(a.open_signup && a.check_common_password && a.ask_email_on_signup);
        assert!(!a.enable_signup);
        assert_eq!(a.minimum_password_length, 10);
        assert_eq!(a.allowed_failed_logins, 3);
        assert_eq!(a.seconds_before_next_try, 2);
    }

    #[test]
    fn login_keys_defaults_flags_and_checks() {
        let c = load("", &[]).unwrap().config;
        assert_eq!(c.authenticator.service, "login");
        assert_eq!(c.authenticator.allow_all, None);
        assert_eq!(c.authenticator.allow_existing_users, None);
        assert!(c.authenticator.blocked_users.is_empty());
        assert_eq!(c.hub.cookie_max_age_days, 14.0);
        let c = load(
            "[authenticator]\nservice = \"jupyterhub\"\n",
            &[
                "--authenticator.service=other-login",
                "--authenticator.allow_all=true",
                "--authenticator.blocked_users=[\"jhtest-x\"]",
                "--hub.cookie_max_age_days=0.5",
            ],
        )
        .unwrap()
        .config;
        assert_eq!(c.authenticator.service, "other-login");
        assert_eq!(c.authenticator.allow_all, Some(true));
        assert_eq!(c.authenticator.blocked_users, ["jhtest-x"]);
        assert_eq!(c.hub.cookie_max_age_days, 0.5);
        for bad in ["../../etc/x", "", "a b", ".hidden"] {
            let e = load("", &[&format!("--authenticator.service={bad:?}")])
                .unwrap_err()
                .to_string();
            assert!(e.contains("authenticator.service"), "{bad}: {e}");
        }
        let e = load("[hub]\ncookie_max_age_days = 0\n", &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("hub.cookie_max_age_days"), "{e}");
        let e = load("[authenticator]\nblocked_users = [\"-u root\"]\n", &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("authenticator.blocked_users"), "{e}");
    }

    #[test]
    fn dummy_needs_password() {
        let e = load("[hub]\nauthenticator_class = \"dummy\"\n", &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("authenticator.password"), "{e}");
        let l = load(
            "[hub]\nauthenticator_class = \"dummy\"\n[authenticator]\npassword = \"pw\"\n",
            &[],
        )
        .unwrap();
        assert_eq!(l.secrets.dummy_password.unwrap().expose(), "pw");
    }

    #[test]
    fn secrets_from_env_and_not_in_debug() {
        let env: BTreeMap<String, String> = [
            (
                "CONFIGPROXY_AUTH_TOKEN".to_owned(),
                "proxy-secret".to_owned(),
            ),
            ("JPY_COOKIE_SECRET".to_owned(), "abcd".to_owned()),
        ]
        .into();
        let l = Config::from_text(
            "[[services]]\nname = \"svc\"\napi_token = \"service-secret\"\n",
            "t",
            &[],
            &env,
        )
        .unwrap();
        assert_eq!(
            l.secrets.proxy_auth_token.as_ref().unwrap().expose(),
            "proxy-secret"
        );
        assert_eq!(l.secrets.service_tokens["svc"].expose(), "service-secret");
        let shown = format!("{l:?}");
        assert!(!shown.contains("proxy-secret"), "{shown}");
        assert!(!shown.contains("service-secret"), "{shown}");
    }

    #[test]
    fn roles_are_checked() {
        let e = load("[[roles]]\nname = \"r1x\"\nscopes = [\"nope\"]\n", &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("roles[0].scopes") && e.contains("nope"), "{e}");
        let e = load("[[roles]]\nname = \"Bad\"\n", &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("roles[0].name"), "{e}");
        let e = load("[[roles]]\nname = \"rrr\"\nservices = [\"ghost\"]\n", &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("ghost"), "{e}");
    }
}
