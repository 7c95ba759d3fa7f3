//! Authentication as a layer: a bearer key becomes a `Principal` before any handler runs,
//! and its answer gets the key's rate-limit fields.
//!
//! Argon2 runs once per key and process: a verified key is cached by id with the digest of
//! the exact key, so later requests cost a hash-map lookup and a constant-time comparison.
//! Failures are cheap too: a refused secret and an unknown key id are remembered for a
//! minute, a client address that keeps failing is refused before any lookup, and each client
//! and key id may have only a few verifications in progress.

pub mod admin;
pub mod key;
mod layer;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::{ConnectInfo, Request};
use moka::sync::Cache;
use subtle::ConstantTimeEq;
use tokio::sync::Semaphore;

use crate::audit::Auditor;
use crate::catalog::Action;
use crate::error::{ApiError, Reason};
use crate::kernel::ttl_cache::TtlCache;
use crate::limits::FailureLimiter;
use crate::store::{KeyId, Store, StoreError, WorkspaceId};

pub use admin::{AdminKeyring, AdminPrincipal};
pub use key::{AdminToken, GatewayKey};
pub use layer::{Asked, Inner, KeyCheck, RequireKey};

/// Who is calling: the key, its workspace and its scopes. Inserted into request extensions by
/// the auth layer (`RequireKey`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub key_id: KeyId,
    pub workspace_id: WorkspaceId,
    pub expires_at: Option<i64>,
    pub scope: Scope,
    /// The key's quota, if it has one (spent in `call`, shown in the rate-limit headers).
    pub quota: Option<crate::store::Quota>,
}

impl crate::telemetry::HasId for Principal {
    /// The key's id.
    fn id(&self) -> &str {
        self.key_id.as_str()
    }
}

/// What a key may call: everything, reads only, and/or actions matching glob patterns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    pub read_only: bool,
    /// `None` allows every action; otherwise slugs matching one pattern (`list/*`).
    pub actions: Option<Vec<String>>,
    /// `None` allows every website the account allows; otherwise only these `websiteID`s.
    pub websites: Option<Vec<String>>,
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
            websites: None,
        }
    }

    /// Narrows the scope to the key's websites (a stored comma-separated list), if it has any.
    #[must_use]
    pub fn with_websites(mut self, allowed_websites: Option<&str>) -> Self {
        self.websites = allowed_websites.map(|list| {
            crate::accounts::split_list(Some(list))
                .map(str::to_owned)
                .collect()
        });
        self
    }

    /// The 403 a caller gets for a `websiteID` outside the key's websites.
    pub fn check_website(&self, website: &str) -> Result<(), ApiError> {
        match &self.websites {
            Some(allowed) if !allowed.iter().any(|w| w == website) => Err(ApiError::Forbidden {
                reason: Reason::WebsiteNotAllowed,
                message: format!(
                    "This key may not act on website `{website}`; it is limited to: {}. Use one of \
                     those in `websiteID`, or a key made with `crisp-gateway key create --workspace \
                     <workspace> --website {website}`.",
                    allowed.join(", ")
                ),
            }),
            _ => Ok(()),
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
                reason: Reason::WriteNotAllowed,
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
                reason: Reason::ActionNotAllowed,
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
    /// When this process last reported the key's use (at most once a minute).
    last_touch: AtomicI64,
}

/// How long a refused secret or an unknown key id is answered from memory.
const NEGATIVE_TTL: Duration = Duration::from_secs(60);
/// Refused secrets and unknown key ids remembered at most (each kind).
const NEGATIVE_CAPACITY: u64 = 10_000;
/// Distinct keys one client address may have in verification at once: one, so a client
/// flooding wrong secrets holds at most one of the argon2 slots and never all of them.
const FLIGHTS_PER_CLIENT: usize = 1;
/// Distinct secrets of one key id in verification at once (from every client).
const FLIGHTS_PER_KEY: usize = 16;
/// Requests waiting on one verification (the same key, sent many times at once).
const WAITERS_PER_FLIGHT: usize = 256;

/// One verification in progress, of one exact key (by digest): requests with the same key
/// wait for it instead of running argon2 again.
struct Flight {
    turn: tokio::sync::Mutex<()>,
    key_id: String,
    client: Option<IpAddr>,
}

#[derive(Default)]
struct Flights {
    by_digest: HashMap<[u8; 32], Arc<Flight>>,
    per_key: HashMap<String, usize>,
    per_client: HashMap<IpAddr, usize>,
}

/// A request's place in a flight; leaving (even when the request is cancelled) frees the
/// flight's counts once its last request is gone.
struct Seat<'a> {
    keyring: &'a Keyring,
    digest: [u8; 32],
    flight: Option<Arc<Flight>>,
}

impl Drop for Seat<'_> {
    fn drop(&mut self) {
        let mut flights = self.keyring.flights.lock();
        let Some(flight) = self.flight.take() else {
            return;
        };
        // Clones are only made and dropped under this lock, so the count is exact: two
        // references (the table's and ours) mean nobody else waits.
        let ours = flights
            .by_digest
            .get(&self.digest)
            .is_some_and(|f| Arc::ptr_eq(f, &flight));
        if ours && Arc::strong_count(&flight) <= 2 {
            flights.by_digest.remove(&self.digest);
            release(&mut flights.per_key, &flight.key_id);
            if let Some(client) = flight.client {
                release(&mut flights.per_client, &client);
            }
        }
        drop(flight);
    }
}

fn release<K: std::hash::Hash + Eq + Clone>(counts: &mut HashMap<K, usize>, key: &K) {
    if let Some(n) = counts.get_mut(key) {
        *n -= 1;
        if *n == 0 {
            counts.remove(key);
        }
    }
}

fn busy() -> ApiError {
    ApiError::AuthThrottled {
        reason: Reason::KeyVerificationBusy,
        retry_after: Duration::from_secs(1),
    }
}

pub struct Keyring {
    store: Arc<dyn Store>,
    auditor: Auditor,
    /// Keys verified with argon2, by id: looked up on every call.
    verified: TtlCache<KeyId, Arc<Verified>>,
    /// Digests of keys argon2 refused: a repeated wrong key costs a lookup, not a hash.
    refused: Cache<[u8; 32], (), foldhash::fast::RandomState>,
    /// Key ids the database does not have (or has revoked or expired): a repeat costs no
    /// query. Cleared through the change log like `verified`.
    unknown: Cache<KeyId, (), foldhash::fast::RandomState>,
    /// Bumped on every invalidation, so a verification that raced a revocation is not cached.
    generation: AtomicU64,
    /// Argon2 takes ~19 MiB and a core for tens of milliseconds: bound how many run at once.
    hashing: Semaphore,
    /// Verifications in progress, bounded per key id, per client and per flight.
    flights: parking_lot::Mutex<Flights>,
    /// Failed authentications per client address.
    failures: FailureLimiter,
    argon2_runs: AtomicU64,
}

impl Keyring {
    pub fn new(
        store: Arc<dyn Store>,
        auditor: Auditor,
        capacity: u64,
        ttl: Duration,
        failures: FailureLimiter,
    ) -> Self {
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        fn negative<K: std::hash::Hash + Eq + Send + Sync + 'static>()
        -> Cache<K, (), foldhash::fast::RandomState> {
            Cache::builder()
                .max_capacity(NEGATIVE_CAPACITY)
                .time_to_live(NEGATIVE_TTL)
                .build_with_hasher(foldhash::fast::RandomState::default())
        }
        Self {
            store,
            auditor,
            // Entries are only inserted for verified keys, so callers cannot flood the table.
            verified: TtlCache::new(usize::try_from(capacity).unwrap_or(usize::MAX), ttl),
            refused: negative(),
            unknown: negative(),
            generation: AtomicU64::new(0),
            hashing: Semaphore::new(cores),
            flights: parking_lot::Mutex::new(Flights::default()),
            failures,
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
        self.unknown.invalidate(key_id);
    }

    pub fn clear(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.verified.invalidate_all();
        self.unknown.invalidate_all();
    }

    /// Resolves an `Authorization` header value to a principal. `client` is the caller's
    /// address, when known: its failures are counted, and past its limit it is refused
    /// before any key lookup or argon2 run.
    pub async fn authenticate(
        &self,
        presented: Option<&GatewayKey>,
        client: Option<IpAddr>,
    ) -> Result<Arc<Principal>, ApiError> {
        let result = self.resolve(presented, client).await;
        if let (Err(ApiError::Unauthorized), Some(client)) = (&result, client) {
            self.failures.failed(client);
        }
        result
    }

    async fn resolve(
        &self,
        presented: Option<&GatewayKey>,
        client: Option<IpAddr>,
    ) -> Result<Arc<Principal>, ApiError> {
        let presented = presented.ok_or_else(|| ApiError::Unauthorized)?;
        let digest = presented.digest();
        if let Some(found) = self.cached(presented, &digest) {
            return found;
        }
        if self.refused.contains_key(&digest) || self.unknown.contains_key(presented.id()) {
            return Err(ApiError::Unauthorized);
        }
        if let Some(client) = client {
            self.failures
                .check(client)
                .map_err(|retry_after| ApiError::AuthThrottled {
                    reason: Reason::TooManyFailedAttempts,
                    retry_after,
                })?;
        }
        let seat = self.board(digest, presented.id(), client)?;
        let flight = seat.flight.as_ref().ok_or_else(busy)?;
        let _turn = flight.turn.lock().await;
        match self.cached(presented, &digest) {
            Some(found) => found,
            None if self.refused.contains_key(&digest) => Err(ApiError::Unauthorized),
            None => {
                self.verify(KeyId::from(presented.id()), presented.clone(), digest)
                    .await
            }
        }
    }

    /// Joins the verification of this exact key, or starts one if the client and the key id
    /// have room for another.
    fn board(
        &self,
        digest: [u8; 32],
        key_id: &str,
        client: Option<IpAddr>,
    ) -> Result<Seat<'_>, ApiError> {
        let mut flights = self.flights.lock();
        if let Some(flight) = flights.by_digest.get(&digest) {
            if Arc::strong_count(flight) > WAITERS_PER_FLIGHT {
                return Err(busy());
            }
            return Ok(Seat {
                keyring: self,
                digest,
                flight: Some(flight.clone()),
            });
        }
        if flights
            .per_key
            .get(key_id)
            .is_some_and(|n| *n >= FLIGHTS_PER_KEY)
            || client.is_some_and(|c| {
                flights
                    .per_client
                    .get(&c)
                    .is_some_and(|n| *n >= FLIGHTS_PER_CLIENT)
            })
        {
            return Err(busy());
        }
        let flight = Arc::new(Flight {
            turn: tokio::sync::Mutex::new(()),
            key_id: key_id.to_owned(),
            client,
        });
        *flights.per_key.entry(key_id.to_owned()).or_default() += 1;
        if let Some(client) = client {
            *flights.per_client.entry(client).or_default() += 1;
        }
        flights.by_digest.insert(digest, flight.clone());
        Ok(Seat {
            keyring: self,
            digest,
            flight: Some(flight),
        })
    }

    /// The answer for a key this process verified before, if it is cached.
    fn cached(
        &self,
        presented: &GatewayKey,
        digest: &[u8; 32],
    ) -> Option<Result<Arc<Principal>, ApiError>> {
        let hit = self.verified.get(presented.id());
        crate::telemetry::metrics::cache(crate::telemetry::metrics::Cache::Key, hit.is_some());
        let hit = hit?;
        let now = crate::kernel::clock::now();
        if !bool::from(hit.digest.ct_eq(digest)) {
            return Some(Err(ApiError::Unauthorized));
        }
        if hit.principal.expires_at.is_some_and(|at| at <= now) {
            self.verified.invalidate(presented.id());
            return Some(Err(ApiError::Unauthorized));
        }
        if now - hit.last_touch.load(Ordering::Relaxed) >= 60 {
            hit.last_touch.store(now, Ordering::Relaxed);
            self.auditor.touch(presented.id(), now);
        }
        Some(Ok(hit.principal.clone()))
    }

    /// Looks the key up and checks it with argon2, off the async executor; caches a success,
    /// and remembers a refusal for a while.
    async fn verify(
        &self,
        key_id: KeyId,
        presented: GatewayKey,
        digest: [u8; 32],
    ) -> Result<Arc<Principal>, ApiError> {
        let now = crate::kernel::clock::now();
        let generation = self.generation.load(Ordering::SeqCst);
        let record = match self.store.find_key(&key_id).await {
            Ok(record) => record,
            Err(StoreError::NotFound) => {
                self.remember_unknown(key_id, generation);
                return Err(ApiError::Unauthorized);
            }
            Err(e) => return Err(e.into()),
        };
        if record.revoked_at.is_some() || record.expires_at.is_some_and(|at| at <= now) {
            self.remember_unknown(key_id, generation);
            return Err(ApiError::Unauthorized);
        }
        let permit = self
            .hashing
            .acquire()
            .await
            .map_err(|_| ApiError::Internal("the hashing semaphore closed".into()))?;
        self.argon2_runs.fetch_add(1, Ordering::Relaxed);
        crate::telemetry::metrics::argon2_run();
        let hash = record.secret_hash.clone();
        let matches = tokio::task::spawn_blocking(move || presented.verify(&hash))
            .await
            .map_err(|e| ApiError::Internal(format!("key verification task failed: {e}")))?;
        drop(permit);
        if !matches {
            // A key id's secret never changes, so a refused secret stays refused.
            self.refused.insert(digest, ());
            return Err(ApiError::Unauthorized);
        }
        let principal = Arc::new(Principal {
            scope: Scope::from_record(record.read_only, record.allowed_actions.as_deref())
                .with_websites(record.allowed_websites.as_deref()),
            quota: record.quota(),
            key_id: record.api_key_id,
            workspace_id: record.workspace_id,
            expires_at: record.expires_at,
        });
        if self.generation.load(Ordering::SeqCst) == generation {
            self.verified.insert(
                key_id.clone(),
                Arc::new(Verified {
                    digest,
                    principal: principal.clone(),
                    last_touch: AtomicI64::new(now),
                }),
            );
        }
        self.auditor.touch(key_id.as_str(), now);
        Ok(principal)
    }

    /// Remembers a key id that cannot succeed, unless the change log moved meanwhile.
    fn remember_unknown(&self, key_id: KeyId, generation: u64) {
        if self.generation.load(Ordering::SeqCst) == generation {
            self.unknown.insert(key_id, ());
        }
    }
}

/// The caller's address, when the server recorded it.
pub fn client_ip(request: &Request) -> Option<IpAddr> {
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0.ip())
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

    #[test]
    fn website_scopes() {
        assert!(Scope::default().check_website("any").is_ok());
        let narrowed = Scope::from_record(false, None).with_websites(Some("web-a, web-b"));
        assert!(narrowed.check_website("web-b").is_ok());
        let err = narrowed.check_website("web-c").expect_err("outside");
        assert_eq!(err.reason(), "website_not_allowed");
        assert_eq!(err.status(), axum::http::StatusCode::FORBIDDEN);
        assert!(err.message().contains("`web-c`") && err.message().contains("web-a, web-b"));
    }
}
