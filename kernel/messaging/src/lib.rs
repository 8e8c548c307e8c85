//! Events between modules: the relay that publishes each module's outbox
//! to RabbitMQ, the queues followers consume, and the one follower that
//! applies another module's events. Knows no module.

pub mod broker;
pub mod follow;
