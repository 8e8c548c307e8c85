//! The baseline `bench/run` measures `app` against: a bare actix-web handler
//! doing the same single query for `GET /api/v1/laptops/{id}`, with no
//! logging, request ids, ETags or problem documents.
//! Usage: bare BIND DATABASE_URL (sqlite:DIR or postgres://...)

use actix_web::{App, HttpResponse, HttpServer, get, web};
use app_kernel::db::{Db, Storage};

#[derive(serde::Serialize, sqlx::FromRow)]
struct Laptop {
    id: i64,
    title: String,
    model: String,
    version: i64,
    created_at: chrono::DateTime<chrono::Utc>,
    updated_at: chrono::DateTime<chrono::Utc>,
}

#[get("/api/v1/laptops/{id}")]
async fn laptop(db: web::Data<Db>, id: web::Path<i64>) -> HttpResponse {
    let found = match db.get_ref() {
        Db::Sqlite(pool) => {
            sqlx::query_as::<_, Laptop>(
                "select id, title, model, version, created_at, updated_at from laptops where id = ?1",
            )
            .bind(*id)
            .fetch_optional(pool)
            .await
        }
        Db::Postgres(pool) => {
            sqlx::query_as::<_, Laptop>(
                "select id, title, model, version, created_at, updated_at from laptops.laptops where id = $1",
            )
            .bind(*id)
            .fetch_optional(pool)
            .await
        }
    };
    match found {
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
    let db = web::Data::new(storage.open("laptops").await?);
    HttpServer::new(move || App::new().app_data(db.clone()).service(laptop))
        .bind(bind)?
        .run()
        .await?;
    Ok(())
}
