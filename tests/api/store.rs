//! One conformance suite for each module's store, run against both backends:
//! the SQLite and PostgreSQL implementations must behave alike.

use app::modules::Module;
use app_kernel::db::{Backend, Db, StoreError};
use app_kernel::page::PageRequest;

use crate::helpers::fresh_storage;

async fn open(backend: Backend, module: Module) -> (Db, Option<tempfile::TempDir>) {
    let (url, dir) = fresh_storage(backend).await;
    let storage: app_kernel::db::Storage = url.parse().unwrap();
    let db = storage.open(module.name()).await.unwrap();
    db.migrate(module.migrator(backend)).await.unwrap();
    (db, dir)
}

fn page(after: i64, limit: i64) -> PageRequest {
    PageRequest { after, limit }
}

async fn port_store_conforms(backend: Backend) {
    use ports::NewPort;
    use ports::store::Filter;
    let (db, _dir) = open(backend, Module::Ports).await;
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
    };
    assert_eq!(
        store.list(&by_name, page(0, 10)).await.unwrap(),
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
}

async fn laptop_store_conforms(backend: Backend) {
    use laptops::NewLaptop;
    use laptops::store::Filter;
    let (db, _dir) = open(backend, Module::Laptops).await;
    let store = laptops::store::open(db);
    let new = |title: &str, model: &str| NewLaptop {
        title: title.into(),
        model: model.into(),
    };

    let xps = store.insert(&new("Dell", "XPS 13")).await.unwrap();
    let air = store.insert(&new("Apple", "MacBook Air")).await.unwrap();
    let same = store.insert(&new("DELL", "XPS 13")).await.unwrap();

    assert_eq!(store.get(air.id).await.unwrap(), Some(air.clone()));
    let dell = Filter {
        title_key: Some("dell".into()),
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
    for module in Module::ALL {
        let db = storage.open(module.name()).await.unwrap();
        db.migrate(module.migrator(Backend::Postgres))
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
        ("laptops", "laptops"),
        ("ports", "_sqlx_migrations"),
        ("ports", "ports"),
    ];
    let tables: Vec<(&str, &str)> = tables
        .iter()
        .map(|(s, t)| (s.as_str(), t.as_str()))
        .collect();
    assert_eq!(tables, expected);
}
