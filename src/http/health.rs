//! `/health/live` and `/health/ready`.

use std::sync::Arc;
use std::time::Duration;

use actix_web::{HttpResponse, web};
use app_kernel::versions::{self, Heard};
use futures_util::future::join_all;
use serde::Serialize;

use crate::modules::{Link, Running};
use crate::security::Limiter;
use crate::security::limit::Store;

/// How long a readiness check may take before it counts as failed.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

pub fn configure(cfg: &mut web::ServiceConfig, running: Running, limiter: Arc<Limiter>) {
    cfg.app_data(web::Data::new(running))
        .app_data(web::Data::from(limiter))
        .route("/health/live", web::get().to(live))
        .route("/health/ready", web::get().to(ready));
}

#[derive(Serialize)]
struct Report {
    status: &'static str,
    /// This process's version.
    version: &'static str,
    checks: Vec<Check>,
    /// The modules this process depends on, for information: readiness
    /// depends only on this process's own databases.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    peers: Vec<PeerState>,
    /// Where rate limits are counted, when there are any: for
    /// information, since limiting from memory still serves.
    #[serde(skip_serializing_if = "Option::is_none")]
    rate_limits: Option<Store>,
    /// Which release came before this version, if one did.
    #[serde(skip_serializing_if = "Option::is_none")]
    last_release: Option<&'static str>,
    /// The versions of other modules heard lately: of their calls and of
    /// the events they published.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    heard: Vec<Heard>,
}

#[derive(Serialize)]
struct PeerState {
    name: &'static str,
    /// `in-process`, `http` or `none`.
    via: &'static str,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<String>,
    /// The circuit breaker of calls to it: `closed`, `open` or `half-open`.
    #[serde(skip_serializing_if = "Option::is_none")]
    circuit: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

#[derive(Serialize)]
struct Check {
    name: String,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

async fn live() -> HttpResponse {
    HttpResponse::Ok().json(Report {
        status: "up",
        version: versions::VERSION,
        checks: Vec::new(),
        peers: Vec::new(),
        rate_limits: None,
        last_release: None,
        heard: Vec::new(),
    })
}

/// 200 when every module's database answers and holds its migrations, else 503.
async fn ready(running: web::Data<Running>, limiter: web::Data<Limiter>) -> HttpResponse {
    let checks = join_all(running.databases.iter().map(|(module, db)| async move {
        let migrator = (module.migrations)(db.backend());
        let outcome = match tokio::time::timeout(CHECK_TIMEOUT, db.check_ready(migrator)).await {
            Ok(outcome) => outcome,
            Err(_) => Err(format!("no answer within {CHECK_TIMEOUT:?}")),
        };
        Check {
            name: format!("{}.database", module.name),
            status: if outcome.is_ok() { "up" } else { "down" },
            error: outcome.err(),
        }
    }))
    .await;
    let peers = running.links.iter().map(peer_state).collect();
    let up = checks.iter().all(|check| check.error.is_none());
    let report = Report {
        status: if up { "up" } else { "down" },
        version: versions::VERSION,
        checks,
        peers,
        rate_limits: limiter.is_active().then(|| limiter.store()),
        last_release: versions::LAST_RELEASE,
        heard: versions::heard_lately(),
    };
    if up {
        HttpResponse::Ok().json(report)
    } else {
        HttpResponse::ServiceUnavailable().json(report)
    }
}

/// What this process last saw of each module it depends on. Never a call
/// of its own: a hung peer must not slow readiness down.
fn peer_state(link: &Link) -> PeerState {
    match link {
        Link::InProcess(name) => PeerState {
            name,
            via: "in-process",
            status: "up",
            url: None,
            circuit: None,
            error: None,
        },
        Link::Remote(peer) => {
            let failure = peer.last_failure();
            let circuit = peer.circuit();
            PeerState {
                name: peer.name(),
                via: "http",
                status: if failure.is_none() && circuit == "closed" {
                    "up"
                } else {
                    "down"
                },
                url: Some(peer.url().to_owned()),
                circuit: Some(circuit),
                error: failure,
            }
        }
        Link::Missing { name, hint } => PeerState {
            name,
            via: "none",
            status: "down",
            url: None,
            circuit: None,
            error: Some(format!("not served here and no peer is configured: {hint}")),
        },
    }
}
