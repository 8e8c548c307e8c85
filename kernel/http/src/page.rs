//! Keyset pagination: pages ordered by id, and an opaque cursor that names
//! the last id a client has seen.

use base64::Engine as _;
use base64::alphabet::URL_SAFE;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use serde::Serialize;
use utoipa::ToSchema;

use crate::ApiError;

pub const DEFAULT_LIMIT: i64 = 20;
/// What every cursor looks like: eight bytes in unpadded base64url. Every
/// string of this shape is a cursor, so clients can check one before sending.
pub const CURSOR_PATTERN: &str = "^[A-Za-z0-9_-]{11}$";
/// Lenient about the unused low bits of the last character, so that every
/// string matching [`CURSOR_PATTERN`] decodes.
const CURSOR: GeneralPurpose = GeneralPurpose::new(
    &URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::RequireNone)
        .with_decode_allow_trailing_bits(true),
);
pub const MAX_LIMIT: i64 = 100;

/// Which page to read: ids after `after`, at most `limit` of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    pub after: i64,
    pub limit: i64,
}

impl PageRequest {
    /// Checks `limit` and `cursor` as they came in the query string.
    pub fn parse(limit: Option<i64>, cursor: Option<&str>) -> Result<Self, ApiError> {
        let limit = limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(ApiError::BadRequest(format!(
                "limit must be from 1 to {MAX_LIMIT}, not {limit}"
            )));
        }
        let after = cursor.map(decode_cursor).transpose()?.unwrap_or(0);
        Ok(Self { after, limit })
    }

    /// How many rows to fetch: one more than the page, to learn whether another follows.
    pub fn fetch(self) -> i64 {
        self.limit + 1
    }
}

/// One page of a list.
#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T: ToSchema> {
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

impl<T: ToSchema> Page<T> {
    /// The answer to a filter that nothing can match.
    pub fn empty() -> Self {
        Self {
            items: Vec::new(),
            next_cursor: None,
        }
    }

    /// Makes a page from up to `request.fetch()` rows ordered by id.
    pub fn from_rows(mut rows: Vec<T>, request: PageRequest, id: impl Fn(&T) -> i64) -> Self {
        let more = rows.len() as i64 > request.limit;
        rows.truncate(request.limit as usize);
        let next_cursor = more
            .then(|| rows.last().map(|row| encode_cursor(id(row))))
            .flatten();
        Self {
            items: rows,
            next_cursor,
        }
    }
}

fn encode_cursor(after: i64) -> String {
    CURSOR.encode(after.to_be_bytes())
}

fn decode_cursor(cursor: &str) -> Result<i64, ApiError> {
    CURSOR
        .decode(cursor)
        .ok()
        .and_then(|bytes| <[u8; 8]>::try_from(bytes).ok())
        // Ids are positive: a cursor before them all starts at the beginning.
        .map(|bytes| i64::from_be_bytes(bytes).max(0))
        .ok_or_else(|| ApiError::BadRequest("cursor is not one this API issued".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_round_trips() {
        let request = PageRequest::parse(Some(2), Some(&encode_cursor(41))).unwrap();
        assert_eq!(
            request,
            PageRequest {
                after: 41,
                limit: 2
            }
        );
    }

    #[test]
    fn foreign_cursors_and_limits_are_rejected() {
        assert!(PageRequest::parse(None, Some("nope")).is_err());
        assert!(PageRequest::parse(None, Some("")).is_err());
        assert_eq!(PageRequest::parse(None, Some("_____________")).ok(), None);
        assert_eq!(
            PageRequest::parse(None, Some("___________")).unwrap().after,
            0
        );
        assert!(PageRequest::parse(Some(0), None).is_err());
        assert!(PageRequest::parse(Some(101), None).is_err());
    }
}
