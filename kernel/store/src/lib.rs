//! Storage: each module's database (its pool, and on SQLite the group
//! commit that writes it), how storage fails, and each module's outbox of
//! events. Knows no module.

pub mod db;
pub mod error;
pub mod outbox;
