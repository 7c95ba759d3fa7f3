//! `Idempotency-Key`: a write runs at most once per workspace and key, and a repeat says
//! honestly what became of the first.
//!
//! A keyed write is checked like any call first (the key's rate limit, scope, account and
//! arguments), so a repeat by a key that may not make the call is refused, limited and audited.
//! Then the record is looked up: a stored answer is replayed; a call still running is waited
//! for. A new call waits for its account's turn and only then claims the key, just before the
//! first attempt leaves, with a lease as long as a request may last; retries keep the claim.
//! A call that certainly never reached Crisp frees its claim; one that left without an answer
//! coming back (a timeout, a lost connection) is marked `unknown`, as is, in effect, a claim
//! whose process died (its lease passes). Repeats of those get `idempotency_outcome_unknown`
//! until `idempotency_unknown_hold` after the lease; then the key may run again.

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::StatusCode;
use sha2::{Digest, Sha256};

use super::{Answer, Services, Trace, Upstream, envelope, upstream_status};
use crate::auth::Principal;
use crate::catalog::Action;
use crate::error::{ApiError, Reason};
use crate::store::{IdempotencyRecord, IdempotencyState, Store, StoreError, WorkspaceId};

pub const HEADER: &str = "idempotency-key";
pub const REPLAYED: &str = "idempotent-replayed";

/// Beyond the call's deadline, how long a claim's lease lasts: time to store the answer, and
/// room for replicas' clocks to differ.
const LEASE_MARGIN: Duration = Duration::from_secs(5);

/// A caller's `Idempotency-Key`, with the digest of the request it was sent with.
#[derive(Debug, Clone)]
pub struct Key {
    key: String,
    request_hash: String,
}

impl Key {
    /// Checks the header's form (1 to 255 visible ASCII characters) and digests the action
    /// and body, so the same key with another request can be told apart.
    pub fn new(header: &[u8], action: &Action, raw_body: &[u8]) -> Result<Self, ApiError> {
        Self::for_request(header, action.slug, raw_body)
    }

    /// As [`Key::new`], for a request named by `what` (an action's slug, an admin route).
    pub fn for_request(header: &[u8], what: &str, raw_body: &[u8]) -> Result<Self, ApiError> {
        if header.is_empty() || header.len() > 255 || !header.iter().all(u8::is_ascii_graphic) {
            return Err(ApiError::bad_request(
                Reason::InvalidIdempotencyKey,
                "`Idempotency-Key` must be 1 to 255 visible ASCII characters, such as a UUID.",
            ));
        }
        let mut hasher = Sha256::new();
        hasher.update(what.as_bytes());
        hasher.update([0]);
        hasher.update(raw_body);
        Ok(Self {
            key: String::from_utf8_lossy(header).into_owned(),
            request_hash: format!("{:x}", hasher.finalize()),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.key
    }

    /// The digest stored with the record, to tell a repeat from a reuse.
    pub fn request_hash(&self) -> &str {
        &self.request_hash
    }
}

/// The answer the first request with a key gave, as stored for repeats.
#[derive(Debug, Clone)]
pub struct Stored {
    pub status: StatusCode,
    /// The JSON envelope as first sent.
    pub body: String,
}

/// Runs a checked write under its key: replays, waits, refuses, or sends it under a claim.
pub(super) async fn run(
    app: &Services<'_>,
    principal: &Principal,
    action: &Action,
    key: &Key,
    upstream: &Upstream<'_>,
    trace: &mut Trace,
) -> Result<Answer, ApiError> {
    let workspace = &principal.workspace_id;
    let mut seen = find(app.store, workspace, key).await?;
    loop {
        let now = crate::kernel::clock::now();
        if let Some(record) = seen.take().filter(|r| r.expires_at > now) {
            if record.request_hash != key.request_hash {
                return Err(ApiError::Unprocessable {
                    reason: Reason::IdempotencyKeyReused,
                    message: format!(
                        "`Idempotency-Key` `{}` was already used with a different request; use a new key for a new request.",
                        key.key
                    ),
                });
            }
            match record.state.at(record.lease_until, now) {
                IdempotencyState::Done => {
                    // No account is called for a replay.
                    trace.account = None;
                    return Ok(Answer::Replayed(stored(&record)));
                }
                IdempotencyState::Unknown => return Err(outcome_unknown(key, &record, now)),
                IdempotencyState::Pending if Instant::now() >= upstream.deadline => {
                    return Err(in_progress(key, &record, now));
                }
                IdempotencyState::Pending => {
                    // The first request is running (here or on another replica): wait for its
                    // answer rather than call Crisp a second time.
                    seen = wait(app.store, workspace, key, upstream.deadline).await?;
                    if seen.is_some() {
                        continue;
                    }
                    // It freed its claim (it never reached Crisp): this call may run.
                }
            }
        }
        // Waiting for the account's turn holds no claim: a call refused for the account's
        // budget, or stopped while it waits, leaves the key free.
        let turn = app.crisp.admit(upstream.account).await?;
        let claim = claim(app, workspace, key, upstream.deadline);
        // Never `NotFound` (see `Store::claim_idempotency`), so only an outage fails here.
        match app.store.claim_idempotency(&claim).await? {
            None => return send_claimed(app, action, claim, turn, upstream, trace).await,
            // Another request claimed the key since the lookup: answer as its repeat.
            Some(existing) => seen = Some(existing),
        }
    }
}

async fn find(
    store: &Arc<dyn Store>,
    workspace: &WorkspaceId,
    key: &Key,
) -> Result<Option<IdempotencyRecord>, ApiError> {
    match store.find_idempotency(workspace, &key.key).await {
        Ok(record) => Ok(Some(record)),
        Err(StoreError::NotFound) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// A `pending` claim whose lease covers what is left of the request's deadline.
fn claim(
    app: &Services<'_>,
    workspace: &WorkspaceId,
    key: &Key,
    deadline: Instant,
) -> IdempotencyRecord {
    let now = crate::kernel::clock::now();
    let lease = whole_seconds(deadline.saturating_duration_since(Instant::now()) + LEASE_MARGIN);
    let lease_until = now.saturating_add(lease);
    IdempotencyRecord {
        workspace_id: workspace.clone(),
        idempotency_key: key.key.clone(),
        request_hash: key.request_hash.clone(),
        state: IdempotencyState::Pending,
        status: None,
        response: None,
        created_at: now,
        lease_until,
        expires_at: lease_until.saturating_add(whole_seconds(app.idempotency_unknown_hold)),
    }
}

/// Sends the call under a fresh claim and settles the claim by what happened.
async fn send_claimed(
    app: &Services<'_>,
    action: &Action,
    claim: IdempotencyRecord,
    turn: crate::limits::Turn,
    upstream: &Upstream<'_>,
    trace: &mut Trace,
) -> Result<Answer, ApiError> {
    let workspace = &claim.workspace_id;
    let key = claim.idempotency_key.as_str();
    let mut guard = Unsettled {
        store: app.store,
        workspace,
        key,
        armed: true,
    };
    let sent = app
        .crisp
        .send_admitted(
            turn,
            upstream.account,
            upstream.request,
            upstream.request_id,
            upstream.safety,
            upstream.deadline,
        )
        .await;
    trace.upstream_status = upstream_status(&sent.outcome);
    let result = sent
        .outcome
        .map(|reply| envelope(action, reply))
        .map_err(|e| super::tier::answer(action, upstream.account, e));
    let settled = match settlement(&result, sent.may_have_acted) {
        Settlement::Done => {
            let (status, body) = match &result {
                Ok(envelope) => (
                    StatusCode::OK,
                    String::from_utf8_lossy(&envelope.to_bytes()).into_owned(),
                ),
                Err(e) => (
                    e.status(),
                    e.to_body(Some(&action.tool), upstream.request_id)
                        .to_string(),
                ),
            };
            let expires_at = claim
                .created_at
                .saturating_add(whole_seconds(app.idempotency_ttl));
            app.store
                .complete_idempotency(
                    workspace,
                    key,
                    i32::from(status.as_u16()),
                    &body,
                    expires_at,
                )
                .await
        }
        Settlement::Unknown => app.store.mark_idempotency_unknown(workspace, key).await,
        Settlement::Release => app.store.release_idempotency(workspace, key).await,
    };
    guard.armed = false;
    if let Err(e) = settled {
        // The call is over; failing the caller now would invite a blind retry. The claim stays
        // `pending`, and once its lease passes, repeats learn that its outcome is unknown.
        tracing::error!(error = %e, "cannot settle an idempotency record");
    }
    result.map(Answer::Fresh)
}

/// What a claim becomes once its call is over.
#[derive(Debug, PartialEq, Eq)]
enum Settlement {
    /// Crisp answered: store the answer for repeats.
    Done,
    /// The call may have made Crisp act, but no answer says what happened.
    Unknown,
    /// Crisp certainly did not act: free the key for a retry.
    Release,
}

fn settlement<T>(result: &Result<T, ApiError>, may_have_acted: bool) -> Settlement {
    match result {
        Ok(_) => Settlement::Done,
        Err(_) if !may_have_acted => Settlement::Release,
        // No answer to this attempt, or one that says nothing of an earlier attempt's fate.
        Err(ApiError::Upstream(failure)) if failure.unanswered => Settlement::Unknown,
        Err(_) => Settlement::Done,
    }
}

/// A claim whose call is under way. If the request is dropped before the claim is settled
/// (the caller went away, or the request deadline cut it), the call may have left: the claim
/// is marked `unknown` at once rather than left for its lease to run out.
struct Unsettled<'a> {
    store: &'a Arc<dyn Store>,
    workspace: &'a WorkspaceId,
    key: &'a str,
    armed: bool,
}

impl Drop for Unsettled<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (store, workspace, key) = (
            self.store.clone(),
            self.workspace.to_owned(),
            self.key.to_owned(),
        );
        runtime.spawn(async move {
            if let Err(e) = store.mark_idempotency_unknown(&workspace, &key).await {
                tracing::warn!(error = %e, "cannot mark an abandoned idempotency claim unknown");
            }
        });
    }
}

/// Polls the record until it is no longer a running claim, is gone (`None`), or `until`.
async fn wait(
    store: &Arc<dyn Store>,
    workspace: &WorkspaceId,
    key: &Key,
    until: Instant,
) -> Result<Option<IdempotencyRecord>, ApiError> {
    let mut pause = Duration::from_millis(20);
    loop {
        let left = until.saturating_duration_since(Instant::now());
        tokio::time::sleep(pause.min(left)).await;
        pause = (pause * 2).min(Duration::from_millis(200));
        let record = find(store, workspace, key).await?;
        let running = record.as_ref().is_some_and(|r| {
            r.state.at(r.lease_until, crate::kernel::clock::now()) == IdempotencyState::Pending
        });
        if !running || Instant::now() >= until {
            return Ok(record);
        }
    }
}

fn stored(record: &IdempotencyRecord) -> Stored {
    Stored {
        status: record
            .status
            .and_then(|s| u16::try_from(s).ok())
            .and_then(|s| StatusCode::from_u16(s).ok())
            .unwrap_or(StatusCode::OK),
        body: record.response.clone().unwrap_or_default(),
    }
}

fn in_progress(key: &Key, record: &IdempotencyRecord, now: i64) -> ApiError {
    ApiError::IdempotencyConflict {
        reason: Reason::IdempotencyInProgress,
        message: format!(
            "A request with `Idempotency-Key` `{}` is still running; retry after the Retry-After delay to get its answer.",
            key.key
        ),
        retry_after: seconds_until(record.lease_until, now),
    }
}

fn outcome_unknown(key: &Key, record: &IdempotencyRecord, now: i64) -> ApiError {
    ApiError::IdempotencyConflict {
        reason: Reason::IdempotencyOutcomeUnknown,
        message: format!(
            "The first request with `Idempotency-Key` `{key}` got no answer from Crisp (a timeout, \
             a lost connection, or a gateway that stopped mid-call): it may or may not have reached \
             Crisp and taken effect. Check in Crisp before sending it again (for a message, list the \
             conversation's messages). This key runs again after {at} (see Retry-After); an \
             operator can free it sooner with `crisp-gateway idempotency release --workspace \
             <workspace> {key}`.",
            key = key.key,
            at = crate::kernel::clock::format(record.expires_at),
        ),
        retry_after: seconds_until(record.expires_at, now),
    }
}

fn seconds_until(at: i64, now: i64) -> Duration {
    Duration::from_secs(u64::try_from(at.saturating_sub(now)).unwrap_or(0).max(1))
}

/// A duration in whole seconds, rounded up, as stored times are.
fn whole_seconds(duration: Duration) -> i64 {
    let seconds = duration.as_secs() + u64::from(duration.subsec_nanos() > 0);
    i64::try_from(seconds).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forward::{TransportError, UpstreamError};

    fn upstream(e: UpstreamError) -> Result<(), ApiError> {
        Err(ApiError::from(e))
    }

    #[test]
    fn a_claim_settles_by_what_may_have_reached_crisp() {
        let busy = || UpstreamError::AccountBusy {
            account: "main".into(),
            retry_after: Duration::from_secs(1),
        };
        let refused = || UpstreamError::Unreachable(TransportError::Connect("refused".into()));
        let broken = || UpstreamError::Unreachable(TransportError::Broken("reset".into()));
        assert_eq!(settlement(&Ok(()), true), Settlement::Done);
        assert_eq!(settlement(&upstream(busy()), false), Settlement::Release);
        assert_eq!(settlement(&upstream(refused()), false), Settlement::Release);
        assert_eq!(
            settlement(&upstream(UpstreamError::Timeout), false),
            Settlement::Release,
            "the deadline passed before the first attempt"
        );
        assert_eq!(
            settlement(&upstream(UpstreamError::Timeout), true),
            Settlement::Unknown
        );
        assert_eq!(settlement(&upstream(broken()), true), Settlement::Unknown);
        assert_eq!(
            settlement(&upstream(busy()), true),
            Settlement::Unknown,
            "an earlier attempt may have acted"
        );
        assert_eq!(
            settlement(&upstream(UpstreamError::ServerError { status: 500 }), true),
            Settlement::Done,
            "Crisp's own answer is stored"
        );
    }

    #[tokio::test]
    async fn a_claim_dropped_before_it_settles_is_marked_unknown() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}/gateway.db", dir.path().display());
        let store = crate::store::connect(&url).await.expect("store");
        store.migrate().await.expect("migrate");
        for key in ["dropped", "settled"] {
            let claim = IdempotencyRecord {
                workspace_id: "ws".into(),
                idempotency_key: key.into(),
                request_hash: "h".into(),
                state: IdempotencyState::Pending,
                status: None,
                response: None,
                created_at: 1,
                lease_until: i64::MAX / 2,
                expires_at: i64::MAX / 2,
            };
            assert_eq!(store.claim_idempotency(&claim).await.expect("claim"), None);
        }
        let ws = WorkspaceId::from("ws");
        let guard = |key: &'static str, armed: bool| Unsettled {
            store: &store,
            workspace: &ws,
            key,
            armed,
        };
        drop(guard("settled", false));
        drop(guard("dropped", true));
        let state = |key: &'static str| {
            let store = store.clone();
            let ws = ws.clone();
            async move { store.find_idempotency(&ws, key).await.expect("find").state }
        };
        let mut marked = false;
        for _ in 0..200 {
            if state("dropped").await == IdempotencyState::Unknown {
                marked = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(
            marked,
            "a request dropped mid-call leaves its claim unknown"
        );
        assert_eq!(state("settled").await, IdempotencyState::Pending);
    }

    #[test]
    fn keys_are_visible_ascii_and_digest_the_request() {
        let action = crate::catalog::CATALOG
            .get("send/message/in/conversation")
            .expect("action");
        assert!(Key::new(b"", action, b"{}").is_err());
        assert!(Key::new(&[b'x'; 256], action, b"{}").is_err());
        assert!(Key::new(b"has space", action, b"{}").is_err());
        assert!(Key::new("é".as_bytes(), action, b"{}").is_err());
        let a = Key::new(b"order-7", action, b"{\"a\":1}").expect("valid");
        let b = Key::new(b"order-7", action, b"{\"a\":2}").expect("valid");
        assert_eq!(a.as_str(), "order-7");
        assert_ne!(a.request_hash, b.request_hash);
    }
}
