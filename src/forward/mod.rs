//! The typed Crisp client: one pooled `reqwest::Client`, request building from a compiled
//! action, and the mapping of Crisp's answers onto gateway results and errors.

mod reply;
pub mod retry;

use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue, header};
use bytes::Bytes;

use crate::accounts::Account;
use crate::catalog::Method;

pub use reply::{Reply, UpstreamError};
pub use retry::{RetryPolicy, Safety};

use crate::limits::AccountShaper;
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

pub struct CrispClient {
    http: reqwest::Client,
    base: String,
    attempt_timeout: Duration,
    policy: RetryPolicy,
    shaper: AccountShaper,
}

impl CrispClient {
    pub fn new(
        base: &str,
        attempt_timeout: Duration,
        policy: RetryPolicy,
        shaper: AccountShaper,
    ) -> Result<Self, reqwest::Error> {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
        let http = reqwest::Client::builder()
            .user_agent(concat!("crisp-gateway/", env!("CARGO_PKG_VERSION")))
            .default_headers(headers)
            .timeout(attempt_timeout)
            .connect_timeout(attempt_timeout.min(Duration::from_secs(5)))
            .pool_idle_timeout(Duration::from_secs(45))
            .pool_max_idle_per_host(256)
            .tcp_nodelay(true)
            .build()?;
        Ok(Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
            attempt_timeout,
            policy,
            shaper,
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// The URL a request goes to; query values are encoded as single components.
    pub fn url(&self, request: &UpstreamRequest) -> String {
        let mut url = String::with_capacity(self.base.len() + request.path.len() + 64);
        url.push_str(&self.base);
        url.push_str(&request.path);
        for (i, (name, value)) in request.query.iter().enumerate() {
            url.push(if i == 0 { '?' } else { '&' });
            url.extend(percent_encoding::utf8_percent_encode(
                name,
                crate::catalog::COMPONENT,
            ));
            url.push('=');
            url.extend(percent_encoding::utf8_percent_encode(
                value,
                crate::catalog::COMPONENT,
            ));
        }
        url
    }

    /// A client for one-off checks (`account test`, `doctor`): the configured timeout, no
    /// retries and no shaping, so the answer seen is Crisp's own.
    pub fn for_checks(config: &crate::config::Config) -> Result<Self, reqwest::Error> {
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
        Self::new(&config.upstream, config.upstream_timeout, single, unshaped)
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
        let mut attempt = 0;
        loop {
            let turn =
                self.shaper
                    .turn(&account.id)
                    .await
                    .map_err(|busy| UpstreamError::AccountBusy {
                        account: account.label.clone(),
                        retry_after: busy.retry_after,
                    })?;
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(UpstreamError::Timeout);
            }
            let outcome = self
                .send_once(account, request, request_id, self.attempt_timeout.min(left))
                .await;
            drop(turn);
            attempt += 1;
            crate::metrics::upstream_call(&outcome);
            if attempt >= self.policy.max_attempts() || !retry::is_retryable(&outcome, safety) {
                return outcome;
            }
            let retry_after = outcome
                .as_ref()
                .err()
                .and_then(UpstreamError::crisp_retry_after);
            let wait = self.policy.backoff(attempt, retry_after);
            // Only retry when the wait and a useful attempt both fit before the deadline.
            if Instant::now() + wait + Duration::from_millis(200) >= deadline {
                return outcome;
            }
            crate::metrics::upstream_retry();
            tracing::debug!(
                attempt,
                wait_ms = wait.as_millis() as u64,
                "retrying the Crisp call"
            );
            tokio::time::sleep(wait).await;
        }
    }

    /// One attempt, with the account's credentials.
    async fn send_once(
        &self,
        account: &Account,
        request: &UpstreamRequest,
        request_id: &str,
        timeout: Duration,
    ) -> Result<Reply, UpstreamError> {
        let method = match request.method {
            Method::Get => reqwest::Method::GET,
            Method::Head => reqwest::Method::HEAD,
            Method::Post => reqwest::Method::POST,
            Method::Put => reqwest::Method::PUT,
            Method::Patch => reqwest::Method::PATCH,
            Method::Delete => reqwest::Method::DELETE,
        };
        let mut builder = self
            .http
            .request(method, self.url(request))
            .timeout(timeout)
            .header(header::AUTHORIZATION, account.authorization.clone())
            .header("x-crisp-tier", account.tier.header());
        if let Ok(id) = HeaderValue::from_str(request_id) {
            builder = builder.header("x-request-id", id);
        }
        if let Some(body) = &request.body {
            builder = builder
                .header(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                )
                .body(body.clone());
        }
        let response = builder
            .send()
            .await
            .map_err(UpstreamError::from_transport)?;
        let status = response.status();
        let retry_after = reply::retry_after(response.headers());
        let body = response
            .bytes()
            .await
            .map_err(UpstreamError::from_transport)?;
        reply::interpret(request.method, status.as_u16(), retry_after, body, account)
    }
}
