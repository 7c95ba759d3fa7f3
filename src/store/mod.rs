//! Storage behind one narrow trait of use-case methods, with a SQLite and a Postgres engine.
//!
//! The engine is chosen by the URL scheme. Both engines share their SQL (`sql.rs`, one store
//! generic over sqlx's `Database`), keep one migrations folder each, and pass the same
//! conformance test.

mod enums;
mod ids;
mod postgres;
mod sql;
mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;

pub use enums::{ChangeKind, IdempotencyState, QuotaPeriod, Tier};
pub use ids::{AccountId, KeyId, WorkspaceId};
pub use postgres::PostgresStore;
pub use sql::{Dialect, SqlStore};
pub use sqlite::SqliteStore;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    #[error("already exists")]
    Conflict,
    #[error("database error: {0}")]
    Other(#[source] sqlx::Error),
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        match &err {
            sqlx::Error::RowNotFound => Self::NotFound,
            sqlx::Error::Database(db) if db.is_unique_violation() => Self::Conflict,
            _ => Self::Other(err),
        }
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Workspace {
    pub workspace_id: WorkspaceId,
    pub name: String,
    pub created_at: i64,
}

/// A gateway key as stored: never the key itself, only its argon2id hash.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ApiKeyRecord {
    pub api_key_id: KeyId,
    pub workspace_id: WorkspaceId,
    pub name: Option<String>,
    pub secret_hash: String,
    pub read_only: bool,
    /// Comma-separated action globs; `None` allows every action.
    pub allowed_actions: Option<String>,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub last_used_at: Option<i64>,
    /// Comma-separated Crisp website ids the key may act on; `None` leaves it to the account.
    pub allowed_websites: Option<String>,
    /// The most calls the key may make per `quota_period`; `None`: no quota.
    pub quota_limit: Option<i64>,
    pub quota_period: Option<QuotaPeriod>,
}

impl ApiKeyRecord {
    /// The key's quota, when it has one.
    pub fn quota(&self) -> Option<Quota> {
        Some(Quota {
            limit: self.quota_limit?,
            period: self.quota_period?,
        })
    }
}

/// At most `limit` admitted calls per UTC `period`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    pub limit: i64,
    pub period: QuotaPeriod,
}

/// What one claim on a key's quota got: `granted` calls (0 when none remain), and how much of
/// the period's quota all replicas hold or spent once it was granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaClaim {
    pub granted: i64,
    pub used: i64,
}

/// Calls of one key to one action on one UTC day, as counted by one or more replicas.
#[derive(Debug, Clone, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct UsageRecord {
    pub workspace_id: WorkspaceId,
    pub api_key_id: KeyId,
    pub action: String,
    /// The unix time of the day's UTC midnight.
    pub day: i64,
    #[sqlx(flatten)]
    pub counts: UsageCounts,
}

/// What a group of calls did: the usage table's counters, and a usage report's.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, sqlx::FromRow, serde::Serialize, serde::Deserialize,
)]
pub struct UsageCounts {
    /// Every call the gateway took for a valid key, refused or not.
    pub calls: i64,
    /// Refused by the gateway before Crisp was asked (4xx: scope, rate, quota, bad input).
    pub refused: i64,
    /// Failed at the gateway with a 5xx of its own (Crisp unreachable or too slow, database).
    pub failed: i64,
    /// Crisp's answers by class; `crisp_none` counts calls Crisp never answered.
    pub crisp_2xx: i64,
    pub crisp_4xx: i64,
    pub crisp_5xx: i64,
    pub crisp_none: i64,
    /// Time spent on Crisp's side of the calls (its account's turn and retries included),
    /// summed, in milliseconds.
    pub upstream_ms: i64,
}

impl std::ops::AddAssign for UsageCounts {
    fn add_assign(&mut self, other: Self) {
        self.calls += other.calls;
        self.refused += other.refused;
        self.failed += other.failed;
        self.crisp_2xx += other.crisp_2xx;
        self.crisp_4xx += other.crisp_4xx;
        self.crisp_5xx += other.crisp_5xx;
        self.crisp_none += other.crisp_none;
        self.upstream_ms += other.upstream_ms;
    }
}

/// Which usage rows to read: a workspace's (or every one's), from the day holding `since` on.
#[derive(Debug, Clone, Default)]
pub struct UsageFilter {
    pub workspace_id: Option<WorkspaceId>,
    pub since: i64,
}

/// An admin token as stored: never the token itself, only its argon2id hash.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AdminTokenRecord {
    pub admin_token_id: String,
    pub name: Option<String>,
    pub secret_hash: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

/// A linked Crisp account; `sealed_key` is the Crisp key encrypted under the master key.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct AccountRecord {
    pub crisp_account_id: AccountId,
    pub workspace_id: WorkspaceId,
    pub label: String,
    pub identifier: String,
    pub sealed_key: String,
    pub website_id: String,
    pub tier: Tier,
    pub is_default: bool,
    pub created_at: i64,
    /// Comma-separated website ids the account may also act on besides `website_id` (its
    /// token reaches them too); `None` allows its own website only.
    pub allowed_websites: Option<String>,
    /// Upstream calls per second for this account; `None` keeps the configured default.
    pub rate_limit: Option<f64>,
    /// Concurrent upstream calls for this account; `None` keeps the configured default.
    pub max_concurrency: Option<i64>,
}

/// One replica's lease on one shared budget (`account:<id>`, `key:<id>`), until `expires_at`
/// (unix milliseconds). `want_*` is what it asked for, `rate`/`slots` what it holds.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct BudgetLease {
    pub budget_name: String,
    pub replica_id: String,
    pub want_rate: f64,
    pub want_slots: i64,
    pub rate: f64,
    pub slots: i64,
    pub expires_at: i64,
}

/// What a replica records for one budget, decided from the other live leases.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BudgetDecision {
    pub want_rate: f64,
    pub want_slots: i64,
    pub rate: f64,
    pub slots: i64,
}

/// A renewed lease, and how many replicas (this one included) hold a live lease on its budget.
#[derive(Debug, Clone, PartialEq)]
pub struct BudgetRenewal {
    pub lease: BudgetLease,
    pub replicas: usize,
}

/// Decides a replica's lease on the budget at an index from the other live leases on it.
pub type DecideLease<'a> = &'a (dyn Fn(usize, &[BudgetLease]) -> BudgetDecision + Send + Sync);

/// What a change-log row invalidates.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Change {
    pub change_id: i64,
    /// What `subject_id` names: a key id or a workspace id.
    pub kind: ChangeKind,
    pub subject_id: String,
}

/// One audited call: who, what, how it ended and how long it took; never a body.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AuditRecord {
    pub at: i64,
    pub workspace_id: Option<WorkspaceId>,
    pub api_key_id: Option<KeyId>,
    pub crisp_account_id: Option<AccountId>,
    pub action: String,
    pub status: i32,
    pub upstream_status: Option<i32>,
    pub duration_ms: i64,
    pub request_id: String,
    pub reason: Option<String>,
    /// How many calls the row stands for: 1, or more for refusals aggregated per minute.
    pub count: i64,
    /// The client's address, for refusals that presented no key id.
    pub client: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub workspace_id: Option<WorkspaceId>,
    pub since: Option<i64>,
    pub limit: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ReportRecord {
    pub report_id: String,
    pub workspace_id: WorkspaceId,
    pub api_key_id: KeyId,
    pub at: i64,
    pub message: String,
    pub context: Option<String>,
    /// The `conversation` the caller attached, as JSON text.
    pub conversation: Option<String>,
}

/// Changes to an account; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct AccountUpdate {
    pub label: Option<String>,
    pub website_id: Option<String>,
    pub tier: Option<Tier>,
    pub is_default: Option<bool>,
    pub identifier: Option<String>,
    pub sealed_key: Option<String>,
    /// `Some(None)` allows the account's own website only again.
    pub allowed_websites: Option<Option<String>>,
    /// `Some(None)` returns to the configured default.
    pub rate_limit: Option<Option<f64>>,
    /// `Some(None)` returns to the configured default.
    pub max_concurrency: Option<Option<i64>>,
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct IdempotencyRecord {
    pub workspace_id: WorkspaceId,
    pub idempotency_key: String,
    pub request_hash: String,
    /// The state as stored; what it means now also depends on the lease (`IdempotencyState::at`).
    pub state: IdempotencyState,
    pub status: Option<i32>,
    pub response: Option<String>,
    pub created_at: i64,
    /// Until when a `pending` claim's process may still be running the call; past it, the
    /// process is taken to have died mid-call.
    pub lease_until: i64,
    /// When the record stops counting and the key may be claimed again.
    pub expires_at: i64,
}

/// An idempotency record as operators list it: never the stored answer.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct IdempotencyEntry {
    pub workspace_id: WorkspaceId,
    pub idempotency_key: String,
    pub state: IdempotencyState,
    pub status: Option<i32>,
    pub created_at: i64,
    pub lease_until: i64,
    pub expires_at: i64,
}

/// Which idempotency records to list: live ones (not yet expired at `now`), newest first.
#[derive(Debug, Clone)]
pub struct IdempotencyFilter {
    pub workspace_id: Option<WorkspaceId>,
    pub state: Option<IdempotencyState>,
    pub now: i64,
    pub limit: i64,
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    fn engine(&self) -> Engine;
    async fn migrate(&self) -> StoreResult<()>;
    async fn ping(&self) -> StoreResult<()>;

    async fn create_workspace(&self, workspace: &Workspace) -> StoreResult<()>;
    async fn find_workspace(&self, name: &str) -> StoreResult<Workspace>;
    async fn list_workspaces(&self) -> StoreResult<Vec<Workspace>>;

    async fn create_key(&self, key: &ApiKeyRecord) -> StoreResult<()>;
    async fn find_key(&self, api_key_id: &KeyId) -> StoreResult<ApiKeyRecord>;
    async fn list_keys(&self, workspace_id: Option<&WorkspaceId>)
    -> StoreResult<Vec<ApiKeyRecord>>;
    /// Marks a key revoked (idempotent) and logs the change.
    async fn revoke_key(&self, api_key_id: &KeyId, now: i64) -> StoreResult<()>;

    async fn create_admin_token(&self, token: &AdminTokenRecord) -> StoreResult<()>;
    async fn find_admin_token(&self, admin_token_id: &str) -> StoreResult<AdminTokenRecord>;
    async fn list_admin_tokens(&self) -> StoreResult<Vec<AdminTokenRecord>>;
    /// Marks an admin token revoked (idempotent) and logs the change.
    async fn revoke_admin_token(&self, admin_token_id: &str, now: i64) -> StoreResult<()>;

    /// Adds an account; a default account clears the workspace's previous default.
    async fn add_account(&self, account: &AccountRecord) -> StoreResult<()>;
    async fn list_accounts(
        &self,
        workspace_id: Option<&WorkspaceId>,
    ) -> StoreResult<Vec<AccountRecord>>;
    /// Removes an account of this workspace, found by id or label.
    async fn remove_account(
        &self,
        workspace_id: &WorkspaceId,
        id_or_label: &str,
    ) -> StoreResult<AccountRecord>;

    /// Replaces a key: inserts `new` and makes `old_id` expire at `old_expires_at`, at once.
    async fn rotate_key(
        &self,
        old_id: &KeyId,
        new: &ApiKeyRecord,
        old_expires_at: i64,
    ) -> StoreResult<()>;
    /// Sets or clears a key's quota and logs the change, so running gateways reload the key.
    async fn set_key_quota(&self, api_key_id: &KeyId, quota: Option<Quota>) -> StoreResult<()>;
    /// Claims up to `want` calls of a key's quota for the period starting at `period_start`,
    /// atomically across replicas: never more than `limit - used`, so the sum of all grants
    /// never exceeds the quota.
    async fn claim_quota(
        &self,
        api_key_id: &KeyId,
        period_start: i64,
        want: i64,
        limit: i64,
    ) -> StoreResult<QuotaClaim>;
    /// Gives back `unused` calls claimed earlier in the same period.
    async fn return_quota(
        &self,
        api_key_id: &KeyId,
        period_start: i64,
        unused: i64,
    ) -> StoreResult<()>;
    /// How much of the period's quota is claimed (spent, or held by a running replica).
    async fn quota_used(&self, api_key_id: &KeyId, period_start: i64) -> StoreResult<i64>;
    /// Adds counted calls to the usage rows (creating them), in one transaction.
    async fn add_usage(&self, rows: &[UsageRecord]) -> StoreResult<()>;
    /// Usage rows matching the filter, by day, workspace, key and action.
    async fn list_usage(&self, filter: &UsageFilter) -> StoreResult<Vec<UsageRecord>>;
    /// Records when keys were last used (batched; never on a request's critical path).
    async fn touch_keys(&self, used: &[(KeyId, i64)]) -> StoreResult<()>;

    async fn update_account(
        &self,
        workspace_id: &WorkspaceId,
        id_or_label: &str,
        update: &AccountUpdate,
    ) -> StoreResult<AccountRecord>;
    /// Replaces every account's sealed key in one transaction (master-key rotation): all or nothing.
    async fn reseal_accounts(&self, sealed: &[(AccountId, String)]) -> StoreResult<()>;

    async fn insert_audit(&self, records: &[AuditRecord]) -> StoreResult<()>;
    async fn list_audit(&self, filter: &AuditFilter) -> StoreResult<Vec<AuditRecord>>;
    /// Deletes audit rows older than `before`; returns how many.
    async fn prune_audit(&self, before: i64) -> StoreResult<u64>;
    /// Deletes idempotency records that expired before `before` (a new claim would replace
    /// them anyway, but keys that are never used again would stay forever); returns how many.
    async fn prune_idempotency(&self, before: i64) -> StoreResult<u64>;

    async fn insert_report(&self, report: &ReportRecord) -> StoreResult<()>;
    async fn list_reports(
        &self,
        workspace_id: Option<&WorkspaceId>,
    ) -> StoreResult<Vec<ReportRecord>>;
    /// Deletes a workspace's reports beyond its newest `keep`; returns how many.
    async fn prune_reports(&self, workspace_id: &WorkspaceId, keep: i64) -> StoreResult<u64>;

    /// Claims an idempotency key: `Ok(None)` if this call claimed it, `Ok(Some(existing))`
    /// if another record holds it. Records expired at `record.created_at` are replaced. Never
    /// `NotFound`: a holder that vanishes while the key is claimed leaves the key to this call.
    async fn claim_idempotency(
        &self,
        record: &IdempotencyRecord,
    ) -> StoreResult<Option<IdempotencyRecord>>;
    /// Stores the answer of a claimed call (state `done`), kept until `expires_at`.
    async fn complete_idempotency(
        &self,
        workspace_id: &WorkspaceId,
        key: &str,
        status: i32,
        response: &str,
        expires_at: i64,
    ) -> StoreResult<()>;
    /// Marks a `pending` claim `unknown`: its call left, but no answer came back.
    async fn mark_idempotency_unknown(
        &self,
        workspace_id: &WorkspaceId,
        key: &str,
    ) -> StoreResult<()>;
    /// Releases a `pending` claim whose call never reached Crisp, so a retry may run.
    async fn release_idempotency(&self, workspace_id: &WorkspaceId, key: &str) -> StoreResult<()>;
    async fn find_idempotency(
        &self,
        workspace_id: &WorkspaceId,
        key: &str,
    ) -> StoreResult<IdempotencyRecord>;
    async fn list_idempotency(
        &self,
        filter: &IdempotencyFilter,
    ) -> StoreResult<Vec<IdempotencyEntry>>;
    /// Deletes a record whatever its state (an operator's release); `NotFound` if none.
    async fn delete_idempotency(
        &self,
        workspace_id: &WorkspaceId,
        key: &str,
    ) -> StoreResult<IdempotencyEntry>;

    /// Renews `replica_id`'s leases on `budgets` (sorted, so renewals lock them in one order)
    /// until `expires_at`, in one transaction: per budget, takes its lock, drops the leases
    /// that expired by `now`, gives `decide` the other replicas' live leases and records what it
    /// returns. Also drops this replica's leases on `released`. Returns the renewed leases in
    /// the order of `budgets`.
    async fn renew_budget_leases(
        &self,
        replica_id: &str,
        budgets: &[String],
        now: i64,
        expires_at: i64,
        released: &[String],
        decide: DecideLease<'_>,
    ) -> StoreResult<Vec<BudgetRenewal>>;
    /// The live leases on a budget at `now` (for tests and diagnostics).
    async fn budget_leases(&self, budget_name: &str, now: i64) -> StoreResult<Vec<BudgetLease>>;

    /// Wakes `wake` whenever a change is logged by any process, for engines that can push
    /// (Postgres LISTEN/NOTIFY); runs until the process ends. Others return at once and are polled.
    async fn listen_for_changes(&self, _wake: Arc<tokio::sync::Notify>) {}

    /// Change-log rows after `after`, oldest first.
    async fn changes_since(&self, after: i64) -> StoreResult<Vec<Change>>;
    /// The newest change id (0 when the log is empty).
    async fn last_change(&self) -> StoreResult<i64>;
}

/// Opens the store the URL names: `sqlite://…` (created if missing) or `postgres://…`.
pub async fn connect(url: &str) -> Result<Arc<dyn Store>, ConnectError> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::connect(url).await?))
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        Ok(Arc::new(PostgresStore::connect(url).await?))
    } else {
        Err(ConnectError::Scheme)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("DATABASE_URL must start with `sqlite://` or `postgres://`")]
    Scheme,
    #[error("cannot open the database: {0}")]
    Open(#[from] sqlx::Error),
}

/// The folder of a SQLite database file (where `master.key` lives), if the URL names a file.
pub fn sqlite_folder(url: &str) -> Option<std::path::PathBuf> {
    let path = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = path.split('?').next().unwrap_or(path);
    if path.is_empty() || path == ":memory:" {
        return None;
    }
    let parent = std::path::Path::new(path).parent()?;
    Some(if parent.as_os_str().is_empty() {
        std::path::PathBuf::from(".")
    } else {
        parent.to_path_buf()
    })
}
