//! Who may call what, and how often: bearer tokens checked against the
//! configured keys, scopes per module (`ports:write`, `laptops:read`), and
//! rate limits per client. The HTTP side is `crate::http::guard`.

pub mod client;
mod jose;
pub mod jwks;
pub mod limit;
pub mod token;

use std::path::PathBuf;
use std::sync::Arc;

pub use client::TrustedProxies;
pub use limit::{Limiter, Quota};
pub use token::{Caller, DevKey, KeySource, Verifier};

/// The file name of the development key, in the data directory.
pub const DEV_KEY_FILE: &str = "dev-signing-key.pem";

/// How `serve` checks callers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Security {
    pub keys: KeySource,
    /// `iss` a token must carry, when given.
    pub issuer: Option<String>,
    /// `aud` a token must carry, when given.
    pub audience: Option<String>,
    /// Reads need `MODULE:read` too.
    pub auth_reads: bool,
    pub read_limit: Option<Quota>,
    pub write_limit: Option<Quota>,
    /// Buckets shared by every replica, in this Redis.
    pub redis: Option<String>,
    pub trusted_proxies: TrustedProxies,
}

impl Security {
    /// Development keys in `key_file`, writes need a token, no limits.
    pub fn development(key_file: PathBuf) -> Self {
        Self {
            keys: KeySource::Development(key_file),
            issuer: None,
            audience: None,
            auth_reads: false,
            read_limit: None,
            write_limit: None,
            redis: None,
            trusted_proxies: TrustedProxies::default(),
        }
    }

    /// Warns of what keys of an identity provider leave unchecked when
    /// no issuer or audience is given. Without `--jwt-audience`, a token
    /// the provider issued for another service is believed here, which
    /// RFC 8725 §3.9 forbids wherever the provider serves more than this
    /// service; without `--jwt-issuer`, every token that names an issuer
    /// is refused (RFC 8725 §3.8: nothing says the keys are its).
    pub fn warn_of_missing_checks(&self) {
        if matches!(self.keys, KeySource::Development(_)) {
            return;
        }
        if self.audience.is_none() {
            tracing::warn!(
                "no --jwt-audience: any token of the identity provider's that names no audience \
                 (aud) is believed, whichever service it was issued for, and one that names an \
                 audience is refused; give the audience the provider puts in this service's tokens"
            );
        }
        if self.issuer.is_none() {
            tracing::warn!(
                "no --jwt-issuer: tokens that name an issuer (iss) are refused; give the \
                 issuer whose keys these are"
            );
        }
    }
}

/// What the guard middleware consults on every request.
pub struct Guard {
    pub verifier: Verifier,
    pub limiter: Arc<Limiter>,
    pub auth_reads: bool,
    pub trusted_proxies: TrustedProxies,
}

impl Guard {
    pub async fn open(security: &Security) -> anyhow::Result<Self> {
        let verifier = Verifier::open(
            &security.keys,
            security.issuer.clone(),
            security.audience.clone(),
        )
        .await?;
        let limiter = Arc::new(Limiter::new(
            security.read_limit,
            security.write_limit,
            security.redis.as_deref(),
        )?);
        if limiter.is_active() {
            limiter.spawn_upkeep();
        }
        Ok(Self {
            verifier,
            limiter,
            auth_reads: security.auth_reads,
            trusted_proxies: security.trusted_proxies.clone(),
        })
    }
}
