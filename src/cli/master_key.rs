//! `crisp-gateway master-key …`: make a master key, or re-encrypt every Crisp key under a new one.

use std::sync::Arc;

use clap::Subcommand;

use crate::app::config::Config;
use crate::secret::{MasterKey, Vault};
use crate::store::{AccountId, Engine, Store};

use super::CliResult;

#[derive(Debug, Subcommand)]
pub enum MasterKeyCommand {
    /// Print a new random master key (base64, 32 bytes) for CRISP_GATEWAY_MASTER_KEY.
    Generate,
    /// Re-encrypt every stored Crisp key under a new master key, in one transaction.
    Rotate,
}

pub async fn run(config: &Config, command: MasterKeyCommand) -> CliResult {
    match command {
        MasterKeyCommand::Generate => {
            println!("{}", MasterKey::generate().to_base64());
            Ok(())
        }
        MasterKeyCommand::Rotate => rotate(config, &super::open(config).await?).await,
    }
}

async fn rotate(config: &Config, store: &Arc<dyn Store>) -> CliResult {
    let old = Vault::new(&crate::app::master_key(config, store.engine())?);
    let accounts = store.list_accounts(None).await?;
    // Decrypt everything first: if any secret does not open, nothing is changed.
    let mut plain = Vec::with_capacity(accounts.len());
    for account in &accounts {
        let key = old
            .open(account.crisp_account_id.as_str(), &account.sealed_key)
            .map_err(|e| {
                format!(
                    "account `{}` ({}): {e}; nothing was changed",
                    account.label, account.crisp_account_id
                )
            })?;
        plain.push((account.crisp_account_id.clone(), key));
    }
    let new_key = MasterKey::generate();
    let new = Vault::new(&new_key);
    let sealed: Vec<(AccountId, String)> = plain
        .iter()
        .map(|(id, key)| (id.clone(), new.seal(id.as_str(), key)))
        .collect();

    let key_file = match (store.engine(), &config.master_key) {
        (Engine::Sqlite, None) => {
            crate::store::sqlite_folder(config.database_url.expose()).map(|f| f.join("master.key"))
        }
        _ => None,
    };
    match key_file {
        Some(path) => {
            // The new key reaches the disk before the database changes, and replaces the old
            // file only after the transaction commits: a crash at any point leaves either the
            // old key with the old secrets, or `master.key.next` beside them to finish by hand.
            let next = path.with_extension("key.next");
            let _ = std::fs::remove_file(&next);
            MasterKey::write_new(&next, &new_key)?;
            store
                .reseal_accounts(&sealed)
                .await
                .map_err(|e| format!("nothing was changed: {e}"))?;
            std::fs::rename(&next, &path).map_err(|e| {
                format!(
                    "the secrets are re-encrypted but {} could not replace {}: {e}; move it there by hand",
                    next.display(),
                    path.display()
                )
            })?;
            eprintln!(
                "re-encrypted {} Crisp key(s); the new master key is in {}",
                sealed.len(),
                path.display()
            );
        }
        None => {
            store
                .reseal_accounts(&sealed)
                .await
                .map_err(|e| format!("nothing was changed: {e}"))?;
            eprintln!(
                "re-encrypted {} Crisp key(s) under the new master key printed below. Set \
                 CRISP_GATEWAY_MASTER_KEY to it on every replica and restart them: the old key no longer decrypts.",
                sealed.len()
            );
            println!("{}", new_key.to_base64());
        }
    }
    Ok(())
}
