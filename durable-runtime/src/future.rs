//! The boxed future every layer passes around (the stores' commits, the
//! clock's sleeps, activities' attempts); public as
//! [`activity::BoxFuture`](crate::activity::BoxFuture).

use std::future::Future;
use std::pin::Pin;

/// A boxed, sendable future.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;
