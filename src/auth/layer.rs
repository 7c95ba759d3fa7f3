//! The key check as a tower layer: a request reaches the service inside only with a valid key,
//! as a `Principal` in its extensions, and its answer gets the key's rate-limit fields.

use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::Request;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use tower::Service;

use super::{GatewayKey, Keyring, client_ip};
use crate::audit::Auditor;
use crate::catalog::Target;
use crate::error::ApiError;
use crate::kernel::layer::{Around, Wrap};

/// What the auth layer needs: the keyring that resolves keys, the auditor that counts
/// refusals, and the key's limits that its answers describe.
#[derive(Clone)]
pub struct KeyCheck {
    pub keyring: Arc<Keyring>,
    pub auditor: Auditor,
    pub quotas: Arc<crate::limits::QuotaBook>,
    pub key_limits: Arc<crate::limits::KeyLimiter>,
}

/// The auth layer: refuses a request with 401 unless it carries a valid key.
pub type RequireKey = Around<KeyCheck>;

/// A service one of the gateway's HTTP layers runs inside it: axum's request in, an answer out.
pub trait Inner:
    Service<Request, Error = Infallible, Response: IntoResponse, Future: Send> + Send + 'static
{
}

impl<S> Inner for S
where
    S: Service<Request, Error = Infallible> + Send + 'static,
    S::Response: IntoResponse,
    S::Future: Send,
{
}

impl<S: Inner> Wrap<S, Request> for KeyCheck {
    type Response = Response;

    fn wrap(
        self: Arc<Self>,
        request: Request,
        inner: S,
    ) -> impl Future<Output = Response> + Send + 'static {
        require_key(self, request, inner)
    }
}

/// Checks the key, then runs the request. The presented key is parsed once here, for the
/// keyring and for the audit of a refusal alike.
async fn require_key<S: Inner>(
    check: Arc<KeyCheck>,
    mut request: Request,
    mut inner: S,
) -> Response {
    let presented = GatewayKey::from_authorization(
        request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok()),
    );
    let asked = Asked {
        client: client_ip(&request),
        action: request
            .extensions()
            .get::<Target>()
            .map_or("unknown", |target| target.audited()),
        request_id: request
            .headers()
            .get(crate::kernel::request_id::REQUEST_ID)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default(),
    };
    let principal = match check.admit(presented, &asked).await {
        Ok(principal) => principal,
        Err(refused) => return refused,
    };
    request.extensions_mut().insert(Arc::clone(&principal));
    let Ok(response) = inner.call(request).await;
    check.describe(response.into_response(), &principal)
}

/// Who asks for what, as a refusal is audited.
pub struct Asked<'a> {
    pub client: Option<IpAddr>,
    /// The action's slug (never the caller's text): `Target::audited`.
    pub action: &'static str,
    pub request_id: &'a str,
}

impl KeyCheck {
    /// The principal of a presented key, or the refusal to answer (audited): what the auth
    /// layer does, for the action calls the edge sends on without the router.
    pub async fn admit(
        &self,
        presented: Option<GatewayKey>,
        asked: &Asked<'_>,
    ) -> Result<Arc<super::Principal>, Response> {
        match self
            .keyring
            .authenticate(presented.as_ref(), asked.client)
            .await
        {
            Ok(principal) => {
                crate::telemetry::note_call(|info| {
                    info.key = Some(principal.clone());
                });
                Ok(principal)
            }
            Err(refused) => {
                audit_refusal(&self.auditor, asked, presented.as_ref(), &refused);
                Err(refused.into_response())
            }
        }
    }

    /// Adds the key's rate-limit fields to an answer; after the call, so the fields count it.
    pub fn describe(&self, mut response: Response, principal: &super::Principal) -> Response {
        crate::limits::headers::add(
            response.headers_mut(),
            &self.quotas,
            &self.key_limits,
            principal.key_id.as_str(),
            principal.quota,
        );
        response
    }
}

/// Counts a refused key: which key id was presented (never the key), for which action, from
/// which address.
fn audit_refusal(
    auditor: &Auditor,
    asked: &Asked<'_>,
    presented: Option<&GatewayKey>,
    refused: &ApiError,
) {
    auditor.refused(&crate::audit::Refusal {
        reason: refused.reason(),
        status: refused.status().as_u16(),
        workspace_id: None,
        key_id: presented.map(GatewayKey::id),
        client: asked.client,
        action: asked.action,
        request_id: asked.request_id,
    });
}
