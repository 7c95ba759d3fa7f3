//! `crisp-gateway doctor`: checks the configuration, the database, the master key and every
//! account, and prints a checklist with a fix for each failure.

use std::path::Path;

use crate::accounts::Account;
use crate::admin::checks::{self, Report};
use crate::app::config::Config;
use crate::forward::CrispClient;
use crate::secret::Vault;
use crate::store::{self, Engine};

use super::CliResult;

struct Checklist {
    failed: usize,
}

impl Checklist {
    fn pass(&self, what: &str) {
        println!("✓ {what}");
    }

    fn fail(&mut self, what: &str, fix: &str) {
        self.failed += 1;
        println!("✗ {what}\n  Fix: {fix}");
    }
}

pub async fn run(file: Option<&Path>) -> CliResult {
    let mut list = Checklist { failed: 0 };
    let config = match Config::load(file) {
        Ok(config) => {
            list.pass(&format!(
                "configuration: listen {}, Crisp at {}, database {}",
                config.listen, config.upstream, config.database_url
            ));
            config
        }
        Err(e) => {
            list.fail(
                &e.to_string(),
                "correct the setting named above in the --config file or the CRISP_GATEWAY_* variables",
            );
            return finish(&list);
        }
    };
    let store = match store::connect(config.database_url.expose()).await {
        Ok(store) => store,
        Err(e) => {
            list.fail(
                &format!("database: {e}"),
                "check DATABASE_URL (or CRISP_GATEWAY_DATABASE_URL) and that the database server is up",
            );
            return finish(&list);
        }
    };
    if let Err(e) = store.ping().await {
        list.fail(
            &format!("database does not answer: {e}"),
            "check that the database server is up and reachable",
        );
        return finish(&list);
    }
    // Reading the accounts needs the schema: a failure here means migrations were not run.
    let records = match store.list_accounts(None).await {
        Ok(records) => {
            list.pass(&format!(
                "database: reachable, schema in place, {} linked account(s)",
                records.len()
            ));
            records
        }
        Err(e) => {
            list.fail(
                &format!("database schema: {e}"),
                "run `crisp-gateway migrate` once against this database",
            );
            return finish(&list);
        }
    };
    let sqlite_key_file = match store.engine() {
        Engine::Sqlite => {
            store::sqlite_folder(config.database_url.expose()).map(|d| d.join("master.key"))
        }
        Engine::Postgres => None,
    };
    let master = match (&config.master_key, &sqlite_key_file) {
        (None, Some(file)) if !file.exists() && records.is_empty() => {
            list.pass(&format!(
                "master key: none yet; {} is made on first start",
                file.display()
            ));
            None
        }
        (None, Some(file)) if !file.exists() => {
            list.fail(
                &format!(
                    "master key: {} is missing, so the stored Crisp keys cannot be decrypted",
                    file.display()
                ),
                "restore master.key from your backup, or set CRISP_GATEWAY_MASTER_KEY",
            );
            None
        }
        _ => match crate::app::master_key(&config, store.engine()) {
            Ok(key) => {
                list.pass("master key: present");
                Some(key)
            }
            Err(e) => {
                list.fail(
                    &format!("master key: {e}"),
                    "set CRISP_GATEWAY_MASTER_KEY to a 32-byte base64 key (`openssl rand -base64 32`), the same on every replica",
                );
                None
            }
        },
    };
    if let Some(master) = master {
        let vault = Vault::new(&master);
        let client = match CrispClient::for_checks(&config.crisp()) {
            Ok(client) => client,
            Err(e) => {
                list.fail(&format!("HTTP client: {e}"), "report this as a bug");
                return finish(&list);
            }
        };
        let workspaces = store.list_workspaces().await.unwrap_or_default();
        for record in &records {
            let workspace = workspaces
                .iter()
                .find(|w| w.workspace_id == record.workspace_id)
                .map_or(record.workspace_id.as_str(), |w| w.name.as_str());
            let name = format!("account `{}` of workspace `{workspace}`", record.label);
            match Account::from_record(record, &vault) {
                Err(e) => list.fail(
                    &format!("{name}: cannot decrypt its key ({e})"),
                    "use the master key this account was linked with, or re-link the account",
                ),
                Ok(account) => {
                    let verdict = checks::test_account(&client, &account).await;
                    let works = verdict.works();
                    let report = Report {
                        account: &account,
                        verdict,
                    };
                    if works {
                        list.pass(&format!("{name}: {report}"));
                    } else {
                        // The report carries its own fix line.
                        list.failed += 1;
                        println!("✗ {name}: {report}");
                    }
                }
            }
        }
    }
    finish(&list)
}

fn finish(list: &Checklist) -> CliResult {
    match list.failed {
        0 => {
            println!("\nAll checks passed.");
            Ok(())
        }
        n => Err(format!("{n} check(s) failed; see the fixes above").into()),
    }
}
