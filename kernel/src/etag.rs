//! Entity tags from row versions, and the conditional headers that use them.

use actix_web::HttpRequest;
use actix_web::http::header::{self, EntityTag, Header as _};

use crate::ApiError;

/// The strong entity tag of a row at a version.
pub fn of_version(version: i64) -> EntityTag {
    EntityTag::new_strong(version.to_string())
}

/// `If-Match`, which PUT, PATCH and DELETE honour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IfMatch {
    /// No header: write whatever is there.
    Absent,
    /// `*`: write if the resource exists.
    Any,
    Tags(Vec<EntityTag>),
}

impl IfMatch {
    pub fn from_request(req: &HttpRequest) -> Result<Self, ApiError> {
        if !req.headers().contains_key(header::IF_MATCH) {
            return Ok(Self::Absent);
        }
        match header::IfMatch::parse(req) {
            Ok(header::IfMatch::Any) => Ok(Self::Any),
            Ok(header::IfMatch::Items(tags)) => Ok(Self::Tags(tags)),
            Err(_) => Err(ApiError::BadRequest(
                "If-Match is not a list of entity tags".into(),
            )),
        }
    }

    /// 412 unless the current version satisfies the header (strong comparison).
    pub fn check(&self, version: i64) -> Result<(), ApiError> {
        let current = of_version(version);
        match self {
            Self::Absent | Self::Any => Ok(()),
            Self::Tags(tags) if tags.iter().any(|tag| tag.strong_eq(&current)) => Ok(()),
            Self::Tags(_) => Err(ApiError::PreconditionFailed),
        }
    }

    /// Whether a write that lost a race may simply be tried again.
    pub fn may_retry(&self) -> bool {
        matches!(self, Self::Absent | Self::Any)
    }
}

/// True when `If-None-Match` names the current version (weak comparison), so a
/// GET answers 304. A header that does not parse is ignored, as RFC 9110 allows.
pub fn not_modified(req: &HttpRequest, version: i64) -> bool {
    let current = of_version(version);
    match header::IfNoneMatch::parse(req) {
        Ok(header::IfNoneMatch::Any) => true,
        Ok(header::IfNoneMatch::Items(tags)) => tags.iter().any(|tag| tag.weak_eq(&current)),
        Err(_) => false,
    }
}

/// A response carrying `body` and the ETag of `version`.
pub fn tagged(
    mut response: actix_web::HttpResponseBuilder,
    version: i64,
    body: &impl serde::Serialize,
) -> actix_web::HttpResponse {
    response
        .insert_header(header::ETag(of_version(version)))
        .json(body)
}

/// The 304 answer to a GET whose `If-None-Match` names the current version.
pub fn unchanged(version: i64) -> actix_web::HttpResponse {
    actix_web::HttpResponse::NotModified()
        .insert_header(header::ETag(of_version(version)))
        .finish()
}

/// How often a write that lost a race to another writer is tried again.
const WRITE_ATTEMPTS: usize = 3;

/// Something stored with a version that every write increments.
pub trait Versioned {
    fn version(&self) -> i64;
}

impl IfMatch {
    /// Optimistic concurrency for PUT, PATCH and DELETE: `load` the current
    /// row, check this header against it, then `write`, which must return
    /// `None` when the row is no longer at the version it was given. Lost races
    /// start again, unless the client asked for the version it saw: then 412.
    pub async fn write<T: Versioned, R, E: From<ApiError>>(
        &self,
        load: impl AsyncFn() -> Result<T, E>,
        write: impl AsyncFn(T) -> Result<Option<R>, E>,
    ) -> Result<R, E> {
        for _ in 0..WRITE_ATTEMPTS {
            let current = load().await?;
            self.check(current.version())?;
            if let Some(written) = write(current).await? {
                return Ok(written);
            }
            if !self.may_retry() {
                break;
            }
        }
        Err(ApiError::PreconditionFailed.into())
    }
}
