//! A workspace's Crisp accounts as requests use them: decrypted once, cached, picked per call.

use std::fmt;
use std::hash::BuildHasher;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::HeaderValue;
use moka::sync::Cache;
use serde::Serialize;

use crate::error::{ApiError, Reason};
use crate::kernel::ttl_cache::TtlCache;
use crate::secret::{CrispKey, Vault};
use crate::store::{AccountId, AccountRecord, Store, WorkspaceId};

pub use crate::store::Tier;

impl Tier {
    /// The `X-Crisp-Tier` header value a token of this tier is sent with.
    pub fn header(self) -> HeaderValue {
        HeaderValue::from_static(self.as_str())
    }
}

/// A Crisp account ready for calls: the `Authorization` header is built once, marked
/// sensitive so no HTTP log prints it.
#[derive(Clone)]
pub struct Account {
    pub id: AccountId,
    pub label: String,
    pub identifier: String,
    pub website_id: String,
    pub tier: Tier,
    pub is_default: bool,
    pub authorization: HeaderValue,
    /// The websites calls may name in `websiteID`: its own first, then those the operator
    /// allowed. Checked per call from this cached list, never from the database.
    pub websites: Box<[String]>,
    /// Whether Crisp has accepted these credentials in this process.
    pub proven: Proven,
    /// The account's own budget across replicas, where the operator set one; `None` keeps
    /// the configured default.
    pub rate_limit: Option<f64>,
    pub max_concurrency: Option<usize>,
}

/// Whether Crisp has answered a call of an account with success in this process: what tells
/// Crisp's refusal of a route to the token's tier from a wrong key, without a database round
/// trip. Every copy of an account built from the same credentials and tier shares one flag
/// (`AccountCache` keeps them), so a cache refill keeps it and new credentials start unproven.
#[derive(Debug, Clone, Default)]
pub struct Proven(Arc<AtomicBool>);

impl Proven {
    /// Crisp answered a call with these credentials with a 2xx.
    pub fn mark(&self) {
        // A load first: after the first success the flag is only read, its cache line shared.
        if !self.0.load(Ordering::Relaxed) {
            self.0.store(true, Ordering::Relaxed);
        }
    }

    pub fn get(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

impl crate::telemetry::HasId for Account {
    fn id(&self) -> &str {
        self.id.as_str()
    }
}

impl fmt::Debug for Account {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Account")
            .field("id", &self.id)
            .field("label", &self.label)
            .field("website_id", &self.website_id)
            .field("tier", &self.tier)
            .field("websites", &self.websites)
            .finish_non_exhaustive()
    }
}

/// What `list/accounts` shows: never a secret, never the identifier's key.
#[derive(Debug, Serialize)]
pub struct AccountView<'a> {
    pub id: &'a str,
    pub label: &'a str,
    pub website_id: &'a str,
    pub tier: Tier,
    pub default: bool,
    /// Every website calls through this account may act on (its own included).
    pub websites: &'a [String],
}

impl Account {
    pub fn from_record(record: &AccountRecord, vault: &Vault) -> Result<Self, String> {
        let key = vault
            .open(record.crisp_account_id.as_str(), &record.sealed_key)
            .map_err(|e| format!("account {}: {e}", record.crisp_account_id))?;
        Ok(Self {
            id: record.crisp_account_id.clone(),
            label: record.label.clone(),
            identifier: record.identifier.clone(),
            website_id: record.website_id.clone(),
            tier: record.tier,
            is_default: record.is_default,
            authorization: basic_auth(&record.identifier, &key),
            websites: websites_of(record).into(),
            proven: Proven::default(),
            rate_limit: record.rate_limit,
            max_concurrency: record
                .max_concurrency
                .map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
        })
    }

    pub fn view(&self) -> AccountView<'_> {
        AccountView {
            id: self.id.as_str(),
            label: &self.label,
            website_id: &self.website_id,
            tier: self.tier,
            default: self.is_default,
            websites: &self.websites,
        }
    }

    /// The 403 a caller gets for a `websiteID` this account may not act on: its token may
    /// reach more websites than the operator meant this workspace to use.
    pub fn check_website(&self, website: &str) -> Result<(), ApiError> {
        if self.websites.iter().any(|w| w == website) {
            return Ok(());
        }
        Err(ApiError::Forbidden {
            reason: Reason::WebsiteNotAllowed,
            message: format!(
                "Account `{}` ({}) may not act on website `{website}`; it may act on: {}. Leave \
                 `websiteID` out to use its own website (`{}`), or have an operator allow it with \
                 `crisp-gateway account update {} --workspace <workspace> --websites {},{website}`.",
                self.label,
                self.id,
                self.websites.join(", "),
                self.website_id,
                self.label,
                self.websites.join(","),
            ),
        })
    }
}

/// An account's websites: its own, then the others it was allowed, each once.
pub fn websites_of(record: &AccountRecord) -> Vec<String> {
    let mut websites = vec![record.website_id.clone()];
    for extra in split_list(record.allowed_websites.as_deref()) {
        if !websites.iter().any(|w| w == extra) {
            websites.push(extra.to_owned());
        }
    }
    websites
}

/// The items of a stored comma-separated list.
pub fn split_list(list: Option<&str>) -> impl Iterator<Item = &str> {
    list.unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|w| !w.is_empty())
}

fn basic_auth(identifier: &str, key: &CrispKey) -> HeaderValue {
    let token = STANDARD.encode(format!("{identifier}:{}", key.expose()));
    let mut value = HeaderValue::from_str(&format!("Basic {token}"))
        .unwrap_or_else(|_| HeaderValue::from_static("Basic"));
    value.set_sensitive(true);
    value
}

/// Accounts by workspace, decrypted once; entries are dropped when the change log says the
/// workspace's accounts changed, and expire after the configured lifetime regardless.
pub struct AccountCache {
    store: Arc<dyn Store>,
    vault: Vault,
    /// Each workspace's accounts: looked up on every call.
    cache: TtlCache<WorkspaceId, Arc<[Arc<Account>]>>,
    /// Each account's `Proven` flag, keyed by its id and a fingerprint of its credentials and
    /// tier (seeded per process): outlives the cache entries, forgets changed credentials.
    proven: Cache<(AccountId, u64), Proven, foldhash::fast::RandomState>,
    fingerprints: foldhash::fast::RandomState,
}

impl AccountCache {
    pub fn new(store: Arc<dyn Store>, vault: Vault, ttl: std::time::Duration) -> Self {
        Self {
            store,
            vault,
            cache: TtlCache::new(100_000, ttl),
            proven: Cache::builder()
                .max_capacity(100_000)
                .build_with_hasher(foldhash::fast::RandomState::default()),
            fingerprints: foldhash::fast::RandomState::default(),
        }
    }

    /// The shared `Proven` flag of these credentials and tier.
    fn proven_flag(&self, account: &Account) -> Proven {
        let fingerprint = self
            .fingerprints
            .hash_one((account.authorization.as_bytes(), account.tier.as_str()));
        self.proven
            .get_with((account.id.clone(), fingerprint), Proven::default)
    }

    pub async fn for_workspace(
        &self,
        workspace_id: &WorkspaceId,
    ) -> Result<Arc<[Arc<Account>]>, ApiError> {
        let hit = self.cache.get(workspace_id);
        crate::telemetry::metrics::cache(crate::telemetry::metrics::Cache::Accounts, hit.is_some());
        if let Some(hit) = hit {
            return Ok(hit);
        }
        let records = self.store.list_accounts(Some(workspace_id)).await?;
        let accounts: Arc<[Arc<Account>]> = records
            .iter()
            .map(|r| {
                Account::from_record(r, &self.vault).map(|mut account| {
                    account.proven = self.proven_flag(&account);
                    Arc::new(account)
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(ApiError::Internal)?
            .into();
        self.cache.insert(workspace_id.clone(), accounts.clone());
        Ok(accounts)
    }

    pub fn invalidate(&self, workspace_id: &str) {
        self.cache.invalidate(workspace_id);
    }

    pub fn clear(&self) {
        self.cache.invalidate_all();
    }

    /// Picks the account a call names (by id or label), else the default, else the only one.
    pub async fn pick(
        &self,
        workspace_id: &WorkspaceId,
        wanted: Option<&str>,
    ) -> Result<Arc<Account>, ApiError> {
        let accounts = self.for_workspace(workspace_id).await?;
        choose(&accounts, wanted).cloned()
    }
}

/// Picks from a workspace's accounts; shared, so a call takes a reference count, not a copy.
pub fn choose<'a>(
    accounts: &'a [Arc<Account>],
    wanted: Option<&str>,
) -> Result<&'a Arc<Account>, ApiError> {
    let labels = || {
        accounts
            .iter()
            .map(|a| format!("`{}`", a.label))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if let Some(wanted) = wanted {
        // An account of another workspace is simply not in this list: it answers as unknown.
        return accounts
            .iter()
            .find(|a| a.id == wanted || a.label == wanted)
            .ok_or_else(|| {
                ApiError::not_found(
                    Reason::AccountNotFound,
                    if accounts.is_empty() {
                        format!("No Crisp account `{wanted}` in this workspace, which has no accounts yet; add one with `crisp-gateway account add`.")
                    } else {
                        format!("No Crisp account `{wanted}` in this workspace; use one of: {}.", labels())
                    },
                )
            });
    }
    match accounts {
        [] => Err(ApiError::bad_request(
            Reason::NoAccount,
            "This workspace has no Crisp account yet; link one with `crisp-gateway account add --workspace NAME --label LABEL …`.",
        )),
        [only] => Ok(only),
        many => many.iter().find(|a| a.is_default).ok_or_else(|| {
            ApiError::bad_request(
                Reason::AccountRequired,
                format!(
                    "This workspace has several Crisp accounts and no default: name one in `account` ({}), or mark one default with `crisp-gateway account add … --default`.",
                    labels()
                ),
            )
        }),
    }
}
