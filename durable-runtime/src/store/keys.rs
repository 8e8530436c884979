//! Key layout. Every key starts with a one-byte table tag so that all tables
//! share one sled tree and one atomic batch can span them.
//!
//! | key                                   | value                         |
//! |---------------------------------------|-------------------------------|
//! | `i` + instance id                     | the instance record           |
//! | `t` + due ms (u64 BE) + instance id   | empty: the due-timer index    |
//! | `g` + instance id + `0` + seq (u64 BE)| (signal name, encoded payload)|
//! | `c` + instance id                     | empty: cancel requested       |
//! | `x` + instance id                     | terminate requested (reason)  |
//! | `s` + schedule id                     | the schedule record           |
//! | `p` + phase tag + instance id         | empty: the phase index        |
//! | `w` + workflow + `0` + instance id    | empty: the workflow index     |
//! | `a` + name + `0` + value + `0` + id   | empty: search-attribute index |
//! | `e` + !started ms (u64 BE) + id       | empty: start-time index, newest first |
//! | `f` + instance id + `0` + seq (u64 BE)| a large field of its state     |
//! | `n` + counter name                    | a counter (i64 BE), embedded stores |
//! | `b` + instance id + `0` + call key    | an activity's heartbeat details |
//! | `U` + instance id + `0` + update id   | an accepted update, then its reply |
//!
//! A store shared by several processes (PostgreSQL) adds:
//!
//! | key                                   | value                         |
//! |---------------------------------------|-------------------------------|
//! | `L` + worker                          | the worker's lease            |
//! | `o` + instance id                     | the owning worker (fencing)   |
//! | `W` + worker + `0` + instance id      | empty: the worker's instances |
//! | `u` + instance id                     | empty: waits for an owner     |
//! | `q` + queue + `0` + call key          | a queued activity call        |
//! | `r` + instance id + `0` + call key    | a queued call's result        |
//!
//! Instance ids never contain a NUL byte, so `id + 0` bounds one instance's
//! signals.

/// Tag of instance records.
pub(crate) const INSTANCE: u8 = b'i';
/// Tag of the due-timer index.
pub(crate) const TIMER: u8 = b't';
/// Tag of buffered signals.
pub(crate) const SIGNAL: u8 = b'g';
/// Tag of pending cancel requests.
pub(crate) const CANCEL: u8 = b'c';
/// Tag of pending terminate requests.
pub(crate) const TERMINATE: u8 = b'x';

/// Tag of the phase index.
pub(crate) const PHASE_INDEX: u8 = b'p';
/// Tag of the workflow index.
pub(crate) const WORKFLOW_INDEX: u8 = b'w';

/// Tag of the counters of the embedded stores ([`Batch::count`](super::Batch::count);
/// PostgreSQL keeps them in a table of their own).
pub(crate) const COUNTER: u8 = b'n';

/// The key of counter `name` in an embedded store.
pub(crate) fn counter(name: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(name.len() + 1);
    key.push(COUNTER);
    key.extend_from_slice(name);
    key
}

/// The value stored under counter key `key`.
pub(crate) fn counter_value(key: &[u8], value: &[u8]) -> Result<i64, super::StoreError> {
    let bytes: [u8; 8] = value.try_into().map_err(|_| super::StoreError::Corrupt {
        key: super::printable(key),
        reason: format!("a counter holds {} bytes, not 8", value.len()),
    })?;
    Ok(i64::from_be_bytes(bytes))
}

/// The counter that counts the instances in the phase of index entry
/// `entry` (the entry's prefix), if it is a phase index entry.
pub(crate) fn phase_counter_of(entry: &[u8]) -> Option<&[u8]> {
    (entry.len() > 2 && entry[0] == PHASE_INDEX).then(|| &entry[..2])
}

/// The prefix of the phase index's entries for phase `tag`.
pub(crate) fn phase_index_prefix(tag: u8) -> Vec<u8> {
    vec![PHASE_INDEX, tag]
}

/// The prefix of the workflow index's entries for `workflow`.
pub(crate) fn workflow_index_prefix(workflow: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(workflow.len() + 2);
    key.push(WORKFLOW_INDEX);
    key.extend_from_slice(workflow.as_bytes());
    key.push(0);
    key
}

/// Tag of the search-attribute index.
pub(crate) const ATTRIBUTE_INDEX: u8 = b'a';

/// The prefix of the search-attribute index's entries for `name` = `value`
/// (`None` for a name or value that cannot be indexed: a NUL byte).
pub(crate) fn attribute_index_prefix(
    name: &str,
    value: &crate::search::SearchValue,
) -> Option<Vec<u8>> {
    if name.contains('\0') {
        return None;
    }
    let mut key = vec![ATTRIBUTE_INDEX];
    key.extend_from_slice(name.as_bytes());
    key.push(0);
    key.extend_from_slice(&value.index_bytes()?);
    key.push(0);
    Some(key)
}

/// Tag of the start-time index: `e` + the start time's complement (ms,
/// u64 BE, so the newest sorts first) + instance id. Written with an
/// instance's first index entries and removed with the instance; an
/// instance's start time never changes, so its entry is known from its
/// record and not listed in its `indexed`. (One index for every workflow:
/// a second per workflow cost 4% more instructions per instance, as redb
/// rebuilds one more leaf per commit; a workflow's newest are found by
/// reading its workflow index when small, else by walking this one.)
pub(crate) const STARTED_INDEX: u8 = b'e';

/// The start-time index entry of instance `id` started at `started_ms`, or
/// where one would sort (`id` empty: before every instance started then).
pub(crate) fn started_entry(started_ms: u64, id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(9 + id.len());
    key.push(STARTED_INDEX);
    key.extend_from_slice(&(u64::MAX - started_ms).to_be_bytes());
    key.extend_from_slice(id.as_bytes());
    key
}

/// The start time and instance id of a start-time index entry.
pub(crate) fn parse_started_entry(key: &[u8]) -> Option<(u64, String)> {
    let rest = key.strip_prefix(&[STARTED_INDEX])?;
    let complement = u64::from_be_bytes(rest.get(..8)?.try_into().ok()?);
    Some((
        u64::MAX - complement,
        String::from_utf8_lossy(&rest[8..]).into_owned(),
    ))
}

/// `prefix` + instance id: an index entry.
pub(crate) fn index_entry(mut prefix: Vec<u8>, id: &str) -> Vec<u8> {
    prefix.extend_from_slice(id.as_bytes());
    prefix
}

/// Tag of schedules.
/// `l` + layout hash (8 bytes, big-endian): a workflow version's
/// [layout](crate::layout::WorkflowLayout), written once.
pub(crate) const LAYOUT: u8 = b'l';

pub(crate) fn layout(hash: u64) -> Vec<u8> {
    let mut key = vec![LAYOUT];
    key.extend_from_slice(&hash.to_be_bytes());
    key
}

/// `v` + layout hash: the [layout](crate::layout::ValueLayout) of a
/// signal payload type as a sender wrote it, written once.
pub(crate) const VALUE_LAYOUT: u8 = b'v';

pub(crate) fn value_layout(hash: u64) -> Vec<u8> {
    let mut key = vec![VALUE_LAYOUT];
    key.extend_from_slice(&hash.to_be_bytes());
    key
}

pub(crate) const SCHEDULE: u8 = b's';

/// The key of schedule `id`.
pub(crate) fn schedule(id: &str) -> Vec<u8> {
    control(SCHEDULE, id)
}

/// The schedule id in a schedule key.
pub(crate) fn schedule_id(key: &[u8]) -> String {
    instance_id(key)
}

/// Tag of history events.
pub(crate) const HISTORY: u8 = b'h';

/// The prefix of instance `id`'s history.
pub(crate) fn history_prefix(id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(id.len() + 2);
    key.push(HISTORY);
    key.extend_from_slice(id.as_bytes());
    key.push(0);
    key
}

/// The key of event `seq` of instance `id`.
pub(crate) fn history(id: &str, seq: u64) -> Vec<u8> {
    let mut key = history_prefix(id);
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

/// The key of the events of one checkpoint of instance `id`, the first
/// numbered `seq`: one byte longer than an event's own key.
pub(crate) fn history_batch(id: &str, seq: u64) -> Vec<u8> {
    let mut key = history(id, seq);
    key.push(HISTORY_BATCH);
    key
}

/// Last byte of a [`history_batch`] key.
pub(crate) const HISTORY_BATCH: u8 = b'*';

/// Tag of the large fields of a state stored under their own keys.
pub(crate) const FIELD: u8 = b'f';

/// `d` + instance id + `0x00` + promise key: the promise was completed
/// (its completion is a signal; this refuses a second one). Deleted with
/// the instance by retention.
pub(crate) const COMPLETED: u8 = b'd';

/// The mark of completed promise `key` of instance `id`.
pub(crate) fn completed(id: &str, key: &str) -> Vec<u8> {
    let mut k = completed_prefix(id);
    k.extend_from_slice(key.as_bytes());
    k
}

/// The prefix of instance `id`'s completed-promise marks.
pub(crate) fn completed_prefix(id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(id.len() + 2);
    k.push(COMPLETED);
    k.extend_from_slice(id.as_bytes());
    k.push(0);
    k
}

/// `b` + instance id + `0x00` + call key: the details of the last stored
/// heartbeat of an activity call's attempts, for the next attempt to read.
/// Deleted by the checkpoint that records the call's result (or with the
/// worker's result, for a queued call), and with the instance by retention.
pub(crate) const HEARTBEAT: u8 = b'b';

/// The key of the heartbeat details of call `key` of instance `id`.
pub(crate) fn heartbeat(id: &str, key: &str) -> Vec<u8> {
    let mut k = heartbeat_prefix(id);
    k.extend_from_slice(key.as_bytes());
    k
}

/// The prefix of instance `id`'s heartbeat details.
pub(crate) fn heartbeat_prefix(id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(id.len() + 2);
    k.push(HEARTBEAT);
    k.extend_from_slice(id.as_bytes());
    k.push(0);
    k
}

/// `U` + instance id + `0x00` + update id: an accepted update (empty),
/// then its reply (`update::Stored`), written with the transition that
/// makes it. Deleted with the instance by retention.
pub(crate) const UPDATE: u8 = b'U';

/// The key of update `update` of instance `id`.
pub(crate) fn update(id: &str, update: &str) -> Vec<u8> {
    let mut k = updates_prefix(id);
    k.extend_from_slice(update.as_bytes());
    k
}

/// The prefix of instance `id`'s updates.
pub(crate) fn updates_prefix(id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(id.len() + 2);
    k.push(UPDATE);
    k.extend_from_slice(id.as_bytes());
    k.push(0);
    k
}

/// The prefix of instance `id`'s stored fields.
pub(crate) fn fields_prefix(id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(id.len() + 10);
    key.push(FIELD);
    key.extend_from_slice(id.as_bytes());
    key.push(0);
    key
}

/// The key of stored field value number `seq` of instance `id` (written
/// once, never changed: a changed field is stored under a new number).
pub(crate) fn field(id: &str, seq: u64) -> Vec<u8> {
    let mut key = fields_prefix(id);
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

/// `B` + operation id: a batch operation and its progress
/// (`crate::batch::BatchOperation`, as JSON), written by the runtime that runs it
/// with each page; kept until deleted by hand.
pub(crate) const BATCH: u8 = b'B';

/// The key of batch operation `id`.
pub(crate) fn batch(id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(id.len() + 1);
    key.push(BATCH);
    key.extend_from_slice(id.as_bytes());
    key
}

/// The key of a cancel or terminate request of instance `id`.
pub(crate) fn control(tag: u8, id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(id.len() + 1);
    key.push(tag);
    key.extend_from_slice(id.as_bytes());
    key
}

/// The key of an instance's record.
pub(crate) fn instance(id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(id.len() + 1);
    key.push(INSTANCE);
    key.extend_from_slice(id.as_bytes());
    key
}

/// Tag of worker leases.
pub(crate) const LEASE: u8 = b'L';
/// Tag of instance owners.
pub(crate) const OWNER: u8 = b'o';
/// Tag of the by-worker index of owners.
pub(crate) const OWNED: u8 = b'W';
/// Tag of instances waiting for an owner.
pub(crate) const UNASSIGNED: u8 = b'u';

/// Tag of queued activity calls.
pub(crate) const TASK: u8 = b'q';
/// Tag of queued calls' results.
pub(crate) const RESULT: u8 = b'r';

/// The prefix of `queue`'s tasks.
pub(crate) fn task_prefix(queue: &str) -> Vec<u8> {
    let mut key = vec![TASK];
    key.extend_from_slice(queue.as_bytes());
    key.push(0);
    key
}

/// The task of call `call` (an idempotency key) on `queue`.
pub(crate) fn task(queue: &str, call: &str) -> Vec<u8> {
    let mut key = task_prefix(queue);
    key.extend_from_slice(call.as_bytes());
    key
}

/// The result of call `call` of instance `id`.
pub(crate) fn result(id: &str, call: &str) -> Vec<u8> {
    let mut key = vec![RESULT];
    key.extend_from_slice(id.as_bytes());
    key.push(0);
    key.extend_from_slice(call.as_bytes());
    key
}

/// The key of `worker`'s lease.
pub(crate) fn lease(worker: &str) -> Vec<u8> {
    control(LEASE, worker)
}

/// The key of instance `id`'s owner.
pub(crate) fn owner(id: &str) -> Vec<u8> {
    control(OWNER, id)
}

/// The prefix of `worker`'s entries in the by-worker index.
pub(crate) fn owned_prefix(worker: &str) -> Vec<u8> {
    let mut key = vec![OWNED];
    key.extend_from_slice(worker.as_bytes());
    key.push(0);
    key
}

/// `worker`'s entry for instance `id` in the by-worker index.
pub(crate) fn owned(worker: &str, id: &str) -> Vec<u8> {
    index_entry(owned_prefix(worker), id)
}

/// The key marking instance `id` as waiting for an owner.
pub(crate) fn unassigned(id: &str) -> Vec<u8> {
    control(UNASSIGNED, id)
}

/// The instance id in an instance key.
pub(crate) fn instance_id(key: &[u8]) -> String {
    String::from_utf8_lossy(key.get(1..).unwrap_or_default()).into_owned()
}

/// The index key of a timer due at `at_ms` for instance `id`.
pub(crate) fn timer(at_ms: u64, id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(id.len() + 9);
    key.push(TIMER);
    key.extend_from_slice(&at_ms.to_be_bytes());
    key.extend_from_slice(id.as_bytes());
    key
}

/// Due time and instance id of a timer key.
pub(crate) fn parse_timer(key: &[u8]) -> Option<(u64, String)> {
    let at = u64::from_be_bytes(key.get(1..9)?.try_into().ok()?);
    Some((at, String::from_utf8_lossy(key.get(9..)?).into_owned()))
}

/// The prefix of all buffered signals of instance `id`.
pub(crate) fn signals(id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(id.len() + 2);
    key.push(SIGNAL);
    key.extend_from_slice(id.as_bytes());
    key.push(0);
    key
}

/// The key of signal number `seq` of instance `id`.
pub(crate) fn signal(id: &str, seq: u64) -> Vec<u8> {
    let mut key = signals(id);
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

/// The sequence number in a signal key.
pub(crate) fn signal_seq(key: &[u8]) -> Option<u64> {
    let tail = key.len().checked_sub(8)?;
    Some(u64::from_be_bytes(key.get(tail..)?.try_into().ok()?))
}

/// The smallest key after `key`.
pub(crate) fn after(key: &[u8]) -> Vec<u8> {
    let mut next = key.to_vec();
    next.push(0);
    next
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timer_keys_sort_by_due_time_and_round_trip() {
        let a = timer(5, "zzz");
        let b = timer(256, "aaa");
        assert!(a < b, "big-endian due times sort numerically");
        assert_eq!(parse_timer(&b), Some((256, "aaa".to_owned())));
        assert!(signal("a", 1) < signal("a", 2));
        assert!(signal("a", u64::MAX).starts_with(&signals("a")));
        assert!(!signal("ab", 1).starts_with(&signals("a")));
        assert_eq!(signal_seq(&signal("x", 77)), Some(77));
        assert!(after(&a) > a);
    }

    #[test]
    fn start_time_entries_sort_newest_first_and_round_trip() {
        let old = started_entry(5, "b");
        let new = started_entry(256, "a");
        let same_time = started_entry(256, "c");
        assert!(
            new < same_time && same_time < old,
            "newest first, then by id"
        );
        assert!(started_entry(256, "") < new, "an empty id sorts first");
        assert_eq!(parse_started_entry(&old), Some((5, "b".to_owned())));
        assert_eq!(parse_started_entry(&instance("b")), None);
    }
}
