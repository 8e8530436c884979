//! Which registered code runs a stored instance: its own version, an
//! upgrade, a migration, or none (parked with the reason).

use super::{Engine, InstanceRecord, MigrationEntry, WorkflowEntry, guarded};
use crate::compatibility::Compatibility;
use crate::error::ResumeError;
use crate::workflow::{Op, Outcome};

impl Engine {
    /// Finds the code that runs `record`, moving it to another version when
    /// the registered code asks for it: its exact version; else a migration
    /// from its shape (chained); else, when the workflow allows upgrades, the
    /// newest version whose current variant has the same own shape. Changes
    /// `record` in memory only (state, fingerprint, version, history events):
    /// the caller writes it, or drops it to only look.
    pub(crate) fn resolve(
        &self,
        id: &str,
        record: &mut InstanceRecord,
    ) -> Result<WorkflowEntry, ResumeError> {
        let newest =
            self.workflows
                .newest(&record.workflow)
                .ok_or_else(|| ResumeError::NotRegistered {
                    workflow: record.workflow.clone(),
                    instance: id.to_owned(),
                })?;
        if super::rerun::waiting(record) {
            // a failed run's successor has no state yet: like a new start, it
            // runs on the newest version (its input read by name if that
            // version lays it out otherwise: `continue_as_new`)
            record.fingerprint = newest.fingerprint;
            record.version = newest.version;
            record.layout = newest.layout.hash;
            return Ok(newest);
        }
        // each migration at most once: a cycle ends here
        for _ in 0..=self.workflows.migrations().len() {
            if let Some(entry) =
                self.workflows
                    .exact(&record.workflow, record.fingerprint, record.version)
            {
                self.align(id, record, entry)?;
                let entry = self.check(id, record, entry)?;
                if entry.version != record.version {
                    // its version is gone but another has the very same
                    // shape: it runs there, and says so
                    record.new_events.push(crate::history::EventKind::Upgraded {
                        from: record.fingerprint,
                        to: entry.fingerprint,
                        variant: record.variant.clone(),
                    });
                    record.version = entry.version;
                }
                return Ok(entry);
            }
            let Some(m) = self
                .workflows
                .migration_from(&record.workflow, record.fingerprint)
            else {
                break;
            };
            self.migrate(id, record, m)?;
        }
        let changes = self.await_changes(record, newest);
        let mismatch = ResumeError::ShapeMismatch {
            workflow: record.workflow.clone(),
            stored: record.fingerprint,
            current: newest.fingerprint,
            instance: id.to_owned(),
            changes: changes.clone(),
        };
        let Some(target) =
            self.workflows
                .compatible_version(&record.workflow, &record.variant, record.variant_fp)
        else {
            return Err(mismatch);
        };
        if !self.workflows.upgrades_allowed(&record.workflow) {
            return Err(ResumeError::Pinned {
                workflow: record.workflow.clone(),
                instance: id.to_owned(),
                stored: record.fingerprint,
                version: record.version,
                variant: record.variant.clone(),
                compatible: target.version,
                changes,
            });
        }
        self.upgrade(id, record, target)?;
        self.align(id, record, target)?;
        self.check(id, record, target)
    }

    /// What [`Engine::resolve`] would do with `record`, done on a copy.
    pub(crate) fn compatibility(&self, id: &str, record: InstanceRecord) -> Compatibility {
        let mut moved = record.clone();
        match self.resolve(id, &mut moved) {
            Err(why) => Compatibility::Parked(why),
            Ok(entry)
                if moved.version != record.version || moved.fingerprint != record.fingerprint =>
            {
                if moved
                    .new_events
                    .iter()
                    .any(|e| matches!(e, crate::history::EventKind::Migrated { .. }))
                {
                    Compatibility::Migrates {
                        from: record.version,
                        to: entry.version,
                    }
                } else {
                    Compatibility::Upgrades {
                        to: entry.fingerprint,
                    }
                }
            }
            Ok(_) => match moved.new_events.iter().find_map(|e| match e {
                crate::history::EventKind::Transcoded { changes, .. } => Some(changes.clone()),
                _ => None,
            }) {
                Some(changes) => Compatibility::Transcodes { changes },
                None => Compatibility::Resumes,
            },
        }
    }

    /// Applies migration `m` to `record` (in memory).
    pub(super) fn migrate(
        &self,
        id: &str,
        record: &mut InstanceRecord,
        m: &MigrationEntry,
    ) -> Result<(), ResumeError> {
        // the migration's code reads the old state with the types it was
        // compiled with: bring a state written under another layout to
        // theirs by name first
        self.align(id, record, m.source)?;
        let (workflow, from_variant) = (record.workflow.clone(), record.variant.clone());
        let failed = |reason: String| ResumeError::Migration {
            workflow: workflow.clone(),
            instance: id.to_owned(),
            from: m.from_version,
            to: m.target.version,
            variant: from_variant.clone(),
            reason,
        };
        let target = m.target;
        let fields = variant_fields(&record.state).map_err(&failed)?;
        let (variant, new_fields) = match m.steps.iter().find(|(n, _)| *n == record.variant) {
            Some((_, step)) => match guarded(|| step(fields)) {
                Ok(Ok(done)) => done,
                Ok(Err(e)) => return Err(failed(e)),
                Err(panic) => return Err(failed(panic)),
            },
            // unchanged variants are carried over as they are
            None if record.variant_fp != 0
                && target.variant_fp(&record.variant) == record.variant_fp =>
            {
                let name = target
                    .variant(&record.variant)
                    .map(|v| v.name)
                    .unwrap_or_default();
                (name, fields.to_vec())
            }
            None => {
                return Err(ResumeError::MigrationMissing {
                    workflow: record.workflow.clone(),
                    instance: id.to_owned(),
                    from: m.from_version,
                    to: target.version,
                    variant: record.variant.clone(),
                });
            }
        };
        let old_command = m
            .from_variants
            .iter()
            .find(|v| v.name == record.variant)
            .map(|v| v.command);
        let new_command = target.variant(variant).map(|v| v.command);
        if record.pending.is_some() && old_command != new_command {
            return Err(failed(format!(
                "variant `{variant}` of version {} awaits `{}`, the instance awaits `{}`; a migrated instance keeps the command it waits for",
                target.version,
                new_command.unwrap_or("?"),
                old_command.unwrap_or("?"),
            )));
        }
        let carried = variant == record.variant && new_fields == fields;
        let state = if carried && record.layout != 0 && self.by_name_later(m.source, target) {
            // carried over: read by name when the target's code aligns it
            record.state.clone()
        } else {
            record.layout = target.layout.hash;
            adopt(target, variant, &new_fields).map_err(&failed)?
        };
        record.new_events.push(crate::history::EventKind::Migrated {
            from: m.from_version,
            to: target.version,
            from_fingerprint: record.fingerprint,
            to_fingerprint: target.fingerprint,
            from_variant: record.variant.clone(),
            to_variant: variant.to_owned(),
        });
        record.state = state;
        record.variant = variant.to_owned();
        record.variant_fp = target.variant_fp(variant);
        record.fingerprint = target.fingerprint;
        record.version = target.version;
        Ok(())
    }

    /// Whether a state laid out as `from`'s can be left as it is when it
    /// moves to `to`'s code, to be rebuilt by name when aligned to `to`
    /// ([`Engine::align`]): both layouts are known, and `from`'s is where
    /// the alignment will look for it. Otherwise it is adopted field by
    /// field (untraced types: their fingerprints are all there is).
    fn by_name_later(&self, from: WorkflowEntry, to: WorkflowEntry) -> bool {
        let Ok(layout) = &from.layout.layout else {
            return false;
        };
        if to.layout.hash == 0 {
            return false;
        }
        self.remember_layout(from.layout.hash, layout);
        true
    }

    /// Moves `record` onto version `entry`, whose variant at the current
    /// await has the same shape. With layouts on both sides the state is
    /// left for [`Engine::align`] to rebuild by name (the caller aligns
    /// next); without, that variant's fields are decoded and encoded under
    /// the new enum (variant indexes may differ).
    pub(crate) fn upgrade(
        &self,
        id: &str,
        record: &mut InstanceRecord,
        entry: WorkflowEntry,
    ) -> Result<(), ResumeError> {
        let undecodable = |reason: String| ResumeError::Undecodable {
            instance: id.to_owned(),
            reason,
        };
        if record.layout == 0 || entry.layout.hash == 0 {
            // no layouts to read it by: the same own shape is all there is
            let fields = variant_fields(&record.state).map_err(undecodable)?;
            record.state = adopt(entry, &record.variant, fields).map_err(undecodable)?;
            record.layout = entry.layout.hash;
        }
        // else the state keeps its stored layout, and the alignment to
        // `entry` that follows rebuilds it by name
        record.new_events.push(crate::history::EventKind::Upgraded {
            from: record.fingerprint,
            to: entry.fingerprint,
            variant: record.variant.clone(),
        });
        record.fingerprint = entry.fingerprint;
        record.version = entry.version;
        Ok(())
    }

    /// [`Engine::park_report`] unless `reason` was reported already (a
    /// record that does not decode cannot be marked parked, and its due
    /// timer wakes it again on each pass of the timer service).
    pub(super) fn park_report_once(&self, reason: ResumeError) {
        let known = self
            .parked
            .lock()
            .expect("parked lock poisoned")
            .contains(&reason);
        if !known {
            self.park_report(reason);
        }
    }

    pub(super) fn park_report(&self, reason: ResumeError) {
        tracing::error!(error = %reason, "instance parked");
        self.parked
            .lock()
            .expect("parked lock poisoned")
            .push(reason);
    }

    /// Whether `entry` (the record's exact shape) can decode its state.
    pub(super) fn check(
        &self,
        id: &str,
        record: &mut InstanceRecord,
        entry: WorkflowEntry,
    ) -> Result<WorkflowEntry, ResumeError> {
        // the state must decode under this code, or the instance would fail
        // mid-way; decoded, it is held for the step that follows
        if record.pending.is_some() {
            match guarded(|| {
                (entry.drive)(Op::Check {
                    state: &record.state,
                })
            }) {
                Ok(Ok(Outcome::Checked { held, .. })) => {
                    record.held = super::record::Held::of(held, record);
                }
                Ok(Ok(_)) => {}
                Ok(Err(source)) => {
                    return Err(ResumeError::Step {
                        instance: id.to_owned(),
                        source,
                    });
                }
                Err(panic) => {
                    return Err(ResumeError::Undecodable {
                        instance: id.to_owned(),
                        reason: panic,
                    });
                }
            }
        }
        Ok(entry)
    }
}

/// The fields of an encoded state: without the envelope byte and the
/// variant index (a postcard varint), as `Op::Adopt` takes them.
pub(super) fn variant_fields(state: &[u8]) -> Result<&[u8], String> {
    let body = state.get(1..).ok_or_else(|| "empty state".to_owned())?;
    let (_, fields) = postcard::take_from_bytes::<u32>(body).map_err(|e| e.to_string())?;
    Ok(fields)
}

/// Has `entry` build its variant `variant` from encoded `fields`.
pub(super) fn adopt(entry: WorkflowEntry, variant: &str, fields: &[u8]) -> Result<Vec<u8>, String> {
    match guarded(|| (entry.drive)(Op::Adopt { variant, fields })) {
        Ok(Ok(Outcome::Adopted(state))) => Ok(state),
        Ok(Ok(_)) => Err("the new version did not adopt the state".into()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(panic) => Err(panic),
    }
}
