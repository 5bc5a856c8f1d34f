//! The server-side action catalog: which actions exist and what each is worth. An action is
//! worth fixed points (`complete_task = 10`), or a score the trusted backend reports in the
//! token's `score` claim, within a range set here (`finish_run = { score = { min = 0, max =
//! 1000000 } }`). The worth always comes from here: a client can report a score only where the
//! catalog asks for one, and only within its range.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::ids::{ActionName, IdError, Points};

/// The example catalog shipped with Scoreboard, used when `ACTION_CATALOG` is not set.
pub const EXAMPLE_CATALOG: &str = include_str!("../../config/actions.example.toml");

/// The most fixed points one action may be worth.
pub const FIXED_MAX: u32 = 1_000_000;

/// Why a catalog could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// The file could not be read.
    #[error("cannot read action catalog {path}")]
    Read {
        /// The path that was tried.
        path: String,
        /// What the file system said.
        #[source]
        source: std::io::Error,
    },
    /// Not TOML, or not of the shape `[actions] name = points | { score = { min, max } }`.
    #[error("action catalog is not valid: {0}")]
    Syntax(String),
    /// An action name outside the allowed alphabet.
    #[error("action catalog: {name:?}: {source}")]
    BadName {
        /// The offending name.
        name: String,
        /// Which rule it broke.
        source: IdError,
    },
    /// Fixed points outside 1 … 1 000 000.
    #[error("action catalog: {name}: points must be between 1 and {FIXED_MAX}, got {points}")]
    BadPoints {
        /// The action whose points are wrong.
        name: String,
        /// What was given.
        points: i64,
    },
    /// A reported score's range outside 0 … 1 000 000 000, or with `min` above `max`.
    #[error("action catalog: {name}: a score range needs 0 <= min <= max <= {max}, got {min} … {given_max}", max = Points::MAX)]
    BadRange {
        /// The action whose range is wrong.
        name: String,
        /// The `min` given.
        min: i64,
        /// The `max` given.
        given_max: i64,
    },
    /// An `[actions]` table with nothing in it.
    #[error("action catalog defines no actions")]
    Empty,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogFile {
    actions: BTreeMap<String, Entry>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Entry {
    Points(i64),
    Reported { score: Range },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Range {
    min: i64,
    max: i64,
}

/// What an action is worth.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Worth {
    /// These points, whoever completes it.
    Fixed(Points),
    /// The score the token's `score` claim reports, which must lie in `min ..= max`.
    Reported {
        /// The lowest score accepted.
        min: Points,
        /// The highest score accepted.
        max: Points,
    },
}

impl Worth {
    /// Its description for clients: `{"points": 10}` or `{"score": {"min": 0, "max": 100}}`.
    pub fn to_json(self) -> serde_json::Value {
        match self {
            Self::Fixed(points) => serde_json::json!({ "points": points }),
            Self::Reported { min, max } => serde_json::json!({ "score": { "min": min, "max": max } }),
        }
    }
}

/// Action name → what it is worth, as configured by the operator.
///
/// ```
/// use events::catalog::{ActionCatalog, Worth};
/// let catalog = events::ActionCatalog::from_toml(
///     "[actions]\ncomplete_task = 10\nfinish_run = { score = { min = 0, max = 1000 } }\n",
/// ).unwrap();
/// assert!(matches!(catalog.worth("complete_task"), Some(Worth::Fixed(p)) if p.get() == 10));
/// assert!(matches!(catalog.worth("finish_run"), Some(Worth::Reported { max, .. }) if max.get() == 1000));
/// assert!(catalog.worth("mine_bitcoin").is_none());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionCatalog(BTreeMap<ActionName, Worth>);

impl ActionCatalog {
    /// Reads a catalog from TOML text: one `[actions]` table of `name = points` or
    /// `name = { score = { min = …, max = … } }`.
    pub fn from_toml(text: &str) -> Result<Self, CatalogError> {
        let file: CatalogFile = toml::from_str(text).map_err(|e| CatalogError::Syntax(e.to_string()))?;
        let mut actions = BTreeMap::new();
        for (name, entry) in file.actions {
            let action = ActionName::parse(name.as_str())
                .map_err(|source| CatalogError::BadName { name: name.clone(), source })?;
            let worth = match entry {
                Entry::Points(points) => match Points::new(points) {
                    Ok(fixed) if (1..=FIXED_MAX).contains(&fixed.get()) => Worth::Fixed(fixed),
                    _ => return Err(CatalogError::BadPoints { name, points }),
                },
                Entry::Reported { score: Range { min, max } } => match (Points::new(min), Points::new(max)) {
                    (Ok(low), Ok(high)) if low <= high => Worth::Reported { min: low, max: high },
                    _ => return Err(CatalogError::BadRange { name, min, given_max: max }),
                },
            };
            actions.insert(action, worth);
        }
        if actions.is_empty() {
            return Err(CatalogError::Empty);
        }
        Ok(Self(actions))
    }

    /// Reads the catalog at `path`.
    pub fn from_file(path: &Path) -> Result<Self, CatalogError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| CatalogError::Read { path: path.display().to_string(), source })?;
        Self::from_toml(&text)
    }

    /// The catalog shipped as an example ([`EXAMPLE_CATALOG`]).
    pub fn example() -> Self {
        Self::from_toml(EXAMPLE_CATALOG).expect("the shipped example catalog is valid")
    }

    /// What an action is worth, or `None` if the catalog does not list it.
    pub fn worth(&self, action: &str) -> Option<Worth> {
        self.0.iter().find(|(name, _)| name.as_str() == action).map(|(_, worth)| *worth)
    }

    /// Every action with its worth, by name.
    pub fn actions(&self) -> impl Iterator<Item = (&ActionName, Worth)> {
        self.0.iter().map(|(name, worth)| (name, *worth))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_catalog_is_valid() {
        assert!(ActionCatalog::example().actions().count() > 0);
    }

    #[test]
    fn malformed_catalogs_say_what_is_wrong() {
        let cases = [
            ("not toml = = 1", "not valid"),
            ("[actions]\n", "no actions"),
            ("[actions]\ncomplete_task = 0\n", "between 1 and 1000000, got 0"),
            ("[actions]\ncomplete_task = 1000001\n", "between 1 and 1000000"),
            ("[actions]\nrun = { score = { min = 5, max = 4 } }\n", "0 <= min <= max <= 1000000000, got 5 … 4"),
            ("[actions]\nrun = { score = { min = -1, max = 4 } }\n", "got -1 … 4"),
            ("[actions]\nrun = { score = { min = 0, max = 1000000001 } }\n", "1000000000"),
            ("[actions]\nrun = { score = { min = 0 } }\n", "not valid"),
            ("[actions]\nrun = { points = 5 }\n", "not valid"),
            ("[actions]\nrun = { score = { min = 0, max = 5, step = 1 } }\n", "not valid"),
            ("[actions]\ncomplete_task = \"ten\"\n", "not valid"),
            ("[actions]\n\"has space\" = 5\n", "action name"),
            ("[actions]\nx = 1\n[other]\ny = 2\n", "not valid"),
            ("[rewards]\nx = 1\n", "not valid"),
        ];
        for (text, expected) in cases {
            let error = ActionCatalog::from_toml(text).unwrap_err().to_string();
            assert!(error.contains(expected), "{text:?}: {error}");
        }
    }

    #[test]
    fn an_action_is_worth_fixed_points_or_a_reported_score_in_a_range() {
        let catalog = ActionCatalog::from_toml(
            "[actions]\nwin = 100\nlap = { score = { min = 0, max = 600000 } }\nexact = { score = { min = 7, max = 7 } }\n",
        )
        .unwrap();
        let points = |n| Points::new(n).unwrap();
        assert_eq!(catalog.worth("win"), Some(Worth::Fixed(points(100))));
        assert_eq!(catalog.worth("lap"), Some(Worth::Reported { min: points(0), max: points(600_000) }));
        assert_eq!(catalog.worth("exact"), Some(Worth::Reported { min: points(7), max: points(7) }));
        assert_eq!(catalog.worth("lap").unwrap().to_json(), serde_json::json!({"score": {"min": 0, "max": 600000}}));
        assert_eq!(catalog.worth("win").unwrap().to_json(), serde_json::json!({"points": 100}));
    }

    #[test]
    fn missing_file_names_the_path() {
        let error = ActionCatalog::from_file(Path::new("/nonexistent/actions.toml")).unwrap_err();
        assert!(error.to_string().contains("/nonexistent/actions.toml"));
    }
}
