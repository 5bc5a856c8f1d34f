//! The server-side action catalog: which actions exist and how many points each is worth.
//! Points always come from here, never from the client.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::ids::{ActionName, IdError, Points};

/// The example catalog shipped with Scoreboard, used when `ACTION_CATALOG` is not set.
pub const EXAMPLE_CATALOG: &str = include_str!("../../config/actions.example.toml");

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
    /// Not TOML, or not of the shape `[actions] name = points`.
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
    /// Points outside 1 … 1 000 000.
    #[error("action catalog: {name}: {source}")]
    BadPoints {
        /// The action whose points are wrong.
        name: String,
        /// Which rule it broke.
        source: IdError,
    },
    /// An `[actions]` table with nothing in it.
    #[error("action catalog defines no actions")]
    Empty,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogFile {
    actions: BTreeMap<String, i64>,
}

/// Action name → points, as configured by the operator.
///
/// ```
/// let catalog = events::ActionCatalog::from_toml("[actions]\ncomplete_task = 10\n").unwrap();
/// assert_eq!(catalog.points("complete_task").map(|p| p.get()), Some(10));
/// assert!(catalog.points("mine_bitcoin").is_none());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionCatalog(BTreeMap<ActionName, Points>);

impl ActionCatalog {
    /// Reads a catalog from TOML text: one `[actions]` table of `name = points`.
    pub fn from_toml(text: &str) -> Result<Self, CatalogError> {
        let file: CatalogFile = toml::from_str(text).map_err(|e| CatalogError::Syntax(e.to_string()))?;
        let mut actions = BTreeMap::new();
        for (name, points) in file.actions {
            let action = ActionName::parse(name.as_str())
                .map_err(|source| CatalogError::BadName { name: name.clone(), source })?;
            let points = Points::new(points).map_err(|source| CatalogError::BadPoints { name, source })?;
            actions.insert(action, points);
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

    /// The points an action is worth, or `None` if the catalog does not list it.
    pub fn points(&self, action: &str) -> Option<Points> {
        self.0.iter().find(|(name, _)| name.as_str() == action).map(|(_, points)| *points)
    }

    /// Every action with its points, by name.
    pub fn actions(&self) -> impl Iterator<Item = (&ActionName, Points)> {
        self.0.iter().map(|(name, points)| (name, *points))
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
            ("[actions]\ncomplete_task = 0\n", "between 1 and 1000000"),
            ("[actions]\ncomplete_task = 1000001\n", "between 1 and 1000000"),
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
    fn missing_file_names_the_path() {
        let error = ActionCatalog::from_file(Path::new("/nonexistent/actions.toml")).unwrap_err();
        assert!(error.to_string().contains("/nonexistent/actions.toml"));
    }
}
