//! One transition of an instance as pure functions: the record a step's
//! outcome makes ([`next`]), the timer-index entries that go with its
//! checkpoint ([`timer_writes`]) and every other write around the record
//! ([`surrounding_writes`]: the owner's condition, consumed wake keys,
//! update replies, losers' cancels). None reads the store, the clock or
//! the engine: what they need comes in as values ([`Moment`],
//! [`Committer`]), so they are unit-tested below without a store. The
//! engine reads those values once and commits what they produce
//! (`Engine::apply`, `Engine::save_with`; the record's own encoding and
//! indexes: `Engine::stage_record`).

use super::record::Held;
use super::{InstanceRecord, Status, WorkflowEntry, rerun};
use crate::activity::RetryPolicy;
use crate::history::EventKind;
use crate::store::{Batch, keys};
use crate::workflow::{Outcome, StepError};

/// What a transition reads besides the record and the outcome.
pub(crate) struct Moment<'a> {
    /// The runtime clock (ms since the epoch): resolves a relative timer,
    /// and is when the awaited command was scheduled.
    pub(crate) now: u64,
    /// The wall clock (ms since the epoch): when the record was updated.
    pub(crate) wall: u64,
    /// The largest state a checkpoint may hold (`Limits::state_bytes`).
    pub(crate) state_limit: usize,
    /// The retry policy of the record's workflow, if it has one.
    pub(crate) retry: Option<&'a RetryPolicy>,
}

/// Applies the outcome of the generated code (a new state and the command
/// it awaits, the output, an error or a panic) to `record`, as step
/// `record.step + 1`, with the history event that tells it. Not saved.
pub(crate) fn next(
    record: &mut InstanceRecord,
    outcome: Result<Result<Outcome, StepError>, String>,
    entry: &WorkflowEntry,
    at: &Moment<'_>,
) {
    let panicked = outcome.is_err();
    record.step += 1;
    record.failed_attempts = 0;
    record.retry_at_ms = 0;
    record.partial.clear();
    record.last_error = None;
    record.updated_ms = at.wall;
    let failed = |error: String| Some((Status::Failed, Some(error)));
    let end = match outcome {
        Ok(Ok(Outcome::Await { state, .. })) if state.len() > at.state_limit => {
            failed(crate::limits::over(
                &format!("state after step {}", record.step),
                state.len(),
                at.state_limit,
                "state_bytes",
            ))
        }
        Ok(Ok(Outcome::Await {
            state,
            variant,
            mut request,
            held,
        })) => {
            request.resolve_timers(at.now);
            record.state = state;
            record.held = Held::of(held, record);
            record.variant = variant.to_owned();
            record.pending = Some(request);
            record.pending_since_ms = at.now;
            None
        }
        Ok(Ok(Outcome::Done(output))) => {
            // a workflow that returns `Err` failed (its typed output is kept)
            let end = match ((entry.output_error)(&output), record.cancel_delivered) {
                (_, true) => (Status::Cancelled, record.error.clone()),
                (Some(failure), false) => (Status::Failed, Some(failure)),
                (None, false) => (Status::Completed, None),
            };
            record.output = Some(output);
            record.state.clear();
            record.variant = "Finished".to_owned();
            Some(end)
        }
        Ok(Ok(
            Outcome::Executor(_)
            | Outcome::Json(_)
            | Outcome::Checked { .. }
            | Outcome::Adopted(_)
            | Outcome::Traced,
        )) => failed("generated code answered a step with the wrong outcome".into()),
        Ok(Err(e)) => failed(e.to_string()),
        Err(panic) => failed(format!("workflow {panic}")),
    };
    match end {
        None => {
            let awaiting = record.pending.as_ref().map(|p| EventKind::Awaiting {
                step: record.step,
                variant: record.variant.clone(),
                command: crate::history::describe(p),
            });
            record.new_events.extend(awaiting);
        }
        Some((Status::Failed, error)) => {
            // a failed run that the workflow's retry policy runs again
            record.status = Status::Failed;
            record.error.clone_from(&error);
            match rerun::plan(record, at.retry, panicked, at.now) {
                Some(run_failed) => record.new_events.push(run_failed),
                None => finish(record, Status::Failed, error),
            }
        }
        Some((status, error)) => finish(record, status, error),
    }
    record.variant_fp = entry.variant_fp(&record.variant);
}

/// Ends `record` with `status` and `error`: nothing pending, and the
/// `Finished` event that says so. The one way an instance ends, from its
/// code's outcome ([`next`]) or from outside (`Engine::end`: a failure the
/// engine found, the execution timeout, a terminate).
pub(crate) fn finish(record: &mut InstanceRecord, status: Status, error: Option<String>) {
    record.new_events.push(EventKind::Finished {
        status,
        error: error.clone(),
    });
    record.status = status;
    record.error = error;
    record.pending = None;
}

/// The timer-index keys of `record`'s execution and run deadlines.
fn deadlines<'a>(id: &'a str, record: &InstanceRecord) -> impl Iterator<Item = Vec<u8>> + 'a {
    [record.deadline_ms, record.run_deadline_ms]
        .into_iter()
        .flatten()
        .map(move |at| keys::timer(at, id))
}

/// Adds to `batch`, which checkpoints a step of `record` (of instance
/// `id`), the timer-index entries of what it now waits for: the awaited
/// timers, the end of a backoff (the next run after a failed one; an
/// imported activity's next attempt), the execution and run deadlines
/// (none for an ended record: [`ended_timer_writes`]). Whether an entry
/// was added (the timer service then looks again).
pub(crate) fn timer_writes(id: &str, record: &InstanceRecord, batch: &mut Batch) -> bool {
    if record.status.is_terminal() {
        return false;
    }
    let mut timers = Vec::new();
    if let Some(pending) = &record.pending {
        pending.timer_keys(id, &mut timers);
    }
    if record.retry_at_ms > 0 {
        // a step's checkpoint has none but the next run after a failed one
        // (`rerun.rs`); an activity's backoff is waited out by its task
        timers.push(keys::timer(record.retry_at_ms, id));
    }
    timers.extend(deadlines(id, record));
    let any = !timers.is_empty();
    for key in timers {
        batch.put(key, Vec::new());
    }
    any
}

/// Adds to `batch`, which saves ended `record` (of instance `id`), the
/// removal of its deadlines from the timer index: an ended instance has
/// none left to enforce (they were kept forever).
pub(crate) fn ended_timer_writes(id: &str, record: &InstanceRecord, batch: &mut Batch) {
    if record.status.is_terminal() {
        for key in deadlines(id, record) {
            batch.delete(key);
        }
    }
}

/// Who commits a transition, as the store needs to know it.
pub(crate) enum Committer {
    /// The only process on its store: no condition, no messages.
    Alone,
    /// One of the processes sharing the store, as worker `name` holding
    /// the instance under lease `token` (`None`: a process that owns no
    /// instances).
    Shared { owner: Option<(String, String)> },
}

/// What a transition's commit leaves to do once it is durable.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct AfterCommit {
    /// It wrote an update's reply: the caller waiting for it is woken.
    pub(crate) replied: bool,
    /// Children that lost a select, whose cancel requests it wrote: each
    /// is woken to act on it.
    pub(crate) cancels: Vec<String>,
}

/// Adds to `batch`, the checkpoint of `record` (instance `id`), every
/// write besides the record's own encoding and indexes, in this order:
/// on a shared store the owner's condition (and, when the instance ended,
/// the release of its owner keys and the messages its result waiters and
/// parent elsewhere need); the removal of the wake keys the step consumed
/// (`spent`); when it ended, of its deadlines; the update replies and the
/// cancel requests of children that lost a select that the record carries
/// (taken from it).
pub(crate) fn surrounding_writes(
    id: &str,
    record: &mut InstanceRecord,
    committer: &Committer,
    spent: Vec<Vec<u8>>,
    batch: &mut Batch,
) -> AfterCommit {
    let finished = record.status.is_terminal();
    let shared = matches!(committer, Committer::Shared { .. });
    if let Committer::Shared { owner } = committer {
        if finished {
            // result waiters and a parent elsewhere look again
            batch.notify(format!("w{id}"));
            if let Some(parent) = &record.parent {
                batch.notify(format!("w{parent}"));
            }
        }
        if let Some((name, token)) = owner {
            batch.expect(keys::owner(id), Some(token.clone().into_bytes()));
            if finished {
                batch.delete(keys::owner(id)).delete(keys::owned(name, id));
            }
        }
    }
    for key in spent {
        batch.delete(key);
    }
    ended_timer_writes(id, record, batch);
    let replied = !record.writes.is_empty();
    for (key, value) in record.writes.drain(..) {
        batch.put(key, value);
    }
    if replied && shared {
        // a caller waiting elsewhere reads the reply now
        batch.notify(format!("y{id}"));
    }
    let cancels = std::mem::take(&mut record.cancels);
    for child in &cancels {
        batch.put(keys::control(keys::CANCEL, child), Vec::new());
        if shared {
            batch.notify(format!("c{child}"));
        }
    }
    AfterCommit { replied, cancels }
}

#[cfg(test)]
mod tests {
    use std::sync::LazyLock;
    use std::time::Duration;

    use super::*;
    use crate::command::Request;
    use crate::workflow::VariantInfo;

    static UNTRACED: LazyLock<crate::layout::Traced> = LazyLock::new(|| crate::layout::Traced {
        hash: 0,
        layout: Err("not traced".into()),
    });

    /// A workflow whose output `b"err"` is a failure, with one variant.
    fn entry() -> WorkflowEntry {
        WorkflowEntry {
            name: "order",
            version: 1,
            fingerprint: 7,
            drive: |_| unreachable!("a transition runs no generated code"),
            variants: &[VariantInfo {
                name: "Charge",
                fingerprint: 42,
                command: "charge",
            }],
            input_from_json: |_| Err("none".into()),
            input_to_json: |_| Err("none".into()),
            output_to_json: |_| Err("none".into()),
            output_error: |out| (out == b"err").then(|| "declined".to_owned()),
            layout: &UNTRACED,
            rebuild_output: |_| Err("none".into()),
        }
    }

    fn at(retry: Option<&RetryPolicy>) -> Moment<'_> {
        Moment {
            now: 1_000,
            wall: 5_000,
            state_limit: 64,
            retry,
        }
    }

    fn awaiting(state: Vec<u8>, request: Request) -> Result<Result<Outcome, StepError>, String> {
        Ok(Ok(Outcome::Await {
            state,
            variant: "Charge",
            request,
            held: Box::new(()),
        }))
    }

    #[test]
    fn an_await_stores_the_state_and_the_command_with_its_timer_due_from_now() {
        let mut record = InstanceRecord::sample();
        record.failed_attempts = 3;
        let nap = Request::Timer {
            after_ms: 250,
            at_ms: None,
        };
        next(&mut record, awaiting(vec![9; 8], nap), &entry(), &at(None));
        assert_eq!(
            (record.step, record.status, record.state.as_slice()),
            (4, Status::Running, &[9u8; 8][..])
        );
        assert_eq!((record.variant.as_str(), record.variant_fp), ("Charge", 42));
        assert!(matches!(
            record.pending,
            Some(Request::Timer {
                at_ms: Some(1_250),
                ..
            })
        ));
        assert_eq!(
            (
                record.pending_since_ms,
                record.updated_ms,
                record.failed_attempts
            ),
            (1_000, 5_000, 0)
        );
        assert!(matches!(
            record.new_events.as_slice(),
            [EventKind::Awaiting { step: 4, .. }]
        ));
        let mut batch = Batch::default();
        assert!(timer_writes("o-1", &record, &mut batch));
        assert_eq!(
            batch.writes,
            [(keys::timer(1_250, "o-1"), Some(Vec::new()))]
        );
    }

    #[test]
    fn a_state_over_the_limit_fails_the_instance_naming_the_limit() {
        let mut record = InstanceRecord::sample();
        next(
            &mut record,
            awaiting(vec![0; 65], Request::Now),
            &entry(),
            &at(None),
        );
        assert_eq!(record.status, Status::Failed);
        let error = record.error.clone().unwrap();
        assert!(
            error.contains("state_bytes") && error.contains("65"),
            "{error}"
        );
        assert!(record.pending.is_none());
        assert!(matches!(
            record.new_events.as_slice(),
            [EventKind::Finished {
                status: Status::Failed,
                ..
            }]
        ));
    }

    #[test]
    fn an_output_ends_the_instance_completed_failed_or_cancelled() {
        for (output, cancelled, status, error) in [
            (&b"ok"[..], false, Status::Completed, None),
            (b"err", false, Status::Failed, Some("declined")),
            (b"err", true, Status::Cancelled, None),
        ] {
            let mut record = InstanceRecord::sample();
            record.cancel_delivered = cancelled;
            record.deadline_ms = Some(9_000);
            let done = Ok(Ok(Outcome::Done(output.to_vec())));
            next(&mut record, done, &entry(), &at(None));
            assert_eq!(record.status, status);
            assert_eq!(record.error.as_deref(), error);
            assert_eq!(record.output.as_deref(), Some(output));
            assert!(record.state.is_empty() && record.pending.is_none());
            // the deadline leaves the timer index with the ended record
            let mut batch = Batch::default();
            assert!(!timer_writes("o-1", &record, &mut batch));
            ended_timer_writes("o-1", &record, &mut batch);
            assert_eq!(batch.writes, [(keys::timer(9_000, "o-1"), None)]);
        }
    }

    #[test]
    fn an_error_or_a_panic_fails_the_instance_unless_its_policy_runs_it_again() {
        let mut record = InstanceRecord::sample();
        record.rerun = Some(rerun::Rerun {
            attempt: 1,
            input: vec![1],
            layout: 0,
        });
        // no policy: the failure stands
        next(
            &mut record,
            Err("panicked: boom".into()),
            &entry(),
            &at(None),
        );
        assert_eq!(
            (record.status, record.error.as_deref()),
            (Status::Failed, Some("workflow panicked: boom"))
        );

        let policy = RetryPolicy {
            initial_interval: Duration::from_secs(2),
            ..RetryPolicy::default()
        };
        let mut record = InstanceRecord::sample();
        record.rerun = Some(rerun::Rerun {
            attempt: 1,
            input: vec![1],
            layout: 0,
        });
        let wrong = StepError::WrongVariant {
            workflow: "order",
            variant: "Charge",
            op: "resume",
        };
        next(&mut record, Ok(Err(wrong)), &entry(), &at(Some(&policy)));
        let due = 1_000 + policy.backoff(2).as_millis() as u64;
        assert_eq!(record.retry_at_ms, due, "the next run after the backoff");
        assert_eq!(record.status, Status::Running);
        assert!(matches!(
            record.new_events.as_slice(),
            [EventKind::RunFailed { .. }]
        ));
        let mut batch = Batch::default();
        assert!(timer_writes("o-1", &record, &mut batch));
        assert_eq!(batch.writes, [(keys::timer(due, "o-1"), Some(Vec::new()))]);
    }

    #[test]
    fn a_backoff_and_the_deadlines_are_in_the_timer_index_while_running() {
        let mut record = InstanceRecord::sample();
        (record.retry_at_ms, record.deadline_ms) = (2_000, Some(8_000));
        record.run_deadline_ms = Some(7_000);
        let mut batch = Batch::default();
        assert!(timer_writes("o-1", &record, &mut batch));
        let keys: Vec<_> = batch.writes.iter().map(|(k, _)| k.clone()).collect();
        assert_eq!(
            keys,
            [
                keys::timer(2_000, "o-1"),
                keys::timer(8_000, "o-1"),
                keys::timer(7_000, "o-1")
            ]
        );
        let mut batch = Batch::default();
        ended_timer_writes("o-1", &record, &mut batch);
        assert!(batch.writes.is_empty(), "a running record keeps them");
    }

    /// Alone on its store, a transition writes what the step consumed,
    /// replied and cancelled, with no condition and no message.
    #[test]
    fn alone_a_transition_removes_spent_keys_and_writes_replies_and_cancels_without_conditions() {
        let mut record = InstanceRecord::sample();
        record.writes.push((b"reply".to_vec(), b"42".to_vec()));
        record.cancels.push("child-1".into());
        let mut batch = Batch::default();
        let after = surrounding_writes(
            "o-1",
            &mut record,
            &Committer::Alone,
            vec![b"spent".to_vec()],
            &mut batch,
        );
        assert_eq!(
            after,
            AfterCommit {
                replied: true,
                cancels: vec!["child-1".into()]
            }
        );
        assert_eq!(
            batch.writes,
            [
                (b"spent".to_vec(), None),
                (b"reply".to_vec(), Some(b"42".to_vec())),
                (keys::control(keys::CANCEL, "child-1"), Some(Vec::new())),
            ]
        );
        assert!(batch.expect.is_empty() && batch.notify.is_empty());
        assert!(record.writes.is_empty() && record.cancels.is_empty());
    }

    /// On a shared store every checkpoint expects the owner's token; the
    /// one that ends the instance releases its owner keys and tells the
    /// waiters elsewhere, and replies and cancels are announced.
    #[test]
    fn shared_a_transition_is_fenced_by_the_owner_token_and_an_ending_releases_the_owner() {
        let owner = Committer::Shared {
            owner: Some(("w1".into(), "token-7".into())),
        };
        let mut running = InstanceRecord::sample();
        running.writes.push((b"reply".to_vec(), b"1".to_vec()));
        let mut batch = Batch::default();
        surrounding_writes("o-1", &mut running, &owner, Vec::new(), &mut batch);
        assert_eq!(
            batch.expect,
            [(keys::owner("o-1"), Some(b"token-7".to_vec()))]
        );
        assert_eq!(batch.notify, ["yo-1"]);
        assert_eq!(batch.writes, [(b"reply".to_vec(), Some(b"1".to_vec()))]);

        let mut ended = InstanceRecord::sample();
        ended.status = Status::Completed;
        ended.parent = Some("p-1".into());
        ended.cancels.push("c-1".into());
        let mut batch = Batch::default();
        surrounding_writes("o-1", &mut ended, &owner, Vec::new(), &mut batch);
        assert_eq!(batch.notify, ["wo-1", "wp-1", "cc-1"]);
        assert_eq!(
            batch.writes[..2],
            [(keys::owner("o-1"), None), (keys::owned("w1", "o-1"), None)]
        );
        // a process that owns nothing sets no condition
        let mut batch = Batch::default();
        let client = Committer::Shared { owner: None };
        surrounding_writes(
            "o-1",
            &mut InstanceRecord::sample(),
            &client,
            Vec::new(),
            &mut batch,
        );
        assert!(batch.expect.is_empty());
    }
}
