//! The Postgres engine, for several gateway replicas sharing one database.

use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

pub struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
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

super::sql::impl_store!(
    PostgresStore,
    super::Engine::Postgres,
    "migrations/postgres",
    {
        async fn listen_for_changes(&self, wake: std::sync::Arc<tokio::sync::Notify>) {
            // Reconnects forever: a replica that lost its listener still polls, so a failure here
            // only delays revocations to the poll interval.
            loop {
                match sqlx::postgres::PgListener::connect_with(&self.pool).await {
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
);
