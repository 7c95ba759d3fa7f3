//! Typed configuration: defaults, then a TOML file (`--config`), then environment variables.
//!
//! Every setting `name` in the file can also be set as `CRISP_GATEWAY_NAME`; the database URL
//! also answers to the conventional `DATABASE_URL`. Secrets (the master key) come only from the
//! environment and are held in their own type.

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
    pub upstream_timeout: Duration,
    pub request_timeout: Duration,
    pub body_limit: usize,
    pub max_concurrency: usize,
    pub key_cache_ttl: Duration,
    pub key_cache_capacity: u64,
    pub refresh_interval: Duration,
    /// How long audit rows are kept.
    pub audit_retention: Duration,
    pub log_format: LogFormat,
    pub master_key: Option<MasterKey>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

/// The file's shape: every field optional, unknown fields refused (a typo is an error).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    database_url: Option<String>,
    listen: Option<String>,
    upstream: Option<String>,
    upstream_timeout: Option<String>,
    request_timeout: Option<String>,
    body_limit: Option<usize>,
    max_concurrency: Option<usize>,
    key_cache_ttl: Option<String>,
    key_cache_capacity: Option<u64>,
    refresh_interval: Option<String>,
    audit_retention: Option<String>,
    log_format: Option<LogFormat>,
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
            max_concurrency: 1024,
            key_cache_ttl: Duration::from_secs(300),
            key_cache_capacity: 100_000,
            refresh_interval: Duration::from_millis(500),
            audit_retention: Duration::from_secs(90 * 86_400),
            log_format: LogFormat::Pretty,
            master_key: None,
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
        let mut raw = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| ConfigError(format!("cannot read {}: {e}", path.display())))?;
                toml::from_str::<FileConfig>(&text)
                    .map_err(|e| ConfigError(format!("{}: {e}", path.display())))?
            }
            None => FileConfig::default(),
        };
        let var = |name: &str| env(&format!("CRISP_GATEWAY_{name}")).filter(|v| !v.is_empty());
        let set = |slot: &mut Option<String>, value: Option<String>| {
            if value.is_some() {
                *slot = value;
            }
        };
        set(
            &mut raw.database_url,
            env("DATABASE_URL").filter(|v| !v.is_empty()),
        );
        set(&mut raw.database_url, var("DATABASE_URL"));
        set(&mut raw.listen, var("LISTEN"));
        set(&mut raw.upstream, var("UPSTREAM"));
        set(&mut raw.upstream_timeout, var("UPSTREAM_TIMEOUT"));
        set(&mut raw.request_timeout, var("REQUEST_TIMEOUT"));
        set(&mut raw.key_cache_ttl, var("KEY_CACHE_TTL"));
        set(&mut raw.refresh_interval, var("REFRESH_INTERVAL"));
        set(&mut raw.audit_retention, var("AUDIT_RETENTION"));
        let number = |name: &str| -> Result<Option<u64>, ConfigError> {
            var(name)
                .map(|v| {
                    v.parse().map_err(|_| {
                        ConfigError(format!("CRISP_GATEWAY_{name}=`{v}` is not a whole number"))
                    })
                })
                .transpose()
        };
        let as_usize = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
        if let Some(n) = number("BODY_LIMIT")? {
            raw.body_limit = Some(as_usize(n));
        }
        if let Some(n) = number("MAX_CONCURRENCY")? {
            raw.max_concurrency = Some(as_usize(n));
        }
        if let Some(n) = number("KEY_CACHE_CAPACITY")? {
            raw.key_cache_capacity = Some(n);
        }
        if let Some(v) = var("LOG_FORMAT") {
            raw.log_format = Some(match v.as_str() {
                "json" => LogFormat::Json,
                "pretty" => LogFormat::Pretty,
                _ => {
                    return Err(ConfigError(format!(
                        "CRISP_GATEWAY_LOG_FORMAT=`{v}`: use `pretty` or `json`"
                    )));
                }
            });
        }

        let defaults = Self::default();
        let duration = |value: Option<String>, name: &str, default: Duration| match value {
            Some(text) => {
                crate::clock::parse_duration(&text).map_err(|e| ConfigError(format!("{name}: {e}")))
            }
            None => Ok(default),
        };
        let listen = match raw.listen {
            Some(text) => text.parse().map_err(|_| {
                ConfigError(format!(
                    "listen: `{text}` is not an address such as 127.0.0.1:8080"
                ))
            })?,
            None => defaults.listen,
        };
        let upstream = raw.upstream.unwrap_or(defaults.upstream);
        if !(upstream.starts_with("http://") || upstream.starts_with("https://")) {
            return Err(ConfigError(format!(
                "upstream: `{upstream}` must be an http:// or https:// URL such as https://api.crisp.chat/v1"
            )));
        }
        let master_key = env("CRISP_GATEWAY_MASTER_KEY")
            .filter(|v| !v.is_empty())
            .map(|v| {
                MasterKey::from_base64(&v)
                    .map_err(|e| ConfigError(format!("CRISP_GATEWAY_MASTER_KEY: {e}")))
            })
            .transpose()?;
        let config = Self {
            database_url: raw.database_url.unwrap_or(defaults.database_url),
            listen,
            upstream: upstream.trim_end_matches('/').to_owned(),
            upstream_timeout: duration(
                raw.upstream_timeout,
                "upstream_timeout",
                defaults.upstream_timeout,
            )?,
            request_timeout: duration(
                raw.request_timeout,
                "request_timeout",
                defaults.request_timeout,
            )?,
            body_limit: raw.body_limit.unwrap_or(defaults.body_limit),
            max_concurrency: raw
                .max_concurrency
                .unwrap_or(defaults.max_concurrency)
                .max(1),
            key_cache_ttl: duration(raw.key_cache_ttl, "key_cache_ttl", defaults.key_cache_ttl)?,
            key_cache_capacity: raw
                .key_cache_capacity
                .unwrap_or(defaults.key_cache_capacity),
            refresh_interval: duration(
                raw.refresh_interval,
                "refresh_interval",
                defaults.refresh_interval,
            )?,
            audit_retention: duration(
                raw.audit_retention,
                "audit_retention",
                defaults.audit_retention,
            )?,
            log_format: raw.log_format.unwrap_or(defaults.log_format),
            master_key,
        };
        if config.upstream_timeout > config.request_timeout {
            return Err(ConfigError(
                "upstream_timeout must not exceed request_timeout".into(),
            ));
        }
        Ok(config)
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
        std::fs::write(
            &file,
            "listen = \"127.0.0.1:9000\"\nupstream_timeout = \"5s\"\nbody_limit = 2048\n",
        )
        .expect("write");
        let config = Config::load_with(
            Some(&file),
            env(&[
                ("DATABASE_URL", "postgres://x/y"),
                ("CRISP_GATEWAY_LISTEN", "0.0.0.0:7000"),
            ]),
        )
        .expect("loads");
        assert_eq!(config.listen.to_string(), "0.0.0.0:7000");
        assert_eq!(config.database_url, "postgres://x/y");
        assert_eq!(config.upstream_timeout, Duration::from_secs(5));
        assert_eq!(config.body_limit, 2048);
        assert_eq!(config.upstream, "https://api.crisp.chat/v1");
    }

    #[test]
    fn typos_and_bad_values_are_explained() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("gw.toml");
        std::fs::write(&file, "listn = \"x\"\n").expect("write");
        let err = Config::load_with(Some(&file), env(&[])).expect_err("typo");
        assert!(err.to_string().contains("listn"), "{err}");
        let err = Config::load_with(None, env(&[("CRISP_GATEWAY_UPSTREAM", "api.crisp.chat")]))
            .expect_err("bad url");
        assert!(err.to_string().contains("http"), "{err}");
        let err = Config::load_with(None, env(&[("CRISP_GATEWAY_MASTER_KEY", "nope")]))
            .expect_err("bad key");
        assert!(
            !err.to_string().contains("nope"),
            "never echo a secret: {err}"
        );
    }
}
