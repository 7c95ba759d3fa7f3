//! Typed configuration: defaults, then a TOML file (`--config`), then environment variables.
//!
//! Every setting `name` in the file can also be set as `CRISP_GATEWAY_NAME`; the database URL
//! also answers to the conventional `DATABASE_URL`. Secrets (the master key) come only from the
//! environment and are held in their own type. `config/default.toml` documents every setting.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use crate::secret::MasterKey;

#[derive(Debug, Clone)]
pub struct Config {
    pub database_url: String,
    pub listen: SocketAddr,
    /// Crisp's REST base URL, up to and including `/v1`.
    pub upstream: String,
    /// One upstream attempt.
    pub upstream_timeout: Duration,
    /// The whole request, retries included.
    pub request_timeout: Duration,
    pub body_limit: usize,
    /// The largest Crisp answer read, in bytes; a larger one is refused with 502.
    pub upstream_max_response: usize,
    /// Requests in flight before new ones are shed with 503.
    pub max_concurrency: usize,
    /// How long a connection may take to send a request's headers (and wait between
    /// keep-alive requests).
    pub header_timeout: Duration,
    /// How long a connection with no request in flight is kept open.
    pub idle_timeout: Duration,
    /// Open client connections per listener; 0 derives it from the open-file limit.
    pub max_connections: usize,
    /// Threads that serve requests; 0 means one per core this process may use.
    pub worker_threads: usize,
    pub key_cache_ttl: Duration,
    pub key_cache_capacity: u64,
    pub refresh_interval: Duration,
    pub audit_retention: Duration,
    pub retry_max_attempts: u32,
    pub retry_base_delay: Duration,
    pub retry_max_delay: Duration,
    pub retry_after_cap: Duration,
    pub account_max_concurrency: usize,
    pub account_rate_limit: f64,
    pub account_burst: f64,
    pub account_queue_timeout: Duration,
    pub account_max_queue: usize,
    pub key_rate_limit: f64,
    pub key_burst: f64,
    /// Failed authentications per second per client address, and the burst above it.
    pub auth_failure_rate: f64,
    pub auth_failure_burst: f64,
    /// Reports per minute per key, and the burst above it (0 disables).
    pub report_rate_limit: f64,
    pub report_burst: f64,
    /// Reports kept per workspace; older ones are pruned (0 keeps all).
    pub report_retention: u64,
    pub idempotency_ttl: Duration,
    /// How long a write whose outcome is unknown keeps its key after its lease, answering
    /// `idempotency_outcome_unknown`, before the key may run again.
    pub idempotency_unknown_hold: Duration,
    pub shutdown_grace: Duration,
    /// A separate listener for `/metrics`; `None` serves it on the main listener.
    pub metrics_listen: Option<SocketAddr>,
    pub log_format: LogFormat,
    pub master_key: Option<MasterKey>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(String);

impl Default for Config {
    fn default() -> Self {
        Self {
            database_url: "sqlite://crisp-gateway.db".into(),
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            upstream: "https://api.crisp.chat/v1".into(),
            upstream_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            body_limit: 1024 * 1024,
            upstream_max_response: 16 * 1024 * 1024,
            max_concurrency: 1024,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 0,
            worker_threads: 0,
            key_cache_ttl: Duration::from_secs(300),
            key_cache_capacity: 100_000,
            refresh_interval: Duration::from_millis(500),
            audit_retention: Duration::from_secs(90 * 86_400),
            retry_max_attempts: 3,
            retry_base_delay: Duration::from_millis(200),
            retry_max_delay: Duration::from_secs(2),
            retry_after_cap: Duration::from_secs(5),
            account_max_concurrency: 32,
            account_rate_limit: 25.0,
            account_burst: 50.0,
            account_queue_timeout: Duration::from_secs(2),
            account_max_queue: 256,
            key_rate_limit: 100.0,
            key_burst: 200.0,
            auth_failure_rate: 1.0,
            auth_failure_burst: 20.0,
            report_rate_limit: 10.0,
            report_burst: 20.0,
            report_retention: 1000,
            idempotency_ttl: Duration::from_secs(86_400),
            idempotency_unknown_hold: Duration::from_secs(15 * 60),
            shutdown_grace: Duration::from_secs(30),
            metrics_listen: None,
            log_format: LogFormat::Pretty,
            master_key: None,
        }
    }
}

/// A setting as written: TOML values, or text from the environment.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum Raw {
    Text(String),
    Integer(i64),
    Float(f64),
}

impl Raw {
    fn text(&self) -> String {
        match self {
            Self::Text(s) => s.clone(),
            Self::Integer(n) => n.to_string(),
            Self::Float(n) => n.to_string(),
        }
    }
}

/// More serving threads than this is a typo, not a tuning: each is an OS thread with its own
/// stack and allocator heap.
const MAX_WORKER_THREADS: usize = 1024;

/// Every setting's name; the file may hold only these, and each has its environment variable.
const SETTINGS: &[&str] = &[
    "database_url",
    "listen",
    "upstream",
    "upstream_timeout",
    "request_timeout",
    "body_limit",
    "upstream_max_response",
    "max_concurrency",
    "header_timeout",
    "idle_timeout",
    "max_connections",
    "worker_threads",
    "key_cache_ttl",
    "key_cache_capacity",
    "refresh_interval",
    "audit_retention",
    "retry_max_attempts",
    "retry_base_delay",
    "retry_max_delay",
    "retry_after_cap",
    "account_max_concurrency",
    "account_rate_limit",
    "account_burst",
    "account_queue_timeout",
    "account_max_queue",
    "key_rate_limit",
    "key_burst",
    "auth_failure_rate",
    "auth_failure_burst",
    "report_rate_limit",
    "report_burst",
    "report_retention",
    "idempotency_ttl",
    "idempotency_unknown_hold",
    "shutdown_grace",
    "metrics_listen",
    "log_format",
];

struct Settings(std::collections::HashMap<String, Raw>);

impl Settings {
    fn get(&self, name: &str) -> Option<&Raw> {
        self.0.get(name)
    }

    fn text(&self, name: &str, default: &str) -> String {
        self.get(name).map_or_else(|| default.to_owned(), Raw::text)
    }

    fn duration(&self, name: &str, default: Duration) -> Result<Duration, ConfigError> {
        match self.get(name) {
            Some(raw) => crate::kernel::clock::parse_duration(&raw.text())
                .map_err(|e| ConfigError(format!("{name}: {e}"))),
            None => Ok(default),
        }
    }

    fn number<T: std::str::FromStr>(&self, name: &str, default: T) -> Result<T, ConfigError> {
        match self.get(name) {
            Some(raw) => raw.text().trim().parse().map_err(|_| {
                ConfigError(format!("{name}: `{}` is not a valid number", raw.text()))
            }),
            None => Ok(default),
        }
    }

    fn address(&self, name: &str) -> Result<Option<SocketAddr>, ConfigError> {
        self.get(name)
            .map(|raw| {
                raw.text().parse().map_err(|_| {
                    ConfigError(format!(
                        "{name}: `{}` is not an address such as 127.0.0.1:8080",
                        raw.text()
                    ))
                })
            })
            .transpose()
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
        let mut settings: std::collections::HashMap<String, Raw> = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| ConfigError(format!("cannot read {}: {e}", path.display())))?;
                toml::from_str(&text)
                    .map_err(|e| ConfigError(format!("{}: {e}", path.display())))?
            }
            None => Default::default(),
        };
        if let Some(unknown) = settings.keys().find(|k| !SETTINGS.contains(&k.as_str())) {
            let hint = crate::kernel::text::did_you_mean(unknown, SETTINGS.iter().copied())
                .map(|m| format!(" (did you mean `{m}`?)"))
                .unwrap_or_default();
            return Err(ConfigError(format!(
                "unknown setting `{unknown}`{hint}; see config/default.toml"
            )));
        }
        let mut overlay = |name: &str, value: Option<String>| {
            if let Some(value) = value.filter(|v| !v.is_empty()) {
                settings.insert(name.to_owned(), Raw::Text(value));
            }
        };
        overlay("database_url", env("DATABASE_URL"));
        for name in SETTINGS {
            overlay(
                name,
                env(&format!("CRISP_GATEWAY_{}", name.to_ascii_uppercase())),
            );
        }
        let s = Settings(settings);
        let d = Self::default();

        let upstream = s.text("upstream", &d.upstream);
        if !(upstream.starts_with("http://") || upstream.starts_with("https://")) {
            return Err(ConfigError(format!(
                "upstream: `{upstream}` must be an http:// or https:// URL such as https://api.crisp.chat/v1"
            )));
        }
        let log_format = match s.text("log_format", "pretty").as_str() {
            "pretty" => LogFormat::Pretty,
            "json" => LogFormat::Json,
            other => {
                return Err(ConfigError(format!(
                    "log_format: `{other}` must be `pretty` or `json`"
                )));
            }
        };
        let master_key = env("CRISP_GATEWAY_MASTER_KEY")
            .filter(|v| !v.is_empty())
            .map(|v| {
                MasterKey::from_base64(&v)
                    .map_err(|e| ConfigError(format!("CRISP_GATEWAY_MASTER_KEY: {e}")))
            })
            .transpose()?;
        let config = Self {
            database_url: s.text("database_url", &d.database_url),
            listen: s.address("listen")?.unwrap_or(d.listen),
            upstream: upstream.trim_end_matches('/').to_owned(),
            upstream_timeout: s.duration("upstream_timeout", d.upstream_timeout)?,
            request_timeout: s.duration("request_timeout", d.request_timeout)?,
            body_limit: s.number("body_limit", d.body_limit)?,
            upstream_max_response: s.number("upstream_max_response", d.upstream_max_response)?,
            max_concurrency: s.number("max_concurrency", d.max_concurrency)?.max(1),
            header_timeout: s.duration("header_timeout", d.header_timeout)?,
            idle_timeout: s.duration("idle_timeout", d.idle_timeout)?,
            max_connections: s.number("max_connections", d.max_connections)?,
            worker_threads: s.number("worker_threads", d.worker_threads)?,
            key_cache_ttl: s.duration("key_cache_ttl", d.key_cache_ttl)?,
            key_cache_capacity: s.number("key_cache_capacity", d.key_cache_capacity)?,
            refresh_interval: s.duration("refresh_interval", d.refresh_interval)?,
            audit_retention: s.duration("audit_retention", d.audit_retention)?,
            retry_max_attempts: s.number("retry_max_attempts", d.retry_max_attempts)?,
            retry_base_delay: s.duration("retry_base_delay", d.retry_base_delay)?,
            retry_max_delay: s.duration("retry_max_delay", d.retry_max_delay)?,
            retry_after_cap: s.duration("retry_after_cap", d.retry_after_cap)?,
            account_max_concurrency: s
                .number("account_max_concurrency", d.account_max_concurrency)?,
            account_rate_limit: s.number("account_rate_limit", d.account_rate_limit)?,
            account_burst: s.number("account_burst", d.account_burst)?,
            account_queue_timeout: s.duration("account_queue_timeout", d.account_queue_timeout)?,
            account_max_queue: s.number("account_max_queue", d.account_max_queue)?,
            key_rate_limit: s.number("key_rate_limit", d.key_rate_limit)?,
            key_burst: s.number("key_burst", d.key_burst)?,
            auth_failure_rate: s.number("auth_failure_rate", d.auth_failure_rate)?,
            auth_failure_burst: s.number("auth_failure_burst", d.auth_failure_burst)?,
            report_rate_limit: s.number("report_rate_limit", d.report_rate_limit)?,
            report_burst: s.number("report_burst", d.report_burst)?,
            report_retention: s.number("report_retention", d.report_retention)?,
            idempotency_ttl: s.duration("idempotency_ttl", d.idempotency_ttl)?,
            idempotency_unknown_hold: s
                .duration("idempotency_unknown_hold", d.idempotency_unknown_hold)?,
            shutdown_grace: s.duration("shutdown_grace", d.shutdown_grace)?,
            metrics_listen: s.address("metrics_listen")?,
            log_format,
            master_key,
        };
        config.retry_policy().map_err(ConfigError)?;
        if config.worker_threads > MAX_WORKER_THREADS {
            return Err(ConfigError(format!(
                "worker_threads: {} is more than {MAX_WORKER_THREADS}; use 0 for one thread per core",
                config.worker_threads
            )));
        }
        for (name, value) in [
            ("header_timeout", config.header_timeout),
            ("idle_timeout", config.idle_timeout),
        ] {
            if value.is_zero() {
                return Err(ConfigError(format!(
                    "{name}: must be longer than 0, such as 10s"
                )));
            }
        }
        if !(config.auth_failure_rate > 0.0 && config.auth_failure_burst >= 1.0) {
            return Err(ConfigError(
                "auth_failure_rate must be above 0 and auth_failure_burst at least 1".into(),
            ));
        }
        if config.upstream_max_response == 0 {
            return Err(ConfigError(
                "upstream_max_response: 0 would refuse every Crisp answer; use a size in bytes such as 16777216 (16 MiB)".into(),
            ));
        }
        if config.upstream_timeout > config.request_timeout {
            return Err(ConfigError(
                "upstream_timeout must not exceed request_timeout".into(),
            ));
        }
        Ok(config)
    }

    /// The threads to serve with: `worker_threads`, or else one per core this process may
    /// use (its CPU affinity and cgroup quota included, so `taskset` and container limits count).
    pub fn serving_threads(&self) -> usize {
        match self.worker_threads {
            0 => std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get),
            n => n,
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
        assert_eq!(config.database_url, "postgres://x/y");
        assert_eq!(config.upstream_timeout, Duration::from_secs(5));
        assert_eq!(config.body_limit, 2048);
        assert!((config.account_rate_limit - 2.5).abs() < f64::EPSILON);
        assert!((config.key_rate_limit - 7.0).abs() < f64::EPSILON);
        assert_eq!(config.upstream, "https://api.crisp.chat/v1");
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
        let text = std::fs::read_to_string(file).expect("read");
        for name in SETTINGS {
            assert!(
                text.contains(&format!("{name} =")),
                "config/default.toml does not document `{name}`"
            );
        }
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
