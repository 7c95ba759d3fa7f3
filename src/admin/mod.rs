//! Admin use cases shared by the CLI, the demo and the tests: creating workspaces, keys and
//! accounts with the checks and encodings they need, and releasing idempotency records.
//!
//! Each concern has its own error enum; their messages are the sentences the CLI prints.

pub mod accounts;
pub mod checks;
pub mod quota;
pub mod records;
pub mod tokens;
pub mod usage;

use std::sync::Arc;

use crate::accounts::Tier;
use crate::auth::GatewayKey;
use crate::secret::{CrispKey, Vault};
use crate::store::{
    AccountId, AccountRecord, ApiKeyRecord, IdempotencyEntry, IdempotencyFilter, IdempotencyState,
    KeyId, Store, StoreError, Workspace, WorkspaceId,
};

#[derive(Debug, thiserror::Error)]
pub enum WorkspaceError {
    #[error("a workspace name is 1 to 64 characters without spaces, such as `acme`")]
    BadName,
    #[error("a workspace named `{0}` already exists")]
    Exists(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a list of Crisp website ids given on the command line was refused; `flag` is the
/// option it came from (`--website`, `--websites`).
#[derive(Debug, thiserror::Error)]
pub enum WebsitesError {
    #[error(
        "{flag} has an empty website id; list ids separated by commas, such as {flag} 8c842203-7ed8-4e29-a608-7cf78a7d2fcc,1d5a0e2c-…"
    )]
    EmptyId { flag: String },
    #[error(
        "{flag}: `{id}` is not a Crisp website id; ids are up to {MAX_WEBSITE_ID} letters, digits, `-` and `_`, such as 8c842203-7ed8-4e29-a608-7cf78a7d2fcc"
    )]
    BadId { flag: String, id: String },
    #[error("{flag} needs at least one website id")]
    NoId { flag: String },
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("--actions needs at least one action or pattern, such as 'list/*,get/*'")]
    NoActions,
    #[error(
        "`{0}` matches no action; patterns are action slugs with `*`, such as `list/*` (see GET /api/crisp/_endpoints)"
    )]
    NoMatchingAction(String),
    #[error(transparent)]
    Websites(#[from] WebsitesError),
    #[error("no key with id `{0}`; see `crisp-gateway key list`")]
    UnknownKey(String),
    #[error("key `{0}` is already revoked or expired; create a new one with `key create`")]
    Inactive(String),
    /// Hashing a new key failed (argon2, or its blocking task).
    #[error("{0}")]
    Hashing(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// A required field (`label`, `identifier`, `website id`) is blank.
    #[error("the {0} must not be empty")]
    Empty(&'static str),
    #[error("this workspace already has an account labelled `{0}`")]
    LabelTaken(String),
    #[error("no account `{0}` in this workspace; list them with `crisp-gateway account list`")]
    NotFound(String),
    /// The stored key does not open with this master key.
    #[error("{0}")]
    Sealed(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub async fn create_workspace(
    store: &Arc<dyn Store>,
    name: &str,
) -> Result<Workspace, WorkspaceError> {
    let name = name.trim();
    if name.is_empty() || name.len() > 64 || name.chars().any(char::is_whitespace) {
        return Err(WorkspaceError::BadName);
    }
    let workspace = Workspace {
        workspace_id: WorkspaceId::new(format!("ws_{}", crate::secret::random_base62(12))),
        name: name.to_owned(),
        created_at: crate::kernel::clock::now(),
    };
    match store.create_workspace(&workspace).await {
        Ok(()) => Ok(workspace),
        Err(StoreError::Conflict) => Err(WorkspaceError::Exists(name.to_owned())),
        Err(e) => Err(e.into()),
    }
}

/// What a new key may do and for how long.
#[derive(Debug, Clone, Default)]
pub struct KeySpec {
    pub name: Option<String>,
    pub read_only: bool,
    /// Comma-separated action globs (`list/*,get/*`); `None` allows every action.
    pub actions: Option<String>,
    pub expires_at: Option<i64>,
    /// Comma-separated website ids the key may act on; `None` leaves it to the account.
    pub websites: Option<String>,
    /// At most this many calls per day or month; `None`: no quota.
    pub quota: Option<crate::store::Quota>,
}

/// Creates an unrestricted key that never expires.
pub async fn create_key(
    store: &Arc<dyn Store>,
    workspace_id: &WorkspaceId,
    name: Option<String>,
) -> Result<GatewayKey, KeyError> {
    create_scoped_key(
        store,
        workspace_id,
        &KeySpec {
            name,
            ..KeySpec::default()
        },
    )
    .await
}

pub async fn create_scoped_key(
    store: &Arc<dyn Store>,
    workspace_id: &WorkspaceId,
    spec: &KeySpec,
) -> Result<GatewayKey, KeyError> {
    let (key, record) = new_key(workspace_id, spec).await?;
    store.create_key(&record).await?;
    Ok(key)
}

/// Checks that every pattern of an `--actions` list names at least one catalog action, so a
/// typo cannot silently make a key useless.
pub fn check_action_globs(list: &str) -> Result<String, KeyError> {
    let patterns: Vec<&str> = list
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    if patterns.is_empty() {
        return Err(KeyError::NoActions);
    }
    for pattern in &patterns {
        let matches = crate::catalog::CATALOG
            .actions()
            .iter()
            .any(|a| crate::auth::glob_matches(pattern, a.slug));
        if !matches {
            return Err(KeyError::NoMatchingAction((*pattern).to_owned()));
        }
    }
    Ok(patterns.join(","))
}

/// The longest website id accepted; Crisp's are 36-character UUIDs.
const MAX_WEBSITE_ID: usize = 128;

/// Checks Crisp website ids given on the command line (`--websites a,b`, `--website a`): each
/// is non-empty and made of letters, digits, `-` and `_`, so a stored list splits back on commas
/// exactly and a typo with a stray character is caught here, not as a refusal later.
/// Returns them without duplicates, in the order given.
pub fn check_websites<'a>(
    flag: &str,
    items: impl IntoIterator<Item = &'a str>,
) -> Result<Vec<String>, WebsitesError> {
    let mut websites: Vec<String> = Vec::new();
    for item in items {
        let id = item.trim();
        if id.is_empty() {
            return Err(WebsitesError::EmptyId {
                flag: flag.to_owned(),
            });
        }
        if id.len() > MAX_WEBSITE_ID
            || !id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(WebsitesError::BadId {
                flag: flag.to_owned(),
                id: id.to_owned(),
            });
        }
        if !websites.iter().any(|w| w == id) {
            websites.push(id.to_owned());
        }
    }
    if websites.is_empty() {
        return Err(WebsitesError::NoId {
            flag: flag.to_owned(),
        });
    }
    Ok(websites)
}

/// What an account stores for its websites: those besides its own, as a comma-separated list
/// (`None` when only its own remains). Its own website is always allowed, so it is never stored.
pub fn other_websites(own: &str, websites: &[String]) -> Option<String> {
    let others: Vec<&str> = websites
        .iter()
        .map(String::as_str)
        .filter(|w| *w != own.trim())
        .collect();
    (!others.is_empty()).then(|| others.join(","))
}

/// A key's expiry from a duration (`90d`) or an RFC 3339 time, checked to be in the future.
pub fn key_expiry(
    expires_in: Option<&str>,
    expires_at: Option<&str>,
) -> Result<Option<i64>, String> {
    let now = crate::kernel::clock::now();
    let at = match (expires_in, expires_at) {
        (Some(d), _) => {
            let d = crate::kernel::clock::parse_duration(d)?;
            Some(now.saturating_add(i64::try_from(d.as_secs()).unwrap_or(i64::MAX)))
        }
        (None, Some(t)) => Some(crate::kernel::clock::parse_rfc3339(t)?),
        (None, None) => None,
    };
    if at.is_some_and(|t| t <= now) {
        return Err("the expiry is in the past; give a future time or a positive duration".into());
    }
    Ok(at)
}

/// Rotates a key: a new key with the same workspace, name and scopes; the old one keeps
/// working for `overlap`, then stops.
pub async fn rotate_key(
    store: &Arc<dyn Store>,
    old_id: &KeyId,
    overlap: std::time::Duration,
    expires_at: Option<i64>,
) -> Result<GatewayKey, KeyError> {
    let old = match store.find_key(old_id).await {
        Ok(k) => k,
        Err(StoreError::NotFound) => return Err(KeyError::UnknownKey(old_id.to_string())),
        Err(e) => return Err(e.into()),
    };
    let now = crate::kernel::clock::now();
    if old.revoked_at.is_some() || old.expires_at.is_some_and(|t| t <= now) {
        return Err(KeyError::Inactive(old_id.to_string()));
    }
    let spec = KeySpec {
        name: old.name.clone(),
        read_only: old.read_only,
        actions: old.allowed_actions.clone(),
        expires_at,
        websites: old.allowed_websites.clone(),
        quota: old.quota(),
    };
    let (key, record) = new_key(&old.workspace_id, &spec).await?;
    let overlap = i64::try_from(overlap.as_secs()).unwrap_or(i64::MAX);
    store
        .rotate_key(old_id, &record, now.saturating_add(overlap))
        .await?;
    Ok(key)
}

async fn new_key(
    workspace_id: &WorkspaceId,
    spec: &KeySpec,
) -> Result<(GatewayKey, ApiKeyRecord), KeyError> {
    let websites = match &spec.websites {
        Some(list) => Some(check_websites("--website", list.split(','))?.join(",")),
        None => None,
    };
    let key = GatewayKey::generate();
    let hash = {
        let key = GatewayKey::parse(key.reveal())
            .ok_or_else(|| KeyError::Hashing("a generated key did not parse".into()))?;
        tokio::task::spawn_blocking(move || key.hash())
            .await
            .map_err(|e| KeyError::Hashing(e.to_string()))?
            .map_err(KeyError::Hashing)?
    };
    let record = ApiKeyRecord {
        api_key_id: KeyId::from(key.id()),
        workspace_id: workspace_id.clone(),
        name: spec.name.clone(),
        secret_hash: hash,
        read_only: spec.read_only,
        allowed_actions: spec.actions.clone(),
        created_at: crate::kernel::clock::now(),
        expires_at: spec.expires_at,
        revoked_at: None,
        last_used_at: None,
        allowed_websites: websites,
        quota_limit: spec.quota.map(|q| q.limit),
        quota_period: spec.quota.map(|q| q.period),
    };
    Ok((key, record))
}

pub struct NewAccount<'a> {
    pub workspace_id: &'a WorkspaceId,
    pub label: &'a str,
    pub identifier: &'a str,
    pub website_id: &'a str,
    pub tier: Tier,
    pub is_default: bool,
    pub key: &'a CrispKey,
}

/// Links an account that may act on its own website only.
pub async fn add_account(
    store: &Arc<dyn Store>,
    vault: &Vault,
    new: NewAccount<'_>,
) -> Result<AccountRecord, AccountError> {
    add_account_with_websites(store, vault, new, &[], AccountBudget::default()).await
}

/// An account's own Crisp budget, where the operator sets one; `None` keeps the configured
/// default (`account_rate_limit`, `account_max_concurrency`).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct AccountBudget {
    /// Upstream calls per second.
    pub rate: Option<f64>,
    pub max_concurrency: Option<i64>,
}

/// Reads a rate as `--rate` takes it: a count per unit, `10/s`, `600/min`, `3600/h`; gives
/// calls per second.
pub fn parse_rate(text: &str) -> Result<f64, String> {
    let bad = |why: &str| {
        format!(
            "`{text}` is not a rate: {why}. Write calls per unit of time, such as `10/s`, \
             `600/min` or `3600/h`"
        )
    };
    let (count, unit) = text
        .trim()
        .split_once('/')
        .ok_or_else(|| bad("no `/` before the unit"))?;
    let count: f64 = count
        .trim()
        .parse()
        .map_err(|_| bad("the count is not a number"))?;
    if !(count.is_finite() && count > 0.0) {
        return Err(bad("the count must be above 0"));
    }
    let seconds = match unit.trim() {
        "s" | "sec" | "second" => 1.0,
        "m" | "min" | "minute" => 60.0,
        "h" | "hour" => 3600.0,
        _ => return Err(bad("the unit must be `s`, `min` or `h`")),
    };
    Ok(count / seconds)
}

/// A rate in calls per second as operators read it: per second when whole, else per minute
/// or per hour when that is whole.
pub fn format_rate(per_second: f64) -> String {
    for (unit, seconds) in [("s", 1.0), ("min", 60.0), ("h", 3600.0)] {
        let count = per_second * seconds;
        if (count - count.round()).abs() < 1e-6 {
            return format!("{}/{unit}", count.round());
        }
    }
    format!("{per_second:.3}/s")
}

/// Reads `--concurrency`: a whole number of calls at once, at least 1.
pub fn parse_concurrency(text: &str) -> Result<i64, String> {
    match text.trim().parse::<i64>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!(
            "`{text}` is not a concurrency: give how many calls to this account may be in \
             flight at once, a whole number of at least 1 (e.g. `--concurrency 8`)"
        )),
    }
}

/// Links an account that may also act on `websites` (checked with `check_websites`); its own
/// website is always allowed.
pub async fn add_account_with_websites(
    store: &Arc<dyn Store>,
    vault: &Vault,
    new: NewAccount<'_>,
    websites: &[String],
    budget: AccountBudget,
) -> Result<AccountRecord, AccountError> {
    for (name, value) in [
        ("label", new.label),
        ("identifier", new.identifier),
        ("website id", new.website_id),
    ] {
        if value.trim().is_empty() {
            return Err(AccountError::Empty(name));
        }
    }
    let id = AccountId::new(format!("acc_{}", crate::secret::random_base62(12)));
    let record = AccountRecord {
        sealed_key: vault.seal(id.as_str(), new.key),
        crisp_account_id: id,
        workspace_id: new.workspace_id.clone(),
        label: new.label.trim().to_owned(),
        identifier: new.identifier.trim().to_owned(),
        website_id: new.website_id.trim().to_owned(),
        tier: new.tier,
        is_default: new.is_default,
        created_at: crate::kernel::clock::now(),
        allowed_websites: other_websites(new.website_id, websites),
        rate_limit: budget.rate,
        max_concurrency: budget.max_concurrency,
    };
    match store.add_account(&record).await {
        Ok(()) => Ok(record),
        Err(StoreError::Conflict) => Err(AccountError::LabelTaken(new.label.to_owned())),
        Err(e) => Err(e.into()),
    }
}

/// An idempotency record as operators see it: its state now, never its stored answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyListing {
    /// The workspace's name.
    pub workspace: String,
    pub state: IdempotencyState,
    pub entry: IdempotencyEntry,
}

#[derive(Debug, thiserror::Error)]
pub enum IdempotencyAdminError {
    #[error("no workspace named `{0}`; see `crisp-gateway workspace list`")]
    UnknownWorkspace(String),
    #[error(
        "workspace `{workspace}` holds no record for Idempotency-Key `{key}` (it may have expired); \
         see `crisp-gateway idempotency list --workspace {workspace}`"
    )]
    NoRecord { workspace: String, key: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

async fn find_workspace(
    store: &Arc<dyn Store>,
    name: &str,
) -> Result<Workspace, IdempotencyAdminError> {
    match store.find_workspace(name).await {
        Ok(workspace) => Ok(workspace),
        Err(StoreError::NotFound) => Err(IdempotencyAdminError::UnknownWorkspace(name.to_owned())),
        Err(e) => Err(e.into()),
    }
}

/// Live idempotency records (not yet expired), newest first, with their state as it stands now.
pub async fn list_idempotency(
    store: &Arc<dyn Store>,
    workspace: Option<&str>,
    state: Option<IdempotencyState>,
    limit: i64,
) -> Result<Vec<IdempotencyListing>, IdempotencyAdminError> {
    let workspace_id = match workspace {
        Some(name) => Some(find_workspace(store, name).await?.workspace_id),
        None => None,
    };
    let now = crate::kernel::clock::now();
    let entries = store
        .list_idempotency(&IdempotencyFilter {
            workspace_id,
            state,
            now,
            limit,
        })
        .await?;
    let workspaces = store.list_workspaces().await?;
    Ok(entries
        .into_iter()
        .map(|entry| IdempotencyListing {
            workspace: workspaces
                .iter()
                .find(|w| w.workspace_id == entry.workspace_id)
                .map_or_else(|| entry.workspace_id.to_string(), |w| w.name.clone()),
            state: entry.state.at(entry.lease_until, now),
            entry,
        })
        .collect())
}

/// Deletes a key's record whatever its state, so the next request with the key runs as new;
/// returns what was deleted.
pub async fn release_idempotency(
    store: &Arc<dyn Store>,
    workspace: &str,
    key: &str,
) -> Result<IdempotencyListing, IdempotencyAdminError> {
    let found = find_workspace(store, workspace).await?;
    match store.delete_idempotency(&found.workspace_id, key).await {
        Ok(entry) => Ok(IdempotencyListing {
            workspace: found.name,
            state: entry
                .state
                .at(entry.lease_until, crate::kernel::clock::now()),
            entry,
        }),
        Err(StoreError::NotFound) => Err(IdempotencyAdminError::NoRecord {
            workspace: workspace.to_owned(),
            key: key.to_owned(),
        }),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_read_per_unit_and_say_what_is_wrong() {
        assert_eq!(parse_rate("10/s"), Ok(10.0));
        assert_eq!(parse_rate(" 600/min "), Ok(10.0));
        assert_eq!(parse_rate("3600/h"), Ok(1.0));
        assert_eq!(parse_rate("2.5/sec"), Ok(2.5));
        for (bad, why) in [
            ("10", "no `/`"),
            ("ten/s", "not a number"),
            ("0/s", "above 0"),
            ("-3/s", "above 0"),
            ("10/day", "the unit must be"),
        ] {
            let message = parse_rate(bad).expect_err(bad);
            assert!(message.contains(why), "{bad}: {message}");
            assert!(message.contains("`600/min`"), "{bad}: {message}");
        }
        assert_eq!(format_rate(10.0), "10/s");
        assert_eq!(format_rate(0.5), "30/min");
        assert_eq!(format_rate(1.0 / 3600.0), "1/h");
        assert_eq!(parse_concurrency("8"), Ok(8));
        assert!(
            parse_concurrency("0")
                .expect_err("0")
                .contains("at least 1")
        );
        assert!(parse_concurrency("x").is_err());
    }

    #[test]
    fn refusals_read_as_the_sentences_operators_see() {
        let message = |e: &dyn std::error::Error| e.to_string();
        assert_eq!(
            message(&check_action_globs(" , ").expect_err("empty")),
            "--actions needs at least one action or pattern, such as 'list/*,get/*'"
        );
        assert_eq!(
            message(&check_websites("--websites", [" "]).expect_err("blank id")),
            "--websites has an empty website id; list ids separated by commas, such as --websites 8c842203-7ed8-4e29-a608-7cf78a7d2fcc,1d5a0e2c-…"
        );
        assert_eq!(
            message(&check_websites("--website", []).expect_err("none")),
            "--website needs at least one website id"
        );
        assert_eq!(
            message(&WorkspaceError::BadName),
            "a workspace name is 1 to 64 characters without spaces, such as `acme`"
        );
        assert_eq!(
            message(&AccountError::Empty("label")),
            "the label must not be empty"
        );
        assert_eq!(
            message(&AccountError::LabelTaken("main".into())),
            "this workspace already has an account labelled `main`"
        );
        assert_eq!(
            message(&KeyError::from(StoreError::NotFound)),
            StoreError::NotFound.to_string()
        );
    }
}
