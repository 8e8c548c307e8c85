//! Entity tags from row versions, and the conditional headers that use them.

use actix_web::HttpRequest;
use actix_web::http::header::{self, EntityTag, Header as _};
use utoipa::IntoParams;

use crate::ApiError;

/// What `If-Match` and `If-None-Match` may hold (RFC 9110 §13.1): `*`, or a
/// list of entity tags, each `"opaque"` or `W/"opaque"`, the opaque part
/// of visible ASCII but `"` and `,`. Every value of this shape is one the
/// server parses: RFC 9110 allows a comma inside a tag and obs-text too,
/// but actix splits the list at every comma, and no tag this API issues
/// holds either.
pub const CONDITION_PATTERN: &str =
    r#"^(\*|(W/)?"[!#-+\--~]*"([ \t]*,[ \t]*(W/)?"[!#-+\--~]*")*)$"#;

/// `If-Match` as the operations that write declare it, so that a generated
/// client has an argument for it and Swagger UI's Try it out sends it.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Header)]
pub struct IfMatchHeader {
    /// The ETag you read: the write happens only while the resource is
    /// still at it, else 412. `*` writes whatever version is there.
    #[param(
        rename = "If-Match",
        nullable = false,
        pattern = r#"^(\*|(W/)?"[!#-+\--~]*"([ \t]*,[ \t]*(W/)?"[!#-+\--~]*")*)$"#
    )]
    pub if_match: Option<String>,
}

/// `If-None-Match` as reads of one resource declare it.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Header)]
pub struct IfNoneMatchHeader {
    /// The ETag you hold: 304 with no body while the resource is still at it.
    #[param(
        rename = "If-None-Match",
        nullable = false,
        pattern = r#"^(\*|(W/)?"[!#-+\--~]*"([ \t]*,[ \t]*(W/)?"[!#-+\--~]*")*)$"#
    )]
    pub if_none_match: Option<String>,
}

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
        // actix drops list members it cannot parse; a header left with
        // none is malformed, not a condition nothing satisfies.
        match header::IfMatch::parse(req) {
            Ok(header::IfMatch::Any) => Ok(Self::Any),
            Ok(header::IfMatch::Items(tags)) if !tags.is_empty() => Ok(Self::Tags(tags)),
            _ => Err(ApiError::BadRequest(
                "If-Match must be * or a list of quoted entity tags, as in \"3\"".into(),
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
}

/// 400 unless `If-None-Match` is absent, `*` or a list of entity tags. A
/// read checks it first, so a malformed condition is refused whatever the
/// read would answer, with `expand` too.
pub fn check_if_none_match(req: &HttpRequest) -> Result<(), ApiError> {
    if !req.headers().contains_key(header::IF_NONE_MATCH) {
        return Ok(());
    }
    // As for If-Match: a header left with no tag actix could parse is malformed.
    match header::IfNoneMatch::parse(req) {
        Ok(header::IfNoneMatch::Any) => Ok(()),
        Ok(header::IfNoneMatch::Items(tags)) if !tags.is_empty() => Ok(()),
        _ => Err(ApiError::BadRequest(
            "If-None-Match must be * or a list of quoted entity tags, as in \"3\"".into(),
        )),
    }
}

/// True when `If-None-Match` names the current version (weak comparison),
/// so a GET answers 304. The header was checked by [`check_if_none_match`].
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
const WRITE_ATTEMPTS: usize = 5;

/// Something stored with a version that every write increments.
pub trait Versioned {
    fn version(&self) -> i64;
}

impl IfMatch {
    /// Optimistic concurrency for PUT, PATCH and DELETE: `load` the current
    /// row, check this header against it, then `write`, which must return
    /// `None` when the row is no longer at the version it was given. A lost
    /// race starts again from `load`, where `If-Match` is checked anew (412
    /// once the client's version is gone); a write that loses every race
    /// answers 409.
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
        }
        Err(ApiError::Conflict(
            "the resource kept changing while it was being written; try again".into(),
        )
        .into())
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    struct Row(i64);

    impl Versioned for Row {
        fn version(&self) -> i64 {
            self.0
        }
    }

    /// A row at `version` that other writers move on `losses` times before ours lands.
    async fn write_against(if_match: IfMatch, losses: i64) -> Result<i64, ApiError> {
        let version = Cell::new(1);
        let lost = Cell::new(0);
        if_match
            .write(
                async || Ok::<_, ApiError>(Row(version.get())),
                async |row: Row| {
                    if lost.get() < losses {
                        lost.set(lost.get() + 1);
                        version.set(version.get() + 1);
                        return Ok(None);
                    }
                    Ok(Some(row.0 + 1))
                },
            )
            .await
    }

    /// A generated client checks a header against the documented pattern
    /// before sending it: every value it lets through must parse here.
    #[test]
    fn every_condition_of_the_documented_shape_parses_and_no_other_is_documented() {
        use actix_web::test::TestRequest;
        use utoipa::IntoParams as _;

        for params in [
            IfMatchHeader::into_params(|| None),
            IfNoneMatchHeader::into_params(|| None),
        ] {
            let documented = serde_json::to_value(&params[0]).unwrap();
            assert_eq!(documented["schema"]["pattern"], CONDITION_PATTERN);
        }
        let pattern = regex::Regex::new(CONDITION_PATTERN).unwrap();
        for value in [
            "*",
            r#""1""#,
            r#"W/"1""#,
            r#""""#,
            r#""1","2""#,
            "\"1\" ,\tW/\"2\"",
            r#""a\b!#~""#,
        ] {
            assert!(pattern.is_match(value), "{value}");
            let req = TestRequest::default()
                .insert_header((header::IF_MATCH, value))
                .insert_header((header::IF_NONE_MATCH, value))
                .to_http_request();
            assert!(IfMatch::from_request(&req).is_ok(), "If-Match: {value}");
            assert!(check_if_none_match(&req).is_ok(), "If-None-Match: {value}");
        }
        for value in [
            "1", r#""1"#, "W/1", r#""a"b""#, r#""a,b""#, "", "**", r#""1",,"#,
        ] {
            assert!(!pattern.is_match(value), "{value}");
        }
    }

    #[tokio::test]
    async fn lost_races_start_again_and_give_up_with_409() {
        assert_eq!(write_against(IfMatch::Absent, 0).await.unwrap(), 2);
        assert_eq!(write_against(IfMatch::Any, 2).await.unwrap(), 4);
        let gave_up = write_against(IfMatch::Absent, WRITE_ATTEMPTS as i64).await;
        assert!(matches!(gave_up, Err(ApiError::Conflict(_))));
    }

    #[tokio::test]
    async fn a_lost_race_answers_412_only_once_no_listed_tag_matches() {
        let first = IfMatch::Tags(vec![of_version(1)]);
        assert!(matches!(
            write_against(first, 1).await,
            Err(ApiError::PreconditionFailed)
        ));
        let either = IfMatch::Tags(vec![of_version(1), of_version(2)]);
        assert_eq!(write_against(either, 1).await.unwrap(), 3);
    }
}
