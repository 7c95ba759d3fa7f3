//! Bearer secrets: gateway keys (`sk_live_<id>_<secret>`) and admin tokens
//! (`sk_admin_<id>_<secret>`), shown once, stored only as an argon2id hash.
//!
//! The id (16 base62 characters) is public and finds the row; the secret (40 base62
//! characters, about 238 bits) is what the hash protects. Both kinds share this one type,
//! told apart by their prefix, so an admin token can never pass as a gateway key.

use std::fmt;
use std::marker::PhantomData;

use argon2::{Argon2, PasswordHash, PasswordHasher, PasswordVerifier};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

use crate::secret::random_base62;

pub const PREFIX: &str = Live::PREFIX;
const ID_LEN: usize = 16;
const SECRET_LEN: usize = 40;

/// The bytes of an id or a secret (base62), a table: every call's key is checked.
const ALNUM: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = (b as u8).is_ascii_alphanumeric();
        b += 1;
    }
    table
};

/// What kind of bearer secret a [`Bearer`] is: its prefix and its name in debug output.
pub trait Kind {
    const PREFIX: &'static str;
    const NAME: &'static str;
}

/// Gateway keys, presented on the main listener.
#[derive(Debug, Clone, Copy)]
pub struct Live;

impl Kind for Live {
    const PREFIX: &'static str = "sk_live_";
    const NAME: &'static str = "GatewayKey";
}

/// Admin tokens, presented on the admin listener.
#[derive(Debug, Clone, Copy)]
pub struct Admin;

impl Kind for Admin {
    const PREFIX: &'static str = "sk_admin_";
    const NAME: &'static str = "AdminToken";
}

/// A whole bearer secret of one kind. Only its id is ever printed.
///
/// One allocation, the whole text: every call's key is parsed at the edge, and its id is a
/// fixed stretch of it.
pub struct Bearer<K: Kind> {
    full: SecretString,
    kind: PhantomData<K>,
}

/// A gateway key: `sk_live_…`.
pub type GatewayKey = Bearer<Live>;
/// An admin token: `sk_admin_…`.
pub type AdminToken = Bearer<Admin>;

impl<K: Kind> Clone for Bearer<K> {
    fn clone(&self) -> Self {
        Self {
            full: self.full.clone(),
            kind: PhantomData,
        }
    }
}

impl<K: Kind> fmt::Debug for Bearer<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}({}{}_<redacted>)", K::NAME, K::PREFIX, self.id())
    }
}

impl<K: Kind> Bearer<K> {
    pub fn generate() -> Self {
        let full = format!(
            "{}{}_{}",
            K::PREFIX,
            random_base62(ID_LEN),
            random_base62(SECRET_LEN)
        );
        Self {
            full: full.into(),
            kind: PhantomData,
        }
    }

    /// Accepts only the exact shape the gateway issues, so garbage never reaches the database.
    pub fn parse(text: &str) -> Option<Self> {
        let rest = text.strip_prefix(K::PREFIX)?.as_bytes();
        // `<id>_<secret>`, each part base62 of its fixed length.
        let (id, secret) = (rest.get(..ID_LEN)?, rest.get(ID_LEN + 1..)?);
        let alnum = |part: &[u8]| part.iter().all(|&b| ALNUM[usize::from(b)]);
        (rest[ID_LEN] == b'_' && secret.len() == SECRET_LEN && alnum(id) && alnum(secret)).then(
            || Self {
                full: text.to_owned().into(),
                kind: PhantomData,
            },
        )
    }

    /// The secret an `Authorization: Bearer …` header presents (`bearer` in lower case too), read
    /// once at the edge; `None` when the header is missing or holds no gateway key.
    pub fn from_authorization(header: Option<&str>) -> Option<Self> {
        let header = header?;
        header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .map(str::trim)
            .and_then(Self::parse)
    }

    pub fn id(&self) -> &str {
        // Every value was built or parsed with exactly this shape.
        self.full
            .expose_secret()
            .get(K::PREFIX.len()..K::PREFIX.len() + ID_LEN)
            .unwrap_or_default()
    }

    /// The key itself, for the one moment it is shown to its owner.
    pub fn reveal(&self) -> &str {
        self.full.expose_secret()
    }

    /// A fast digest for comparing a presented key with one verified before.
    pub fn digest(&self) -> [u8; 32] {
        Sha256::digest(self.full.expose_secret().as_bytes()).into()
    }

    /// The argon2id hash to store (slow by design: call off the async executor).
    pub fn hash(&self) -> Result<String, String> {
        let hash = Argon2::default()
            .hash_password(self.full.expose_secret().as_bytes())
            .map(|h| h.to_string())
            .map_err(|e| format!("cannot hash the key: {e}"));
        crate::kernel::memory::release_freed();
        hash
    }

    /// Checks the key against a stored hash (slow by design: call off the async executor).
    pub fn verify(&self, stored: &str) -> bool {
        let matches = PasswordHash::new(stored).is_ok_and(|hash| {
            Argon2::default()
                .verify_password(self.full.expose_secret().as_bytes(), &hash)
                .is_ok()
        });
        crate::kernel::memory::release_freed();
        matches
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_parse_and_verify() {
        let key = GatewayKey::generate();
        assert!(key.reveal().starts_with(PREFIX));
        assert_eq!(key.reveal().len(), PREFIX.len() + ID_LEN + 1 + SECRET_LEN);
        let parsed = GatewayKey::parse(key.reveal()).expect("parses");
        assert_eq!(parsed.id(), key.id());
        let hash = key.hash().expect("hash");
        assert!(hash.starts_with("$argon2id$"));
        assert!(parsed.verify(&hash));
        assert!(!GatewayKey::generate().verify(&hash));
        assert!(!format!("{key:?}").contains(&key.reveal()[PREFIX.len() + ID_LEN + 1..]));
    }

    #[test]
    fn admin_tokens_and_gateway_keys_never_pass_for_each_other() {
        let token = AdminToken::generate();
        assert!(token.reveal().starts_with("sk_admin_"));
        assert!(AdminToken::parse(token.reveal()).is_some());
        assert!(GatewayKey::parse(token.reveal()).is_none());
        assert!(AdminToken::parse(GatewayKey::generate().reveal()).is_none());
        assert!(format!("{token:?}").starts_with("AdminToken(sk_admin_"));
        assert!(!format!("{token:?}").contains(&token.reveal()[9 + ID_LEN + 1..]));
    }

    #[test]
    fn malformed_keys_are_refused() {
        let key = GatewayKey::generate();
        let text = key.reveal();
        for bad in [
            "",
            "sk_live_",
            &text[..text.len() - 1],
            &text.replace("sk_live_", "sk_test_"),
            &format!("{text}x"),
            &text.replacen('_', "-", 3),
        ] {
            assert!(GatewayKey::parse(bad).is_none(), "{bad}");
        }
    }
}
