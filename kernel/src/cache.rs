//! An in-process cache of resources as clients read them: the JSON body and
//! the version (the ETag) of each, by id, so a `GET` of a resource read a
//! moment ago is answered from memory.
//!
//! What keeps it true:
//! - **Its own writes:** a module puts what it committed in before the
//!   write is acknowledged ([`Cache::written`]), so a client reads its own
//!   writes; a read that raced the write cannot put an older version back,
//!   since nothing replaces an entry with an older version.
//! - **Others' writes:** every replica drops an entry when the event of its
//!   change arrives ([`Cache::changed`]); what stays behind is a marker of
//!   the version, below which nothing may enter.
//! - **Deletions here:** what stays behind is a marker too, so a read that
//!   raced the deletion cannot put the resource back.
//! - **Lost events:** an entry is served for at most `max_staleness` after
//!   the read that filled it began; after that it is read again.
//! - **Clients that can tell:** an `If-None-Match` naming a version other
//!   than the one kept is answered from the database.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::HttpRequest;
use actix_web::http::header::{self, Header as _};
use actix_web::web::Bytes;
use moka::ops::compute::Op;
use serde::Serialize;

use std::sync::atomic::{AtomicI64, Ordering};

use crate::broker::Broker;
use crate::db::{Db, StoreError};
use crate::etag::{self, Versioned};
use crate::event::{self, Change, CloudEvent, Delivery, Events};
use crate::follow::{Failure, Feed, FeedError, Follower, Ledger, Queue};

/// What nothing outlives, not even a marker of a version: a bound on the
/// memory of entries nobody reads.
const SAFETY_TTL: Duration = Duration::from_secs(300);
/// What an entry costs besides its body: key, version, instant, moka's own.
const ENTRY_OVERHEAD: usize = 96;
/// How often a replica reads its module's feed for the writes of others,
/// when no broker tells it.
const FEED_POLL: Duration = Duration::from_millis(100);
/// How long a replica waits for its database at start.
const DATABASE_RETRY: Duration = Duration::from_secs(5);

/// How big a module's cache may grow and how old what it serves may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// The most resources kept, per module and view; 0 turns caching off.
    pub max_entries: u64,
    /// The most bytes their bodies take, per module and view.
    pub max_bytes: u64,
    /// The longest a resource is served from memory after the read that
    /// kept it began, however many events were lost.
    pub max_staleness: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            max_entries: 5_000,
            max_bytes: 16 << 20,
            max_staleness: Duration::from_secs(1),
        }
    }
}

/// One module's cache of one view of its resources (a laptop, a laptop
/// with its ports); cloning it shares it. Off, it keeps nothing.
#[derive(Clone)]
pub struct Cache(Option<Arc<Inner>>);

struct Inner {
    entries: moka::sync::Cache<i64, Entry>,
    /// When everything last went: a read that began before may not fill.
    cleared: std::sync::Mutex<Option<Instant>>,
    max_staleness: Duration,
    hits: metrics::Counter,
    misses: metrics::Counter,
}

#[derive(Clone)]
struct Entry {
    version: i64,
    /// `None`: a marker that `version` exists elsewhere, so nothing older
    /// may enter; it is never served.
    body: Option<Bytes>,
    /// When the read (or the write) that gave this began: the body is the
    /// resource as of then, or later.
    since: Instant,
}

/// A resource as a client reads it: its version and its JSON.
#[derive(Debug, Clone)]
pub struct Json {
    pub version: i64,
    pub body: Bytes,
}

impl Json {
    /// `value` as a client reads it.
    pub fn of(value: &(impl Serialize + Versioned)) -> Self {
        let body = serde_json::to_vec(value).expect("a resource serializes to JSON");
        Self {
            version: value.version(),
            // Exactly as long as the JSON: kept bodies take no spare room.
            body: Bytes::from(body.into_boxed_slice()),
        }
    }

    /// 200 with the body and its ETag, or 304 if `If-None-Match` names it.
    pub fn respond(self, req: &HttpRequest) -> actix_web::HttpResponse {
        if etag::not_modified(req, self.version) {
            return etag::unchanged(self.version);
        }
        actix_web::HttpResponse::Ok()
            .insert_header(header::ETag(etag::of_version(self.version)))
            .content_type(mime::APPLICATION_JSON)
            .body(self.body)
    }

    /// 200 with the body, untagged.
    pub fn respond_untagged(self) -> actix_web::HttpResponse {
        actix_web::HttpResponse::Ok()
            .content_type(mime::APPLICATION_JSON)
            .body(self.body)
    }
}

impl Cache {
    /// The cache of `module`'s `view`, as `settings` bound it; counted in
    /// `app_cache_hits_total` and `app_cache_misses_total`.
    pub fn new(module: &'static str, view: &'static str, settings: &Settings) -> Self {
        if settings.max_entries == 0 {
            return Self::off();
        }
        // Every entry weighs at least its share of the bytes, so the weight
        // bound is both the entry bound and the byte bound.
        let share = (settings.max_bytes / settings.max_entries).max(1);
        let entries = moka::sync::Cache::builder()
            .max_capacity(settings.max_bytes)
            .weigher(move |_, entry: &Entry| {
                let bytes = entry.body.as_ref().map_or(0, Bytes::len) + ENTRY_OVERHEAD;
                u32::try_from((bytes as u64).max(share)).unwrap_or(u32::MAX)
            })
            .time_to_live(SAFETY_TTL.max(settings.max_staleness))
            .build();
        let labels = [("module", module), ("view", view)];
        Self(Some(Arc::new(Inner {
            entries,
            cleared: std::sync::Mutex::new(None),
            max_staleness: settings.max_staleness,
            hits: metrics::counter!("app_cache_hits_total", &labels),
            misses: metrics::counter!("app_cache_misses_total", &labels),
        })))
    }

    /// A cache that keeps nothing: every read goes to the database.
    pub fn off() -> Self {
        Self(None)
    }

    /// Resource `id` as `req` may be answered: from memory when kept, fresh
    /// and not contradicted by the request, else from `load`, kept for the
    /// next read.
    pub async fn get<T, E>(
        &self,
        id: i64,
        req: &HttpRequest,
        load: impl Future<Output = Result<T, E>>,
    ) -> Result<Json, E>
    where
        T: Serialize + Versioned,
    {
        if let Some(hit) = self.lookup(id, req) {
            return Ok(hit);
        }
        let began = Instant::now();
        let json = Json::of(&load.await?);
        self.fill(id, &json, began);
        Ok(json)
    }

    /// What is kept of `id`, if fresh and not contradicted by `req`: a
    /// hit, or a miss the caller reads from the database.
    pub fn lookup(&self, id: i64, req: &HttpRequest) -> Option<Json> {
        let inner = self.0.as_ref()?;
        match inner
            .fresh(id)
            .filter(|hit| !names_another(req, hit.version))
        {
            Some(hit) => {
                inner.hits.increment(1);
                Some(hit)
            }
            None => {
                inner.misses.increment(1);
                None
            }
        }
    }

    /// What a read that began at `began` found: kept unless a newer version
    /// is known.
    pub fn fill(&self, id: i64, json: &Json, began: Instant) {
        if let Some(inner) = &self.0 {
            inner.keep(id, json, began);
        }
    }

    /// This process committed `value` as resource `id`: kept at once, before
    /// the write is acknowledged, so the writer reads it back.
    pub fn written(&self, id: i64, value: &(impl Serialize + Versioned)) {
        if let Some(inner) = &self.0 {
            inner.keep(id, &Json::of(value), Instant::now());
        }
    }

    /// Resource `id` is now at `version` (an event said so): anything older
    /// goes, and may not come back. Nothing kept, nothing is marked: the
    /// events of every write would crowd out what is read. (A read that
    /// began before the write and ends after its event then keeps the old
    /// version, for at most `max_staleness` from when it began.)
    pub fn changed(&self, id: i64, version: i64) {
        let Some(inner) = &self.0 else { return };
        inner.entries.entry(id).and_compute_with(|kept| match kept {
            None => Op::Nop,
            Some(kept) if kept.value().version >= version => Op::Nop,
            Some(_) => Op::Put(Entry {
                version,
                body: None,
                since: Instant::now(),
            }),
        });
    }

    /// Resource `id` was deleted at `version`: marked, kept or not, so no
    /// read that raced the deletion puts it back.
    pub fn deleted(&self, id: i64, version: i64) {
        let Some(inner) = &self.0 else { return };
        let gone = version.saturating_add(1);
        inner.entries.entry(id).and_compute_with(|kept| match kept {
            Some(kept) if kept.value().version >= gone => Op::Nop,
            _ => Op::Put(Entry {
                version: gone,
                body: None,
                since: Instant::now(),
            }),
        });
    }

    /// Everything goes: what the view shows changed in a way no id names.
    pub fn clear(&self) {
        if let Some(inner) = &self.0 {
            *inner.cleared.lock().expect("never poisoned") = Some(Instant::now());
            inner.entries.invalidate_all();
        }
    }

    /// How many resources it keeps (after pending work is done): for tests.
    pub fn len(&self) -> u64 {
        self.0.as_ref().map_or(0, |inner| {
            inner.entries.run_pending_tasks();
            inner.entries.entry_count()
        })
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Inner {
    /// The body kept for `id`, if it is no older than the bound.
    fn fresh(&self, id: i64) -> Option<Json> {
        let entry = self.entries.get(&id)?;
        let body = entry.body?;
        (entry.since.elapsed() <= self.max_staleness).then_some(Json {
            version: entry.version,
            body,
        })
    }

    /// Whether everything went after `since`.
    fn cleared_since(&self, since: Instant) -> bool {
        self.cleared
            .lock()
            .expect("never poisoned")
            .is_some_and(|cleared| cleared >= since)
    }

    fn keep(&self, id: i64, json: &Json, since: Instant) {
        if self.cleared_since(since) {
            return;
        }
        self.keep_unless_newer(id, json, since);
        // A clear between the check above and the put would miss what was
        // put (it is newer than the clear's mark): look again.
        if self.cleared_since(since) {
            self.entries.invalidate(&id);
        }
    }

    fn keep_unless_newer(&self, id: i64, json: &Json, since: Instant) {
        self.entries.entry(id).and_compute_with(|kept| match kept {
            // A newer version is known; or this one, as of a later moment.
            Some(kept)
                if kept.value().version > json.version
                    || (kept.value().version == json.version
                        && kept.value().body.is_some()
                        && kept.value().since >= since) =>
            {
                Op::Nop
            }
            _ => Op::Put(Entry {
                version: json.version,
                body: Some(json.body.clone()),
                since,
            }),
        });
    }
}

/// Whether `If-None-Match` lists entity tags, none of them `version`'s: a
/// client that knows another version, maybe a newer one written elsewhere.
fn names_another(req: &HttpRequest, version: i64) -> bool {
    if !req.headers().contains_key(header::IF_NONE_MATCH) {
        return false;
    }
    let current = etag::of_version(version);
    match header::IfNoneMatch::parse(req) {
        Ok(header::IfNoneMatch::Items(tags)) => !tags.iter().any(|tag| tag.weak_eq(&current)),
        _ => false,
    }
}

impl Cache {
    /// Drops what `change` made old.
    pub fn apply(&self, change: &Change) {
        let (Ok(id), Some(version)) = (change.subject.parse(), change.version) else {
            return;
        };
        if change.is_deletion() {
            self.deleted(id, version);
        } else {
            self.changed(id, version);
        }
    }
}

/// Keeps one module's caches true to the writes of its other replicas: it
/// follows the module's own events with the kernel's [`Follower`], from
/// `broker` when there is one (a queue of this process's own) and else
/// from the module's feed in its database every [`FEED_POLL`], and applies
/// each change to `caches`. The writes of this process are in its caches
/// already; their events change nothing.
pub struct Invalidator {
    pub db: Db,
    pub module: &'static str,
    pub broker: Option<Broker>,
    pub caches: Vec<Cache>,
}

impl Invalidator {
    /// Runs for as long as the process serves. While the broker is down,
    /// it reads the feed; while the database is down too, entries age out.
    pub async fn run(self) {
        if self.caches.iter().all(|cache| cache.0.is_none()) {
            return;
        }
        // What is older is in no cache yet: they begin empty.
        let after = loop {
            match event::last_seq(&self.db, self.module).await {
                Ok(seq) => break seq,
                Err(_) => tokio::time::sleep(DATABASE_RETRY).await,
            }
        };
        Follower {
            module: self.module,
            feed: Arc::new(OwnFeed {
                db: self.db,
                module: self.module,
            }),
            ledger: Caches {
                position: AtomicI64::new(after),
                caches: self.caches,
            },
            queue: Queue::PerReplica,
            broker: self.broker,
            delivery: Delivery::default(),
            committed: None,
            interval: FEED_POLL,
            reported: false,
        }
        .run()
        .await;
    }
}

/// A module's own feed, as its caches read it: of each event, only what
/// says which resource changed and its version since.
struct OwnFeed {
    db: Db,
    module: &'static str,
}

#[async_trait::async_trait]
impl Feed for OwnFeed {
    fn producer(&self) -> &'static str {
        self.module
    }

    async fn read(&self, after: i64, limit: i64) -> Result<Events, FeedError> {
        let changes = event::changes(&self.db, self.module, after, limit).await?;
        Ok(Events {
            // At least this page; only reported followers read it.
            remaining: changes.len() as i64,
            items: changes.into_iter().map(Change::into_event).collect(),
        })
    }
}

/// The caches of a module, as the ledger of their follower: its place is
/// kept in memory, since a new process begins with empty caches.
struct Caches {
    position: AtomicI64,
    caches: Vec<Cache>,
}

#[async_trait::async_trait]
impl Ledger for Caches {
    async fn position(&self) -> Result<i64, StoreError> {
        Ok(self.position.load(Ordering::Acquire))
    }

    async fn apply(&self, events: &[CloudEvent]) -> Result<(), Failure> {
        for event in events {
            let change = Change::of(event);
            self.caches.iter().for_each(|cache| cache.apply(&change));
            self.position.fetch_max(event.seq, Ordering::AcqRel);
        }
        Ok(())
    }

    async fn dead_letter(&self, _: &CloudEvent, _: &str, _: u32) -> Result<(), StoreError> {
        // Applying to a cache never fails.
        Ok(())
    }

    async fn retries(&self) -> Result<Vec<CloudEvent>, StoreError> {
        Ok(Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct Thing {
        id: i64,
        version: i64,
    }

    impl Versioned for Thing {
        fn version(&self) -> i64 {
            self.version
        }
    }

    fn cache(max_staleness: Duration) -> Cache {
        let settings = Settings {
            max_staleness,
            ..Settings::default()
        };
        Cache::new("things", "thing", &settings)
    }

    fn kept(cache: &Cache, id: i64) -> Option<i64> {
        cache.0.as_ref()?.fresh(id).map(|json| json.version)
    }

    #[test]
    fn a_read_that_began_before_a_write_cannot_put_the_old_version_back() {
        let cache = cache(Duration::from_secs(60));
        let began = Instant::now();
        cache.written(1, &Thing { id: 1, version: 2 });
        cache.fill(1, &Json::of(&Thing { id: 1, version: 1 }), began);
        assert_eq!(kept(&cache, 1), Some(2));
    }

    #[test]
    fn an_event_drops_older_versions_and_keeps_them_out() {
        let cache = cache(Duration::from_secs(60));
        cache.fill(1, &Json::of(&Thing { id: 1, version: 1 }), Instant::now());
        cache.changed(1, 2);
        assert_eq!(kept(&cache, 1), None);
        cache.fill(1, &Json::of(&Thing { id: 1, version: 1 }), Instant::now());
        assert_eq!(kept(&cache, 1), None, "a read that lagged the event");
        cache.fill(1, &Json::of(&Thing { id: 1, version: 2 }), Instant::now());
        assert_eq!(kept(&cache, 1), Some(2));
        cache.changed(1, 2);
        assert_eq!(kept(&cache, 1), Some(2), "an event of what is kept");
        cache.deleted(1, 2);
        assert_eq!(kept(&cache, 1), None);
    }

    #[test]
    fn a_read_that_began_before_a_clear_keeps_nothing() {
        let cache = cache(Duration::from_secs(60));
        let began = Instant::now();
        cache.clear();
        cache.fill(1, &Json::of(&Thing { id: 1, version: 1 }), began);
        assert_eq!(kept(&cache, 1), None);
        cache.fill(1, &Json::of(&Thing { id: 1, version: 1 }), Instant::now());
        assert_eq!(kept(&cache, 1), Some(1));
    }

    #[test]
    fn an_entry_older_than_the_bound_is_not_served() {
        let cache = cache(Duration::from_millis(20));
        cache.fill(1, &Json::of(&Thing { id: 1, version: 1 }), Instant::now());
        assert_eq!(kept(&cache, 1), Some(1));
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(kept(&cache, 1), None);
    }

    #[test]
    fn the_entry_bound_holds() {
        let settings = Settings {
            max_entries: 10,
            ..Settings::default()
        };
        let cache = Cache::new("things", "thing", &settings);
        for id in 0..100 {
            cache.fill(id, &Json::of(&Thing { id, version: 1 }), Instant::now());
        }
        assert!(cache.len() <= 10, "{} entries", cache.len());
        assert!(
            Cache::new(
                "things",
                "thing",
                &Settings {
                    max_entries: 0,
                    ..settings
                }
            )
            .0
            .is_none()
        );
    }
}
