//! One module's writers on PostgreSQL run side by side (ADR 17), and no
//! reader pays for it: many writers at once, committing in another order
//! than they began, some rolling back, some held open for a while, while
//! the feed is read over HTTP, the relay publishes to RabbitMQ and a
//! follower consumes it. Each reader gets every committed event once, in
//! the feed's order, and the events of each port in the order they were
//! written.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use app_kernel::broker::Broker;
use app_kernel::db::StoreError;
use app_kernel::event::{CloudEvent, Delivery, Events, Feed, FeedError};
use app_kernel::follow::{Failure, Follower, Ledger, Queue};
use ports_api::events::RENAMED;
use sqlx::Connection as _;

use crate::helpers::{json_at, metric_sum, until};
use crate::process::Process;
use crate::split::create_port;

/// Ports the writers share, so that their writes meet on the same rows.
const PORTS: i64 = 6;
/// Writers at once, and the transactions each runs.
const WRITERS: u64 = 16;
const TRANSACTIONS: u64 = 25;

/// A small, seeded random source: the same run for the same seed.
struct Dice(u64);

impl Dice {
    fn roll(&mut self, sides: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % sides
    }
}

/// How the writers' transactions ended.
#[derive(Default)]
struct Ended {
    committed: AtomicI64,
    rolled_back: AtomicI64,
    held_open: AtomicI64,
}

/// One writer: renames ports through the module's own outbox, each rename
/// a transaction that waits a random while between its write and its end
/// (so transactions commit in another order than they began), and of
/// those, one in six rolls back and one in twenty stays open for a second
/// and a half (while the others go on).
async fn write(url: String, seed: u64, ended: Arc<Ended>) {
    let mut dice = Dice(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    for _ in 0..TRANSACTIONS {
        let id = 1 + dice.roll(PORTS as u64) as i64;
        let name = format!("port {id} by writer {seed} {}", dice.roll(1_000_000));
        let mut tx = conn.begin().await.unwrap();
        let (version, created_at, updated_at): (
            i64,
            chrono::DateTime<chrono::Utc>,
            chrono::DateTime<chrono::Utc>,
        ) = sqlx::query_as(
            "update ports.ports set name = $2, name_key = lower($2), version = version + 1, \
                 updated_at = now() where id = $1 returning version, created_at, updated_at",
        )
        .bind(id)
        .bind(&name)
        .fetch_one(&mut *tx)
        .await
        .unwrap();
        tokio::time::sleep(Duration::from_millis(dice.roll(20))).await;
        let data = ports_api::events::PortData {
            id,
            name,
            version,
            created_at,
            updated_at,
        };
        app_kernel::event::postgres::record(&mut tx, "ports", &RENAMED.event(&data))
            .await
            .unwrap();
        match dice.roll(20) {
            0..=2 => {
                tx.rollback().await.unwrap();
                ended.rolled_back.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            3 => {
                tokio::time::sleep(Duration::from_millis(1500)).await;
                ended.held_open.fetch_add(1, Ordering::Relaxed);
            }
            _ => tokio::time::sleep(Duration::from_millis(dice.roll(10))).await,
        }
        tx.commit().await.unwrap();
        ended.committed.fetch_add(1, Ordering::Relaxed);
    }
}

/// What a reader got: each event's id, port and version, in the order it
/// got them.
type Got = Arc<Mutex<Vec<(String, String, i64)>>>;

fn got(events: &[CloudEvent]) -> Vec<(String, String, i64)> {
    events
        .iter()
        .map(|event| {
            let version = event.data["version"]
                .as_i64()
                .expect("a port event has a version");
            (event.id.clone(), event.subject.clone(), version)
        })
        .collect()
}

/// Ports' feed over HTTP, as a follower in another process reads it.
struct HttpFeed {
    client: reqwest::Client,
    base: String,
}

#[async_trait::async_trait]
impl Feed for HttpFeed {
    fn producer(&self) -> &'static str {
        ports_api::NAME
    }

    async fn read(&self, after: i64, limit: i64) -> Result<Events, FeedError> {
        let url = format!(
            "{}/api/v1/ports/events?after={after}&limit={limit}",
            self.base
        );
        let response = self.client.get(url).send().await?.error_for_status()?;
        Ok(response.json().await?)
    }
}

/// A follower's ledger that keeps, in memory, its place and every event
/// the kernel's follower hands it, twice if it is handed twice.
struct Recorder {
    position: AtomicI64,
    got: Got,
}

#[async_trait::async_trait]
impl Ledger for Recorder {
    async fn position(&self) -> Result<i64, StoreError> {
        Ok(self.position.load(Ordering::Acquire))
    }

    async fn apply(&self, events: &[CloudEvent]) -> Result<(), Failure> {
        self.got.lock().unwrap().extend(got(events));
        if let Some(last) = events.last() {
            self.position.store(last.seq, Ordering::Release);
        }
        Ok(())
    }

    async fn dead_letter(&self, _: &CloudEvent, _: &str, _: u32) -> Result<(), StoreError> {
        unreachable!("recording never fails")
    }

    async fn retries(&self) -> Result<Vec<CloudEvent>, StoreError> {
        Ok(Vec::new())
    }
}

/// Reads the whole feed over HTTP, page after page, until `done` and the
/// feed has no more.
async fn read_feed(client: reqwest::Client, base: String, done: Arc<AtomicBool>, into: Got) {
    let mut after = 0;
    loop {
        let finished = done.load(Ordering::Acquire);
        let page = json_at(
            &client,
            format!("{base}/api/v1/ports/events?after={after}&limit=37"),
        )
        .await;
        let events: Vec<CloudEvent> = serde_json::from_value(page["items"].clone()).unwrap();
        into.lock().unwrap().extend(got(&events));
        match events.last() {
            Some(last) => after = last.seq,
            None if finished => return,
            None => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

#[tokio::test]
async fn writers_run_side_by_side_and_every_reader_gets_each_event_once_in_order() {
    let url = crate::postgres::shared().fresh_database().await;
    let amqp = crate::rabbitmq::shared().fresh_url();
    let server = Process::start_with_env(&url, &[], "warn", &[("APP_BROKER_URL", &amqp)]).await;
    let base = server.address.clone();
    let client = crate::auth::client();
    for id in 1..=PORTS {
        assert_eq!(create_port(&client, &base, &format!("port {id}")).await, id);
    }

    // Readers, from before the first write to after the last.
    let done = Arc::new(AtomicBool::new(false));
    let feed: Got = Arc::default();
    let feed_reader = tokio::spawn(read_feed(
        client.clone(),
        base.clone(),
        done.clone(),
        feed.clone(),
    ));
    let followed: Got = Arc::default();
    let follower = tokio::spawn(
        Follower {
            module: "audit",
            feed: Arc::new(HttpFeed {
                client: client.clone(),
                base: base.clone(),
            }),
            ledger: Recorder {
                position: AtomicI64::new(0),
                got: followed.clone(),
            },
            queue: Queue::Shared(&["port.created", "port.renamed", "port.deleted"]),
            broker: Some(Broker::parse(&amqp).unwrap()),
            delivery: Delivery::default(),
            committed: None,
            interval: Duration::from_millis(100),
            reported: false,
        }
        .run(),
    );

    // The writers: renames through the outbox directly, and new ports
    // through the API meanwhile.
    let ended = Arc::new(Ended::default());
    let writers: Vec<_> = (0..WRITERS)
        .map(|seed| tokio::spawn(write(url.clone(), seed + 1, ended.clone())))
        .collect();
    let mut created = PORTS;
    for n in 0..30 {
        create_port(&client, &base, &format!("new port {n}")).await;
        created += 1;
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    for writer in writers {
        writer.await.unwrap();
    }
    let committed = ended.committed.load(Ordering::Relaxed);
    assert!(
        ended.rolled_back.load(Ordering::Relaxed) > 0,
        "some writes rolled back"
    );
    assert!(
        ended.held_open.load(Ordering::Relaxed) > 0,
        "some were held open"
    );

    // What the feed holds once all is committed, and so what each reader
    // must have got: every event, in the order of the feed.
    let total = created + committed;
    let mut db = sqlx::PgConnection::connect(&url).await.unwrap();
    let truth = async |db: &mut sqlx::PgConnection| -> Vec<(i64, String, String, i64)> {
        sqlx::query_as(
            "select seq, id::text, subject, (data->>'version')::bigint from ports.events \
             where seq is not null order by seq",
        )
        .fetch_all(db)
        .await
        .unwrap()
    };
    done.store(true, Ordering::Release);
    feed_reader.await.unwrap();
    let feed = feed.lock().unwrap().clone();
    assert_eq!(
        feed.len() as i64,
        total,
        "the feed gives every committed event"
    );
    let truth = truth(&mut db).await;
    let seqs: Vec<i64> = truth.iter().map(|row| row.0).collect();
    assert_eq!(
        seqs,
        (1..=total).collect::<Vec<_>>(),
        "seq counts the feed with no gap"
    );
    let order: Vec<(String, String, i64)> = truth
        .into_iter()
        .map(|(_, id, subject, version)| (id, subject, version))
        .collect();
    assert_eq!(
        feed, order,
        "read over HTTP: each once, in the feed's order"
    );

    // Each port's versions, 1 (created) and then one for each committed
    // rename, come in the order they were written.
    let mut versions: HashMap<&str, Vec<i64>> = HashMap::new();
    for (_, subject, version) in &order {
        versions.entry(subject.as_str()).or_default().push(*version);
    }
    for (port, versions) in &versions {
        let written: Vec<i64> = (1..=versions.len() as i64).collect();
        assert_eq!(
            versions, &written,
            "port {port}: its events in the order written"
        );
    }
    assert_eq!(
        versions.values().map(|v| v.len() as i64 - 1).sum::<i64>(),
        committed,
        "every committed rename, none rolled back"
    );

    until(
        "the follower gets every event from the broker",
        async || followed.lock().unwrap().len() as i64 >= total,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    follower.abort();
    assert_eq!(
        *followed.lock().unwrap(),
        order,
        "the follower: each event once, in the feed's order"
    );
    assert_eq!(
        metric_sum(&client, &base, "app_events_published_total").await as i64,
        total,
        "the relay published each event once (laptops publish none here)"
    );
    let received = metric_sum(&client, &base, "app_events_received_total").await;
    assert!(
        received > 0.0,
        "laptops consumed ports' events from the broker too"
    );

    // Laptops, which follow ports too, end with each port's last name.
    until("laptops have every port's last name", async || {
        let (differ,): (i64,) = sqlx::query_as(
            "select count(*) from ports.ports p left join laptops.port_refs r using (id) \
             where r.name is distinct from p.name",
        )
        .fetch_one(&mut db)
        .await
        .unwrap();
        differ == 0
    })
    .await;
}
