//! Typed queries: a view of the locals an instance holds at its current
//! await, declared once and read by caller-side type.
//!
//! A [`QueryDef<V>`] names a query and its view type `V`, a struct whose
//! fields are locals the workflow keeps across its awaits (or any subset of
//! them). [`Runtime::query`](crate::Runtime::query) reads the instance's
//! state through the workflow's own encoding (rendered by the layout that
//! wrote it, as `Runtime::state_json` does) and takes `V`'s fields from the
//! current await's locals **by name**, never by position: a local the
//! current await does not hold, or holds as another type, is a clear
//! [`QueryError::NotHeld`] naming it, not a misread. Share the declaration
//! between the workflow's crate and its callers, as with
//! [`SignalDef`](crate::command::SignalDef) and
//! [`UpdateDef`](crate::update::UpdateDef).
//!
//! ```no_run
//! # #![allow(dead_code)]
//! # use durable_runtime::{Runtime, query::QueryDef};
//! #[derive(serde::Deserialize)]
//! struct Progress {
//!     /// locals of the workflow, by name
//!     shipped: u32,
//!     total: u32,
//! }
//! const PROGRESS: QueryDef<Progress> = QueryDef::new("progress");
//!
//! # async fn run(runtime: &Runtime) -> Result<(), durable_runtime::query::QueryError> {
//! let p = runtime.query("order-7", PROGRESS)?;
//! println!("{} of {} shipped", p.shipped, p.total);
//! # Ok(()) }
//! ```

use std::marker::PhantomData;

use crate::Status;

/// A query's name and the type of its view (see the [module](self)).
pub struct QueryDef<V> {
    name: &'static str,
    _view: PhantomData<fn() -> V>,
}

impl<V> QueryDef<V> {
    /// Declares query `name` answered as a `V`.
    pub const fn new(name: &'static str) -> Self {
        QueryDef {
            name,
            _view: PhantomData,
        }
    }

    /// Its name.
    pub const fn name(&self) -> &'static str {
        self.name
    }
}

impl<V> Clone for QueryDef<V> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<V> Copy for QueryDef<V> {}

impl<V> std::fmt::Debug for QueryDef<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "QueryDef({})", self.name)
    }
}

/// Why a query has no answer.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum QueryError {
    /// No instance has this id.
    #[error("[DURABLE-QUERY] no workflow instance `{id}`")]
    NotFound {
        /// The id asked for.
        id: String,
    },
    /// The instance has ended: it holds no state (read its result).
    #[error("[DURABLE-QUERY] `{id}` has ended ({status:?}): it holds no state to query")]
    Ended {
        /// The instance id.
        id: String,
        /// How it ended.
        status: Status,
    },
    /// The current await does not hold what the view asks for.
    #[error(
        "[DURABLE-QUERY] query `{query}` of `{id}`: at `{variant}` the instance does not hold it as asked: {reason}"
    )]
    NotHeld {
        /// The instance id.
        id: String,
        /// The query's name.
        query: String,
        /// The await (state variant) it is at.
        variant: String,
        /// Which local is missing or of another type.
        reason: String,
    },
    /// The state could not be read (its code and layout are not at hand,
    /// storage failed).
    #[error(transparent)]
    Read(#[from] crate::ResultError),
}
