//! `crisp-gateway key …`: keys are printed once, on standard output, and never again.

use std::sync::Arc;

use clap::Subcommand;

use crate::admin::quota::{self, parse_quota};
use crate::admin::{KeySpec, check_action_globs, check_websites, create_scoped_key, rotate_key};
use crate::store::{KeyId, Store, WorkspaceId};

use super::{CliResult, workspace_id};

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Create a key; prints the key alone on standard output.
    Create {
        #[arg(long)]
        workspace: String,
        /// A label to recognise the key by in listings.
        #[arg(long)]
        name: Option<String>,
        /// Allow only actions that do not write (GET and HEAD calls).
        #[arg(long)]
        read_only: bool,
        /// Allow only these actions: comma-separated slugs or globs, e.g. 'list/*,get/*'.
        #[arg(long, value_name = "GLOBS")]
        actions: Option<String>,
        /// Allow only calls on this Crisp website (`websiteID`), within what the account
        /// allows; repeat it or separate ids with commas. By default, every website the
        /// workspace's accounts allow.
        #[arg(long = "website", value_name = "ID", value_delimiter = ',')]
        websites: Vec<String>,
        /// Expire after this long: 30s, 15m, 12h, 90d.
        #[arg(long, value_name = "DURATION", conflicts_with = "expires_at")]
        expires_in: Option<String>,
        /// Expire at this RFC 3339 time, e.g. 2026-12-31T23:59:00Z.
        #[arg(long, value_name = "TIME")]
        expires_at: Option<String>,
        /// At most this many calls per UTC day or month, across every replica: 10000/day,
        /// 50000/month. Past it, calls get 429 `quota_exceeded` until the period ends.
        #[arg(long, value_name = "CALLS/PERIOD")]
        quota: Option<String>,
    },
    /// Change a key's quota; every running gateway applies it within about a second.
    Update {
        key_id: String,
        /// The new quota, such as 10000/day or 50000/month (calls already made this period count).
        #[arg(
            long,
            value_name = "CALLS/PERIOD",
            required_unless_present = "no_quota"
        )]
        quota: Option<String>,
        /// Lift the key's quota.
        #[arg(long, conflicts_with = "quota")]
        no_quota: bool,
    },
    /// List keys with their scopes, expiry and last use (never the keys themselves).
    List {
        #[arg(long)]
        workspace: Option<String>,
    },
    /// Revoke a key by id; every running gateway stops accepting it within about a second.
    Revoke { key_id: String },
    /// Replace a key: prints a new key with the same workspace and scopes; the old key keeps
    /// working for the overlap, then stops.
    Rotate {
        key_id: String,
        /// How long the old key keeps working: 0s, 15m, 24h, …
        #[arg(long, default_value = "24h")]
        overlap: String,
        /// Expiry of the new key (by default it does not expire).
        #[arg(long, value_name = "DURATION")]
        expires_in: Option<String>,
    },
}

pub async fn run(store: &Arc<dyn Store>, command: KeyCommand) -> CliResult {
    match command {
        KeyCommand::Create {
            workspace,
            name,
            read_only,
            actions,
            websites,
            expires_in,
            expires_at,
            quota,
        } => {
            let websites = if websites.is_empty() {
                None
            } else {
                Some(check_websites(
                    "--website",
                    websites.iter().map(String::as_str),
                )?)
            };
            let spec = KeySpec {
                name,
                read_only,
                actions: actions.as_deref().map(check_action_globs).transpose()?,
                expires_at: crate::admin::key_expiry(expires_in.as_deref(), expires_at.as_deref())?,
                websites: websites.as_ref().map(|w| w.join(",")),
                quota: quota.as_deref().map(parse_quota).transpose()?,
            };
            let workspace_id = workspace_id(store, &workspace).await?;
            if let Some(websites) = &websites {
                warn_unreachable_websites(store, &workspace_id, &workspace, websites).await?;
            }
            let key = create_scoped_key(store, &workspace_id, &spec).await?;
            eprintln!(
                "created key {} for workspace `{workspace}` ({}); it is shown once, below — store it now",
                key.id(),
                describe_scope(
                    spec.read_only,
                    spec.actions.as_deref(),
                    spec.websites.as_deref()
                ) + &spec
                    .quota
                    .map(|q| format!(", quota {}", quota::describe(q)))
                    .unwrap_or_default()
            );
            println!("{}", key.reveal());
            Ok(())
        }
        KeyCommand::Update {
            key_id,
            quota,
            no_quota: _,
        } => {
            let quota = quota.as_deref().map(parse_quota).transpose()?;
            quota::set_quota(store, &KeyId::from(key_id.as_str()), quota).await?;
            match quota {
                Some(q) => eprintln!("key {key_id} now has a quota of {}", quota::describe(q)),
                None => eprintln!("key {key_id} has no quota now"),
            }
            Ok(())
        }
        KeyCommand::List { workspace } => list(store, workspace).await,
        KeyCommand::Revoke { key_id } => {
            let key_id = KeyId::from(key_id);
            crate::admin::records::revoke_key(store, &key_id).await?;
            eprintln!("revoked key {key_id}");
            Ok(())
        }
        KeyCommand::Rotate {
            key_id,
            overlap,
            expires_in,
        } => {
            let overlap_time = crate::kernel::clock::parse_duration(&overlap)?;
            let key = rotate_key(
                store,
                &KeyId::from(key_id.as_str()),
                overlap_time,
                crate::admin::key_expiry(expires_in.as_deref(), None)?,
            )
            .await?;
            eprintln!(
                "created key {} to replace {key_id}, which keeps working for {overlap}; the new key is shown once, below",
                key.id()
            );
            println!("{}", key.reveal());
            Ok(())
        }
    }
}

fn describe_scope(read_only: bool, actions: Option<&str>, websites: Option<&str>) -> String {
    let scope = match (read_only, actions) {
        (false, None) => "all actions".into(),
        (true, None) => "read-only".into(),
        (false, Some(a)) => format!("actions {a}"),
        (true, Some(a)) => format!("read-only, actions {a}"),
    };
    match websites {
        Some(w) => format!("{scope}, websites {w}"),
        None => scope,
    }
}

/// A key narrowed to a website no account of its workspace may act on would be refused on
/// every call there: say so now, with the command that allows it.
async fn warn_unreachable_websites(
    store: &Arc<dyn Store>,
    workspace_id: &WorkspaceId,
    workspace: &str,
    websites: &[String],
) -> CliResult {
    let accounts = store.list_accounts(Some(workspace_id)).await?;
    for website in websites {
        let reachable = accounts
            .iter()
            .any(|a| crate::accounts::websites_of(a).contains(website));
        if !reachable {
            eprintln!(
                "note: no account of workspace `{workspace}` may act on website {website} yet, so calls there will be refused; allow it with `crisp-gateway account update LABEL --workspace {workspace} --websites …,{website}`"
            );
        }
    }
    Ok(())
}

async fn list(store: &Arc<dyn Store>, workspace: Option<String>) -> CliResult {
    let filter = match &workspace {
        Some(name) => Some(workspace_id(store, name).await?),
        None => None,
    };
    let workspaces = store.list_workspaces().await?;
    let keys = store.list_keys(filter.as_ref()).await?;
    println!(
        "{:<18} {:<14} {:<14} {:<8} {:<22} {:<22} {:<18} {:>10} {:>10} SCOPE",
        "ID", "WORKSPACE", "NAME", "STATUS", "EXPIRES", "LAST USED", "QUOTA", "USED", "REMAINING"
    );
    let now = crate::kernel::clock::now();
    for k in keys {
        let workspace = workspaces
            .iter()
            .find(|w| w.workspace_id == k.workspace_id)
            .map_or(k.workspace_id.as_str(), |w| w.name.as_str());
        let status = crate::admin::records::key_status(&k, now);
        let time = |t: Option<i64>| t.map_or_else(|| "-".to_owned(), crate::kernel::clock::format);
        let (quota, used, remaining) = match quota::status(store, &k, now).await? {
            Some(s) => (
                format!("{}/{}", s.limit, s.period),
                s.used.to_string(),
                s.remaining.to_string(),
            ),
            None => ("-".to_owned(), "-".to_owned(), "-".to_owned()),
        };
        println!(
            "{:<18} {:<14} {:<14} {:<8} {:<22} {:<22} {:<18} {:>10} {:>10} {}",
            k.api_key_id,
            workspace,
            k.name.as_deref().unwrap_or("-"),
            status,
            time(k.expires_at),
            time(k.last_used_at),
            quota,
            used,
            remaining,
            describe_scope(
                k.read_only,
                k.allowed_actions.as_deref(),
                k.allowed_websites.as_deref()
            )
        );
    }
    Ok(())
}
