//! Ids of the store's own entities, in the same `prefix_<uuidv7 hex>` form as errand-protocol's
//! `TaskId` and `AttemptId` (sortable by creation time, never confused with each other).
//! They live here until the HTTP API needs them in errand-protocol.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::StoreError;

macro_rules! store_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(uuid::Uuid);

        impl $name {
            pub fn new() -> Self {
                Self(uuid::Uuid::now_v7())
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($prefix, "_{}"), self.0.simple())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(self, f)
            }
        }

        impl FromStr for $name {
            type Err = StoreError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let err = || {
                    StoreError::Invalid(format!(
                        concat!("`{}` is not a valid id (expected `", $prefix, "_` and 32 hex digits)"),
                        s
                    ))
                };
                let hex = s.strip_prefix(concat!($prefix, "_")).ok_or_else(err)?;
                if hex.len() != 32 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(err());
                }
                uuid::Uuid::parse_str(hex).map(Self).map_err(|_| err())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

store_id!(
    /// A person (or a bot) who owns tasks, environments and tokens.
    UserId, "user"
);
store_id!(
    /// A named environment configuration owned by a user.
    EnvironmentId, "env"
);
store_id!(
    /// An API token's public handle (for listing and revoking; never the secret).
    TokenId, "tok"
);
