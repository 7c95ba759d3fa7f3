//! One conformance story for the storage trait, run on every engine; and the two migration
//! folders kept in step.

use crisp_gateway::store::{
    AccountRecord, ApiKeyRecord, CHANGE_ACCOUNTS, CHANGE_KEY, StoreError, Workspace,
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
        tier: "plugin".into(),
        is_default,
        created_at: 1_700_000_002,
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
        assert_eq!(store.find_key("k1").await.expect("find"), key("k1", "ws_a"));
        assert!(matches!(
            store.find_key("k9").await,
            Err(StoreError::NotFound)
        ));
        assert_eq!(
            store.list_keys(Some("ws_b")).await.expect("list"),
            [key("k2", "ws_b")]
        );
        assert_eq!(store.list_keys(None).await.expect("list").len(), 2);
        store.revoke_key("k1", 1_700_000_100).await.expect("revoke");
        store
            .revoke_key("k1", 1_700_000_200)
            .await
            .expect("revoking twice is fine");
        assert_eq!(
            store.find_key("k1").await.expect("find").revoked_at,
            Some(1_700_000_100)
        );
        assert!(matches!(
            store.revoke_key("k9", 1).await,
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
        let mine = store.list_accounts(Some("ws_a")).await.expect("list");
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
                store.remove_account("ws_b", "eu").await,
                Err(StoreError::NotFound)
            ),
            "other workspace"
        );
        assert_eq!(
            store
                .remove_account("ws_a", "eu")
                .await
                .expect("by label")
                .crisp_account_id,
            "a2"
        );
        assert_eq!(
            store
                .remove_account("ws_a", "a1")
                .await
                .expect("by id")
                .label,
            "main"
        );
        assert!(
            store
                .list_accounts(Some("ws_a"))
                .await
                .expect("list")
                .is_empty()
        );

        // The change log saw every change that running gateways must hear about, in order.
        let changes = store.changes_since(0).await.expect("changes");
        let seen: Vec<_> = changes
            .iter()
            .map(|c| (c.kind.as_str(), c.subject_id.as_str()))
            .collect();
        assert_eq!(
            seen,
            [
                (CHANGE_KEY, "k1"),
                (CHANGE_KEY, "k1"),
                (CHANGE_ACCOUNTS, "ws_a"),
                (CHANGE_ACCOUNTS, "ws_a"),
                (CHANGE_ACCOUNTS, "ws_b"),
                (CHANGE_ACCOUNTS, "ws_a"),
                (CHANGE_ACCOUNTS, "ws_a"),
            ],
            "{engine:?}"
        );
        let last = store.last_change().await.expect("last");
        assert_eq!(last, changes.last().expect("some").change_id);
        assert!(store.changes_since(last).await.expect("none").is_empty());
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
                    statement.starts_with("create table") || statement.starts_with("create index")
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(read("sqlite"), read("postgres"), "{name}");
    }
}
