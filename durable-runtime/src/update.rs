//! Updates: a request to a running workflow that gets a reply.
//!
//! A signal is fire-and-forget; an update is a question. The sender and the
//! workflow share one typed declaration, an [`UpdateDef`]; the workflow
//! receives the next update with [`UpdateDef::receive`] (alone, or raced
//! with a timer in [`select`](crate::select)) and answers it with
//! [`Update::reply`]; the caller's
//! [`Runtime::update`](crate::Runtime::update) returns that reply.
//!
//! ```
//! use durable_runtime::prelude::*;
//! use durable_runtime::update::UpdateDef;
//!
//! /// Change the shipping address of an order not yet shipped.
//! pub const CHANGE_ADDRESS: UpdateDef<String, Result<String, String>> =
//!     UpdateDef::new("change_address");
//!
//! #[workflow]
//! async fn order(mut address: String) -> Result<String, WorkflowError> {
//!     match select(CHANGE_ADDRESS.receive(), sleep(std::time::Duration::from_secs(3_600))).await {
//!         Either::Left(Ok(update)) => {
//!             address = update.request().clone();
//!             update.reply(Ok(format!("will ship to {address}"))).await;
//!         }
//!         _ => {}
//!     }
//!     Ok(format!("shipped to {address}"))
//! }
//! ```
//!
//! What holds:
//!
//! - **Validated before it is accepted.** A validator registered with
//!   [`Builder::update_validator`](crate::Builder::update_validator) runs in
//!   the caller's process; a rejected update
//!   ([`UpdateError::Rejected`](crate::UpdateError::Rejected)) writes
//!   nothing and is not in the history.
//! - **Accepted durably, once.** An accepted update is a durable signal
//!   named `update/<name>` (buffered until the workflow receives it, in the
//!   order sent), written with a mark for its update id that the commit
//!   requires absent: a call retried with the same id
//!   ([`Runtime::update_as`](crate::Runtime::update_as)) is not accepted
//!   twice, and returns the same reply.
//! - **The reply is checkpointed** with the transition that makes it (it
//!   replaces the mark), so a caller that restarts re-attaches with
//!   [`Runtime::update_reply`](crate::Runtime::update_reply) and reads it,
//!   and the history shows `UpdateReplied`. A reply is kept with the
//!   reply's JSON, read by name when the caller's type is laid out
//!   otherwise than the workflow's.
//! - An instance that ends without replying answers its waiting callers
//!   with [`UpdateError::Unanswered`](crate::UpdateError::Unanswered).

use std::marker::PhantomData;

use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::codec::{self, CodecError};
use crate::command::{Command, Executor, Request, SignalWait, signal};

/// An update a workflow accepts: its name, the request's type `Req` and
/// the reply's type `Resp`. Declare it once (a `const`) where both the
/// workflow and its callers see it.
pub struct UpdateDef<Req, Resp> {
    name: &'static str,
    _types: PhantomData<fn(Req) -> Resp>,
}

impl<Req, Resp> UpdateDef<Req, Resp> {
    /// The update called `name`.
    pub const fn new(name: &'static str) -> Self {
        UpdateDef {
            name,
            _types: PhantomData,
        }
    }

    /// Its name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Waits for the next accepted update of this kind (`Err(Cancelled)` if
    /// the instance is cancelled meanwhile); reply to it with
    /// [`Update::reply`].
    pub fn receive(&self) -> SignalWait<Update<Req, Resp>> {
        signal(signal_name(self.name))
    }
}

impl<Req, Resp> Clone for UpdateDef<Req, Resp> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<Req, Resp> Copy for UpdateDef<Req, Resp> {}

impl<Req, Resp> std::fmt::Debug for UpdateDef<Req, Resp> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "UpdateDef({})", self.name)
    }
}

/// An accepted update the workflow received: its request, and what
/// replies to it.
#[derive(Serialize, Deserialize)]
#[serde(bound(serialize = "Req: Serialize", deserialize = "Req: DeserializeOwned"))]
pub struct Update<Req, Resp> {
    id: String,
    request: Req,
    #[serde(skip)]
    _reply: PhantomData<fn() -> Resp>,
}

impl<Req: Clone, Resp> Clone for Update<Req, Resp> {
    fn clone(&self) -> Self {
        Update {
            id: self.id.clone(),
            request: self.request.clone(),
            _reply: PhantomData,
        }
    }
}

impl<Req: std::fmt::Debug, Resp> std::fmt::Debug for Update<Req, Resp> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Update")
            .field("id", &self.id)
            .field("request", &self.request)
            .finish()
    }
}

impl<Req, Resp> Update<Req, Resp> {
    /// Its update id: the caller's ([`Runtime::update_as`](crate::Runtime::update_as)),
    /// or one drawn for it.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The request.
    pub fn request(&self) -> &Req {
        &self.request
    }

    /// The request, taken.
    pub fn into_request(self) -> Req {
        self.request
    }
}

impl<Req, Resp: Serialize + DeserializeOwned + 'static> Update<Req, Resp> {
    /// Replies `response` to the caller: checkpointed with the step it
    /// resumes, then returned by the caller's
    /// [`Runtime::update`](crate::Runtime::update). Await it.
    pub fn reply(&self, response: Resp) -> Reply<Resp> {
        Reply {
            update: self.id.clone(),
            response,
        }
    }
}

/// The command behind [`Update::reply`].
pub struct Reply<Resp> {
    update: String,
    response: Resp,
}

impl<Resp> std::fmt::Debug for Reply<Resp> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Reply({})", self.update)
    }
}

impl<Resp: Serialize + DeserializeOwned + 'static> Command for Reply<Resp> {
    type Output = ();
    fn into_request(self) -> Result<Request, CodecError> {
        let stored = Stored {
            bytes: codec::encode(&self.response)?,
            json: serde_json::to_string(&self.response).map_err(|e| CodecError::Encode {
                type_name: std::any::type_name::<Resp>(),
                reason: e.to_string(),
            })?,
            layout: crate::layout::value_of::<Resp>().hash,
        };
        Ok(Request::Reply {
            update: self.update,
            reply: codec::encode(&stored)?,
        })
    }
    fn executor() -> Executor {
        Executor::Builtin
    }
}

impl<Resp> std::future::IntoFuture for Reply<Resp> {
    type Output = ();
    type IntoFuture = std::future::Ready<()>;
    /// Outside a workflow (in `run_inline`) nobody waits for it.
    fn into_future(self) -> Self::IntoFuture {
        std::future::ready(())
    }
}

/// Judges an encoded [`Update`]: `Err(reason)` rejects it.
pub(crate) type Validator = std::sync::Arc<dyn Fn(&[u8]) -> Result<(), String> + Send + Sync>;

/// What a runtime knows of an update declared to it with
/// [`Builder::update_validator`](crate::Builder::update_validator): its
/// validator, and its request's type (so a JSON update is converted
/// before the workflow awaits it).
#[derive(Clone)]
pub(crate) struct UpdateType {
    /// Judges an encoded [`Update`]: `Err(reason)` rejects it.
    pub(crate) validate: Validator,
    /// The [`Update`] type's codec.
    pub(crate) payload: crate::command::SignalVTable,
}

impl UpdateType {
    /// The declaration `def`, validated by `validate`.
    pub(crate) fn of<Req, Resp>(
        def: UpdateDef<Req, Resp>,
        validate: impl Fn(&Req) -> Result<(), String> + Send + Sync + 'static,
    ) -> UpdateType
    where
        Req: Serialize + DeserializeOwned + Send + 'static,
        Resp: 'static,
    {
        let _ = def;
        UpdateType {
            validate: std::sync::Arc::new(move |bytes| {
                let update: Update<Req, Resp> = codec::decode(bytes).map_err(|e| e.to_string())?;
                validate(update.request())
            }),
            payload: crate::command::SignalVTable::of::<Update<Req, Resp>>(),
        }
    }
}

impl std::fmt::Debug for UpdateType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "UpdateType({})", self.payload.type_name)
    }
}

/// An update as a caller sends it: encoded (and laid out) as [`Update`]
/// is, without copying the request.
#[derive(Serialize)]
#[serde(rename = "Update")]
pub(crate) struct Sending<'a, Req> {
    pub(crate) id: &'a str,
    pub(crate) request: &'a Req,
}

/// A reply as stored under the update's key: its bytes, its JSON (what a
/// caller of another build, or over HTTP, reads) and the layout hash of
/// its type.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Stored {
    pub(crate) bytes: Vec<u8>,
    pub(crate) json: String,
    pub(crate) layout: u64,
}

/// What a caller waiting for a reply of instance `id` listens to.
pub(crate) fn waiter(id: &str) -> String {
    format!("\0y{id}")
}

/// The signal an update called `name` is delivered as.
pub(crate) fn signal_name(name: &str) -> String {
    format!("update/{name}")
}
