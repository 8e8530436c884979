//! Buffered signals: persisted before the sender hears back, delivered in
//! the order sent, one per matching `signal(name)` await.

use super::Engine;
use crate::codec;
use crate::store::{StoreError, keys};

impl Engine {
    /// Starts the signal counter above every buffered signal, so order holds
    /// across restarts.
    pub(crate) fn init_signal_seq(&self) -> Result<(), StoreError> {
        let max = self
            .store
            .scan_prefix(&[keys::SIGNAL])?
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

    /// The first buffered signal of `name` for instance `id`: its key and
    /// encoded payload.
    pub(crate) fn take_signal(
        &self,
        id: &str,
        name: &str,
    ) -> Result<Option<crate::store::KeyValue>, StoreError> {
        for (key, value) in self.store.scan_prefix(&keys::signals(id))? {
            let (signal, payload): (String, Vec<u8>) =
                codec::decode(&value).map_err(|e| StoreError::Corrupt {
                    key: crate::store::printable(&key),
                    reason: e.to_string(),
                })?;
            if signal == name {
                return Ok(Some((key, payload)));
            }
        }
        Ok(None)
    }
}
