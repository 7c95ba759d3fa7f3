//! The Postgres engine, for several gateway replicas sharing one database.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgListener, PgPoolOptions, PgQueryResult};
use sqlx::{PgPool, Postgres};

use super::Engine;
use super::sql::{Dialect, SqlStore};

pub type PostgresStore = SqlStore<Postgres>;

impl SqlStore<Postgres> {
    pub async fn connect(url: &str) -> Result<Self, sqlx::Error> {
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(3))
            .connect(url)
            .await?;
        Ok(Self { pool })
    }
}

/// The channel migration 0003's trigger notifies on every change-log insert.
const CHANGES_CHANNEL: &str = "crisp_gateway_changes";

#[async_trait]
impl Dialect for Postgres {
    const ENGINE: Engine = Engine::Postgres;
    const BEGIN_WRITE: &'static str = "BEGIN";

    async fn migrate(pool: &PgPool) -> Result<(), sqlx::migrate::MigrateError> {
        sqlx::migrate!("migrations/postgres").run(pool).await
    }

    fn rows_affected(result: &PgQueryResult) -> u64 {
        result.rows_affected()
    }

    async fn listen_for_changes(pool: &PgPool, wake: Arc<tokio::sync::Notify>) {
        // Reconnects forever: a replica that lost its listener still polls, so a failure here
        // only delays revocations to the poll interval.
        loop {
            match PgListener::connect_with(pool).await {
                Ok(mut listener) => match listener.listen(CHANGES_CHANNEL).await {
                    Ok(()) => {
                        wake.notify_one();
                        while listener.recv().await.is_ok() {
                            wake.notify_one();
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot LISTEN for changes"),
                },
                Err(e) => tracing::warn!(error = %e, "cannot open a LISTEN connection"),
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}
