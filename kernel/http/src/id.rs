//! The `{id}` path segment: a positive 64-bit integer, or 400.

use std::future::{Ready, ready};

use actix_web::{FromRequest, HttpRequest, dev::Payload};

use crate::ApiError;

/// A resource id taken from the `{id}` path segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Id(pub i64);

impl FromRequest for Id {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let raw = req.match_info().get("id").unwrap_or_default();
        ready(match raw.parse::<i64>() {
            Ok(id) if id > 0 => Ok(Id(id)),
            _ => Err(ApiError::BadRequest(format!(
                "the id must be a positive 64-bit integer, not {raw:?}"
            ))),
        })
    }
}

/// What an id list in a query string looks like: 1 to 100 positive ids,
/// comma-separated. Every string of this shape parses.
pub const ID_LIST_PATTERN: &str = "^[1-9][0-9]{0,17}(,[1-9][0-9]{0,17}){0,99}$";

/// Parses `name=1,2,3` from a query string: 1 to `max` positive ids.
pub fn parse_list(name: &str, raw: &str, max: usize) -> Result<Vec<i64>, ApiError> {
    let ids: Vec<i64> = raw
        .split(',')
        .map(|id| id.parse::<i64>().ok().filter(|id| *id > 0))
        .collect::<Option<_>>()
        .ok_or_else(|| {
            ApiError::BadRequest(format!(
                "{name} must be positive 64-bit integers separated by commas, not {raw:?}"
            ))
        })?;
    if ids.len() > max {
        return Err(ApiError::BadRequest(format!(
            "{name} may list at most {max} ids, not {}",
            ids.len()
        )));
    }
    Ok(ids)
}
