use std::sync::Arc;

use app_kernel::db::{Db, StoreError};
use app_kernel::etag::{IfMatch, Versioned};
use app_kernel::event::Events;
use app_kernel::page::{Page, PageRequest};
use app_kernel::text::filter_key;
{{#needs}}
use ports_api::PortsApi;
{{/needs}}
use serde_json::Value;

use crate::error::Error;
use crate::model::{New{{Item}}, {{Item}}};
use crate::store::{self, Filter, {{Item}}Store};

/// The {{name}} module's state: its store, and the rules every write obeys.
#[derive(Clone)]
pub struct {{Name}} {
    store: Arc<dyn {{Item}}Store>,
{{#needs}}
    /// The ports module, in this process or over HTTP.
    ports: Arc<dyn PortsApi>,
{{/needs}}
}

impl {{Name}} {
{{^needs}}
    pub fn new(db: Db) -> Self {
        Self {
            store: store::open(db),
        }
    }
{{/needs}}
{{#needs}}
    pub fn new(db: Db, ports: Arc<dyn PortsApi>) -> Self {
        Self {
            store: store::open(db),
            ports,
        }
    }

    /// Fails unless the ports module has `port_id`, when one is given.
    async fn check_port(&self, port_id: Option<i64>) -> Result<(), Error> {
        let Some(id) = port_id else {
            return Ok(());
        };
        if self.ports.find(&[id]).await?.is_empty() {
            return Err(Error::UnknownPort(id));
        }
        Ok(())
    }
{{/needs}}

    /// A page of {{name}}: only the one whose name equals `name` (ignoring
    /// case), when given.
    pub(crate) async fn list(
        &self,
        name: Option<&str>,
        page: PageRequest,
    ) -> Result<Page<{{Item}}>, Error> {
        let name_key = match name.map(filter_key) {
            None => None,
            Some(Some(key)) => Some(key),
            Some(None) => return Ok(Page::empty()),
        };
        let rows = self.store.list(&Filter { name_key }, page).await?;
        Ok(Page::from_rows(rows, page, |row| row.id))
    }

    /// Up to `limit` events with `seq` above `after`, oldest first.
    pub(crate) async fn events(&self, after: i64, limit: i64) -> Result<Events, Error> {
        Ok(self.store.events(after, limit).await?)
    }

    pub async fn get(&self, id: i64) -> Result<{{Item}}, Error> {
        self.store.get(id).await?.ok_or(Error::NotFound(id))
    }

    pub(crate) async fn create(&self, {{item}}: New{{Item}}) -> Result<{{Item}}, Error> {
{{#needs}}
        self.check_port({{item}}.port_id).await?;
{{/needs}}
        self.store
            .insert(&{{item}})
            .await
            .map_err(|e| name_taken(e, &{{item}}))
    }

    /// PUT: replaces the {{item}}, if `If-Match` allows.
    pub(crate) async fn replace(
        &self,
        id: i64,
        if_match: &IfMatch,
        {{item}}: New{{Item}},
    ) -> Result<{{Item}}, Error> {
        self.write(id, if_match, |_| Ok({{item}}.clone())).await
    }

    /// PATCH: applies a JSON Merge Patch to the {{item}}, if `If-Match` allows.
    pub(crate) async fn patch(
        &self,
        id: i64,
        if_match: &IfMatch,
        patch: &Value,
    ) -> Result<{{Item}}, Error> {
        self.write(id, if_match, |current| {
            let merged = app_kernel::body::merge_patch(current.writable(), patch)?;
            Ok(New{{Item}}::from_json(merged)?)
        })
        .await
    }

    async fn write(
        &self,
        id: i64,
        if_match: &IfMatch,
        change: impl Fn(&{{Item}}) -> Result<New{{Item}}, Error>,
    ) -> Result<{{Item}}, Error> {
        if_match
            .write(
                async || self.get(id).await,
                async |current: {{Item}}| {
                    let {{item}} = change(&current)?;
{{#needs}}
                    if {{item}}.port_id != current.port_id {
                        self.check_port({{item}}.port_id).await?;
                    }
{{/needs}}
                    let written = self.store.update(id, current.version, &{{item}}).await;
                    written.map_err(|e| name_taken(e, &{{item}}))
                },
            )
            .await
    }

    pub(crate) async fn delete(&self, id: i64, if_match: &IfMatch) -> Result<(), Error> {
        if_match
            .write(
                async || self.get(id).await,
                async |current: {{Item}}| {
                    Ok(self.store.delete(id, current.version).await?.then_some(()))
                },
            )
            .await
    }
}

impl Versioned for {{Item}} {
    fn version(&self) -> i64 {
        self.version
    }
}

/// The only unique constraint besides the key is the name's.
fn name_taken(error: StoreError, {{item}}: &New{{Item}}) -> Error {
    match error {
        StoreError::Unique(_) => Error::NameTaken({{item}}.name.clone()),
        other => other.into(),
    }
}
