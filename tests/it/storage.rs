//! One conformance story for the storage trait, run on every engine; and the two migration
//! folders kept in step.

use crisp_gateway::store::{
    AccountRecord, AccountUpdate, ApiKeyRecord, BudgetDecision, BudgetLease, ChangeKind,
    IdempotencyState, StoreError, Tier, Workspace,
};

use crate::helpers::{TestDb, engines};

fn workspace(id: &str, name: &str) -> Workspace {
    Workspace {
        workspace_id: id.into(),
        name: name.into(),
        created_at: 1_700_000_000,
    }
}

fn key(id: &str, workspace_id: &str) -> ApiKeyRecord {
    ApiKeyRecord {
        api_key_id: id.into(),
        workspace_id: workspace_id.into(),
        name: Some(format!("{id} name")),
        secret_hash: format!("$argon2id$hash-of-{id}"),
        read_only: true,
        allowed_actions: Some("list/*,get/*".into()),
        created_at: 1_700_000_001,
        expires_at: Some(1_800_000_000),
        revoked_at: None,
        last_used_at: None,
        allowed_websites: Some(format!("web-{id},web-shared")),
        quota_limit: Some(500),
        quota_period: Some(crisp_gateway::store::QuotaPeriod::Day),
    }
}

fn account(id: &str, workspace_id: &str, label: &str, is_default: bool) -> AccountRecord {
    AccountRecord {
        crisp_account_id: id.into(),
        workspace_id: workspace_id.into(),
        label: label.into(),
        identifier: format!("ident-{id}"),
        sealed_key: format!("v1:sealed-{id}"),
        website_id: format!("web-{id}"),
        tier: Tier::Plugin,
        is_default,
        created_at: 1_700_000_002,
        allowed_websites: Some(format!("web-{id}-more")),
        rate_limit: None,
        max_concurrency: None,
    }
}

#[tokio::test]
async fn storage_conformance() {
    for engine in engines() {
        let db = TestDb::new(engine).await;
        let store = db.store().await;
        store.migrate().await.expect("migrations are idempotent");
        store.ping().await.expect("ping");
        assert_eq!(store.last_change().await.expect("last"), 0);

        // Workspaces.
        store
            .create_workspace(&workspace("ws_b", "beta"))
            .await
            .expect("create");
        store
            .create_workspace(&workspace("ws_a", "alpha"))
            .await
            .expect("create");
        assert!(matches!(
            store.create_workspace(&workspace("ws_c", "alpha")).await,
            Err(StoreError::Conflict)
        ));
        assert_eq!(
            store.find_workspace("beta").await.expect("find"),
            workspace("ws_b", "beta")
        );
        assert!(matches!(
            store.find_workspace("gamma").await,
            Err(StoreError::NotFound)
        ));
        let names: Vec<_> = store
            .list_workspaces()
            .await
            .expect("list")
            .into_iter()
            .map(|w| w.name)
            .collect();
        assert_eq!(names, ["alpha", "beta"]);

        // Keys.
        store.create_key(&key("k1", "ws_a")).await.expect("key");
        store.create_key(&key("k2", "ws_b")).await.expect("key");
        assert!(matches!(
            store.create_key(&key("k1", "ws_b")).await,
            Err(StoreError::Conflict)
        ));
        assert_eq!(
            store.find_key(&"k1".into()).await.expect("find"),
            key("k1", "ws_a")
        );
        assert!(matches!(
            store.find_key(&"k9".into()).await,
            Err(StoreError::NotFound)
        ));
        assert_eq!(
            store.list_keys(Some(&"ws_b".into())).await.expect("list"),
            [key("k2", "ws_b")]
        );
        assert_eq!(store.list_keys(None).await.expect("list").len(), 2);
        store
            .revoke_key(&"k1".into(), 1_700_000_100)
            .await
            .expect("revoke");
        store
            .revoke_key(&"k1".into(), 1_700_000_200)
            .await
            .expect("revoking twice is fine");
        assert_eq!(
            store.find_key(&"k1".into()).await.expect("find").revoked_at,
            Some(1_700_000_100)
        );
        assert!(matches!(
            store.revoke_key(&"k9".into(), 1).await,
            Err(StoreError::NotFound)
        ));

        // Accounts: one default per workspace; labels unique per workspace only.
        store
            .add_account(&account("a1", "ws_a", "main", true))
            .await
            .expect("add");
        store
            .add_account(&account("a2", "ws_a", "eu", true))
            .await
            .expect("add");
        store
            .add_account(&account("a3", "ws_b", "main", false))
            .await
            .expect("same label elsewhere");
        assert!(matches!(
            store.add_account(&account("a4", "ws_a", "eu", false)).await,
            Err(StoreError::Conflict)
        ));
        let mine = store
            .list_accounts(Some(&"ws_a".into()))
            .await
            .expect("list");
        assert_eq!(
            mine,
            [
                account("a2", "ws_a", "eu", true),
                account("a1", "ws_a", "main", false)
            ]
        );
        assert_eq!(store.list_accounts(None).await.expect("all").len(), 3);
        assert!(
            matches!(
                store.remove_account(&"ws_b".into(), "eu").await,
                Err(StoreError::NotFound)
            ),
            "other workspace"
        );
        assert_eq!(
            store
                .remove_account(&"ws_a".into(), "eu")
                .await
                .expect("by label")
                .crisp_account_id,
            "a2"
        );
        assert_eq!(
            store
                .remove_account(&"ws_a".into(), "a1")
                .await
                .expect("by id")
                .label,
            "main"
        );
        assert!(
            store
                .list_accounts(Some(&"ws_a".into()))
                .await
                .expect("list")
                .is_empty()
        );

        // The change log saw every change that running gateways must hear about, in order.
        let changes = store.changes_since(0).await.expect("changes");
        let seen: Vec<_> = changes
            .iter()
            .map(|c| (c.kind, c.subject_id.as_str()))
            .collect();
        assert_eq!(
            seen,
            [
                (ChangeKind::Key, "k1"),
                (ChangeKind::Key, "k1"),
                (ChangeKind::Accounts, "ws_a"),
                (ChangeKind::Accounts, "ws_a"),
                (ChangeKind::Accounts, "ws_b"),
                (ChangeKind::Accounts, "ws_a"),
                (ChangeKind::Accounts, "ws_a"),
            ],
            "{engine:?}"
        );
        let last = store.last_change().await.expect("last");
        assert_eq!(last, changes.last().expect("some").change_id);
        assert!(store.changes_since(last).await.expect("none").is_empty());
    }
}

/// Records a fixed lease and reports the other live leases the store showed it.
fn lease(rate: f64, slots: i64) -> impl Fn(usize, &[BudgetLease]) -> BudgetDecision + Send + Sync {
    move |_, _| BudgetDecision {
        want_rate: rate * 2.0,
        want_slots: slots * 2,
        rate,
        slots,
    }
}

#[tokio::test]
async fn storage_conformance_budget_leases_and_account_budgets() {
    for engine in engines() {
        let db = TestDb::new(engine).await;
        let store = db.store().await;
        let budgets = ["account:a1".to_owned(), "key:k1".to_owned()];
        let now = 1_700_000_000_000_i64;

        // A first replica: nothing else holds the budgets.
        let seen = std::sync::Mutex::new(Vec::new());
        let decide = |i: usize, others: &[BudgetLease]| {
            seen.lock().expect("lock").push((i, others.len()));
            BudgetDecision {
                want_rate: 20.0,
                want_slots: 8,
                rate: 12.5,
                slots: 5,
            }
        };
        let renewed = store
            .renew_budget_leases("r1", &budgets, now, now + 1000, &[], &decide)
            .await
            .expect("renew");
        assert_eq!(renewed.len(), 2);
        assert_eq!(renewed[0].lease.budget_name, "account:a1");
        assert_eq!(
            (
                renewed[0].lease.rate,
                renewed[0].lease.slots,
                renewed[0].replicas
            ),
            (12.5, 5, 1)
        );
        assert_eq!(renewed[1].lease.want_rate, 20.0);
        assert_eq!(*seen.lock().expect("lock"), vec![(0, 0), (1, 0)]);

        // A second replica sees the first one's lease (never its own), and both are live.
        let others = std::sync::Mutex::new(Vec::new());
        let watch = |_: usize, leases: &[BudgetLease]| {
            others.lock().expect("lock").extend(leases.iter().cloned());
            lease(3.0, 1)(0, leases)
        };
        let renewed = store
            .renew_budget_leases("r2", &budgets[..1], now + 100, now + 1100, &[], &watch)
            .await
            .expect("renew r2");
        assert_eq!(renewed[0].replicas, 2);
        let others = others.into_inner().expect("lock");
        assert_eq!(others.len(), 1);
        assert_eq!(
            (
                others[0].replica_id.as_str(),
                others[0].rate,
                others[0].want_slots,
                others[0].expires_at
            ),
            ("r1", 12.5, 8, now + 1000)
        );
        let live = store
            .budget_leases("account:a1", now + 500)
            .await
            .expect("live");
        assert_eq!(live.len(), 2);

        // Renewing again updates the row in place.
        store
            .renew_budget_leases(
                "r2",
                &budgets[..1],
                now + 200,
                now + 1200,
                &[],
                &lease(4.0, 2),
            )
            .await
            .expect("renew again");
        let live = store
            .budget_leases("account:a1", now + 500)
            .await
            .expect("live");
        assert_eq!(
            (live[1].replica_id.as_str(), live[1].rate, live[1].slots),
            ("r2", 4.0, 2)
        );

        // `r1` stops renewing: past its expiry it is gone, for the listing and for a renewal.
        let live = store
            .budget_leases("account:a1", now + 1000)
            .await
            .expect("live");
        assert_eq!(live.len(), 1, "expired at its expires_at");
        let renewed = store
            .renew_budget_leases(
                "r2",
                &budgets[..1],
                now + 1050,
                now + 2050,
                &[],
                &lease(4.0, 2),
            )
            .await
            .expect("renew after expiry");
        assert_eq!(renewed[0].replicas, 1);

        // A release drops the replica's lease at once, and only its own.
        store
            .renew_budget_leases(
                "r1",
                &budgets[1..],
                now + 1060,
                now + 2060,
                &[],
                &lease(1.0, 0),
            )
            .await
            .expect("r1 back on the key");
        store
            .renew_budget_leases("r2", &[], now + 1070, now + 2070, &budgets, &lease(0.0, 0))
            .await
            .expect("release");
        assert!(
            store
                .budget_leases("account:a1", now + 1080)
                .await
                .expect("live")
                .is_empty()
        );
        assert_eq!(
            store
                .budget_leases("key:k1", now + 1080)
                .await
                .expect("live")
                .len(),
            1
        );

        // An account's own budget: stored, changed, and returned to the default.
        store
            .create_workspace(&workspace("ws_a", "alpha"))
            .await
            .expect("workspace");
        let mut record = account("a1", "ws_a", "main", true);
        record.rate_limit = Some(10.0);
        record.max_concurrency = Some(8);
        store.add_account(&record).await.expect("add");
        let listed = store.list_accounts(None).await.expect("list");
        assert_eq!(
            (listed[0].rate_limit, listed[0].max_concurrency),
            (Some(10.0), Some(8))
        );
        let updated = store
            .update_account(
                &"ws_a".into(),
                "main",
                &AccountUpdate {
                    rate_limit: Some(Some(2.5)),
                    ..AccountUpdate::default()
                },
            )
            .await
            .expect("update");
        assert_eq!(
            (updated.rate_limit, updated.max_concurrency),
            (Some(2.5), Some(8))
        );
        let updated = store
            .update_account(
                &"ws_a".into(),
                "main",
                &AccountUpdate {
                    rate_limit: Some(None),
                    max_concurrency: Some(None),
                    ..AccountUpdate::default()
                },
            )
            .await
            .expect("back to the defaults");
        assert_eq!((updated.rate_limit, updated.max_concurrency), (None, None));
    }
}

#[test]
fn migration_folders_are_in_step() {
    let files = |engine: &str| {
        let mut names: Vec<String> = std::fs::read_dir(format!(
            "{}/migrations/{engine}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .expect("folder")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
        names.sort();
        names
    };
    assert_eq!(files("sqlite"), files("postgres"));
    // The same tables, columns and indexes: compare those statements, with the one
    // engine-specific column type normalised. (Postgres alone also has a NOTIFY trigger.)
    for name in files("sqlite") {
        let read = |engine: &str| {
            let text = std::fs::read_to_string(format!(
                "{}/migrations/{engine}/{name}",
                env!("CARGO_MANIFEST_DIR")
            ))
            .expect("read");
            text.split(';')
                .map(|statement| {
                    statement
                        .lines()
                        .filter(|l| !l.trim_start().starts_with("--"))
                        .collect::<Vec<_>>()
                        .join("\n")
                        .trim()
                        .replace("integer primary key autoincrement", "bigserial primary key")
                })
                .filter(|statement| {
                    statement.starts_with("create table")
                        || statement.starts_with("create index")
                        || statement.starts_with("alter table")
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(read("sqlite"), read("postgres"), "{name}");
    }
}

#[tokio::test]
async fn storage_conformance_keys_accounts_audit_reports_idempotency() {
    use crisp_gateway::store::{
        AuditFilter, AuditRecord, IdempotencyRecord, ReportRecord, WorkspaceId,
    };
    for engine in engines() {
        let db = TestDb::new(engine).await;
        let store = db.store().await;
        store
            .create_workspace(&workspace("ws_a", "alpha"))
            .await
            .expect("ws");
        store
            .create_workspace(&workspace("ws_b", "beta"))
            .await
            .expect("ws");

        // Rotation: the new key lands and the old one gets its end, atomically.
        store.create_key(&key("k1", "ws_a")).await.expect("key");
        let mut new = key("k2", "ws_a");
        new.expires_at = None;
        store
            .rotate_key(&"k1".into(), &new, 1_750_000_000)
            .await
            .expect("rotate");
        assert_eq!(
            store.find_key(&"k1".into()).await.expect("old").expires_at,
            Some(1_750_000_000)
        );
        assert_eq!(store.find_key(&"k2".into()).await.expect("new"), new);
        assert!(matches!(
            store.rotate_key(&"k9".into(), &key("k3", "ws_a"), 1).await,
            Err(StoreError::NotFound)
        ));
        assert!(
            matches!(
                store.find_key(&"k3".into()).await,
                Err(StoreError::NotFound)
            ),
            "nothing half-written"
        );
        store
            .touch_keys(&[("k2".into(), 1_700_000_500), ("k2".into(), 1_700_000_400)])
            .await
            .expect("touch");
        assert_eq!(
            store.find_key(&"k2".into()).await.expect("k2").last_used_at,
            Some(1_700_000_500),
            "never goes back"
        );

        // Account updates, and resealing that is all or nothing.
        store
            .add_account(&account("a1", "ws_a", "main", true))
            .await
            .expect("add");
        store
            .add_account(&account("a2", "ws_a", "eu", false))
            .await
            .expect("add");
        let updated = store
            .update_account(
                &"ws_a".into(),
                "eu",
                &AccountUpdate {
                    label: Some("europe".into()),
                    is_default: Some(true),
                    ..AccountUpdate::default()
                },
            )
            .await
            .expect("update");
        assert_eq!(
            (
                updated.label.as_str(),
                updated.is_default,
                updated.website_id.as_str()
            ),
            ("europe", true, "web-a2")
        );
        assert_eq!(
            updated.allowed_websites.as_deref(),
            Some("web-a2-more"),
            "a field not named in the update stays"
        );
        for websites in [Some("web-x,web-y".to_owned()), None] {
            let updated = store
                .update_account(
                    &"ws_a".into(),
                    "europe",
                    &AccountUpdate {
                        allowed_websites: Some(websites.clone()),
                        ..AccountUpdate::default()
                    },
                )
                .await
                .expect("update websites");
            assert_eq!(updated.allowed_websites, websites);
            assert_eq!(updated.label, "europe");
        }
        let main = store
            .list_accounts(Some(&"ws_a".into()))
            .await
            .expect("list")
            .into_iter()
            .find(|a| a.label == "main")
            .expect("main");
        assert!(!main.is_default, "one default per workspace");
        assert!(matches!(
            store
                .update_account(&"ws_b".into(), "europe", &AccountUpdate::default())
                .await,
            Err(StoreError::NotFound)
        ));
        assert!(matches!(
            store
                .update_account(
                    &"ws_a".into(),
                    "europe",
                    &AccountUpdate {
                        label: Some("main".into()),
                        ..AccountUpdate::default()
                    }
                )
                .await,
            Err(StoreError::Conflict)
        ));
        let failed = store
            .reseal_accounts(&[
                ("a1".into(), "v1:new-a1".into()),
                ("missing".into(), "v1:x".into()),
            ])
            .await;
        assert!(failed.is_err());
        let a1 = |store: &std::sync::Arc<dyn crisp_gateway::store::Store>| {
            let store = store.clone();
            async move {
                store
                    .list_accounts(Some(&"ws_a".into()))
                    .await
                    .expect("list")
                    .into_iter()
                    .find(|a| a.crisp_account_id == "a1")
                    .expect("a1")
            }
        };
        assert_eq!(
            a1(&store).await.sealed_key,
            "v1:sealed-a1",
            "a failed reseal changes nothing"
        );
        store
            .reseal_accounts(&[
                ("a1".into(), "v1:new-a1".into()),
                ("a2".into(), "v1:new-a2".into()),
            ])
            .await
            .expect("reseal");
        assert_eq!(a1(&store).await.sealed_key, "v1:new-a1");

        // Audit rows: filtered by workspace and time, newest first, pruned by age.
        let row = |at: i64, ws: Option<&str>, action: &str| AuditRecord {
            at,
            workspace_id: ws.map(WorkspaceId::from),
            api_key_id: Some("k2".into()),
            crisp_account_id: None,
            action: action.into(),
            status: 200,
            upstream_status: Some(200),
            duration_ms: 12,
            request_id: format!("req-{at}"),
            reason: None,
            count: 1,
            client: None,
        };
        store
            .insert_audit(&[
                row(100, Some("ws_a"), "a/1"),
                row(200, Some("ws_b"), "b/1"),
                row(300, Some("ws_a"), "a/2"),
                row(400, None, "x"),
            ])
            .await
            .expect("audit");
        let listed = store
            .list_audit(&AuditFilter {
                workspace_id: Some("ws_a".into()),
                since: None,
                limit: 10,
            })
            .await
            .expect("list");
        assert_eq!(
            listed,
            [row(300, Some("ws_a"), "a/2"), row(100, Some("ws_a"), "a/1")]
        );
        let recent = store
            .list_audit(&AuditFilter {
                workspace_id: None,
                since: Some(250),
                limit: 1,
            })
            .await
            .expect("list");
        assert_eq!(recent, [row(400, None, "x")]);
        let aggregated = AuditRecord {
            count: 12_345,
            client: Some("127.0.0.2".into()),
            api_key_id: None,
            ..row(500, None, "unknown")
        };
        store
            .insert_audit(std::slice::from_ref(&aggregated))
            .await
            .expect("audit");
        let newest = store
            .list_audit(&AuditFilter {
                limit: 1,
                ..AuditFilter::default()
            })
            .await
            .expect("list");
        assert_eq!(newest, [aggregated], "count and client round-trip");
        assert_eq!(store.prune_audit(250).await.expect("prune"), 2);
        assert_eq!(
            store
                .list_audit(&AuditFilter {
                    limit: 10,
                    ..AuditFilter::default()
                })
                .await
                .expect("list")
                .len(),
            3
        );

        // Reports.
        let report = ReportRecord {
            report_id: "rep_1".into(),
            workspace_id: "ws_a".into(),
            api_key_id: "k2".into(),
            at: 5,
            message: "m".into(),
            context: None,
            conversation: Some("[]".into()),
        };
        store.insert_report(&report).await.expect("report");
        assert_eq!(
            store
                .list_reports(Some(&"ws_a".into()))
                .await
                .expect("list"),
            std::slice::from_ref(&report)
        );
        assert!(
            store
                .list_reports(Some(&"ws_b".into()))
                .await
                .expect("list")
                .is_empty()
        );
        // Retention keeps a workspace's newest reports and touches no other workspace.
        for at in 6..9 {
            store
                .insert_report(&ReportRecord {
                    report_id: format!("rep_{at}"),
                    at,
                    ..report.clone()
                })
                .await
                .expect("report");
        }
        assert_eq!(
            store.prune_reports(&"ws_b".into(), 1).await.expect("prune"),
            0
        );
        assert_eq!(
            store.prune_reports(&"ws_a".into(), 2).await.expect("prune"),
            2
        );
        let kept: Vec<String> = store
            .list_reports(Some(&"ws_a".into()))
            .await
            .expect("list")
            .into_iter()
            .map(|r| r.report_id)
            .collect();
        assert_eq!(kept, ["rep_8", "rep_7"]);

        // Idempotency: one claim wins; a repeat sees it; completion stores the answer;
        // release frees a pending claim; an expired record is replaced.
        let claim = |key: &str, now: i64| IdempotencyRecord {
            workspace_id: "ws_a".into(),
            idempotency_key: key.into(),
            request_hash: "h1".into(),
            state: IdempotencyState::Pending,
            status: None,
            response: None,
            created_at: now,
            lease_until: now + 10,
            expires_at: now + 100,
        };
        assert_eq!(
            store
                .claim_idempotency(&claim("i1", 1000))
                .await
                .expect("claim"),
            None
        );
        let again = store
            .claim_idempotency(&claim("i1", 1001))
            .await
            .expect("claim")
            .expect("held");
        assert_eq!((again.state.as_str(), again.created_at), ("pending", 1000));
        store
            .complete_idempotency(&"ws_a".into(), "i1", 200, "{\"ok\":true}", 1100)
            .await
            .expect("complete");
        let done = store
            .find_idempotency(&"ws_a".into(), "i1")
            .await
            .expect("find");
        assert_eq!(
            (done.state.as_str(), done.status, done.response.as_deref()),
            ("done", Some(200), Some("{\"ok\":true}"))
        );
        store
            .release_idempotency(&"ws_a".into(), "i1")
            .await
            .expect("release is a no-op once done");
        assert!(store.find_idempotency(&"ws_a".into(), "i1").await.is_ok());
        assert_eq!(
            store
                .claim_idempotency(&claim("i1", 1101))
                .await
                .expect("claim"),
            None,
            "expired records are replaced"
        );
        store
            .release_idempotency(&"ws_a".into(), "i1")
            .await
            .expect("release");
        assert!(matches!(
            store.find_idempotency(&"ws_a".into(), "i1").await,
            Err(StoreError::NotFound)
        ));
        let mut other_ws = claim("i1", 2000);
        other_ws.workspace_id = "ws_b".into();
        assert_eq!(
            store.claim_idempotency(&other_ws).await.expect("claim"),
            None,
            "keys are per workspace"
        );
    }
}

#[tokio::test]
async fn storage_conformance_idempotency_states_listing_and_release() {
    use crisp_gateway::store::{
        IdempotencyEntry, IdempotencyFilter, IdempotencyRecord, IdempotencyState, WorkspaceId,
    };
    for engine in engines() {
        let db = TestDb::new(engine).await;
        let store = db.store().await;
        let now = 1_700_000_000;
        let claim = |ws: &str, key: &str, created: i64, lease: i64| IdempotencyRecord {
            workspace_id: ws.into(),
            idempotency_key: key.into(),
            request_hash: "h".into(),
            state: IdempotencyState::Pending,
            status: None,
            response: None,
            created_at: created,
            lease_until: lease,
            expires_at: lease + 900,
        };
        for record in [
            claim("ws_a", "running", now - 10, now + 30),
            claim("ws_a", "died", now - 50, now - 20),
            claim("ws_a", "lost", now - 40, now + 30),
            claim("ws_a", "answered", now - 30, now + 30),
            claim("ws_a", "gone", now - 5000, now - 4000),
            claim("ws_b", "running", now - 20, now + 30),
        ] {
            assert_eq!(store.claim_idempotency(&record).await.expect("claim"), None);
        }
        let held = store
            .find_idempotency(&"ws_a".into(), "running")
            .await
            .expect("find");
        assert_eq!(held, claim("ws_a", "running", now - 10, now + 30));

        // Only a pending claim becomes unknown; an answer, once stored, stays.
        store
            .mark_idempotency_unknown(&"ws_a".into(), "lost")
            .await
            .expect("mark");
        store
            .complete_idempotency(
                &"ws_a".into(),
                "answered",
                201,
                "{\"ok\":true}",
                now + 86_400,
            )
            .await
            .expect("complete");
        store
            .mark_idempotency_unknown(&"ws_a".into(), "answered")
            .await
            .expect("no-op");
        let answered = store
            .find_idempotency(&"ws_a".into(), "answered")
            .await
            .expect("find");
        assert_eq!(
            (
                answered.state.as_str(),
                answered.status,
                answered.expires_at
            ),
            ("done", Some(201), now + 86_400)
        );
        // Releasing (the claimant's own) frees only a pending claim.
        store
            .release_idempotency(&"ws_a".into(), "lost")
            .await
            .expect("no-op");
        assert_eq!(
            store
                .find_idempotency(&"ws_a".into(), "lost")
                .await
                .expect("kept")
                .state
                .as_str(),
            "unknown"
        );

        // Listing: live records only, newest first, state as it stands at `now`, no answer.
        let list = |workspace: Option<&str>, state: Option<IdempotencyState>| {
            let store = store.clone();
            let filter = IdempotencyFilter {
                workspace_id: workspace.map(WorkspaceId::from),
                state,
                now,
                limit: 100,
            };
            async move {
                store
                    .list_idempotency(&filter)
                    .await
                    .expect("list")
                    .into_iter()
                    .map(|e| (e.workspace_id, e.idempotency_key))
                    .collect::<Vec<_>>()
            }
        };
        let pair = |ws: &str, key: &str| (WorkspaceId::from(ws), key.to_owned());
        assert_eq!(
            list(Some("ws_a"), None).await,
            [
                pair("ws_a", "running"),
                pair("ws_a", "answered"),
                pair("ws_a", "lost"),
                pair("ws_a", "died"),
            ]
        );
        assert_eq!(
            list(None, Some(IdempotencyState::Pending)).await,
            [pair("ws_a", "running"), pair("ws_b", "running")]
        );
        assert_eq!(
            list(Some("ws_a"), Some(IdempotencyState::Unknown)).await,
            [pair("ws_a", "lost"), pair("ws_a", "died")],
            "a pending claim past its lease is unknown"
        );
        assert_eq!(
            list(None, Some(IdempotencyState::Done)).await,
            [pair("ws_a", "answered")]
        );
        let limited = store
            .list_idempotency(&IdempotencyFilter {
                workspace_id: None,
                state: None,
                now,
                limit: 1,
            })
            .await
            .expect("list");
        assert_eq!(
            limited,
            [IdempotencyEntry {
                workspace_id: "ws_a".into(),
                idempotency_key: "running".into(),
                state: IdempotencyState::Pending,
                status: None,
                created_at: now - 10,
                lease_until: now + 30,
                expires_at: now + 930,
            }]
        );

        // An operator's release deletes whatever the state and says what it deleted.
        let deleted = store
            .delete_idempotency(&"ws_a".into(), "answered")
            .await
            .expect("delete");
        assert_eq!(
            (deleted.state.as_str(), deleted.status),
            ("done", Some(201))
        );
        assert!(matches!(
            store.delete_idempotency(&"ws_a".into(), "answered").await,
            Err(StoreError::NotFound)
        ));
        assert!(matches!(
            store.find_idempotency(&"ws_a".into(), "answered").await,
            Err(StoreError::NotFound)
        ));
        assert_eq!(
            store
                .find_idempotency(&"ws_b".into(), "running")
                .await
                .expect("other workspace untouched")
                .state
                .as_str(),
            "pending"
        );
        // Pruning removes only what expired: `gone`, not `died` (past its lease, still held).
        assert_eq!(store.prune_idempotency(now).await.expect("prune"), 1);
        assert!(matches!(
            store.find_idempotency(&"ws_a".into(), "gone").await,
            Err(StoreError::NotFound)
        ));
        assert_eq!(
            store
                .find_idempotency(&"ws_a".into(), "died")
                .await
                .expect("still held")
                .state
                .as_str(),
            "pending"
        );
        // An expired record is replaced by the next claim.
        assert_eq!(
            store
                .claim_idempotency(&claim("ws_a", "gone", now, now + 30))
                .await
                .expect("claim"),
            None
        );
    }
}

#[tokio::test]
async fn storage_conformance_quotas_and_usage() {
    use crisp_gateway::store::{
        Quota, QuotaClaim, QuotaPeriod, UsageCounts, UsageFilter, UsageRecord,
    };
    for engine in engines() {
        let db = TestDb::new(engine).await;
        let store = db.store().await;
        store
            .create_workspace(&workspace("ws_a", "alpha"))
            .await
            .expect("ws");
        let mut plain = key("k1", "ws_a");
        plain.quota_limit = None;
        plain.quota_period = None;
        store.create_key(&plain).await.expect("key");
        assert_eq!(
            store.find_key(&"k1".into()).await.expect("k1").quota(),
            None
        );

        // Setting a quota logs a change, so replicas reload the key.
        let before = store.last_change().await.expect("last");
        let quota = Quota {
            limit: 10,
            period: QuotaPeriod::Month,
        };
        store
            .set_key_quota(&"k1".into(), Some(quota))
            .await
            .expect("set");
        assert_eq!(
            store.find_key(&"k1".into()).await.expect("k1").quota(),
            Some(quota)
        );
        let changes = store.changes_since(before).await.expect("changes");
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].subject_id, "k1");
        assert!(matches!(
            store.set_key_quota(&"nope".into(), Some(quota)).await,
            Err(StoreError::NotFound)
        ));

        // Claims never exceed the quota: the last one gets what remains, then nothing.
        let k1: crisp_gateway::store::KeyId = "k1".into();
        let claim = |want| store.claim_quota(&k1, 100, want, 10);
        assert_eq!(
            claim(4).await.expect("c"),
            QuotaClaim {
                granted: 4,
                used: 4
            }
        );
        assert_eq!(
            claim(4).await.expect("c"),
            QuotaClaim {
                granted: 4,
                used: 8
            }
        );
        assert_eq!(
            claim(4).await.expect("c"),
            QuotaClaim {
                granted: 2,
                used: 10
            }
        );
        assert_eq!(
            claim(1).await.expect("c"),
            QuotaClaim {
                granted: 0,
                used: 10
            }
        );
        store
            .return_quota(&"k1".into(), 100, 3)
            .await
            .expect("return");
        assert_eq!(store.quota_used(&"k1".into(), 100).await.expect("used"), 7);
        assert_eq!(
            claim(5).await.expect("c"),
            QuotaClaim {
                granted: 3,
                used: 10
            }
        );
        // Another period, and another key, count apart.
        assert_eq!(store.quota_used(&"k1".into(), 200).await.expect("used"), 0);
        assert_eq!(
            store
                .claim_quota(&"k1".into(), 200, 3, 10)
                .await
                .expect("c"),
            QuotaClaim {
                granted: 3,
                used: 3
            }
        );
        // Concurrent claims (several connections) add up to the quota exactly.
        let claims = futures_claims(&store, 40).await;
        assert_eq!(claims, 25, "{engine:?}");
        store.set_key_quota(&"k1".into(), None).await.expect("lift");
        assert_eq!(
            store.find_key(&"k1".into()).await.expect("k1").quota(),
            None
        );

        // Usage rows add up, from any number of batches (or replicas).
        let row = |key: &str, action: &str, day: i64| UsageRecord {
            workspace_id: "ws_a".into(),
            api_key_id: key.into(),
            action: action.into(),
            day,
            counts: UsageCounts {
                calls: 3,
                refused: 1,
                crisp_2xx: 2,
                crisp_none: 1,
                upstream_ms: 40,
                ..UsageCounts::default()
            },
        };
        let day = 1_796_169_600;
        store
            .add_usage(&[
                row("k1", "list/conversations", day),
                row("k2", "get/conversation", day),
            ])
            .await
            .expect("usage");
        store
            .add_usage(&[
                row("k1", "list/conversations", day),
                row("k1", "list/conversations", day - 86_400),
            ])
            .await
            .expect("usage");
        let rows = store
            .list_usage(&UsageFilter {
                workspace_id: Some("ws_a".into()),
                since: day + 3600,
            })
            .await
            .expect("list");
        assert_eq!(rows.len(), 2, "{rows:?}");
        let k1 = rows
            .iter()
            .find(|r| r.api_key_id == "k1")
            .expect("k1")
            .counts;
        assert_eq!(
            (k1.calls, k1.refused, k1.crisp_2xx, k1.upstream_ms),
            (6, 2, 4, 80)
        );
        let all = store
            .list_usage(&UsageFilter {
                workspace_id: None,
                since: 0,
            })
            .await
            .expect("all");
        assert_eq!(all.len(), 3);
        assert!(
            store
                .list_usage(&UsageFilter {
                    workspace_id: Some("ws_b".into()),
                    since: 0,
                })
                .await
                .expect("none")
                .is_empty()
        );
    }
}

/// Claims one call at a time from many tasks at once, for a quota of 25 in a fresh period;
/// returns how many were granted.
async fn futures_claims(
    store: &std::sync::Arc<dyn crisp_gateway::store::Store>,
    tasks: usize,
) -> i64 {
    let mut handles = Vec::new();
    for _ in 0..tasks {
        let store = store.clone();
        handles.push(tokio::spawn(async move {
            let mut granted = 0;
            for _ in 0..3 {
                granted += store
                    .claim_quota(&"k1".into(), 300, 1, 25)
                    .await
                    .expect("claim")
                    .granted;
            }
            granted
        }));
    }
    let mut total = 0;
    for handle in handles {
        total += handle.await.expect("task");
    }
    total
}

#[tokio::test]
async fn storage_conformance_admin_tokens() {
    use crisp_gateway::store::AdminTokenRecord;
    for engine in engines() {
        let db = TestDb::new(engine).await;
        let store = db.store().await;
        let token = |id: &str, created_at: i64| AdminTokenRecord {
            admin_token_id: id.into(),
            name: Some(format!("{id} name")),
            secret_hash: format!("$argon2id$hash-of-{id}"),
            created_at,
            revoked_at: None,
        };
        store
            .create_admin_token(&token("adm_b", 20))
            .await
            .expect("create");
        store
            .create_admin_token(&token("adm_a", 10))
            .await
            .expect("create");
        assert!(matches!(
            store.create_admin_token(&token("adm_a", 30)).await,
            Err(StoreError::Conflict)
        ));
        assert_eq!(
            store.find_admin_token("adm_a").await.expect("find"),
            token("adm_a", 10),
            "{engine:?}"
        );
        assert!(matches!(
            store.find_admin_token("adm_none").await,
            Err(StoreError::NotFound)
        ));
        let listed: Vec<String> = store
            .list_admin_tokens()
            .await
            .expect("list")
            .into_iter()
            .map(|t| t.admin_token_id)
            .collect();
        assert_eq!(listed, ["adm_a", "adm_b"], "oldest first");

        let before = store.last_change().await.expect("last");
        store.revoke_admin_token("adm_a", 50).await.expect("revoke");
        store
            .revoke_admin_token("adm_a", 60)
            .await
            .expect("revoking again is fine");
        assert_eq!(
            store
                .find_admin_token("adm_a")
                .await
                .expect("find")
                .revoked_at,
            Some(50),
            "the first revocation's time stays"
        );
        assert!(matches!(
            store.revoke_admin_token("adm_none", 50).await,
            Err(StoreError::NotFound)
        ));
        let changes = store.changes_since(before).await.expect("changes");
        assert!(
            changes
                .iter()
                .all(|c| c.kind == ChangeKind::AdminToken && c.subject_id == "adm_a"),
            "{changes:?}"
        );
        assert!(!changes.is_empty(), "a revocation is logged for replicas");
    }
}
