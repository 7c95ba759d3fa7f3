//! `crisp-gateway account …`: the Crisp key comes from `CRISP_KEY` or standard input, never
//! from an argument (arguments show up in `ps` and shell history).

use std::io::Read;
use std::sync::Arc;

use clap::{Subcommand, ValueEnum};

use crate::accounts::Tier;
use crate::admin::accounts::AccountChanges;
use crate::admin::{
    AccountBudget, NewAccount, add_account_with_websites, check_websites, format_rate,
    parse_concurrency, parse_rate,
};
use crate::app::config::Config;
use crate::forward::CrispClient;
use crate::secret::{CrispKey, Vault};
use crate::store::Store;

use super::{CliResult, workspace_id};

#[derive(Debug, Subcommand)]
pub enum AccountCommand {
    /// Link a Crisp account (identifier/key pair) to a workspace.
    Add {
        #[arg(long)]
        workspace: String,
        /// A short name callers use in `account` (e.g. `main`, `eu-shop`).
        #[arg(long)]
        label: String,
        /// The token identifier (from Crisp; also read from CRISP_IDENTIFIER).
        #[arg(long, env = "CRISP_IDENTIFIER")]
        identifier: String,
        /// The website id calls default to (also read from CRISP_WEBSITE_ID).
        #[arg(long, env = "CRISP_WEBSITE_ID")]
        website_id: String,
        /// The tier of the token, sent as `X-Crisp-Tier`; `account test` shows which actions
        /// it opens.
        #[arg(long, value_enum, default_value_t = TierArg::Website)]
        tier: TierArg,
        /// Make this the workspace's default account.
        #[arg(long)]
        default: bool,
        /// The websites calls may name in `websiteID`, comma-separated; the account's own
        /// website is always among them. By default, its own website only.
        #[arg(long, value_name = "IDS")]
        websites: Option<String>,
        /// The account's Crisp call rate across all replicas (`10/s`, `600/min`); by default
        /// `account_rate_limit`.
        #[arg(long, value_name = "RATE")]
        rate: Option<String>,
        /// How many calls to this account may be in flight at once across all replicas; by
        /// default `account_max_concurrency`.
        #[arg(long, value_name = "N")]
        concurrency: Option<String>,
        /// Read the Crisp key from standard input instead of CRISP_KEY.
        #[arg(long)]
        key_stdin: bool,
    },
    /// List linked accounts (never their keys).
    List {
        #[arg(long)]
        workspace: Option<String>,
    },
    /// Change an account's label, website, tier, default flag, identifier or key (the key
    /// from CRISP_KEY or --key-stdin).
    Update {
        id_or_label: String,
        #[arg(long)]
        workspace: String,
        #[arg(long)]
        label: Option<String>,
        #[arg(long)]
        website_id: Option<String>,
        /// A new tier for the token, sent as `X-Crisp-Tier`.
        #[arg(long, value_enum)]
        tier: Option<TierArg>,
        #[arg(long)]
        identifier: Option<String>,
        /// Make this the workspace's default account.
        #[arg(long)]
        default: bool,
        /// Replace the websites calls may name in `websiteID` (comma-separated); the account's
        /// own website is always among them, so `--websites OWN_ID` allows its own only.
        #[arg(long, value_name = "IDS")]
        websites: Option<String>,
        /// A new Crisp call rate across all replicas (`10/s`, `600/min`), or `default` for
        /// `account_rate_limit`.
        #[arg(long, value_name = "RATE")]
        rate: Option<String>,
        /// How many calls may be in flight at once across all replicas, or `default` for
        /// `account_max_concurrency`.
        #[arg(long, value_name = "N")]
        concurrency: Option<String>,
        /// Read a new Crisp key from standard input.
        #[arg(long)]
        key_stdin: bool,
        /// Take the new Crisp key from CRISP_KEY.
        #[arg(long)]
        key_from_env: bool,
    },
    /// Check an account with one cheap Crisp call: does the key, the tier, the website work?
    Test {
        id_or_label: String,
        #[arg(long)]
        workspace: String,
    },
    /// Unlink an account.
    Remove {
        id_or_label: String,
        #[arg(long)]
        workspace: String,
    },
}

/// A token tier as `--tier` takes it, each with the line `--help` shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TierArg {
    /// An operator's own keypair, from the user session of Crisp's app (app.crisp.chat).
    User,
    /// A token made in Crisp: Settings → Workspace Settings → Advanced configuration → API Token.
    Website,
    /// A Marketplace plugin token (marketplace.crisp.chat → Plugins → Tokens), installed on the website.
    Plugin,
}

impl From<TierArg> for Tier {
    fn from(tier: TierArg) -> Self {
        match tier {
            TierArg::User => Tier::User,
            TierArg::Website => Tier::Website,
            TierArg::Plugin => Tier::Plugin,
        }
    }
}

pub async fn run(config: &Config, store: &Arc<dyn Store>, command: AccountCommand) -> CliResult {
    match command {
        AccountCommand::Add {
            workspace,
            label,
            identifier,
            website_id,
            tier,
            default,
            websites,
            rate,
            concurrency,
            key_stdin,
        } => {
            let websites = websites
                .as_deref()
                .map(|list| check_websites("--websites", list.split(',')))
                .transpose()?
                .unwrap_or_default();
            let budget = AccountBudget {
                rate: rate.as_deref().map(parse_rate).transpose()?,
                max_concurrency: concurrency.as_deref().map(parse_concurrency).transpose()?,
            };
            let key = read_key(key_stdin)?;
            let workspace_id = workspace_id(store, &workspace).await?;
            let vault = Vault::new(&crate::app::master_key(config, store.engine())?);
            let account = add_account_with_websites(
                store,
                &vault,
                NewAccount {
                    workspace_id: &workspace_id,
                    label: &label,
                    identifier: &identifier,
                    website_id: &website_id,
                    tier: tier.into(),
                    is_default: default,
                    key: &key,
                },
                &websites,
                budget,
            )
            .await?;
            eprintln!(
                "linked Crisp account `{label}` ({}) to workspace `{workspace}`; calls may act on {}; {}",
                account.crisp_account_id,
                describe_websites(&account),
                describe_budget(config, &account)
            );
            println!("{}", account.crisp_account_id);
            Ok(())
        }
        AccountCommand::List { workspace } => {
            let filter = match &workspace {
                Some(name) => Some(workspace_id(store, name).await?),
                None => None,
            };
            let workspaces = store.list_workspaces().await?;
            let accounts = store.list_accounts(filter.as_ref()).await?;
            println!(
                "{:<18} {:<16} {:<16} {:<38} {:<8} {:<14} {:<16} DEFAULT",
                "ID", "WORKSPACE", "LABEL", "WEBSITES (OWN FIRST)", "TIER", "RATE", "CONCURRENCY"
            );
            for a in accounts {
                let workspace = workspaces
                    .iter()
                    .find(|w| w.workspace_id == a.workspace_id)
                    .map_or(a.workspace_id.as_str(), |w| w.name.as_str());
                let (rate, concurrency) = budget_columns(config, &a);
                println!(
                    "{:<18} {:<16} {:<16} {:<38} {:<8} {:<14} {:<16} {}",
                    a.crisp_account_id,
                    workspace,
                    a.label,
                    crate::accounts::websites_of(&a).join(","),
                    a.tier,
                    rate,
                    concurrency,
                    if a.is_default { "yes" } else { "" }
                );
            }
            Ok(())
        }
        AccountCommand::Update {
            id_or_label,
            workspace,
            label,
            website_id,
            tier,
            identifier,
            default,
            websites,
            rate,
            concurrency,
            key_stdin,
            key_from_env,
        } => {
            let websites = websites
                .as_deref()
                .map(|list| check_websites("--websites", list.split(',')))
                .transpose()?;
            let rate_limit = or_default(rate, parse_rate)?;
            let max_concurrency = or_default(concurrency, parse_concurrency)?;
            let workspace_id = workspace_id(store, &workspace).await?;
            let key = if key_stdin || key_from_env {
                Some(read_key(key_stdin)?)
            } else {
                None
            };
            let vault = Vault::new(&crate::app::master_key(config, store.engine())?);
            let a = crate::admin::accounts::update_account(
                store,
                &vault,
                &workspace_id,
                &id_or_label,
                AccountChanges {
                    label,
                    website_id,
                    tier: tier.map(Tier::from),
                    identifier,
                    make_default: default,
                    websites,
                    key,
                    rate_limit,
                    max_concurrency,
                },
            )
            .await?;
            eprintln!(
                "updated Crisp account `{}` ({}); calls may act on {}; {}; running gateways pick it up within a second",
                a.label,
                a.crisp_account_id,
                describe_websites(&a),
                describe_budget(config, &a)
            );
            Ok(())
        }
        AccountCommand::Test {
            id_or_label,
            workspace,
        } => test(config, store, &id_or_label, &workspace).await,
        AccountCommand::Remove {
            id_or_label,
            workspace,
        } => {
            let workspace_id = workspace_id(store, &workspace).await?;
            let a =
                crate::admin::accounts::remove_account(store, &workspace_id, &id_or_label).await?;
            eprintln!(
                "removed Crisp account `{}` ({})",
                a.label, a.crisp_account_id
            );
            Ok(())
        }
    }
}

async fn test(
    config: &Config,
    store: &Arc<dyn Store>,
    id_or_label: &str,
    workspace: &str,
) -> CliResult {
    let workspace_id = workspace_id(store, workspace).await?;
    let vault = Vault::new(&crate::app::master_key(config, store.engine())?);
    let client = CrispClient::for_checks(&config.crisp())
        .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
    let tested =
        crate::admin::accounts::test_account(store, &vault, &client, &workspace_id, id_or_label)
            .await?;
    let account = tested.account;
    let works = tested.verdict.works();
    let report = tested.explanation;
    println!(
        "{} account `{}` ({}) at {}: {report}",
        if works { "✓" } else { "✗" },
        account.label,
        account.id,
        client.base()
    );
    if works {
        Ok(())
    } else {
        Err(format!("account `{}` does not work yet", account.label).into())
    }
}

/// An account's rate and concurrency as `account list` shows them, the configured default
/// marked as such.
fn budget_columns(config: &Config, account: &crate::store::AccountRecord) -> (String, String) {
    let rate = match account.rate_limit {
        Some(rate) => format_rate(rate),
        None => format!("{} (default)", format_rate(config.account_rate_limit)),
    };
    let concurrency = match account.max_concurrency {
        Some(n) => n.to_string(),
        None => format!("{} (default)", config.account_max_concurrency),
    };
    (rate, concurrency)
}

fn describe_budget(config: &Config, account: &crate::store::AccountRecord) -> String {
    let (rate, concurrency) = budget_columns(config, account);
    format!("budget {rate}, {concurrency} at once, across all replicas")
}

/// An `account update` budget option: `default` returns to the configured value.
fn or_default<T>(
    text: Option<String>,
    parse: fn(&str) -> Result<T, String>,
) -> Result<Option<Option<T>>, String> {
    text.map(|text| match text.trim() {
        "default" => Ok(None),
        text => parse(text).map(Some),
    })
    .transpose()
}

fn describe_websites(account: &crate::store::AccountRecord) -> String {
    match crate::accounts::websites_of(account).as_slice() {
        [own] => format!("its own website {own} only"),
        all => format!("websites {}", all.join(", ")),
    }
}

fn read_key(from_stdin: bool) -> Result<CrispKey, String> {
    let key = if from_stdin {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| format!("cannot read the Crisp key from standard input: {e}"))?;
        text
    } else {
        std::env::var("CRISP_KEY").map_err(|_| {
            "the Crisp key is read from the CRISP_KEY environment variable, or from standard input with --key-stdin"
                .to_owned()
        })?
    };
    let key = key.trim();
    if key.is_empty() {
        return Err("the Crisp key is empty".into());
    }
    Ok(CrispKey::new(key))
}
