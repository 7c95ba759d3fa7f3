//! The SQL both engines share, written once.
//!
//! Every statement here is valid on SQLite and on Postgres (`$n` placeholders, `returning`,
//! lowercase SQL), so one macro body implements `Store` for both pool types; only connecting
//! and the migrations folder differ per engine.

macro_rules! impl_store {
    ($store:ty, $engine:expr, $migrations:literal) => {
        #[async_trait::async_trait]
        impl $crate::store::Store for $store {
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
                sqlx::query(
                    "insert into api_key (api_key_id, workspace_id, name, secret_hash, read_only, \
                     allowed_actions, created_at, expires_at, revoked_at, last_used_at) \
                     values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
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
                .execute(&self.pool)
                .await?;
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
                     sealed_key, website_id, tier, is_default, created_at) \
                     values ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
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
                let now = $crate::clock::now();
                log_change(&mut *tx, $crate::store::CHANGE_ACCOUNTS, workspace_id, now).await?;
                tx.commit().await?;
                Ok(account)
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
         created_at, expires_at, revoked_at, last_used_at from api_key"
    };
}

macro_rules! account_fields {
    () => {
        "crisp_account_id, workspace_id, label, identifier, sealed_key, website_id, tier, \
         is_default, created_at"
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

pub(crate) use {account_columns, account_fields, impl_store, key_columns};
