// Included by `queries.rs` once per backend (`common::suite!`), which sets
// `BACKEND`.
//
// A typed query reads the locals an instance holds at its current await
// into the caller's view type, by name: what the await does not hold, or
// holds as another type, is an error naming it, never a misread.

use common::until;
use durable_runtime::prelude::*;
use durable_runtime::query::{QueryDef, QueryError};
use serde::Deserialize;

/// Ships `total` parcels, one per `shipped` signal.
#[workflow]
async fn shipping(total: u32) -> Result<u32, WorkflowError> {
    let mut shipped = 0;
    while shipped < total {
        let _: () = signal("shipped").await?;
        shipped += 1;
    }
    Ok(shipped)
}

/// The view callers read.
#[derive(Debug, Deserialize, PartialEq)]
struct Progress {
    shipped: u32,
    total: u32,
}
const PROGRESS: QueryDef<Progress> = QueryDef::new("progress");

/// A view that takes `shipped` as text.
#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct AsText {
    shipped: String,
}
const AS_TEXT: QueryDef<AsText> = QueryDef::new("as_text");

/// A view of a local the workflow does not keep.
#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct Refunds {
    refunded: u32,
}
const REFUNDS: QueryDef<Refunds> = QueryDef::new("refunds");

#[tokio::test]
async fn a_typed_query_reads_the_current_awaits_locals_by_name() {
    let db = BACKEND.store();
    let rt = Runtime::builder()
        .workflow::<shipping>()
        .open_url(db.url())
        .await
        .unwrap();
    rt.start("s-1", shipping(2), IdPolicy::Reject)
        .await
        .unwrap();
    until("it waits", || rt.query("s-1", PROGRESS).is_ok()).await;
    assert_eq!(
        rt.query("s-1", PROGRESS).unwrap(),
        Progress {
            shipped: 0,
            total: 2
        }
    );
    rt.signal("s-1", "shipped", &()).await.unwrap();
    until("one shipped", || {
        rt.query("s-1", PROGRESS).is_ok_and(|p| p.shipped == 1)
    })
    .await;
    // another type, a local it does not keep: said, naming it
    let text = rt.query("s-1", AS_TEXT).unwrap_err();
    assert!(
        matches!(&text, QueryError::NotHeld { query, .. } if query == "as_text"),
        "{text}"
    );
    assert!(text.to_string().contains("invalid type"), "{text}");
    let refunds = rt.query("s-1", REFUNDS).unwrap_err();
    assert!(refunds.to_string().contains("refunded"), "{refunds}");
    let unknown = rt.query("nobody", PROGRESS).unwrap_err();
    assert!(matches!(unknown, QueryError::NotFound { .. }), "{unknown}");
    rt.signal("s-1", "shipped", &()).await.unwrap();
    let out = rt.handle::<shipping>("s-1").result().await.unwrap();
    assert_eq!(out.unwrap(), 2);
    let ended = rt.query("s-1", PROGRESS).unwrap_err();
    assert!(matches!(ended, QueryError::Ended { .. }), "{ended}");
    rt.shutdown().await;
}
