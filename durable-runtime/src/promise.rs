//! Promises: a value an outside system supplies (a payment provider's
//! webhook, a person's approval link, another service's callback).
//!
//! A workflow creates a promise, hands its token to whoever will complete
//! it (usually through an activity), and awaits it, alone or raced with a
//! timer; the outside completes it exactly once with
//! [`Runtime::complete`](crate::Runtime::complete) (or
//! `POST /api/promises/{token}` with a JSON body):
//!
//! ```
//! use durable_runtime::prelude::*;
//! use durable_runtime::promise::{Promise, promise};
//! # #[derive(serde::Serialize, serde::Deserialize, Debug, Clone)]
//! # pub struct Paid { pub cents: u64 }
//! # #[activity]
//! # async fn send_payment_link(order: String, token: String) -> Result<(), ActivityError> {
//! #     let _ = (order, token);
//! #     Ok(())
//! # }
//!
//! #[workflow]
//! async fn checkout(order: String) -> Result<String, WorkflowError> {
//!     let paid: Promise<Paid> = promise().await;
//!     send_payment_link(order.clone(), paid.token().to_owned()).await?;
//!     match select(paid.wait(), sleep(std::time::Duration::from_secs(3_600))).await {
//!         Either::Left(Ok(p)) => Ok(format!("{order}: paid {} cents", p.cents)),
//!         _ => Ok(format!("{order}: not paid within the hour")),
//!     }
//! }
//! ```
//!
//! The token names the instance and the promise (`<instance id>#<uuid>`);
//! it is recorded in the state like [`uuid()`](crate::uuid), so a resumed
//! instance keeps it. A completion is a durable signal to that instance,
//! stored with a mark that refuses a second completion
//! ([`SignalError::AlreadyCompleted`](crate::SignalError::AlreadyCompleted));
//! it may come before the workflow awaits it (it is kept until then; from
//! JSON, only once the workflow awaits it, since the JSON's type is known
//! only then). The marks go with the instance when retention deletes it.

use std::marker::PhantomData;

use serde::{Deserialize, Serialize};

use crate::codec::CodecError;
use crate::command::{Command, Executor, Request, SignalWait, signal};

/// A value of type `T` that something outside the workflow will supply:
/// see [the module](self).
#[derive(Serialize, Deserialize)]
#[serde(bound = "")]
pub struct Promise<T> {
    token: String,
    #[serde(skip)]
    _value: PhantomData<fn() -> T>,
}

impl<T> Clone for Promise<T> {
    fn clone(&self) -> Self {
        Promise {
            token: self.token.clone(),
            _value: PhantomData,
        }
    }
}

impl<T> std::fmt::Debug for Promise<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Promise({})", self.token)
    }
}

impl<T> Promise<T> {
    /// What completes it: give it to the system that will
    /// ([`Runtime::complete`](crate::Runtime::complete)).
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Waits for the value (`Err(Cancelled)` if the instance is cancelled
    /// meanwhile); race it with a timer in [`select`](crate::select) to
    /// bound the wait.
    pub fn wait(&self) -> SignalWait<T> {
        let (_, key) = split(&self.token).unwrap_or(("", &self.token));
        signal(signal_name(key))
    }
}

/// The command behind [`promise`].
pub struct NewPromise<T>(PhantomData<fn() -> T>);

impl<T> std::fmt::Debug for NewPromise<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NewPromise")
    }
}

impl<T: Send + 'static> Command for NewPromise<T> {
    type Output = Promise<T>;
    fn into_request(self) -> Result<Request, CodecError> {
        Ok(Request::Promise)
    }
    fn executor() -> Executor {
        Executor::Builtin
    }
}

impl<T> std::future::IntoFuture for NewPromise<T> {
    type Output = Promise<T>;
    type IntoFuture = std::future::Ready<Promise<T>>;
    /// Outside a workflow (in `run_inline`) nothing can complete it: a
    /// token that names no instance.
    fn into_future(self) -> Self::IntoFuture {
        std::future::ready(Promise {
            token: format!("#{}", uuid::Uuid::new_v4()),
            _value: PhantomData,
        })
    }
}

/// A new promise of a `T`, its token recorded in the workflow's state:
/// `let paid: Promise<Paid> = promise().await;`.
pub fn promise<T>() -> NewPromise<T> {
    NewPromise(PhantomData)
}

/// A new token for a promise of instance `id`.
pub(crate) fn new_token(id: &str) -> String {
    format!("{id}#{}", uuid::Uuid::new_v4())
}

/// The instance and the promise's own key a token names.
pub(crate) fn split(token: &str) -> Option<(&str, &str)> {
    let (id, key) = token.rsplit_once('#')?;
    (!id.is_empty() && uuid::Uuid::parse_str(key).is_ok()).then_some((id, key))
}

/// The signal a completion of promise `key` is delivered as.
pub(crate) fn signal_name(key: &str) -> String {
    format!("promise/{key}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_names_its_instance_even_one_with_hashes_in_its_id() {
        let token = new_token("order#7/2");
        let (id, key) = split(&token).unwrap();
        assert_eq!(id, "order#7/2");
        assert!(uuid::Uuid::parse_str(key).is_ok());
        for bad in [
            "",
            "order-7",
            "order-7#",
            "#d3b07384-d9a0-4c1f-8d3a-0b6b3f1e7a11",
            "o#not-a-uuid",
        ] {
            assert_eq!(split(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_promise_is_stored_as_its_token() {
        let p: Promise<u32> = Promise {
            token: "o#x".into(),
            _value: PhantomData,
        };
        let bytes = crate::codec::encode(&p).unwrap();
        assert_eq!(bytes, crate::codec::encode(&"o#x".to_owned()).unwrap());
    }
}
