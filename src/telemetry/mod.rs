//! Logging (`tracing` to standard error, pretty or JSON, filtered by `RUST_LOG`) and the
//! Prometheus metrics.

pub mod gate;
mod line;
pub mod metrics;
mod sink;

pub use sink::flush;

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};

use tracing_subscriber::EnvFilter;

/// The level rmcp is held to.
const RMCP_DIRECTIVE: &str = "rmcp=warn";

/// Installs the global subscriber: JSON lines when `json`, else the pretty format. `default` is
/// the filter used when `RUST_LOG` is unset.
pub fn init(json: bool, default: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    // rmcp logs whole MCP messages (Crisp data included) at debug and trace: whatever
    // RUST_LOG says, it gets warnings only.
    let filter = match RMCP_DIRECTIVE.parse() {
        Ok(directive) => filter.add_directive(directive),
        Err(_) => filter,
    };
    // A person at a terminal gets tracing's coloured format, each line as it happens; a file
    // or a pipe gets the same information as plain lines from a formatter that costs far less
    // per access line, written in batches (`sink`). Call `flush` before the process exits.
    let terminal = std::io::stderr().is_terminal();
    if !terminal {
        sink::flush_on_panic();
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(terminal);
    let _ = match (json, terminal) {
        (true, true) => builder.json().with_writer(std::io::stderr).try_init(),
        (true, false) => builder.json().with_writer(sink::BufferedStderr).try_init(),
        (false, true) => builder.with_writer(std::io::stderr).try_init(),
        (false, false) => builder
            .event_format(line::Line)
            .with_writer(sink::BufferedStderr)
            .try_init()
            .inspect(|()| PLAIN_LINES.store(true, Ordering::Relaxed)),
    };
}

/// Whether log lines are the plain format written to the buffered sink, so that the access
/// line may be written there directly.
static PLAIN_LINES: AtomicBool = AtomicBool::new(false);

/// The target of the access line, as `RUST_LOG` directives name it.
const ACCESS_TARGET: &str = "crisp_gateway::http::envelope";

/// One request's access-log line.
pub struct Access<'a> {
    pub request_id: &'a str,
    pub method: &'a str,
    pub path: &'a str,
    pub status: u16,
    pub duration_ms: f64,
    pub action: Option<&'a str>,
    pub key_id: Option<&'a str>,
    pub account_id: Option<&'a str>,
    pub upstream_status: Option<u16>,
    pub upstream_calls: Option<u32>,
}

/// Logs a request's access line at `info`. In the plain format it is written straight to the
/// buffered sink, the same line tracing would write: dispatching it as an event (the
/// subscriber lookup, the filter, the registry, a visitor per field) cost more than
/// formatting it, on every request. Any other format gets the event.
pub fn access(line: &Access<'_>) {
    if !tracing::enabled!(target: ACCESS_TARGET, tracing::Level::INFO) {
        return;
    }
    if PLAIN_LINES.load(Ordering::Relaxed) {
        line::write_access(line);
        return;
    }
    tracing::info!(
        target: ACCESS_TARGET,
        request_id = line.request_id,
        method = line.method,
        path = line.path,
        status = line.status,
        duration_ms = line.duration_ms,
        action = line.action,
        key_id = line.key_id,
        account_id = line.account_id,
        upstream_status = line.upstream_status,
        upstream_calls = line.upstream_calls,
        "request"
    );
}

/// Something the access line names by its id (a key, an account), shared with the cache
/// that holds it.
pub type Named = std::sync::Arc<dyn HasId>;

/// What has an id to be named by in the access line.
pub trait HasId: Send + Sync + std::fmt::Debug {
    fn id(&self) -> &str;
}

/// What the access-log line says about a call, noted by the layers that know it (the auth
/// layer knows the key, the call the account and Crisp's status) while the request runs.
#[derive(Debug, Default, Clone)]
pub struct CallInfo {
    /// The action, where the path does not name it (an MCP tool call).
    pub action: Option<&'static str>,
    /// The key and the account, as the caches hold them: noting one per call copies no text.
    pub key: Option<Named>,
    pub account: Option<Named>,
    pub upstream_status: Option<u16>,
    /// Crisp calls made for the request when more than one (`pages`); the status is the last's.
    pub upstream_calls: Option<u32>,
}

tokio::task_local! {
    static CALL: std::cell::RefCell<CallInfo>;
}

/// Runs a request with a fresh `CallInfo` and returns what was noted.
///
/// A plain function around a small future rather than an `async fn`: each `async` level
/// would keep `future` once as its capture and once as the value it awaits, and this one
/// wraps every request for as long as it runs.
#[inline(always)]
pub fn with_call_info<F: std::future::Future>(future: F) -> WithCallInfo<F> {
    CALL.scope(
        std::cell::RefCell::new(CallInfo::default()),
        TakeCallInfo { future },
    )
}

/// A request run by [`with_call_info`], named so that a future holding one can be written out.
pub type WithCallInfo<F> =
    tokio::task::futures::TaskLocalFuture<std::cell::RefCell<CallInfo>, TakeCallInfo<F>>;

pin_project_lite::pin_project! {
    /// Runs inside the `CALL` scope: the output, with the notes taken as it ends.
    pub struct TakeCallInfo<F> {
        #[pin]
        future: F,
    }
}

impl<F: std::future::Future> std::future::Future for TakeCallInfo<F> {
    type Output = (F::Output, CallInfo);

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        self.project()
            .future
            .poll(cx)
            .map(|output| (output, CALL.with(|info| info.take())))
    }
}

/// Notes something about the current call; outside a request it does nothing.
pub fn note_call(update: impl FnOnce(&mut CallInfo)) {
    let _ = CALL.try_with(|info| update(&mut info.borrow_mut()));
}

/// What MCP tool calls noted, by request id: rmcp runs a tool in a task of its own, so its
/// `CallInfo` is handed to the request's access line through here.
static HANDED_OFF: std::sync::LazyLock<
    std::sync::Mutex<std::collections::HashMap<String, CallInfo>>,
> = std::sync::LazyLock::new(Default::default);

/// Most requests in flight at once that could leave a note; past it, old notes are dropped
/// rather than kept without bound.
const HANDOFF_LIMIT: usize = 4096;

/// Leaves a tool call's notes for the access line of request `request_id`.
pub fn hand_off(request_id: &str, info: CallInfo) {
    if let Ok(mut notes) = HANDED_OFF.lock() {
        if notes.len() >= HANDOFF_LIMIT {
            notes.clear();
        }
        notes.insert(request_id.to_owned(), info);
    }
}

/// Takes what the tool calls of request `request_id` noted.
pub fn take_handed_off(request_id: &str) -> Option<CallInfo> {
    HANDED_OFF.lock().ok()?.remove(request_id)
}
