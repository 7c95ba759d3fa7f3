//! Typed configuration: defaults, then a TOML file (`--config`), then environment variables.
//!
//! Each setting is declared once, in the `settings!` table below: its name, type, default and
//! any extra environment variable. From that one table come the `Config` fields, the defaults,
//! the names the file may hold (anything else is refused with a "did you mean" hint) and the
//! environment variables: every setting `name` can be set as `CRISP_GATEWAY_NAME`, and the
//! database URL also answers to the conventional `DATABASE_URL`. Secrets (the master key) come
//! only from the environment and are held in their own type; the database URL is a
//! `DatabaseUrl`, which never prints its password. `config/default.toml` documents every
//! setting, and a test keeps it equal to the table.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::forward::UpstreamHttp;
use crate::secret::MasterKey;

/// The environment variable that carries the master key; it is never read from a file.
const MASTER_KEY_VAR: &str = "CRISP_GATEWAY_MASTER_KEY";

/// Settings that are on by default, where an empty environment variable turns them off (for
/// any other setting an empty variable counts as unset, as env files often leave them).
const OFF_WHEN_EMPTY: &[&str] = &["admin_listen"];

/// More serving threads than this is a typo, not a tuning: each is an OS thread with its own
/// stack and allocator heap.
const MAX_WORKER_THREADS: usize = 1024;

/// What one call in flight costs the process, rounded up: both of its connections (the
/// caller's and Crisp's) with hyper's buffers, its tasks and futures, and the allocator's slack
/// around them. Measured with `bench/run --held` (RSS per call held); see bench/README.md.
pub const MEMORY_PER_CALL: u64 = 48 * 1024;

/// The same over HTTP/2 to Crisp (`upstream_http = "http2"`), where a call is a stream on a
/// shared connection instead of a connection of its own (~15 KB measured).
pub const MEMORY_PER_CALL_HTTP2: u64 = 24 * 1024;

/// The memory this process may use: the machine's, or its cgroup's limit when lower. Read once
/// at start-up; an unknown size counts as 1 GiB, so the derived cap stays modest.
pub fn available_memory() -> u64 {
    const UNKNOWN: u64 = 1 << 30;
    let read_number =
        |path: &str| -> Option<u64> { std::fs::read_to_string(path).ok()?.trim().parse().ok() };
    let machine = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
            let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kib.saturating_mul(1024))
        });
    // cgroup v2, then v1 ("max" and v1's huge "no limit" value fail to parse or exceed the
    // machine, and so do not count).
    let container = read_number("/sys/fs/cgroup/memory.max")
        .or_else(|| read_number("/sys/fs/cgroup/memory/memory.limit_in_bytes"));
    match (machine, container) {
        (Some(m), Some(c)) => m.min(c),
        (Some(m), None) => m,
        (None, Some(c)) => c,
        (None, None) => UNKNOWN,
    }
}

/// One declared setting: the name it has in the file and the environment variables it answers to.
#[derive(Debug, Clone, Copy)]
pub struct Setting {
    pub name: &'static str,
    /// A conventional variable read before `CRISP_GATEWAY_<NAME>` (which wins over it).
    pub alias: Option<&'static str>,
}

impl Setting {
    /// `CRISP_GATEWAY_<NAME>`.
    pub fn env_var(&self) -> String {
        format!("CRISP_GATEWAY_{}", self.name.to_ascii_uppercase())
    }
}

/// Declares every setting once: `name: Type = default [, also "ENV_VAR"];`. Generates the
/// `Config` struct, its `Default`, the `SETTINGS` table and the parsing of each setting.
macro_rules! settings {
    ($(
        $(#[$doc:meta])*
        $name:ident : $ty:ty = $default:expr $(, also $alias:literal)? ;
    )*) => {
        /// The gateway's settings. Its `Debug` is safe to log: the database URL hides its
        /// password and the master key prints nothing.
        #[derive(Debug, Clone)]
        pub struct Config {
            $( $(#[$doc])* pub $name: $ty, )*
            /// From `CRISP_GATEWAY_MASTER_KEY` only.
            pub master_key: Option<MasterKey>,
        }

        impl Default for Config {
            fn default() -> Self {
                Self {
                    $( $name: $default, )*
                    master_key: None,
                }
            }
        }

        /// Every setting, in declaration order; the file may hold only these.
        pub const SETTINGS: &[Setting] = &[
            $( Setting { name: stringify!($name), alias: settings!(@alias $($alias)?) }, )*
        ];

        impl Config {
            /// Each setting from its written value, or its default when none was written.
            fn from_written(
                written: &HashMap<String, Raw>,
                master_key: Option<MasterKey>,
            ) -> Result<Self, ConfigError> {
                let defaults = Self::default();
                Ok(Self {
                    $( $name: match written.get(stringify!($name)) {
                        Some(raw) => FromSetting::from_setting(stringify!($name), raw)?,
                        None => defaults.$name,
                    }, )*
                    master_key,
                })
            }
        }
    };
    (@alias $alias:literal) => { Some($alias) };
    (@alias) => { None };
}

settings! {
    /// `sqlite://FILE` or `postgres://…`.
    database_url: DatabaseUrl = DatabaseUrl::new("sqlite://crisp-gateway.db"), also "DATABASE_URL";
    listen: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 8080));
    /// Crisp's REST base URL, up to and including `/v1`.
    upstream: String = "https://api.crisp.chat/v1".into();
    /// The HTTP version spoken to Crisp: `auto` (HTTP/2 when TLS negotiates it, else
    /// HTTP/1.1), `http1`, or `http2` (on `http://`, HTTP/2 without TLS).
    upstream_http: UpstreamHttp = UpstreamHttp::Auto;
    /// A PEM file of CA certificates trusted for Crisp's TLS besides the system's: for a
    /// proxy or egress gateway with its own CA, or a test server.
    upstream_ca_file: Option<PathBuf> = None;
    /// A separate listener for `/metrics`; `None` serves it on the main listener.
    metrics_listen: Option<SocketAddr> = None;
    /// The admin API and console's listener; empty turns it off.
    admin_listen: Option<SocketAddr> = Some(SocketAddr::from(([127, 0, 0, 1], 8081)));
    /// The `Host` headers MCP requests may carry; empty accepts any.
    mcp_allowed_hosts: Vec<String> = Vec::new();
    /// The largest MCP tool result, in bytes of JSON; a longer list is cut at an item.
    mcp_max_result: usize = 24 * 1024;
    /// One upstream attempt.
    upstream_timeout: Duration = Duration::from_secs(10);
    /// The whole request, retries included.
    request_timeout: Duration = Duration::from_secs(30);
    body_limit: usize = 1024 * 1024;
    /// The most pages one call may ask for with `pages` (each is a Crisp call).
    max_pages: u32 = 20;
    /// The largest Crisp answer read, in bytes; a larger one is refused with 502.
    upstream_max_response: usize = 16 * 1024 * 1024;
    /// Requests in flight before new ones are shed with 503; 0 derives it from
    /// `memory_budget_mib` (see `Config::memory_calls`).
    max_concurrency: usize = 0;
    /// The memory the calls in flight may take, in MiB; 0 means a quarter of the machine's
    /// memory, or of the container's limit when it is lower.
    memory_budget_mib: usize = 0;
    /// How long a connection may take to send a request's headers (and wait between
    /// keep-alive requests).
    header_timeout: Duration = Duration::from_secs(10);
    /// How long a connection with no request in flight is kept open.
    idle_timeout: Duration = Duration::from_secs(60);
    /// Open client connections per listener; 0 derives it from the open-file limit.
    max_connections: usize = 0;
    /// Threads that serve requests; 0 means one per core this process may use.
    worker_threads: usize = 0;
    shutdown_grace: Duration = Duration::from_secs(30);
    retry_max_attempts: u32 = 3;
    retry_base_delay: Duration = Duration::from_millis(200);
    retry_max_delay: Duration = Duration::from_secs(2);
    retry_after_cap: Duration = Duration::from_secs(5);
    account_max_concurrency: usize = 32;
    account_rate_limit: f64 = 25.0;
    account_burst: f64 = 50.0;
    account_queue_timeout: Duration = Duration::from_secs(2);
    account_max_queue: usize = 256;
    /// On Postgres, hold each account's and each key's budget across every replica sharing
    /// the database (through leases); `false` keeps a whole budget per process.
    shared_budgets: bool = true;
    key_rate_limit: f64 = 100.0;
    key_burst: f64 = 200.0;
    /// Failed authentications per second per client address, and the burst above it.
    auth_failure_rate: f64 = 1.0;
    auth_failure_burst: f64 = 20.0;
    /// Reports per minute per key, and the burst above it (0 disables).
    report_rate_limit: f64 = 10.0;
    report_burst: f64 = 20.0;
    /// Reports kept per workspace; older ones are pruned (0 keeps all).
    report_retention: u64 = 1000;
    key_cache_ttl: Duration = Duration::from_secs(300);
    key_cache_capacity: u64 = 100_000;
    refresh_interval: Duration = Duration::from_millis(500);
    idempotency_ttl: Duration = Duration::from_secs(86_400);
    /// How long a write whose outcome is unknown keeps its key after its lease, answering
    /// `idempotency_outcome_unknown`, before the key may run again.
    idempotency_unknown_hold: Duration = Duration::from_secs(15 * 60);
    audit_retention: Duration = Duration::from_secs(90 * 86_400);
    log_format: LogFormat = LogFormat::Pretty;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(String);

/// A database URL. `Debug` and `Display` hide its password (`postgres://user:***@host/db`), so
/// it can sit in logs and messages; `expose` gives the full URL to the code that connects.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    pub fn new(url: impl Into<String>) -> Self {
        Self(url.into())
    }

    /// The URL with its password, for connecting only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<&str> for DatabaseUrl {
    fn from(url: &str) -> Self {
        Self::new(url)
    }
}

impl From<String> for DatabaseUrl {
    fn from(url: String) -> Self {
        Self(url)
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let url = &self.0;
        if let (Some(scheme), Some(at)) = (url.find("://"), url.rfind('@'))
            && at > scheme
            && let Some((user, _)) = url[scheme + 3..at].split_once(':')
        {
            return write!(f, "{}{user}:***{}", &url[..scheme + 3], &url[at..]);
        }
        f.write_str(url)
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.to_string(), f)
    }
}

/// A setting as written: TOML values, or text from the environment.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum Raw {
    Text(String),
    Integer(i64),
    Float(f64),
    Bool(bool),
}

impl Raw {
    fn text(&self) -> String {
        match self {
            Self::Text(s) => s.clone(),
            Self::Integer(n) => n.to_string(),
            Self::Float(n) => n.to_string(),
            Self::Bool(b) => b.to_string(),
        }
    }
}

/// How a setting's type reads a written value; errors name the setting and say what fits.
trait FromSetting: Sized {
    fn from_setting(name: &str, raw: &Raw) -> Result<Self, ConfigError>;
}

macro_rules! numbers {
    ($($ty:ty),*) => {$(
        impl FromSetting for $ty {
            fn from_setting(name: &str, raw: &Raw) -> Result<Self, ConfigError> {
                raw.text().trim().parse().map_err(|_| {
                    ConfigError(format!("{name}: `{}` is not a valid number", raw.text()))
                })
            }
        }
    )*};
}

numbers!(u32, u64, usize, f64);

impl FromSetting for bool {
    fn from_setting(name: &str, raw: &Raw) -> Result<Self, ConfigError> {
        match raw.text().trim() {
            "true" | "1" => Ok(true),
            "false" | "0" => Ok(false),
            other => Err(ConfigError(format!(
                "{name}: `{other}` is not `true` or `false`"
            ))),
        }
    }
}

impl FromSetting for Duration {
    fn from_setting(name: &str, raw: &Raw) -> Result<Self, ConfigError> {
        crate::kernel::clock::parse_duration(&raw.text())
            .map_err(|e| ConfigError(format!("{name}: {e}")))
    }
}

impl FromSetting for SocketAddr {
    fn from_setting(name: &str, raw: &Raw) -> Result<Self, ConfigError> {
        raw.text().parse().map_err(|_| {
            ConfigError(format!(
                "{name}: `{}` is not an address such as 127.0.0.1:8080",
                raw.text()
            ))
        })
    }
}

/// An empty value turns an optional setting off.
impl<T: FromSetting> FromSetting for Option<T> {
    fn from_setting(name: &str, raw: &Raw) -> Result<Self, ConfigError> {
        if raw.text().trim().is_empty() {
            return Ok(None);
        }
        T::from_setting(name, raw).map(Some)
    }
}

impl FromSetting for String {
    fn from_setting(_: &str, raw: &Raw) -> Result<Self, ConfigError> {
        Ok(raw.text())
    }
}

/// A comma-separated list; blank items are dropped.
impl FromSetting for Vec<String> {
    fn from_setting(_: &str, raw: &Raw) -> Result<Self, ConfigError> {
        Ok(raw
            .text()
            .split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(str::to_owned)
            .collect())
    }
}

impl FromSetting for PathBuf {
    fn from_setting(_: &str, raw: &Raw) -> Result<Self, ConfigError> {
        Ok(Self::from(raw.text()))
    }
}

impl FromSetting for DatabaseUrl {
    fn from_setting(_: &str, raw: &Raw) -> Result<Self, ConfigError> {
        Ok(Self(raw.text()))
    }
}

impl FromSetting for LogFormat {
    fn from_setting(name: &str, raw: &Raw) -> Result<Self, ConfigError> {
        match raw.text().as_str() {
            "pretty" => Ok(Self::Pretty),
            "json" => Ok(Self::Json),
            other => Err(ConfigError(format!(
                "{name}: `{other}` must be `pretty` or `json`"
            ))),
        }
    }
}

impl FromSetting for UpstreamHttp {
    fn from_setting(name: &str, raw: &Raw) -> Result<Self, ConfigError> {
        match raw.text().as_str() {
            "auto" => Ok(Self::Auto),
            "http1" => Ok(Self::Http1),
            "http2" => Ok(Self::Http2),
            other => Err(ConfigError(format!(
                "{name}: `{other}` must be `auto`, `http1` or `http2`"
            ))),
        }
    }
}

impl Config {
    /// Loads the configuration from the optional file and the process environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_with(file, |name| std::env::var(name).ok())
    }

    pub fn load_with(
        file: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let mut written: HashMap<String, Raw> = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| ConfigError(format!("cannot read {}: {e}", path.display())))?;
                toml::from_str(&text)
                    .map_err(|e| ConfigError(format!("{}: {e}", path.display())))?
            }
            None => HashMap::new(),
        };
        if let Some(unknown) = written
            .keys()
            .find(|k| !SETTINGS.iter().any(|s| s.name == k.as_str()))
        {
            let hint = crate::kernel::text::did_you_mean(unknown, SETTINGS.iter().map(|s| s.name))
                .map(|m| format!(" (did you mean `{m}`?)"))
                .unwrap_or_default();
            return Err(ConfigError(format!(
                "unknown setting `{unknown}`{hint}; see config/default.toml"
            )));
        }
        for setting in SETTINGS {
            // The alias first, so `CRISP_GATEWAY_<NAME>` wins when both are set.
            let vars = setting.alias.map(str::to_owned).into_iter();
            for var in vars.chain([setting.env_var()]) {
                let set = |v: &String| !v.is_empty() || OFF_WHEN_EMPTY.contains(&setting.name);
                if let Some(value) = env(&var).filter(set) {
                    written.insert(setting.name.to_owned(), Raw::Text(value));
                }
            }
        }
        let master_key = env(MASTER_KEY_VAR)
            .filter(|v| !v.is_empty())
            .map(|v| {
                MasterKey::from_base64(&v)
                    .map_err(|e| ConfigError(format!("{MASTER_KEY_VAR}: {e}")))
            })
            .transpose()?;
        Self::from_written(&written, master_key)?.validated()
    }

    /// The checks between settings and the normalisations, in one place.
    fn validated(mut self) -> Result<Self, ConfigError> {
        if !(self.upstream.starts_with("http://") || self.upstream.starts_with("https://")) {
            return Err(ConfigError(format!(
                "upstream: `{}` must be an http:// or https:// URL such as https://api.crisp.chat/v1",
                self.upstream
            )));
        }
        self.upstream = self.upstream.trim_end_matches('/').to_owned();
        self.retry_policy().map_err(ConfigError)?;
        if self.worker_threads > MAX_WORKER_THREADS {
            return Err(ConfigError(format!(
                "worker_threads: {} is more than {MAX_WORKER_THREADS}; use 0 for one thread per core",
                self.worker_threads
            )));
        }
        for (name, value) in [
            ("header_timeout", self.header_timeout),
            ("idle_timeout", self.idle_timeout),
        ] {
            if value.is_zero() {
                return Err(ConfigError(format!(
                    "{name}: must be longer than 0, such as 10s"
                )));
            }
        }
        if !(self.auth_failure_rate > 0.0 && self.auth_failure_burst >= 1.0) {
            return Err(ConfigError(
                "auth_failure_rate must be above 0 and auth_failure_burst at least 1".into(),
            ));
        }
        if self.upstream_max_response == 0 {
            return Err(ConfigError(
                "upstream_max_response: 0 would refuse every Crisp answer; use a size in bytes such as 16777216 (16 MiB)".into(),
            ));
        }
        if self.upstream_timeout > self.request_timeout {
            return Err(ConfigError(
                "upstream_timeout must not exceed request_timeout".into(),
            ));
        }
        Ok(self)
    }

    /// The threads to serve with: `worker_threads`, or else one per core this process may
    /// use (its CPU affinity and cgroup quota included, so `taskset` and container limits count).
    pub fn serving_threads(&self) -> usize {
        match self.worker_threads {
            0 => std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get),
            n => n,
        }
    }

    /// The memory budget for calls in flight, in bytes.
    pub fn memory_budget(&self) -> u64 {
        match self.memory_budget_mib {
            0 => available_memory() / 4,
            mib => u64::try_from(mib)
                .unwrap_or(u64::MAX)
                .saturating_mul(1 << 20),
        }
    }

    /// The calls in flight that fit the memory budget (at least one).
    pub fn memory_calls(&self) -> usize {
        let per_call = match self.upstream_http {
            UpstreamHttp::Http2 => MEMORY_PER_CALL_HTTP2,
            // `auto` may settle on HTTP/1.1: count the larger cost.
            UpstreamHttp::Auto | UpstreamHttp::Http1 => MEMORY_PER_CALL,
        };
        usize::try_from(self.memory_budget() / per_call)
            .unwrap_or(usize::MAX)
            .max(1)
    }

    /// How to reach Crisp: the `upstream*` settings together.
    pub fn crisp(&self) -> crate::forward::Upstream {
        crate::forward::Upstream {
            base: self.upstream.clone(),
            http: self.upstream_http,
            ca_file: self.upstream_ca_file.clone(),
            timeout: self.upstream_timeout,
            max_response: self.upstream_max_response,
        }
    }

    pub fn retry_policy(&self) -> Result<crate::forward::RetryPolicy, String> {
        crate::forward::RetryPolicy::new(
            self.retry_max_attempts,
            self.retry_base_delay,
            self.retry_max_delay,
            self.retry_after_cap,
        )
    }

    pub fn account_limits(&self) -> crate::limits::AccountLimits {
        crate::limits::AccountLimits {
            max_concurrency: self.account_max_concurrency,
            rate: self.account_rate_limit,
            burst: self.account_burst,
            queue_timeout: self.account_queue_timeout,
            max_queue: self.account_max_queue,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn environment_overrides_file_overrides_defaults() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("gw.toml");
        std::fs::write(&file, "listen = \"127.0.0.1:9000\"\nupstream_timeout = \"5s\"\nbody_limit = 2048\naccount_rate_limit = 2.5\n")
            .expect("write");
        let config = Config::load_with(
            Some(&file),
            env(&[
                ("DATABASE_URL", "postgres://x/y"),
                ("CRISP_GATEWAY_LISTEN", "0.0.0.0:7000"),
                ("CRISP_GATEWAY_KEY_RATE_LIMIT", "7"),
            ]),
        )
        .expect("loads");
        assert_eq!(config.listen.to_string(), "0.0.0.0:7000");
        assert_eq!(config.database_url.expose(), "postgres://x/y");
        assert_eq!(config.upstream_timeout, Duration::from_secs(5));
        assert_eq!(config.body_limit, 2048);
        assert!((config.account_rate_limit - 2.5).abs() < f64::EPSILON);
        assert!((config.key_rate_limit - 7.0).abs() < f64::EPSILON);
        assert_eq!(config.upstream, "https://api.crisp.chat/v1");
    }

    #[test]
    fn the_upstream_http_version_is_one_of_three() {
        let load = |v: &str| Config::load_with(None, env(&[("CRISP_GATEWAY_UPSTREAM_HTTP", v)]));
        assert_eq!(
            load("http2").expect("loads").upstream_http,
            UpstreamHttp::Http2
        );
        assert_eq!(
            load("http1").expect("loads").upstream_http,
            UpstreamHttp::Http1
        );
        let err = load("h3").expect_err("refused").to_string();
        assert!(err.contains("`auto`, `http1` or `http2`"), "{err}");
    }

    #[test]
    fn the_memory_budget_sets_the_calls_in_flight() {
        let budget = |mib: &str| {
            Config::load_with(None, env(&[("CRISP_GATEWAY_MEMORY_BUDGET_MIB", mib)]))
                .expect("loads")
        };
        let config = budget("512");
        assert_eq!(config.memory_budget(), 512 << 20);
        assert_eq!(config.memory_calls(), 10922, "512 MiB at 48 KiB a call");
        let http2 = Config {
            upstream_http: UpstreamHttp::Http2,
            ..config
        };
        assert_eq!(http2.memory_calls(), 21845, "512 MiB at 24 KiB a call");
        // By default a quarter of what the machine (or the container) has.
        let default = budget("0");
        assert_eq!(default.memory_budget(), available_memory() / 4);
        assert!(default.memory_calls() >= 1);
        assert!(
            Config::load_with(None, env(&[("CRISP_GATEWAY_MEMORY_BUDGET_MIB", "lots")])).is_err()
        );
    }

    #[test]
    fn the_documented_defaults_are_the_defaults() {
        let file = concat!(env!("CARGO_MANIFEST_DIR"), "/config/default.toml");
        let documented =
            Config::load_with(Some(Path::new(file)), env(&[])).expect("config/default.toml loads");
        assert_eq!(
            format!("{documented:?}"),
            format!("{:?}", Config::default())
        );
        // Every line `name = …` (commented out or not) names a declared setting, and every
        // declared setting has one.
        let text = std::fs::read_to_string(file).expect("read");
        let mut documented: Vec<&str> = text
            .lines()
            .filter_map(|line| {
                let line = line.strip_prefix('#').unwrap_or(line).trim_start();
                let (name, _) = line.split_once(" = ")?;
                name.bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'_')
                    .then_some(name)
            })
            .collect();
        documented.sort_unstable();
        let mut declared: Vec<&str> = SETTINGS.iter().map(|s| s.name).collect();
        declared.sort_unstable();
        assert_eq!(documented, declared);
    }

    #[test]
    fn debug_output_hides_the_database_password() {
        let config = Config::load_with(
            None,
            env(&[
                ("DATABASE_URL", "postgres://gw:hunter2@db:5432/gw"),
                (
                    "CRISP_GATEWAY_MASTER_KEY",
                    "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
                ),
            ]),
        )
        .expect("loads");
        let printed = format!("{config:?}");
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(
            printed.contains("postgres://gw:***@db:5432/gw"),
            "{printed}"
        );
        assert!(!printed.contains("AAECAwQF"), "{printed}");
        assert_eq!(
            config.database_url.expose(),
            "postgres://gw:hunter2@db:5432/gw"
        );
        assert_eq!(
            config.database_url.to_string(),
            "postgres://gw:***@db:5432/gw"
        );
        assert_eq!(
            DatabaseUrl::from("sqlite://crisp-gateway.db").to_string(),
            "sqlite://crisp-gateway.db"
        );
        assert_eq!(
            DatabaseUrl::from("postgres://gw@db/gw").to_string(),
            "postgres://gw@db/gw"
        );
    }

    #[test]
    fn every_setting_answers_to_its_environment_variable() {
        // `CRISP_GATEWAY_DATABASE_URL` wins over `DATABASE_URL`.
        let config = Config::load_with(
            None,
            env(&[
                ("DATABASE_URL", "postgres://a/a"),
                ("CRISP_GATEWAY_DATABASE_URL", "postgres://b/b"),
                ("CRISP_GATEWAY_IDEMPOTENCY_UNKNOWN_HOLD", "7m"),
                ("CRISP_GATEWAY_METRICS_LISTEN", "127.0.0.1:9100"),
                ("CRISP_GATEWAY_LOG_FORMAT", "json"),
            ]),
        )
        .expect("loads");
        assert_eq!(config.database_url.expose(), "postgres://b/b");
        assert_eq!(config.idempotency_unknown_hold, Duration::from_secs(420));
        assert_eq!(
            config.metrics_listen,
            Some(SocketAddr::from(([127, 0, 0, 1], 9100)))
        );
        assert_eq!(config.log_format, LogFormat::Json);
        let names: Vec<String> = SETTINGS.iter().map(Setting::env_var).collect();
        assert!(names.contains(&"CRISP_GATEWAY_MCP_ALLOWED_HOSTS".to_owned()));
        assert_eq!(names.len(), SETTINGS.len());
    }

    #[test]
    fn the_admin_listener_is_on_loopback_by_default_and_off_when_empty() {
        let default = Config::load_with(None, env(&[])).expect("loads");
        assert_eq!(
            default.admin_listen,
            Some(SocketAddr::from(([127, 0, 0, 1], 8081)))
        );
        let off =
            Config::load_with(None, env(&[("CRISP_GATEWAY_ADMIN_LISTEN", "")])).expect("loads");
        assert_eq!(off.admin_listen, None);
        let moved = Config::load_with(
            None,
            env(&[("CRISP_GATEWAY_ADMIN_LISTEN", "10.0.0.5:9000")]),
        )
        .expect("loads");
        assert_eq!(
            moved.admin_listen,
            Some(SocketAddr::from(([10, 0, 0, 5], 9000)))
        );
        // Other settings still take an empty variable as unset.
        let unset = Config::load_with(None, env(&[("CRISP_GATEWAY_LISTEN", "")])).expect("loads");
        assert_eq!(unset.listen, Config::default().listen);
    }

    #[test]
    fn mcp_allowed_hosts_is_a_comma_separated_list() {
        let open = Config::load_with(None, env(&[("CRISP_GATEWAY_MCP_ALLOWED_HOSTS", " , ")]))
            .expect("loads");
        assert!(open.mcp_allowed_hosts.is_empty());
        assert!(Config::default().mcp_allowed_hosts.is_empty());
        let limited = Config::load_with(
            None,
            env(&[(
                "CRISP_GATEWAY_MCP_ALLOWED_HOSTS",
                "gw.example.com, gw.example.com:8443",
            )]),
        )
        .expect("loads");
        assert_eq!(
            limited.mcp_allowed_hosts,
            ["gw.example.com", "gw.example.com:8443"]
        );
    }

    #[test]
    fn typos_and_bad_values_are_explained() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("gw.toml");
        std::fs::write(&file, "listn = \"x\"\n").expect("write");
        let err = Config::load_with(Some(&file), env(&[])).expect_err("typo");
        assert!(err.to_string().contains("did you mean `listen`"), "{err}");
        let err = Config::load_with(None, env(&[("CRISP_GATEWAY_UPSTREAM", "api.crisp.chat")]))
            .expect_err("bad url");
        assert!(err.to_string().contains("http"), "{err}");
        let err = Config::load_with(None, env(&[("CRISP_GATEWAY_BODY_LIMIT", "lots")]))
            .expect_err("bad number");
        assert!(err.to_string().contains("body_limit"), "{err}");
        let err = Config::load_with(None, env(&[("CRISP_GATEWAY_RETRY_MAX_ATTEMPTS", "0")]))
            .expect_err("bad policy");
        assert!(err.to_string().contains("retry_max_attempts"), "{err}");
        let err = Config::load_with(None, env(&[("CRISP_GATEWAY_WORKER_THREADS", "100000")]))
            .expect_err("too many threads");
        assert!(
            err.to_string().contains(
                "worker_threads: 100000 is more than 1024; use 0 for one thread per core"
            ),
            "{err}"
        );
        let err = Config::load_with(None, env(&[("CRISP_GATEWAY_HEADER_TIMEOUT", "0s")]))
            .expect_err("no header timeout");
        assert!(
            err.to_string()
                .contains("header_timeout: must be longer than 0"),
            "{err}"
        );
        let err = Config::load_with(None, env(&[("CRISP_GATEWAY_MASTER_KEY", "nope")]))
            .expect_err("bad key");
        assert!(
            !err.to_string().contains("nope"),
            "never echo a secret: {err}"
        );
    }
}
