//! RabbitMQ between the processes of a split (`--broker`).
//!
//! Each module that records events has a topic exchange, `NAME.events`; its
//! relay publishes every event of its outbox there, routed by type, and
//! advances past it only once the broker confirmed it. Each module that
//! follows another has one durable queue on the other's exchange,
//! `FOLLOWER.PRODUCER.events`, bound to the types it follows: its replicas
//! share it, one consuming at a time (`x-single-active-consumer`), so each
//! event is applied once per module and in order. A message is acknowledged
//! once its effect committed.

use std::fmt;
use std::time::Duration;

use futures_util::StreamExt as _;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use sqlx::Acquire as _;

use app_events::{Changes, CloudEvent};
use app_store::db::Db;
use app_store::outbox;

/// The content type of a published event: a CloudEvent in structured mode.
pub const CONTENT_TYPE: &str = "application/cloudevents+json";
/// How long connecting, or one batch's publishing and confirms, may take.
const TIMEOUT: Duration = Duration::from_secs(10);
/// How many events the relay publishes before it waits for their confirms.
const BATCH: i64 = 100;
/// How often the relay looks at the outbox when no commit of this process
/// woke it: for the commits of other replicas that died before publishing.
const POLL: Duration = Duration::from_secs(1);

/// Records whether `module`'s `role` (`relay`, `consumer`) holds a
/// connection to the broker: `app_broker_connected`.
pub fn connected(module: &'static str, role: &'static str, up: bool) {
    metrics::gauge!("app_broker_connected", "module" => module, "role" => role).set(if up {
        1.0
    } else {
        0.0
    });
}

/// Where the broker is: an `amqp://user:password@host:port/vhost` URL,
/// never shown with its password.
#[derive(Clone, PartialEq, Eq)]
pub struct Broker {
    url: String,
}

impl fmt::Debug for Broker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Broker({})", self.redacted())
    }
}

/// Why the broker could not be used.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("the broker failed: {0}")]
    Amqp(#[from] lapin::Error),
    #[error("the broker did not answer within {0:?}")]
    Timeout(Duration),
    #[error("the broker refused to confirm an event")]
    Refused,
    #[error("the broker closed the consumer")]
    Closed,
}

impl Broker {
    /// A broker at `url`, `amqp://` (this build has no TLS for `amqps://`).
    pub fn parse(url: &str) -> Result<Self, String> {
        let parsed = reqwest::Url::parse(url).map_err(|e| format!("not a URL: {e}"))?;
        match parsed.scheme() {
            "amqp" => Ok(Self {
                url: url.to_owned(),
            }),
            "amqps" => Err("amqps:// is not supported by this build: use amqp://".to_owned()),
            other => Err(format!(
                "the scheme is {other}:// where amqp:// is expected"
            )),
        }
    }

    /// The URL without its password, for logs.
    pub fn redacted(&self) -> String {
        match reqwest::Url::parse(&self.url) {
            Ok(mut url) => {
                if url.password().is_some() {
                    let _ = url.set_password(Some("***"));
                }
                url.to_string()
            }
            Err(_) => "amqp://?".to_owned(),
        }
    }

    /// A new connection, named after `module` in the broker's tools.
    async fn connect(&self, module: &str) -> Result<Connection, BrokerError> {
        let properties =
            ConnectionProperties::default().with_connection_name(format!("app {module}").into());
        within(Connection::connect(&self.url, properties)).await
    }

    /// The exchange of `module`'s events.
    pub fn exchange(module: &str) -> String {
        format!("{module}.events")
    }

    /// A channel with the exchange of `module`'s events declared.
    async fn producer(&self, module: &str) -> Result<(Connection, Channel), BrokerError> {
        let connection = self.connect(module).await?;
        let channel = within(connection.create_channel()).await?;
        declare_exchange(&channel, module).await?;
        within(channel.confirm_select(ConfirmSelectOptions::default())).await?;
        Ok((connection, channel))
    }

    /// `follower`'s queue of the events of `producer` whose types are
    /// `kinds`, declared and bound, and consumed `prefetch` at a time.
    pub async fn subscribe(
        &self,
        follower: &str,
        producer: &str,
        kinds: &[&str],
        prefetch: u16,
    ) -> Result<Inbox, BrokerError> {
        let connection = self.connect(follower).await?;
        let channel = within(connection.create_channel()).await?;
        declare_exchange(&channel, producer).await?;
        let queue = format!("{follower}.{producer}.events");
        let mut arguments = FieldTable::default();
        arguments.insert("x-single-active-consumer".into(), AMQPValue::Boolean(true));
        within(channel.queue_declare(
            queue.as_str().into(),
            QueueDeclareOptions {
                durable: true,
                ..QueueDeclareOptions::default()
            },
            arguments,
        ))
        .await?;
        Inbox::consume(connection, channel, queue, producer, kinds, prefetch).await
    }
}

impl Broker {
    /// A queue of this process's own, bound to every event of `module`,
    /// that the broker drops when the process goes: how each replica
    /// hears of the writes of the others.
    pub async fn watch(&self, module: &str, prefetch: u16) -> Result<Inbox, BrokerError> {
        let connection = self.connect(&format!("{module} cache")).await?;
        let channel = within(connection.create_channel()).await?;
        declare_exchange(&channel, module).await?;
        let declared = within(channel.queue_declare(
            "".into(),
            QueueDeclareOptions {
                exclusive: true,
                auto_delete: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        ))
        .await?;
        let queue = declared.name().to_string();
        let mut inbox =
            Inbox::consume(connection, channel, queue, module, &["#"], prefetch).await?;
        // Named for what it is in metrics: one per process.
        inbox.queue = format!("{module}.cache");
        Ok(inbox)
    }
}

async fn declare_exchange(channel: &Channel, module: &str) -> Result<(), BrokerError> {
    within(channel.exchange_declare(
        Broker::exchange(module).as_str().into(),
        ExchangeKind::Topic,
        ExchangeDeclareOptions {
            durable: true,
            ..ExchangeDeclareOptions::default()
        },
        FieldTable::default(),
    ))
    .await
}

/// `work`, unless it takes longer than [`TIMEOUT`].
async fn within<T>(work: impl Future<Output = Result<T, lapin::Error>>) -> Result<T, BrokerError> {
    tokio::time::timeout(TIMEOUT, work)
        .await
        .map_err(|_| BrokerError::Timeout(TIMEOUT))?
        .map_err(BrokerError::from)
}

/// A module's queue of another's events, as it consumes it.
pub struct Inbox {
    /// Kept open for as long as the queue is consumed.
    _connection: Connection,
    channel: Channel,
    consumer: lapin::Consumer,
    queue: String,
}

/// Messages received from an [`Inbox`], to acknowledge once applied.
#[derive(Debug, Default)]
pub struct Received {
    /// The events, in the order they were published.
    pub events: Vec<CloudEvent>,
    /// The delivery tag of the last message, events or not.
    last: Option<u64>,
    /// How many messages, events or not.
    count: usize,
}

impl Received {
    /// How many messages were received, events or not.
    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}

impl Inbox {
    /// `queue`, declared on `channel`, bound to `producer`'s exchange for
    /// each of `keys`, and consumed `prefetch` at a time.
    async fn consume(
        connection: Connection,
        channel: Channel,
        queue: String,
        producer: &str,
        keys: &[&str],
        prefetch: u16,
    ) -> Result<Self, BrokerError> {
        let exchange = Broker::exchange(producer);
        for key in keys {
            within(channel.queue_bind(
                queue.as_str().into(),
                exchange.as_str().into(),
                (*key).into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            ))
            .await?;
        }
        within(channel.basic_qos(prefetch, BasicQosOptions::default())).await?;
        let consumer = within(channel.basic_consume(
            queue.as_str().into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        ))
        .await?;
        Ok(Self {
            _connection: connection,
            channel,
            consumer,
            queue,
        })
    }

    /// Waits up to `wait` for a message, then takes those already there,
    /// `max` in all. A message that is not an event is dropped, logged.
    pub async fn receive(&mut self, max: usize, wait: Duration) -> Result<Received, BrokerError> {
        let mut received = Received::default();
        let first = match tokio::time::timeout(wait, self.consumer.next()).await {
            Err(_) => return Ok(received),
            Ok(None) => return Err(BrokerError::Closed),
            Ok(Some(delivery)) => delivery?,
        };
        let mut next = Some(first);
        while let Some(message) = next.take() {
            received.last = Some(message.delivery_tag);
            received.count += 1;
            match serde_json::from_slice::<CloudEvent>(&message.data) {
                Ok(event) => received.events.push(event),
                Err(error) => {
                    tracing::error!(queue = %self.queue, %error, "a message that is not an event was dropped");
                    metrics::counter!("app_broker_dropped_total", "queue" => self.queue.clone())
                        .increment(1);
                }
            }
            if received.count < max {
                next = match futures_util::FutureExt::now_or_never(self.consumer.next()) {
                    Some(Some(delivery)) => Some(delivery?),
                    Some(None) => return Err(BrokerError::Closed),
                    None => None,
                };
            }
        }
        metrics::counter!("app_events_received_total", "queue" => self.queue.clone())
            .increment(received.events.len() as u64);
        Ok(received)
    }

    /// Acknowledges every message of `received`: their effects committed.
    pub async fn ack(&self, received: &Received) -> Result<(), BrokerError> {
        if let Some(tag) = received.last {
            within(
                self.channel
                    .basic_ack(tag, BasicAckOptions { multiple: true }),
            )
            .await?;
        }
        Ok(())
    }
}

/// The relay of one module: publishes its outbox to its exchange, in
/// order, at least once, for as long as the process serves.
pub struct Relay {
    pub broker: Broker,
    pub module: &'static str,
    /// The API path events name as their source, as in `/api/v1/ports`.
    pub source: String,
    pub db: Db,
    /// The module's commits in this process.
    pub changes: Changes,
}

impl Relay {
    /// Publishes events as they commit; while the broker or the database
    /// is down, they wait in the outbox, and the relay tries again.
    pub async fn run(mut self) {
        connected(self.module, "relay", false);
        let mut down = false;
        loop {
            let channel = match self.broker.producer(self.module).await {
                Ok(connected) => {
                    self::connected(self.module, "relay", true);
                    if std::mem::take(&mut down) {
                        tracing::info!(module = self.module, "publishing events again");
                    }
                    connected
                }
                Err(error) => {
                    if !down {
                        down = true;
                        tracing::warn!(module = self.module, broker = %self.broker.redacted(), %error, "cannot reach the broker; events wait in the outbox");
                    }
                    tokio::time::sleep(POLL).await;
                    continue;
                }
            };
            loop {
                match self.publish(&channel.1).await {
                    Ok(true) => continue,
                    Ok(false) => {
                        let _ = tokio::time::timeout(POLL, self.changes.changed()).await;
                    }
                    Err(Failure::Broker(error)) => {
                        self::connected(self.module, "relay", false);
                        down = true;
                        tracing::warn!(module = self.module, %error, "lost the broker; events wait in the outbox");
                        tokio::time::sleep(POLL).await;
                        break;
                    }
                    Err(Failure::Db(error)) => {
                        tracing::warn!(module = self.module, %error, "cannot read the outbox; will retry");
                        tokio::time::sleep(POLL).await;
                    }
                }
            }
        }
    }

    /// Publishes the next events of the outbox; `true` if there may be more.
    async fn publish(&self, channel: &Channel) -> Result<bool, Failure> {
        let (published, remaining) = match &self.db {
            Db::Sqlite(pool) => {
                let mut conn = pool.acquire().await?;
                let (after,): (i64,) = sqlx::query_as("select seq from events_relay")
                    .fetch_one(&mut *conn)
                    .await?;
                let page = outbox::sqlite::read(&mut conn, &self.source, after, BATCH).await?;
                let Some(last) = self.confirmed(channel, &page.items).await? else {
                    return Ok(false);
                };
                sqlx::query("update events_relay set seq = ?1")
                    .bind(last)
                    .execute(&mut *conn)
                    .await?;
                (page.items.len(), page.remaining)
            }
            Db::Postgres(pool) => {
                // The row lock makes the relays of a module's replicas take
                // turns: events are published in order, each once unless a
                // relay dies before it commits.
                let mut conn = pool.acquire().await?;
                outbox::postgres::sequence(&mut conn, self.module).await?;
                let mut tx = conn.begin().await?;
                let select = format!("select seq from {}.events_relay for update", self.module);
                let (after,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(select))
                    .fetch_one(&mut *tx)
                    .await?;
                let page = outbox::postgres::read_sequenced(
                    &mut tx,
                    self.module,
                    &self.source,
                    after,
                    BATCH,
                )
                .await?;
                let Some(last) = self.confirmed(channel, &page.items).await? else {
                    return Ok(false);
                };
                let update = format!("update {}.events_relay set seq = $1", self.module);
                sqlx::query(sqlx::AssertSqlSafe(update))
                    .bind(last)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                (page.items.len(), page.remaining)
            }
        };
        metrics::counter!("app_events_published_total", "module" => self.module)
            .increment(published as u64);
        metrics::gauge!("app_relay_behind_rows", "module" => self.module)
            .set((remaining - published as i64) as f64);
        Ok(published as i64 == BATCH)
    }

    /// Publishes `events` and waits for the broker to confirm each: the
    /// `seq` of the last, or `None` if there were none.
    async fn confirmed(
        &self,
        channel: &Channel,
        events: &[CloudEvent],
    ) -> Result<Option<i64>, Failure> {
        let Some(last) = events.last() else {
            return Ok(None);
        };
        let exchange = Broker::exchange(self.module);
        let publish = async {
            let mut confirms = Vec::with_capacity(events.len());
            for event in events {
                let body = serde_json::to_vec(event).expect("an event is JSON");
                let properties = BasicProperties::default()
                    .with_delivery_mode(2)
                    .with_message_id(event.id.as_str().into())
                    .with_content_type(CONTENT_TYPE.into())
                    .with_type(event.kind.as_str().into())
                    .with_app_id(self.module.into());
                confirms.push(
                    channel
                        .basic_publish(
                            exchange.as_str().into(),
                            event.kind.as_str().into(),
                            BasicPublishOptions::default(),
                            &body,
                            properties,
                        )
                        .await?,
                );
            }
            for confirm in confirms {
                if !confirm.await?.is_ack() {
                    return Err(BrokerError::Refused);
                }
            }
            Ok(())
        };
        tokio::time::timeout(TIMEOUT, publish)
            .await
            .map_err(|_| BrokerError::Timeout(TIMEOUT))??;
        Ok(Some(last.seq))
    }
}

enum Failure {
    Broker(BrokerError),
    Db(sqlx::Error),
}

impl From<BrokerError> for Failure {
    fn from(error: BrokerError) -> Self {
        Failure::Broker(error)
    }
}

impl From<lapin::Error> for Failure {
    fn from(error: lapin::Error) -> Self {
        Failure::Broker(error.into())
    }
}

impl From<sqlx::Error> for Failure {
    fn from(error: sqlx::Error) -> Self {
        Failure::Db(error)
    }
}
