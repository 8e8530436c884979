//! Reset points and resets (`crate::reset`): each checkpoint of a running
//! instance keeps its record under `keys::kept` (the last
//! `Builder::reset_points` of them), and a reset writes one of them back as
//! the instance's record, as a new run, in one conditional commit.
//!
//! Stored field values (`fields.rs`) a reset point refers to outlive the
//! state that stopped referring to them: they wait in the record's
//! `retiring` list until the last point that may refer to them is gone.

use std::collections::HashSet;
use std::sync::Arc;

use super::fields::{INPUT, Part};
use super::{Engine, InstanceRecord, Status};
use crate::clock::now_ms as clock_ms;
use crate::error::ResetError;
use crate::history::EventKind;
use crate::reset::{Reset, ResetPoint, ResetTo};
use crate::store::{Batch, StoreError, keys};

impl Engine {
    /// Adds to the checkpoint `batch` of `record` (encoded as `bytes`) its
    /// reset point, once per step, and the removal of the point that falls
    /// out of the kept window.
    pub(super) fn keep_point(
        &self,
        id: &str,
        record: &mut InstanceRecord,
        bytes: &[u8],
        batch: &mut Batch,
    ) {
        let keep = self.reset_points;
        if keep == 0
            || record.status != Status::Running
            || record.pending.is_none()
            || record.kept_step == Some(record.step)
        {
            return;
        }
        batch.put(keys::kept(id, record.step), bytes.to_vec());
        if let Some(gone) = record.step.checked_sub(keep) {
            batch.delete(keys::kept(id, gone));
        }
        record.kept_step = Some(record.step);
    }

    /// What becomes of stored field `seq`, which the state of `record` no
    /// longer refers to: deleted now when no reset point is kept, else
    /// retired with the step that let it go.
    pub(super) fn let_go(
        &self,
        id: &str,
        record: &mut InstanceRecord,
        seq: u64,
        batch: &mut Batch,
    ) {
        if self.reset_points == 0 {
            batch.delete(keys::field(id, seq));
        } else {
            record.retiring.push((record.step, seq));
        }
    }

    /// Deletes the retired field values no kept reset point can refer to
    /// any more: one let go at step `r` may be referred to by the points up
    /// to `r`, and the oldest point kept at step `s` is `s - keep + 1`.
    pub(super) fn reclaim_retired(&self, id: &str, record: &mut InstanceRecord, batch: &mut Batch) {
        let (step, keep) = (record.step, self.reset_points);
        record.retiring.retain(|&(at, seq)| {
            let gone = at.saturating_add(keep) <= step;
            if gone {
                batch.delete(keys::field(id, seq));
            }
            !gone
        });
    }

    /// The reset points instance `id` keeps, oldest first.
    pub(crate) fn reset_points_of(&self, id: &str) -> Result<Vec<ResetPoint>, ResetError> {
        if self.store.get(&keys::instance(id))?.is_none() {
            return Err(ResetError::Unknown { id: id.to_owned() });
        }
        let mut points = Vec::new();
        for (key, bytes) in self.store.scan_prefix(&keys::kept_prefix(id))? {
            let Some(step) = keys::kept_step(&key) else {
                continue;
            };
            let record = InstanceRecord::decode(&bytes)?;
            points.push(ResetPoint {
                step,
                awaiting: record
                    .pending
                    .as_ref()
                    .map(crate::history::describe)
                    .unwrap_or_default(),
                variant: record.variant,
                at_ms: record.updated_ms,
            });
        }
        Ok(points)
    }

    /// The step history event `event` of instance `id` belongs to.
    fn step_of_event(&self, id: &str, event: u64) -> Result<u64, ResetError> {
        let prefix = keys::history_prefix(id);
        for (key, bytes) in self.store.scan_prefix(&prefix)? {
            let events = crate::history::decode_stored(prefix.len(), &key, &bytes)?;
            if let Some(found) = events.into_iter().find(|e| e.seq == event) {
                return found.kind.step().ok_or_else(|| ResetError::Event {
                    id: id.to_owned(),
                    event,
                    reason: "belongs to no step (choose an `Awaiting` event or a step)".into(),
                });
            }
        }
        Err(ResetError::Event {
            id: id.to_owned(),
            event,
            reason: "is not in its history".into(),
        })
    }

    /// Resets ended or parked instance `id` to the reset point `to` names:
    /// its record becomes that point's, as a new run with a new
    /// incarnation, written only if the instance is still as read; then it
    /// runs on.
    pub(crate) async fn reset(
        self: &Arc<Self>,
        id: &str,
        to: ResetTo,
        reason: &str,
    ) -> Result<Reset, ResetError> {
        let bytes = self
            .store
            .get(&keys::instance(id))?
            .ok_or_else(|| ResetError::Unknown { id: id.to_owned() })?;
        let current = InstanceRecord::decode(&bytes)?;
        if current.status == Status::Running {
            return Err(ResetError::Active { id: id.to_owned() });
        }
        let step = match to {
            ResetTo::Step(step) => step,
            ResetTo::Event(event) => self.step_of_event(id, event)?,
        };
        let gone = || -> Result<ResetError, ResetError> {
            Ok(ResetError::PointGone {
                id: id.to_owned(),
                step,
                kept: self.reset_points_of(id)?.iter().map(|p| p.step).collect(),
            })
        };
        let Some(kept) = self.store.get(&keys::kept(id, step))? else {
            return Err(gone()?);
        };
        let mut record = InstanceRecord::decode(&kept)?;
        let kept_fields: HashSet<u64> = record
            .parts
            .iter()
            .filter_map(|p| match p {
                Part::Field { seq, .. } => Some(*seq),
                Part::Inline(_) => None,
            })
            .collect();
        let born_by_then = record.field_seq;
        if !self.assemble(id, &mut record)? {
            return Err(gone()?);
        }
        let mut batch = Batch::default();
        // the field values only the later steps referred to go now; those
        // earlier points refer to wait as before
        let mut retiring = Vec::new();
        let current_fields = current.parts.iter().filter_map(|p| match p {
            Part::Field { seq, .. } => Some((current.step, *seq)),
            Part::Inline(_) => None,
        });
        for (at, seq) in current.retiring.iter().copied().chain(current_fields) {
            if seq == INPUT || kept_fields.contains(&seq) {
                continue;
            }
            if seq > born_by_then {
                batch.delete(keys::field(id, seq));
            } else {
                retiring.push((at, seq));
            }
        }
        for (key, _) in self.store.scan_prefix(&keys::kept_prefix(id))? {
            if keys::kept_step(&key).is_some_and(|s| s > step) {
                batch.delete(key);
            }
        }
        // what the earlier run left: its timers, a late cancel or terminate
        let mut timers = Vec::new();
        if let Some(pending) = &current.pending {
            pending.timer_keys(id, &mut timers);
        }
        timers.extend(
            [current.deadline_ms, current.run_deadline_ms]
                .into_iter()
                .flatten()
                .map(|at| keys::timer(at, id)),
        );
        timers.push(keys::control(keys::CANCEL, id));
        timers.push(keys::control(keys::TERMINATE, id));
        for key in timers {
            batch.delete(key);
        }
        let now = clock_ms(&*self.clock);
        let run = current.run.saturating_add(1);
        record.status = Status::Running;
        record.run = run;
        record.incarnation = InstanceRecord::new_incarnation();
        record.events = current.events;
        record.indexed = current.indexed.clone();
        record.created_ms = current.created_ms;
        record.updated_ms = super::now_ms();
        record.output = None;
        record.error = None;
        record.last_error = None;
        record.failed_attempts = 0;
        record.retry_at_ms = 0;
        record.partial.clear();
        record.pending_since_ms = now;
        record.deadline_ms = current.deadline_ms;
        record.run_deadline_ms = record.run_timeout_ms.map(|t| now.saturating_add(t));
        record.parent = current.parent.clone();
        record.scheduled = current.scheduled.clone();
        record.field_seq = current.field_seq.max(record.field_seq);
        record.retiring = retiring;
        record.kept_step = None;
        record.new_events = vec![EventKind::Reset {
            from_step: current.step,
            to_step: step,
            run,
            reason: reason.to_owned(),
        }];
        // checked as open checks a stored record: transcoded by name,
        // migrated or upgraded, or refused, never read by position
        let entry = self
            .resolve(id, &mut record)
            .map_err(|e| ResetError::LayoutChanged {
                id: id.to_owned(),
                step,
                reason: e
                    .to_string()
                    .trim_end_matches("; instance parked")
                    .to_owned(),
            })?;
        match self.create_over(id, &mut record, Some(bytes), batch).await {
            Ok(()) => {}
            Err(StoreError::Conflict { .. }) => {
                return Err(ResetError::Conflict { id: id.to_owned() });
            }
            Err(e) => return Err(e.into()),
        }
        self.halted.lock().expect("halted lock poisoned").remove(id);
        self.parked
            .lock()
            .expect("parked lock poisoned")
            .retain(|p| p.instance() != id);
        tracing::info!(instance = %id, run, step, from_step = current.step, "reset");
        self.spawn(id.to_owned(), record, entry);
        Ok(Reset {
            run,
            step,
            from_step: current.step,
        })
    }
}
