//! The baseline `bench/run` measures `app` against: a bare actix-web handler
//! running the same store query for `GET /api/v1/laptops/{id}` (the laptops
//! module's own store), with no logging, request ids, ETags or problem
//! documents.
//! Usage: bare BIND DATABASE_URL (sqlite:DIR or postgres://...)

use std::sync::Arc;

use actix_web::{App, HttpResponse, HttpServer, get, web};
use app_kernel::db::Storage;
use laptops::store::LaptopStore;

#[get("/api/v1/laptops/{id}")]
async fn laptop(store: web::Data<Arc<dyn LaptopStore>>, id: web::Path<i64>) -> HttpResponse {
    match store.get(*id).await {
        Ok(Some(laptop)) => HttpResponse::Ok().json(laptop),
        Ok(None) => HttpResponse::NotFound().finish(),
        Err(_) => HttpResponse::ServiceUnavailable().finish(),
    }
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
    HttpServer::new(move || App::new().app_data(store.clone()).service(laptop))
        .bind(bind)?
        .run()
        .await?;
    Ok(())
}
