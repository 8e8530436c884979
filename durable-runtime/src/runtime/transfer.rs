//! Moving instances between stores: export to and import from
//! snapshots.

use super::Runtime;
use crate::ListFilter;
use crate::codec;
use crate::engine::{InstanceRecord, now_ms};
use crate::error::ResumeError;
use crate::phase::Status;

impl Runtime {
    /// Exports instance `id` (state, pending command, buffered signals,
    /// pending cancel/terminate requests, history) as a portable snapshot.
    /// The instance stays here too: terminate it (or drop the store) if it
    /// moves for good. Export an instance while it waits (a timer, a signal)
    /// or the store is not running it, so the copy is of one checkpoint.
    pub fn export(
        &self,
        id: &str,
    ) -> Result<crate::snapshot::Snapshot, crate::snapshot::SnapshotError> {
        crate::store::blocking(|| {
            use crate::snapshot::SnapshotError;
            use crate::store::keys;
            let store = &self.engine.store;
            // the state whole: a snapshot holds no references into this store
            let mut record = self
                .engine
                .load_now(id)?
                .ok_or_else(|| SnapshotError::NotFound { id: id.to_owned() })?
                .map_err(|e| SnapshotError::Undecodable(e.to_string()))?;
            // reset points stay here (a snapshot's history carries none), so
            // nothing there refers to values this store let go; a rerun's input
            // kept apart goes in whole
            record.retiring.clear();
            if let Some(rerun) = record.rerun.as_mut()
                && rerun.input.is_empty()
            {
                rerun.input =
                    crate::store::now(self.engine.kept_input(id, crate::store::Wait::Thread))?;
            }
            let record_bytes =
                codec::encode(&record).map_err(|e| SnapshotError::Undecodable(e.to_string()))?;
            let mut controls = Vec::new();
            for tag in [keys::CANCEL, keys::TERMINATE] {
                let key = keys::control(tag, id);
                if let Some(v) = store.get(&key)? {
                    controls.push((key, v));
                }
            }
            // completed promises and accepted updates (with their replies):
            // refused a second time on the other side too; heartbeat details,
            // so an attempt there carries on where this one was
            for marks in [
                keys::completed_prefix(id),
                keys::updates_prefix(id),
                keys::heartbeat_prefix(id),
            ] {
                controls.extend(store.scan_prefix(&marks)?);
            }
            let signals = store.scan_prefix(&keys::signals(id))?;
            // the layouts that read the state and the signals, so the store that
            // imports it can read them by name
            let mut layout_keys = vec![keys::layout(record.layout)];
            for (_, value) in &signals {
                if let Ok((_, _, hash)) = crate::engine::decode_signal(value) {
                    layout_keys.push(keys::value_layout(hash));
                }
            }
            layout_keys.sort();
            layout_keys.dedup();
            let mut layouts = Vec::new();
            for key in layout_keys {
                if let Some(v) = store.get(&key)? {
                    layouts.push((key, v));
                }
            }
            Ok(crate::snapshot::Snapshot {
                id: id.to_owned(),
                workflow: record.workflow,
                fingerprint: record.fingerprint,
                created_ms: now_ms(),
                record: record_bytes,
                signals,
                controls,
                history: self.portable_history(id)?,
                layouts,
            })
        })
    }

    /// The stored history of `id`, each key with its value, an input kept
    /// apart put back into it (a snapshot refers into no store).
    fn portable_history(
        &self,
        id: &str,
    ) -> Result<Vec<crate::store::KeyValue>, crate::snapshot::SnapshotError> {
        use crate::snapshot::SnapshotError;
        let prefix = crate::store::keys::history_prefix(id);
        let mut out = Vec::new();
        for (key, bytes) in self.engine.store.scan_prefix(&prefix)? {
            let (mut events, point) = crate::history::decode_with_point(prefix.len(), &key, &bytes)
                .map_err(|e| SnapshotError::Undecodable(e.to_string()))?;
            if !super::inspect::resolve_inputs(&self.engine, id, &mut events) {
                // a reset point refers into this store: it stays here
                let kept = bytes.len() - point.map_or(0, <[u8]>::len);
                out.push((key, bytes[..kept].to_vec()));
                continue;
            }
            let encoded = match events.as_slice() {
                [one] if key.len() == prefix.len() + 8 => codec::encode(one),
                many => codec::encode(many),
            }
            .map_err(|e| SnapshotError::Undecodable(e.to_string()))?;
            out.push((key, encoded));
        }
        Ok(out)
    }

    /// Exports every instance [`Runtime::list`] returns for `filter` (all of
    /// them with `ListFilter::default()`) into one snapshot set. The
    /// instances stay here too. Records that do not decode are skipped (they
    /// are reported by [`Runtime::parked`]).
    pub fn export_set(
        &self,
        filter: &ListFilter,
    ) -> Result<crate::snapshot::SnapshotSet, crate::snapshot::SnapshotError> {
        crate::store::blocking(|| {
            let mut snapshots = Vec::new();
            for d in self.list(filter)? {
                snapshots.push(self.export(&d.id)?);
            }
            Ok(crate::snapshot::SnapshotSet {
                created_ms: now_ms(),
                snapshots,
            })
        })
    }

    /// Writes the instances `filter` matches to `out` as a set file, one at
    /// a time: the file [`export_set`](Self::export_set) makes, read by
    /// [`SnapshotSet::from_bytes`](crate::snapshot::SnapshotSet::from_bytes)
    /// and [`import_set`](Self::import_set), with one instance in memory
    /// instead of the set (`durable export --all`). `progress(done, total)`
    /// is called after each instance. The ids written, in order.
    ///
    /// # Errors
    ///
    /// An instance could not be read, or `out` could not be written; what
    /// was written is not a complete set file.
    pub fn export_set_to<W: std::io::Write + std::io::Seek>(
        &self,
        filter: &ListFilter,
        out: &mut W,
        mut progress: impl FnMut(usize, usize),
    ) -> Result<Vec<String>, crate::snapshot::SnapshotError> {
        crate::store::blocking(|| {
            let ids: Vec<String> = self.list(filter)?.into_iter().map(|d| d.id).collect();
            crate::snapshot::write_set(out, now_ms(), ids.len(), |i| {
                let snapshot = self.export(&ids[i])?;
                progress(i + 1, ids.len());
                Ok(snapshot)
            })?;
            Ok(ids)
        })
    }

    /// Imports a snapshot: the instance continues here. Its workflow must be
    /// registered, and an unfinished instance must be runnable by the
    /// registered code: its exact version, a registered migration from its
    /// version (applied now, recorded in its history, written in the same
    /// batch), or an upgrade the workflow allows. An existing instance of
    /// that id is refused unless `replace`. Nothing is written on error.
    pub async fn import(
        &self,
        snapshot: &crate::snapshot::Snapshot,
        replace: bool,
    ) -> Result<(), crate::snapshot::SnapshotError> {
        let mut batch = crate::store::Batch::default();
        let imported =
            crate::store::blocking(|| self.prepare_import(snapshot, replace, true, &mut batch))?;
        self.commit_import(batch, &[imported]).await
    }

    /// Imports every snapshot of a set, all or nothing: each is checked as
    /// [`Runtime::import`] does, then all are written in one atomic batch.
    /// One refused snapshot (unknown workflow, shape the code cannot run, an
    /// existing id without `replace`, an id twice in the set) refuses the
    /// whole set and writes nothing. Returns how many were imported.
    pub async fn import_set(
        &self,
        set: &crate::snapshot::SnapshotSet,
        replace: bool,
    ) -> Result<usize, crate::snapshot::SnapshotError> {
        self.import_many(set, replace, true).await
    }

    /// [`Runtime::import_set`] without the code check, as
    /// [`Runtime::import_unchecked`].
    pub async fn import_set_unchecked(
        &self,
        set: &crate::snapshot::SnapshotSet,
        replace: bool,
    ) -> Result<usize, crate::snapshot::SnapshotError> {
        self.import_many(set, replace, false).await
    }

    pub(super) async fn import_many(
        &self,
        set: &crate::snapshot::SnapshotSet,
        replace: bool,
        checked: bool,
    ) -> Result<usize, crate::snapshot::SnapshotError> {
        use crate::snapshot::SnapshotError;
        let mut seen = std::collections::HashSet::new();
        if let Some(dup) = set.snapshots.iter().find(|s| !seen.insert(s.id.as_str())) {
            return Err(SnapshotError::Undecodable(format!(
                "instance `{}` is in the set twice",
                dup.id
            )));
        }
        let mut batch = crate::store::Batch::default();
        let mut imported = Vec::new();
        for snapshot in &set.snapshots {
            imported.push(crate::store::blocking(|| {
                self.prepare_import(snapshot, replace, checked, &mut batch)
            })?);
        }
        self.commit_import(batch, &imported).await?;
        Ok(imported.len())
    }

    /// [`Runtime::import`] for tools that do not have the workflow's code
    /// (the `durable` CLI): the shape is checked when a runtime with the code
    /// loads the instance (on open, or for a sleeper when it is woken), which
    /// parks it if it does not match (or migrates it, when a migration is
    /// registered there).
    pub async fn import_unchecked(
        &self,
        snapshot: &crate::snapshot::Snapshot,
        replace: bool,
    ) -> Result<(), crate::snapshot::SnapshotError> {
        let mut batch = crate::store::Batch::default();
        let imported =
            crate::store::blocking(|| self.prepare_import(snapshot, replace, false, &mut batch))?;
        self.commit_import(batch, &[imported]).await
    }

    /// Checks one snapshot and adds its writes to `batch`. With `checked`,
    /// the registered code must be able to run it, and a migration or
    /// upgrade it needs is applied to the written record.
    pub(super) fn prepare_import(
        &self,
        snapshot: &crate::snapshot::Snapshot,
        replace: bool,
        checked: bool,
        batch: &mut crate::store::Batch,
    ) -> Result<(String, bool), crate::snapshot::SnapshotError> {
        use crate::snapshot::SnapshotError;
        use crate::store::keys;
        let workflows = &self.engine.workflows;
        let newest = workflows.newest(&snapshot.workflow);
        if checked {
            let newest = newest.ok_or_else(|| SnapshotError::UnknownWorkflow {
                workflow: snapshot.workflow.clone(),
            })?;
            let known = workflows
                .entries()
                .any(|e| e.name == snapshot.workflow && e.fingerprint == snapshot.fingerprint)
                || workflows
                    .migration_from(&snapshot.workflow, snapshot.fingerprint)
                    .is_some();
            if !known && !workflows.upgrades_allowed(&snapshot.workflow) {
                return Err(SnapshotError::ShapeMismatch {
                    workflow: snapshot.workflow.clone(),
                    stored: snapshot.fingerprint,
                    current: newest.fingerprint,
                });
            }
        }
        // its layouts first: resolving it may read its state by name
        for (key, value) in &snapshot.layouts {
            self.engine
                .learn_layout(key, value)
                .map_err(SnapshotError::Undecodable)?;
            batch.put(key.clone(), value.clone());
        }
        let mut record = InstanceRecord::decode(&snapshot.record)
            .map_err(|e| SnapshotError::Undecodable(e.to_string()))?;
        if !record.parts.is_empty() {
            // a snapshot's state is whole; pieces would refer into another store
            return Err(SnapshotError::Undecodable(
                "the record refers to stored fields instead of holding its state".into(),
            ));
        }
        if record.workflow != snapshot.workflow || record.fingerprint != snapshot.fingerprint {
            return Err(SnapshotError::Undecodable(
                "the header does not match the record".into(),
            ));
        }
        let id = snapshot.id.as_str();
        if id.is_empty() || id.contains('\0') {
            return Err(SnapshotError::Undecodable(format!(
                "invalid instance id {id:?}"
            )));
        }
        // held to the limits a start and a checkpoint are
        let limits = &self.engine.limits;
        for (what, size, limit, setting) in [
            ("instance id", id.len(), limits.id(), "id_bytes"),
            (
                "state",
                record.state.len(),
                limits.state_bytes,
                "state_bytes",
            ),
        ] {
            if size > limit {
                return Err(SnapshotError::TooLarge {
                    what,
                    size,
                    limit,
                    setting,
                });
            }
        }
        let mut rewrite = false;
        // a finished instance needs no code; an unfinished one, code that runs it
        if let (true, Some(newest)) = (checked && !record.status.is_terminal(), newest) {
            match self.engine.resolve(id, &mut record) {
                Ok(_) => rewrite = record.status == Status::Parked || !record.new_events.is_empty(),
                Err(ResumeError::ShapeMismatch { .. }) => {
                    return Err(SnapshotError::ShapeMismatch {
                        workflow: snapshot.workflow.clone(),
                        stored: snapshot.fingerprint,
                        current: newest.fingerprint,
                    });
                }
                Err(other) => return Err(SnapshotError::CannotRun(other)),
            }
        }
        // every key must belong to this instance: a snapshot cannot write elsewhere
        let owns =
            |key: &[u8], prefix: &[u8]| key.starts_with(prefix) && key.len() == prefix.len() + 8;
        // an event's key, or one checkpoint's events' (one byte longer)
        let owns_history = |key: &[u8], prefix: &[u8]| {
            owns(key, prefix)
                || (key.starts_with(prefix)
                    && key.len() == prefix.len() + 9
                    && key.last() == Some(&keys::HISTORY_BATCH))
        };
        let signals = keys::signals(id);
        let history = keys::history_prefix(id);
        let controls = [
            keys::control(keys::CANCEL, id),
            keys::control(keys::TERMINATE, id),
        ];
        let marks = [
            keys::completed_prefix(id),
            keys::updates_prefix(id),
            keys::heartbeat_prefix(id),
        ];
        let control_or_mark = |k: &[u8]| {
            controls.iter().any(|c| c.as_slice() == k)
                || marks.iter().any(|m| k.starts_with(m) && k.len() > m.len())
        };
        if !snapshot.signals.iter().all(|(k, _)| owns(k, &signals))
            || !snapshot
                .history
                .iter()
                .all(|(k, _)| owns_history(k, &history))
            || !snapshot.controls.iter().all(|(k, _)| control_or_mark(k))
        {
            return Err(SnapshotError::Undecodable(
                "a key does not belong to the instance".into(),
            ));
        }
        let store = &self.engine.store;
        let key = keys::instance(id);
        match store.get(&key)? {
            Some(_) if !replace => return Err(SnapshotError::AlreadyExists { id: id.to_owned() }),
            Some(existing) => {
                // the replaced instance's index entries go with it
                if let Ok(old) = InstanceRecord::decode(&existing) {
                    old.unindex_all(id, batch);
                }
                batch.expect(key.clone(), Some(existing));
                let mut old = store.scan_prefix(&signals)?;
                old.extend(store.scan_prefix(&history)?);
                for m in &marks {
                    old.extend(store.scan_prefix(m)?);
                }
                for (k, _) in old {
                    batch.delete(k);
                }
                for k in &controls {
                    batch.delete(k.clone());
                }
            }
            None => {
                batch.expect(key.clone(), None);
            }
        }
        for (k, v) in snapshot.signals.iter().chain(&snapshot.controls) {
            batch.put(k.clone(), v.clone());
        }
        for (k, v) in &snapshot.history {
            // a reset point would refer into the store it came from
            let point = crate::history::decode_with_point(history.len(), k, v)
                .map_err(|e| SnapshotError::Undecodable(e.to_string()))?
                .1
                .map_or(0, <[u8]>::len);
            batch.put(k.clone(), v[..v.len() - point].to_vec());
        }
        if rewrite {
            // unparked, migrated or upgraded on the way in: the new state and its
            // history event go in the same batch as the rest
            record.status = Status::Running;
            record.error = None;
            self.engine.history(id, &mut record, batch)?;
        }
        crate::store::now(
            self.engine
                .stage_import_owner(id, !record.status.is_terminal(), batch),
        )?;
        // index entries are this store's: written anew
        record.indexed.clear();
        record.reindex(id, batch);
        // large fields under their own keys, and the replaced instance's
        // stored fields deleted (read from the record it replaces)
        record.stored_fields = None;
        let record_bytes = self.engine.encode_record(id, &mut record, batch)?;
        // its timers, a backoff and its deadlines come due here
        crate::engine::timer_writes(id, &record, batch);
        batch.put(key, record_bytes);
        // a cancel or terminate request to act on (not a promise's mark)
        let requested = snapshot
            .controls
            .iter()
            .any(|(k, _)| controls.iter().any(|c| c.as_slice() == k.as_slice()));
        Ok((id.to_owned(), requested))
    }

    /// Commits an import's batch and wakes what it brought in.
    pub(super) async fn commit_import(
        &self,
        batch: crate::store::Batch,
        imported: &[(String, bool)],
    ) -> Result<(), crate::snapshot::SnapshotError> {
        // committed and woken in a task of the engine: a caller that stops
        // waiting takes neither with it
        let (runtime, imported) = (self.clone(), imported.to_vec());
        self.engine
            .carried(async move { runtime.commit_import_now(batch, &imported).await })
            .await?
    }

    /// [`Runtime::commit_import`]'s work, in its task.
    async fn commit_import_now(
        &self,
        batch: crate::store::Batch,
        imported: &[(String, bool)],
    ) -> Result<(), crate::snapshot::SnapshotError> {
        use crate::snapshot::SnapshotError;
        match self.engine.store.commit(batch).await {
            Ok(()) => {}
            Err(crate::StoreError::Conflict { key }) => {
                // an instance key (`i` + id) changed or appeared meanwhile
                let id = key.get(1..).unwrap_or_default().to_owned();
                return Err(SnapshotError::AlreadyExists { id });
            }
            Err(e) => return Err(e.into()),
        }
        for (id, controls) in imported {
            if *controls {
                self.engine.book.set_control(id);
            }
        }
        self.engine.timers.notify_one();
        for (id, _) in imported {
            if self
                .engine
                .load(id)
                .await?
                .is_some_and(|r| r.is_ok_and(|r| !r.status.is_terminal()))
            {
                self.engine.owned_now(id);
            }
            self.engine.wake_instance(id).await?;
        }
        Ok(())
    }
}
