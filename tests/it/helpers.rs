//! Test harness: fresh databases per test, a recording fake Crisp, and a spawned gateway.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use crisp_gateway::accounts::Tier;
use crisp_gateway::admin::{NewAccount, add_account, create_key, create_workspace};
use crisp_gateway::app::config::Config;
use crisp_gateway::app::{App, AppState};
use crisp_gateway::secret::{CrispKey, MasterKey, Vault};
use crisp_gateway::store::{self, KeyId, Store, WorkspaceId};
use serde_json::Value;
use tokio::net::TcpListener;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

/// The engines to run on: SQLite always; Postgres when `TEST_DATABASE_URL` is set. CI sets
/// `CRISP_GATEWAY_REQUIRE_POSTGRES=1` so that a missing Postgres fails instead of skipping.
pub fn engines() -> Vec<Engine> {
    let mut engines = vec![Engine::Sqlite];
    if std::env::var("TEST_DATABASE_URL").is_ok_and(|u| !u.is_empty()) {
        engines.push(Engine::Postgres);
    } else if std::env::var("CRISP_GATEWAY_REQUIRE_POSTGRES").is_ok_and(|v| v == "1") {
        panic!("CRISP_GATEWAY_REQUIRE_POSTGRES=1 but TEST_DATABASE_URL is not set");
    }
    engines
}

/// A database of its own for one test, dropped afterwards.
pub struct TestDb {
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    postgres: Option<(String, String)>,
}

impl TestDb {
    pub async fn new(engine: Engine) -> Self {
        match engine {
            Engine::Sqlite => {
                let dir = tempfile::tempdir().expect("tempdir");
                let url = format!("sqlite://{}/gateway.db", dir.path().display());
                Self {
                    url,
                    _dir: Some(dir),
                    postgres: None,
                }
            }
            Engine::Postgres => {
                let admin = std::env::var("TEST_DATABASE_URL").expect("TEST_DATABASE_URL");
                let name = format!(
                    "gw_test_{}",
                    crisp_gateway::secret::random_base62(12).to_lowercase()
                );
                let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&admin)
                    .await
                    .expect("connect to TEST_DATABASE_URL");
                sqlx::query(sqlx::AssertSqlSafe(format!("create database {name}")))
                    .execute(&mut conn)
                    .await
                    .expect("create test database");
                let url = with_database(&admin, &name);
                Self {
                    url,
                    _dir: None,
                    postgres: Some((admin, name)),
                }
            }
        }
    }

    pub async fn store(&self) -> Arc<dyn Store> {
        let store = store::connect(&self.url).await.expect("connect");
        store.migrate().await.expect("migrate");
        store
    }
}

/// The same server URL with another database name.
pub fn with_database(url: &str, name: &str) -> String {
    let (base, params) = url
        .split_once('?')
        .map_or((url, None), |(b, p)| (b, Some(p)));
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let host_end = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    let mut out = format!("{}/{name}", &base[..host_end]);
    if let Some(params) = params {
        out.push('?');
        out.push_str(params);
    }
    out
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some((admin, name)) = self.postgres.take() {
            // Drop is synchronous: use a runtime of our own on a plain thread.
            let _ = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build();
                if let Ok(runtime) = runtime {
                    runtime.block_on(async {
                        if let Ok(mut conn) =
                            <sqlx::PgConnection as sqlx::Connection>::connect(&admin).await
                        {
                            let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                                "drop database if exists {name} with (force)"
                            )))
                            .execute(&mut conn)
                            .await;
                        }
                    });
                }
            })
            .join();
        }
    }
}

/// One request as the fake Crisp received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("upstream body is JSON")
    }
}

/// In a scripted body, replaced by the `Authorization` header the fake Crisp received.
pub const ECHO_AUTHORIZATION: &str = "{echo-authorization}";

/// A scripted answer; answers are used in order, then the default answer repeats.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: String,
    pub headers: Vec<(&'static str, String)>,
    pub delay: Duration,
}

impl Answer {
    pub fn json(status: u16, body: &str) -> Self {
        Self {
            status,
            body: body.to_owned(),
            headers: Vec::new(),
            delay: Duration::ZERO,
        }
    }

    pub fn ok(data: &str) -> Self {
        Self::json(
            200,
            &format!(r#"{{"error":false,"reason":"resolved","data":{data}}}"#),
        )
    }

    pub fn with_header(mut self, name: &'static str, value: &str) -> Self {
        self.headers.push((name, value.to_owned()));
        self
    }

    pub fn delayed(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

#[derive(Default)]
struct FakeState {
    received: Mutex<Vec<Received>>,
    script: Mutex<VecDeque<Answer>>,
}

/// A fake Crisp on a real port: records every request and answers from a script.
#[derive(Clone)]
pub struct FakeCrisp {
    pub base: String,
    state: Arc<FakeState>,
}

impl FakeCrisp {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind fake crisp");
        let addr = listener.local_addr().expect("addr");
        let state = Arc::new(FakeState::default());
        let router = Router::new().fallback(answer).with_state(state.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Self {
            base: format!("http://{addr}/v1"),
            state,
        }
    }

    pub fn script(&self, answer: Answer) {
        self.state.script.lock().expect("lock").push_back(answer);
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.received.lock().expect("lock").clone()
    }

    pub fn take_received(&self) -> Vec<Received> {
        std::mem::take(&mut *self.state.received.lock().expect("lock"))
    }
}

async fn answer(State(state): State<Arc<FakeState>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 16 << 20)
        .await
        .unwrap_or_default();
    let authorization = parts
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    state.received.lock().expect("lock").push(Received {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        headers: parts.headers,
        body,
    });
    let next = state.script.lock().expect("lock").pop_front();
    let mut answer = next.unwrap_or_else(|| Answer::ok(r#"{"echo":true}"#));
    // An upstream that echoes the request's credentials, as some error pages do.
    answer.body = answer.body.replace(ECHO_AUTHORIZATION, &authorization);
    if !answer.delay.is_zero() {
        tokio::time::sleep(answer.delay).await;
    }
    let mut response = (
        StatusCode::from_u16(answer.status).expect("status"),
        [("content-type", "application/json")],
        answer.body,
    )
        .into_response();
    for (name, value) in answer.headers {
        response
            .headers_mut()
            .insert(name, value.parse().expect("header value"));
    }
    response
}

/// An address where nothing listens: a port bound but never listening, so connecting is
/// refused. The socket is kept for the rest of the test process, so no other test's server
/// or client can take the port and answer in its place.
pub async fn dead_upstream() -> String {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind("127.0.0.1:0".parse().expect("address"))
        .expect("bind");
    let addr = socket.local_addr().expect("addr");
    std::mem::forget(socket);
    format!("http://{addr}/v1")
}

/// A running gateway with a workspace `acme`, a default account `main` and one key.
pub struct TestApp {
    pub addr: SocketAddr,
    pub app: AppState,
    pub store: Arc<dyn Store>,
    pub crisp: FakeCrisp,
    pub key: String,
    pub key_id: KeyId,
    pub workspace_id: WorkspaceId,
    pub vault: Vault,
    /// Kept so the database lives as long as the server.
    pub _db: TestDb,
    pub http: reqwest::Client,
}

pub const WEBSITE: &str = "web-main";
pub const IDENTIFIER: &str = "id-main";
pub const CRISP_KEY: &str = "crisp-key-main";

impl TestApp {
    pub async fn spawn(engine: Engine) -> Self {
        Self::spawn_with(engine, |_| {}).await
    }

    pub async fn spawn_with(engine: Engine, tune: impl FnOnce(&mut Config)) -> Self {
        let db = TestDb::new(engine).await;
        let url = db.url.clone();
        Self::spawn_at(db, &url, tune).await
    }

    /// A gateway whose database URL is `url` (a proxy, say) in front of `db`.
    pub async fn spawn_on(url: &str, db: &TestDb) -> Self {
        let db = TestDb {
            url: db.url.clone(),
            _dir: None,
            postgres: None,
        };
        Self::spawn_at(db, url, |_| {}).await
    }

    async fn spawn_at(db: TestDb, url: &str, tune: impl FnOnce(&mut Config)) -> Self {
        // `RUST_LOG=crisp_gateway=debug cargo test -- --nocapture` shows the gateway's logs.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let crisp = FakeCrisp::start().await;
        let store = store::connect(url).await.expect("connect");
        store.migrate().await.expect("migrate");
        let master = MasterKey::generate();
        let mut config = Config {
            database_url: url.into(),
            upstream: crisp.base.clone(),
            master_key: Some(master.clone()),
            refresh_interval: Duration::from_millis(100),
            // Tests that want the admin listener ask for one on a port of its own.
            admin_listen: None,
            ..Config::default()
        };
        tune(&mut config);
        let vault = Vault::new(&master);
        let workspace = create_workspace(&store, "acme").await.expect("workspace");
        add_account(
            &store,
            &vault,
            NewAccount {
                workspace_id: &workspace.workspace_id,
                label: "main",
                identifier: IDENTIFIER,
                website_id: WEBSITE,
                tier: Tier::Website,
                is_default: true,
                key: &CrispKey::new(CRISP_KEY),
            },
        )
        .await
        .expect("account");
        let key = create_key(&store, &workspace.workspace_id, Some("test".into()))
            .await
            .expect("key");
        let app = App::new(config, store.clone()).expect("app");
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind gateway");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(crisp_gateway::cli::serve_on(app.clone(), listener));
        Self {
            addr,
            app,
            store,
            crisp,
            key: key.reveal().to_owned(),
            key_id: KeyId::from(key.id()),
            workspace_id: workspace.workspace_id,
            vault,
            _db: db,
            http: reqwest::Client::new(),
        }
    }

    /// Another gateway on the same database and fake Crisp, with caches of its own: what a
    /// second replica is.
    pub async fn replica(&self) -> Self {
        let mut config = self.app.config.clone();
        config.refresh_interval = Config::default().refresh_interval;
        let app = App::new(config, self.db_store().await).expect("app");
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind gateway");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(crisp_gateway::cli::serve_on(app.clone(), listener));
        Self {
            addr,
            store: app.store.clone(),
            app,
            crisp: self.crisp.clone(),
            key: self.key.clone(),
            key_id: self.key_id.clone(),
            workspace_id: self.workspace_id.clone(),
            vault: self.vault.clone(),
            _db: TestDb {
                url: self._db.url.clone(),
                _dir: None,
                postgres: None,
            },
            http: reqwest::Client::new(),
        }
    }

    async fn db_store(&self) -> Arc<dyn Store> {
        store::connect(&self._db.url).await.expect("connect")
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Calls an action with the test key.
    pub async fn call(&self, action: &str, body: &str) -> Reply {
        self.call_with_key(action, body, Some(&self.key)).await
    }

    /// Calls an action `n` times at once with the test key; the replies in the calls' order.
    pub async fn calls_at_once(self: &Arc<Self>, n: usize, action: &str, body: &str) -> Vec<Reply> {
        let calls: Vec<_> = (0..n)
            .map(|_| {
                let (app, action, body) = (self.clone(), action.to_owned(), body.to_owned());
                tokio::spawn(async move { app.call(&action, &body).await })
            })
            .collect();
        let mut replies = Vec::with_capacity(n);
        for call in calls {
            replies.push(call.await.expect("the call's task"));
        }
        replies
    }

    pub async fn call_with_key(&self, action: &str, body: &str, key: Option<&str>) -> Reply {
        post_json(
            &self.http,
            &self.url(&format!("/api/crisp/{action}")),
            key,
            body,
        )
        .await
    }

    pub async fn get(&self, path: &str) -> Reply {
        get(&self.http, &self.url(path)).await
    }

    /// Lets the account `label` of the test workspace act on these websites besides its own,
    /// as `account update --websites` does, and drops this process's cached accounts.
    pub async fn allow_websites(&self, label: &str, websites: &str) {
        self.store
            .update_account(
                &self.workspace_id,
                label,
                &crisp_gateway::store::AccountUpdate {
                    allowed_websites: Some(Some(websites.to_owned())),
                    ..Default::default()
                },
            )
            .await
            .expect("allow websites");
        self.app.accounts.invalidate(self.workspace_id.as_str());
    }

    /// Adds an account of this tier to the test workspace, on the same website and fake Crisp.
    pub async fn add_tier_account(&self, label: &str, tier: Tier) {
        add_account(
            &self.store,
            &self.vault,
            NewAccount {
                workspace_id: &self.workspace_id,
                label,
                identifier: &format!("id-{label}"),
                website_id: WEBSITE,
                tier,
                is_default: false,
                key: &CrispKey::new(format!("crisp-key-{label}")),
            },
        )
        .await
        .expect("account");
        self.app.accounts.invalidate(self.workspace_id.as_str());
    }

    /// The audit rows written so far (the auditor's batch flushed first), newest first.
    pub async fn audit(&self) -> Vec<store::AuditRecord> {
        self.app.auditor.flush(Duration::from_secs(5)).await;
        self.store
            .list_audit(&store::AuditFilter {
                limit: 100,
                ..store::AuditFilter::default()
            })
            .await
            .expect("audit")
    }

    /// Adds another workspace with its own account and key; returns (workspace id, key).
    pub async fn other_workspace(&self, name: &str, label: &str) -> (WorkspaceId, String) {
        let workspace = create_workspace(&self.store, name)
            .await
            .expect("workspace");
        add_account(
            &self.store,
            &self.vault,
            NewAccount {
                workspace_id: &workspace.workspace_id,
                label,
                identifier: "id-other",
                website_id: "web-other",
                tier: Tier::Plugin,
                is_default: false,
                key: &CrispKey::new("crisp-key-other"),
            },
        )
        .await
        .expect("account");
        let key = create_key(&self.store, &workspace.workspace_id, None)
            .await
            .expect("key");
        (workspace.workspace_id, key.reveal().to_owned())
    }
}

/// POSTs a JSON body, with a bearer key when given.
pub async fn post_json(http: &reqwest::Client, url: &str, key: Option<&str>, body: &str) -> Reply {
    let mut request = http
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(key) = key {
        request = request.header("authorization", format!("Bearer {key}"));
    }
    Reply::from(request.send().await.expect("gateway answers")).await
}

pub async fn get(http: &reqwest::Client, url: &str) -> Reply {
    Reply::from(http.get(url).send().await.expect("gateway answers")).await
}

#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl Reply {
    async fn from(response: reqwest::Response) -> Self {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.expect("body");
        Self {
            status,
            headers,
            text,
        }
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The gateway's error envelope: the body, or the `data` of the JSON-RPC error that
    /// carries it on MCP paths.
    pub fn envelope(&self) -> Value {
        let json = self.json();
        if json.get("jsonrpc").is_some() {
            json["error"]["data"].clone()
        } else {
            json
        }
    }

    /// The error reason of an error envelope (and checks the envelope's shape).
    pub fn reason(&self) -> String {
        let json = self.envelope();
        assert_eq!(json["ok"], false, "{}", self.text);
        assert_eq!(json["error"]["status"], self.status, "{}", self.text);
        assert!(
            json["error"]["request_id"]
                .as_str()
                .is_some_and(|s| !s.is_empty()),
            "{}",
            self.text
        );
        assert_eq!(
            json["error"]["request_id"].as_str(),
            self.header("x-request-id"),
            "{}",
            self.text
        );
        json["error"]["reason"].as_str().expect("reason").to_owned()
    }

    pub fn message(&self) -> String {
        self.envelope()["error"]["message"]
            .as_str()
            .expect("message")
            .to_owned()
    }
}

/// Waits (bounded) until `check` holds, polling; for effects that land asynchronously.
pub async fn eventually<F, Fut>(within: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// What one run of the `crisp-gateway` binary printed.
#[derive(Debug)]
pub struct Output {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

/// The real `crisp-gateway` binary, run against one database in an environment of its own
/// (nothing leaks in from the developer's shell: no `CRISP_KEY`, no `DATABASE_URL`).
#[derive(Clone)]
pub struct Cli {
    pub database_url: String,
    env: Vec<(String, String)>,
}

impl Cli {
    pub fn new(database_url: &str) -> Self {
        Self {
            database_url: database_url.to_owned(),
            env: Vec::new(),
        }
    }

    /// The same database with one more variable set for every command.
    pub fn with_env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.to_owned(), value.to_owned()));
        self
    }

    /// A variable this CLI sets for every command.
    pub fn env(&self, name: &str) -> Option<&str> {
        self.env
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// A CLI for a fresh test database: on Postgres it carries a master key made by
    /// `master-key generate` (SQLite makes its own `master.key`).
    pub async fn for_db(db: &TestDb, engine: Engine) -> Self {
        let cli = Self::new(&db.url);
        match engine {
            Engine::Sqlite => cli,
            Engine::Postgres => {
                let key = cli.ok(&["master-key", "generate"]).await.stdout;
                cli.with_env("CRISP_GATEWAY_MASTER_KEY", key.trim())
            }
        }
    }

    pub fn command(&self, args: &[&str], env: &[(&str, &str)]) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_crisp-gateway"));
        command
            .args(args)
            .env_clear()
            .env("DATABASE_URL", &self.database_url)
            // Many gateways run at once in tests: none takes the default admin port unless asked.
            .env("CRISP_GATEWAY_ADMIN_LISTEN", "")
            .kill_on_drop(true);
        for (name, value) in &self.env {
            command.env(name, value);
        }
        for (name, value) in env {
            command.env(name, value);
        }
        command
    }

    /// Runs a command to the end, with extra variables and optional standard input.
    pub async fn run_with(
        &self,
        args: &[&str],
        env: &[(&str, &str)],
        stdin: Option<&str>,
    ) -> Output {
        use tokio::io::AsyncWriteExt;
        let mut command = self.command(args, env);
        command
            .stdin(if stdin.is_some() {
                std::process::Stdio::piped()
            } else {
                std::process::Stdio::null()
            })
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = command.spawn().expect("spawn crisp-gateway");
        if let Some(text) = stdin {
            let mut pipe = child.stdin.take().expect("stdin");
            pipe.write_all(text.as_bytes()).await.expect("write stdin");
            drop(pipe);
        }
        let output = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
            .await
            .unwrap_or_else(|_| {
                panic!("`crisp-gateway {}` did not finish in 120 s", args.join(" "))
            })
            .expect("crisp-gateway runs");
        Output {
            success: output.status.success(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    pub async fn run(&self, args: &[&str]) -> Output {
        self.run_with(args, &[], None).await
    }

    /// Runs a command that must succeed.
    pub async fn ok(&self, args: &[&str]) -> Output {
        self.ok_with(args, &[], None).await
    }

    pub async fn ok_with(
        &self,
        args: &[&str],
        env: &[(&str, &str)],
        stdin: Option<&str>,
    ) -> Output {
        let output = self.run_with(args, env, stdin).await;
        assert!(
            output.success,
            "`crisp-gateway {}` failed: {}",
            args.join(" "),
            output.stderr
        );
        output
    }

    /// `account add` to `workspace` with the Crisp key given as `CRISP_KEY`, as a user types it;
    /// `extra` adds flags such as `--default`. The command must succeed.
    pub async fn add_account(
        &self,
        workspace: &str,
        label: &str,
        (identifier, website_id): (&str, &str),
        crisp_key: &str,
        extra: &[&str],
    ) -> Output {
        let mut args = vec![
            "account",
            "add",
            "--workspace",
            workspace,
            "--label",
            label,
            "--identifier",
            identifier,
            "--website-id",
            website_id,
        ];
        args.extend_from_slice(extra);
        self.ok_with(&args, &[("CRISP_KEY", crisp_key)], None).await
    }

    /// Creates `workspace` with one account labelled `main` and returns a new key of it.
    pub async fn workspace_with_key(
        &self,
        workspace: &str,
        account: (&str, &str),
        crisp_key: &str,
    ) -> String {
        self.ok(&["workspace", "create", workspace]).await;
        self.add_account(workspace, "main", account, crisp_key, &[])
            .await;
        self.ok(&["key", "create", "--workspace", workspace])
            .await
            .stdout
            .trim()
            .to_owned()
    }

    /// Runs a command that must fail; nothing may appear on standard output.
    pub async fn fails(&self, args: &[&str]) -> Output {
        self.fails_with(args, &[], None).await
    }

    pub async fn fails_with(
        &self,
        args: &[&str],
        env: &[(&str, &str)],
        stdin: Option<&str>,
    ) -> Output {
        let output = self.run_with(args, env, stdin).await;
        assert!(
            !output.success,
            "`crisp-gateway {}` should have failed: {output:?}",
            args.join(" ")
        );
        assert!(output.stdout.is_empty(), "{output:?}");
        assert!(output.stderr.starts_with("error: "), "{output:?}");
        output
    }

    /// Starts `crisp-gateway serve` on a port the system picks, with JSON logs (standard output
    /// and error) written to `log`; returns once `/healthz` answers.
    pub async fn serve(&self, env: &[(&str, &str)], log: &std::path::Path) -> Server {
        let file = std::fs::File::create(log).expect("log file");
        let mut command = self.command(&["serve", "--listen", "127.0.0.1:0"], env);
        command
            .env("CRISP_GATEWAY_LOG_FORMAT", "json")
            .stdin(std::process::Stdio::null())
            .stdout(file.try_clone().expect("log file"))
            .stderr(file);
        let mut child = command.spawn().expect("spawn crisp-gateway serve");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        let addr = loop {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            if let Some(addr) = listening_address(&text) {
                break addr;
            }
            if let Some(status) = child.try_wait().expect("child status") {
                panic!("`crisp-gateway serve` exited ({status}) before listening:\n{text}");
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "`crisp-gateway serve` did not start listening within 60 s:\n{text}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        };
        let server = Server {
            child,
            addr,
            log: log.to_owned(),
            http: reqwest::Client::new(),
        };
        let mut server = server;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let healthy = server
                .http
                .get(server.url("/healthz"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if healthy {
                break;
            }
            // The main listener is bound before the others: a failed second bind ends the
            // process after its "listening" line, and the log says why.
            if let Some(status) = server.child.try_wait().expect("child status") {
                let text = std::fs::read_to_string(log).unwrap_or_default();
                panic!("`crisp-gateway serve` exited ({status}) after listening:\n{text}");
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "/healthz did not answer within 10 s"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        server
    }
}

/// The address in the "crisp-gateway is listening" JSON log line.
fn listening_address(log: &str) -> Option<SocketAddr> {
    logged_address(log, "crisp-gateway is listening")
}

/// The `addr` of the first JSON log line with this message: listeners log the address they
/// bound, so tests ask for port 0 and read the port here instead of racing for a free one.
fn logged_address(log: &str, message: &str) -> Option<SocketAddr> {
    log.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .find(|line| line["fields"]["message"] == message)
        .and_then(|line| line["fields"]["addr"].as_str()?.parse().ok())
}

/// A `crisp-gateway serve` child process; killed if the test ends without stopping it.
pub struct Server {
    child: tokio::process::Child,
    pub addr: SocketAddr,
    pub log: std::path::PathBuf,
    pub http: reqwest::Client,
}

impl Server {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The address another listener bound (its "… listening" log message), e.g. the admin
    /// listener asked for with port 0. The server may log it a moment after its main
    /// listener answers, so the log is read again for a while.
    pub fn listener(&self, message: &str) -> SocketAddr {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let text = std::fs::read_to_string(&self.log).unwrap_or_default();
            if let Some(addr) = logged_address(&text, message) {
                return addr;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no {message:?} line:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Calls an action with a key.
    pub async fn call(&self, key: Option<&str>, action: &str, body: &str) -> Reply {
        self.post(key, &format!("/api/crisp/{action}"), body).await
    }

    /// POSTs a JSON body to a path, with a key.
    pub async fn post(&self, key: Option<&str>, path: &str, body: &str) -> Reply {
        post_json(&self.http, &self.url(path), key, body).await
    }

    pub async fn get(&self, path: &str) -> Reply {
        get(&self.http, &self.url(path)).await
    }

    /// Stops the server with SIGTERM (a graceful shutdown, as an orchestrator would), waits
    /// for it (bounded), and returns everything it logged.
    pub async fn stop(mut self) -> String {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
        let exited = tokio::time::timeout(Duration::from_secs(20), self.child.wait()).await;
        if !matches!(exited, Ok(Ok(status)) if status.success()) {
            let _ = self.child.kill().await;
            panic!(
                "`crisp-gateway serve` did not stop cleanly on SIGTERM ({exited:?}):\n{}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
        }
        std::fs::read_to_string(&self.log).expect("read log")
    }
}

/// `Basic base64(identifier:key)`, the credential Crisp expects.
pub fn basic(identifier: &str, key: &str) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{identifier}:{key}"))
    )
}
