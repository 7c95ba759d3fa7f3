//! The SQL both engines share, written once as one generic store over sqlx's `Database`.
//!
//! Every statement here is valid on SQLite and on Postgres (`$n` placeholders, `returning`,
//! lowercase SQL). `SqlStore<Sqlite>` and `SqlStore<Postgres>` are the two engines; what differs
//! between them (connecting, the migrations folder, change notifications) is their `Dialect`,
//! implemented in `sqlite.rs` and `postgres.rs`.

use std::sync::Arc;

use async_trait::async_trait;
use sqlx::{Database, Encode, Executor, FromRow, IntoArguments, Pool, Type};

use super::{AccountId, DecideLease, KeyId, WorkspaceId};
use super::{
    AccountRecord, AccountUpdate, AdminTokenRecord, ApiKeyRecord, AuditFilter, AuditRecord,
    BudgetLease, BudgetRenewal, Change, ChangeKind, Engine, IdempotencyEntry, IdempotencyFilter,
    IdempotencyRecord, IdempotencyState, Quota, QuotaClaim, QuotaPeriod, ReportRecord, Store,
    StoreError, StoreResult, Tier, UsageFilter, UsageRecord, Workspace,
};

/// The columns of `api_key`, in the order `ApiKeyRecord` reads them (a macro, so statements
/// stay static strings).
macro_rules! key_columns {
    () => {
        "api_key_id, workspace_id, name, secret_hash, read_only, allowed_actions, created_at, \
         expires_at, revoked_at, last_used_at, allowed_websites, quota_limit, quota_period"
    };
}

/// A store over one sqlx pool; its SQL is the same on every engine.
pub struct SqlStore<DB: Database> {
    pub(super) pool: Pool<DB>,
}

/// What one engine does its own way; the SQL itself is shared.
#[async_trait]
pub trait Dialect: Database {
    const ENGINE: Engine;

    async fn migrate(pool: &Pool<Self>) -> Result<(), sqlx::migrate::MigrateError>;

    /// How a transaction that writes begins. SQLite must take its write lock at the start: a
    /// deferred transaction that reads first fails at once with "database is locked" when
    /// another connection wrote in between, whatever the busy timeout.
    const BEGIN_WRITE: &'static str;

    /// sqlx's `Database` does not say how many rows a statement touched; each engine does.
    fn rows_affected(result: &Self::QueryResult) -> u64;

    /// See `Store::listen_for_changes`: engines that cannot push return at once.
    async fn listen_for_changes(_pool: &Pool<Self>, _wake: Arc<tokio::sync::Notify>) {}
}

#[async_trait]
impl<DB> Store for SqlStore<DB>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> i32: Encode<'q, DB> + Type<DB>,
    for<'q> bool: Encode<'q, DB> + Type<DB>,
    for<'q> String: Encode<'q, DB> + Type<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> Tier: Encode<'q, DB> + Type<DB>,
    for<'q> ChangeKind: Encode<'q, DB> + Type<DB>,
    for<'q> IdempotencyState: Encode<'q, DB> + Type<DB>,
    for<'q> QuotaPeriod: Encode<'q, DB> + Type<DB>,
    for<'q> Option<QuotaPeriod>: Encode<'q, DB>,
    for<'q> WorkspaceId: Encode<'q, DB> + Type<DB>,
    for<'q> KeyId: Encode<'q, DB> + Type<DB>,
    for<'q> AccountId: Encode<'q, DB> + Type<DB>,
    for<'q> Option<WorkspaceId>: Encode<'q, DB>,
    for<'q> Option<KeyId>: Encode<'q, DB>,
    for<'q> Option<AccountId>: Encode<'q, DB>,
    for<'q> Option<i64>: Encode<'q, DB>,
    for<'q> f64: Encode<'q, DB> + Type<DB>,
    for<'q> Option<f64>: Encode<'q, DB>,
    for<'q> Option<i32>: Encode<'q, DB>,
    for<'q> Option<String>: Encode<'q, DB>,
    for<'q> Option<&'q str>: Encode<'q, DB>,
    for<'q> Option<IdempotencyState>: Encode<'q, DB>,
    for<'r> Workspace: FromRow<'r, DB::Row>,
    for<'r> ApiKeyRecord: FromRow<'r, DB::Row>,
    for<'r> AdminTokenRecord: FromRow<'r, DB::Row>,
    for<'r> AccountRecord: FromRow<'r, DB::Row>,
    for<'r> AuditRecord: FromRow<'r, DB::Row>,
    for<'r> ReportRecord: FromRow<'r, DB::Row>,
    for<'r> IdempotencyRecord: FromRow<'r, DB::Row>,
    for<'r> IdempotencyEntry: FromRow<'r, DB::Row>,
    for<'r> Change: FromRow<'r, DB::Row>,
    for<'r> UsageRecord: FromRow<'r, DB::Row>,
    for<'r> BudgetLease: FromRow<'r, DB::Row>,
    for<'r> (String,): FromRow<'r, DB::Row>,
    for<'r> (i64, i64): FromRow<'r, DB::Row>,
    for<'r> (Option<i64>,): FromRow<'r, DB::Row>,
{
    fn engine(&self) -> Engine {
        DB::ENGINE
    }

    async fn migrate(&self) -> StoreResult<()> {
        DB::migrate(&self.pool)
            .await
            .map_err(|e| StoreError::Other(e.into()))
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("select 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn create_workspace(&self, workspace: &Workspace) -> StoreResult<()> {
        sqlx::query("insert into workspace (workspace_id, name, created_at) values ($1, $2, $3)")
            .bind(&workspace.workspace_id)
            .bind(&workspace.name)
            .bind(workspace.created_at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn find_workspace(&self, name: &str) -> StoreResult<Workspace> {
        Ok(
            sqlx::query_as("select workspace_id, name, created_at from workspace where name = $1")
                .bind(name)
                .fetch_one(&self.pool)
                .await?,
        )
    }

    async fn list_workspaces(&self) -> StoreResult<Vec<Workspace>> {
        Ok(
            sqlx::query_as("select workspace_id, name, created_at from workspace order by name")
                .fetch_all(&self.pool)
                .await?,
        )
    }

    async fn create_key(&self, key: &ApiKeyRecord) -> StoreResult<()> {
        let mut conn = self.pool.acquire().await?;
        insert_key(&mut *conn, key).await?;
        Ok(())
    }

    async fn find_key(&self, api_key_id: &KeyId) -> StoreResult<ApiKeyRecord> {
        Ok(sqlx::query_as(concat!(
            "select ",
            key_columns!(),
            " from api_key where api_key_id = $1"
        ))
        .bind(api_key_id)
        .fetch_one(&self.pool)
        .await?)
    }

    async fn list_keys(
        &self,
        workspace_id: Option<&WorkspaceId>,
    ) -> StoreResult<Vec<ApiKeyRecord>> {
        Ok(sqlx::query_as(concat!(
            "select ",
            key_columns!(),
            " from api_key where ($1 is null or workspace_id = $1) order by created_at, api_key_id"
        ))
        .bind(workspace_id.map(WorkspaceId::as_str))
        .fetch_all(&self.pool)
        .await?)
    }

    async fn revoke_key(&self, api_key_id: &KeyId, now: i64) -> StoreResult<()> {
        let mut tx = self.pool.begin_with(DB::BEGIN_WRITE).await?;
        let result = sqlx::query(
            "update api_key set revoked_at = coalesce(revoked_at, $2) where api_key_id = $1",
        )
        .bind(api_key_id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if DB::rows_affected(&result) == 0 {
            return Err(StoreError::NotFound);
        }
        log_change(&mut *tx, ChangeKind::Key, api_key_id.as_str(), now).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn create_admin_token(&self, token: &AdminTokenRecord) -> StoreResult<()> {
        sqlx::query(
            "insert into admin_token (admin_token_id, name, secret_hash, created_at, revoked_at) \
             values ($1, $2, $3, $4, $5)",
        )
        .bind(&token.admin_token_id)
        .bind(&token.name)
        .bind(&token.secret_hash)
        .bind(token.created_at)
        .bind(token.revoked_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn find_admin_token(&self, admin_token_id: &str) -> StoreResult<AdminTokenRecord> {
        Ok(sqlx::query_as(
            "select admin_token_id, name, secret_hash, created_at, revoked_at from admin_token \
             where admin_token_id = $1",
        )
        .bind(admin_token_id)
        .fetch_one(&self.pool)
        .await?)
    }

    async fn list_admin_tokens(&self) -> StoreResult<Vec<AdminTokenRecord>> {
        Ok(sqlx::query_as(
            "select admin_token_id, name, secret_hash, created_at, revoked_at from admin_token \
             order by created_at, admin_token_id",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    async fn revoke_admin_token(&self, admin_token_id: &str, now: i64) -> StoreResult<()> {
        let mut tx = self.pool.begin_with(DB::BEGIN_WRITE).await?;
        let result = sqlx::query(
            "update admin_token set revoked_at = coalesce(revoked_at, $2) \
             where admin_token_id = $1",
        )
        .bind(admin_token_id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if DB::rows_affected(&result) == 0 {
            return Err(StoreError::NotFound);
        }
        log_change(&mut *tx, ChangeKind::AdminToken, admin_token_id, now).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn add_account(&self, account: &AccountRecord) -> StoreResult<()> {
        let mut tx = self.pool.begin_with(DB::BEGIN_WRITE).await?;
        if account.is_default {
            sqlx::query("update crisp_account set is_default = false where workspace_id = $1")
                .bind(&account.workspace_id)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query(
            "insert into crisp_account (crisp_account_id, workspace_id, label, identifier, \
             sealed_key, website_id, tier, is_default, created_at, allowed_websites, rate_limit, \
             max_concurrency) values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(&account.crisp_account_id)
        .bind(&account.workspace_id)
        .bind(&account.label)
        .bind(&account.identifier)
        .bind(&account.sealed_key)
        .bind(&account.website_id)
        .bind(account.tier)
        .bind(account.is_default)
        .bind(account.created_at)
        .bind(&account.allowed_websites)
        .bind(account.rate_limit)
        .bind(account.max_concurrency)
        .execute(&mut *tx)
        .await?;
        log_change(
            &mut *tx,
            ChangeKind::Accounts,
            account.workspace_id.as_str(),
            account.created_at,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn list_accounts(
        &self,
        workspace_id: Option<&WorkspaceId>,
    ) -> StoreResult<Vec<AccountRecord>> {
        Ok(sqlx::query_as(
            "select crisp_account_id, workspace_id, label, identifier, sealed_key, website_id, \
             tier, is_default, created_at, allowed_websites, rate_limit, max_concurrency from crisp_account \
             where ($1 is null or workspace_id = $1) order by workspace_id, label",
        )
        .bind(workspace_id.map(WorkspaceId::as_str))
        .fetch_all(&self.pool)
        .await?)
    }

    async fn remove_account(
        &self,
        workspace_id: &WorkspaceId,
        id_or_label: &str,
    ) -> StoreResult<AccountRecord> {
        let mut tx = self.pool.begin_with(DB::BEGIN_WRITE).await?;
        let account: AccountRecord = sqlx::query_as(
            "delete from crisp_account where workspace_id = $1 \
             and (crisp_account_id = $2 or label = $2) \
             returning crisp_account_id, workspace_id, label, identifier, sealed_key, website_id, \
             tier, is_default, created_at, allowed_websites, rate_limit, max_concurrency",
        )
        .bind(workspace_id)
        .bind(id_or_label)
        .fetch_one(&mut *tx)
        .await?;
        let now = crate::kernel::clock::now();
        log_change(&mut *tx, ChangeKind::Accounts, workspace_id.as_str(), now).await?;
        tx.commit().await?;
        Ok(account)
    }

    async fn rotate_key(
        &self,
        old_id: &KeyId,
        new: &ApiKeyRecord,
        old_expires_at: i64,
    ) -> StoreResult<()> {
        let mut tx = self.pool.begin_with(DB::BEGIN_WRITE).await?;
        let result = sqlx::query(
            "update api_key set expires_at = case when expires_at is null or expires_at > $2 \
             then $2 else expires_at end where api_key_id = $1 and revoked_at is null",
        )
        .bind(old_id)
        .bind(old_expires_at)
        .execute(&mut *tx)
        .await?;
        if DB::rows_affected(&result) == 0 {
            return Err(StoreError::NotFound);
        }
        insert_key(&mut *tx, new).await?;
        log_change(&mut *tx, ChangeKind::Key, old_id.as_str(), new.created_at).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn set_key_quota(&self, api_key_id: &KeyId, quota: Option<Quota>) -> StoreResult<()> {
        let mut tx = self.pool.begin_with(DB::BEGIN_WRITE).await?;
        let result = sqlx::query(
            "update api_key set quota_limit = $2, quota_period = $3 where api_key_id = $1",
        )
        .bind(api_key_id)
        .bind(quota.map(|q| q.limit))
        .bind(quota.map(|q| q.period))
        .execute(&mut *tx)
        .await?;
        if DB::rows_affected(&result) == 0 {
            return Err(StoreError::NotFound);
        }
        let now = crate::kernel::clock::now();
        log_change(&mut *tx, ChangeKind::Key, api_key_id.as_str(), now).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn claim_quota(
        &self,
        api_key_id: &KeyId,
        period_start: i64,
        want: i64,
        limit: i64,
    ) -> StoreResult<QuotaClaim> {
        sqlx::query(
            "insert into key_quota_use (api_key_id, period_start, used, last_grant) \
             values ($1, $2, 0, 0) on conflict (api_key_id, period_start) do nothing",
        )
        .bind(api_key_id)
        .bind(period_start)
        .execute(&self.pool)
        .await?;
        // One statement, so the row's lock makes concurrent claims (from any replica) take
        // turns: each sees the `used` the previous one left and grants at most what remains.
        // Both engines compute every `set` from the row as it was before the update.
        let claimed: Option<(i64, i64)> = sqlx::query_as(
            "update key_quota_use set \
             used = case when used + $3 <= $4 then used + $3 else $4 end, \
             last_grant = case when used + $3 <= $4 then $3 else $4 - used end \
             where api_key_id = $1 and period_start = $2 and used < $4 \
             returning last_grant, used",
        )
        .bind(api_key_id)
        .bind(period_start)
        .bind(want)
        .bind(limit)
        .fetch_optional(&self.pool)
        .await?;
        Ok(match claimed {
            Some((granted, used)) => QuotaClaim { granted, used },
            None => QuotaClaim {
                granted: 0,
                used: self.quota_used(api_key_id, period_start).await?,
            },
        })
    }

    async fn return_quota(
        &self,
        api_key_id: &KeyId,
        period_start: i64,
        unused: i64,
    ) -> StoreResult<()> {
        sqlx::query(
            "update key_quota_use set used = case when used > $3 then used - $3 else 0 end \
             where api_key_id = $1 and period_start = $2",
        )
        .bind(api_key_id)
        .bind(period_start)
        .bind(unused)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn quota_used(&self, api_key_id: &KeyId, period_start: i64) -> StoreResult<i64> {
        let (used,): (Option<i64>,) = sqlx::query_as(
            "select max(used) from key_quota_use where api_key_id = $1 and period_start = $2",
        )
        .bind(api_key_id)
        .bind(period_start)
        .fetch_one(&self.pool)
        .await?;
        Ok(used.unwrap_or(0))
    }

    async fn add_usage(&self, rows: &[UsageRecord]) -> StoreResult<()> {
        let mut tx = self.pool.begin_with(DB::BEGIN_WRITE).await?;
        for r in rows {
            sqlx::query(
                "insert into usage_count (workspace_id, api_key_id, action, day, calls, refused, \
                 failed, crisp_2xx, crisp_4xx, crisp_5xx, crisp_none, upstream_ms) \
                 values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
                 on conflict (workspace_id, api_key_id, action, day) do update set \
                 calls = usage_count.calls + excluded.calls, \
                 refused = usage_count.refused + excluded.refused, \
                 failed = usage_count.failed + excluded.failed, \
                 crisp_2xx = usage_count.crisp_2xx + excluded.crisp_2xx, \
                 crisp_4xx = usage_count.crisp_4xx + excluded.crisp_4xx, \
                 crisp_5xx = usage_count.crisp_5xx + excluded.crisp_5xx, \
                 crisp_none = usage_count.crisp_none + excluded.crisp_none, \
                 upstream_ms = usage_count.upstream_ms + excluded.upstream_ms",
            )
            .bind(&r.workspace_id)
            .bind(&r.api_key_id)
            .bind(&r.action)
            .bind(r.day)
            .bind(r.counts.calls)
            .bind(r.counts.refused)
            .bind(r.counts.failed)
            .bind(r.counts.crisp_2xx)
            .bind(r.counts.crisp_4xx)
            .bind(r.counts.crisp_5xx)
            .bind(r.counts.crisp_none)
            .bind(r.counts.upstream_ms)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn list_usage(&self, filter: &UsageFilter) -> StoreResult<Vec<UsageRecord>> {
        Ok(sqlx::query_as(
            "select workspace_id, api_key_id, action, day, calls, refused, failed, crisp_2xx, \
             crisp_4xx, crisp_5xx, crisp_none, upstream_ms from usage_count \
             where ($1 is null or workspace_id = $1) and day >= $2 \
             order by day, workspace_id, api_key_id, action",
        )
        .bind(&filter.workspace_id)
        .bind(QuotaPeriod::Day.start(filter.since))
        .fetch_all(&self.pool)
        .await?)
    }

    async fn touch_keys(&self, used: &[(KeyId, i64)]) -> StoreResult<()> {
        let mut tx = self.pool.begin_with(DB::BEGIN_WRITE).await?;
        for (key_id, at) in used {
            sqlx::query(
                "update api_key set last_used_at = $2 where api_key_id = $1 \
                 and (last_used_at is null or last_used_at < $2)",
            )
            .bind(key_id)
            .bind(*at)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn update_account(
        &self,
        workspace_id: &WorkspaceId,
        id_or_label: &str,
        update: &AccountUpdate,
    ) -> StoreResult<AccountRecord> {
        let mut tx = self.pool.begin_with(DB::BEGIN_WRITE).await?;
        let current: AccountRecord = sqlx::query_as(
            "select crisp_account_id, workspace_id, label, identifier, sealed_key, website_id, \
             tier, is_default, created_at, allowed_websites, rate_limit, max_concurrency from crisp_account \
             where workspace_id = $1 and (crisp_account_id = $2 or label = $2)",
        )
        .bind(workspace_id)
        .bind(id_or_label)
        .fetch_one(&mut *tx)
        .await?;
        if update.is_default == Some(true) {
            sqlx::query("update crisp_account set is_default = false where workspace_id = $1")
                .bind(workspace_id)
                .execute(&mut *tx)
                .await?;
        }
        let updated: AccountRecord = sqlx::query_as(
            "update crisp_account set label = $2, website_id = $3, tier = $4, is_default = $5, \
             identifier = $6, sealed_key = $7, allowed_websites = $8, rate_limit = $9, \
             max_concurrency = $10 \
             where crisp_account_id = $1 \
             returning crisp_account_id, workspace_id, label, identifier, sealed_key, website_id, \
             tier, is_default, created_at, allowed_websites, rate_limit, max_concurrency",
        )
        .bind(&current.crisp_account_id)
        .bind(update.label.as_ref().unwrap_or(&current.label))
        .bind(update.website_id.as_ref().unwrap_or(&current.website_id))
        .bind(update.tier.unwrap_or(current.tier))
        .bind(update.is_default.unwrap_or(current.is_default))
        .bind(update.identifier.as_ref().unwrap_or(&current.identifier))
        .bind(update.sealed_key.as_ref().unwrap_or(&current.sealed_key))
        .bind(
            update
                .allowed_websites
                .as_ref()
                .unwrap_or(&current.allowed_websites),
        )
        .bind(update.rate_limit.unwrap_or(current.rate_limit))
        .bind(update.max_concurrency.unwrap_or(current.max_concurrency))
        .fetch_one(&mut *tx)
        .await?;
        log_change(
            &mut *tx,
            ChangeKind::Accounts,
            workspace_id.as_str(),
            crate::kernel::clock::now(),
        )
        .await?;
        tx.commit().await?;
        Ok(updated)
    }

    async fn reseal_accounts(&self, sealed: &[(AccountId, String)]) -> StoreResult<()> {
        let mut tx = self.pool.begin_with(DB::BEGIN_WRITE).await?;
        let mut workspaces = Vec::new();
        for (account_id, sealed_key) in sealed {
            let (workspace_id,): (String,) = sqlx::query_as(
                "update crisp_account set sealed_key = $2 where crisp_account_id = $1 \
                 returning workspace_id",
            )
            .bind(account_id)
            .bind(sealed_key)
            .fetch_one(&mut *tx)
            .await?;
            if !workspaces.contains(&workspace_id) {
                workspaces.push(workspace_id);
            }
        }
        let now = crate::kernel::clock::now();
        for workspace_id in &workspaces {
            log_change(&mut *tx, ChangeKind::Accounts, workspace_id, now).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn insert_audit(&self, records: &[AuditRecord]) -> StoreResult<()> {
        let mut tx = self.pool.begin_with(DB::BEGIN_WRITE).await?;
        for r in records {
            sqlx::query(
                "insert into audit_event (at, workspace_id, api_key_id, crisp_account_id, action, \
                 status, upstream_status, duration_ms, request_id, reason, count, client) \
                 values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            )
            .bind(r.at)
            .bind(&r.workspace_id)
            .bind(&r.api_key_id)
            .bind(&r.crisp_account_id)
            .bind(&r.action)
            .bind(r.status)
            .bind(r.upstream_status)
            .bind(r.duration_ms)
            .bind(&r.request_id)
            .bind(&r.reason)
            .bind(r.count)
            .bind(&r.client)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn list_audit(&self, filter: &AuditFilter) -> StoreResult<Vec<AuditRecord>> {
        Ok(sqlx::query_as(
            "select at, workspace_id, api_key_id, crisp_account_id, action, status, \
             upstream_status, duration_ms, request_id, reason, count, client from audit_event \
             where ($1 is null or workspace_id = $1) and at >= $2 \
             order by audit_event_id desc limit $3",
        )
        .bind(&filter.workspace_id)
        .bind(filter.since.unwrap_or(0))
        .bind(filter.limit)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn prune_audit(&self, before: i64) -> StoreResult<u64> {
        let result = sqlx::query("delete from audit_event where at < $1")
            .bind(before)
            .execute(&self.pool)
            .await?;
        Ok(DB::rows_affected(&result))
    }

    async fn prune_idempotency(&self, before: i64) -> StoreResult<u64> {
        let result = sqlx::query("delete from idempotency_record where expires_at < $1")
            .bind(before)
            .execute(&self.pool)
            .await?;
        Ok(DB::rows_affected(&result))
    }

    async fn insert_report(&self, report: &ReportRecord) -> StoreResult<()> {
        sqlx::query(
            "insert into report (report_id, workspace_id, api_key_id, at, message, context, \
             conversation) values ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&report.report_id)
        .bind(&report.workspace_id)
        .bind(&report.api_key_id)
        .bind(report.at)
        .bind(&report.message)
        .bind(&report.context)
        .bind(&report.conversation)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn list_reports(
        &self,
        workspace_id: Option<&WorkspaceId>,
    ) -> StoreResult<Vec<ReportRecord>> {
        Ok(sqlx::query_as(
            "select report_id, workspace_id, api_key_id, at, message, context, conversation \
             from report where ($1 is null or workspace_id = $1) order by at desc, report_id",
        )
        .bind(workspace_id.map(WorkspaceId::as_str))
        .fetch_all(&self.pool)
        .await?)
    }

    async fn prune_reports(&self, workspace_id: &WorkspaceId, keep: i64) -> StoreResult<u64> {
        let result = sqlx::query(
            "delete from report where workspace_id = $1 and report_id not in \
             (select report_id from report where workspace_id = $1 \
              order by at desc, report_id limit $2)",
        )
        .bind(workspace_id)
        .bind(keep)
        .execute(&self.pool)
        .await?;
        Ok(DB::rows_affected(&result))
    }

    async fn claim_idempotency(
        &self,
        record: &IdempotencyRecord,
    ) -> StoreResult<Option<IdempotencyRecord>> {
        let mut tx = self.pool.begin_with(DB::BEGIN_WRITE).await?;
        sqlx::query(
            "delete from idempotency_record where workspace_id = $1 and idempotency_key = $2 \
             and expires_at <= $3",
        )
        .bind(&record.workspace_id)
        .bind(&record.idempotency_key)
        .bind(record.created_at)
        .execute(&mut *tx)
        .await?;
        // A holder can vanish between the insert that met it and the read that would return it
        // (another replica released or deleted it and committed, which Postgres lets each
        // statement see): the key is free then, so the claim is tried again.
        let existing = loop {
            let inserted = sqlx::query(
                "insert into idempotency_record (workspace_id, idempotency_key, request_hash, \
                 state, status, response, created_at, lease_until, expires_at) \
                 values ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                 on conflict (workspace_id, idempotency_key) do nothing",
            )
            .bind(&record.workspace_id)
            .bind(&record.idempotency_key)
            .bind(&record.request_hash)
            .bind(record.state)
            .bind(record.status)
            .bind(&record.response)
            .bind(record.created_at)
            .bind(record.lease_until)
            .bind(record.expires_at)
            .execute(&mut *tx)
            .await?;
            if DB::rows_affected(&inserted) == 1 {
                break None;
            }
            let holder: Option<IdempotencyRecord> = sqlx::query_as(
                "select workspace_id, idempotency_key, request_hash, state, status, response, \
                 created_at, lease_until, expires_at from idempotency_record \
                 where workspace_id = $1 and idempotency_key = $2",
            )
            .bind(&record.workspace_id)
            .bind(&record.idempotency_key)
            .fetch_optional(&mut *tx)
            .await?;
            if holder.is_some() {
                break holder;
            }
        };
        tx.commit().await?;
        Ok(existing)
    }

    async fn complete_idempotency(
        &self,
        workspace_id: &WorkspaceId,
        key: &str,
        status: i32,
        response: &str,
        expires_at: i64,
    ) -> StoreResult<()> {
        sqlx::query(
            "update idempotency_record set state = $3, status = $4, response = $5, \
             expires_at = $6 where workspace_id = $1 and idempotency_key = $2",
        )
        .bind(workspace_id)
        .bind(key)
        .bind(IdempotencyState::Done)
        .bind(status)
        .bind(response)
        .bind(expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn mark_idempotency_unknown(
        &self,
        workspace_id: &WorkspaceId,
        key: &str,
    ) -> StoreResult<()> {
        sqlx::query(
            "update idempotency_record set state = $3 \
             where workspace_id = $1 and idempotency_key = $2 and state = $4",
        )
        .bind(workspace_id)
        .bind(key)
        .bind(IdempotencyState::Unknown)
        .bind(IdempotencyState::Pending)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn release_idempotency(&self, workspace_id: &WorkspaceId, key: &str) -> StoreResult<()> {
        sqlx::query(
            "delete from idempotency_record where workspace_id = $1 and idempotency_key = $2 \
             and state = $3",
        )
        .bind(workspace_id)
        .bind(key)
        .bind(IdempotencyState::Pending)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn find_idempotency(
        &self,
        workspace_id: &WorkspaceId,
        key: &str,
    ) -> StoreResult<IdempotencyRecord> {
        Ok(sqlx::query_as(
            "select workspace_id, idempotency_key, request_hash, state, status, response, \
             created_at, lease_until, expires_at from idempotency_record \
             where workspace_id = $1 and idempotency_key = $2",
        )
        .bind(workspace_id)
        .bind(key)
        .fetch_one(&self.pool)
        .await?)
    }

    async fn list_idempotency(
        &self,
        filter: &IdempotencyFilter,
    ) -> StoreResult<Vec<IdempotencyEntry>> {
        // The state filter is the state as it stands at `now`: a pending claim whose lease has
        // passed lists as `unknown` (see `IdempotencyState::at`).
        Ok(sqlx::query_as(
            "select workspace_id, idempotency_key, state, status, created_at, lease_until, \
             expires_at from idempotency_record \
             where ($1 is null or workspace_id = $1) and expires_at > $2 and \
             ($3 is null \
              or ($3 = 'done' and state = 'done') \
              or ($3 = 'pending' and state = 'pending' and lease_until >= $2) \
              or ($3 = 'unknown' and state <> 'done' and (state <> 'pending' or lease_until < $2))) \
             order by created_at desc, idempotency_key limit $4",
        )
        .bind(&filter.workspace_id)
        .bind(filter.now)
        .bind(filter.state)
        .bind(filter.limit)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn delete_idempotency(
        &self,
        workspace_id: &WorkspaceId,
        key: &str,
    ) -> StoreResult<IdempotencyEntry> {
        Ok(sqlx::query_as(
            "delete from idempotency_record where workspace_id = $1 and idempotency_key = $2 \
             returning workspace_id, idempotency_key, state, status, created_at, lease_until, \
             expires_at",
        )
        .bind(workspace_id)
        .bind(key)
        .fetch_one(&self.pool)
        .await?)
    }

    async fn listen_for_changes(&self, wake: Arc<tokio::sync::Notify>) {
        DB::listen_for_changes(&self.pool, wake).await;
    }

    async fn changes_since(&self, after: i64) -> StoreResult<Vec<Change>> {
        // A kind this version does not know (logged by a newer replica during a rolling
        // upgrade) is left out rather than failing the whole read.
        Ok(sqlx::query_as(
            "select change_id, kind, subject_id from change_log \
             where change_id > $1 and kind in ($2, $3, $4) order by change_id",
        )
        .bind(after)
        .bind(ChangeKind::Key)
        .bind(ChangeKind::Accounts)
        .bind(ChangeKind::AdminToken)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn last_change(&self) -> StoreResult<i64> {
        let (last,): (Option<i64>,) = sqlx::query_as("select max(change_id) from change_log")
            .fetch_one(&self.pool)
            .await?;
        Ok(last.unwrap_or(0))
    }

    async fn renew_budget_leases(
        &self,
        replica_id: &str,
        budgets: &[String],
        now: i64,
        expires_at: i64,
        released: &[String],
        decide: DecideLease<'_>,
    ) -> StoreResult<Vec<BudgetRenewal>> {
        let mut tx = self.pool.begin_with(DB::BEGIN_WRITE).await?;
        for budget in released {
            sqlx::query("delete from budget_lease where budget_name = $1 and replica_id = $2")
                .bind(budget.as_str())
                .bind(replica_id)
                .execute(&mut *tx)
                .await?;
        }
        let mut renewed = Vec::with_capacity(budgets.len());
        for (index, budget) in budgets.iter().enumerate() {
            // Writing the budget's row takes its lock (on Postgres; SQLite's write lock is
            // already held): renewals of one budget take turns, so no two replicas are granted
            // the same free share.
            sqlx::query(
                "insert into budget (budget_name, touched_at) values ($1, $2) \
                 on conflict (budget_name) do update set touched_at = excluded.touched_at",
            )
            .bind(budget.as_str())
            .bind(now)
            .execute(&mut *tx)
            .await?;
            sqlx::query("delete from budget_lease where budget_name = $1 and expires_at <= $2")
                .bind(budget.as_str())
                .bind(now)
                .execute(&mut *tx)
                .await?;
            let others: Vec<BudgetLease> = sqlx::query_as(
                "select budget_name, replica_id, want_rate, want_slots, rate, slots, expires_at \
                 from budget_lease where budget_name = $1 and replica_id <> $2 \
                 order by replica_id",
            )
            .bind(budget.as_str())
            .bind(replica_id)
            .fetch_all(&mut *tx)
            .await?;
            let decision = decide(index, &others);
            let lease: BudgetLease = sqlx::query_as(
                "insert into budget_lease (budget_name, replica_id, want_rate, want_slots, rate, \
                 slots, expires_at) values ($1, $2, $3, $4, $5, $6, $7) \
                 on conflict (budget_name, replica_id) do update set \
                 want_rate = excluded.want_rate, want_slots = excluded.want_slots, \
                 rate = excluded.rate, slots = excluded.slots, expires_at = excluded.expires_at \
                 returning budget_name, replica_id, want_rate, want_slots, rate, slots, expires_at",
            )
            .bind(budget.as_str())
            .bind(replica_id)
            .bind(decision.want_rate)
            .bind(decision.want_slots)
            .bind(decision.rate)
            .bind(decision.slots)
            .bind(expires_at)
            .fetch_one(&mut *tx)
            .await?;
            renewed.push(BudgetRenewal {
                lease,
                replicas: others.len() + 1,
            });
        }
        tx.commit().await?;
        Ok(renewed)
    }

    async fn budget_leases(&self, budget_name: &str, now: i64) -> StoreResult<Vec<BudgetLease>> {
        Ok(sqlx::query_as(
            "select budget_name, replica_id, want_rate, want_slots, rate, slots, expires_at \
             from budget_lease where budget_name = $1 and expires_at > $2 order by replica_id",
        )
        .bind(budget_name)
        .bind(now)
        .fetch_all(&self.pool)
        .await?)
    }
}

/// Inserts a key, alone (`create_key`) or inside a rotation's transaction.
async fn insert_key<DB>(conn: &mut DB::Connection, key: &ApiKeyRecord) -> Result<(), sqlx::Error>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> bool: Encode<'q, DB> + Type<DB>,
    for<'q> String: Encode<'q, DB> + Type<DB>,
    for<'q> Option<i64>: Encode<'q, DB>,
    for<'q> f64: Encode<'q, DB> + Type<DB>,
    for<'q> Option<f64>: Encode<'q, DB>,
    for<'q> Option<String>: Encode<'q, DB>,
    for<'q> KeyId: Encode<'q, DB> + Type<DB>,
    for<'q> WorkspaceId: Encode<'q, DB> + Type<DB>,
    for<'q> QuotaPeriod: Encode<'q, DB> + Type<DB>,
    for<'q> Option<QuotaPeriod>: Encode<'q, DB>,
{
    sqlx::query(
        "insert into api_key (api_key_id, workspace_id, name, secret_hash, read_only, \
         allowed_actions, created_at, expires_at, revoked_at, last_used_at, allowed_websites, \
         quota_limit, quota_period) \
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
    )
    .bind(&key.api_key_id)
    .bind(&key.workspace_id)
    .bind(&key.name)
    .bind(&key.secret_hash)
    .bind(key.read_only)
    .bind(&key.allowed_actions)
    .bind(key.created_at)
    .bind(key.expires_at)
    .bind(key.revoked_at)
    .bind(key.last_used_at)
    .bind(&key.allowed_websites)
    .bind(key.quota_limit)
    .bind(key.quota_period)
    .execute(conn)
    .await?;
    Ok(())
}

/// Logs a change in the same transaction as the write it announces, so no replica can see the
/// write without the change (or the change without the write).
async fn log_change<DB>(
    conn: &mut DB::Connection,
    kind: ChangeKind,
    subject_id: &str,
    now: i64,
) -> Result<(), sqlx::Error>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> ChangeKind: Encode<'q, DB> + Type<DB>,
{
    sqlx::query("insert into change_log (kind, subject_id, created_at) values ($1, $2, $3)")
        .bind(kind)
        .bind(subject_id)
        .bind(now)
        .execute(conn)
        .await?;
    Ok(())
}
