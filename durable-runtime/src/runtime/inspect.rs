//! Reading what is stored: [`Description`], states as
//! JSON, histories, and [`Compatibility`] of stored instances with the
//! registered code.

use super::Runtime;
use crate::compatibility::Compatibility;
use crate::engine::{Engine, InstanceRecord, WorkflowEntry, guarded};
use crate::error::{ResultError, ResumeError};
use crate::phase::{Phase, Status};
use crate::store::StoreError;
use crate::workflow::{Op, Outcome};

impl Runtime {
    /// The stored status and position of instance `id`, whatever its workflow.
    pub fn describe(&self, id: &str) -> Result<Description, ResultError> {
        crate::store::blocking(|| {
            // the status, position and output: the state's stored fields stay
            match self.engine.peek_now(id)? {
                None => Err(ResultError::NotFound { id: id.to_owned() }),
                Some(Err(e)) => Err(ResultError::Codec(e)),
                Some(Ok(r)) => {
                    let output = self.output_json(id, &r);
                    Ok(Description {
                        output,
                        ..Description::of(id, r)
                    })
                }
            }
        })
    }

    /// Instance `id` once it has ended, waiting up to `wait` for it to end
    /// (its [`Description`] then carries the output or the error): for
    /// callers without the workflow's types (the HTTP API, the CLI, other
    /// languages). `None` if it is still running when `wait` has passed.
    ///
    /// # Errors
    /// [`ResultError::NotFound`] for an unknown id; the store failed.
    pub async fn result_json(
        &self,
        id: &str,
        wait: std::time::Duration,
    ) -> Result<Option<Description>, ResultError> {
        let until = tokio::time::Instant::now() + wait;
        loop {
            // listen before looking: an end in between is not missed
            let ended = self.engine.waiters.listen(id);
            let notified = ended.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let d = self.describe(id)?;
            if d.status.is_terminal() {
                return Ok(Some(d));
            }
            // another process may end it: look again now and then
            let next =
                (tokio::time::Instant::now() + std::time::Duration::from_millis(250)).min(until);
            if tokio::time::Instant::now() >= until {
                return Ok(None);
            }
            let _ = tokio::time::timeout_at(next, notified).await;
        }
    }

    /// The output of a finished instance as JSON: rendered by the registered
    /// version that wrote it, else by the layout stored with it; `None`
    /// without an output (running, or failed without one) or either.
    fn output_json(&self, id: &str, r: &InstanceRecord) -> Option<serde_json::Value> {
        let bytes = r.output.as_deref()?;
        if let Ok(entry) = self.entry_for(id, r)
            && (r.layout == 0 || r.layout == entry.layout.hash)
        {
            return (entry.output_to_json)(bytes).ok();
        }
        let layout = self.engine.stored_layout(r.layout).ok()??;
        crate::layout::value::read(bytes, &layout.output, &layout.types)
            .ok()
            .map(|v| v.to_json())
    }

    /// The history of instance `id`, oldest first.
    pub fn history(&self, id: &str) -> Result<Vec<crate::history::HistoryEvent>, ResultError> {
        crate::store::blocking(|| {
            self.describe(id)?;
            history_of(&self.engine, id)
        })
    }

    /// The workflow versions and migrations this runtime registered: what
    /// it can start and run (`GET /api/workflows` lists them; `durable
    /// check` compares a stored manifest with them).
    pub fn manifest(&self) -> crate::check::Manifest {
        crate::check::Manifest::of(&self.engine.workflows)
    }

    /// How many instances have each status.
    pub fn counts(&self) -> Result<Vec<(Status, usize)>, StoreError> {
        crate::store::blocking(|| {
            let mut counts: Vec<(Status, usize)> = Vec::new();
            for (phase, n) in self.counts_by_phase()? {
                match counts.iter_mut().find(|(s, _)| *s == phase.status()) {
                    Some((_, total)) => *total += n,
                    None if n > 0 => counts.push((phase.status(), n)),
                    None => {}
                }
            }
            Ok(counts)
        })
    }

    /// How many instances are in each [`Phase`], every phase listed (zeros
    /// too) in the order of [`Phase::ALL`]: what a dashboard shows.
    ///
    /// Read from counters that every batch moving an instance between
    /// phases keeps ([`Store::counters`](crate::store::Store::counters)):
    /// the same cost at a million instances as at ten.
    pub fn counts_by_phase(&self) -> Result<Vec<(Phase, usize)>, StoreError> {
        crate::store::blocking(|| Phase::counts(&*self.engine.store))
    }

    /// The current state enum of instance `id` as JSON (`null` once it has
    /// ended), whatever its workflow: what tools show. A state is rendered
    /// by the [layout](crate::layout) that wrote it, stored with it, so the
    /// workflow's code is not needed (`durable --db DIR state ID`); a record
    /// written before layouts were stored needs its version registered.
    ///
    /// # Errors
    /// [`ResultError::NotFound`] for an unknown id,
    /// [`ResultError::NotRegistered`] if neither the layout nor the
    /// workflow's code for that version is at hand.
    pub fn state_json(&self, id: &str) -> Result<serde_json::Value, ResultError> {
        crate::store::blocking(|| {
            let r = self.load_decoded(id)?;
            if r.state.is_empty() {
                return Ok(serde_json::Value::Null);
            }
            let entry = self.entry_for(id, &r);
            if let Ok(entry) = entry
                && (r.layout == 0 || r.layout == entry.layout.hash)
            {
                return render_state(id, entry, &r.state);
            }
            // another build's layout (or no code at all): by the stored layout,
            // never by this code's positions
            match self.engine.stored_layout(r.layout)? {
                Some(layout) => crate::layout::value::read(&r.state, &layout.state, &layout.types)
                    .map(|v| v.to_json())
                    .map_err(|e| ResultError::Failed {
                        id: id.to_owned(),
                        message: e.to_string(),
                    }),
                None => entry.and_then(|entry| render_state(id, entry, &r.state)),
            }
        })
    }

    /// Answers query `def` of instance `id`: the view `V` read, field by
    /// field and by name, from the locals its current await holds (see
    /// [`query`](crate::query)).
    ///
    /// # Errors
    /// [`QueryError::NotFound`](crate::query::QueryError::NotFound),
    /// [`QueryError::Ended`](crate::query::QueryError::Ended) once it has
    /// ended, [`QueryError::NotHeld`](crate::query::QueryError::NotHeld)
    /// naming a local the current await does not hold as `V` has it.
    pub fn query<V: serde::de::DeserializeOwned>(
        &self,
        id: &str,
        def: crate::query::QueryDef<V>,
    ) -> Result<V, crate::query::QueryError> {
        crate::store::blocking(|| {
            use crate::query::QueryError;
            let state = match self.state_json(id) {
                Err(ResultError::NotFound { .. }) => {
                    return Err(QueryError::NotFound { id: id.to_owned() });
                }
                other => other?,
            };
            let not_held = |variant: &str, reason: String| QueryError::NotHeld {
                id: id.to_owned(),
                query: def.name().to_owned(),
                variant: variant.to_owned(),
                reason,
            };
            // `{"Variant": {locals}}`, or `"Variant"` holding none
            let (variant, locals) = match state {
                serde_json::Value::Null => {
                    let d = self.describe(id)?;
                    if !d.status.is_terminal() {
                        // between a failed run and the next (a retry policy)
                        return Err(not_held(&d.variant, "no state between two runs".into()));
                    }
                    return Err(QueryError::Ended {
                        id: id.to_owned(),
                        status: d.status,
                    });
                }
                serde_json::Value::String(variant) => (variant, serde_json::json!({})),
                serde_json::Value::Object(map) if map.len() == 1 => {
                    let (variant, locals) = map.into_iter().next().expect("one entry");
                    (variant, locals)
                }
                other => return Err(not_held("?", format!("a state rendered as {other}"))),
            };
            serde_json::from_value(locals).map_err(|e| not_held(&variant, e.to_string()))
        })
    }

    /// The stored record of `id`, decoded.
    pub(super) fn load_decoded(&self, id: &str) -> Result<InstanceRecord, ResultError> {
        match self.engine.load_now(id)? {
            None => Err(ResultError::NotFound { id: id.to_owned() }),
            Some(Err(e)) => Err(ResultError::Codec(e)),
            Some(Ok(r)) => Ok(r),
        }
    }

    /// The registered code that runs `record`'s version.
    pub(super) fn entry_for(
        &self,
        id: &str,
        record: &InstanceRecord,
    ) -> Result<WorkflowEntry, ResultError> {
        self.engine
            .workflows
            .exact(&record.workflow, record.fingerprint, record.version)
            .ok_or_else(|| ResultError::NotRegistered {
                id: id.to_owned(),
                workflow: record.workflow.clone(),
                fingerprint: record.fingerprint,
            })
    }

    /// For every stored instance, whether the registered code can run it:
    /// as it is, after an upgrade or a migration (each tried on a copy, with
    /// the migration functions really running), or not at all. Run it in CI
    /// against a copy of production data before deploying new workflow code,
    /// or use [`check::check_snapshots`](crate::check::check_snapshots) on
    /// exported snapshot files. Writes nothing.
    pub fn check_compatibility(&self) -> Result<Vec<(String, Compatibility)>, StoreError> {
        crate::store::blocking(|| {
            let mut out = Vec::new();
            for (key, bytes) in self
                .engine
                .store
                .scan_prefix(&[crate::store::keys::INSTANCE])?
            {
                let id = crate::store::keys::instance_id(&key);
                let Some(record) = self.engine.decode_whole(&id, &bytes)? else {
                    continue;
                };
                let verdict = match record {
                    Err(e) => Compatibility::Parked(ResumeError::Undecodable {
                        instance: id.clone(),
                        reason: e.to_string(),
                    }),
                    Ok(r) if r.status.is_terminal() => Compatibility::Finished,
                    Ok(r) => self.engine.compatibility(&id, r),
                };
                out.push((id, verdict));
            }
            Ok(out)
        })
    }
}

pub(super) fn history_of(
    engine: &Engine,
    id: &str,
) -> Result<Vec<crate::history::HistoryEvent>, ResultError> {
    let prefix = crate::store::keys::history_prefix(id);
    let mut events = Vec::new();
    for (key, bytes) in engine.store.scan_prefix(&prefix)? {
        let mut stored = crate::history::decode_stored(prefix.len(), &key, &bytes)?;
        resolve_inputs(engine, id, &mut stored);
        events.extend(stored);
    }
    Ok(events)
}

/// Puts what an instance's history keeps apart or encoded back in it as
/// JSON: every [`EventKind::InputKept`](crate::history::EventKind::InputKept)
/// becomes the `Input` event it stands for, every `ActivityKept` an
/// `ActivityCalled`, every `SignalKept` a `SignalPayload`. Whether there
/// was one.
pub(super) fn resolve_inputs(
    engine: &Engine,
    id: &str,
    events: &mut [crate::history::HistoryEvent],
) -> bool {
    use crate::history::EventKind;
    let mut any = false;
    let mut layouts = std::collections::HashMap::new();
    let mut json = |value: &crate::history::KeptValue| kept_json(engine, &mut layouts, value);
    for event in events {
        event.kind = match std::mem::replace(
            &mut event.kind,
            EventKind::Parked {
                reason: String::new(),
            },
        ) {
            EventKind::InputKept { layout, .. } => EventKind::Input {
                json: engine.kept_input_json(id, layout),
            },
            EventKind::ActivityKept {
                step,
                part,
                activity,
                input,
                output,
            } => EventKind::ActivityCalled {
                step,
                part,
                activity,
                input: json(&input),
                output: json(&output),
            },
            EventKind::SignalKept { step, name, value } => EventKind::SignalPayload {
                step,
                name,
                json: json(&value),
            },
            other => {
                event.kind = other;
                continue;
            }
        };
        any = true;
    }
    any
}

/// A value the history keeps, as JSON text read by the layout stored under
/// its hash (`layouts` caches them for one history), or a JSON string
/// saying why it cannot be shown.
fn kept_json(
    engine: &Engine,
    layouts: &mut std::collections::HashMap<u64, Option<crate::layout::ValueLayout>>,
    value: &crate::history::KeptValue,
) -> String {
    let note = |text: String| serde_json::Value::String(text).to_string();
    if value.bytes.is_empty() && value.len > 0 {
        return note(format!(
            "({} bytes: over the {} bytes the history keeps of a value)",
            value.len,
            crate::history::KEPT_VALUE_BYTES
        ));
    }
    let layout = layouts
        .entry(value.layout)
        .or_insert_with(|| engine.stored_value_layout(value.layout).ok().flatten());
    let Some(layout) = layout else {
        return note("(its type's layout is not stored: it cannot be read by name)".into());
    };
    match crate::layout::value::read(&value.bytes, &layout.shape, &layout.types) {
        Ok(read) => read.to_json().to_string(),
        Err(e) => note(format!("(does not read by its layout: {e})")),
    }
}

/// Renders an encoded state of `entry`'s workflow as JSON.
pub(super) fn render_state(
    id: &str,
    entry: WorkflowEntry,
    state: &[u8],
) -> Result<serde_json::Value, ResultError> {
    match guarded(|| (entry.drive)(Op::Json { state })) {
        Ok(Ok(Outcome::Json(json))) => Ok(json),
        Ok(Ok(_)) => Err(ResultError::Failed {
            id: id.to_owned(),
            message: "generated code did not render JSON".into(),
        }),
        Ok(Err(e)) => Err(ResultError::Failed {
            id: id.to_owned(),
            message: e.to_string(),
        }),
        Err(panic) => Err(ResultError::Failed {
            id: id.to_owned(),
            message: panic,
        }),
    }
}

/// A stored instance as seen from outside (also what the HTTP API sends,
/// so remote tools read it back as the same type).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct Description {
    /// The instance id.
    pub id: String,
    /// The workflow's name.
    pub workflow: String,
    /// The version of the workflow that runs it (`#[workflow(version = N)]`).
    pub version: u32,
    /// The shape fingerprint of its state.
    pub fingerprint: u64,
    /// The own fingerprint of its current variant (0 when none).
    pub variant_fingerprint: u64,
    /// Where it is in its life.
    pub status: Status,
    /// The status with "running" split by what it waits for (sleeping,
    /// waiting for a signal).
    pub phase: Phase,
    /// The state enum's current variant (`Finished` once done).
    pub variant: String,
    /// Transitions made so far.
    pub step: u64,
    /// Failed attempts of the pending activity, and the last error.
    pub failed_attempts: u32,
    /// The last attempt's error, if it failed.
    pub last_error: Option<String>,
    /// When the next attempt of the pending activity is due after a failed
    /// one, or the next run after a failed run (a workflow retry policy):
    /// ms since the Unix epoch on the runtime's clock; `None` when none
    /// waits.
    #[serde(default)]
    pub next_attempt_ms: Option<u64>,
    /// Why it failed or is parked.
    pub error: Option<String>,
    /// For a pending `join_all` or saga compensation: which parts are
    /// finished and checkpointed (they will not run again).
    pub parts_done: Vec<bool>,
    /// What it waits for now, in short (`activity charge`, `timer until …`,
    /// `signal approve`); `None` once it has ended.
    pub waiting_for: Option<String>,
    /// The run number (continue-as-new starts the next).
    pub run: u32,
    /// When it was created, ms since the Unix epoch.
    pub created_ms: u64,
    /// When it last changed, ms since the Unix epoch.
    pub updated_ms: u64,
    /// Its search attributes, as JSON values.
    #[serde(default)]
    pub search_attributes: std::collections::BTreeMap<String, serde_json::Value>,
    /// A finished instance's return value as JSON (`{"Ok": ..}` or
    /// `{"Err": ..}` for a workflow returning a `Result`), filled by
    /// [`Runtime::describe`] and [`Runtime::result_json`]; `None` while it
    /// runs, when it ended without one, and in [`Runtime::list`].
    #[serde(default)]
    pub output: Option<serde_json::Value>,
}

impl Description {
    pub(crate) fn of(id: &str, r: InstanceRecord) -> Description {
        Description {
            search_attributes: r
                .search_attributes
                .iter()
                .map(|(k, v)| (k.clone(), v.to_json()))
                .collect(),
            id: id.to_owned(),
            phase: Phase::of(r.status, r.pending.as_ref()),
            parts_done: r.partial.iter().map(Option::is_some).collect(),
            waiting_for: if r.variant == crate::engine::RETRYING {
                Some("the next run, after a failed one (retry policy)".to_owned())
            } else {
                r.pending
                    .as_ref()
                    .filter(|_| !r.status.is_terminal())
                    .map(crate::history::describe)
            },
            next_attempt_ms: (r.retry_at_ms > 0 && !r.status.is_terminal())
                .then_some(r.retry_at_ms),
            workflow: r.workflow,
            version: r.version,
            fingerprint: r.fingerprint,
            variant_fingerprint: r.variant_fp,
            status: r.status,
            variant: r.variant,
            step: r.step,
            failed_attempts: r.failed_attempts,
            last_error: r.last_error,
            error: r.error,
            run: r.run,
            created_ms: r.created_ms,
            updated_ms: r.updated_ms,
            output: None,
        }
    }
}
