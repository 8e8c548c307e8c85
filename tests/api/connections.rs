//! Connections: kept open for the proxies in front, closed at once on
//! SIGTERM, and a bounded pool to PostgreSQL per module.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::process::Stdio;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use sqlx::Connection as _;

use crate::postgres;
use crate::process::{Process, free_port};

const GET: &[u8] = b"GET /health/live HTTP/1.1\r\nHost: app\r\n\r\n";

/// The start of one answer on `stream`, or "" once the server closed it.
fn answer(stream: &mut TcpStream) -> String {
    let mut buffer = [0; 512];
    let read = stream.read(&mut buffer).unwrap();
    String::from_utf8_lossy(&buffer[..read]).into_owned()
}

#[tokio::test]
async fn an_idle_connection_stays_open_and_sigterm_closes_it_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().display());
    let server = Process::start_with(&url, &[], "warn", Stdio::inherit()).await;
    let mut stream = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    stream.write_all(GET).unwrap();
    assert!(answer(&mut stream).starts_with("HTTP/1.1 200"));

    // Longer than actix-web's default of 5 s: a proxy reusing it finds it open.
    std::thread::sleep(Duration::from_secs(6));
    stream.write_all(GET).unwrap();
    assert!(
        answer(&mut stream).starts_with("HTTP/1.1 200"),
        "still open after 6 s idle"
    );

    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let stopping = Instant::now();
    server.terminate();
    assert_eq!(
        answer(&mut stream),
        "",
        "SIGTERM closes the idle connection"
    );
    assert!(server.wait().success());
    // Not the 30 s a connection left open would hold the stop for.
    assert!(
        stopping.elapsed() < Duration::from_secs(10),
        "{:?}",
        stopping.elapsed()
    );
}

#[tokio::test]
async fn a_module_opens_at_most_the_configured_postgres_connections() {
    let database = postgres::shared().fresh_database().await;
    let server = Process::serve(
        free_port(),
        &[
            "--all",
            "--database-url",
            &database,
            "--database-max-connections",
            "2",
        ],
        "error",
        Stdio::inherit(),
    )
    .await;
    // Every read of ports waits on this lock, holding its connection.
    let mut admin = sqlx::PgConnection::connect(&database).await.unwrap();
    let mut lock = admin.begin().await.unwrap();
    sqlx::raw_sql("lock table ports.ports in access exclusive mode")
        .execute(&mut *lock)
        .await
        .unwrap();
    let client = crate::auth::client();
    let reads: Vec<_> = (0..12)
        .map(|_| {
            tokio::spawn(
                client
                    .get(format!("{}/api/v1/ports", server.address))
                    .send(),
            )
        })
        .collect();
    // Long enough for the reads to arrive; short of the 1 s a read waits
    // for a connection before it answers 503.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let mut observer = sqlx::PgConnection::connect(&database).await.unwrap();
    let open: i64 = sqlx::query_scalar(
        "select count(*) from pg_stat_activity \
         where datname = current_database() and application_name = 'app-ports'",
    )
    .fetch_one(&mut observer)
    .await
    .unwrap();
    lock.commit().await.unwrap();
    assert_eq!(open, 2, "12 waiting reads hold the 2 connections allowed");
    for read in join_all(reads).await {
        let status = read.unwrap().unwrap().status();
        // A read that waited over a second for a connection is told to retry.
        assert!(status == 200 || status == 503, "{status}");
    }
}
