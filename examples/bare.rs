//! The baseline `bench/run` measures `app` against: a bare actix-web handler
//! running the same store query for `GET /api/v1/laptops/{id}` (the laptops
//! module's own store), with no logging, request ids, ETags or problem
//! documents. `GET /json` is the floor `bench/cache` measures the app's cached
//! reads against: a fixed laptop serialized per request, with no database.
//! Usage: bare BIND DATABASE_URL (sqlite:DIR or postgres://...)

use std::sync::Arc;

use actix_web::{App, HttpResponse, HttpServer, get, web};
use app_kernel::db::Storage;
use laptops::store::LaptopStore;
use serde::Serialize;

#[get("/api/v1/laptops/{id}")]
async fn laptop(store: web::Data<Arc<dyn LaptopStore>>, id: web::Path<i64>) -> HttpResponse {
    match store.get(*id).await {
        Ok(Some(laptop)) => HttpResponse::Ok().json(laptop),
        Ok(None) => HttpResponse::NotFound().finish(),
        Err(_) => HttpResponse::ServiceUnavailable().finish(),
    }
}

/// A laptop as the API writes it, fixed: what `GET /json` serializes.
#[derive(Serialize)]
struct FixedLaptop {
    id: i64,
    title: &'static str,
    model: &'static str,
    port_ids: Vec<i64>,
    created_at: &'static str,
    updated_at: &'static str,
}

/// The bare actix-web JSON handler: no database, no cache, nothing shared.
#[get("/json")]
async fn json() -> HttpResponse {
    HttpResponse::Ok().json(FixedLaptop {
        id: 1,
        title: "Lenovo",
        model: "ThinkPad X1",
        port_ids: Vec::new(),
        created_at: "2026-01-01T00:00:00.000Z",
        updated_at: "2026-01-01T00:00:00.000Z",
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let bind = args.next().unwrap_or_else(|| "127.0.0.1:8090".into());
    let storage: Storage = args
        .next()
        .unwrap_or_else(|| "sqlite:./data".into())
        .parse()
        .map_err(anyhow::Error::msg)?;
    let store = web::Data::new(laptops::store::open(storage.open("laptops").await?));
    HttpServer::new(move || {
        App::new()
            .app_data(store.clone())
            .service(laptop)
            .service(json)
    })
    .bind(bind)?
    .run()
    .await?;
    Ok(())
}
