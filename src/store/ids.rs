//! The ids that travel through the domain, each its own type so one cannot stand for another.
//!
//! Each wraps the `String` it is stored and sent as: serde and sqlx see the bare string, so the
//! columns, the JSON and the wire stay as they are.

use std::borrow::Borrow;
use std::fmt;

use serde::{Deserialize, Serialize};

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize, sqlx::Type)]
        #[serde(transparent)]
        #[sqlx(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn new(id: impl Into<String>) -> Self {
                Self(id.into())
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&self.0, f)
            }
        }

        impl From<String> for $name {
            fn from(id: String) -> Self {
                Self(id)
            }
        }

        impl From<&str> for $name {
            fn from(id: &str) -> Self {
                Self(id.to_owned())
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> Self {
                id.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        // Hashes like the `str` it wraps, so maps keyed by the id can be looked up by `&str`.
        impl Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<String> for $name {
            fn eq(&self, other: &String) -> bool {
                &self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }
    };
}

id_type!(
    /// A workspace's id (`ws_…`).
    WorkspaceId
);
id_type!(
    /// A gateway key's public id, the part of the key before its secret.
    KeyId
);
id_type!(
    /// A linked Crisp account's id.
    AccountId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_read_and_write_as_the_bare_string() {
        let id = WorkspaceId::from("ws_1");
        assert_eq!(serde_json::to_string(&id).expect("json"), "\"ws_1\"");
        assert_eq!(
            serde_json::from_str::<WorkspaceId>("\"ws_1\"").expect("parse"),
            id
        );
        assert_eq!(id.to_string(), "ws_1");
        assert_eq!(format!("{:?}", KeyId::from("k1")), "\"k1\"");
        assert_eq!(AccountId::from("acc_1").as_str(), "acc_1");
    }
}
