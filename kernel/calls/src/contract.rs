//! How a module reaches another: a contract crate exports a [`Contract`],
//! which says how to reach its module over HTTP and what answers when it
//! runs nowhere known; the module itself provides the in-process answer.
//! The caller holds an [`Api`] and cannot tell which it has.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use crate::peer::Peer;

/// How other modules reach a module: what its contract crate knows.
pub struct Contract {
    /// The module that answers it.
    pub module: &'static str,
    /// The module's API when it runs in another process.
    pub over_http: fn(Arc<Peer>) -> Api,
    /// The module's API when it runs nowhere known: every call fails, with
    /// `hint` saying how to tell this process where it is.
    pub missing: fn(hint: String) -> Api,
}

impl fmt::Debug for Contract {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "contract of {}", self.module)
    }
}

/// A module's API as another module holds it: its contract's
/// `Arc<dyn Trait>`, with the type erased so the binary can pass it on.
#[derive(Clone)]
pub struct Api(Arc<dyn Any + Send + Sync>);

impl Api {
    pub fn new<T: Any + Send + Sync>(api: T) -> Self {
        Self(Arc::new(api))
    }

    /// The API as `T`, the contract's `Arc<dyn Trait>`.
    pub fn get<T: Any + Clone>(&self) -> Option<T> {
        self.0.downcast_ref::<T>().cloned()
    }
}
