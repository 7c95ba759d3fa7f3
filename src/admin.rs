//! Admin use cases shared by the CLI, the demo and the tests: creating workspaces, keys and
//! accounts with the checks and encodings they need.

use std::sync::Arc;

use crate::accounts::Tier;
use crate::auth::GatewayKey;
use crate::secret::{CrispKey, Vault};
use crate::store::{AccountRecord, ApiKeyRecord, Store, StoreError, Workspace};

pub async fn create_workspace(store: &Arc<dyn Store>, name: &str) -> Result<Workspace, String> {
    let name = name.trim();
    if name.is_empty() || name.len() > 64 || name.chars().any(char::is_whitespace) {
        return Err("a workspace name is 1 to 64 characters without spaces, such as `acme`".into());
    }
    let workspace = Workspace {
        workspace_id: format!("ws_{}", crate::secret::random_base62(12)),
        name: name.to_owned(),
        created_at: crate::clock::now(),
    };
    match store.create_workspace(&workspace).await {
        Ok(()) => Ok(workspace),
        Err(StoreError::Conflict) => Err(format!("a workspace named `{name}` already exists")),
        Err(e) => Err(e.to_string()),
    }
}

pub async fn create_key(
    store: &Arc<dyn Store>,
    workspace_id: &str,
    name: Option<String>,
) -> Result<GatewayKey, String> {
    let key = GatewayKey::generate();
    let hash = {
        let key = GatewayKey::parse(key.reveal()).ok_or("a generated key did not parse")?;
        tokio::task::spawn_blocking(move || key.hash())
            .await
            .map_err(|e| e.to_string())??
    };
    let record = ApiKeyRecord {
        api_key_id: key.id().to_owned(),
        workspace_id: workspace_id.to_owned(),
        name,
        secret_hash: hash,
        read_only: false,
        allowed_actions: None,
        created_at: crate::clock::now(),
        expires_at: None,
        revoked_at: None,
        last_used_at: None,
    };
    store.create_key(&record).await.map_err(|e| e.to_string())?;
    Ok(key)
}

pub struct NewAccount<'a> {
    pub workspace_id: &'a str,
    pub label: &'a str,
    pub identifier: &'a str,
    pub website_id: &'a str,
    pub tier: Tier,
    pub is_default: bool,
    pub key: &'a CrispKey,
}

pub async fn add_account(
    store: &Arc<dyn Store>,
    vault: &Vault,
    new: NewAccount<'_>,
) -> Result<AccountRecord, String> {
    for (name, value) in [
        ("label", new.label),
        ("identifier", new.identifier),
        ("website id", new.website_id),
    ] {
        if value.trim().is_empty() {
            return Err(format!("the {name} must not be empty"));
        }
    }
    let id = format!("acc_{}", crate::secret::random_base62(12));
    let record = AccountRecord {
        sealed_key: vault.seal(&id, new.key),
        crisp_account_id: id,
        workspace_id: new.workspace_id.to_owned(),
        label: new.label.trim().to_owned(),
        identifier: new.identifier.trim().to_owned(),
        website_id: new.website_id.trim().to_owned(),
        tier: new.tier.as_str().to_owned(),
        is_default: new.is_default,
        created_at: crate::clock::now(),
    };
    match store.add_account(&record).await {
        Ok(()) => Ok(record),
        Err(StoreError::Conflict) => Err(format!(
            "this workspace already has an account labelled `{}`",
            new.label
        )),
        Err(e) => Err(e.to_string()),
    }
}
