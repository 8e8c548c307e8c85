//! The door of every module's API: a bearer token with the module's scope
//! for writes (and reads, with `--auth-reads`), and the client's rate limit.
//! Health, metrics and the docs pass untouched.
//!
//! Refusals are problems, with `WWW-Authenticate` as RFC 6750 spells it:
//! 401 with no error code when no token came, `invalid_request` for a
//! malformed header or a token in the URL, `invalid_token` for a token not
//! believed; 403 `insufficient_scope` naming the scope. Every limited
//! response carries `RateLimit-Policy` and `RateLimit`
//! (draft-ietf-httpapi-ratelimit-headers), and a 429 `Retry-After`.

use std::time::Duration;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{HttpResponse, web};
use app_kernel::Problem;
use app_kernel::module::Access;

use crate::security::limit::{Decision, Quota};
use crate::security::{Caller, Guard};

static RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
static RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

pub async fn guard(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let Some(module) = crate::modules::of_path(req.path()) else {
        return Ok(next.call(req).await?.map_into_left_body());
    };
    let guard = req
        .app_data::<web::Data<Guard>>()
        .expect("the guard is registered with the app")
        .clone();
    let access = if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        Access::Read
    } else {
        Access::Write
    };
    let caller = match presented(&req) {
        Ok(Some(token)) => Some(guard.verifier.verify(token).await),
        Ok(None) => None,
        Err(refusal) => {
            auth_failed(refusal.reason);
            return Ok(refuse(req, refusal, None, None));
        }
    };
    let limited = match guard.limiter.quota(access) {
        Some(quota) => {
            let client = match &caller {
                Some(Ok(Caller {
                    subject: Some(subject),
                    ..
                })) => format!("sub:{subject}"),
                _ => match guard
                    .trusted_proxies
                    .client(req.peer_addr().map(|a| a.ip()), req.headers())
                {
                    Some(address) => format!("ip:{address}"),
                    None => "ip:unknown".to_owned(),
                },
            };
            guard
                .limiter
                .decide(access, &client)
                .await
                .map(|decision| (access, quota, decision))
        }
        None => None,
    };
    if let Some((policy, _, decision)) = limited {
        metrics::counter!(
            "app_rate_limit_decisions_total",
            "policy" => policy.as_str(),
            "decision" => if decision.allowed { "allowed" } else { "limited" },
        )
        .increment(1);
    }
    if let Some((_, _, decision)) = limited
        && !decision.allowed
    {
        let wait = whole_seconds(decision.retry_after);
        let refusal = Refusal {
            reason: "rate_limited",
            status: StatusCode::TOO_MANY_REQUESTS,
            challenge: None,
            detail: format!(
                "too many {} requests from this client: try again in {wait} s",
                access.as_str()
            ),
        };
        return Ok(refuse(req, refusal, limited, Some(wait)));
    }
    let scope = module.scope(access);
    let needed = access == Access::Write || guard.auth_reads;
    let refusal = match caller {
        Some(Err(rejected)) => Some(Refusal::bearer(
            "invalid_token",
            StatusCode::UNAUTHORIZED,
            format!(
                "error=\"invalid_token\", error_description=\"{}\"",
                rejected.0
            ),
            format!("the bearer token is not accepted: {}", rejected.0),
        )),
        None if needed => Some(Refusal::bearer(
            "missing",
            StatusCode::UNAUTHORIZED,
            String::new(),
            format!("this operation needs a bearer token with the scope {scope}"),
        )),
        Some(Ok(caller)) if needed && !caller.may(&scope) => Some(Refusal::bearer(
            "insufficient_scope",
            StatusCode::FORBIDDEN,
            format!("error=\"insufficient_scope\", scope=\"{scope}\""),
            format!("the token lacks the scope {scope}, which this operation needs"),
        )),
        _ => None,
    };
    if let Some(refusal) = refusal {
        auth_failed(refusal.reason);
        return Ok(refuse(req, refusal, limited, None));
    }
    let mut response = next.call(req).await?.map_into_left_body();
    if let Some((policy, quota, decision)) = limited {
        describe_limit(response.headers_mut(), policy, quota, decision);
    }
    Ok(response)
}

fn auth_failed(reason: &'static str) {
    metrics::counter!("app_auth_failures_total", "reason" => reason).increment(1);
}

/// Why a request is turned away.
struct Refusal {
    /// For `app_auth_failures_total`.
    reason: &'static str,
    status: StatusCode,
    /// The `WWW-Authenticate` value, for 401 and 403.
    challenge: Option<String>,
    detail: String,
}

impl Refusal {
    fn bearer(reason: &'static str, status: StatusCode, params: String, detail: String) -> Self {
        let challenge = if params.is_empty() {
            "Bearer".to_owned()
        } else {
            format!("Bearer {params}")
        };
        Self {
            reason,
            status,
            challenge: Some(challenge),
            detail,
        }
    }
}

/// The token of the `Authorization: Bearer` header, if one came; a token in
/// the URL or a header of another scheme is refused, never ignored.
fn presented(req: &ServiceRequest) -> Result<Option<&str>, Refusal> {
    let query = req.query_string();
    if query
        .split('&')
        .any(|pair| pair.split('=').next() == Some("access_token"))
    {
        return Err(Refusal::bearer(
            "token_in_url",
            StatusCode::UNAUTHORIZED,
            "error=\"invalid_request\", error_description=\"a token in the URL is refused\""
                .to_owned(),
            "a token in the URL is refused, since URLs end up in logs: send it in the \
             Authorization header"
                .to_owned(),
        ));
    }
    let mut values = req.headers().get_all(header::AUTHORIZATION);
    let Some(value) = values.next() else {
        return Ok(None);
    };
    let malformed = || {
        Refusal::bearer(
            "malformed",
            StatusCode::UNAUTHORIZED,
            "error=\"invalid_request\", error_description=\"expected Authorization: Bearer <token>\""
                .to_owned(),
            "the Authorization header must be `Bearer <token>`, once".to_owned(),
        )
    };
    if values.next().is_some() {
        return Err(malformed());
    }
    let value = value.to_str().map_err(|_| malformed())?;
    let (scheme, token) = value.split_once(' ').ok_or_else(malformed)?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(malformed());
    }
    Ok(Some(token))
}

fn refuse<B>(
    req: ServiceRequest,
    refusal: Refusal,
    limited: Option<(Access, Quota, Decision)>,
    retry_after: Option<u64>,
) -> ServiceResponse<EitherBody<B>> {
    let mut response: HttpResponse = Problem::new(refusal.status, refusal.detail).response();
    let headers = response.headers_mut();
    if let Some(challenge) = refusal.challenge
        && let Ok(value) = HeaderValue::from_str(&challenge)
    {
        headers.insert(header::WWW_AUTHENTICATE, value);
    }
    if let Some((policy, quota, decision)) = limited {
        describe_limit(headers, policy, quota, decision);
    }
    if let Some(wait) = retry_after {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(wait));
    }
    req.into_response(response).map_into_right_body()
}

/// `RateLimit-Policy: "write";q=200;w=2` and `RateLimit: "write";r=150;t=1`.
fn describe_limit(headers: &mut HeaderMap, policy: Access, quota: Quota, decision: Decision) {
    let name = policy.as_str();
    let policy_value = format!(
        "\"{name}\";q={};w={}",
        quota.burst.get(),
        quota.window_seconds()
    );
    let state = format!(
        "\"{name}\";r={};t={}",
        decision.remaining,
        (decision.reset.as_secs_f64().ceil() as u64).min(quota.window_seconds())
    );
    for (header, value) in [(&RATELIMIT_POLICY, policy_value), (&RATELIMIT, state)] {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(header.clone(), value);
        }
    }
}

/// Seconds, rounded up, at least 1.
fn whole_seconds(duration: Duration) -> u64 {
    duration.as_secs_f64().ceil().max(1.0) as u64
}
