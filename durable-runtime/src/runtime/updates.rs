//! Sending updates to running instances and waiting for their replies
//! ([`crate::update`]).

use std::time::Duration;

use serde::{Serialize, de::DeserializeOwned};

use super::Runtime;
use crate::codec;
use crate::error::{SignalError, UpdateError};
use crate::store::keys;
use crate::update::{self, Sending, Stored, UpdateDef};
use crate::workflow::{Workflow, WorkflowCall};
use crate::{IdPolicy, WorkflowHandle};

impl Runtime {
    /// Sends update `def` with `request` to instance `id` and waits for
    /// the workflow's reply (see [the module](crate::update)). A fresh
    /// update id is drawn: to retry the call after an error, or re-attach
    /// after a restart, give your own with [`Runtime::update_as`].
    ///
    /// ```no_run
    /// # #![allow(dead_code)]
    /// # async fn f(runtime: durable_runtime::Runtime) -> Result<(), durable_runtime::UpdateError> {
    /// use durable_runtime::update::UpdateDef;
    /// const SET_QUANTITY: UpdateDef<u32, u32> = UpdateDef::new("set_quantity");
    /// let total = runtime.update("cart-7", SET_QUANTITY, &3).await?;
    /// # let _ = total; Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`UpdateError::Rejected`] when its validator refuses it (nothing
    /// written), [`UpdateError::Unanswered`] when the instance ends without
    /// replying, [`UpdateError::Send`] when it cannot be sent (an unknown
    /// or ended instance, a payload over the limit or of another layout
    /// than the awaited type, a store failure).
    pub async fn update<Req, Resp>(
        &self,
        id: &str,
        def: UpdateDef<Req, Resp>,
        request: &Req,
    ) -> Result<Resp, UpdateError>
    where
        Req: Serialize + 'static,
        Resp: DeserializeOwned + 'static,
    {
        let update_id = uuid::Uuid::new_v4().to_string();
        self.update_as(id, def, &update_id, request).await
    }

    /// [`Runtime::update`] with the caller's own update id: the update is
    /// accepted once whatever the number of calls with that id (a retry,
    /// a second process), and every call returns the one reply.
    ///
    /// # Errors
    /// As [`Runtime::update`], and [`UpdateError::BadId`] for an empty id,
    /// one with a NUL byte, or one over the id limit.
    pub async fn update_as<Req, Resp>(
        &self,
        id: &str,
        def: UpdateDef<Req, Resp>,
        update_id: &str,
        request: &Req,
    ) -> Result<Resp, UpdateError>
    where
        Req: Serialize + 'static,
        Resp: DeserializeOwned + 'static,
    {
        self.check_update_id(update_id)?;
        if !self.accepted(id, update_id)? {
            let sending = Sending {
                id: update_id,
                request,
            };
            self.validate(id, def.name(), &codec::encode(&sending)?)?;
            let sent = self
                .send(
                    id,
                    &update::signal_name(def.name()),
                    &sending,
                    Some((keys::update(id, update_id), update_id)),
                )
                .await;
            accepted_already(sent)?;
        }
        self.update_reply(id, def, update_id).await
    }

    /// Waits for the reply to update `update_id` of instance `id`, sent
    /// before (by this process or another, before a restart): how a caller
    /// re-attaches.
    ///
    /// # Errors
    /// [`UpdateError::Unknown`] when no such update was accepted,
    /// [`UpdateError::Unanswered`] when the instance ended without
    /// replying, [`UpdateError::Reply`] when the reply does not read as
    /// `Resp`.
    pub async fn update_reply<Req, Resp>(
        &self,
        id: &str,
        def: UpdateDef<Req, Resp>,
        update_id: &str,
    ) -> Result<Resp, UpdateError>
    where
        Resp: DeserializeOwned + 'static,
    {
        let _ = def;
        let stored = loop {
            if let Some(stored) = self.wait_reply(id, update_id, None).await? {
                break stored;
            }
        };
        let bad = |reason: String| UpdateError::Reply {
            id: id.to_owned(),
            update: update_id.to_owned(),
            reason,
        };
        // written by a workflow whose reply type is laid out otherwise: read
        // by name from its JSON, never by position
        if stored.layout == crate::layout::value_of::<Resp>().hash {
            codec::decode(&stored.bytes).map_err(|e| bad(e.to_string()))
        } else {
            serde_json::from_str(&stored.json).map_err(|e| bad(e.to_string()))
        }
    }

    /// Starts instance `id` if it does not exist (keeping it if it does),
    /// then sends it the update and waits for the reply:
    /// "update with start".
    ///
    /// # Errors
    /// As [`Runtime::update_as`]; a failed start is [`UpdateError::Send`].
    pub async fn update_with_start<W, Req, Resp>(
        &self,
        id: impl Into<String>,
        call: WorkflowCall<W>,
        (def, update_id, request): (UpdateDef<Req, Resp>, &str, &Req),
    ) -> Result<(WorkflowHandle<W>, Resp), UpdateError>
    where
        W: Workflow,
        Req: Serialize + 'static,
        Resp: DeserializeOwned + 'static,
    {
        let handle = self
            .start(id, call, IdPolicy::UseExisting)
            .await
            .map_err(SignalError::from)?;
        let reply = self.update_as(handle.id(), def, update_id, request).await?;
        Ok((handle, reply))
    }

    /// Sends update `name` with a JSON request, for tools without its Rust
    /// type (the HTTP API, the CLI), and waits at most `wait` for the
    /// reply: `(update id, Some(reply))`, or `(update id, None)` when it is
    /// accepted but not replied to yet (re-attach with
    /// [`Runtime::update_reply_json`]). The JSON is converted to the type
    /// declared with [`Builder::update_validator`](crate::Builder::update_validator),
    /// or else to the type the instance awaits now.
    ///
    /// # Errors
    /// As [`Runtime::update_as`]; [`SignalError::NotWaiting`] (in
    /// [`UpdateError::Send`]) for an undeclared update the instance does
    /// not await now, [`SignalError::Payload`] for JSON of another shape.
    pub async fn update_json(
        &self,
        id: &str,
        name: &str,
        update_id: Option<&str>,
        request: &serde_json::Value,
        wait: Duration,
    ) -> Result<(String, Option<serde_json::Value>), UpdateError> {
        let update_id = update_id.map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned);
        self.check_update_id(&update_id)?;
        if !self.accepted(id, &update_id)? {
            let payload = serde_json::json!({ "id": update_id, "request": request });
            let signal = update::signal_name(name);
            let mark = Some((keys::update(id, &update_id), update_id.as_str()));
            let sent = match self.engine.updates.get(name) {
                Some(declared) => {
                    let bytes = (declared.payload.from_json)(&payload).map_err(|reason| {
                        SignalError::Payload {
                            id: id.to_owned(),
                            name: signal.clone(),
                            reason,
                        }
                    })?;
                    self.validate(id, name, &bytes)?;
                    self.receiver(id).await?;
                    let traced = (declared.payload.payload.layout)();
                    let layout = traced.layout.as_ref().ok().map(|l| (traced.hash, l));
                    self.signal_encoded(id, &signal, bytes, layout, mark).await
                }
                None => self.send_json(id, &signal, &payload, mark).await,
            };
            accepted_already(sent)?;
        }
        let reply = self.update_reply_json(id, &update_id, wait).await?;
        Ok((update_id, reply))
    }

    /// Waits at most `wait` for the reply to update `update_id` of
    /// instance `id`, as JSON: `None` if it has not come by then.
    ///
    /// # Errors
    /// As [`Runtime::update_reply`].
    pub async fn update_reply_json(
        &self,
        id: &str,
        update_id: &str,
        wait: Duration,
    ) -> Result<Option<serde_json::Value>, UpdateError> {
        let Some(stored) = self.wait_reply(id, update_id, Some(wait)).await? else {
            return Ok(None);
        };
        serde_json::from_str(&stored.json)
            .map(Some)
            .map_err(|e| UpdateError::Reply {
                id: id.to_owned(),
                update: update_id.to_owned(),
                reason: e.to_string(),
            })
    }

    /// Refuses an update id that cannot be a key.
    fn check_update_id(&self, update_id: &str) -> Result<(), UpdateError> {
        let bad = |reason: String| {
            Err(UpdateError::BadId {
                update: update_id.to_owned(),
                reason,
            })
        };
        if update_id.is_empty() || update_id.contains('\0') {
            return bad("it must be non-empty, without NUL".into());
        }
        let limit = self.engine.limits.id_bytes;
        if update_id.len() > limit {
            return bad(crate::limits::over(
                "update id",
                update_id.len(),
                limit,
                "id_bytes",
            ));
        }
        Ok(())
    }

    /// Whether update `update_id` of instance `id` was accepted before.
    fn accepted(&self, id: &str, update_id: &str) -> Result<bool, UpdateError> {
        Ok(self
            .engine
            .store
            .get(&keys::update(id, update_id))?
            .is_some())
    }

    /// Runs the validator declared for update `name`, if any, on an
    /// encoded [`Update`](crate::update::Update).
    fn validate(&self, id: &str, name: &str, encoded: &[u8]) -> Result<(), UpdateError> {
        let Some(declared) = self.engine.updates.get(name) else {
            return Ok(());
        };
        (declared.validate)(encoded).map_err(|reason| UpdateError::Rejected {
            id: id.to_owned(),
            name: name.to_owned(),
            reason,
        })
    }

    /// The reply to update `update_id` of instance `id` once it is stored,
    /// or `None` after `wait` without one.
    async fn wait_reply(
        &self,
        id: &str,
        update_id: &str,
        wait: Option<Duration>,
    ) -> Result<Option<Stored>, UpdateError> {
        let until = wait.map(|w| tokio::time::Instant::now() + w);
        let key = keys::update(id, update_id);
        let (reply_waiter, end_waiter) = (update::waiter(id), id.to_owned());
        // the reply in `stored` (the reply key), or why none will come
        let look = |ended: Option<crate::Status>,
                    stored: Option<Vec<u8>>|
         -> Result<Option<Stored>, UpdateError> {
            match stored {
                Some(bytes) if !bytes.is_empty() => Ok(Some(codec::decode(&bytes)?)),
                Some(_) => match ended {
                    Some(status) => Err(UpdateError::Unanswered {
                        id: id.to_owned(),
                        update: update_id.to_owned(),
                        status,
                    }),
                    None => Ok(None),
                },
                None => Err(UpdateError::Unknown {
                    id: id.to_owned(),
                    update: update_id.to_owned(),
                }),
            }
        };
        loop {
            let replies = self.engine.waiters.listen(&reply_waiter);
            let ends = self.engine.waiters.listen(&end_waiter);
            let (replied, ended) = (replies.notified(), ends.notified());
            tokio::pin!(replied, ended);
            replied.as_mut().enable();
            ended.as_mut().enable();
            if let Some(stored) = look(None, self.engine.get(&key).await?)? {
                return Ok(Some(stored));
            }
            let status = match self.engine.peek(id).await? {
                None => {
                    return Err(SignalError::NotFound { id: id.to_owned() }.into());
                }
                Some(Ok(record)) => record.status,
                Some(Err(e)) => return Err(e.into()),
            };
            if status.is_terminal() {
                // the reply may have been written with the end: looked at again
                return look(Some(status), self.engine.get(&key).await?);
            }
            // on a shared store the reply is announced by a message; a lost
            // one delays this by at most a second
            let poll = if self.engine.store.shared() {
                Duration::from_secs(1)
            } else {
                Duration::from_secs(3_600)
            };
            let deadline = until.unwrap_or_else(|| tokio::time::Instant::now() + poll);
            let timed_out = tokio::select! {
                () = &mut replied => false,
                () = &mut ended => false,
                () = tokio::time::sleep_until(deadline.min(tokio::time::Instant::now() + poll)) => true,
            };
            if timed_out && until.is_some_and(|u| tokio::time::Instant::now() >= u) {
                return look(None, self.engine.get(&key).await?);
            }
        }
    }
}

/// A send refused because the update's mark exists: accepted by an
/// earlier call with the same id, which is what the caller wanted.
fn accepted_already(sent: Result<(), SignalError>) -> Result<(), UpdateError> {
    match sent {
        Ok(()) | Err(SignalError::AlreadyCompleted { .. }) => Ok(()),
        Err(e) => Err(e.into()),
    }
}
