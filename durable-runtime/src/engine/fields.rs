//! A state stored field by field: a checkpoint writes the large fields
//! that changed since the last one and refers to the others, so its cost
//! follows what the step changed, not everything the instance holds.
//!
//! A record whose state is at least [`SPLIT_AT`] bytes is stored with the
//! state cut at its fields (found by the layout: `layout::spans`). Each
//! field of at least [`FIELD_AT`] bytes goes under a key of its own, `f` +
//! id + `0` + number, written once and never changed; the record keeps the
//! pieces in order: [`Part::Inline`] bytes and [`Part::Field`] references.
//! The next checkpoint compares each large field with the stored ones
//! (their bytes are kept in memory while the instance runs): a field that
//! is byte for byte a stored one is referred to again, the others are
//! stored under new numbers, and stored values no longer referred to are
//! deleted — all in the checkpoint's own batch, so a record never refers to
//! a value the store does not hold and no value outlives the records that
//! refer to it. Loading puts the pieces back together: above the store, a
//! state is always whole (describe, snapshots, migrations, the CLI and UI
//! see it as before).
//!
//! How one value is kept under its keys (compressed, cut into pieces) is
//! [`super::values`]'.

use std::ops::Range;

use serde::{Deserialize, Serialize};

use super::{Engine, InstanceRecord, values};
use crate::codec;
use crate::store::{Batch, StoreError, Wait};

/// The size from which a state is stored field by field.
pub(crate) const SPLIT_AT: usize = 2048;

/// The size from which a field is stored under its own key.
pub(crate) const FIELD_AT: usize = 512;

/// One piece of a state stored field by field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Part {
    /// Bytes kept in the record.
    Inline(Vec<u8>),
    /// A value stored as [`values`] says, number `seq` (with its flags),
    /// `len` bytes long.
    Field { seq: u64, len: u64 },
}

/// A field value the store holds for an instance, as the checkpoint that
/// wrote or last referred to it saw it.
#[derive(Debug, Clone)]
pub(crate) struct StoredField {
    pub(crate) seq: u64,
    /// Its bytes; empty when known only by number (never matched then).
    pub(crate) bytes: Vec<u8>,
    /// Not written yet: the instance's input, written with its creation.
    pub(crate) unwritten: bool,
}

/// Number 0 is the instance's input when it is large: stored once with the
/// creation, referred to by the history (`EventKind::InputKept`) and by
/// every state field equal to it, kept until the instance is deleted.
pub(crate) const INPUT: u64 = 0;

/// The stored fields of a new instance started with `input` (an envelope),
/// and whether the input is kept as field [`INPUT`] (large enough).
pub(crate) fn first_fields(input: &[u8]) -> (Vec<StoredField>, bool) {
    match input.split_first() {
        Some((&codec::FORMAT_V1, payload)) if payload.len() >= FIELD_AT => (
            vec![StoredField {
                seq: INPUT,
                bytes: payload.to_vec(),
                unwritten: true,
            }],
            true,
        ),
        _ => (Vec::new(), false),
    }
}

fn codec_error(e: crate::CodecError) -> StoreError {
    StoreError::Codec(e.to_string())
}

impl InstanceRecord {
    /// The batch of the last [`Engine::encode_record`] committed: its
    /// fields are what the store holds.
    pub(crate) fn committed(&mut self) {
        if let Some(fields) = self.pending_fields.take() {
            self.stored_fields = Some(fields);
        }
    }
}

impl Engine {
    /// Encodes `record` as the store keeps it, adding to `batch` the large
    /// fields stored for the first time and the deletion of the stored
    /// values it no longer refers to. What the store will hold once the
    /// batch commits is kept aside in `record.pending_fields`, and becomes
    /// the record's `stored_fields` only by [`InstanceRecord::committed`]:
    /// until then they are unknown (a failed or abandoned commit leaves
    /// them so, and the next checkpoint looks at the store).
    pub(crate) fn encode_record(
        &self,
        id: &str,
        record: &mut InstanceRecord,
        batch: &mut Batch,
    ) -> Result<Vec<u8>, StoreError> {
        let none_stored = record.stored_fields.as_ref().is_some_and(Vec::is_empty);
        if record.state.len() < SPLIT_AT && none_stored && record.retiring.is_empty() {
            // the common case: a small state, stored whole as ever
            return codec::encode(&*record).map_err(codec_error);
        }
        let mut old = match record.stored_fields.take() {
            Some(old) => old,
            None => self.stored_fields_of(id)?,
        };
        for input in old.iter_mut().filter(|f| f.unwritten) {
            input.seq = values::put(batch, id, input.seq, &input.bytes);
            input.unwritten = false;
        }
        let mut old: Vec<Option<StoredField>> = old.into_iter().map(Some).collect();
        let spans = if record.state.len() >= SPLIT_AT {
            self.spans_of(record)
        } else {
            None
        };
        let mut parts = Vec::new();
        let mut now = Vec::new();
        let mut at = 0;
        for span in spans.into_iter().flatten() {
            if span.len() < FIELD_AT {
                continue;
            }
            let bytes = &record.state[span.clone()];
            if span.start > at {
                parts.push(Part::Inline(record.state[at..span.start].to_vec()));
            }
            let same = old
                .iter_mut()
                .find(|f| f.as_ref().is_some_and(|f| f.bytes == bytes))
                .and_then(Option::take);
            let field = match same {
                Some(field) => field,
                None => {
                    record.field_seq += 1;
                    let seq = values::put(batch, id, record.field_seq, bytes);
                    StoredField {
                        seq,
                        bytes: bytes.to_vec(),
                        unwritten: false,
                    }
                }
            };
            parts.push(Part::Field {
                seq: field.seq,
                len: span.len() as u64,
            });
            now.push(field);
            at = span.end;
        }
        // superseded values go with the checkpoint that supersedes them, or
        // once no reset point refers to them (the input stays: the history
        // refers to it)
        for gone in old
            .into_iter()
            .flatten()
            .filter(|f| values::number(f.seq) != INPUT)
        {
            self.let_go(id, record, gone.seq, batch);
        }
        self.reclaim_retired(id, record, batch);
        record.pending_fields = Some(now);
        if parts.is_empty() {
            return codec::encode(&*record).map_err(codec_error);
        }
        if at < record.state.len() {
            parts.push(Part::Inline(record.state[at..].to_vec()));
        }
        let state = std::mem::take(&mut record.state);
        record.parts = parts;
        let encoded = codec::encode(&*record).map_err(codec_error);
        record.parts = Vec::new();
        record.state = state;
        encoded
    }

    /// Puts the state of `record` (of instance `id`, as decoded from the
    /// store) back together from its stored pieces, and remembers the
    /// stored fields for its next checkpoint. `false` when a field it
    /// refers to is not stored: a later checkpoint replaced it between the
    /// two reads (read the record again).
    pub(crate) async fn assemble(
        &self,
        id: &str,
        record: &mut InstanceRecord,
        wait: Wait,
    ) -> Result<bool, StoreError> {
        if record.parts.is_empty() {
            record.stored_fields = Some(Vec::new());
            return Ok(true);
        }
        let mut state = Vec::new();
        let mut fields = Vec::new();
        for part in &record.parts {
            match part {
                Part::Inline(bytes) => state.extend_from_slice(bytes),
                Part::Field { seq, len } => {
                    let Some(bytes) = values::read(&*self.store, id, *seq, wait).await? else {
                        return Ok(false);
                    };
                    if bytes.len() as u64 != *len {
                        return Err(StoreError::Corrupt {
                            key: crate::store::printable(&values::first_key(id, *seq)),
                            reason: format!(
                                "a field of {} bytes where the record says {len}",
                                bytes.len()
                            ),
                        });
                    }
                    state.extend_from_slice(&bytes);
                    fields.push(StoredField {
                        seq: *seq,
                        bytes,
                        unwritten: false,
                    });
                }
            }
        }
        record.parts = Vec::new();
        record.state = state;
        record.stored_fields = Some(fields);
        Ok(true)
    }

    /// Record `bytes` of instance `id`, as a scan read it, with its state
    /// whole; `None` if the instance is gone meanwhile.
    pub(crate) fn decode_whole(
        &self,
        id: &str,
        bytes: &[u8],
    ) -> Result<Option<Result<InstanceRecord, crate::CodecError>>, StoreError> {
        let mut record = match InstanceRecord::decode(bytes) {
            Ok(record) => record,
            Err(e) => return Ok(Some(Err(e))),
        };
        if crate::store::now(self.assemble(id, &mut record, Wait::Thread))? {
            return Ok(Some(Ok(record)));
        }
        // checkpointed again since the scan read it: as it is now
        self.load_now(id)
    }

    /// The envelope of the input instance `id` keeps as field 0.
    pub(crate) async fn kept_input(&self, id: &str, wait: Wait) -> Result<Vec<u8>, StoreError> {
        let payload = values::read_input(&*self.store, id, wait)
            .await?
            .ok_or_else(|| {
                StoreError::Codec(format!("the input `{id}` keeps apart is not stored"))
            })?;
        Ok([&[codec::FORMAT_V1][..], &payload].concat())
    }

    /// The input instance `id` keeps as field [`INPUT`], as JSON text, read
    /// by the code that wrote it (layout `layout`): the registered version
    /// with that layout, else the stored layout. A description of why when
    /// it cannot be read.
    pub(crate) fn kept_input_json(&self, id: &str, layout: u64) -> String {
        let Ok(envelope) = crate::store::now(self.kept_input(id, Wait::Thread)) else {
            return "\"(the input is no longer stored)\"".into();
        };
        let entry = self.workflows.entries().find(|e| e.layout.hash == layout);
        if let Some(json) = entry.and_then(|e| (e.input_to_json)(&envelope).ok()) {
            return json.to_string();
        }
        let by_layout = self
            .stored_layout(layout)
            .ok()
            .flatten()
            .and_then(|l| crate::layout::value::read(&envelope, &l.input, &l.types).ok());
        match by_layout {
            Some(value) => value.to_json().to_string(),
            None => "\"(the input's layout is not at hand)\"".into(),
        }
    }

    /// The field values the store holds for instance `id`, by number only
    /// (when the record in memory does not know them: all are replaced).
    fn stored_fields_of(&self, id: &str) -> Result<Vec<StoredField>, StoreError> {
        Ok(values::stored(&*self.store, id)?
            .into_iter()
            .map(|seq| StoredField {
                seq,
                bytes: Vec::new(),
                unwritten: false,
            })
            .collect())
    }

    /// Where the fields of `record`'s state are, by the layout it was
    /// written with (`None`: unknown or untraced layout, or a state the
    /// layout does not walk: it is stored whole).
    fn spans_of(&self, record: &InstanceRecord) -> Option<Vec<Range<usize>>> {
        if record.layout == 0 {
            return None;
        }
        let walk = |layout: &crate::layout::WorkflowLayout| {
            crate::layout::spans::fields(&record.state, layout, &record.variant)
        };
        match self
            .workflows
            .entries()
            .find(|e| e.layout.hash == record.layout)
        {
            Some(entry) => entry.layout.layout.as_ref().ok().and_then(walk),
            None => walk(&*self.stored_layout(record.layout).ok()??),
        }
    }
}
