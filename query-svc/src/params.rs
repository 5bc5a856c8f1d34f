//! The parameters reads share, each bounded once: its type states its range and default, which
//! both the parser and the OpenAPI description read (a query struct's field declares only its
//! name and what it means).

use std::borrow::Cow;

pub use platform::params::Strict;
use serde::de::Error as _;
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
use utoipa::openapi::{RefOr, Schema};

use crate::live::board::MAX_LIMIT;

/// Declares an integer query parameter type within `min..=max`, with an optional default.
macro_rules! bounded {
    ($(#[$meta:meta])* $name:ident: $min:expr, $max:expr, default $default:expr) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub struct $name(u64);

        impl $name {
            /// The least value accepted.
            pub const MIN: u64 = $min;
            /// The greatest value accepted.
            pub const MAX: u64 = $max;
            const DEFAULT: Option<u64> = $default;

            /// The value given.
            pub fn get(self) -> u64 {
                self.0
            }

            /// The value given, or the default (else the least value) when absent.
            pub fn or_default(given: Option<Self>) -> u64 {
                given.map_or(Self::DEFAULT.unwrap_or(Self::MIN), Self::get)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                parse(&Cow::<str>::deserialize(deserializer)?, Self::MIN, Self::MAX).map(Self).map_err(D::Error::custom)
            }
        }

        impl utoipa::PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                schema(Self::MIN, Self::MAX, Self::DEFAULT)
            }
        }

        impl utoipa::ToSchema for $name {}
    };
}

bounded!(
    /// How many entries a page of a board, or each frame of a live stream, shows: 1 … 100,
    /// default 10.
    Limit: 1, MAX_LIMIT as u64, default Some(10)
);
bounded!(
    /// How many entries of a season's results a page shows: 1 … 10 000, default 100 (results
    /// are read whole, to be paid or checked).
    ResultsLimit: 1, 10_000, default Some(100)
);
bounded!(
    /// A version of a season's results: 1 is the first.
    ResultsVersion: 1, i32::MAX as u64, default None
);
bounded!(
    /// How many entries to skip from the top of a board.
    Offset: 0, u32::MAX as u64, default Some(0)
);
bounded!(
    /// A position in the log (`0`: before any event).
    Position: 0, i64::MAX as u64, default None
);
bounded!(
    /// Where a page of the log starts: after this position, or tree size (`0`: from the first).
    After: 0, i64::MAX as u64, default Some(0)
);
bounded!(
    /// A size of the log's Merkle tree.
    TreeSize: 1, i64::MAX as u64, default None
);
bounded!(
    /// How many players above and below to show.
    Radius: 0, 50, default Some(5)
);
bounded!(
    /// How many events or checkpoints a page of the log holds: 1 … 1000, default 100.
    PageSize: 1, 1000, default Some(100)
);
/// Players by id, comma-separated: a board of friends (1 … 100 ids).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Players(Vec<events::PlayerId>);

impl Players {
    /// The most ids one request may name.
    pub const MAX: usize = 100;

    /// The ids given, in the order given.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(events::PlayerId::as_str)
    }
}

impl<'de> serde::Deserialize<'de> for Players {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = Cow::<str>::deserialize(deserializer)?;
        let ids: Vec<&str> = text.split(',').collect();
        if ids.len() > Self::MAX {
            return Err(D::Error::custom(format!("names at most {} players, got {}", Self::MAX, ids.len())));
        }
        let parse = |id: &&str| events::PlayerId::parse(*id).map_err(|e| D::Error::custom(format!("{id:?}: {e}")));
        Ok(Self(ids.iter().map(parse).collect::<Result<_, _>>()?))
    }
}

impl utoipa::PartialSchema for Players {
    fn schema() -> RefOr<Schema> {
        let id = "[A-Za-z0-9_.:@-]{1,64}";
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(format!("^{id}(,{id}){{0,{}}}$", Self::MAX - 1)))
            .examples([serde_json::json!("alice,bob,steam:7656119")])
            .into()
    }
}

impl utoipa::ToSchema for Players {}

fn parse(text: &str, min: u64, max: u64) -> Result<u64, String> {
    match text.parse::<u64>() {
        Ok(value) if (min..=max).contains(&value) => Ok(value),
        _ => Err(format!("must be an integer from {min} to {max}, got {text:?}")),
    }
}

fn schema(min: u64, max: u64, default: Option<u64>) -> RefOr<Schema> {
    let format = if max <= i32::MAX as u64 { KnownFormat::Int32 } else { KnownFormat::Int64 };
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .format(Some(SchemaFormat::KnownFormat(format)))
        .minimum(Some(min))
        .maximum(Some(max))
        .default(default.map(Into::into))
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_parameter_is_read_within_its_range_and_described_with_it() {
        let read = |text: &str| serde_json::from_value::<Limit>(serde_json::Value::String(text.into()));
        assert_eq!(read("1").unwrap().get(), 1);
        assert_eq!(read("100").unwrap().get(), 100);
        for bad in ["0", "101", "-1", "ten", "", "1.5"] {
            assert!(read(bad).unwrap_err().to_string().contains("must be an integer from 1 to 100"), "{bad:?}");
        }
        let described = serde_json::to_value(<Limit as utoipa::PartialSchema>::schema()).unwrap();
        assert_eq!(
            described,
            serde_json::json!({"type": "integer", "format": "int32", "minimum": 1, "maximum": 100, "default": 10})
        );
        let position = serde_json::to_value(<Position as utoipa::PartialSchema>::schema()).unwrap();
        assert_eq!(position["format"], "int64");
        assert_eq!(position["maximum"], i64::MAX);
        assert!(position.get("default").is_none());
    }

    #[test]
    fn players_are_up_to_a_hundred_valid_ids() {
        let read = |text: &str| serde_json::from_value::<Players>(serde_json::Value::String(text.into()));
        assert_eq!(read("alice,bob,alice").unwrap().ids().collect::<Vec<_>>(), ["alice", "bob", "alice"]);
        let hundred = (0..100).map(|i| format!("p{i}")).collect::<Vec<_>>().join(",");
        assert_eq!(read(&hundred).unwrap().ids().count(), 100);
        let error = read(&format!("{hundred},p100")).unwrap_err().to_string();
        assert!(error.contains("at most 100 players, got 101"), "{error}");
        for bad in ["", "alice,", "a b", "alice,,bob"] {
            assert!(read(bad).unwrap_err().to_string().contains("player id"), "{bad:?}");
        }
    }
}
