// Included by `evolution.rs` once per backend (`common::suite!`), which sets
// `BACKEND`.
//
// Evolution of in-flight state: the matrix of type edits between two
// builds. Each case is two builds of one workflow (modules `a` and `b`,
// the same workflow name and body, the types edited): build A starts an
// instance that waits for a signal holding a value, closes; build B opens
// the same store, says what it would do (`check_compatibility`), then gets
// the signal. Every case either continues with the right values (rebuilt
// by field and variant name) or parks naming what changed. None is ever
// read by position. The expected outcomes are the table in
// `docs/versioning.md`.

use common::{Within, until};

use durable_runtime::prelude::*;
use durable_runtime::{Compatibility, Status, Workflow, WorkflowCall};

/// The workflow both builds of a case share: it holds `held` across a
/// signal and returns it as its `Debug` text, so the test sees what build B
/// read.
macro_rules! evolve {
    () => {
        #[workflow(name = "evolve")]
        pub async fn evolve(held: Held) -> Result<String, WorkflowError> {
            let _go: () = signal("go").await?;
            Ok(format!("{held:?}"))
        }
    };
}

/// Two builds (modules `a` and `b` of `$name`), each its own items: a
/// case whose workflows are written in it (a helper's cases).
macro_rules! nested_case {
    ($name:ident { a: { $($a:item)* } b: { $($b:item)* } }) => {
        mod $name {
            pub mod a {
                #![allow(dead_code, unused_imports)]
                use durable_runtime::prelude::*;
                use serde::{Deserialize, Serialize};
                $($a)*
            }
            pub mod b {
                #![allow(dead_code, unused_imports)]
                use durable_runtime::prelude::*;
                use serde::{Deserialize, Serialize};
                $($b)*
            }
        }
    };
}

/// A case: the items of build A, of build B, each with the shared workflow.
macro_rules! case {
    ($name:ident { a: { $($a:item)* } b: { $($b:item)* } }) => {
        nested_case!($name { a: { $($a)* evolve!(); } b: { $($b)* evolve!(); } });
    };
}

/// What build B did with the instance build A left waiting.
#[derive(Debug)]
enum Seen {
    /// It continued and returned this text.
    Continued(String),
    /// It parked, for this reason.
    Parked(String),
}

/// Runs build A up to the signal with `input`, then build B to the end.
async fn two_builds<A: Workflow, B: Workflow>(call: WorkflowCall<A>) -> (Compatibility, Seen) {
    let dir = BACKEND.store();
    let a = Runtime::builder()
        .workflow::<A>()
        .open_url(dir.url())
        .await
        .unwrap();
    let h = a.start("x", call, IdPolicy::Reject).await.unwrap();
    until("A waits for the signal", || {
        h.describe()
            .unwrap()
            .waiting_for
            .is_some_and(|w| w.starts_with("signal"))
    })
    .await;
    a.shutdown().await;

    let verdict = checked_before_deploy::<B>(dir.url(), "x").await;

    let b = Runtime::builder()
        .workflow::<B>()
        .open_url(dir.url())
        .await
        .unwrap();
    b.signal("x", "go", &()).await.unwrap();
    let seen = {
        let b = &b;
        until("B ends or parks", move || {
            matches!(
                b.describe("x").unwrap().status,
                Status::Completed | Status::Parked
            )
        })
        .await;
        let d = b.describe("x").unwrap();
        if d.status == Status::Parked {
            Seen::Parked(d.error.unwrap_or_default())
        } else {
            let out = b.handle::<B>("x").result().await.unwrap();
            Seen::Continued(
                serde_json::to_value(&out).unwrap().as_object().unwrap()["Ok"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            )
        }
    };
    b.shutdown().await;
    (verdict, seen)
}

/// What `durable check` says of instance `id` in the store at `dir` before
/// build B is deployed (nothing written): with B's code, and without it
/// from B's manifest — from the store and from an exported snapshot, each
/// agreeing with the check with the code.
async fn checked_before_deploy<B: Workflow>(dir: &str, id: &str) -> Compatibility {
    // what `durable check` would say before deploying B (nothing written)
    let look = Runtime::builder()
        .workflow::<B>()
        .resume_on_open(false)
        .open_url(dir)
        .await
        .unwrap();
    let verdict = look
        .check_compatibility()
        .unwrap()
        .into_iter()
        .find(|(i, _)| i == id)
        .map(|(_, v)| v)
        .unwrap();
    look.shutdown().await;

    // what `durable check --manifest` says without B's code: from the store
    // and from an exported snapshot, each agreeing with the check above
    let files = tempfile::tempdir().unwrap();
    let manifest_file = files.path().join("manifest.json");
    Runtime::builder()
        .workflow::<B>()
        .manifest()
        .write(&manifest_file)
        .unwrap();
    let manifest = durable_runtime::check::Manifest::read(&manifest_file).unwrap();
    let codeless = Runtime::builder()
        .resume_on_open(false)
        .open_url(dir)
        .await
        .unwrap();
    let from_store = manifest.check_store(&codeless).unwrap();
    let from_snapshot = manifest
        .check_snapshot(&codeless.export(id).unwrap())
        .unwrap();
    codeless.shutdown().await;
    assert_eq!(from_store, [(id.to_owned(), from_snapshot.clone())]);
    agree(&verdict, &from_snapshot);
    verdict
}

/// Asserts that the check without the code (`manifest`) reached the same
/// verdict as the check with it: the same edits when it transcodes.
fn agree(with_code: &Compatibility, manifest: &Compatibility) {
    let same = match (with_code, manifest) {
        (Compatibility::Parked(_), Compatibility::Parked(_)) => true,
        (a, b) => a == b,
    };
    assert!(
        same,
        "with the code: {with_code:?}\nfrom the manifest: {manifest:?}"
    );
}

/// Asserts the instance continued with `expected` (and that the check said
/// it would transcode, naming `change`).
async fn continues<A: Workflow, B: Workflow>(call: WorkflowCall<A>, expected: &str, change: &str) {
    let (verdict, seen) = two_builds::<A, B>(call).within().await;
    match &seen {
        Seen::Continued(out) => assert_eq!(out, expected),
        Seen::Parked(why) => panic!("expected to continue with {expected}, parked: {why}"),
    }
    match verdict {
        Compatibility::Transcodes { changes } => assert!(
            changes.iter().any(|c| c.contains(change)),
            "the check should name `{change}`: {changes:?}"
        ),
        Compatibility::Resumes if change.is_empty() => {}
        other => panic!("the check should say it transcodes ({change}), said {other:?}"),
    }
}

/// Asserts the instance parked with a reason containing each of `words`,
/// and that the check said so beforehand.
async fn parks<A: Workflow, B: Workflow>(call: WorkflowCall<A>, words: &[&str]) {
    let (verdict, seen) = two_builds::<A, B>(call).within().await;
    let Seen::Parked(why) = &seen else {
        panic!("expected to park, {seen:?}")
    };
    for w in words {
        assert!(why.contains(w), "the reason should name `{w}`: {why}");
    }
    assert!(
        verdict.would_park(),
        "the check should say it parks: {verdict:?}"
    );
}

case!(reorder { a: {
    #[derive(Serialize, Deserialize, Debug)]
    pub struct Held { pub id: String, pub qty: u32, pub cents: u32 }
} b: {
    #[derive(Serialize, Deserialize, Debug)]
    pub struct Held { pub id: String, pub cents: u32, pub qty: u32 }
}});

#[tokio::test]
async fn reordered_fields_are_read_by_name() {
    let input = reorder::a::Held {
        id: "o-1".into(),
        qty: 3,
        cents: 1999,
    };
    continues::<reorder::a::evolve, reorder::b::evolve>(
        reorder::a::evolve(input),
        r#"Held { id: "o-1", cents: 1999, qty: 3 }"#,
        "reordered",
    )
    .await;
}

case!(add_default { a: {
    #[derive(Serialize, Deserialize, Debug)]
    pub struct Held { pub id: String }
} b: {
    #[derive(Serialize, Deserialize, Debug)]
    pub struct Held { pub id: String, #[serde(default)] pub note: String }
}});

#[tokio::test]
async fn a_field_added_with_a_default_takes_it() {
    continues::<add_default::a::evolve, add_default::b::evolve>(
        add_default::a::evolve(add_default::a::Held { id: "o".into() }),
        r#"Held { id: "o", note: "" }"#,
        "`note: String` of `Held` added (stored values take its default)",
    )
    .await;
}

case!(add_required { a: {
    #[derive(Serialize, Deserialize, Debug)]
    pub struct Held { pub id: String }
} b: {
    #[derive(Serialize, Deserialize, Debug)]
    pub struct Held { pub id: String, pub note: String }
}});

#[tokio::test]
async fn a_field_added_without_a_default_parks_naming_it() {
    parks::<add_required::a::evolve, add_required::b::evolve>(
        add_required::a::evolve(add_required::a::Held { id: "o".into() }),
        &[
            "`note: String` of `Held` added without a default",
            "[DURABLE-LAYOUT]",
        ],
    )
    .await;
}

case!(add_option { a: {
    #[derive(Serialize, Deserialize, Debug)]
    pub struct Held { pub id: String }
} b: {
    #[derive(Serialize, Deserialize, Debug)]
    pub struct Held { pub id: String, pub note: Option<String> }
}});

#[tokio::test]
async fn an_optional_field_added_reads_as_none() {
    continues::<add_option::a::evolve, add_option::b::evolve>(
        add_option::a::evolve(add_option::a::Held { id: "o".into() }),
        r#"Held { id: "o", note: None }"#,
        "added",
    )
    .await;
}

case!(remove_field { a: {
    #[derive(Serialize, Deserialize, Debug)]
    pub struct Held { pub id: String, pub legacy: Vec<u64>, pub cents: u32 }
} b: {
    #[derive(Serialize, Deserialize, Debug)]
    pub struct Held { pub id: String, pub cents: u32 }
}});

#[tokio::test]
async fn a_removed_field_is_dropped_and_the_others_kept() {
    continues::<remove_field::a::evolve, remove_field::b::evolve>(
        remove_field::a::evolve(remove_field::a::Held {
            id: "o".into(),
            legacy: vec![1, 2],
            cents: 7,
        }),
        r#"Held { id: "o", cents: 7 }"#,
        "`legacy` of `Held` removed",
    )
    .await;
}

case!(rename_alias { a: {
    #[derive(Serialize, Deserialize, Debug)]
    pub struct Held { pub id: String, pub amount: u32 }
} b: {
    #[derive(Serialize, Deserialize, Debug)]
    pub struct Held { pub id: String, #[serde(alias = "amount")] pub cents: u32 }
}});

#[tokio::test]
async fn a_field_renamed_with_an_alias_keeps_its_value() {
    continues::<rename_alias::a::evolve, rename_alias::b::evolve>(
        rename_alias::a::evolve(rename_alias::a::Held {
            id: "o".into(),
            amount: 1999,
        }),
        r#"Held { id: "o", cents: 1999 }"#,
        "`amount` of `Held` renamed to `cents`",
    )
    .await;
}

case!(rename_bare { a: {
    #[derive(Serialize, Deserialize, Debug)]
    pub struct Held { pub id: String, pub amount: u32 }
} b: {
    #[derive(Serialize, Deserialize, Debug)]
    pub struct Held { pub id: String, pub cents: u32 }
}});

#[tokio::test]
async fn a_field_renamed_without_an_alias_parks() {
    parks::<rename_bare::a::evolve, rename_bare::b::evolve>(
        rename_bare::a::evolve(rename_bare::a::Held {
            id: "o".into(),
            amount: 1999,
        }),
        &[
            "`cents: u32` of `Held` added without a default",
            "if it is `amount` renamed, give it `#[serde(alias = \"amount\")]`",
        ],
    )
    .await;
}

case!(widen { a: {
    #[derive(Serialize, Deserialize, Debug)]
    pub struct Held { pub n: u32, pub d: i32 }
} b: {
    #[derive(Serialize, Deserialize, Debug)]
    pub struct Held { pub n: u64, pub d: i64 }
}});

#[tokio::test]
async fn integers_widen() {
    continues::<widen::a::evolve, widen::b::evolve>(
        widen::a::evolve(widen::a::Held {
            n: 4_000_000_000,
            d: -5,
        }),
        "Held { n: 4000000000, d: -5 }",
        "u32 → u64 (widened)",
    )
    .await;
}

case!(narrow { a: {
    #[derive(Serialize, Deserialize, Debug)]
    pub struct Held { pub n: u64 }
} b: {
    #[derive(Serialize, Deserialize, Debug)]
    pub struct Held { pub n: u32 }
}});

#[tokio::test]
async fn a_narrowed_integer_parks_even_when_the_value_fits() {
    parks::<narrow::a::evolve, narrow::b::evolve>(
        narrow::a::evolve(narrow::a::Held { n: 5 }),
        &["`held.n`: u64 → u32 (narrowed)"],
    )
    .await;
}

case!(resign { a: {
    #[derive(Serialize, Deserialize, Debug)]
    pub struct Held { pub n: i32 }
} b: {
    #[derive(Serialize, Deserialize, Debug)]
    pub struct Held { pub n: u32 }
}});

#[tokio::test]
async fn a_signed_integer_made_unsigned_parks() {
    parks::<resign::a::evolve, resign::b::evolve>(
        resign::a::evolve(resign::a::Held { n: 5 }),
        &["i32 → u32 (changed sign)"],
    )
    .await;
}

case!(string_to_bytes { a: {
    #[derive(Serialize, Deserialize, Debug)]
    pub struct Held { pub body: String }
} b: {
    #[derive(Serialize, Deserialize, Debug)]
    pub struct Held { pub body: Vec<u8> }
}});

#[tokio::test]
async fn a_string_that_became_bytes_parks() {
    parks::<string_to_bytes::a::evolve, string_to_bytes::b::evolve>(
        string_to_bytes::a::evolve(string_to_bytes::a::Held { body: "hi".into() }),
        &["`held.body`: String → a sequence of u8"],
    )
    .await;
}

case!(to_option { a: {
    #[derive(Serialize, Deserialize, Debug)]
    pub struct Held { pub cents: u32 }
} b: {
    #[derive(Serialize, Deserialize, Debug)]
    pub struct Held { pub cents: Option<u32> }
}});

#[tokio::test]
async fn a_value_made_optional_reads_as_some() {
    continues::<to_option::a::evolve, to_option::b::evolve>(
        to_option::a::evolve(to_option::a::Held { cents: 12 }),
        "Held { cents: Some(12) }",
        "now optional",
    )
    .await;
}

case!(variant_added_at_end { a: {
    #[derive(Serialize, Deserialize, Debug)]
    pub enum Held { Standard, Express { hours: u8 } }
} b: {
    #[derive(Serialize, Deserialize, Debug)]
    pub enum Held { Standard, Express { hours: u8 }, Drone }
}});

#[tokio::test]
async fn a_variant_added_at_the_end_continues() {
    continues::<variant_added_at_end::a::evolve, variant_added_at_end::b::evolve>(
        variant_added_at_end::a::evolve(variant_added_at_end::a::Held::Express { hours: 4 }),
        "Express { hours: 4 }",
        "variant `Drone` of `Held` added",
    )
    .await;
}

case!(variant_field_default { a: {
    #[derive(Serialize, Deserialize, Debug)]
    pub enum Held { Standard, Express { hours: u8 } }
} b: {
    #[derive(Serialize, Deserialize, Debug)]
    pub enum Held { Standard, Express { hours: u8, #[serde(default)] courier: String } }
}});

#[tokio::test]
async fn a_field_added_with_a_default_to_a_struct_variant_takes_it() {
    continues::<variant_field_default::a::evolve, variant_field_default::b::evolve>(
        variant_field_default::a::evolve(variant_field_default::a::Held::Express { hours: 4 }),
        r#"Express { hours: 4, courier: "" }"#,
        "`courier: String` of `Held` added (stored values take its default)",
    )
    .await;
}

case!(variant_field_alias { a: {
    #[derive(Serialize, Deserialize, Debug)]
    pub enum Held { Standard, Card { amount: u32, qty: u8 } }
} b: {
    #[derive(Serialize, Deserialize, Debug)]
    pub enum Held { Standard, Card { qty: u8, #[serde(alias = "amount")] cents: u32 } }
}});

#[tokio::test]
async fn a_struct_variant_field_renamed_with_an_alias_and_moved_keeps_its_value() {
    continues::<variant_field_alias::a::evolve, variant_field_alias::b::evolve>(
        variant_field_alias::a::evolve(variant_field_alias::a::Held::Card {
            amount: 1999,
            qty: 3,
        }),
        "Card { qty: 3, cents: 1999 }",
        "`amount` of `Held` renamed to `cents`",
    )
    .await;
}

case!(variant_added_in_middle { a: {
    #[derive(Serialize, Deserialize, Debug)]
    pub enum Held { Standard, Express { hours: u8 } }
} b: {
    #[derive(Serialize, Deserialize, Debug)]
    pub enum Held { Standard, Drone, Express { hours: u8 } }
}});

#[tokio::test]
async fn a_variant_added_in_the_middle_keeps_the_stored_variant_by_name() {
    continues::<variant_added_in_middle::a::evolve, variant_added_in_middle::b::evolve>(
        variant_added_in_middle::a::evolve(variant_added_in_middle::a::Held::Express { hours: 4 }),
        "Express { hours: 4 }",
        "renumbered",
    )
    .await;
}

case!(variant_removed_in_use { a: {
    #[derive(Serialize, Deserialize, Debug)]
    pub enum Held { Standard, Express { hours: u8 } }
} b: {
    #[derive(Serialize, Deserialize, Debug)]
    pub enum Held { Standard }
}});

#[tokio::test]
async fn a_removed_variant_the_value_is_in_parks() {
    parks::<variant_removed_in_use::a::evolve, variant_removed_in_use::b::evolve>(
        variant_removed_in_use::a::evolve(variant_removed_in_use::a::Held::Express { hours: 4 }),
        &["unknown variant `Express`"],
    )
    .await;
}

#[tokio::test]
async fn a_removed_variant_the_value_is_not_in_continues() {
    continues::<variant_removed_in_use::a::evolve, variant_removed_in_use::b::evolve>(
        variant_removed_in_use::a::evolve(variant_removed_in_use::a::Held::Standard),
        "Standard",
        "variant `Express` of `Held` removed",
    )
    .await;
}

case!(variants_reordered { a: {
    #[derive(Serialize, Deserialize, Debug)]
    pub enum Held { Card(u32), Invoice(u32), Cash }
} b: {
    #[derive(Serialize, Deserialize, Debug)]
    pub enum Held { Cash, Invoice(u32), Card(u32) }
}});

#[tokio::test]
async fn reordered_variants_are_read_by_name() {
    continues::<variants_reordered::a::evolve, variants_reordered::b::evolve>(
        variants_reordered::a::evolve(variants_reordered::a::Held::Card(1999)),
        "Card(1999)",
        "renumbered",
    )
    .await;
}

case!(nested_two_down { a: {
    #[derive(Serialize, Deserialize, Debug)]
    pub struct Held { pub order: Order }
    #[derive(Serialize, Deserialize, Debug)]
    pub struct Order { pub id: String, pub payment: Payment }
    #[derive(Serialize, Deserialize, Debug)]
    pub struct Payment { pub qty: u32, pub cents: u32 }
} b: {
    #[derive(Serialize, Deserialize, Debug)]
    pub struct Held { pub order: Order }
    #[derive(Serialize, Deserialize, Debug)]
    pub struct Order { pub id: String, pub payment: Payment }
    #[derive(Serialize, Deserialize, Debug)]
    pub struct Payment { pub cents: u64, pub qty: u32 }
}});

#[tokio::test]
async fn a_struct_two_levels_down_is_read_by_name() {
    use nested_two_down::a;
    continues::<a::evolve, nested_two_down::b::evolve>(
        a::evolve(a::Held {
            order: a::Order {
                id: "o".into(),
                payment: a::Payment {
                    qty: 3,
                    cents: 1999,
                },
            },
        }),
        r#"Held { order: Order { id: "o", payment: Payment { cents: 1999, qty: 3 } } }"#,
        "`held.order.payment.cents`: u32 → u64",
    )
    .await;
}

case!(nested_narrowed { a: {
    #[derive(Serialize, Deserialize, Debug)]
    pub struct Held { pub order: Order }
    #[derive(Serialize, Deserialize, Debug)]
    pub struct Order { pub payment: Payment }
    #[derive(Serialize, Deserialize, Debug)]
    pub struct Payment { pub cents: u64 }
} b: {
    #[derive(Serialize, Deserialize, Debug)]
    pub struct Held { pub order: Order }
    #[derive(Serialize, Deserialize, Debug)]
    pub struct Order { pub payment: Payment }
    #[derive(Serialize, Deserialize, Debug)]
    pub struct Payment { pub cents: u16 }
}});

#[tokio::test]
async fn a_change_two_levels_down_that_breaks_parks_with_its_path() {
    use nested_narrowed::a;
    parks::<a::evolve, nested_narrowed::b::evolve>(
        a::evolve(a::Held {
            order: a::Order {
                payment: a::Payment { cents: 5 },
            },
        }),
        &[
            "`held.order.payment.cents`: u64 → u16 (narrowed)",
            "waits at `Signal`",
        ],
    )
    .await;
}

case!(tuple_arity { a: {
    #[derive(Serialize, Deserialize, Debug)]
    pub struct Held { pub at: (u8, u8) }
} b: {
    #[derive(Serialize, Deserialize, Debug)]
    pub struct Held { pub at: (u8, u8, u8) }
}});

#[tokio::test]
async fn a_tuple_of_another_arity_parks() {
    parks::<tuple_arity::a::evolve, tuple_arity::b::evolve>(
        tuple_arity::a::evolve(tuple_arity::a::Held { at: (1, 2) }),
        &["`held.at`: tuple of 2 values → 3 values"],
    )
    .await;
}

case!(vec_to_set { a: {
    #[derive(Serialize, Deserialize, Debug)]
    pub struct Held { pub tags: Vec<String> }
} b: {
    #[derive(Serialize, Deserialize, Debug)]
    pub struct Held { pub tags: std::collections::BTreeSet<String> }
}});

#[tokio::test]
async fn a_vec_that_became_a_set_has_the_same_layout_and_resumes() {
    // both are "a sequence of String": the layouts are equal, nothing to
    // transcode; duplicate elements would merge, as in any serde format
    continues::<vec_to_set::a::evolve, vec_to_set::b::evolve>(
        vec_to_set::a::evolve(vec_to_set::a::Held {
            tags: vec!["b".into(), "a".into()],
        }),
        r#"Held { tags: {"a", "b"} }"#,
        "",
    )
    .await;
}

case!(struct_to_tuple { a: {
    #[derive(Serialize, Deserialize, Debug)]
    pub struct Held { pub qty: u32, pub cents: u32 }
} b: {
    #[derive(Serialize, Deserialize, Debug)]
    pub struct Held(pub u32, pub u32);
}});

#[tokio::test]
async fn a_struct_that_became_a_tuple_struct_parks_instead_of_reading_by_position() {
    parks::<struct_to_tuple::a::evolve, struct_to_tuple::b::evolve>(
        struct_to_tuple::a::evolve(struct_to_tuple::a::Held {
            qty: 3,
            cents: 1999,
        }),
        &["`Held` had named fields, now has unnamed fields"],
    )
    .await;
}

// An inferred local (no type written) whose type changed: the fingerprint,
// which hashes the syntax, cannot see it; the layout can.
mod inferred {
    pub mod a {
        use durable_runtime::prelude::*;
        #[workflow(name = "count")]
        pub async fn count(id: String) -> Result<String, WorkflowError> {
            let n = 3_000_000_000u32;
            let _go: () = signal("go").await?;
            Ok(format!("{id} {n}"))
        }
    }
    pub mod b {
        use durable_runtime::prelude::*;
        #[workflow(name = "count")]
        pub async fn count(id: String) -> Result<String, WorkflowError> {
            let n = 3_000_000_000u64;
            let _go: () = signal("go").await?;
            Ok(format!("{id} {n}"))
        }
    }
}

#[tokio::test]
async fn an_inferred_local_whose_type_widened_is_read_by_name() {
    assert_eq!(
        <inferred::a::count as Workflow>::FINGERPRINT,
        <inferred::b::count as Workflow>::FINGERPRINT,
        "the syntax fingerprint does not see an inferred type"
    );
    continues::<inferred::a::count, inferred::b::count>(
        inferred::a::count("c".to_owned()),
        "c 3000000000",
        "`n`: u32 → u64 (widened)",
    )
    .await;
}

// The report's example: an order waiting for approval, its struct reordered
// by the next deploy; the charge must see 1999, not the quantity.
mod charge_case {
    use std::sync::Mutex;
    pub static CHARGED: Mutex<Vec<u32>> = Mutex::new(Vec::new());

    pub mod a {
        use durable_runtime::prelude::*;
        use serde::{Deserialize, Serialize};
        #[derive(Serialize, Deserialize, Debug, Clone)]
        pub struct Order {
            pub id: String,
            pub qty: u32,
            pub cents: u32,
        }
        #[activity(name = "charge_a")]
        pub async fn charge(order: Order) -> Result<u32, ActivityError> {
            super::CHARGED.lock().unwrap().push(order.cents);
            Ok(order.cents)
        }
        #[workflow(name = "order")]
        pub async fn order(order: Order) -> Result<u32, WorkflowError> {
            let _approved: () = signal("go").await?;
            let charged = charge(order.clone()).await?;
            Ok(charged)
        }
    }
    pub mod b {
        use durable_runtime::prelude::*;
        use serde::{Deserialize, Serialize};
        #[derive(Serialize, Deserialize, Debug, Clone)]
        pub struct Order {
            pub id: String,
            pub cents: u32,
            pub qty: u32,
        }
        #[activity(name = "charge_b")]
        pub async fn charge(order: Order) -> Result<u32, ActivityError> {
            super::CHARGED.lock().unwrap().push(order.cents);
            Ok(order.cents)
        }
        #[workflow(name = "order")]
        pub async fn order(order: Order) -> Result<u32, WorkflowError> {
            let _approved: () = signal("go").await?;
            let charged = charge(order.clone()).await?;
            Ok(charged)
        }
    }
}

#[tokio::test]
async fn a_deploy_that_reorders_an_orders_fields_charges_the_right_amount() {
    use charge_case::{CHARGED, a, b};
    let dir = BACKEND.store();
    let rt = Runtime::builder()
        .workflow::<a::order>()
        .open_url(dir.url())
        .await
        .unwrap();
    let order = a::Order {
        id: "o-1".into(),
        qty: 3,
        cents: 1999,
    };
    let h = rt
        .start("o-1", a::order(order), IdPolicy::Reject)
        .await
        .unwrap();
    until("waiting for approval", || {
        h.describe().unwrap().variant == "Signal"
    })
    .await;
    rt.shutdown().await;

    let rt = Runtime::builder()
        .workflow::<b::order>()
        .open_url(dir.url())
        .await
        .unwrap();
    rt.signal("o-1", "go", &()).await.unwrap();
    let charged = rt
        .handle::<b::order>("o-1")
        .result()
        .within()
        .await
        .unwrap();
    assert_eq!(charged.unwrap(), 1999);
    assert_eq!(*CHARGED.lock().unwrap(), [1999]);
    let history: Vec<_> = rt
        .history("o-1")
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert!(
        history.iter().any(|e| matches!(e,
            durable_runtime::history::EventKind::Transcoded { changes, .. }
                if changes.iter().any(|c| c.contains("fields of `Order` reordered")))),
        "{history:?}"
    );
    rt.shutdown().await;
}

// Signal payloads: the sender's type and the awaited type are two builds
// too. The payload's layout is recorded as sent and compared with the
// awaited type's when it is delivered.
mod payload {
    use durable_runtime::prelude::*;
    use serde::{Deserialize, Serialize};

    /// What an older sender still sends.
    pub mod sender {
        use serde::{Deserialize, Serialize};
        #[derive(Serialize, Deserialize, Debug)]
        pub struct Pay {
            pub qty: u32,
            pub cents: u32,
        }
        #[derive(Serialize, Deserialize, Debug)]
        pub struct Wide {
            pub qty: u32,
            pub cents: u64,
        }
    }

    #[derive(Serialize, Deserialize, Debug)]
    pub struct Pay {
        pub cents: u32,
        pub qty: u32,
    }

    #[workflow(name = "pay")]
    pub async fn pay(id: String) -> Result<String, WorkflowError> {
        let _go: () = signal("go").await?;
        let paid: Pay = signal("pay").await?;
        Ok(format!("{id} {paid:?}"))
    }
}

async fn waiting_pay(dir: &str) -> Runtime {
    let rt = Runtime::builder()
        .workflow::<payload::pay>()
        .open_url(dir)
        .await
        .unwrap();
    let h = rt
        .start("p", payload::pay("p".into()), IdPolicy::Reject)
        .await
        .unwrap();
    until("waits for go", || h.describe().unwrap().variant == "Signal").await;
    rt
}

#[tokio::test]
async fn a_signal_sent_as_a_reordered_struct_is_delivered_by_name() {
    let dir = BACKEND.store();
    let rt = waiting_pay(dir.url()).await;
    rt.signal("p", "go", &()).await.unwrap();
    let h = rt.handle::<payload::pay>("p");
    until("waits for pay", || {
        h.describe().unwrap().variant == "Signal2"
    })
    .await;
    let sent = payload::sender::Pay {
        qty: 3,
        cents: 1999,
    };
    rt.signal("p", "pay", &sent).await.unwrap();
    let out = h.result().within().await.unwrap().unwrap();
    assert_eq!(out, "p Pay { cents: 1999, qty: 3 }");
    rt.shutdown().await;
}

#[tokio::test]
async fn a_signal_that_cannot_be_read_as_the_awaited_type_is_refused_when_sent() {
    let dir = BACKEND.store();
    let rt = waiting_pay(dir.url()).await;
    rt.signal("p", "go", &()).await.unwrap();
    let h = rt.handle::<payload::pay>("p");
    until("waits for pay", || {
        h.describe().unwrap().variant == "Signal2"
    })
    .await;
    let sent = payload::sender::Wide {
        qty: 3,
        cents: 1999,
    };
    let err = rt.signal("p", "pay", &sent).await.unwrap_err().to_string();
    assert!(err.contains("`cents`: u64 → u32 (narrowed)"), "{err}");
    assert_eq!(h.describe().unwrap().status, Status::Running);
    rt.shutdown().await;
}

#[tokio::test]
async fn a_buffered_signal_that_cannot_be_read_parks_the_instance_when_it_arrives() {
    let dir = BACKEND.store();
    let rt = waiting_pay(dir.url()).await;
    // it waits for `go`, not `pay`: the payload is buffered as sent
    let sent = payload::sender::Wide {
        qty: 3,
        cents: 1999,
    };
    rt.signal("p", "pay", &sent).await.unwrap();
    rt.signal("p", "go", &()).await.unwrap();
    let h = rt.handle::<payload::pay>("p");
    until("parked", || h.describe().unwrap().status == Status::Parked).await;
    let why = h.describe().unwrap().error.unwrap();
    assert!(why.contains("signal `pay`"), "{why}");
    assert!(why.contains("`cents`: u64 → u32 (narrowed)"), "{why}");
    rt.shutdown().await;
}

// A payload whose layout cannot be recorded (its elements laid out in two
// ways) could only travel by position: sent to an await of another type, it
// would be misread.
mod untraceable {
    use durable_runtime::prelude::*;
    use serde::Serialize;

    #[derive(Debug, Serialize)]
    #[serde(untagged)]
    pub enum Item {
        Count(u32),
        Label(String),
    }

    #[workflow]
    pub async fn tally(id: String) -> Result<String, WorkflowError> {
        let counts: Vec<u32> = signal("counts").await?;
        Ok(format!("{id}: {counts:?}"))
    }
}

#[tokio::test]
async fn a_signal_whose_layout_cannot_be_recorded_is_refused_when_sent_not_read_by_position() {
    use untraceable::{Item, tally};
    let dir = BACKEND.store();
    let rt = Runtime::builder()
        .workflow::<tally>()
        .open_url(dir.url())
        .await
        .unwrap();
    let h = rt
        .start("t", tally("t".into()), IdPolicy::Reject)
        .await
        .unwrap();
    until("waits for counts", || {
        h.describe().unwrap().variant == "Signal"
    })
    .await;
    // these bytes, read by position, could pass for counts
    let sent = vec![Item::Count(2), Item::Label("two".into())];
    let err = rt.signal("t", "counts", &sent).await.unwrap_err();
    assert!(
        matches!(err, durable_runtime::SignalError::Payload { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("layout"), "{err}");
    let refused = rt
        .signal_with_start("t", tally("t".into()), "counts", &sent)
        .await
        .map(drop)
        .unwrap_err();
    assert!(
        matches!(refused, durable_runtime::SignalError::Payload { .. }),
        "{refused}"
    );
    // nothing delivered: it still waits, and a fitting payload goes through
    assert_eq!(h.describe().unwrap().variant, "Signal");
    rt.signal("t", "counts", &vec![2u32, 5]).await.unwrap();
    assert_eq!(h.result().within().await.unwrap().unwrap(), "t: [2, 5]");
    rt.shutdown().await;
}

// A deploy that adds an await: the reason says which await, in the user's
// terms, and that version 1 *as it was then* is what is missing.
mod added_await {
    pub mod a {
        use durable_runtime::prelude::*;
        #[workflow(name = "review")]
        pub async fn review(id: String) -> Result<String, WorkflowError> {
            let _go: () = signal("go").await?;
            Ok(id)
        }
    }
    pub mod b {
        use durable_runtime::prelude::*;
        #[workflow(name = "review")]
        pub async fn review(id: String) -> Result<String, WorkflowError> {
            let _go: () = signal("go").await?;
            let note: String = signal("note").await?;
            Ok(format!("{id} {note}"))
        }
    }
}

#[tokio::test]
async fn a_deploy_that_adds_an_await_says_which_and_what_to_do() {
    let dir = BACKEND.store();
    let rt = Runtime::builder()
        .workflow::<added_await::a::review>()
        .open_url(dir.url())
        .await
        .unwrap();
    let h = rt
        .start("r", added_await::a::review("r".into()), IdPolicy::Reject)
        .await
        .unwrap();
    until("waits", || h.describe().unwrap().variant == "Signal").await;
    rt.shutdown().await;

    let rt = Runtime::builder()
        .workflow::<added_await::b::review>()
        .open_url(dir.url())
        .await
        .unwrap();
    let why = rt.describe("r").unwrap().error.unwrap();
    for words in [
        "stored by version 1 as its code was then",
        "await `Signal2` added after `Signal`",
        "`workflow_upgrading`",
        "keep the old code registered as version 1",
    ] {
        assert!(
            why.contains(words),
            "the reason should say `{words}`: {why}"
        );
    }
    rt.shutdown().await;
}

#[tokio::test]
async fn a_snapshot_carries_its_layouts_to_a_store_that_never_saw_the_old_build() {
    use reorder::{a, b};
    let from = BACKEND.store();
    let rt = Runtime::builder()
        .workflow::<a::evolve>()
        .open_url(from.url())
        .await
        .unwrap();
    let h = rt
        .start(
            "m",
            a::evolve(a::Held {
                id: "m".into(),
                qty: 3,
                cents: 1999,
            }),
            IdPolicy::Reject,
        )
        .await
        .unwrap();
    until("waits", || h.describe().unwrap().variant == "Signal").await;
    let file = rt.export("m").unwrap().to_bytes().unwrap();
    rt.shutdown().await;

    // another machine, only build B ever ran there
    let to = BACKEND.store();
    let rt = Runtime::builder()
        .workflow::<b::evolve>()
        .open_url(to.url())
        .await
        .unwrap();
    let snapshot = durable_runtime::snapshot::Snapshot::from_bytes(&file).unwrap();
    rt.import(&snapshot, false).await.unwrap();
    rt.signal("m", "go", &()).await.unwrap();
    let out = rt
        .handle::<b::evolve>("m")
        .result()
        .within()
        .await
        .unwrap()
        .unwrap();
    assert_eq!(out, r#"Held { id: "m", cents: 1999, qty: 3 }"#);
    rt.shutdown().await;
}

#[tokio::test]
async fn a_state_is_shown_by_its_stored_layout_without_the_code_and_after_a_deploy() {
    use reorder::{a, b};
    let dir = BACKEND.store();
    let rt = Runtime::builder()
        .workflow::<a::evolve>()
        .open_url(dir.url())
        .await
        .unwrap();
    let h = rt
        .start(
            "s",
            a::evolve(a::Held {
                id: "s".into(),
                qty: 3,
                cents: 1999,
            }),
            IdPolicy::Reject,
        )
        .await
        .unwrap();
    until("waits", || h.describe().unwrap().variant == "Signal").await;
    rt.shutdown().await;
    let expected = serde_json::json!({"Signal": {"held": {"id": "s", "qty": 3, "cents": 1999}}});

    // a tool with no workflow registered (`durable --db DIR state s`)
    let tool = Runtime::builder()
        .resume_on_open(false)
        .open_url(dir.url())
        .await
        .unwrap();
    assert_eq!(tool.state_json("s").unwrap(), expected);
    tool.shutdown().await;

    // build B before it has run the instance: its own positions would swap
    // qty and cents, the stored layout does not
    let look = Runtime::builder()
        .workflow::<b::evolve>()
        .resume_on_open(false)
        .open_url(dir.url())
        .await
        .unwrap();
    assert_eq!(look.state_json("s").unwrap(), expected);
    look.shutdown().await;
}

// A type whose hand-written `Deserialize` refuses the tracer's placeholder.
mod picky {
    use durable_runtime::prelude::*;
    use serde::{Deserialize, Serialize};

    #[derive(Serialize, Debug, Clone)]
    pub struct Sku(pub String);
    impl<'de> Deserialize<'de> for Sku {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            let s = String::deserialize(d)?;
            if s.starts_with("SKU-") {
                Ok(Sku(s))
            } else {
                Err(serde::de::Error::custom("a SKU starts with `SKU-`"))
            }
        }
    }

    #[workflow(name = "picky")]
    pub async fn picky(sku: Sku) -> Result<String, WorkflowError> {
        let _go: () = signal("go").await?;
        Ok(sku.0)
    }
}

#[tokio::test]
async fn a_version_whose_layout_cannot_be_traced_is_refused_at_open_unless_allowed() {
    let dir = BACKEND.store();
    let err = Runtime::builder()
        .workflow::<picky::picky>()
        .open_url(dir.url())
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(err, durable_runtime::OpenError::Untraced { ref workflow, version: 1, .. } if workflow == "picky"),
        "{err:?}"
    );
    assert!(text.contains("a SKU starts with `SKU-`"), "{text}");
    assert!(text.contains("allow_untraced_layouts"), "{text}");

    let rt = Runtime::builder()
        .workflow::<picky::picky>()
        .allow_untraced_layouts()
        .open_url(dir.url())
        .await
        .unwrap();
    let h = rt
        .start(
            "p",
            picky::picky(picky::Sku("SKU-1".into())),
            IdPolicy::Reject,
        )
        .await
        .unwrap();
    rt.signal("p", "go", &()).await.unwrap();
    assert_eq!(h.result().within().await.unwrap().unwrap(), "SKU-1");
    rt.shutdown().await;
}

// The output of a finished instance, read by a build whose output type was
// edited.
mod receipt {
    macro_rules! receipt {
        ($($field:ident: $ty:ty),*) => {
            use durable_runtime::prelude::*;
            use serde::{Deserialize, Serialize};
            #[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
            pub struct Receipt { $(pub $field: $ty),* }
            #[workflow(name = "receipt")]
            #[allow(dead_code)]
            pub async fn receipt(id: String) -> Result<Receipt, WorkflowError> {
                let _go: () = signal("go").await?;
                Ok(Receipt { $($field: receipt!(@value $field id)),* })
            }
        };
        (@value id $id:ident) => { $id.clone() };
        (@value qty $id:ident) => { 3 };
        (@value cents $id:ident) => { 1999 };
    }
    pub mod a {
        receipt!(id: String, qty: u32, cents: u32);
    }
    pub mod reordered {
        receipt!(id: String, cents: u32, qty: u32);
    }
    pub mod narrowed {
        receipt!(id: String, qty: u32, cents: u16);
    }
}

/// Build A finishes instance `x`; the store is then opened by build `B`.
async fn finished_by_a(dir: &str) {
    let a = Runtime::builder()
        .workflow::<receipt::a::receipt>()
        .open_url(dir)
        .await
        .unwrap();
    let h = a
        .start("x", receipt::a::receipt("r-1".into()), IdPolicy::Reject)
        .await
        .unwrap();
    a.signal("x", "go", &()).await.unwrap();
    h.result().within().await.unwrap().unwrap();
    a.shutdown().await;
}

#[tokio::test]
async fn an_output_written_before_its_fields_were_reordered_is_read_by_name() {
    let dir = BACKEND.store();
    finished_by_a(dir.url()).await;
    let b = Runtime::builder()
        .workflow::<receipt::reordered::receipt>()
        .open_url(dir.url())
        .await
        .unwrap();
    let out = b
        .handle::<receipt::reordered::receipt>("x")
        .result()
        .within()
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        out,
        receipt::reordered::Receipt {
            id: "r-1".into(),
            cents: 1999,
            qty: 3
        }
    );
    b.shutdown().await;
}

#[tokio::test]
async fn an_output_whose_type_was_narrowed_is_refused_naming_the_field() {
    let dir = BACKEND.store();
    finished_by_a(dir.url()).await;
    let b = Runtime::builder()
        .workflow::<receipt::narrowed::receipt>()
        .open_url(dir.url())
        .await
        .unwrap();
    let err = b
        .handle::<receipt::narrowed::receipt>("x")
        .result()
        .within()
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(err, durable_runtime::ResultError::OutputLayout { .. }),
        "{err:?}"
    );
    assert!(
        text.contains("cents") && text.contains("narrowed"),
        "{text}"
    );
    b.shutdown().await;
}

// Upgrades and migrations move a state to another version's code; the
// types behind it may have been edited too (an order reordered).
mod moved {
    macro_rules! order {
        ($($field:ident),*) => {
            #[derive(serde::Serialize, serde::Deserialize, Debug, Clone)]
            pub struct Order { $(pub $field: u32),* }
        };
    }
    /// The store's writer: version 1, `Order { qty, cents }`.
    pub mod v1 {
        use durable_runtime::prelude::*;
        order!(qty, cents);
        #[workflow(name = "moved")]
        pub async fn moved(order: Order) -> Result<u32, WorkflowError> {
            let _go: () = signal("go").await?;
            Ok(order.cents)
        }
    }
    /// Version 1 as a later build declares it: `Order { cents, qty }`.
    pub mod v1_reordered {
        use durable_runtime::prelude::*;
        order!(cents, qty);
        #[workflow(name = "moved")]
        #[allow(dead_code)]
        pub async fn moved(order: Order) -> Result<u32, WorkflowError> {
            let _go: () = signal("go").await?;
            Ok(order.cents)
        }
    }
    /// Version 2: one more await, `Order { cents, qty }`.
    pub mod v2 {
        use durable_runtime::prelude::*;
        order!(cents, qty);
        #[workflow(name = "moved", version = 2)]
        #[allow(dead_code)]
        pub async fn moved(order: Order) -> Result<u32, WorkflowError> {
            let _go: () = signal("go").await?;
            let _audit: () = signal("audit").await?;
            Ok(order.cents)
        }
    }
}

/// Version 1 (build A) waits at `go` holding an order of 1999 cents; the
/// store is then opened by `builder`, which gets `go` and `audit`.
async fn moved_by(builder: durable_runtime::Builder) -> u32 {
    let dir = BACKEND.store();
    let a = Runtime::builder()
        .workflow::<moved::v1::moved>()
        .open_url(dir.url())
        .await
        .unwrap();
    let order = moved::v1::Order {
        qty: 3,
        cents: 1999,
    };
    let h = a
        .start("m", moved::v1::moved(order), IdPolicy::Reject)
        .await
        .unwrap();
    until("v1 waits", || h.describe().unwrap().variant == "Signal").await;
    a.shutdown().await;
    let b = builder.open_url(dir.url()).await.unwrap();
    assert!(b.parked().is_empty(), "{:?}", b.parked());
    assert_eq!(b.describe("m").unwrap().version, 2);
    b.signal("m", "go", &()).await.unwrap();
    b.signal("m", "audit", &()).await.unwrap();
    let out = b.handle::<moved::v2::moved>("m").result().within().await;
    b.shutdown().await;
    out.unwrap().unwrap()
}

#[tokio::test]
async fn an_upgrade_to_a_version_whose_types_were_reordered_reads_the_state_by_name() {
    let cents = moved_by(Runtime::builder().workflow_upgrading::<moved::v2::moved>()).await;
    assert_eq!(cents, 1999);
}

#[tokio::test]
async fn a_migration_reads_the_old_state_by_name_and_carries_a_variant_over_by_name() {
    use durable_runtime::migration::Migration;
    // the migration's view of version 1 is the reordered one
    let cents = moved_by(
        Runtime::builder()
            .workflow::<moved::v2::moved>()
            .migration(Migration::<moved::v1_reordered::moved, moved::v2::moved>::new()),
    )
    .await;
    assert_eq!(cents, 1999);
}

#[tokio::test]
async fn a_migration_function_is_handed_the_old_state_by_name() {
    use durable_runtime::migration::Migration;
    let cents = moved_by(Runtime::builder().workflow::<moved::v2::moved>().migration(
        Migration::<moved::v1_reordered::moved, moved::v2::moved>::new().variant(
            moved::v1_reordered::moved::Signal,
            |(order,): (moved::v1_reordered::Order,)| {
                moved::v2::moved::Signal.state((moved::v2::Order {
                    cents: order.cents,
                    qty: order.qty,
                },))
            },
        ),
    ))
    .await;
    assert_eq!(cents, 1999);
}

// A `join_all` whose first part finished under build A (its result stored
// as A's type) when build B, whose result type is edited, takes over.
mod parts {
    macro_rules! parts {
        ($activity:literal, $blocks:literal, $($field:ident: $ty:ty),*) => {
            use durable_runtime::prelude::*;
            #[derive(serde::Serialize, serde::Deserialize, Debug, Clone)]
            pub struct Line { $(pub $field: $ty),* }
            #[activity(name = $activity)]
            pub async fn price(n: u32) -> Result<Line, ActivityError> {
                if $blocks && n == 1 {
                    // build A's part 1 never ends: A stops with part 0 recorded
                    std::future::pending::<()>().await;
                }
                Ok(Line { qty: 3, cents: 1999 })
            }
            #[workflow(name = "parts")]
            #[allow(dead_code)]
            pub async fn parts(n: u32) -> Result<u32, WorkflowError> {
                let lines = join_all((0..n).map(price).collect::<Vec<_>>()).await;
                let mut cents = 0;
                for line in lines {
                    cents += u32::from(line?.cents);
                }
                Ok(cents)
            }
        };
    }
    pub mod a {
        parts!("price_a", true, qty: u32, cents: u32);
    }
    pub mod reordered {
        parts!("price_reordered", false, cents: u32, qty: u32);
    }
    pub mod narrowed {
        parts!("price_narrowed", false, cents: u16, qty: u32);
    }
}

/// Build A runs part 0 of `p` (two parts) and stops while part 1 waits.
async fn part_recorded_by_a(dir: &str) {
    let a = Runtime::builder()
        .workflow::<parts::a::parts>()
        .open_url(dir)
        .await
        .unwrap();
    let h = a
        .start("p", parts::a::parts(2), IdPolicy::Reject)
        .await
        .unwrap();
    until("part 0 recorded", || {
        h.describe().unwrap().parts_done == [true, false]
    })
    .await;
    a.shutdown().await;
}

#[tokio::test]
async fn results_recorded_before_the_deploy_are_read_by_name_not_by_position() {
    let dir = BACKEND.store();
    part_recorded_by_a(dir.url()).await;
    let verdict = checked_before_deploy::<parts::reordered::parts>(dir.url(), "p").await;
    assert!(
        matches!(verdict, Compatibility::Transcodes { .. }),
        "{verdict:?}"
    );
    let b = Runtime::builder()
        .workflow::<parts::reordered::parts>()
        .open_url(dir.url())
        .await
        .unwrap();
    // part 0 (A's `{ qty: 3, cents: 1999 }`) read by position would add 3
    let h = b.handle::<parts::reordered::parts>("p");
    let out = h.result().within().await.unwrap().unwrap();
    assert_eq!(out, 2 * 1999);
    b.shutdown().await;
}

#[tokio::test]
async fn results_recorded_before_the_deploy_that_no_longer_fit_park_naming_the_field() {
    let dir = BACKEND.store();
    part_recorded_by_a(dir.url()).await;
    let verdict = checked_before_deploy::<parts::narrowed::parts>(dir.url(), "p").await;
    assert!(matches!(verdict, Compatibility::Parked(_)), "{verdict:?}");
    let b = Runtime::builder()
        .workflow::<parts::narrowed::parts>()
        .open_url(dir.url())
        .await
        .unwrap();
    let d = b.describe("p").unwrap();
    let why = d.error.clone().unwrap_or_default();
    assert_eq!(d.status, Status::Parked, "{d:?}");
    assert!(
        why.contains("results already recorded") && why.contains("cents"),
        "{why}"
    );
    b.shutdown().await;
}

// A parent awaiting a child whose output was written by another build of
// the child: the parent's code expects the output type it was built with.
mod kid {
    macro_rules! parent {
        ($receipt:ident) => {
            use durable_runtime::prelude::*;
            #[workflow(name = "kid_parent")]
            #[allow(dead_code)]
            pub async fn kid_parent(kid: String) -> Result<String, WorkflowError> {
                let r = super::super::receipt::$receipt::receipt(kid.clone())
                    .with_id(kid)
                    .await??;
                Ok(format!("charge {} cents for {} items", r.cents, r.qty))
            }
        };
    }
    pub mod reordered {
        parent!(reordered);
    }
    pub mod narrowed {
        parent!(narrowed);
    }
}

/// In both tests the parent of build B reaches its child-await when the
/// child has finished under build A (the state a crash leaves between a
/// child's end and its parent's next checkpoint; here the parent names the
/// instance build A finished, `x`).
#[tokio::test]
async fn a_child_output_written_before_its_fields_were_reordered_reaches_the_parent_by_name() {
    let dir = BACKEND.store();
    finished_by_a(dir.url()).await;
    let b = Runtime::builder()
        .workflow::<receipt::reordered::receipt>()
        .workflow::<kid::reordered::kid_parent>()
        .open_url(dir.url())
        .await
        .unwrap();
    let out = b
        .start(
            "p",
            kid::reordered::kid_parent("x".into()),
            IdPolicy::Reject,
        )
        .await
        .unwrap()
        .result()
        .within()
        .await
        .unwrap()
        .unwrap();
    // read by position, `qty: 3` was the charge and 1999 the count
    assert_eq!(out, "charge 1999 cents for 3 items");
    b.shutdown().await;
}

#[tokio::test]
async fn a_child_output_the_parent_cannot_read_parks_the_parent_naming_the_field() {
    let dir = BACKEND.store();
    finished_by_a(dir.url()).await;
    let b = Runtime::builder()
        .workflow::<receipt::narrowed::receipt>()
        .workflow::<kid::narrowed::kid_parent>()
        .open_url(dir.url())
        .await
        .unwrap();
    let h = b
        .start("p", kid::narrowed::kid_parent("x".into()), IdPolicy::Reject)
        .await
        .unwrap();
    let err = h.result().within().await.unwrap_err();
    assert!(
        matches!(err, durable_runtime::ResultError::Parked { .. }),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains("child `x`") && text.contains("cents") && text.contains("narrowed"),
        "{text}"
    );
    assert_eq!(b.describe("p").unwrap().status, Status::Parked);
    b.shutdown().await;
}

nested_case!(helper_reorder { a: {
    #[derive(Serialize, Deserialize, Debug)]
    pub struct Held { pub id: String, pub qty: u32, pub cents: u32 }

    #[helper]
    pub async fn hold(held: Held, note: String) -> Result<String, WorkflowError> {
        let _go: () = signal("go").await?;
        Ok(format!("{held:?} {note}"))
    }

    #[workflow(name = "nested")]
    pub async fn nested(held: Held) -> Result<String, WorkflowError> {
        let tag = String::from("t");
        let inner = hold(held, "n".to_owned()).await?;
        Ok(format!("{inner} {tag}"))
    }
} b: {
    #[derive(Serialize, Deserialize, Debug)]
    pub struct Held { pub id: String, pub cents: u32, pub qty: u32 }

    // the helper's parameters (its stored locals) reordered too
    #[helper]
    pub async fn hold(note: String, held: Held) -> Result<String, WorkflowError> {
        let _go: () = signal("go").await?;
        Ok(format!("{held:?} {note}"))
    }

    #[workflow(name = "nested")]
    pub async fn nested(held: Held) -> Result<String, WorkflowError> {
        let tag = String::from("t");
        let inner = hold("n".to_owned(), held).await?;
        Ok(format!("{inner} {tag}"))
    }
}});

#[tokio::test]
async fn a_helper_waiting_inside_a_workflow_is_read_by_name_after_its_types_change() {
    let input = helper_reorder::a::Held {
        id: "o-1".into(),
        qty: 3,
        cents: 1999,
    };
    continues::<helper_reorder::a::nested, helper_reorder::b::nested>(
        helper_reorder::a::nested(input),
        r#"Held { id: "o-1", cents: 1999, qty: 3 } n t"#,
        "reordered",
    )
    .await;
}

nested_case!(helper_retyped { a: {
    #[derive(Serialize, Deserialize, Debug)]
    pub struct Held { pub id: String, pub cents: u32 }

    #[helper]
    pub async fn hold(held: Held) -> Result<String, WorkflowError> {
        let _go: () = signal("go").await?;
        Ok(format!("{held:?}"))
    }

    #[workflow(name = "nested")]
    pub async fn nested(held: Held) -> Result<String, WorkflowError> {
        hold(held).await
    }
} b: {
    #[derive(Serialize, Deserialize, Debug)]
    pub struct Held { pub id: String, pub cents: String }

    #[helper]
    pub async fn hold(held: Held) -> Result<String, WorkflowError> {
        let _go: () = signal("go").await?;
        Ok(format!("{held:?}"))
    }

    #[workflow(name = "nested")]
    pub async fn nested(held: Held) -> Result<String, WorkflowError> {
        hold(held).await
    }
}});

/// Negative control: a field of a helper's stored local whose type changed
/// beyond what can be rebuilt parks the instance naming it, never misread.
#[tokio::test]
async fn a_helper_local_whose_type_changed_parks_naming_the_field() {
    parks::<helper_retyped::a::nested, helper_retyped::b::nested>(
        helper_retyped::a::nested(helper_retyped::a::Held {
            id: "o".into(),
            cents: 5,
        }),
        &["held.cents`: u32 → String"],
    )
    .await;
}

nested_case!(helper_awaits_moved { a: {
    #[activity]
    pub async fn stamp() -> Result<(), ActivityError> {
        Ok(())
    }

    #[helper]
    pub async fn hold(note: String) -> Result<String, WorkflowError> {
        let _go: () = signal("go").await?;
        stamp().await?;
        Ok(note)
    }

    #[workflow(name = "nested")]
    pub async fn nested(note: String) -> Result<String, WorkflowError> {
        hold(note).await
    }
} b: {
    #[activity]
    pub async fn stamp() -> Result<(), ActivityError> {
        Ok(())
    }

    // the same awaits, the other way round: waiting at `Signal` here comes
    // after the stamp, so build A's instance (stamp not run) must not
    // continue from it
    #[helper]
    pub async fn hold(note: String) -> Result<String, WorkflowError> {
        stamp().await?;
        let _go: () = signal("go").await?;
        Ok(note)
    }

    #[workflow(name = "nested")]
    pub async fn nested(note: String) -> Result<String, WorkflowError> {
        hold(note).await
    }
}});

/// Negative control for reading by name: a helper whose awaits moved has
/// another layout (its state is stored under `name@structure`), so an
/// instance waiting in it parks naming the helper instead of resuming at
/// the await of the same name, which now means another point.
#[tokio::test]
async fn a_helper_whose_awaits_moved_parks_naming_it() {
    parks::<helper_awaits_moved::a::nested, helper_awaits_moved::b::nested>(
        helper_awaits_moved::a::nested("n".into()),
        &["hold@"],
    )
    .await;
}

nested_case!(helper_became_activity { a: {
    #[helper]
    pub async fn notify(note: String) -> Result<String, WorkflowError> {
        let _go: () = signal("go").await?;
        Ok(note)
    }

    #[workflow(name = "nested")]
    pub async fn nested(note: String) -> Result<String, WorkflowError> {
        notify(note).await
    }
} b: {
    // the same name and call, now an activity: the await has the same
    // variant name and command, but what build A stored there (the
    // helper's state, its signal) is not what this await waits for
    #[activity]
    pub async fn notify(note: String) -> Result<String, ActivityError> {
        Ok(note)
    }

    #[workflow(name = "nested")]
    pub async fn nested(note: String) -> Result<String, WorkflowError> {
        Ok(notify(note).await?)
    }
}});

/// An await that was a helper and is now an activity of the same name
/// parks saying so: the stored request (the helper's signal) is never
/// delivered as the activity's result.
#[tokio::test]
async fn an_await_that_was_a_helper_and_is_now_a_command_parks() {
    parks::<helper_became_activity::a::nested, helper_became_activity::b::nested>(
        helper_became_activity::a::nested("n".into()),
        &["was a #[helper] and is now a command"],
    )
    .await;
}
