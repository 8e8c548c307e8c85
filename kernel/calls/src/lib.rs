//! Calls between modules that run in different processes: a [`peer`] is
//! another process's module, called with retries, a timeout and a
//! [`breaker`]; each call carries the request's [`trace`] context and the
//! caller's credentials; a [`contract`] says how a module is reached.
//! Knows no module, and nothing of storage or events.

pub mod breaker;
pub mod contract;
pub mod peer;
pub mod trace;
