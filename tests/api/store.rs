//! One conformance suite for each module's store, run against both backends:
//! the SQLite and PostgreSQL implementations must behave alike.

use app::modules::Module;
use app_kernel::db::{Backend, Db, StoreError};
use app_kernel::page::PageRequest;

use crate::helpers::fresh_storage;

async fn open(backend: Backend, module: &Module) -> (Db, Option<tempfile::TempDir>) {
    let (url, dir) = fresh_storage(backend).await;
    let storage: app_kernel::db::Storage = url.parse().unwrap();
    let db = storage.open(module.name).await.unwrap();
    db.migrate((module.migrations)(backend)).await.unwrap();
    (db, dir)
}

fn page(after: i64, limit: i64) -> PageRequest {
    PageRequest { after, limit }
}

async fn port_store_conforms(backend: Backend) {
    use ports::NewPort;
    use ports::store::Filter;
    let (db, _dir) = open(backend, &ports::MODULE).await;
    let store = ports::store::open(db);
    let new = |name: &str| NewPort { name: name.into() };

    let usb = store.insert(&new("USB-C")).await.unwrap();
    let hdmi = store.insert(&new("HDMI")).await.unwrap();
    assert_eq!((usb.version, usb.created_at), (1, usb.updated_at));
    assert!(hdmi.id > usb.id);
    assert!(matches!(
        store.insert(&new("usb-c")).await,
        Err(StoreError::Unique(_))
    ));

    assert_eq!(store.get(usb.id).await.unwrap(), Some(usb.clone()));
    assert_eq!(store.get(hdmi.id + 100).await.unwrap(), None);

    let all = Filter::default();
    assert_eq!(
        store.list(&all, page(0, 10)).await.unwrap(),
        [usb.clone(), hdmi.clone()]
    );
    assert_eq!(
        store.list(&all, page(usb.id, 10)).await.unwrap(),
        vec![hdmi.clone()]
    );
    assert_eq!(
        store.list(&all, page(0, 1)).await.unwrap().len(),
        2,
        "fetches one more than the page"
    );
    let by_name = Filter {
        name_key: Some("hdmi".into()),
        ids: None,
    };
    assert_eq!(
        store.list(&by_name, page(0, 10)).await.unwrap(),
        vec![hdmi.clone()]
    );
    let by_ids = Filter {
        name_key: None,
        ids: Some(vec![hdmi.id, hdmi.id + 100]),
    };
    assert_eq!(
        store.list(&by_ids, page(0, 10)).await.unwrap(),
        vec![hdmi.clone()]
    );

    assert_eq!(
        store.update(usb.id, 7, &new("USB4")).await.unwrap(),
        None,
        "wrong version"
    );
    let renamed = store
        .update(usb.id, 1, &new("USB4"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((renamed.name.as_str(), renamed.version), ("USB4", 2));
    assert!(renamed.updated_at >= renamed.created_at);
    assert!(matches!(
        store.update(usb.id, 2, &new("Hdmi")).await,
        Err(StoreError::Unique(_))
    ));

    assert!(!store.delete(hdmi.id, 2).await.unwrap(), "wrong version");
    assert!(store.delete(hdmi.id, 1).await.unwrap());
    assert_eq!(store.get(hdmi.id).await.unwrap(), None);
    let again = store.insert(&new("HDMI")).await.unwrap();
    assert!(again.id > hdmi.id, "ids are never reused");
    assert!(store.delete(again.id, 1).await.unwrap());

    // Every write that changed something, and only those, left its event.
    let events = store.events(0, 100).await.unwrap();
    assert_eq!(
        changes(&events),
        [
            ("port.created", usb.id, 1),
            ("port.created", hdmi.id, 1),
            ("port.renamed", usb.id, 2),
            ("port.deleted", hdmi.id, 1),
            ("port.created", again.id, 1),
            ("port.deleted", again.id, 1),
        ]
        .map(|(kind, id, version)| (kind.to_owned(), id.to_string(), version))
    );
    let renamed_event = &events.items[2];
    assert_eq!(
        (
            renamed_event.specversion.as_str(),
            renamed_event.source.as_str(),
            renamed_event.datacontenttype.as_str(),
            &renamed_event.data["name"],
            renamed_event.traceparent.as_deref(),
        ),
        (
            "1.0",
            "/api/v1/ports",
            "application/json",
            &serde_json::json!("USB4"),
            None
        )
    );
    assert_feed_pages(&events, |after, limit| store.events(after, limit)).await;
}

/// Each event as (type, subject, the version in its data).
fn changes(events: &app_kernel::event::Events) -> Vec<(String, String, i64)> {
    events
        .items
        .iter()
        .map(|event| {
            let version = event.data["version"]
                .as_i64()
                .expect("every event has a version");
            (event.kind.clone(), event.subject.clone(), version)
        })
        .collect()
}

/// `all` is the whole feed: its events have distinct ids and increasing
/// seqs, and reading it a page at a time gives the same events.
async fn assert_feed_pages<F, Fut>(all: &app_kernel::event::Events, read: F)
where
    F: Fn(i64, i64) -> Fut,
    Fut: std::future::Future<Output = Result<app_kernel::event::Events, StoreError>>,
{
    let ids: std::collections::HashSet<&str> = all.items.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids.len(), all.items.len(), "event ids are unique");
    assert!(all.items.windows(2).all(|w| w[0].seq < w[1].seq));
    assert_eq!(all.remaining, all.items.len() as i64);
    let mut after = 0;
    let mut paged = Vec::new();
    loop {
        let page = read(after, 2).await.unwrap();
        assert_eq!(page.remaining, (all.items.len() - paged.len()) as i64);
        let Some(last) = page.items.last() else { break };
        after = last.seq;
        paged.extend(page.items);
    }
    assert_eq!(paged, all.items);
}

async fn laptop_store_conforms(backend: Backend) {
    use laptops::NewLaptop;
    use laptops::store::Filter;
    let (db, _dir) = open(backend, &laptops::MODULE).await;
    let store = laptops::store::open(db.clone());
    let new = |title: &str, model: &str| NewLaptop {
        title: title.into(),
        model: model.into(),
        port_ids: Vec::new(),
    };
    let with_ports = |title: &str, port_ids: &[i64]| NewLaptop {
        port_ids: port_ids.to_vec(),
        ..new(title, "with ports")
    };

    let xps = store.insert(&new("Dell", "XPS 13")).await.unwrap();
    let air = store.insert(&new("Apple", "MacBook Air")).await.unwrap();
    let same = store.insert(&new("DELL", "XPS 13")).await.unwrap();
    assert_eq!(xps.port_ids, [] as [i64; 0]);

    assert_eq!(store.get(air.id).await.unwrap(), Some(air.clone()));
    let dell = Filter {
        title_key: Some("dell".into()),
        port_id: None,
    };
    assert_eq!(
        store.list(&dell, page(0, 10)).await.unwrap(),
        [xps.clone(), same.clone()]
    );
    assert_eq!(
        store.list(&dell, page(xps.id, 10)).await.unwrap(),
        vec![same.clone()]
    );
    assert_eq!(
        store
            .list(&Filter::default(), page(0, 10))
            .await
            .unwrap()
            .len(),
        3
    );

    let changed = store
        .update(air.id, 1, &new("Apple", "MacBook Pro"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (changed.model.as_str(), changed.version),
        ("MacBook Pro", 2)
    );
    assert_eq!(
        store
            .update(air.id, 1, &new("Apple", "iBook"))
            .await
            .unwrap(),
        None
    );
    assert!(store.delete(air.id, 2).await.unwrap());
    assert_eq!(store.get(air.id).await.unwrap(), None);

    // Port ids keep the order they were written in.
    let a = store.insert(&with_ports("A", &[30, 10, 20])).await.unwrap();
    let b = store.insert(&with_ports("B", &[20])).await.unwrap();
    assert_eq!(a.port_ids, [30, 10, 20]);
    assert_eq!(
        store.get(a.id).await.unwrap().unwrap().port_ids,
        [30, 10, 20]
    );
    let by_port = |port_id| Filter {
        title_key: None,
        port_id: Some(port_id),
    };
    let ids = |laptops: Vec<laptops::Laptop>| laptops.iter().map(|l| l.id).collect::<Vec<_>>();
    assert_eq!(
        ids(store.list(&by_port(20), page(0, 10)).await.unwrap()),
        [a.id, b.id]
    );
    assert_eq!(
        ids(store.list(&by_port(30), page(0, 10)).await.unwrap()),
        [a.id]
    );
    assert_eq!(
        ids(store.list(&by_port(99), page(0, 10)).await.unwrap()),
        [] as [i64; 0]
    );
    let a = store
        .update(a.id, 1, &with_ports("A", &[20, 40]))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(a.port_ids, [20, 40]);
    assert_eq!(
        ids(store.list(&by_port(30), page(0, 10)).await.unwrap()),
        [] as [i64; 0]
    );

    // Ports' events, through laptops' record of them: a port's name is
    // kept at its newest version; a deleted port leaves every laptop, each
    // a new version; each event is applied once, with the feed's position.
    use app_kernel::event::{CloudEvent, Deleted};
    use app_kernel::follow::{Applied, Ledger as _};
    use ports_api::events::{CREATED, DELETED, PortData, RENAMED};
    let inbox = laptops::follow::store_inbox(db.clone());
    let refs = |mut ports: Vec<ports_api::PortRef>| {
        ports.sort_by_key(|port| port.id);
        ports
            .into_iter()
            .map(|port| (port.id, port.name))
            .collect::<Vec<_>>()
    };
    let at: chrono::DateTime<chrono::Utc> = "2026-12-01T00:00:00Z".parse().unwrap();
    let port = |id, name: &str, version| PortData {
        id,
        name: name.into(),
        version,
        created_at: at,
        updated_at: at,
    };
    // Event `n`, at `seq` in ports' feed.
    let event = |n: u128, seq: i64, recorded: app_kernel::event::Event| CloudEvent {
        specversion: "1.0".into(),
        id: uuid::Uuid::from_u128(n).to_string(),
        source: ports_api::PATH.into(),
        kind: recorded.kind.into(),
        subject: recorded.subject,
        time: at,
        datacontenttype: "application/json".into(),
        data: recorded.data,
        traceparent: None,
        seq,
        producerversion: None,
    };
    let apply = async |event: &CloudEvent| {
        let mut applied = inbox.apply_all(std::slice::from_ref(event)).await.unwrap();
        assert_eq!(applied.len(), 1);
        applied.remove(0)
    };
    assert_eq!(inbox.position().await.unwrap(), 0);
    let usb = event(1, 1, CREATED.event(&port(20, "USB-C", 1)));
    assert_eq!(apply(&usb).await, Applied::Now(0));
    let hdmi = event(2, 2, CREATED.event(&port(40, "HDMI", 1)));
    assert_eq!(apply(&hdmi).await, Applied::Now(0));
    let renamed = event(3, 3, RENAMED.event(&port(20, "USB4", 2)));
    assert_eq!(apply(&renamed).await, Applied::Now(0));
    assert_eq!(
        apply(&usb).await,
        Applied::Before,
        "an event applied before changes nothing"
    );
    assert_eq!(
        refs(store.port_refs(&[20, 40, 99]).await.unwrap()),
        [(20, "USB4".to_owned()), (40, "HDMI".to_owned())]
    );
    let older = event(4, 4, RENAMED.event(&port(20, "USB 3", 1)));
    assert_eq!(apply(&older).await, Applied::Now(0));
    assert_eq!(
        refs(store.port_refs(&[20]).await.unwrap()),
        [(20, "USB4".to_owned())],
        "an older version never replaces a newer one"
    );
    let unused = CloudEvent {
        kind: "port.audited".into(),
        ..event(5, 5, RENAMED.event(&port(20, "USB4", 2)))
    };
    assert_eq!(apply(&unused).await, Applied::Unused);
    assert_eq!(
        inbox.position().await.unwrap(),
        5,
        "unused events are read too"
    );

    let deleted = event(6, 6, DELETED.event(&Deleted { id: 20, version: 3 }));
    assert_eq!(apply(&deleted).await, Applied::Now(2));
    let a = store.get(a.id).await.unwrap().unwrap();
    let b = store.get(b.id).await.unwrap().unwrap();
    assert_eq!((a.port_ids, a.version), (vec![40], 3));
    assert_eq!((b.port_ids, b.version), (vec![], 2));
    assert_eq!(
        refs(store.port_refs(&[20, 40]).await.unwrap()),
        [(40, "HDMI".to_owned())]
    );
    assert_eq!(inbox.position().await.unwrap(), 6);
    assert_eq!(
        apply(&deleted).await,
        Applied::Before,
        "a deletion delivered again changes nothing"
    );
    let again = event(7, 3, DELETED.event(&Deleted { id: 20, version: 3 }));
    assert_eq!(
        apply(&again).await,
        Applied::Now(0),
        "a port no laptop lists any more changes none"
    );
    assert_eq!(
        inbox.position().await.unwrap(),
        6,
        "the position never goes back"
    );
    // A page at once: one transaction, each event once.
    let vga = event(8, 8, CREATED.event(&port(50, "VGA", 1)));
    assert_eq!(
        inbox.apply_all(&[vga, usb.clone()]).await.unwrap(),
        [Applied::Now(0), Applied::Before]
    );
    assert_eq!(inbox.position().await.unwrap(), 8);
    assert_eq!(
        refs(store.port_refs(&[50]).await.unwrap()),
        [(50, "VGA".to_owned())]
    );

    // Dead letters: kept apart, the position moved past; applied at last
    // (even by another replica first), they leave the list.
    let dead_event = CloudEvent {
        data: serde_json::json!({"id": 50}),
        ..event(9, 9, RENAMED.event(&port(50, "VGA", 2)))
    };
    inbox.dead_letter(&dead_event, "no name", 5).await.unwrap();
    assert_eq!(inbox.position().await.unwrap(), 9);
    let dead = app_kernel::event::dead::list(&db, "laptops").await.unwrap();
    assert_eq!(
        dead.iter()
            .map(|d| (d.feed.as_str(), d.event.id.as_str(), d.attempts, d.retry))
            .collect::<Vec<_>>(),
        [("ports", dead_event.id.as_str(), 5, false)]
    );
    assert!(inbox.retries().await.unwrap().is_empty(), "until asked for");
    assert!(
        app_kernel::event::dead::retry(&db, "laptops", &dead_event.id)
            .await
            .unwrap()
    );
    assert_eq!(
        inbox.retries().await.unwrap(),
        std::slice::from_ref(&dead_event)
    );
    let mended = event(9, 9, RENAMED.event(&port(50, "VGA 2", 2)));
    assert_eq!(apply(&mended).await, Applied::Now(0));
    assert!(
        app_kernel::event::dead::list(&db, "laptops")
            .await
            .unwrap()
            .is_empty()
    );
    inbox.dead_letter(&dead_event, "late", 1).await.unwrap();
    assert_eq!(apply(&mended).await, Applied::Before);
    assert!(
        app_kernel::event::dead::list(&db, "laptops")
            .await
            .unwrap()
            .is_empty(),
        "an event applied before leaves the dead letters too"
    );

    // Deleting a laptop takes its ports with it.
    assert!(store.delete(a.id, 3).await.unwrap());
    assert_eq!(
        ids(store.list(&by_port(40), page(0, 10)).await.unwrap()),
        [] as [i64; 0]
    );

    // Every write that changed something, and only those, left its event;
    // the port's removal, one for each laptop it changed.
    let events = store.events(0, 100).await.unwrap();
    let mut got = changes(&events);
    let expected = [
        ("laptop.created", xps.id, 1),
        ("laptop.created", air.id, 1),
        ("laptop.created", same.id, 1),
        ("laptop.updated", air.id, 2),
        ("laptop.deleted", air.id, 2),
        ("laptop.created", a.id, 1),
        ("laptop.created", b.id, 1),
        ("laptop.updated", a.id, 2),
        ("laptop.updated", a.id, 3),
        ("laptop.updated", b.id, 2),
        ("laptop.deleted", a.id, 3),
    ]
    .map(|(kind, id, version)| (kind.to_owned(), id.to_string(), version));
    assert_eq!(got.len(), expected.len(), "{got:?}");
    // One removal's events come in no particular order among themselves.
    got[8..10].sort();
    assert_eq!(got, expected);
    let b_without_port = events
        .items
        .iter()
        .find(|e| e.subject == b.id.to_string() && e.data["version"] == 2)
        .unwrap();
    assert_eq!(b_without_port.data["port_ids"], serde_json::json!([]));
    assert_eq!(
        events.items[1].data["model"],
        serde_json::json!("MacBook Air")
    );
    assert_feed_pages(&events, |after, limit| store.events(after, limit)).await;
}

/// Laptops stored before they had ports survive the migration that added
/// them, every field intact, listing no ports.
async fn laptops_survive_the_port_ids_migration(backend: Backend) {
    let (url, _dir) = fresh_storage(backend).await;
    let storage: app_kernel::db::Storage = url.parse().unwrap();
    let db = storage.open(laptops::MODULE.name).await.unwrap();
    let full = (laptops::MODULE.migrations)(backend);
    let first = sqlx::migrate::Migrator {
        migrations: std::borrow::Cow::Owned(full.migrations[..1].to_vec()),
        table_name: full.table_name.clone(),
        create_schemas: full.create_schemas.clone(),
        ..sqlx::migrate::Migrator::DEFAULT
    };
    db.migrate(&first).await.unwrap();
    let table = match backend {
        Backend::Sqlite => "laptops",
        Backend::Postgres => "laptops.laptops",
    };
    let insert =
        format!("insert into {table} (title, title_key, model) values ('Old', 'old', 'Timer')");
    match &db {
        Db::Sqlite(pool) => {
            sqlx::query(sqlx::AssertSqlSafe(insert))
                .execute(pool.sqlx())
                .await
                .unwrap();
        }
        Db::Postgres(pool) => {
            sqlx::query(sqlx::AssertSqlSafe(insert))
                .execute(pool.sqlx())
                .await
                .unwrap();
        }
    }

    db.migrate(full).await.unwrap();
    let store = laptops::store::open(db);
    let old = store.get(1).await.unwrap().expect("the old laptop is kept");
    assert_eq!(
        (
            old.title.as_str(),
            old.model.as_str(),
            old.port_ids.len(),
            old.version
        ),
        ("Old", "Timer", 0, 1)
    );
}

#[tokio::test]
async fn sqlite_laptops_survive_the_port_ids_migration() {
    laptops_survive_the_port_ids_migration(Backend::Sqlite).await;
}

#[tokio::test]
async fn postgres_laptops_survive_the_port_ids_migration() {
    laptops_survive_the_port_ids_migration(Backend::Postgres).await;
}

#[tokio::test]
async fn the_sqlite_port_store_conforms() {
    port_store_conforms(Backend::Sqlite).await;
}

#[tokio::test]
async fn the_postgres_port_store_conforms() {
    port_store_conforms(Backend::Postgres).await;
}

#[tokio::test]
async fn the_sqlite_laptop_store_conforms() {
    laptop_store_conforms(Backend::Sqlite).await;
}

#[tokio::test]
async fn the_postgres_laptop_store_conforms() {
    laptop_store_conforms(Backend::Postgres).await;
}

#[tokio::test]
async fn each_module_has_its_own_postgres_schema_and_migration_history() {
    use sqlx::Connection as _;
    let (url, _dir) = fresh_storage(Backend::Postgres).await;
    let storage: app_kernel::db::Storage = url.parse().unwrap();
    for module in app::modules::ALL {
        let db = storage.open(module.name).await.unwrap();
        db.migrate((module.migrations)(Backend::Postgres))
            .await
            .unwrap();
    }
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    let tables: Vec<(String, String)> = sqlx::query_as(
        "select table_schema::text, table_name::text from information_schema.tables \
         where table_schema not in ('pg_catalog', 'information_schema') order by 1, 2",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    let expected = [
        ("laptops", "_sqlx_migrations"),
        ("laptops", "events"),
        ("laptops", "events_dead"),
        ("laptops", "events_handled"),
        ("laptops", "events_relay"),
        ("laptops", "feeds_read"),
        ("laptops", "laptop_ports"),
        ("laptops", "laptops"),
        ("laptops", "port_refs"),
        ("ports", "_sqlx_migrations"),
        ("ports", "events"),
        ("ports", "events_relay"),
        ("ports", "ports"),
    ];
    // Every module has a schema of its own with its own history; nothing
    // lies outside the modules' schemas.
    for (schema, _) in &tables {
        assert!(
            app::modules::named(schema).is_some(),
            "{schema} is a module's"
        );
    }
    for module in app::modules::ALL {
        let history = (module.name.to_owned(), "_sqlx_migrations".to_owned());
        assert!(tables.contains(&history), "{}", module.name);
    }
    let tables: Vec<(&str, &str)> = tables
        .iter()
        .map(|(s, t)| (s.as_str(), t.as_str()))
        .filter(|(s, _)| ["laptops", "ports"].contains(s))
        .collect();
    assert_eq!(tables, expected);
}

/// Ports and deletions recorded before events survive the migration that
/// added them: each port as a `port.created`, each deletion (which a
/// follower may not have read yet) as a `port.deleted`.
async fn ports_and_deletions_before_events_become_events(backend: Backend) {
    let (url, _dir) = fresh_storage(backend).await;
    let storage: app_kernel::db::Storage = url.parse().unwrap();
    let db = storage.open(ports::MODULE.name).await.unwrap();
    let full = (ports::MODULE.migrations)(backend);
    let before_events = sqlx::migrate::Migrator {
        migrations: std::borrow::Cow::Owned(full.migrations[..2].to_vec()),
        table_name: full.table_name.clone(),
        create_schemas: full.create_schemas.clone(),
        ..sqlx::migrate::Migrator::DEFAULT
    };
    db.migrate(&before_events).await.unwrap();
    let table = match backend {
        Backend::Sqlite => "ports",
        Backend::Postgres => "ports.ports",
    };
    let statements = [
        format!("insert into {table} (name, name_key) values ('Gone', 'gone')"),
        format!("insert into {table} (name, name_key) values ('Kept', 'kept')"),
        format!("delete from {table} where name_key = 'gone'"),
    ];
    for statement in statements {
        match &db {
            Db::Sqlite(pool) => {
                sqlx::query(sqlx::AssertSqlSafe(statement))
                    .execute(pool.sqlx())
                    .await
                    .unwrap();
            }
            Db::Postgres(pool) => {
                sqlx::query(sqlx::AssertSqlSafe(statement))
                    .execute(pool.sqlx())
                    .await
                    .unwrap();
            }
        }
    }

    db.migrate(full).await.unwrap();
    let store = ports::store::open(db);
    let events = store.events(0, 10).await.unwrap();
    let kinds: Vec<(&str, &str)> = events
        .items
        .iter()
        .map(|e| (e.kind.as_str(), e.subject.as_str()))
        .collect();
    assert_eq!(kinds, [("port.deleted", "1"), ("port.created", "2")]);
    assert_eq!(
        events.items[0].data,
        serde_json::json!({"id": 1, "version": 0})
    );
    assert_eq!(events.items[1].data["name"], "Kept");
    assert_eq!(events.items[1].data["version"], 1);
}

#[tokio::test]
async fn sqlite_ports_and_deletions_before_events_become_events() {
    ports_and_deletions_before_events_become_events(Backend::Sqlite).await;
}

#[tokio::test]
async fn postgres_ports_and_deletions_before_events_become_events() {
    ports_and_deletions_before_events_become_events(Backend::Postgres).await;
}
