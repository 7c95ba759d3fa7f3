//! The SQL both engines share, written once.
//!
//! Every statement here is valid on SQLite and on Postgres (`$n` placeholders, `returning`,
//! lowercase SQL), so one macro body implements `Store` for both pool types; only connecting
//! and the migrations folder differ per engine.

macro_rules! impl_store {
    ($store:ty, $engine:expr, $migrations:literal, { $($engine_specific:tt)* }) => {
        #[async_trait::async_trait]
        impl $crate::store::Store for $store {
            $($engine_specific)*

            fn engine(&self) -> $crate::store::Engine {
                $engine
            }

            async fn migrate(&self) -> $crate::store::StoreResult<()> {
                sqlx::migrate!($migrations)
                    .run(&self.pool)
                    .await
                    .map_err(|e| $crate::store::StoreError::Other(e.into()))
            }

            async fn ping(&self) -> $crate::store::StoreResult<()> {
                sqlx::query("select 1").execute(&self.pool).await?;
                Ok(())
            }

            async fn create_workspace(
                &self,
                workspace: &$crate::store::Workspace,
            ) -> $crate::store::StoreResult<()> {
                sqlx::query("insert into workspace (workspace_id, name, created_at) values ($1, $2, $3)")
                    .bind(&workspace.workspace_id)
                    .bind(&workspace.name)
                    .bind(workspace.created_at)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn find_workspace(&self, name: &str) -> $crate::store::StoreResult<$crate::store::Workspace> {
                Ok(sqlx::query_as("select workspace_id, name, created_at from workspace where name = $1")
                    .bind(name)
                    .fetch_one(&self.pool)
                    .await?)
            }

            async fn list_workspaces(&self) -> $crate::store::StoreResult<Vec<$crate::store::Workspace>> {
                Ok(sqlx::query_as("select workspace_id, name, created_at from workspace order by name")
                    .fetch_all(&self.pool)
                    .await?)
            }

            async fn create_key(&self, key: &$crate::store::ApiKeyRecord) -> $crate::store::StoreResult<()> {
                insert_key(&self.pool, key).await?;
                Ok(())
            }

            async fn find_key(&self, api_key_id: &str) -> $crate::store::StoreResult<$crate::store::ApiKeyRecord> {
                Ok(sqlx::query_as(concat!($crate::store::sql::key_columns!(), " where api_key_id = $1"))
                    .bind(api_key_id)
                    .fetch_one(&self.pool)
                    .await?)
            }

            async fn list_keys(
                &self,
                workspace_id: Option<&str>,
            ) -> $crate::store::StoreResult<Vec<$crate::store::ApiKeyRecord>> {
                Ok(sqlx::query_as(concat!(
                    $crate::store::sql::key_columns!(),
                    " where ($1 is null or workspace_id = $1) order by created_at, api_key_id"
                ))
                .bind(workspace_id)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn revoke_key(&self, api_key_id: &str, now: i64) -> $crate::store::StoreResult<()> {
                let mut tx = self.pool.begin().await?;
                let found = sqlx::query(
                    "update api_key set revoked_at = coalesce(revoked_at, $2) where api_key_id = $1",
                )
                .bind(api_key_id)
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if found == 0 {
                    return Err($crate::store::StoreError::NotFound);
                }
                log_change(&mut *tx, $crate::store::CHANGE_KEY, api_key_id, now).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn add_account(&self, account: &$crate::store::AccountRecord) -> $crate::store::StoreResult<()> {
                let mut tx = self.pool.begin().await?;
                if account.is_default {
                    sqlx::query("update crisp_account set is_default = false where workspace_id = $1")
                        .bind(&account.workspace_id)
                        .execute(&mut *tx)
                        .await?;
                }
                sqlx::query(
                    "insert into crisp_account (crisp_account_id, workspace_id, label, identifier, \
                     sealed_key, website_id, tier, is_default, created_at, allowed_websites) \
                     values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                )
                .bind(&account.crisp_account_id)
                .bind(&account.workspace_id)
                .bind(&account.label)
                .bind(&account.identifier)
                .bind(&account.sealed_key)
                .bind(&account.website_id)
                .bind(&account.tier)
                .bind(account.is_default)
                .bind(account.created_at)
                .bind(&account.allowed_websites)
                .execute(&mut *tx)
                .await?;
                log_change(&mut *tx, $crate::store::CHANGE_ACCOUNTS, &account.workspace_id, account.created_at).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn list_accounts(
                &self,
                workspace_id: Option<&str>,
            ) -> $crate::store::StoreResult<Vec<$crate::store::AccountRecord>> {
                Ok(sqlx::query_as(concat!(
                    $crate::store::sql::account_columns!(),
                    " where ($1 is null or workspace_id = $1) order by workspace_id, label"
                ))
                .bind(workspace_id)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn remove_account(
                &self,
                workspace_id: &str,
                id_or_label: &str,
            ) -> $crate::store::StoreResult<$crate::store::AccountRecord> {
                let mut tx = self.pool.begin().await?;
                let account: $crate::store::AccountRecord = sqlx::query_as(concat!(
                    "delete from crisp_account where workspace_id = $1 \
                     and (crisp_account_id = $2 or label = $2) returning ",
                    $crate::store::sql::account_fields!()
                ))
                .bind(workspace_id)
                .bind(id_or_label)
                .fetch_one(&mut *tx)
                .await?;
                let now = $crate::kernel::clock::now();
                log_change(&mut *tx, $crate::store::CHANGE_ACCOUNTS, workspace_id, now).await?;
                tx.commit().await?;
                Ok(account)
            }

            async fn rotate_key(
                &self,
                old_id: &str,
                new: &$crate::store::ApiKeyRecord,
                old_expires_at: i64,
            ) -> $crate::store::StoreResult<()> {
                let mut tx = self.pool.begin().await?;
                let found = sqlx::query(
                    "update api_key set expires_at = case when expires_at is null or expires_at > $2 \
                     then $2 else expires_at end where api_key_id = $1 and revoked_at is null",
                )
                .bind(old_id)
                .bind(old_expires_at)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if found == 0 {
                    return Err($crate::store::StoreError::NotFound);
                }
                insert_key(&mut *tx, new).await?;
                log_change(&mut *tx, $crate::store::CHANGE_KEY, old_id, new.created_at).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn touch_keys(&self, used: &[(String, i64)]) -> $crate::store::StoreResult<()> {
                let mut tx = self.pool.begin().await?;
                for (key_id, at) in used {
                    sqlx::query(
                        "update api_key set last_used_at = $2 where api_key_id = $1 \
                         and (last_used_at is null or last_used_at < $2)",
                    )
                    .bind(key_id)
                    .bind(at)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn update_account(
                &self,
                workspace_id: &str,
                id_or_label: &str,
                update: &$crate::store::AccountUpdate,
            ) -> $crate::store::StoreResult<$crate::store::AccountRecord> {
                let mut tx = self.pool.begin().await?;
                let current: $crate::store::AccountRecord = sqlx::query_as(concat!(
                    $crate::store::sql::account_columns!(),
                    " where workspace_id = $1 and (crisp_account_id = $2 or label = $2)"
                ))
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
                let updated: $crate::store::AccountRecord = sqlx::query_as(concat!(
                    "update crisp_account set label = $2, website_id = $3, tier = $4, is_default = $5, \
                     identifier = $6, sealed_key = $7, allowed_websites = $8 \
                     where crisp_account_id = $1 returning ",
                    $crate::store::sql::account_fields!()
                ))
                .bind(&current.crisp_account_id)
                .bind(update.label.as_ref().unwrap_or(&current.label))
                .bind(update.website_id.as_ref().unwrap_or(&current.website_id))
                .bind(update.tier.as_ref().unwrap_or(&current.tier))
                .bind(update.is_default.unwrap_or(current.is_default))
                .bind(update.identifier.as_ref().unwrap_or(&current.identifier))
                .bind(update.sealed_key.as_ref().unwrap_or(&current.sealed_key))
                .bind(update.allowed_websites.as_ref().unwrap_or(&current.allowed_websites))
                .fetch_one(&mut *tx)
                .await?;
                log_change(&mut *tx, $crate::store::CHANGE_ACCOUNTS, workspace_id, $crate::kernel::clock::now()).await?;
                tx.commit().await?;
                Ok(updated)
            }

            async fn reseal_accounts(&self, sealed: &[(String, String)]) -> $crate::store::StoreResult<()> {
                let mut tx = self.pool.begin().await?;
                let mut workspaces = Vec::new();
                for (account_id, sealed_key) in sealed {
                    let (workspace_id,): (String,) = sqlx::query_as(
                        "update crisp_account set sealed_key = $2 where crisp_account_id = $1 returning workspace_id",
                    )
                    .bind(account_id)
                    .bind(sealed_key)
                    .fetch_one(&mut *tx)
                    .await?;
                    if !workspaces.contains(&workspace_id) {
                        workspaces.push(workspace_id);
                    }
                }
                let now = $crate::kernel::clock::now();
                for workspace_id in &workspaces {
                    log_change(&mut *tx, $crate::store::CHANGE_ACCOUNTS, workspace_id, now).await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn insert_audit(&self, records: &[$crate::store::AuditRecord]) -> $crate::store::StoreResult<()> {
                let mut tx = self.pool.begin().await?;
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

            async fn list_audit(
                &self,
                filter: &$crate::store::AuditFilter,
            ) -> $crate::store::StoreResult<Vec<$crate::store::AuditRecord>> {
                Ok(sqlx::query_as(
                    "select at, workspace_id, api_key_id, crisp_account_id, action, status, upstream_status, \
                     duration_ms, request_id, reason, count, client from audit_event \
                     where ($1 is null or workspace_id = $1) and at >= $2 \
                     order by audit_event_id desc limit $3",
                )
                .bind(&filter.workspace_id)
                .bind(filter.since.unwrap_or(0))
                .bind(filter.limit)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn prune_audit(&self, before: i64) -> $crate::store::StoreResult<u64> {
                Ok(sqlx::query("delete from audit_event where at < $1")
                    .bind(before)
                    .execute(&self.pool)
                    .await?
                    .rows_affected())
            }

            async fn prune_idempotency(&self, before: i64) -> $crate::store::StoreResult<u64> {
                Ok(sqlx::query("delete from idempotency_record where expires_at < $1")
                    .bind(before)
                    .execute(&self.pool)
                    .await?
                    .rows_affected())
            }

            async fn insert_report(&self, report: &$crate::store::ReportRecord) -> $crate::store::StoreResult<()> {
                sqlx::query(
                    "insert into report (report_id, workspace_id, api_key_id, at, message, context, conversation) \
                     values ($1, $2, $3, $4, $5, $6, $7)",
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
                workspace_id: Option<&str>,
            ) -> $crate::store::StoreResult<Vec<$crate::store::ReportRecord>> {
                Ok(sqlx::query_as(
                    "select report_id, workspace_id, api_key_id, at, message, context, conversation from report \
                     where ($1 is null or workspace_id = $1) order by at desc, report_id",
                )
                .bind(workspace_id)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn prune_reports(&self, workspace_id: &str, keep: i64) -> $crate::store::StoreResult<u64> {
                Ok(sqlx::query(
                    "delete from report where workspace_id = $1 and report_id not in \
                     (select report_id from report where workspace_id = $1 order by at desc, report_id limit $2)",
                )
                .bind(workspace_id)
                .bind(keep)
                .execute(&self.pool)
                .await?
                .rows_affected())
            }

            async fn claim_idempotency(
                &self,
                record: &$crate::store::IdempotencyRecord,
            ) -> $crate::store::StoreResult<Option<$crate::store::IdempotencyRecord>> {
                let mut tx = self.pool.begin().await?;
                sqlx::query("delete from idempotency_record where workspace_id = $1 and idempotency_key = $2 and expires_at <= $3")
                    .bind(&record.workspace_id)
                    .bind(&record.idempotency_key)
                    .bind(record.created_at)
                    .execute(&mut *tx)
                    .await?;
                let claimed = sqlx::query(
                    "insert into idempotency_record (workspace_id, idempotency_key, request_hash, state, status, \
                     response, created_at, lease_until, expires_at) values ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                     on conflict (workspace_id, idempotency_key) do nothing",
                )
                .bind(&record.workspace_id)
                .bind(&record.idempotency_key)
                .bind(&record.request_hash)
                .bind(&record.state)
                .bind(record.status)
                .bind(&record.response)
                .bind(record.created_at)
                .bind(record.lease_until)
                .bind(record.expires_at)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                    == 1;
                let existing = if claimed {
                    None
                } else {
                    Some(
                        sqlx::query_as(concat!(
                            $crate::store::sql::idempotency_columns!(),
                            " where workspace_id = $1 and idempotency_key = $2"
                        ))
                        .bind(&record.workspace_id)
                        .bind(&record.idempotency_key)
                        .fetch_one(&mut *tx)
                        .await?,
                    )
                };
                tx.commit().await?;
                Ok(existing)
            }

            async fn complete_idempotency(
                &self,
                workspace_id: &str,
                key: &str,
                status: i32,
                response: &str,
                expires_at: i64,
            ) -> $crate::store::StoreResult<()> {
                sqlx::query(
                    "update idempotency_record set state = 'done', status = $3, response = $4, expires_at = $5 \
                     where workspace_id = $1 and idempotency_key = $2",
                )
                .bind(workspace_id)
                .bind(key)
                .bind(status)
                .bind(response)
                .bind(expires_at)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn mark_idempotency_unknown(&self, workspace_id: &str, key: &str) -> $crate::store::StoreResult<()> {
                sqlx::query(
                    "update idempotency_record set state = 'unknown' \
                     where workspace_id = $1 and idempotency_key = $2 and state = 'pending'",
                )
                .bind(workspace_id)
                .bind(key)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn release_idempotency(&self, workspace_id: &str, key: &str) -> $crate::store::StoreResult<()> {
                sqlx::query("delete from idempotency_record where workspace_id = $1 and idempotency_key = $2 and state = 'pending'")
                    .bind(workspace_id)
                    .bind(key)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn find_idempotency(
                &self,
                workspace_id: &str,
                key: &str,
            ) -> $crate::store::StoreResult<$crate::store::IdempotencyRecord> {
                Ok(sqlx::query_as(concat!(
                    $crate::store::sql::idempotency_columns!(),
                    " where workspace_id = $1 and idempotency_key = $2"
                ))
                .bind(workspace_id)
                .bind(key)
                .fetch_one(&self.pool)
                .await?)
            }

            async fn list_idempotency(
                &self,
                filter: &$crate::store::IdempotencyFilter,
            ) -> $crate::store::StoreResult<Vec<$crate::store::IdempotencyEntry>> {
                // The state filter is the state as it stands at `now`: a pending claim whose
                // lease has passed lists as `unknown` (see `IdempotencyState::at`).
                Ok(sqlx::query_as(concat!(
                    $crate::store::sql::idempotency_entry_columns!(),
                    " where ($1 is null or workspace_id = $1) and expires_at > $2 and \
                     ($3 is null \
                      or ($3 = 'done' and state = 'done') \
                      or ($3 = 'pending' and state = 'pending' and lease_until >= $2) \
                      or ($3 = 'unknown' and state <> 'done' and (state <> 'pending' or lease_until < $2))) \
                     order by created_at desc, idempotency_key limit $4"
                ))
                .bind(&filter.workspace_id)
                .bind(filter.now)
                .bind(filter.state.map(|s| s.as_str()))
                .bind(filter.limit)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn delete_idempotency(
                &self,
                workspace_id: &str,
                key: &str,
            ) -> $crate::store::StoreResult<$crate::store::IdempotencyEntry> {
                Ok(sqlx::query_as(
                    "delete from idempotency_record where workspace_id = $1 and idempotency_key = $2 \
                     returning workspace_id, idempotency_key, state, status, created_at, lease_until, expires_at",
                )
                .bind(workspace_id)
                .bind(key)
                .fetch_one(&self.pool)
                .await?)
            }

            async fn changes_since(&self, after: i64) -> $crate::store::StoreResult<Vec<$crate::store::Change>> {
                Ok(sqlx::query_as(
                    "select change_id, kind, subject_id from change_log where change_id > $1 order by change_id",
                )
                .bind(after)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn last_change(&self) -> $crate::store::StoreResult<i64> {
                let (last,): (Option<i64>,) = sqlx::query_as("select max(change_id) from change_log")
                    .fetch_one(&self.pool)
                    .await?;
                Ok(last.unwrap_or(0))
            }
        }

        async fn insert_key<'c, E>(executor: E, key: &$crate::store::ApiKeyRecord) -> Result<(), sqlx::Error>
        where
            E: sqlx::Executor<'c, Database = <$store as $crate::store::sql::Pooled>::Database>,
        {
            sqlx::query(
                "insert into api_key (api_key_id, workspace_id, name, secret_hash, read_only, \
                 allowed_actions, created_at, expires_at, revoked_at, last_used_at, allowed_websites) \
                 values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
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
            .execute(executor)
            .await?;
            Ok(())
        }

        async fn log_change<'c, E>(executor: E, kind: &str, subject_id: &str, now: i64) -> Result<(), sqlx::Error>
        where
            E: sqlx::Executor<'c, Database = <$store as $crate::store::sql::Pooled>::Database>,
        {
            sqlx::query("insert into change_log (kind, subject_id, created_at) values ($1, $2, $3)")
                .bind(kind)
                .bind(subject_id)
                .bind(now)
                .execute(executor)
                .await?;
            Ok(())
        }
    };
}

/// Names the sqlx database type behind a store, for the shared helpers.
pub trait Pooled {
    type Database: sqlx::Database;
}

impl Pooled for super::SqliteStore {
    type Database = sqlx::Sqlite;
}

impl Pooled for super::PostgresStore {
    type Database = sqlx::Postgres;
}

macro_rules! key_columns {
    () => {
        "select api_key_id, workspace_id, name, secret_hash, read_only, allowed_actions, \
         created_at, expires_at, revoked_at, last_used_at, allowed_websites from api_key"
    };
}

macro_rules! account_fields {
    () => {
        "crisp_account_id, workspace_id, label, identifier, sealed_key, website_id, tier, \
         is_default, created_at, allowed_websites"
    };
}

macro_rules! idempotency_columns {
    () => {
        "select workspace_id, idempotency_key, request_hash, state, status, response, created_at, \
         lease_until, expires_at from idempotency_record"
    };
}

macro_rules! idempotency_entry_columns {
    () => {
        "select workspace_id, idempotency_key, state, status, created_at, lease_until, expires_at \
         from idempotency_record"
    };
}

macro_rules! account_columns {
    () => {
        concat!(
            "select ",
            $crate::store::sql::account_fields!(),
            " from crisp_account"
        )
    };
}

pub(crate) use {
    account_columns, account_fields, idempotency_columns, idempotency_entry_columns, impl_store,
    key_columns,
};
