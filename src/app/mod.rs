//! The shared state of a running gateway, and how it is assembled from configuration.

pub mod config;
mod leases;

use std::sync::Arc;
use std::time::Duration;

use crate::accounts::AccountCache;
use crate::app::config::Config;
use crate::audit::Auditor;
use crate::auth::Keyring;
use crate::forward::CrispClient;
use crate::secret::{MasterKey, Vault};
use crate::store::{ChangeKind, Engine, Store};

pub struct App {
    pub config: Config,
    pub store: Arc<dyn Store>,
    pub keyring: Arc<Keyring>,
    /// Admin tokens for the admin listener.
    pub admin_keyring: Arc<crate::auth::AdminKeyring>,
    pub accounts: AccountCache,
    /// Seals and opens Crisp keys (the admin API links accounts with it).
    pub vault: Vault,
    pub crisp: CrispClient,
    pub key_limits: Arc<crate::limits::KeyLimiter>,
    /// Each key's quota, claimed from the database in chunks.
    pub quotas: Arc<crate::limits::QuotaBook>,
    /// Reports per key (`report_rate_limit` per minute).
    pub report_limits: crate::limits::KeyLimiter,
    pub auditor: Auditor,
    /// The shared budgets' leases, when replicas share a database (Postgres); `None` keeps
    /// every budget in this process (SQLite: one process).
    pub ledger: Option<Arc<crate::limits::Ledger>>,
}

pub type AppState = Arc<App>;

impl App {
    /// What a call needs of the app, lent for one call.
    pub fn services(&self) -> crate::call::Services<'_> {
        crate::call::Services {
            store: &self.store,
            accounts: &self.accounts,
            crisp: &self.crisp,
            key_limits: &self.key_limits,
            quotas: &self.quotas,
            auditor: &self.auditor,
            request_timeout: self.config.request_timeout,
            idempotency_ttl: self.config.idempotency_ttl,
            idempotency_unknown_hold: self.config.idempotency_unknown_hold,
            max_pages: self.config.max_pages,
        }
    }

    /// What a caller's report needs of the app.
    pub fn reports(&self) -> crate::call::report::Reports<'_> {
        crate::call::report::Reports {
            store: self.store.as_ref(),
            limits: &self.report_limits,
            retention: self.config.report_retention,
        }
    }

    /// What the auth layer needs of the app.
    pub fn key_check(&self) -> crate::auth::KeyCheck {
        crate::auth::KeyCheck {
            keyring: self.keyring.clone(),
            auditor: self.auditor.clone(),
            quotas: self.quotas.clone(),
            key_limits: self.key_limits.clone(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(
        "CRISP_GATEWAY_MASTER_KEY is not set. With Postgres the master key that encrypts Crisp keys \
         must come from the environment: make one with `crisp-gateway master-key generate` (or \
         `openssl rand -base64 32`), keep it in your secret store, and set CRISP_GATEWAY_MASTER_KEY \
         on every replica"
    )]
    MasterKeyRequired,
    #[error(transparent)]
    Vault(#[from] crate::secret::VaultError),
    #[error("configuration: {0}")]
    Config(String),
    #[error("cannot build the Crisp client: {0}")]
    Client(#[from] crate::forward::TransportError),
}

/// The master key: from the environment, else (SQLite only) from `master.key` beside the
/// database file, created on first use.
pub fn master_key(config: &Config, engine: Engine) -> Result<MasterKey, StartError> {
    if let Some(key) = &config.master_key {
        return Ok(key.clone());
    }
    let folder = match engine {
        Engine::Sqlite => crate::store::sqlite_folder(config.database_url.expose()),
        Engine::Postgres => None,
    }
    .ok_or(StartError::MasterKeyRequired)?;
    let path = folder.join("master.key");
    let (key, created) = MasterKey::load_or_create(&path)?;
    if created {
        tracing::warn!(path = %path.display(), "generated a new master key for Crisp secrets; back this file up with the database");
    } else {
        tracing::debug!(path = %path.display(), "using the master key file");
    }
    Ok(key)
}

impl App {
    pub fn new(config: Config, store: Arc<dyn Store>) -> Result<AppState, StartError> {
        let vault = Vault::new(&master_key(&config, store.engine())?);
        let policy = config.retry_policy().map_err(StartError::Config)?;
        let ledger = (store.engine() == Engine::Postgres && config.shared_budgets)
            .then(|| crate::limits::Ledger::new(crate::limits::Ledger::replica_id()));
        let shaper = match &ledger {
            Some(ledger) => {
                crate::limits::AccountShaper::shared(config.account_limits(), ledger.clone())
            }
            None => crate::limits::AccountShaper::new(config.account_limits()),
        };
        let crisp = CrispClient::new(&config.crisp(), policy, shaper)?;
        let key_limits = Arc::new(match &ledger {
            Some(ledger) => crate::limits::KeyLimiter::shared(
                config.key_rate_limit,
                config.key_burst,
                ledger.clone(),
            ),
            None => crate::limits::KeyLimiter::new(config.key_rate_limit, config.key_burst),
        });
        let quotas = Arc::new(crate::limits::QuotaBook::new(store.clone()));
        let auditor = Auditor::start(store.clone(), config.audit_retention);
        Ok(Arc::new(Self {
            keyring: Arc::new(Keyring::new(
                store.clone(),
                auditor.clone(),
                config.key_cache_capacity,
                config.key_cache_ttl,
                crate::limits::FailureLimiter::new(
                    config.auth_failure_rate,
                    config.auth_failure_burst,
                ),
            )),
            admin_keyring: Arc::new(crate::auth::AdminKeyring::new(
                store.clone(),
                config.key_cache_ttl,
                crate::limits::FailureLimiter::new(
                    config.auth_failure_rate,
                    config.auth_failure_burst,
                ),
            )),
            accounts: AccountCache::new(store.clone(), vault.clone(), config.key_cache_ttl),
            vault,
            crisp,
            key_limits,
            quotas,
            report_limits: crate::limits::KeyLimiter::new(
                config.report_rate_limit / 60.0,
                config.report_burst,
            ),
            auditor,
            ledger,
            store,
            config,
        }))
    }

    /// Renews the shared budgets' leases in the background while the returned handle lives
    /// (nothing to do when budgets are kept in this process). Dropping it stops renewing; the
    /// leases then lapse within `limits::LEASE_TTL`.
    ///
    /// The first renewal is made before this returns: it counts the live replicas, so the
    /// first calls this process serves start a budget at a newcomer's share among them rather
    /// than at the whole budget of a replica that thinks itself alone.
    pub async fn hold_budgets(self: &Arc<Self>) -> Option<BudgetTask> {
        let ledger = self.ledger.clone()?;
        let port = leases::StoreLeases(self.store.clone());
        ledger.renew(&port).await;
        Some(BudgetTask(tokio::spawn(async move {
            loop {
                ledger.next().await;
                ledger.renew(&port).await;
            }
        })))
    }

    /// Follows the change log so that a revoked key or an edited account, changed by any
    /// process (another replica, the CLI), stops being served from this process's caches.
    /// The starting point is read before this returns, so nothing cached afterwards can miss
    /// a change.
    pub async fn follow_changes(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let app = Arc::clone(self);
        let mut cursor = app.start_cursor().await;
        let wake = Arc::new(tokio::sync::Notify::new());
        let listener = tokio::spawn({
            let (store, wake) = (app.store.clone(), wake.clone());
            async move { store.listen_for_changes(wake).await }
        });
        tokio::spawn(async move {
            let _listener = AbortOnDrop(listener);
            let mut tick =
                tokio::time::interval(app.config.refresh_interval.max(Duration::from_millis(50)));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    () = wake.notified() => {}
                }
                cursor = match cursor {
                    Some(after) => Some(app.apply_changes(after).await),
                    None => app.start_cursor().await.inspect(|_| {
                        // We could not read the log when we started: whatever was cached
                        // since may predate a change, so start clean.
                        app.keyring.clear();
                        app.accounts.clear();
                    }),
                };
            }
        })
    }

    async fn start_cursor(&self) -> Option<i64> {
        match self.store.last_change().await {
            Ok(last) => Some(last),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the change log; will retry");
                None
            }
        }
    }

    /// Applies the changes after `after`; on a database error keeps `after`, so the changes
    /// are read once the database answers again.
    async fn apply_changes(&self, after: i64) -> i64 {
        match self.store.changes_since(after).await {
            Ok(changes) => changes.into_iter().fold(after, |_, change| {
                match change.kind {
                    ChangeKind::Key => self.keyring.invalidate(&change.subject_id),
                    ChangeKind::Accounts => self.accounts.invalidate(&change.subject_id),
                    ChangeKind::AdminToken => self.admin_keyring.invalidate(&change.subject_id),
                }
                change.change_id
            }),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the change log; will retry");
                after
            }
        }
    }
}

/// The task renewing this process's budget leases; stops when dropped.
pub struct BudgetTask(tokio::task::JoinHandle<()>);

impl App {
    /// Stops renewing and gives the leases back, so other replicas take the whole budget at
    /// their next renewal rather than when the leases expire.
    pub async fn release_budgets(&self, task: Option<BudgetTask>) {
        drop(task);
        if let Some(ledger) = &self.ledger {
            ledger
                .release(&leases::StoreLeases(self.store.clone()))
                .await;
        }
    }
}

impl Drop for BudgetTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Stops a background task when its owner stops.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
