//! The workers sharing a store: [`Runtime::workers`] and what it tells of
//! each ([`WorkerInfo`]), read from their leases.

use super::Runtime;
use crate::codec;
use crate::engine::now_ms;
use crate::store::StoreError;

/// A worker process sharing a PostgreSQL store ([`Runtime::workers`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct WorkerInfo {
    /// Its name ([`Builder::worker_name`](super::Builder::worker_name)).
    pub name: String,
    /// How many processes have started under this name.
    pub incarnation: u64,
    /// When this incarnation started (Unix ms).
    pub started_ms: u64,
    /// When the others may take its instances over, unless it renews
    /// (Unix ms, by its clock).
    pub lease_expires_ms: u64,
    /// Whether the lease has lapsed (by this process's clock): its
    /// instances are being taken over.
    pub lapsed: bool,
    /// Unfinished instances it owns.
    pub instances: usize,
    /// The named task queues it runs ([`Builder::task_queue`](super::Builder::task_queue)).
    pub queues: Vec<String>,
    /// Whether it is this process.
    pub this_process: bool,
}

impl Runtime {
    /// The workers sharing this store (PostgreSQL), as their leases say,
    /// with how many unfinished instances each owns; empty on sled.
    pub fn workers(&self) -> Result<Vec<WorkerInfo>, StoreError> {
        crate::store::blocking(|| {
            use crate::store::keys;
            let this = self.engine.member.as_ref().map(|m| m.name.as_str());
            let now = now_ms();
            let mut workers = Vec::new();
            for (key, bytes) in self.engine.store.scan_prefix(&[keys::LEASE])? {
                let name = keys::instance_id(&key);
                let lease: crate::engine::LeaseRecord =
                    codec::decode(&bytes).map_err(|e| StoreError::Corrupt {
                        key: name.clone(),
                        reason: e.to_string(),
                    })?;
                let instances = self
                    .engine
                    .store
                    .scan_prefix(&keys::owned_prefix(&name))?
                    .len();
                workers.push(WorkerInfo {
                    this_process: this == Some(name.as_str()),
                    name,
                    incarnation: lease.incarnation,
                    started_ms: lease.started_ms,
                    lease_expires_ms: lease.expires_ms,
                    lapsed: lease.expires_ms < now,
                    instances,
                    queues: lease.queues,
                });
            }
            Ok(workers)
        })
    }
}
