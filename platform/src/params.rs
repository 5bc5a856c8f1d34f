//! Query strings read strictly: into a struct that names every parameter an endpoint takes.

use axum::extract::{FromRequestParts, Query};
use axum::http::request::Parts;

use crate::Problem;

/// The query string of a request as `T`, a struct with `#[serde(deny_unknown_fields)]`, so that
/// an unknown, misspelt or repeated parameter is a `400 invalid_request` naming it, never a
/// silent default.
pub struct Strict<T>(pub T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Strict<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(query)) => Ok(Self(query)),
            Err(rejection) => Err(Problem::invalid_request(rejection.body_text())),
        }
    }
}

/// The parameters of an endpoint that takes none.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoParameters {}
