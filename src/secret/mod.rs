//! Secret types: values whose `Debug` and `Display` never print the secret.
//!
//! Gateway keys, Crisp keys and the master key each get a type, so the compiler, not a
//! reviewer, keeps them out of logs, error bodies and listings.

mod vault;

use std::fmt;

use secrecy::{ExposeSecret, SecretString};

pub use vault::{MasterKey, Vault, VaultError};

/// A Crisp API key (the secret half of an identifier/key pair).
#[derive(Clone)]
pub struct CrispKey(SecretString);

impl CrispKey {
    pub fn new(key: impl Into<String>) -> Self {
        Self(SecretString::from(key.into()))
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for CrispKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CrispKey(<redacted>)")
    }
}

/// Fills a buffer from the operating system's random source.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    // The OS random source failing means the machine cannot make keys safely at all.
    #[expect(
        clippy::expect_used,
        reason = "no safe fallback exists for a broken RNG"
    )]
    getrandom::fill(&mut buf).expect("the operating system's random source failed");
    buf
}

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// `len` random base62 characters (5.95 bits each), drawn without modulo bias.
pub fn random_base62(len: usize) -> String {
    let mut out = String::with_capacity(len);
    while out.len() < len {
        for byte in random_bytes::<64>() {
            // 248 = 4 × 62: bytes above it would favour the first characters.
            if byte < 248 && out.len() < len {
                out.push(BASE62[usize::from(byte % 62)] as char);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_key() {
        let key = CrispKey::new("super-secret-value");
        assert!(!format!("{key:?}").contains("super-secret"));
        assert_eq!(key.expose(), "super-secret-value");
    }

    #[test]
    fn base62_is_random_and_sized() {
        let a = random_base62(40);
        assert_eq!(a.len(), 40);
        assert!(a.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_ne!(a, random_base62(40));
    }
}
