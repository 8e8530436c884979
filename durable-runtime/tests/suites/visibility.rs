// Included by `visibility.rs` once per backend (`common::suite!`), which sets
// `BACKEND`.
//
// Lists and counts are served from the phase and workflow indexes, kept in
// the same batch as each record: they follow every transition, page
// through many instances, and lose nothing and keep nothing stale.

use common::{Within, until};

use durable_runtime::prelude::*;
use durable_runtime::{ListFilter, Phase};

#[activity]
async fn note(n: u32) -> Result<u32, ActivityError> {
    Ok(n)
}

#[workflow]
async fn quick(n: u32) -> Result<u32, WorkflowError> {
    let m = note(n).await?;
    Ok(m)
}

#[workflow]
async fn gate(n: u32) -> Result<u32, WorkflowError> {
    let add: u32 = signal("open").await?;
    Ok(n + add)
}

fn ids(list: &[durable_runtime::Description]) -> Vec<String> {
    list.iter().map(|d| d.id.clone()).collect()
}

/// Every page of `filter` newest first, `size` at a time, paged with the
/// last instance's id and (`with_time`) its start time.
fn newest_pages(rt: &Runtime, filter: &ListFilter, size: usize, with_time: bool) -> Vec<String> {
    let mut seen = Vec::new();
    let mut filter = ListFilter {
        order: durable_runtime::ListOrder::NewestFirst,
        limit: size,
        ..filter.clone()
    };
    loop {
        let page = rt.list(&filter).unwrap();
        assert!(page.len() <= size);
        seen.extend(ids(&page));
        let Some(last) = page.last() else { break };
        filter.after = Some(last.id.clone());
        filter.after_started_ms = with_time.then_some(last.created_ms);
        assert!(seen.len() <= 1000, "paging does not end: {seen:?}");
    }
    seen
}

fn count(rt: &Runtime, phase: Phase) -> usize {
    rt.counts_by_phase()
        .unwrap()
        .into_iter()
        .find(|(p, _)| *p == phase)
        .map_or(0, |(_, n)| n)
}

#[tokio::test]
async fn the_indexes_follow_transitions_and_page_without_gaps_or_repeats() {
    let db = BACKEND.store();
    let rt = Runtime::builder()
        .workflow::<quick>()
        .workflow::<gate>()
        .open_url(db.url())
        .await
        .unwrap();
    // more than one scan page of each kind
    let n = 1500;
    for i in 0..n {
        rt.start(format!("g-{i:05}"), gate(i), IdPolicy::Reject)
            .await
            .unwrap();
    }
    let mut done = Vec::new();
    for i in 0..300 {
        done.push(
            rt.start(format!("q-{i:05}"), quick(i), IdPolicy::Reject)
                .await
                .unwrap(),
        );
    }
    for h in done {
        h.result().within().await.unwrap().unwrap();
    }
    until("all gates wait", || {
        count(&rt, Phase::WaitingForSignal) == n as usize
    })
    .await;
    assert_eq!(count(&rt, Phase::Completed), 300);

    // page through one phase 400 at a time: every id once, in order
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = rt
            .list(&ListFilter {
                phase: Some(Phase::WaitingForSignal),
                after: after.clone(),
                limit: 400,
                ..ListFilter::default()
            })
            .unwrap();
        if page.is_empty() {
            break;
        }
        after = page.last().map(|d| d.id.clone());
        seen.extend(ids(&page));
    }
    let want: Vec<String> = (0..n).map(|i| format!("g-{i:05}")).collect();
    assert_eq!(seen, want);

    // a transition moves an instance from one phase's index to another's
    rt.signal("g-00007", "open", &1u32).await.unwrap();
    rt.handle::<gate>("g-00007")
        .result()
        .within()
        .await
        .unwrap()
        .unwrap();
    let waiting = rt
        .list(&ListFilter {
            phase: Some(Phase::WaitingForSignal),
            id_prefix: Some("g-0000".into()),
            ..ListFilter::default()
        })
        .unwrap();
    assert_eq!(waiting.len(), 9, "{:?}", ids(&waiting));
    assert!(!ids(&waiting).contains(&"g-00007".to_owned()));
    assert_eq!(count(&rt, Phase::WaitingForSignal), n as usize - 1);
    assert_eq!(count(&rt, Phase::Completed), 301);

    // the workflow index, and a status that spans several phases
    let quick_ones = rt
        .list(&ListFilter {
            workflow: Some("quick".into()),
            limit: 0,
            ..ListFilter::default()
        })
        .unwrap();
    assert_eq!(quick_ones.len(), 300);
    let running = rt
        .list(&ListFilter {
            status: Some(durable_runtime::Status::Running),
            limit: 5,
            ..ListFilter::default()
        })
        .unwrap();
    assert_eq!(
        ids(&running),
        ["g-00000", "g-00001", "g-00002", "g-00003", "g-00004"]
    );
    let counts = rt.counts().unwrap();
    assert!(
        counts.contains(&(durable_runtime::Status::Running, n as usize - 1)),
        "{counts:?}"
    );
    rt.shutdown().await;

    // the indexes are in the store: the same answers after a restart
    let rt = Runtime::builder()
        .workflow::<quick>()
        .workflow::<gate>()
        .retention(std::time::Duration::ZERO)
        .open_url(db.url())
        .await
        .unwrap();
    // retention deleted the finished ones, with their index entries
    until("retention ran", || count(&rt, Phase::Completed) == 0).await;
    assert_eq!(count(&rt, Phase::WaitingForSignal), n as usize - 1);
    assert!(
        rt.list(&ListFilter {
            workflow: Some("quick".into()),
            ..ListFilter::default()
        })
        .unwrap()
        .is_empty()
    );
}

#[workflow]
async fn tagged(customer: String, cents: i64) -> Result<i64, WorkflowError> {
    durable_runtime::upsert_search_attributes([
        ("customer", durable_runtime::SearchValue::from(customer)),
        ("cents", durable_runtime::SearchValue::from(cents)),
        ("vip", durable_runtime::SearchValue::from(cents > 1000)),
    ])
    .await;
    let _: () = signal("paid").await?;
    // a value set again replaces the old one, in the index too
    durable_runtime::upsert_search_attributes([(
        "cents",
        durable_runtime::SearchValue::from(0i64),
    )])
    .await;
    Ok(cents)
}

#[tokio::test]
async fn search_attributes_set_by_the_workflow_are_indexed_and_listable() {
    use durable_runtime::SearchValue;
    let db = BACKEND.store();
    let rt = Runtime::builder()
        .workflow::<tagged>()
        .open_url(db.url())
        .await
        .unwrap();
    for (id, customer, cents) in [
        ("o1", "acme", 500),
        ("o2", "acme", 4200),
        ("o3", "globex", 4200),
    ] {
        rt.start(id, tagged(customer.into(), cents), IdPolicy::Reject)
            .await
            .unwrap();
    }
    until("all wait for payment", || {
        rt.list(&ListFilter {
            phase: Some(Phase::WaitingForSignal),
            ..ListFilter::default()
        })
        .unwrap()
        .len()
            == 3
    })
    .await;
    let by = |name: &str, text: &str| -> Vec<String> {
        ids(&rt
            .list(&ListFilter {
                search_attribute: Some((name.into(), SearchValue::parse_all(text))),
                ..ListFilter::default()
            })
            .unwrap())
    };
    assert_eq!(by("customer", "acme"), ["o1", "o2"]);
    assert_eq!(by("cents", "4200"), ["o2", "o3"]);
    assert_eq!(by("vip", "true"), ["o2", "o3"]);
    assert!(by("customer", "initech").is_empty());
    let d = rt.describe("o2").unwrap();
    assert_eq!(d.search_attributes["customer"], "acme");
    assert_eq!(d.search_attributes["cents"], 4200);
    assert_eq!(d.search_attributes["vip"], true);

    rt.signal("o2", "paid", &()).await.unwrap();
    rt.handle::<tagged>("o2")
        .result()
        .within()
        .await
        .unwrap()
        .unwrap();
    assert_eq!(by("cents", "4200"), ["o3"], "the old value's entry is gone");
    assert_eq!(by("cents", "0"), ["o2"]);
    assert_eq!(
        by("customer", "acme"),
        ["o1", "o2"],
        "untouched attributes stay"
    );
}

fn wall_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

#[tokio::test]
async fn lists_filter_by_start_and_end_time() {
    let db = BACKEND.store();
    let rt = Runtime::builder()
        .workflow::<quick>()
        .workflow::<gate>()
        .open_url(db.url())
        .await
        .unwrap();
    rt.start("early", quick(1), IdPolicy::Reject)
        .await
        .unwrap()
        .result()
        .within()
        .await
        .unwrap()
        .unwrap();
    rt.start("open-early", gate(1), IdPolicy::Reject)
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let cut = wall_ms();
    rt.start("late", quick(2), IdPolicy::Reject)
        .await
        .unwrap()
        .result()
        .within()
        .await
        .unwrap()
        .unwrap();
    let list = |started, closed| {
        ids(&rt
            .list(&ListFilter {
                started,
                closed,
                ..ListFilter::default()
            })
            .unwrap())
    };
    assert_eq!(list(Some((cut, u64::MAX)), None), ["late"]);
    assert_eq!(list(Some((0, cut - 1)), None), ["early", "open-early"]);
    assert_eq!(
        list(None, Some((0, u64::MAX))),
        ["early", "late"],
        "still open: not closed"
    );
    assert_eq!(list(None, Some((cut, u64::MAX))), ["late"]);
    // with an index filter too
    let late_done = rt
        .list(&ListFilter {
            phase: Some(Phase::Completed),
            started: Some((cut, u64::MAX)),
            ..ListFilter::default()
        })
        .unwrap();
    assert_eq!(ids(&late_done), ["late"]);
}

/// The events of one checkpoint share one history key (three at the
/// start: started, input, awaiting), and a history written one event per key
/// (by earlier builds) reads alongside.
#[tokio::test]
async fn a_checkpoints_events_share_one_key_and_older_single_event_keys_still_read() {
    use durable_runtime::history::{EventKind, HistoryEvent};
    use durable_runtime::store::{Batch, Store};
    let db = BACKEND.store();
    let rt = Runtime::builder()
        .workflow::<quick>()
        .open_url(db.url())
        .await
        .unwrap();
    let h = rt.start("one", quick(7), IdPolicy::Reject).await.unwrap();
    assert_eq!(h.result().within().await.unwrap().unwrap(), 7);
    let events = rt.history("one").unwrap();
    assert!(events.len() >= 5, "{events:?}");
    assert!(
        events.windows(2).all(|w| w[1].seq == w[0].seq + 1),
        "{events:?}"
    );
    rt.shutdown().await;

    let store = db.open().await;
    let mut prefix = b"hone".to_vec();
    prefix.push(0);
    let keys = store.scan_prefix(&prefix).unwrap();
    assert!(
        keys.len() < events.len(),
        "{} keys for {} events",
        keys.len(),
        events.len()
    );
    // one event under its own key, as earlier builds wrote every event
    let seq = events.len() as u64 + 1;
    let mut key = prefix.clone();
    key.extend_from_slice(&seq.to_be_bytes());
    let old = HistoryEvent {
        seq,
        at_ms: 1,
        kind: EventKind::TimerFired { step: 99 },
    };
    let mut b = Batch::default();
    b.put(key, durable_runtime::codec::encode(&old).unwrap());
    store.commit(b).await.unwrap();
    drop(store);

    let rt = Runtime::builder()
        .workflow::<quick>()
        .open_url(db.url())
        .await
        .unwrap();
    let again = rt.history("one").unwrap();
    assert_eq!(&again[..events.len()], &events[..]);
    assert_eq!(again.last(), Some(&old));
    // a snapshot carries the shared keys, and imports elsewhere
    let snapshot = rt.export("one").unwrap();
    let other = BACKEND.store();
    let rt2 = Runtime::builder()
        .workflow::<quick>()
        .open_url(other.url())
        .await
        .unwrap();
    rt2.import(&snapshot, false).await.unwrap();
    assert_eq!(rt2.history("one").unwrap(), again);
}

#[activity]
async fn refuse(n: u32) -> Result<u32, ActivityError> {
    Err(ActivityError::terminal(format!("refused {n}")))
}

#[workflow]
async fn refused(n: u32) -> Result<u32, WorkflowError> {
    let m = refuse(n).await?;
    Ok(m)
}

#[workflow]
async fn nap(n: u32) -> Result<u32, WorkflowError> {
    sleep(std::time::Duration::from_secs(3600)).await?;
    Ok(n)
}

/// What each phase's index holds, read entry by entry.
fn indexed(rt: &Runtime) -> Vec<(Phase, usize)> {
    Phase::ALL
        .into_iter()
        .map(|phase| {
            let listed = rt
                .list(&ListFilter {
                    phase: Some(phase),
                    limit: 0,
                    ..ListFilter::default()
                })
                .unwrap();
            (phase, listed.len())
        })
        .collect()
}

/// The counts by phase are counters every batch that moves an instance
/// keeps (not a scan of the index): through completion, failure, a
/// cancel, a terminate, a timer, a signal, a new run of an ended id, an
/// import that replaces an instance, retention, and a reopen, they equal
/// what the phase index holds.
#[tokio::test]
async fn counts_by_phase_equal_the_phase_index_through_every_kind_of_move() {
    let db = BACKEND.store();
    let open = |retain: bool| {
        let builder = Runtime::builder()
            .workflow::<quick>()
            .workflow::<gate>()
            .workflow::<refused>()
            .workflow::<nap>();
        let builder = if retain {
            builder.retention(std::time::Duration::ZERO)
        } else {
            builder
        };
        builder.open_url(db.url())
    };
    let rt = open(false).await.unwrap();
    for i in 0..6 {
        rt.start(format!("q-{i}"), quick(i), IdPolicy::Reject)
            .await
            .unwrap();
        rt.start(format!("g-{i}"), gate(i), IdPolicy::Reject)
            .await
            .unwrap();
        rt.start(format!("r-{i}"), refused(i), IdPolicy::Reject)
            .await
            .unwrap();
        rt.start(format!("n-{i}"), nap(i), IdPolicy::Reject)
            .await
            .unwrap();
    }
    until("every instance settles", || {
        count(&rt, Phase::Completed) == 6
            && count(&rt, Phase::Failed) == 6
            && count(&rt, Phase::WaitingForSignal) == 6
            && count(&rt, Phase::Sleeping) == 6
    })
    .await;
    assert_eq!(rt.counts_by_phase().unwrap(), indexed(&rt));
    rt.signal("g-0", "open", &1u32).await.unwrap();
    rt.cancel("g-1").await.unwrap();
    rt.terminate("g-2", "by the test").await.unwrap();
    rt.cancel("n-0").await.unwrap();
    until("the signal, the cancels and the terminate land", || {
        count(&rt, Phase::Completed) == 7 && count(&rt, Phase::WaitingForSignal) == 3
    })
    .await;
    // a new run of an ended id
    rt.start("q-0", quick(100), IdPolicy::NewRunIfEnded)
        .await
        .unwrap()
        .result()
        .within()
        .await
        .unwrap()
        .unwrap();
    // an import that puts an ended instance back as it waited
    let snapshot = rt.export("g-3").unwrap();
    rt.signal("g-3", "open", &1u32).await.unwrap();
    until("g-3 ends", || count(&rt, Phase::Completed) == 8).await;
    rt.import(&snapshot, true).await.unwrap();
    until("the moves are counted", || {
        rt.counts_by_phase().unwrap() == indexed(&rt)
    })
    .await;
    let counts = rt.counts_by_phase().unwrap();
    assert_eq!(counts, indexed(&rt));
    assert!(counts.contains(&(Phase::WaitingForSignal, 3)), "{counts:?}");
    assert!(counts.contains(&(Phase::Completed, 7)), "{counts:?}");
    rt.shutdown().await;

    // retention deletes the ended ones, and the counts go with them
    let rt = open(true).await.unwrap();
    let ended = |rt: &Runtime| -> usize {
        rt.counts_by_phase()
            .unwrap()
            .iter()
            .filter(|(p, _)| p.status().is_terminal())
            .map(|(_, n)| n)
            .sum()
    };
    until("retention deleted every ended instance", || ended(&rt) == 0).await;
    let counts = rt.counts_by_phase().unwrap();
    assert_eq!(counts, indexed(&rt));
    assert!(counts.contains(&(Phase::WaitingForSignal, 3)), "{counts:?}");
    assert!(counts.contains(&(Phase::Sleeping, 5)), "{counts:?}");
    rt.shutdown().await;
}

#[activity]
async fn refuse_once(n: u32) -> Result<u32, ActivityError> {
    if durable_runtime::ActivityContext::current().is_some_and(|c| c.attempt == 1) {
        return Err(ActivityError::retryable("not yet"));
    }
    Ok(n)
}

#[workflow]
async fn twice(n: u32) -> Result<u32, WorkflowError> {
    let m = refuse_once(n).await?;
    Ok(m)
}

fn encoded(registry: &prometheus_client::registry::Registry) -> String {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, registry).unwrap();
    text
}

/// The runtime's series join an application's own prometheus-client
/// registry as a collector, labelled by workflow, activity, outcome and
/// status, and the collector lets the runtime go when it is shut down.
#[tokio::test]
async fn the_runtimes_metrics_join_an_applications_registry_labelled_by_workflow_and_status() {
    let db = BACKEND.store();
    let rt = Runtime::builder()
        .workflow::<quick>()
        .workflow::<gate>()
        .workflow::<twice>()
        .open_url(db.url())
        .await
        .unwrap();
    for i in 0..3 {
        rt.start(format!("q-{i}"), quick(i), IdPolicy::Reject)
            .await
            .unwrap()
            .result()
            .within()
            .await
            .unwrap()
            .unwrap();
    }
    rt.start("t", twice(1), IdPolicy::Reject)
        .await
        .unwrap()
        .result()
        .within()
        .await
        .unwrap()
        .unwrap();
    rt.start("g", gate(1), IdPolicy::Reject).await.unwrap();
    until("the gate waits", || {
        count(&rt, Phase::WaitingForSignal) == 1
    })
    .await;
    rt.cancel("g").await.unwrap();
    until("the gate is cancelled", || {
        count(&rt, Phase::Cancelled) == 1
    })
    .await;
    // counted once its final save is acknowledged, a moment after the
    // commit that the counts by phase read
    until("the cancelled gate is counted", || {
        rt.metrics()
            .render()
            .unwrap()
            .contains("durable_workflows_ended_total{workflow=\"gate\",status=\"cancelled\"} 1")
    })
    .await;

    let mut registry = prometheus_client::registry::Registry::default();
    registry.register(
        "app_orders",
        "The application's own series.",
        prometheus_client::metrics::counter::Counter::<u64>::default(),
    );
    registry.register_collector(Box::new(rt.metrics()));
    let text = encoded(&registry);
    for line in [
        "app_orders_total 0",
        "durable_workflows_started_total{workflow=\"quick\"} 3",
        "durable_workflows_started_total{workflow=\"twice\"} 1",
        "durable_workflows_started_total{workflow=\"gate\"} 1",
        "durable_workflows_ended_total{workflow=\"quick\",status=\"completed\"} 3",
        "durable_workflows_ended_total{workflow=\"twice\",status=\"completed\"} 1",
        "durable_workflows_ended_total{workflow=\"gate\",status=\"cancelled\"} 1",
        "durable_activity_attempts_total{activity=\"note\",outcome=\"ok\"} 3",
        "durable_activity_attempts_total{activity=\"refuse_once\",outcome=\"failed\"} 1",
        "durable_activity_attempts_total{activity=\"refuse_once\",outcome=\"ok\"} 1",
        "durable_activity_attempt_duration_seconds_count{activity=\"refuse_once\"} 2",
        "durable_instances{status=\"completed\"} 4",
        "durable_instances{status=\"cancelled\"} 1",
        "durable_instances{status=\"running\"} 0",
        "durable_instances_by_phase{phase=\"cancelled\"} 1",
        "# EOF",
    ] {
        assert!(text.lines().any(|l| l == line), "no line {line} in\n{text}");
    }
    // a transition of each workflow counted under its own name
    for workflow in ["quick", "twice", "gate"] {
        let prefix = format!("durable_transitions_total{{workflow=\"{workflow}\"}} ");
        let n: u64 = text
            .lines()
            .find_map(|l| l.strip_prefix(prefix.as_str()))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no {prefix} in\n{text}"));
        assert!(n >= 1, "{text}");
    }
    // the same series as `GET /metrics` renders
    assert!(
        rt.metrics()
            .render()
            .unwrap()
            .contains("durable_workflows_ended_total{workflow=\"gate\",status=\"cancelled\"} 1")
    );

    // every series the Grafana dashboard in docs/ queries is one the runtime
    // exports (the owned instances, reads and pool: on PostgreSQL only)
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../docs/grafana-dashboard.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let mut queried = 0;
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            for (at, _) in expr.match_indices("durable_") {
                let name: String = expr[at..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                queried += 1;
                let exported = text.lines().any(|l| {
                    l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} "))
                });
                let postgres_only = name == "durable_owned_instances"
                    || name.starts_with("durable_store_pool_")
                    || name.starts_with("durable_store_read_seconds");
                assert!(
                    exported || (postgres_only && BACKEND != Backend::Postgres),
                    "the dashboard queries {name}, which is not exported:\n{text}"
                );
            }
        }
    }
    assert!(queried >= 15, "{queried}");

    // the collector holds the runtime weakly: once it is gone, it adds nothing
    rt.shutdown().await;
    let text = encoded(&registry);
    assert!(!text.contains("durable_"), "{text}");
    assert!(text.contains("app_orders_total 0"), "{text}");
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Parcel {
    to: String,
    grams: u32,
    /// Large for one call: over what the history keeps of a value.
    label: String,
}

#[activity]
async fn weigh(parcel: Parcel) -> Result<u32, ActivityError> {
    if parcel.grams == 0 {
        return Err(ActivityError::terminal("nothing to weigh"));
    }
    Ok(parcel.grams + parcel.label.len() as u32)
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Pickup {
    at: String,
    door: u8,
}

#[workflow]
async fn post(parcel: Parcel) -> Result<String, WorkflowError> {
    let grams = weigh(parcel.clone()).await?;
    let pickup: Pickup = signal("pickup").await?;
    let empty = weigh(Parcel {
        grams: 0,
        ..parcel.clone()
    })
    .await;
    let big = weigh(Parcel {
        label: "L".repeat(5000),
        ..parcel
    })
    .await?;
    Ok(format!("{grams} {} {} {}", pickup.at, empty.is_err(), big))
}

/// The history shows what each activity was called with and returned, and
/// what a signal carried, as JSON read by name; a value over the history's
/// limit is noted with its size; a snapshot carries them to another store.
#[tokio::test]
async fn the_history_shows_activity_inputs_and_results_and_signal_payloads_by_name() {
    use durable_runtime::history::EventKind;
    let db = BACKEND.store();
    let rt = Runtime::builder()
        .workflow::<post>()
        .open_url(db.url())
        .await
        .unwrap();
    let parcel = Parcel {
        to: "Ada".into(),
        grams: 250,
        label: "fragile".into(),
    };
    let h = rt
        .start("p-1", post(parcel), IdPolicy::Reject)
        .await
        .unwrap();
    until("waiting for the pickup", || {
        h.describe().is_ok_and(|d| d.variant == "Signal")
    })
    .await;
    rt.signal(
        "p-1",
        "pickup",
        &Pickup {
            at: "9:00".into(),
            door: 3,
        },
    )
    .await
    .unwrap();
    let out = h.result().within().await.unwrap().unwrap();
    assert_eq!(out, "257 9:00 true 5250");
    rt.shutdown().await;

    // a new process reads them, by the layouts stored with them
    let rt = Runtime::builder()
        .workflow::<post>()
        .open_url(db.url())
        .await
        .unwrap();
    let history = rt.history("p-1").unwrap();
    let json = |text: &str| serde_json::from_str::<serde_json::Value>(text).unwrap();
    let calls: Vec<(String, serde_json::Value, serde_json::Value)> = history
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::ActivityCalled {
                activity,
                input,
                output,
                ..
            } => Some((activity.clone(), json(input), json(output))),
            _ => None,
        })
        .collect();
    assert_eq!(calls.len(), 3, "{history:?}");
    assert_eq!(calls[0].0, "weigh");
    assert_eq!(
        calls[0].1,
        serde_json::json!({"to": "Ada", "grams": 250, "label": "fragile"})
    );
    assert_eq!(calls[0].2, serde_json::json!({"Ok": 257}));
    assert_eq!(calls[1].1["grams"], 0);
    assert!(
        calls[1].2["Err"].to_string().contains("nothing to weigh"),
        "{:?}",
        calls[1].2
    );
    let noted = calls[2].1.as_str().unwrap_or_default();
    assert!(
        noted.contains("bytes") && noted.contains("history keeps"),
        "{noted}"
    );
    assert_eq!(calls[2].2, serde_json::json!({"Ok": 5250}));
    let payload = history
        .iter()
        .find_map(|e| match &e.kind {
            EventKind::SignalPayload { name, json: j, .. } if name == "pickup" => Some(json(j)),
            _ => None,
        })
        .expect("the signal's payload");
    assert_eq!(payload, serde_json::json!({"at": "9:00", "door": 3}));

    // a snapshot carries them as JSON: another store shows the same
    let snapshot = rt.export("p-1").unwrap();
    let other = BACKEND.store();
    let rt2 = Runtime::builder()
        .workflow::<post>()
        .open_url(other.url())
        .await
        .unwrap();
    rt2.import(&snapshot, false).await.unwrap();
    assert_eq!(rt2.history("p-1").unwrap(), history);
    rt2.shutdown().await;
    rt.shutdown().await;
}

/// Newest start first: by start time (instances started in the same
/// millisecond by id), paged with the last instance's id and start time,
/// narrowed by workflow, status, id prefix and start time, an id started
/// again listed once at its new time; and a store written before the
/// start-time index lists the same opened without recovery (as the CLI
/// opens it) and after an open indexed it.
#[tokio::test]
async fn the_list_shows_the_newest_start_first_and_pages_on_in_that_order() {
    use durable_runtime::store::Batch;
    let db = BACKEND.store();
    let open = |resume: bool| {
        Runtime::builder()
            .workflow::<quick>()
            .workflow::<gate>()
            .resume_on_open(resume)
            .open_url(db.url())
    };
    let rt = open(true).await.unwrap();
    for i in 0..15u32 {
        rt.start(format!("g-{i:02}"), gate(i), IdPolicy::Reject)
            .await
            .unwrap();
        rt.start(format!("q-{i:02}"), quick(i), IdPolicy::Reject)
            .await
            .unwrap()
            .result()
            .within()
            .await
            .unwrap()
            .unwrap();
    }
    until("the gates wait", || {
        count(&rt, Phase::WaitingForSignal) == 15
    })
    .await;
    // q-03 started again: one entry, at its new start time
    rt.start("q-03", quick(3), IdPolicy::NewRunIfEnded)
        .await
        .unwrap()
        .result()
        .within()
        .await
        .unwrap()
        .unwrap();
    // what newest first means, from the start times the descriptions give
    let mut all: Vec<(u64, String)> = rt
        .list(&ListFilter::default())
        .unwrap()
        .into_iter()
        .map(|d| (d.created_ms, d.id))
        .collect();
    assert_eq!(all.len(), 30);
    all.sort_by_key(|(ms, id)| (std::cmp::Reverse(*ms), id.clone()));
    let want = |keep: &dyn Fn(u64, &str) -> bool| -> Vec<String> {
        all.iter()
            .filter(|(ms, id)| keep(*ms, id))
            .map(|(_, id)| id.clone())
            .collect()
    };
    assert_eq!(want(&|_, _| true)[0], "q-03", "started last");
    let (from, to) = (all[20].0, all[5].0);
    let check = |rt: &Runtime| {
        let every = ListFilter::default();
        assert_eq!(newest_pages(rt, &every, 7, true), want(&|_, _| true));
        assert_eq!(
            newest_pages(rt, &every, 4, false),
            want(&|_, _| true),
            "the id alone places a page"
        );
        let quick_ones = ListFilter {
            workflow: Some("quick".into()),
            ..ListFilter::default()
        };
        assert_eq!(
            newest_pages(rt, &quick_ones, 4, true),
            want(&|_, id| id.starts_with("q-"))
        );
        let waiting = ListFilter {
            phase: Some(Phase::WaitingForSignal),
            ..ListFilter::default()
        };
        assert_eq!(
            newest_pages(rt, &waiting, 4, true),
            want(&|_, id| id.starts_with("g-"))
        );
        let window = ListFilter {
            id_prefix: Some("q-".into()),
            started: Some((from, to)),
            ..ListFilter::default()
        };
        let windowed = newest_pages(rt, &window, 3, true);
        assert!(!windowed.is_empty());
        assert_eq!(
            windowed,
            want(&|ms, id| id.starts_with("q-") && from <= ms && ms <= to)
        );
        // the counts beside a filtered list, whatever its status
        let counted = |filter: ListFilter, at_most| {
            let c = rt.count_matching(&filter, at_most).unwrap();
            let n = |phase| c.by_phase.iter().find(|(p, _)| *p == phase).unwrap().1;
            (n(Phase::WaitingForSignal), n(Phase::Completed), c.exact)
        };
        assert_eq!(
            counted(ListFilter::default(), 1),
            (15, 15, true),
            "the counters"
        );
        assert_eq!(
            counted(
                ListFilter {
                    phase: Some(Phase::Failed),
                    ..quick_ones.clone()
                },
                100
            ),
            (0, 15, true)
        );
        assert_eq!(counted(window.clone(), 100).0, 0);
        assert_eq!(
            counted(window, 100).1,
            want(&|ms, id| id.starts_with("q-") && from <= ms && ms <= to).len()
        );
        let some = ListFilter {
            id_prefix: Some("g-".into()),
            ..ListFilter::default()
        };
        assert_eq!(counted(some.clone(), 100), (15, 0, true));
        let (waiting, completed, exact) = counted(some, 5);
        assert_eq!((waiting + completed, exact), (5, false), "cut at 5");
    };
    check(&rt);
    rt.shutdown().await;

    // as a build before the start-time index left the store
    let store = db.open().await;
    assert_eq!(store.scan_prefix(b"e").unwrap().len(), 30, "one entry each");
    let mut forget = Batch::default();
    for (key, _) in store.scan_prefix(b"e").unwrap() {
        forget.delete(key);
    }
    forget.count(b"e".to_vec(), -1);
    store.commit(forget).await.unwrap();
    drop(store);
    // opened without recovery: listed in id order and sorted
    let rt = open(false).await.unwrap();
    check(&rt);
    rt.shutdown().await;
    // an open indexes it
    let rt = open(true).await.unwrap();
    check(&rt);
    rt.shutdown().await;
    let store = db.open().await;
    assert_eq!(store.scan_prefix(b"e").unwrap().len(), 30);
}
