//! A document review that takes **updates**: reviewers comment and approve
//! through `runtime.update(..)`, and each call returns the workflow's
//! reply — the number of comments so far, or the approval's receipt. A
//! validator refuses an author approving their own document before
//! anything is written; a review nobody approves expires when its window
//! closes.
//!
//! ```text
//! cargo run --example document_approval
//! ```

use std::time::Duration;

use durable_runtime::UpdateError;
use durable_runtime::prelude::*;
use durable_runtime::update::UpdateDef;
use serde::{Deserialize, Serialize};

/// What a reviewer sends; the reply says what it did.
const REVIEW: UpdateDef<Review, String> = UpdateDef::new("review");

#[derive(Debug, Clone, Serialize, Deserialize)]
enum Review {
    /// A comment; the reply is the number of comments so far.
    Comment(String),
    /// An approval; the reply is its receipt.
    Approve { reviewer: String },
}

#[activity]
async fn publish(title: String, reviewer: String) -> Result<String, ActivityError> {
    Ok(format!("\"{title}\" published, approved by {reviewer}"))
}

/// Takes comments on the document `title` (written by ada) until an
/// approval, or until `window_s` seconds pass.
#[workflow]
async fn review(title: String, window_s: u64) -> Result<String, WorkflowError> {
    let deadline = now().await + Duration::from_secs(window_s);
    let mut comments = 0;
    loop {
        let update = match select(REVIEW.receive(), sleep_until(deadline)).await {
            Either::Left(Ok(update)) => update,
            Either::Left(Err(Cancelled)) => return Ok("cancelled".into()),
            Either::Right(_) => return Ok(format!("\"{title}\" expired unapproved")),
        };
        match update.request().clone() {
            Review::Comment(text) => {
                comments += 1;
                println!("  {title}: comment {comments}: {text}");
                update.reply(format!("{comments} comment(s) so far")).await;
            }
            Review::Approve { reviewer } => {
                let receipt = publish(title.clone(), reviewer).await?;
                update.reply(receipt.clone()).await;
                return Ok(format!("{receipt} after {comments} comments"));
            }
        }
    }
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let runtime = Runtime::builder()
        .workflow::<review>()
        // who may approve: anyone but the author (a real validator might ask
        // a directory)
        .update_validator(REVIEW, |r: &Review| match r {
            Review::Approve { reviewer } if reviewer == "ada" => {
                Err("ada wrote this document and cannot approve it".into())
            }
            _ => Ok(()),
        })
        .open(dir.path())
        .await
        .expect("open the store");

    let spec = runtime
        .start("spec", review("Storage spec".into(), 30), IdPolicy::Reject)
        .await
        .expect("start");
    let memo = runtime
        .start("memo", review("Lunch memo".into(), 1), IdPolicy::Reject)
        .await
        .expect("start");

    for text in ["section 3 needs a diagram", "typo on page 2"] {
        let reply = runtime
            .update("spec", REVIEW, &Review::Comment(text.into()))
            .await
            .expect("comment");
        println!("  the workflow replied: {reply}");
    }
    let own = Review::Approve {
        reviewer: "ada".into(),
    };
    match runtime.update("spec", REVIEW, &own).await {
        Err(UpdateError::Rejected { reason, .. }) => {
            println!("  refused before anything was written: {reason}")
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
    let approval = Review::Approve {
        reviewer: "grace".into(),
    };
    // an update id of our own: a retry (after a timeout, a restart) is not a
    // second approval, and gets the same receipt
    let receipt = runtime
        .update_as("spec", REVIEW, "spec-approval-1", &approval)
        .await
        .expect("approve");
    let again = runtime
        .update_as("spec", REVIEW, "spec-approval-1", &approval)
        .await
        .expect("approve again");
    assert_eq!(receipt, again);
    println!("  receipt: {receipt} (the retry got the same one)");

    println!(
        "  {}",
        spec.result().await.expect("result").expect("reviewed")
    );
    println!(
        "  {}",
        memo.result().await.expect("result").expect("expired")
    );
    runtime.shutdown().await;
}
