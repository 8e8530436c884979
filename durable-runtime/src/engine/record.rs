//! The stored instance record: [`InstanceRecord`] and how a record
//! indexes itself.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::codec::{self, CodecError};
use crate::command::Request;
use crate::phase::Status;
use crate::schedule::ScheduledBy;
use crate::store::{Batch, keys};
use crate::workflow::HeldState;

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
    /// Keys to write with the next save (an update's reply).
    #[serde(skip)]
    pub(crate) writes: Vec<(Vec<u8>, Vec<u8>)>,
    /// Children to cancel with the next save (those that lost a select).
    #[serde(skip)]
    pub(crate) cancels: Vec<String>,
    pub(crate) created_ms: u64,
    pub(crate) updated_ms: u64,
    /// The index entries written for this instance (phase, workflow), so
    /// a save replaces exactly the stale ones.
    pub(crate) indexed: Vec<Vec<u8>>,
    /// Set by `upsert_search_attributes`; indexed.
    pub(crate) search_attributes: Vec<(String, crate::search::SearchValue)>,
    /// The [layout](crate::layout) hash of the code that wrote `state`;
    /// 0: unknown (written before layouts were recorded).
    pub(crate) layout: u64,
    /// The schedule that started it, for which nominal time. Last, so
    /// that a record written without it (and without `layout`) decodes
    /// with zero bytes appended.
    pub(crate) scheduled: Option<ScheduledBy>,
    /// Random, drawn when the instance is created (never 0): its activities'
    /// idempotency keys carry it, so an id started again after retention
    /// gets keys no earlier incarnation used. 0: created by a build before
    /// incarnations (its keys stay `<id>/<step>`, as its in-flight calls had).
    pub(crate) incarnation: u64,
    /// The state as stored when its large fields are kept under their own
    /// keys (`engine/fields.rs`): the pieces that, put back together in
    /// order, are the state. Empty when `state` is stored whole (always in
    /// memory: a loaded record is put back together).
    pub(crate) parts: Vec<super::fields::Part>,
    /// The number of the last field value stored under its own key.
    pub(crate) field_seq: u64,
    /// When the next attempt of the pending activity is due (ms on the
    /// runtime's clock), after a failed one: a restart waits out the rest
    /// of the backoff. 0: none due.
    pub(crate) retry_at_ms: u64,
    /// When the checkpoint that scheduled the pending command was made (ms
    /// on the runtime's clock): an activity's schedule-to-close timeout
    /// counts from it, across restarts. 0: not known (written by a build
    /// before it; counted from the resume).
    pub(crate) pending_since_ms: u64,
    /// Stored field values no longer referred to by the state but perhaps
    /// by a reset point: (the step that stopped referring to it, number).
    /// Deleted once every reset point that may refer to them is gone.
    pub(crate) retiring: Vec<(u64, u64)>,
    /// What a failed run needs to run again (`Builder::workflow_with_retry`):
    /// set when the instance is created with a retry policy registered.
    pub(crate) rerun: Option<super::rerun::Rerun>,
    /// The trace its spans belong to (feature `otel`; `None` without it,
    /// and for records written before it): see [`crate::otel`].
    pub(crate) trace: Option<crate::otel::TraceParent>,
    /// The step whose reset point this record last wrote (in memory only;
    /// `None`: not known, the next checkpoint writes it again).
    #[serde(skip)]
    pub(crate) kept_step: Option<u64>,
    /// The large fields as the store holds them, with their bytes, to
    /// compare the next checkpoint's with (in memory only; `None`: not
    /// known, the next checkpoint looks at the stored record).
    #[serde(skip)]
    pub(crate) stored_fields: Option<Vec<super::fields::StoredField>>,
    /// What `stored_fields` becomes when the batch being committed lands.
    #[serde(skip)]
    pub(crate) pending_fields: Option<Vec<super::fields::StoredField>>,
    /// The state as the step that made it left it, typed (in memory only):
    /// the next step resumes it without decoding `state`.
    #[serde(skip)]
    pub(crate) held: Held,
}

/// A state enum held typed between two steps of a running instance, with
/// the step and layout of the record whose `state` it is: a record whose
/// state changed by any other way (a transcode, a migration, a reset, a
/// load) no longer matches and decodes its bytes. A copy of a record
/// holds none. (The mutex makes a record `Sync` without asking the state
/// to be: it is only reached through `&mut`, so never locked.)
#[derive(Default)]
pub(crate) struct Held(std::sync::Mutex<Option<(HeldState, u64, u64)>>);

impl Held {
    /// `state`, the typed form of `record.state` as it is now.
    pub(crate) fn of(state: HeldState, record: &InstanceRecord) -> Held {
        Held(std::sync::Mutex::new(Some((
            state,
            record.step,
            record.layout,
        ))))
    }

    /// The typed state, if it is still the one `record` holds.
    pub(crate) fn take_for(&mut self, record_step: u64, record_layout: u64) -> Option<HeldState> {
        let held = self
            .0
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match held.take() {
            Some((state, step, layout)) if (step, layout) == (record_step, record_layout) => {
                Some(state)
            }
            _ => None,
        }
    }
}

impl Clone for Held {
    fn clone(&self) -> Held {
        Held::default()
    }
}

impl std::fmt::Debug for Held {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Held")
    }
}

/// Adds to `batch` the removal of index entry `entry` (one a record lists
/// in `indexed`, so it is stored), counted out of its phase: the number of
/// instances in a phase is a counter the same batches keep
/// ([`Store::counters`](crate::store::Store::counters)).
pub(crate) fn unindex(entry: &[u8], batch: &mut Batch) {
    batch.delete(entry.to_vec());
    if let Some(counter) = keys::phase_counter_of(entry) {
        batch.count(counter, -1);
    }
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
        // records of older builds lack the last fields: each missing one
        // reads as zero (`layout` 0, `scheduled` None, `incarnation` 0,
        // `parts` empty, `field_seq` 0, `retry_at_ms` 0, `pending_since_ms` 0,
        // `retiring` empty, `rerun` None, `trace` None)
        codec::decode(bytes).or_else(|err| {
            (1..=10)
                .find_map(|missing| {
                    let older = [bytes, &[0; 10][..missing]].concat();
                    codec::decode(&older).ok()
                })
                .ok_or(err)
        })
    }

    /// The idempotency key of the call the current step makes:
    /// `<id>/<incarnation>/<step>` (16 hex digits), `<id>/<step>` for an
    /// instance created before incarnations. A part of a `join_all` or
    /// saga appends `/<index>`.
    pub(crate) fn activity_key(&self, id: &str) -> String {
        match self.incarnation {
            0 => format!("{id}/{}", self.step),
            n => format!("{id}/{n:016x}/{}", self.step),
        }
    }

    /// A new incarnation number (never 0).
    pub(crate) fn new_incarnation() -> u64 {
        rand::random::<u64>().max(1)
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

    /// Its start-time index entry: known from the record, so not listed
    /// in `indexed`.
    pub(crate) fn started_key(&self, id: &str) -> Vec<u8> {
        keys::started_entry(self.created_ms, id)
    }

    /// Adds to `batch` the removal of every index entry of instance `id`
    /// (this record): the ones it lists and its start-time entry.
    pub(crate) fn unindex_all(&self, id: &str, batch: &mut Batch) {
        for entry in &self.indexed {
            unindex(entry, batch);
        }
        batch.delete(self.started_key(id));
    }

    /// Adds to `batch` what brings instance `id`'s index entries in line
    /// with this record (saved in the same batch as the record). A record
    /// indexed for the first time (new, or imported) gets its start-time
    /// entry too.
    pub(crate) fn reindex(&mut self, id: &str, batch: &mut Batch) {
        if self.indexed.is_empty() {
            batch.put(self.started_key(id), Vec::new());
        }
        let want = self.index_keys(id);
        for stale in self.indexed.iter().filter(|k| !want.contains(k)) {
            unindex(stale, batch);
        }
        for new in want.iter().filter(|k| !self.indexed.contains(k)) {
            batch.put(new.clone(), Vec::new());
            if let Some(counter) = keys::phase_counter_of(new) {
                batch.count(counter, 1);
            }
        }
        self.indexed = want;
    }

    /// When the pending command was scheduled (ms on `clock`): as noted
    /// by its checkpoint, or now for a record that did not note it.
    pub(crate) fn scheduled_ms(&self, clock: &dyn crate::clock::Clock) -> u64 {
        match self.pending_since_ms {
            0 => crate::clock::now_ms(clock),
            at => at,
        }
    }

    /// The earliest of the execution and run deadlines.
    pub(crate) fn next_deadline(&self) -> Option<u64> {
        match (self.deadline_ms, self.run_deadline_ms) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

#[cfg(test)]
impl InstanceRecord {
    /// A running record at step 3, awaiting `Now` (unit tests).
    pub(crate) fn sample() -> InstanceRecord {
        tests::record(0x1234, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_state_is_given_once_and_only_to_the_step_and_layout_it_was_held_for() {
        let mut r = InstanceRecord::sample();
        let (step, layout) = (r.step, r.layout);
        r.held = Held::of(Box::new(7_u32), &r);
        assert!(r.held.take_for(step + 1, layout).is_none(), "another step");
        r.held = Held::of(Box::new(7_u32), &r);
        assert!(
            r.held.take_for(step, layout ^ 1).is_none(),
            "another layout"
        );
        r.held = Held::of(Box::new(7_u32), &r);
        assert!(r.clone().held.take_for(step, layout).is_none(), "a copy");
        let held = r.held.take_for(step, layout).expect("held");
        assert_eq!(held.downcast::<u32>().ok().map(|n| *n), Some(7));
        assert!(r.held.take_for(step, layout).is_none(), "given once");
    }

    pub(super) fn record(layout: u64, scheduled: Option<ScheduledBy>) -> InstanceRecord {
        InstanceRecord {
            workflow: "w".into(),
            fingerprint: 7,
            status: Status::Running,
            state: vec![1, 2],
            variant: "Signal".into(),
            step: 3,
            pending: Some(Request::Now),
            failed_attempts: 0,
            partial: Vec::new(),
            parent: None,
            run: 1,
            children: Vec::new(),
            deadline_ms: None,
            run_timeout_ms: None,
            run_deadline_ms: None,
            last_error: None,
            output: None,
            error: None,
            cancel_delivered: false,
            variant_fp: 9,
            version: 1,
            events: 4,
            new_events: Vec::new(),
            writes: Vec::new(),
            cancels: Vec::new(),
            created_ms: 5,
            updated_ms: 6,
            indexed: Vec::new(),
            search_attributes: Vec::new(),
            layout,
            scheduled,
            incarnation: 0xabc,
            parts: Vec::new(),
            field_seq: 0,
            retry_at_ms: 0,
            pending_since_ms: 0,
            retiring: Vec::new(),
            rerun: None,
            trace: None,
            kept_step: None,
            stored_fields: None,
            pending_fields: None,
            held: Held::default(),
        }
    }

    #[test]
    fn records_of_older_builds_decode_with_their_missing_last_fields_empty() {
        let by = ScheduledBy {
            schedule: "nightly".into(),
            nominal_ms: 1_893_459_600_000,
            trigger: crate::schedule::Trigger::Backfill,
        };
        let now = codec::encode(&record(0x1234, Some(by.clone()))).unwrap();
        let back = InstanceRecord::decode(&now).unwrap();
        assert_eq!(
            (back.layout, back.scheduled.clone(), back.incarnation),
            (0x1234, Some(by), 0xabc)
        );
        assert_eq!(back.activity_key("order-7"), "order-7/0000000000000abc/3");
        // written before `trace`: its bytes end after `rerun`
        let mut traced = record(0x1234, None);
        traced.trace = crate::otel::TraceParent::current();
        let full = codec::encode(&traced).unwrap();
        assert_eq!(InstanceRecord::decode(&full).unwrap().trace, traced.trace);
        let before_trace = codec::encode(&record(0x1234, None)).unwrap();
        let back = InstanceRecord::decode(&before_trace[..before_trace.len() - 1]).unwrap();
        assert_eq!((back.incarnation, back.trace), (0xabc, None));
        // written before `rerun`: its bytes end after `retiring`
        let mut rerun = record(0x1234, None);
        rerun.rerun = Some(crate::engine::rerun::Rerun {
            attempt: 2,
            input: vec![1, 7],
            layout: 9,
        });
        let full = codec::encode(&rerun).unwrap();
        assert_eq!(
            InstanceRecord::decode(&full)
                .unwrap()
                .rerun
                .map(|r| r.attempt),
            Some(2)
        );
        let before_rerun = codec::encode(&record(0x1234, None)).unwrap();
        let back = InstanceRecord::decode(&before_rerun[..before_rerun.len() - 2]).unwrap();
        assert_eq!((back.incarnation, back.rerun.is_none()), (0xabc, true));
        // written before `retiring`: its bytes end after `pending_since_ms`
        let mut retiring = record(0x1234, None);
        retiring.retiring = vec![(4, 2)];
        let full = codec::encode(&retiring).unwrap();
        assert_eq!(InstanceRecord::decode(&full).unwrap().retiring, [(4, 2)]);
        let before_retiring = codec::encode(&record(0x1234, None)).unwrap();
        let back = InstanceRecord::decode(&before_retiring[..before_retiring.len() - 3]).unwrap();
        assert_eq!((back.incarnation, back.retiring.len()), (0xabc, 0));
        // written before `pending_since_ms`: its bytes end after `retry_at_ms`
        let mut scheduled_at = record(0x1234, None);
        scheduled_at.pending_since_ms = 1_893_456_000_000;
        let full = codec::encode(&scheduled_at).unwrap();
        assert_eq!(
            InstanceRecord::decode(&full).unwrap().pending_since_ms,
            1_893_456_000_000
        );
        let before_since = codec::encode(&record(0x1234, None)).unwrap();
        let back = InstanceRecord::decode(&before_since[..before_since.len() - 4]).unwrap();
        assert_eq!((back.incarnation, back.pending_since_ms), (0xabc, 0));
        // written before `retry_at_ms`: its bytes end after `field_seq`
        let mut backing_off = record(0x1234, None);
        backing_off.retry_at_ms = 1_700_000_000_000;
        let full = codec::encode(&backing_off).unwrap();
        assert_eq!(
            InstanceRecord::decode(&full).unwrap().retry_at_ms,
            1_700_000_000_000
        );
        let before_retry = codec::encode(&record(0x1234, None)).unwrap();
        let back = InstanceRecord::decode(&before_retry[..before_retry.len() - 5]).unwrap();
        assert_eq!((back.incarnation, back.retry_at_ms), (0xabc, 0));
        // written before `parts`: its bytes end after `incarnation`
        let mut legacy = record(0x1234, None);
        let full = codec::encode(&legacy).unwrap();
        let back = InstanceRecord::decode(&full[..full.len() - 7]).unwrap();
        assert_eq!(
            (back.incarnation, back.parts.len(), back.field_seq),
            (0xabc, 0, 0)
        );
        // written before `incarnation`: its bytes end after `scheduled`
        legacy.incarnation = 0;
        let full = codec::encode(&legacy).unwrap();
        let before_incarnation = &full[..full.len() - 8];
        let back = InstanceRecord::decode(before_incarnation).unwrap();
        assert_eq!(
            (back.layout, back.scheduled.clone(), back.incarnation),
            (0x1234, None, 0)
        );
        // its keys stay as its in-flight calls had them
        assert_eq!(back.activity_key("order-7"), "order-7/3");
        // written before `scheduled` too
        let before_scheduled = &full[..full.len() - 9];
        let back = InstanceRecord::decode(before_scheduled).unwrap();
        assert_eq!((back.layout, back.scheduled), (0x1234, None));
        // written before `layout` too
        legacy.layout = 0;
        let full = codec::encode(&legacy).unwrap();
        let before_layout = &full[..full.len() - 10];
        let back = InstanceRecord::decode(before_layout).unwrap();
        assert_eq!((back.layout, back.scheduled, back.step), (0, None, 3));
        // a truncated record is still an error
        assert!(InstanceRecord::decode(&full[..full.len() - 11]).is_err());
    }
}
