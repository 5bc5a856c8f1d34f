//! Validated identifiers and values that appear in tokens and events.
//!
//! Each type can only hold a value that passed its check, so code that receives one never
//! validates again.

use std::fmt;

use arcstr::ArcStr;
use serde::{Deserialize, Deserializer, Serialize};

/// Why a value was refused as an identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// A player id is 1–64 characters of `[A-Za-z0-9_.:@-]`.
    #[error("player id must be 1-64 characters of A-Z a-z 0-9 _ . : @ -")]
    PlayerId,
    /// A display name is 1–64 characters PRECIS's Nickname profile allows.
    #[error(
        "display name must be 1-64 visible characters (PRECIS Nickname, RFC 8266), at most 4 combining marks in a row"
    )]
    DisplayName,
    /// An action name is 1–64 characters of `[A-Za-z0-9_.:-]`.
    #[error("action name must be 1-64 characters of A-Z a-z 0-9 _ . : -")]
    ActionName,
    /// A key id is 1–64 characters of `[A-Za-z0-9_.-]`.
    #[error("key id must be 1-64 characters of A-Z a-z 0-9 _ . -")]
    KeyId,
    /// An operator's name is 1–64 characters of `[A-Za-z0-9_.-]`.
    #[error("operator name must be 1-64 characters of A-Z a-z 0-9 _ . -")]
    Operator,
    /// A moderation reason is 1–500 printable characters.
    #[error("reason must be 1-500 printable characters")]
    Reason,
    /// An award's points are a whole number from 0 to 1 000 000 000.
    #[error("points must be between 0 and 1000000000, got {0}")]
    Points(i64),
    /// A board id is 1–64 characters of `[a-z0-9_-]`.
    #[error("board id must be 1-64 characters of a-z 0-9 _ -")]
    BoardId,
}

fn is_ascii_id(s: &str, extra: &[u8]) -> bool {
    (1..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || extra.contains(&b))
}

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident, $check:expr, $err:expr) => {
        $(#[$doc])*
        // Immutable and shared: a clone is a reference count, so a board that keeps an id in
        // several places (and boards that keep the same player) hold its text once; and one
        // pointer wide (the length lives with the text), half of an `Arc<str>`.
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(value_type = String))]
        pub struct $name(ArcStr);

        impl $name {
            /// Checks `value` and wraps it.
            pub fn parse(value: impl Into<String>) -> Result<Self, IdError> {
                let value = value.into();
                let check: fn(&str) -> bool = $check;
                if check(&value) { Ok(Self(value.into())) } else { Err($err) }
            }

            /// The value as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        // Hashes and compares exactly as its `String` does, so maps keyed by it can be
        // searched with a `&str`.
        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let value = String::deserialize(deserializer)?;
                Self::parse(value).map_err(serde::de::Error::custom)
            }
        }

        impl std::str::FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::parse(s)
            }
        }
    };
}

string_id!(
    /// A player's id as the issuer knows it (`sub` of a token), e.g. `alice` or `steam:7656119`.
    PlayerId,
    |s| is_ascii_id(s, b"_.:@-"),
    IdError::PlayerId
);

string_id!(
    /// The name of an action in the catalog (`act` of a token), e.g. `complete_task`.
    ActionName,
    |s| is_ascii_id(s, b"_.:-"),
    IdError::ActionName
);

string_id!(
    /// The id of a signing key (`kid` of a token header), e.g. `k2026-11`.
    KeyId,
    |s| is_ascii_id(s, b"_.-"),
    IdError::KeyId
);

string_id!(
    /// The name a board shows for a player: 1–64 characters that PRECIS's Nickname profile
    /// (RFC 8266, over the FreeformClass of RFC 8264) allows, at most
    /// [`COMBINING_MARKS_MAX`] combining marks in a row (Unicode UTS #39 §5.4).
    ///
    /// So control, format and other invisible characters (bidirectional overrides, zero-width
    /// characters, tags, variation selectors other than an emoji's presentation selector) and
    /// towers of combining marks are refused: a name cannot disguise itself as another on the
    /// board, hide text, or spill over its neighbours.
    DisplayName,
    |s| {
        let count = s.chars().count();
        (1..=64).contains(&count) && !s.trim().is_empty() && is_nickname(s)
    },
    IdError::DisplayName
);

/// The most combining marks a display name may stack on one character (UTS #39 §5.4 suggests
/// four nonspacing marks).
pub const COMBINING_MARKS_MAX: usize = 4;

/// Whether PRECIS's Nickname profile allows `name` (emoji presentation selectors aside) and no
/// run of combining marks is longer than [`COMBINING_MARKS_MAX`].
fn is_nickname(name: &str) -> bool {
    use precis_profiles::precis_core::profile::PrecisFastInvocation as _;
    let mut marks = 0;
    let mut previous = None;
    for c in name.chars() {
        marks = if unicode_normalization::char::is_combining_mark(c) { marks + 1 } else { 0 };
        // A variation selector is allowed after an emoji (a symbol), not after a letter or another selector.
        let presentation = matches!(c, '\u{FE0E}' | '\u{FE0F}');
        if marks > COMBINING_MARKS_MAX
            || presentation
                && !previous.is_some_and(|p: char| !p.is_alphanumeric() && !p.is_whitespace() && !p.is_ascii())
        {
            return false;
        }
        previous = (!presentation).then_some(c);
    }
    let without_selectors: std::borrow::Cow<'_, str> = if name.contains(['\u{FE0E}', '\u{FE0F}']) {
        name.replace(['\u{FE0E}', '\u{FE0F}'], "").into()
    } else {
        name.into()
    };
    precis_profiles::Nickname::prepare(without_selectors).is_ok()
}

string_id!(
    /// The id of a board (a key of `BOARDS`), e.g. `global` or `weekly-quests`.
    BoardId,
    |s| (1..=64).contains(&s.len()) && s.bytes().all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-')),
    IdError::BoardId
);

string_id!(
    /// The name of an operator (from `ADMIN_TOKENS`), recorded on every moderation event.
    Operator,
    |s| is_ascii_id(s, b"_.-"),
    IdError::Operator
);

string_id!(
    /// Why an operator moderated: 1–500 printable characters, kept in the log for auditors.
    Reason,
    |s| {
        let count = s.chars().count();
        (1..=500).contains(&count) && !s.trim().is_empty() && s.chars().all(is_printable)
    },
    IdError::Reason
);

fn is_printable(c: char) -> bool {
    !c.is_control()
        && !matches!(c,
            '\u{200B}'..='\u{200F}' | '\u{2028}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}')
}

/// What one award counts on the boards: 0 … 1 000 000 000. The server-side catalog sets it —
/// fixed points (1 … 1 000 000), or the range a score the trusted backend reports must lie in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(transparent)]
pub struct Points(u32);

impl Points {
    /// The largest award one action may carry.
    pub const MAX: u32 = 1_000_000_000;

    /// Checks that `value` is within 0 … 1 000 000 000.
    pub fn new(value: i64) -> Result<Self, IdError> {
        match u32::try_from(value) {
            Ok(v) if v <= Self::MAX => Ok(Self(v)),
            _ => Err(IdError::Points(value)),
        }
    }

    /// The number of points.
    pub fn get(self) -> u32 {
        self.0
    }
}

impl<'de> Deserialize<'de> for Points {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Self::new(i64::deserialize(deserializer)?).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn player_id_accepts_the_documented_alphabet() {
        for ok in ["alice", "steam:7656119", "a.b@c-d_e", &"x".repeat(64)] {
            assert!(PlayerId::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "has space", "ümlaut", "a/b", "a*b", &"x".repeat(65)] {
            assert_eq!(PlayerId::parse(bad), Err(IdError::PlayerId), "{bad:?}");
        }
    }

    #[test]
    fn display_name_refuses_control_and_invisible_characters() {
        let stacked = |marks: usize| format!("Z{}", "\u{0301}".repeat(marks));
        for ok in
            ["Alice", "Zoë 🎮", "李小龍", &"é".repeat(64), "I \u{2764}\u{FE0F} it", "Ze\u{0301}\u{0308}", &stacked(4)]
        {
            assert!(DisplayName::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "   ",
            "a\nb",
            "a\u{0}b",
            "evil\u{202E}lmth",
            "evil\u{2067}isolate",
            "zero\u{200B}width",
            "soft\u{00AD}hyphen",
            "a\u{E0041}b",
            "a\u{FE0F}",
            "\u{2764}\u{FE0F}\u{FE0F}",
            "a\u{FE01}b",
            "line\u{2028}separator",
            &stacked(5),
            &stacked(63),
            &"é".repeat(65),
        ] {
            assert_eq!(DisplayName::parse(bad), Err(IdError::DisplayName), "{bad:?}");
        }
    }

    #[test]
    fn points_are_bounded() {
        assert_eq!(Points::new(0).map(Points::get), Ok(0));
        assert_eq!(Points::new(1_000_000_000).map(Points::get), Ok(1_000_000_000));
        for bad in [-1, 1_000_000_001, i64::MAX] {
            assert_eq!(Points::new(bad), Err(IdError::Points(bad)));
        }
    }

    #[test]
    fn ids_deserialize_through_their_checks() {
        assert!(serde_json::from_str::<PlayerId>("\"bob\"").is_ok());
        assert!(serde_json::from_str::<PlayerId>("\"b ob\"").is_err());
        assert!(serde_json::from_str::<Points>("-1").is_err());
    }
}
