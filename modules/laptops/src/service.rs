use std::sync::Arc;

use app_kernel::db::Db;
use app_kernel::etag::{IfMatch, Versioned};
use app_kernel::page::{Page, PageRequest};
use app_kernel::text::filter_key;
use serde_json::Value;

use crate::error::Error;
use crate::model::{Laptop, NewLaptop};
use crate::store::{self, Filter, LaptopStore};

/// The laptops module's state: its store, and the rules every write obeys.
#[derive(Clone)]
pub struct Laptops {
    store: Arc<dyn LaptopStore>,
}

impl Laptops {
    pub fn new(db: Db) -> Self {
        Self {
            store: store::open(db),
        }
    }

    /// A page of laptops, only those whose title equals `title` (ignoring case) if given.
    pub(crate) async fn list(
        &self,
        title: Option<&str>,
        page: PageRequest,
    ) -> Result<Page<Laptop>, Error> {
        let filter = match title.map(filter_key) {
            None => Filter::default(),
            Some(Some(key)) => Filter {
                title_key: Some(key),
            },
            Some(None) => return Ok(Page::empty()),
        };
        let rows = self.store.list(&filter, page).await?;
        Ok(Page::from_rows(rows, page, |row| row.id))
    }

    pub async fn get(&self, id: i64) -> Result<Laptop, Error> {
        self.store.get(id).await?.ok_or(Error::NotFound(id))
    }

    pub(crate) async fn create(&self, laptop: NewLaptop) -> Result<Laptop, Error> {
        Ok(self.store.insert(&laptop).await?)
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
        if_match
            .write(
                async || self.get(id).await,
                async |current: Laptop| {
                    let laptop = change(&current)?;
                    Ok(self.store.update(id, current.version, &laptop).await?)
                },
            )
            .await
    }

    pub(crate) async fn delete(&self, id: i64, if_match: &IfMatch) -> Result<(), Error> {
        if_match
            .write(
                async || self.get(id).await,
                async |current: Laptop| {
                    Ok(self.store.delete(id, current.version).await?.then_some(()))
                },
            )
            .await
    }
}

impl Versioned for Laptop {
    fn version(&self) -> i64 {
        self.version
    }
}
