//! Stored layouts, and states brought from the layout that wrote them to
//! the code's (see [`crate::layout`]).

use std::sync::Arc;

use super::{Engine, InstanceRecord, WorkflowEntry, guarded};
use crate::codec;
use crate::command::Executor;
use crate::error::ResultError;
use crate::error::ResumeError;
use crate::layout::{Container, Reader, Shape, Traced, WorkflowLayout, diff, value};

/// Named types by name, as a layout holds them.
type Types = std::collections::BTreeMap<String, Container>;
use crate::store::{Batch, StoreError, keys};
use crate::workflow::{Op, Outcome};

impl Engine {
    /// Warns of registered versions whose layout could not be traced
    /// (their states are checked by fingerprint only).
    pub(crate) fn warn_untraced(&self) {
        for entry in self.workflows.entries() {
            if let Err(why) = &entry.layout.layout {
                tracing::warn!(
                    workflow = entry.name,
                    version = entry.version,
                    "{why}: its stored states are checked by fingerprint only, so a changed type definition behind an unchanged name is not detected"
                );
            }
        }
    }

    /// Adds layout `hash` (of a registered version) to `batch`, the batch
    /// of a record that refers to it, until a batch holding it is known to
    /// have committed ([`Engine::layout_stored`]) or the store is seen to
    /// hold it: a record is never durable without the layout that reads it,
    /// and a row every process would rewrite is not written once there.
    /// Whether it was added.
    pub(crate) fn stage_layout(&self, hash: u64, batch: &mut Batch) -> Result<bool, StoreError> {
        if self.layout_known(hash) {
            return Ok(false);
        }
        let key = keys::layout(hash);
        if self.store.get(&key)?.is_some() {
            // another process (or an earlier run) stored it
            self.layout_stored(hash);
            return Ok(false);
        }
        let layout = self
            .workflows
            .entries()
            .find(|e| e.layout.hash == hash)
            .and_then(|e| e.layout.layout.as_ref().ok());
        let Some(layout) = layout else {
            return Ok(false);
        };
        batch.put(key, crate::layout::encode(layout));
        Ok(true)
    }

    /// Whether layout `hash` needs no writing: unknown (0), or known stored.
    fn layout_known(&self, hash: u64) -> bool {
        hash == 0
            || self
                .layouts_stored
                .read()
                .expect("layouts lock poisoned")
                .contains(&hash)
    }

    /// Remembers that a batch holding layout `hash` committed.
    pub(crate) fn layout_stored(&self, hash: u64) {
        if self.layout_known(hash) {
            return;
        }
        self.layouts_stored
            .write()
            .expect("layouts lock poisoned")
            .insert(hash);
    }

    /// The layout stored under `hash`.
    pub(crate) fn stored_layout(
        &self,
        hash: u64,
    ) -> Result<Option<Arc<WorkflowLayout>>, StoreError> {
        if let Some(found) = self
            .layouts
            .lock()
            .expect("layouts lock poisoned")
            .get(&hash)
        {
            return Ok(Some(found.clone()));
        }
        let Some(bytes) = self.store.get(&keys::layout(hash))? else {
            return Ok(None);
        };
        let layout: WorkflowLayout =
            crate::layout::decode(&bytes).map_err(|reason| StoreError::Corrupt {
                key: crate::store::printable(&keys::layout(hash)),
                reason,
            })?;
        let layout = Arc::new(layout);
        self.layouts
            .lock()
            .expect("layouts lock poisoned")
            .insert(hash, layout.clone());
        Ok(Some(layout))
    }

    /// Reads output `bytes` of instance `id`, written by the code whose
    /// layout is `stored`, as `T`, the output type of the code traced as
    /// `current`: decoded as it is when the output's layout is unchanged
    /// (or unknown); else read by the stored layout and rebuilt by name, or
    /// refused naming the edit — never read by position.
    pub(crate) fn read_output<T: serde::de::DeserializeOwned>(
        &self,
        id: &str,
        stored: u64,
        current: &Traced,
        bytes: &[u8],
    ) -> Result<T, ResultError> {
        let plain = || codec::decode(bytes).map_err(ResultError::from);
        let Ok(new) = &current.layout else {
            return plain();
        };
        if stored == 0 || stored == current.hash {
            return plain();
        }
        let refused = |changes: Vec<String>| ResultError::OutputLayout {
            id: id.to_owned(),
            changes,
        };
        let Some(old) = self.stored_layout(stored)? else {
            return Err(refused(vec![format!(
                "the layout it was written with ({stored:016x}) is not in the store"
            )]));
        };
        let crossed = by_name(
            bytes,
            (&old.output, &old.types),
            (&new.output, &new.types),
            ToString::to_string,
        );
        match crossed {
            Ok(None) => plain(),
            Ok(Some(value)) => {
                value::rebuild(&value).map_err(|e| refused(vec![rebuild_failure(&e.to_string())]))
            }
            Err(Refused::Edits(edits)) => Err(refused(edits)),
            Err(Refused::Unreadable(why)) => Err(refused(vec![why])),
        }
    }

    /// The output of child `child_id` (its record `child`) as the parent
    /// awaiting it reads it: the parent's code (`parent`, awaiting at
    /// `variant`) expects the child's output type as it was when the parent
    /// was built; an output written by a build of the child whose output
    /// type is laid out otherwise is read by its stored layout and rebuilt
    /// by name in the expected type, or refused naming the edit — never
    /// read by position. Unknown layouts (untraced code, records of older
    /// builds) are passed on as they are.
    pub(crate) fn child_output(
        &self,
        parent: &WorkflowEntry,
        (variant, branch): (&str, Option<usize>),
        child_id: &str,
        child: &InstanceRecord,
    ) -> Result<Vec<u8>, Vec<String>> {
        let bytes = child.output.clone().unwrap_or_default();
        let Ok(awaiting) = &parent.layout.layout else {
            return Ok(bytes);
        };
        let Some(expected) = awaited_output(awaiting, variant, branch) else {
            // awaited inside a helper: no type recorded to read it by, so
            // only what this build of the child wrote is passed on
            let same_build = self
                .workflows
                .exact(&child.workflow, child.fingerprint, child.version)
                .is_some_and(|e| e.layout.hash == child.layout);
            if crate::layout::awaits_helper(awaiting, variant) && !same_build {
                return Err(vec![format!(
                    "the output of child `{child_id}` was written by another build of `{}`, and the #[helper] awaiting it at `{variant}` records no type to read it by",
                    child.workflow
                )]);
            }
            return Ok(bytes);
        };
        if child.layout == 0 {
            return Ok(bytes);
        }
        let refused = |why: String| vec![format!("the output of child `{child_id}`: {why}")];
        let old = match self.stored_layout(child.layout) {
            Ok(Some(old)) => old,
            Ok(None) => {
                return Err(refused(format!(
                    "the layout it was written with ({:016x}) is not in the store",
                    child.layout
                )));
            }
            Err(e) => return Err(refused(format!("its layout cannot be read: {e}"))),
        };
        let crossed = by_name(
            &bytes,
            (&old.output, &old.types),
            (expected, &awaiting.types),
            |e| {
                format!(
                    "the output of child `{child_id}` (written by another build of `{}`): {e}",
                    child.workflow
                )
            },
        );
        let value = match crossed {
            Ok(None) => return Ok(bytes),
            Ok(Some(value)) => value,
            Err(Refused::Edits(edits)) => return Err(edits),
            Err(Refused::Unreadable(why)) => return Err(refused(why)),
        };
        // the registered version of the child whose output type is the one awaited
        let target = self.workflows.entries().find(|e| {
            e.name == child.workflow
                && e.layout.layout.as_ref().is_ok_and(|l| {
                    diff::shapes(&l.output, &l.types, expected, &awaiting.types).is_empty()
                })
        });
        let Some(target) = target else {
            return Err(refused(format!(
                "no registered version of `{}` has the output type this await expects, to rebuild it in",
                child.workflow
            )));
        };
        (target.rebuild_output)(&value).map_err(|e| refused(rebuild_failure(&e)))
    }

    /// `bytes` of one value, written by code that laid it out as value
    /// layout `stored` (0: unknown), as `reader`'s type lays it out: as they
    /// are when the layouts are the same where the value holds anything (or
    /// either is unknown); else read by the stored layout and rebuilt by
    /// name; else the edits that prevent it, each saying it is `what` —
    /// never read by position.
    pub(crate) fn cross(
        &self,
        what: &str,
        bytes: Vec<u8>,
        stored: u64,
        reader: &Reader,
    ) -> Result<Vec<u8>, Vec<String>> {
        let current = (reader.layout)();
        let Ok(new) = &current.layout else {
            return Ok(bytes);
        };
        if stored == 0 || stored == current.hash {
            return Ok(bytes);
        }
        let refused = |why: String| vec![format!("{what}: {why}")];
        let old = match self.stored_value_layout(stored) {
            Ok(Some(old)) => old,
            Ok(None) => {
                return Err(refused(format!(
                    "the layout it was written with ({stored:016x}) is not in the store"
                )));
            }
            Err(e) => return Err(refused(format!("its layout cannot be read: {e}"))),
        };
        let crossed = by_name(
            &bytes,
            (&old.shape, &old.types),
            (&new.shape, &new.types),
            |e| {
                format!(
                    "{what} (written as another type than `{}`): {e}",
                    reader.type_name
                )
            },
        );
        match crossed {
            Ok(None) => Ok(bytes),
            Ok(Some(value)) => {
                (reader.rebuild)(&value).map_err(|e| refused(rebuild_failure(&e.to_string())))
            }
            Err(Refused::Edits(edits)) => Err(edits),
            Err(Refused::Unreadable(why)) => Err(refused(why)),
        }
    }

    /// Keeps `layout` (hash `hash`) for this process, so a state laid out
    /// by code that is not registered (a migration's source) can be read
    /// by it.
    pub(crate) fn remember_layout(&self, hash: u64, layout: &WorkflowLayout) {
        self.layouts
            .lock()
            .expect("layouts lock poisoned")
            .entry(hash)
            .or_insert_with(|| Arc::new(layout.clone()));
    }

    /// Checks a layout entry brought by a snapshot (an `l` or `v` key whose
    /// hash is its value's) and remembers a workflow layout for this
    /// process, so an import can read the state by name before the entry
    /// is written.
    pub(crate) fn learn_layout(&self, key: &[u8], value: &[u8]) -> Result<(), String> {
        let (&tag, hash) = key.split_first().ok_or("an empty layout key")?;
        let hash: [u8; 8] = hash
            .try_into()
            .map_err(|_| "a layout key of the wrong length")?;
        let hash = u64::from_be_bytes(hash);
        let wrong = || format!("the layout under {hash:016x} does not hash to it");
        match tag {
            keys::LAYOUT => {
                let layout: WorkflowLayout = crate::layout::decode(value)?;
                if layout.hash() != hash {
                    return Err(wrong());
                }
                self.layouts
                    .lock()
                    .expect("layouts lock poisoned")
                    .insert(hash, Arc::new(layout));
            }
            keys::VALUE_LAYOUT => {
                let layout: crate::layout::ValueLayout = crate::layout::decode(value)?;
                if layout.hash() != hash {
                    return Err(wrong());
                }
            }
            _ => return Err("a key that is not a layout's in the snapshot's layouts".into()),
        }
        Ok(())
    }

    /// How the awaits of the code that stored `record` differ from
    /// `entry`'s, when the store holds the old layout.
    pub(crate) fn await_changes(
        &self,
        record: &InstanceRecord,
        entry: WorkflowEntry,
    ) -> Vec<String> {
        let (Ok(Some(old)), Ok(new)) = (self.stored_layout(record.layout), &entry.layout.layout)
        else {
            return Vec::new();
        };
        diff::awaits(&old, new)
    }

    /// Brings `record`'s state to `entry`'s layout: nothing to do when the
    /// layouts are equal (or either is unknown); else the state is read by
    /// the stored layout and rebuilt by name, with a `Transcoded` event, or
    /// the edit that prevents it is returned. In memory only.
    pub(crate) fn align(
        &self,
        id: &str,
        record: &mut InstanceRecord,
        entry: WorkflowEntry,
    ) -> Result<(), ResumeError> {
        let to = entry.layout.hash;
        if record.layout == to || record.layout == 0 || to == 0 {
            return Ok(());
        }
        if record.state.is_empty() {
            record.layout = to;
            return Ok(());
        }
        let Ok(new) = &entry.layout.layout else {
            return Ok(());
        };
        let parked = |changes: Vec<String>| ResumeError::LayoutChanged {
            workflow: record.workflow.clone(),
            instance: id.to_owned(),
            variant: record.variant.clone(),
            changes,
        };
        let old = match self.stored_layout(record.layout) {
            Ok(Some(old)) => old,
            Ok(None) => {
                return Err(ResumeError::LayoutMissing {
                    workflow: record.workflow.clone(),
                    instance: id.to_owned(),
                    layout: record.layout,
                });
            }
            Err(e) => {
                return Err(parked(vec![format!(
                    "the stored layout cannot be read: {e}"
                )]));
            }
        };
        let (edits, value) = crate::layout::read_across(&record.state, &old, new, &record.variant)
            .map_err(parked)?;
        let state = match guarded(|| (entry.drive)(Op::Transcode(&value))) {
            Ok(Ok(Outcome::Adopted(state))) => state,
            Ok(Ok(_)) => return Err(parked(vec!["the code did not rebuild the state".into()])),
            Ok(Err(e)) => return Err(parked(vec![rebuild_failure(&e.to_string())])),
            Err(panic) => return Err(parked(vec![panic])),
        };
        if record.partial.iter().any(Option::is_some) {
            // parts of the awaited `join_all` finished under the old code:
            // their results were written as its types
            let parts = recorded_parts_by_name(
                &record.partial,
                &state,
                (&old, new),
                &record.variant,
                entry,
            )
            .map_err(parked)?;
            record.partial = parts;
        }
        record
            .new_events
            .push(crate::history::EventKind::Transcoded {
                from: record.layout,
                to,
                changes: edits.iter().map(ToString::to_string).collect(),
            });
        record.state = state;
        record.layout = to;
        Ok(())
    }
}

/// Why a value laid out one way cannot be read another.
enum Refused {
    /// Edits no reading by name can cross, each described.
    Edits(Vec<String>),
    /// The value does not read by its own (stored) layout.
    Unreadable(String),
}

/// How `bytes`, laid out as `old`, are read as `new` — the one rule for
/// states' outputs, children's outputs, signal payloads and queued calls:
/// `None` when the two are laid out alike wherever the value holds anything
/// (the bytes read as they are); the value read by the old layout, to be
/// rebuilt by name, when every edit between them can be crossed; else the
/// edits that cannot, each described by `describe` — never by position.
fn by_name(
    bytes: &[u8],
    (old, old_types): (&Shape, &Types),
    (new, new_types): (&Shape, &Types),
    describe: impl Fn(&diff::Edit) -> String,
) -> Result<Option<value::Value>, Refused> {
    let edits = diff::shapes(old, old_types, new, new_types);
    if edits.is_empty() {
        return Ok(None);
    }
    if !diff::compatible(&edits) {
        return Err(Refused::Edits(
            edits
                .iter()
                .filter(|e| !e.compatible)
                .map(describe)
                .collect(),
        ));
    }
    value::read(bytes, old, old_types)
        .map(Some)
        .map_err(|e| Refused::Unreadable(format!("it does not read by its own layout: {e}")))
}

/// serde's words for why a value did not rebuild, without the codec's
/// envelope ("missing field `cents`").
fn rebuild_failure(error: &str) -> String {
    match error.split_once(": ") {
        Some((_, why)) => format!("the stored value does not fit the new types: {why}"),
        None => error.to_owned(),
    }
}

/// The results of a `join_all`'s parts recorded by the code of layout
/// `old`, as the code of layout `new` (awaiting at `variant` with `state`)
/// wants them: as they are when the part's type is laid out alike, rebuilt
/// by name through the part's own type (the activity's output) when every
/// edit can be crossed; else why not ([`crate::layout::parts_across`]).
fn recorded_parts_by_name(
    parts: &[Option<Vec<u8>>],
    state: &[u8],
    (old, new): (&WorkflowLayout, &WorkflowLayout),
    variant: &str,
    entry: WorkflowEntry,
) -> Result<Vec<Option<Vec<u8>>>, Vec<String>> {
    let values = crate::layout::parts_across(parts, old, new, variant)?;
    if values.iter().all(Option::is_none) {
        return Ok(parts.to_vec());
    }
    let reason = |what: String| vec![crate::layout::parts_changed(variant, &what)];
    let reader = match guarded(|| (entry.drive)(Op::Executor { state })) {
        Ok(Ok(Outcome::Executor(Executor::Each(each)))) => match *each {
            Executor::Activity(vtable) => vtable.output,
            _ => return Err(reason("the parts are not activities".into())),
        },
        _ => return Err(reason("the awaited command names no activity".into())),
    };
    parts
        .iter()
        .zip(values)
        .map(|(bytes, value)| match value {
            None => Ok(bytes.clone()),
            Some(value) => (reader.rebuild)(&value)
                .map(Some)
                .map_err(|e| reason(rebuild_failure(&e.to_string()))),
        })
        .collect()
}

/// The output type a state awaiting a child at `variant` (as part
/// `branch` of a select or `join_all`) expects: the `Ok` of the `Result<Output,
/// ChildError>` its command returns.
fn awaited_output<'a>(
    layout: &'a WorkflowLayout,
    variant: &str,
    branch: Option<usize>,
) -> Option<&'a crate::layout::Shape> {
    use crate::layout::{Container, Fields, Shape};
    let (_, found) = layout.results.iter().find(|(v, _)| v == variant)?;
    let mut result = found;
    if let Some(i) = branch {
        // the branch's part of what the select gives: `first_of`'s
        // `(index, output)`, or the `i`th variant of `select`'s `Either`;
        // or a part of `join_all`'s `Vec`
        result = match result {
            Shape::Tuple(parts) if parts.len() == 2 => &parts[1],
            Shape::Seq(part) => part,
            Shape::Named(name) => match layout.types.get(name) {
                Some(Container::Enum(variants)) => match variants.get(i)? {
                    (_, Fields::Newtype(shape)) => shape,
                    _ => return None,
                },
                _ => return None,
            },
            _ => return None,
        };
    }
    let Shape::Named(name) = result else {
        return None;
    };
    let Some(Container::Enum(variants)) = layout.types.get(name) else {
        return None;
    };
    match variants.iter().find(|(v, _)| v == "Ok")? {
        (_, Fields::Newtype(shape)) => Some(shape),
        _ => None,
    }
}
