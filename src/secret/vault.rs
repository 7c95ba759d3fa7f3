//! Encryption of Crisp keys at rest: AES-256-GCM under the master key.
//!
//! A stored secret is `v1:` + base64(nonce ‖ ciphertext). The account id is the associated
//! data, so a ciphertext copied onto another account's row does not decrypt.

use std::fmt;
use std::io::Write;
use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::{CrispKey, random_bytes};

const PREFIX: &str = "v1:";
const NONCE_LEN: usize = 12;

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error(
        "the master key is not valid: expected 32 bytes encoded as base64 \
         (make one with `openssl rand -base64 32`)"
    )]
    BadMasterKey,
    #[error(
        "a stored Crisp key could not be decrypted: the master key is not the one it was \
         encrypted with, or the row was altered"
    )]
    Undecryptable,
    #[error("cannot use the master key file {path}: {source}")]
    KeyFile {
        path: String,
        source: std::io::Error,
    },
}

/// The 32-byte key that encrypts Crisp keys at rest.
#[derive(Clone)]
pub struct MasterKey([u8; 32]);

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

impl MasterKey {
    pub fn generate() -> Self {
        Self(random_bytes())
    }

    pub fn from_base64(text: &str) -> Result<Self, VaultError> {
        let bytes = STANDARD
            .decode(text.trim())
            .map_err(|_| VaultError::BadMasterKey)?;
        let bytes: [u8; 32] = bytes.try_into().map_err(|_| VaultError::BadMasterKey)?;
        Ok(Self(bytes))
    }

    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }

    /// Reads the key file, or creates it with owner-only permissions. Returns the key and
    /// whether it was created just now.
    pub fn load_or_create(path: &Path) -> Result<(Self, bool), VaultError> {
        let err = |source| VaultError::KeyFile {
            path: path.display().to_string(),
            source,
        };
        match std::fs::read_to_string(path) {
            Ok(text) => Ok((Self::from_base64(&text)?, false)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = Self::generate();
                Self::write_new(path, &key)?;
                Ok((key, true))
            }
            Err(e) => Err(err(e)),
        }
    }
}

impl MasterKey {
    /// Writes a key to a file that must not exist yet, readable by its owner only.
    pub fn write_new(path: &Path, key: &Self) -> Result<(), VaultError> {
        let err = |source| VaultError::KeyFile {
            path: path.display().to_string(),
            source,
        };
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(path).map_err(err)?;
        writeln!(file, "{}", key.to_base64()).map_err(err)?;
        file.sync_all().map_err(err)
    }
}

/// Encrypts and decrypts Crisp keys under one master key.
#[derive(Clone)]
pub struct Vault {
    cipher: Aes256Gcm,
}

impl fmt::Debug for Vault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Vault(<redacted>)")
    }
}

impl Vault {
    pub fn new(key: &MasterKey) -> Self {
        #[expect(
            clippy::expect_used,
            reason = "a 32-byte slice is always a valid AES-256 key"
        )]
        let cipher = Aes256Gcm::new_from_slice(&key.0).expect("32-byte key");
        Self { cipher }
    }

    pub fn seal(&self, account_id: &str, secret: &CrispKey) -> String {
        let nonce_bytes: [u8; NONCE_LEN] = random_bytes();
        let nonce = Nonce::from(nonce_bytes);
        let payload = Payload {
            msg: secret.expose().as_bytes(),
            aad: account_id.as_bytes(),
        };
        #[expect(
            clippy::expect_used,
            reason = "AES-GCM encryption of a short message cannot fail"
        )]
        let sealed = self.cipher.encrypt(&nonce, payload).expect("encryption");
        let mut blob = Vec::with_capacity(NONCE_LEN + sealed.len());
        blob.extend_from_slice(&nonce_bytes);
        blob.extend_from_slice(&sealed);
        format!("{PREFIX}{}", STANDARD.encode(blob))
    }

    pub fn open(&self, account_id: &str, stored: &str) -> Result<CrispKey, VaultError> {
        let blob = stored
            .strip_prefix(PREFIX)
            .and_then(|b| STANDARD.decode(b).ok())
            .filter(|b| b.len() > NONCE_LEN)
            .ok_or(VaultError::Undecryptable)?;
        let (nonce, sealed) = blob.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| VaultError::Undecryptable)?;
        let plain = self
            .cipher
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: sealed,
                    aad: account_id.as_bytes(),
                },
            )
            .map_err(|_| VaultError::Undecryptable)?;
        String::from_utf8(plain)
            .map(CrispKey::new)
            .map_err(|_| VaultError::Undecryptable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_is_bound_to_the_account_and_key() {
        let vault = Vault::new(&MasterKey::generate());
        let sealed = vault.seal("acc_1", &CrispKey::new("crisp-secret"));
        assert!(!sealed.contains("crisp-secret"));
        assert_eq!(
            vault
                .open("acc_1", &sealed)
                .map(|k| k.expose().to_owned())
                .ok(),
            Some("crisp-secret".into())
        );
        assert!(
            vault.open("acc_2", &sealed).is_err(),
            "bound to the account id"
        );
        let other = Vault::new(&MasterKey::generate());
        assert!(
            other.open("acc_1", &sealed).is_err(),
            "bound to the master key"
        );
    }

    #[test]
    fn key_file_is_created_once_with_owner_only_permissions() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("master.key");
        let (first, created) = MasterKey::load_or_create(&path).expect("created");
        assert!(created);
        let (again, created) = MasterKey::load_or_create(&path).expect("read");
        assert!(!created);
        assert_eq!(first.to_base64(), again.to_base64());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(matches!(
            MasterKey::from_base64("c2hvcnQ="),
            Err(VaultError::BadMasterKey)
        ));
    }
}
