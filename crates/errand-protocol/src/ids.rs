//! Typed ids with a readable prefix (`task_…`, `att_…`), built on UUIDv7 so that they sort by
//! creation time and a `TaskId` can never be passed where an `AttemptId` is wanted.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An id string that does not have the expected `prefix_<32 hex digits>` form.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("`{input}` is not a valid {kind} id (expected `{prefix}_` followed by 32 hex digits)")]
pub struct IdParseError {
    input: String,
    kind: &'static str,
    prefix: &'static str,
}

macro_rules! typed_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal, $kind:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(uuid::Uuid);

        impl $name {
            /// A new id; ids made later sort after ids made earlier (UUIDv7 carries the time).
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
            type Err = IdParseError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let err = || IdParseError { input: s.to_string(), kind: $kind, prefix: $prefix };
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

        /// In the OpenAPI document: a string with the id's prefix.
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .pattern(Some(concat!("^", $prefix, "_[0-9a-f]{32}$")))
                    .description(Some(concat!("A ", $kind, " id")))
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {}

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

typed_id!(
    /// One task: a prompt against a repository, with one or more attempts.
    TaskId, "task", "task"
);
typed_id!(
    /// One attempt of a task: its own sandbox, conversation and event log.
    AttemptId, "att", "attempt"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_text_and_json() {
        let id = TaskId::new();
        let text = id.to_string();
        assert!(text.starts_with("task_") && text.len() == 37, "{text}");
        assert_eq!(text.parse::<TaskId>().unwrap(), id);
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(serde_json::from_str::<TaskId>(&json).unwrap(), id);
    }

    #[test]
    fn later_ids_sort_after_earlier_ones() {
        let a = AttemptId::new();
        let b = AttemptId::new();
        assert!(a < b);
        assert!(a.to_string() < b.to_string());
    }

    #[test]
    fn rejects_wrong_prefix_and_garbage() {
        let task = TaskId::new().to_string();
        for bad in ["", "task_", "task_xyz", "att_0123", &task.replace("task_", "att_")] {
            let err = bad.parse::<TaskId>().unwrap_err();
            assert!(err.to_string().contains("not a valid task id"), "{err}");
        }
        assert!(task.replace("task_", "att_").parse::<AttemptId>().is_ok());
    }
}
