//! Changing, removing and testing a workspace's Crisp accounts: one function per use case,
//! called by the CLI (`account update|remove|test`) and the admin API alike.

use std::sync::Arc;

use crate::accounts::{Account, Tier};
use crate::forward::CrispClient;
use crate::secret::{CrispKey, Vault};
use crate::store::{AccountRecord, AccountUpdate, Store, StoreError, WorkspaceId};

use super::checks::{self, Verdict};
use super::{AccountError, other_websites};

/// What an update changes; `None` leaves a field as it is.
#[derive(Default)]
pub struct AccountChanges {
    pub label: Option<String>,
    pub website_id: Option<String>,
    pub tier: Option<Tier>,
    pub identifier: Option<String>,
    /// `true` makes it the workspace's default account (there is no "un-default": make
    /// another account the default instead).
    pub make_default: bool,
    /// Checked website ids (see `check_websites`) the account may act on, its own included.
    pub websites: Option<Vec<String>>,
    /// A new Crisp key, sealed before it is stored.
    pub key: Option<CrispKey>,
    /// A new call rate across all replicas (calls per second); `Some(None)` returns to the
    /// configured default.
    pub rate_limit: Option<Option<f64>>,
    /// A new ceiling on calls in flight across all replicas; `Some(None)` returns to the default.
    pub max_concurrency: Option<Option<i64>>,
}

async fn find(
    store: &Arc<dyn Store>,
    workspace_id: &WorkspaceId,
    id_or_label: &str,
) -> Result<AccountRecord, AccountError> {
    store
        .list_accounts(Some(workspace_id))
        .await?
        .into_iter()
        .find(|a| a.crisp_account_id == id_or_label || a.label == id_or_label)
        .ok_or_else(|| AccountError::NotFound(id_or_label.to_owned()))
}

pub async fn update_account(
    store: &Arc<dyn Store>,
    vault: &Vault,
    workspace_id: &WorkspaceId,
    id_or_label: &str,
    changes: AccountChanges,
) -> Result<AccountRecord, AccountError> {
    let current = if changes.key.is_some() || changes.websites.is_some() {
        Some(find(store, workspace_id, id_or_label).await?)
    } else {
        None
    };
    let sealed_key = match (&changes.key, &current) {
        (Some(key), Some(current)) => Some(vault.seal(current.crisp_account_id.as_str(), key)),
        _ => None,
    };
    let allowed_websites = match (&changes.websites, &current) {
        (Some(websites), Some(current)) => {
            let own = changes
                .website_id
                .clone()
                .unwrap_or_else(|| current.website_id.clone());
            Some(other_websites(&own, websites))
        }
        _ => None,
    };
    let update = AccountUpdate {
        label: changes.label,
        website_id: changes.website_id,
        tier: changes.tier,
        is_default: changes.make_default.then_some(true),
        identifier: changes.identifier,
        sealed_key,
        allowed_websites,
        rate_limit: changes.rate_limit,
        max_concurrency: changes.max_concurrency,
    };
    match store
        .update_account(workspace_id, id_or_label, &update)
        .await
    {
        Ok(record) => Ok(record),
        Err(StoreError::NotFound) => Err(AccountError::NotFound(id_or_label.to_owned())),
        Err(StoreError::Conflict) => Err(AccountError::LabelTaken(
            update.label.unwrap_or_else(|| id_or_label.to_owned()),
        )),
        Err(e) => Err(e.into()),
    }
}

pub async fn remove_account(
    store: &Arc<dyn Store>,
    workspace_id: &WorkspaceId,
    id_or_label: &str,
) -> Result<AccountRecord, AccountError> {
    match store.remove_account(workspace_id, id_or_label).await {
        Ok(record) => Ok(record),
        Err(StoreError::NotFound) => Err(AccountError::NotFound(id_or_label.to_owned())),
        Err(e) => Err(e.into()),
    }
}

/// What testing an account found, with the sentence that explains it.
pub struct Tested {
    pub account: Account,
    pub verdict: Verdict,
    /// The verdict in plain words, with what to do about it.
    pub explanation: String,
}

/// Makes one cheap authenticated Crisp call with the account's credentials.
pub async fn test_account(
    store: &Arc<dyn Store>,
    vault: &Vault,
    client: &CrispClient,
    workspace_id: &WorkspaceId,
    id_or_label: &str,
) -> Result<Tested, AccountError> {
    let record = find(store, workspace_id, id_or_label).await?;
    let account = Account::from_record(&record, vault).map_err(|e| {
        AccountError::Sealed(format!(
            "{e}: CRISP_GATEWAY_MASTER_KEY is not the key this account was linked with"
        ))
    })?;
    let verdict = checks::test_account(client, &account).await;
    let explanation = checks::Report {
        account: &account,
        verdict: verdict.clone(),
    }
    .to_string();
    Ok(Tested {
        account,
        verdict,
        explanation,
    })
}
