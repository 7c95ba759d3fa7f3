//! Admin tokens → admin principals, verified with argon2 once per token and process.
//!
//! The admin listener sees little traffic, but a console page fires several requests at once
//! and a script may poll: like gateway keys, a verified token is cached by id with the digest
//! of the exact token, so later requests cost a lookup and a constant-time comparison. A
//! revocation reaches the cache through the change log (`ChangeKind::AdminToken`), and is
//! remembered so that console sessions signed in with the token end too.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use moka::sync::Cache;
use subtle::ConstantTimeEq;
use tokio::sync::Semaphore;

use crate::error::{ApiError, Reason};
use crate::limits::FailureLimiter;
use crate::store::{Store, StoreError};

use super::key::AdminToken;

/// Who is administering: the id of the admin token presented (never the token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminPrincipal {
    pub token_id: String,
}

/// How long a revoked token id is remembered for console sessions: longer than a session lives.
const REVOKED_TTL: Duration = Duration::from_secs(24 * 3600);
/// Refused secrets remembered, so a repeated wrong token costs no argon2 run.
const REFUSED_TTL: Duration = Duration::from_secs(60);

pub struct AdminKeyring {
    store: Arc<dyn Store>,
    /// Token id → digest of the exact token verified.
    verified: Cache<String, [u8; 32]>,
    refused: Cache<[u8; 32], ()>,
    /// Ids revoked since this process started (from the change log or this process).
    revoked: Cache<String, ()>,
    generation: AtomicU64,
    /// One argon2 run at a time: admin sign-ins are rare, and a flood of wrong tokens must not
    /// take the cores the gateway serves calls with.
    hashing: Semaphore,
    failures: FailureLimiter,
    argon2_runs: AtomicU64,
}

impl AdminKeyring {
    pub fn new(store: Arc<dyn Store>, ttl: Duration, failures: FailureLimiter) -> Self {
        Self {
            store,
            verified: Cache::builder()
                .max_capacity(10_000)
                .time_to_live(ttl)
                .build(),
            refused: Cache::builder()
                .max_capacity(10_000)
                .time_to_live(REFUSED_TTL)
                .build(),
            revoked: Cache::builder()
                .max_capacity(100_000)
                .time_to_live(REVOKED_TTL)
                .build(),
            generation: AtomicU64::new(0),
            hashing: Semaphore::new(1),
            failures,
            argon2_runs: AtomicU64::new(0),
        }
    }

    /// How many argon2 verifications this process ran for admin tokens.
    pub fn argon2_runs(&self) -> u64 {
        self.argon2_runs.load(Ordering::Relaxed)
    }

    /// Forgets a token (it was revoked): its next use is checked against the database.
    pub fn invalidate(&self, token_id: &str) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.verified.invalidate(token_id);
        self.revoked.insert(token_id.to_owned(), ());
    }

    /// Whether this process learnt that the token was revoked (console sessions check it).
    pub fn is_revoked(&self, token_id: &str) -> bool {
        self.revoked.contains_key(token_id)
    }

    /// Whether this client may try a token now; `Err` is the 429 to answer.
    pub fn check_client(&self, client: Option<IpAddr>) -> Result<(), ApiError> {
        match client {
            Some(client) => {
                self.failures
                    .check(client)
                    .map_err(|retry_after| ApiError::AuthThrottled {
                        reason: Reason::TooManyFailedAttempts,
                        retry_after,
                    })
            }
            None => Ok(()),
        }
    }

    /// Resolves a presented token. A refusal counts against the client, and a client past
    /// its limit is refused before any lookup or argon2 run.
    pub async fn authenticate(
        &self,
        presented: Option<&AdminToken>,
        client: Option<IpAddr>,
    ) -> Result<AdminPrincipal, ApiError> {
        let result = self.resolve(presented, client).await;
        if let (Err(ApiError::AdminUnauthorized), Some(client)) = (&result, client) {
            self.failures.failed(client);
        }
        result
    }

    async fn resolve(
        &self,
        presented: Option<&AdminToken>,
        client: Option<IpAddr>,
    ) -> Result<AdminPrincipal, ApiError> {
        let presented = presented.ok_or(ApiError::AdminUnauthorized)?;
        let digest = presented.digest();
        let principal = || AdminPrincipal {
            token_id: presented.id().to_owned(),
        };
        if let Some(known) = self.verified.get(presented.id()) {
            return if bool::from(known.ct_eq(&digest)) {
                Ok(principal())
            } else {
                Err(ApiError::AdminUnauthorized)
            };
        }
        if self.refused.contains_key(&digest) {
            return Err(ApiError::AdminUnauthorized);
        }
        self.check_client(client)?;
        let generation = self.generation.load(Ordering::SeqCst);
        let record = match self.store.find_admin_token(presented.id()).await {
            Ok(record) => record,
            Err(StoreError::NotFound) => {
                self.refused.insert(digest, ());
                return Err(ApiError::AdminUnauthorized);
            }
            Err(e) => return Err(e.into()),
        };
        if record.revoked_at.is_some() {
            self.refused.insert(digest, ());
            return Err(ApiError::AdminUnauthorized);
        }
        let permit = self
            .hashing
            .acquire()
            .await
            .map_err(|_| ApiError::Internal("the admin hashing semaphore closed".into()))?;
        self.argon2_runs.fetch_add(1, Ordering::Relaxed);
        let token = presented.clone();
        let hash = record.secret_hash;
        let matches = tokio::task::spawn_blocking(move || token.verify(&hash))
            .await
            .map_err(|e| ApiError::Internal(format!("admin token verification failed: {e}")))?;
        drop(permit);
        if !matches {
            self.refused.insert(digest, ());
            return Err(ApiError::AdminUnauthorized);
        }
        if self.generation.load(Ordering::SeqCst) == generation {
            self.verified.insert(presented.id().to_owned(), digest);
        }
        Ok(principal())
    }
}
