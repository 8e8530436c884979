//! Buffered signals: persisted before the sender hears back, delivered in
//! the order sent, one per matching `signal(name)` await.

use super::Engine;
use crate::codec;
use crate::command::SignalVTable;
use crate::layout::ValueLayout;
use crate::store::{Batch, StoreError, keys};

impl Engine {
    /// Starts the signal counter above every buffered signal, so order holds
    /// across restarts.
    pub(crate) async fn init_signal_seq(&self) -> Result<(), StoreError> {
        let max = self
            .scan_prefix(&[keys::SIGNAL])
            .await?
            .iter()
            .filter_map(|(k, _)| keys::signal_seq(k))
            .max()
            .map_or(0, |m| m + 1);
        let floor = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        self.signal_seq
            .store(max.max(floor), std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }

    /// The first buffered signal of `name` for instance `id`: its key,
    /// encoded payload and the payload's layout hash (0: unknown).
    pub(crate) async fn take_signal(
        &self,
        id: &str,
        name: &str,
    ) -> Result<Option<Buffered>, StoreError> {
        for (key, value) in self.scan_prefix(&keys::signals(id)).await? {
            let (signal, payload, layout) =
                decode_signal(&value).map_err(|e| StoreError::Corrupt {
                    key: crate::store::printable(&key),
                    reason: e.to_string(),
                })?;
            if signal == name {
                return Ok(Some((key, payload, layout)));
            }
        }
        Ok(None)
    }

    /// `payload`, written with layout `layout`, as the awaited type of
    /// `vtable` lays it out (see [`Engine::cross`]).
    pub(crate) fn payload_for(
        &self,
        name: &str,
        payload: Vec<u8>,
        layout: u64,
        vtable: Option<&SignalVTable>,
    ) -> Result<Vec<u8>, Vec<String>> {
        match vtable {
            Some(vtable) => self.cross(
                &format!("signal `{name}`'s payload"),
                payload,
                layout,
                &vtable.payload,
            ),
            None => Ok(payload),
        }
    }

    /// The payload layout stored under `hash`.
    pub(crate) fn stored_value_layout(&self, hash: u64) -> Result<Option<ValueLayout>, StoreError> {
        let Some(bytes) = self.store.get(&keys::value_layout(hash))? else {
            return Ok(None);
        };
        crate::layout::decode(&bytes)
            .map(Some)
            .map_err(|reason| StoreError::Corrupt {
                key: crate::store::printable(&keys::value_layout(hash)),
                reason,
            })
    }

    /// Adds payload layout `layout` (hash `hash`) to `batch` unless the
    /// store holds it.
    pub(crate) fn store_value_layout(
        &self,
        hash: u64,
        layout: &ValueLayout,
        batch: &mut Batch,
    ) -> Result<(), StoreError> {
        if self
            .value_layouts
            .lock()
            .expect("value layouts lock poisoned")
            .contains(&hash)
        {
            return Ok(());
        }
        let key = keys::value_layout(hash);
        if self.store.get(&key)?.is_none() {
            batch.put(key, crate::layout::encode(layout));
        }
        Ok(())
    }

    /// Remembers that the store holds payload layout `hash`.
    pub(crate) fn value_layout_stored(&self, hash: u64) {
        self.value_layouts
            .lock()
            .expect("value layouts lock poisoned")
            .insert(hash);
    }
}

/// A buffered signal: its key, encoded payload and payload layout hash.
pub(crate) type Buffered = (Vec<u8>, Vec<u8>, u64);

/// A stored signal: its name, encoded payload and payload layout hash (a
/// signal stored before layouts were recorded has none: 0).
pub(crate) fn decode_signal(value: &[u8]) -> Result<(String, Vec<u8>, u64), crate::CodecError> {
    codec::decode(value).or_else(|err| {
        let mut older = value.to_vec();
        older.push(0);
        codec::decode(&older).map_err(|_| err)
    })
}

impl Engine {
    /// Whether a cancel or terminate request waits for instance `id`.
    pub(crate) fn has_control(&self, id: &str) -> bool {
        self.book.has_control(id)
    }

    pub(crate) fn clear_control(&self, id: &str) {
        self.book.clear_control(id);
    }

    /// The stored control request with `tag` for instance `id`.
    pub(crate) async fn take_control(
        &self,
        id: &str,
        tag: u8,
    ) -> Result<Option<crate::store::KeyValue>, StoreError> {
        let key = keys::control(tag, id);
        Ok(self.get(&key).await?.map(|v| (key, v)))
    }

    /// Records a cancel (`keys::CANCEL`) or terminate (`keys::TERMINATE`)
    /// request durably, then wakes the instance to act on it.
    pub(crate) async fn request_control(
        self: &std::sync::Arc<Self>,
        id: &str,
        tag: u8,
        value: Vec<u8>,
    ) -> Result<(), StoreError> {
        let mut batch = crate::store::Batch::default();
        batch.put(keys::control(tag, id), value);
        if self.store.shared() {
            batch.notify(format!("c{id}"));
        }
        // stored and acted on in a task of the engine: a caller that stops
        // waiting (a timeout, a dropped request) takes neither with it
        let (engine, id) = (self.clone(), id.to_owned());
        self.carried(async move {
            engine.store.commit(batch).await?;
            engine.control_requested(&id).await
        })
        .await?
    }

    /// After a cancel or terminate request of `id` is durable: lets the
    /// instance see it now.
    pub(crate) async fn control_requested(
        self: &std::sync::Arc<Self>,
        id: &str,
    ) -> Result<(), StoreError> {
        self.book.set_control(id);
        // only a running attempt listens; anything later sees the stored request
        self.interrupts.notify(id);
        self.wake_instance(id).await?;
        // an instance that ended meanwhile will never consume it; its end
        // clears the mark after its record is stored, so one of the two
        // sees the other
        if let Some((read, Ok(record))) = self.load_read(id, crate::store::Wait::Task).await?
            && record.status.is_terminal()
        {
            self.clear_control(id);
            // nor the stored request: deleted, only while the ended record
            // is the stored one (a new run of the id keeps its own requests)
            let mut batch = Batch::default();
            batch
                .expect(keys::instance(id), Some(read))
                .delete(keys::control(keys::CANCEL, id))
                .delete(keys::control(keys::TERMINATE, id));
            match self.store.commit(batch).await {
                Ok(()) | Err(StoreError::Conflict { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}
