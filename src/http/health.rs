//! `/health/live` and `/health/ready`.

use std::time::Duration;

use actix_web::{HttpResponse, web};
use futures_util::future::join_all;
use serde::Serialize;

use crate::modules::Running;

/// How long a readiness check may take before it counts as failed.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

pub fn configure(cfg: &mut web::ServiceConfig, running: Running) {
    cfg.app_data(web::Data::new(running))
        .route("/health/live", web::get().to(live))
        .route("/health/ready", web::get().to(ready));
}

#[derive(Serialize)]
struct Report {
    status: &'static str,
    checks: Vec<Check>,
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
        checks: Vec::new(),
    })
}

/// 200 when every module's database answers and holds its migrations, else 503.
async fn ready(running: web::Data<Running>) -> HttpResponse {
    let checks = join_all(running.databases.iter().map(|(module, db)| async move {
        let migrator = module.migrator(db.backend());
        let outcome = match tokio::time::timeout(CHECK_TIMEOUT, db.check_ready(migrator)).await {
            Ok(outcome) => outcome,
            Err(_) => Err(format!("no answer within {CHECK_TIMEOUT:?}")),
        };
        Check {
            name: format!("{}.database", module.name()),
            status: if outcome.is_ok() { "up" } else { "down" },
            error: outcome.err(),
        }
    }))
    .await;
    let up = checks.iter().all(|check| check.error.is_none());
    let report = Report {
        status: if up { "up" } else { "down" },
        checks,
    };
    if up {
        HttpResponse::Ok().json(report)
    } else {
        HttpResponse::ServiceUnavailable().json(report)
    }
}
