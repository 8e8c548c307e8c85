use std::sync::Arc;
use std::time::Instant;

use actix_web::HttpRequest;
use app_kernel::cache::{Cache, Json};
use app_kernel::etag::{IfMatch, Versioned};
use app_kernel::event::{Events, Notifier};
use app_kernel::page::{Page, PageRequest};
use app_kernel::text::filter_key;
use ports_api::{MAX_FIND, PortsApi};
use serde_json::Value;

use crate::error::Error;
use crate::model::{Laptop, NewLaptop};
use crate::store::{Filter, LaptopStore};

/// The laptops module's state: its store, the caches of what clients
/// read, the ports module it asks about ports (in this process or not, it
/// cannot tell), the rules every write obeys, and whom to tell that events
/// were committed.
#[derive(Clone)]
pub struct Laptops {
    store: Arc<dyn LaptopStore>,
    caches: Caches,
    ports: Arc<dyn PortsApi>,
    committed: Notifier,
}

/// What clients read of laptops, kept in memory.
#[derive(Clone)]
pub struct Caches {
    /// A laptop as `GET` answers it.
    pub laptop: Cache,
    /// A laptop with `expand=ports`: it also changes when a port it lists
    /// is renamed, which no event of laptops names.
    pub expanded: Cache,
}

impl Caches {
    /// No caching.
    pub(crate) fn off() -> Self {
        Self {
            laptop: Cache::off(),
            expanded: Cache::off(),
        }
    }
}

impl Laptops {
    /// Keeps `caches` true to its writes; tells `committed` after each.
    pub fn new(
        store: Arc<dyn LaptopStore>,
        caches: Caches,
        ports: Arc<dyn PortsApi>,
        committed: Notifier,
    ) -> Self {
        Self {
            store,
            caches,
            ports,
            committed,
        }
    }

    /// `written`, once its events are told of and the caches hold it. A
    /// laptop just `created` is in no expanded view yet.
    fn told(&self, written: Result<Laptop, Error>, created: bool) -> Result<Laptop, Error> {
        if let Ok(laptop) = &written {
            self.caches.laptop.written(laptop.id, laptop);
            if !created {
                self.caches.expanded.changed(laptop.id, laptop.version);
            }
            self.committed.notify();
        }
        written
    }

    /// A page of laptops: only those whose title equals `title` (ignoring
    /// case), and only those that list `port_id`, when given.
    pub(crate) async fn list(
        &self,
        title: Option<&str>,
        port_id: Option<i64>,
        page: PageRequest,
    ) -> Result<Page<Laptop>, Error> {
        let title_key = match title.map(filter_key) {
            None => None,
            Some(Some(key)) => Some(key),
            Some(None) => return Ok(Page::empty()),
        };
        let filter = Filter { title_key, port_id };
        let rows = self.store.list(&filter, page).await?;
        Ok(Page::from_rows(rows, page, |row| row.id))
    }

    /// Up to `limit` events with `seq` above `after`, oldest first.
    pub(crate) async fn events(&self, after: i64, limit: i64) -> Result<Events, Error> {
        Ok(self.store.events(after, limit).await?)
    }

    pub async fn get(&self, id: i64) -> Result<Laptop, Error> {
        self.store.get(id).await?.ok_or(Error::NotFound(id))
    }

    /// The laptop as `req` reads it, from the cache when it may be.
    pub(crate) async fn read(&self, id: i64, req: &HttpRequest) -> Result<Json, Error> {
        self.caches.laptop.get(id, req, self.get(id)).await
    }

    /// The laptop with `ports` filled in, as [`Laptops::expand`] does, from
    /// the cache when it may be. It is kept only if every port was known
    /// here: one asked of ports may be renamed with no event yet to say so.
    pub(crate) async fn read_expanded(&self, id: i64, req: &HttpRequest) -> Result<Json, Error> {
        if let Some(hit) = self.caches.expanded.lookup(id, req) {
            return Ok(hit);
        }
        let began = Instant::now();
        let mut laptop = [self.get(id).await?];
        let all_known = self.expand(&mut laptop).await?;
        let json = Json::of(&laptop[0]);
        if all_known {
            self.caches.expanded.fill(id, &json, began);
        }
        Ok(json)
    }

    /// Fills in `ports` of each laptop from what this module knows of
    /// ports, so it answers while ports is down; ports not known yet (their
    /// events still on their way) are asked of the ports module, at most
    /// [`MAX_FIND`] a call. A port deleted but not yet dropped from a
    /// laptop is left out. `true` if every port was known here.
    pub(crate) async fn expand(&self, laptops: &mut [Laptop]) -> Result<bool, Error> {
        let mut ids: Vec<i64> = laptops
            .iter()
            .flat_map(|l| l.port_ids.iter().copied())
            .collect();
        ids.sort_unstable();
        ids.dedup();
        let mut known = if ids.is_empty() {
            Vec::new()
        } else {
            self.store.port_refs(&ids).await?
        };
        let unknown: Vec<i64> = ids
            .into_iter()
            .filter(|id| !known.iter().any(|port| port.id == *id))
            .collect();
        let all_known = unknown.is_empty();
        for chunk in unknown.chunks(MAX_FIND) {
            known.extend(self.ports.find(chunk).await?);
        }
        for laptop in laptops {
            let ports = laptop
                .port_ids
                .iter()
                .filter_map(|id| known.iter().find(|port| port.id == *id).cloned())
                .collect();
            laptop.ports = Some(ports);
        }
        Ok(all_known)
    }

    pub(crate) async fn create(&self, laptop: NewLaptop) -> Result<Laptop, Error> {
        self.check_ports(&laptop.port_ids, &[]).await?;
        self.told(self.store.insert(&laptop).await.map_err(Error::from), true)
    }

    /// Every port in `port_ids` but not in `known` must exist; those in
    /// `known` were checked when written, so a write that adds no port
    /// needs no answer from the ports module.
    async fn check_ports(&self, port_ids: &[i64], known: &[i64]) -> Result<(), Error> {
        let added: Vec<i64> = port_ids
            .iter()
            .copied()
            .filter(|id| !known.contains(id))
            .collect();
        if added.is_empty() {
            return Ok(());
        }
        let found = self.ports.find(&added).await?;
        let unknown: Vec<i64> = added
            .into_iter()
            .filter(|id| !found.iter().any(|port| port.id == *id))
            .collect();
        if unknown.is_empty() {
            Ok(())
        } else {
            Err(Error::UnknownPorts(unknown))
        }
    }

    /// PUT: replaces the laptop, if `If-Match` allows.
    pub(crate) async fn replace(
        &self,
        id: i64,
        if_match: &IfMatch,
        laptop: NewLaptop,
    ) -> Result<Laptop, Error> {
        self.write(id, if_match, |_| Ok(laptop.clone())).await
    }

    /// PATCH: applies a JSON Merge Patch to the laptop, if `If-Match` allows.
    pub(crate) async fn patch(
        &self,
        id: i64,
        if_match: &IfMatch,
        patch: &Value,
    ) -> Result<Laptop, Error> {
        self.write(id, if_match, |current| {
            let merged = app_kernel::body::merge_patch(current.writable(), patch)?;
            Ok(NewLaptop::from_json(merged)?)
        })
        .await
    }

    async fn write(
        &self,
        id: i64,
        if_match: &IfMatch,
        change: impl Fn(&Laptop) -> Result<NewLaptop, Error>,
    ) -> Result<Laptop, Error> {
        let written = if_match
            .write(
                async || self.get(id).await,
                async |current: Laptop| {
                    let laptop = change(&current)?;
                    self.check_ports(&laptop.port_ids, &current.port_ids)
                        .await?;
                    Ok(self.store.update(id, current.version, &laptop).await?)
                },
            )
            .await;
        self.told(written, false)
    }

    pub(crate) async fn delete(&self, id: i64, if_match: &IfMatch) -> Result<(), Error> {
        let deleted = if_match
            .write(
                async || self.get(id).await,
                async |current: Laptop| {
                    let deleted = self.store.delete(id, current.version).await?;
                    Ok(deleted.then_some(current.version))
                },
            )
            .await?;
        self.caches.laptop.deleted(id, deleted);
        self.caches.expanded.deleted(id, deleted);
        self.committed.notify();
        Ok(())
    }
}

impl Versioned for Laptop {
    fn version(&self) -> i64 {
        self.version
    }
}
