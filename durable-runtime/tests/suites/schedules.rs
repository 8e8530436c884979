// Included by `schedules.rs` once per backend (`common::suite!`), which sets
// `BACKEND`.

use common::{Within, until};

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use durable_runtime::clock::{Clock, TestClock};
use durable_runtime::prelude::*;
use durable_runtime::schedule::{ScheduleDescription, ScheduleEventKind, SkipReason, Trigger};
use durable_runtime::{Overlap, Schedule, ScheduleError, Status};

#[activity]
async fn write_report(name: String) -> Result<String, ActivityError> {
    let ctx = ActivityContext::current().expect("in an activity");
    Ok(format!("{name} by {}", ctx.idempotency_key))
}

/// Finishes at once.
#[workflow]
async fn report(name: String) -> Result<String, WorkflowError> {
    let done = write_report(name).await?;
    Ok(done)
}

/// Runs until signalled `finish` (or cancelled).
#[workflow]
async fn long_job(name: String) -> Result<String, WorkflowError> {
    let _: () = signal("finish").await?;
    Ok(name)
}

/// Says which schedule started it, for which time, how, and when it
/// really ran (the clock at its first step).
#[workflow]
async fn stamped(name: String) -> Result<String, WorkflowError> {
    let ran = now().await;
    let run = durable_runtime::schedule::scheduled().await;
    Ok(stamp_text(&name, run, ran))
}

/// [`stamped`] once signalled `finish`.
#[workflow]
async fn held_stamp(name: String) -> Result<String, WorkflowError> {
    let _: () = signal("finish").await?;
    let ran = now().await;
    let run = durable_runtime::schedule::scheduled().await;
    Ok(stamp_text(&name, run, ran))
}

/// What [`stamped`] and [`held_stamp`] return.
fn stamp_text(
    name: &str,
    run: Option<durable_runtime::schedule::ScheduledRun>,
    ran: SystemTime,
) -> String {
    match run {
        Some(r) => format!(
            "{name}: {} {:?} nominal {} ran {}",
            r.schedule,
            r.trigger,
            ms(r.nominal),
            ms(ran)
        ),
        None => format!("{name}: not scheduled"),
    }
}

async fn stamp(rt: &Runtime, id: &str) -> String {
    rt.handle::<stamped>(id)
        .result()
        .within()
        .await
        .unwrap()
        .unwrap()
}

const MIN: Duration = Duration::from_secs(60);

/// 2030-01-01T00:00:00Z, where `TestClock::new` stands.
fn t0() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_893_456_000)
}

fn run(schedule: &str, after_t0: Duration) -> String {
    let at = chrono_free_rfc3339(t0() + after_t0);
    format!("{schedule}@{at}")
}

/// RFC 3339 UTC of whole-second times in 2030-01-01 (enough for these tests).
fn chrono_free_rfc3339(t: SystemTime) -> String {
    let secs = t.duration_since(t0()).unwrap().as_secs();
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    format!("2030-01-{:02}T{h:02}:{m:02}:{s:02}Z", d + 1)
}

async fn open(
    db: &durable_runtime::testing::backends::TestStore,
    clock: &Arc<TestClock>,
) -> Runtime {
    Runtime::builder()
        .workflow::<report>()
        .workflow::<long_job>()
        .workflow::<stamped>()
        .workflow::<held_stamp>()
        .clock(clock.clone())
        .open_url(db.url())
        .await
        .unwrap()
}

fn ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

/// Waits until the schedule has acted on everything due at the clock's time.
async fn settled(rt: &Runtime, clock: &TestClock, id: &str) -> ScheduleDescription {
    let now = ms(clock.now());
    let mut d = rt.schedules().describe(id).unwrap();
    for _ in 0..4000 {
        if d.next_ms.first().is_none_or(|next| *next > now) {
            return d;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
        d = rt.schedules().describe(id).unwrap();
    }
    panic!("schedule {id} did not act on {now}: {d:?}");
}

/// Waits until every run the schedule started has ended.
async fn quiet(rt: &Runtime, id: &str) {
    for run in rt.schedules().describe(id).unwrap().running {
        until("a run to end", || {
            rt.describe(&run).unwrap().status.is_terminal()
        })
        .await;
    }
}

fn started(d: &ScheduleDescription) -> Vec<String> {
    d.recent
        .iter()
        .filter_map(|e| match &e.kind {
            ScheduleEventKind::Started { workflow_id, .. } => Some(workflow_id.clone()),
            _ => None,
        })
        .collect()
}

fn skipped(d: &ScheduleDescription, why: SkipReason) -> u64 {
    d.recent
        .iter()
        .map(|e| match &e.kind {
            ScheduleEventKind::Skipped { count, reason, .. } if *reason == why => *count,
            _ => 0,
        })
        .sum()
}

async fn finish(rt: &Runtime, id: &str) {
    rt.signal(id, "finish", &()).await.unwrap();
    rt.handle::<long_job>(id)
        .result()
        .within()
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn a_cron_schedule_starts_each_run_once_with_an_id_from_its_time() {
    let db = BACKEND.store();
    let clock = Arc::new(TestClock::new());
    let rt = open(&db, &clock).await;
    let d = rt
        .schedules()
        .create(
            "hourly",
            Schedule::cron("0 * * * *").unwrap(),
            report("sales".into()),
        )
        .await
        .unwrap();
    // created at 00:00 exactly: that time is the first run
    assert_eq!(d.runs, 1);
    assert_eq!(
        d.next_ms,
        (1..=5).map(|h| ms(t0() + h * 60 * MIN)).collect::<Vec<_>>()
    );
    assert_eq!(d.spec, "cron \"0 * * * *\" in UTC");
    assert_eq!(d.input, Some(serde_json::json!("sales")));
    for hour in 1..=3u32 {
        quiet(&rt, "hourly").await;
        clock.advance(60 * MIN);
        settled(&rt, &clock, "hourly").await;
        let id = run("hourly", hour * 60 * MIN);
        let out = rt
            .handle::<report>(id.clone())
            .result()
            .within()
            .await
            .unwrap()
            .unwrap();
        // the run's first call: `<id>/<incarnation>/1`
        let key = out.strip_prefix("sales by ").unwrap();
        assert!(
            key.starts_with(&format!("{id}/")) && key.ends_with("/1"),
            "{out}"
        );
    }
    let d = rt.schedules().describe("hourly").unwrap();
    assert_eq!(d.runs, 4);
    assert_eq!(started(&d).len(), 4);
    assert_eq!(rt.schedules().list().unwrap().len(), 1);
}

/// Starts `long_job` every minute with `overlap`; run 0 is at t0 + 1 min.
async fn every_minute(rt: &Runtime, clock: &TestClock, overlap: Overlap) {
    rt.schedules()
        .create(
            "job",
            Schedule::interval(MIN)
                .unwrap()
                .starting_at(t0() + MIN)
                .overlap(overlap),
            long_job("j".into()),
        )
        .await
        .unwrap();
    clock.advance(MIN);
    let d = settled(rt, clock, "job").await;
    assert_eq!(d.running, [run("job", MIN)]);
}

#[tokio::test]
async fn overlap_skip_drops_runs_while_one_is_going() {
    let db = BACKEND.store();
    let clock = Arc::new(TestClock::new());
    let rt = open(&db, &clock).await;
    every_minute(&rt, &clock, Overlap::Skip).await;
    clock.advance(2 * MIN);
    let d = settled(&rt, &clock, "job").await;
    assert_eq!(skipped(&d, SkipReason::Overlap), 2);
    assert!(rt.describe(&run("job", 2 * MIN)).is_err());
    finish(&rt, &run("job", MIN)).await;
    clock.advance(MIN);
    let d = settled(&rt, &clock, "job").await;
    assert_eq!(d.running, [run("job", 4 * MIN)]);
    assert_eq!(d.runs, 2);
}

#[tokio::test]
async fn overlap_buffer_one_keeps_one_run_for_later() {
    let db = BACKEND.store();
    let clock = Arc::new(TestClock::new());
    let rt = open(&db, &clock).await;
    every_minute(&rt, &clock, Overlap::BufferOne).await;
    clock.advance(2 * MIN);
    let d = settled(&rt, &clock, "job").await;
    assert_eq!(d.buffered_ms, [ms(t0() + 2 * MIN)]);
    assert_eq!(skipped(&d, SkipReason::Overlap), 1);
    // the buffered run starts when the running one ends, without a tick
    finish(&rt, &run("job", MIN)).await;
    until("the buffered run to start", || {
        rt.describe(&run("job", 2 * MIN)).is_ok()
    })
    .await;
    let d = rt.schedules().describe("job").unwrap();
    assert!(d.buffered_ms.is_empty());
    assert_eq!(d.running, [run("job", 2 * MIN)]);
}

#[tokio::test]
async fn overlap_buffer_all_runs_each_in_turn() {
    let db = BACKEND.store();
    let clock = Arc::new(TestClock::new());
    let rt = open(&db, &clock).await;
    every_minute(&rt, &clock, Overlap::BufferAll).await;
    clock.advance(2 * MIN);
    let d = settled(&rt, &clock, "job").await;
    assert_eq!(d.buffered_ms, [ms(t0() + 2 * MIN), ms(t0() + 3 * MIN)]);
    for k in 1..=2 {
        finish(&rt, &run("job", k * MIN)).await;
        let next = run("job", (k + 1) * MIN);
        until("the next buffered run", || rt.describe(&next).is_ok()).await;
    }
    finish(&rt, &run("job", 3 * MIN)).await;
    let d = rt.schedules().describe("job").unwrap();
    assert_eq!(d.runs, 3);
    assert_eq!(skipped(&d, SkipReason::Overlap), 0);
}

#[tokio::test]
async fn overlap_cancel_other_cancels_then_starts_the_new_run() {
    let db = BACKEND.store();
    let clock = Arc::new(TestClock::new());
    let rt = open(&db, &clock).await;
    every_minute(&rt, &clock, Overlap::CancelOther).await;
    clock.advance(MIN);
    let first = run("job", MIN);
    let second = run("job", 2 * MIN);
    until("the cancelled run to end and the next to start", || {
        rt.describe(&second).is_ok()
    })
    .await;
    assert_eq!(rt.describe(&first).unwrap().status, Status::Cancelled);
    let d = rt.schedules().describe("job").unwrap();
    assert!(d.recent.iter().any(|e| e.kind
        == ScheduleEventKind::CancelRequested {
            workflow_id: first.clone()
        }));
    assert_eq!(d.running, [second]);
}

#[tokio::test]
async fn overlap_terminate_other_terminates_and_starts_at_once() {
    let db = BACKEND.store();
    let clock = Arc::new(TestClock::new());
    let rt = open(&db, &clock).await;
    every_minute(&rt, &clock, Overlap::TerminateOther).await;
    clock.advance(MIN);
    let d = settled(&rt, &clock, "job").await;
    let first = run("job", MIN);
    assert_eq!(d.running, [run("job", 2 * MIN)]);
    until("the first run to be terminated", || {
        rt.describe(&first).unwrap().status == Status::Terminated
    })
    .await;
}

#[tokio::test]
async fn overlap_allow_all_runs_side_by_side() {
    let db = BACKEND.store();
    let clock = Arc::new(TestClock::new());
    let rt = open(&db, &clock).await;
    every_minute(&rt, &clock, Overlap::AllowAll).await;
    clock.advance(2 * MIN);
    let d = settled(&rt, &clock, "job").await;
    assert_eq!(
        d.running,
        [run("job", MIN), run("job", 2 * MIN), run("job", 3 * MIN)]
    );
}

#[tokio::test]
async fn paused_times_are_skipped_and_recorded_until_unpaused() {
    let db = BACKEND.store();
    let clock = Arc::new(TestClock::new());
    let rt = open(&db, &clock).await;
    rt.schedules()
        .create(
            "r",
            Schedule::interval(MIN).unwrap().starting_at(t0() + MIN),
            report("x".into()),
        )
        .await
        .unwrap();
    let d = rt.schedules().pause("r", "maintenance").await.unwrap();
    assert!(d.paused);
    assert_eq!(d.note, "maintenance");
    clock.advance(3 * MIN);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let d = rt.schedules().unpause("r", "done").await.unwrap();
    assert!(!d.paused);
    assert_eq!(d.runs, 0);
    assert_eq!(skipped(&d, SkipReason::Paused), 3);
    assert_eq!(d.next_ms.first(), Some(&ms(t0() + 4 * MIN)));
    // a manual trigger works while paused too
    rt.schedules().pause("r", "again").await.unwrap();
    let d = rt.schedules().trigger("r").await.unwrap();
    assert_eq!(d.runs, 1);
    let id = run("r", 3 * MIN);
    assert!(d.recent.iter().any(|e| e.kind
        == ScheduleEventKind::Started {
            nominal_ms: ms(t0() + 3 * MIN),
            workflow_id: id.clone(),
            trigger: Trigger::Manual,
        }));
    rt.handle::<report>(id)
        .result()
        .within()
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn missed_runs_catch_up_within_the_window_after_a_restart() {
    let db = BACKEND.store();
    let clock = Arc::new(TestClock::new());
    let rt = open(&db, &clock).await;
    rt.schedules()
        .create(
            "hourly",
            Schedule::interval(60 * MIN)
                .unwrap()
                .starting_at(t0() + 60 * MIN)
                .overlap(Overlap::AllowAll)
                .catchup_window(2 * 60 * MIN),
            report("catch-up".into()),
        )
        .await
        .unwrap();
    rt.shutdown().await;
    // five hours down
    clock.advance(5 * 60 * MIN);
    let rt = open(&db, &clock).await;
    let d = settled(&rt, &clock, "hourly").await;
    let ran: Vec<String> = (3..=5).map(|h| run("hourly", h * 60 * MIN)).collect();
    assert_eq!(started(&d), ran);
    assert_eq!(skipped(&d, SkipReason::CatchupWindow), 2);
    assert!(d.recent.iter().any(|e| e.kind
        == ScheduleEventKind::Skipped {
            first_ms: ms(t0() + 60 * MIN),
            last_ms: ms(t0() + 2 * 60 * MIN),
            count: 2,
            reason: SkipReason::CatchupWindow,
        }));
    for id in ran {
        rt.handle::<report>(id)
            .result()
            .within()
            .await
            .unwrap()
            .unwrap();
    }
}

#[tokio::test]
async fn backfill_runs_a_past_range_once_even_when_repeated() {
    let db = BACKEND.store();
    let clock = Arc::new(TestClock::new());
    clock.advance(24 * 60 * MIN);
    let rt = open(&db, &clock).await;
    rt.schedules()
        .create(
            "daily",
            Schedule::cron("0 6 * * *").unwrap(),
            report("backfill".into()),
        )
        .await
        .unwrap();
    let from = t0() - Duration::from_secs(3 * 86_400);
    let d = rt
        .schedules()
        .backfill("daily", from, t0(), Overlap::AllowAll)
        .await
        .unwrap();
    assert_eq!(d.runs, 3, "{d:?}");
    let again = rt
        .schedules()
        .backfill("daily", from, t0(), Overlap::AllowAll)
        .await
        .unwrap();
    assert_eq!(again.runs, 3);
    assert_eq!(skipped(&again, SkipReason::AlreadyStarted), 3);
    let e = rt
        .schedules()
        .backfill("daily", t0(), from, Overlap::AllowAll)
        .await
        .unwrap_err();
    assert!(matches!(e, ScheduleError::Invalid(_)), "{e}");
}

#[tokio::test]
async fn run_limits_end_dates_and_updates() {
    let db = BACKEND.store();
    let clock = Arc::new(TestClock::new());
    let rt = open(&db, &clock).await;
    let d = rt
        .schedules()
        .create(
            "twice",
            Schedule::interval(MIN)
                .unwrap()
                .starting_at(t0() + MIN)
                .max_runs(2),
            report("limit".into()),
        )
        .await
        .unwrap();
    assert_eq!(d.next_ms.len(), 2);
    for _ in 0..4 {
        quiet(&rt, "twice").await;
        clock.advance(MIN);
        settled(&rt, &clock, "twice").await;
    }
    let d = rt.schedules().describe("twice").unwrap();
    assert_eq!(d.runs, 2);
    assert!(d.next_ms.is_empty());
    assert!(
        d.recent
            .iter()
            .any(|e| e.kind == ScheduleEventKind::Exhausted)
    );
    // an update gives it a new calendar from now
    let d = rt
        .schedules()
        .update(
            "twice",
            Schedule::cron("30 * * * *")
                .unwrap()
                .ending_at(t0() + 3 * 60 * MIN),
        )
        .await
        .unwrap();
    assert_eq!(d.spec, "cron \"30 * * * *\" in UTC");
    assert_eq!(
        d.next_ms,
        [30, 90, 150].map(|m| ms(t0() + m * MIN)).to_vec()
    );
    rt.schedules().delete("twice").await.unwrap();
    assert!(matches!(
        rt.schedules().describe("twice"),
        Err(ScheduleError::NotFound { .. })
    ));
}

#[tokio::test]
async fn a_daily_run_in_berlin_follows_daylight_saving_time() {
    let db = BACKEND.store();
    // 2026-03-28 12:00 UTC; clocks spring forward in Berlin the next night
    let clock = Arc::new(TestClock::starting_at(
        UNIX_EPOCH + Duration::from_secs(1_774_699_200),
    ));
    let rt = open(&db, &clock).await;
    rt.schedules()
        .create(
            "berlin",
            Schedule::cron("30 2 * * *")
                .unwrap()
                .time_zone("Europe/Berlin")
                .unwrap(),
            report("dst".into()),
        )
        .await
        .unwrap();
    for _ in 0..3 {
        quiet(&rt, "berlin").await;
        clock.advance(24 * 60 * MIN);
        settled(&rt, &clock, "berlin").await;
    }
    let d = rt.schedules().describe("berlin").unwrap();
    assert_eq!(
        started(&d),
        [
            "berlin@2026-03-29T01:00:00Z", // 02:30 does not exist: 03:00 CEST
            "berlin@2026-03-30T00:30:00Z", // 02:30 CEST
            "berlin@2026-03-31T00:30:00Z",
        ]
    );
}

#[tokio::test]
async fn bad_requests_get_clear_errors() {
    let db = BACKEND.store();
    let clock = Arc::new(TestClock::new());
    let rt = open(&db, &clock).await;
    let s = || Schedule::interval(MIN).unwrap();
    rt.schedules()
        .create("a", s(), report("x".into()))
        .await
        .unwrap();
    let e = rt
        .schedules()
        .create("a", s(), report("y".into()))
        .await
        .unwrap_err();
    assert!(matches!(e, ScheduleError::AlreadyExists { .. }), "{e}");
    let e = rt
        .schedules()
        .create_json("b", s(), "nope", serde_json::json!("x"))
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "[DURABLE-SCHEDULE] workflow `nope` is not registered"
    );
    let e = rt
        .schedules()
        .create_json("b", s(), "report", serde_json::json!({"not": "a string"}))
        .await
        .unwrap_err();
    assert!(matches!(e, ScheduleError::Input { .. }), "{e}");
    let d = rt
        .schedules()
        .create_json("b", s(), "report", serde_json::json!("by name"))
        .await
        .unwrap();
    assert_eq!(d.input, Some(serde_json::json!("by name")));
    for e in [
        rt.schedules().pause("zz", "").await.unwrap_err(),
        rt.schedules().trigger("zz").await.unwrap_err(),
        rt.schedules().delete("zz").await.unwrap_err(),
    ] {
        assert!(matches!(e, ScheduleError::NotFound { .. }), "{e}");
    }
    let e = rt
        .schedules()
        .create("", s(), report("x".into()))
        .await
        .unwrap_err();
    assert!(matches!(e, ScheduleError::Invalid(_)), "{e}");
}

/// Each run sees the time it stands for, not the time it ran: backfilled
/// days, hours caught up after downtime, a buffered run, a jittered run and
/// a manual trigger; an instance started by hand sees none. Before,
/// the nominal time existed only inside the run's id.
#[tokio::test]
async fn each_scheduled_run_sees_its_own_nominal_time() {
    let db = BACKEND.store();
    let clock = Arc::new(TestClock::new());
    clock.advance(24 * 60 * MIN);
    let rt = open(&db, &clock).await;
    let now0 = ms(clock.now());
    // backfilled: three past days at 06:00
    rt.schedules()
        .create(
            "daily",
            Schedule::cron("0 6 * * *").unwrap(),
            stamped("d".into()),
        )
        .await
        .unwrap();
    let from = t0() - Duration::from_secs(3 * 86_400);
    rt.schedules()
        .backfill("daily", from, t0(), Overlap::AllowAll)
        .await
        .unwrap();
    for day in 1..=3u64 {
        let nominal = t0() - Duration::from_secs(day * 86_400) + 6 * 60 * MIN;
        let id = format!("daily@{}", rfc3339(nominal));
        let seen = stamp(&rt, &id).await;
        assert_eq!(
            seen,
            format!("d: daily Backfill nominal {} ran {now0}", ms(nominal))
        );
    }
    // triggered by hand: its nominal time is the trigger's moment
    let d = rt.schedules().trigger("daily").await.unwrap();
    let triggered = started(&d).last().unwrap().clone();
    assert_eq!(
        stamp(&rt, &triggered).await,
        format!("d: daily Manual nominal {now0} ran {now0}")
    );
    // a plain instance: none
    let h = rt
        .start("plain", stamped("p".into()), IdPolicy::Reject)
        .await
        .unwrap();
    assert_eq!(
        h.result().within().await.unwrap().unwrap(),
        "p: not scheduled"
    );
    // the runs of a schedule are listed by its id and nominal time
    let listed = rt
        .list(&durable_runtime::ListFilter {
            search_attribute: Some((
                durable_runtime::schedule::SCHEDULE_ID.to_owned(),
                vec![durable_runtime::SearchValue::Str("daily".into())],
            )),
            limit: 100,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(listed.len(), 4, "{listed:?}");
    assert!(listed.iter().all(|d| {
        d.search_attributes
            .contains_key(durable_runtime::schedule::SCHEDULED_START_MS)
    }));
    rt.shutdown().await;

    // caught up after three hours down: each hour sees its own hour
    let rt = open(&db, &clock).await;
    rt.schedules()
        .create(
            "hourly",
            Schedule::interval(60 * MIN)
                .unwrap()
                .starting_at(clock.now() + 60 * MIN)
                .overlap(Overlap::AllowAll)
                .catchup_window(10 * 60 * MIN),
            stamped("h".into()),
        )
        .await
        .unwrap();
    rt.shutdown().await;
    clock.advance(3 * 60 * MIN);
    let rt = open(&db, &clock).await;
    let d = settled(&rt, &clock, "hourly").await;
    let up = ms(clock.now());
    assert_eq!(started(&d).len(), 3, "{d:?}");
    for (k, id) in started(&d).iter().enumerate() {
        let nominal = now0 + (k as u64 + 1) * 3_600_000;
        assert_eq!(
            stamp(&rt, id).await,
            format!("h: hourly Calendar nominal {nominal} ran {up}")
        );
    }
    rt.shutdown().await;

    // buffered behind a long run: it starts minutes later, for its minute
    let rt = open(&db, &clock).await;
    let first_at = ms(clock.now()) + 60_000;
    rt.schedules()
        .create(
            "buffered",
            Schedule::interval(MIN)
                .unwrap()
                .starting_at(clock.now() + MIN)
                .overlap(Overlap::BufferOne),
            held_stamp("b".into()),
        )
        .await
        .unwrap();
    clock.advance(MIN);
    settled(&rt, &clock, "buffered").await;
    clock.advance(5 * MIN);
    let d = settled(&rt, &clock, "buffered").await;
    assert_eq!(d.buffered_ms, [first_at + 60_000], "{d:?}");
    let first = d.running[0].clone();
    rt.signal(&first, "finish", &()).await.unwrap();
    let later = ms(clock.now());
    let second = format!(
        "buffered@{}",
        rfc3339(UNIX_EPOCH + Duration::from_millis(first_at + 60_000))
    );
    until("the buffered run to start", || rt.describe(&second).is_ok()).await;
    rt.signal(&second, "finish", &()).await.unwrap();
    let out = rt
        .handle::<held_stamp>(&second)
        .result()
        .within()
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        out,
        format!(
            "b: buffered Calendar nominal {} ran {later}",
            first_at + 60_000
        )
    );
    rt.shutdown().await;

    // jittered: started up to a minute late, for its own nominal time
    let rt = open(&db, &clock).await;
    let start = clock.now() + 60 * MIN;
    rt.schedules()
        .create(
            "jittered",
            Schedule::interval(60 * MIN)
                .unwrap()
                .starting_at(start)
                .jitter(MIN),
            stamped("j".into()),
        )
        .await
        .unwrap();
    clock.advance(2 * 60 * MIN + 2 * MIN);
    until("the jittered run to start", || {
        !started(&rt.schedules().describe("jittered").unwrap()).is_empty()
    })
    .await;
    let d = rt.schedules().describe("jittered").unwrap();
    let (id, nominal) = d
        .recent
        .iter()
        .find_map(|e| match &e.kind {
            ScheduleEventKind::Started {
                workflow_id,
                nominal_ms,
                ..
            } => Some((workflow_id.clone(), *nominal_ms)),
            _ => None,
        })
        .unwrap();
    assert!(nominal >= ms(start), "{nominal}");
    let seen = stamp(&rt, &id).await;
    assert!(
        seen.starts_with(&format!("j: jittered Calendar nominal {nominal} ran ")),
        "{seen}"
    );
    rt.shutdown().await;
}

/// RFC 3339 UTC (whole seconds) of any time, as run ids spell it.
fn rfc3339(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // days since 1970-01-01 to a civil date (Howard Hinnant's algorithm)
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    )
}
