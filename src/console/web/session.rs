//! Console sessions: a random session id in an HttpOnly, SameSite=Strict cookie, mapped here
//! to the admin token's id (never the token) with an expiry and a CSRF token.
//!
//! Sessions live in the process that signed them in: behind several replicas, route the
//! console to one (or make the balancer sticky); the admin API with a bearer token works on any.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use parking_lot::Mutex;
use sha2::{Digest, Sha256};

use crate::auth::AdminKeyring;

pub const SESSION_COOKIE: &str = "crisp_admin_session";
pub const CSRF_HEADER: &str = "x-csrf-token";
/// How long a console session lasts after sign-in.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
/// Sessions held at most; past it the oldest expired ones go, then the sign-in is refused.
const MAX_SESSIONS: usize = 10_000;

#[derive(Debug, Clone)]
pub struct Session {
    pub token_id: String,
    pub csrf: String,
    expires: Instant,
}

pub struct Sessions {
    ttl: Duration,
    /// By the SHA-256 of the session id, so the table holds nothing a cookie could be made from.
    by_digest: Mutex<HashMap<[u8; 32], Session>>,
}

fn digest(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

impl Sessions {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            by_digest: Mutex::new(HashMap::new()),
        }
    }

    /// Starts a session for a verified token; returns its id (for the cookie) and the
    /// session, or `None` when the table is full of live sessions.
    pub fn start(&self, token_id: &str) -> Option<(String, Session)> {
        let id = crate::secret::random_base62(43);
        let session = Session {
            token_id: token_id.to_owned(),
            csrf: crate::secret::random_base62(32),
            expires: Instant::now() + self.ttl,
        };
        let mut sessions = self.by_digest.lock();
        if sessions.len() >= MAX_SESSIONS {
            let now = Instant::now();
            sessions.retain(|_, s| s.expires > now);
            if sessions.len() >= MAX_SESSIONS {
                return None;
            }
        }
        sessions.insert(digest(&id), session.clone());
        Some((id, session))
    }

    /// The live session with this id; an expired one, or one whose token was revoked, ends.
    pub fn find(&self, id: &str, keyring: &AdminKeyring) -> Option<Session> {
        let key = digest(id);
        let mut sessions = self.by_digest.lock();
        let session = sessions.get(&key)?;
        if session.expires <= Instant::now() || keyring.is_revoked(&session.token_id) {
            sessions.remove(&key);
            return None;
        }
        Some(session.clone())
    }

    pub fn end(&self, id: &str) {
        self.by_digest.lock().remove(&digest(id));
    }

    pub fn seconds_left(&self, session: &Session) -> u64 {
        session
            .expires
            .saturating_duration_since(Instant::now())
            .as_secs()
    }
}

/// A cookie's value from the request's `Cookie` headers.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.to_owned())
}

/// The `Set-Cookie` value of a session: HttpOnly (no script reads it), SameSite=Strict (no
/// other site's request carries it), scoped to the console, `Secure` behind HTTPS.
pub fn set_cookie(id: &str, max_age: u64, secure: bool) -> String {
    format!(
        "{SESSION_COOKIE}={id}; Path=/admin; HttpOnly; SameSite=Strict; Max-Age={max_age}{}",
        if secure { "; Secure" } else { "" }
    )
}
