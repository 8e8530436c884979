// Included by `batch.rs` once per backend (`common::suite!`), which sets
// `BACKEND`.
//
// A batch operation visits every instance its filter matches, in id order,
// once: what it does is done on those it applies to and skipped on the
// others, its progress is stored page by page and goes on after a restart,
// a stop stops it, and a dry run touches nothing.

use std::sync::atomic::{AtomicBool, Ordering};

use common::{Within, until};
use durable_runtime::batch::{BatchAction, BatchState};
use durable_runtime::prelude::*;
use durable_runtime::{ListFilter, Status};

/// Set while `charge` has its bug.
static BROKEN: AtomicBool = AtomicBool::new(true);

#[activity(max_attempts = 1)]
async fn charge(cents: u32) -> Result<u32, ActivityError> {
    if BROKEN.load(Ordering::SeqCst) {
        return Err(ActivityError::terminal("card service down"));
    }
    Ok(cents)
}

/// Charges once.
#[workflow]
async fn order(cents: u32) -> Result<u32, WorkflowError> {
    let charged = charge(cents).await?;
    Ok(charged)
}

/// Adds up `add` signals until `close`.
#[workflow]
async fn tally(start: u32) -> Result<u32, WorkflowError> {
    let mut total = start;
    loop {
        match select(signal::<u32>("add"), signal::<()>("close")).await {
            Either::Left(Ok(n)) => total += n,
            _ => return Ok(total),
        }
    }
}

fn builder() -> durable_runtime::Builder {
    Runtime::builder().workflow::<order>().workflow::<tally>()
}

fn of(workflow: &str) -> ListFilter {
    ListFilter {
        workflow: Some(workflow.into()),
        ..ListFilter::default()
    }
}

async fn start_tallies(rt: &Runtime, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        let id = format!("t-{i:03}");
        rt.start(&id, tally(0), IdPolicy::Reject).await.unwrap();
        ids.push(id);
    }
    until("the tallies wait", || {
        ids.iter()
            .all(|id| rt.describe(id).is_ok_and(|d| d.step == 1))
    })
    .await;
    ids
}

#[tokio::test]
async fn a_batch_cancels_what_its_filter_matches_and_skips_what_has_ended() {
    BROKEN.store(false, Ordering::SeqCst);
    let db = BACKEND.store();
    let rt = builder().open_url(db.url()).await.unwrap();
    let ids = start_tallies(&rt, 12).await;
    rt.start("o-1", order(5), IdPolicy::Reject).await.unwrap();
    rt.signal(&ids[0], "close", &()).await.unwrap();
    until("t-000 ends", || {
        rt.describe(&ids[0]).is_ok_and(|d| d.status.is_terminal())
    })
    .await;
    // the dry run names them all and touches nothing
    let preview = rt.batch_preview(&of("tally")).unwrap();
    assert_eq!(preview, ids);
    assert!(rt.describe(&ids[1]).unwrap().status == Status::Running);
    let op = rt
        .batch(of("tally"), BatchAction::Cancel, None)
        .await
        .unwrap();
    assert_eq!((op.matched, op.state), (12, BatchState::Running));
    let op = rt.batch_wait(&op.id).within().await.unwrap();
    assert_eq!(op.state, BatchState::Done);
    assert_eq!(
        (op.visited, op.done, op.skipped, op.failed),
        (12, 11, 1, 0),
        "{op:?}"
    );
    for id in &ids[1..] {
        until("cancelled", || {
            rt.describe(id).is_ok_and(|d| d.status == Status::Cancelled)
        })
        .await;
    }
    // another workflow's instance was not touched
    assert_ne!(rt.describe("o-1").unwrap().status, Status::Cancelled);
    assert_eq!(rt.batches().unwrap().len(), 1);
    rt.shutdown().await;
}

#[tokio::test]
async fn a_batch_signal_reaches_each_instance_once_though_a_restart_cuts_it_off() {
    let db = BACKEND.store();
    let rt = builder().open_url(db.url()).await.unwrap();
    let ids = start_tallies(&rt, 30).await;
    let add = BatchAction::Signal {
        name: "add".into(),
        payload: serde_json::json!(1),
    };
    // ten a second, a page a second: cut off after its first page
    let op = rt.batch(of("tally"), add, Some(10)).await.unwrap();
    until("the first page is stored", || {
        rt.batch_status(&op.id).is_ok_and(|o| o.visited >= 10)
    })
    .await;
    rt.shutdown().await;
    let rt = builder().open_url(db.url()).await.unwrap();
    let done = rt.batch_wait(&op.id).await.unwrap();
    assert_eq!(done.state, BatchState::Done);
    assert_eq!(done.visited, done.done + done.skipped);
    assert_eq!(done.failed, 0, "{done:?}");
    assert!(done.visited >= 30, "{done:?}");
    for id in &ids {
        rt.signal(id, "close", &()).await.unwrap();
    }
    for id in &ids {
        let total: Result<u32, WorkflowError> = rt
            .handle::<tally>(id.clone())
            .result()
            .within()
            .await
            .unwrap();
        assert_eq!(total.unwrap(), 1, "{id} got the batch's signal once");
    }
    rt.shutdown().await;
}

#[tokio::test]
async fn a_batch_resets_the_failed_instances_to_their_failed_step() {
    BROKEN.store(true, Ordering::SeqCst);
    let db = BACKEND.store();
    let rt = builder().open_url(db.url()).await.unwrap();
    for i in 0..5 {
        rt.start(&format!("o-{i}"), order(100 + i), IdPolicy::Reject)
            .await
            .unwrap();
    }
    let failed = ListFilter {
        status: Some(Status::Failed),
        ..of("order")
    };
    until("the orders fail", || {
        rt.batch_preview(&failed).is_ok_and(|ids| ids.len() == 5)
    })
    .await;
    BROKEN.store(false, Ordering::SeqCst);
    let op = rt
        .batch(
            failed.clone(),
            BatchAction::reset_latest("card service back"),
            None,
        )
        .await
        .unwrap();
    let op = rt.batch_wait(&op.id).within().await.unwrap();
    assert_eq!((op.done, op.skipped, op.failed), (5, 0, 0), "{op:?}");
    for i in 0..5 {
        let out: Result<u32, WorkflowError> = rt
            .handle::<order>(format!("o-{i}"))
            .result()
            .within()
            .await
            .unwrap();
        assert_eq!(out.unwrap(), 100 + i);
    }
    assert!(rt.batch_preview(&failed).unwrap().is_empty());
    rt.shutdown().await;
}

#[tokio::test]
async fn a_stopped_batch_visits_no_more_instances() {
    let db = BACKEND.store();
    let rt = builder().open_url(db.url()).await.unwrap();
    start_tallies(&rt, 20).await;
    let op = rt
        .batch(
            of("tally"),
            BatchAction::Terminate {
                reason: "cleanup".into(),
            },
            Some(4),
        )
        .await
        .unwrap();
    until("it has begun", || {
        rt.batch_status(&op.id).is_ok_and(|o| o.visited >= 4)
    })
    .await;
    let stopped = rt.stop_batch(&op.id).await.unwrap();
    assert_eq!(stopped.state, BatchState::Stopped);
    let terminated = |rt: &Runtime| {
        rt.list(&of("tally"))
            .unwrap()
            .iter()
            .filter(|d| d.status == Status::Terminated)
            .count() as u64
    };
    // the runner sees the stop before its next instance: at most the page
    // it was on was visited without being stored
    let seen = rt.batch_wait(&op.id).await.unwrap();
    assert_eq!(seen.state, BatchState::Stopped);
    assert!(seen.visited < 20, "{seen:?}");
    assert!(terminated(&rt) <= seen.visited + 4);
    // a stop of an ended operation changes nothing; an unknown id is an error
    assert_eq!(
        rt.stop_batch(&op.id).await.unwrap().state,
        BatchState::Stopped
    );
    assert!(rt.batch_status("nope").is_err());
    rt.shutdown().await;
    // nor does a restart take it up again
    let rt = builder().open_url(db.url()).await.unwrap();
    let after = rt.batch_status(&op.id).unwrap();
    assert_eq!(
        (after.state, after.visited),
        (BatchState::Stopped, seen.visited)
    );
    assert!(terminated(&rt) <= seen.visited + 4);
    rt.shutdown().await;
}

/// A batch reset is made once per instance: a page visited again (its
/// runner stopped before storing it) skips the instances it reset, though
/// they failed again since and could be reset again.
#[tokio::test]
async fn a_batch_reset_visited_again_resets_nothing_twice() {
    use durable_runtime::store::{Batch, Store};
    BROKEN.store(true, Ordering::SeqCst);
    let db = BACKEND.store();
    let store: std::sync::Arc<dyn Store> = db.open().await;
    let rt = builder().open_store(store.clone()).await.unwrap();
    for i in 0..3 {
        rt.start(&format!("r-{i}"), order(i), IdPolicy::Reject)
            .await
            .unwrap();
    }
    let failed = ListFilter {
        status: Some(Status::Failed),
        ..of("order")
    };
    until("the orders fail", || {
        rt.batch_preview(&failed).is_ok_and(|ids| ids.len() == 3)
    })
    .await;
    let op = rt
        .batch(failed.clone(), BatchAction::reset_latest("try again"), None)
        .await
        .unwrap();
    let op = rt.batch_wait(&op.id).within().await.unwrap();
    assert_eq!((op.done, op.skipped), (3, 0), "{op:?}");
    // they fail again (the bug is still there)
    until("the orders fail again", || {
        rt.batch_preview(&failed).is_ok_and(|ids| ids.len() == 3)
    })
    .await;
    // the operation as its runner would have found it had it stopped
    // before storing its page: visited again from the start
    let mut rewound = op.clone();
    rewound.state = BatchState::Running;
    rewound.cursor = None;
    rewound.visited = 0;
    rewound.done = 0;
    rewound.runner = None;
    let mut batch = Batch::default();
    batch.put(
        [b"B".as_slice(), op.id.as_bytes()].concat(),
        serde_json::to_vec(&rewound).unwrap(),
    );
    store.commit(batch).await.unwrap();
    let again = rt.batch_wait(&op.id).await.unwrap();
    assert_eq!((again.done, again.skipped), (0, 3), "{again:?}");
    for i in 0..3 {
        assert_eq!(rt.describe(&format!("r-{i}")).unwrap().run, 2);
    }
    rt.shutdown().await;
}
