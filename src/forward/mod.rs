//! The typed Crisp client: retries and shaping around the transport (`transport`: HTTP/1.1
//! connections kept in `keepalive` and HTTP/2 connections held in `lanes`, as configured or
//! as TLS picks), and the mapping of Crisp's answers onto gateway results and errors.

mod keepalive;
mod lanes;
mod reply;
pub mod retry;
mod scan;
mod transport;
mod turnstile;

use std::time::Duration;

use bytes::Bytes;

use crate::accounts::Account;
use crate::catalog::Method;

pub use reply::{Reply, UpstreamError};
pub use retry::{RetryPolicy, Safety};
use transport::Transport;
pub use transport::{TransportError, Upstream, UpstreamHttp};

use crate::limits::{AccountShaper, Turn};
use crate::telemetry::metrics::UpstreamOutcome;
use std::time::Instant;

/// A Crisp call, fully translated: the path is already percent-encoded segment by segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamRequest {
    pub method: Method,
    pub path: String,
    pub query: Vec<(String, String)>,
    /// JSON bytes; `None` sends no body (GET, HEAD, and DELETE without one).
    pub body: Option<Bytes>,
}

/// How a call ended, and whether any of its attempts may have made Crisp act: what an
/// idempotent write needs to know to keep, settle or free its claim.
#[derive(Debug)]
pub struct Sent {
    pub outcome: Result<Reply, UpstreamError>,
    /// False only when no attempt can have reached Crisp's handler: refused before sending,
    /// a connection never made, or Crisp's own rate limit.
    pub may_have_acted: bool,
}

impl Sent {
    fn new(outcome: Result<Reply, UpstreamError>, may_have_acted: bool) -> Self {
        Self {
            outcome,
            may_have_acted,
        }
    }
}

pub struct CrispClient {
    transport: Transport,
    attempt_timeout: Duration,
    policy: RetryPolicy,
    shaper: AccountShaper,
}

impl CrispClient {
    pub fn new(
        upstream: &Upstream,
        policy: RetryPolicy,
        shaper: AccountShaper,
    ) -> Result<Self, TransportError> {
        let transport = Transport::new(upstream)?;
        Ok(Self {
            transport,
            attempt_timeout: upstream.timeout,
            policy,
            shaper,
        })
    }

    /// The Crisp base URL as configured.
    pub fn base(&self) -> &str {
        self.transport.base()
    }

    /// The URL a request goes to; query values are encoded as single components.
    pub fn url(&self, request: &UpstreamRequest) -> String {
        self.transport.url(request)
    }

    /// A client for one-off checks (`account test`, `doctor`): the configured timeout, no
    /// retries and no shaping, so the answer seen is Crisp's own.
    pub fn for_checks(upstream: &Upstream) -> Result<Self, TransportError> {
        let single = RetryPolicy::new(
            1,
            Duration::from_millis(1),
            Duration::from_millis(1),
            Duration::ZERO,
        )
        .unwrap_or_else(|_| unreachable!("a one-attempt policy is valid"));
        let unshaped = AccountShaper::new(crate::limits::AccountLimits {
            max_concurrency: 0,
            rate: 0.0,
            burst: 0.0,
            queue_timeout: Duration::ZERO,
            max_queue: 0,
        });
        Self::new(upstream, single, unshaped)
    }

    /// One attempt, no retry: for checks that must see exactly what Crisp says.
    pub async fn probe(
        &self,
        account: &Account,
        request: &UpstreamRequest,
        request_id: &str,
    ) -> Result<Reply, UpstreamError> {
        let deadline = Instant::now() + self.attempt_timeout;
        self.send(account, request, request_id, Safety::Once, deadline)
            .await
    }

    pub fn shaper(&self) -> &AccountShaper {
        &self.shaper
    }

    /// Calls Crisp for an account, retrying what `safety` allows, until `deadline`. Each
    /// attempt waits for the account's turn (its concurrency and rate budget) first.
    pub async fn send(
        &self,
        account: &Account,
        request: &UpstreamRequest,
        request_id: &str,
        safety: Safety,
        deadline: Instant,
    ) -> Result<Reply, UpstreamError> {
        let turn = self.admit(account).await?;
        self.send_admitted(turn, account, request, request_id, safety, deadline)
            .await
            .outcome
    }

    /// Waits for the account's turn (its concurrency and rate budget); nothing is sent yet.
    /// A caller that must act between the turn and the first attempt (claiming an idempotency
    /// key) takes the turn here and hands it to `send_admitted`.
    pub async fn admit(&self, account: &Account) -> Result<Turn, UpstreamError> {
        self.shaper
            .turn(
                account.id.as_str(),
                crate::limits::OwnBudget {
                    rate: account.rate_limit,
                    max_concurrency: account.max_concurrency,
                },
            )
            .await
            .map_err(|busy| UpstreamError::AccountBusy {
                account: account.label.clone(),
                retry_after: busy.retry_after,
            })
    }

    /// `send` with the first attempt's turn already granted; each retry waits for a turn of
    /// its own. Also says whether any attempt may have made Crisp act.
    pub async fn send_admitted(
        &self,
        turn: Turn,
        account: &Account,
        request: &UpstreamRequest,
        request_id: &str,
        safety: Safety,
        deadline: Instant,
    ) -> Sent {
        let mut attempt = 0;
        let mut may_have_acted = false;
        let mut turn = Some(turn);
        loop {
            let held = match turn.take() {
                Some(turn) => turn,
                None => match self.admit(account).await {
                    Ok(turn) => turn,
                    Err(busy) => return Sent::new(Err(busy), may_have_acted),
                },
            };
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Sent::new(Err(UpstreamError::Timeout), may_have_acted);
            }
            let outcome = self
                .send_once(account, request, request_id, self.attempt_timeout.min(left))
                .await;
            drop(held);
            attempt += 1;
            may_have_acted |= match &outcome {
                Ok(_) => true,
                Err(e) => !e.certainly_not_acted(),
            };
            crate::telemetry::metrics::upstream_call(metric_outcome(&outcome));
            if attempt >= self.policy.max_attempts() || !retry::is_retryable(&outcome, safety) {
                return Sent::new(outcome, may_have_acted);
            }
            let retry_after = outcome
                .as_ref()
                .err()
                .and_then(UpstreamError::crisp_retry_after);
            let wait = self.policy.backoff(attempt, retry_after);
            // Only retry when the wait and a useful attempt both fit before the deadline.
            if Instant::now() + wait + Duration::from_millis(200) >= deadline {
                return Sent::new(outcome, may_have_acted);
            }
            crate::telemetry::metrics::upstream_retry();
            tracing::debug!(
                attempt,
                wait_ms = wait.as_millis() as u64,
                "retrying the Crisp call"
            );
            tokio::time::sleep(wait).await;
        }
    }

    /// One attempt, with the account's credentials, bounded by `timeout`.
    async fn send_once(
        &self,
        account: &Account,
        request: &UpstreamRequest,
        request_id: &str,
        timeout: Duration,
    ) -> Result<Reply, UpstreamError> {
        let tier = account.tier.header();
        let call = self
            .transport
            .call(request, &account.authorization, &tier, request_id);
        // The attempt's limit is the timer a call waits under (`kernel::deadline`): it always
        // ends before the request's deadline, which then arms no timer of its own.
        let answer = crate::kernel::deadline::within(timeout, call)
            .await
            .map_err(|_| UpstreamError::Timeout)?
            .map_err(|e| match e {
                TransportError::TooLarge { status, limit } => {
                    UpstreamError::ResponseTooLarge { status, limit }
                }
                e => UpstreamError::Unreachable(e),
            })?;
        // Only a rate limit's answer is waited on as it asks.
        let retry_after = matches!(answer.status, 420 | 429)
            .then(|| reply::retry_after(&answer.headers))
            .flatten();
        let reply = reply::interpret(
            request.method,
            answer.status,
            retry_after,
            answer.body,
            account,
        );
        if (200..300).contains(&answer.status) && reply.is_ok() {
            account.proven.mark();
        }
        reply
    }
}

/// The label of one attempt's outcome for the upstream-call metric.
fn metric_outcome(outcome: &Result<Reply, UpstreamError>) -> UpstreamOutcome {
    match outcome {
        Ok(reply) => UpstreamOutcome::Status(reply.status()),
        Err(UpstreamError::Timeout) => UpstreamOutcome::Failed("timeout"),
        Err(UpstreamError::Unreachable(_)) => UpstreamOutcome::Failed("unreachable"),
        Err(UpstreamError::ResponseTooLarge { .. }) => UpstreamOutcome::Failed("too_large"),
        Err(e) => e
            .upstream_status()
            .map_or(UpstreamOutcome::Failed("none"), UpstreamOutcome::Status),
    }
}
