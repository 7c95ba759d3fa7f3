//! The admin command line, driven as a user drives it: the real binary, a real database, what
//! it prints on standard output and standard error, and its exit status.

use crisp_gateway::kernel::clock;
use crisp_gateway::secret::{MasterKey, Vault};
use crisp_gateway::store;

use crate::helpers::{Answer, Cli, Engine, FakeCrisp, TestDb, basic, engines};

const SCOPED: &str = "read-only, actions list/*,get/*";

/// Checks the shape of a printed key and returns its (id, secret) parts.
fn parse_key(stdout: &str) -> (String, String) {
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "only the key on standard output: {stdout:?}"
    );
    let key = lines[0];
    let rest = key
        .strip_prefix("sk_live_")
        .unwrap_or_else(|| panic!("key starts with sk_live_: {key}"));
    let (id, secret) = rest
        .split_once('_')
        .unwrap_or_else(|| panic!("key is sk_live_<id>_<secret>: {key}"));
    assert_eq!(id.len(), 16, "{key}");
    // 40 base62 characters: 40 × log2(62) ≈ 238 bits, more than the 192 required.
    assert_eq!(secret.len(), 40, "{key}");
    assert!(
        id.bytes()
            .chain(secret.bytes())
            .all(|b| b.is_ascii_alphanumeric()),
        "{key}"
    );
    (id.to_owned(), secret.to_owned())
}

/// The `key list` / `account list` row whose first column is `id`.
fn row<'a>(listing: &'a str, id: &str) -> &'a str {
    let rows: Vec<&str> = listing
        .lines()
        .filter(|l| l.split_whitespace().next() == Some(id))
        .collect();
    assert_eq!(rows.len(), 1, "one row for {id} in:\n{listing}");
    rows[0]
}

/// The columns of a `key list` row: ID WORKSPACE NAME STATUS EXPIRES LAST-USED QUOTA USED
/// REMAINING SCOPE…
fn key_columns(row: &str) -> Vec<&str> {
    row.split_whitespace().collect()
}

#[tokio::test]
async fn workspaces_and_keys_are_managed_from_the_command_line() {
    for engine in engines() {
        let db = TestDb::new(engine).await;
        let cli = Cli::for_db(&db, engine).await;

        let migrated = cli.ok(&["migrate"]).await;
        assert!(
            migrated.stderr.contains("migrations applied"),
            "{migrated:?}"
        );
        cli.ok(&["migrate"]).await; // again: nothing to do, still fine

        let created = cli.ok(&["workspace", "create", "acme"]).await;
        assert!(created.stderr.contains("acme"), "{created:?}");
        let duplicate = cli.fails(&["workspace", "create", "acme"]).await;
        assert!(
            duplicate
                .stderr
                .contains("a workspace named `acme` already exists"),
            "{duplicate:?}"
        );
        cli.ok(&["workspace", "create", "globex"]).await;
        let listing = cli.ok(&["workspace", "list"]).await.stdout;
        let names: Vec<&str> = listing
            .lines()
            .skip(1)
            .filter_map(|l| l.split_whitespace().nth(1))
            .collect();
        assert_eq!(names.len(), 2, "{listing}");
        assert!(
            names.contains(&"acme") && names.contains(&"globex"),
            "{listing}"
        );

        // The key alone on standard output, so `KEY=$(crisp-gateway key create …)` works.
        let created = cli
            .ok(&["key", "create", "--workspace", "acme", "--name", "ci"])
            .await;
        let (id, secret) = parse_key(&created.stdout);
        assert!(created.stderr.contains(&id), "{created:?}");
        assert!(!created.stderr.contains(&secret), "{created:?}");
        let (other_id, other_secret) = parse_key(
            &cli.ok(&["key", "create", "--workspace", "acme"])
                .await
                .stdout,
        );
        assert_ne!(id, other_id);
        assert_ne!(secret, other_secret);

        let unknown = cli.fails(&["key", "create", "--workspace", "nope"]).await;
        assert!(
            unknown.stderr.contains("no workspace named `nope`")
                && unknown.stderr.contains("workspace create nope"),
            "{unknown:?}"
        );

        let before = clock::now();
        let scoped = cli
            .ok(&[
                "key",
                "create",
                "--workspace",
                "acme",
                "--read-only",
                "--actions",
                "list/*,get/*",
                "--expires-in",
                "90d",
            ])
            .await;
        let after = clock::now();
        let (scoped_id, scoped_secret) = parse_key(&scoped.stdout);
        assert!(scoped.stderr.contains(SCOPED), "{scoped:?}");

        let listing = cli.ok(&["key", "list"]).await.stdout;
        for secret in [&secret, &other_secret, &scoped_secret] {
            assert!(!listing.contains(secret.as_str()), "{listing}");
        }
        assert!(!listing.contains("sk_live_"), "{listing}");
        assert!(!listing.contains("$argon2"), "{listing}");
        let full = key_columns(row(&listing, &id));
        assert_eq!(
            full[1..6],
            ["acme", "ci", "active", "-", "-"],
            "workspace, name, status, no expiry, never used: {full:?}"
        );
        assert_eq!(
            full[6..9],
            ["-", "-", "-"],
            "no quota, so nothing used or remaining: {full:?}"
        );
        assert_eq!(full[9..].join(" "), "all actions", "{full:?}");
        let limited = key_columns(row(&listing, &scoped_id));
        assert_eq!(limited[3], "active", "{limited:?}");
        let expires = clock::parse_rfc3339(limited[4]).expect("an RFC 3339 expiry");
        let ninety_days = 90 * 86_400;
        assert!(
            (before + ninety_days..=after + ninety_days).contains(&expires),
            "expires 90 days after creation: {limited:?}"
        );
        assert_eq!(limited[9..].join(" "), SCOPED, "{limited:?}");
        let per_workspace = cli
            .ok(&["key", "list", "--workspace", "globex"])
            .await
            .stdout;
        assert_eq!(
            per_workspace.lines().count(),
            1,
            "header only: {per_workspace}"
        );

        // Mistakes are refused before anything is created, with the problem named.
        let bad_glob = cli
            .fails(&["key", "create", "--workspace", "acme", "--actions", "lst/*"])
            .await;
        assert!(
            bad_glob.stderr.contains("`lst/*` matches no action"),
            "{bad_glob:?}"
        );
        let bad_duration = cli
            .fails(&[
                "key",
                "create",
                "--workspace",
                "acme",
                "--expires-in",
                "5parsecs",
            ])
            .await;
        assert!(
            bad_duration.stderr.contains("`5parsecs` is not a duration"),
            "{bad_duration:?}"
        );
        let past = cli
            .fails(&[
                "key",
                "create",
                "--workspace",
                "acme",
                "--expires-at",
                "2001-01-01T00:00:00Z",
            ])
            .await;
        assert!(past.stderr.contains("in the past"), "{past:?}");
        let listing = cli.ok(&["key", "list"]).await.stdout;
        assert_eq!(
            listing.lines().count(),
            1 + 3,
            "no key was added: {listing}"
        );

        let revoked = cli.ok(&["key", "revoke", &other_id]).await;
        assert!(revoked.stderr.contains(&other_id), "{revoked:?}");
        let listing = cli.ok(&["key", "list"]).await.stdout;
        assert_eq!(key_columns(row(&listing, &other_id))[3], "revoked");
        assert_eq!(key_columns(row(&listing, &id))[3], "active");
        let missing = cli.fails(&["key", "revoke", "nope"]).await;
        assert!(
            missing.stderr.contains("no key with id `nope`"),
            "{missing:?}"
        );

        // Rotation prints a new key with the same scopes; with no overlap the old one stops now.
        let rotated = cli
            .ok(&["key", "rotate", &scoped_id, "--overlap", "0s"])
            .await;
        let (new_id, new_secret) = parse_key(&rotated.stdout);
        assert_ne!(new_id, scoped_id);
        assert_ne!(new_secret, scoped_secret);
        assert!(rotated.stderr.contains(&scoped_id), "{rotated:?}");
        let listing = cli.ok(&["key", "list"]).await.stdout;
        let new_row = key_columns(row(&listing, &new_id));
        assert_eq!(new_row[3], "active", "{new_row:?}");
        assert_eq!(new_row[9..].join(" "), SCOPED, "{new_row:?}");
        let old_row = key_columns(row(&listing, &scoped_id));
        assert_ne!(old_row[3], "active", "{old_row:?}");
        let again = cli
            .fails(&["key", "rotate", &scoped_id, "--overlap", "0s"])
            .await;
        assert!(
            again.stderr.contains("already revoked or expired"),
            "{again:?}"
        );
    }
}

#[tokio::test]
async fn accounts_are_linked_without_their_key_ever_on_the_command_line() {
    for engine in engines() {
        let db = TestDb::new(engine).await;
        let cli = Cli::for_db(&db, engine).await;
        cli.ok(&["workspace", "create", "acme"]).await;

        let first_key = "crisp-key-from-env-7d1f";
        let added = cli
            .ok_with(
                &[
                    "account",
                    "add",
                    "--workspace",
                    "acme",
                    "--label",
                    "main",
                    "--identifier",
                    "ident-main",
                    "--website-id",
                    "web-main",
                    "--default",
                ],
                &[("CRISP_KEY", first_key)],
                None,
            )
            .await;
        let main_id = added.stdout.trim().to_owned();
        assert!(!main_id.is_empty() && !main_id.contains(char::is_whitespace));
        assert!(!added.stderr.contains(first_key), "{added:?}");

        // From standard input, with identifier and website from the connector's variables.
        let second_key = "crisp-key-from-stdin-9a2c";
        let added = cli
            .ok_with(
                &[
                    "account",
                    "add",
                    "--workspace",
                    "acme",
                    "--label",
                    "shop",
                    "--tier",
                    "plugin",
                    "--key-stdin",
                ],
                &[
                    ("CRISP_IDENTIFIER", "ident-shop"),
                    ("CRISP_WEBSITE_ID", "web-shop"),
                ],
                Some(&format!("{second_key}\n")),
            )
            .await;
        let shop_id = added.stdout.trim().to_owned();

        let refused = cli
            .fails(&[
                "account",
                "add",
                "--workspace",
                "acme",
                "--label",
                "third",
                "--identifier",
                "i",
                "--website-id",
                "w",
            ])
            .await;
        assert!(refused.stderr.contains("CRISP_KEY"), "{refused:?}");
        assert!(refused.stderr.contains("--key-stdin"), "{refused:?}");
        let no_identifier = cli
            .fails_with(
                &[
                    "account",
                    "add",
                    "--workspace",
                    "acme",
                    "--label",
                    "third",
                    "--website-id",
                    "w",
                ],
                &[("CRISP_KEY", "k")],
                None,
            )
            .await;
        assert!(
            no_identifier.stderr.contains("--identifier"),
            "{no_identifier:?}"
        );
        let unknown = cli
            .fails_with(
                &[
                    "account",
                    "add",
                    "--workspace",
                    "nope",
                    "--label",
                    "x",
                    "--identifier",
                    "i",
                    "--website-id",
                    "w",
                ],
                &[("CRISP_KEY", "k")],
                None,
            )
            .await;
        assert!(
            unknown.stderr.contains("no workspace named `nope`"),
            "{unknown:?}"
        );

        let listing = cli.ok(&["account", "list"]).await.stdout;
        assert!(
            !listing.contains(first_key) && !listing.contains(second_key),
            "{listing}"
        );
        assert_eq!(listing.lines().count(), 1 + 2, "{listing}");
        let main: Vec<&str> = row(&listing, &main_id).split_whitespace().collect();
        assert_eq!(
            main[1..],
            [
                "acme",
                "main",
                "web-main",
                "website",
                "25/s",
                "(default)",
                "32",
                "(default)",
                "yes"
            ]
        );
        let shop: Vec<&str> = row(&listing, &shop_id).split_whitespace().collect();
        assert_eq!(
            shop[1..],
            [
                "acme",
                "shop",
                "web-shop",
                "plugin",
                "25/s",
                "(default)",
                "32",
                "(default)"
            ]
        );

        // An account's own budget: per second or minute, back to the default, bad input refused.
        let update_shop = |options: &[&'static str]| {
            let mut args = vec!["account", "update", "shop", "--workspace", "acme"];
            args.extend_from_slice(options);
            args
        };
        let set = cli
            .ok(&update_shop(&["--rate", "600/min", "--concurrency", "8"]))
            .await;
        assert!(
            set.stderr
                .contains("budget 10/s, 8 at once, across all replicas"),
            "{set:?}"
        );
        let listing = cli.ok(&["account", "list"]).await.stdout;
        let shop: Vec<&str> = row(&listing, &shop_id).split_whitespace().collect();
        assert_eq!(shop[5..], ["10/s", "8"]);
        let bad = cli.fails(&update_shop(&["--rate", "10"])).await;
        assert!(
            bad.stderr.contains("`10` is not a rate") && bad.stderr.contains("`600/min`"),
            "{bad:?}"
        );
        let bad = cli.fails(&update_shop(&["--concurrency", "0"])).await;
        assert!(bad.stderr.contains("at least 1"), "{bad:?}");
        cli.ok(&update_shop(&[
            "--rate",
            "default",
            "--concurrency",
            "default",
        ]))
        .await;
        let listing = cli.ok(&["account", "list"]).await.stdout;
        let shop: Vec<&str> = row(&listing, &shop_id).split_whitespace().collect();
        assert_eq!(shop[5..], ["25/s", "(default)", "32", "(default)"]);

        // What was stored opens to the keys given, under the master key in use.
        let vault = Vault::new(&master_key(&db, &cli, engine));
        let store = store::connect(&db.url).await.expect("connect");
        let stored = |records: &[store::AccountRecord], id: &str| {
            let record = records
                .iter()
                .find(|r| r.crisp_account_id == id)
                .expect("account row");
            assert!(
                !record.sealed_key.contains("crisp-key"),
                "encrypted at rest"
            );
            (
                record.identifier.clone(),
                vault
                    .open(id, &record.sealed_key)
                    .expect("opens")
                    .expose()
                    .to_owned(),
            )
        };
        let records = store.list_accounts(None).await.expect("accounts");
        assert_eq!(
            stored(&records, &main_id),
            ("ident-main".into(), first_key.into())
        );
        assert_eq!(
            stored(&records, &shop_id),
            ("ident-shop".into(), second_key.into())
        );

        let new_key = "crisp-key-rotated-51be";
        let updated = cli
            .ok_with(
                &[
                    "account",
                    "update",
                    "main",
                    "--workspace",
                    "acme",
                    "--label",
                    "primary",
                    "--key-from-env",
                ],
                &[("CRISP_KEY", new_key)],
                None,
            )
            .await;
        assert!(updated.stderr.contains("primary"), "{updated:?}");
        assert!(!updated.stderr.contains(new_key), "{updated:?}");
        let records = store.list_accounts(None).await.expect("accounts");
        assert_eq!(
            stored(&records, &main_id),
            ("ident-main".into(), new_key.into())
        );
        let listing = cli
            .ok(&["account", "list", "--workspace", "acme"])
            .await
            .stdout;
        let main: Vec<&str> = row(&listing, &main_id).split_whitespace().collect();
        assert_eq!(main[1..5], ["acme", "primary", "web-main", "website"]);
        assert_eq!(main.last(), Some(&"yes"));
        assert!(!listing.contains(new_key), "{listing}");
        let missing = cli
            .fails(&[
                "account",
                "update",
                "main",
                "--workspace",
                "acme",
                "--label",
                "x",
            ])
            .await;
        assert!(
            missing.stderr.contains("no account `main`"),
            "the old label is gone: {missing:?}"
        );

        let removed = cli
            .ok(&["account", "remove", "shop", "--workspace", "acme"])
            .await;
        assert!(removed.stderr.contains(&shop_id), "{removed:?}");
        let listing = cli.ok(&["account", "list"]).await.stdout;
        assert_eq!(listing.lines().count(), 1 + 1, "{listing}");
        assert!(!listing.contains("shop"), "{listing}");
        let again = cli
            .fails(&["account", "remove", "shop", "--workspace", "acme"])
            .await;
        assert!(again.stderr.contains("no account `shop`"), "{again:?}");
    }
}

/// The master key a CLI uses: `master.key` beside a SQLite file, the environment on Postgres.
fn master_key(db: &TestDb, cli: &Cli, engine: Engine) -> MasterKey {
    let text = match engine {
        Engine::Sqlite => std::fs::read_to_string(master_key_path(db)).expect("master.key"),
        Engine::Postgres => cli_master_key(cli),
    };
    MasterKey::from_base64(&text).expect("a valid master key")
}

fn cli_master_key(cli: &Cli) -> String {
    cli.env("CRISP_GATEWAY_MASTER_KEY")
        .expect("a Postgres CLI carries a master key")
        .to_owned()
}

fn master_key_path(db: &TestDb) -> std::path::PathBuf {
    let file = db.url.strip_prefix("sqlite://").expect("a SQLite URL");
    std::path::Path::new(file)
        .parent()
        .expect("folder")
        .join("master.key")
}

#[tokio::test]
async fn master_key_rotation_re_encrypts_and_the_gateway_still_reaches_crisp() {
    for engine in engines() {
        let db = TestDb::new(engine).await;
        let mut cli = Cli::for_db(&db, engine).await;
        let crisp_key = "crisp-key-before-rotation-3c7e";
        cli.ok(&["workspace", "create", "acme"]).await;
        cli.add_account("acme", "main", ("ident-rot", "web-rot"), crisp_key, &[])
            .await;
        let key = cli
            .ok(&["key", "create", "--workspace", "acme"])
            .await
            .stdout;
        parse_key(&key);
        let key = key.trim().to_owned();

        let old_master = master_key(&db, &cli, engine);
        if engine == Engine::Sqlite {
            // The embedded default made its own master key, beside the database, owner-only.
            let path = master_key_path(&db);
            assert_mode_600(&path);
        }

        let rotated = cli.ok(&["master-key", "rotate"]).await;
        assert!(
            rotated.stderr.contains("re-encrypted 1 Crisp key(s)"),
            "{rotated:?}"
        );
        match engine {
            Engine::Sqlite => {
                let path = master_key_path(&db);
                assert!(rotated.stdout.is_empty(), "{rotated:?}");
                assert_mode_600(&path);
                assert!(
                    !path.with_extension("key.next").exists(),
                    "the temporary file is gone"
                );
            }
            Engine::Postgres => {
                assert!(
                    rotated.stderr.contains("CRISP_GATEWAY_MASTER_KEY"),
                    "{rotated:?}"
                );
                let new = rotated.stdout.trim().to_owned();
                assert!(MasterKey::from_base64(&new).is_ok(), "{rotated:?}");
                cli = Cli::new(&db.url).with_env("CRISP_GATEWAY_MASTER_KEY", &new);
            }
        }
        let new_master = master_key(&db, &cli, engine);
        assert_ne!(new_master.to_base64(), old_master.to_base64());
        let store = store::connect(&db.url).await.expect("connect");
        let record = store
            .list_accounts(None)
            .await
            .expect("accounts")
            .pop()
            .expect("one account");
        assert!(
            Vault::new(&old_master)
                .open(record.crisp_account_id.as_str(), &record.sealed_key)
                .is_err(),
            "the old master key no longer opens the secret"
        );

        // A gateway started afterwards still sends the right credentials to Crisp.
        let crisp = FakeCrisp::start().await;
        crisp.script(Answer::ok(r#"[{"session_id":"s1"}]"#));
        let dir = tempfile::tempdir().expect("tempdir");
        let server = cli
            .serve(
                &[("CRISP_GATEWAY_UPSTREAM", &crisp.base)],
                &dir.path().join("serve.log"),
            )
            .await;
        let reply = server.call(Some(&key), "list/conversations", "{}").await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        assert_eq!(reply.json()["result"][0]["session_id"], "s1");
        let received = crisp.received();
        assert_eq!(received.len(), 1);
        assert_eq!(
            received[0].header("authorization"),
            Some(basic("ident-rot", crisp_key).as_str())
        );
        assert_eq!(
            received[0].path, "/v1/website/web-rot/conversations/1",
            "{received:?}"
        );
        server.stop().await;
    }
}

fn assert_mode_600(path: &std::path::Path) {
    let metadata =
        std::fs::metadata(path).unwrap_or_else(|e| panic!("{} should exist: {e}", path.display()));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            metadata.permissions().mode() & 0o777,
            0o600,
            "{} is owner-only",
            path.display()
        );
    }
    #[cfg(not(unix))]
    let _ = metadata;
}

#[tokio::test]
async fn serve_on_postgres_without_a_master_key_refuses_and_says_how_to_make_one() {
    if !engines().contains(&Engine::Postgres) {
        return;
    }
    let db = TestDb::new(Engine::Postgres).await;
    let cli = Cli::new(&db.url);
    let output = cli.run(&["serve", "--listen", "127.0.0.1:0"]).await;
    assert!(!output.success, "{output:?}");
    assert!(
        output
            .stderr
            .contains("CRISP_GATEWAY_MASTER_KEY is not set")
            && output.stderr.contains("crisp-gateway master-key generate"),
        "{output:?}"
    );
    // The same for an admin command that needs it.
    cli.ok(&["workspace", "create", "acme"]).await;
    let refused = cli
        .fails_with(
            &[
                "account",
                "add",
                "--workspace",
                "acme",
                "--label",
                "main",
                "--identifier",
                "i",
                "--website-id",
                "w",
            ],
            &[("CRISP_KEY", "k")],
            None,
        )
        .await;
    assert!(
        refused.stderr.contains("master-key generate"),
        "{refused:?}"
    );
}

/// With `worker_threads = 1` the gateway runs a single-threaded scheduler (what it picks by
/// itself on one core): calls still verify their key (argon2 on the blocking pool), reach
/// Crisp and answer, over REST and MCP; a value that is not a number stops `serve` with a
/// message saying so.
#[tokio::test]
async fn serve_on_one_worker_thread_answers_calls() {
    let db = TestDb::new(Engine::Sqlite).await;
    let cli = Cli::for_db(&db, Engine::Sqlite).await;
    let key = cli
        .workspace_with_key("acme", ("ident-one", "web-one"), "crisp-key-one-thread")
        .await;

    let refused = cli
        .fails_with(
            &["serve", "--listen", "127.0.0.1:0"],
            &[("CRISP_GATEWAY_WORKER_THREADS", "one")],
            None,
        )
        .await;
    assert!(
        refused
            .stderr
            .contains("worker_threads: `one` is not a valid number"),
        "{refused:?}"
    );

    let crisp = FakeCrisp::start().await;
    crisp.script(Answer::ok(r#"[{"session_id":"s1"}]"#));
    crisp.script(Answer::ok(r#"[{"session_id":"s2"}]"#));
    let dir = tempfile::tempdir().expect("tempdir");
    let server = cli
        .serve(
            &[
                ("CRISP_GATEWAY_UPSTREAM", &crisp.base),
                ("CRISP_GATEWAY_WORKER_THREADS", "1"),
            ],
            &dir.path().join("serve.log"),
        )
        .await;
    let log = std::fs::read_to_string(&server.log).expect("log");
    let listening = log
        .lines()
        .find(|l| l.contains("crisp-gateway is listening"))
        .expect("the listening line");
    assert!(listening.contains(r#""threads":1"#), "{listening}");
    for session in ["s1", "s2"] {
        let reply = server.call(Some(&key), "list/conversations", "{}").await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        assert_eq!(reply.json()["result"][0]["session_id"], session);
    }
    // The MCP endpoint (its sessions are tasks of their own) answers on the same thread.
    crisp.script(Answer::ok(r#"[{"session_id":"s3"}]"#));
    let rpc = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "crisp_list_conversations", "arguments": {}}});
    let mcp = server
        .http
        .post(server.url("/mcp/all"))
        .bearer_auth(&key)
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .body(rpc.to_string())
        .send()
        .await
        .expect("gateway answers");
    assert_eq!(mcp.status(), 200);
    let mcp = mcp.text().await.expect("body");
    assert!(mcp.contains("s3"), "{mcp}");
    let refused = server
        .call(Some("sk_live_notakey"), "list/conversations", "{}")
        .await;
    assert_eq!(refused.status, 401, "{}", refused.text);
    assert_eq!(crisp.received().len(), 3);
    server.stop().await;
}
