//! The typed Crisp client: one pooled `reqwest::Client`, request building from a compiled
//! action, and the mapping of Crisp's answers onto gateway results and errors.

mod reply;

use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue, header};
use bytes::Bytes;

use crate::accounts::Account;
use crate::catalog::Method;

pub use reply::{Reply, UpstreamError};

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
}

impl CrispClient {
    pub fn new(base: &str, attempt_timeout: Duration) -> Result<Self, reqwest::Error> {
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

    /// Sends one call to Crisp with the account's credentials.
    pub async fn send(
        &self,
        account: &Account,
        request: &UpstreamRequest,
        request_id: &str,
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
