//! Reset points and resets (`crate::reset`): the history entry of each
//! checkpoint of a running instance carries, after its events, the
//! instance's record as that checkpoint wrote it, and a reset writes one of
//! them back as the instance's record, as a new run, in one conditional
//! commit. Kept with the history (no key of its own: a checkpoint writes
//! no more keys than before), a point is used for the last
//! `Builder::reset_points` steps.
//!
//! Stored field values (`fields.rs`) a reset point refers to outlive the
//! state that stopped referring to them: they wait in the record's
//! `retiring` list until no point that can be used may refer to them.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use super::fields::{INPUT, Part};
use super::values::{self, number};
use super::{Engine, InstanceRecord, Status};
use crate::clock::now_ms as clock_ms;
use crate::error::ResetError;
use crate::history::EventKind;
use crate::reset::{Reset, ResetPoint, ResetTo};
use crate::store::{Batch, StoreError, keys};

impl Engine {
    /// Adds to `batch` the history entry `events` of `record`'s
    /// checkpoint (encoded as `bytes`), followed by its reset point when it
    /// is the first checkpoint of a step it waits at.
    pub(super) fn put_history(
        &self,
        record: &mut InstanceRecord,
        events: Option<crate::store::KeyValue>,
        bytes: &[u8],
        batch: &mut Batch,
    ) {
        let Some((key, mut value)) = events else {
            return;
        };
        if self.reset_points > 0
            && record.status == Status::Running
            && record.pending.is_some()
            && record.kept_step != Some(record.step)
        {
            value.extend_from_slice(bytes);
            record.kept_step = Some(record.step);
        }
        batch.put_new(key, value);
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
            values::delete(batch, id, seq);
        } else {
            record.retiring.push((record.step, seq));
        }
    }

    /// Deletes the retired field values no usable reset point can refer
    /// to: one let go at step `r` may be referred to by the points up to
    /// `r`, and at step `s` the points from `s - keep` on are used.
    pub(super) fn reclaim_retired(&self, id: &str, record: &mut InstanceRecord, batch: &mut Batch) {
        let (step, keep) = (record.step, self.reset_points);
        record.retiring.retain(|&(at, seq)| {
            let gone = at.saturating_add(keep) < step;
            if gone {
                values::delete(batch, id, seq);
            }
            !gone
        });
    }

    /// The reset points instance `id` can go back to, by step: those of
    /// its history's checkpoints (the latest of each step; a reset drops
    /// the earlier run's points past its step) among the last
    /// `reset_points` steps of `current`, its record.
    async fn points(
        &self,
        id: &str,
        current: &InstanceRecord,
    ) -> Result<BTreeMap<u64, InstanceRecord>, ResetError> {
        let mut points = BTreeMap::new();
        let prefix = keys::history_prefix(id);
        for (key, bytes) in self.scan_prefix(&prefix).await? {
            let (events, point) = crate::history::decode_with_point(prefix.len(), &key, &bytes)?;
            for event in &events {
                if let EventKind::Reset {
                    from_step, to_step, ..
                } = event.kind
                {
                    // the earlier run's later points are not this run's, and
                    // the values of those before `from_step - keep` are gone
                    let oldest = from_step.saturating_sub(self.reset_points);
                    points.retain(|step, _| (oldest..=to_step).contains(step));
                }
            }
            if let Some(point) = point {
                let record = InstanceRecord::decode(point)?;
                points.insert(record.step, record);
            }
        }
        // the last `reset_points` steps (an ended instance's last step, the
        // one that ended it, keeps no point); their field values are kept
        let oldest = current.step.saturating_sub(self.reset_points);
        points.retain(|step, _| self.reset_points > 0 && (oldest..=current.step).contains(step));
        Ok(points)
    }

    /// The reset points instance `id` keeps, oldest first.
    pub(crate) async fn reset_points_of(&self, id: &str) -> Result<Vec<ResetPoint>, ResetError> {
        let current = self.current(id).await?.1;
        Ok(self
            .points(id, &current)
            .await?
            .into_iter()
            .map(|(step, record)| ResetPoint {
                step,
                awaiting: record
                    .pending
                    .as_ref()
                    .map(crate::history::describe)
                    .unwrap_or_default(),
                variant: record.variant,
                at_ms: record.updated_ms,
            })
            .collect())
    }

    /// Instance `id`'s stored record, as bytes and decoded.
    async fn current(&self, id: &str) -> Result<(Vec<u8>, InstanceRecord), ResetError> {
        let bytes = self
            .get(&keys::instance(id))
            .await?
            .ok_or_else(|| ResetError::Unknown { id: id.to_owned() })?;
        let record = InstanceRecord::decode(&bytes)?;
        Ok((bytes, record))
    }

    /// The step history event `event` of instance `id` belongs to.
    async fn step_of_event(&self, id: &str, event: u64) -> Result<u64, ResetError> {
        let prefix = keys::history_prefix(id);
        for (key, bytes) in self.scan_prefix(&prefix).await? {
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
    /// incarnation, written only if the instance is still as read (and
    /// `once`, a mark, is absent: written with it); then it runs on.
    pub(crate) async fn reset(
        self: &Arc<Self>,
        id: &str,
        to: ResetTo,
        reason: &str,
        once: Option<Vec<u8>>,
    ) -> Result<Reset, ResetError> {
        let (bytes, current) = self.current(id).await?;
        if current.status == Status::Running {
            return Err(ResetError::Active { id: id.to_owned() });
        }
        let step = match to {
            ResetTo::Step(step) => step,
            ResetTo::Event(event) => self.step_of_event(id, event).await?,
        };
        let mut points = self.points(id, &current).await?;
        let gone = |points: &BTreeMap<u64, InstanceRecord>| ResetError::PointGone {
            id: id.to_owned(),
            step,
            kept: points.keys().copied().collect(),
        };
        let Some(mut record) = points.remove(&step) else {
            return Err(gone(&points));
        };
        let kept_fields: HashSet<u64> = record
            .parts
            .iter()
            .filter_map(|p| match p {
                Part::Field { seq, .. } => Some(*seq),
                Part::Inline(_) => None,
            })
            .collect();
        let born_by_then = record.field_seq;
        if !self
            .assemble(id, &mut record, crate::store::Wait::Task)
            .await?
        {
            return Err(gone(&points));
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
            if number(seq) == INPUT || kept_fields.contains(&seq) {
                continue;
            }
            if number(seq) > born_by_then {
                values::delete(&mut batch, id, seq);
            } else {
                retiring.push((at, seq));
            }
        }
        // what the earlier run left: its timers, a late cancel or terminate
        let mut timers = Vec::new();
        if let Some(pending) = &current.pending {
            pending.timer_keys(id, &mut timers);
        }
        if current.retry_at_ms > 0 {
            // a failed run's successor was waiting (`rerun.rs`), or a backoff
            timers.push(keys::timer(current.retry_at_ms, id));
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
        if let Some(mark) = once {
            // a batch operation's: this instance is reset by it once
            batch.expect(mark.clone(), None).put(mark, Vec::new());
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
        let creating = self.claim_for_create(id);
        let ours = match self.create_over(id, &mut record, Some(bytes), batch).await {
            Ok(ours) => ours,
            Err(StoreError::Conflict { .. }) => {
                return Err(ResetError::Conflict { id: id.to_owned() });
            }
            Err(e) => return Err(e.into()),
        };
        self.book.clear_halted(id);
        self.parked
            .lock()
            .expect("parked lock poisoned")
            .retain(|p| p.instance() != id);
        tracing::info!(instance = %id, run, step, from_step = current.step, "reset");
        if ours {
            creating.spawn(record, entry);
        }
        Ok(Reset {
            run,
            step,
            from_step: current.step,
        })
    }
}
