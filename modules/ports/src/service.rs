use std::sync::Arc;

use actix_web::HttpRequest;
use app_kernel::cache::{Cache, Json};
use app_kernel::db::{Db, StoreError};
use app_kernel::etag::{IfMatch, Versioned};
use app_kernel::event::{Changes, Events, Notifier};
use app_kernel::page::{Page, PageRequest};
use app_kernel::text::filter_key;
use ports_api::MAX_FIND;
use serde_json::Value;

use crate::error::Error;
use crate::model::{NewPort, Port};
use crate::store::{self, Filter, PortStore};

/// The ports module's state: its store, the cache of what clients read,
/// the rules every write obeys, and whom to tell in this process that
/// events were committed.
#[derive(Clone)]
pub struct Ports {
    store: Arc<dyn PortStore>,
    cache: Cache,
    committed: Notifier,
}

impl Ports {
    /// Keeps `cache` true to its writes; tells `committed` after each.
    pub fn new(db: Db, cache: Cache, committed: Notifier) -> Self {
        Self {
            store: store::open(db),
            cache,
            committed,
        }
    }

    /// What to wait on for the module's next events.
    pub(crate) fn changes(&self) -> Changes {
        self.committed.subscribe()
    }

    /// `written`, once its events are told of and the cache holds it.
    fn told(&self, written: Result<Port, Error>) -> Result<Port, Error> {
        if let Ok(port) = &written {
            self.cache.written(port.id, port);
            self.committed.notify();
        }
        written
    }

    /// A page of ports: only the one whose name equals `name` (ignoring case),
    /// and only those among `ids` (at most [`MAX_FIND`]), when given.
    pub(crate) async fn list(
        &self,
        name: Option<&str>,
        ids: Option<Vec<i64>>,
        page: PageRequest,
    ) -> Result<Page<Port>, Error> {
        if ids.as_ref().is_some_and(|ids| ids.len() > MAX_FIND) {
            return Err(Error::BadRequest(format!(
                "id lists at most {MAX_FIND} ports"
            )));
        }
        let name_key = match name.map(filter_key) {
            None => None,
            Some(Some(key)) => Some(key),
            Some(None) => return Ok(Page::empty()),
        };
        let rows = self.store.list(&Filter { name_key, ids }, page).await?;
        Ok(Page::from_rows(rows, page, |row| row.id))
    }

    /// Up to `limit` events with `seq` above `after`, oldest first.
    pub(crate) async fn events(&self, after: i64, limit: i64) -> Result<Events, Error> {
        Ok(self.store.events(after, limit).await?)
    }

    pub async fn get(&self, id: i64) -> Result<Port, Error> {
        self.store.get(id).await?.ok_or(Error::NotFound(id))
    }

    /// The port as `req` reads it, from the cache when it may be.
    pub(crate) async fn read(&self, id: i64, req: &HttpRequest) -> Result<Json, Error> {
        self.cache.get(id, req, self.get(id)).await
    }

    pub(crate) async fn create(&self, port: NewPort) -> Result<Port, Error> {
        let created = self.store.insert(&port).await;
        self.told(created.map_err(|e| name_taken(e, &port)))
    }

    /// PUT: replaces the port, if `If-Match` allows.
    pub(crate) async fn replace(
        &self,
        id: i64,
        if_match: &IfMatch,
        port: NewPort,
    ) -> Result<Port, Error> {
        self.write(id, if_match, |_| Ok(port.clone())).await
    }

    /// PATCH: applies a JSON Merge Patch to the port, if `If-Match` allows.
    pub(crate) async fn patch(
        &self,
        id: i64,
        if_match: &IfMatch,
        patch: &Value,
    ) -> Result<Port, Error> {
        self.write(id, if_match, |current| {
            let merged = app_kernel::body::merge_patch(current.writable(), patch)?;
            Ok(NewPort::from_json(merged)?)
        })
        .await
    }

    async fn write(
        &self,
        id: i64,
        if_match: &IfMatch,
        change: impl Fn(&Port) -> Result<NewPort, Error>,
    ) -> Result<Port, Error> {
        let written = if_match
            .write(
                async || self.get(id).await,
                async |current: Port| {
                    let port = change(&current)?;
                    let written = self.store.update(id, current.version, &port).await;
                    written.map_err(|e| name_taken(e, &port))
                },
            )
            .await;
        self.told(written)
    }

    pub(crate) async fn delete(&self, id: i64, if_match: &IfMatch) -> Result<(), Error> {
        let deleted = if_match
            .write(
                async || self.get(id).await,
                async |current: Port| {
                    let deleted = self.store.delete(id, current.version).await?;
                    Ok(deleted.then_some(current.version))
                },
            )
            .await?;
        self.cache.deleted(id, deleted);
        self.committed.notify();
        Ok(())
    }
}

impl Versioned for Port {
    fn version(&self) -> i64 {
        self.version
    }
}

/// The only unique constraint besides the key is the name's.
fn name_taken(error: StoreError, port: &NewPort) -> Error {
    match error {
        StoreError::Unique(_) => Error::NameTaken(port.name.clone()),
        other => other.into(),
    }
}
