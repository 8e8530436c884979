// Included by `updates.rs` once per backend (`common::suite!`), which sets
// `BACKEND`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{Within, until};
use durable_runtime::clock::TestClock;
use durable_runtime::history::EventKind;
use durable_runtime::prelude::*;
use durable_runtime::update::UpdateDef;
use durable_runtime::{SignalError, Status, UpdateError};
use serde::{Deserialize, Serialize};

/// Sets a cart line's quantity; the reply is the cart's new total in cents.
const SET_QUANTITY: UpdateDef<u32, u64> = UpdateDef::new("set_quantity");

/// The cart: takes quantity updates until `checkout`, a cent price each.
#[workflow]
async fn cart(price: u64) -> Result<u64, WorkflowError> {
    let mut total = 0;
    loop {
        match select(SET_QUANTITY.receive(), signal::<()>("checkout")).await {
            Either::Left(Ok(update)) => {
                total = price * u64::from(*update.request());
                update.reply(total).await;
            }
            _ => return Ok(total),
        }
    }
}

fn builder() -> durable_runtime::Builder {
    Runtime::builder()
        .workflow::<cart>()
        .workflow::<slow_reply>()
        .workflow::<no_reply>()
        .workflow::<quote>()
        .workflow::<until_deadline>()
        .update_validator(SET_QUANTITY, |n: &u32| {
            if (1..=100).contains(n) {
                Ok(())
            } else {
                Err(format!("a quantity is 1 to 100, not {n}"))
            }
        })
}

/// The `update/...` deliveries and replies in `id`'s history.
fn update_events(rt: &Runtime, id: &str) -> (usize, usize) {
    let history = rt.history(id).unwrap();
    let received = history
        .iter()
        .filter(|e| matches!(&e.kind, EventKind::SignalReceived { name, .. } if name.starts_with("update/")))
        .count();
    let replied = history
        .iter()
        .filter(|e| matches!(e.kind, EventKind::UpdateReplied { .. }))
        .count();
    (received, replied)
}

#[tokio::test]
async fn an_update_is_validated_accepted_once_and_answered() {
    let db = BACKEND.store();
    let rt = builder().open_url(db.url()).await.unwrap();
    let h = rt.start("cart", cart(250), IdPolicy::Reject).await.unwrap();
    // the validator refuses 0: nothing is written, nothing is in the history
    let refused = rt.update("cart", SET_QUANTITY, &0).await.unwrap_err();
    assert!(
        matches!(&refused, UpdateError::Rejected { reason, .. } if reason == "a quantity is 1 to 100, not 0"),
        "{refused:?}"
    );
    assert_eq!(update_events(&rt, "cart"), (0, 0));
    assert_eq!(
        rt.update("cart", SET_QUANTITY, &4).within().await.unwrap(),
        1_000
    );
    // the same update id twice: accepted once, the one reply returned twice
    let first = rt
        .update_as("cart", SET_QUANTITY, "change-7", &3)
        .within()
        .await
        .unwrap();
    let again = rt
        .update_as("cart", SET_QUANTITY, "change-7", &9)
        .within()
        .await
        .unwrap();
    assert_eq!((first, again), (750, 750));
    assert_eq!(update_events(&rt, "cart"), (2, 2));
    rt.signal("cart", "checkout", &()).await.unwrap();
    assert_eq!(h.result().within().await.unwrap().unwrap(), 750);
    // once it has ended, an update cannot be sent
    let ended = rt.update("cart", SET_QUANTITY, &5).await.unwrap_err();
    assert!(
        matches!(ended, UpdateError::Send(SignalError::Finished { .. })),
        "{ended:?}"
    );
    // ... but the reply of one it answered can still be read
    assert_eq!(
        rt.update_reply("cart", SET_QUANTITY, "change-7")
            .await
            .unwrap(),
        750
    );
    let unknown = rt
        .update_reply("cart", SET_QUANTITY, "never-sent")
        .await
        .unwrap_err();
    assert!(
        matches!(unknown, UpdateError::Unknown { .. }),
        "{unknown:?}"
    );
    let bad = rt
        .update_as("cart", SET_QUANTITY, "", &1)
        .await
        .unwrap_err();
    assert!(matches!(bad, UpdateError::BadId { .. }), "{bad:?}");
    rt.shutdown().await;
}

static RELEASE: AtomicBool = AtomicBool::new(false);

#[activity]
async fn slow_approval(doc: String) -> Result<String, ActivityError> {
    while !RELEASE.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(format!("{doc} approved"))
}

const APPROVE: UpdateDef<String, String> = UpdateDef::new("approve");

/// Receives one approval, runs an activity, then replies.
#[workflow]
async fn slow_reply(doc: String) -> Result<String, WorkflowError> {
    let update = APPROVE.receive().await?;
    let approved = slow_approval(format!("{doc} by {}", update.request())).await?;
    update.reply(approved.clone()).await;
    Ok(approved)
}

#[tokio::test]
async fn a_caller_re_attaches_after_both_restart_and_reads_the_one_reply() {
    let db = BACKEND.store();
    let rt = builder().open_url(db.url()).await.unwrap();
    rt.start("doc", slow_reply("doc".into()), IdPolicy::Reject)
        .await
        .unwrap();
    // the caller gives up waiting (its own restart), the update stays accepted
    let waited = tokio::time::timeout(
        Duration::from_millis(300),
        rt.update_as("doc", APPROVE, "approval-1", &"ada".to_owned()),
    )
    .await;
    assert!(
        waited.is_err(),
        "replied before the activity ran: {waited:?}"
    );
    until("the update to be received", || {
        update_events(&rt, "doc").0 == 1
    })
    .await;
    rt.shutdown().await;
    RELEASE.store(true, Ordering::SeqCst);
    let rt = builder().open_url(db.url()).await.unwrap();
    let reply = rt
        .update_reply("doc", APPROVE, "approval-1")
        .within()
        .await
        .unwrap();
    assert_eq!(reply, "doc by ada approved");
    // sent again with its id after the restart: not accepted twice
    assert_eq!(
        rt.update_as("doc", APPROVE, "approval-1", &"bob".to_owned())
            .within()
            .await
            .unwrap(),
        "doc by ada approved"
    );
    assert_eq!(update_events(&rt, "doc"), (1, 1));
    rt.shutdown().await;
}

/// Receives an update and ends without replying.
#[workflow]
async fn no_reply(n: u32) -> Result<u32, WorkflowError> {
    let update = SET_QUANTITY.receive().await?;
    Ok(n + *update.request())
}

#[tokio::test]
async fn an_instance_that_ends_without_replying_answers_its_callers_unanswered() {
    let db = BACKEND.store();
    let rt = builder().open_url(db.url()).await.unwrap();
    let h = rt
        .start("mute", no_reply(1), IdPolicy::Reject)
        .await
        .unwrap();
    let err = rt
        .update("mute", SET_QUANTITY, &2)
        .within()
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            UpdateError::Unanswered {
                status: Status::Completed,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(h.result().await.unwrap().unwrap(), 3);
    rt.shutdown().await;
}

/// The reply as the workflow lays it out.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Quote {
    cents: u64,
    note: String,
}

/// The same reply as a caller of another build lays it out: fields
/// swapped (read by position, `note` would be read as the cents).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct QuoteSwapped {
    note: String,
    cents: u64,
}

const QUOTE: UpdateDef<u64, Quote> = UpdateDef::new("quote");
const QUOTE_SWAPPED: UpdateDef<u64, QuoteSwapped> = UpdateDef::new("quote");

#[workflow]
async fn quote(base: u64) -> Result<u64, WorkflowError> {
    let update = QUOTE.receive().await?;
    let cents = base + *update.request();
    update
        .reply(Quote {
            cents,
            note: "incl. VAT".into(),
        })
        .await;
    Ok(cents)
}

#[tokio::test]
async fn a_reply_laid_out_otherwise_than_the_callers_type_is_read_by_name() {
    let db = BACKEND.store();
    let rt = builder().open_url(db.url()).await.unwrap();
    rt.start("q", quote(1_000), IdPolicy::Reject).await.unwrap();
    let reply = rt.update("q", QUOTE_SWAPPED, &99).within().await.unwrap();
    assert_eq!(
        reply,
        QuoteSwapped {
            note: "incl. VAT".into(),
            cents: 1_099
        }
    );
    rt.shutdown().await;
}

/// Takes updates until a deadline an hour away.
#[workflow]
async fn until_deadline(n: u32) -> Result<u32, WorkflowError> {
    let mut got = n;
    loop {
        match select(SET_QUANTITY.receive(), sleep(Duration::from_secs(3_600))).await {
            Either::Left(Ok(update)) => {
                got += *update.request();
                update.reply(u64::from(got)).await;
            }
            _ => return Ok(got),
        }
    }
}

#[tokio::test]
async fn updates_race_a_timer_and_start_their_instance_when_asked() {
    let db = BACKEND.store();
    let clock = Arc::new(TestClock::new());
    let rt = builder()
        .clock(clock.clone())
        .open_url(db.url())
        .await
        .unwrap();
    // update with start: the instance is created, then updated
    let (h, reply) = rt
        .update_with_start("deadline", until_deadline(10), (SET_QUANTITY, "first", &5))
        .within()
        .await
        .unwrap();
    assert_eq!(reply, 15);
    // again with the same update id: the running instance, the same reply
    let (_, again) = rt
        .update_with_start("deadline", until_deadline(99), (SET_QUANTITY, "first", &5))
        .within()
        .await
        .unwrap();
    assert_eq!(again, 15);
    // JSON, as the HTTP API sends it: converted by the declared type
    let (update_id, json) = rt
        .update_json(
            "deadline",
            "set_quantity",
            None,
            &serde_json::json!(2),
            Duration::from_secs(30),
        )
        .await
        .unwrap();
    assert_eq!(json, Some(serde_json::json!(17)));
    assert_eq!(
        rt.update_reply_json("deadline", &update_id, Duration::ZERO)
            .await
            .unwrap(),
        Some(serde_json::json!(17))
    );
    // the timer wins once no update comes
    until("the instance to wait", || rt.running_instances() == 0).await;
    clock.advance(Duration::from_secs(3_600));
    assert_eq!(h.result().within().await.unwrap().unwrap(), 17);
    rt.shutdown().await;
}

#[tokio::test]
async fn an_update_moved_to_another_store_with_its_instance_is_not_accepted_twice() {
    let (db, other) = (BACKEND.store(), BACKEND.store());
    let rt = builder().open_url(db.url()).await.unwrap();
    rt.start("moving", cart(100), IdPolicy::Reject)
        .await
        .unwrap();
    assert_eq!(
        rt.update_as("moving", SET_QUANTITY, "q-1", &2)
            .within()
            .await
            .unwrap(),
        200
    );
    until("the cart to wait", || rt.running_instances() == 0).await;
    let snapshot = rt.export("moving").unwrap();
    rt.shutdown().await;

    let moved = builder().open_url(other.url()).await.unwrap();
    moved.import(&snapshot, false).await.unwrap();
    // its reply came along, and its mark: the same id is not a second update
    assert_eq!(
        moved
            .update_as("moving", SET_QUANTITY, "q-1", &7)
            .within()
            .await
            .unwrap(),
        200
    );
    assert_eq!(update_events(&moved, "moving"), (1, 1));
    assert_eq!(
        moved
            .update_as("moving", SET_QUANTITY, "q-2", &3)
            .within()
            .await
            .unwrap(),
        300
    );
    moved.signal("moving", "checkout", &()).await.unwrap();
    let out = moved.handle::<cart>("moving").result().within().await;
    assert_eq!(out.unwrap().unwrap(), 300);
    moved.shutdown().await;
}
