//! Domain events: what a module records of each change, in the transaction
//! of the change, and how others read them back.
//!
//! Each module keeps its events in an `events` table of its own (its
//! outbox), written by its store beside the change itself: an event exists
//! if and only if its change committed. Events are CloudEvents 1.0, in their
//! JSON form, with the `traceparent` of the request that caused them and a
//! `seq` that orders them once committed.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The CloudEvents version of every event.
pub const SPEC_VERSION: &str = "1.0";
/// The content type of an event's `data`.
pub const DATA_CONTENT_TYPE: &str = "application/json";

/// A recorded event, as consumers receive it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "specversion": "1.0",
    "id": "0b8f5a8e-3f7a-4d2c-9d55-2f7f3f2b8c11",
    "source": "/api/v1/ports",
    "type": "port.renamed",
    "subject": "3",
    "time": "2026-12-01T14:00:00.000Z",
    "datacontenttype": "application/json",
    "data": {"id": 3, "name": "USB-C", "version": 2,
             "created_at": "2026-12-01T13:00:00.000Z", "updated_at": "2026-12-01T14:00:00.000Z"},
    "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    "seq": 7,
    "producerversion": "0.1.0"
}))]
pub struct CloudEvent {
    /// Always `1.0`.
    pub specversion: String,
    /// Unique per event: a consumer that has seen it may skip it.
    pub id: String,
    /// The producing module's API path, as in `/api/v1/ports`.
    pub source: String,
    /// What happened, as in `port.deleted`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The id of the resource it happened to.
    pub subject: String,
    /// When the change was written.
    #[serde(serialize_with = "app_http::time::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub time: DateTime<Utc>,
    /// Always `application/json`.
    pub datacontenttype: String,
    /// The resource as it is after the change; for a deletion, its id and
    /// last version.
    pub data: serde_json::Value,
    /// The W3C trace context of the request that made the change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    /// The event's place in its module's feed: increases with every event,
    /// given once its change committed, so a reader never sees a smaller one
    /// appear after a larger; one resource's events come in the order they
    /// were written (an extension attribute).
    pub seq: i64,
    /// The version of the producer that published it (an extension
    /// attribute), so a consumer knows which release it is reading.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub producerversion: Option<String>,
}

/// A page of a module's feed of events, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Events {
    pub items: Vec<CloudEvent>,
    /// How many events come after `after`, this page's included: how far
    /// behind a reader that has seen up to `after` is.
    pub remaining: i64,
}

/// A new event's id: a UUID of version 7, which begins with the time, so
/// the ids of one module's events sort about as they were made and each
/// new one lands at the end of the `events` table's index on `id`, not on
/// a random page of it (a random page per event is a page to write, and to
/// fsync, per event).
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// An event to record with a change, as [`Kind::event`] makes it.
#[derive(Debug, Clone)]
pub struct Event {
    pub kind: &'static str,
    pub subject: String,
    pub data: serde_json::Value,
}

/// The data an event carries, as the producer's contract declares it:
/// consumers read it as this type, and the AsyncAPI documents show its
/// schema. Consumers must be tolerant: a payload never denies unknown
/// fields, so a newer producer's additions never break an older consumer.
pub trait Payload: Serialize + serde::de::DeserializeOwned + ToSchema + 'static {
    /// The id of the resource the event happened to: its `subject`.
    fn subject(&self) -> i64;
}

/// A type of event a module publishes: its name and the type of its data,
/// declared once in the producer's contract and used by both sides, so a
/// change to either that breaks a consumer fails to compile there. An
/// incompatible change is a new kind under a new name (see ADR 0015).
pub struct Kind<T> {
    /// As in `port.renamed`.
    pub name: &'static str,
    /// One line: what happened.
    pub summary: &'static str,
    /// Still published, for the last release's consumers, but replaced:
    /// the next release may stop publishing it.
    pub deprecated: bool,
    data: std::marker::PhantomData<fn() -> T>,
}

impl<T> std::fmt::Debug for Kind<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

/// Why an event of a kind a consumer follows could not be read: a poison
/// message, which no retry mends.
#[derive(Debug, thiserror::Error)]
#[error("{kind} event whose data does not read: {error}")]
pub struct Unreadable {
    pub kind: &'static str,
    pub error: serde_json::Error,
}

impl<T: Payload> Kind<T> {
    pub const fn new(name: &'static str, summary: &'static str) -> Self {
        Self {
            name,
            summary,
            deprecated: false,
            data: std::marker::PhantomData,
        }
    }

    /// This kind, deprecated: the expand/contract way to replace an event
    /// (publish the new kind beside it for a release, then stop publishing
    /// it). The AsyncAPI document says so (`x-deprecated`), and the
    /// compatibility gate lets the next release remove it.
    pub const fn deprecated(mut self) -> Self {
        self.deprecated = true;
        self
    }

    /// The event of this kind that carries `data`, to record with its change.
    pub fn event(&self, data: &T) -> Event {
        Event {
            kind: self.name,
            subject: data.subject().to_string(),
            data: serde_json::to_value(data).expect("an event's data serializes to JSON"),
        }
    }

    /// `event`'s data, if `event` is of this kind.
    pub fn read(&self, event: &CloudEvent) -> Option<Result<T, Unreadable>> {
        (event.kind == self.name).then(|| {
            T::deserialize(&event.data).map_err(|error| Unreadable {
                kind: self.name,
                error,
            })
        })
    }

    /// This kind as the AsyncAPI document tells it.
    pub const fn describe(&self) -> EventType {
        EventType {
            kind: self.name,
            summary: self.summary,
            deprecated: self.deprecated,
            data: resource::<T>,
        }
    }
}

/// The data of every `*.deleted` event: what was deleted, and its last version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"id": 3, "version": 2}))]
pub struct Deleted {
    #[schema(minimum = 1)]
    pub id: i64,
    /// Its last version; 0 when not known (a deletion recorded before
    /// events were).
    #[schema(minimum = 0)]
    pub version: i64,
}

impl Payload for Deleted {
    fn subject(&self) -> i64 {
        self.id
    }
}

/// What an event says changed, as a cache needs it: which resource, and
/// its version since.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Change {
    pub kind: String,
    pub subject: String,
    /// The resource's version after the change (its last, if deleted).
    pub version: Option<i64>,
    /// The event's place in its feed.
    pub seq: i64,
}

impl Change {
    pub fn of(event: &CloudEvent) -> Self {
        Self {
            kind: event.kind.clone(),
            subject: event.subject.clone(),
            version: event
                .data
                .get("version")
                .and_then(serde_json::Value::as_i64),
            seq: event.seq,
        }
    }

    /// The resource is gone.
    pub fn is_deletion(&self) -> bool {
        self.kind.ends_with(".deleted")
    }

    /// An event that says no more than this change: of what a
    /// [`CloudEvent`] holds, only its kind, subject, version and seq.
    pub fn into_event(self) -> CloudEvent {
        CloudEvent {
            specversion: SPEC_VERSION.to_owned(),
            id: String::new(),
            source: String::new(),
            kind: self.kind,
            subject: self.subject,
            time: DateTime::<Utc>::UNIX_EPOCH,
            datacontenttype: DATA_CONTENT_TYPE.to_owned(),
            data: serde_json::json!({ "version": self.version }),
            traceparent: None,
            seq: self.seq,
            producerversion: None,
        }
    }
}

/// The query of a module's feed of events, `GET /api/v1/NAME/events`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FeedQuery {
    /// The `seq` of the last event already seen; 0 for all.
    #[param(minimum = 0, default = 0)]
    pub after: Option<i64>,
    /// How many events to answer at most.
    #[param(minimum = 1, maximum = 100, default = 100)]
    pub limit: Option<i64>,
}

impl FeedQuery {
    /// `after` and `limit`, or a 400 that says their ranges.
    pub fn checked(&self) -> Result<(i64, i64), app_http::ApiError> {
        let max = app_http::page::MAX_LIMIT;
        let after = self.after.unwrap_or(0);
        let limit = self.limit.unwrap_or(max);
        if after < 0 || !(1..=max).contains(&limit) {
            return Err(app_http::ApiError::BadRequest(format!(
                "after must be 0 or more and limit from 1 to {max}"
            )));
        }
        Ok((after, limit))
    }
}

/// Tells the readers of a module's feed in this process that it grew: the
/// producer calls [`Notifier::notify`] after each commit, and a reader
/// waits on [`Changes::changed`] instead of polling.
#[derive(Debug, Clone)]
pub struct Notifier(std::sync::Arc<tokio::sync::watch::Sender<u64>>);

impl Default for Notifier {
    fn default() -> Self {
        Self(std::sync::Arc::new(tokio::sync::watch::Sender::new(0)))
    }
}

impl Notifier {
    /// Events were committed.
    pub fn notify(&self) {
        self.0
            .send_modify(|commits| *commits = commits.wrapping_add(1));
    }

    /// A reader's view: it sees every notification after this call.
    pub fn subscribe(&self) -> Changes {
        Changes(self.0.subscribe())
    }
}

/// What a reader of a feed in this process waits on.
#[derive(Debug)]
pub struct Changes(tokio::sync::watch::Receiver<u64>);

impl Changes {
    /// Waits until events were committed since the last call (or since
    /// [`Notifier::subscribe`]); at once if they already were.
    pub async fn changed(&mut self) {
        if self.0.changed().await.is_err() {
            // The producer is gone: nothing will ever change again.
            std::future::pending::<()>().await;
        }
    }
}

/// Schemas by name, as a document's components hold them.
pub type Schemas = Vec<(
    String,
    utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
)>;

/// A type of event a module publishes, as its AsyncAPI document tells it
/// ([`Kind::describe`]).
#[derive(Debug)]
pub struct EventType {
    /// As in `port.renamed`.
    pub kind: &'static str,
    /// One line: what happened.
    pub summary: &'static str,
    /// Replaced, and published for the last release's consumers only.
    pub deprecated: bool,
    /// Adds the schema of the event's data (and the schemas it refers to)
    /// to `schemas`, and names it.
    pub data: fn(&mut Schemas) -> String,
}

/// Adds `T`'s schema, and those it refers to, to `schemas`; its name.
pub fn resource<T: utoipa::ToSchema>(schemas: &mut Schemas) -> String {
    T::schemas(schemas);
    let name = T::name().into_owned();
    schemas.push((name.clone(), T::schema()));
    name
}

/// How a module's followers treat an event they fail to apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    /// Attempts at one event before it is dead-lettered.
    pub max_attempts: u32,
}

impl Default for Delivery {
    fn default() -> Self {
        Self { max_attempts: 5 }
    }
}

impl Delivery {
    /// The wait before the next attempt at an event that failed `failed`
    /// times: 100 ms, doubling, at most 10 s.
    pub fn backoff(&self, failed: u32) -> std::time::Duration {
        let millis = 100u64.saturating_mul(1 << failed.saturating_sub(1).min(10));
        std::time::Duration::from_millis(millis.min(10_000))
    }
}

/// An event a module failed to apply `max_attempts` times, kept apart in
/// its `events_dead` table until `app events retry` asks for it again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadEvent {
    /// The module that failed to apply it.
    pub module: String,
    /// The feed it came from, as in `ports`.
    pub feed: String,
    pub event: CloudEvent,
    /// Why the last attempt failed.
    pub error: String,
    pub attempts: i64,
    #[serde(serialize_with = "app_http::time::rfc3339")]
    pub failed_at: DateTime<Utc>,
    /// Whether `app events retry` asked for it: the module's follower applies
    /// it again, and drops it from here when that works.
    pub retry: bool,
}

/// Why a feed could not be read: its producer, or its database, is down.
pub type FeedError = Box<dyn std::error::Error + Send + Sync>;

/// A module's events, as its followers read them: in this process, or
/// over HTTP from another. A producer's contract offers one.
#[async_trait::async_trait]
pub trait Feed: Send + Sync {
    /// The producing module, as in `ports`.
    fn producer(&self) -> &'static str;

    /// Up to `limit` events with `seq` above `after`, oldest first.
    async fn read(&self, after: i64, limit: i64) -> Result<Events, FeedError>;

    /// When the producer runs in this process: what to wait on for new
    /// events. Elsewhere, `None`: the feed is polled.
    fn changes(&self) -> Option<Changes> {
        None
    }
}
