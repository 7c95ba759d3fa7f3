//! Admin tokens: made, listed and revoked by the CLI (`crisp-gateway admin-token …`); they
//! open the admin API and the console.

use std::sync::Arc;

use crate::auth::AdminToken;
use crate::store::{AdminTokenRecord, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum AdminTokenError {
    #[error("no admin token with id `{0}`; see `crisp-gateway admin-token list`")]
    Unknown(String),
    /// Hashing the new token failed (argon2, or its blocking task).
    #[error("{0}")]
    Hashing(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Makes a token; the caller shows it once. Only its hash is stored.
pub async fn create_admin_token(
    store: &Arc<dyn Store>,
    name: Option<String>,
) -> Result<(AdminToken, AdminTokenRecord), AdminTokenError> {
    let token = AdminToken::generate();
    let hashing = token.clone();
    let secret_hash = tokio::task::spawn_blocking(move || hashing.hash())
        .await
        .map_err(|e| AdminTokenError::Hashing(e.to_string()))?
        .map_err(AdminTokenError::Hashing)?;
    let record = AdminTokenRecord {
        admin_token_id: token.id().to_owned(),
        name,
        secret_hash,
        created_at: crate::kernel::clock::now(),
        revoked_at: None,
    };
    store.create_admin_token(&record).await?;
    Ok((token, record))
}

/// Revokes a token; every running gateway stops accepting it (and its console sessions)
/// within about a second, through the change log.
pub async fn revoke_admin_token(store: &Arc<dyn Store>, id: &str) -> Result<(), AdminTokenError> {
    match store
        .revoke_admin_token(id, crate::kernel::clock::now())
        .await
    {
        Ok(()) => Ok(()),
        Err(StoreError::NotFound) => Err(AdminTokenError::Unknown(id.to_owned())),
        Err(e) => Err(e.into()),
    }
}
