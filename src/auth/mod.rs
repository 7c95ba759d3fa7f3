//! Authentication as a layer: a bearer key becomes a `Principal` before any handler runs.
//!
//! Argon2 runs once per key and process: a verified key is cached by id with the digest of
//! the exact key, so later requests cost a hash-map lookup and a constant-time comparison.

pub mod key;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;
use moka::sync::Cache;
use subtle::ConstantTimeEq;
use tokio::sync::Semaphore;

use crate::app::AppState;
use crate::catalog::Action;
use crate::error::ApiError;
use crate::store::{Store, StoreError};

pub use key::GatewayKey;

/// Who is calling: the key, its workspace and its scopes. Inserted into request extensions by
/// `require_key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub key_id: String,
    pub workspace_id: String,
    pub expires_at: Option<i64>,
    pub scope: Scope,
}

/// What a key may call: everything, reads only, and/or actions matching glob patterns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    pub read_only: bool,
    /// `None` allows every action; otherwise slugs matching one pattern (`list/*`).
    pub actions: Option<Vec<String>>,
}

impl Scope {
    pub fn from_record(read_only: bool, allowed_actions: Option<&str>) -> Self {
        Self {
            read_only,
            actions: allowed_actions.map(|list| {
                list.split(',')
                    .map(str::trim)
                    .filter(|p| !p.is_empty())
                    .map(str::to_owned)
                    .collect()
            }),
        }
    }

    /// Whether the key may call (and so see) an action.
    pub fn permits(&self, action: &Action) -> bool {
        self.check(action).is_ok()
    }

    /// The 403 a caller gets for an action outside the key's scope.
    pub fn check(&self, action: &Action) -> Result<(), ApiError> {
        if self.read_only && action.write {
            return Err(ApiError::Forbidden {
                reason: "write_not_allowed",
                message: format!(
                    "This key is read-only and `{}` is a write action; use a key made without --read-only.",
                    action.slug
                ),
            });
        }
        if let Some(patterns) = &self.actions
            && !patterns.iter().any(|p| glob_matches(p, action.slug))
        {
            return Err(ApiError::Forbidden {
                reason: "action_not_allowed",
                message: format!(
                    "This key may not call `{}`; it is limited to: {}.",
                    action.slug,
                    patterns.join(", ")
                ),
            });
        }
        Ok(())
    }
}

/// `*` matches any run of characters (slashes included); everything else matches itself.
pub fn glob_matches(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    let mut backtrack: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            backtrack = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((star, matched)) = backtrack {
            pi = star + 1;
            ti = matched + 1;
            backtrack = Some((star, matched + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&b| b == b'*')
}

struct Verified {
    digest: [u8; 32],
    principal: Arc<Principal>,
}

pub struct Keyring {
    store: Arc<dyn Store>,
    verified: Cache<String, Arc<Verified>>,
    /// Bumped on every invalidation, so a verification that raced a revocation is not cached.
    generation: AtomicU64,
    /// Argon2 takes ~19 MiB and a core for tens of milliseconds: bound how many run at once.
    hashing: Semaphore,
    argon2_runs: AtomicU64,
}

impl Keyring {
    pub fn new(store: Arc<dyn Store>, capacity: u64, ttl: Duration) -> Self {
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        Self {
            store,
            verified: Cache::builder()
                .max_capacity(capacity)
                .time_to_live(ttl)
                .build(),
            generation: AtomicU64::new(0),
            hashing: Semaphore::new(cores),
            argon2_runs: AtomicU64::new(0),
        }
    }

    /// How many argon2 verifications this process has run (for metrics and the benchmark).
    pub fn argon2_runs(&self) -> u64 {
        self.argon2_runs.load(Ordering::Relaxed)
    }

    pub fn invalidate(&self, key_id: &str) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.verified.invalidate(key_id);
    }

    pub fn clear(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.verified.invalidate_all();
    }

    /// Resolves an `Authorization` header value to a principal.
    pub async fn authenticate(
        &self,
        authorization: Option<&str>,
    ) -> Result<Arc<Principal>, ApiError> {
        let presented = authorization
            .and_then(|h| {
                h.strip_prefix("Bearer ")
                    .or_else(|| h.strip_prefix("bearer "))
            })
            .map(str::trim)
            .and_then(GatewayKey::parse)
            .ok_or(ApiError::Unauthorized)?;
        let digest = presented.digest();
        let now = crate::clock::now();
        if let Some(hit) = self.verified.get(presented.id()) {
            if !bool::from(hit.digest.ct_eq(&digest)) {
                return Err(ApiError::Unauthorized);
            }
            if hit.principal.expires_at.is_some_and(|at| at <= now) {
                self.verified.invalidate(presented.id());
                return Err(ApiError::Unauthorized);
            }
            return Ok(hit.principal.clone());
        }

        let generation = self.generation.load(Ordering::SeqCst);
        let record = match self.store.find_key(presented.id()).await {
            Ok(record) => record,
            Err(StoreError::NotFound) => return Err(ApiError::Unauthorized),
            Err(e) => return Err(ApiError::StoreUnavailable(e)),
        };
        if record.revoked_at.is_some() || record.expires_at.is_some_and(|at| at <= now) {
            return Err(ApiError::Unauthorized);
        }
        let permit = self
            .hashing
            .acquire()
            .await
            .map_err(|_| ApiError::Internal("the hashing semaphore closed".into()))?;
        self.argon2_runs.fetch_add(1, Ordering::Relaxed);
        let hash = record.secret_hash.clone();
        let (presented, matches) = tokio::task::spawn_blocking(move || {
            let ok = presented.verify(&hash);
            (presented, ok)
        })
        .await
        .map_err(|e| ApiError::Internal(format!("key verification task failed: {e}")))?;
        drop(permit);
        if !matches {
            return Err(ApiError::Unauthorized);
        }
        let principal = Arc::new(Principal {
            scope: Scope::from_record(record.read_only, record.allowed_actions.as_deref()),
            key_id: record.api_key_id,
            workspace_id: record.workspace_id,
            expires_at: record.expires_at,
        });
        if self.generation.load(Ordering::SeqCst) == generation {
            self.verified.insert(
                presented.id().to_owned(),
                Arc::new(Verified {
                    digest,
                    principal: principal.clone(),
                }),
            );
        }
        Ok(principal)
    }
}

/// The auth layer: refuses the request with 401 unless it carries a valid key.
pub async fn require_key(
    State(app): State<AppState>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let principal = app.keyring.authenticate(authorization).await?;
    request.extensions_mut().insert(principal);
    Ok(next.run(request).await)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::CATALOG;

    #[test]
    fn globs() {
        assert!(glob_matches("list/*", "list/conversations"));
        assert!(glob_matches("list/*", "list/people/profiles"));
        assert!(glob_matches("*/conversation", "get/conversation"));
        assert!(glob_matches(
            "send/message/in/conversation",
            "send/message/in/conversation"
        ));
        assert!(!glob_matches("list/*", "get/conversation"));
        assert!(!glob_matches("list", "list/conversations"));
        assert!(glob_matches("*", "anything/at/all"));
    }

    #[test]
    fn scopes() {
        let action = |s| CATALOG.get(s).expect("action");
        let read_only = Scope::from_record(true, None);
        assert!(read_only.permits(action("list/conversations")));
        let err = read_only
            .check(action("send/message/in/conversation"))
            .expect_err("write");
        assert_eq!(err.reason(), "write_not_allowed");
        assert!(err.message().contains("send/message/in/conversation"));
        let limited = Scope::from_record(false, Some("list/*, get/*,send/message/in/conversation"));
        assert!(limited.permits(action("get/conversation")));
        assert!(limited.permits(action("send/message/in/conversation")));
        let err = limited
            .check(action("remove/conversation"))
            .expect_err("outside");
        assert_eq!(err.reason(), "action_not_allowed");
        assert!(Scope::default().permits(action("remove/conversation")));
    }
}
