//! `select` and `first_of`: the branches checked in order for one that
//! has come, else the activity branches raced against the earliest timer
//! branch, interrupted by a signal or a child's end; the losers dropped
//! (attempts aborted, timers removed, children cancelled with the commit).

use super::{Engine, Halt, InstanceRecord, WorkflowEntry, composite};
use crate::codec;
use crate::command::{Cancelled, Executor, Request};
use crate::store::StoreError;

impl Engine {
    /// Carries out the select `branches` instance `id` awaits (`executor`:
    /// the branches' executors; `timers`: the wake-source keys the step
    /// uses up): the winner's index and output, or `None` to wait.
    pub(super) async fn run_select(
        &self,
        id: &str,
        record: &mut InstanceRecord,
        branches: &[Request],
        entry: WorkflowEntry,
        executor: Option<Executor>,
        mut timers: Vec<Vec<u8>>,
    ) -> Result<Option<(Vec<u8>, Vec<Vec<u8>>)>, Halt> {
        if let Some(what) = branches.iter().find_map(not_raced) {
            let why = format!(
                "a select (or first_of) races activities, timers, signals and child workflows; {what} in one is not supported: await it on its own, or race it inside a child workflow"
            );
            return self.fail(id, record, why).await;
        }
        for (i, branch) in branches.iter().enumerate() {
            let exec = match &executor {
                Some(Executor::Select(execs)) => execs.get(i),
                Some(Executor::Each(each)) => Some(&**each),
                _ => None,
            };
            let came = match branch {
                // started the first time the select is looked at
                // (a restart finds it by its id), then looked up
                Request::Child { .. } => self
                    .child_part(id, record, &entry, branch, i)
                    .await?
                    .map(|(bytes, _)| (bytes, None, None)),
                _ => self.ready(id, branch, exec).await?,
            };
            if let Some((bytes, key, carried)) = came {
                Self::note_arrival(id, record, branch, carried);
                let wrapped = match codec::variant(i as u32, &bytes) {
                    Ok(w) => w,
                    Err(e) => return self.fail(id, record, e.to_string()).await,
                };
                timers.extend(key);
                Box::pin(self.cancel_losers(id, record, branches, i))
                    .await
                    .map_err(Halt::Store)?;
                return Ok(Some((wrapped, timers)));
            }
        }
        let execs = match executor {
            Some(Executor::Each(each)) => vec![(*each).clone(); branches.len()],
            other => other.map_or_else(Vec::new, |e| match e {
                Executor::Select(execs) => execs,
                _ => Vec::new(),
            }),
        };
        let Some(()) = (execs.len() == branches.len()).then_some(()) else {
            return self
                .fail(id, record, "select without its executors".into())
                .await;
        };
        // every activity branch runs at once; the first to finish wins and
        // the others' attempts are dropped (aborted), as is a losing timer
        // `<id>/<incarnation>/<step>/<branch>`: unique to this run of the id
        let call = record.activity_key(id);
        let scheduled_ms = record.scheduled_ms(&*self.clock);
        let mut racers: futures::stream::FuturesUnordered<_> = branches
            .iter()
            .zip(&execs)
            .enumerate()
            .filter_map(|(i, (b, e))| match (b, e) {
                (Request::Activity { input, options, .. }, Executor::Activity(v)) => {
                    let key = format!("{call}/{i}");
                    Some(async move {
                        (
                            i,
                            composite::attempts(self, key, id, (*v, input, options), scheduled_ms)
                                .await
                                .map(|(outcome, _)| outcome),
                        )
                    })
                }
                _ => None,
            })
            .collect();
        if racers.is_empty() {
            return Ok(None);
        }
        let deadline = branches
            .iter()
            .enumerate()
            .filter_map(|(j, b)| match b {
                Request::Timer {
                    at_ms: Some(at), ..
                } => Some((*at, j)),
                _ => None,
            })
            .min();
        let timer = crate::clock::sleep_until_ms(&*self.clock, deadline.map(|(at, _)| at));
        // the first to finish: an activity branch (its index and
        // outcome), or the timer (`Err` with its index)
        let race = async {
            tokio::select! {
                Some((i, out)) = futures::StreamExt::next(&mut racers) => Ok((i, out)),
                () = timer => Err(deadline.map_or(0, |(_, j)| j)),
            }
        };
        // a signal or a child's end that came after the first look:
        // look again, now that a later one interrupts the race (see
        // `Runtime::signal`, `Engine::interrupt_if_a_branch_came`)
        let seen = Box::pin(async {
            for (i, branch) in branches.iter().enumerate() {
                if self.branch_came(id, record.step, branch, i).await? {
                    return Ok(true);
                }
            }
            Ok(false)
        });
        let won = self
            .interruptible(id, record.next_deadline(), seen, race)
            .await?;
        let (index, bytes) = match won {
            Ok((i, out)) => match out? {
                Ok((bytes, _)) => (i, bytes),
                Err(why) => return self.fail(id, record, why).await,
            },
            Err(j) => match codec::encode(&Ok::<(), Cancelled>(())) {
                Ok(b) => (j, b),
                Err(e) => return self.fail(id, record, e.to_string()).await,
            },
        };
        drop(racers);
        Box::pin(self.cancel_losers(id, record, branches, index))
            .await
            .map_err(Halt::Store)?;
        match codec::variant(index as u32, &bytes) {
            Ok(wrapped) => Ok(Some((wrapped, timers))),
            Err(e) => self.fail(id, record, e.to_string()).await,
        }
    }

    /// Whether branch `branch` of the select instance `id` awaits at
    /// `step` has come since it was last looked at: a buffered signal, or
    /// a child that has ended.
    pub(super) async fn branch_came(
        &self,
        id: &str,
        step: u64,
        request: &Request,
        branch: usize,
    ) -> Result<bool, Halt> {
        match request {
            Request::Signal { .. } => self.peek_signal(id, request).await,
            Request::Child { id: named, .. } => {
                let child = composite::child_id(id, step, Some(branch), named.as_deref());
                Ok(matches!(
                    Box::pin(self.load(&child)).await.map_err(Halt::Store)?,
                    Some(Ok(r)) if r.status.is_terminal()
                ))
            }
            _ => Ok(false),
        }
    }

    /// Ends at once the race of a select instance `id` runs (against an
    /// activity) when another of its branches has come: a signal sent or
    /// a child ended in another process or task (see `Runtime::signal`).
    pub(crate) async fn interrupt_if_a_branch_came(&self, id: &str) -> Result<(), StoreError> {
        let running = self.book.has_task(id);
        if !running {
            return Ok(());
        }
        if let Some(Ok(record)) = self.load(id).await?
            && let Some(Request::Select(branches)) = &record.pending
        {
            for (i, branch) in branches.iter().enumerate() {
                if self
                    .branch_came(id, record.step, branch, i)
                    .await
                    .unwrap_or(false)
                {
                    self.interrupts.notify(id);
                    break;
                }
            }
        }
        Ok(())
    }

    /// The children of the select instance `id` awaits that lost to branch
    /// `won` and still run: cancelled with the transition (as a losing
    /// activity's attempt is dropped and a losing timer removed), whatever
    /// their parent-close policy.
    async fn cancel_losers(
        &self,
        id: &str,
        record: &mut InstanceRecord,
        branches: &[Request],
        won: usize,
    ) -> Result<(), StoreError> {
        for (i, branch) in branches.iter().enumerate() {
            let Request::Child { id: named, .. } = branch else {
                continue;
            };
            if i == won {
                continue;
            }
            let child = composite::child_id(id, record.step, Some(i), named.as_deref());
            if matches!(self.load(&child).await?, Some(Ok(r)) if !r.status.is_terminal()) {
                record.cancels.push(child);
            }
        }
        Ok(())
    }
}

/// What a select cannot race (it would never finish it), named for the
/// message; `None` for what it can.
fn not_raced(request: &Request) -> Option<&'static str> {
    match request {
        Request::StartChild { .. } => Some("starting a child workflow"),
        Request::All { .. } => Some("a join_all"),
        Request::Compensate(_) => Some("a saga's compensation"),
        Request::ContinueAsNew { .. } => Some("continue-as-new"),
        Request::Select(_) => Some("a nested select"),
        Request::Activity { .. }
        | Request::Child { .. }
        | Request::Timer { .. }
        | Request::Signal { .. }
        | Request::Now
        | Request::RandomU64
        | Request::Uuid
        | Request::Promise
        | Request::Reply { .. }
        | Request::SetAttributes(_)
        | Request::Scheduled => None,
    }
}
