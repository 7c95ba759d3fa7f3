//! Logging: `tracing` to standard error, pretty or JSON, filtered by `RUST_LOG`.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the global subscriber. `default` is the filter used when `RUST_LOG` is unset.
pub fn init(format: LogFormat, default: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    // Colour codes only for a terminal: in a log file they are noise, and writing them was
    // a measurable part of each access line's cost (see bench/README.md).
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Pretty => builder.try_init(),
    };
}

/// What the access-log line says about a call, noted by the layers that know it (the auth
/// layer knows the key, the call the account and Crisp's status) while the request runs.
#[derive(Debug, Default, Clone)]
pub struct CallInfo {
    /// When the request arrived (deadlines count from here, not from the handler).
    pub started: Option<std::time::Instant>,
    pub key_id: Option<String>,
    pub account_id: Option<String>,
    pub upstream_status: Option<u16>,
}

tokio::task_local! {
    static CALL: std::cell::RefCell<CallInfo>;
}

/// Runs a request with a fresh `CallInfo` and returns what was noted.
pub async fn with_call_info<F: std::future::Future>(future: F) -> (F::Output, CallInfo) {
    let info = CallInfo {
        started: Some(std::time::Instant::now()),
        ..CallInfo::default()
    };
    CALL.scope(std::cell::RefCell::new(info), async {
        let output = future.await;
        (output, CALL.with(|info| info.take()))
    })
    .await
}

/// Notes something about the current call; outside a request it does nothing.
pub fn note_call(update: impl FnOnce(&mut CallInfo)) {
    let _ = CALL.try_with(|info| update(&mut info.borrow_mut()));
}

/// When the current request arrived, if there is one.
pub fn request_started() -> Option<std::time::Instant> {
    CALL.try_with(|info| info.borrow().started).ok().flatten()
}
