//! The stored instance record: [`Status`], [`InstanceRecord`] and how a
//! record indexes itself.

use super::*;

/// Where an instance is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Status {
    /// Running or waiting on a command.
    Running,
    /// Returned; the output is stored.
    Completed,
    /// Panicked or could not be advanced; the message is stored.
    Failed,
    /// Cannot run on this code (changed shape, unregistered, undecodable);
    /// kept intact until code that can run it is deployed.
    Parked,
    /// Returned after a cancellation was delivered to it; the output is stored.
    Cancelled,
    /// Stopped by [`WorkflowHandle::terminate`](crate::WorkflowHandle::terminate); nothing more runs.
    Terminated,
}

impl Status {
    /// Whether the instance will never run again.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Status::Completed | Status::Failed | Status::Cancelled | Status::Terminated
        )
    }
}

/// The stored record of one instance: its latest checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct InstanceRecord {
    pub(crate) workflow: String,
    pub(crate) fingerprint: u64,
    pub(crate) status: Status,
    /// The encoded state enum (emptied on completion; a failed instance keeps its last state).
    pub(crate) state: Vec<u8>,
    pub(crate) variant: String,
    /// Transitions made so far; the step part of idempotency keys.
    pub(crate) step: u64,
    /// The command the state awaits.
    pub(crate) pending: Option<Request>,
    /// Failed attempts of the pending command so far.
    pub(crate) failed_attempts: u32,
    /// Finished parts of a pending `join_all` or saga compensation: a crash
    /// half-way re-runs only the parts still `None`.
    pub(crate) partial: Vec<Option<Vec<u8>>>,
    /// The instance that started this one as a child, to wake when it ends.
    pub(crate) parent: Option<String>,
    /// Runs of this id so far (continue-as-new starts another).
    pub(crate) run: u32,
    /// Children to cancel when this instance ends (parent-close policy).
    pub(crate) children: Vec<String>,
    /// When the whole execution times out (ms since the epoch), across
    /// continue-as-new runs.
    pub(crate) deadline_ms: Option<u64>,
    /// How long one run may take (ms), and when the current run times out.
    pub(crate) run_timeout_ms: Option<u64>,
    pub(crate) run_deadline_ms: Option<u64>,
    pub(crate) last_error: Option<String>,
    /// The encoded output, once completed.
    pub(crate) output: Option<Vec<u8>>,
    /// Why it failed or is parked.
    pub(crate) error: Option<String>,
    /// A cancellation was delivered at an await (the workflow may still run
    /// its compensations).
    pub(crate) cancel_delivered: bool,
    /// The own fingerprint of the current variant (for upgrades).
    pub(crate) variant_fp: u64,
    /// The version (`#[workflow(version = N)]`) that runs it.
    pub(crate) version: u32,
    /// History events recorded so far.
    pub(crate) events: u64,
    /// Events to append with the next save.
    #[serde(skip)]
    pub(crate) new_events: Vec<crate::history::EventKind>,
    pub(crate) created_ms: u64,
    pub(crate) updated_ms: u64,
    /// The index entries written for this instance (phase, workflow), so
    /// a save replaces exactly the stale ones.
    pub(crate) indexed: Vec<Vec<u8>>,
    /// Set by `upsert_search_attributes`; indexed.
    pub(crate) search_attributes: Vec<(String, crate::command::SearchValue)>,
    /// The [layout](crate::layout) hash of the code that wrote `state`;
    /// 0: unknown (written before layouts were recorded). Last, so that a
    /// record written without it decodes with one zero byte appended.
    pub(crate) layout: u64,
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl InstanceRecord {
    /// Decodes a stored record, including one written before the `layout`
    /// field existed (it then reads as 0, "unknown").
    pub(crate) fn decode(bytes: &[u8]) -> Result<InstanceRecord, CodecError> {
        codec::decode(bytes).or_else(|err| {
            let mut older = bytes.to_vec();
            older.push(0);
            codec::decode(&older).map_err(|_| err)
        })
    }

    /// The index entries this record should have.
    fn index_keys(&self, id: &str) -> Vec<Vec<u8>> {
        let phase = crate::phase::Phase::of(self.status, self.pending.as_ref());
        let mut want = vec![
            keys::index_entry(keys::phase_index_prefix(phase.tag()), id),
            keys::index_entry(keys::workflow_index_prefix(&self.workflow), id),
        ];
        for (name, value) in &self.search_attributes {
            if let Some(prefix) = keys::attribute_index_prefix(name, value) {
                want.push(keys::index_entry(prefix, id));
            }
        }
        want
    }

    /// Adds to `batch` what brings instance `id`'s index entries in line
    /// with this record (saved in the same batch as the record).
    pub(crate) fn reindex(&mut self, id: &str, batch: &mut Batch) {
        let want = self.index_keys(id);
        for stale in self.indexed.iter().filter(|k| !want.contains(k)) {
            batch.delete(stale.clone());
        }
        for new in want.iter().filter(|k| !self.indexed.contains(k)) {
            batch.put(new.clone(), Vec::new());
        }
        self.indexed = want;
    }

    /// The earliest of the execution and run deadlines.
    pub(crate) fn next_deadline(&self) -> Option<u64> {
        match (self.deadline_ms, self.run_deadline_ms) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}
