//! The files the gateway creates hold key hashes, sealed Crisp keys and stored Crisp answers:
//! they are readable by their owner only.

#![cfg(unix)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crisp_gateway::app::config::Config;
use crisp_gateway::store::{self, Engine};

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

#[tokio::test]
async fn a_fresh_gateway_creates_its_database_wal_shm_and_master_key_0600() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}/gateway.db", dir.path().display());
    let store = store::connect(&url).await.expect("connect");
    store.migrate().await.expect("migrate");
    // A write, so the write-ahead log and its index exist while the store is open.
    crisp_gateway::admin::create_workspace(&store, "acme")
        .await
        .expect("workspace");
    let config = Config {
        database_url: url.into(),
        master_key: None,
        ..Config::default()
    };
    crisp_gateway::app::master_key(&config, Engine::Sqlite).expect("master key");
    for name in [
        "gateway.db",
        "gateway.db-wal",
        "gateway.db-shm",
        "master.key",
    ] {
        let path = dir.path().join(name);
        assert_eq!(mode(&path), 0o600, "{name} is {:o}", mode(&path));
    }
}

#[tokio::test]
async fn an_existing_database_open_to_others_is_tightened_to_0600() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("gateway.db");
    let url = format!("sqlite://{}", path.display());
    {
        let store = store::connect(&url).await.expect("connect");
        store.migrate().await.expect("migrate");
    }
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let store = store::connect(&url).await.expect("reconnect");
    crisp_gateway::admin::create_workspace(&store, "acme")
        .await
        .expect("the data is still there and writable");
    assert_eq!(mode(&path), 0o600);
}
