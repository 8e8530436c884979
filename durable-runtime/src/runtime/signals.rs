//! Signals to instances: typed or by name, as JSON for tools, with start.

use super::Runtime;
use crate::codec;
use crate::command::{Executor, Request, SignalName};
use crate::engine::{Engine, InstanceRecord};
use crate::error::SignalError;
use crate::store::StoreError;
use crate::workflow::{Workflow, WorkflowCall};
use crate::{IdPolicy, WorkflowHandle};

impl Runtime {
    /// Sends signal `name` to instance `id` with a JSON payload, for tools
    /// (the HTTP API, the web UI) that have no Rust type for it. The JSON
    /// is converted to the type of the instance's pending `signal(name)`
    /// await, so the instance must be waiting for that signal now; from
    /// Rust, [`Runtime::signal`] has no such limit.
    ///
    /// # Errors
    /// [`SignalError::NotWaiting`] if the instance does not wait for
    /// `name` now (or this runtime lacks its workflow's code),
    /// [`SignalError::Payload`] if the JSON does not fit the type, and the
    /// errors of [`Runtime::signal`].
    pub async fn signal_json(
        &self,
        id: &str,
        name: &str,
        payload: &serde_json::Value,
    ) -> Result<(), SignalError> {
        self.send_json(id, name, payload, None).await
    }

    /// [`Runtime::signal_json`], with a promise's `mark` (see [`Runtime::send`]).
    pub(super) async fn send_json(
        &self,
        id: &str,
        name: &str,
        payload: &serde_json::Value,
        mark: Option<(Vec<u8>, &str)>,
    ) -> Result<(), SignalError> {
        let record = self.receiver(id).await?;
        let not_waiting = || SignalError::NotWaiting {
            id: id.to_owned(),
            name: name.to_owned(),
        };
        let entry = self
            .engine
            .workflows
            .exact(&record.workflow, record.fingerprint, record.version)
            .ok_or_else(not_waiting)?;
        let (Some(pending), Ok(executor)) =
            (record.pending.as_ref(), Engine::executor_of(&record, entry))
        else {
            return Err(not_waiting());
        };
        let vtable = signal_vtable(pending, &executor, name).ok_or_else(not_waiting)?;
        let bytes = (vtable.from_json)(payload).map_err(|reason| SignalError::Payload {
            id: id.to_owned(),
            name: name.to_owned(),
            reason,
        })?;
        let awaited = (vtable.payload.layout)();
        let layout = awaited.layout.as_ref().ok().map(|l| (awaited.hash, l));
        self.signal_encoded(id, name, bytes, layout, mark).await
    }

    /// Sends signal `name` with `payload` to instance `id`. Returns once the
    /// signal is durable; it is delivered, in the order sent, to the
    /// instance's next `signal(name)` await (buffered until then).
    ///
    /// # Errors
    /// [`SignalError::NotFound`] for an unknown id, [`SignalError::Finished`]
    /// if the instance has ended.
    pub async fn signal<T: serde::Serialize>(
        &self,
        id: &str,
        name: impl crate::command::SignalName<T>,
        payload: &T,
    ) -> Result<(), SignalError> {
        self.send(id, name.signal_name(), payload, None).await
    }

    /// [`Runtime::signal`], and with `mark` (a promise's completion) the
    /// key that must not exist yet and is written with it.
    pub(super) async fn send<T: serde::Serialize>(
        &self,
        id: &str,
        name: &str,
        payload: &T,
        mark: Option<(Vec<u8>, &str)>,
    ) -> Result<(), SignalError> {
        let bytes = codec::encode(payload)?;
        self.check_signal_size(&bytes)?;
        let record = self.receiver(id).await?;
        let layout = payload_layout(id, name, payload)?;
        self.refuse_misfit(id, name, &record, &layout, std::any::type_name::<T>())?;
        self.signal_encoded(id, name, bytes, Some((layout.hash(), &layout)), mark)
            .await
    }

    /// The record of instance `id`, which a signal is sent to: it must
    /// exist, decode and not have ended.
    pub(super) async fn receiver(&self, id: &str) -> Result<InstanceRecord, SignalError> {
        let record = match self.engine.load(id).await? {
            None => return Err(SignalError::NotFound { id: id.to_owned() }),
            Some(Err(e)) => return Err(SignalError::Codec(e)),
            Some(Ok(record)) => record,
        };
        if record.status.is_terminal() {
            return Err(SignalError::Finished {
                id: id.to_owned(),
                status: record.status,
            });
        }
        Ok(record)
    }

    /// Refuses a payload over [`Limits::signal_bytes`](crate::Limits).
    fn check_signal_size(&self, payload: &[u8]) -> Result<(), SignalError> {
        let limit = self.engine.limits.signal_bytes;
        if payload.len() > limit {
            return Err(SignalError::TooLarge {
                size: payload.len(),
                limit,
            });
        }
        Ok(())
    }

    /// Refuses a payload laid out as `sent` when instance `id` waits for
    /// signal `name` now and awaits a type whose layout the payload cannot
    /// cross by name: it would never be delivered as a misread (at delivery
    /// it would park the instance), so the sender hears of it now.
    pub(super) fn refuse_misfit(
        &self,
        id: &str,
        name: &str,
        record: &InstanceRecord,
        sent: &crate::layout::ValueLayout,
        type_name: &str,
    ) -> Result<(), SignalError> {
        let Some(entry) =
            self.engine
                .workflows
                .exact(&record.workflow, record.fingerprint, record.version)
        else {
            return Ok(());
        };
        let (Some(pending), Ok(executor)) =
            (record.pending.as_ref(), Engine::executor_of(record, entry))
        else {
            return Ok(());
        };
        let Some(vtable) = signal_vtable(pending, &executor, name) else {
            return Ok(());
        };
        let Ok(awaited) = &(vtable.payload.layout)().layout else {
            return Ok(());
        };
        let edits =
            crate::layout::diff::shapes(&sent.shape, &sent.types, &awaited.shape, &awaited.types);
        if crate::layout::diff::compatible(&edits) {
            return Ok(());
        }
        Err(SignalError::Payload {
            id: id.to_owned(),
            name: name.to_owned(),
            reason: format!(
                "the payload is a `{type_name}`, laid out otherwise than the awaited `{}`: {}",
                vtable.type_name,
                edits
                    .iter()
                    .filter(|e| !e.compatible)
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        })
    }

    /// Adds signal `name` of instance `id` (its encoded payload `value`,
    /// as [`decode_signal`](crate::engine::decode_signal) reads it) to
    /// `batch`, under the next sequence number. The payload's layout is
    /// staged apart ([`Engine::store_value_layout`]).
    fn stage_signal(&self, id: &str, value: &[u8], batch: &mut crate::store::Batch) {
        let shared = self.engine.store.shared();
        let seq = if shared {
            // senders in several processes: ordered by the time sent
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64);
            let seq = &self.engine.signal_seq;
            seq.fetch_max(now, std::sync::atomic::Ordering::SeqCst);
            seq.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
        } else {
            self.engine
                .signal_seq
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
        };
        let key = crate::store::keys::signal(id, seq);
        batch.put(key.clone(), value.to_vec());
        if shared {
            // another process may have used the same number; the owner
            // elsewhere hears of it
            batch.expect(key, None).notify(format!("w{id}"));
        }
    }

    /// Stores signal `name` with its encoded payload (and the payload's
    /// layout, once per store) and wakes the instance.
    pub(super) async fn signal_encoded(
        &self,
        id: &str,
        name: &str,
        payload: Vec<u8>,
        layout: Option<(u64, &crate::layout::ValueLayout)>,
        mark: Option<(Vec<u8>, &str)>,
    ) -> Result<(), SignalError> {
        self.check_signal_size(&payload)?;
        let value = codec::encode(&(name, payload, layout.map_or(0, |(hash, _)| hash)))?;
        let mut with = crate::store::Batch::default();
        if let Some((hash, layout)) = layout {
            self.engine.store_value_layout(hash, layout, &mut with)?;
        }
        let signal = Signal {
            id: id.to_owned(),
            name: name.to_owned(),
            value,
            layout: layout.map(|(hash, _)| hash),
            mark: mark.map(|(key, token)| (key, token.to_owned())),
        };
        // stored and delivered in a task of the engine: a caller that stops
        // waiting (a timeout around `signal()`, a dropped request) takes
        // neither the commit nor the wake-up after it with it
        let runtime = self.clone();
        self.engine
            .carried(async move { runtime.deliver(signal, with).await })
            .await?
    }

    /// [`Runtime::signal_encoded`]'s work, in its task: commits `signal`
    /// with the writes of `with`, then wakes its instance.
    async fn deliver(&self, signal: Signal, with: crate::store::Batch) -> Result<(), SignalError> {
        let Signal {
            id,
            name,
            value,
            layout,
            mark,
        } = signal;
        let mut tries = 0;
        loop {
            let mut batch = with.clone();
            self.stage_signal(&id, &value, &mut batch);
            if let Some((mark, _)) = &mark {
                // exactly once: the second completion finds the mark
                batch
                    .expect(mark.clone(), None)
                    .put(mark.clone(), Vec::new());
            }
            match self.engine.store.commit(batch).await {
                Err(StoreError::Conflict { key })
                    if mark
                        .as_ref()
                        .is_some_and(|(m, _)| key == crate::store::printable(m)) =>
                {
                    return Err(SignalError::AlreadyCompleted {
                        token: mark.map(|(_, t)| t).unwrap_or_default(),
                    });
                }
                Err(StoreError::Conflict { .. }) if tries < 3 => tries += 1,
                other => break other?,
            }
        }
        if let Some(hash) = layout {
            self.engine.value_layout_stored(hash);
        }
        self.engine.wake_instance(&id).await?;
        // a select racing activities against this signal is interrupted now,
        // not when its running attempt ends
        let racing = self.engine.book.has_task(&id);
        if racing
            && let Ok(Some(Ok(record))) = self.engine.load(&id).await
            && let Some(crate::command::Request::Select(branches)) = &record.pending
            && branches
                .iter()
                .any(|b| matches!(b, crate::command::Request::Signal { name: n } if *n == name))
        {
            self.engine.interrupts.notify(&id);
        }
        Ok(())
    }

    /// Starts instance `id` if it does not exist (keeping it if it does)
    /// and sends it the signal: "signal with start". A new instance is
    /// created with the signal in one commit (both or neither); an
    /// existing one is signalled.
    ///
    /// # Errors
    /// As [`Runtime::start`] (in [`SignalError::Start`]) and
    /// [`Runtime::signal`].
    pub async fn signal_with_start<W: Workflow, T: serde::Serialize>(
        &self,
        id: impl Into<String>,
        call: WorkflowCall<W>,
        name: impl SignalName<T>,
        payload: &T,
    ) -> Result<WorkflowHandle<W>, SignalError> {
        let (id, name) = (id.into(), name.signal_name().to_owned());
        let bytes = codec::encode(payload)?;
        self.check_signal_size(&bytes)?;
        let layout = payload_layout(&id, &name, payload)?;
        let layout = Some((layout.hash(), &layout));
        let value = codec::encode(&(&name, &bytes, layout.map_or(0, |(hash, _)| hash)))?;
        let mut with = crate::store::Batch::default();
        if let Some((hash, layout)) = layout {
            self.engine.store_value_layout(hash, layout, &mut with)?;
        }
        // staged under the id it will have: a refused id fails the start first
        self.stage_signal(&id, &value, &mut with);
        let (id, created) = self
            .start_with(id, call, IdPolicy::UseExisting, with)
            .await?;
        if created {
            if let Some((hash, _)) = layout {
                self.engine.value_layout_stored(hash);
            }
        } else {
            self.send(&id, &name, payload, None).await?;
        }
        Ok(self.handle(id))
    }
}

/// The layout of a signal's payload as sent, stored beside it so that the
/// await reads it by name when its type is laid out otherwise. A payload
/// whose layout cannot be recorded (elements of one sequence laid out in
/// two ways, as an untagged enum's can be) is refused: it could only be
/// read by position, and misread.
fn payload_layout<T: serde::Serialize>(
    id: &str,
    name: &str,
    payload: &T,
) -> Result<crate::layout::ValueLayout, SignalError> {
    crate::layout::of_value(payload).map_err(|why| SignalError::Payload {
        id: id.to_owned(),
        name: name.to_owned(),
        reason: format!(
            "the layout of a `{}` cannot be recorded ({why}), so it could only be read by position; send a type whose values all have one layout",
            std::any::type_name::<T>()
        ),
    })
}

/// The payload codec of the `signal(name)` await in `request`, found by
/// walking the request beside the executor the workflow's code gave for it.
fn signal_vtable<'e>(
    request: &Request,
    executor: &'e Executor,
    name: &str,
) -> Option<&'e crate::command::SignalVTable> {
    match (request, executor) {
        (Request::Signal { name: n }, Executor::Signal(vtable)) if n == name => Some(vtable),
        (Request::Select(branches), Executor::Select(execs)) => branches
            .iter()
            .zip(execs)
            .find_map(|(b, e)| signal_vtable(b, e, name)),
        (Request::Select(branches), Executor::Each(each)) => {
            branches.iter().find_map(|b| signal_vtable(b, each, name))
        }
        _ => None,
    }
}

/// A signal on its way to its instance: what [`Runtime::deliver`] commits.
struct Signal {
    id: String,
    name: String,
    /// The encoded `(name, payload, layout hash)`.
    value: Vec<u8>,
    /// The payload's layout hash, when its layout is staged with it.
    layout: Option<u64>,
    /// A promise's completion: the key that must not exist yet, and the
    /// promise's token.
    mark: Option<(Vec<u8>, String)>,
}
