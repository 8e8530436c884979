//! Retention: finished instances older than the policy are deleted, with
//! their history; nothing that can still run is ever touched.

use std::sync::Arc;
use std::time::Duration;

use super::{Engine, InstanceRecord};
use crate::store::{Batch, StoreError, keys};

/// How often the policy is applied after the first pass at open.
const EVERY: Duration = Duration::from_secs(3600);

impl Engine {
    pub(crate) async fn retention_service(self: Arc<Self>, keep: Duration) {
        loop {
            match self.prune(keep).await {
                Ok(n) if n > 0 => {
                    tracing::info!(deleted = n, "retention: finished instances deleted")
                }
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "retention pass failed; trying again later"),
            }
            let next = self.clock.now() + EVERY;
            self.clock.sleep_until(next).await;
        }
    }

    /// Deletes finished instances last changed more than `keep` ago; how many.
    pub(crate) async fn prune(&self, keep: Duration) -> Result<usize, StoreError> {
        // records are stamped with the machine's time (`updated_ms`)
        let cutoff =
            super::now_ms().saturating_sub(u64::try_from(keep.as_millis()).unwrap_or(u64::MAX));
        let mut deleted = 0;
        // only finished instances are candidates: read from the phase index
        let finished = crate::phase::Phase::ALL
            .into_iter()
            .filter(|p| p.status().is_terminal());
        let mut entries = Vec::new();
        for phase in finished {
            let prefix = keys::phase_index_prefix(phase.tag());
            for (entry, _) in self.scan_prefix(&prefix).await? {
                entries.push(String::from_utf8_lossy(&entry[prefix.len()..]).into_owned());
            }
        }
        for id in entries {
            let key = keys::instance(&id);
            let Some(bytes) = self.get(&key).await? else {
                continue;
            };
            // an undecodable record is parked, not expired
            let Ok(record) = InstanceRecord::decode(&bytes) else {
                continue;
            };
            if !record.status.is_terminal() || record.updated_ms > cutoff {
                continue;
            }
            let mut batch = Batch::default();
            // deleted only if unchanged since it was read
            batch.expect(key.clone(), Some(bytes)).delete(key);
            self.stage_forget(&id, &record, &mut batch).await?;
            match self.store.commit(batch).await {
                Ok(()) => deleted += 1,
                Err(StoreError::Conflict { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(deleted)
    }

    /// Adds to `batch` the deletion of everything ended instance `id`
    /// (stored as `record`) leaves besides its record: index entries,
    /// deadline timers an earlier build left, history, signals, stored
    /// fields and completed-promise marks. Retention, and a new run of the
    /// id ([`IdPolicy::NewRunIfEnded`](crate::IdPolicy::NewRunIfEnded)).
    pub(crate) async fn stage_forget(
        &self,
        id: &str,
        record: &InstanceRecord,
        batch: &mut Batch,
    ) -> Result<(), StoreError> {
        record.unindex_all(id, batch);
        for deadline in [record.deadline_ms, record.run_deadline_ms]
            .into_iter()
            .flatten()
        {
            batch.delete(keys::timer(deadline, id));
        }
        // a cancel or terminate stored as it ended (by a build before they
        // delete themselves then)
        batch
            .delete(keys::control(keys::CANCEL, id))
            .delete(keys::control(keys::TERMINATE, id));
        for (k, _) in self
            .scan_prefix(&keys::history_prefix(id))
            .await?
            .into_iter()
            .chain(self.scan_prefix(&keys::signals(id)).await?)
            .chain(self.scan_prefix(&keys::fields_prefix(id)).await?)
            .chain(self.scan_prefix(&keys::completed_prefix(id)).await?)
            .chain(self.scan_prefix(&keys::heartbeat_prefix(id)).await?)
            .chain(self.scan_prefix(&keys::updates_prefix(id)).await?)
        {
            batch.delete(k);
        }
        Ok(())
    }
}
